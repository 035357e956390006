//! ElevenLabs Agents: the wire format, the HTTP client, and webhook signatures.
//!
//! Every ElevenLabs shape Switchboard reads or writes lives in this file (requests, responses,
//! the conversation object, webhook envelopes, error bodies), so a provider change is a one-file
//! change. The built-in simulator builds its answers from these same types.
//!
//! Webhook signature: header `ElevenLabs-Signature: t=<unix secs>,v0=<hex>` where the hex is
//! `HMAC_SHA256(key = secret bytes, message = "<t>.<raw body>")`; see [`sign`] and [`verify`].

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::{ProviderError, retry_after_from_headers};

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
/// Path prefix of the conversation endpoint (`{prefix}/{conversation_id}`).
pub const CONVERSATIONS_PATH: &str = "/v1/convai/conversations";
/// Webhook type: the conversation ended and was analysed; `data` is a [`Conversation`].
pub const EVENT_TRANSCRIPTION: &str = "post_call_transcription";
/// Webhook type: the call never connected; `data` is an [`InitiationFailureData`].
pub const EVENT_INITIATION_FAILURE: &str = "call_initiation_failure";
/// Webhook type: the call's audio (base64 mp3); not stored.
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigOverride {
    /// Agent overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentOverride>,
    /// Text-to-speech overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts: Option<TtsOverride>,
}

/// Agent overrides for one conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptOverride {
    /// The prompt text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

/// Voice override.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Turns, in order.
    #[serde(default, deserialize_with = "null_default")]
    pub transcript: Vec<TranscriptTurn>,
    /// Timing, cost, termination reason and phone details.
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: ConversationMetadata,
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
    #[serde(default, deserialize_with = "null_default")]
    pub time_in_call_secs: f64,
}

/// Conversation metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationMetadata {
    /// When the call started (unix seconds).
    #[serde(default)]
    pub start_time_unix_secs: Option<i64>,
    /// Call length in seconds.
    #[serde(default)]
    pub call_duration_secs: Option<f64>,
    /// Provider cost (credits).
    #[serde(default)]
    pub cost: Option<f64>,
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
    },
    /// `post_call_audio` (the audio itself is not kept).
    Audio {
        /// The conversation the audio belongs to.
        conversation_id: String,
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
            | WebhookEvent::Audio { conversation_id } => Some(conversation_id),
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
                conversation_id: env.data.conversation_id,
                agent_id: env.data.agent_id,
                reason: env.data.failure_reason,
            }
        }
        EVENT_AUDIO => {
            let env: EnvelopeData<AudioData> = serde_json::from_slice(body)?;
            WebhookEvent::Audio {
                conversation_id: env.data.conversation_id,
            }
        }
        _ => WebhookEvent::Other { kind: head.kind },
    })
}

/// Why a webhook signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header (or an empty one).
    #[error("missing {SIGNATURE_HEADER} header")]
    Missing,
    /// The header is not `t=<unix secs>,v0=<hex>`.
    #[error("malformed {SIGNATURE_HEADER} header: {0}")]
    Malformed(&'static str),
    /// The timestamp is more than 30 minutes from now.
    #[error("stale signature: timestamp {timestamp} is too far from now ({now})")]
    Stale {
        /// The signed timestamp.
        timestamp: i64,
        /// Our clock.
        now: i64,
    },
    /// The signature does not match the body and secret.
    #[error("signature does not match")]
    Mismatch,
}

