//! The lead pipeline end to end through the HTTP API, with the simulator answering.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::*;

const T: Duration = Duration::from_secs(30);

crate::on_both_backends!(
    happy_path_runs_the_eight_steps_in_order,
    no_answer_calls_again_later_then_ends,
    call_that_fails_to_start_is_retried_with_backoff_then_fails,
    webhook_with_bad_or_stale_signature_is_rejected_and_changes_nothing,
    same_webhook_twice_makes_one_transition,
    webhook_arriving_before_the_run_waits_still_resumes_it,
    lost_webhook_is_reconciled_with_the_provider_at_the_deadline,
    cancel_while_waiting_then_late_webhook_changes_nothing,
    workers_crashing_mid_run_lose_nothing_and_call_once_per_attempt,
    invalid_input_is_rejected_in_the_error_shape_and_stores_nothing,
    idempotency_key_returns_the_same_lead_and_run,
    runs_list_pages_by_cursor,
    malformed_or_oversized_webhooks_are_rejected_and_other_types_ignored,
    a_lead_reads_with_its_runs_and_calls,
    browsers_on_configured_origins_may_call_the_api,
    runs_are_counted_per_status,
    runs_are_filtered_by_step_outcome_time_and_searched_by_lead,
    the_openapi_document_is_served,
    the_overview_counts_leads_calls_outcomes_and_scores,
);

async fn happy_path_runs_the_eight_steps_in_order(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (lead_id, run_id) = app
        .create_lead(json!({"outcome": "interested", "webhook_delay_ms": 50}))
        .await;
    let run = app.wait_for_status(&run_id, "succeeded", T).await;
    assert_eq!(step_names(&run), LEAD_CALL_STEPS);
    assert!(
        run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "succeeded")
    );
    assert_eq!(run["outcome"], "handed_off");
    assert_eq!(run["lead_id"], lead_id);
    assert_eq!(run["business"], "demo");
    assert_eq!(app.sim().calls_for(&lead_id), 1);
    // The score step's output carries the score and its reasons.
    let score = &attempts(&run, "score")[0]["output"]["result"]["score"];
    assert!(score["value"].as_u64().unwrap() >= 70, "{score}");
    assert!(!score["reasons"].as_array().unwrap().is_empty());
    // Listed, and the dashboard pages are served.
    let (_, list) = app.get("/api/v1/runs?business=demo").await;
    assert_eq!(list["runs"][0]["id"], run_id.as_str());
    for page in ["/".to_owned(), format!("/runs/{run_id}")] {
        let resp = app.get_response(&page).await;
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
}

async fn no_answer_calls_again_later_then_ends(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (lead_id, run_id) = app
        .create_lead(json!({"outcome": "no_answer", "webhook_delay_ms": 20}))
        .await;
    // Between calls the run waits on a timer, holding no worker.
    app.wait_for_status(&run_id, "waiting", T).await;
    let run = app
        .wait_for_status(&run_id, "succeeded", Duration::from_secs(60))
        .await;
    assert_eq!(run["outcome"], "unreachable");
    // The demo business calls at most three times.
    assert_eq!(app.sim().calls_for(&lead_id), 3);
    let names = step_names(&run);
    assert_eq!(names.iter().filter(|n| *n == "place_call").count(), 3);
    assert!(!names.contains(&"analyze".to_owned()));
    let follow_ups = attempts(&run, "follow_up");
    assert_eq!(follow_ups[0]["input"]["result"]["reason"], "no_answer");
}

