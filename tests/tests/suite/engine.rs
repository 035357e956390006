//! Engine-level tests with a toy workflow: the apalis 1.0 pitfalls and the engine guarantees.
//!
//! Every scenario builds the same toy workflow (`toy`, steps below) on a fresh database, starts
//! runs at the step it needs, and reads the engine's own tables (`sb_runs`, `sb_steps`) — plus,
//! where a pitfall is about apalis itself, apalis' tables. Steps record every execution in a
//! shared [`Probe`], so "executed exactly once" is counted, not inferred. Waiting is always for a
//! condition with a deadline ([`eventually`]); timings are only ever checked as "not earlier than".
//! The numbered pitfalls are apalis 1.0 behaviours each scenario names where it reproduces one.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_engine::store::Q;
use switchboard_engine::store::runs::{self, RunRow};
use switchboard_engine::store::steps::{self, StepRow};
use switchboard_engine::store::tasks::{self, QUEUE, StepTask, TaskKind};
use switchboard_engine::{
    BusinessId, Db, Delivery, Engine, EngineError, ExternalEvent, NewRun, Registry, Resumed, RunId,
    Step, StepContext, StepError, StepPolicy, Transition, WaitFor, WaitOutcome, WorkerOptions,
    Workers, Workflow,
};
use switchboard_tests::{Backend, TestDatabase, eventually};

crate::on_both_backends!(
    delayed_step_runs_on_time_without_waiting_for_the_apalis_heartbeat,
    retries_are_ours_with_backoff_and_a_bounded_number_of_attempts,
    step_timeout_is_ours_and_fails_the_attempt_instead_of_leaving_it_running,
    retry_after_and_panics_are_retried_by_the_engine_not_left_locked,
    worker_names_are_unique_and_a_restart_within_the_heartbeat_window_works,
    duplicate_task_delivery_changes_nothing,
    our_migrations_use_their_own_table_apart_from_apalis,
    pausing_is_ours_a_wait_holds_no_worker_and_events_resume_it_once,
    a_segment_killed_mid_way_repeats_only_the_step_that_was_running,
    a_long_segment_yields_so_another_business_run_goes_first,
);

// ---------------------------------------------------------------------------------------------
// The toy workflow
// ---------------------------------------------------------------------------------------------

/// The toy workflow's registered name.
const TOY: &str = "toy";
/// The event kind toy waits listen for.
const TOY_EVENT: &str = "toy";
/// How long any scenario waits for a run to get somewhere (generous: a loaded 2-core machine).
const DEADLINE: Duration = Duration::from_secs(20);

/// One execution of a step, as the step itself saw it.
#[derive(Clone, Debug)]
struct Exec {
    run_id: RunId,
    step: &'static str,
    attempt: u32,
    input: Value,
}

/// Shared by every step of a harness: records each execution.
#[derive(Default)]
struct Probe {
    execs: Mutex<Vec<Exec>>,
}

impl Probe {
    fn record(&self, ctx: &StepContext, input: &impl Serialize) {
        let input = serde_json::to_value(input).expect("toy inputs serialise");
        self.execs.lock().unwrap().push(Exec {
            run_id: ctx.run_id.clone(),
            step: ctx.step,
            attempt: ctx.attempt,
            input,
        });
    }

    /// Executions of `step` in run `run`, in order.
    fn execs(&self, run: &RunId, step: &str) -> Vec<Exec> {
        self.execs
            .lock()
            .unwrap()
            .iter()
            .filter(|e| &e.run_id == run && e.step == step)
            .cloned()
            .collect()
    }

    fn count(&self, run: &RunId, step: &str) -> usize {
        self.execs(run, step).len()
    }
}

/// `finish`: completes the run with its input as the outcome.
struct Finish(Arc<Probe>);

#[async_trait]
impl Step for Finish {
    const NAME: &'static str = "finish";
    type Input = String;

    async fn run(&self, ctx: &StepContext, outcome: String) -> Result<Transition, StepError> {
        self.0.record(ctx, &outcome);
        Ok(Transition::complete(outcome))
    }
}

#[derive(Serialize, Deserialize)]
struct DelayInput {
    ms: u64,
    outcome: String,
}

/// `delay`: runs `finish` after `ms` milliseconds.
struct Delay(Arc<Probe>);

#[async_trait]
impl Step for Delay {
    const NAME: &'static str = "delay";
    type Input = DelayInput;

    async fn run(&self, ctx: &StepContext, input: DelayInput) -> Result<Transition, StepError> {
        self.0.record(ctx, &input);
        Ok(Transition::after::<Finish>(
            input.outcome,
            Duration::from_millis(input.ms),
        ))
    }
}

/// `flaky`: fails (retryably) on the first `input` attempts, then completes `recovered`.
/// Three attempts, backoff 1 s then 2 s.
struct Flaky(Arc<Probe>);

#[async_trait]
impl Step for Flaky {
    const NAME: &'static str = "flaky";
    type Input = u32;

    fn policy(&self) -> StepPolicy {
        StepPolicy {
            max_attempts: 3,
            backoff: Duration::from_secs(1),
            backoff_factor: 2,
            ..StepPolicy::default()
        }
    }

    async fn run(&self, ctx: &StepContext, failures: u32) -> Result<Transition, StepError> {
        self.0.record(ctx, &failures);
        if ctx.attempt <= failures {
            return Err(StepError::retryable(format!(
                "boom on attempt {}",
                ctx.attempt
            )));
        }
        Ok(Transition::complete("recovered"))
    }
}

/// `doomed`: fails fatally with its input as the message.
struct Doomed(Arc<Probe>);

#[async_trait]
impl Step for Doomed {
    const NAME: &'static str = "doomed";
    type Input = String;

    async fn run(&self, ctx: &StepContext, message: String) -> Result<Transition, StepError> {
        self.0.record(ctx, &message);
        Err(StepError::fatal(message))
    }
}

/// `slow`: on attempt 1 sleeps `input` ms, far past its 300 ms timeout; attempt 2 returns at once.
struct Slow(Arc<Probe>);

const SLOW_TIMEOUT: Duration = Duration::from_millis(300);

#[async_trait]
impl Step for Slow {
    const NAME: &'static str = "slow";
    type Input = u64;

