//! `POST /api/v1/webhooks/elevenlabs/personalize`: ElevenLabs asks, as an inbound call reaches an
//! agent, what the agent should know and say. Authenticated by a shared header secret (compared
//! in constant time); answers from a few indexed reads, in milliseconds.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use switchboard_workflows::inbound;
use switchboard_workflows::providers::elevenlabs::{
    AgentOverride, ConfigOverride, PERSONALIZATION_SECRET_HEADER, PERSONALIZATION_TYPE,
    PersonalizationRequest, PersonalizationResponse, PromptOverride, TtsOverride,
};

use crate::error::ErrorBody;
use crate::error::{ApiError, ApiResult};
use crate::extract;
use crate::state::AppState;

/// Answers a personalisation request.
#[utoipa::path(
    post, path = "/api/v1/webhooks/elevenlabs/personalize", tag = "webhooks", operation_id = "personalize_inbound_call", security(()),
    params(("X-Switchboard-Secret" = String, Header, description = "The configured personalisation secret")),
    request_body(content = PersonalizationRequest, description = "The inbound call", content_type = "application/json"),
    responses((status = 200, description = "What the agent knows and says (`type`: `conversation_initiation_client_data`)", body = PersonalizationResponse), (status = 401, description = "Missing or wrong secret", body = ErrorBody), (status = 404, description = "Unknown agent, or personalisation not configured", body = ErrorBody), (status = 429, description = "Too many requests from this address; see Retry-After", body = ErrorBody))
)]
pub async fn personalize(
    State(state): State<AppState>,
    headers: HeaderMap,
    extract::Json(req): extract::Json<PersonalizationRequest>,
) -> ApiResult<Json<PersonalizationResponse>> {
    let Some(secret) = &state.personalization_secret else {
        return Err(ApiError::NotFound(
            "inbound personalisation is not configured (ELEVENLABS_PERSONALIZATION_SECRET)".into(),
        ));
    };
    let given = headers
        .get(PERSONALIZATION_SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    // Digests of equal length: the comparison time says nothing about the secret.
    let digest = |bytes: &[u8]| Sha256::digest(bytes);
    if !bool::from(digest(given).ct_eq(&digest(secret.as_bytes()))) {
        return Err(ApiError::Unauthorized(format!(
            "missing or wrong {PERSONALIZATION_SECRET_HEADER} header"
        )));
    }
    if req.agent_id.trim().is_empty() {
        return Err(ApiError::invalid(
            "invalid_request",
            "agent_id",
            "agent_id is required",
        ));
    }
    let greeting = inbound::greet(state.engine.db(), &req.agent_id, &req.caller_id)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("no business has the agent {:?}", req.agent_id))
        })?;
    Ok(Json(PersonalizationResponse {
        kind: PERSONALIZATION_TYPE.into(),
        dynamic_variables: greeting.variables,
        conversation_config_override: ConfigOverride {
            agent: Some(AgentOverride {
                prompt: Some(PromptOverride {
                    prompt: Some(greeting.prompt),
                }),
                first_message: Some(greeting.first_message),
                language: Some(greeting.language),
            }),
            tts: greeting.voice_id.map(|voice_id| TtsOverride {
                voice_id: Some(voice_id),
            }),
        },
    }))
}