async fn call_that_fails_to_start_is_retried_with_backoff_then_fails(backend: Backend) {
    // With the provider otherwise healthy (its breaker stays closed), a call it keeps refusing
    // with 500 spends the step's attempts and fails the run. (During an outage the breaker
    // opens and runs wait instead: providers::provider_outage_…)
    let app = spawn_app_configured(&backend, TestOptions::default(), |c| {
        c.breaker_threshold = 1000;
    })
    .await;
    let (lead_id, run_id) = app.create_lead(json!({"outcome": "failed"})).await;
    let run = app
        .wait_for_status(&run_id, "failed", Duration::from_secs(60))
        .await;
    let place_calls = attempts(&run, "place_call");
    assert_eq!(place_calls.len(), 4, "place_call allows four attempts");
    for (i, a) in place_calls.iter().enumerate() {
        assert_eq!(a["attempt"], i as u64 + 1);
        assert_eq!(a["status"], "failed");
        assert!(a["error"].as_str().unwrap().contains("500"), "{a}");
    }
    // Backoff: each retry starts later than the previous one by at least the policy's delay.
    let started = |a: &Value| {
        chrono::DateTime::parse_from_rfc3339(a["started_at"].as_str().unwrap()).unwrap()
    };
    let gaps: Vec<i64> = place_calls
        .windows(2)
        .map(|w| (started(w[1]) - started(w[0])).num_milliseconds())
        .collect();
    assert!(
        gaps[0] >= 1000 && gaps[1] >= 3000 && gaps[2] >= 9000,
        "backoff gaps {gaps:?}"
    );
    assert!(run["error"].as_str().unwrap().contains("after 4 attempts"));
    // Each attempt sends the request three times (two quick retries, as the official SDKs do).
    assert_eq!(app.sim().calls_for(&lead_id), 12);
}

async fn webhook_with_bad_or_stale_signature_is_rejected_and_changes_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (_, run_id, conversation_id) = app.lead_awaiting_call().await;
    let before = app.run(&run_id).await;
    let body = transcription_webhook(&conversation_id, false);
    let now = chrono::Utc::now().timestamp();
    for (secret, ts) in [("wrong-secret", now), (WEBHOOK_SECRET, now - 31 * 60)] {
        let (status, err) = app.post_webhook(&body, secret, ts).await;
        assert_eq!(status, 401, "{err}");
        assert_eq!(err["error"]["code"], "unauthorized");
        assert!(err["error"]["message"].is_string());
    }
    let unsigned = app
        .client
        .post(format!("{}/api/v1/webhooks/elevenlabs", app.address))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let after = app.run(&run_id).await;
    assert_eq!(before, after, "a rejected webhook changed the run");
    // The genuine one still works afterwards.
    let (status, resp) = app.post_webhook(&body, WEBHOOK_SECRET, now).await;
    assert_eq!((status, resp["status"].as_str()), (200, Some("resumed")));
    app.wait_for_status(&run_id, "succeeded", T).await;
}

async fn same_webhook_twice_makes_one_transition(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (_, run_id, conversation_id) = app.lead_awaiting_call().await;
    let body = transcription_webhook(&conversation_id, false);
    let now = chrono::Utc::now().timestamp();
    let (s1, r1) = app.post_webhook(&body, WEBHOOK_SECRET, now).await;
    let (s2, r2) = app.post_webhook(&body, WEBHOOK_SECRET, now).await;
    assert_eq!((s1, r1["status"].as_str()), (200, Some("resumed")));
    assert_eq!((s2, r2["status"].as_str()), (200, Some("duplicate")));
    let run = app.wait_for_status(&run_id, "succeeded", T).await;
    assert_eq!(
        step_names(&run),
        LEAD_CALL_STEPS,
        "one await_call, one analysis"
    );
}

async fn webhook_arriving_before_the_run_waits_still_resumes_it(backend: Backend) {
    let app = spawn_app(&backend).await;
    // A zero delay makes the simulator's webhook race the transition into `waiting`: whichever
    // wins, every run must finish.
    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(
            app.create_lead(json!({"outcome": "interested", "webhook_delay_ms": 0}))
                .await,
        );
    }
    for (_, run_id) in &runs {
        let run = app.wait_for_status(run_id, "succeeded", T).await;
        assert_eq!(step_names(&run), LEAD_CALL_STEPS);
    }
    // The deterministic case (an event stored before its wait exists is consumed when the wait
    // is created) is covered by engine::pausing_is_ours_a_wait_holds_no_worker_and_events_resume_it_once.
}

