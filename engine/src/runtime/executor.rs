//! Executes one task: claim the run, run its step off any transaction, commit the result — and
//! while the next step is due at once, go on with it (a segment): one transaction commits an
//! attempt's result, the run's new state and the claim of the next attempt.
//!
//! A segment ends when the run waits (an event, a timer, a retry's backoff, a deferral), ends,
//! or has used its budget (see [`Decision::continues`]); the transaction that ends it queues
//! what comes next and acknowledges the task. Every attempt keeps its own row. A crash
//! mid-segment leaves the task locked to the dead worker: apalis hands it back, and its claim
//! finds the attempt that was running and records it lost, as for any task.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tracing::{Instrument, debug, error, info_span, warn};

use super::Engine;
use super::act::{Applied, apply, resume, resumed_by_event, wait_lock};
use super::decide::{Decision, Finish, decide};
use super::telemetry;
use crate::error::{Result, StepError};
use crate::ids::{BusinessId, RunId, StepId, WaitId, now_ms};
use crate::status::{StepStatus, WaitStatus};
use crate::store::runs::{self, RunRow};
use crate::store::steps::{self, StepRow};
use crate::store::tasks::{self, Fetched, TaskKind};
use crate::store::{Tx, waits, workers};
use crate::workflow::{ErasedStep, StepContext, WaitOutcome};

/// The worker executing a task: its name, and whether it is stopping (a stopping worker ends
/// its segments at the next attempt).
pub(crate) struct Worker<'a> {
    pub name: &'a str,
    pub stopping: &'a (dyn Fn() -> bool + Send + Sync),
}

/// Handles one fetched task. Errors are infrastructure errors (the database); the caller hands
/// the task back to the queue for another try.
pub(crate) async fn handle(engine: &Engine, fetched: &Fetched, worker: &Worker<'_>) -> Result<()> {
    let task = &fetched.task;
    let span = info_span!("task", run_id = %task.run_id, seq = task.seq);
    async {
        match &task.kind {
            TaskKind::Step => run_segment(engine, fetched, worker).await,
            TaskKind::Deadline { wait_id } => {
                deadline(engine, fetched, worker.name, WaitId(wait_id.clone())).await
            }
        }
    }
    .instrument(span)
    .await
}

/// An attempt claimed by this worker, ready to execute.
struct Claimed {
    run: RunRow,
    row: StepRow,
    /// The step's implementation, if this process registers it.
    step: Option<Arc<dyn ErasedStep>>,
    /// Marks the attempt as executing here (from before the claim commits) until dropped.
    _executing: super::Executing,
}

impl Claimed {
    fn new(engine: &Engine, run: RunRow, row: StepRow) -> Claimed {
        let step = engine
            .registry()
            .get(&run.workflow)
            .and_then(|wf| wf.step(&row.name))
            .cloned();
        Claimed {
            _executing: engine.executing(&row.id),
            run,
            row,
            step,
        }
    }
}

/// What an attempt records when the worker executing it died.
const WORKER_LOST: &str = "worker lost during the attempt";

/// Ends a task that has nothing (more) to do: acknowledges it in `tx` and commits.
async fn done(mut tx: Tx, fetched: &Fetched, worker: &str) -> Result<Option<Claimed>> {
    tasks::ack(&mut tx, &fetched.job, worker).await?;
    tx.commit().await?;
    Ok(None)
}

