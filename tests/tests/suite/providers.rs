//! Provider integration end to end: real clients against fake servers (keys set, base URLs at
//! the fakes), outages and the circuit breaker, call caps, lost answers, crashes between sending
//! and recording, call audio and inbound personalisation.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::fakes::FakeProviders;
use switchboard_tests::*;
use switchboard_workflows::providers::resilience::BreakerState;

const T: Duration = Duration::from_secs(30);

crate::on_both_backends!(
    with_real_looking_keys_the_pipeline_runs_against_the_fakes,
    provider_outage_waits_then_completes_and_the_circuit_opens_and_closes,
    concurrent_calls_never_exceed_the_caps,
    the_providers_concurrency_limit_puts_calls_back_in_line,
    a_call_whose_answer_is_lost_is_never_placed_twice,
    a_crash_between_sending_and_recording_never_places_two_calls,
    a_call_that_never_connected_and_whose_answer_is_lost_is_linked_by_its_number,
    call_audio_is_stored_only_when_configured,
    a_long_calls_recording_is_streamed_to_disk_or_acknowledged_unread,
    a_webhook_answered_early_is_read_whole_so_its_sender_gets_the_answer,
    inbound_callers_are_personalised_known_or_new,
);

/// The app with provider keys set and base URLs at fresh fakes that answer every call with
/// `outcome`.
async fn app_with_fakes(
    backend: &Backend,
    outcome: &'static str,
    configure: impl FnOnce(&mut switchboard_api::config::Config),
) -> (TestApp, FakeProviders) {
    let fakes = FakeProviders::start().await;
    fakes.set_outcome(outcome);
    let app = spawn_app_configured(backend, TestOptions::default(), |c| {
        fakes.configure(c);
        configure(c);
    })
    .await;
    fakes.post_webhooks_to(&app.address);
    (app, fakes)
}

fn plain_lead() -> Value {
    json!({"business": "demo", "name": "Ada Lovelace", "phone": "+14155552671", "source": "web"})
}

