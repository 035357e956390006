//! Policy backtests: `POST /api/v1/businesses/{id}/script/backtest` starts one (a candidate
//! script replayed over the business' recorded decisions, off the request path);
//! `GET /api/v1/backtests/{id}` its progress and, once done, its report.

use std::collections::BTreeSet;

use axum::Json as JsonResponse;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use switchboard_workflows::backtest::jobs::{self, StartError, Status};
use switchboard_workflows::backtest::{DEFAULT_DAYS, DEFAULT_LIMIT, Hook, MAX_LIMIT, Request};

use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult, SCRIPT_BODY_LIMIT, invalid_script};
use crate::extract::{Json, Path};
use crate::state::AppState;
use crate::tenant::Caller;
use crate::tenant::business as find;

/// A backtest as asked for.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BacktestBody {
    /// The candidate `policy.rhai`.
    pub source: String,
    /// Decisions taken from this moment (RFC 3339; default: 30 days before `to`).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub from: Option<DateTime<Utc>>,
    /// … until before this one (default: now).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub to: Option<DateTime<Utc>>,
    /// The hooks to replay (default: all five).
    #[serde(default)]
    pub hooks: Option<BTreeSet<Hook>>,
    /// The most recent decisions replayed, at most (default 10,000; at most 100,000).
    #[serde(default)]
    pub limit: Option<u32>,
}

impl BacktestBody {
    /// What to replay, with the defaults filled in, at `now`.
    fn request(&self, now: DateTime<Utc>) -> ApiResult<Request> {
        let to = self.to.unwrap_or(now);
        let from = match self.from {
            Some(from) => from,
            None => to
                .checked_sub_signed(chrono::Duration::days(DEFAULT_DAYS))
                .ok_or_else(|| {
                    ApiError::invalid("invalid_range", "to", format!("to ({to}) is too early"))
                })?,
        };
        if from >= to {
            return Err(ApiError::invalid(
                "invalid_range",
                "from",
                format!("from ({from}) must be before to ({to})"),
            ));
        }
        let hooks = self.hooks.clone().unwrap_or_else(|| Hook::ALL.into());
        if hooks.is_empty() {
            return Err(ApiError::invalid(
                "invalid_hooks",
                "hooks",
                "name at least one hook (or leave hooks out for all)",
            ));
        }
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                "invalid_limit",
                "limit",
                format!("limit must be 1–{MAX_LIMIT}, not {limit}"),
            ));
        }
        Ok(Request {
            from,
            to,
            hooks,
            limit,
        })
    }
}

/// `POST /api/v1/businesses/{id}/script/backtest` → 202 with the backtest, `running`.
#[utoipa::path(
    post, path = "/api/v1/businesses/{id}/script/backtest", tag = "scripts", operation_id = "backtest_script",
    params(("id" = String, Path, description = "Business id", example = "demo")),
    request_body(content = BacktestBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Started: follow `Location` (`GET /api/v1/backtests/{id}`) for its progress and report", body = Status),
        (status = 404, description = "No such business (or not the caller's)", body = ErrorBody),
        (status = 409, description = "A backtest of this business is still running", body = ErrorBody),
        (status = 422, description = "`invalid_script` (errors and failed tests, as a new version would be refused), `invalid_range`, `invalid_hooks` or `invalid_limit`", body = ErrorBody),
    )
)]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<BacktestBody, SCRIPT_BODY_LIMIT>,
) -> ApiResult<Response> {
    let business = find(&state, &caller, &id).await?;
    let request = body.request(state.policy.now())?;
    let db = state.engine.db().clone();
    let started = jobs::start(&state.policy, db, business, &body.source, request)
        .await
        .map_err(|e| match e {
            StartError::Invalid { errors, validation } => {
                invalid_script(errors, validation.as_deref())
            }
            StartError::Running { id: running } => ApiError::Conflict(format!(
                "backtest {running} of business {id:?} is still running: wait for it \
                 (GET /api/v1/backtests/{running})"
            )),
            StartError::Store(e) => e.into(),
        })?;
    let detail = json!({ "backtest": started.id, "candidate_hash": started.candidate_hash });
    crate::access::audit(&state, &caller, Some(&id), "script.backtest", &id, detail).await?;
    let location = HeaderValue::from_str(&format!("/api/v1/backtests/{}", started.id))
        .map_err(|e| ApiError::Internal(e.into()))?;
    let mut answer = (StatusCode::ACCEPTED, JsonResponse(started)).into_response();
    answer.headers_mut().insert(header::LOCATION, location);
    Ok(answer)
}

/// `GET /api/v1/backtests/{id}` → the backtest's progress and, once done, its report.
#[utoipa::path(
    get, path = "/api/v1/backtests/{id}", tag = "scripts", operation_id = "get_backtest",
    params(("id" = String, Path, description = "Backtest id (`bt_…`)")),
    responses(
        (status = 200, description = "The backtest: `running` (with progress), `done` (with the report), `failed` (with the error) or `interrupted` (its process stopped: start it again)", body = Status),
        (status = 404, description = "No such backtest (or not the caller's)", body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<Status>> {
    jobs::status(state.engine.db(), &id)
        .await?
        .filter(|s| caller.can_access(&s.business))
        .map(JsonResponse)
        .ok_or_else(|| ApiError::NotFound(format!("backtest {id} not found")))
}
