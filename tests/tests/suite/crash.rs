//! A worker killed while a step executes: the attempt is counted as lost, and another worker
//! runs the next attempt once the dead worker's heartbeat stops (apalis pitfall 5).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use switchboard_engine::store::{runs, steps};
use switchboard_engine::{
    BusinessId, Db, Engine, NewRun, Registry, RunId, Step, StepContext, StepError, StepPolicy, Transition, WorkerOptions,
    Workflow,
};
use switchboard_tests::{Backend, TestDatabase, eventually};

#[derive(Serialize, Deserialize)]
struct Nothing {}

/// Hangs forever on its first attempt (so a crash can interrupt it), succeeds afterwards.
struct HangsOnce {
    executions: Arc<AtomicUsize>,
}

#[async_trait]
impl Step for HangsOnce {
    const NAME: &'static str = "hangs_once";
    type Input = Nothing;

    fn policy(&self) -> StepPolicy {
        StepPolicy { max_attempts: 3, timeout: Duration::from_secs(600), ..StepPolicy::default() }
    }

    async fn run(&self, ctx: &StepContext, _: Nothing) -> Result<Transition, StepError> {
        self.executions.fetch_add(1, Ordering::SeqCst);
        if ctx.attempt == 1 {
            std::future::pending::<()>().await;
        }
        Ok(Transition::complete("done"))
    }
}

crate::on_both_backends!(killed_worker_mid_step_loses_the_attempt_not_the_run);

async fn killed_worker_mid_step_loses_the_attempt_not_the_run(backend: Backend) {
    let database = TestDatabase::create(&backend).await;
    let db = Db::connect(&database.url, 8).await.unwrap();
    switchboard_engine::migrate(&db).await.unwrap();
    let executions = Arc::new(AtomicUsize::new(0));
    let workflow = Workflow::builder("crash").step(HangsOnce { executions: executions.clone() }).build().unwrap();
    let engine = Engine::new(db, Registry::new().register(workflow).unwrap());
    let opts = WorkerOptions { poll_interval: Duration::from_millis(200), ..WorkerOptions::default() };
    let first = engine.start_workers(opts.clone());

    let mut tx = engine.db().begin().await.unwrap();
    let business = BusinessId("b".into());
    let run_id = engine
        .start_run_in::<HangsOnce>(&mut tx, NewRun { workflow: "crash", business_id: &business, subject_id: "s" }, Nothing {})
        .await
        .unwrap();
    tx.commit().await.unwrap();
    engine.notify_changed();

    eventually("the first attempt to start", Duration::from_secs(20), || async {
        (executions.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    first.abort();
    let second = engine.start_workers(opts);
    assert_ne!(second.name(), "", "workers have a name");

    let run = eventually("the run to succeed on another worker", Duration::from_secs(30), || async {
        let run = runs::find(engine.db(), &run_id).await.unwrap().unwrap();
        (run.status == "succeeded").then_some(run)
    })
    .await;
    assert_eq!(run.outcome.as_deref(), Some("done"));
    let attempts = steps::list_for_run(engine.db(), &RunId(run.id.clone())).await.unwrap();
    let summary: Vec<(i64, &str, Option<&str>)> =
        attempts.iter().map(|s| (s.attempt, s.status.as_str(), s.error.as_deref())).collect();
    assert_eq!(
        summary,
        vec![(1, "failed", Some("worker lost during the attempt")), (2, "succeeded", None)],
        "attempts: {summary:?}"
    );
    assert_eq!(executions.load(Ordering::SeqCst), 2);
    second.stop().await;
}
