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
// Webhooks

/// A parsed post-call webhook.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // short-lived, moved once; boxing would only add noise
pub enum WebhookEvent {
    /// `post_call_transcription`: the conversation happened and was analysed.
    Transcription(Conversation),
    /// `call_initiation_failure`: the call never connected.
    InitiationFailure {
        /// The conversation id returned when the call was placed.
        conversation_id: String,
        /// The agent, when given.
        agent_id: Option<String>,
        /// Why the call did not connect.
        reason: FailureReason,
        /// The number called, from the telephony details (Twilio's `To`, a SIP trunk's
        /// `to_number`), when given.
        to_number: Option<String>,
    },
    /// `post_call_audio`.
    Audio {
        /// The conversation the audio belongs to.
        conversation_id: String,
        /// The recording, base64 (mp3).
        full_audio: String,
    },
    /// Any other webhook type.
    Other {
        /// The envelope's `type`.
        kind: String,
    },
}

impl WebhookEvent {
    /// The conversation the event is about, if any.
    pub fn conversation_id(&self) -> Option<&str> {
        match self {
            WebhookEvent::Transcription(c) => Some(&c.conversation_id),
            WebhookEvent::InitiationFailure {
                conversation_id, ..
            }
            | WebhookEvent::Audio {
                conversation_id, ..
            } => Some(conversation_id),
            WebhookEvent::Other { .. } => None,
        }
    }

    /// The envelope's `type`.
    pub fn kind(&self) -> &str {
        match self {
            WebhookEvent::Transcription(_) => EVENT_TRANSCRIPTION,
            WebhookEvent::InitiationFailure { .. } => EVENT_INITIATION_FAILURE,
            WebhookEvent::Audio { .. } => EVENT_AUDIO,
            WebhookEvent::Other { kind } => kind,
        }
    }
}

/// Why a call did not connect (`busy`, `no-answer`, anything else is `Unknown`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailureReason {
    /// The line was busy.
    Busy,
    /// Nobody picked up.
    NoAnswer,
    /// Any other or missing reason.
    #[default]
    Unknown,
}

impl FailureReason {
    /// Reads the wire value leniently.
    pub fn from_wire(value: &str) -> Self {
        match value.trim().to_ascii_lowercase().as_str() {
            "busy" => FailureReason::Busy,
            "no-answer" | "no_answer" => FailureReason::NoAnswer,
            _ => FailureReason::Unknown,
        }
    }

    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Busy => "busy",
            FailureReason::NoAnswer => "no-answer",
            FailureReason::Unknown => "unknown",
        }
    }
}

impl Serialize for FailureReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for FailureReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        Ok(value
            .as_str()
            .map(FailureReason::from_wire)
            .unwrap_or_default())
    }
}

/// `data` of a `call_initiation_failure` webhook (no official schema; parsed loosely).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InitiationFailureData {
    /// The agent.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The conversation id returned when the call was placed.
    pub conversation_id: String,
    /// Why the call did not connect.
    #[serde(default)]
    pub failure_reason: FailureReason,
    /// Telephony details.
    #[serde(default)]
    pub metadata: Option<FailureMetadata>,
}

/// Telephony details of a failed call initiation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureMetadata {
    /// `twilio` or `sip`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The telephony provider's raw status payload.
    #[serde(default)]
    pub body: Value,
}

impl FailureMetadata {
    /// The number called, if the telephony details name it.
    pub fn to_number(&self) -> Option<String> {
        ["To", "to_number", "to"]
            .iter()
            .find_map(|field| self.body.get(field)?.as_str())
            .map(str::to_owned)
    }
}

/// A webhook envelope as sent: `{"type", "event_timestamp", "data"}`.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookEnvelope<T> {
    /// Event type, e.g. [`EVENT_TRANSCRIPTION`].
    #[serde(rename = "type")]
    pub kind: String,
    /// When the event happened (unix seconds).
    pub event_timestamp: i64,
    /// The event's payload.
    pub data: T,
}

/// The envelope's head as received; `event_timestamp` may be a number or a string.
#[derive(Deserialize)]
struct EnvelopeHead {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    #[allow(dead_code)] // validated (number or string), not needed by callers
    event_timestamp: Option<EventTimestamp>,
}

#[derive(Deserialize)]
#[serde(untagged)]
#[allow(dead_code)] // the payloads only validate the shape
enum EventTimestamp {
    Number(f64),
    Text(String),
}

/// The envelope's `data`, typed per event.
#[derive(Deserialize)]
struct EnvelopeData<T> {
    data: T,
}

