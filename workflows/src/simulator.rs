//! Built-in simulated voice (ElevenLabs) and LLM (OpenAI) providers speaking the real wire formats.
//!
//! Used when no provider keys are configured: the API server mounts [`Simulator::router`] under
//! `/sim` and points the real [`ElevenLabsClient`](crate::providers::elevenlabs::ElevenLabsClient)
//! and [`OpenAiClient`](crate::providers::openai::OpenAiClient) at `http://<server>/sim/elevenlabs`
//! and `http://<server>/sim/openai`, so the whole pipeline runs on the production code path. A
//! placed call later posts a real signed `ElevenLabs-Signature` webhook back to the server.
//!
//! Steering, through the call's dynamic variables (strings, numbers and booleans all accepted):
//! - `sim_outcome`: one of [`SimOutcome`]'s names (`interested`, `not_interested`, `no_answer`,
//!   `busy`, `voicemail`, `failed`). Without it the outcome is a realistic deterministic mix
//!   hashed from (`user_id`, `call_attempt`): ~45% interested, 20% not interested, 15% no answer,
//!   7% busy, 8% voicemail, 5% failed. A simulated `failed` is transient (a retry of the same
//!   attempt connects), and from `call_attempt` 3 on (1 = first call; missing means 1) only
//!   connected conversations are picked, so demo runs terminate quickly.
//! - `sim_deliver_webhook` (default true): false simulates a lost webhook; the conversation still
//!   ends (and `GET conversations/{id}` shows it) so reconciliation can be exercised.
//! - `sim_webhook_delay_ms` (default 300): how long the call "lasts" before it ends.
//!
//! The simulated LLM derives a [`CallAnalysis`] from keywords in the customer's lines. Markers in
//! the user message force the other outcomes: `[sim:refuse]`, `[sim:truncate]`, `[sim:error]`
//! (HTTP 500), `[sim:quota]` (HTTP 429 `insufficient_quota`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::providers::elevenlabs::{
    self as el, ApiErrorBody, ApiErrorDetail, Conversation, ConversationAnalysis,
    ConversationMetadata, ConversationStatus, ErrorDetail, FailureMetadata, FailureReason,
    InitiationFailureData, OutboundCallRequest, OutboundCallResponse, PhoneCall, Role,
    TranscriptTurn, ValidationIssue, WebhookEnvelope,
};
use crate::providers::openai::{
    self, AssistantMessage, CallAnalysis, ChatCompletionRequest, ChatCompletionResponse, Choice,
    CtaInteractions, Dimension, Level, Sentiment, Usage,
};

/// Dynamic variable that forces an outcome.
pub const VAR_OUTCOME: &str = "sim_outcome";
/// Dynamic variable that turns webhook delivery off (`false`).
pub const VAR_DELIVER_WEBHOOK: &str = "sim_deliver_webhook";
/// Dynamic variable with the delay before the call ends, in milliseconds.
pub const VAR_WEBHOOK_DELAY_MS: &str = "sim_webhook_delay_ms";
/// Dynamic variable with the attempt number (1 for the first call).
pub const VAR_CALL_ATTEMPT: &str = "call_attempt";
/// Dynamic variable with the name the agent greets.
pub const VAR_CUSTOMER_NAME: &str = "customer_name";

const DEFAULT_DELAY_MS: u64 = 300;
const MAX_DELAY_MS: u64 = 10 * 60 * 1000;
const WEBHOOK_ATTEMPTS: u32 = 5;
const WEBHOOK_BACKOFF: Duration = Duration::from_millis(200);
const MAX_STORED_CONVERSATIONS: usize = 10_000;

/// How a simulated call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimOutcome {
    /// The customer talks and wants to go on (`post_call_transcription`).
    Interested,
    /// The customer talks and declines (`post_call_transcription`).
    NotInterested,
    /// Nobody picks up (`call_initiation_failure`, `no-answer`).
    NoAnswer,
    /// The line is busy (`call_initiation_failure`, `busy`).
    Busy,
    /// The agent leaves a voicemail (`post_call_transcription`, `voicemail_detected`).
    Voicemail,
    /// The call does not start: the outbound-call request answers HTTP 500.
    Failed,
}

impl SimOutcome {
    /// Every outcome.
    pub const ALL: [SimOutcome; 6] = [
        SimOutcome::Interested,
        SimOutcome::NotInterested,
        SimOutcome::NoAnswer,
        SimOutcome::Busy,
        SimOutcome::Voicemail,
        SimOutcome::Failed,
    ];

    /// The steering name, e.g. `not_interested`.
    pub fn as_str(self) -> &'static str {
        match self {
            SimOutcome::Interested => "interested",
            SimOutcome::NotInterested => "not_interested",
            SimOutcome::NoAnswer => "no_answer",
            SimOutcome::Busy => "busy",
            SimOutcome::Voicemail => "voicemail",
            SimOutcome::Failed => "failed",
        }
    }

    /// Reads a steering name (case and `-`/`_` do not matter).
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

