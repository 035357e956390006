//! `GET /api/v1/events`: run changes streamed live, filtered, resumed after a reconnect, and
//! delivered across processes sharing one database.

use std::time::Duration;

use serde_json::json;
use switchboard_tests::*;

const T: Duration = Duration::from_secs(30);

crate::on_both_backends!(
    run_changes_stream_live_and_resume_after_a_reconnect,
    events_are_filtered_by_business_and_run,
    a_malformed_last_event_id_is_refused,
    another_business_run_is_not_found_and_ready_tells_no_position,
);

async fn run_changes_stream_live_and_resume_after_a_reconnect(backend: Backend) {
    let app = spawn_app(&backend).await;
    let mut events = app.events("business=demo", None).await;
    let (_, run_id) = app
        .create_lead(json!({"outcome": "interested", "webhook_delay_ms": 50}))
        .await;
    let seen = events.until_run_status(&run_id, "succeeded", T).await;
    let statuses: Vec<&str> = seen
        .iter()
        .map(|e| e.data["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&"queued"), "{statuses:?}");
    for s in ["running", "waiting"] {
        assert!(statuses.contains(&s), "{statuses:?}");
    }
    let steps: Vec<&str> = seen
        .iter()
        .filter_map(|e| e.data["current_step"].as_str())
        .collect();
    for step in LEAD_CALL_STEPS {
        assert!(steps.contains(&step), "{step} missing from {steps:?}");
    }
    let ids: Vec<i64> = seen.iter().map(|e| e.id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    assert_eq!(seen.last().unwrap().data["outcome"], "handed_off");

    // A client that dropped after the third event gets exactly the rest on reconnecting.
    drop(events);
    let mut resumed = app.events("business=demo", Some(ids[2])).await;
    let replayed = resumed.until_run_status(&run_id, "succeeded", T).await;
    let replayed_ids: Vec<i64> = replayed.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(replayed_ids, ids[3..]);
}

async fn events_are_filtered_by_business_and_run(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (_, first) = app
        .create_lead(json!({"outcome": "not_interested", "webhook_delay_ms": 20}))
        .await;
    app.wait_for_status(&first, "succeeded", T).await;
    let mut by_run = app.events(&format!("run={first}"), Some(0)).await;
    let mut other_business = app.events("business=realty", Some(0)).await;
    let (_, second) = app
        .create_lead(json!({"outcome": "interested", "webhook_delay_ms": 20}))
        .await;
    // The run filter replays the first run's history and nothing of the second.
    let seen = by_run.until_run_status(&first, "succeeded", T).await;
    assert!(seen.iter().all(|e| e.data["run_id"] == first.as_str()));
    app.wait_for_status(&second, "succeeded", T).await;
    while let Some(e) = by_run.next(Duration::from_millis(500)).await {
        assert_ne!(e.data["run_id"], second.as_str(), "{e:?}");
    }
    // No realty run exists: that stream stays quiet.
    let quiet = other_business.next(Duration::from_millis(500)).await;
    assert!(quiet.is_none(), "{quiet:?}");
}

/// Scale-out is PostgreSQL's (one SQLite file is one process' database), so this scenario runs
/// on PostgreSQL only.
mod scale_out {
    mod postgres {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_change_made_by_another_process_reaches_this_ones_clients() {
            match switchboard_tests::Backend::postgres() {
                Some(backend) => super::super::across_processes(backend).await,
                None => eprintln!("skipped: TEST_DATABASE_URL is not set"),
            }
        }
    }
}

async fn across_processes(backend: Backend) {
    let a = spawn_app(&backend).await;
    let b = a
        .another_process(TestOptions {
            no_workers: true,
            ..Default::default()
        })
        .await;
    let mut on_b = b.events("business=demo", None).await;
    // The lead comes in through B, which has no workers: A's workers run it, B's client sees it.
    let (_, run_id) = b
        .create_lead(json!({"outcome": "interested", "webhook_delay_ms": 50}))
        .await;
    let seen = on_b.until_run_status(&run_id, "succeeded", T).await;
    assert!(seen.iter().any(|e| e.data["status"] == "waiting"));
    assert_eq!(b.run(&run_id).await["status"], "succeeded");
}

async fn a_malformed_last_event_id_is_refused(backend: Backend) {
    let app = spawn_app(&backend).await;
    let resp = app
        .client
        .get(format!("{}/api/v1/events", app.address))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_last_event_id");
    let (status, body) = app.get("/api/v1/events?nope=1").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_query"))
    );
}

/// A business' key cannot watch (or learn of) another business' run, and the `ready` event does
/// not carry the feed's position, which counts every business' changes.
async fn another_business_run_is_not_found_and_ready_tells_no_position(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::without_workers()).await;
    let (_, run_id) = app.create_lead_with(&lead(json!({}))).await;
    let (_, dental_key) = app.create_key("dental").await;
    let dental = client_with_key(&dental_key);
    for (client, run) in [(&dental, run_id.as_str()), (&app.client, "run_nope")] {
        let (status, body) = app
            .send_with(client, "get", &format!("/api/v1/events?run={run}"), None)
            .await;
        assert_eq!(status, 404, "{run}: {body}");
        assert_eq!(body["error"]["code"], "not_found", "{body}");
    }
    let (_, demo_key) = app.create_key("demo").await;
    let resp = client_with_key(&demo_key)
        .get(format!("{}/api/v1/events?run={run_id}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = EventStream::new(resp);
    let ready = stream.next(T).await.expect("the ready event");
    assert_eq!(ready.event, "ready");
    assert_eq!(ready.data, json!({}), "no position in it");
    assert_eq!(ready.id, None);
}
