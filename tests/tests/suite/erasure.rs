//! Right to erasure: `DELETE /api/v1/leads/{id}` removes the lead and everything derived from it.

use std::time::Duration;

use serde_json::json;
use switchboard_engine::store::Q;
use switchboard_tests::*;

const T: Duration = Duration::from_secs(30);

crate::on_both_backends!(
    erasing_a_lead_removes_everything_derived_from_it_and_nothing_else,
    a_lead_with_a_run_in_flight_is_not_erased_until_it_ends,
    leads_past_their_business_retention_are_erased_by_the_sweep,
);

/// Rows in each table that belong to the lead `lead_id` (whose run is `run_id`).
async fn rows_of(app: &TestApp, lead_id: &str, run_id: &str) -> Vec<(&'static str, i64)> {
    let owned = [
        ("leads", "id", lead_id),
        ("sim_steering", "lead_id", lead_id),
        ("calls", "lead_id", lead_id),
        ("sb_runs", "subject_id", lead_id),
        ("sb_steps", "run_id", run_id),
        ("sb_waits", "run_id", run_id),
        ("sb_changes", "run_id", run_id),
        ("sb_events", "run_id", run_id),
        ("run_scripts", "run_id", run_id),
        ("run_configs", "run_id", run_id),
    ];
    let mut counts = Vec::new();
    for (table, column, id) in owned {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1");
        let (n,): (i64,) = app
            .engine
            .db()
            .fetch_one(Q::new(sql).bind(id))
            .await
            .unwrap();
        counts.push((table, n));
    }
    counts
}

