//! CSV exports: `GET /api/v1/exports/leads` and `GET /api/v1/exports/runs`, for a business (a
//! business' key: its own) and a time range, one row per lead or run, at most [`MAX_ROWS`].

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use switchboard_engine::store::runs::{self, RunFilter};

use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::state::AppState;
use crate::tenant::Caller;
use crate::time::{parse_time, rfc3339};

/// Rows an export holds at most.
pub const MAX_ROWS: usize = 100_000;

/// Rows read per query.
const PAGE: i64 = 1_000;

/// Query of both exports.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    business: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `[from, to)` in unix ms (default: everything until now).
fn range(q: &ExportQuery) -> ApiResult<(i64, i64)> {
    let now = switchboard_engine::ids::now_ms();
    Ok((
        parse_time("from", q.from.as_deref())?.unwrap_or(0),
        parse_time("to", q.to.as_deref())?.unwrap_or(now + 1),
    ))
}

fn csv_response(name: &str, writer: csv::Writer<Vec<u8>>) -> ApiResult<Response> {
    let body = writer
        .into_inner()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("writing CSV: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        body,
    )
        .into_response())
}

fn write(w: &mut csv::Writer<Vec<u8>>, record: &[&str]) -> ApiResult<()> {
    w.write_record(record)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("writing CSV: {e}")))
}

/// The leads created in the range, as CSV.
#[utoipa::path(
    get, path = "/api/v1/exports/leads", tag = "leads", operation_id = "export_leads",
    params(
        ("business" = Option<String>, Query, description = "Business id (a business' key: its own)"),
        ("from" = Option<String>, Query, format = DateTime, description = "Created at or after (RFC 3339)"),
        ("to" = Option<String>, Query, format = DateTime, description = "Created before (RFC 3339)"),
    ),
    responses(
        (status = 200, description = "CSV: `id,business,name,phone,email,source,created_at,run_id,custom_fields,consent,timezone,do_not_call` (custom fields and consent as JSON; do_not_call: listed or opted_out when the number is on the business' list)", content_type = "text/csv", body = String),
        (status = 404, description = "Not the caller's business", body = ErrorBody),
    )
)]
pub async fn leads(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    let business = caller.scope(q.business.clone())?;
    let range = range(&q)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let columns = [
        "id",
        "business",
        "name",
        "phone",
        "email",
        "source",
        "created_at",
        "run_id",
        "custom_fields",
        "consent",
        "timezone",
        "do_not_call",
    ];
    write(&mut w, &columns)?;
    let (mut after, mut rows) = (None::<String>, 0);
    while rows < MAX_ROWS {
        let page = switchboard_workflows::store::leads_created(
            state.engine.db(),
            business.as_deref(),
            range,
            after.as_deref(),
            PAGE,
        )
        .await?;
        let listed = match (page.first(), page.last()) {
            (Some(first), Some(last)) => {
                switchboard_workflows::store::do_not_call::reasons_of_leads(
                    state.engine.db(),
                    business.as_deref(),
                    (&first.id, &last.id),
                )
                .await?
            }
            _ => Default::default(),
        };
        for lead in &page {
            let created = rfc3339(lead.created_at);
            let fields = serde_json::to_string(&lead.custom_fields).unwrap_or_default();
            let consent = lead
                .consent
                .as_ref()
                .and_then(|c| serde_json::to_string(c).ok())
                .unwrap_or_default();
            write(
                &mut w,
                &[
                    &lead.id,
                    &lead.business_id,
                    &lead.name,
                    lead.phone.as_str(),
                    lead.email.as_deref().unwrap_or(""),
                    lead.source.as_deref().unwrap_or(""),
                    &created,
                    &lead.run_id,
                    &fields,
                    &consent,
                    lead.timezone.as_deref().unwrap_or(""),
                    listed.get(&lead.id).map_or("", String::as_str),
                ],
            )?;
        }
        rows += page.len();
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = Some(last.id.clone()),
            _ => break,
        }
    }
    csv_response("leads", w)
}

/// The runs created in the range, as CSV.
#[utoipa::path(
    get, path = "/api/v1/exports/runs", tag = "runs", operation_id = "export_runs",
    params(
        ("business" = Option<String>, Query, description = "Business id (a business' key: its own)"),
        ("from" = Option<String>, Query, format = DateTime, description = "Created at or after (RFC 3339)"),
        ("to" = Option<String>, Query, format = DateTime, description = "Created before (RFC 3339)"),
    ),
    responses(
        (status = 200, description = "CSV: `id,business,lead_id,status,outcome,current_step,created_at,updated_at`, newest first", content_type = "text/csv", body = String),
        (status = 404, description = "Not the caller's business", body = ErrorBody),
    )
)]
pub async fn runs(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    let business = caller.scope(q.business.clone())?;
    let (from, to) = range(&q)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let columns = [
        "id",
        "business",
        "lead_id",
        "status",
        "outcome",
        "current_step",
        "created_at",
        "updated_at",
    ];
    write(&mut w, &columns)?;
    let mut filter = RunFilter {
        business_id: business,
        since: Some(switchboard_engine::ids::id_floor_at(from)),
        before: Some(switchboard_engine::ids::id_floor_at(to)),
        limit: PAGE,
        ..RunFilter::default()
    };
    let mut rows = 0;
    while rows < MAX_ROWS {
        let page = runs::list(state.engine.db(), &filter).await?;
        for r in &page {
            let (created, updated) = (rfc3339(r.created_at), rfc3339(r.updated_at));
            write(
                &mut w,
                &[
                    &r.id,
                    &r.business_id,
                    &r.subject_id,
                    r.status.as_str(),
                    r.outcome.as_deref().unwrap_or(""),
                    r.current_step.as_deref().unwrap_or(""),
                    &created,
                    &updated,
                ],
            )?;
        }
        rows += page.len();
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => filter.before = Some(last.id.clone()),
            _ => break,
        }
    }
    csv_response("runs", w)
}