/// The statuses of a run's `place_call` attempts.
fn place_call_statuses(run: &Value) -> Vec<String> {
    attempts(run, "place_call")
        .iter()
        .map(|a| a["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn with_real_looking_keys_the_pipeline_runs_against_the_fakes(backend: Backend) {
    let (app, fakes) = app_with_fakes(&backend, "interested", |_| {}).await;
    assert!(app.simulator.is_none(), "keys set: no built-in simulator");
    let (_, run_id) = app.create_lead_with(&plain_lead()).await;
    let run = app.wait_for_status(&run_id, "succeeded", T).await;
    assert_eq!(step_names(&run), LEAD_CALL_STEPS);
    assert_eq!(run["outcome"], "handed_off");
    assert_eq!(fakes.call_requests(), 1);
    assert_eq!(fakes.requests_to("/openai/v1/chat/completions"), 1);
    // The provider echoed the call key and the lead's variables in its webhook.
    let call_key = format!("{run_id}:1");
    let events = &attempts(&run, "await_call")[0]["input"]["outcome"]["payload"]["data"];
    let vars = &events["conversation_initiation_client_data"]["dynamic_variables"];
    assert_eq!(vars["call_key"], call_key.as_str());
    assert_eq!(vars["customer_name"], "Ada Lovelace");
}

async fn provider_outage_waits_then_completes_and_the_circuit_opens_and_closes(backend: Backend) {
    let (app, fakes) = app_with_fakes(&backend, "interested", |c| {
        c.breaker_threshold = 2;
        c.breaker_open_secs = 1;
    })
    .await;
    fakes.set_outage(true);
    let mut runs = Vec::new();
    for i in 0..3 {
        let mut lead = plain_lead();
        lead["phone"] = json!(format!("+1415555267{i}"));
        runs.push(app.create_lead_with(&lead).await.1);
    }
    let breaker = &app.voice_resilience.breaker;
    eventually("the circuit opens", T, || async {
        (breaker.current() == BreakerState::Open).then_some(())
    })
    .await;
    // Runs wait: their call attempts are deferred, not spent, and none fails.
    eventually("every run deferred at least once", T, || async {
        let mut all = true;
        for id in &runs {
            let run = app.run(id).await;
            assert_ne!(run["status"], "failed", "{run}");
            all &= !deferred(&run, "place_call").is_empty();
        }
        all.then_some(())
    })
    .await;
    let refused = fakes.faults.outage_answers.load(Ordering::SeqCst);
    assert!(refused >= 2, "the outage was seen ({refused} answers)");
    fakes.set_outage(false);
    for id in &runs {
        let run = app.wait_for_status(id, "succeeded", T).await;
        assert_eq!(run["outcome"], "handed_off");
        // One row: waiting for the provider spent no attempt and wrote no row per deferral.
        let statuses = place_call_statuses(&run);
        assert_eq!(statuses, ["succeeded"], "{run:#}");
        let put_off = deferred(&run, "place_call");
        assert_eq!(put_off[0]["attempt"], 1);
        assert!(
            deferred_because(put_off[0]).contains("elevenlabs is failing"),
            "{}",
            put_off[0]
        );
    }
    assert_eq!(breaker.current(), BreakerState::Closed);
    assert_eq!(
        fakes.sim.total_calls(),
        3,
        "one call per lead once it recovered"
    );
}

async fn concurrent_calls_never_exceed_the_caps(backend: Backend) {
    let mut app = spawn_app_configured(&backend, TestOptions::default(), |c| {
        c.max_concurrent_calls = 2;
    })
    .await;
    // The leads are all in before any is worked on, so their calls want the lines together.
    app.stop_workers().await;
    let mut runs = Vec::new();
    for _ in 0..6 {
        runs.push(
            app.create_lead(json!({"outcome": "interested", "webhook_delay_ms": 400}))
                .await
                .1,
        );
    }
    app.start_workers();
    let mut waited = 0;
    for id in &runs {
        let run = app
            .wait_for_status(id, "succeeded", Duration::from_secs(60))
            .await;
        for d in deferred(&run, "place_call") {
            assert!(
                deferred_because(d).contains("call lines (global) are busy"),
                "{d}"
            );
            waited += d["deferrals"].as_i64().unwrap();
        }
    }
    let max = app.sim().max_active_calls();
    assert!(
        max <= 2,
        "{max} calls were in flight at once with a cap of 2"
    );
    assert!(
        waited > 0,
        "six calls of 400 ms with two lines: some waited in line"
    );
    assert_eq!(app.sim().total_calls(), 6);
}

async fn the_providers_concurrency_limit_puts_calls_back_in_line(backend: Backend) {
    let mut app = spawn_app(&backend).await;
    // The provider plan allows one call at a time; our own caps are higher.
    app.sim().set_concurrency_limit(Some(1));
    app.stop_workers().await;
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(
            app.create_lead(json!({"outcome": "interested", "webhook_delay_ms": 1500}))
                .await,
        );
    }
    app.start_workers();
    let mut refused = 0;
    for (lead_id, run_id) in &runs {
        let run = app
            .wait_for_status(run_id, "succeeded", Duration::from_secs(60))
            .await;
        assert_eq!(run["outcome"], "handed_off");
        for a in attempts(&run, "place_call") {
            assert_eq!(a["attempt"], 1, "a busy provider spends no attempt: {a}");
            if a["deferrals"].as_i64().unwrap() > 0 {
                let why = deferred_because(a);
                assert!(
                    why.contains("concurrent_limit_exceeded")
                        || why.contains("Too many concurrent calls"),
                    "{a}"
                );
                refused += 1;
            }
        }
        assert!(app.sim().calls_for(lead_id) >= 1);
    }
    assert!(app.sim().max_active_calls() <= 1);
    assert!(
        refused > 0,
        "three 1.5 s calls on one line: some were put back in line"
    );
}

async fn a_call_whose_answer_is_lost_is_never_placed_twice(backend: Backend) {
    // The provider places the call but its answer never reaches us (our timeout is shorter).
    let (app, fakes) = app_with_fakes(&backend, "interested", |c| {
        c.provider_timeout_secs = 1;
    })
    .await;
    fakes.faults.answer_delay_ms.store(3000, Ordering::SeqCst);
    let (_, run_id) = app.create_lead_with(&plain_lead()).await;
    let run = app.wait_for_status(&run_id, "succeeded", T).await;
    assert_eq!(run["outcome"], "handed_off", "{run}");
    assert_eq!(fakes.call_requests(), 1, "the call was not placed again");
    let place = attempts(&run, "place_call");
    assert_eq!(place.len(), 1);
    let log = place[0]["log"].to_string();
    assert!(log.contains("may be ringing"), "{log}");
    // The run waited on the call key the webhook echoes.
    assert_eq!(
        place[0]["output"]["wait"]["key"],
        format!("{run_id}:1").as_str()
    );
}

async fn a_call_that_never_connected_and_whose_answer_is_lost_is_linked_by_its_number(
    backend: Backend,
) {
    // The provider places the call, which is not answered; its answer never reaches us, and the
    // initiation-failure webhook names no call key, only the number called.
    let (app, fakes) = app_with_fakes(&backend, "no_answer", |c| {
        c.provider_timeout_secs = 1;
    })
    .await;
    fakes.faults.answer_delay_ms.store(3000, Ordering::SeqCst);
    let (_, run_id) = app.create_lead_with(&plain_lead()).await;
    // Unlinked, the run would wait for its deadline (the demo business': 120 s) before asking
    // the provider; linked, it follows up at once.
    let run = eventually("the unanswered call to be followed up", T, || async {
        let run = app.run(&run_id).await;
        (!attempts(&run, "follow_up").is_empty()).then_some(run)
    })
    .await;
    assert_eq!(
        attempts(&run, "await_call")[0]["status"],
        "succeeded",
        "{run}"
    );
    let (status, conversation): (String, Option<String>) = app
        .engine
        .db()
        .fetch_one(
            switchboard_engine::store::Q::new(
                "SELECT status, conversation_id FROM calls WHERE run_id = $1 AND attempt = 1",
            )
            .bind(run_id.as_str()),
        )
        .await
        .unwrap();
    assert_eq!(status, "placed");
    assert!(
        conversation.is_some(),
        "the webhook's conversation was adopted"
    );
}

async fn a_crash_between_sending_and_recording_never_places_two_calls(backend: Backend) {
    let (mut app, fakes) = app_with_fakes(&backend, "interested", |_| {}).await;
    // The answer is held long enough to kill the workers while the request is in flight.
    fakes.faults.answer_delay_ms.store(4000, Ordering::SeqCst);
    fakes.faults.call_ms.store(1500, Ordering::SeqCst);
    let (_, run_id) = app.create_lead_with(&plain_lead()).await;
    eventually("the call placed at the provider", T, || async {
        (fakes.sim.total_calls() == 1).then_some(())
    })
    .await;
    app.crash_workers();
    fakes.faults.answer_delay_ms.store(0, Ordering::SeqCst);
    app.start_workers();
    let run = app
        .wait_for_status(&run_id, "succeeded", Duration::from_secs(60))
        .await;
    assert_eq!(run["outcome"], "handed_off", "{run}");
    assert_eq!(fakes.call_requests(), 1, "one call for the attempt");
    // The attempt ran again after the crash and found the call recorded: `dialing` (then it
    // waits for the webhook echoing the call key) or already `placed` by that webhook.
    let place = attempts(&run, "place_call");
    assert!(place.len() >= 2, "the lost attempt ran again: {run}");
    let logs = place
        .iter()
        .map(|a| a["log"].to_string())
        .collect::<String>();
    assert!(
        logs.contains("never recorded") || logs.contains("already placed"),
        "{logs}"
    );
}

async fn call_audio_is_stored_only_when_configured(backend: Backend) {
    let dir = std::env::temp_dir().join(format!("sb-audio-{}", uuid::Uuid::now_v7().simple()));
    let audio = |id: &str| {
        json!({"type": "post_call_audio", "event_timestamp": chrono::Utc::now().timestamp(),
            "data": {"agent_id": "a", "conversation_id": id, "full_audio": "SUQzBAAAAAAA"}})
    };
    let now = chrono::Utc::now().timestamp();
    let plain = spawn_app(&backend).await;
    let (status, body) = plain
        .post_webhook(&audio("conv_a"), WEBHOOK_SECRET, now)
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ignored")));
    drop(plain);

    let dir_for_app = dir.clone();
    let app = spawn_app_configured(&backend, TestOptions::default(), move |c| {
        c.call_audio_dir = Some(dir_for_app);
    })
    .await;
    let (status, body) = app
        .post_webhook(&audio("conv_b"), WEBHOOK_SECRET, now)
        .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("stored")));
    let stored = std::fs::read(dir.join("conv_b.mp3")).expect("audio written");
    assert_eq!(&stored[..3], b"ID3");
    // Bad base64, a path-like id and an unsigned body change nothing.
    let mut bad = audio("conv_c");
    bad["data"]["full_audio"] = json!("%%%");
    let (status, body) = app.post_webhook(&bad, WEBHOOK_SECRET, now).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("malformed_webhook"))
    );
    let (status, _) = app
        .post_webhook(&audio("../escape"), WEBHOOK_SECRET, now)
        .await;
    assert_eq!(status, 400);
    let (status, _) = app.post_webhook(&audio("conv_d"), "wrong", now).await;
    assert_eq!(status, 401);
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