    fn policy(&self) -> StepPolicy {
        StepPolicy {
            max_attempts: 2,
            backoff: Duration::from_millis(100),
            backoff_factor: 1,
            timeout: SLOW_TIMEOUT,
            ..StepPolicy::default()
        }
    }

    async fn run(&self, ctx: &StepContext, sleep_ms: u64) -> Result<Transition, StepError> {
        self.0.record(ctx, &sleep_ms);
        if ctx.attempt == 1 {
            tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        }
        Ok(Transition::complete("fast_enough"))
    }
}

/// `throttled`: attempt 1 asks to be retried after `input` ms (a provider's 429), then completes.
struct Throttled(Arc<Probe>);

#[async_trait]
impl Step for Throttled {
    const NAME: &'static str = "throttled";
    type Input = u64;

    async fn run(&self, ctx: &StepContext, after_ms: u64) -> Result<Transition, StepError> {
        self.0.record(ctx, &after_ms);
        if ctx.attempt == 1 {
            return Err(StepError::RetryAfter {
                message: "429 too many requests".into(),
                after: Duration::from_millis(after_ms),
            });
        }
        Ok(Transition::complete("throttled_ok"))
    }
}

/// `panicky`: attempt 1 panics; attempt 2 completes `survived`.
struct Panicky(Arc<Probe>);

#[async_trait]
impl Step for Panicky {
    const NAME: &'static str = "panicky";
    type Input = String;

    fn policy(&self) -> StepPolicy {
        StepPolicy {
            backoff: Duration::from_millis(100),
            ..StepPolicy::default()
        }
    }

    async fn run(&self, ctx: &StepContext, message: String) -> Result<Transition, StepError> {
        self.0.record(ctx, &message);
        if ctx.attempt == 1 {
            panic!("{message}");
        }
        Ok(Transition::complete("survived"))
    }
}

#[derive(Serialize, Deserialize)]
struct PauseInput {
    key: String,
    timeout_ms: u64,
    carry: String,
}

/// `pause`: waits for a `toy` event on `key`, then runs `resume` with `carry`.
struct Pause(Arc<Probe>);

#[async_trait]
impl Step for Pause {
    const NAME: &'static str = "pause";
    type Input = PauseInput;

    async fn run(&self, ctx: &StepContext, input: PauseInput) -> Result<Transition, StepError> {
        self.0.record(ctx, &input);
        let wait = WaitFor {
            kind: TOY_EVENT.into(),
            key: input.key,
            timeout: Duration::from_millis(input.timeout_ms),
        };
        Ok(Transition::wait::<Resume, String>(wait, input.carry))
    }
}

/// `resume`: completes with how the wait ended (`event`, `timed_out`, `manual`).
struct Resume(Arc<Probe>);

#[async_trait]
impl Step for Resume {
    const NAME: &'static str = "resume";
    type Input = Resumed<String>;

    async fn run(
        &self,
        ctx: &StepContext,
        input: Resumed<String>,
    ) -> Result<Transition, StepError> {
        self.0.record(ctx, &input);
        Ok(Transition::complete(match input.outcome {
            WaitOutcome::Event { .. } => "event",
            WaitOutcome::TimedOut => "timed_out",
        }))
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct ChainInput {
    /// Steps left after this one.
    left: u32,
    /// Sleep this long in each step.
    sleep_ms: u64,
    /// The first attempt of the step with this many left hangs (until its worker is killed).
    hang_at: Option<u32>,
}

/// `chain`: runs itself again at once until none is left, then completes `chained`.
struct Chain(Arc<Probe>);

#[async_trait]
impl Step for Chain {
    const NAME: &'static str = "chain";
    type Input = ChainInput;

    fn policy(&self) -> StepPolicy {
        StepPolicy {
            timeout: Duration::from_secs(600),
            ..StepPolicy::default()
        }
    }

    async fn run(&self, ctx: &StepContext, input: ChainInput) -> Result<Transition, StepError> {
        self.0.record(ctx, &input);
        if input.hang_at == Some(input.left) && ctx.attempt == 1 {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_millis(input.sleep_ms)).await;
        if input.left == 0 {
            return Ok(Transition::complete("chained"));
        }
        Ok(Transition::next::<Chain>(ChainInput {
            left: input.left - 1,
            ..input
        }))
    }
}

/// The toy workflow, every step sharing `probe`.
fn toy_workflow(probe: &Arc<Probe>) -> Workflow {
    Workflow::builder(TOY)
        .step(Finish(probe.clone()))
        .step(Delay(probe.clone()))
        .step(Flaky(probe.clone()))
        .step(Doomed(probe.clone()))
        .step(Slow(probe.clone()))
        .step(Throttled(probe.clone()))
        .step(Panicky(probe.clone()))
        .step(Pause(probe.clone()))
        .step(Resume(probe.clone()))
        .step(Chain(probe.clone()))
        .build()
        .expect("the toy workflow is well defined")
}

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// Worker options for tests: fast polling, everything else default.
fn fast_workers() -> WorkerOptions {
    WorkerOptions {
        poll_interval: Duration::from_millis(200),
        ..Default::default()
    }
}

/// An engine running the toy workflow on a fresh, migrated database.
struct Harness {
    engine: Engine,
    probe: Arc<Probe>,
    workers: Option<Workers>,
    /// Dropped last: removes the database.
    _database: TestDatabase,
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(w) = self.workers.take() {
            w.abort();
        }
    }
}

impl Harness {
    /// A migrated database and an engine, without workers.
    async fn new(backend: &Backend) -> Harness {
        let database = TestDatabase::create(backend).await;
        let db = Db::connect(&database.url, 8).await.expect("connect");
        switchboard_engine::migrate(&db).await.expect("migrate");
        let probe = Arc::new(Probe::default());
        let registry = Registry::new()
            .register(toy_workflow(&probe))
            .expect("register the toy workflow");
        Harness {
            engine: Engine::new(db, registry),
            probe,
            workers: None,
            _database: database,
        }
    }

    /// A harness with workers started with `opts`.
    async fn with_workers(backend: &Backend, opts: WorkerOptions) -> Harness {
        let mut h = Harness::new(backend).await;
        h.workers = Some(h.engine.start_workers(opts));
        h
    }

    fn db(&self) -> &Db {
        self.engine.db()
    }

    /// Starts a toy run at step `S` and wakes the workers.
    async fn start<S: Step>(&self, input: S::Input) -> RunId {
        self.start_for::<S>("b", input).await
    }

