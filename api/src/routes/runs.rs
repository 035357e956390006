//! `GET /api/v1/runs`, `GET /api/v1/runs/{id}` and `POST /api/v1/runs/{id}/cancel`.

use axum::Json as JsonResponse;
use axum::extract::State;
use serde::Deserialize;
use serde::Serialize;
use serde_json::json;
use switchboard_engine::store::runs::{self, RunFilter};
use switchboard_engine::store::steps;
use switchboard_engine::{RunId, RunStatus};
use switchboard_workflows::store::LeadLabel;
use utoipa::ToSchema;

use crate::answers::{ListedRun, RunDetail, RunLead, RunPage, RunSummary, ScriptRef, StepAttempt};
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::state::AppState;
use crate::tenant::{Caller, run as find};

/// Answer of `GET /api/v1/runs/counts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunCounts {
    pub counts: StatusCounts,
    pub total: i64,
}

/// Runs in each status.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct StatusCounts {
    pub queued: i64,
    pub running: i64,
    pub waiting: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
}

impl StatusCounts {
    fn of(&mut self, status: RunStatus) -> &mut i64 {
        match status {
            RunStatus::Queued => &mut self.queued,
            RunStatus::Running => &mut self.running,
            RunStatus::Waiting => &mut self.waiting,
            RunStatus::Succeeded => &mut self.succeeded,
            RunStatus::Failed => &mut self.failed,
            RunStatus::Cancelled => &mut self.cancelled,
        }
    }
}

/// Query of `GET /api/v1/runs/counts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountsQuery {
    business: Option<String>,
}

/// `GET /api/v1/runs/counts?business=` → `{"counts":{"queued":n,…every status},"total":n}`.
#[utoipa::path(
    get, path = "/api/v1/runs/counts", tag = "runs", operation_id = "count_runs",
    params(("business" = Option<String>, Query, description = "Business id")),
    responses((status = 200, description = "Runs per status", body = RunCounts))
)]
pub async fn counts(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<CountsQuery>,
) -> ApiResult<JsonResponse<RunCounts>> {
    let business = caller.scope(q.business)?;
    let rows = runs::count_by_status(state.engine.db(), business.as_deref()).await?;
    let mut counts = StatusCounts::default();
    let mut total = 0;
    for (status, n) in rows {
        total += n;
        *counts.of(status) += n;
    }
    Ok(JsonResponse(RunCounts { counts, total }))
}

/// Query of `GET /api/v1/runs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    business: Option<String>,
    status: Option<String>,
    lead_id: Option<String>,
    /// The step the run is at (or ended at).
    step: Option<String>,
    outcome: Option<String>,
    /// Created at or after (RFC 3339).
    from: Option<String>,
    /// Created before (RFC 3339).
    to: Option<String>,
    /// Part of the lead's name or phone number.
    q: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Leads a search may match at most (their runs are then listed).
const SEARCH_LEADS: i64 = 500;

/// `GET /api/v1/runs?business=&status=&step=&outcome=&from=&to=&q=&lead_id=&limit=&cursor=` →
/// `{"runs":[…],"next_cursor"}`, newest first.
#[utoipa::path(
    get, path = "/api/v1/runs", tag = "runs", operation_id = "list_runs",
    params(("business" = Option<String>, Query, description = "Business id"), ("status" = Option<RunStatus>, Query, description = "Only runs in this status"), ("step" = Option<String>, Query, description = "Current (or last) step: intake, build_context, route, place_call, await_call, analyze, score or follow_up (422 otherwise)"), ("outcome" = Option<String>, Query, pattern = "^[a-z0-9_]{1,64}$", description = "Outcome (1–64 of a-z, 0-9, _; 422 otherwise), e.g. handed_off"), ("from" = Option<String>, Query, format = DateTime, description = "Created at or after (RFC 3339)"), ("to" = Option<String>, Query, format = DateTime, description = "Created before (RFC 3339)"), ("q" = Option<String>, Query, description = "Part of the lead's name or phone"), ("lead_id" = Option<String>, Query, description = "One lead's runs"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "1 to 200 (default 50)"), ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of runs, newest first", body = RunPage), (status = 422, description = "Invalid filter", body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<JsonResponse<RunPage>> {
    let status = q
        .status
        .as_deref()
        .map(str::parse::<RunStatus>)
        .transpose()
        .map_err(|_| {
            let names: Vec<_> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::invalid(
                "invalid_status",
                "status",
                format!("status must be one of {names:?}"),
            )
        })?;
    let steps = state.engine.registry().step_names();
    if let Some(step) = &q.step
        && !steps.contains(&step.as_str())
    {
        return Err(ApiError::invalid(
            "invalid_step",
            "step",
            format!("step must be one of {steps:?}"),
        ));
    }
    // Outcomes are open (a script names its own), but always 1–64 of a-z, 0-9 and _.
    let outcome_chars = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    if let Some(outcome) = &q.outcome
        && !((1..=64).contains(&outcome.len()) && outcome.bytes().all(outcome_chars))
    {
        return Err(ApiError::invalid(
            "invalid_outcome",
            "outcome",
            "an outcome is 1 to 64 characters of a-z, 0-9 and _ (e.g. handed_off)",
        ));
    }
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid(
            "invalid_limit",
            "limit",
            "limit must be between 1 and 200",
        ));
    }
    if q.cursor
        .as_ref()
        .is_some_and(|c| uuid::Uuid::parse_str(c).is_err())
    {
        return Err(ApiError::invalid(
            "invalid_cursor",
            "cursor",
            "cursor must be a next_cursor from a previous page",
        ));
    }
    let (from, to) = (
        crate::time::parse_time("from", q.from.as_deref())?,
        crate::time::parse_time("to", q.to.as_deref())?,
    );
    let business_id = caller.scope(q.business)?;
    let subject_ids = match q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) => Some(
            switchboard_workflows::store::lead_ids_matching(
                state.engine.db(),
                business_id.as_deref(),
                text,
                SEARCH_LEADS,
            )
            .await?,
        ),
        None => None,
    };
    // A time range is an id range: run ids are time-ordered.
    let upper = to.map(switchboard_engine::ids::id_floor_at);
    let before = match (q.cursor, upper) {
        (Some(c), Some(u)) => Some(c.min(u)),
        (c, u) => c.or(u),
    };
    let filter = RunFilter {
        business_id,
        status,
        subject_id: q.lead_id,
        current_step: q.step,
        outcome: q.outcome,
        subject_ids,
        since: from.map(switchboard_engine::ids::id_floor_at),
        before,
        limit,
    };
    let rows = runs::list(state.engine.db(), &filter).await?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    // Who each run is for, as a person looks for it: the lead's name and phone.
    let mut ids: Vec<String> = rows.iter().map(|r| r.subject_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let labels: std::collections::HashMap<String, LeadLabel> =
        switchboard_workflows::store::lead_labels(state.engine.db(), &ids)
            .await?
            .into_iter()
            .map(|l| (l.id.clone(), l))
            .collect();
    let runs = rows
        .iter()
        .map(|r| ListedRun {
            run: RunSummary::from(r),
            lead: labels.get(&r.subject_id).map(|l| RunLead {
                name: l.name.clone(),
                phone: l.phone.clone(),
            }),
        })
        .collect();
    Ok(JsonResponse(RunPage { runs, next_cursor }))
}

