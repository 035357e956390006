//! Engine figures without the lead pipeline: raw apalis no-op tasks (the floor we compare to),
//! step overhead of sequential steps, and the memory of a server while runs wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use switchboard_engine::{
    BusinessId, Db, Engine, NewRun, Registry, Step, StepContext, StepError, Transition,
    WorkerOptions, Workflow,
};
use tokio::sync::Notify;

use super::{Backend, BenchDb, Figure, single, spawn_process, stop_process, until};

#[derive(Serialize, Deserialize)]
struct Noop(usize);

/// Counts handled tasks; notes when the first and the last ran.
struct Tally {
    target: usize,
    seen: AtomicUsize,
    first: std::sync::Mutex<Option<Instant>>,
    last: std::sync::Mutex<Option<Instant>>,
    done: Notify,
}

async fn noop(_task: Noop, tally: Data<Arc<Tally>>) -> Result<(), BoxDynError> {
    let now = Instant::now();
    tally.first.lock().map(|mut f| *f.get_or_insert(now)).ok();
    if tally.seen.fetch_add(1, Ordering::SeqCst) + 1 == tally.target {
        tally.last.lock().map(|mut l| *l = Some(now)).ok();
        tally.done.notify_one();
    }
    Ok(())
}

const NOOP_QUEUE: &str = "bench.noop";

/// Tasks one raw apalis worker drains before a fresh worker takes over (see [`raw_apalis`]).
const ROUND: usize = 1_000;

/// Raw apalis: `tasks` no-op tasks drained by one worker with batches of 100 and concurrency 100
/// (apalis' own benchmark settings), in rounds of [`ROUND`] queued tasks, each round by a
/// fresh worker; tasks per second over the rounds, from each round's first task run to its last.
///
/// Why rounds: apalis 1.0 acknowledges a batch with one statement that the database plans by
/// reading every job the worker ever locked (finished ones keep `lock_by`) against the batch, so
/// one long-lived worker slows down as its history grows (quadratic: 1,000 tasks ran at ~4,400/s
/// on SQLite, 10,000 at ~240/s). A fresh worker per 1,000 tasks measures apalis at the size it
/// was measured at, not that plan. The engine's own queue acknowledges by job id.
pub(super) async fn raw_apalis(backend: &Backend, tasks: usize) -> anyhow::Result<Figure> {
    let bench = BenchDb::create(backend, "apalis").await?;
    let db = Db::connect(&bench.url, 8).await?;
    switchboard_engine::migrate(&db).await?;
    // apalis on sqlx pools of its own, with the engine's connection settings: on SQLite one
    // writing connection, as the engine writes.
    let pool = match &db {
        Db::Sqlite(pools) => Apalis::Sqlite(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(pools.connect_options().clone())
                .await?,
        ),
        Db::Postgres(_) => Apalis::Postgres(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(8)
                .connect(&bench.url)
                .await?,
        ),
    };
    let mut busy = Duration::ZERO;
    let mut done = 0;
    while done < tasks {
        let round = ROUND.min(tasks - done);
        push_noops(&pool, done, round).await?;
        busy += drain(&pool, round).await?;
        done += round;
    }
    match pool {
        Apalis::Sqlite(pool) => pool.close().await,
        Apalis::Postgres(pool) => pool.close().await,
    }
    db.close().await;
    bench.remove().await?;
    Ok(single(
        "raw_apalis (no-op tasks)",
        backend.name(),
        &format!(
            "apalis 1.0 alone: queued no-op tasks drained by one worker, batch 100, concurrency 100, a fresh worker every {ROUND} tasks"
        ),
        tasks,
        "tasks/s",
        tasks as f64 / busy.as_secs_f64().max(1e-6),
    ))
}

/// The sqlx pool raw apalis runs on.
#[derive(Clone)]
enum Apalis {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Queues `n` no-op tasks (numbered from `from`) in apalis' own way.
async fn push_noops(db: &Apalis, from: usize, n: usize) -> anyhow::Result<()> {
    let payloads: Vec<Vec<u8>> = (from..from + n)
        .map(|i| serde_json::to_vec(&Noop(i)))
        .collect::<Result<_, _>>()?;
    for chunk in payloads.chunks(500) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|p| TaskBuilder::new(p.clone()).build())
            .collect();
        match db {
            Apalis::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                apalis_sqlite::queries::push_tasks(&mut *tx, NOOP_QUEUE, &batch).await?;
                tx.commit().await?;
            }
            Apalis::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                apalis_postgres::queries::push_tasks(&mut *tx, NOOP_QUEUE, batch).await?;
                tx.commit().await?;
            }
        }
    }
    Ok(())
}

