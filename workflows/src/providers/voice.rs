//! The voice provider as the pipeline sees it: place a call, look a call up, verify and read the
//! provider's webhooks. Provider-neutral: the steps and the webhook endpoints only use these
//! types; [`ElevenLabs`](super::elevenlabs::ElevenLabs) and [`Retell`](super::retell::Retell)
//! implement them, and each business chooses one ([`VoiceKind`]); both run side by side.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ProviderError;

/// How an agent's phone number is connected to the voice provider.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    /// A Twilio number imported into the provider.
    #[default]
    Twilio,
    /// A SIP trunk.
    Sip,
}

/// Why a call did not connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoConnect {
    NoAnswer,
    Busy,
    Voicemail,
    /// No end-of-call webhook came before the deadline.
    NoWebhook,
    /// The provider said it failed without a reason, or a crash left the outcome unknown.
    Unknown,
}

impl NoConnect {
    /// The name scripts and the call history use.
    pub fn as_str(self) -> &'static str {
        match self {
            NoConnect::NoAnswer => "no_answer",
            NoConnect::Busy => "busy",
            NoConnect::Voicemail => "voicemail",
            NoConnect::NoWebhook => "no_webhook",
            NoConnect::Unknown => "unknown",
        }
    }
}

/// Dynamic variable every call carries with Switchboard's key for it (`<run id>:<attempt>`);
/// providers echo it back, which ties a webhook to its call even when the provider's call id
/// was never recorded (a crash between sending and recording).
pub const VAR_CALL_KEY: &str = "call_key";

/// Which voice provider a business calls through (`voice_provider` in `business.toml`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum VoiceKind {
    /// ElevenLabs Agents.
    #[default]
    Elevenlabs,
    /// Retell AI.
    Retell,
}

impl VoiceKind {
    /// Every provider.
    pub const ALL: [VoiceKind; 2] = [VoiceKind::Elevenlabs, VoiceKind::Retell];

    /// The provider's name: `elevenlabs` or `retell` (also its webhook path's last segment).
    pub fn as_str(self) -> &'static str {
        match self {
            VoiceKind::Elevenlabs => "elevenlabs",
            VoiceKind::Retell => "retell",
        }
    }

    /// The provider named `name`.
    pub fn parse(name: &str) -> Option<VoiceKind> {
        VoiceKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One voice provider as configured in this process.
#[derive(Clone)]
pub struct Voice {
    /// The provider.
    pub provider: Arc<dyn VoiceProvider>,
    /// Whether it is the built-in simulator (then a lead's steering is sent along with its
    /// calls).
    pub simulated: bool,
}

/// Every voice provider of this process, by kind.
#[derive(Clone)]
pub struct Voices {
    /// ElevenLabs.
    pub elevenlabs: Voice,
    /// Retell.
    pub retell: Voice,
}

impl Voices {
    /// The provider of `kind`.
    pub fn get(&self, kind: VoiceKind) -> &Voice {
        match kind {
            VoiceKind::Elevenlabs => &self.elevenlabs,
            VoiceKind::Retell => &self.retell,
        }
    }
}

/// One outbound call to place (recorded before it is sent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRequest {
    /// Switchboard's key for this call attempt (also sent as [`VAR_CALL_KEY`]).
    pub call_key: String,
    /// The lead called (sent as the provider's user id).
    pub lead_id: String,
    /// The provider's agent id.
    pub agent_id: String,
    /// The provider's id of the number that calls.
    pub phone_number_id: String,
    /// How that number is connected.
    pub line: Line,
    /// The number to call, E.164.
    pub to_number: String,
    /// Values for the agent's `{{placeholders}}`.
    pub variables: Map<String, Value>,
    /// The system prompt for this call.
    pub prompt: String,
    /// The agent's first sentence.
    pub first_message: String,
    /// Spoken language, e.g. `en`.
    pub language: String,
    /// Voice override.
    pub voice_id: Option<String>,
    /// How long the phone rings before the provider gives up, in seconds.
    pub ringing_timeout_secs: u32,
}

/// The provider accepted a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedCall {
    /// The provider's id for the call (ElevenLabs' conversation id); webhooks carry it.
    pub call_id: String,
}

/// A finished, connected call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallReport {
    /// The provider's call id.
    pub call_id: String,
    /// Switchboard's call key, when the provider echoed it.
    pub call_key: Option<String>,
    /// The conversation, one `role: text` line per turn.
    pub transcript: String,
    /// How long the call lasted.
    pub duration_secs: Option<f64>,
}