/// A lead's steering of the simulator (demo and tests only; real providers never see it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimSteer {
    /// How the call goes; without it the simulator picks a realistic, deterministic mix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<SimOutcome>,
    /// Whether the end-of-call webhook is posted (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_webhook: Option<bool>,
    /// Delay before the webhook, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_delay_ms: Option<u64>,
}

impl SimSteer {
    /// Adds the steering to a call's dynamic variables, where the simulator reads it.
    pub fn apply_to(&self, vars: &mut Map<String, Value>) {
        if let Some(outcome) = self.outcome {
            vars.insert(VAR_OUTCOME.into(), outcome.as_str().into());
        }
        if let Some(deliver) = self.deliver_webhook {
            vars.insert(VAR_DELIVER_WEBHOOK.into(), deliver.into());
        }
        if let Some(delay) = self.webhook_delay_ms {
            vars.insert(VAR_WEBHOOK_DELAY_MS.into(), delay.into());
        }
    }
}

/// The simulated providers. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    webhook_url: String,
    secret: String,
    http: reqwest::Client,
    state: Mutex<SimState>,
}

#[derive(Default)]
struct SimState {
    total: usize,
    per_lead: HashMap<String, usize>,
    per_attempt: HashMap<(String, String), usize>,
    conversations: HashMap<String, Conversation>,
    order: VecDeque<String>,
}

impl Simulator {
    /// `webhook_url` is the full URL of the server's `POST /api/v1/webhooks/elevenlabs`;
    /// `secret` signs webhooks.
    pub fn new(webhook_url: String, secret: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy() // the webhook goes back to our own server
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let state = Mutex::new(SimState::default());
        Self {
            inner: Arc::new(Inner {
                webhook_url,
                secret,
                http,
                state,
            }),
        }
    }

    /// Routes: `POST /elevenlabs/v1/convai/twilio/outbound-call`,
    /// `GET /elevenlabs/v1/convai/conversations/{id}`, `POST /openai/v1/chat/completions`.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                &format!("/elevenlabs{}", el::OUTBOUND_CALL_PATH),
                post(outbound_call),
            )
            .route(
                &format!("/elevenlabs{}/{{id}}", el::CONVERSATIONS_PATH),
                get(get_conversation),
            )
            .route(
                &format!("/openai{}", openai::CHAT_COMPLETIONS_PATH),
                post(chat_completions),
            )
            .with_state(self.clone())
    }

    /// How many outbound-call requests the simulator received for this lead (keyed by the
    /// request's `user_id`).
    pub fn calls_for(&self, lead_id: &str) -> usize {
        self.state().per_lead.get(lead_id).copied().unwrap_or(0)
    }

    /// Total outbound-call requests received.
    pub fn total_calls(&self) -> usize {
        self.state().total
    }

    fn state(&self) -> MutexGuard<'_, SimState> {
        // Only counters and a cache live here: after a panic elsewhere, keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a request; returns how many requests this (lead, attempt) has had, this one included.
    fn count(&self, user_id: Option<&str>, attempt: &str) -> usize {
        let mut state = self.state();
        state.total += 1;
        let Some(user) = user_id else { return 1 };
        *state.per_lead.entry(user.to_owned()).or_default() += 1;
        let seen = state
            .per_attempt
            .entry((user.to_owned(), attempt.to_owned()))
            .or_default();
        *seen += 1;
        *seen
    }

    fn store(&self, conversation: Conversation) {
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

    /// POSTs a signed webhook, retrying unreachable or 5xx answers a few times.
    async fn deliver(&self, body: Vec<u8>, conversation_id: &str) {
        let url = &self.inner.webhook_url;
        for attempt in 1..=WEBHOOK_ATTEMPTS {
            let signature = el::sign(&self.inner.secret, chrono::Utc::now().timestamp(), &body);
            let sent = self
                .inner
                .http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(el::SIGNATURE_HEADER, signature)
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    if r.status() != reqwest::StatusCode::OK {
                        let status = r.status();
                        tracing::warn!(%url, %status, "webhook got {status}; ElevenLabs counts only 200");
                    }
                    return;
                }
                Ok(r)
                    if !(r.status().is_server_error()
                        || matches!(r.status().as_u16(), 408 | 429)) =>
                {
                    let status = r.status();
                    tracing::warn!(%url, conversation_id, %status, "simulator webhook refused");
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
                tokio::time::sleep(WEBHOOK_BACKOFF * 2u32.pow(attempt - 1)).await;
            }
        }
        tracing::warn!(%url, conversation_id, "simulator gave up delivering a webhook");
    }
}

