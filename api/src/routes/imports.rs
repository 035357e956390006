//! `POST /api/v1/leads/import` (a CSV or JSON-lines file of leads, stored in the background) and
//! `GET /api/v1/imports/{id}` (its progress and report). See `imports`.

use axum::Json as JsonResponse;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use switchboard_engine::ids::now_ms;

use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Path, Query};
use crate::imports::parse::{self, FileError, Format, Mapping};
use crate::imports::{self, ImportAnswer, MAX_ROWS, OnDuplicate};
use crate::state::AppState;
use crate::tenant::Caller;

/// An import that made no progress for this long is taken over by the next upload of its file.
const STALLED_AFTER_MS: i64 = 60_000;

/// Uploads may be this large (about 100,000 rows of a few columns).
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// Query of `POST /api/v1/leads/import`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    business: String,
    format: Option<Format>,
    #[serde(default)]
    on_duplicate: OnDuplicate,
    /// JSON: `{name?, phone?, email?, source?, custom_fields?: {field: column}}`.
    mapping: Option<String>,
}

fn format_of(query: Option<Format>, headers: &HeaderMap) -> ApiResult<Format> {
    if let Some(f) = query {
        return Ok(f);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "text/csv" => Ok(Format::Csv),
        "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines" => {
            Ok(Format::Jsonl)
        }
        other => Err(ApiError::UnsupportedMediaType(format!(
            "send text/csv or application/x-ndjson (or say format=csv|jsonl), not {other:?}"
        ))),
    }
}

/// Imports leads from a file.
#[utoipa::path(
    post, path = "/api/v1/leads/import", tag = "leads", operation_id = "import_leads",
    params(
        ("business" = String, Query, description = "The business the leads are for", example = "demo"),
        ("format" = Option<Format>, Query, description = "`csv` (first row the header) or `jsonl`; default from Content-Type"),
        ("on_duplicate" = Option<OnDuplicate>, Query, description = "A phone number the business has already: `skip` (default) or `update`"),
        ("mapping" = Option<String>, Query, description = "JSON `{name?, phone?, email?, source?, custom_fields?: {field: column}}`: the column of each field (default: the field's own name, any case)"),
    ),
    request_body(content = String, description = "The file: CSV or JSON lines, at most 50,000 rows", content_type = "text/csv"),
    responses(
        (status = 202, description = "Accepted: the import, `processing`; follow `Location` (`GET /api/v1/imports/{id}`)", body = ImportAnswer),
        (status = 200, description = "The same file with the same options was imported already: that import (`Idempotent-Replayed: true`)", body = ImportAnswer),
        (status = 404, description = "No such business (or not the caller's)", body = ErrorBody),
        (status = 422, description = "`invalid_mapping` (also: the mapping names a column the file does not have), `unreadable_file`, `empty_file` or `too_many_rows`", body = ErrorBody),
    )
)]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<ImportQuery>,
    Body(body): Body<BODY_LIMIT>,
) -> ApiResult<Response> {
    let business = crate::tenant::business(&state, &caller, &q.business).await?;
    let format = format_of(q.format, &headers)?;
    let mapping_text = q.mapping.as_deref().unwrap_or("{}").trim();
    let mapping: Mapping = serde_json::from_str(mapping_text)
        .map_err(|e| ApiError::invalid("invalid_mapping", "mapping", e.to_string()))?;
    let rows = parse::rows(format, &body, &business, &mapping).map_err(|e| match e {
        FileError::Unreadable(e) => ApiError::invalid("unreadable_file", "body", e),
        FileError::UnknownColumn(e) => ApiError::invalid("invalid_mapping", "mapping", e),
    })?;
    if rows.is_empty() {
        return Err(ApiError::invalid(
            "empty_file",
            "body",
            "the file has no rows",
        ));
    }
    if rows.len() > MAX_ROWS {
        return Err(ApiError::invalid(
            "too_many_rows",
            "body",
            format!("{} rows; an import holds at most {MAX_ROWS}", rows.len()),
        ));
    }
    let mut hash = Sha256::new();
    for part in [
        business.id.as_bytes(),
        format.as_str().as_bytes(),
        q.on_duplicate.as_str().as_bytes(),
        mapping_text.as_bytes(),
    ] {
        hash.update(part);
        hash.update([0]);
    }
    hash.update(&body);
    let id = format!("imp_{}", &hex::encode(hash.finalize())[..24]);
    let db = state.engine.db();
    let fresh = crate::store::imports::insert(
        db,
        &id,
        &business.id,
        format.as_str(),
        q.on_duplicate.as_str(),
        rows.len() as i64,
    )
    .await?;
    // The same upload whose import stalled (its process died mid-way) is run again: rows stored
    // the first time are duplicates now, so nothing is stored twice.
    let stalled = !fresh
        && crate::store::imports::take_over_stalled(db, &id, now_ms() - STALLED_AFTER_MS).await?;
    // Read before the import starts, so a fresh one always answers as accepted, not done.
    let stored = crate::store::imports::find(db, &id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("import {id} vanished")))?;
    if fresh || stalled {
        tokio::spawn(imports::run(
            state.engine.clone(),
            id.clone(),
            business,
            rows,
            q.on_duplicate,
        ));
    }
    let status = if fresh {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let mut answer = (status, JsonResponse(ImportAnswer::from(&stored))).into_response();
    let location = HeaderValue::from_str(&format!("/api/v1/imports/{id}"))
        .map_err(|e| ApiError::Internal(e.into()))?;
    answer.headers_mut().insert(header::LOCATION, location);
    if !fresh {
        answer
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(answer)
}

/// An import's progress and report.
#[utoipa::path(
    get, path = "/api/v1/imports/{id}", tag = "leads", operation_id = "get_import",
    params(("id" = String, Path, description = "Import id (`imp_…`)")),
    responses(
        (status = 200, description = "The import", body = ImportAnswer),
        (status = 404, description = "No such import (or not the caller's)", body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<ImportAnswer>> {
    let found = crate::store::imports::find(state.engine.db(), &id)
        .await?
        .filter(|i| caller.can_access(&i.business_id))
        .ok_or_else(|| ApiError::NotFound(format!("import {id} not found")))?;
    Ok(JsonResponse(ImportAnswer::from(&found)))
}
