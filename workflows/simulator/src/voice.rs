//! The simulated ElevenLabs side: the outbound-call handler, the conversation store and its
//! `GET`, outcome choice, and signed webhook delivery (the scripted call itself is `call`).

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{
    DEFAULT_DELAY_MS, MAX_DELAY_MS, MAX_STORED_CONVERSATIONS, SimOutcome, Simulator,
    VAR_CALL_ATTEMPT, VAR_DELIVER_WEBHOOK, VAR_OUTCOME, VAR_WEBHOOK_DELAY_MS, WEBHOOK_ATTEMPTS,
    WEBHOOK_BACKOFF, WEBHOOK_BACKOFF_MAX,
};
use switchboard_workflows::providers::elevenlabs::{
    self as el, ApiErrorBody, ApiErrorDetail, Conversation, ConversationStatus, ErrorDetail,
    OutboundCallRequest, OutboundCallResponse, ValidationIssue,
};
use switchboard_workflows::providers::voice::Line;

use super::call::SimCall;

/// How long a connected call stays `processing` after it ends, at most (as long as the call
/// lasted, when shorter).
const MAX_PROCESSING_MS: u64 = 100;

impl Simulator {
    pub(super) fn store(&self, conversation: Conversation) {
        let mut state = self.state();
        let id = conversation.conversation_id.clone();
        if state
            .conversations
            .insert(id.clone(), conversation)
            .is_none()
        {
            state.order.push_back(id);
        }
        while state.order.len() > MAX_STORED_CONVERSATIONS {
            if let Some(old) = state.order.pop_front() {
                state.conversations.remove(&old);
            }
        }
    }

    /// POSTs a webhook signed for `to`, retrying unreachable, 5xx, 408 and 429 answers for
    /// about 13 s.
    pub(super) async fn deliver(&self, to: Webhook, body: Vec<u8>, call_id: &str) {
        let url = &match &to {
            Webhook::ElevenLabs => self.webhook_url(),
            Webhook::Retell { .. } => self.retell_webhook_url(),
        };
        for attempt in 1..=WEBHOOK_ATTEMPTS {
            let (header, signature) = match &to {
                Webhook::ElevenLabs => (
                    el::SIGNATURE_HEADER,
                    el::sign(&self.inner.secret, chrono::Utc::now().timestamp(), &body),
                ),
                Webhook::Retell { api_key } => (
                    switchboard_workflows::providers::retell::SIGNATURE_HEADER,
                    switchboard_workflows::providers::retell::sign(
                        api_key,
                        chrono::Utc::now().timestamp_millis(),
                        &body,
                    ),
                ),
            };
            let sent = self
                .inner
                .http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(header, signature)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    self.delivered(call_id);
                    if r.status() != reqwest::StatusCode::OK {
                        let status = r.status();
                        tracing::warn!(%url, %status, "webhook got {status}; providers count only 200");
                    }
                    return;
                }
                Ok(r)
                    if !(r.status().is_server_error()
                        || matches!(r.status().as_u16(), 408 | 429)) =>
                {
                    let status = r.status();
                    tracing::warn!(%url, call_id, %status, "simulator webhook refused");
                    return;
                }
                Ok(r) => {
                    tracing::debug!(%url, attempt, status = %r.status(), "simulator webhook failed")
                }
                Err(e) => {
                    tracing::debug!(%url, attempt, error = %e, "simulator webhook not delivered")
                }
            }
            if attempt < WEBHOOK_ATTEMPTS {
                let backoff = WEBHOOK_BACKOFF.saturating_mul(2u32.saturating_pow(attempt - 1));
                tokio::time::sleep(backoff.min(WEBHOOK_BACKOFF_MAX)).await;
            }
        }
        tracing::warn!(%url, call_id, "simulator gave up delivering a webhook");
    }
}

