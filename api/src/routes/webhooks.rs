//! `POST /api/v1/webhooks/elevenlabs`: verify the signature over the raw body, record the event
//! once, resume the waiting run. The work itself happens in the run's next step, so this answers fast.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use switchboard_engine::{Delivery, ExternalEvent};
use switchboard_workflows::lead_call::CALL_EVENT;
use switchboard_workflows::providers::elevenlabs::{self, WebhookEvent};
use tracing::info;

use crate::error::{ApiError, ApiResult};
use crate::extract::Body;
use crate::startup::AppState;

/// Webhook bodies may carry audio; larger ones are refused.
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Handles an ElevenLabs post-call webhook.
pub async fn elevenlabs(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(body): Body<BODY_LIMIT>,
) -> ApiResult<Json<Value>> {
    let signature = headers
        .get(elevenlabs::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::Unauthorized(format!("missing {} header", elevenlabs::SIGNATURE_HEADER))
        })?;
    let now = chrono::Utc::now().timestamp();
    elevenlabs::verify(&state.webhook_secret, signature, &body, now)
        .map_err(|e| ApiError::Unauthorized(format!("webhook signature rejected: {e}")))?;
    let event = elevenlabs::parse_webhook(&body).map_err(|e| ApiError::BadRequest {
        code: "malformed_webhook",
        message: e.to_string(),
    })?;
    let (WebhookEvent::Transcription(_) | WebhookEvent::InitiationFailure { .. }) = &event else {
        return Ok(Json(json!({ "status": "ignored", "type": event.kind() })));
    };
    let conversation_id = event.conversation_id().unwrap_or_default().to_owned();
    let payload: Value = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest {
        code: "malformed_webhook",
        message: e.to_string(),
    })?;
    let delivery = state
        .engine
        .deliver(ExternalEvent {
            kind: CALL_EVENT.into(),
            key: conversation_id.clone(),
            dedupe_key: format!("elevenlabs:{}:{conversation_id}", event.kind()),
            payload,
        })
        .await?;
    let status = match &delivery {
        Delivery::Duplicate => "duplicate",
        Delivery::Stored => "stored",
        Delivery::Resumed(_) => "resumed",
    };
    info!(%conversation_id, kind = event.kind(), status, "elevenlabs webhook");
    Ok(Json(json!({ "status": status })))
}