async fn lost_webhook_is_reconciled_with_the_provider_at_the_deadline(backend: Backend) {
    let app = spawn_app_with(
        &backend,
        TestOptions {
            await_call_timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        },
    )
    .await;
    // The webhook is lost, but the call happened: at the deadline the provider is asked, has the
    // finished conversation, and the run analyses it instead of calling again.
    let (lead_id, run_id) = app
        .create_lead(json!({"outcome": "interested", "deliver_webhook": false}))
        .await;
    let run = app
        .wait_for_status(&run_id, "succeeded", Duration::from_secs(60))
        .await;
    assert_eq!(run["outcome"], "handed_off", "{run}");
    assert_eq!(step_names(&run), LEAD_CALL_STEPS);
    // (On a slow machine the call may still be under way at the first deadline: the run then
    // waits again, and the last wait reads it.)
    let await_call = *attempts(&run, "await_call").last().unwrap();
    assert_eq!(await_call["input"]["outcome"]["type"], "timed_out");
    assert!(
        await_call["log"]
            .to_string()
            .contains("the provider reports the call ended"),
        "{run}"
    );
    assert_eq!(app.sim().calls_for(&lead_id), 1);

    // The webhook is lost and the call really did not connect: the no-answer path, with the
    // reason the provider gives, until the business' attempts run out.
    let (lead_id, run_id) = app
        .create_lead(json!({"outcome": "no_answer", "deliver_webhook": false}))
        .await;
    let run = app
        .wait_for_status(&run_id, "succeeded", Duration::from_secs(60))
        .await;
    assert_eq!(run["outcome"], "unreachable");
    let follow_up = attempts(&run, "follow_up")[0];
    assert_eq!(follow_up["input"]["result"]["reason"], "no_answer");
    assert_eq!(app.sim().calls_for(&lead_id), 3);
}