async fn claim(engine: &Engine, fetched: &Fetched, worker: &str) -> Result<Option<Claimed>> {
    let task = &fetched.task;
    let mut tx = engine.db().begin().await?;
    let Some(run) = runs::get(&mut tx, &task.run_id).await? else {
        return done(tx, fetched, worker).await;
    };
    if task.seq > run.seq || run.status.is_terminal() {
        debug!(status = %run.status, run_seq = run.seq, "stale task, ignored");
        return done(tx, fetched, worker).await;
    }
    if run.wait_key.is_some() {
        // The run waits on an external event: only the event or its deadline may resume it.
        debug!("task for a run waiting on an event, ignored");
        return done(tx, fetched, worker).await;
    }
    let Some(row_id) = run.current_row.clone().map(StepId) else {
        return done(tx, fetched, worker).await;
    };
    let Some(row) = steps::get(&mut tx, &row_id).await? else {
        return done(tx, fetched, worker).await;
    };

    if row.status == StepStatus::Running {
        // Running under another task (a copy of this one), or this task's own segment went on
        // past its seq, and the worker executing it died: a copy of an older seq comes here too.
        if claimant_alive(engine, &mut tx, &row, worker).await? {
            // Delivered twice while the attempt runs. Its claimant will commit the transition;
            // but never drop the task (were the claimant dead after all, the run would hang):
            // look again once the claimant would count as dead.
            let later = engine.dead_after().max(Duration::from_secs(1));
            debug!(claimed_by = ?row.claimed_by, ?later, "duplicate task while its attempt runs, deferred");
            tasks::push(&mut tx, task, later, run.queue_rank).await?;
            return done(tx, fetched, worker).await;
        }
        // The worker executing this attempt died (apalis handed its task back): the attempt
        // failed, and the next one is queued at once if the policy allows another.
        warn!(step = %row.name, attempt = row.attempt, "attempt lost with its worker");
        let step = engine
            .registry()
            .get(&run.workflow)
            .and_then(|wf| wf.step(&row.name));
        let policy = step.map(|s| s.policy()).unwrap_or_default();
        let decision = Decision::retry_or_fail(
            Finish::failed(WORKER_LOST.into(), None),
            &row.name,
            row.attempt,
            serde_json::from_str(&row.input)?,
            &policy,
            Duration::ZERO,
            || {
                format!(
                    "{} lost its worker on the last of {} attempts",
                    row.name, row.attempt
                )
            },
        );
        if let Applied::Stale = apply(&mut tx, &run, &row_id, decision, None).await? {
            tx.rollback().await?;
            tasks::ack_now(engine.db(), &fetched.job, worker).await?;
            return Ok(None);
        }
        done(tx, fetched, worker).await?;
        engine.notify_changed();
        return Ok(None);
    }
    if task.seq != run.seq {
        debug!(run_seq = run.seq, "stale task, ignored");
        return done(tx, fetched, worker).await;
    }
    let now = now_ms();
    if row.run_at > now {
        // Not due yet (a duplicate task, or clocks apart): hand it back for the remaining time.
        let remaining = Duration::from_millis((row.run_at - now) as u64);
        debug!(
            ?remaining,
            "task arrived before its attempt is due, rescheduled"
        );
        tasks::push(&mut tx, task, remaining, run.queue_rank).await?;
        return done(tx, fetched, worker).await;
    }
    if !steps::start(&mut tx, &row_id, worker).await?
        || !runs::claim(&mut tx, &task.run_id, task.seq).await?
    {
        return done(tx, fetched, worker).await;
    }
    let claimed = Claimed::new(engine, run, row);
    tx.commit().await?;
    Ok(Some(claimed))
}

/// Claims the task's attempt and executes it, then each attempt that follows at once while the
/// segment's budget lasts.
async fn run_segment(engine: &Engine, fetched: &Fetched, worker: &Worker<'_>) -> Result<()> {
    let Some(mut claimed) = claim(engine, fetched, worker.name).await? else {
        return Ok(());
    };
    let started = Instant::now();
    let mut steps = 0;
    loop {
        steps += 1;
        let decision = execute(&claimed).await?;
        let run_failed = match &decision {
            Decision::Fail { error, .. } => Some(error.clone()),
            _ => None,
        };
        let go_on = decision.continues(steps, started.elapsed()) && !(worker.stopping)();
        let (run, row) = (&claimed.run, &claimed.row);
        // The claim kept the run's seq; this transition moves it on, unless a cancel got there
        // first.
        let mut tx = engine.db().begin().await?;
        let row_id = StepId(row.id.clone());
        match apply(
            &mut tx,
            run,
            &row_id,
            decision,
            go_on.then_some(worker.name),
        )
        .await?
        {
            Applied::Claimed(next) => {
                let (run, row) = *next;
                let next = Claimed::new(engine, run, row);
                tx.commit().await?;
                claimed = next;
            }
            Applied::Moved => {
                tasks::ack(&mut tx, &fetched.job, worker.name).await?;
                tx.commit().await?;
                engine.notify_changed();
                if let Some(error) = run_failed {
                    // An error, so that an operator hears of it (Sentry, when configured).
                    error!(run_id = %run.id, business = %run.business_id, workflow = %run.workflow,
                        step = %row.name, attempt = row.attempt, %error, "run failed");
                }
                return Ok(());
            }
            Applied::Stale => {
                tx.rollback().await?;
                debug!(step = %row.name, "result discarded: the run moved on (cancelled?)");
                return tasks::ack_now(engine.db(), &fetched.job, worker.name).await;
            }
        }
    }
}

