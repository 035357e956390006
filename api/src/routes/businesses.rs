//! Businesses: their configuration and the script version in use.

use axum::Json as JsonResponse;
use axum::extract::State;
use serde_json::{Value, json};
use switchboard_workflows::store;

use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::openapi::ErrorBody;
use crate::startup::AppState;
use crate::tenant::{Caller, business as find};

/// `GET /api/v1/businesses` → the businesses the caller may reach.
#[utoipa::path(
    get, path = "/api/v1/businesses", tag = "businesses", operation_id = "list_businesses",
    responses((status = 200, description = "`{businesses}`", body = Object))
)]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<JsonResponse<Value>> {
    let all = store::businesses(state.engine.db()).await?;
    let items: Vec<Value> = all
        .iter()
        .filter(|b| caller.can_access(&b.id))
        .map(|b| {
            json!({
                "id": b.id,
                "name": b.name,
                "industry": b.industry,
                "timezone": b.timezone,
            })
        })
        .collect();
    Ok(JsonResponse(json!({ "businesses": items })))
}

/// `GET /api/v1/businesses/{id}` → its configuration and active script version.
#[utoipa::path(
    get, path = "/api/v1/businesses/{id}", tag = "businesses", operation_id = "get_business",
    params(("id" = String, Path, description = "Business id", example = "demo")),
    responses((status = 200, description = "The business' configuration and active script version", body = Object), (status = 404, description = "No such business", body = ErrorBody))
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<Value>> {
    let business = find(&state, &caller, &id).await?;
    let active = store::scripts::active(state.engine.db(), &id).await?;
    let mut v = serde_json::to_value(&business).map_err(|e| ApiError::Internal(e.into()))?;
    v["script"] = match active {
        Some(s) => json!({ "version": s.version, "hash": s.hash }),
        None => Value::Null,
    };
    Ok(JsonResponse(v))
}

/// Query of `GET /api/v1/businesses/{id}/usage`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/businesses/{id}/usage?from=&to=` → the business' metered calls in the range.
#[utoipa::path(
    get, path = "/api/v1/businesses/{id}/usage", tag = "businesses", operation_id = "business_usage",
    params(
        ("id" = String, Path, description = "Business id", example = "demo"),
        ("from" = Option<String>, Query, description = "From (RFC 3339; default 30 days ago)"),
        ("to" = Option<String>, Query, description = "To, exclusive (RFC 3339; default now)"),
    ),
    responses(
        (status = 200, description = "`{business, from, to, calls, connected_calls, billed_seconds, credits}`: calls that ended in the range; one credit per started call minute (2:13 → 3)", body = Object),
        (status = 404, description = "No such business", body = ErrorBody),
        (status = 422, description = "Invalid time", body = ErrorBody),
    )
)]
pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    crate::extract::Query(q): crate::extract::Query<UsageQuery>,
) -> ApiResult<JsonResponse<Value>> {
    find(&state, &caller, &id).await?;
    let now = switchboard_engine::ids::now_ms();
    let to = super::parse_time("to", q.to.as_deref())?.unwrap_or(now + 1);
    let from = super::parse_time("from", q.from.as_deref())?.unwrap_or(now - 30 * 86_400_000);
    let usage = store::calls::usage(state.engine.db(), &id, from, to).await?;
    Ok(JsonResponse(json!({
        "business": id,
        "from": super::rfc3339(from),
        "to": super::rfc3339(to),
        "calls": usage.calls,
        "connected_calls": usage.connected_calls,
        "billed_seconds": usage.billed_seconds,
        "credits": usage.credits,
    })))
}
