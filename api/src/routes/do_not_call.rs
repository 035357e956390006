//! Each business' do-not-call list: numbers added (one or in bulk), checked, listed and removed.
//! Every change is audited. A number on the list is refused at intake, rejected by imports,
//! skipped by cron campaigns and checked again before every dial.

use axum::Json as JsonResponse;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use switchboard_workflows::phone::Phone;
use switchboard_workflows::store::do_not_call::{self, Reason};
use utoipa::ToSchema;

use crate::answers::DoNotCallEntry;
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use crate::tenant::Caller;
use crate::tenant::business as find;

/// Numbers one request may add, at most.
pub const MAX_PHONES: usize = 10_000;
/// Room for that many numbers in a request body.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Entries a page lists by default, and at most.
const PAGE: i64 = 100;
const MAX_PAGE: i64 = 1_000;

/// Body of `POST /api/v1/businesses/{id}/do-not-call`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    /// E.164 numbers, 1 to 10,000 (other formats are read as the phone field of a lead is).
    #[schema(example = json!(["+14155552671"]), min_items = 1, max_items = 10_000)]
    pub phones: Vec<String>,
    /// Why, for the record.
    #[serde(default)]
    pub note: Option<String>,
}

/// Answer of `POST /api/v1/businesses/{id}/do-not-call`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Added {
    /// Numbers newly listed.
    pub added: u64,
    /// Numbers that were listed already.
    pub already: u64,
}

/// Answer of `GET /api/v1/businesses/{id}/do-not-call/{phone}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Checked {
    /// The number, E.164.
    pub phone: String,
    pub listed: bool,
    pub entry: Option<DoNotCallEntry>,
}

/// A page of `GET /api/v1/businesses/{id}/do-not-call`, by number.
#[derive(Debug, Serialize, ToSchema)]
pub struct Entries {
    pub entries: Vec<DoNotCallEntry>,
    /// The `after` of the next page; `null` on the last.
    pub next: Option<String>,
}

/// Answer of `DELETE /api/v1/businesses/{id}/do-not-call/{phone}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Removed {
    /// Always `true`.
    pub removed: bool,
}

/// Query of the list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The last number of the previous page.
    pub after: Option<String>,
    /// Entries on this page (default 100, at most 1,000).
    pub limit: Option<i64>,
}

fn parse_phone(raw: &str, field: &str) -> ApiResult<Phone> {
    Phone::parse(raw).map_err(|e| ApiError::invalid("invalid_phone", field, e.to_string()))
}

/// `POST /api/v1/businesses/{id}/do-not-call` → `{added, already}`: every number is on the
/// list afterwards; one unreadable number refuses the whole request (nothing added).
#[utoipa::path(
    post, path = "/api/v1/businesses/{id}/do-not-call", tag = "do-not-call", operation_id = "add_do_not_call",
    params(("id" = String, Path, description = "Business id", example = "demo")),
    request_body(content = AddBody, description = "The numbers", content_type = "application/json"),
    responses((status = 200, description = "Every number is listed", body = Added), (status = 404, description = "No such business", body = ErrorBody), (status = 422, description = "A number that is not a phone number (`details.field` says which, e.g. `phones[3]`), none or too many", body = ErrorBody))
)]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<AddBody, BODY_LIMIT>,
) -> ApiResult<JsonResponse<Added>> {
    let business = find(&state, &caller, &id).await?;
    if body.phones.is_empty() || body.phones.len() > MAX_PHONES {
        return Err(ApiError::invalid(
            "invalid_phones",
            "phones",
            format!("phones must list 1 to {MAX_PHONES} numbers"),
        ));
    }
    if body.note.as_ref().is_some_and(|n| n.chars().count() > 500) {
        return Err(ApiError::invalid(
            "invalid_note",
            "note",
            "note must be at most 500 characters",
        ));
    }
    let phones = body
        .phones
        .iter()
        .enumerate()
        .map(|(i, raw)| parse_phone(raw, &format!("phones[{i}]")))
        .collect::<ApiResult<Vec<_>>>()?;
    let mut tx = state.engine.db().begin().await?;
    let added = do_not_call::add(
        &mut tx,
        &business.id,
        &phones,
        Reason::Listed,
        body.note.as_deref(),
    )
    .await?;
    tx.commit().await?;
    let already = phones.len() as u64 - added;
    let detail = json!({ "added": added, "already": already, "note": body.note });
    let target = match phones.as_slice() {
        [one] => one.as_str().to_owned(),
        many => format!("{} numbers", many.len()),
    };
    crate::access::audit(
        &state,
        &caller,
        Some(&business.id),
        "do_not_call.added",
        &target,
        detail,
    )
    .await?;
    Ok(JsonResponse(Added { added, already }))
}