/// What a provider webhook (or a call lookup) says about a call.
#[derive(Clone, Debug, PartialEq)]
pub enum CallEvent {
    /// The call connected and ended: analyse it.
    Ended(CallReport),
    /// The call did not reach the person (busy, no answer, voicemail, failed).
    NotConnected {
        /// The provider's call id.
        call_id: String,
        /// Switchboard's call key, when the provider echoed it.
        call_key: Option<String>,
        /// The number called, when the provider names it (an initiation failure does, and no
        /// call key): it links a call whose answer was never recorded.
        to_number: Option<String>,
        /// Why.
        reason: NoConnect,
    },
    /// The call is over, but the webhook left out what the analysis needs (the transcript, or
    /// the details that tell a voicemail or a failed line apart): read the call from the
    /// provider ([`VoiceProvider::get_call`]).
    Incomplete {
        /// The provider's call id.
        call_id: String,
        /// Switchboard's call key, when the provider echoed it.
        call_key: Option<String>,
    },
    /// The call's recording (base64-decoded audio bytes, e.g. mp3).
    Audio {
        /// The provider's call id.
        call_id: String,
        /// The audio.
        audio: Vec<u8>,
    },
    /// Anything else the provider sends; acknowledged and ignored.
    Ignored {
        /// The provider's event type.
        kind: String,
    },
}

impl CallEvent {
    /// The provider's call id, if the event is about a call.
    pub fn call_id(&self) -> Option<&str> {
        match self {
            CallEvent::Ended(r) => Some(&r.call_id),
            CallEvent::NotConnected { call_id, .. }
            | CallEvent::Incomplete { call_id, .. }
            | CallEvent::Audio { call_id, .. } => Some(call_id),
            CallEvent::Ignored { .. } => None,
        }
    }

    /// Switchboard's call key, when the provider echoed it.
    pub fn call_key(&self) -> Option<&str> {
        match self {
            CallEvent::Ended(r) => r.call_key.as_deref(),
            CallEvent::NotConnected { call_key, .. } | CallEvent::Incomplete { call_key, .. } => {
                call_key.as_deref()
            }
            _ => None,
        }
    }

    /// The number called, when the event names it but no call key.
    pub fn to_number(&self) -> Option<&str> {
        match self {
            CallEvent::NotConnected { to_number, .. } => to_number.as_deref(),
            _ => None,
        }
    }

    /// A short name for logs and answers: `ended`, `not_connected`, `incomplete`, `audio` or the
    /// provider's type.
    pub fn kind(&self) -> &str {
        match self {
            CallEvent::Ended(_) => "ended",
            CallEvent::NotConnected { .. } => "not_connected",
            CallEvent::Incomplete { .. } => "incomplete",
            CallEvent::Audio { .. } => "audio",
            CallEvent::Ignored { kind } => kind,
        }
    }
}

/// What a lookup says about a call.
#[derive(Clone, Debug, PartialEq)]
pub enum CallStatus {
    /// Still ringing, talking or being processed (the provider's state name).
    Pending(String),
    /// Over: [`CallEvent::Ended`] or [`CallEvent::NotConnected`].
    Finished(CallEvent),
}

/// Why a webhook signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header (or an empty one).
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The header does not have the documented shape.
    #[error("malformed signature header: {0}")]
    Malformed(&'static str),
    /// The signed timestamp is too far from now.
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

/// A webhook signature being checked over a body read in pieces.
pub trait BodyCheck: Send {
    /// Feeds the next piece of the raw body.
    fn update(&mut self, piece: &[u8]);

    /// Whether the signature matches the body fed.
    fn finish(self: Box<Self>) -> Result<(), SignatureError>;
}

/// A voice-AI provider that places outbound calls and reports on them by webhook.
#[async_trait]
pub trait VoiceProvider: Send + Sync + 'static {
    /// The provider's name (`elevenlabs`).
    fn name(&self) -> &'static str;

    /// Places a call. An error for which [`ProviderError::may_have_been_acted_on`] holds does not
    /// prove that no call was placed: reconcile before placing another.
    async fn place_call(&self, request: &CallRequest) -> Result<PlacedCall, ProviderError>;

    /// Looks a call up by the provider's id (a 404 status means the provider has no such call).
    async fn get_call(&self, call_id: &str) -> Result<CallStatus, ProviderError>;

    /// Starts checking a webhook's signature at `now_unix`, over a raw body fed in pieces; a
    /// missing, malformed or stale signature header is refused at once.
    fn webhook_check(
        &self,
        headers: &HeaderMap,
        now_unix: i64,
    ) -> Result<Box<dyn BodyCheck>, SignatureError>;

    /// Checks a webhook's signature over the whole raw body, at `now_unix`.
    fn verify_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_unix: i64,
    ) -> Result<(), SignatureError> {
        let mut check = self.webhook_check(headers, now_unix)?;
        check.update(body);
        check.finish()
    }

    /// Reads a verified webhook body.
    fn parse_webhook(&self, body: &[u8]) -> Result<CallEvent, serde_json::Error>;
}
