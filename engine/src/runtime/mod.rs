//! The engine handle: start runs, cancel them, deliver external events, and run the workers.

mod act;
mod decide;
mod executor;
mod feed;
mod operator;
mod queue;
pub mod telemetry;
mod wake;
mod workers;

pub use feed::ChangeFeed;
pub use operator::end_run;
pub use workers::{WorkerOptions, Workers};

use std::sync::Arc;
use std::time::Duration;

use wake::Wake;

use crate::error::{EngineError, Result};
use crate::ids::{BusinessId, RunId, new_id, now_ms};
use crate::store::events::{self, EventRow};
use crate::store::runs::{self, RunRow};
use crate::store::steps::{self, StepRow};
use crate::store::tasks::{self, StepTask, TaskKind};
use crate::store::{Db, Tx, waits};
use crate::workflow::{Registry, Step, WaitOutcome};

/// A handle on the engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    registry: Registry,
    /// Wakes this process' workers when a transition pushed a task (no waiting for a poll).
    wake: Arc<Wake>,
    /// A worker whose heartbeat is older than this (ms) is dead, as apalis judges orphans.
    dead_after_ms: std::sync::atomic::AtomicU64,
    /// Step attempts (row ids) this process is executing right now.
    executing: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// An attempt marked as executing in this process (see [`Engine::executing`]).
pub(crate) struct Executing {
    engine: Engine,
    row_id: String,
}

impl Drop for Executing {
    fn drop(&mut self) {
        self.engine.executing_set().remove(&self.row_id);
    }
}

/// A request to start a run.
#[derive(Clone, Debug)]
pub struct NewRun<'a> {
    /// The workflow's registered name.
    pub workflow: &'a str,
    /// The business the run belongs to.
    pub business_id: &'a BusinessId,
    /// What the run is about (for `lead_call`, the lead id).
    pub subject_id: &'a str,
}

/// What happened to a delivered external event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The same event was received before; nothing changed.
    Duplicate,
    /// Stored; no run waits on its key yet (a run that starts waiting on it later consumes it).
    Stored,
    /// Stored and the waiting run resumed.
    Resumed(RunId),
}

/// An event from outside (a provider webhook) that may resume a waiting run.
#[derive(Clone, Debug)]
pub struct ExternalEvent {
    /// The event family, matching [`crate::workflow::WaitFor::kind`].
    pub kind: String,
    /// The correlation key, matching [`crate::workflow::WaitFor::key`].
    pub key: String,
    /// Identifies the event: a second event with the same dedupe key is a duplicate.
    pub dedupe_key: String,
    /// The event as received (handed to the resumed step).
    pub payload: serde_json::Value,
}

