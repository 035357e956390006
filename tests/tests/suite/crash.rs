//! A worker killed while a step executes: the attempt is counted as lost, and another worker
//! runs the next attempt once the dead worker's heartbeat stops (apalis pitfall 5).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use switchboard_engine::store::{Q, runs, steps};
use switchboard_engine::{
    BusinessId, Db, Engine, NewRun, Registry, RunId, Step, StepContext, StepError, StepPolicy,
    Transition, WorkerOptions, Workflow,
};
use switchboard_tests::{Backend, TestDatabase, due_tasks, eventually};

#[derive(Serialize, Deserialize)]
struct Nothing {}

/// An engine running only `step`, in a workflow named after it, on a fresh database.
async fn engine_with<S: Step>(backend: &Backend, step: S) -> (TestDatabase, Engine) {
    let database = TestDatabase::create(backend).await;
    let db = Db::connect(&database.url, 8).await.unwrap();
    switchboard_engine::migrate(&db).await.unwrap();
    let workflow = Workflow::builder(S::NAME).step(step).build().unwrap();
    (
        database,
        Engine::new(db, Registry::new().register(workflow).unwrap()),
    )
}

/// Starts a run of the one-step workflow of `S`.
async fn start<S: Step<Input = Nothing>>(engine: &Engine) -> RunId {
    let mut tx = engine.db().begin().await.unwrap();
    let business = BusinessId("b".into());
    let new = NewRun {
        workflow: S::NAME,
        business_id: &business,
        subject_id: "s",
    };
    let run_id = engine
        .start_run_in::<S>(&mut tx, new, Nothing {})
        .await
        .unwrap();
    tx.commit().await.unwrap();
    engine.notify_changed();
    run_id
}

/// Waits until the run succeeded.
async fn succeeded(engine: &Engine, run_id: &RunId) -> runs::RunRow {
    eventually("the run to succeed", Duration::from_secs(30), || async {
        let run = runs::find(engine.db(), run_id).await.unwrap().unwrap();
        (run.status == "succeeded").then_some(run)
    })
    .await
}

/// Hangs forever on its first attempt (so a crash can interrupt it), succeeds afterwards.
struct HangsOnce {
    executions: Arc<AtomicUsize>,
}

#[async_trait]
impl Step for HangsOnce {
    const NAME: &'static str = "hangs_once";
    type Input = Nothing;

    fn policy(&self) -> StepPolicy {
        StepPolicy {
            max_attempts: 3,
            timeout: Duration::from_secs(600),
            ..StepPolicy::default()
        }
    }

    async fn run(&self, ctx: &StepContext, _: Nothing) -> Result<Transition, StepError> {
        self.executions.fetch_add(1, Ordering::SeqCst);
        if ctx.attempt == 1 {
            std::future::pending::<()>().await;
        }
        Ok(Transition::complete("done"))
    }
}

crate::on_both_backends!(
    killed_worker_mid_step_loses_the_attempt_not_the_run,
    duplicate_task_while_the_attempt_runs_executes_it_once,
);

async fn killed_worker_mid_step_loses_the_attempt_not_the_run(backend: Backend) {
    let executions = Arc::new(AtomicUsize::new(0));
    let (_db, engine) = engine_with(
        &backend,
        HangsOnce {
            executions: executions.clone(),
        },
    )
    .await;
    let opts = WorkerOptions {
        poll_interval: Duration::from_millis(200),
        ..WorkerOptions::default()
    };
    let first = engine.start_workers(opts.clone());
    let run_id = start::<HangsOnce>(&engine).await;
    eventually(
        "the first attempt to start",
        Duration::from_secs(20),
        || async { (executions.load(Ordering::SeqCst) == 1).then_some(()) },
    )
    .await;
    first.abort();
    let second = engine.start_workers(opts);

    let run = succeeded(&engine, &run_id).await;
    assert_eq!(run.outcome.as_deref(), Some("done"));
    let attempts = steps::list_for_run(engine.db(), &run_id).await.unwrap();
    let summary: Vec<(i64, &str, Option<&str>)> = attempts
        .iter()
        .map(|s| (s.attempt, s.status.as_str(), s.error.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "failed", Some("worker lost during the attempt")),
            (2, "succeeded", None)
        ],
        "attempts: {summary:?}"
    );
    assert_eq!(executions.load(Ordering::SeqCst), 2);
    second.stop().await;
}

/// Completes at once.
struct Quick;

#[async_trait]
impl Step for Quick {
    const NAME: &'static str = "quick";
    type Input = Nothing;

    async fn run(&self, _: &StepContext, _: Nothing) -> Result<Transition, StepError> {
        Ok(Transition::complete("done"))
    }
}