    /// Starts a toy run of `business` at step `S` and wakes the workers.
    async fn start_for<S: Step>(&self, business: &str, input: S::Input) -> RunId {
        let mut tx = self.db().begin().await.expect("begin");
        let new = NewRun {
            workflow: TOY,
            business_id: &BusinessId(business.into()),
            subject_id: "s",
        };
        let id = self
            .engine
            .start_run_in::<S>(&mut tx, new, input)
            .await
            .expect("start run");
        tx.commit().await.expect("commit");
        self.engine.notify_changed();
        id
    }

    async fn run(&self, id: &RunId) -> RunRow {
        runs::find(self.db(), id)
            .await
            .expect("read run")
            .expect("run exists")
    }

    /// Every attempt of the run, in scheduling order.
    async fn attempts(&self, id: &RunId) -> Vec<StepRow> {
        steps::list_for_run(self.db(), id)
            .await
            .expect("read attempts")
    }

    /// Waits until the run satisfies `pred` (described by `what`), and returns it. On timeout the
    /// panic shows the run, its attempts and the queue as last seen.
    async fn wait_for(&self, id: &RunId, what: &str, pred: impl Fn(&RunRow) -> bool) -> RunRow {
        let pred = &pred;
        let waited = tokio::time::timeout(
            DEADLINE,
            eventually(
                &format!("run {id} to be {what}"),
                DEADLINE * 2,
                || async move {
                    let run = self.run(id).await;
                    pred(&run).then_some(run)
                },
            ),
        )
        .await;
        match waited {
            Ok(run) => run,
            Err(_) => panic!(
                "timed out after {DEADLINE:?} waiting for run {id} to be {what}\nrun: {:#?}\nattempts: {:#?}\n{}",
                self.run(id).await,
                summary(&self.attempts(id).await),
                self.queue_state().await
            ),
        }
    }

    async fn wait_for_status(&self, id: &RunId, status: &str) -> RunRow {
        self.wait_for(id, status, |r| r.status == status).await
    }

    /// Pushes a raw task for `run` at `seq`, due now, as a duplicate delivery would.
    async fn push_step_task(&self, run: &RunId, seq: i64) {
        let mut tx = self.db().begin().await.expect("begin");
        let task = StepTask {
            run_id: run.clone(),
            seq,
            kind: TaskKind::Step,
        };
        tasks::push(&mut tx, &task, Duration::ZERO, 0)
            .await
            .expect("push a task");
        tx.commit().await.expect("commit");
        self.engine.notify_changed();
    }

    /// apalis tasks of our queue that are not `Done` yet.
    async fn unfinished_tasks(&self) -> i64 {
        let sql = match self.db() {
            Db::Sqlite(_) => "SELECT COUNT(*) FROM Jobs WHERE job_type = $1 AND status <> 'Done'",
            Db::Postgres(_) => {
                "SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1 AND status <> 'Done'"
            }
        };
        self.db()
            .fetch_one::<(i64,)>(Q::new(sql).bind(QUEUE))
            .await
            .expect("count apalis tasks")
            .0
    }

    /// How many tasks were ever queued for `run`.
    async fn tasks_of(&self, run: &RunId) -> i64 {
        let sql = match self.db() {
            Db::Sqlite(_) => {
                "SELECT COUNT(*) FROM Jobs WHERE job_type = $1 AND CAST(job AS TEXT) LIKE $2"
            }
            Db::Postgres(_) => {
                "SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1 \
                 AND convert_from(job, 'UTF8') LIKE $2"
            }
        };
        self.db()
            .fetch_one::<(i64,)>(Q::new(sql).bind(QUEUE).bind(format!("%{run}%")))
            .await
            .expect("count a run's tasks")
            .0
    }

    /// The queue as apalis sees it, for failure messages: its tasks, its workers' heartbeats and,
    /// on PostgreSQL, what each connection is doing.
    async fn queue_state(&self) -> String {
        let queries: [&str; 3] = match self.db() {
            Db::Sqlite(_) => [
                "SELECT 'task ' || id || ' ' || status || ' run_at=' || run_at || ' lock_by=' \
                 || IFNULL(lock_by, '-') || ' attempts=' || attempts || ' result=' || IFNULL(last_result, '-') \
                 || ' job=' || CAST(job AS TEXT) FROM Jobs ORDER BY rowid",
                "SELECT 'worker ' || id || ' last_seen=' || last_seen || ' now=' || strftime('%s', 'now') FROM Workers",
                "SELECT 'now ' || strftime('%s', 'now')",
            ],
            Db::Postgres(_) => [
                "SELECT 'task ' || id || ' ' || status || ' run_at=' || run_at::text || ' lock_by=' \
                 || COALESCE(lock_by, '-') || ' attempts=' || attempts || ' result=' \
                 || COALESCE(last_result::text, '-') || ' job=' || convert_from(job, 'UTF8') \
                 FROM apalis.jobs ORDER BY id",
                "SELECT 'worker ' || id || ' last_seen=' || last_seen::text || ' now=' || now()::text FROM apalis.workers",
                "SELECT 'connection ' || pid || ' ' || COALESCE(state, '-') || ' ' || COALESCE(wait_event_type, '-') \
                 || '/' || COALESCE(wait_event, '-') || ' xact=' || COALESCE(xact_start::text, '-') || ' ' \
                 || left(query, 100) FROM pg_stat_activity WHERE datname = current_database()",
            ],
        };
        let mut lines = Vec::new();
        for sql in queries {
            match self.db().fetch_all::<(String,)>(Q::new(sql)).await {
                Ok(rows) => lines.extend(rows.into_iter().map(|(line,)| line)),
                Err(e) => lines.push(format!("({sql}: {e})")),
            }
        }
        lines.join("\n")
    }

