//! What a verified provider webhook does, and the answer it gives: its call event delivered
//! through `switchboard_workflows::call_events`, a recording kept in the audio directory when
//! one is configured. The webhook routes and dead-letter replay both call `process`.

use serde::Serialize;
use switchboard_engine::Delivery;
use switchboard_workflows::call_events::{self, CallEventError, Received};
use switchboard_workflows::providers::voice::VoiceKind;
use tracing::info;

use crate::call_audio;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// What a webhook answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookAnswer {
    pub status: WebhookStatus,
    /// An ignored event's type.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// What became of a webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    /// The event was recorded and the run waiting on it resumed.
    Resumed,
    /// The event (or a recording) was recorded; no run waited on it.
    Stored,
    /// Seen before: nothing changed.
    Duplicate,
    /// An event the pipeline has no use for, or a recording with nowhere to keep it.
    Ignored,
}

impl From<WebhookStatus> for WebhookAnswer {
    fn from(status: WebhookStatus) -> WebhookAnswer {
        WebhookAnswer { status, kind: None }
    }
}

/// The 400 for a body that is not an event of the provider's.
pub(crate) fn malformed(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest {
        code: "malformed_webhook",
        message: e.to_string(),
    }
}

/// A recording that could not be kept.
pub(crate) fn audio_error(e: call_audio::AudioError) -> ApiError {
    match e {
        call_audio::AudioError::Malformed(message) => malformed(message),
        e @ call_audio::AudioError::Io(_) => ApiError::Internal(anyhow::Error::new(e)),
    }
}

/// Processes a verified webhook body of `kind`'s provider: records the event once and resumes
/// the waiting run, or stores the call's audio; `{status}` as the webhook answers it.
pub(crate) async fn process(
    state: &AppState,
    kind: VoiceKind,
    body: &[u8],
) -> ApiResult<WebhookAnswer> {
    let voice = &state.voices.get(kind).provider;
    let received = call_events::receive(&state.engine, voice.as_ref(), body)
        .await
        .map_err(|e| match e {
            CallEventError::Malformed(m) => malformed(m),
            CallEventError::Store(e) => e.into(),
        })?;
    Ok(match received {
        Received::Delivered(delivery) => match delivery {
            Delivery::Duplicate => WebhookStatus::Duplicate,
            Delivery::Stored => WebhookStatus::Stored,
            Delivery::Resumed(_) => WebhookStatus::Resumed,
        }
        .into(),
        Received::Audio { call_id, audio } => {
            let stored = store_audio(state, &call_id, &audio).await?;
            if stored {
                WebhookStatus::Stored
            } else {
                WebhookStatus::Ignored
            }
            .into()
        }
        Received::Ignored { kind } => WebhookAnswer {
            status: WebhookStatus::Ignored,
            kind: Some(kind),
        },
    })
}

/// Writes a call's audio as `<dir>/<call id>.mp3` when an audio directory is configured.
async fn store_audio(state: &AppState, call_id: &str, audio: &[u8]) -> ApiResult<bool> {
    let Some(dir) = &state.call_audio_dir else {
        return Ok(false);
    };
    let path = call_audio::store(dir, call_id, audio)
        .await
        .map_err(audio_error)?;
    info!(%call_id, bytes = audio.len(), path = %path.display(), "call audio stored");
    Ok(true)
}
