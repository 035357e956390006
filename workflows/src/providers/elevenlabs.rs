//! ElevenLabs Agents: the wire format, the HTTP client, and webhook signatures.
//!
//! Every ElevenLabs shape Switchboard reads or writes lives in this file (requests, responses,
//! the conversation object, webhook envelopes, error bodies) or, for the agent object and its
//! endpoints, in `elevenlabs/agents.rs`, so a provider change stays within the ElevenLabs code.
//! The built-in simulator builds its answers from these same types.
//!
//! Webhook signature: header `ElevenLabs-Signature: t=<unix secs>,v0=<hex>` where the hex is
//! `HMAC_SHA256(key = secret bytes, message = "<t>.<raw body>")`; see [`sign`] and [`verify`].

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::{ProviderError, retry_after_from_headers};
use super::resilience::{Idempotency, Resilience, send_once};
pub use super::voice::SignatureError;
use crate::providers::voice::Line;

mod provider;
pub use provider::ElevenLabs;

mod agents;
pub use agents::*;

mod client;
pub use client::*;

mod webhooks;
pub use webhooks::*;

/// Provider name used in [`ProviderError`]s.
pub const PROVIDER: &str = "elevenlabs";
/// Header carrying the webhook signature.
pub const SIGNATURE_HEADER: &str = "ElevenLabs-Signature";
/// Header carrying the API key.
pub const API_KEY_HEADER: &str = "xi-api-key";
/// Oldest (and furthest in the future) webhook timestamp [`verify`] accepts, in seconds.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 30 * 60;
/// Path of the Twilio outbound-call endpoint, relative to the base URL.
pub const OUTBOUND_CALL_PATH: &str = "/v1/convai/twilio/outbound-call";
/// Path of the SIP-trunk outbound-call endpoint (same body, answers with `sip_call_id`).
pub const SIP_OUTBOUND_CALL_PATH: &str = "/v1/convai/sip-trunk/outbound-call";
/// Path prefix of the conversation endpoint (`{prefix}/{conversation_id}`).
pub const CONVERSATIONS_PATH: &str = "/v1/convai/conversations";
/// The conversation id the circuit breaker's health probe looks up (it never exists).
pub const HEALTH_PROBE_ID: &str = "switchboard-health-probe";
/// Webhook type: the conversation ended and was analysed; `data` is a [`Conversation`].
pub const EVENT_TRANSCRIPTION: &str = "post_call_transcription";
/// Webhook type: the call never connected; `data` is an [`InitiationFailureData`].
pub const EVENT_INITIATION_FAILURE: &str = "call_initiation_failure";
/// Webhook type: the call's audio (base64 mp3); stored only when configured.
pub const EVENT_AUDIO: &str = "post_call_audio";

// ---------------------------------------------------------------------------------------------
// Outbound call

/// Body of `POST /v1/convai/twilio/outbound-call`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutboundCallRequest {
    /// The agent that speaks.
    pub agent_id: String,
    /// The ElevenLabs id of the phone number that calls.
    pub agent_phone_number_id: String,
    /// The number to call, E.164.
    pub to_number: String,
    /// Lead id, dynamic variables and prompt overrides for this conversation.
    #[serde(default)]
    pub conversation_initiation_client_data: ClientData,
    /// Telephony options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telephony_call_config: Option<TelephonyCallConfig>,
}

/// Per-conversation data sent with a call (and echoed back in the conversation).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientData {
    /// Our identifier for the person called (Switchboard sends the lead id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Values for `{{name}}` placeholders in the agent's prompt and first message.
    #[serde(default, deserialize_with = "null_default")]
    pub dynamic_variables: Map<String, Value>,
    /// Prompt, first message, language and voice overrides (the agent must allow them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_config_override: Option<ConfigOverride>,
}

/// Conversation configuration overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConfigOverride {
    /// Agent overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentOverride>,
    /// Text-to-speech overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts: Option<TtsOverride>,
}

/// Agent overrides for one conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentOverride {
    /// System prompt override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptOverride>,
    /// First sentence the agent says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_message: Option<String>,
    /// Language code, e.g. `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// System prompt override.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PromptOverride {
    /// The prompt text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

/// Voice override.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TtsOverride {
    /// ElevenLabs voice id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_id: Option<String>,
}

/// Telephony options of an outbound call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TelephonyCallConfig {
    /// How long to let the phone ring before giving up.
    pub ringing_timeout_secs: u32,
}

/// Answer to an outbound-call request. `success:false` or a missing `conversation_id` is an error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutboundCallResponse {
    /// Whether the provider started the call.
    #[serde(default)]
    pub success: bool,
    /// Human-readable status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The conversation id the post-call webhook will carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// Twilio call SID (camelCase on the wire).
    #[serde(rename = "callSid", default, skip_serializing_if = "Option::is_none")]
    pub call_sid: Option<String>,
    /// SIP call id (SIP-trunk variant only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_call_id: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Conversation (webhook `data` and GET /v1/convai/conversations/{id})