/// One fresh apalis worker drains the `n` queued no-op tasks; returns the time from the first
/// task run to the last.
async fn drain(db: &Apalis, n: usize) -> anyhow::Result<Duration> {
    let tally = Arc::new(Tally {
        target: n,
        seen: AtomicUsize::new(0),
        first: Default::default(),
        last: Default::default(),
        done: Notify::new(),
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        let _ = stop_rx.await;
        Ok(())
    };
    let beat = Duration::from_secs(1);
    macro_rules! monitor {
        ($storage:expr) => {{
            let tally = tally.clone();
            tokio::spawn(
                Monitor::new()
                    .register(move |_| {
                        WorkerBuilder::new(format!(
                            "bench-noop-{}",
                            &uuid::Uuid::now_v7().simple().to_string()[20..]
                        ))
                        .backend($storage)
                        .data(tally.clone())
                        .concurrency(100)
                        .build(noop)
                    })
                    .run_with_signal(signal),
            )
        }};
    }
    let monitor = match db.clone() {
        Apalis::Sqlite(pool) => {
            let config = apalis_sqlite::Config::default()
                .queue(NOOP_QUEUE)
                .batch_size(100)
                .heartbeat_interval(beat);
            monitor!(apalis_sqlite::SqliteStorage::<Noop>::new(&pool).with_config(config.clone()))
        }
        Apalis::Postgres(pool) => {
            let config = apalis_postgres::Config::default()
                .queue(NOOP_QUEUE)
                .batch_size(100)
                .heartbeat_interval(beat);
            monitor!(
                apalis_postgres::PostgresStorage::<Noop>::new(&pool)
                    .with_config(config.clone())
                    .with_pubsub()
            )
        }
    };
    tokio::time::timeout(Duration::from_secs(300), tally.done.notified())
        .await
        .map_err(|_| anyhow::anyhow!("raw apalis did not drain {n} tasks in 300 s"))?;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), monitor).await;
    let first = tally.first.lock().ok().and_then(|f| *f);
    let last = tally.last.lock().ok().and_then(|l| *l);
    let (Some(first), Some(last)) = (first, last) else {
        anyhow::bail!("raw apalis ran no task");
    };
    Ok(last - first)
}

/// A chain of `total` steps, each sleeping `sleep_ms`.
struct Tick;

#[derive(Serialize, Deserialize)]
struct TickInput {
    n: u32,
    total: u32,
    sleep_ms: u64,
}

#[async_trait]
impl Step for Tick {
    const NAME: &'static str = "tick";
    type Input = TickInput;

    async fn run(&self, _ctx: &StepContext, input: TickInput) -> Result<Transition, StepError> {
        tokio::time::sleep(Duration::from_millis(input.sleep_ms)).await;
        if input.n + 1 < input.total {
            Ok(Transition::next::<Tick>(TickInput {
                n: input.n + 1,
                ..input
            }))
        } else {
            Ok(Transition::complete("done"))
        }
    }
}

fn bench_engine(db: Db) -> anyhow::Result<Engine> {
    let workflow = Workflow::builder("bench").step(Tick).build()?;
    Ok(Engine::new(db, Registry::new().register(workflow)?))
}

async fn start<S: Step>(engine: &Engine, inputs: Vec<S::Input>) -> anyhow::Result<Vec<String>> {
    let business = BusinessId("bench".into());
    let mut tx = engine.db().begin().await?;
    let mut ids = Vec::with_capacity(inputs.len());
    for input in inputs {
        let new = NewRun {
            workflow: "bench",
            business_id: &business,
            subject_id: "bench",
        };
        ids.push(engine.start_run_in::<S>(&mut tx, new, input).await?.0);
    }
    tx.commit().await?;
    engine.notify_changed();
    Ok(ids)
}

