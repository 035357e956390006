//! Limits every request lives under: a time limit (the live event stream, which never ends by
//! itself, excepted). Body size limits sit on the routes (see `startup::app`).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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
}
