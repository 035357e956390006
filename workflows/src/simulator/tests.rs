//! Tests for the simulator, end to end through the real ElevenLabs and OpenAI clients.

use super::llm::analyze_transcript;
use super::voice::{as_bool, as_u64, pick_outcome};
use super::*;
use crate::business::Line;
use crate::providers::elevenlabs::{
    ClientData, ConversationStatus, ElevenLabsClient, FailureReason, OutboundCallRequest,
    TranscriptTurn, WebhookEvent, parse_webhook, verify,
};
use crate::providers::error::ProviderError;
use crate::providers::openai::{AnalysisOutcome, Level, OpenAiClient, Sentiment};
use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::json;
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
            .outbound_call(&call(lead, vars), Line::Twilio)
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
    let vars =
        json!({"sim_outcome": "interested", "sim_webhook_delay_ms": "0", "customer_name": "Ada"});
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
        let WebhookEvent::InitiationFailure { to_number, .. } = &event else {
            panic!("an initiation failure: {event:?}");
        };
        assert!(to_number.is_some(), "the number called is named");
        let expected = WebhookEvent::InitiationFailure {
            conversation_id: id.clone(),
            agent_id: Some("agent_sim".into()),
            reason,
            to_number: to_number.clone(),
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
        .outbound_call(
            &call("lead-e", json!({"sim_outcome": "failed"})),
            Line::Twilio,
        )
        .await;
    let err = failed.expect_err("call did not start");
    assert_eq!(
        (err.status(), err.code()),
        (Some(500), Some("call_initiation_failed"))
    );
    assert!(err.is_retryable());
    let bad = app
        .voice
        .outbound_call(
            &call("lead-e", json!({"sim_outcome": "maybe"})),
            Line::Twilio,
        )
        .await;
    let err = bad.expect_err("unknown outcome");
    assert!(
        err.status() == Some(422) && !err.is_retryable() && err.to_string().contains("sim_outcome"),
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
    // lead-e: the failing call was sent three times (two quick retries), the invalid one once.
    assert_eq!(counts, [1, 1, 2, 1, 4]);
    assert_eq!(app.sim.total_calls(), 9);
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
    assert!(matches!(quota, ProviderError::Status { status: 429, .. }) && !quota.is_retryable());
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
    assert!(matches!(voicemail, AnalysisOutcome::Parsed(a) if a.engagement.level == Level::Low));
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

#[tokio::test]
async fn a_stopping_process_waits_for_its_calls_to_post_their_webhooks() {
    let mut app = spawn_app(0).await;
    assert!(
        app.sim.finish_calls(Duration::ZERO).await,
        "nothing in flight"
    );
    let vars = json!({"sim_outcome": "interested", "sim_webhook_delay_ms": "300"});
    let id = app.place("lead-1", vars).await;
    assert!(
        !app.sim.finish_calls(Duration::ZERO).await,
        "the call is still under way"
    );
    assert!(app.sim.finish_calls(WAIT).await, "the call ended in time");
    // Its webhook was delivered before finish_calls returned.
    let delivered = app.webhooks.try_recv().expect("the webhook arrived first");
    assert_eq!(delivered.conversation_id(), Some(id.as_str()));
}
