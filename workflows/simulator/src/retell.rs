//! The simulated Retell side: create-phone-call, get-call, and the signed `call_ended` webhook.
//! A call is scripted as the ElevenLabs side scripts it and told in Retell's words: its call
//! object, statuses and disconnection reasons; the webhook is signed with the API key the call
//! was placed with, as Retell signs with the account's key.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::call::SimCall;
use super::voice::{Webhook, pick_outcome, read_steering, text};
use super::{
    DEFAULT_DELAY_MS, MAX_DELAY_MS, MAX_STORED_CONVERSATIONS, SimOutcome, Simulator,
    VAR_CALL_ATTEMPT,
};
use switchboard_workflows::providers::elevenlabs::{
    ClientData, Conversation, OutboundCallRequest, Role, TranscriptTurn,
};
use switchboard_workflows::providers::retell::Call;
use switchboard_workflows::providers::retell::{
    CallAnalysis, CallState, CreatePhoneCall, EVENT_CALL_ENDED, METADATA_LEAD_ID, Utterance,
    Webhook as RetellWebhook,
};
use switchboard_workflows::providers::voice::Line;

impl Simulator {
    fn store_retell(&self, call: Call) {
        let mut state = self.state();
        let id = call.call_id.clone();
        if state.retell_calls.insert(id.clone(), call).is_none() {
            state.retell_order.push_back(id);
        }
        while state.retell_order.len() > MAX_STORED_CONVERSATIONS {
            if let Some(old) = state.retell_order.pop_front() {
                state.retell_calls.remove(&old);
            }
        }
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "status": status.as_u16(), "message": message.into() })),
    )
        .into_response()
}

/// `POST /v2/create-phone-call`: `201` with the registered call; the call ends (and its webhook
/// is posted) after the steered or picked delay.
pub(super) async fn create_phone_call(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let api_key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    if api_key.is_empty() {
        return error(StatusCode::UNAUTHORIZED, "API key is missing");
    }
    let req: CreatePhoneCall = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {e}"),
            );
        }
    };
    let vars: Map<String, Value> = req
        .retell_llm_dynamic_variables
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        .collect();
    let lead = req.metadata.get(METADATA_LEAD_ID).map(text);
    let attempt_key = vars.get(VAR_CALL_ATTEMPT).map(text).unwrap_or_default();
    let attempt = attempt_key.parse().unwrap_or(1);
    let seen = sim.count(lead.as_deref(), &attempt_key);
    let (outcome, deliver, delay_ms) = match read_steering(&vars) {
        Ok((outcome, deliver, delay)) => (
            outcome
                .unwrap_or_else(|| pick_outcome(lead.as_deref().unwrap_or(""), attempt, seen <= 1)),
            deliver.unwrap_or(true),
            delay.unwrap_or(DEFAULT_DELAY_MS).min(MAX_DELAY_MS),
        ),
        Err((name, msg)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("retell_llm_dynamic_variables.{name}: {msg}"),
            );
        }
    };
    if outcome == SimOutcome::Failed {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Simulated provider failure: the call could not be created",
        );
    }
    if !sim.start_call() {
        let mut answer = error(StatusCode::TOO_MANY_REQUESTS, "Concurrency limit reached");
        answer
            .headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        return answer;
    }
    sim.placed(lead.as_deref(), &attempt_key);
    let call_id = format!("call_{}", uuid::Uuid::now_v7().simple());
    let registered = Call {
        call_id: call_id.clone(),
        call_type: "phone_call".into(),
        agent_id: req.override_agent_id.clone().unwrap_or_default(),
        call_status: CallState::Registered,
        direction: Some("outbound".into()),
        from_number: req.from_number.clone(),
        to_number: req.to_number.clone(),
        metadata: req.metadata.clone(),
        retell_llm_dynamic_variables: req.retell_llm_dynamic_variables.clone(),
        ..Call::default()
    };
    sim.store_retell(registered.clone());
    // Scripted as an ElevenLabs conversation, told below in Retell's words.
    let script = SimCall {
        req: OutboundCallRequest {
            agent_id: registered.agent_id.clone(),
            agent_phone_number_id: req.from_number.clone(),
            to_number: req.to_number.clone(),
            conversation_initiation_client_data: ClientData {
                user_id: lead.clone(),
                dynamic_variables: vars,
                conversation_config_override: None,
            },
            telephony_call_config: None,
        },
        line: Line::Twilio,
        outcome,
        conversation_id: call_id.clone(),
        call_sid: format!("CA{:032x}", rand::random::<u128>()),
        started: chrono::Utc::now().timestamp(),
    };
    tracing::info!(%call_id, outcome = outcome.as_str(), "simulated Retell call placed");
    let task_sim = sim.clone();
    let mut ongoing = registered.clone();
    ongoing.call_status = CallState::Ongoing;
    ongoing.start_timestamp = Some(chrono::Utc::now().timestamp_millis());
    sim.store_retell(ongoing.clone());
    sim.call_unfinished();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let (conversation, _) = script.finish();
        let ended = told_by_retell(ongoing, &conversation, outcome);
        task_sim.store_retell(ended.clone());
        task_sim.end_call();
        let webhook = RetellWebhook {
            event: EVENT_CALL_ENDED.into(),
            call: ended,
        };
        match serde_json::to_vec(&webhook) {
            Ok(body) if deliver => {
                task_sim
                    .deliver(Webhook::Retell { api_key }, body, &call_id)
                    .await
            }
            Ok(_) => tracing::info!(%call_id, "webhook withheld"),
            Err(e) => tracing::error!(error = %e, "simulated webhook could not be serialised"),
        }
        task_sim.call_finished();
    });
    (StatusCode::CREATED, Json(registered)).into_response()
}