    /// The worker names apalis registered.
    async fn apalis_workers(&self) -> BTreeSet<String> {
        let sql = match self.db() {
            Db::Sqlite(_) => "SELECT id FROM Workers",
            Db::Postgres(_) => "SELECT id FROM apalis.workers",
        };
        let rows = self
            .db()
            .fetch_all::<(String,)>(Q::new(sql))
            .await
            .expect("list apalis workers");
        rows.into_iter().map(|(id,)| id).collect()
    }
}

/// Unix ms a step attempt started; panics if it never did.
fn started(row: &StepRow) -> i64 {
    row.started_at
        .unwrap_or_else(|| panic!("attempt never started: {row:?}"))
}

/// Unix ms a step attempt finished; panics if it never did.
fn finished(row: &StepRow) -> i64 {
    row.finished_at
        .unwrap_or_else(|| panic!("attempt never finished: {row:?}"))
}

/// `(name, attempt, status)` of each attempt, for whole-sequence assertions.
fn summary(rows: &[StepRow]) -> Vec<(String, i64, String)> {
    rows.iter()
        .map(|r| (r.name.clone(), r.attempt, r.status.to_string()))
        .collect()
}

fn row(name: &str, attempt: i64, status: &str) -> (String, i64, String) {
    (name.to_owned(), attempt, status.to_owned())
}

/// Migration versions in a history table.
async fn versions(db: &Db, table: &str) -> BTreeSet<i64> {
    // `table` is a constant of the caller's, never input.
    let rows = db
        .fetch_all::<(i64,)>(Q::new(format!("SELECT version FROM {table} WHERE success")))
        .await
        .unwrap_or_else(|e| panic!("read {table}: {e}"));
    rows.into_iter().map(|(v,)| v).collect()
}

/// The versions of our migration files for this backend.
fn our_migration_files(db: &Db) -> BTreeSet<i64> {
    let dir = match db {
        Db::Sqlite(_) => "sqlite",
        Db::Postgres(_) => "postgres",
    };
    let path = format!("{}/../migrations/{dir}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.ends_with(".sql")
                .then(|| name.split('_').next()?.parse().ok())?
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// Pitfall 1: apalis notices delayed tasks only at its heartbeat (30 s by default) and stores
/// `run_at` in whole seconds. A 1.5 s timer must fire well before 30 s (the wait's deadline is
/// 20 s), never early, and the run meanwhile is `waiting` on a `timer` (holding no worker).
async fn delayed_step_runs_on_time_without_waiting_for_the_apalis_heartbeat(backend: Backend) {
    let h = Harness::with_workers(&backend, fast_workers()).await;
    let delay = Duration::from_millis(1500);
    let id = h
        .start::<Delay>(DelayInput {
            ms: delay.as_millis() as u64,
            outcome: "on_time".into(),
        })
        .await;

    let waiting = h
        .wait_for(&id, "waiting on its timer", |r| r.status == "waiting")
        .await;
    assert_eq!(waiting.wait_kind.as_deref(), Some("timer"), "{waiting:?}");
    assert_eq!(waiting.current_step.as_deref(), Some("finish"));
    assert_eq!(
        h.probe.count(&id, "finish"),
        0,
        "the delayed step ran before its timer"
    );

    let run = h.wait_for_status(&id, "succeeded").await;
    assert_eq!(run.outcome.as_deref(), Some("on_time"));
    let rows = h.attempts(&id).await;
    assert_eq!(
        summary(&rows),
        [row("delay", 1, "succeeded"), row("finish", 1, "succeeded")]
    );
    let (first, next) = (&rows[0], &rows[1]);
    let due = finished(first) + delay.as_millis() as i64;
    assert!(
        next.run_at >= due,
        "scheduled for {} but due at {due}",
        next.run_at
    );
    assert_eq!(
        waiting.wait_until,
        Some(next.run_at),
        "the run waited until the attempt's due time"
    );
    assert!(
        started(next) >= due,
        "the delayed step started {} ms early",
        due - started(next)
    );
    assert_eq!(h.probe.count(&id, "delay"), 1);
    assert_eq!(h.probe.count(&id, "finish"), 1);
}

/// Pitfall 2: apalis would re-fetch a failed task at once, up to 25 times. Retries are ours:
/// one attempt row each, waiting the policy's backoff (1 s, then 2 s), bounded by `max_attempts`;
/// a fatal error is never retried.
async fn retries_are_ours_with_backoff_and_a_bounded_number_of_attempts(backend: Backend) {
    let h = Harness::with_workers(&backend, fast_workers()).await;
    let recovers = h.start::<Flaky>(2).await;
    let never = h.start::<Flaky>(99).await;
    let fatal = h.start::<Doomed>("bad toy input".into()).await;

    // Between attempts the run waits on a retry timer.
    let waiting = h
        .wait_for(&recovers, "waiting to retry", |r| r.status == "waiting")
        .await;
    assert_eq!(waiting.wait_kind.as_deref(), Some("retry"), "{waiting:?}");

    let run = h.wait_for_status(&recovers, "succeeded").await;
    assert_eq!(run.outcome.as_deref(), Some("recovered"));
    assert_eq!(run.error, None);
    let rows = h.attempts(&recovers).await;
    assert_eq!(
        summary(&rows),
        [
            row("flaky", 1, "failed"),
            row("flaky", 2, "failed"),
            row("flaky", 3, "succeeded")
        ]
    );
    assert_eq!(rows[0].error.as_deref(), Some("boom on attempt 1"));
    assert_eq!(rows[1].error.as_deref(), Some("boom on attempt 2"));
    let gaps = [
        started(&rows[1]) - started(&rows[0]),
        started(&rows[2]) - started(&rows[1]),
    ];
    assert!(
        gaps[0] >= 1000 && gaps[1] >= 2000,
        "backoff gaps between starts {gaps:?} ms"
    );
    // And measured from the end of the failed attempt, too.
    assert!(started(&rows[1]) >= finished(&rows[0]) + 1000);
    assert!(started(&rows[2]) >= finished(&rows[1]) + 2000);
    let attempts: Vec<u32> = h
        .probe
        .execs(&recovers, "flaky")
        .iter()
        .map(|e| e.attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 3]);

    let run = h.wait_for_status(&never, "failed").await;
    let error = run.error.clone().unwrap_or_default();
    assert!(
        error.contains("after 3 attempts") && error.contains("boom on attempt 3"),
        "{error}"
    );
    assert_eq!(run.outcome.as_deref(), Some("failed"));
    let rows = h.attempts(&never).await;
    assert_eq!(
        summary(&rows),
        [
            row("flaky", 1, "failed"),
            row("flaky", 2, "failed"),
            row("flaky", 3, "failed")
        ]
    );
    assert_eq!(h.probe.count(&never, "flaky"), 3);

    let run = h.wait_for_status(&fatal, "failed").await;
    let error = run.error.clone().unwrap_or_default();
    assert!(
        error.contains("bad toy input") && !error.contains("attempts"),
        "{error}"
    );
    let rows = h.attempts(&fatal).await;
    assert_eq!(summary(&rows), [row("doomed", 1, "failed")]);
    assert_eq!(rows[0].error.as_deref(), Some("bad toy input"));
    assert_eq!(h.probe.count(&fatal, "doomed"), 1);
}

/// Pitfall 3: apalis' `.timeout()` would leave the task `Running` forever. Our timeout cuts the
/// attempt off, records it `failed` ("timed out") and retries it.
async fn step_timeout_is_ours_and_fails_the_attempt_instead_of_leaving_it_running(
    backend: Backend,
) {
    let h = Harness::with_workers(&backend, fast_workers()).await;
    let id = h.start::<Slow>(5_000).await;

    let run = h.wait_for_status(&id, "succeeded").await;
    assert_eq!(run.outcome.as_deref(), Some("fast_enough"));
    let rows = h.attempts(&id).await;
    assert_eq!(
        summary(&rows),
        [row("slow", 1, "failed"), row("slow", 2, "succeeded")]
    );
    let error = rows[0].error.clone().unwrap_or_default();
    assert!(error.contains("timed out"), "{error}");
    let ran_for = finished(&rows[0]) - started(&rows[0]);
    assert!(
        ran_for >= SLOW_TIMEOUT.as_millis() as i64,
        "cut off after {ran_for} ms, before the timeout"
    );
    assert!(
        started(&rows[1]) >= finished(&rows[0]),
        "attempt 2 overlapped attempt 1"
    );
    let attempts: Vec<u32> = h
        .probe
        .execs(&id, "slow")
        .iter()
        .map(|e| e.attempt)
        .collect();
    assert_eq!(attempts, [1, 2]);
}

/// Pitfall 4: apalis' `RetryAfterError` / `DeferredError` leave the task locked, never fetched
/// again. A `StepError::RetryAfter` is ours: the next attempt is scheduled after the given delay.
/// A panicking step is caught, counted as a failed attempt and retried; the worker survives.
async fn retry_after_and_panics_are_retried_by_the_engine_not_left_locked(backend: Backend) {
    let h = Harness::with_workers(&backend, fast_workers()).await;
    let throttled = h.start::<Throttled>(1000).await;
    let panicky = h
        .start::<Panicky>("toy step panicked on purpose".into())
        .await;

    let run = h.wait_for_status(&throttled, "succeeded").await;
    assert_eq!(run.outcome.as_deref(), Some("throttled_ok"));
    let rows = h.attempts(&throttled).await;
    assert_eq!(
        summary(&rows),
        [
            row("throttled", 1, "failed"),
            row("throttled", 2, "succeeded")
        ]
    );
    assert!(
        rows[0].error.clone().unwrap_or_default().contains("429"),
        "{:?}",
        rows[0].error
    );
    let gap = started(&rows[1]) - started(&rows[0]);
    assert!(
        gap >= 1000,
        "retried {gap} ms after the first start, before retry-after"
    );
    assert!(started(&rows[1]) >= finished(&rows[0]) + 1000);
    assert_eq!(h.probe.count(&throttled, "throttled"), 2);

    let run = h.wait_for_status(&panicky, "succeeded").await;
    assert_eq!(run.outcome.as_deref(), Some("survived"));
    let rows = h.attempts(&panicky).await;
    assert_eq!(
        summary(&rows),
        [row("panicky", 1, "failed"), row("panicky", 2, "succeeded")]
    );
    let error = rows[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("panicked") && error.contains("toy step panicked on purpose"),
        "{error}"
    );
    assert_eq!(h.probe.count(&panicky, "panicky"), 2);

    // The workers are still alive and take new work.
    let after = h.start::<Finish>("still_working".into()).await;
    assert_eq!(
        h.wait_for_status(&after, "succeeded")
            .await
            .outcome
            .as_deref(),
        Some("still_working")
    );
}

/// Pitfall 5: apalis refuses a worker name whose heartbeat is still fresh. Every
/// `start_workers` registers a unique name, so two in one process coexist, and workers started
/// right after others stopped (within the heartbeat window) register and process runs.
async fn worker_names_are_unique_and_a_restart_within_the_heartbeat_window_works(backend: Backend) {
    let h = Harness::new(&backend).await;
    // A 2 s heartbeat: apalis considers a name taken for 2 s after its last heartbeat.
    let opts = WorkerOptions {
        name: "twin".into(),
        poll_interval: Duration::from_secs(2),
        ..Default::default()
    };
    let a = h.engine.start_workers(opts.clone());
    let b = h.engine.start_workers(opts.clone());
    assert_ne!(a.name(), b.name());
    assert!(
        a.name().starts_with("twin") && b.name().starts_with("twin"),
        "{} {}",
        a.name(),
        b.name()
    );

    let first = h.start::<Finish>("first".into()).await;
    h.wait_for_status(&first, "succeeded").await;
    let (a_name, b_name) = (a.name().to_owned(), b.name().to_owned());
    eventually(
        "both workers registered under their own names",
        DEADLINE,
        || async {
            let names = h.apalis_workers().await;
            (names.contains(&a_name) && names.contains(&b_name)).then_some(())
        },
    )
    .await;

    b.stop().await;
    a.stop().await;
    let c = h.engine.start_workers(opts);
    assert!(
        c.name() != a_name && c.name() != b_name,
        "reused a name: {}",
        c.name()
    );
    let second = h.start::<Finish>("second".into()).await;
    let run = h.wait_for_status(&second, "succeeded").await;
    assert_eq!(run.outcome.as_deref(), Some("second"));
    let c_name = c.name().to_owned();
    let names = eventually("the new workers registered", DEADLINE, || async {
        let names = h.apalis_workers().await;
        names.contains(&c_name).then_some(names)
    })
    .await;
    // No registration failed and was retried by the monitor under a `-r<n>` name.
    assert!(
        names.iter().all(|n| !n.contains("-r")),
        "a worker had to re-register: {names:?}"
    );
    c.stop().await;
}

/// Pitfall 6: apalis' SQLite `setup()` switches its connection to `synchronous=OFF`. After
/// `migrate`, and after workers ran on the pool, every connection of our pool is in WAL mode with
/// `synchronous=NORMAL` and a busy timeout. (SQLite only.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_connections_keep_wal_and_synchronous_normal() {
    async fn check_every_connection(db: &Db, when: &str) {
        let Db::Sqlite(pools) = db else {
            panic!("not SQLite")
        };
        // Hold them all at once, so each is a different connection: the one writer and the 8
        // readers.
        let mut conns = vec![pools.writer().get().await.expect("the writer")];
        for _ in 0..8 {
            conns.push(pools.reader().get().await.expect("a reader"));
        }
        let sizes = (pools.writer().status().size, pools.reader().status().size);
        assert_eq!(sizes, (1, 8));
        for (i, conn) in conns.iter_mut().enumerate() {
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut ***conn)
                .await
                .unwrap();
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut ***conn)
                .await
                .unwrap();
            let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&mut ***conn)
                .await
                .unwrap();
            assert_eq!(journal, "wal", "{when}: connection {i}");
            assert_eq!(
                synchronous, 1,
                "{when}: connection {i} is not synchronous=NORMAL"
            );
            assert!(busy > 0, "{when}: connection {i} has no busy timeout");
        }
    }

    let mut h = Harness::new(&Backend::Sqlite).await;
    check_every_connection(h.db(), "after migrate").await;
    h.workers = Some(h.engine.start_workers(fast_workers()));
    let id = h
        .start::<Delay>(DelayInput {
            ms: 0,
            outcome: "done".into(),
        })
        .await;
    h.wait_for_status(&id, "succeeded").await;
    h.workers.take().unwrap().stop().await;
    check_every_connection(h.db(), "after the workers ran").await;
}