async fn a_long_calls_recording_is_streamed_to_disk_or_acknowledged_unread(backend: Backend) {
    use base64::Engine as _;
    // About 13 MiB of audio: 17 MiB of base64, over the in-memory limit.
    let audio: Vec<u8> = (0..13u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let full_audio = base64::engine::general_purpose::STANDARD.encode(&audio);
    let now = chrono::Utc::now().timestamp();
    // As ElevenLabs sends it: the type first, the recording last.
    let body = |id: &str| {
        format!(
            r#"{{"type":"post_call_audio","event_timestamp":{now},"data":{{"agent_id":"a","conversation_id":"{id}","full_audio":"{full_audio}"}}}}"#
        )
        .into_bytes()
    };

    // Without an audio directory: acknowledged (the provider counts refusals), never stored.
    let plain = spawn_app(&backend).await;
    let (status, answer) = plain
        .post_webhook_raw(body("conv_long_a"), WEBHOOK_SECRET, now)
        .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("ignored")),
        "{answer}"
    );
    drop(plain);

    let dir = std::env::temp_dir().join(format!("sb-audio-{}", uuid::Uuid::now_v7().simple()));
    let dir_for_app = dir.clone();
    let app = spawn_app_configured(&backend, TestOptions::default(), move |c| {
        c.call_audio_dir = Some(dir_for_app);
    })
    .await;
    let (status, answer) = app
        .post_webhook_raw(body("conv_long_b"), WEBHOOK_SECRET, now)
        .await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("stored")),
        "{answer}"
    );
    let stored = std::fs::read(dir.join("conv_long_b.mp3")).expect("audio written");
    assert!(
        stored == audio,
        "the recording is stored whole ({} of {} bytes)",
        stored.len(),
        audio.len()
    );

    // Forged, or not a recording: refused, and nothing is left on disk.
    let (status, _) = app
        .post_webhook_raw(body("conv_long_c"), "wrong", now)
        .await;
    assert_eq!(status, 401);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, ["conv_long_b.mp3"]);
    std::fs::remove_dir_all(&dir).ok();
    // Over the limit and not a recording: refused once the rest is read, so the sender learns it.
    // (serde_json writes keys in order: `data`, with the padding, comes before `type`.)
    let mut transcript = transcription_webhook("conv_long_d", true);
    transcript["data"]["padding"] = json!(full_audio);
    let (status, answer) = app.post_webhook(&transcript, WEBHOOK_SECRET, now).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "{answer}"
    );
}

