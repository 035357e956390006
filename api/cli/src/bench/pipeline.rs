//! Lead pipeline figures: complete runs per second with 1 and 3 worker processes (against raw
//! apalis on the same backend), and webhook → next step latency with many runs waiting.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use switchboard_engine::store::{steps, waits};
use switchboard_engine::{Db, RunId};
use switchboard_workflows::business::shipped;
use switchboard_workflows::providers::elevenlabs;
use switchboard_workflows::scripting::host::content_hash;
use switchboard_workflows::store;

use super::http_api::create_leads;
use super::{
    Backend, BenchDb, Figure, WEBHOOK_SECRET, count_runs, latency, server, shut, single,
    spawn_process, stop_process, until,
};

/// The business the pipeline figures use: the demo business (no opening hours, the simulator's
/// outcomes) without its cap on concurrent calls, so the figures measure the engine.
pub(super) const BUSINESS: &str = "bench";

pub(super) async fn add_bench_business(db: &Db) -> anyhow::Result<()> {
    let demo = shipped()
        .into_iter()
        .find(|d| d.business.id == "demo")
        .ok_or_else(|| anyhow::anyhow!("demo is shipped"))?;
    let mut business = demo.business.clone();
    business.id = BUSINESS.into();
    business.name = "Bench (demo without a call cap)".into();
    business.calling.max_concurrent_calls = 1_000_000;
    let mut tx = db.begin().await?;
    store::configs::store_and_activate(&mut tx, &business).await?;
    store::scripts::store_and_activate(
        &mut tx,
        BUSINESS,
        &content_hash(&demo.script),
        &demo.script,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Waits until all `runs` runs succeeded (an error as soon as one fails).
pub(super) async fn every_run_succeeded(
    db: &Db,
    runs: usize,
    within: Duration,
) -> anyhow::Result<()> {
    until(
        "every run to succeed",
        within,
        Duration::from_millis(100),
        || async {
            let failed = count_runs(db, "failed").await?;
            anyhow::ensure!(failed == 0, "{failed} runs failed");
            Ok((count_runs(db, "succeeded").await? as usize == runs).then_some(()))
        },
    )
    .await
}

/// What pipeline throughput is compared with, measured in the same bench run.
pub(super) struct Baselines {
    /// Raw apalis no-op tasks per second.
    pub raw_tasks_per_sec: f64,
    /// The database's own single-row commits per second.
    pub commits_per_sec: f64,
}

/// Complete lead runs per second: `runs` leads queued through the API (a process without
/// workers, which also receives the webhooks), then drained by `processes` `switchboard worker`
/// processes whose simulators answer at once and post their webhooks over HTTP. Timed from the
/// first step's start to the last step's end.
pub(super) async fn throughput(
    backend: &Backend,
    processes: usize,
    runs: usize,
    baselines: Baselines,
) -> anyhow::Result<Vec<Figure>> {
    let bench = BenchDb::create(backend, "pipeline").await?;
    let (base, parts, task) = server(&bench, &[], false).await?;
    let db = parts.engine.db().clone();
    add_bench_business(&db).await?;
    let sim = json!({"outcome": "interested", "webhook_delay_ms": 0});
    create_leads(&base, runs, 16, BUSINESS, sim).await?;
    let mut workers = Vec::new();
    for _ in 0..processes {
        // 24 connections each: three of them and the API stay under PostgreSQL's default 100.
        let args = ["--public-url", &base, "--db-connections", "24"];
        workers.push(spawn_process(&bench, "worker", &args)?);
    }
    every_run_succeeded(&db, runs, Duration::from_secs(600)).await?;
    let (steps, secs) = super::succeeded_steps(&db).await?;
    for w in workers {
        stop_process(w).await?;
    }
    shut(parts, task).await;
    bench.remove().await?;
    let steps_per_sec = steps as f64 / secs;
    let b = backend.name();
    let label = if processes == 1 {
        "1 worker process".to_owned()
    } else {
        format!("{processes} worker processes")
    };
    let what = format!(
        "{runs} lead runs (8 steps, simulated call and analysis answering at once, webhooks over HTTP to an API process) drained by {label}"
    );
    Ok(vec![
        single(
            &format!("pipeline ({label})"),
            b,
            &what,
            runs,
            "runs/s",
            runs as f64 / secs,
        ),
        single(
            &format!("pipeline steps ({label})"),
            b,
            "steps completed per second in the same run",
            steps,
            "steps/s",
            steps_per_sec,
        ),
        single(
            &format!("pipeline vs raw apalis ({label})"),
            b,
            "pipeline steps/s ÷ raw apalis no-op tasks/s on the same backend, same bench run",
            steps,
            "ratio",
            steps_per_sec / baselines.raw_tasks_per_sec,
        ),
        single(
            &format!("pipeline vs database commits ({label})"),
            b,
            "pipeline steps/s ÷ the database's own commits/s, same bench run",
            steps,
            "ratio",
            steps_per_sec / baselines.commits_per_sec,
        ),
    ])
}

fn now_ms_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Webhook → resume: `waiting` runs wait on their call's webhook in one `serve` process; for
/// `samples` of them, one at a time, a signed `post_call_transcription` is posted and the time
/// from its `200` to the start of the step that was waiting (`await_call`, which reads the call's
/// end) is taken from that step's recorded start (millisecond resolution).
pub(super) async fn webhook_resume(
    backend: &Backend,
    waiting: usize,
    samples: usize,
) -> anyhow::Result<Figure> {
    let bench = BenchDb::create(backend, "webhook").await?;
    let (base, parts, task) = server(&bench, &[], true).await?;
    let db = parts.engine.db().clone();
    add_bench_business(&db).await?;
    let sim = json!({"outcome": "interested", "deliver_webhook": false, "webhook_delay_ms": 0});
    create_leads(&base, waiting, 16, BUSINESS, sim).await?;
    until(
        "every run to wait on its webhook",
        Duration::from_secs(600),
        Duration::from_millis(200),
        || async {
            let open = waits::count_waiting(&db).await?;
            Ok((open as usize >= waiting).then_some(()))
        },
    )
    .await?;
    let sampled = waits::some_waiting(&db, samples as i64).await?;
    let client = super::client();
    let mut latencies = Vec::with_capacity(sampled.len());
    for w in &sampled {
        let body = serde_json::to_vec(&transcription(&w.key))?;
        let signature = elevenlabs::sign(WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &body);
        let answer = client
            .post(format!("{base}/api/v1/webhooks/elevenlabs"))
            .header(elevenlabs::SIGNATURE_HEADER, signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(
            answer.status() == 200,
            "webhook answered {}",
            answer.status()
        );
        let answered = now_ms_f64();
        let poll_start = Instant::now();
        let started = loop {
            let run = RunId(w.run_id.clone());
            if let Some(at) = steps::started_at(&db, &run, "await_call").await? {
                break at;
            }
            anyhow::ensure!(
                poll_start.elapsed() < Duration::from_secs(30),
                "run {} did not resume",
                w.run_id
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let ms = (started as f64 - answered).max(0.0);
        latencies.push(Duration::from_micros((ms * 1000.0) as u64));
    }
    shut(parts, task).await;
    bench.remove().await?;
    Ok(latency(
        "webhook_resume",
        backend.name(),
        &format!(
            "signed post_call_transcription's 200 → the waiting step (await_call) started, {waiting} runs waiting, one webhook at a time, 1 ms resolution"
        ),
        latencies,
    ))
}

/// A `post_call_transcription` for `conversation_id`: an interested lead.
fn transcription(conversation_id: &str) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "type": "post_call_transcription",
        "event_timestamp": now,
        "data": {
            "agent_id": "agent_demo_realty",
            "conversation_id": conversation_id,
            "status": "done",
            "transcript": [
                {"role": "agent", "message": "Hi, this is Riley from Demo Realty.", "time_in_call_secs": 0},
                {"role": "user", "message": "Yes, I'm interested, please book a showing.", "time_in_call_secs": 4}
            ],
            "metadata": {"start_time_unix_secs": now, "call_duration_secs": 42},
            "analysis": {"call_successful": "success", "transcript_summary": "Interested."}
        }
    })
}