async fn cancel_while_waiting_then_late_webhook_changes_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (_, run_id, conversation_id) = app.lead_awaiting_call().await;
    let (status, cancelled) = app.post(&format!("/api/v1/runs/{run_id}/cancel")).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled.get("wait").is_none());
    let before = app.run(&run_id).await;
    let (status, resp) = app.answer_call(&conversation_id, false).await;
    assert_eq!((status, resp["status"].as_str()), (200, Some("stored")));
    // Anything the webhook (wrongly) queued has run once the queue is idle.
    wait_until_queue_idle(app.engine.db()).await;
    assert_eq!(
        app.run(&run_id).await,
        before,
        "a late webhook changed a cancelled run"
    );
    assert!(
        before["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] != "queued" && s["status"] != "running")
    );
    let (status, err) = app.post(&format!("/api/v1/runs/{run_id}/cancel")).await;
    assert_eq!(status, 409);
    assert_eq!(err["error"]["code"], "conflict");
    let (status, err) = app
        .post("/api/v1/runs/01a1fb50-0000-7000-8000-000000000000/cancel")
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

async fn workers_crashing_mid_run_lose_nothing_and_call_once_per_attempt(backend: Backend) {
    // A crash right after a call was recorded `dialing` but before it was sent leaves no call to
    // hear from: such a run waits for the webhook deadline, kept short here.
    let mut app = spawn_app_with(
        &backend,
        TestOptions {
            await_call_timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        },
    )
    .await;
    let mut leads = Vec::new();
    for _ in 0..6 {
        leads.push(
            app.create_lead(json!({"outcome": "interested", "webhook_delay_ms": 300}))
                .await,
        );
    }
    // Kill the workers once these runs are under way (a call placed, so some are mid-pipeline) …
    eventually("a call placed", T, || async {
        (app.sim().total_calls() >= 1).then_some(())
    })
    .await;
    app.crash_workers();
    // … and one lead arrives while no worker runs at all.
    leads.push(
        app.create_lead(json!({"outcome": "interested", "webhook_delay_ms": 300}))
            .await,
    );
    app.start_workers();
    for (lead_id, run_id) in &leads {
        let run = app
            .wait_for_status(run_id, "succeeded", Duration::from_secs(60))
            .await;
        // Call attempts, not step attempts: a step retried after a lost worker adds a row.
        let calls_made = attempts(&run, "build_context")
            .iter()
            .map(|s| s["input"]["call_attempt"].as_u64().unwrap())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        // A crash between recording `dialing` and the provider's answer is never redialled
        // blindly: the run waits for the webhook that echoes the call key, so each attempt
        // placed one call, or none when the crash came before sending (outcome unknown).
        let unknown = attempts(&run, "follow_up")
            .iter()
            .filter(|s| s["input"]["result"]["reason"] == "unknown")
            .count();
        let calls = app.sim().calls_for(lead_id);
        assert!(
            (calls_made - unknown..=calls_made).contains(&calls),
            "{calls} calls for {calls_made} attempts ({unknown} unknown) in run {run_id}: {run}"
        );
    }
    // A graceful stop and restart also loses nothing.
    app.stop_workers().await;
    let (lead_id, run_id) = app.create_lead(json!({"outcome": "interested"})).await;
    assert_eq!(app.run(&run_id).await["status"], "queued");
    app.start_workers();
    app.wait_for_status(&run_id, "succeeded", T).await;
    assert_eq!(app.sim().calls_for(&lead_id), 1);
}

async fn invalid_input_is_rejected_in_the_error_shape_and_stores_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let url = format!("{}/api/v1/leads", app.address);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        ("invalid phone", app.client.post(&url).json(&json!({"business": "demo", "name": "A", "phone": "12345"})), 422, "invalid_phone"),
        ("unknown business", app.client.post(&url).json(&json!({"business": "nope", "name": "A", "phone": "+14155552671"})), 422, "unknown_business"),
        ("malformed JSON", app.client.post(&url).header("content-type", "application/json").body("{\"business\": "), 400, "malformed_json"),
        ("missing field", app.client.post(&url).json(&json!({"business": "demo", "phone": "+14155552671"})), 422, "invalid_body"),
        ("unknown field", app.client.post(&url).json(&json!({"business": "demo", "name": "A", "phone": "+14155552671", "x": 1})), 422, "invalid_body"),
        ("bad custom field", app.client.post(&url).json(&json!({"business": "demo", "name": "A", "phone": "+14155552671", "custom_fields": {"budget_range": "lots"}})), 422, "invalid_custom_field"),
        ("empty name", app.client.post(&url).json(&json!({"business": "demo", "name": "  ", "phone": "+14155552671"})), 422, "invalid_name"),
        ("oversized body", app.client.post(&url).header("content-type", "application/json").body(format!("{{\"business\":\"demo\",\"name\":\"{}\",\"phone\":\"+14155552671\"}}", "x".repeat(100_000))), 413, "body_too_large"),
        ("not JSON", app.client.post(&url).header("content-type", "text/plain").body("hi"), 415, "unsupported_media_type"),
    ];
    for (what, req, status, code) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{what}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
        assert!(body["error"].get("details").is_some(), "{what}: {body}");
    }
    let (_, list) = app.get("/api/v1/runs").await;
    assert_eq!(list["runs"], json!([]), "a rejected lead stored a run");
    for (query, code) in [
        ("status=bogus", "invalid_status"),
        ("step=bogus", "invalid_step"),
        ("outcome=Handed%20Off", "invalid_outcome"),
    ] {
        let (status, body) = app.get(&format!("/api/v1/runs?{query}")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some(code)),
            "{query}: {body}"
        );
    }
    // Known steps and well-formed outcomes filter (here: nothing yet).
    let (status, _) = app.get("/api/v1/runs?step=follow_up&outcome=bogus").await;
    assert_eq!(status, 200);
    let (status, body) = app.get("/api/v1/runs?limit=0").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_limit"))
    );
    let (status, body) = app.get("/api/v1/nope").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = app
        .get("/api/v1/runs/01a1fb50-0000-7000-8000-000000000000")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = app.get("/api/v1/runs?cursor=not-a-cursor").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_cursor"))
    );
    let resp = app
        .client
        .post(&url)
        .header("Idempotency-Key", "k".repeat(300))
        .json(&json!({"business": "demo", "name": "A", "phone": "+14155552671"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_idempotency_key");
    let resp = app
        .post_lead(
            &json!({"business": "demo", "name": "A", "phone": "+14155552671", "email": "nope"}),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            body["error"]["code"].as_str(),
            body["error"]["details"]["field"].as_str()
        ),
        (Some("invalid_email"), Some("email"))
    );
    let (_, list) = app.get("/api/v1/runs").await;
    assert_eq!(list["runs"], json!([]), "a rejected lead stored a run");
}

async fn idempotency_key_returns_the_same_lead_and_run(backend: Backend) {
    let app = spawn_app(&backend).await;
    let body = lead(json!({"outcome": "interested"}));
    let send = |body: Value| {
        let app = &app;
        async move {
            let resp = app
                .client
                .post(format!("{}/api/v1/leads", app.address))
                .header("Idempotency-Key", "lead-42")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let replayed = resp.headers().get("idempotent-replayed").is_some();
            (status, resp.json::<Value>().await.unwrap(), replayed)
        }
    };
    let (status1, first, replayed1) = send(body.clone()).await;
    // The same request, its fields in another order: the same request.
    let reordered: Value = serde_json::from_str(&format!(
        "{{\"sim\": {}, \"phone\": {}, \"name\": {}, \"business\": \"demo\"}}",
        body["sim"], body["phone"], body["name"]
    ))
    .unwrap();
    let (status2, second, replayed2) = send(reordered).await;
    assert_eq!((status1, status2), (201, 201));
    assert!(!replayed1 && replayed2);
    assert_eq!(first["lead"]["id"], second["lead"]["id"]);
    assert_eq!(first["run"]["id"], second["run"]["id"]);

    // The same key with another lead is refused, not answered with the first lead.
    let mut other = body.clone();
    other["name"] = json!("Grace Hopper");
    let (status, refused, _) = send(other.clone()).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (422, &json!("idempotency_key_reused")),
        "{refused}"
    );
    let (_, list) = app.get("/api/v1/runs").await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 1);

    // A key is remembered for a day: after that it is a new request.
    let day_ago = switchboard_engine::ids::now_ms() - 24 * 3600 * 1000 - 1000;
    app.engine
        .db()
        .execute(
            switchboard_engine::store::Q::new("UPDATE leads SET created_at = $1").bind(day_ago),
        )
        .await
        .unwrap();
    let (status, third, replayed) = send(other).await;
    assert_eq!((status, replayed), (201, false), "{third}");
    assert_ne!(third["lead"]["id"], first["lead"]["id"]);
    let (_, list) = app.get("/api/v1/runs").await;
    assert_eq!(list["runs"].as_array().unwrap().len(), 2);
}