/// Pitfall 7: tasks are delivered at least once. A stale task (an old seq), a duplicate of the
/// current one while the run waits on a timer, and tasks for a finished run all change nothing:
/// each step executes once, the timer is not cut short, and the run completes normally.
/// (apalis' own idempotency keys are not used for this: on PostgreSQL a duplicate key raises a
/// unique violation that aborts the whole transaction; the run's `seq` does the job instead.)
async fn duplicate_task_delivery_changes_nothing(backend: Backend) {
    let h = Harness::with_workers(&backend, fast_workers()).await;
    let id = h
        .start::<Delay>(DelayInput {
            ms: 1500,
            outcome: "once".into(),
        })
        .await;
    let waiting = h
        .wait_for(&id, "waiting on its timer", |r| r.status == "waiting")
        .await;
    assert_eq!(
        (waiting.seq, waiting.wait_kind.as_deref()),
        (1, Some("timer"))
    );

    // `delay` ran at seq 0; the run now waits at seq 1 for `finish`.
    h.push_step_task(&id, 0).await;
    h.push_step_task(&id, 1).await;
    let run = h.wait_for_status(&id, "succeeded").await;
    assert_eq!((run.seq, run.outcome.as_deref()), (2, Some("once")));
    // And again once it is finished, old and current seqs alike.
    for seq in 0..=2 {
        h.push_step_task(&id, seq).await;
    }
    eventually("apalis to have handled every task", DEADLINE, || async {
        (h.unfinished_tasks().await == 0).then_some(())
    })
    .await;

    assert_eq!(
        h.probe.count(&id, "delay"),
        1,
        "delay executed more than once"
    );
    assert_eq!(
        h.probe.count(&id, "finish"),
        1,
        "finish executed more than once"
    );
    let rows = h.attempts(&id).await;
    assert_eq!(
        summary(&rows),
        [row("delay", 1, "succeeded"), row("finish", 1, "succeeded")]
    );
    let after = h.run(&id).await;
    assert_eq!(
        (after.status.as_str(), after.seq, after.updated_at),
        ("succeeded", 2, run.updated_at)
    );
    // The duplicate of the current seq must not cut the timer short either.
    assert!(
        started(&rows[1]) >= rows[1].run_at,
        "a duplicate task ran the delayed step {} ms before its timer",
        rows[1].run_at - started(&rows[1])
    );
}

