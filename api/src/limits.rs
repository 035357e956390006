//! Limits every request lives under: a time limit (the live event stream, which never ends by
//! itself, excepted), and rate limits per API key and, for the unauthenticated routes (webhooks,
//! sign-in), per client address. Body size limits sit on the routes (see `router::app`).
//!
//! Rate limits are kept in each process: with N API processes behind a balancer a key gets up
//! to N times its limit.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Paths that stream for as long as the client listens.
const STREAMS: [&str; 1] = ["/api/v1/events"];

/// Answers `503 timeout` when a request takes longer than `limit`. The work is dropped at its
/// next await; what it committed before stays (a lead's `Idempotency-Key` makes a retry safe).
pub async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    if STREAMS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(limit).into_response(),
    }
}

/// Token buckets: one per caller (see `Caller::rate_bucket`), one per client address. Each holds
/// a second's worth of requests and refills at its rate.
pub struct RateLimits {
    keys: DefaultKeyedRateLimiter<String>,
    addresses: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    checks: std::sync::atomic::AtomicU64,
}

/// Buckets kept before idle ones are dropped.
const MAX_BUCKETS: usize = 10_000;

impl RateLimits {
    /// `per_key` requests a second for each caller's bucket, `per_address` for each client
    /// address on the unauthenticated routes (and for failed authentications).
    pub fn new(per_key: NonZeroU32, per_address: NonZeroU32) -> RateLimits {
        RateLimits {
            keys: RateLimiter::keyed(Quota::per_second(per_key)),
            addresses: RateLimiter::keyed(Quota::per_second(per_address)),
            clock: DefaultClock::default(),
            checks: Default::default(),
        }
    }

    /// Drops idle buckets now and then once there are many (a flood from many addresses stays
    /// bounded without scanning the map on every request).
    fn tidy(&self) {
        use std::sync::atomic::Ordering;
        if !self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(1024)
        {
            return;
        }
        if self.keys.len() > MAX_BUCKETS {
            self.keys.retain_recent();
        }
        if self.addresses.len() > MAX_BUCKETS {
            self.addresses.retain_recent();
        }
    }

    /// `429` with the time to wait if `bucket` (a caller's) is over its limit.
    pub fn check_bucket(&self, bucket: &str) -> Result<(), ApiError> {
        self.check(&self.keys, &bucket.to_owned())
    }

    /// `429` with the time to wait if `address` is over its limit.
    pub fn check_address(&self, address: IpAddr) -> Result<(), ApiError> {
        self.check(&self.addresses, &address)
    }

    fn check<K: Clone + Eq + std::hash::Hash>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), ApiError> {
        self.tidy();
        limiter
            .check_key(key)
            .map_err(|wait| ApiError::RateLimited(round_up(wait.wait_time_from(self.clock.now()))))
    }
}

/// Whole seconds, at least one (what `Retry-After` can say).
fn round_up(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(Duration::from_secs(1))
}

/// Rate-limits an unauthenticated route by the client's address (the peer of the connection;
/// behind a proxy, every client shares the proxy's).
pub async fn limit_by_address(
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<crate::listener::Peer>>()
        .map(|c| c.0.0.ip());
    if let Some(ip) = peer
        && let Err(e) = limits.check_address(ip)
    {
        return e.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::{Body, to_bytes};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late"
    }

    fn app() -> Router {
        Router::new()
            .route("/slow", get(slow))
            .route("/api/v1/events", get(slow))
            .layer(axum::middleware::from_fn_with_state(
                Duration::from_millis(20),
                time_limit,
            ))
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_over_the_limit_gets_503_in_the_error_shape() {
        let response = app()
            .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        let body = to_bytes(response.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "timeout", "{body}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_event_stream_is_not_cut() {
        let response = app()
            .oneshot(Request::get("/api/v1/events").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    #[test]
    fn a_key_over_its_rate_gets_429_with_the_seconds_to_wait() {
        let limits = RateLimits::new(NonZeroU32::new(2).unwrap(), NonZeroU32::new(1).unwrap());
        assert!(limits.check_bucket("key_a").is_ok());
        assert!(limits.check_bucket("key_a").is_ok());
        let Err(ApiError::RateLimited(after)) = limits.check_bucket("key_a") else {
            panic!("the third request in a second is over the limit");
        };
        assert_eq!(after, Duration::from_secs(1));
        assert!(
            limits.check_bucket("key_b").is_ok(),
            "each key has its own bucket"
        );
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(limits.check_address(ip).is_ok());
        assert!(limits.check_address(ip).is_err());
    }

    #[test]
    fn waits_are_whole_seconds_rounded_up() {
        assert_eq!(round_up(Duration::from_millis(1)), Duration::from_secs(1));
        assert_eq!(
            round_up(Duration::from_millis(1001)),
            Duration::from_secs(2)
        );
        assert_eq!(round_up(Duration::ZERO), Duration::from_secs(1));
    }
}
