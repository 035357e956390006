//! The simulated ElevenLabs side: the outbound-call handler, the conversation store and its
//! `GET`, the scripted conversations, outcome choice, and signed webhook delivery.

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
    VAR_CALL_ATTEMPT, VAR_CUSTOMER_NAME, VAR_DELIVER_WEBHOOK, VAR_OUTCOME, VAR_WEBHOOK_DELAY_MS,
    WEBHOOK_ATTEMPTS, WEBHOOK_BACKOFF, WEBHOOK_BACKOFF_MAX,
};
use switchboard_workflows::providers::elevenlabs::{
    self as el, ApiErrorBody, ApiErrorDetail, CallResult, Conversation, ConversationAnalysis,
    ConversationMetadata, ConversationStatus, ErrorDetail, FailureMetadata, FailureReason,
    InitiationFailureData, OutboundCallRequest, OutboundCallResponse, PhoneCall, Role,
    TranscriptTurn, ValidationIssue, WebhookEnvelope,
};
use switchboard_workflows::providers::voice::Line;

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
fn bucket(key: &str) -> u64 {
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

/// One placed call, from which the conversation and webhook are built (a Retell call is
/// scripted the same way and then told in Retell's words).
pub(super) struct SimCall {
    pub(super) req: OutboundCallRequest,
    pub(super) line: Line,
    pub(super) outcome: SimOutcome,
    pub(super) conversation_id: String,
    pub(super) call_sid: String,
    pub(super) started: i64,
}

impl SimCall {
    fn var(&self, name: &str) -> Option<String> {
        let vars = &self
            .req
            .conversation_initiation_client_data
            .dynamic_variables;
        vars.get(name).filter(|v| !v.is_null()).map(text)
    }

    /// Deterministic per (lead, attempt), so a demo replays the same transcript.
    fn hash(&self) -> u64 {
        let user = self
            .req
            .conversation_initiation_client_data
            .user_id
            .as_deref();
        let attempt = self.var(VAR_CALL_ATTEMPT).unwrap_or_default();
        bucket(&format!(
            "{}|{attempt}|script",
            user.unwrap_or(&self.conversation_id)
        ))
    }

    /// `phone_call.type`: `twilio` or `sip_trunking`.
    fn line_kind(&self) -> &'static str {
        match self.line {
            Line::Twilio => "twilio",
            Line::Sip => "sip_trunking",
        }
    }

    /// The media stream's SID (Twilio's `MZ…`), derived from the call's.
    fn stream_sid(&self) -> String {
        format!("MZ{}", &self.call_sid[2..])
    }

    /// The line's result once the call is over.
    fn call_result(&self) -> CallResult {
        match self.outcome {
            SimOutcome::Interested | SimOutcome::NotInterested | SimOutcome::OptOut => {
                CallResult::Answered
            }
            SimOutcome::Voicemail => CallResult::Voicemail,
            SimOutcome::Busy => CallResult::Busy,
            SimOutcome::NoAnswer | SimOutcome::Failed => CallResult::NoAnswer,
        }
    }

    /// The conversation in `status`, with transcript and analysis once it is final.
    fn conversation(&self, status: ConversationStatus) -> Conversation {
        let client = &self.req.conversation_initiation_client_data;
        let mut conversation = Conversation {
            agent_id: self.req.agent_id.clone(),
            conversation_id: self.conversation_id.clone(),
            status,
            user_id: client.user_id.clone(),
            transcript: Some(Vec::new()),
            metadata: Some(ConversationMetadata {
                start_time_unix_secs: Some(self.started),
                phone_call: Some(PhoneCall {
                    kind: Some(self.line_kind().into()),
                    direction: Some("outbound".into()),
                    phone_number_id: Some(self.req.agent_phone_number_id.clone()),
                    agent_number: Some("+15550100000".into()),
                    external_number: Some(self.req.to_number.clone()),
                    call_sid: (self.line == Line::Twilio).then(|| self.call_sid.clone()),
                    stream_sid: (self.line == Line::Twilio).then(|| self.stream_sid()),
                    call_result: status.is_final().then(|| self.call_result()),
                }),
                ..Default::default()
            }),
            conversation_initiation_client_data: Some(client.clone()),
            ..Default::default()
        };
        let connected = matches!(
            self.outcome,
            SimOutcome::Interested
                | SimOutcome::NotInterested
                | SimOutcome::Voicemail
                | SimOutcome::OptOut
        );
        if !status.is_final() || !connected {
            return conversation;
        }
        let name = self
            .var(VAR_CUSTOMER_NAME)
            .unwrap_or_else(|| "there".into());
        let (lines, duration, reason, successful, summary) = match self.outcome {
            SimOutcome::Interested | SimOutcome::NotInterested => {
                let variant = (self.hash() % 2) as usize;
                let script = if self.outcome == SimOutcome::Interested {
                    INTERESTED[variant]
                } else {
                    NOT_INTERESTED[variant]
                };
                let summary = if self.outcome == SimOutcome::Interested {
                    format!(
                        "{name} was receptive, asked about next steps and agreed to a follow-up."
                    )
                } else {
                    format!("{name} declined the offer and the agent closed the call politely.")
                };
                (
                    script,
                    60 + self.hash() % 141,
                    "end_call tool was called",
                    "success",
                    summary,
                )
            }
            SimOutcome::OptOut => (
                OPT_OUT,
                30 + self.hash() % 31,
                "end_call tool was called",
                "failure",
                format!("{name} asked not to be called again."),
            ),
            _ => {
                let summary =
                    format!("The call reached {name}'s voicemail; the agent left a short message.");
                (
                    VOICEMAIL,
                    20 + self.hash() % 16,
                    "voicemail_detected",
                    "failure",
                    summary,
                )
            }
        };
        let first = self.first_message(&name);
        let count = lines.len() as f64 + 1.0;
        let turn = |i: usize, role, message| TranscriptTurn {
            role,
            message,
            time_in_call_secs: (duration as f64 * i as f64 / count).round() as i64,
        };
        let mut transcript = Vec::with_capacity(lines.len() + 2);
        if self.outcome != SimOutcome::Voicemail {
            transcript.push(turn(0, Role::Agent, Some(first)));
        }
        for (i, line) in lines.iter().enumerate() {
            let (role, said) = match line.strip_prefix("U: ") {
                Some(said) => (Role::User, said),
                None => (Role::Agent, line.trim_start_matches("A: ")),
            };
            transcript.push(turn(i + 1, role, Some(said.replace("{name}", &name))));
        }
        transcript.push(turn(lines.len() + 1, Role::Agent, None)); // the end_call tool turn
        conversation.transcript = Some(transcript);
        conversation.has_audio = true;
        conversation.has_user_audio = true;
        conversation.has_response_audio = true;
        if let Some(metadata) = conversation.metadata.as_mut() {
            metadata.call_duration_secs = Some(duration as i64);
            metadata.cost = Some((duration * 10) as i64);
            metadata.termination_reason = Some(reason.into());
        }
        conversation.analysis = Some(ConversationAnalysis {
            call_successful: Some(successful.into()),
            transcript_summary: Some(summary),
            evaluation_criteria_results: json!({}),
            data_collection_results: json!({}),
        });
        conversation
    }

    /// The agent's first message: the override with `{{variables}}` filled in, or a default.
    fn first_message(&self, name: &str) -> String {
        let client = &self.req.conversation_initiation_client_data;
        let template = client
            .conversation_config_override
            .as_ref()
            .and_then(|o| o.agent.as_ref())
            .and_then(|a| a.first_message.clone());
        let Some(mut message) = template else {
            return format!(
                "Hi {name}, this is Alex calling from Switchboard. Do you have a minute?"
            );
        };
        for (key, value) in &client.dynamic_variables {
            message = message.replace(&format!("{{{{{key}}}}}"), &text(value));
        }
        message
    }

    /// The final conversation and the webhook body announcing it.
    pub(super) fn finish(&self) -> (Conversation, Result<Vec<u8>, serde_json::Error>) {
        let now = chrono::Utc::now().timestamp();
        let reason = match self.outcome {
            SimOutcome::Busy => Some(FailureReason::Busy),
            SimOutcome::NoAnswer | SimOutcome::Failed => Some(FailureReason::NoAnswer),
            _ => None,
        };
        let Some(reason) = reason else {
            let conversation = self.conversation(ConversationStatus::Done);
            let kind = el::EVENT_TRANSCRIPTION.to_owned();
            let body = serde_json::to_vec(&WebhookEnvelope {
                kind,
                event_timestamp: now,
                data: &conversation,
            });
            return (conversation, body);
        };
        let mut conversation = self.conversation(ConversationStatus::Failed);
        if let Some(metadata) = conversation.metadata.as_mut() {
            metadata.termination_reason =
                Some(format!("Call initiation failed: {}", reason.as_str()));
        }
        let data = InitiationFailureData {
            agent_id: Some(self.req.agent_id.clone()),
            conversation_id: self.conversation_id.clone(),
            failure_reason: reason,
            metadata: Some(FailureMetadata {
                kind: Some(
                    if self.line == Line::Twilio {
                        "twilio"
                    } else {
                        "sip"
                    }
                    .into(),
                ),
                body: match self.line {
                    Line::Twilio => json!({"CallSid": self.call_sid,
                        "CallStatus": reason.as_str(), "To": self.req.to_number}),
                    Line::Sip => json!({"sip_call_id": self.call_sid,
                        "status": reason.as_str(), "to_number": self.req.to_number}),
                },
            }),
        };
        let kind = el::EVENT_INITIATION_FAILURE.to_owned();
        (
            conversation,
            serde_json::to_vec(&WebhookEnvelope {
                kind,
                event_timestamp: now,
                data,
            }),
        )
    }
}

