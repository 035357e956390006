//! An operator's actions on a run: cancel (see pipeline), retry from the failed step, resume a
//! waiting run now.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::fakes::FakeProviders;
use switchboard_tests::*;

const T: Duration = Duration::from_secs(30);

crate::on_both_backends!(
    a_failed_run_is_retried_from_the_step_that_failed,
    a_run_waiting_on_a_webhook_is_resumed_by_hand,
    a_run_waiting_on_a_timer_is_resumed_by_hand,
    actions_on_runs_in_the_wrong_state_are_refused_and_change_nothing,
    the_queue_view_shows_the_step_queue_read_only,
);

const DONE_TASKS: &str = "api/v1/queues/switchboard.steps/tasks?status=Done&page=1&page_size=50";
const PENDING_TASKS: &str = "api/v1/queues/switchboard.steps/tasks?status=Pending&page=1";

async fn the_queue_view_shows_the_step_queue_read_only(backend: Backend) {
    let app = spawn_app(&backend).await;
    let board = app.queue_board_url().await;
    // Its log stream (and the UI's health signal) carries run changes.
    let mut log = app
        .client
        .get(format!("{board}api/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(log.status(), 200);
    let (_, run_id) = app.create_lead(json!({"outcome": "interested"})).await;
    let mut seen = String::new();
    let logged = tokio::time::timeout(T, async {
        while let Some(chunk) = log.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(&format!("demo run {run_id}: succeeded")) {
                return;
            }
        }
    })
    .await;
    assert!(
        logged.is_ok(),
        "the run's changes in the log stream: {seen}"
    );
    assert!(seen.contains(r#""task_id":""#), "{seen}");
    app.wait_for_status(&run_id, "succeeded", T).await;
    assert!(
        board.starts_with("http://127.0.0.1:") && board.ends_with('/'),
        "{board}"
    );
    let get = |path: &str| {
        let url = format!("{board}{path}");
        let client = app.client.clone();
        async move {
            let resp = client.get(&url).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap())
        }
    };
    // The prebuilt UI, for any page of it.
    for page in ["", "queues/switchboard.steps"] {
        let (status, html) = get(page).await;
        assert_eq!(status, 200, "{page}");
        assert!(html.contains("Apalis Board"), "{page}: {html}");
    }
    // Its API sees the engine's queue and the tasks the run went through.
    let (status, queues) = get("api/v1/queues").await;
    assert_eq!(status, 200, "{queues}");
    assert!(queues.contains("switchboard.steps"), "{queues}");
    let (status, tasks) = get(DONE_TASKS).await;
    assert_eq!(status, 200, "{tasks}");
    let tasks: Vec<Value> = serde_json::from_str(&tasks).unwrap();
    assert!(
        tasks.iter().any(|t| t.to_string().contains(&run_id)),
        "the run's step tasks are listed: {tasks:?}"
    );
    let (status, workers) = get("api/v1/workers").await;
    assert_eq!(status, 200, "{workers}");
    assert!(
        workers.contains("switchboard-"),
        "this process' worker: {workers}"
    );
    // Pushing a raw task would bypass the engine's run state: refused.
    let before = get(PENDING_TASKS).await.1;
    let resp = app
        .client
        .put(format!("{board}api/v1/queues/switchboard.steps/tasks"))
        .json(&json!({"run_id": run_id, "seq": 1, "kind": "step"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
    assert_eq!(get(PENDING_TASKS).await.1, before, "nothing was queued");
}

async fn a_failed_run_is_retried_from_the_step_that_failed(backend: Backend) {
    let fakes = FakeProviders::start().await;
    fakes.set_outcome("interested");
    let app = spawn_app_configured(&backend, TestOptions::default(), |c| fakes.configure(c)).await;
    fakes.post_webhooks_to(&app.address);
    fakes.faults.reject_calls.store(true, Ordering::SeqCst);
    let lead = json!({"business": "demo", "name": "Ada Lovelace", "phone": "+14155552671"});
    let (_, run_id) = app.create_lead_with(&lead).await;
    let failed = app.wait_for_status(&run_id, "failed", T).await;
    assert_eq!(failed["current_step"], "place_call");
    assert!(
        failed["error"].as_str().unwrap().contains("422"),
        "{failed}"
    );
    // The operator fixes the number at the provider and retries.
    fakes.faults.reject_calls.store(false, Ordering::SeqCst);
    let (status, run) = app.post(&format!("/api/v1/runs/{run_id}/retry")).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "queued");
    assert!(run["error"].is_null() && run["outcome"].is_null(), "{run}");
    let done = app.wait_for_status(&run_id, "succeeded", T).await;
    assert_eq!(done["outcome"], "handed_off");
    let place: Vec<&Value> = attempts(&done, "place_call");
    assert_eq!(place.len(), 2, "the failed attempt, then the retried one");
    assert_eq!(place[0]["status"], "failed");
    assert_eq!(
        (place[1]["status"].as_str(), place[1]["attempt"].as_u64()),
        (Some("succeeded"), Some(1))
    );
    assert_eq!(
        place[0]["input"], place[1]["input"],
        "retried with the same input"
    );
    // Earlier steps were not run again.
    assert_eq!(attempts(&done, "route").len(), 1);
}

async fn a_run_waiting_on_a_webhook_is_resumed_by_hand(backend: Backend) {
    let app = spawn_app(&backend).await;
    // The call happens but its webhook is lost; the deadline is far (120 s).
    let (_, run_id) = app
        .create_lead(
            json!({"outcome": "interested", "deliver_webhook": false, "webhook_delay_ms": 0}),
        )
        .await;
    app.wait_for_call_wait(&run_id).await;
    let run = app.resume(&run_id).await;
    assert_eq!(run["status"], "queued");
    let done = app.wait_for_status(&run_id, "succeeded", T).await;
    assert_eq!(done["outcome"], "handed_off", "{done}");
    let await_call = attempts(&done, "await_call")[0];
    assert_eq!(await_call["input"]["outcome"]["type"], "timed_out");
}

async fn a_run_waiting_on_a_timer_is_resumed_by_hand(backend: Backend) {
    let app = spawn_app(&backend).await;
    app.call_back_after_an_hour("demo").await;
    let (_, run_id) = app
        .create_lead(json!({"outcome": "no_answer", "webhook_delay_ms": 0}))
        .await;
    // After the first unanswered call the run waits on a timer before calling again.
    let waiting = eventually("a timer wait", T, || async {
        let run = app.run(&run_id).await;
        (run["status"] == "waiting" && run["wait"]["kind"] == "timer").then_some(run)
    })
    .await;
    let deadline = waiting["wait"]["deadline"].as_str().unwrap().to_owned();
    app.resume(&run_id).await;
    let second = eventually("the second call's context built", T, || async {
        let run = app.run(&run_id).await;
        attempts(&run, "build_context")
            .get(1)
            .and_then(|a| a["started_at"].as_str().map(str::to_owned))
    })
    .await;
    let run = app.run(&run_id).await;
    assert!(
        second < deadline,
        "resumed at {second}, before the timer's {deadline}: {waiting} {run}"
    );
}

async fn actions_on_runs_in_the_wrong_state_are_refused_and_change_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (_, run_id) = app
        .create_lead(json!({"outcome": "interested", "webhook_delay_ms": 20}))
        .await;
    let done = app.wait_for_status(&run_id, "succeeded", T).await;
    for action in ["retry", "resume", "cancel"] {
        let (status, err) = app.post(&format!("/api/v1/runs/{run_id}/{action}")).await;
        assert_eq!(status, 409, "{action}: {err}");
        assert_eq!(err["error"]["code"], "conflict");
    }
    assert_eq!(app.run(&run_id).await, done);
    let (status, err) = app
        .post("/api/v1/runs/0190b5a0-0000-7000-8000-000000000000/retry")
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}
