//! Retell AI (voice): the wire format, the HTTP client, webhook signatures, and Retell as a
//! [`VoiceProvider`].
//!
//! Every Retell shape Switchboard reads or writes lives in this file: the create-phone-call
//! request, the call object (answered on creation, by `GET /v2/get-call/{id}`, and inside every
//! webhook), the webhook envelope `{"event", "call"}` and the error body. The built-in simulator
//! builds its answers from these same types.
//!
//! Webhook signature: header `x-retell-signature: v=<unix ms>,d=<hex>` where the hex is
//! `HMAC_SHA256(key = the API key, message = <raw body> + "<unix ms>")`, accepted within five
//! minutes of now; see [`sign`] and [`SignatureCheck`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::{ProviderError, excerpt, retry_after_from_headers};
use super::resilience::{Idempotency, Resilience, send_once};
use super::voice::{
    BodyCheck, CallEvent, CallReport, CallRequest, CallStatus, PlacedCall, SignatureError,
    VAR_CALL_KEY, VoiceProvider,
};
use crate::providers::voice::NoConnect;

/// Provider name used in [`ProviderError`]s and webhook deduplication.
pub const PROVIDER: &str = "retell";
/// Header carrying the webhook signature.
pub const SIGNATURE_HEADER: &str = "x-retell-signature";
/// Oldest (and furthest in the future) webhook timestamp accepted, in milliseconds.
pub const SIGNATURE_TOLERANCE_MS: i64 = 5 * 60 * 1000;
/// Path of the create-phone-call endpoint, relative to the base URL.
pub const CREATE_CALL_PATH: &str = "/v2/create-phone-call";
/// Path prefix of the call lookup (`{prefix}/{call_id}`).
pub const GET_CALL_PATH: &str = "/v2/get-call";
/// The call id the circuit breaker's health probe looks up (it never exists).
pub const HEALTH_PROBE_ID: &str = "switchboard-health-probe";
/// Metadata key carrying Switchboard's call key (echoed in every webhook).
pub const METADATA_CALL_KEY: &str = VAR_CALL_KEY;
/// Metadata key carrying the lead's id.
pub const METADATA_LEAD_ID: &str = "lead_id";
/// Webhook event: the call ended (with its transcript); resumes the run.
pub const EVENT_CALL_ENDED: &str = "call_ended";
/// Webhook event: Retell's own analysis of the call is ready (the call as `call_ended` plus
/// `call_analysis`); it resumes the run too when `call_ended` was lost.
pub const EVENT_CALL_ANALYZED: &str = "call_analyzed";
/// Webhook event: the call started (ignored).
pub const EVENT_CALL_STARTED: &str = "call_started";

// ---------------------------------------------------------------------------------------------
// Wire format

/// Body of `POST /v2/create-phone-call`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreatePhoneCall {
    /// The number that calls, E.164 (bought at or imported into Retell).
    pub from_number: String,
    /// The number to call, E.164.
    pub to_number: String,
    /// The agent that speaks (instead of the one bound to `from_number`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_agent_id: Option<String>,
    /// Values for the agent's `{{placeholders}}`; Retell takes strings only.
    #[serde(default)]
    pub retell_llm_dynamic_variables: BTreeMap<String, String>,
    /// Anything of ours, echoed in the call object and every webhook.
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// A call: the answer to create-phone-call and get-call, and every webhook's `call`. Parsing is
/// lenient: unknown fields are ignored, missing ones take defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Retell's id for the call.
    pub call_id: String,
    /// `phone_call` (or `web_call`).
    #[serde(default)]
    pub call_type: String,
    /// The agent that spoke.
    #[serde(default)]
    pub agent_id: String,
    /// `registered`, `not_connected`, `ongoing`, `ended` or `error`.
    #[serde(default)]
    pub call_status: CallState,
    /// `outbound` or `inbound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// The calling number.
    #[serde(default)]
    pub from_number: String,
    /// The number called.
    #[serde(default)]
    pub to_number: String,
    /// What was sent as `metadata`.
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// What was sent as `retell_llm_dynamic_variables`.
    #[serde(default)]
    pub retell_llm_dynamic_variables: BTreeMap<String, String>,
    /// When the call started (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_timestamp: Option<i64>,
    /// When it ended (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_timestamp: Option<i64>,
    /// How long it lasted (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// The conversation as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
    /// The conversation, turn by turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript_object: Option<Vec<Utterance>>,
    /// Where the recording is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_url: Option<String>,
    /// Why the call ended: `user_hangup`, `agent_hangup`, `voicemail_reached`, `dial_busy`,
    /// `dial_no_answer`, `dial_failed`, `error_…` and others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnection_reason: Option<String>,
    /// Retell's analysis, in `call_analyzed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_analysis: Option<CallAnalysis>,
}