/// A conversation: the `post_call_transcription` webhook's `data`, and the body of
/// `GET /v1/convai/conversations/{id}` (which has `analysis` only once processing is done).
/// Parsing is lenient: unknown fields are ignored and missing or null fields take defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// The agent that spoke.
    #[serde(default, deserialize_with = "null_default")]
    pub agent_id: String,
    /// The conversation id returned when the call was placed.
    pub conversation_id: String,
    /// Processing state.
    #[serde(default, deserialize_with = "null_default")]
    pub status: ConversationStatus,
    /// The `user_id` sent with the call (Switchboard's lead id).
    #[serde(default)]
    pub user_id: Option<String>,
    /// Turns, in order. `None` when the webhook left it out (ElevenLabs can be set to send the
    /// post-call webhook without it, and sends `null` at times): read the conversation then.
    #[serde(default)]
    pub transcript: Option<Vec<TranscriptTurn>>,
    /// Timing, cost, termination reason and phone details; `None` when left out.
    #[serde(default)]
    pub metadata: Option<ConversationMetadata>,
    /// Whether a recording of the call exists.
    #[serde(default)]
    pub has_audio: bool,
    /// Whether the person's side was recorded.
    #[serde(default)]
    pub has_user_audio: bool,
    /// Whether the agent's side was recorded.
    #[serde(default)]
    pub has_response_audio: bool,
    /// The provider's own analysis, once processing is done.
    #[serde(default)]
    pub analysis: Option<ConversationAnalysis>,
    /// The client data sent with the call, echoed back.
    #[serde(default)]
    pub conversation_initiation_client_data: Option<ClientData>,
}

/// Processing state of a conversation (`initiated|in-progress|processing|done|failed`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConversationStatus {
    /// Call requested.
    Initiated,
    /// Call under way.
    InProgress,
    /// Call ended, analysis running.
    Processing,
    /// Call ended and analysed.
    Done,
    /// The conversation failed.
    Failed,
    /// Missing or a value this version does not know.
    #[default]
    #[serde(other)]
    Unknown,
}

impl ConversationStatus {
    /// Whether the conversation will not change any more (`done` or `failed`).
    pub fn is_final(self) -> bool {
        matches!(self, ConversationStatus::Done | ConversationStatus::Failed)
    }
}

/// Who spoke a transcript turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The AI agent.
    Agent,
    /// The person called.
    User,
    /// Missing or unknown.
    #[default]
    #[serde(other)]
    Unknown,
}

/// One turn of the transcript.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TranscriptTurn {
    /// Who spoke.
    #[serde(default, deserialize_with = "null_default")]
    pub role: Role,
    /// What was said; null for turns that only call tools.
    #[serde(default)]
    pub message: Option<String>,
    /// Seconds since the call started.
    #[serde(default, deserialize_with = "whole_number")]
    pub time_in_call_secs: i64,
}

/// Conversation metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationMetadata {
    /// When the call started (unix seconds).
    #[serde(default)]
    pub start_time_unix_secs: Option<i64>,
    /// Call length in seconds.
    #[serde(default, deserialize_with = "maybe_whole_number")]
    pub call_duration_secs: Option<i64>,
    /// Provider cost (credits).
    #[serde(default, deserialize_with = "maybe_whole_number")]
    pub cost: Option<i64>,
    /// Why the call ended, e.g. `end_call tool was called`, `voicemail_detected`.
    #[serde(default)]
    pub termination_reason: Option<String>,
    /// Telephony details.
    #[serde(default)]
    pub phone_call: Option<PhoneCall>,
    /// Error details, if the conversation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// Telephony details of a conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhoneCall {
    /// `twilio` or `sip_trunking`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// `inbound` or `outbound`.
    #[serde(default)]
    pub direction: Option<String>,
    /// ElevenLabs phone number id.
    #[serde(default)]
    pub phone_number_id: Option<String>,
    /// The agent's number.
    #[serde(default)]
    pub agent_number: Option<String>,
    /// The other party's number.
    #[serde(default)]
    pub external_number: Option<String>,
    /// Twilio call SID.
    #[serde(default)]
    pub call_sid: Option<String>,
    /// Twilio media stream SID.
    #[serde(default)]
    pub stream_sid: Option<String>,
    /// How the call went on the phone line, when the provider reports it.
    #[serde(default)]
    pub call_result: Option<CallResult>,
}

/// The structured result of the phone call (`metadata.phone_call.call_result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    /// A person (or a machine the provider did not recognise) picked up.
    Answered,
    /// A voicemail box answered.
    Voicemail,
    /// The line was busy.
    Busy,
    /// Nobody picked up.
    NoAnswer,
    /// The call failed on the line.
    Failed,
    /// A value this version does not know.
    #[serde(other)]
    Unknown,
}