#[derive(Deserialize)]
struct AudioData {
    conversation_id: String,
    #[serde(default)]
    full_audio: String,
}

/// Parses a webhook body. Call [`verify`] on the raw body first.
pub fn parse_webhook(body: &[u8]) -> Result<WebhookEvent, serde_json::Error> {
    // The head pass skips `data`, so a large payload (audio) is only scanned, not built.
    let head: EnvelopeHead = serde_json::from_slice(body)?;
    Ok(match head.kind.as_str() {
        EVENT_TRANSCRIPTION => {
            let env: EnvelopeData<Conversation> = serde_json::from_slice(body)?;
            WebhookEvent::Transcription(env.data)
        }
        EVENT_INITIATION_FAILURE => {
            let env: EnvelopeData<InitiationFailureData> = serde_json::from_slice(body)?;
            WebhookEvent::InitiationFailure {
                to_number: env
                    .data
                    .metadata
                    .as_ref()
                    .and_then(FailureMetadata::to_number),
                conversation_id: env.data.conversation_id,
                agent_id: env.data.agent_id,
                reason: env.data.failure_reason,
            }
        }
        EVENT_AUDIO => {
            let env: EnvelopeData<AudioData> = serde_json::from_slice(body)?;
            WebhookEvent::Audio {
                conversation_id: env.data.conversation_id,
                full_audio: env.data.full_audio,
            }
        }
        _ => WebhookEvent::Other { kind: head.kind },
    })
}

/// HMAC-SHA256 keyed with `secret`, over `"<timestamp>."` so far.
fn signature_mac(secret: &str, timestamp: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac
}

