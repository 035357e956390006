//! Provider call events, below the HTTP layer: a verified webhook body is parsed, tied to its
//! call and delivered, once, to the run waiting on it. A call whose answer was never recorded (a
//! timeout or a crash after the request was sent) is waited on by its call key, which the
//! provider echoes (or, for a call that never connected, found by the number called): its
//! provider id is recorded and that wait is resumed too. Webhooks and dead-letter replays both
//! come through [`receive`].

use serde_json::Value;
use switchboard_engine::{Delivery, Engine, EngineError, ExternalEvent};
use tracing::info;

use crate::lead_call::CALL_EVENT;
use crate::providers::voice::{CallEvent, VoiceProvider};
use crate::store::calls;

/// What a call event came to.
#[derive(Debug)]
pub enum Received {
    /// Recorded (and, when a run waited on it, resumed that run) or seen before.
    Delivered(Delivery),
    /// The call's recording, for the caller to keep.
    Audio { call_id: String, audio: Vec<u8> },
    /// An event the pipeline has no use for (its type).
    Ignored { kind: String },
}

/// Why a call event was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum CallEventError {
    /// The body is not an event of the provider's.
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Store(#[from] EngineError),
}

/// Parses `body` (its signature already verified) as an event of `voice`'s and delivers it.
pub async fn receive(
    engine: &Engine,
    voice: &dyn VoiceProvider,
    body: &[u8],
) -> Result<Received, CallEventError> {
    let malformed = |e: &dyn std::fmt::Display| CallEventError::Malformed(e.to_string());
    let event = voice.parse_webhook(body).map_err(|e| malformed(&e))?;
    let call_id = match event {
        CallEvent::Audio { call_id, audio } => return Ok(Received::Audio { call_id, audio }),
        CallEvent::Ignored { kind } => return Ok(Received::Ignored { kind }),
        ref event => event.call_id().unwrap_or_default().to_owned(),
    };
    if call_id.is_empty() {
        return Err(malformed(&"the event names no call"));
    }
    let payload: Value = serde_json::from_slice(body).map_err(|e| malformed(&e))?;
    let deliver = |key: String, dedupe_key: String| {
        engine.deliver(ExternalEvent {
            kind: CALL_EVENT.into(),
            key,
            dedupe_key,
            payload: payload.clone(),
        })
    };
    let dedupe = format!("{}:{}:{call_id}", voice.name(), event.kind());
    let db = engine.db();
    let call_key = match (event.call_key(), event.to_number()) {
        (Some(key), _) => Some(key.to_owned()),
        (None, Some(to_number)) => calls::unanswered_call_to(db, to_number, &call_id).await?,
        (None, None) => None,
    };
    if let Some(call_key) = call_key.as_deref()
        && calls::adopt_conversation(db, call_key, &call_id).await?
    {
        info!(%call_id, call_key, "webhook names a call whose answer was never recorded");
        deliver(call_key.to_owned(), format!("{dedupe}:by-call-key")).await?;
    }
    let delivery = deliver(call_id.clone(), dedupe).await?;
    info!(%call_id, kind = event.kind(), delivery = ?delivery, "voice webhook");
    Ok(Received::Delivered(delivery))
}
