//! Tests for the simulator, end to end through the real ElevenLabs and OpenAI clients.

use super::llm::analyze_transcript;
use super::voice::{as_bool, as_u64, pick_outcome};
use super::*;
use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Value, json};
use switchboard_workflows::providers::elevenlabs::{
    CallResult, ClientData, ConversationStatus, ElevenLabsClient, FailureReason,
    OutboundCallRequest, TranscriptTurn, WebhookEvent, parse_webhook, verify,
};
use switchboard_workflows::providers::error::ProviderError;
use switchboard_workflows::providers::openai::{AnalysisOutcome, Level, OpenAiClient, Sentiment};
use switchboard_workflows::providers::voice::Line;
use tokio::sync::mpsc;

const SECRET: &str = "sim-secret";
const WAIT: Duration = Duration::from_secs(10);

struct TestApp {
    base: String,
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
        base: format!("{base}/sim"),
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
    /// The simulator's base URL (`…/elevenlabs`, `…/openai` below it).
    fn voice_base(&self) -> &str {
        &self.base
    }

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
        .flatten()
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
    let transcript = conversation.transcript.as_ref().expect("transcript");
    assert!(
        transcript[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("Ada"))
    );
    assert!(transcript.len() >= 6);
    assert!(transcript.iter().any(|t| t.message.is_none()));
    assert!(
        conversation.has_audio && conversation.has_user_audio && conversation.has_response_audio
    );
    let metadata = conversation.metadata.as_ref().expect("metadata");
    let duration = metadata.call_duration_secs.expect("duration");
    assert!((60..=200).contains(&duration), "{duration}");
    assert_eq!(
        metadata.termination_reason.as_deref(),
        Some("end_call tool was called")
    );
    let phone = metadata.phone_call.clone().expect("phone call");
    assert_eq!(phone.call_result, Some(CallResult::Answered));
    assert!(phone.stream_sid.is_some_and(|s| s.starts_with("MZ")));
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
    let metadata = c.metadata.as_ref().expect("metadata");
    assert_eq!(
        metadata.termination_reason.as_deref(),
        Some("voicemail_detected")
    );
    let line = metadata.phone_call.as_ref().and_then(|p| p.call_result);
    assert_eq!(line, Some(CallResult::Voicemail));
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
            (stored.status, stored.transcript.map(|t| t.len())),
            (ConversationStatus::Failed, Some(0))
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
        (stored.status, stored.transcript.map(|t| t.len())),
        (ConversationStatus::InProgress, Some(0))
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
    assert_eq!(truncated, AnalysisOutcome::Truncated);
    let budget = switchboard_workflows::providers::openai::ANALYSIS_TOKENS * 2;
    let larger = app
        .llm
        .analyze_within("s", "User: yes [sim:truncate]", budget)
        .await
        .expect("answered");
    assert!(matches!(larger, AnalysisOutcome::Parsed(_)), "{larger:?}");
    let filtered = app
        .llm
        .analyze("s", "User: yes [sim:filter]")
        .await
        .expect("answered");
    assert_eq!(filtered, AnalysisOutcome::Filtered);
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

#[tokio::test]
async fn the_agents_api_serves_the_real_clients_calls() {
    use switchboard_workflows::providers::elevenlabs::AgentSpec;
    let app = spawn_app(0).await;
    let spec = |name: &str| AgentSpec {
        name: name.into(),
        tags: vec!["switchboard".into(), "demo".into()],
        ..AgentSpec::default()
    };
    let first = app
        .voice
        .create_agent(&spec("Demo — riley"))
        .await
        .expect("created");
    let second = app
        .voice
        .create_agent(&spec("Demo — sam"))
        .await
        .expect("created");
    assert!(first.starts_with("agent_sim_") && first != second);
    let agent = app.voice.get_agent(&first).await.expect("read");
    assert_eq!(
        (agent.agent_id.as_str(), agent.spec.name.as_str()),
        (first.as_str(), "Demo — riley")
    );
    // A partial update changes what it names and keeps the rest.
    app.voice
        .update_agent(&first, &spec("Demo — riley v2"))
        .await
        .expect("updated");
    let agent = app.voice.get_agent(&first).await.expect("read");
    assert_eq!(agent.spec.name, "Demo — riley v2");
    assert_eq!(agent.spec.tags, ["switchboard", "demo"]);
    // Pages follow the cursor.
    let page = app.voice.list_agents(Some(1), None).await.expect("listed");
    assert_eq!((page.agents.len(), page.has_more), (1, true));
    let rest = app
        .voice
        .list_agents(Some(1), page.next_cursor.as_deref())
        .await
        .expect("listed");
    assert_eq!((rest.agents.len(), rest.has_more), (1, false));
    assert_ne!(page.agents[0].agent_id, rest.agents[0].agent_id);
    app.voice.delete_agent(&second).await.expect("deleted");
    let gone = app.voice.get_agent(&second).await.expect_err("deleted");
    assert_eq!(gone.status(), Some(404));
    assert_eq!(
        app.voice
            .delete_agent(&second)
            .await
            .expect_err("twice")
            .status(),
        Some(404)
    );
}

#[tokio::test]
async fn models_are_listed_and_calls_speak_the_real_types() {
    let app = spawn_app(0).await;
    let base = app.voice_base();
    let models: Value = reqwest::get(format!("{}/openai/v1/models", base))
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(models["object"], "list");
    assert!(models["data"].as_array().is_some_and(|m| !m.is_empty()));
    // A finished conversation as the API sends it: integers as integers, the audio flags, the
    // structured call result.
    let id = app
        .place(
            "lead-types",
            json!({"sim_outcome": "interested", "sim_webhook_delay_ms": 0}),
        )
        .await;
    let conversation: Value = eventually_json(
        &format!("{base}/elevenlabs/v1/convai/conversations/{id}"),
        |c| c["status"] == "done",
    )
    .await;
    let metadata = &conversation["metadata"];
    assert!(metadata["call_duration_secs"].is_i64(), "{metadata}");
    assert!(metadata["cost"].is_i64(), "{metadata}");
    assert!(conversation["transcript"][0]["time_in_call_secs"].is_i64());
    assert_eq!(conversation["has_audio"], true);
    assert_eq!(metadata["phone_call"]["call_result"], "answered");
    // The SIP trunk answers its own id, not Twilio's.
    let sip = app
        .voice
        .outbound_call(
            &call("lead-sip", json!({"sim_webhook_delay_ms": 600000})),
            Line::Sip,
        )
        .await
        .expect("placed");
    assert!(sip.sip_call_id.is_some_and(|s| s.starts_with("sip_")) && sip.call_sid.is_none());
}

/// GETs `url` until `done` holds for its JSON, for at most [`WAIT`].
async fn eventually_json(url: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let body: Value = reqwest::get(url)
            .await
            .expect("answered")
            .json()
            .await
            .expect("json");
        if done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not in time: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
