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
);

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
    let (status, run) = app.post(&format!("/api/v1/runs/{run_id}/resume")).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], "queued");
    let done = app.wait_for_status(&run_id, "succeeded", T).await;
    assert_eq!(done["outcome"], "handed_off", "{done}");
    let await_call = attempts(&done, "await_call")[0];
    assert_eq!(await_call["input"]["outcome"]["type"], "timed_out");
}

async fn a_run_waiting_on_a_timer_is_resumed_by_hand(backend: Backend) {
    let app = spawn_app(&backend).await;
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
    let (status, run) = app.post(&format!("/api/v1/runs/{run_id}/resume")).await;
    assert_eq!(status, 200, "{run}");
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
