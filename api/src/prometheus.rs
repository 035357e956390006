//! Prometheus metrics at `GET /metrics`: what the engine and pipeline record (steps, webhook →
//! resume, provider requests, circuit breakers, script errors), HTTP requests, and gauges read
//! from the database at scrape time (runs by status, the step queue's backlog). A process may
//! also serve them on an address of its own (`SWITCHBOARD_METRICS_ADDR`, for workers).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use switchboard_engine::Db;
use switchboard_engine::RunStatus;
use switchboard_engine::store::{runs, tasks};

use crate::error::ApiResult;
use crate::state::AppState;

/// Gauge: runs by status, in the whole database.
pub const RUNS: &str = "switchboard_runs";
/// Gauge: step tasks due and not yet taken by a worker.
pub const QUEUE_DEPTH: &str = "switchboard_queue_depth";
/// Gauge: how long the oldest of those has been due.
pub const QUEUE_OLDEST_AGE: &str = "switchboard_queue_oldest_age_seconds";
/// Counter: HTTP requests by method, route and status.
pub const HTTP_REQUESTS: &str = "switchboard_http_requests_total";
/// Histogram: HTTP request duration by method and route.
pub const HTTP_DURATION: &str = "switchboard_http_request_duration_seconds";

/// Histogram buckets for every `…_seconds` metric: 1 ms to 2 minutes.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 120.0,
];

/// The process-wide recorder, installed on first use; every server in the process shares it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder was already installed; /metrics shows only gauges"
                );
            }
            // Histograms are kept as raw samples until upkeep folds them into buckets.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .expect("spawning a thread");
            handle
        })
        .clone()
}

/// `GET /metrics`.
#[utoipa::path(
    get, path = "/metrics", tag = "health", operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text format (0.0.4)", content_type = "text/plain"),
        (status = 500, description = "The database could not be read", body = crate::error::ErrorBody),
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    caller: crate::tenant::Caller,
) -> ApiResult<Response> {
    caller.require_operator()?;
    scrape(state.engine.db()).await
}

/// A process' own metrics listener (`SWITCHBOARD_METRICS_ADDR`), for `switchboard worker`,
/// which serves no HTTP otherwise: `GET /metrics` without authentication, so keep its address
/// private.
pub fn listener_router(db: Db) -> Router {
    Router::new().route("/metrics", get(move || async move { scrape(&db).await }))
}

/// Serves [`listener_router`] on `addr` in the background; returns the bound address.
pub async fn serve_listener(addr: SocketAddr, db: Db) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, listener_router(db)).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(bound)
}

/// The scrape: the database gauges read now, then everything this process recorded.
async fn scrape(db: &Db) -> ApiResult<Response> {
    let handle = handle();
    let counts = runs::count_by_status(db, None).await?;
    for &status in RunStatus::ALL {
        let n = counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!(RUNS, "status" => status.as_str()).set(n as f64);
    }
    let backlog = tasks::backlog(db).await?;
    metrics::gauge!(QUEUE_DEPTH).set(backlog.due as f64);
    metrics::gauge!(QUEUE_OLDEST_AGE).set(backlog.oldest_secs as f64);
    handle.run_upkeep();
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response())
}

/// Counts and times every request by its route's pattern (not its path: ids would explode the
/// label set); requests matching no route count as `unmatched`.
pub async fn track(request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(HTTP_DURATION, "method" => method.clone(), "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}