/// Engine throughput without the lead pipeline's own work: `runs` runs of 8 no-op steps each,
/// queued at once, drained by this process' workers (16 slots); steps per second from the first
/// step's start to the last step's end, and as ratios to raw apalis and to the database's own
/// commit rate measured in the same bench run.
pub(super) async fn throughput(
    backend: &Backend,
    runs: usize,
    raw_tasks_per_sec: f64,
    commits_per_sec: f64,
) -> anyhow::Result<Vec<Figure>> {
    let bench = BenchDb::create(backend, "engine").await?;
    let db = Db::connect(&bench.url, 32).await?;
    switchboard_engine::migrate(&db).await?;
    let engine = bench_engine(db.clone())?;
    let chain = |_| TickInput {
        n: 0,
        total: 8,
        sleep_ms: 0,
    };
    start::<Tick>(&engine, (0..runs).map(chain).collect()).await?;
    let workers = engine.start_workers(WorkerOptions::default());
    until(
        "every run to succeed",
        Duration::from_secs(600),
        Duration::from_millis(50),
        || async {
            Ok((super::count_runs(&db, "succeeded").await? as usize == runs).then_some(()))
        },
    )
    .await?;
    workers.stop().await;
    let (steps, secs) = super::succeeded_steps(&db).await?;
    db.close().await;
    bench.remove().await?;
    let steps_per_sec = steps as f64 / secs;
    let b = backend.name();
    Ok(vec![
        single(
            "engine (no-op steps)",
            b,
            &format!(
                "{runs} runs of 8 no-op steps queued at once, drained by one process' workers (16 slots)"
            ),
            steps,
            "steps/s",
            steps_per_sec,
        ),
        single(
            "engine vs raw apalis",
            b,
            "engine steps/s ÷ raw apalis no-op tasks/s, same bench run",
            steps,
            "ratio",
            steps_per_sec / raw_tasks_per_sec,
        ),
        single(
            "engine vs database commits",
            b,
            "engine steps/s ÷ the database's own commits/s (best of 1 and 16 connections), same bench run (target ≥ 0.25)",
            steps,
            "ratio",
            steps_per_sec / commits_per_sec,
        ),
    ])
}

/// Step overhead: one run of 40 sequential ~10 ms steps and one of 10 sequential 1 s steps (the
/// public Windmill/Temporal/Hatchet comparison's scenarios); wall time from the run's creation to
/// its last step's end, best of `repeat`.
pub(super) async fn step_overhead(backend: &Backend, repeat: usize) -> anyhow::Result<Vec<Figure>> {
    let bench = BenchDb::create(backend, "steps").await?;
    let db = Db::connect(&bench.url, 32).await?;
    switchboard_engine::migrate(&db).await?;
    let engine = bench_engine(db.clone())?;
    let workers = engine.start_workers(WorkerOptions::default());
    let mut figures = Vec::new();
    for (total, sleep_ms, label) in [(40u32, 10u64, "40 × 10 ms"), (10, 1_000, "10 × 1 s")] {
        let mut best = f64::MAX;
        let (mut queued_ms, mut inside_ms) = (0.0, 0.0);
        for _ in 0..repeat {
            let created = switchboard_engine::ids::now_ms();
            let id = start::<Tick>(
                &engine,
                vec![TickInput {
                    n: 0,
                    total,
                    sleep_ms,
                }],
            )
            .await?
            .remove(0);
            let run_id = switchboard_engine::RunId(id);
            until(
                "the chain to finish",
                Duration::from_secs(120),
                Duration::from_millis(20),
                || async {
                    let run = switchboard_engine::store::runs::find(&db, &run_id).await?;
                    Ok(run.filter(|r| r.status == "succeeded").map(|_| ()))
                },
            )
            .await?;
            let mut attempts = switchboard_engine::store::steps::list_for_run(&db, &run_id).await?;
            attempts.sort_by_key(|a| a.started_at);
            let last = attempts
                .iter()
                .filter_map(|a| a.finished_at)
                .max()
                .unwrap_or(created);
            let total = (last - created) as f64 / 1000.0;
            if total < best {
                best = total;
                // Where the time went: waiting in the queue (from the previous step's end, or
                // the run's creation, to this step's start) and inside the engine around the
                // step (start to end, less the step's own sleep).
                let mut previous_end = created;
                (queued_ms, inside_ms) = (0.0, 0.0);
                for a in &attempts {
                    let (Some(start), Some(end)) = (a.started_at, a.finished_at) else {
                        continue;
                    };
                    queued_ms += (start - previous_end) as f64;
                    inside_ms += (end - start) as f64 - sleep_ms as f64;
                    previous_end = end;
                }
            }
        }
        let work = total as f64 * sleep_ms as f64 / 1000.0;
        figures.push(single(
            &format!("step_overhead ({label})"),
            backend.name(),
            &format!(
                "one run of {total} sequential steps sleeping {sleep_ms} ms each ({work:.1} s of work): creation to last step's end, best of {repeat}"
            ),
            total as usize,
            "s",
            best,
        ));
        figures.push(single(
            &format!("step_overhead ({label}, per step)"),
            backend.name(),
            &format!(
                "engine time per step beyond the step's own sleep: {:.1} ms waiting in the queue, {:.1} ms claiming and committing",
                queued_ms / total as f64,
                inside_ms / total as f64
            ),
            total as usize,
            "ms",
            (best - work) * 1000.0 / total as f64,
        ));
    }
    workers.stop().await;
    db.close().await;
    bench.remove().await?;
    Ok(figures)
}

