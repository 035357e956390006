//! Cron campaigns: a tick fires once however many processes run it, calls the leads the
//! schedule selects, and a paused schedule does not fire.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_engine::store::Q;
use switchboard_tests::*;

crate::on_both_backends!(
    a_cron_tick_fires_once_with_three_processes_and_pauses,
    a_schedule_changed_through_the_api_ticks_anew_without_a_restart,
);

const T: Duration = Duration::from_secs(60);

/// A business folder whose schedule ticks every second and calls back leads tagged cold.
fn business_folder() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sb_businesses_{}", uuid::Uuid::now_v7().simple()));
    let folder = dir.join("cronco");
    std::fs::create_dir_all(&folder).unwrap();
    let toml = r#"
id = "cronco"
name = "Cron Co"
timezone = "America/New_York"
default_agent = "riley"

[[objectives]]
name = "Re-engage"

[agents.riley]
agent_id = "agent_cronco"
phone_number_id = "phnum_cronco"
prompt = "You are Riley from Cron Co."
first_message = "Hi {{customer_name}}, this is Riley from Cron Co."

[[schedules]]
name = "every-second"
cron = "* * * * * *"
tag = "cold"
"#;
    std::fs::write(folder.join("business.toml"), toml).unwrap();
    let script = r#"
fn score(lead, analysis) { #{ score: 10, tag: "cold", reasons: ["always cold"] } }
fn follow_up(run) { #{ action: "stop", outcome: "cold" } }
"#;
    std::fs::write(folder.join("policy.rhai"), script).unwrap();
    dir
}

async fn schedule(app: &TestApp) -> Value {
    let (status, body) = app.get("/api/v1/schedules?business=cronco").await;
    assert_eq!(status, 200, "{body}");
    body["schedules"][0].clone()
}

async fn ticks(app: &TestApp) -> Vec<(i64, i64)> {
    app.engine
        .db()
        .fetch_all(Q::new(
            "SELECT tick_at, runs_started FROM schedule_ticks WHERE business_id = 'cronco' \
             ORDER BY tick_at",
        ))
        .await
        .unwrap()
}

/// The lead's runs, oldest first: (created, last updated, status).
async fn runs_of(app: &TestApp, lead_id: &str) -> Vec<(i64, i64, String)> {
    app.engine
        .db()
        .fetch_all(
            Q::new(
                "SELECT created_at, updated_at, status FROM sb_runs WHERE subject_id = $1 \
                 ORDER BY created_at",
            )
            .bind(lead_id),
        )
        .await
        .unwrap()
}

async fn a_cron_tick_fires_once_with_three_processes_and_pauses(backend: Backend) {
    let dir = business_folder();
    let opts = TestOptions {
        businesses_dir: Some(dir.clone()),
        ..TestOptions::default()
    };
    let app = spawn_app_with(&backend, opts.clone()).await;
    let pause = "/api/v1/businesses/cronco/schedules/every-second/pause";
    let resume = "/api/v1/businesses/cronco/schedules/every-second/resume";
    let (status, paused) = app.post(pause).await;
    assert_eq!((status, &paused["paused"]), (200, &json!(true)), "{paused}");
    // A tick may have fired (calling no one) before the pause; none after it.
    let first_pause = chrono::Utc::now().timestamp_millis();
    let fired_since = |ticks: Vec<(i64, i64)>, since: i64| -> Vec<(i64, i64)> {
        ticks
            .into_iter()
            .filter(|(at, _)| *at > since + 1_000)
            .collect()
    };

    // A lead is called once and scored cold while the schedule is paused…
    let (lead_id, run_id) = app
        .create_lead_with(&json!({
            "business": "cronco", "name": "Ada Lovelace", "phone": "+14155552671",
            "sim": {"outcome": "interested"}
        }))
        .await;
    let run = app.wait_for_status(&run_id, "succeeded", T).await;
    assert_eq!(run["outcome"], "cold", "{run}");
    let early = fired_since(ticks(&app).await, first_pause);
    assert!(early.is_empty(), "fired while paused: {early:?}");

    // …then two more processes start, and the schedule is resumed.
    let _second = app.another_process(opts.clone()).await;
    let _third = app.another_process(opts).await;
    let (status, resumed) = app.post(resume).await;
    assert_eq!(
        (status, &resumed["paused"]),
        (200, &json!(false)),
        "{resumed}"
    );
    // Every second each of the three processes sees the tick; the lead is called back each time
    // its last call is over.
    eventually("the lead called back twice by the schedule", T, || async {
        (runs_of(&app, &lead_id).await.len() >= 3).then_some(())
    })
    .await;
    let (status, _) = app.post(pause).await;
    assert_eq!(status, 200);
    let paused_at = chrono::Utc::now().timestamp_millis();

    // Paused: the ticks pass without firing (read after them, so a tick that began before the
    // pause has committed its run too).
    eventually("three more seconds", Duration::from_secs(10), || async {
        (chrono::Utc::now().timestamp_millis() > paused_at + 3_000).then_some(())
    })
    .await;
    let fired = ticks(&app).await;
    let started: i64 = fired.iter().map(|(_, n)| n).sum();
    let runs = runs_of(&app, &lead_id).await;
    eprintln!(
        "cron ({backend:?}): {} ticks fired across three processes, {started} runs started",
        fired.len()
    );
    assert!(
        fired.iter().all(|(_, n)| *n <= 1),
        "one lead, at most one run a tick: {fired:?}"
    );
    assert_eq!(
        runs.len() as i64,
        1 + started,
        "every run started by a tick was started once: {runs:?}"
    );
    for pair in runs.windows(2) {
        let (earlier, later) = (&pair[0], &pair[1]);
        assert!(
            later.0 >= earlier.1 && earlier.2 != "running",
            "a lead with a run in progress is not called again: {runs:?}"
        );
    }

    let after = fired_since(fired, paused_at);
    assert!(after.is_empty(), "fired while paused: {after:?}");
    let shown = schedule(&app).await;
    assert_eq!(shown["paused"], true, "{shown}");
    assert_eq!(shown["cron"], "* * * * * *");
    assert!(
        !shown["recent_ticks"].as_array().unwrap().is_empty(),
        "{shown}"
    );
    let (_, audit) = app.get("/api/v1/audit?business=cronco").await;
    assert!(audit.to_string().contains("schedule.paused"), "{audit}");

    // An unknown schedule or business answers 404, and changes nothing.
    let (status, body) = app
        .post("/api/v1/businesses/cronco/schedules/nightly/pause")
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("not_found")),
        "{body}"
    );
    let (status, _) = app
        .post("/api/v1/businesses/nobody/schedules/every-second/resume")
        .await;
    assert_eq!(status, 404);
    assert_eq!(schedule(&app).await["paused"], true);
    std::fs::remove_dir_all(dir).ok();
}