async fn runs_list_pages_by_cursor(backend: Backend) {
    let app = spawn_app_with(
        &backend,
        TestOptions {
            no_workers: true,
            ..Default::default()
        },
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.create_lead(json!({})).await.1);
    }
    let (_, page1) = app.get("/api/v1/runs?limit=3").await;
    let cursor = page1["next_cursor"].as_str().unwrap().to_owned();
    let (_, page2) = app
        .get(&format!("/api/v1/runs?limit=3&cursor={cursor}"))
        .await;
    let got: Vec<String> = [&page1, &page2]
        .iter()
        .flat_map(|p| {
            p["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
        })
        .collect();
    ids.reverse();
    assert_eq!(got, ids, "newest first, no gaps, no repeats");
    assert!(page2["next_cursor"].is_null());
    // Each run names its lead as a person looks for it.
    assert_eq!(
        page1["runs"][0]["lead"],
        json!({"name": "Ada Lovelace", "phone": "+14155552671"}),
        "{page1}"
    );
    let (_, queued) = app.get("/api/v1/runs?status=queued&business=demo").await;
    assert_eq!(queued["runs"].as_array().unwrap().len(), 5);
    let (_, none) = app.get("/api/v1/runs?business=other").await;
    assert_eq!(none["runs"], json!([]));
}