/// `POST …/twilio/outbound-call` and `…/sip-trunk/outbound-call` (`line` says which): answers
/// the call's ids (Twilio's `callSid` or the trunk's `sip_call_id`) and ends the call later.
pub(super) async fn outbound_call(
    State(sim): State<Simulator>,
    body: Bytes,
    line: Line,
) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        sim.count(None, "");
        return el_validation(&["body"], "request body is not valid JSON".into());
    };
    let client = value.get("conversation_initiation_client_data");
    let user_id = client
        .and_then(|c| c.get("user_id"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let attempt = client.and_then(|c| c.pointer(&format!("/dynamic_variables/{VAR_CALL_ATTEMPT}")));
    let attempt_key = attempt.map(text).unwrap_or_default();
    let attempt = attempt.and_then(as_u64).unwrap_or(1);
    let seen = sim.count(user_id.as_deref(), &attempt_key);

    let req: OutboundCallRequest = match serde_json::from_value(value) {
        Ok(req) => req,
        Err(e) => return el_validation(&["body"], e.to_string()),
    };
    let vars = &req.conversation_initiation_client_data.dynamic_variables;
    let (outcome, deliver, delay_ms) = match read_steering(vars) {
        Ok((outcome, deliver, delay_ms)) => (
            outcome.unwrap_or_else(|| {
                pick_outcome(user_id.as_deref().unwrap_or(""), attempt, seen <= 1)
            }),
            deliver.unwrap_or(true),
            delay_ms.unwrap_or(DEFAULT_DELAY_MS).min(MAX_DELAY_MS),
        ),
        Err((name, msg)) => {
            let loc = [
                "body",
                "conversation_initiation_client_data",
                "dynamic_variables",
                name,
            ];
            return el_validation(&loc, msg);
        }
    };
    if outcome == SimOutcome::Failed {
        return el_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "call_initiation_failed",
            "Simulated provider failure: the call could not be started".into(),
        );
    }

    if !sim.start_call() {
        let mut answer = el_error(
            StatusCode::TOO_MANY_REQUESTS,
            "concurrent_limit_exceeded",
            "Too many concurrent calls for this plan; wait for calls to end".into(),
        );
        answer
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return answer;
    }
    sim.placed(user_id.as_deref(), &attempt_key);
    let conversation_id = format!("conv_sim_{}", uuid::Uuid::now_v7().simple());
    let call_sid = match line {
        Line::Twilio => format!("CA{:032x}", rand::random::<u128>()),
        Line::Sip => format!("sip_{}", uuid::Uuid::now_v7().simple()),
    };
    let call = SimCall {
        req,
        line,
        outcome,
        conversation_id,
        call_sid,
        started: chrono::Utc::now().timestamp(),
    };
    sim.store(call.conversation(ConversationStatus::InProgress));
    let id = &call.conversation_id;
    tracing::info!(conversation_id = %id, outcome = outcome.as_str(), "simulated call placed");
    let answer = OutboundCallResponse {
        success: true,
        message: Some("Call initiated successfully".into()),
        conversation_id: Some(call.conversation_id.clone()),
        call_sid: (line == Line::Twilio).then(|| call.call_sid.clone()),
        sip_call_id: (line == Line::Sip).then(|| call.call_sid.clone()),
    };
    let task_sim = sim.clone();
    sim.call_unfinished();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let (conversation, body) = call.finish();
        if conversation.status == ConversationStatus::Done {
            // The call is over; the provider analyses it before it is `done` and announced.
            task_sim.store(Conversation {
                status: ConversationStatus::Processing,
                analysis: None,
                ..conversation.clone()
            });
            task_sim.end_call();
            tokio::time::sleep(Duration::from_millis(delay_ms.min(MAX_PROCESSING_MS))).await;
        } else {
            task_sim.end_call();
        }
        task_sim.store(conversation);
        match body {
            Ok(body) if deliver => {
                let id = &call.conversation_id;
                task_sim.deliver(Webhook::ElevenLabs, body, id).await
            }
            Ok(_) => {
                tracing::info!(conversation_id = %call.conversation_id, "webhook withheld")
            }
            Err(e) => tracing::error!(error = %e, "simulated webhook could not be serialised"),
        }
        task_sim.call_finished();
    });
    Json(answer).into_response()
}