/// The provider's post-call analysis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationAnalysis {
    /// `success`, `failure` or `unknown`.
    #[serde(default)]
    pub call_successful: Option<String>,
    /// Short summary of the call.
    #[serde(default)]
    pub transcript_summary: Option<String>,
    /// `{id: {criteria_id, result, rationale}}`.
    #[serde(default)]
    pub evaluation_criteria_results: Value,
    /// `{id: {data_collection_id, value, rationale}}`.
    #[serde(default)]
    pub data_collection_results: Value,
}

// ---------------------------------------------------------------------------------------------
// Inbound personalisation webhook

/// Header carrying the shared secret of personalisation requests (configured at ElevenLabs as
/// a custom header of the conversation-initiation webhook).
pub const PERSONALIZATION_SECRET_HEADER: &str = "X-Switchboard-Secret";

/// What ElevenLabs posts when an inbound call reaches an agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PersonalizationRequest {
    /// The caller's number.
    pub caller_id: String,
    /// The agent answering.
    pub agent_id: String,
    /// The number called.
    #[serde(default)]
    pub called_number: Option<String>,
    /// Twilio call SID.
    #[serde(default)]
    pub call_sid: Option<String>,
}

/// The answer: variables and overrides for the conversation about to start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PersonalizationResponse {
    /// Always `conversation_initiation_client_data`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Values for the agent's `{{placeholders}}`.
    #[schema(value_type = std::collections::HashMap<String, serde_json::Value>)]
    pub dynamic_variables: Map<String, Value>,
    /// Prompt, first message, language and voice.
    pub conversation_config_override: ConfigOverride,
}

/// The `type` of a [`PersonalizationResponse`].
pub const PERSONALIZATION_TYPE: &str = "conversation_initiation_client_data";

// ---------------------------------------------------------------------------------------------
// Errors

/// An ElevenLabs error body: `{"detail": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// Validation issues (422), an error object, or plain text.
    pub detail: ApiErrorDetail,
}

/// The `detail` of an error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ApiErrorDetail {
    /// 422: `[{"loc":[…],"msg":"…","type":"…"}]`.
    Validation(Vec<ValidationIssue>),
    /// Other errors: `{"type","code","message","status","request_id","param"}`.
    Error(ErrorDetail),
    /// A bare string.
    Text(String),
}

/// One 422 validation issue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidationIssue {
    /// Where: e.g. `["body","to_number"]`.
    #[serde(default)]
    pub loc: Vec<Value>,
    /// What is wrong.
    #[serde(default)]
    pub msg: String,
    /// Machine-readable kind.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

/// A non-validation error object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Error category.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Machine-readable code, e.g. `rate_limit_exceeded`.
    #[serde(default)]
    pub code: Option<String>,
    /// Human-readable message.
    #[serde(default)]
    pub message: Option<String>,
    /// Status text.
    #[serde(default)]
    pub status: Option<Value>,
    /// Request id for support.
    #[serde(default)]
    pub request_id: Option<String>,
    /// The offending parameter.
    #[serde(default)]
    pub param: Option<String>,
}

/// Builds a [`ProviderError::Status`] from a non-success response.
fn status_error(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> ProviderError {
    let (code, message) = match serde_json::from_slice::<ApiErrorBody>(body).map(|b| b.detail) {
        Ok(ApiErrorDetail::Validation(issues)) => {
            let code = issues.iter().find_map(|i| i.kind.clone());
            let message = issues
                .iter()
                .map(|i| {
                    let loc: Vec<String> = i
                        .loc
                        .iter()
                        .map(|l| l.as_str().map_or_else(|| l.to_string(), str::to_owned))
                        .collect();
                    format!("{}: {}", loc.join("."), i.msg)
                })
                .collect::<Vec<_>>()
                .join("; ");
            (code, message)
        }
        Ok(ApiErrorDetail::Error(d)) => {
            let message = d.message.or(d.kind).unwrap_or_else(|| "no message".into());
            (d.code, message)
        }
        Ok(ApiErrorDetail::Text(text)) => (None, text),
        Err(_) => (None, super::error::excerpt(body)),
    };
    ProviderError::Status {
        provider: PROVIDER,
        status,
        code,
        message,
        retry_after: retry_after_from_headers(headers),
    }
}

// ---------------------------------------------------------------------------------------------
// Lenient fields

/// Reads an integer field leniently: the API sends integers; a decimal is rounded, a numeric
/// string read, and `null` or anything else is absent.
fn maybe_whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64)),
        Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f.round() as i64),
        _ => None,
    })
}

/// [`maybe_whole_number`], absent as 0.
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(maybe_whole_number(d)?.unwrap_or_default())
}

/// Deserialises `null` as the type's default.
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests;
