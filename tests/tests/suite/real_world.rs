//! Providers as they really behave. Webhooks as the voice provider really sends them (parts left
//! out, the line's structured result, a conversation that failed after the person spoke), posted
//! signed to a run waiting on its call; and the LLM's answers other than an analysis (a billing
//! lapse, an answer cut off, a refusal, a filtered answer). The run must end as the real call
//! did, and its timeline must say what happened.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::fakes::FakeProviders;
use switchboard_tests::*;

const T: Duration = Duration::from_secs(30);

crate::on_both_backends!(
    a_webhook_without_its_transcript_reads_the_call_from_the_provider,
    the_lines_result_tells_a_voicemail_from_a_conversation,
    a_conversation_that_failed_after_the_lead_spoke_is_analysed,
    a_billing_lapse_pauses_analyses_until_it_clears,
    an_analysis_cut_off_is_asked_again_with_a_larger_budget,
    a_refused_or_filtered_analysis_goes_on_with_the_business_rule,
);

/// A `post_call_transcription` for `conversation_id` with `data` over the bare minimum.
fn transcription(conversation_id: &str, data: Value) -> Value {
    let mut conversation = json!({"agent_id": "agent_demo_realty",
        "conversation_id": conversation_id, "status": "done"});
    for (k, v) in data.as_object().unwrap() {
        conversation[k] = v.clone();
    }
    json!({"type": "post_call_transcription", "event_timestamp": chrono::Utc::now().timestamp(),
        "data": conversation})
}

async fn post(app: &TestApp, body: &Value) {
    let (status, answer) = app
        .post_webhook(body, WEBHOOK_SECRET, chrono::Utc::now().timestamp())
        .await;
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("resumed")),
        "{answer}"
    );
}

/// The lines the run's `await_call` attempts logged.
fn await_call_log(run: &Value) -> String {
    attempts(run, "await_call")
        .iter()
        .flat_map(|a| a["log"].as_array().cloned().unwrap_or_default())
        .map(|l| l.as_str().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn a_webhook_without_its_transcript_reads_the_call_from_the_provider(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::webhooks_wait_an_hour()).await;
    // The lead said yes on the call; the webhook is sent without the transcript and metadata
    // (ElevenLabs can be set to leave them out, and sends nulls at times).
    let (lead_id, run_id, conversation_id) = app.lead_awaiting_call().await;
    assert!(
        app.sim().finish_calls(T).await,
        "the call ends at the provider"
    );
    let bare = json!({"transcript": null, "metadata": null, "analysis": null});
    post(&app, &transcription(&conversation_id, bare)).await;

    let run = app.wait_for_status(&run_id, "succeeded", T).await;
    assert_eq!(
        run["outcome"], "handed_off",
        "analysed as the real call: {run:#}"
    );
    assert_eq!(step_names(&run), LEAD_CALL_STEPS);
    let analyze = attempts(&run, "analyze")[0];
    let transcript = analyze["input"]["transcript"].as_str().unwrap();
    assert!(
        transcript.contains("user: "),
        "the transcript read from the provider: {transcript}"
    );
    let log = await_call_log(&run);
    assert!(
        log.contains("the webhook left out the transcript")
            && log.contains("the provider reports the call ended"),
        "the timeline says what happened: {log}"
    );
    assert_eq!(app.sim().calls_for(&lead_id), 1, "dialled once");
}

async fn the_lines_result_tells_a_voicemail_from_a_conversation(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::webhooks_wait_an_hour()).await;
    // A voicemail box picked up and its greeting was transcribed as the person's words; only
    // the line's structured result says it was a machine.
    let (_, run_id, conversation_id) = app.lead_awaiting_call().await;
    let voicemail = json!({
        "transcript": [
            {"role": "user", "message": "Hi, you've reached Ada. Leave a message after the tone.", "time_in_call_secs": 0},
            {"role": "agent", "message": "Hi Ada, this is Riley from Demo Realty, I'll try again later.", "time_in_call_secs": 6}
        ],
        "metadata": {"start_time_unix_secs": chrono::Utc::now().timestamp(), "call_duration_secs": 14,
            "termination_reason": "Call ended by remote party",
            "phone_call": {"type": "twilio", "direction": "outbound", "call_sid": "CA1",
                "stream_sid": "MZ1", "call_result": "voicemail"}},
        "has_audio": true, "has_user_audio": true, "has_response_audio": true
    });
    post(&app, &transcription(&conversation_id, voicemail)).await;

    let run = app.first_follow_up_decided(&run_id).await;
    let steps = step_names(&run);
    assert!(
        !steps.contains(&"analyze".to_owned()),
        "not analysed: {steps:?}"
    );
    let follow_up = attempts(&run, "follow_up")[0];
    assert_eq!(
        follow_up["input"]["result"]["reason"], "voicemail",
        "{follow_up}"
    );
    assert_ne!(run["outcome"], "not_interested", "{run:#}");
}

