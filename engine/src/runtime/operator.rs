//! What an operator can do to a run by hand: cancel it, retry it from the step that failed, or
//! resume a waiting run now (an event wait ends as if its deadline passed; a timer fires); and
//! ending a run with an outcome of its own ([`end_run`]), which a step may do to another run.

use std::time::Duration;

use tracing::info;

use super::Engine;
use super::act::{self, advance_and_queue, new_row};
use crate::error::{EngineError, Result};
use crate::ids::{RunId, StepId};
use crate::status::{RunStatus, StepStatus};
use crate::store::runs::{self, Advance, RunRow};
use crate::store::steps;
use crate::store::tasks::{self, StepTask, TaskKind};
use crate::store::{Tx, waits};
use crate::workflow::WaitOutcome;

impl Engine {
    /// Erases every run of `subject_id` (a lead) inside `tx`: runs, attempts, waits, their
    /// events (and those received under `event_keys`) and changes. Refused while one has not
    /// finished: cancel it first. Returns how many runs were erased.
    pub async fn erase_subject(
        &self,
        tx: &mut crate::store::Tx,
        subject_id: &str,
        event_keys: &[String],
    ) -> Result<u64> {
        let statuses = runs::statuses_of_subject(tx, subject_id).await?;
        if let Some(open) = statuses.into_iter().find(|s| !s.is_terminal()) {
            return Err(EngineError::InvalidState {
                status: open,
                action: "erase",
            });
        }
        steps::delete_of_subject(tx, subject_id).await?;
        waits::delete_of_subject(tx, subject_id).await?;
        crate::store::events::delete_of_subject(tx, subject_id, event_keys).await?;
        crate::store::changes::delete_of_subject(tx, subject_id).await?;
        let erased = runs::delete_of_subject(tx, subject_id).await?;
        info!(subject_id, runs = erased, "runs erased");
        Ok(erased)
    }

    /// Cancels a run that has not finished: open attempts and waits are cancelled, a step still
    /// executing has its result discarded, and a late event changes nothing.
    pub async fn cancel(&self, id: &RunId) -> Result<RunRow> {
        let mut tx = self.db().begin().await?;
        let run = runs::get(&mut tx, id)
            .await?
            .ok_or_else(|| EngineError::RunNotFound(id.0.clone()))?;
        if run.status.is_terminal() {
            return Err(EngineError::InvalidState {
                status: run.status,
                action: "cancel",
            });
        }
        end_run(&mut tx, id, "cancelled").await?;
        let run = runs::get(&mut tx, id)
            .await?
            .ok_or_else(|| EngineError::RunNotFound(id.0.clone()))?;
        tx.commit().await?;
        info!(run_id = %id, "run cancelled");
        self.notify_changed();
        Ok(run)
    }

    /// Runs a failed run again from the step that failed, with that attempt's input and a
    /// fresh budget of attempts.
    pub async fn retry(&self, id: &RunId) -> Result<RunRow> {
        let mut tx = self.db().begin().await?;
        let run = self.run_in(&mut tx, id, RunStatus::Failed, "retry").await?;
        let failed = match run.current_row.clone() {
            Some(row) => steps::get(&mut tx, &StepId(row)).await?,
            None => None,
        }
        .ok_or_else(|| EngineError::InvalidState {
            status: run.status,
            action: "retry (no failed step)",
        })?;
        let row = new_row(
            &run,
            &failed.name,
            1,
            StepStatus::Queued,
            failed.input,
            Duration::ZERO,
        );
        steps::insert(&mut tx, &row).await?;
        let advance = Advance {
            status: RunStatus::Queued,
            current_step: Some(failed.name.clone()),
            current_row: Some(row.id.clone()),
            ..Advance::default()
        };
        if !runs::reopen(&mut tx, id, run.seq, &advance).await? {
            return Err(EngineError::InvalidState {
                status: run.status,
                action: "retry",
            });
        }
        let task = StepTask {
            run_id: id.clone(),
            seq: run.seq + 1,
            kind: TaskKind::Step,
        };
        tasks::push(&mut tx, &task, Duration::ZERO, run.queue_rank).await?;
        let run = self.reread(&mut tx, id).await?;
        tx.commit().await?;
        info!(run_id = %id, step = %failed.name, "run retried by hand");
        self.notify_changed();
        Ok(run)
    }

    /// Resumes a waiting run now: an event wait ends as if its deadline had passed (the step
    /// takes its timeout path, e.g. asks the provider about the call); a timer or backoff fires.
    pub async fn resume(&self, id: &RunId) -> Result<RunRow> {
        let mut tx = self.db().begin().await?;
        let run = self
            .run_in(&mut tx, id, RunStatus::Waiting, "resume")
            .await?;
        let resumed = match (&run.wait_kind, &run.wait_key) {
            (Some(kind), Some(key)) => {
                tx.lock_key(&act::wait_lock(kind, key)).await?;
                match waits::find_waiting(&mut tx, kind, key).await? {
                    Some(wait) if wait.run_id == run.id => {
                        act::resume(&mut tx, &run, &wait, WaitOutcome::TimedOut, None).await?
                    }
                    _ => false,
                }
            }
            _ => {
                let due = match &run.current_row {
                    Some(row) => steps::due_now(&mut tx, &StepId(row.clone())).await?,
                    None => false,
                };
                if !due {
                    return Err(EngineError::InvalidState {
                        status: run.status,
                        action: "resume (no scheduled step)",
                    });
                }
                let advance = Advance {
                    status: RunStatus::Queued,
                    current_step: run.current_step.clone(),
                    current_row: run.current_row.clone(),
                    ..Advance::default()
                };
                advance_and_queue(&mut tx, &run, &advance, TaskKind::Step, Duration::ZERO).await?
            }
        };
        if !resumed {
            return Err(EngineError::InvalidState {
                status: run.status,
                action: "resume (the wait ended meanwhile)",
            });
        }
        let run = self.reread(&mut tx, id).await?;
        tx.commit().await?;
        info!(run_id = %id, "run resumed by hand");
        self.notify_changed();
        Ok(run)
    }

    /// The run, which must be in `status` for `action`.
    async fn run_in(
        &self,
        tx: &mut crate::store::Tx,
        id: &RunId,
        status: RunStatus,
        action: &'static str,
    ) -> Result<RunRow> {
        let run = runs::get(tx, id)
            .await?
            .ok_or_else(|| EngineError::RunNotFound(id.0.clone()))?;
        if run.status != status {
            return Err(EngineError::InvalidState {
                status: run.status,
                action,
            });
        }
        Ok(run)
    }

    async fn reread(&self, tx: &mut crate::store::Tx, id: &RunId) -> Result<RunRow> {
        runs::get(tx, id)
            .await?
            .ok_or_else(|| EngineError::RunNotFound(id.0.clone()))
    }
}

/// Ends a run that has not finished in `tx`, with `outcome` (status `cancelled`): its open
/// attempts and waits are cancelled, a step still executing has its result discarded, and a
/// late event changes nothing. False if it had finished. (A step may end another run this way,
/// e.g. a lead's other runs once the person asked not to be called again.)
pub async fn end_run(tx: &mut Tx, id: &RunId, outcome: &str) -> Result<bool> {
    if !runs::cancel(tx, id, outcome).await? {
        return Ok(false);
    }
    steps::cancel_open(tx, id).await?;
    waits::cancel_for_run(tx, id).await?;
    Ok(true)
}
