//! `GET /api/v1/audit`: the audit log of operator and script changes, newest first.

use axum::Json as JsonResponse;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiResult;
use crate::error::ErrorBody;
use crate::extract::Query;
use crate::state::AppState;
use crate::store::audit;
use crate::tenant::Caller;
use crate::time::rfc3339;

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    business: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// One recorded change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    /// The id of the key that made it.
    pub actor: String,
    pub business: Option<String>,
    /// E.g. `key.created`, `script.activated`, `run.cancelled`, `lead.erased`.
    pub action: String,
    /// What it was done to (a key, run, lead or version id).
    pub target: String,
    /// More about it (JSON), e.g. a key's name and prefix.
    pub detail: Value,
}

/// A page of `GET /api/v1/audit`, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// The `before` of the next page; `null` on the last.
    pub next: Option<i64>,
}

/// Recorded changes: key created and revoked, script activated, run cancelled, retried or
/// resumed by hand, dead letter replayed, lead erased. A business' key sees only its own business' entries.
#[utoipa::path(
    get, path = "/api/v1/audit", tag = "access", operation_id = "audit_log",
    params(
        ("business" = Option<String>, Query, description = "Only this business' entries"),
        ("before" = Option<i64>, Query, description = "Entries older than this id (the `next` of the previous page)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "At most this many (1–500, default 100)"),
    ),
    responses(
        (status = 200, description = "A page of entries", body = AuditPage),
        (status = 404, description = "Not the caller's business", body = ErrorBody),
        (status = 422, description = "Malformed query", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<JsonResponse<AuditPage>> {
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
    let entries = rows
        .iter()
        .map(|r| AuditEntry {
            id: r.id,
            at: rfc3339(r.at),
            actor: r.actor.clone(),
            business: r.business_id.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
            detail: serde_json::from_str(&r.detail).unwrap_or(Value::Null),
        })
        .collect();
    Ok(JsonResponse(AuditPage { entries, next }))
}
