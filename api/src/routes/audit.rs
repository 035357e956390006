//! `GET /api/v1/audit`: the audit log of operator and script changes, newest first.

use axum::Json as JsonResponse;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::rfc3339;
use crate::error::ApiResult;
use crate::extract::Query;
use crate::openapi::ErrorBody;
use crate::startup::AppState;
use crate::store::audit;
use crate::tenant::Caller;

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    business: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// Recorded changes: key created and revoked, script activated, run cancelled, retried or
/// resumed by hand, dead letter replayed, lead erased. A business' key sees only its own business' entries.
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "access", operation_id = "audit_log",
    params(
        ("business" = Option<String>, Query, description = "Only this business' entries"),
        ("before" = Option<i64>, Query, description = "Entries older than this id (the `next` of the previous page)"),
        ("limit" = Option<u32>, Query, description = "At most this many (1–500, default 100)"),
    ),
    responses(
        (status = 200, description = "`{entries: [{id, at, actor, business, action, target, detail}], next}`", body = Object),
        (status = 404, description = "Not the caller's business", body = ErrorBody),
        (status = 422, description = "Malformed query", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<JsonResponse<Value>> {
    let business = caller.scope(q.business)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let rows = audit::list(
        state.engine.db(),
        business.as_deref(),
        q.before,
        limit.into(),
    )
    .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let entries: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "at": rfc3339(r.at),
                "actor": r.actor,
                "business": r.business_id,
                "action": r.action,
                "target": r.target,
                "detail": serde_json::from_str::<Value>(&r.detail).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(JsonResponse(json!({ "entries": entries, "next": next })))
}