pub(super) type Steering = (Option<SimOutcome>, Option<bool>, Option<u64>);

/// Reads the steering variables; `Err` names a variable that is present but unreadable.
pub(super) fn read_steering(vars: &Map<String, Value>) -> Result<Steering, (&'static str, String)> {
    fn steer<T>(
        vars: &Map<String, Value>,
        name: &'static str,
        parse: impl Fn(&Value) -> Option<T>,
    ) -> Result<Option<T>, (&'static str, String)> {
        match vars.get(name).filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => parse(v)
                .map(Some)
                .ok_or_else(|| (name, format!("unreadable value {v}"))),
        }
    }
    Ok((
        steer(vars, VAR_OUTCOME, |v| {
            v.as_str().and_then(SimOutcome::parse)
        })?,
        steer(vars, VAR_DELIVER_WEBHOOK, as_bool)?,
        steer(vars, VAR_WEBHOOK_DELAY_MS, as_u64)?,
    ))
}

pub(super) async fn get_conversation(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
) -> Response {
    let found = sim.state().conversations.get(&id).cloned();
    match found {
        Some(conversation) => Json(conversation).into_response(),
        None => el_error(
            StatusCode::NOT_FOUND,
            "conversation_not_found",
            format!("Conversation {id} not found"),
        ),
    }
}

pub(super) fn el_error(status: StatusCode, code: &str, message: String) -> Response {
    let detail = ErrorDetail {
        kind: Some(
            if status.is_server_error() {
                "internal_error"
            } else {
                "invalid_request"
            }
            .into(),
        ),
        code: Some(code.into()),
        message: Some(message),
        status: Some(json!(status.canonical_reason().unwrap_or("error"))),
        request_id: Some(format!("req_sim_{}", uuid::Uuid::now_v7().simple())),
        param: None,
    };
    (
        status,
        Json(ApiErrorBody {
            detail: ApiErrorDetail::Error(detail),
        }),
    )
        .into_response()
}

pub(super) fn el_validation(loc: &[&str], msg: String) -> Response {
    let issue = ValidationIssue {
        loc: loc.iter().map(|l| json!(l)).collect(),
        msg,
        kind: Some("value_error".into()),
    };
    let body = ApiErrorBody {
        detail: ApiErrorDetail::Validation(vec![issue]),
    };
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

/// Deterministic 0..100 bucket.
pub(super) fn bucket(key: &str) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % 100
}

/// The default outcome mix; see the module docs. `first_try`: no earlier request for this attempt.
pub(super) fn pick_outcome(user_id: &str, attempt: u64, first_try: bool) -> SimOutcome {
    let b = bucket(&format!("{user_id}|{attempt}"));
    if attempt >= 3 {
        return if b < 69 {
            SimOutcome::Interested
        } else {
            SimOutcome::NotInterested
        };
    }
    let b = if b >= 95 && !first_try {
        bucket(&format!("{user_id}|{attempt}|retry")) * 95 / 100
    } else {
        b
    };
    match b {
        0..45 => SimOutcome::Interested,
        45..65 => SimOutcome::NotInterested,
        65..80 => SimOutcome::NoAnswer,
        80..87 => SimOutcome::Busy,
        87..95 => SimOutcome::Voicemail,
        _ => SimOutcome::Failed,
    }
}

pub(super) fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

pub(super) fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_u64().filter(|n| *n <= 1).map(|n| n == 1),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

pub(super) fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Where a webhook goes, signed as its provider signs.
pub(super) enum Webhook {
    /// ElevenLabs' endpoint, with the simulator's secret.
    ElevenLabs,
    /// Retell's endpoint, with the API key the call was placed with.
    Retell { api_key: String },
}