async fn malformed_or_oversized_webhooks_are_rejected_and_other_types_ignored(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (_, run_id, conversation_id) = app.lead_awaiting_call().await;
    let before = app.run(&run_id).await;
    let url = format!("{}/api/v1/webhooks/elevenlabs", app.address);
    let now = chrono::Utc::now().timestamp();
    let signed = |raw: Vec<u8>| {
        let signature =
            switchboard_workflows::providers::elevenlabs::sign(WEBHOOK_SECRET, now, &raw);
        app.client
            .post(&url)
            .header("ElevenLabs-Signature", signature)
            .body(raw)
    };
    // Correctly signed, but not a webhook.
    let resp = signed(b"{\"type\": ".to_vec()).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "malformed_webhook");
    // Audio for the call is accepted and ignored; it is not the call's outcome.
    let audio = json!({"type": "post_call_audio", "event_timestamp": now,
                       "data": {"agent_id": "a", "conversation_id": conversation_id, "full_audio": "AAAA"}});
    let (status, resp) = app.post_webhook(&audio, WEBHOOK_SECRET, now).await;
    assert_eq!((status, resp["status"].as_str()), (200, Some("ignored")));
    // Larger than any webhook may be (last, on its own connection: the server answers before
    // reading the whole body and closes it).
    let raw = vec![b' '; 17 * 1024 * 1024];
    let signature = switchboard_workflows::providers::elevenlabs::sign(WEBHOOK_SECRET, now, &raw);
    let resp = reqwest::Client::new()
        .post(&url)
        .header("ElevenLabs-Signature", signature)
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "body_too_large");
    assert_eq!(
        app.run(&run_id).await,
        before,
        "a rejected or ignored webhook changed the run"
    );
}

async fn a_lead_reads_with_its_runs_and_calls(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (lead_id, run_id) = app
        .create_lead(json!({"outcome": "no_answer", "webhook_delay_ms": 20}))
        .await;
    app.wait_for_status(&run_id, "succeeded", Duration::from_secs(60))
        .await;
    let (status, body) = app.get(&format!("/api/v1/leads/{lead_id}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lead"]["id"], lead_id.as_str());
    assert_eq!(body["lead"]["phone"], "+14155552671");
    assert_eq!(body["runs"][0]["id"], run_id.as_str());
    assert_eq!(body["runs"][0]["outcome"], "unreachable");
    let calls = body["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3, "{body}");
    assert!(calls.iter().all(|c| c["outcome"] == "no_answer"), "{body}");
    assert!(
        calls.iter().all(|c| c["summary"].is_null()),
        "unanswered calls have no summary"
    );

    // A connected call's analysis summary is in the lead's history, for the next call's context.
    let (lead_id, run_id) = app.create_lead(json!({"outcome": "interested"})).await;
    app.wait_for_status(&run_id, "succeeded", Duration::from_secs(60))
        .await;
    let (_, body) = app.get(&format!("/api/v1/leads/{lead_id}")).await;
    let summary = body["calls"][0]["summary"].as_str().unwrap_or_default();
    assert!(!summary.is_empty(), "{body}");
    let (status, err) = app.get("/api/v1/leads/nope").await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

async fn browsers_on_configured_origins_may_call_the_api(backend: Backend) {
    let app = spawn_app(&backend).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/leads", app.address),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "content-type,idempotency-key",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // A simple request from the frontend gets the header and the replay header exposed.
    let resp = app
        .client
        .get(format!("{}/api/v1/runs", app.address))
        .header("Origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}

async fn runs_are_counted_per_status(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (_, done) = app
        .create_lead(json!({"outcome": "interested", "webhook_delay_ms": 20}))
        .await;
    app.wait_for_status(&done, "succeeded", T).await;
    let (_, waiting) = app
        .create_lead(json!({"outcome": "interested", "deliver_webhook": false}))
        .await;
    app.wait_for_call_wait(&waiting).await;
    let (status, body) = app.get("/api/v1/runs/counts").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["counts"]["succeeded"], 1);
    assert_eq!(body["counts"]["waiting"], 1);
    assert_eq!(body["counts"]["failed"], 0);
    assert_eq!(body["total"], 2);
    let (_, other) = app.get("/api/v1/runs/counts?business=realty").await;
    assert_eq!(other["total"], 0);
    let (status, err) = app.get("/api/v1/runs/counts?state=1").await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("invalid_query"))
    );
}

async fn runs_are_filtered_by_step_outcome_time_and_searched_by_lead(backend: Backend) {
    let app = spawn_app(&backend).await;
    let started = chrono::Utc::now() - chrono::Duration::seconds(5);
    let (_, ada) = app
        .create_lead(json!({"outcome": "interested", "webhook_delay_ms": 20}))
        .await;
    let grace = json!({"business": "demo", "name": "Grace Hopper", "phone": "+442071838750",
        "sim": {"outcome": "not_interested", "webhook_delay_ms": 20}});
    let (_, grace) = app.create_lead_with(&grace).await;
    app.wait_for_status(&ada, "succeeded", T).await;
    app.wait_for_status(&grace, "succeeded", T).await;
    let ids = |body: &Value| -> Vec<String> {
        body["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |query: String| {
        let app = &app;
        async move {
            let (status, body) = app.get(&format!("/api/v1/runs?{query}")).await;
            assert_eq!(status, 200, "{query}: {body}");
            body
        }
    };
    let both = vec![grace.clone(), ada.clone()];
    assert_eq!(
        ids(&list("outcome=handed_off".into()).await),
        [ada.as_str()]
    );
    assert_eq!(ids(&list("step=follow_up".into()).await), both);
    assert!(ids(&list("step=analyze".into()).await).is_empty());
    assert_eq!(ids(&list("q=grace".into()).await), [grace.as_str()]);
    assert_eq!(ids(&list("q=HOPPER".into()).await), [grace.as_str()]);
    assert_eq!(ids(&list("q=5552671".into()).await), [ada.as_str()]);
    assert!(
        ids(&list("q=%25".into()).await).is_empty(),
        "% is matched literally"
    );
    let at = |t: chrono::DateTime<chrono::Utc>| {
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .replace('+', "%2B")
    };
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    assert_eq!(ids(&list(format!("from={}", at(started))).await), both);
    assert!(ids(&list(format!("from={}", at(later))).await).is_empty());
    assert!(ids(&list(format!("to={}", at(started))).await).is_empty());
    assert_eq!(
        ids(&list(format!("to={}&limit=1", at(later))).await),
        [grace.as_str()]
    );
    let (status, err) = app.get("/api/v1/runs?from=yesterday").await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("invalid_time"))
    );
}