/// Runs the claimed attempt's step (with its timeout, a panic caught) and decides what follows.
async fn execute(claimed: &Claimed) -> Result<Decision> {
    let Claimed { run, row, step, .. } = claimed;
    let input: serde_json::Value = serde_json::from_str(&row.input)?;
    let started = Instant::now();
    let late = Duration::from_millis(now_ms().saturating_sub(row.run_at).max(0) as u64);
    telemetry::step_started(&run.workflow, &row.name, late, resumed_by_event(&input));
    let journal = crate::workflow::Journal::default();
    let (policy, result) = match step {
        None => (
            Default::default(),
            Err(StepError::Fatal(format!(
                "step {}/{} is not registered in this process",
                run.workflow, row.name
            ))),
        ),
        Some(step) => {
            let policy = step.policy();
            let ctx = StepContext {
                run_id: RunId(run.id.clone()),
                business_id: BusinessId(run.business_id.clone()),
                subject_id: run.subject_id.clone(),
                step: step.name(),
                attempt: row.attempt as u32,
                journal: journal.clone(),
            };
            let span = info_span!("step", step = %row.name, attempt = row.attempt, business = %run.business_id);
            // Our own timeout, not apalis' (pitfall 3: its timeout leaves the row Running).
            let fut = AssertUnwindSafe(step.run(&ctx, input.clone())).catch_unwind();
            let result = match tokio::time::timeout(policy.timeout, fut)
                .instrument(span)
                .await
            {
                Ok(Ok(result)) => result,
                Ok(Err(panic)) => Err(StepError::Retryable(format!(
                    "step panicked: {}",
                    panic_message(&panic)
                ))),
                Err(_) => Err(StepError::Retryable(format!(
                    "step timed out after {:?}",
                    policy.timeout
                ))),
            };
            (policy, result)
        }
    };
    telemetry::step_finished(
        &run.workflow,
        &row.name,
        telemetry::outcome(&result),
        started.elapsed(),
    );
    if let Err(e) = &result {
        warn!(step = %row.name, attempt = row.attempt, error = %e, "step attempt failed");
    }
    Ok(decide(
        &row.name,
        row.attempt,
        input,
        &policy,
        result,
        journal.entries(),
    ))
}

async fn deadline(engine: &Engine, fetched: &Fetched, worker: &str, wait_id: WaitId) -> Result<()> {
    let task = &fetched.task;
    let mut tx = engine.db().begin().await?;
    let Some(wait) = waits::get(&mut tx, &wait_id).await? else {
        return done(tx, fetched, worker).await.map(drop);
    };
    tx.lock_key(&wait_lock(&wait.kind, &wait.key)).await?;
    let Some(run) = runs::get(&mut tx, &task.run_id).await? else {
        return done(tx, fetched, worker).await.map(drop);
    };
    if wait.status != WaitStatus::Waiting || run.seq != task.seq {
        return done(tx, fetched, worker).await.map(drop);
    }
    if resume(&mut tx, &run, &wait, WaitOutcome::TimedOut, None).await? {
        done(tx, fetched, worker).await?;
        engine.notify_changed();
        return Ok(());
    }
    tx.rollback().await?;
    tasks::ack_now(engine.db(), &fetched.job, worker).await
}

/// Whether the worker that claimed a running attempt still heartbeats (this worker always does).
async fn claimant_alive(
    engine: &Engine,
    tx: &mut crate::store::Tx,
    row: &StepRow,
    me: &str,
) -> Result<bool> {
    let Some(claimant) = row.claimed_by.as_deref() else {
        return Ok(false);
    };
    if claimant == me {
        // Ours: alive while we execute it. One we claimed but no longer execute failed to
        // record its end (the database failed at that moment), and is lost like a dead worker's.
        return Ok(engine.is_executing(&row.id));
    }
    let age = workers::heartbeat_age_of(tx, claimant).await?;
    Ok(age.is_some_and(|secs| secs * 1000 < engine.dead_after().as_millis() as i64))
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