fn signature_hex(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Signs a raw webhook body: returns the header value `t=<timestamp>,v0=<hex>`.
pub fn sign(secret: &str, timestamp_unix: i64, body: &[u8]) -> String {
    let t = timestamp_unix.to_string();
    format!("t={t},v0={}", signature_hex(secret, &t, body))
}

/// Verifies an `ElevenLabs-Signature` header against the raw body: the header is split on `,`,
/// `t=` gives the timestamp (rejected when more than 30 minutes from `now_unix`, either way),
/// and a `v0=` part must equal `"v0=" + hex(HMAC_SHA256(secret, "<t>.<body>"))`, compared in
/// constant time.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    if header.trim().is_empty() {
        return Err(SignatureError::Missing);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',').map(str::trim) {
        if let Some(t) = part.strip_prefix("t=") {
            timestamp = Some(t);
        } else if part.starts_with("v0=") {
            signatures.push(part);
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
    let expected = format!("v0={}", signature_hex(secret, t, body));
    let matched = signatures.iter().fold(subtle::Choice::from(0), |acc, sig| {
        acc | expected.as_bytes().ct_eq(sig.as_bytes())
    });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

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
        }
    }

    /// Places an outbound call through a Twilio line. `success:false` or a missing
    /// `conversation_id` is [`ProviderError::Rejected`]. A [`ProviderError::Transport`] error
    /// does not prove that no call was placed.
    pub async fn outbound_call(
        &self,
        req: &OutboundCallRequest,
    ) -> Result<OutboundCallResponse, ProviderError> {
        let url = format!("{}{OUTBOUND_CALL_PATH}", self.base_url);
        let request = self.http.post(url).json(req);
        let body = self.send(request).await?;
        let answer: OutboundCallResponse = serde_json::from_slice(&body)
            .map_err(|e| ProviderError::decode(PROVIDER, "outbound-call response", &e, &body))?;
        if !answer.success || answer.conversation_id.as_deref().is_none_or(str::is_empty) {
            let message = answer
                .message
                .unwrap_or_else(|| "no conversation id in the answer".to_owned());
            return Err(ProviderError::Rejected {
                provider: PROVIDER,
                message,
            });
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

    /// Sends with the API key and returns the body of a 2xx answer.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>, ProviderError> {
        let response = request
            .header(API_KEY_HEADER, &self.api_key)
            .send()
            .await
            .map_err(|e| ProviderError::from_reqwest(PROVIDER, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| ProviderError::from_reqwest(PROVIDER, &e))?;
        if !status.is_success() {
            return Err(status_error(status.as_u16(), &headers, &body));
        }
        Ok(body.to_vec())
    }
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
mod tests {
    use super::*;
    use axum::{
        Router,
        http::StatusCode,
        response::IntoResponse,
        routing::{get, post},
    };
    use serde_json::json;

    const SECRET: &str = "wsec_test";
    const NOW: i64 = 1_760_000_000;

    #[test]
    fn sign_verify_roundtrip() {
        let body = br#"{"type":"post_call_transcription","data":{}}"#;
        let header = sign(SECRET, NOW, body);
        assert!(header.starts_with(&format!("t={NOW},v0=")));
        assert_eq!(verify(SECRET, &header, body, NOW), Ok(()));
        assert_eq!(
            verify(SECRET, &header, body, NOW + SIGNATURE_TOLERANCE_SECS),
            Ok(())
        );
        // Spaces after the comma and reordered parts are tolerated.
        let (t, v) = header.split_once(',').expect("two parts");
        assert_eq!(verify(SECRET, &format!("{v}, {t}"), body, NOW), Ok(()));
    }

    #[test]
    fn known_vector() {
        // Computed independently: python hmac.new(b"secret", b"1.{}", sha256).hexdigest().
        let expected = "t=1,v0=1122767b193110cfec322b6f199b599edbf608ed087f2d27afb0b97d99523908";
        assert_eq!(sign("secret", 1, b"{}"), expected);
        assert_eq!(verify("secret", expected, b"{}", 1), Ok(()));
    }

    #[test]
    fn verify_rejects_bad_signatures() {
        let body = br#"{"a":1}"#;
        let header = sign(SECRET, NOW, body);
        assert_eq!(
            verify(SECRET, &header, br#"{"a":2}"#, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("other", &header, body, NOW),
            Err(SignatureError::Mismatch)
        );
        let stale = verify(SECRET, &header, body, NOW + 31 * 60);
        assert!(
            matches!(stale, Err(SignatureError::Stale { .. })),
            "{stale:?}"
        );
        let future = verify(SECRET, &header, body, NOW - 31 * 60);
        assert!(
            matches!(future, Err(SignatureError::Stale { .. })),
            "{future:?}"
        );
        assert_eq!(verify(SECRET, "", body, NOW), Err(SignatureError::Missing));
        for bad in [
            "garbage",
            "t=abc,v0=00",
            "v0=00",
            &format!("t={NOW}"),
            "t=,v0=1",
        ] {
            let got = verify(SECRET, bad, body, NOW);
            assert!(
                matches!(got, Err(SignatureError::Malformed(_))),
                "{bad}: {got:?}"
            );
        }
        // The v0= prefix is part of what is compared: a bare hex or other scheme fails.
        let hex = header
            .split_once(",v0=")
            .map(|(_, h)| h.to_owned())
            .unwrap_or_default();
        let v1 = format!("t={NOW},v1={hex}");
        assert!(matches!(
            verify(SECRET, &v1, body, NOW),
            Err(SignatureError::Malformed(_))
        ));
        let upper = format!("t={NOW},v0={}", hex.to_uppercase());
        assert_eq!(
            verify(SECRET, &upper, body, NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn parse_transcription_with_string_timestamp_and_null_messages() {
        let body = json!({
            "type": "post_call_transcription",
            "event_timestamp": "1739537297",
            "data": {
                "agent_id": "agent_1", "conversation_id": "conv_1", "status": "done",
                "user_id": "lead_1",
                "transcript": [
                    {"role": "agent", "message": "Hi Ada", "time_in_call_secs": 0,
                     "tool_calls": null, "unknown_field": 1},
                    {"role": "user", "message": null, "time_in_call_secs": 3},
                    {"role": "agent", "message": "Bye"}
                ],
                "metadata": {"start_time_unix_secs": 1739537200, "call_duration_secs": 22,
                    "cost": 296, "termination_reason": "end_call tool was called",
                    "phone_call": {"type": "twilio", "direction": "outbound",
                        "external_number": "+14155552671", "call_sid": "CA1"}},
                "analysis": {"call_successful": "success", "transcript_summary": "ok",
                    "evaluation_criteria_results": {}, "data_collection_results": {}},
                "conversation_initiation_client_data": {
                    "dynamic_variables": {"customer_name": "Ada"},
                    "conversation_config_override": {"agent": {"prompt": null,
                        "first_message": null, "language": null}, "tts": {"voice_id": null}}}
            }
        });
        let event = parse_webhook(body.to_string().as_bytes()).expect("parses");
        assert_eq!(event.kind(), EVENT_TRANSCRIPTION);
        assert_eq!(event.conversation_id(), Some("conv_1"));
        let WebhookEvent::Transcription(c) = event else {
            panic!("not a transcription")
        };
        assert_eq!(c.status, ConversationStatus::Done);
        assert_eq!(c.user_id.as_deref(), Some("lead_1"));
        assert_eq!(c.transcript.len(), 3);
        assert_eq!(c.transcript[1].message, None);
        assert_eq!(c.transcript[1].role, Role::User);
        assert_eq!(c.transcript[2].time_in_call_secs, 0.0);
        assert_eq!(c.metadata.call_duration_secs, Some(22.0));
        let phone = c.metadata.phone_call.as_ref().expect("phone call");
        assert_eq!(phone.kind.as_deref(), Some("twilio"));
        let analysis = c.analysis.as_ref().expect("analysis");
        assert_eq!(analysis.call_successful.as_deref(), Some("success"));
        let client = c
            .conversation_initiation_client_data
            .as_ref()
            .expect("client data");
        assert_eq!(client.dynamic_variables["customer_name"], "Ada");
    }

    #[test]
    fn parse_minimal_and_odd_transcriptions() {
        let body = br#"{"type":"post_call_transcription","event_timestamp":1.5,
            "data":{"conversation_id":"c","status":"weird","transcript":null,"metadata":null}}"#;
        let WebhookEvent::Transcription(c) = parse_webhook(body).expect("parses") else {
            panic!("not a transcription")
        };
        assert_eq!(c.status, ConversationStatus::Unknown);
        assert!(c.transcript.is_empty());
        assert!(c.analysis.is_none());
        assert!(parse_webhook(br#"{"type":"post_call_transcription","data":{}}"#).is_err());
        assert!(parse_webhook(b"not json").is_err());
    }

    #[test]
    fn parse_initiation_failures_audio_and_others() {
        for (wire, reason) in [
            ("busy", FailureReason::Busy),
            ("no-answer", FailureReason::NoAnswer),
            ("unknown", FailureReason::Unknown),
            ("carrier-exploded", FailureReason::Unknown),
        ] {
            let body = json!({"type": "call_initiation_failure", "event_timestamp": 1739537297,
                "data": {"agent_id": "agent_1", "conversation_id": "conv_2",
                    "failure_reason": wire, "metadata": {"type": "twilio", "body": {}}}});
            let event = parse_webhook(body.to_string().as_bytes()).expect("parses");
            assert_eq!(
                event,
                WebhookEvent::InitiationFailure {
                    conversation_id: "conv_2".into(),
                    agent_id: Some("agent_1".into()),
                    reason,
                }
            );
            assert_eq!(event.kind(), EVENT_INITIATION_FAILURE);
        }
        let loose = br#"{"type":"call_initiation_failure","data":{"conversation_id":"c","failure_reason":null}}"#;
        let event = parse_webhook(loose).expect("parses");
        assert!(matches!(
            event,
            WebhookEvent::InitiationFailure {
                reason: FailureReason::Unknown,
                ..
            }
        ));

        let audio = br#"{"type":"post_call_audio","event_timestamp":"1","data":{"agent_id":"a","conversation_id":"conv_3","full_audio":"SUQz"}}"#;
        let event = parse_webhook(audio).expect("parses");
        assert_eq!(
            event,
            WebhookEvent::Audio {
                conversation_id: "conv_3".into()
            }
        );
        assert_eq!(event.conversation_id(), Some("conv_3"));

        let other = br#"{"type":"something_new","event_timestamp":1}"#;
        let event = parse_webhook(other).expect("parses");
        assert_eq!(
            event,
            WebhookEvent::Other {
                kind: "something_new".into()
            }
        );
        assert_eq!(event.conversation_id(), None);
        assert_eq!(event.kind(), "something_new");
    }

    #[test]
    fn envelope_roundtrip() {
        let data = InitiationFailureData {
            agent_id: Some("a".into()),
            conversation_id: "c".into(),
            failure_reason: FailureReason::NoAnswer,
            metadata: Some(FailureMetadata {
                kind: Some("twilio".into()),
                body: json!({}),
            }),
        };
        let env = WebhookEnvelope {
            kind: EVENT_INITIATION_FAILURE.into(),
            event_timestamp: 5,
            data,
        };
        let body = serde_json::to_vec(&env).expect("serialises");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains(r#""failure_reason":"no-answer""#), "{text}");
        let event = parse_webhook(&body).expect("parses");
        assert!(matches!(
            event,
            WebhookEvent::InitiationFailure {
                reason: FailureReason::NoAnswer,
                ..
            }
        ));
    }

    #[test]
    fn request_serialisation_skips_nones() {
        let req = OutboundCallRequest {
            agent_id: "agent_1".into(),
            agent_phone_number_id: "phnum_1".into(),
            to_number: "+14155552671".into(),
            conversation_initiation_client_data: ClientData {
                user_id: Some("lead_1".into()),
                dynamic_variables: json!({"customer_name": "Ada"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                conversation_config_override: Some(ConfigOverride {
                    agent: Some(AgentOverride {
                        first_message: Some("Hi {{customer_name}}".into()),
                        ..Default::default()
                    }),
                    tts: None,
                }),
            },
            telephony_call_config: None,
        };
        let value = serde_json::to_value(&req).expect("serialises");
        assert_eq!(
            value,
            json!({
                "agent_id": "agent_1", "agent_phone_number_id": "phnum_1", "to_number": "+14155552671",
                "conversation_initiation_client_data": {
                    "user_id": "lead_1", "dynamic_variables": {"customer_name": "Ada"},
                    "conversation_config_override": {"agent": {"first_message": "Hi {{customer_name}}"}}}
            })
        );
        let resp: OutboundCallResponse = serde_json::from_value(json!({"success": true,
            "message": "Call initiated successfully", "conversation_id": "conv_1", "callSid": "CA1"}))
        .expect("parses");
        assert_eq!(resp.call_sid.as_deref(), Some("CA1"));
    }

    #[test]
    fn error_bodies() {
        let mut headers = reqwest::header::HeaderMap::new();
        let body = json!({"detail": [
            {"loc": ["body", "to_number"], "msg": "invalid phone number", "type": "value_error"},
            {"loc": ["body", 0], "msg": "second", "type": "x"}]});
        let err = status_error(422, &headers, body.to_string().as_bytes());
        assert_eq!(err.code(), Some("value_error"));
        assert!(
            err.to_string()
                .contains("body.to_number: invalid phone number; body.0: second"),
            "{err}"
        );
        assert!(!err.is_retryable());

        headers.insert(
            "retry-after-ms",
            reqwest::header::HeaderValue::from_static("250"),
        );
        let body = json!({"detail": {"type": "rate_limit", "code": "concurrent_limit_exceeded",
            "message": "Too many concurrent calls", "status": "error", "request_id": "r1", "param": null}});
        let err = status_error(429, &headers, body.to_string().as_bytes());
        assert_eq!(err.code(), Some("concurrent_limit_exceeded"));
        assert_eq!(err.retry_after(), Some(Duration::from_millis(250)));
        assert!(err.is_retryable());
        assert!(err.to_string().contains("Too many concurrent calls"));

        let err = status_error(
            404,
            &reqwest::header::HeaderMap::new(),
            br#"{"detail":"Not Found"}"#,
        );
        assert!(err.to_string().contains("Not Found"));
        let err = status_error(
            502,
            &reqwest::header::HeaderMap::new(),
            b"<html>bad gateway</html>",
        );
        assert!(err.to_string().contains("bad gateway") && err.is_retryable());
    }

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        format!("http://{addr}")
    }

    fn sample_request() -> OutboundCallRequest {
        OutboundCallRequest {
            agent_id: "agent_1".into(),
            agent_phone_number_id: "phnum_1".into(),
            to_number: "+14155552671".into(),
            conversation_initiation_client_data: ClientData {
                user_id: Some("lead_1".into()),
                ..Default::default()
            },
            telephony_call_config: Some(TelephonyCallConfig {
                ringing_timeout_secs: 30,
            }),
        }
    }

    #[tokio::test]
    async fn client_places_calls_and_reads_errors() {
        let app = Router::new().route(
            OUTBOUND_CALL_PATH,
            post(|headers: axum::http::HeaderMap, body: axum::Json<OutboundCallRequest>| async move {
                let key = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
                if key != "key_1" {
                    let err = json!({"detail": {"type": "authentication_error",
                        "code": "invalid_api_key", "message": "Invalid API key"}});
                    return (StatusCode::UNAUTHORIZED, axum::Json(err)).into_response();
                }
                match body.0.to_number.as_str() {
                    "+10000000000" => axum::Json(json!({"success": false,
                        "message": "Agent not allowed to call", "conversation_id": null}))
                        .into_response(),
                    "+10000000001" => axum::Json(json!({"success": true})).into_response(),
                    "+10000000002" => (StatusCode::OK, "not json").into_response(),
                    "+10000000003" => (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "3")],
                        axum::Json(json!({"detail": {"code": "rate_limit_exceeded", "message": "slow down"}})),
                    )
                        .into_response(),
                    _ => {
                        assert_eq!(body.0.telephony_call_config, Some(TelephonyCallConfig { ringing_timeout_secs: 30 }));
                        axum::Json(json!({"success": true, "message": "Call initiated successfully",
                            "conversation_id": "conv_1", "callSid": "CA1"})).into_response()
                    }
                }
            }),
        );
        let base = serve(app).await;
        let client = ElevenLabsClient::new(format!("{base}/"), "key_1", Duration::from_secs(5));
        let mut req = sample_request();
        let ok = client.outbound_call(&req).await.expect("call placed");
        assert_eq!(ok.conversation_id.as_deref(), Some("conv_1"));
        assert_eq!(ok.call_sid.as_deref(), Some("CA1"));

        req.to_number = "+10000000000".into();
        let err = client.outbound_call(&req).await.expect_err("rejected");
        assert_eq!(
            err,
            ProviderError::Rejected {
                provider: PROVIDER,
                message: "Agent not allowed to call".into()
            }
        );
        req.to_number = "+10000000001".into();
        let err = client
            .outbound_call(&req)
            .await
            .expect_err("no conversation id");
        assert!(matches!(err, ProviderError::Rejected { .. }) && !err.is_retryable());
        req.to_number = "+10000000002".into();
        let err = client.outbound_call(&req).await.expect_err("bad body");
        assert!(matches!(err, ProviderError::Decode { .. }) && !err.is_retryable());
        req.to_number = "+10000000003".into();
        let err = client.outbound_call(&req).await.expect_err("rate limited");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert!(err.is_retryable());

        let bad_key = ElevenLabsClient::new(base, "nope", Duration::from_secs(5));
        let err = bad_key
            .outbound_call(&sample_request())
            .await
            .expect_err("unauthorised");
        assert_eq!(err.status(), Some(401));
        assert_eq!(err.code(), Some("invalid_api_key"));
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn client_gets_conversations() {
        let app = Router::new().route(
            "/v1/convai/conversations/{id}",
            get(|axum::extract::Path(id): axum::extract::Path<String>| async move {
                if id == "conv 1/x" {
                    axum::Json(json!({"agent_id": "a", "conversation_id": id, "status": "processing",
                        "transcript": [], "metadata": {}})).into_response()
                } else {
                    let err = json!({"detail": {"type": "not_found", "code": "conversation_not_found",
                        "message": format!("Conversation {id} not found")}});
                    (StatusCode::NOT_FOUND, axum::Json(err)).into_response()
                }
            }),
        );
        let base = serve(app).await;
        let client = ElevenLabsClient::new(base, "k", Duration::from_secs(5));
        let conv = client.get_conversation("conv 1/x").await.expect("found");
        assert_eq!(conv.conversation_id, "conv 1/x");
        assert_eq!(conv.status, ConversationStatus::Processing);
        assert!(!conv.status.is_final());
        let err = client
            .get_conversation("missing")
            .await
            .expect_err("not found");
        assert_eq!(err.status(), Some(404));
        assert_eq!(err.code(), Some("conversation_not_found"));
    }

    #[tokio::test]
    async fn transport_failures_are_retryable() {
        // A port that was just freed: connection refused.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let client = ElevenLabsClient::new(format!("http://{addr}"), "k", Duration::from_secs(5));
        let err = client
            .outbound_call(&sample_request())
            .await
            .expect_err("refused");
        assert!(
            matches!(err, ProviderError::Transport { .. }) && err.is_retryable(),
            "{err:?}"
        );

        // A server that never answers: timeout.
        let app = Router::new().route(OUTBOUND_CALL_PATH, post(std::future::pending::<String>));
        let base = serve(app).await;
        let client = ElevenLabsClient::new(base, "k", Duration::from_millis(200));
        let err = client
            .outbound_call(&sample_request())
            .await
            .expect_err("timeout");
        assert!(
            matches!(&err, ProviderError::Transport { message, .. } if message.contains("timed out")),
            "{err:?}"
        );

        let client = ElevenLabsClient::new("not a url", "k", Duration::from_secs(1));
        let err = client.get_conversation("c").await.expect_err("bad url");
        assert!(matches!(err, ProviderError::InvalidRequest { .. }) && !err.is_retryable());
    }
}
