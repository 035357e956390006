//! Dead letters (operators only): `GET /api/v1/dead-letters` lists the signed webhooks whose
//! processing failed, `GET /api/v1/dead-letters/{id}` shows one with its body, and
//! `POST /api/v1/dead-letters/{id}/replay` processes it again (once its cause is fixed).

use axum::Json as JsonResponse;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_workflows::providers::voice::VoiceKind;

use crate::answers::parse_json;
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::provider_webhooks::WebhookAnswer;
use crate::state::AppState;
use crate::store::dead_letters::{self, DeadLetter};
use crate::tenant::Caller;
use crate::time::rfc3339;

/// Query of `GET /api/v1/dead-letters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Include those replayed already.
    #[serde(default)]
    all: bool,
    limit: Option<u32>,
}

/// A signed webhook whose processing failed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetterAnswer {
    /// `dl_…`.
    pub id: String,
    /// `elevenlabs` or `retell`.
    pub provider: String,
    /// Why it failed, the last time.
    pub error: String,
    /// Times it failed.
    pub failures: i64,
    /// RFC 3339.
    pub received_at: String,
    pub last_failed_at: String,
    pub replayed_at: Option<String>,
    /// The body's size.
    pub bytes: i64,
    /// The body as received (JSON; text that is not JSON as a string), on `GET …/{id}` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

impl DeadLetterAnswer {
    fn of(d: &DeadLetter, with_body: bool) -> DeadLetterAnswer {
        DeadLetterAnswer {
            id: d.id.clone(),
            provider: d.provider.clone(),
            error: d.error.clone(),
            failures: d.failures,
            received_at: rfc3339(d.received_at),
            last_failed_at: rfc3339(d.last_failed_at),
            replayed_at: d.replayed_at.map(rfc3339),
            bytes: d.bytes,
            body: with_body.then(|| parse_json(&d.body)),
        }
    }
}

/// Answer of `GET /api/v1/dead-letters`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetters {
    /// Newest first, without their bodies.
    pub dead_letters: Vec<DeadLetterAnswer>,
}

/// Answer of `POST /api/v1/dead-letters/{id}/replay`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Replayed {
    pub dead_letter: DeadLetterAnswer,
    /// What the webhook would have answered.
    pub result: WebhookAnswer,
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
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "At most this many (1–500, default 100)"),
    ),
    responses(
        (status = 200, description = "The dead letters", body = DeadLetters),
        (status = 403, description = "Not an operator", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<JsonResponse<DeadLetters>> {
    caller.require_operator()?;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    let letters = dead_letters::list(state.engine.db(), q.all, limit.into()).await?;
    let dead_letters = letters
        .iter()
        .map(|d| DeadLetterAnswer::of(d, false))
        .collect();
    Ok(JsonResponse(DeadLetters { dead_letters }))
}

/// One dead letter with its body.
#[utoipa::path(
    get, path = "/api/v1/dead-letters/{id}", tag = "webhooks", operation_id = "get_dead_letter",
    params(("id" = String, Path, description = "Dead letter id (`dl_…`)")),
    responses(
        (status = 200, description = "The dead letter with its `body`", body = DeadLetterAnswer),
        (status = 403, description = "Not an operator", body = ErrorBody),
        (status = 404, description = "No such dead letter", body = ErrorBody),
    )
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<DeadLetterAnswer>> {
    let letter = find(&state, &caller, &id).await?;
    Ok(JsonResponse(DeadLetterAnswer::of(&letter, true)))
}

/// Processes a dead letter again, as if it had just arrived (its signature was checked when it
/// did). Replaying twice is harmless: events are recorded once.
#[utoipa::path(
    post, path = "/api/v1/dead-letters/{id}/replay", tag = "webhooks", operation_id = "replay_dead_letter",
    params(("id" = String, Path, description = "Dead letter id (`dl_…`)")),
    responses(
        (status = 200, description = "Processed", body = Replayed),
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
) -> ApiResult<JsonResponse<Replayed>> {
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
            Ok(JsonResponse(Replayed {
                dead_letter: DeadLetterAnswer::of(&letter, false),
                result,
            }))
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
