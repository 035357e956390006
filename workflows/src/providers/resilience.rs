//! What every provider client goes through: a circuit breaker per provider, and a few quick
//! retries with exponential backoff and jitter that honour the provider's requested wait.
//!
//! When an open circuit's cool-down ends, a cheap health request given by the client (not a real
//! call) probes the provider, so no run pays for a probe that fails during an outage.
//!
//! Waits longer than [`RetryPolicy::max_inline_wait`] are not slept here: the error goes back to
//! the step, which defers the run (holding no worker) for that long instead.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::error::ProviderError;
pub use crate::telemetry::BreakerState;

/// How a request is retried inside one step attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try (the official SDKs use 2).
    pub max_retries: u32,
    /// First backoff; doubled on each retry.
    pub base: Duration,
    /// Longest backoff before jitter.
    pub max_backoff: Duration,
    /// A longer wait (requested by the provider or computed) is left to the step.
    pub max_inline_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            base: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_inline_wait: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 = the first retry): `base · 2^retry`, capped, minus
    /// up to 25% jitter so that many clients do not retry in step.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(retry))
            .min(self.max_backoff);
        exp.mul_f64(1.0 - 0.25 * rand::random::<f64>())
    }
}

/// When the breaker opens and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive outage failures (5xx, unreachable, transport) that open the circuit.
    pub failure_threshold: u32,
    /// How long the circuit stays open before one probe request is let through.
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant, cause: String },
    HalfOpen { probe_started: Instant },
}

/// Whether a request may go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The circuit is closed.
    Go,
    /// The cool-down is over: probe the provider first (the caller is the one probe).
    Probe,
}

/// A circuit breaker for one provider: after `failure_threshold` consecutive outage failures
/// requests fail fast with [`ProviderError::CircuitOpen`] for `open_for`; then one probe is let
/// through, and its outcome closes the circuit or opens it again.
#[derive(Debug)]
pub struct CircuitBreaker {
    provider: &'static str,
    settings: BreakerSettings,
    state: Mutex<State>,
}

impl CircuitBreaker {
    /// A closed breaker for `provider`.
    pub fn new(provider: &'static str, settings: BreakerSettings) -> Self {
        CircuitBreaker {
            provider,
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a few plain fields: a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state.
    pub fn current(&self) -> BreakerState {
        match *self.state() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until, .. } if Instant::now() >= until => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// May a request go out now? Open: no. Open past its cool-down: yes, as the probe. While a
    /// probe is under way, others wait (a probe that never reported is replaced after `open_for`).
    pub fn admit(&self) -> Result<Admission, ProviderError> {
        let now = Instant::now();
        let mut state = self.state();
        let refuse = |retry_in: Duration, cause: &str| ProviderError::CircuitOpen {
            provider: self.provider,
            retry_in,
            cause: cause.to_owned(),
        };
        match &*state {
            State::Closed { .. } => Ok(Admission::Go),
            State::Open { until, cause } if now < *until => Err(refuse(*until - now, cause)),
            State::HalfOpen { probe_started } if now < *probe_started + self.settings.open_for => {
                Err(refuse(
                    Duration::from_secs(1),
                    "a probe request is under way",
                ))
            }
            State::Open { .. } | State::HalfOpen { .. } => {
                *state = State::HalfOpen { probe_started: now };
                crate::telemetry::breaker_state(self.provider, BreakerState::HalfOpen);
                Ok(Admission::Probe)
            }
        }
    }

    /// Records a request's outcome: an outage failure counts towards opening; anything else
    /// (a success, or an answer such as 4xx that proves the provider is up) closes.
    pub fn record<T>(&self, result: &Result<T, ProviderError>) {
        let mut state = self.state();
        let outage = match result {
            Err(e) if e.is_outage() => Some(e),
            _ => None,
        };
        let failures = match *state {
            State::Closed { failures } => failures,
            State::HalfOpen { .. } => self.settings.failure_threshold.saturating_sub(1),
            // A request admitted before the circuit opened: its outcome changes nothing.
            State::Open { .. } => return,
        };
        *state = match outage {
            None => State::Closed { failures: 0 },
            Some(e) if failures + 1 >= self.settings.failure_threshold => {
                tracing::warn!(provider = self.provider, open_for = ?self.settings.open_for, error = %e, "circuit opened");
                State::Open {
                    until: Instant::now() + self.settings.open_for,
                    cause: e.to_string(),
                }
            }
            Some(_) => State::Closed {
                failures: failures + 1,
            },
        };
        let now = match *state {
            State::Open { .. } => BreakerState::Open,
            _ => BreakerState::Closed,
        };
        crate::telemetry::breaker_state(self.provider, now);
    }
}

/// May the request be sent again after an error?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads and requests the provider deduplicates: any retryable error may be retried.
    Safe,
    /// Requests with effects in the world (placing a call): retried only when the error proves
    /// the provider did not act on it (it answered an error status, or was never reached).
    OnlyIfNotSent,
}

/// A provider's breaker and retry policy, shared by every request to it.
#[derive(Debug)]
pub struct Resilience {
    /// Quick retries inside one step attempt.
    pub retry: RetryPolicy,
    /// The provider's circuit breaker.
    pub breaker: CircuitBreaker,
}

impl Resilience {
    /// The default retry policy and breaker settings for `provider`.
    pub fn defaults(provider: &'static str) -> Self {
        Self::new(provider, RetryPolicy::default(), BreakerSettings::default())
    }

