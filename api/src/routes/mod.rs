//! HTTP handlers, one module per resource.

pub mod businesses;
pub mod events;
pub mod leads;
pub mod overview;
pub mod personalize;
pub mod runs;
pub mod scripts;
pub mod webhooks;

use axum::Json;
use serde_json::{Value, json};

/// `GET /healthz`.
#[utoipa::path(
    get, path = "/healthz", tag = "health", operation_id = "health",
    responses((status = 200, description = "`{status: ok}`", body = Object))
)]
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Unix milliseconds as RFC 3339.
pub(crate) fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
