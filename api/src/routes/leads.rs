//! `POST /api/v1/leads`: validate a lead, store it and start its `lead_call` run, exactly once per
//! idempotency key; `GET /api/v1/leads/{id}`: the lead with its runs and calls; `DELETE` erases
//! it with everything derived from it.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use switchboard_engine::store::runs::RunFilter;
use switchboard_workflows::business::{Business, LocalTime, timezone};
use switchboard_workflows::lead::{Lead, NewLead};
use switchboard_workflows::lead_call;
use switchboard_workflows::phone::Phone;
use switchboard_workflows::store::{self, Idempotency};

use super::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::openapi::ErrorBody;
use crate::startup::AppState;
use crate::tenant::Caller;

fn lead_json(lead: &Lead) -> Value {
    json!({
        "id": lead.id,
        "business": lead.business_id,
        "name": lead.name,
        "phone": lead.phone,
        "email": lead.email,
        "source": lead.source,
        "custom_fields": lead.custom_fields,
        "consent": lead.consent,
        "timezone": lead.timezone,
        "created_at": rfc3339(lead.created_at),
    })
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

/// The 422 for a business that does not exist (or is not the caller's).
fn unknown_business(id: &str) -> ApiError {
    ApiError::invalid(
        "unknown_business",
        "business",
        format!("business {id:?} does not exist"),
    )
}

/// The 422 for a number on the business' do-not-call list.
pub(crate) fn on_the_list(business: &str) -> ApiError {
    ApiError::invalid(
        "do_not_call",
        "phone",
        format!("the number is on {business}'s do-not-call list: it is never called"),
    )
}

/// Validates everything about the lead before anything is stored.
async fn validate(state: &AppState, new: &NewLead) -> ApiResult<Phone> {
    let business = store::business(state.engine.db(), &new.business)
        .await?
        .ok_or_else(|| unknown_business(&new.business))?;
    check(&business, new)
}

/// Checks a lead of `business`: name, E.164 phone, email, source and custom fields; the error
/// names the field.
pub(crate) fn check(business: &Business, new: &NewLead) -> ApiResult<Phone> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid(
            "invalid_name",
            "name",
            "name must be 1 to 200 characters",
        ));
    }
    let phone = Phone::parse(&new.phone)
        .map_err(|e| ApiError::invalid("invalid_phone", "phone", e.to_string()))?;
    if let Some(email) = &new.email {
        let valid = email.len() <= 254
            && email
                .split_once('@')
                .is_some_and(|(u, d)| !u.is_empty() && d.contains('.'));
        if !valid {
            return Err(ApiError::invalid(
                "invalid_email",
                "email",
                format!("{email:?} is not an email address"),
            ));
        }
    }
    if new.source.as_ref().is_some_and(|s| s.len() > 200) {
        return Err(ApiError::invalid(
            "invalid_source",
            "source",
            "source must be at most 200 characters",
        ));
    }
    business
        .check_custom_fields(&new.custom_fields)
        .map_err(|m| ApiError::invalid("invalid_custom_field", "custom_fields", m))?;
    if let Some(consent) = &new.consent {
        consent
            .check(chrono::Utc::now())
            .map_err(|(field, m)| ApiError::invalid("invalid_consent", field, m))?;
    }
    if let Some(zone) = &new.timezone {
        timezone(zone.trim()).map_err(|m| ApiError::invalid("invalid_timezone", "timezone", m))?;
    }
    Ok(phone)
}