    /// `retry` and `breaker` for `provider`.
    pub fn new(provider: &'static str, retry: RetryPolicy, breaker: BreakerSettings) -> Self {
        Resilience {
            retry,
            breaker: CircuitBreaker::new(provider, breaker),
        }
    }

    /// Sends an HTTP `request` through [`Resilience::run`], a fresh copy each try: the body of a
    /// 2xx answer, or the error `read_error` makes of any other status.
    pub async fn send<H, HFut>(
        &self,
        idempotency: Idempotency,
        health: H,
        request: reqwest::RequestBuilder,
        read_error: ReadError,
    ) -> Result<Vec<u8>, ProviderError>
    where
        H: Fn() -> HFut,
        HFut: Future<Output = Result<(), ProviderError>>,
    {
        let provider = self.breaker.provider;
        self.run(idempotency, health, || {
            let attempt = request.try_clone();
            async move {
                let attempt = attempt.ok_or_else(|| ProviderError::InvalidRequest {
                    provider,
                    message: "request body cannot be sent twice".into(),
                })?;
                send_once(provider, attempt, read_error).await
            }
        })
        .await
    }

    /// Runs `request` through the breaker, retrying as `idempotency` allows. When the circuit
    /// is ready for a probe, `health` (a cheap request without effects; any answer but a 5xx
    /// proves the provider up) goes first, and `request` only if it passed.
    pub async fn run<T, F, Fut, H, HFut>(
        &self,
        idempotency: Idempotency,
        health: H,
        mut request: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
        H: Fn() -> HFut,
        HFut: Future<Output = Result<(), ProviderError>>,
    {
        let mut retry = 0;
        loop {
            if self.breaker.admit()? == Admission::Probe {
                self.breaker.record(&health().await);
                self.breaker.admit()?; // still open: the caller waits
            }
            let result = request().await;
            let outcome = result.as_ref().map_or_else(ProviderError::kind, |_| "ok");
            crate::telemetry::provider_request(self.breaker.provider, outcome);
            self.breaker.record(&result);
            let Err(error) = &result else { return result };
            let may_retry = error.is_retryable()
                && retry < self.retry.max_retries
                && (idempotency == Idempotency::Safe || !error.may_have_been_acted_on());
            if !may_retry {
                return result;
            }
            let wait = error
                .retry_after()
                .unwrap_or_else(|| self.retry.backoff(retry));
            if wait > self.retry.max_inline_wait {
                return result;
            }
            tracing::debug!(%error, ?wait, retry, "retrying a provider request");
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }
}

/// Reads a provider's error answer: its status, headers and body.
pub type ReadError = fn(u16, &reqwest::header::HeaderMap, &[u8]) -> ProviderError;

/// Sends `request` once: the body of a 2xx answer, or the error `read_error` makes of any
/// other status.
pub async fn send_once(
    provider: &'static str,
    request: reqwest::RequestBuilder,
    read_error: ReadError,
) -> Result<Vec<u8>, ProviderError> {
    let response = request
        .send()
        .await
        .map_err(|e| ProviderError::from_reqwest(provider, &e))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| ProviderError::from_reqwest(provider, &e))?;
    if !status.is_success() {
        return Err(read_error(status.as_u16(), &headers, &body));
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn status(code: u16, retry_after: Option<Duration>) -> ProviderError {
        ProviderError::Status {
            provider: "test",
            status: code,
            code: None,
            message: "m".into(),
            retry_after,
        }
    }

    fn transport() -> ProviderError {
        ProviderError::Transport {
            provider: "test",
            message: "timed out".into(),
        }
    }

    fn resilience(threshold: u32) -> Resilience {
        Resilience::new(
            "test",
            RetryPolicy::default(),
            BreakerSettings {
                failure_threshold: threshold,
                open_for: Duration::from_secs(30),
            },
        )
    }

    /// Runs a request that fails with the errors in `script` (in order), then succeeds; returns
    /// the result and how many times it was sent.
    async fn run_script(
        r: &Resilience,
        idempotency: Idempotency,
        script: Vec<ProviderError>,
    ) -> (Result<u32, ProviderError>, u32) {
        run_with_health(r, idempotency, script, Ok(())).await
    }

    /// [`run_script`] with a health probe that answers `health`.
    async fn run_with_health(
        r: &Resilience,
        idempotency: Idempotency,
        script: Vec<ProviderError>,
        health: Result<(), ProviderError>,
    ) -> (Result<u32, ProviderError>, u32) {
        let sent = AtomicU32::new(0);
        let result = r
            .run(
                idempotency,
                || std::future::ready(health.clone()),
                || {
                    let n = sent.fetch_add(1, Ordering::SeqCst) as usize;
                    let outcome = script.get(n).cloned().map_or(Ok(n as u32), Err);
                    async move { outcome }
                },
            )
            .await;
        (result, sent.load(Ordering::SeqCst))
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = RetryPolicy::default();
        for retry in 0..10 {
            let exp = (p.base * 2u32.pow(retry)).min(p.max_backoff);
            let got = p.backoff(retry);
            assert!(got <= exp && got >= exp.mul_f64(0.75), "{retry}: {got:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_twice_then_gives_up() {
        let r = resilience(100);
        let (result, sent) = run_script(&r, Idempotency::Safe, vec![status(500, None); 5]).await;
        assert_eq!(result.unwrap_err().status(), Some(500));
        assert_eq!(sent, 3);
        let (result, sent) =
            run_script(&r, Idempotency::Safe, vec![status(503, None), transport()]).await;
        assert_eq!((result.unwrap(), sent), (2, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_and_leaves_long_waits_to_the_step() {
        let r = resilience(100);
        let start = Instant::now();
        let wait = Duration::from_millis(1500);
        let (result, sent) = run_script(&r, Idempotency::Safe, vec![status(429, Some(wait))]).await;
        assert_eq!((result.unwrap(), sent), (1, 2));
        assert_eq!(start.elapsed(), wait);
        let long = Some(Duration::from_secs(45));
        let (result, sent) = run_script(&r, Idempotency::Safe, vec![status(429, long)]).await;
        assert_eq!(result.unwrap_err().retry_after(), long);
        assert_eq!(sent, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn never_retries_what_cannot_succeed_or_may_have_been_acted_on() {
        let r = resilience(100);
        for e in [status(422, None), status(401, None)] {
            let (result, sent) = run_script(&r, Idempotency::Safe, vec![e]).await;
            assert!(result.is_err());
            assert_eq!(sent, 1);
        }
        let quota = ProviderError::Status {
            provider: "test",
            status: 429,
            code: Some("insufficient_quota".into()),
            message: "m".into(),
            retry_after: None,
        };
        let (_, sent) = run_script(&r, Idempotency::Safe, vec![quota]).await;
        assert_eq!(sent, 1);
        // A call request that timed out may have placed the call: never sent again blindly.
        let (result, sent) = run_script(&r, Idempotency::OnlyIfNotSent, vec![transport()]).await;
        assert!(result.unwrap_err().may_have_been_acted_on());
        assert_eq!(sent, 1);
        // An error status or an unreachable provider proves it did not act: retried.
        let unreachable = ProviderError::Unreachable {
            provider: "test",
            message: "connection refused".into(),
        };
        let (result, sent) = run_script(
            &r,
            Idempotency::OnlyIfNotSent,
            vec![status(503, None), unreachable],
        )
        .await;
        assert_eq!((result.unwrap(), sent), (2, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn the_circuit_opens_fails_fast_probes_and_closes() {
        let b = CircuitBreaker::new(
            "test",
            BreakerSettings {
                failure_threshold: 3,
                open_for: Duration::from_secs(30),
            },
        );
        let outage: Result<(), _> = Err(status(502, None));
        for _ in 0..2 {
            b.admit().unwrap();
            b.record(&outage);
        }
        assert_eq!(b.current(), BreakerState::Closed);
        // A 4xx proves the provider is up: the count starts again.
        b.record::<()>(&Err(status(422, None)));
        for _ in 0..3 {
            b.admit().unwrap();
            b.record(&outage);
        }
        assert_eq!(b.current(), BreakerState::Open);
        match b.admit() {
            Err(ProviderError::CircuitOpen { retry_in, .. }) => {
                assert_eq!(retry_in, Duration::from_secs(30))
            }
            other => panic!("expected an open circuit, got {other:?}"),
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(b.current(), BreakerState::HalfOpen);
        assert_eq!(b.admit().unwrap(), Admission::Probe);
        assert!(b.admit().is_err(), "one probe at a time");
        b.record(&outage);
        assert_eq!(b.current(), BreakerState::Open, "a failed probe reopens");
        tokio::time::advance(Duration::from_secs(30)).await;
        b.admit().unwrap();
        b.record(&Ok(()));
        assert_eq!(b.current(), BreakerState::Closed);
        b.admit().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_never_reports_is_replaced() {
        let b = CircuitBreaker::new(
            "test",
            BreakerSettings {
                failure_threshold: 1,
                open_for: Duration::from_secs(10),
            },
        );
        b.admit().unwrap();
        b.record::<()>(&Err(transport()));
        tokio::time::advance(Duration::from_secs(10)).await;
        b.admit().unwrap(); // a probe whose future is then dropped
        assert!(b.admit().is_err());
        tokio::time::advance(Duration::from_secs(10)).await;
        b.admit().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_circuit_stops_requests_before_they_are_sent() {
        let r = resilience(2);
        let (result, sent) = run_script(&r, Idempotency::Safe, vec![status(500, None); 9]).await;
        assert_eq!(
            sent, 2,
            "opened after the second failure, the third try was refused"
        );
        match result {
            Err(ProviderError::CircuitOpen { cause, .. }) => {
                assert!(cause.contains("500"), "{cause}")
            }
            other => panic!("the failure that opened the circuit says so: {other:?}"),
        }
        let (result, sent) = run_script(&r, Idempotency::Safe, vec![]).await;
        assert!(matches!(result, Err(ProviderError::CircuitOpen { .. })));
        assert_eq!(sent, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_health_request_probes_so_no_real_request_is_spent_on_an_outage() {
        let r = resilience(1);
        let (result, sent) = run_script(&r, Idempotency::Safe, vec![status(502, None)]).await;
        assert!(result.is_err());
        assert_eq!((sent, r.breaker.current()), (1, BreakerState::Open));
        tokio::time::advance(Duration::from_secs(30)).await;
        // Still down: the probe fails, the real request is not sent and waits.
        let (result, sent) =
            run_with_health(&r, Idempotency::Safe, vec![], Err(status(503, None))).await;
        assert!(
            matches!(result, Err(ProviderError::CircuitOpen { .. })),
            "{result:?}"
        );
        assert_eq!((sent, r.breaker.current()), (0, BreakerState::Open));
        tokio::time::advance(Duration::from_secs(30)).await;
        // Back: any answer but an outage (here a 404) closes, and the request goes out.
        let up = Err(status(404, None));
        let (result, sent) = run_with_health(&r, Idempotency::Safe, vec![], up).await;
        assert_eq!((result.unwrap(), sent), (0, 1));
        assert_eq!(r.breaker.current(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_request_that_timed_out_keeps_its_error_when_it_opens_the_circuit() {
        // Threshold 1: the timeout itself opens the circuit, but the caller must still learn
        // that the call may have been placed.
        let r = resilience(1);
        let (result, sent) = run_script(&r, Idempotency::OnlyIfNotSent, vec![transport()]).await;
        assert_eq!(sent, 1);
        assert!(result.unwrap_err().may_have_been_acted_on());
        assert_eq!(r.breaker.current(), BreakerState::Open);
    }
}
