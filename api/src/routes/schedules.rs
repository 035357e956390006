//! Cron campaigns: each business' schedules with their next and latest ticks, paused and resumed
//! by hand (the schedules themselves are the business' configuration).

use axum::Json as JsonResponse;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_workflows::business::Business;
use switchboard_workflows::{schedules, store};

use super::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::openapi::ErrorBody;
use crate::startup::AppState;
use crate::tenant::Caller;
use crate::tenant::business as find;

/// Ticks shown per schedule.
const RECENT_TICKS: i64 = 5;

/// Query of `GET /api/v1/schedules`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this business' schedules.
    pub business: Option<String>,
}

/// A business' schedules (or only the one called `only`) as the API shows them.
async fn describe(
    state: &AppState,
    business: &Business,
    only: Option<&str>,
) -> ApiResult<Vec<Value>> {
    let db = state.engine.db();
    let paused = store::schedules::paused(db, &business.id).await?;
    let now = chrono::Utc::now();
    let mut described = Vec::new();
    let chosen = business
        .schedules
        .iter()
        .filter(|s| only.is_none_or(|name| s.name == name));
    for s in chosen {
        let ticks = store::schedules::recent_ticks(db, &business.id, &s.name, RECENT_TICKS).await?;
        let recent: Vec<Value> = ticks
            .iter()
            .map(|t| {
                json!({
                    "at": rfc3339(t.tick_at),
                    "fired_at": rfc3339(t.fired_at),
                    "runs_started": t.runs_started,
                })
            })
            .collect();
        described.push(json!({
            "business": business.id,
            "name": s.name,
            "cron": s.cron,
            "timezone": business.timezone,
            "tag": s.tag,
            "idle_days": s.idle_days,
            "limit": s.limit,
            "paused": paused.contains(&s.name),
            "next_tick": schedules::next_tick(business, s, now).map(|t| t.to_rfc3339()),
            "recent_ticks": recent,
        }));
    }
    Ok(described)
}

/// `GET /api/v1/schedules?business=` → the cron campaigns the caller may see.
#[utoipa::path(
    get, path = "/api/v1/schedules", tag = "schedules", operation_id = "list_schedules",
    params(("business" = Option<String>, Query, description = "Only this business' schedules")),
    responses((status = 200, description = "`{schedules: [{business, name, cron, timezone, tag, idle_days, limit, paused, next_tick, recent_ticks: [{at, fired_at, runs_started}]}]}`", body = Object), (status = 404, description = "No such business", body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<JsonResponse<Value>> {
    let businesses = match &q.business {
        Some(id) => vec![find(&state, &caller, id).await?],
        None => store::businesses(state.engine.db())
            .await?
            .into_iter()
            .filter(|b| caller.can_access(&b.id))
            .collect(),
    };
    let mut all = Vec::new();
    for b in &businesses {
        all.extend(describe(&state, b, None).await?);
    }
    Ok(JsonResponse(json!({ "schedules": all })))
}

/// Pauses (`paused`) or resumes schedule `name` of business `id` and answers with it.
async fn set_paused(
    state: &AppState,
    caller: &Caller,
    id: &str,
    name: &str,
    paused: bool,
) -> ApiResult<JsonResponse<Value>> {
    let business = find(state, caller, id).await?;
    if !business.schedules.iter().any(|s| s.name == name) {
        return Err(ApiError::NotFound(format!(
            "business {id:?} has no schedule {name:?}"
        )));
    }
    if store::schedules::set_paused(state.engine.db(), id, name, paused).await? {
        let action = if paused {
            "schedule.paused"
        } else {
            "schedule.resumed"
        };
        crate::access::audit(state, caller, Some(id), action, name, json!({})).await?;
    }
    let mut described = describe(state, &business, Some(name)).await?;
    Ok(JsonResponse(described.pop().unwrap_or_default()))
}

/// `POST /api/v1/businesses/{id}/schedules/{name}/pause` → the schedule, paused: its ticks pass
/// without calling anyone until it is resumed.
#[utoipa::path(
    post, path = "/api/v1/businesses/{id}/schedules/{name}/pause", tag = "schedules", operation_id = "pause_schedule",
    params(("id" = String, Path, description = "Business id", example = "demo"), ("name" = String, Path, description = "Schedule name")),
    responses((status = 200, description = "The schedule, paused", body = Object), (status = 404, description = "No such business or schedule", body = ErrorBody))
)]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<JsonResponse<Value>> {
    set_paused(&state, &caller, &id, &name, true).await
}

/// `POST /api/v1/businesses/{id}/schedules/{name}/resume` → the schedule, firing again from its
/// next tick (ticks missed while paused are not made up).
#[utoipa::path(
    post, path = "/api/v1/businesses/{id}/schedules/{name}/resume", tag = "schedules", operation_id = "resume_schedule",
    params(("id" = String, Path, description = "Business id", example = "demo"), ("name" = String, Path, description = "Schedule name")),
    responses((status = 200, description = "The schedule, resumed", body = Object), (status = 404, description = "No such business or schedule", body = ErrorBody))
)]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<JsonResponse<Value>> {
    set_paused(&state, &caller, &id, &name, false).await
}
