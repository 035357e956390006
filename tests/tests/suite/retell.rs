//! Retell as a business' voice provider, beside ElevenLabs in one process: the whole pipeline on
//! the Retell simulator (its real wire format and signed webhooks) through every outcome, and
//! Retell's webhook signatures.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::*;
use switchboard_workflows::providers::retell;

const T: Duration = Duration::from_secs(60);

crate::on_both_backends!(
    the_pipeline_runs_on_retell_through_every_outcome,
    retell_webhooks_are_accepted_once_and_only_when_signed,
);

/// A business folder `callcentre`: the demo business calling through Retell.
fn callcentre_dir() -> std::path::PathBuf {
    demo_variant(
        "callcentre",
        &[
            (
                "id = \"callcentre\"",
                "id = \"callcentre\"\nvoice_provider = \"retell\"",
            ),
            ("name = \"Demo Realty\"", "name = \"Call Centre\""),
            (
                "agent_id = \"agent_demo_realty\"",
                "agent_id = \"agent_retell_callcentre\"",
            ),
            (
                "phone_number_id = \"phnum_demo\"",
                "phone_number_id = \"+15550100000\"",
            ),
        ],
    )
}

async fn retell_app(backend: &Backend, await_call: Duration) -> (TestApp, std::path::PathBuf) {
    let dir = callcentre_dir();
    let app = spawn_app_with(
        backend,
        TestOptions {
            businesses_dir: Some(dir.clone()),
            await_call_timeout: Some(await_call),
            ..TestOptions::default()
        },
    )
    .await;
    (app, dir)
}

fn callcentre_lead(sim: Value) -> Value {
    json!({"business": "callcentre", "name": "Ada Lovelace", "phone": "+14155552671", "sim": sim})
}

async fn the_pipeline_runs_on_retell_through_every_outcome(backend: Backend) {
    let (app, dir) = retell_app(&backend, Duration::from_secs(2)).await;
    // (steering, run status, outcome, calls placed, the no-connect reason the follow-up saw)
    let matrix = [
        (
            json!({"outcome": "interested"}),
            "succeeded",
            "handed_off",
            1,
            None,
        ),
        (
            json!({"outcome": "not_interested"}),
            "succeeded",
            "not_interested",
            1,
            None,
        ),
        (
            json!({"outcome": "no_answer"}),
            "succeeded",
            "unreachable",
            3,
            Some("no_answer"),
        ),
        (
            json!({"outcome": "busy"}),
            "succeeded",
            "unreachable",
            3,
            Some("busy"),
        ),
        (
            json!({"outcome": "voicemail"}),
            "succeeded",
            "unreachable",
            3,
            Some("voicemail"),
        ),
        (json!({"outcome": "failed"}), "failed", "failed", 0, None),
        // The webhook is lost: at the deadline Retell is asked, and the call it reports is analysed.
        (
            json!({"outcome": "interested", "deliver_webhook": false}),
            "succeeded",
            "handed_off",
            1,
            None,
        ),
    ];
    let mut runs = Vec::new();
    for (sim, ..) in &matrix {
        runs.push(app.create_lead_with(&callcentre_lead(sim.clone())).await);
    }
    // ElevenLabs runs in the same process, beside Retell.
    let (demo_lead, demo_run) = app.create_lead(json!({"outcome": "interested"})).await;

    for ((lead_id, run_id), (sim, status, outcome, calls, reason)) in runs.iter().zip(&matrix) {
        let run = app.wait_for_status(run_id, status, T).await;
        assert_eq!(run["outcome"], *outcome, "{sim}: {run:#}");
        assert!(
            app.sim().calls_for(lead_id) >= 1,
            "{sim}: the Retell simulator was called"
        );
        if *calls > 0 {
            let placed = app.sim().calls_placed_per_attempt();
            let per_attempt: Vec<_> = placed
                .iter()
                .filter(|((lead, _), _)| lead == lead_id)
                .collect();
            assert_eq!(
                per_attempt.len(),
                *calls,
                "{sim}: calls placed {per_attempt:?}"
            );
            assert!(
                per_attempt.iter().all(|(_, n)| **n == 1),
                "{sim}: one call per attempt"
            );
        }
        if let Some(reason) = reason {
            let follow_up = attempts(&run, "follow_up")[0];
            assert_eq!(follow_up["input"]["result"]["reason"], *reason, "{sim}");
        }
        if *status == "succeeded" && *calls > 0 && reason.is_none() {
            // The call was read from Retell's call object: the transcript reached the analysis.
            let analyze = attempts(&run, "analyze")[0];
            assert!(
                analyze["input"]["transcript"]
                    .as_str()
                    .unwrap()
                    .contains("user: "),
                "{sim}"
            );
            assert!(
                analyze["input"]["conversation_id"]
                    .as_str()
                    .unwrap()
                    .starts_with("call_"),
                "{sim}"
            );
        }
    }
    let lost = app.run(&runs[6].1).await;
    assert_eq!(
        attempts(&lost, "await_call")[0]["input"]["outcome"]["type"],
        "timed_out"
    );
    let demo = app.wait_for_status(&demo_run, "succeeded", T).await;
    assert_eq!(demo["outcome"], "handed_off");
    let conversation = &attempts(&demo, "analyze")[0]["input"]["conversation_id"];
    assert!(
        conversation.as_str().unwrap().starts_with("conv_sim_"),
        "ElevenLabs' own ids"
    );
    assert_eq!(app.sim().calls_for(&demo_lead), 1);
    std::fs::remove_dir_all(dir).ok();
}