/// Sends `body` as a signed ElevenLabs webhook over a plain connection, all of it before reading
/// anything back (as a sender that does not read while it writes); the answer as text. A server
/// that closes the connection with bytes unread resets it, and the write or the read fails.
async fn post_all_then_read(app: &TestApp, body: &[u8]) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let now = chrono::Utc::now().timestamp();
    let signature = switchboard_workflows::providers::elevenlabs::sign(WEBHOOK_SECRET, now, body);
    let host = app.address.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(host).await?;
    let head = format!(
        "POST /api/v1/webhooks/elevenlabs HTTP/1.1\r\nhost: {host}\r\n\
         content-type: application/json\r\nelevenlabs-signature: {signature}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

async fn a_webhook_answered_early_is_read_whole_so_its_sender_gets_the_answer(backend: Backend) {
    let app = spawn_app(&backend).await;
    // 32 MiB of padding: 16 MiB past the in-memory limit, far more than the sockets buffer.
    let padding = "A".repeat(32 << 20);
    let answered = |body: Vec<u8>| {
        let app = &app;
        async move {
            tokio::time::timeout(T, post_all_then_read(app, &body))
                .await
                .expect("answered in time")
                .expect("the connection is not reset: the server read the whole body")
        }
    };

    // Not a recording: refused, and the sender reads why.
    let mut transcript = transcription_webhook("conv_early_a", true);
    transcript["data"]["padding"] = json!(padding);
    let answer = answered(serde_json::to_vec(&transcript).unwrap()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");

    // A recording with no audio directory: acknowledged unread, and the sender reads that.
    let now = chrono::Utc::now().timestamp();
    let audio = format!(
        r#"{{"type":"post_call_audio","event_timestamp":{now},"data":{{"agent_id":"a","conversation_id":"conv_early_b","full_audio":"{padding}"}}}}"#
    );
    let answer = answered(audio.into_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("ignored"), "{answer}");
}

async fn inbound_callers_are_personalised_known_or_new(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (lead_id, run_id) = app
        .create_lead(json!({"outcome": "interested", "webhook_delay_ms": 20}))
        .await;
    app.wait_for_status(&run_id, "succeeded", T).await;
    let url = format!("{}/api/v1/webhooks/elevenlabs/personalize", app.address);
    let ask = |caller: &str, secret: Option<&str>| {
        let mut req = app.client.post(&url).json(&json!({
            "caller_id": caller, "agent_id": "agent_demo_realty",
            "called_number": "+18885550100", "call_sid": "CA123"}));
        if let Some(secret) = secret {
            req = req.header("X-Switchboard-Secret", secret);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, known) = ask("+14155552671", Some(PERSONALIZATION_SECRET)).await;
    assert_eq!(status, 200, "{known}");
    assert_eq!(known["type"], "conversation_initiation_client_data");
    assert_eq!(known["dynamic_variables"]["lead_id"], lead_id.as_str());
    let agent = &known["conversation_config_override"]["agent"];
    assert!(
        agent["first_message"].as_str().unwrap().contains("Ada"),
        "{known}"
    );
    assert!(
        agent["prompt"]["prompt"]
            .as_str()
            .unwrap()
            .contains("known"),
        "{known}"
    );
    assert_eq!(agent["language"], "en");

    let (status, new) = ask("+442071838750", Some(PERSONALIZATION_SECRET)).await;
    assert_eq!(status, 200, "{new}");
    assert!(new["dynamic_variables"].get("lead_id").is_none());
    let first = new["conversation_config_override"]["agent"]["first_message"]
        .as_str()
        .unwrap();
    assert!(first.contains("Who do I have"), "{first}");

    for secret in [None, Some("wrong")] {
        let (status, err) = ask("+14155552671", secret).await;
        assert_eq!(status, 401, "{err}");
        assert_eq!(err["error"]["code"], "unauthorized");
    }
    let resp = app
        .client
        .post(&url)
        .header("X-Switchboard-Secret", PERSONALIZATION_SECRET)
        .json(&json!({"caller_id": "+14155552671", "agent_id": "agent_nobody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = app
        .client
        .post(&url)
        .header("X-Switchboard-Secret", PERSONALIZATION_SECRET)
        .header("content-type", "application/json")
        .body("{\"caller_id\":")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

/// The personalisation benchmark still runs end to end (its figures live in BENCHMARKS.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_personalisation_benchmark_runs() {
    let out = std::env::temp_dir().join(format!("sb-bench-{}.json", uuid::Uuid::now_v7()));
    let opts = switchboard_cli::bench::BenchOptions {
        quick: true,
        only: Some("personalize".into()),
        out: out.clone(),
        postgres: None,
        keep: false,
    };
    switchboard_cli::bench::run(opts).await.expect("bench runs");
    let figures: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let names: Vec<&str> = figures["figures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["personalize (known lead)", "personalize (new caller)"]
    );
    std::fs::remove_file(out).ok();
}