/// Signs a raw webhook body: returns the header value `t=<timestamp>,v0=<hex>`.
pub fn sign(secret: &str, timestamp_unix: i64, body: &[u8]) -> String {
    let t = timestamp_unix.to_string();
    let mut mac = signature_mac(secret, &t);
    mac.update(body);
    format!("t={t},v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Verifies an `ElevenLabs-Signature` header against the raw body: see [`SignatureCheck`].
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    let mut check = SignatureCheck::start(secret, header, now_unix)?;
    check.update(body);
    check.finish()
}

/// An `ElevenLabs-Signature` check over a raw body read in pieces (a recording of many
/// megabytes is never held whole). The header is split on `,`; `t=` gives the timestamp
/// (rejected when more than 30 minutes from now, either way), and a `v0=` part must equal
/// `"v0=" + hex(HMAC_SHA256(secret, "<t>.<body>"))`, compared in constant time.
pub struct SignatureCheck {
    mac: Hmac<Sha256>,
    signatures: Vec<String>,
}

impl SignatureCheck {
    /// Reads the header at `now_unix`; refuses a missing, malformed or stale one at once.
    pub fn start(secret: &str, header: &str, now_unix: i64) -> Result<Self, SignatureError> {
        if header.trim().is_empty() {
            return Err(SignatureError::Missing(SIGNATURE_HEADER));
        }
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for part in header.split(',').map(str::trim) {
            if let Some(t) = part.strip_prefix("t=") {
                timestamp = Some(t);
            } else if part.starts_with("v0=") {
                signatures.push(part.to_owned());
            }
        }
        let t = timestamp.ok_or(SignatureError::Malformed("no t= part"))?;
        if signatures.is_empty() {
            return Err(SignatureError::Malformed("no v0= part"));
        }
        let ts: i64 = t
            .parse()
            .map_err(|_| SignatureError::Malformed("t is not an integer"))?;
        if now_unix.saturating_sub(ts) > SIGNATURE_TOLERANCE_SECS
            || ts.saturating_sub(now_unix) > SIGNATURE_TOLERANCE_SECS
        {
            return Err(SignatureError::Stale {
                timestamp: ts,
                now: now_unix,
            });
        }
        Ok(SignatureCheck {
            mac: signature_mac(secret, t),
            signatures,
        })
    }

    /// Feeds the next piece of the body.
    pub fn update(&mut self, piece: &[u8]) {
        self.mac.update(piece);
    }

    /// Whether a `v0=` part signs the body fed.
    pub fn finish(self) -> Result<(), SignatureError> {
        let expected = format!("v0={}", hex::encode(self.mac.finalize().into_bytes()));
        let matched = self
            .signatures
            .iter()
            .fold(subtle::Choice::from(0), |acc, sig| {
                acc | expected.as_bytes().ct_eq(sig.as_bytes())
            });
        if bool::from(matched) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

impl super::voice::BodyCheck for SignatureCheck {
    fn update(&mut self, piece: &[u8]) {
        self.mac.update(piece);
    }

    fn finish(self: Box<Self>) -> Result<(), SignatureError> {
        SignatureCheck::finish(*self)
    }
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
// Client

/// HTTP client for the ElevenLabs API (or anything speaking it, like the simulator).
#[derive(Clone)]
pub struct ElevenLabsClient {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    timeout: Duration,
    resilience: Arc<Resilience>,
}

impl std::fmt::Debug for ElevenLabsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElevenLabsClient")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ElevenLabsClient {
    /// A client for `base_url` (e.g. `https://api.elevenlabs.io`, no trailing path) whose
    /// requests each give up after `timeout`.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key: api_key.into(),
            timeout,
            resilience: Arc::new(Resilience::defaults(PROVIDER)),
        }
    }

    /// Uses `resilience` (retries and circuit breaker) for every request.
    pub fn with_resilience(mut self, resilience: Arc<Resilience>) -> Self {
        self.resilience = resilience;
        self
    }

    /// Places an outbound call through a Twilio line or a SIP trunk. `success:false` is
    /// [`ProviderError::Rejected`]; a 2xx without a conversation id or that cannot be read is
    /// [`ProviderError::Ambiguous`] (the call may have started). It is retried only when the
    /// provider answered an error status or was not reached: a [`ProviderError::Transport`]
    /// error does not prove that no call was placed.
    pub async fn outbound_call(
        &self,
        req: &OutboundCallRequest,
        line: Line,
    ) -> Result<OutboundCallResponse, ProviderError> {
        let path = match line {
            Line::Twilio => OUTBOUND_CALL_PATH,
            Line::Sip => SIP_OUTBOUND_CALL_PATH,
        };
        let request = self.http.post(format!("{}{path}", self.base_url)).json(req);
        let body = self.send_with(Idempotency::OnlyIfNotSent, request).await?;
        // A 2xx that does not clearly decline may have started the call.
        let ambiguous = |message: String| ProviderError::Ambiguous {
            provider: PROVIDER,
            message,
        };
        let answer: OutboundCallResponse = serde_json::from_slice(&body).map_err(|e| {
            ambiguous(format!(
                "outbound-call response: {e} (body: {})",
                super::error::excerpt(&body)
            ))
        })?;
        if !answer.success {
            let message = answer
                .message
                .unwrap_or_else(|| "the provider declined the call".to_owned());
            return Err(ProviderError::Rejected {
                provider: PROVIDER,
                message,
            });
        }
        if answer.conversation_id.as_deref().is_none_or(str::is_empty) {
            return Err(ambiguous("no conversation id in the answer".into()));
        }
        Ok(answer)
    }

    /// Fetches a conversation; use it to reconcile a call whose webhook never came.
    pub async fn get_conversation(&self, id: &str) -> Result<Conversation, ProviderError> {
        let mut url = reqwest::Url::parse(&format!("{}{CONVERSATIONS_PATH}", self.base_url))
            .map_err(|e| ProviderError::InvalidRequest {
                provider: PROVIDER,
                message: format!("bad base URL: {e}"),
            })?;
        url.path_segments_mut()
            .map_err(|()| ProviderError::InvalidRequest {
                provider: PROVIDER,
                message: "base URL cannot have a path".into(),
            })?
            .push(id);
        let body = self.send(self.http.get(url)).await?;
        serde_json::from_slice(&body)
            .map_err(|e| ProviderError::decode(PROVIDER, "conversation", &e, &body))
    }

    /// Sends a request that may be repeated ([`Idempotency::Safe`]) and returns the body of a
    /// 2xx answer.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, ProviderError> {
        self.send_with(Idempotency::Safe, request).await
    }

    /// Sends with the API key through the breaker and retries, and returns the body of a 2xx
    /// answer.
    async fn send_with(
        &self,
        idempotency: Idempotency,
        request: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, ProviderError> {
        let request = request.header(API_KEY_HEADER, &self.api_key);
        self.resilience
            .send(idempotency, || self.health(), request, status_error)
            .await
    }

    /// The breaker's probe: a conversation lookup that changes nothing. Any answer but an outage
    /// (normally 404) proves the API is up.
    async fn health(&self) -> Result<(), ProviderError> {
        let url = format!("{}{CONVERSATIONS_PATH}/{HEALTH_PROBE_ID}", self.base_url);
        let request = self.http.get(url).header(API_KEY_HEADER, &self.api_key);
        send_once(PROVIDER, request, status_error).await.map(drop)
    }
}

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
