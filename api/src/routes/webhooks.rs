//! `POST /api/v1/webhooks/elevenlabs`: verify the signature over the raw body, record the event
//! once, resume the waiting run. The work itself happens in the run's next step, so this answers
//! fast. Call recordings (`post_call_audio`) are written to the audio directory when one is
//! configured, and otherwise acknowledged and dropped. A signed webhook whose processing fails
//! answers the error and is kept as a dead letter (`routes::dead_letters`) for replay.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use switchboard_engine::{Delivery, ExternalEvent};
use switchboard_workflows::lead_call::CALL_EVENT;
use switchboard_workflows::providers::voice::CallEvent;
use switchboard_workflows::store::calls;
use tracing::info;

use crate::dead_letters;
use crate::error::{ApiError, ApiResult};
use crate::extract::Body;
use crate::openapi::ErrorBody;
use crate::startup::AppState;

/// Webhook bodies may carry a call's audio (base64 mp3, about 12 minutes fit); larger ones are
/// refused with 413.
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;

fn malformed(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest {
        code: "malformed_webhook",
        message: e.to_string(),
    }
}

/// Handles an ElevenLabs post-call webhook.
#[utoipa::path(
    post, path = "/api/v1/webhooks/elevenlabs", tag = "webhooks", operation_id = "elevenlabs_webhook", security(()),
    params(("ElevenLabs-Signature" = String, Header, description = "`t=<unix secs>,v0=<hex HMAC-SHA256>`")),
    request_body(content = Object, description = "`{type, event_timestamp, data}`: post_call_transcription, call_initiation_failure, post_call_audio or any other type", content_type = "application/json"),
    responses((status = 200, description = "`{status: resumed | stored | duplicate | ignored}`", body = Object), (status = 400, description = "Malformed webhook", body = ErrorBody), (status = 401, description = "Bad or stale signature", body = ErrorBody), (status = 413, description = "Body over 16 MiB", body = ErrorBody), (status = 429, description = "Too many requests from this address; see Retry-After", body = ErrorBody))
)]
pub async fn elevenlabs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(body): Body<BODY_LIMIT>,
) -> ApiResult<Json<Value>> {
    let now = chrono::Utc::now().timestamp();
    state
        .voice
        .verify_webhook(&headers, &body, now)
        .map_err(|e| ApiError::Unauthorized(format!("webhook signature rejected: {e}")))?;
    match process(&state, &body).await {
        Ok(answer) => Ok(Json(answer)),
        Err(e) => {
            // Signed by the provider, so worth keeping: an operator can replay it once fixed.
            let provider = state.voice.name();
            match dead_letters::record(state.engine.db(), provider, &body, &e.to_string()).await {
                Ok(id) => tracing::warn!(dead_letter = %id, error = %e, "webhook dead-lettered"),
                Err(store) => {
                    tracing::error!(error = %e, %store, "webhook failed and could not be kept")
                }
            }
            Err(e)
        }
    }
}

/// Processes a verified webhook body: records the event once and resumes the waiting run, or
/// stores the call's audio. Also what replaying a dead letter runs.
pub(crate) async fn process(state: &AppState, body: &[u8]) -> ApiResult<Value> {
    let voice = &state.voice;
    let event = voice.parse_webhook(body).map_err(malformed)?;
    let call_id = match &event {
        CallEvent::Audio { call_id, audio } => {
            let stored = store_audio(state, call_id, audio).await?;
            return Ok(json!({ "status": if stored { "stored" } else { "ignored" } }));
        }
        CallEvent::Ignored { kind } => {
            return Ok(json!({ "status": "ignored", "type": kind }));
        }
        _ => event.call_id().unwrap_or_default().to_owned(),
    };
    if call_id.is_empty() {
        return Err(malformed("the event names no call"));
    }
    let payload: Value = serde_json::from_slice(body).map_err(malformed)?;
    let deliver = |key: String, dedupe_key: String| {
        state.engine.deliver(ExternalEvent {
            kind: CALL_EVENT.into(),
            key,
            dedupe_key,
            payload: payload.clone(),
        })
    };
    let dedupe = format!("{}:{}:{call_id}", voice.name(), event.kind());
    // A call whose answer was never recorded (a timeout or a crash after sending) is waited on
    // by its call key, which the provider echoes (or, for a call that never connected, names by
    // the number called): record its id and resume that wait too.
    let db = state.engine.db();
    let call_key = match (event.call_key(), event.to_number()) {
        (Some(key), _) => Some(key.to_owned()),
        (None, Some(to_number)) => calls::unanswered_call_to(db, to_number, &call_id).await?,
        (None, None) => None,
    };
    if let Some(call_key) = call_key.as_deref()
        && calls::adopt_conversation(db, call_key, &call_id).await?
    {
        info!(%call_id, call_key, "webhook names a call whose answer was never recorded");
        deliver(call_key.to_owned(), format!("{dedupe}:by-call-key")).await?;
    }
    let delivery = deliver(call_id.clone(), dedupe).await?;
    let status = match &delivery {
        Delivery::Duplicate => "duplicate",
        Delivery::Stored => "stored",
        Delivery::Resumed(_) => "resumed",
    };
    info!(%call_id, kind = event.kind(), status, "voice webhook");
    Ok(json!({ "status": status }))
}

/// Writes a call's audio as `<dir>/<call id>.mp3` when an audio directory is configured.
async fn store_audio(state: &AppState, call_id: &str, audio: &[u8]) -> ApiResult<bool> {
    let Some(dir) = &state.call_audio_dir else {
        return Ok(false);
    };
    let safe = !call_id.is_empty()
        && call_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !safe {
        return Err(malformed(format!("unusable call id {call_id:?}")));
    }
    let path = dir.join(format!("{call_id}.mp3"));
    let write = async {
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::write(&path, audio).await
    };
    write
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("storing call audio")))?;
    info!(%call_id, bytes = audio.len(), path = %path.display(), "call audio stored");
    Ok(true)
}