/// A call's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Created, not dialled yet.
    Registered,
    /// Dialled and never connected.
    NotConnected,
    /// Under way.
    Ongoing,
    /// Over.
    Ended,
    /// Failed.
    Error,
    /// Missing or a value this version does not know.
    #[default]
    #[serde(other)]
    Unknown,
}

/// One turn of the conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Utterance {
    /// `agent` or `user`.
    #[serde(default)]
    pub role: String,
    /// What was said.
    #[serde(default)]
    pub content: String,
}

/// Retell's post-call analysis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallAnalysis {
    /// A summary of the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_summary: Option<String>,
    /// Whether the call reached a voicemail box.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_voicemail: Option<bool>,
    /// `Positive`, `Neutral`, `Negative` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_sentiment: Option<String>,
    /// Whether the agent reached its goal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_successful: Option<bool>,
}

/// A webhook body: `{"event", "call"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// `call_started`, `call_ended` or `call_analyzed`.
    pub event: String,
    /// The call.
    pub call: Call,
}

// ---------------------------------------------------------------------------------------------
// Reading a call

impl Call {
    /// Switchboard's call key, echoed in the metadata.
    pub fn call_key(&self) -> Option<String> {
        self.metadata
            .get(METADATA_CALL_KEY)?
            .as_str()
            .map(str::to_owned)
    }

    /// Whether the call will not change any more (`ended`, `not_connected` or `error`).
    pub fn is_over(&self) -> bool {
        matches!(
            self.call_status,
            CallState::Ended | CallState::NotConnected | CallState::Error
        )
    }

    /// The conversation as `agent: …` / `user: …` lines.
    fn transcript_lines(&self) -> String {
        match &self.transcript_object {
            Some(turns) => turns
                .iter()
                .filter(|t| !t.content.trim().is_empty())
                .map(|t| format!("{}: {}", t.role.to_ascii_lowercase(), t.content))
                .collect::<Vec<_>>()
                .join("\n"),
            None => self.transcript.clone().unwrap_or_default(),
        }
    }

    fn person_spoke(&self) -> bool {
        match &self.transcript_object {
            Some(turns) => turns
                .iter()
                .any(|t| t.role.eq_ignore_ascii_case("user") && !t.content.trim().is_empty()),
            None => self
                .transcript
                .as_deref()
                .is_some_and(|t| t.lines().any(|l| l.starts_with("User:"))),
        }
    }

    /// What the pipeline makes of a call that is over: the disconnection reason (or Retell's
    /// voicemail flag) tells a call that never reached the person; one in which the person
    /// spoke is analysed even if it ended in an error.
    pub fn event(&self) -> CallEvent {
        let reason = self.disconnection_reason.as_deref().unwrap_or_default();
        let voicemail = reason == "voicemail_reached"
            || self
                .call_analysis
                .as_ref()
                .and_then(|a| a.in_voicemail)
                .unwrap_or(false);
        let not_reached = match reason {
            _ if voicemail => Some(NoConnect::Voicemail),
            "dial_busy" => Some(NoConnect::Busy),
            "dial_no_answer" => Some(NoConnect::NoAnswer),
            _ if self.call_status == CallState::NotConnected => Some(NoConnect::Unknown),
            r if (r.starts_with("dial_") || r.starts_with("error")) && !self.person_spoke() => {
                Some(NoConnect::Unknown)
            }
            _ => None,
        };
        match not_reached {
            Some(reason) => CallEvent::NotConnected {
                call_id: self.call_id.clone(),
                call_key: self.call_key(),
                to_number: Some(self.to_number.clone()).filter(|n| !n.is_empty()),
                reason,
            },
            None => CallEvent::Ended(CallReport {
                call_id: self.call_id.clone(),
                call_key: self.call_key(),
                transcript: self.transcript_lines(),
                duration_secs: self.duration_ms.map(|ms| ms as f64 / 1000.0),
            }),
        }
    }
}