async fn erasing_a_lead_removes_everything_derived_from_it_and_nothing_else(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (lead, run) = app.create_lead(json!({"outcome": "interested"})).await;
    let (other_lead, other_run) = app.create_lead(json!({"outcome": "interested"})).await;
    app.wait_for_status(&run, "succeeded", T).await;
    app.wait_for_status(&other_run, "succeeded", T).await;
    let before = rows_of(&app, &lead, &run).await;
    for table in [
        "leads",
        "sim_steering",
        "calls",
        "sb_runs",
        "sb_steps",
        "sb_changes",
        "sb_events",
        "run_scripts",
        "run_configs",
    ] {
        let n = before.iter().find(|(t, _)| *t == table).unwrap().1;
        assert!(n > 0, "{table} holds the lead's rows before: {before:?}");
    }
    let others_before = rows_of(&app, &other_lead, &other_run).await;

    assert_eq!(
        app.delete(&format!("/api/v1/leads/{lead}")).await,
        (204, serde_json::Value::Null)
    );

    let after = rows_of(&app, &lead, &run).await;
    assert!(after.iter().all(|(_, n)| *n == 0), "{after:?}");
    // The transcript arrived as an event keyed by the conversation: none is left but the other
    // lead's.
    let (events,): (i64,) = app
        .engine
        .db()
        .fetch_one(
            Q::new("SELECT COUNT(*) FROM sb_events WHERE run_id IS NULL OR run_id <> $1")
                .bind(other_run.as_str()),
        )
        .await
        .unwrap();
    assert_eq!(events, 0);
    assert_eq!(app.get(&format!("/api/v1/leads/{lead}")).await.0, 404);
    assert_eq!(app.get(&format!("/api/v1/runs/{run}")).await.0, 404);
    let (_, list) = app.get("/api/v1/runs").await;
    let ids: Vec<&str> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [other_run.as_str()]);
    // The other lead keeps all of its rows.
    assert_eq!(rows_of(&app, &other_lead, &other_run).await, others_before);
    // Erasing again, or an unknown lead: 404 in the one error shape.
    let (status, body) = app.delete(&format!("/api/v1/leads/{lead}")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

async fn a_lead_with_a_run_in_flight_is_not_erased_until_it_ends(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (lead, run) = app
        .create_lead(json!({"outcome": "interested", "deliver_webhook": false}))
        .await;
    app.wait_for_status(&run, "waiting", T).await;
    let before = rows_of(&app, &lead, &run).await;
    let (status, body) = app.delete(&format!("/api/v1/leads/{lead}")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    assert_eq!(rows_of(&app, &lead, &run).await, before, "nothing changed");
    assert_eq!(app.get(&format!("/api/v1/leads/{lead}")).await.0, 200);

    assert_eq!(app.post(&format!("/api/v1/runs/{run}/cancel")).await.0, 200);
    assert_eq!(app.delete(&format!("/api/v1/leads/{lead}")).await.0, 204);
    assert!(
        rows_of(&app, &lead, &run)
            .await
            .iter()
            .all(|(_, n)| *n == 0)
    );
}

async fn leads_past_their_business_retention_are_erased_by_the_sweep(backend: Backend) {
    use switchboard_workflows::retention;
    const DAY_MS: i64 = 86_400_000;
    // The demo business keeps a lead 90 days after its last run ended.
    let app = spawn_app_with(&backend, TestOptions::webhooks_wait_an_hour()).await;
    let (ended, ended_run) = app.create_lead(json!({"outcome": "interested"})).await;
    app.wait_for_status(&ended_run, "succeeded", T).await;
    let (in_flight, in_flight_run) = app.create_lead(json!({"webhook_delay_ms": 600_000})).await;
    app.wait_for_status(&in_flight_run, "waiting", T).await;
    let now = chrono::Utc::now().timestamp_millis();

    // 89 days on: within retention, nothing goes.
    let swept = retention::sweep(&app.engine, now + 89 * DAY_MS, None)
        .await
        .unwrap();
    assert!(swept.iter().all(|(_, n)| *n == 0), "{swept:?}");
    assert_eq!(app.get(&format!("/api/v1/leads/{ended}")).await.0, 200);

    // 91 days on: the lead whose run ended is erased with its runs and transcripts; the one
    // with a run still waiting stays; businesses without a retention are not swept.
    let swept = retention::sweep(&app.engine, now + 91 * DAY_MS, None)
        .await
        .unwrap();
    assert_eq!(swept, vec![("demo".to_owned(), 1)], "{swept:?}");
    assert_eq!(app.get(&format!("/api/v1/leads/{ended}")).await.0, 404);
    let gone = rows_of(&app, &ended, &ended_run).await;
    assert!(gone.iter().all(|(_, n)| *n == 0), "{gone:?}");
    assert_eq!(app.get(&format!("/api/v1/leads/{in_flight}")).await.0, 200);
    assert_eq!(app.run(&in_flight_run).await["status"], "waiting");
    // Sweeping again finds nothing more.
    let again = retention::sweep(&app.engine, now + 91 * DAY_MS, None)
        .await
        .unwrap();
    assert_eq!(again, vec![("demo".to_owned(), 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_lead_removes_its_call_recordings() {
    let dir = std::env::temp_dir().join(format!("sb-erase-{}", uuid::Uuid::now_v7().simple()));
    let audio_dir = dir.clone();
    let app = spawn_app_configured(
        &Backend::Sqlite,
        TestOptions::webhooks_wait_an_hour(),
        |c| {
            c.call_audio_dir = Some(audio_dir);
        },
    )
    .await;
    let (lead, run, conversation) = app.lead_awaiting_call().await;
    let now = chrono::Utc::now().timestamp();
    let audio = json!({"type": "post_call_audio", "event_timestamp": now,
        "data": {"agent_id": "a", "conversation_id": conversation, "full_audio": "SUQzBAAAAAAA"}});
    let (status, _) = app.post_webhook(&audio, WEBHOOK_SECRET, now).await;
    assert_eq!(status, 200);
    let recording = dir.join(format!("{conversation}.mp3"));
    assert!(recording.exists());
    // The run ends (cancelled here: it is a lead's last run's end that erasure waits for).
    assert_eq!(app.post(&format!("/api/v1/runs/{run}/cancel")).await.0, 200);

    assert_eq!(app.delete(&format!("/api/v1/leads/{lead}")).await.0, 204);
    assert!(
        !recording.exists(),
        "the call recording is erased with the lead"
    );
    std::fs::remove_dir_all(&dir).ok();
}
