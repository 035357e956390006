//! ElevenLabs webhooks: the post-call events (transcription, initiation failure, audio) as
//! sent and as received, and their `ElevenLabs-Signature`.

use super::*;

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

impl crate::providers::voice::BodyCheck for SignatureCheck {
    fn update(&mut self, piece: &[u8]) {
        self.mac.update(piece);
    }

    fn finish(self: Box<Self>) -> Result<(), SignatureError> {
        SignatureCheck::finish(*self)
    }
}