/// Pitfall 8: on SQLite apalis keeps its migration history in `_sqlx_migrations`, so ours live in
/// `_switchboard_migrations`; neither holds the other's versions. On PostgreSQL apalis' tables
/// and history live in schema `apalis` (`apalis.jobs`, `apalis._sqlx_migrations`). Migrating
/// again changes nothing.
async fn our_migrations_use_their_own_table_apart_from_apalis(backend: Backend) {
    let h = Harness::new(&backend).await;
    let db = h.db();
    // apalis' history: sqlx' default table on SQLite, its own schema on PostgreSQL.
    let apalis_history = match db {
        Db::Sqlite(_) => "_sqlx_migrations",
        Db::Postgres(_) => "apalis._sqlx_migrations",
    };
    let ours = versions(db, "_switchboard_migrations").await;
    assert!(!ours.is_empty());
    assert_eq!(
        ours,
        our_migration_files(db),
        "every migration file applied, recorded in our table"
    );
    let apalis = versions(db, apalis_history).await;
    assert!(
        apalis.contains(&20220530084123),
        "apalis' history is in {apalis_history}: {apalis:?}"
    );
    assert!(
        ours.is_disjoint(&apalis),
        "histories mixed: ours {ours:?}, apalis {apalis:?}"
    );

    let table_count = match db {
        Db::Sqlite(_) => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        Db::Postgres(_) => {
            let (n,) = db
                .fetch_one::<(i64,)>(Q::new(
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'apalis' AND table_name = 'jobs'",
                ))
                .await
                .unwrap();
            assert_eq!(n, 1, "apalis.jobs exists");
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    for table in [
        "_switchboard_migrations",
        "sb_runs",
        "sb_steps",
        "sb_waits",
        "sb_events",
    ] {
        let (n,) = db
            .fetch_one::<(i64,)>(Q::new(table_count).bind(table))
            .await
            .unwrap();
        assert_eq!(n, 1, "table {table}");
    }

    switchboard_engine::migrate(db)
        .await
        .expect("migrating twice is harmless");
    assert_eq!(versions(db, "_switchboard_migrations").await, ours);
    assert_eq!(versions(db, apalis_history).await, apalis);
}

/// Pitfall 9: apalis cannot pause or resume a task, so a pause is our state: a run waiting for an
/// event holds no worker (with one worker slot and three waiting runs, a fourth run completes).
/// An event resumes the run once (a duplicate is recognised), an early event is kept for the
/// wait, a wait times out on its deadline, and a cancelled run ignores a late event.
async fn pausing_is_ours_a_wait_holds_no_worker_and_events_resume_it_once(backend: Backend) {
    let h = Harness::with_workers(
        &backend,
        WorkerOptions {
            concurrency: 1,
            ..fast_workers()
        },
    )
    .await;
    let pause = |key: &str, timeout_ms: u64| PauseInput {
        key: key.into(),
        timeout_ms,
        carry: format!("carry for {key}"),
    };
    let event = |key: &str, dedupe: &str, payload: Value| ExternalEvent {
        kind: TOY_EVENT.into(),
        key: key.into(),
        dedupe_key: dedupe.into(),
        payload,
    };
    let resumed_with = |id: &RunId| -> Resumed<String> {
        let execs = h.probe.execs(id, "resume");
        assert_eq!(execs.len(), 1, "resume executed {} times", execs.len());
        serde_json::from_value(execs[0].input.clone()).expect("resume input")
    };

    // The timeout case runs meanwhile.
    let times_out = h.start::<Pause>(pause("nobody-calls", 1000)).await;

    let keys: Vec<String> = (0..3).map(|i| format!("key-{i}")).collect();
    let mut paused = Vec::new();
    for key in &keys {
        paused.push(h.start::<Pause>(pause(key, 60_000)).await);
    }
    for (id, key) in paused.iter().zip(&keys) {
        let run = h
            .wait_for(id, "waiting on its event", |r| r.status == "waiting")
            .await;
        assert_eq!(
            (run.wait_kind.as_deref(), run.wait_key.as_deref()),
            (Some(TOY_EVENT), Some(key.as_str()))
        );
        assert_eq!(run.current_step.as_deref(), Some("resume"));
    }
    let free = h.start::<Finish>("not_blocked".into()).await;
    assert_eq!(
        h.wait_for_status(&free, "succeeded")
            .await
            .outcome
            .as_deref(),
        Some("not_blocked")
    );
    for id in &paused {
        assert_eq!(h.run(id).await.status, "waiting");
        assert_eq!(h.probe.count(id, "resume"), 0);
    }

    for (i, (id, key)) in paused.iter().zip(&keys).enumerate() {
        let delivered = h
            .engine
            .deliver(event(key, &format!("evt-{i}"), json!({ "n": i })))
            .await
            .unwrap();
        assert_eq!(delivered, Delivery::Resumed(id.clone()));
        let again = h
            .engine
            .deliver(event(key, &format!("evt-{i}"), json!({ "n": "other" })))
            .await
            .unwrap();
        assert_eq!(again, Delivery::Duplicate);
    }
    for (i, (id, key)) in paused.iter().zip(&keys).enumerate() {
        let run = h.wait_for_status(id, "succeeded").await;
        assert_eq!(run.outcome.as_deref(), Some("event"));
        let input = resumed_with(id);
        assert_eq!(input.carry, format!("carry for {key}"));
        assert!(
            matches!(&input.outcome, WaitOutcome::Event { payload } if *payload == json!({ "n": i })),
            "{input:?}"
        );
        assert_eq!(h.probe.count(id, "pause"), 1);
    }

    // An event before anyone waits on its key is stored, then consumed by the wait.
    let early = h
        .engine
        .deliver(event("early", "evt-early", json!({ "early": true })))
        .await
        .unwrap();
    assert_eq!(early, Delivery::Stored);
    let id = h.start::<Pause>(pause("early", 60_000)).await;
    let run = h.wait_for_status(&id, "succeeded").await;
    assert_eq!(run.outcome.as_deref(), Some("event"));
    let input = resumed_with(&id);
    assert_eq!(input.carry, "carry for early");
    assert!(
        matches!(&input.outcome, WaitOutcome::Event { payload } if *payload == json!({ "early": true })),
        "{input:?}"
    );
    let again = h
        .engine
        .deliver(event("early", "evt-early", json!({ "early": true })))
        .await
        .unwrap();
    assert_eq!(again, Delivery::Duplicate);

    // No event by the deadline: the wait resumes with `TimedOut`, not before the deadline.
    let run = h.wait_for_status(&times_out, "succeeded").await;
    assert_eq!(run.outcome.as_deref(), Some("timed_out"));
    let input = resumed_with(&times_out);
    assert_eq!(input.carry, "carry for nobody-calls");
    assert!(matches!(input.outcome, WaitOutcome::TimedOut), "{input:?}");
    let rows = h.attempts(&times_out).await;
    assert_eq!(
        summary(&rows),
        [row("pause", 1, "succeeded"), row("resume", 1, "succeeded")]
    );
    assert!(
        started(&rows[1]) >= finished(&rows[0]) + 1000,
        "the wait timed out early"
    );

    // Cancelling a waiting run: a later event is only stored, and the run stays cancelled.
    let id = h.start::<Pause>(pause("cancel-me", 60_000)).await;
    h.wait_for(&id, "waiting on its event", |r| r.status == "waiting")
        .await;
    let cancelled = h.engine.cancel(&id).await.expect("cancel");
    assert_eq!(cancelled.status, "cancelled");
    assert_eq!((cancelled.wait_kind, cancelled.wait_key), (None, None));
    let late = h
        .engine
        .deliver(event("cancel-me", "evt-late", json!({ "late": true })))
        .await
        .unwrap();
    assert_eq!(late, Delivery::Stored);
    // Anything the delivery (wrongly) queued has run once the queue is idle.
    switchboard_tests::wait_until_queue_idle(h.db()).await;
    assert_eq!(h.run(&id).await.status, "cancelled");
    assert_eq!(h.probe.count(&id, "resume"), 0, "a cancelled run resumed");
    let rows = h.attempts(&id).await;
    assert_eq!(
        summary(&rows),
        [row("pause", 1, "succeeded"), row("resume", 1, "cancelled")]
    );
    match h.engine.cancel(&id).await {
        Err(EngineError::InvalidState { status, action }) => {
            assert_eq!((status.as_str(), action), ("cancelled", "cancel"))
        }
        other => panic!("cancelling twice: {other:?}"),
    }
}

/// A run's steps that follow one another at once run back to back on one worker (a segment),
/// each committed with the claim of the next. A worker killed mid-segment loses only the step it
/// was running: the steps it committed stay done and run once, the lost attempt is recorded, and
/// another worker retries just that step and goes on.
async fn a_segment_killed_mid_way_repeats_only_the_step_that_was_running(backend: Backend) {
    let mut h = Harness::with_workers(&backend, fast_workers()).await;
    let id = h
        .start::<Chain>(ChainInput {
            left: 3,
            sleep_ms: 0,
            hang_at: Some(1),
        })
        .await;
    let hanging = |h: &Harness| {
        h.probe
            .execs(&id, "chain")
            .iter()
            .any(|e| e.input["left"] == 1)
    };
    eventually("the third step to hang", DEADLINE, || async {
        hanging(&h).then_some(())
    })
    .await;
    let before = h.attempts(&id).await;
    assert_eq!(
        summary(&before),
        [
            row("chain", 1, "succeeded"),
            row("chain", 1, "succeeded"),
            row("chain", 1, "running")
        ]
    );
    // One segment: each attempt claimed by the worker that committed the one before, with no
    // task queued in between (the run's only task is the one that started it).
    let worker = before[0].claimed_by.clone();
    assert!(before.iter().all(|r| r.claimed_by == worker), "{before:#?}");
    assert_eq!(h.tasks_of(&id).await, 1, "the steps went through the queue");

    h.workers.take().expect("workers").abort();
    h.workers = Some(h.engine.start_workers(fast_workers()));
    let run = h.wait_for_status(&id, "succeeded").await;
    assert_eq!(run.outcome.as_deref(), Some("chained"));
    let rows = h.attempts(&id).await;
    assert_eq!(
        summary(&rows),
        [
            row("chain", 1, "succeeded"),
            row("chain", 1, "succeeded"),
            row("chain", 1, "failed"),
            row("chain", 2, "succeeded"),
            row("chain", 1, "succeeded")
        ]
    );
    assert_eq!(
        rows[2].error.as_deref(),
        Some("worker lost during the attempt")
    );
    let executed: Vec<u64> = h
        .probe
        .execs(&id, "chain")
        .iter()
        .map(|e| e.input["left"].as_u64().expect("left"))
        .collect();
    assert_eq!(executed, [3, 2, 1, 1, 0], "only the running step ran again");
}

/// A segment has a budget (a few steps, about 100 ms): a run whose steps follow one another
/// for a second goes back to the queue now and then, so with one worker slot another
/// business' run, started after it, finishes long before it.
async fn a_long_segment_yields_so_another_business_run_goes_first(backend: Backend) {
    let h = Harness::with_workers(
        &backend,
        WorkerOptions {
            concurrency: 1,
            ..fast_workers()
        },
    )
    .await;
    let long = h
        .start_for::<Chain>(
            "busy",
            ChainInput {
                left: 199,
                sleep_ms: 5,
                hang_at: None,
            },
        )
        .await;
    eventually("the long chain to start", DEADLINE, || async {
        (h.probe.count(&long, "chain") > 0).then_some(())
    })
    .await;
    let short = h.start_for::<Finish>("other", "short".into()).await;
    h.wait_for_status(&short, "succeeded").await;
    let run = h.wait_for_status(&long, "succeeded").await;
    assert_eq!(run.outcome.as_deref(), Some("chained"));
    assert_eq!(h.probe.count(&long, "chain"), 200, "every step ran once");
    // Counted from the recorded times, not when the test saw the short run end.
    let short_done = h
        .attempts(&short)
        .await
        .iter()
        .filter_map(|a| a.finished_at)
        .max()
        .expect("the short run's step finished");
    let chain = h
        .attempts(&long)
        .await
        .iter()
        .filter(|a| a.name == "chain" && a.started_at.is_some_and(|t| t < short_done))
        .count();
    assert!(
        chain < 100,
        "the other business' run waited for {chain} of the chain's 200 steps"
    );
}

/// Definitions are checked at start-up: a step name twice in a workflow, a workflow registered
/// twice, an empty workflow, and starting a run at a step or workflow that is not registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_with_duplicate_names_are_refused() {
    let probe = Arc::new(Probe::default());
    let twice = Workflow::builder("twice")
        .step(Finish(probe.clone()))
        .step(Delay(probe.clone()))
        .step(Finish(probe.clone()))
        .build();
    match twice {
        Err(EngineError::Definition(msg)) => {
            assert!(msg.contains("finish") && msg.contains("twice"), "{msg}")
        }
        other => panic!("a step registered twice was accepted: {other:?}"),
    }
    match Workflow::builder("empty").build() {
        Err(EngineError::Definition(_)) => {}
        other => panic!("an empty workflow was accepted: {other:?}"),
    }
    match Registry::new()
        .register(toy_workflow(&probe))
        .unwrap()
        .register(toy_workflow(&probe))
    {
        Err(EngineError::Definition(msg)) => assert!(msg.contains(TOY), "{msg}"),
        other => panic!("a workflow registered twice was accepted: {other:?}"),
    }

    // Starting a run at a step the workflow does not have, or in an unknown workflow.
    let database = TestDatabase::create(&Backend::Sqlite).await;
    let db = Db::connect(&database.url, 2).await.unwrap();
    switchboard_engine::migrate(&db).await.unwrap();
    let small = Workflow::builder("small")
        .step(Finish(probe.clone()))
        .build()
        .unwrap();
    let engine = Engine::new(db, Registry::new().register(small).unwrap());
    let business = BusinessId("b".into());
    let mut tx = engine.db().begin().await.unwrap();
    let new = NewRun {
        workflow: "small",
        business_id: &business,
        subject_id: "s",
    };
    let err = engine
        .start_run_in::<Delay>(
            &mut tx,
            new,
            DelayInput {
                ms: 0,
                outcome: "x".into(),
            },
        )
        .await;
    assert!(matches!(err, Err(EngineError::Definition(_))), "{err:?}");
    let new = NewRun {
        workflow: "nope",
        business_id: &business,
        subject_id: "s",
    };
    let err = engine
        .start_run_in::<Finish>(&mut tx, new, "x".into())
        .await;
    assert!(matches!(err, Err(EngineError::Definition(_))), "{err:?}");
    tx.rollback().await.unwrap();
}