/// The call once over, from the scripted conversation.
fn told_by_retell(mut call: Call, conversation: &Conversation, outcome: SimOutcome) -> Call {
    let (status, reason) = match outcome {
        SimOutcome::Interested | SimOutcome::NotInterested => (CallState::Ended, "agent_hangup"),
        SimOutcome::OptOut => (CallState::Ended, "user_hangup"),
        SimOutcome::Voicemail => (CallState::Ended, "voicemail_reached"),
        SimOutcome::Busy => (CallState::NotConnected, "dial_busy"),
        SimOutcome::NoAnswer | SimOutcome::Failed => (CallState::NotConnected, "dial_no_answer"),
    };
    let turns: Vec<Utterance> = conversation
        .transcript
        .iter()
        .flatten()
        .filter_map(|t: &TranscriptTurn| {
            let role = match t.role {
                Role::User => "user",
                _ => "agent",
            };
            Some(Utterance {
                role: role.into(),
                content: t.message.clone()?,
            })
        })
        .collect();
    let started = call
        .start_timestamp
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    let duration_ms = conversation
        .metadata
        .as_ref()
        .and_then(|m| m.call_duration_secs)
        .unwrap_or(0)
        * 1000;
    call.call_status = status;
    call.disconnection_reason = Some(reason.into());
    call.end_timestamp = Some(started + duration_ms);
    call.duration_ms = Some(duration_ms);
    if status == CallState::Ended {
        call.transcript = Some(
            turns
                .iter()
                .map(|t| {
                    let who = if t.role == "user" { "User" } else { "Agent" };
                    format!("{who}: {}\n", t.content)
                })
                .collect(),
        );
        call.transcript_object = Some(turns);
        call.recording_url = Some(format!(
            "https://sim.retellai.invalid/recordings/{}.wav",
            call.call_id
        ));
        let analysis = conversation.analysis.as_ref();
        call.call_analysis = Some(CallAnalysis {
            call_summary: analysis.and_then(|a| a.transcript_summary.clone()),
            in_voicemail: Some(outcome == SimOutcome::Voicemail),
            user_sentiment: Some(
                match outcome {
                    SimOutcome::Interested => "Positive",
                    SimOutcome::NotInterested | SimOutcome::OptOut => "Negative",
                    _ => "Neutral",
                }
                .into(),
            ),
            call_successful: Some(outcome == SimOutcome::Interested),
        });
    }
    call
}

/// `GET /v2/get-call/{call_id}`.
pub(super) async fn get_call(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let found = sim.state().retell_calls.get(&id).cloned();
    match found {
        Some(call) => Json(call).into_response(),
        None => error(StatusCode::NOT_FOUND, "Call not found"),
    }
}