/// `GET /api/v1/businesses/{id}/do-not-call/{phone}` → `{phone, listed, entry}`.
#[utoipa::path(
    get, path = "/api/v1/businesses/{id}/do-not-call/{phone}", tag = "do-not-call", operation_id = "check_do_not_call",
    params(("id" = String, Path, description = "Business id", example = "demo"), ("phone" = String, Path, description = "The number, E.164", example = "+14155552671")),
    responses((status = 200, description = "Whether the number is listed", body = Checked), (status = 404, description = "No such business", body = ErrorBody), (status = 422, description = "Not a phone number", body = ErrorBody))
)]
pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, phone)): Path<(String, String)>,
) -> ApiResult<JsonResponse<Checked>> {
    let business = find(&state, &caller, &id).await?;
    let phone = parse_phone(&phone, "phone")?;
    let entry = do_not_call::find(state.engine.db(), &business.id, phone.as_str()).await?;
    Ok(JsonResponse(Checked {
        phone: phone.as_str().to_owned(),
        listed: entry.is_some(),
        entry: entry.as_ref().map(DoNotCallEntry::from),
    }))
}

/// `GET /api/v1/businesses/{id}/do-not-call?after&limit` → `{entries, next}` by number.
#[utoipa::path(
    get, path = "/api/v1/businesses/{id}/do-not-call", tag = "do-not-call", operation_id = "list_do_not_call",
    params(("id" = String, Path, description = "Business id", example = "demo"), ("after" = Option<String>, Query, description = "The `next` of the previous page"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Entries on this page: 1 to 1,000, default 100")),
    responses((status = 200, description = "A page of the list", body = Entries), (status = 404, description = "No such business", body = ErrorBody), (status = 422, description = "A limit out of range", body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<JsonResponse<Entries>> {
    let business = find(&state, &caller, &id).await?;
    let limit = q.limit.unwrap_or(PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(
            "invalid_limit",
            "limit",
            "limit must be 1 to 1000",
        ));
    }
    let entries =
        do_not_call::list(state.engine.db(), &business.id, q.after.as_deref(), limit).await?;
    let next = (entries.len() as i64 == limit).then(|| entries.last().map(|e| e.phone.clone()));
    Ok(JsonResponse(Entries {
        entries: entries.iter().map(DoNotCallEntry::from).collect(),
        next: next.flatten(),
    }))
}

/// `DELETE /api/v1/businesses/{id}/do-not-call/{phone}` → `{removed: true}`; the number may be
/// called again.
#[utoipa::path(
    delete, path = "/api/v1/businesses/{id}/do-not-call/{phone}", tag = "do-not-call", operation_id = "remove_do_not_call",
    params(("id" = String, Path, description = "Business id", example = "demo"), ("phone" = String, Path, description = "The number, E.164", example = "+14155552671")),
    responses((status = 200, description = "Removed: the number may be called again", body = Removed), (status = 404, description = "No such business, or the number is not on its list", body = ErrorBody), (status = 422, description = "Not a phone number", body = ErrorBody))
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, phone)): Path<(String, String)>,
) -> ApiResult<JsonResponse<Removed>> {
    let business = find(&state, &caller, &id).await?;
    let phone = parse_phone(&phone, "phone")?;
    let mut tx = state.engine.db().begin().await?;
    if !do_not_call::remove(&mut tx, &business.id, &phone).await? {
        return Err(ApiError::NotFound(format!(
            "{} is not on {}'s do-not-call list",
            phone.as_str(),
            business.id
        )));
    }
    tx.commit().await?;
    crate::access::audit(
        &state,
        &caller,
        Some(&business.id),
        "do_not_call.removed",
        phone.as_str(),
        json!({}),
    )
    .await?;
    Ok(JsonResponse(Removed { removed: true }))
}