fn created(lead: &Lead, run_status: &str, replayed: bool) -> Response {
    let body =
        json!({ "lead": lead_json(lead), "run": { "id": lead.run_id, "status": run_status } });
    let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// How long an `Idempotency-Key` is remembered: a day, as payment APIs do.
const IDEMPOTENCY_KEY_TTL_MS: i64 = 24 * 3600 * 1000;

/// The answer to a request whose key a lead was created with: that lead again if the request is
/// the same (`fingerprint`), else `422 idempotency_key_reused` (nothing created).
async fn replay(
    state: &AppState,
    (lead, used_with): (Lead, Option<String>),
    fingerprint: &str,
) -> ApiResult<Response> {
    if used_with.is_some_and(|f| f != fingerprint) {
        return Err(ApiError::invalid(
            "idempotency_key_reused",
            "Idempotency-Key",
            "this Idempotency-Key came with a different request in the last 24 hours: send the \
             same request to get its answer again, or a new key for a new lead",
        ));
    }
    let run = switchboard_engine::store::runs::find(
        state.engine.db(),
        &switchboard_engine::RunId(lead.run_id.clone()),
    )
    .await?;
    Ok(created(
        &lead,
        run.as_ref().map(|r| r.status.as_str()).unwrap_or("queued"),
        true,
    ))
}

/// `POST /api/v1/leads` → `201 {"lead":{…},"run":{"id","status"}}`.
#[utoipa::path(
    post, path = "/api/v1/leads", tag = "leads", operation_id = "create_lead",
    params(("Idempotency-Key" = Option<String>, Header, description = "The same key again returns the same lead and run (answered with `Idempotent-Replayed: true`)")),
    request_body(content = Object, description = "`{business, name, phone (E.164), email?, source?, custom_fields?, consent?: {source, at (RFC 3339), text?, reference?}, timezone? (IANA, e.g. America/Los_Angeles: the person's own; else derived from the phone number's region), sim?}`", content_type = "application/json"),
    responses((status = 201, description = "`{lead, run: {id, status}}`", body = Object), (status = 400, description = "Malformed JSON", body = ErrorBody), (status = 422, description = "Invalid lead (the field is named in `details`); `do_not_call`: the number is on the business' do-not-call list; `idempotency_key_reused`: the `Idempotency-Key` came with a different request in the last 24 hours (nothing created)", body = ErrorBody))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(new): Json<NewLead>,
) -> ApiResult<Response> {
    if !caller.can_access(&new.business) {
        return Err(unknown_business(&new.business));
    }
    let key = idempotency_key(&headers)?;
    let phone = validate(&state, &new).await?;
    if store::do_not_call::listed(state.engine.db(), &new.business, phone.as_str()).await? {
        return Err(on_the_list(&new.business));
    }
    let engine = &state.engine;
    let fingerprint = new.fingerprint();
    let mut tx = engine.db().begin().await?;
    if let Some(key) = &key
        && let Some(existing) = store::lead_by_idempotency_key(&mut tx, &new.business, key).await?
    {
        // A key older than a day means a new request: free it (the one extra write happens
        // only then, not on every keyed request).
        let day_ago = switchboard_engine::ids::now_ms() - IDEMPOTENCY_KEY_TTL_MS;
        if existing.0.created_at >= day_ago {
            tx.rollback().await?;
            return replay(&state, existing, &fingerprint).await;
        }
        store::release_idempotency_key(&mut tx, &existing.0.id).await?;
    }
    let idempotency = key.as_deref().map(|key| Idempotency {
        key,
        fingerprint: Some(&fingerprint),
    });
    let started = start(engine, &mut tx, &new, phone, idempotency).await;
    let lead = match started {
        Ok(lead) => lead,
        Err(e) => {
            // A concurrent request with the same key won the race: answer with its lead.
            tx.rollback().await?;
            if let Some(key) = &key {
                let mut tx = engine.db().begin().await?;
                let existing = store::lead_by_idempotency_key(&mut tx, &new.business, key).await?;
                tx.rollback().await?;
                if let Some(existing) = existing {
                    return replay(&state, existing, &fingerprint).await;
                }
            }
            return Err(e);
        }
    };
    tx.commit().await?;
    engine.notify_changed();
    Ok(created(&lead, "queued", false))
}

/// Stores a checked lead and starts its run in `tx` (the caller commits, then notifies the
/// engine); `idempotency` is its idempotency key (unique in the business) and the fingerprint
/// of the request it came with.
pub(crate) async fn start(
    engine: &switchboard_engine::Engine,
    tx: &mut switchboard_engine::store::Tx,
    new: &NewLead,
    phone: Phone,
    idempotency: Option<Idempotency<'_>>,
) -> ApiResult<Lead> {
    let lead_id = switchboard_engine::ids::new_id();
    let run_id = lead_call::start_run(engine, tx, &new.business, &lead_id).await?;
    let lead = Lead {
        id: lead_id,
        business_id: new.business.clone(),
        name: new.name.trim().to_owned(),
        phone,
        email: new.email.clone(),
        source: new.source.clone(),
        custom_fields: new.custom_fields.clone(),
        sim: new.sim.clone(),
        consent: new.consent.clone(),
        timezone: new.timezone.as_deref().map(|z| z.trim().to_owned()),
        run_id: run_id.0.clone(),
        created_at: switchboard_engine::ids::now_ms(),
    };
    store::insert_lead(tx, &lead, idempotency).await?;
    Ok(lead)
}

/// `GET /api/v1/leads/{id}` → `{"lead", "runs":[…newest first], "calls":[…oldest first]}`.
#[utoipa::path(
    get, path = "/api/v1/leads/{id}", tag = "leads", operation_id = "get_lead",
    params(("id" = String, Path, description = "Lead id")),
    responses((status = 200, description = "`{lead (with its consent and timezone, if any), do_not_call: {reason: listed | opted_out, note, added_at} | null, local_time: {zones: [IANA], region: US-CA | GB | null, from: lead | phone_number | business} (where calling hours are checked), runs, calls}`", body = Object), (status = 404, description = "No such lead", body = ErrorBody))
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
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
    let do_not_call = listed
        .map(|e| json!({ "reason": e.reason, "note": e.note, "added_at": rfc3339(e.added_at) }));
    Ok(axum::Json(json!({
        "lead": lead_json(&lead),
        "do_not_call": do_not_call,
        "local_time": local_time,
        "runs": runs.iter().map(super::runs::run_json).collect::<Vec<_>>(),
        "calls": calls,
    })))
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
