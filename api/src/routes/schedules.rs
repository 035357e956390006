//! Cron campaigns: each business' schedules with their next and latest ticks, paused and resumed
//! by hand (the schedules themselves are the business' configuration).

use axum::Json as JsonResponse;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use switchboard_workflows::business::Business;
use switchboard_workflows::{schedules, store};
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::state::AppState;
use crate::tenant::Caller;
use crate::tenant::business as find;
use crate::time::rfc3339;

/// Ticks shown per schedule.
const RECENT_TICKS: i64 = 5;

/// Query of `GET /api/v1/schedules`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only this business' schedules.
    pub business: Option<String>,
}

/// A cron campaign with its next and latest ticks.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleAnswer {
    pub business: String,
    pub name: String,
    /// `sec min hour day-of-month month day-of-week`, in `timezone`.
    pub cron: String,
    /// The business' IANA timezone.
    pub timezone: String,
    /// The tag of the leads' latest scored call it selects.
    pub tag: String,
    pub idle_days: u32,
    /// Leads called a tick, at most.
    pub limit: u32,
    pub paused: bool,
    /// RFC 3339.
    pub next_tick: Option<String>,
    /// The latest ticks, newest first.
    pub recent_ticks: Vec<Tick>,
}

/// One tick of a schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tick {
    /// RFC 3339: the tick's time.
    pub at: String,
    /// RFC 3339: when it fired.
    pub fired_at: String,
    pub runs_started: i64,
}

/// Answer of `GET /api/v1/schedules`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Schedules {
    pub schedules: Vec<ScheduleAnswer>,
}

/// A business' schedules (or only the one called `only`) as the API shows them.
async fn describe(
    state: &AppState,
    business: &Business,
    only: Option<&str>,
) -> ApiResult<Vec<ScheduleAnswer>> {
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
        let recent_ticks = ticks
            .iter()
            .map(|t| Tick {
                at: rfc3339(t.tick_at),
                fired_at: rfc3339(t.fired_at),
                runs_started: t.runs_started,
            })
            .collect();
        described.push(ScheduleAnswer {
            business: business.id.clone(),
            name: s.name.clone(),
            cron: s.cron.clone(),
            timezone: business.timezone.clone(),
            tag: s.tag.clone(),
            idle_days: s.idle_days,
            limit: s.limit,
            paused: paused.contains(&s.name),
            next_tick: schedules::next_tick(business, s, now).map(|t| t.to_rfc3339()),
            recent_ticks,
        });
    }
    Ok(described)
}

/// `GET /api/v1/schedules?business=` → the cron campaigns the caller may see.
#[utoipa::path(
    get, path = "/api/v1/schedules", tag = "schedules", operation_id = "list_schedules",
    params(("business" = Option<String>, Query, description = "Only this business' schedules")),
    responses((status = 200, description = "The cron campaigns", body = Schedules), (status = 404, description = "No such business", body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<JsonResponse<Schedules>> {
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
    Ok(JsonResponse(Schedules { schedules: all }))
}

/// Pauses (`paused`) or resumes schedule `name` of business `id` and answers with it.
async fn set_paused(
    state: &AppState,
    caller: &Caller,
    id: &str,
    name: &str,
    paused: bool,
) -> ApiResult<JsonResponse<ScheduleAnswer>> {
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
    let described = describe(state, &business, Some(name)).await?.pop();
    let schedule = described
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("schedule {name:?} vanished")))?;
    Ok(JsonResponse(schedule))
}

/// `POST /api/v1/businesses/{id}/schedules/{name}/pause` → the schedule, paused: its ticks pass
/// without calling anyone until it is resumed.
#[utoipa::path(
    post, path = "/api/v1/businesses/{id}/schedules/{name}/pause", tag = "schedules", operation_id = "pause_schedule",
    params(("id" = String, Path, description = "Business id", example = "demo"), ("name" = String, Path, description = "Schedule name")),
    responses((status = 200, description = "The schedule, paused", body = ScheduleAnswer), (status = 404, description = "No such business or schedule", body = ErrorBody))
)]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<JsonResponse<ScheduleAnswer>> {
    set_paused(&state, &caller, &id, &name, true).await
}

/// `POST /api/v1/businesses/{id}/schedules/{name}/resume` → the schedule, firing again from its
/// next tick (ticks missed while paused are not made up).
#[utoipa::path(
    post, path = "/api/v1/businesses/{id}/schedules/{name}/resume", tag = "schedules", operation_id = "resume_schedule",
    params(("id" = String, Path, description = "Business id", example = "demo"), ("name" = String, Path, description = "Schedule name")),
    responses((status = 200, description = "The schedule, resumed", body = ScheduleAnswer), (status = 404, description = "No such business or schedule", body = ErrorBody))
)]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<JsonResponse<ScheduleAnswer>> {
    set_paused(&state, &caller, &id, &name, false).await
}