impl Engine {
    /// An engine on `db` that runs the workflows in `registry`.
    pub fn new(db: Db, registry: Registry) -> Self {
        Engine {
            inner: Arc::new(Inner {
                db,
                registry,
                wake: Arc::default(),
                dead_after_ms: std::sync::atomic::AtomicU64::new(5_000),
                executing: Default::default(),
            }),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The registered workflows.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Tells this process' workers that a task may be ready. Call after committing a transaction
    /// that started a run.
    pub fn notify_changed(&self) {
        self.inner.wake.notify();
    }

    /// How long a silent worker counts as alive.
    pub(crate) fn dead_after(&self) -> Duration {
        Duration::from_millis(
            self.inner
                .dead_after_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    pub(crate) fn set_dead_after(&self, d: Duration) {
        self.inner
            .dead_after_ms
            .store(d.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Marks attempt `row_id` as executing here until the returned guard is dropped.
    pub(crate) fn executing(&self, row_id: &str) -> Executing {
        self.executing_set().insert(row_id.to_owned());
        Executing {
            engine: self.clone(),
            row_id: row_id.to_owned(),
        }
    }

    /// Whether this process is executing attempt `row_id` right now.
    pub(crate) fn is_executing(&self, row_id: &str) -> bool {
        self.executing_set().contains(row_id)
    }

    fn executing_set(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        // A panic while holding this lock leaves a set that is still right.
        self.inner
            .executing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn wake(&self) -> Arc<Wake> {
        self.inner.wake.clone()
    }

    /// Starts a run of `workflow` at step `S` with `input`, inside the caller's transaction (so
    /// that, say, a lead and its run are stored together). Call [`Engine::notify_changed`] after
    /// the commit.
    pub async fn start_run_in<S: Step>(
        &self,
        tx: &mut Tx,
        new: NewRun<'_>,
        input: S::Input,
    ) -> Result<RunId> {
        let wf = self.registry().get(new.workflow).ok_or_else(|| {
            EngineError::Definition(format!("workflow {} is not registered", new.workflow))
        })?;
        if !wf.step_names().contains(&S::NAME) {
            return Err(EngineError::Definition(format!(
                "workflow {} has no step {}",
                new.workflow,
                S::NAME
            )));
        }
        let run_id = RunId::new();
        let now = now_ms();
        let row = StepRow {
            id: new_id(),
            run_id: run_id.0.clone(),
            name: S::NAME.to_owned(),
            attempt: 1,
            status: crate::status::StepStatus::Queued,
            input: serde_json::to_string(&input)?,
            output: None,
            error: None,
            scheduled_at: now,
            run_at: now,
            started_at: None,
            finished_at: None,
            claimed_by: None,
            log: None,
            deferrals: 0,
            deferred_because: None,
        };
        let run = RunRow {
            id: run_id.0.clone(),
            workflow: new.workflow.to_owned(),
            business_id: new.business_id.0.clone(),
            subject_id: new.subject_id.to_owned(),
            status: crate::status::RunStatus::Queued,
            current_step: Some(S::NAME.to_owned()),
            current_row: Some(row.id.clone()),
            seq: 0,
            outcome: None,
            error: None,
            wait_kind: None,
            wait_key: None,
            wait_until: None,
            created_at: now,
            updated_at: now,
            queue_rank: runs::ready_in_business(tx, &new.business_id.0, tasks::RANKS).await?,
        };
        runs::insert(tx, &run).await?;
        steps::insert(tx, &row).await?;
        tasks::push(
            tx,
            &StepTask {
                run_id: run_id.clone(),
                seq: 0,
                kind: TaskKind::Step,
            },
            Duration::ZERO,
            run.queue_rank,
        )
        .await?;
        Ok(run_id)
    }

    /// Records an external event exactly once and resumes the run waiting on its key, if any.
    pub async fn deliver(&self, event: ExternalEvent) -> Result<Delivery> {
        let mut tx = self.db().begin().await?;
        tx.lock_key(&act::wait_lock(&event.kind, &event.key))
            .await?;
        let row = EventRow {
            id: new_id(),
            kind: event.kind.clone(),
            key: event.key.clone(),
            dedupe_key: event.dedupe_key.clone(),
            payload: event.payload.to_string(),
            received_at: now_ms(),
            consumed_at: None,
            run_id: None,
        };
        if !events::insert(&mut tx, &row).await? {
            return Ok(Delivery::Duplicate);
        }
        let Some(wait) = waits::find_waiting(&mut tx, &event.kind, &event.key).await? else {
            tx.commit().await?;
            return Ok(Delivery::Stored);
        };
        let run_id = RunId(wait.run_id.clone());
        let resumed = match runs::get(&mut tx, &run_id).await? {
            Some(run) => {
                let outcome = WaitOutcome::Event {
                    payload: event.payload.clone(),
                };
                act::resume(&mut tx, &run, &wait, outcome, Some(row.id.clone())).await?
            }
            None => false,
        };
        if !resumed {
            // The wait belonged to a run that moved on: keep just the event.
            tx.rollback().await?;
            let mut tx = self.db().begin().await?;
            let stored = events::insert(&mut tx, &row).await?;
            tx.commit().await?;
            return Ok(if stored {
                Delivery::Stored
            } else {
                Delivery::Duplicate
            });
        }
        events::consume(&mut tx, &row.id, &run_id.0).await?;
        tx.commit().await?;
        self.notify_changed();
        Ok(Delivery::Resumed(run_id))
    }
}