async fn worker_count(db: &Db, name: &str) -> i64 {
    let q = Q::new("SELECT COUNT(*) FROM Workers WHERE id = $1").bind(name);
    db.fetch_one::<(i64,)>(q).await.unwrap().0
}

/// A worker whose heartbeat stops (a hung apalis worker, or PostgreSQL's keep-alive refusing to
/// beat) is replaced by a fresh one under a new name, which goes on running steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_with_a_stopped_heartbeat_is_replaced() {
    let (_db, engine) = engine_with(&Backend::Sqlite, Quick).await;
    let opts = WorkerOptions {
        poll_interval: Duration::from_millis(200),
        missed_heartbeats: 2,
        ..WorkerOptions::default()
    };
    let workers = engine.start_workers(opts);
    let name = workers.name().to_owned();
    let db = engine.db();
    eventually(
        "the worker to register",
        Duration::from_secs(10),
        || async { (worker_count(db, &name).await == 1).then_some(()) },
    )
    .await;

    // From now on its heartbeats are silently ignored, it looks a minute old, and apalis' own
    // restarts of it (`<name>-r<n>`) cannot register.
    for trigger in [
        format!(
            "CREATE TRIGGER freeze BEFORE UPDATE OF last_seen ON Workers \
             WHEN OLD.id = '{name}' AND NEW.last_seen > OLD.last_seen BEGIN SELECT RAISE(IGNORE); END"
        ),
        format!(
            "CREATE TRIGGER no_restart BEFORE INSERT ON Workers \
             WHEN NEW.id LIKE '{name}-r%' BEGIN SELECT RAISE(IGNORE); END"
        ),
    ] {
        db.execute(Q::new(trigger)).await.unwrap();
    }
    db.execute(Q::new("UPDATE Workers SET last_seen = last_seen - 60 WHERE id = $1").bind(&name))
        .await
        .unwrap();

    let replacement = format!("{name}-g1");
    eventually("a replacement worker", Duration::from_secs(30), || async {
        (worker_count(db, &replacement).await == 1).then_some(())
    })
    .await;
    // The replacement runs steps.
    let run_id = start::<Quick>(&engine).await;
    succeeded(&engine, &run_id).await;
    workers.stop().await;
}

/// Waits at a gate until the test opens it.
struct Gated {
    executions: Arc<AtomicUsize>,
    gate: Arc<tokio::sync::Semaphore>,
}

#[async_trait]
impl Step for Gated {
    const NAME: &'static str = "gated";
    type Input = Nothing;

    async fn run(&self, _: &StepContext, _: Nothing) -> Result<Transition, StepError> {
        self.executions.fetch_add(1, Ordering::SeqCst);
        let _permit = self.gate.acquire().await.map_err(StepError::fatal)?;
        Ok(Transition::complete("done"))
    }
}

/// A copy of the current task delivered while its attempt executes (at-least-once delivery) is
/// neither run alongside it nor taken for a lost worker.
async fn duplicate_task_while_the_attempt_runs_executes_it_once(backend: Backend) {
    use switchboard_engine::store::tasks::{self, StepTask, TaskKind};
    let executions = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let step = Gated {
        executions: executions.clone(),
        gate: gate.clone(),
    };
    let (_db, engine) = engine_with(&backend, step).await;
    let workers = engine.start_workers(WorkerOptions {
        poll_interval: Duration::from_millis(200),
        ..WorkerOptions::default()
    });
    let run_id = start::<Gated>(&engine).await;
    eventually("the attempt to start", Duration::from_secs(20), || async {
        (executions.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;

    let mut tx = engine.db().begin().await.unwrap();
    let copy = StepTask {
        run_id: run_id.clone(),
        seq: 0,
        kind: TaskKind::Step,
    };
    tasks::push(&mut tx, &copy, Duration::ZERO, 0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    engine.notify_changed();
    // The copy is handled (deferred) while the attempt still waits at its gate: only the running
    // original is left due.
    eventually(
        "the copy to be handled",
        Duration::from_secs(20),
        || async { (due_tasks(engine.db()).await <= 1).then_some(()) },
    )
    .await;
    gate.add_permits(10);

    succeeded(&engine, &run_id).await;
    let attempts = steps::list_for_run(engine.db(), &run_id).await.unwrap();
    let summary: Vec<(i64, &str)> = attempts
        .iter()
        .map(|s| (s.attempt, s.status.as_str()))
        .collect();
    assert_eq!(summary, vec![(1, "succeeded")]);
    assert_eq!(executions.load(Ordering::SeqCst), 1, "the step ran twice");
    workers.stop().await;
}