/// `GET /api/v1/runs/{id}` → the run with every step attempt.
#[utoipa::path(
    get, path = "/api/v1/runs/{id}", tag = "runs", operation_id = "get_run",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run with every step attempt (an attempt put off, when a line was busy say, waits until `due_at`), its pinned script and configuration version", body = RunDetail), (status = 404, description = "No such run", body = ErrorBody))
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<RunDetail>> {
    let run = find(&state, &caller, &id).await?;
    let db = state.engine.db();
    let attempts = steps::list_for_run(db, &RunId(run.id.clone())).await?;
    let script = switchboard_workflows::store::scripts::pinned(db, &run.id).await?;
    Ok(JsonResponse(RunDetail {
        run: RunSummary::from(&run),
        script: script.map(|(version, hash)| ScriptRef { version, hash }),
        config_version: switchboard_workflows::store::configs::pinned(db, &run.id).await?,
        steps: attempts.iter().map(StepAttempt::from).collect(),
    }))
}

/// What an operator can do to a run by hand (each is recorded in the audit log).
#[derive(Clone, Copy)]
enum Operation {
    Cancel,
    Retry,
    Resume,
}

/// Does `op` to run `id`, if the caller may reach it, and records it.
async fn operate(
    state: &AppState,
    caller: &Caller,
    id: String,
    op: Operation,
) -> ApiResult<JsonResponse<RunSummary>> {
    find(state, caller, &id).await?;
    let engine = &state.engine;
    let (run, action) = match op {
        Operation::Cancel => (engine.cancel(&RunId(id)).await?, "run.cancelled"),
        Operation::Retry => (engine.retry(&RunId(id)).await?, "run.retried"),
        Operation::Resume => (engine.resume(&RunId(id)).await?, "run.resumed"),
    };
    let business = Some(run.business_id.as_str());
    crate::access::audit(state, caller, business, action, &run.id, json!({})).await?;
    Ok(JsonResponse(RunSummary::from(&run)))
}

/// `POST /api/v1/runs/{id}/cancel` → the cancelled run; 409 if it already finished.
#[utoipa::path(
    post, path = "/api/v1/runs/{id}/cancel", tag = "runs", operation_id = "cancel_run",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The cancelled run", body = RunSummary), (status = 404, description = "No such run", body = ErrorBody), (status = 409, description = "The run has finished", body = ErrorBody))
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<RunSummary>> {
    operate(&state, &caller, id, Operation::Cancel).await
}

/// `POST /api/v1/runs/{id}/retry`: runs a failed run again from the step that failed (`409` if
/// the run is not failed).
#[utoipa::path(
    post, path = "/api/v1/runs/{id}/retry", tag = "runs", operation_id = "retry_run",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run, queued again at the step that failed", body = RunSummary), (status = 404, description = "No such run", body = ErrorBody), (status = 409, description = "The run is not failed", body = ErrorBody))
)]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<RunSummary>> {
    operate(&state, &caller, id, Operation::Retry).await
}

/// `POST /api/v1/runs/{id}/resume`: resumes a waiting run now — a webhook wait ends as if its
/// deadline passed, a timer fires (`409` if the run is not waiting).
#[utoipa::path(
    post, path = "/api/v1/runs/{id}/resume", tag = "runs", operation_id = "resume_run",
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, description = "The run, queued now", body = RunSummary), (status = 404, description = "No such run", body = ErrorBody), (status = 409, description = "The run is not waiting", body = ErrorBody))
)]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<RunSummary>> {
    operate(&state, &caller, id, Operation::Resume).await
}