// ---------------------------------------------------------------------------------------------
// ElevenLabs

async fn outbound_call(State(sim): State<Simulator>, body: Bytes) -> Response {
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

    let conversation_id = format!("conv_sim_{}", uuid::Uuid::now_v7().simple());
    let call_sid = format!("CA{:032x}", rand::random::<u128>());
    let call = SimCall {
        req,
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
        call_sid: Some(call.call_sid.clone()),
        sip_call_id: None,
    };
    let task_sim = sim.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let (conversation, body) = call.finish();
        task_sim.store(conversation);
        match body {
            Ok(body) if deliver => task_sim.deliver(body, &call.conversation_id).await,
            Ok(_) => {
                tracing::info!(conversation_id = %call.conversation_id, "webhook withheld")
            }
            Err(e) => tracing::error!(error = %e, "simulated webhook could not be serialised"),
        }
    });
    Json(answer).into_response()
}

type Steering = (Option<SimOutcome>, Option<bool>, Option<u64>);

/// Reads the steering variables; `Err` names a variable that is present but unreadable.
fn read_steering(vars: &Map<String, Value>) -> Result<Steering, (&'static str, String)> {
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

async fn get_conversation(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
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

fn el_error(status: StatusCode, code: &str, message: String) -> Response {
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

fn el_validation(loc: &[&str], msg: String) -> Response {
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
fn pick_outcome(user_id: &str, attempt: u64, first_try: bool) -> SimOutcome {
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

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

fn as_bool(v: &Value) -> Option<bool> {
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

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// One placed call, from which the conversation and webhook are built.
struct SimCall {
    req: OutboundCallRequest,
    outcome: SimOutcome,
    conversation_id: String,
    call_sid: String,
    started: i64,
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

    /// The conversation in `status`, with transcript and analysis once it is final.
    fn conversation(&self, status: ConversationStatus) -> Conversation {
        let client = &self.req.conversation_initiation_client_data;
        let mut conversation = Conversation {
            agent_id: self.req.agent_id.clone(),
            conversation_id: self.conversation_id.clone(),
            status,
            user_id: client.user_id.clone(),
            metadata: ConversationMetadata {
                start_time_unix_secs: Some(self.started),
                phone_call: Some(PhoneCall {
                    kind: Some("twilio".into()),
                    direction: Some("outbound".into()),
                    phone_number_id: Some(self.req.agent_phone_number_id.clone()),
                    agent_number: Some("+15550100000".into()),
                    external_number: Some(self.req.to_number.clone()),
                    call_sid: Some(self.call_sid.clone()),
                }),
                ..Default::default()
            },
            conversation_initiation_client_data: Some(client.clone()),
            ..Default::default()
        };
        let connected = matches!(
            self.outcome,
            SimOutcome::Interested | SimOutcome::NotInterested | SimOutcome::Voicemail
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
            time_in_call_secs: (duration as f64 * i as f64 / count).round(),
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
        conversation.transcript = transcript;
        conversation.metadata.call_duration_secs = Some(duration as f64);
        conversation.metadata.cost = Some((duration * 10) as f64);
        conversation.metadata.termination_reason = Some(reason.into());
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
    fn finish(&self) -> (Conversation, Result<Vec<u8>, serde_json::Error>) {
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
        conversation.metadata.termination_reason =
            Some(format!("Call initiation failed: {}", reason.as_str()));
        let data = InitiationFailureData {
            agent_id: Some(self.req.agent_id.clone()),
            conversation_id: self.conversation_id.clone(),
            failure_reason: reason,
            metadata: Some(FailureMetadata {
                kind: Some("twilio".into()),
                body: json!({"CallSid": self.call_sid, "CallStatus": reason.as_str(),
                    "To": self.req.to_number}),
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
        "U: No, please don't call again.",
        "A: Of course, I'll make a note. Have a good day.",
    ],
    &[
        "U: I only have a second.",
        "A: I'll be quick: I'm calling about the enquiry you made last month.",
        "U: It's too expensive for us right now and there's no budget this year. Not interested.",
        "A: Thanks for being upfront, {name}. I'll close this out.",
    ],
];
const VOICEMAIL: &[&str] = &[
    "U: Hi, you've reached {name}. I can't take your call right now, please leave a message after the tone.",
    "A: Hi {name}, this is Alex from Switchboard. Sorry I missed you, I'll try again another time.",
];

// ---------------------------------------------------------------------------------------------
// OpenAI

async fn chat_completions(body: Bytes) -> Response {
    let req: ChatCompletionRequest = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(e) => {
            return openai_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                e.to_string(),
            );
        }
    };
    let input = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map_or("", |m| m.content.as_str());
    if input.contains("[sim:quota]") {
        let message =
            "You exceeded your current quota, please check your plan and billing details.";
        return openai_error(
            StatusCode::TOO_MANY_REQUESTS,
            "insufficient_quota",
            Some("insufficient_quota"),
            message.into(),
        );
    }
    if input.contains("[sim:error]") {
        return openai_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            None,
            "Simulated server error".into(),
        );
    }
    let analysis = serde_json::to_string(&analyze_transcript(input)).unwrap_or_default();
    let (content, refusal, finish) = if input.contains("[sim:refuse]") {
        (
            None,
            Some("I'm sorry, but I can't help with that request.".to_owned()),
            "stop",
        )
    } else if input.contains("[sim:truncate]") {
        (Some(analysis.chars().take(40).collect()), None, "length")
    } else {
        (Some(analysis), None, "stop")
    };
    let prompt_tokens = req
        .messages
        .iter()
        .map(|m| m.content.len() / 4 + 4)
        .sum::<usize>() as u32;
    let completion_tokens = (content
        .as_deref()
        .or(refusal.as_deref())
        .map_or(0, str::len)
        / 4) as u32;
    Json(ChatCompletionResponse {
        id: format!("chatcmpl-sim-{}", uuid::Uuid::now_v7().simple()),
        object: "chat.completion".into(),
        created: chrono::Utc::now().timestamp(),
        model: req.model,
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".into(),
                content,
                refusal,
            },
            finish_reason: Some(finish.into()),
        }],
        usage: Some(Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }),
    })
    .into_response()
}

fn openai_error(status: StatusCode, kind: &str, code: Option<&str>, message: String) -> Response {
    let error = openai::ApiError {
        message,
        kind: Some(kind.into()),
        param: None,
        code: code.map(Into::into),
    };
    (status, Json(openai::ApiErrorBody { error })).into_response()
}

/// Customer phrases that count against the lead, with the objection they express.
const NEGATIVE: &[(&str, Option<&str>)] = &[
    ("not interested", Some("Not interested")),
    ("no thanks", None),
    ("don't call", Some("Asked not to be called again")),
    ("do not call", Some("Asked not to be called again")),
    ("remove me", Some("Asked not to be called again")),
    ("too expensive", Some("Price is too high")),
    ("no budget", Some("No budget")),
    ("already have", Some("Already has a solution")),
    ("already use", Some("Already has a solution")),
    ("not a good time", Some("Bad timing")),
];
const POSITIVE: &[&str] = &[
    "interested",
    "yes",
    "sure",
    "sounds good",
    "great",
    "let's",
    "send me",
    "pricing",
    "demo",
    "trial",
    "sample",
    "call me back",
    "next week",
];
const URGENT: &[&str] = &[
    "soon",
    "this quarter",
    "asap",
    "urgent",
    "right away",
    "this month",
];
const BUDGET: &[&str] = &[
    "budget set aside",
    "have budget",
    "budget approved",
    "can afford",
];
const VOICEMAIL_CUES: &[&str] = &["leave a message", "after the tone", "voicemail"];
const CUSTOMER_LABELS: &[&str] = &[
    "user", "customer", "lead", "prospect", "patient", "caller", "client",
];
const AGENT_LABELS: &[&str] = &["agent", "assistant", "ai", "bot"];

/// The customer's lines when the transcript labels speakers (`User: …`), else the whole text.
fn customer_text(input: &str) -> (String, usize) {
    let label = |line: &str| {
        line.split_once(':')
            .map(|(l, _)| l.trim().to_ascii_lowercase())
    };
    let is = |line: &str, set: &[&str]| label(line).is_some_and(|l| set.contains(&l.as_str()));
    let lines: Vec<&str> = input.lines().collect();
    let picked: Vec<&str> = if lines.iter().any(|l| is(l, CUSTOMER_LABELS)) {
        lines
            .into_iter()
            .filter(|l| is(l, CUSTOMER_LABELS))
            .collect()
    } else if lines.iter().any(|l| is(l, AGENT_LABELS)) {
        lines.into_iter().filter(|l| !is(l, AGENT_LABELS)).collect()
    } else {
        lines
    };
    let count = picked.iter().filter(|l| !l.trim().is_empty()).count();
    // Words only, space-separated and space-padded, so phrases match on word boundaries.
    let words: String = picked
        .join("\n")
        .replace('’', "'")
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect();
    (
        format!(
            " {} ",
            words.split_whitespace().collect::<Vec<_>>().join(" ")
        ),
        count,
    )
}

/// A deterministic analysis from keywords: positive phrases raise the scores, declines lower them.
fn analyze_transcript(input: &str) -> CallAnalysis {
    let said_has = |said: &str, phrase: &str| said.contains(&format!(" {phrase} "));
    let (mut said, lines) = customer_text(input);
    let voicemail = VOICEMAIL_CUES.iter().any(|c| said_has(&said, c));
    let mut objections: Vec<String> = Vec::new();
    let mut negatives = Vec::new();
    for (phrase, objection) in NEGATIVE {
        if said_has(&said, phrase) {
            negatives.push(*phrase);
            if let Some(o) = objection.filter(|o| !objections.iter().any(|x| x == o)) {
                objections.push(o.to_string());
            }
            said = said.replace(&format!(" {phrase} "), " ");
        }
    }
    let found = |set: &[&'static str]| {
        set.iter()
            .copied()
            .filter(|p| said_has(&said, p))
            .collect::<Vec<_>>()
    };
    let (positives, urgent, budget) = (found(POSITIVE), found(URGENT), found(BUDGET));
    let (pos, neg) = (positives.len() as i64, negatives.len() as i64);
    let score = |v: i64| v.clamp(0, 100) as u8;
    let dim = |score: u8, reasoning: String| Dimension {
        level: if score >= 70 {
            Level::High
        } else if score >= 40 {
            Level::Medium
        } else {
            Level::Low
        },
        score,
        reasoning,
    };
    let signals = format!(
        "customer signals: positive [{}], negative [{}]",
        positives.join(", "),
        negatives.join(", ")
    );
    let has = |words: &[&str]| words.iter().any(|w| said_has(&said, w));
    let cta = CtaInteractions {
        pricing: has(&["pricing", "price", "cost"]),
        demo: has(&["demo", "walkthrough"]),
        follow_up: has(&[
            "follow up",
            "follow-up",
            "call me back",
            "call back",
            "next week",
        ]),
        sample: has(&["sample", "trial"]),
        escalated_to_human: has(&["human", "real person", "manager", "representative"]),
    };
    if voicemail || lines == 0 {
        let why = if voicemail {
            "The call reached voicemail"
        } else {
            "The customer said nothing"
        };
        return CallAnalysis {
            summary: format!("{why}; no conversation took place."),
            sentiment: Sentiment::Neutral,
            objections: Vec::new(),
            next_action: "Call back at a different time of day.".into(),
            intent: dim(20, format!("{why}.")),
            urgency: dim(10, format!("{why}.")),
            budget: dim(20, format!("{why}.")),
            fit: dim(40, format!("{why}.")),
            engagement: dim(5, format!("{why}.")),
            cta: CtaInteractions {
                pricing: false,
                demo: false,
                follow_up: false,
                sample: false,
                escalated_to_human: false,
            },
        };
    }
    let sentiment = if neg > 0 && neg >= pos {
        Sentiment::Negative
    } else if pos >= 2 && pos > neg {
        Sentiment::Positive
    } else {
        Sentiment::Neutral
    };
    let do_not_call = objections.iter().any(|o| o.starts_with("Asked not"));
    let next_action = match sentiment {
        _ if do_not_call => "Do not call again; mark the lead as disqualified.",
        Sentiment::Negative => {
            "Close out for now; nurture with a light-touch follow-up in a few months."
        }
        _ if cta.demo => "Send the demo invite and the pricing sheet.",
        Sentiment::Positive => "Follow up within two days with the requested information.",
        Sentiment::Neutral => "Try again in a few days.",
    };
    let mood = match sentiment {
        Sentiment::Positive => "was receptive",
        Sentiment::Neutral => "was non-committal",
        Sentiment::Negative => "was not interested",
    };
    let mut summary = format!("The customer {mood}.");
    if !objections.is_empty() {
        summary.push_str(&format!(
            " Objections: {}.",
            objections.join(", ").to_lowercase()
        ));
    }
    let wants: Vec<&str> = [
        (cta.pricing, "pricing"),
        (cta.demo, "a demo"),
        (cta.sample, "a trial"),
        (cta.follow_up, "a follow-up"),
    ]
    .into_iter()
    .filter_map(|(on, what)| on.then_some(what))
    .collect();
    if !wants.is_empty() {
        summary.push_str(&format!(" They asked for {}.", wants.join(", ")));
    }
    let budget_no = objections
        .iter()
        .any(|o| o == "No budget" || o == "Price is too high");
    CallAnalysis {
        summary,
        sentiment,
        objections,
        next_action: next_action.into(),
        intent: dim(score(45 + 10 * pos - 25 * neg), signals.clone()),
        urgency: dim(
            score(30 + 25 * urgent.len() as i64 - 15 * neg),
            format!("urgency cues: [{}]", urgent.join(", ")),
        ),
        budget: dim(
            score(40 + 35 * budget.len() as i64 - if budget_no { 35 } else { 0 }),
            format!(
                "budget cues: [{}]{}",
                budget.join(", "),
                if budget_no {
                    "; budget objection raised"
                } else {
                    ""
                }
            ),
        ),
        fit: dim(score(50 + 5 * pos - 15 * neg), signals),
        engagement: dim(
            score(20 + 10 * lines.min(4) as i64 + 5 * pos - 5 * neg),
            format!("{lines} customer turns"),
        ),
        cta,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::elevenlabs::{
        ClientData, ElevenLabsClient, WebhookEvent, parse_webhook, verify,
    };
    use crate::providers::error::ProviderError;
    use crate::providers::openai::{AnalysisOutcome, OpenAiClient};
    use tokio::sync::mpsc;

    const SECRET: &str = "sim-secret";
    const WAIT: Duration = Duration::from_secs(10);

    struct TestApp {
        sim: Simulator,
        voice: ElevenLabsClient,
        llm: OpenAiClient,
        webhooks: mpsc::UnboundedReceiver<WebhookEvent>,
    }

    /// Serves the simulator and a webhook receiver that verifies signatures; `fail_first`
    /// webhook requests are answered 503.
    async fn spawn_app(fail_first: usize) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let sim = Simulator::new(format!("{base}/api/v1/webhooks/elevenlabs"), SECRET.into());
        let (tx, webhooks) = mpsc::unbounded_channel();
        let failures = Arc::new(std::sync::atomic::AtomicUsize::new(fail_first));
        let receiver = move |headers: axum::http::HeaderMap, body: Bytes| async move {
            let header = headers
                .get(el::SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let verified = verify(SECRET, header, &body, chrono::Utc::now().timestamp());
            assert_eq!(verified, Ok(()), "webhook signature");
            let left = failures.load(std::sync::atomic::Ordering::SeqCst);
            if left > 0 {
                failures.store(left - 1, std::sync::atomic::Ordering::SeqCst);
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            tx.send(parse_webhook(&body).expect("webhook parses")).ok();
            StatusCode::OK
        };
        let app = Router::new()
            .route("/api/v1/webhooks/elevenlabs", post(receiver))
            .nest("/sim", sim.router());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        let voice = ElevenLabsClient::new(
            format!("{base}/sim/elevenlabs"),
            "xi-key",
            Duration::from_secs(5),
        );
        let llm = OpenAiClient::new(
            format!("{base}/sim/openai"),
            "sk-sim",
            "gpt-sim",
            Duration::from_secs(5),
        );
        TestApp {
            sim,
            voice,
            llm,
            webhooks,
        }
    }

    fn call(lead: &str, vars: Value) -> OutboundCallRequest {
        OutboundCallRequest {
            agent_id: "agent_sim".into(),
            agent_phone_number_id: "phnum_sim".into(),
            to_number: "+14155552671".into(),
            conversation_initiation_client_data: ClientData {
                user_id: Some(lead.into()),
                dynamic_variables: vars.as_object().cloned().unwrap_or_default(),
                conversation_config_override: None,
            },
            telephony_call_config: None,
        }
    }

    impl TestApp {
        async fn next_webhook(&mut self) -> WebhookEvent {
            tokio::time::timeout(WAIT, self.webhooks.recv())
                .await
                .expect("webhook in time")
                .expect("channel open")
        }

        async fn place(&self, lead: &str, vars: Value) -> String {
            let answer = self
                .voice
                .outbound_call(&call(lead, vars))
                .await
                .expect("call placed");
            assert!(answer.call_sid.is_some_and(|s| s.starts_with("CA")));
            answer.conversation_id.expect("conversation id")
        }
    }

    fn transcript_text(c: &Conversation) -> String {
        let line = |t: &TranscriptTurn| t.message.as_ref().map(|m| format!("{:?}: {m}", t.role));
        c.transcript
            .iter()
            .filter_map(line)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[tokio::test]
    async fn interested_call_posts_signed_transcription_and_analyses() {
        let mut app = spawn_app(0).await;
        let vars = json!({"sim_outcome": "interested", "sim_webhook_delay_ms": "0", "customer_name": "Ada"});
        let id = app.place("lead-1", vars).await;
        assert!(id.starts_with("conv_sim_"));
        let event = app.next_webhook().await;
        assert_eq!(event.conversation_id(), Some(id.as_str()));
        let WebhookEvent::Transcription(conversation) = event else {
            panic!("not a transcription")
        };
        assert_eq!(conversation.status, ConversationStatus::Done);
        assert_eq!(conversation.user_id.as_deref(), Some("lead-1"));
        assert!(
            conversation.transcript[0]
                .message
                .as_deref()
                .is_some_and(|m| m.contains("Ada"))
        );
        assert!(conversation.transcript.len() >= 6);
        assert!(conversation.transcript.iter().any(|t| t.message.is_none()));
        let duration = conversation.metadata.call_duration_secs.expect("duration");
        assert!((60.0..=200.0).contains(&duration), "{duration}");
        assert_eq!(
            conversation.metadata.termination_reason.as_deref(),
            Some("end_call tool was called")
        );
        let phone = conversation
            .metadata
            .phone_call
            .clone()
            .expect("phone call");
        assert_eq!(phone.external_number.as_deref(), Some("+14155552671"));
        let analysis = conversation.analysis.clone().expect("analysis");
        assert_eq!(analysis.call_successful.as_deref(), Some("success"));
        let echoed = conversation
            .conversation_initiation_client_data
            .clone()
            .expect("client data");
        assert_eq!(echoed.dynamic_variables["customer_name"], "Ada");
        assert_eq!(
            app.voice.get_conversation(&id).await.expect("stored"),
            conversation
        );
        assert_eq!(
            (
                app.sim.calls_for("lead-1"),
                app.sim.calls_for("lead-2"),
                app.sim.total_calls()
            ),
            (1, 0, 1)
        );

        let outcome = app
            .llm
            .analyze("Analyse this call.", &transcript_text(&conversation))
            .await
            .expect("answered");
        let AnalysisOutcome::Parsed(analysis) = outcome else {
            panic!("not parsed: {outcome:?}")
        };
        assert_eq!(
            (analysis.sentiment, analysis.intent.level),
            (Sentiment::Positive, Level::High)
        );
        assert!(analysis.cta.demo || analysis.cta.sample);
    }

    #[tokio::test]
    async fn steering_outcomes_and_counts() {
        let mut app = spawn_app(0).await;
        // Lost webhook: the conversation still ends, but nothing is posted.
        let lost = app.place("lead-a", json!({"sim_outcome": "not_interested", "sim_deliver_webhook": "false", "sim_webhook_delay_ms": 0})).await;
        tokio::time::timeout(WAIT, async {
            while !app
                .voice
                .get_conversation(&lost)
                .await
                .expect("stored")
                .status
                .is_final()
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("conversation ends");

        let voicemail = app
            .place(
                "lead-b",
                json!({"sim_outcome": "voicemail", "sim_webhook_delay_ms": 0}),
            )
            .await;
        let WebhookEvent::Transcription(c) = app.next_webhook().await else {
            panic!("not a transcription")
        };
        assert_eq!(
            c.conversation_id, voicemail,
            "the withheld webhook must not arrive"
        );
        assert_eq!(
            c.metadata.termination_reason.as_deref(),
            Some("voicemail_detected")
        );
        assert_eq!(
            c.analysis.and_then(|a| a.call_successful).as_deref(),
            Some("failure")
        );

        for (outcome, reason) in [
            ("busy", FailureReason::Busy),
            ("no_answer", FailureReason::NoAnswer),
        ] {
            let id = app.place("lead-c", json!({"sim_outcome": outcome, "sim_deliver_webhook": true, "sim_webhook_delay_ms": "5"})).await;
            let event = app.next_webhook().await;
            let expected = WebhookEvent::InitiationFailure {
                conversation_id: id.clone(),
                agent_id: Some("agent_sim".into()),
                reason,
            };
            assert_eq!(event, expected);
            let stored = app.voice.get_conversation(&id).await.expect("stored");
            assert_eq!(
                (stored.status, stored.transcript.len()),
                (ConversationStatus::Failed, 0)
            );
        }

        let pending = app
            .place(
                "lead-d",
                json!({"sim_outcome": "interested", "sim_webhook_delay_ms": 600000}),
            )
            .await;
        let stored = app.voice.get_conversation(&pending).await.expect("stored");
        assert_eq!(
            (stored.status, stored.transcript.len()),
            (ConversationStatus::InProgress, 0)
        );

        let failed = app
            .voice
            .outbound_call(&call("lead-e", json!({"sim_outcome": "failed"})))
            .await;
        let err = failed.expect_err("call did not start");
        assert_eq!(
            (err.status(), err.code()),
            (Some(500), Some("call_initiation_failed"))
        );
        assert!(err.is_retryable());
        let bad = app
            .voice
            .outbound_call(&call("lead-e", json!({"sim_outcome": "maybe"})))
            .await;
        let err = bad.expect_err("unknown outcome");
        assert!(
            err.status() == Some(422)
                && !err.is_retryable()
                && err.to_string().contains("sim_outcome"),
            "{err}"
        );
        let missing = app
            .voice
            .get_conversation("conv_nope")
            .await
            .expect_err("unknown id");
        assert_eq!(
            (missing.status(), missing.code()),
            (Some(404), Some("conversation_not_found"))
        );

        let counts: Vec<usize> = ["lead-a", "lead-b", "lead-c", "lead-d", "lead-e"]
            .iter()
            .map(|l| app.sim.calls_for(l))
            .collect();
        assert_eq!(counts, [1, 1, 2, 1, 2]);
        assert_eq!(app.sim.total_calls(), 7);
        assert!(app.webhooks.try_recv().is_err(), "no stray webhook");
    }

    #[tokio::test]
    async fn webhook_delivery_retries_on_5xx() {
        let mut app = spawn_app(2).await;
        let id = app
            .place(
                "lead-r",
                json!({"sim_outcome": "busy", "sim_webhook_delay_ms": 0}),
            )
            .await;
        assert_eq!(
            app.next_webhook().await.conversation_id(),
            Some(id.as_str())
        );
    }

    #[tokio::test]
    async fn llm_outcomes() {
        let app = spawn_app(0).await;
        let decline = "Agent: Hi Bo, do you have a minute for a demo?\nUser: No thanks, not interested. It's too expensive.\nUser: Please don't call again.";
        let outcome = app
            .llm
            .analyze("Analyse.", decline)
            .await
            .expect("answered");
        let AnalysisOutcome::Parsed(a) = outcome else {
            panic!("not parsed: {outcome:?}")
        };
        assert_eq!(
            (a.sentiment, a.intent.level),
            (Sentiment::Negative, Level::Low)
        );
        assert!(!a.cta.demo, "agent lines do not count");
        assert!(a.objections.contains(&"Price is too high".to_owned()));
        assert!(a.next_action.starts_with("Do not call"));

        let refused = app
            .llm
            .analyze("s", "[sim:refuse]")
            .await
            .expect("answered");
        assert!(matches!(refused, AnalysisOutcome::Refused(_)));
        let truncated = app
            .llm
            .analyze("s", "User: yes [sim:truncate]")
            .await
            .expect("answered");
        assert_eq!(
            truncated,
            AnalysisOutcome::Truncated {
                finish_reason: "length".into()
            }
        );
        let quota = app
            .llm
            .analyze("s", "[sim:quota]")
            .await
            .expect_err("quota");
        assert!(
            matches!(quota, ProviderError::Status { status: 429, .. }) && !quota.is_retryable()
        );
        let down = app
            .llm
            .analyze("s", "[sim:error]")
            .await
            .expect_err("server error");
        assert!(down.is_retryable());
        let voicemail = app
            .llm
            .analyze("s", "User: please leave a message after the tone")
            .await
            .expect("answered");
        assert!(
            matches!(voicemail, AnalysisOutcome::Parsed(a) if a.engagement.level == Level::Low)
        );
    }

    #[test]
    fn default_mix_is_deterministic_realistic_and_terminates() {
        let mut counts: HashMap<SimOutcome, usize> = HashMap::new();
        for i in 0..4000 {
            let lead = format!("lead-{i}");
            let outcome = pick_outcome(&lead, 1, true);
            assert_eq!(outcome, pick_outcome(&lead, 1, true));
            assert_ne!(
                pick_outcome(&lead, 1, false),
                SimOutcome::Failed,
                "failures are transient"
            );
            for attempt in 3..6 {
                let later = pick_outcome(&lead, attempt, true);
                assert!(
                    matches!(later, SimOutcome::Interested | SimOutcome::NotInterested),
                    "{later:?}"
                );
            }
            *counts.entry(outcome).or_default() += 1;
        }
        let share = |o| counts.get(&o).copied().unwrap_or(0) as f64 / 4000.0;
        for (outcome, expected) in [
            (SimOutcome::Interested, 0.45),
            (SimOutcome::NotInterested, 0.20),
            (SimOutcome::NoAnswer, 0.15),
            (SimOutcome::Busy, 0.07),
            (SimOutcome::Voicemail, 0.08),
            (SimOutcome::Failed, 0.05),
        ] {
            assert!(
                (share(outcome) - expected).abs() < 0.03,
                "{outcome:?}: {}",
                share(outcome)
            );
        }
    }

    #[test]
    fn keywords_match_whole_words() {
        let a = analyze_transcript("User: Yesterday's pressure was a democracy thing.");
        assert_eq!((a.sentiment, a.cta.demo), (Sentiment::Neutral, false));
        let a = analyze_transcript("Customer: No, thanks. NOT interested!");
        assert_eq!(a.sentiment, Sentiment::Negative);
    }

    #[test]
    fn steering_values_are_lenient() {
        assert_eq!(
            (
                as_bool(&json!("false")),
                as_bool(&json!(true)),
                as_bool(&json!(1))
            ),
            (Some(false), Some(true), Some(true))
        );
        assert_eq!(as_bool(&json!("perhaps")), None);
        assert_eq!(
            (
                as_u64(&json!("250")),
                as_u64(&json!(250)),
                as_u64(&json!(-1))
            ),
            (Some(250), Some(250), None)
        );
        assert_eq!(SimOutcome::parse(" No-Answer"), Some(SimOutcome::NoAnswer));
    }
}