/// Scripted turns after the agent's first message: `A:` agent, `U:` user; `{name}` is replaced.
const INTERESTED: [&[&str]; 2] = [
    &[
        "U: Hi, yes, I have a few minutes.",
        "A: Great! I'm following up on your enquiry. What are you hoping to solve right now?",
        "U: We need this soon. I'm interested, and we have budget set aside this quarter. Can you send me the pricing?",
        "A: Absolutely, I'll email it today. Would a short walkthrough next week help?",
        "U: Yes, let's schedule a demo for next week.",
        "A: Perfect, you'll get an invite shortly. Thanks, {name}!",
    ],
    &[
        "U: Sure, go ahead.",
        "A: You downloaded our guide last week. Is this something your team is looking at?",
        "U: Yes, it sounds good. We're comparing options and I'd like a free trial first.",
        "A: I can set that up. Shall someone check in with you after the trial?",
        "U: Yes please, call me back next week.",
        "A: Will do. Thanks for your time, {name}.",
    ],
];
const NOT_INTERESTED: [&[&str]; 2] = [
    &[
        "U: Who is this?",
        "A: It's Alex from Switchboard, following up on your enquiry. Is now a good time?",
        "U: No thanks, I'm not interested. We already have a solution.",
        "A: Understood. Would it help if I sent some information for later?",
        "U: No, thank you. Goodbye.",
        "A: Of course, I'll make a note. Have a good day.",
    ],
    &[
        "U: I only have a second.",
        "A: I'll be quick: I'm calling about the enquiry you made last month.",
        "U: It's too expensive for us right now and there's no budget this year. Not interested.",
        "A: Thanks for being upfront, {name}. I'll close this out.",
    ],
];
const OPT_OUT: &[&str] = &[
    "U: Who is this?",
    "A: It's Alex from Switchboard, following up on your enquiry.",
    "U: Please stop calling me. Remove me from your list and don't call again.",
    "A: Understood, {name}. You won't hear from us again. Goodbye.",
];
const VOICEMAIL: &[&str] = &[
    "U: Hi, you've reached {name}. I can't take your call right now, please leave a message after the tone.",
    "A: Hi {name}, this is Alex from Switchboard. Sorry I missed you, I'll try again another time.",
];
