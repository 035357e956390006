//! `POST /api/v1/webhooks/elevenlabs` and `POST /api/v1/webhooks/retell`: verify the provider's
//! signature over the raw body, then record the event once and resume the waiting run
//! (`provider_webhooks::process`). The work itself happens in the run's next step, so this
//! answers fast. Call recordings (`post_call_audio`) are written to the audio directory when one is
//! configured, and otherwise acknowledged and dropped; a recording too large to hold in memory
//! (a call of a quarter of an hour or more) is spilled to disk as it arrives, or, without an
//! audio directory, acknowledged unread (the provider counts a refused delivery against the
//! webhook). A signed webhook whose processing fails answers the error and is kept as a dead
//! letter (`routes::dead_letters`) for replay.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use switchboard_workflows::providers::voice::{BodyCheck, VoiceKind};
use tracing::info;

use crate::call_audio;
use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::provider_webhooks::{WebhookAnswer, WebhookStatus, audio_error, process};
use crate::state::AppState;
use crate::store::dead_letters;

/// Webhook bodies up to this size are held in memory (a call's audio in base64 mp3: about 12
/// minutes fit); a larger recording is spilled to disk, and any other larger body refused (413).
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The largest recording spilled to disk (base64: about 17 hours of mp3 at 128 kbit/s).
pub const SPILL_LIMIT: u64 = 1 << 30;

/// An ElevenLabs webhook as documented here (the body is read by the provider's own module).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ElevenLabsWebhook {
    /// `post_call_transcription`, `call_initiation_failure`, `post_call_audio` or another type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds.
    pub event_timestamp: i64,
    /// The event's payload.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A Retell webhook as documented here (the body is read by the provider's own module).
#[derive(Serialize, utoipa::ToSchema)]
pub struct RetellWebhook {
    /// `call_ended` or `call_analyzed` (either ends the call), or another event.
    pub event: String,
    /// The call.
    #[schema(value_type = Object)]
    pub call: Value,
}