async fn a_schedule_changed_through_the_api_ticks_anew_without_a_restart(backend: Backend) {
    let app = spawn_app(&backend).await;
    // Cron Co signs up through the API with a schedule that calls hot leads back every second;
    // its leads end cold.
    let every_second =
        |tag: &str| json!([{"name": "every-second", "cron": "* * * * * *", "tag": tag}]);
    let config = json!({
        "id": "cronco", "name": "Cron Co", "timezone": "America/New_York",
        "default_agent": "riley", "objectives": [{"name": "Re-engage"}],
        "agents": {"riley": {"agent_id": "agent_cronco", "phone_number_id": "phnum_cronco",
            "prompt": "You are Riley from Cron Co.",
            "first_message": "Hi {{customer_name}}, this is Riley from Cron Co."}},
        "schedules": every_second("hot"),
    });
    let script = r#"
fn score(lead, analysis) { #{ score: 10, tag: "cold", reasons: ["always cold"] } }
fn follow_up(run) { #{ action: "stop", outcome: "cold" } }
"#;
    let (status, created) = app
        .send(
            "POST",
            "/api/v1/businesses",
            &json!({"config": config, "script": script}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (lead, run) = app
        .create_lead_with(&json!({"business": "cronco", "name": "Ada Lovelace",
            "phone": "+14155550111", "sim": {"outcome": "interested"}}))
        .await;
    app.wait_for_status(&run, "succeeded", T).await;
    // The running process picked the new business up: its schedule ticks, calling no one.
    eventually("the schedule ticking", T, || async {
        (ticks(&app).await.len() >= 2).then_some(())
    })
    .await;
    assert_eq!(runs_of(&app, &lead).await.len(), 1);

    // Changed to call cold leads back, it calls the lead again, without a restart.
    let (status, changed) = app
        .send(
            "PATCH",
            "/api/v1/businesses/cronco/config",
            &json!({"schedules": every_second("cold")}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    eventually(
        "the lead called back by the changed schedule",
        T,
        || async { (runs_of(&app, &lead).await.len() >= 2).then_some(()) },
    )
    .await;
    assert_eq!(schedule(&app).await["tag"], "cold");
}