/// Reads a webhook body into a [`CallEvent`]: `call_ended` and `call_analyzed` end the call,
/// anything else is ignored.
pub fn parse_webhook(body: &[u8]) -> Result<CallEvent, serde_json::Error> {
    let webhook: Webhook = serde_json::from_slice(body)?;
    Ok(match webhook.event.as_str() {
        EVENT_CALL_ENDED | EVENT_CALL_ANALYZED => webhook.call.event(),
        _ => CallEvent::Ignored {
            kind: webhook.event,
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Signatures

fn mac(api_key: &str) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(api_key.as_bytes()).expect("HMAC accepts keys of any length")
}

/// Signs a raw webhook body at `timestamp_ms`: the header value `v=<ms>,d=<hex>`.
pub fn sign(api_key: &str, timestamp_ms: i64, body: &[u8]) -> String {
    let mut mac = mac(api_key);
    mac.update(body);
    mac.update(timestamp_ms.to_string().as_bytes());
    format!(
        "v={timestamp_ms},d={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// An `x-retell-signature` check over a raw body fed in pieces: `v=` is the signing time in
/// unix milliseconds (within five minutes of now, either way) and `d=` must equal
/// `hex(HMAC_SHA256(api key, body + v))`, compared in constant time.
pub struct SignatureCheck {
    mac: Hmac<Sha256>,
    timestamp: String,
    digest: String,
}

impl SignatureCheck {
    /// Reads the header at `now_ms`; refuses a missing, malformed or stale one at once.
    pub fn start(api_key: &str, header: &str, now_ms: i64) -> Result<Self, SignatureError> {
        if header.trim().is_empty() {
            return Err(SignatureError::Missing(SIGNATURE_HEADER));
        }
        let (mut timestamp, mut digest) = (None, None);
        for part in header.split(',').map(str::trim) {
            if let Some(v) = part.strip_prefix("v=") {
                timestamp = Some(v);
            } else if let Some(d) = part.strip_prefix("d=") {
                digest = Some(d);
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::Malformed("no v= part"))?;
        let digest = digest.ok_or(SignatureError::Malformed("no d= part"))?;
        let ms: i64 = timestamp
            .parse()
            .map_err(|_| SignatureError::Malformed("v is not an integer"))?;
        if now_ms.abs_diff(ms) > SIGNATURE_TOLERANCE_MS.unsigned_abs() {
            return Err(SignatureError::Stale {
                timestamp: ms,
                now: now_ms,
            });
        }
        Ok(SignatureCheck {
            mac: mac(api_key),
            timestamp: timestamp.to_owned(),
            digest: digest.to_ascii_lowercase(),
        })
    }

    /// Feeds the next piece of the body.
    pub fn update(&mut self, piece: &[u8]) {
        self.mac.update(piece);
    }

    /// Whether `d=` signs the body fed.
    pub fn finish(mut self) -> Result<(), SignatureError> {
        self.mac.update(self.timestamp.as_bytes());
        let expected = hex::encode(self.mac.finalize().into_bytes());
        if bool::from(expected.as_bytes().ct_eq(self.digest.as_bytes())) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

impl BodyCheck for SignatureCheck {
    fn update(&mut self, piece: &[u8]) {
        SignatureCheck::update(self, piece);
    }

    fn finish(self: Box<Self>) -> Result<(), SignatureError> {
        SignatureCheck::finish(*self)
    }
}

/// Verifies a whole body; see [`SignatureCheck`].
pub fn verify(api_key: &str, header: &str, body: &[u8], now_ms: i64) -> Result<(), SignatureError> {
    let mut check = SignatureCheck::start(api_key, header, now_ms)?;
    check.update(body);
    check.finish()
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A Retell error body: `{"message": …}` (some answers say `error_message`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The same, as some endpoints name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

fn status_error(status: u16, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let message = serde_json::from_slice::<ApiErrorBody>(body)
        .ok()
        .and_then(|b| b.message.or(b.error_message))
        .unwrap_or_else(|| excerpt(body));
    ProviderError::Status {
        provider: PROVIDER,
        status,
        code: None,
        message,
        retry_after: retry_after_from_headers(headers),
    }
}

// ---------------------------------------------------------------------------------------------
// Client and provider

/// Retell through its HTTP API (or anything speaking it, like the simulator). Webhooks are
/// signed with the API key.
#[derive(Clone)]
pub struct Retell {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    resilience: Arc<Resilience>,
}

impl std::fmt::Debug for Retell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retell")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

impl Retell {
    /// Retell at `base_url` (e.g. `https://api.retellai.com`), each request giving up after
    /// `timeout`.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>, timeout: Duration) -> Self {
        let http = crate::providers::http_client(timeout);
        Retell {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key: api_key.into(),
            resilience: Arc::new(Resilience::defaults(PROVIDER)),
        }
    }

    /// Uses `resilience` (retries and circuit breaker) for every request.
    pub fn with_resilience(mut self, resilience: Arc<Resilience>) -> Self {
        self.resilience = resilience;
        self
    }

    /// The create-phone-call body for a neutral request. Retell's dynamic variables are
    /// strings; the call key and lead id also go in the metadata, which every webhook echoes.
    pub fn create_request(req: &CallRequest) -> CreatePhoneCall {
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut variables: BTreeMap<String, String> = req
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), text(v)))
            .collect();
        variables.insert(VAR_CALL_KEY.into(), req.call_key.clone());
        let mut metadata = serde_json::Map::new();
        metadata.insert(METADATA_CALL_KEY.into(), req.call_key.clone().into());
        metadata.insert(METADATA_LEAD_ID.into(), req.lead_id.clone().into());
        CreatePhoneCall {
            from_number: req.phone_number_id.clone(),
            to_number: req.to_number.clone(),
            override_agent_id: Some(req.agent_id.clone()),
            retell_llm_dynamic_variables: variables,
            metadata,
        }
    }

    /// Creates a phone call. A 2xx without a call id, or that cannot be read, may have started
    /// the call ([`ProviderError::Ambiguous`]).
    pub async fn create_call(&self, body: &CreatePhoneCall) -> Result<Call, ProviderError> {
        let request = self
            .http
            .post(format!("{}{CREATE_CALL_PATH}", self.base_url))
            .json(body);
        let answer = self.send(Idempotency::OnlyIfNotSent, request).await?;
        let ambiguous = |message: String| ProviderError::Ambiguous {
            provider: PROVIDER,
            message,
        };
        let call: Call = serde_json::from_slice(&answer).map_err(|e| {
            ambiguous(format!(
                "create-phone-call answer: {e} (body: {})",
                excerpt(&answer)
            ))
        })?;
        if call.call_id.is_empty() {
            return Err(ambiguous("no call id in the answer".into()));
        }
        Ok(call)
    }

    /// Looks a call up.
    pub async fn get(&self, call_id: &str) -> Result<Call, ProviderError> {
        let mut url =
            reqwest::Url::parse(&format!("{}{GET_CALL_PATH}", self.base_url)).map_err(|e| {
                ProviderError::InvalidRequest {
                    provider: PROVIDER,
                    message: format!("bad base URL: {e}"),
                }
            })?;
        url.path_segments_mut()
            .map_err(|()| ProviderError::InvalidRequest {
                provider: PROVIDER,
                message: "base URL cannot have a path".into(),
            })?
            .push(call_id);
        let body = self.send(Idempotency::Safe, self.http.get(url)).await?;
        serde_json::from_slice(&body)
            .map_err(|e| ProviderError::decode(PROVIDER, "call", &e, &body))
    }

    async fn send(
        &self,
        idempotency: Idempotency,
        request: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, ProviderError> {
        let request = request.bearer_auth(&self.api_key);
        self.resilience
            .send(idempotency, || self.health(), request, status_error)
            .await
    }

    /// The breaker's probe: a lookup that changes nothing; any answer but an outage (normally
    /// 404) proves the API is up.
    async fn health(&self) -> Result<(), ProviderError> {
        let url = format!("{}{GET_CALL_PATH}/{HEALTH_PROBE_ID}", self.base_url);
        let request = self.http.get(url).bearer_auth(&self.api_key);
        send_once(PROVIDER, request, status_error).await.map(drop)
    }
}

#[async_trait]
impl VoiceProvider for Retell {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    async fn place_call(&self, request: &CallRequest) -> Result<PlacedCall, ProviderError> {
        let call = self.create_call(&Self::create_request(request)).await?;
        Ok(PlacedCall {
            call_id: call.call_id,
        })
    }

    async fn get_call(&self, call_id: &str) -> Result<CallStatus, ProviderError> {
        let call = self.get(call_id).await?;
        Ok(if call.is_over() {
            CallStatus::Finished(call.event())
        } else {
            let state = serde_json::to_value(call.call_status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "unknown".into());
            CallStatus::Pending(state)
        })
    }

    fn webhook_check(
        &self,
        headers: &HeaderMap,
        now_unix: i64,
    ) -> Result<Box<dyn BodyCheck>, SignatureError> {
        let header = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let now_ms = now_unix.saturating_mul(1000);
        Ok(Box::new(SignatureCheck::start(
            &self.api_key,
            header,
            now_ms,
        )?))
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<CallEvent, serde_json::Error> {
        parse_webhook(body)
    }
}

#[cfg(test)]
mod tests;