async fn the_openapi_document_is_served(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (status, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    for path in ["/api/v1/leads", "/api/v1/runs/{id}/retry", "/api/v1/events"] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

async fn the_overview_counts_leads_calls_outcomes_and_scores(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (_, hot) = app
        .create_lead(json!({"outcome": "interested", "webhook_delay_ms": 20}))
        .await;
    let (_, cold) = app
        .create_lead(json!({"outcome": "no_answer", "webhook_delay_ms": 20}))
        .await;
    app.wait_for_status(&hot, "succeeded", T).await;
    app.wait_for_status(&cold, "succeeded", Duration::from_secs(60))
        .await;
    let (status, body) = app.get("/api/v1/overview").await;
    assert_eq!(status, 200, "{body}");
    let all = &body["overall"];
    assert_eq!(all["leads"], 2, "{body}");
    assert_eq!(all["by_status"]["succeeded"], 2);
    assert_eq!(all["outcomes"]["handed_off"], 1);
    assert_eq!(all["outcomes"]["unreachable"], 1);
    // One connected call (scored), three unanswered ones.
    assert_eq!(all["calls"], 4, "{body}");
    assert_eq!(all["calls_placed"], 4);
    assert_eq!(all["connected"], 1);
    assert_eq!(all["connect_rate"], 0.25);
    let scored: i64 = all["score_distribution"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_i64().unwrap())
        .sum();
    assert_eq!(scored, 1);
    assert_eq!(body["businesses"][0]["id"], "demo");
    let (_, other) = app.get("/api/v1/overview?business=realty").await;
    assert_eq!(other["overall"]["leads"], 0);
    let (_, past) = app.get("/api/v1/overview?to=2020-01-01T00:00:00Z").await;
    assert_eq!(past["overall"]["leads"], 0);
    let (status, err) = app.get("/api/v1/overview?from=soon").await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (422, Some("invalid_time"))
    );
}