/// Posts `body` to the Retell webhook with `signature` (if any).
async fn post_retell(app: &TestApp, body: &[u8], signature: Option<String>) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!("{}/api/v1/webhooks/retell", app.address))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header(retell::SIGNATURE_HEADER, signature);
    }
    let resp = request.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn retell_webhooks_are_accepted_once_and_only_when_signed(backend: Backend) {
    let (app, dir) = retell_app(&backend, Duration::from_secs(3600)).await;
    let (_, run_id) = app
        .create_lead_with(&callcentre_lead(
            json!({"outcome": "interested", "deliver_webhook": false}),
        ))
        .await;
    let call_id = app.wait_for_call_wait(&run_id).await;
    assert!(call_id.starts_with("call_"), "{call_id}");
    let body = serde_json::to_vec(&json!({"event": "call_ended", "call": {
        "call_type": "phone_call", "call_id": call_id, "agent_id": "agent_retell_callcentre",
        "call_status": "ended", "direction": "outbound",
        "from_number": "+15550100000", "to_number": "+14155552671",
        "metadata": {"call_key": format!("{run_id}:1")},
        "duration_ms": 42000, "disconnection_reason": "user_hangup",
        "transcript_object": [
            {"role": "agent", "content": "Hi Ada, this is Riley."},
            {"role": "user", "content": "Yes, I'm very interested, we have a budget of 800K and want to move this month. Please book a showing."}
        ]}}))
    .unwrap();
    // The simulated account's API key is the webhook secret of the test configuration.
    let now = chrono::Utc::now().timestamp_millis();
    let key = WEBHOOK_SECRET;
    let stale = now - retell::SIGNATURE_TOLERANCE_MS - 1_000;
    let mut changed = body.clone();
    let at = changed.iter().position(|b| *b == b'5').unwrap(); // a digit: still JSON
    changed[at] = b'6';
    for (what, body, signature) in [
        (
            "forged",
            &body,
            Some(retell::sign("not-the-api-key", now, &body)),
        ),
        ("stale", &body, Some(retell::sign(key, stale, &body))),
        ("missing", &body, None),
        ("malformed", &body, Some("v=soon".to_owned())),
        (
            "body changed",
            &changed,
            Some(retell::sign(key, now, &body)),
        ),
    ] {
        let (status, answer) = post_retell(&app, body, signature).await;
        assert_eq!(status, 401, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], "unauthorized", "{what}: {answer}");
    }
    assert_eq!(
        app.run(&run_id).await["status"],
        "waiting",
        "nothing changed"
    );

    let signed = Some(retell::sign(key, now, &body));
    let (status, answer) = post_retell(&app, &body, signed.clone()).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("resumed")),
        "{answer}"
    );
    let (status, answer) = post_retell(&app, &body, signed).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("duplicate")),
        "{answer}"
    );
    let run = eventually("the call to be analysed", T, || async {
        let run = app.run(&run_id).await;
        let scored = attempts(&run, "score")
            .first()
            .is_some_and(|a| a["status"] == "succeeded");
        scored.then_some(run)
    })
    .await;
    assert_eq!(attempts(&run, "await_call").len(), 1, "one transition");
    let transcript = attempts(&run, "analyze")[0]["input"]["transcript"].to_string();
    assert!(transcript.contains("800K"), "{transcript}");
    std::fs::remove_dir_all(dir).ok();
}