/// Handles an ElevenLabs post-call webhook.
#[utoipa::path(
    post, path = "/api/v1/webhooks/elevenlabs", tag = "webhooks", operation_id = "elevenlabs_webhook", security(()),
    params(("ElevenLabs-Signature" = String, Header, description = "`t=<unix secs>,v0=<hex HMAC-SHA256>`")),
    request_body(content = ElevenLabsWebhook, description = "The event", content_type = "application/json"),
    responses((status = 200, description = "Processed", body = WebhookAnswer), (status = 400, description = "Malformed webhook", body = ErrorBody), (status = 401, description = "Bad or stale signature", body = ErrorBody), (status = 413, description = "Body over 16 MiB that is not a call recording (a recording is spilled to disk, up to 1 GiB)", body = ErrorBody), (status = 429, description = "Too many requests from this address; see Retry-After", body = ErrorBody))
)]
pub async fn elevenlabs(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Json<WebhookAnswer>> {
    receive(&state, VoiceKind::Elevenlabs, &headers, body).await
}

/// Handles a Retell webhook.
#[utoipa::path(
    post, path = "/api/v1/webhooks/retell", tag = "webhooks", operation_id = "retell_webhook", security(()),
    params(("x-retell-signature" = String, Header, description = "`v=<unix ms>,d=<hex HMAC-SHA256 of body + ms, keyed with the API key>`")),
    request_body(content = RetellWebhook, description = "The event", content_type = "application/json"),
    responses((status = 200, description = "Processed", body = WebhookAnswer), (status = 400, description = "Malformed webhook", body = ErrorBody), (status = 401, description = "Bad or stale signature", body = ErrorBody), (status = 413, description = "Body over 16 MiB", body = ErrorBody), (status = 429, description = "Too many requests from this address; see Retry-After", body = ErrorBody))
)]
pub async fn retell(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Json<WebhookAnswer>> {
    receive(&state, VoiceKind::Retell, &headers, body).await
}

/// Reads a webhook of `kind`'s provider, checking its signature piece by piece, and processes
/// it; a signed body whose processing fails is kept as a dead letter.
async fn receive(
    state: &AppState,
    kind: VoiceKind,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> ApiResult<Json<WebhookAnswer>> {
    let now = chrono::Utc::now().timestamp();
    let voice = &state.voices.get(kind).provider;
    let unauthorized = |e| ApiError::Unauthorized(format!("webhook signature rejected: {e}"));
    let mut check = voice.webhook_check(headers, now).map_err(unauthorized)?;
    let mut stream = body.into_data_stream();
    let mut held = Vec::new();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(unreadable)?;
        check.update(&piece);
        if held.len() + piece.len() > BODY_LIMIT {
            held.extend_from_slice(&piece);
            return large(state, check, held, stream).await.map(Json);
        }
        held.extend_from_slice(&piece);
    }
    check.finish().map_err(unauthorized)?;
    // Not dead-lettered: neither database could keep it, and a replay would fail the same way.
    crate::storable::check_json(&held)?;
    match process(state, kind, &held).await {
        Ok(answer) => Ok(Json(answer)),
        Err(e) => {
            // Signed by the provider, so worth keeping: an operator can replay it once fixed.
            let provider = kind.as_str();
            match dead_letters::record(state.engine.db(), provider, &held, &e.to_string()).await {
                Ok(id) => tracing::warn!(dead_letter = %id, error = %e, "webhook dead-lettered"),
                Err(store) => {
                    tracing::error!(error = %e, %store, "webhook failed and could not be kept")
                }
            }
            Err(e)
        }
    }
}

/// Reads and drops the rest of a body answered without it (at most [`SPILL_LIMIT`] bytes): a
/// connection closed with bytes still unread is reset, and the reset can reach the sender before
/// the answer does, so it would never learn it (a provider would send the webhook again).
async fn drain(stream: &mut axum::body::BodyDataStream) {
    let mut read = 0u64;
    while let Some(Ok(piece)) = stream.next().await {
        read += piece.len() as u64;
        if read > SPILL_LIMIT {
            return;
        }
    }
}

fn unreadable(e: axum::Error) -> ApiError {
    ApiError::BadRequest {
        code: "unreadable_body",
        message: format!("the body could not be read: {e}"),
    }
}

/// A body over [`BODY_LIMIT`] whose first `held` bytes (already fed to `check`) are read: a call
/// recording is spilled to the audio directory and stored, or acknowledged unread without one;
/// anything else is refused.
async fn large(
    state: &AppState,
    mut check: Box<dyn BodyCheck>,
    held: Vec<u8>,
    mut stream: axum::body::BodyDataStream,
) -> ApiResult<WebhookAnswer> {
    if !call_audio::announces_audio(&held) {
        drain(&mut stream).await;
        return Err(ApiError::TooLarge { limit: BODY_LIMIT });
    }
    let Some(dir) = &state.call_audio_dir else {
        info!("a large call recording acknowledged unread: no audio directory is configured");
        drain(&mut stream).await;
        return Ok(WebhookStatus::Ignored.into());
    };
    let failed = |e: std::io::Error| {
        ApiError::Internal(anyhow::Error::new(e).context("spilling call audio"))
    };
    let mut spill = call_audio::Spill::create(dir).await.map_err(failed)?;
    spill.write(&held).await.map_err(failed)?;
    drop(held);
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(unreadable)?;
        if spill.written() + piece.len() as u64 > SPILL_LIMIT {
            return Err(ApiError::TooLarge {
                limit: SPILL_LIMIT as usize,
            });
        }
        check.update(&piece);
        spill.write(&piece).await.map_err(failed)?;
    }
    check
        .finish()
        .map_err(|e| ApiError::Unauthorized(format!("webhook signature rejected: {e}")))?;
    let bytes = spill.written();
    let (call_id, path) = spill.store(dir).await.map_err(audio_error)?;
    info!(%call_id, bytes, path = %path.display(), "large call audio stored");
    Ok(WebhookStatus::Stored.into())
}
