//! Dead letters (operators only): `GET /api/v1/dead-letters` lists the signed webhooks whose
//! processing failed, `GET /api/v1/dead-letters/{id}` shows one with its body, and
//! `POST /api/v1/dead-letters/{id}/replay` processes it again (once its cause is fixed).

use axum::Json as JsonResponse;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_workflows::providers::voice::VoiceKind;

use super::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::openapi::ErrorBody;
use crate::startup::AppState;
use crate::store::dead_letters::{self, DeadLetter};
use crate::tenant::Caller;

/// Query of `GET /api/v1/dead-letters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Include those replayed already.
    #[serde(default)]
    all: bool,
    limit: Option<u32>,
}

fn letter_json(d: &DeadLetter, with_body: bool) -> Value {
    let mut v = json!({
        "id": d.id,
        "provider": d.provider,
        "error": d.error,
        "failures": d.failures,
        "received_at": rfc3339(d.received_at),
        "last_failed_at": rfc3339(d.last_failed_at),
        "replayed_at": d.replayed_at.map(rfc3339),
        "bytes": d.bytes,
    });
    if with_body {
        v["body"] = serde_json::from_str(&d.body).unwrap_or_else(|_| json!(d.body));
    }
    v
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<DeadLetter> {
    caller.require_operator()?;
    dead_letters::find(state.engine.db(), id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("dead letter {id} not found")))
}

/// Lists dead letters, newest first.
#[utoipa::path(
    get, path = "/api/v1/dead-letters", tag = "webhooks", operation_id = "list_dead_letters",
    params(
        ("all" = Option<bool>, Query, description = "Include those replayed already"),
        ("limit" = Option<u32>, Query, description = "At most this many (1–500, default 100)"),
    ),
    responses(
        (status = 200, description = "`{dead_letters: [{id, provider, error, failures, received_at, last_failed_at, replayed_at, bytes}]}`", body = Object),
        (status = 403, description = "Not an operator", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<JsonResponse<Value>> {
    caller.require_operator()?;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let letters = dead_letters::list(state.engine.db(), q.all, limit.into()).await?;
    let items: Vec<Value> = letters.iter().map(|d| letter_json(d, false)).collect();
    Ok(JsonResponse(json!({ "dead_letters": items })))
}

/// One dead letter with its body.
#[utoipa::path(
    get, path = "/api/v1/dead-letters/{id}", tag = "webhooks", operation_id = "get_dead_letter",
    params(("id" = String, Path, description = "Dead letter id (`dl_…`)")),
    responses(
        (status = 200, description = "The dead letter with its `body`", body = Object),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No such dead letter", body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<Value>> {
    let letter = find(&state, &caller, &id).await?;
    Ok(JsonResponse(letter_json(&letter, true)))
}

/// Processes a dead letter again, as if it had just arrived (its signature was checked when it
/// did). Replaying twice is harmless: events are recorded once.
#[utoipa::path(
    post, path = "/api/v1/dead-letters/{id}/replay", tag = "webhooks", operation_id = "replay_dead_letter",
    params(("id" = String, Path, description = "Dead letter id (`dl_…`)")),
    responses(
        (status = 200, description = "`{dead_letter, result}`: processed; `result` is what the webhook would have answered", body = Object),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No such dead letter", body = ErrorBody),
        (status = 409, description = "Replayed already", body = ErrorBody),
        (status = 422, description = "`replay_failed`: processing failed again; `details.error` says why", body = ErrorBody),
    )
)]
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<Value>> {
    let letter = find(&state, &caller, &id).await?;
    if letter.replayed_at.is_some() {
        return Err(ApiError::Conflict(format!(
            "dead letter {id} was replayed already"
        )));
    }
    let db = state.engine.db();
    let kind = VoiceKind::parse(&letter.provider).unwrap_or_default();
    let outcome = crate::provider_webhooks::process(&state, kind, letter.body.as_bytes()).await;
    let detail = json!({ "ok": outcome.is_ok() });
    crate::access::audit(&state, &caller, None, "dead_letter.replayed", &id, detail).await?;
    match outcome {
        Ok(result) => {
            dead_letters::replayed(db, &id).await?;
            let letter = find(&state, &caller, &id).await?;
            Ok(JsonResponse(
                json!({ "dead_letter": letter_json(&letter, false), "result": result }),
            ))
        }
        Err(e) => {
            dead_letters::failed_again(db, &id, &e.to_string()).await?;
            Err(ApiError::Invalid {
                code: "replay_failed",
                message: format!("processing dead letter {id} failed again: {e}"),
                details: json!({ "error": e.to_string() }),
            })
        }
    }
}
