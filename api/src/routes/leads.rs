//! `POST /api/v1/leads`: the lead taken in through `intake` (checked, stored with its
//! `lead_call` run, exactly once per idempotency key); `GET /api/v1/leads/{id}`: the lead with
//! its runs and calls; `DELETE` erases it with everything derived from it.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use switchboard_engine::RunStatus;
use switchboard_engine::store::runs::RunFilter;
use switchboard_workflows::business::LocalTime;
use switchboard_workflows::intake::{self, IntakeError};
use switchboard_workflows::lead::{Consent, Lead, NewLead};
use switchboard_workflows::scripting::host_api::HistoryEntry;
use switchboard_workflows::store;
use utoipa::ToSchema;

use crate::answers::{Listing, RunSummary};
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::state::AppState;
use crate::tenant::Caller;
use crate::time::rfc3339;

/// A lead as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadAnswer {
    pub id: String,
    pub business: String,
    pub name: String,
    /// E.164.
    pub phone: String,
    pub email: Option<String>,
    pub source: Option<String>,
    #[schema(value_type = std::collections::HashMap<String, serde_json::Value>)]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    pub consent: Option<Consent>,
    /// The person's IANA timezone, as given with the lead.
    pub timezone: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&Lead> for LeadAnswer {
    fn from(lead: &Lead) -> LeadAnswer {
        LeadAnswer {
            id: lead.id.clone(),
            business: lead.business_id.clone(),
            name: lead.name.clone(),
            phone: lead.phone.as_str().to_owned(),
            email: lead.email.clone(),
            source: lead.source.clone(),
            custom_fields: lead.custom_fields.clone(),
            consent: lead.consent.clone(),
            timezone: lead.timezone.clone(),
            created_at: rfc3339(lead.created_at),
        }
    }
}

/// Answer of `POST /api/v1/leads`: the lead and the run it started.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedLead {
    pub lead: LeadAnswer,
    pub run: StartedRun,
}

/// The run a new lead started.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartedRun {
    pub id: String,
    /// `queued` when new; its status now when the request is replayed.
    pub status: RunStatus,
}

/// Answer of `GET /api/v1/leads/{id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeadDetail {
    pub lead: LeadAnswer,
    /// Whether the number is on the business' do-not-call list, and why.
    pub do_not_call: Option<Listing>,
    /// Where calling hours are checked.
    pub local_time: Option<LocalTime>,
    /// Its runs, newest first.
    pub runs: Vec<RunSummary>,
    /// Its calls, newest first.
    pub calls: Vec<HistoryEntry>,
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = raw.to_str().ok().map(str::trim).unwrap_or_default();
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::invalid(
            "invalid_idempotency_key",
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

fn created(lead: &Lead, run_status: RunStatus, replayed: bool) -> Response {
    let body = CreatedLead {
        lead: LeadAnswer::from(lead),
        run: StartedRun {
            id: lead.run_id.clone(),
            status: run_status,
        },
    };
    let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// `POST /api/v1/leads` → `201 {"lead":{…},"run":{"id","status"}}`.
#[utoipa::path(
    post, path = "/api/v1/leads", tag = "leads", operation_id = "create_lead",
    params(("Idempotency-Key" = Option<String>, Header, description = "The same key again returns the same lead and run (answered with `Idempotent-Replayed: true`)")),
    request_body(content = NewLead, description = "The lead; `timezone` (IANA, e.g. America/Los_Angeles) is the person's own, else derived from the phone number's region", content_type = "application/json"),
    responses((status = 201, description = "The lead and its run", body = CreatedLead), (status = 400, description = "Malformed JSON", body = ErrorBody), (status = 422, description = "Invalid lead (the field is named in `details`); `do_not_call`: the number is on the business' do-not-call list; `idempotency_key_reused`: the `Idempotency-Key` came with a different request in the last 24 hours (nothing created)", body = ErrorBody))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(new): Json<NewLead>,
) -> ApiResult<Response> {
    if !caller.can_access(&new.business) {
        return Err(IntakeError::UnknownBusiness(new.business).into());
    }
    let key = idempotency_key(&headers)?;
    let accepted = intake::accept_lead(&state.engine, new, key.as_deref()).await?;
    Ok(created(
        &accepted.lead,
        accepted.run_status,
        accepted.replayed,
    ))
}

/// `GET /api/v1/leads/{id}` → `{"lead", "runs":[…newest first], "calls":[…oldest first]}`.
#[utoipa::path(
    get, path = "/api/v1/leads/{id}", tag = "leads", operation_id = "get_lead",
    params(("id" = String, Path, description = "Lead id")),
    responses((status = 200, description = "The lead with its runs and calls", body = LeadDetail), (status = 404, description = "No such lead", body = ErrorBody))
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<LeadDetail>> {
    let db = state.engine.db();
    let lead = store::lead(db, &id)
        .await?
        .filter(|l| caller.can_access(&l.business_id))
        .ok_or_else(|| ApiError::NotFound(format!("lead {id} not found")))?;
    let filter = RunFilter {
        subject_id: Some(lead.id.clone()),
        limit: 100,
        ..RunFilter::default()
    };
    let (runs, calls, listed, business) = futures::try_join!(
        switchboard_engine::store::runs::list(db, &filter),
        store::lead_history(db, &lead.id),
        store::do_not_call::find(db, &lead.business_id, lead.phone.as_str()),
        store::business(db, &lead.business_id),
    )?;
    let local_time = business.map(|b| LocalTime::of(&lead, &b));
    Ok(axum::Json(LeadDetail {
        lead: LeadAnswer::from(&lead),
        do_not_call: listed.as_ref().map(Listing::from),
        local_time,
        runs: runs.iter().map(RunSummary::from).collect(),
        calls,
    }))
}

/// `DELETE /api/v1/leads/{id}`: erases the lead and everything derived from it (right to
/// erasure): its runs with their attempts, waits, events and changes, its calls with their
/// transcripts, analyses and scores. `409` while one of its runs has not finished.
#[utoipa::path(
    delete, path = "/api/v1/leads/{id}", tag = "leads", operation_id = "erase_lead",
    params(("id" = String, Path, description = "Lead id")),
    responses(
        (status = 204, description = "Erased"),
        (status = 404, description = "No such lead", body = ErrorBody),
        (status = 409, description = "A run of the lead has not finished: cancel it first", body = ErrorBody),
    )
)]
pub async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let engine = &state.engine;
    let lead = store::lead(engine.db(), &id)
        .await?
        .filter(|l| caller.can_access(&l.business_id))
        .ok_or_else(|| ApiError::NotFound(format!("lead {id} not found")))?;
    let audio_dir = state.call_audio_dir.as_deref();
    if !switchboard_workflows::retention::erase(engine, &id, audio_dir).await? {
        return Err(ApiError::NotFound(format!("lead {id} not found")));
    }
    let business = Some(lead.business_id.as_str());
    crate::access::audit(&state, &caller, business, "lead.erased", &id, json!({})).await?;
    Ok(StatusCode::NO_CONTENT)
}