async fn a_conversation_that_failed_after_the_lead_spoke_is_analysed(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::webhooks_wait_an_hour()).await;
    // The line dropped mid-call after the lead had said what matters: the call connected.
    let (lead_id, run_id, conversation_id) = app.lead_awaiting_call().await;
    let dropped = json!({
        "status": "failed",
        "transcript": [
            {"role": "agent", "message": "Hi Ada, this is Riley from Demo Realty.", "time_in_call_secs": 0},
            {"role": "user", "message": "Yes, I'm very interested, we have a budget of 800K and want to move this month. Please book a showing.", "time_in_call_secs": 4},
            {"role": "agent", "message": "Wonderful, let me", "time_in_call_secs": 11}
        ],
        "metadata": {"start_time_unix_secs": chrono::Utc::now().timestamp(), "call_duration_secs": 42,
            "termination_reason": "Client disconnected: 1011",
            "error": {"code": 1011, "reason": "internal error"}}
    });
    post(&app, &transcription(&conversation_id, dropped)).await;

    let run = app.first_follow_up_decided(&run_id).await;
    let steps = step_names(&run);
    assert_eq!(
        steps[..8],
        LEAD_CALL_STEPS,
        "analysed and scored: {steps:?}"
    );
    let follow_up = attempts(&run, "follow_up")[0];
    assert_eq!(
        follow_up["input"]["result"]["type"], "scored",
        "{follow_up}"
    );
    let transcript = attempts(&run, "analyze")[0]["input"]["transcript"].to_string();
    assert!(
        transcript.contains("800K"),
        "the lead's words were analysed: {transcript}"
    );
    assert_eq!(
        app.sim().calls_for(&lead_id),
        1,
        "not dialled again as a call that never connected"
    );
}

/// The statuses and errors of a run's `analyze` attempts.
fn analyze_attempts(run: &Value) -> Vec<(String, String)> {
    attempts(run, "analyze")
        .iter()
        .map(|a| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (text(&a["status"]), text(&a["error"]))
        })
        .collect()
}

async fn a_billing_lapse_pauses_analyses_until_it_clears(backend: Backend) {
    let fakes = FakeProviders::start().await;
    fakes.set_outcome("interested");
    fakes.faults.quota_exhausted.store(true, Ordering::SeqCst);
    let app = spawn_app_configured(&backend, TestOptions::default(), |c| {
        fakes.configure(c);
        c.breaker_open_secs = 1;
    })
    .await;
    fakes.post_webhooks_to(&app.address);
    let lead = json!({"business": "demo", "name": "Ada Lovelace", "phone": "+14155552671"});
    let (_, run_id) = app.create_lead_with(&lead).await;

    // The account is out of credit: the analysis waits, spending no attempt.
    let run = eventually("the analysis to wait for billing", T, || async {
        let run = app.run(&run_id).await;
        (!deferred(&run, "analyze").is_empty()).then_some(run)
    })
    .await;
    let waits = ["waiting", "queued", "running"];
    assert!(
        waits.contains(&run["status"].as_str().unwrap()),
        "not failed: {run:#}"
    );
    let error = deferred_because(deferred(&run, "analyze")[0]);
    assert!(
        error.contains("insufficient_quota") && error.contains("billing"),
        "the timeline says why: {error}"
    );

    // Paid: the analysis goes through and the run ends as the call did.
    fakes.faults.quota_exhausted.store(false, Ordering::SeqCst);
    let run = app
        .wait_for_status(&run_id, "succeeded", Duration::from_secs(60))
        .await;
    assert_eq!(run["outcome"], "handed_off", "{run:#}");
    let statuses: Vec<_> = analyze_attempts(&run).into_iter().map(|(s, _)| s).collect();
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("succeeded"),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| s != "failed"),
        "no attempt spent: {statuses:?}"
    );
}

/// Posts a transcription of a conversation in which the lead says `said` to a run waiting on
/// its call, and waits for its follow-up to be decided.
async fn lead_says(app: &TestApp, said: &str) -> Value {
    let (_, run_id, conversation_id) = app.lead_awaiting_call().await;
    let words = json!({
        "transcript": [
            {"role": "agent", "message": "Hi Ada, this is Riley from Demo Realty.", "time_in_call_secs": 0},
            {"role": "user", "message": said, "time_in_call_secs": 4}
        ],
        "metadata": {"call_duration_secs": 42, "termination_reason": "end_call tool was called",
            "phone_call": {"type": "twilio", "call_result": "answered"}}
    });
    post(app, &transcription(&conversation_id, words)).await;
    app.first_follow_up_decided(&run_id).await
}

async fn an_analysis_cut_off_is_asked_again_with_a_larger_budget(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::webhooks_wait_an_hour()).await;
    // The simulated model's answer to `[sim:truncate]` needs more than a first budget.
    let run = lead_says(
        &app,
        "Yes, I'm very interested, we have a budget of 800K and want to move this month. Please book a showing. [sim:truncate]",
    )
    .await;
    let tried = analyze_attempts(&run);
    assert_eq!(tried.len(), 2, "{tried:?}");
    assert_eq!(tried[0].0, "failed");
    assert!(tried[0].1.contains("cut off at 1500 tokens"), "{tried:?}");
    assert_eq!(tried[1].0, "succeeded");
    assert_eq!(
        attempts(&run, "score")[0]["status"],
        "succeeded",
        "the full analysis was scored"
    );
}

async fn a_refused_or_filtered_analysis_goes_on_with_the_business_rule(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::webhooks_wait_an_hour()).await;
    for (marker, why) in [
        ("[sim:refuse]", "the model refused"),
        ("[sim:filter]", "content filter"),
    ] {
        let run = lead_says(&app, &format!("Yes, tell me more. {marker}")).await;
        // Asked once: the same request gets the same answer.
        let tried = analyze_attempts(&run);
        assert_eq!(tried.len(), 1, "{marker}: {tried:?}");
        assert_eq!(tried[0].0, "succeeded", "{marker}: {tried:?}");
        let log = attempts(&run, "analyze")[0]["log"].to_string();
        assert!(log.contains(why), "{marker}: the timeline says why: {log}");
        // The demo business keeps the default rule: a person reads the call.
        assert_eq!(run["outcome"], "handed_off", "{marker}: {run:#}");
        assert!(!step_names(&run).contains(&"score".to_owned()), "{marker}");
        let follow_up = attempts(&run, "follow_up")[0];
        assert_eq!(
            follow_up["input"]["result"]["type"], "unanalysed",
            "{follow_up}"
        );
    }
}