/// Resident memory of a `switchboard serve` process (API, dashboard, workers) on a database with
/// no runs, then with `waiting` runs parked on a webhook wait: a waiting run must cost nothing.
pub(super) async fn memory(
    backend: &Backend,
    waiting: usize,
    settle: Duration,
) -> anyhow::Result<Vec<Figure>> {
    let bench = BenchDb::create(backend, "memory").await?;
    let db = Db::connect(&bench.url, 4).await?;
    switchboard_engine::migrate(&db).await?;
    let b = backend.name();
    let mut figures = Vec::new();
    let empty = serve_rss(&bench, settle).await?;
    figures.push(single(
        "memory (no runs)",
        b,
        &format!(
            "resident memory of `switchboard serve` (API, dashboard, workers) {} s after start, empty database",
            settle.as_secs()
        ),
        0,
        "MiB",
        empty,
    ));
    park(&db, waiting).await?;
    let full = serve_rss(&bench, settle).await?;
    figures.push(single(
        &format!("memory ({waiting} runs waiting)"),
        b,
        &format!(
            "resident memory of `switchboard serve` {} s after start with {waiting} runs waiting on a webhook",
            settle.as_secs()
        ),
        waiting,
        "MiB",
        full,
    ));
    figures.push(single(
        "memory (per waiting run)",
        b,
        "difference between the two, per waiting run",
        waiting,
        "bytes",
        (full - empty) * 1024.0 * 1024.0 / waiting as f64,
    ));
    db.close().await;
    bench.remove().await?;
    Ok(figures)
}

/// Stores `n` runs waiting on a webhook as the engine stores them (the run, its wait, the wait's
/// deadline task a day away), in bulk.
async fn park(db: &Db, n: usize) -> anyhow::Result<()> {
    use switchboard_engine::store::runs::{INSERT_MANY_MAX, RunRow, insert_many};
    use switchboard_engine::store::tasks::{StepTask, TaskKind, push};
    use switchboard_engine::store::waits::{WaitRow, insert};
    let day = Duration::from_secs(86_400);
    let mut done = 0;
    while done < n {
        let now = switchboard_engine::ids::now_ms();
        let deadline = now + day.as_millis() as i64;
        let rows: Vec<(RunRow, WaitRow)> = (done..(done + INSERT_MANY_MAX).min(n))
            .map(|i| {
                let run_id = switchboard_engine::ids::new_id();
                let wait = WaitRow {
                    id: switchboard_engine::ids::new_id(),
                    run_id: run_id.clone(),
                    seq: 1,
                    kind: "call.ended".into(),
                    key: format!("conv_bench_{i}"),
                    deadline,
                    status: switchboard_engine::WaitStatus::Waiting,
                    event_id: None,
                    created_at: now,
                    resolved_at: None,
                };
                let run = RunRow {
                    id: run_id,
                    workflow: "lead_call".into(),
                    business_id: "demo".into(),
                    subject_id: switchboard_engine::ids::new_id(),
                    status: switchboard_engine::RunStatus::Waiting,
                    current_step: Some("await_call".into()),
                    current_row: None,
                    seq: 1,
                    outcome: None,
                    error: None,
                    wait_kind: Some(wait.kind.clone()),
                    wait_key: Some(wait.key.clone()),
                    wait_until: Some(deadline),
                    created_at: now,
                    updated_at: now,
                    queue_rank: 0,
                };
                (run, wait)
            })
            .collect();
        done += rows.len();
        let mut tx = db.begin().await?;
        let runs: Vec<RunRow> = rows.iter().map(|(r, _)| r.clone()).collect();
        insert_many(&mut tx, &runs).await?;
        for (run, wait) in &rows {
            insert(&mut tx, wait).await?;
            let task = StepTask {
                run_id: switchboard_engine::RunId(run.id.clone()),
                seq: 1,
                kind: TaskKind::Deadline {
                    wait_id: wait.id.clone(),
                },
            };
            push(&mut tx, &task, day, 0).await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// Starts `switchboard serve` on the database, waits until it answers, lets it run `settle`
/// (heartbeats, timer polls) and reads its resident memory.
async fn serve_rss(bench: &BenchDb, settle: Duration) -> anyhow::Result<f64> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = spawn_process(bench, "serve", &["--addr", &addr])?;
    let pid = child.id().ok_or_else(|| anyhow::anyhow!("serve exited"))?;
    let client = super::client();
    until(
        "serve to answer",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || async {
            Ok(client
                .get(format!("http://{addr}/api/v1/runs?limit=1"))
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
                .map(|_| ()))
        },
    )
    .await?;
    tokio::time::sleep(settle).await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))?;
    stop_process(child).await?;
    Ok(kib / 1024.0)
}
