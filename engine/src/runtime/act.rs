//! Act: commit a decision — the attempt's result, the run's new state and the next task (or the
//! claim of the next attempt, when the same worker goes on with it) — in one transaction, and
//! resume runs whose wait ended.

use crate::status::{RunStatus, StepStatus, WaitStatus};
use std::time::Duration;

use super::decide::{Decision, Deferral};
use crate::error::Result;
use crate::ids::{RunId, StepId, WaitId, due_at, new_id, now_ms};
use crate::store::runs::{self, Advance, RunRow};
use crate::store::steps::{self, StepRow};
use crate::store::tasks::{self, StepTask, TaskKind};
use crate::store::waits::{self, WaitRow};
use crate::store::{Tx, events};
use crate::workflow::WaitOutcome;

/// The lock key that serialises an event and the wait on it.
pub(crate) fn wait_lock(kind: &str, key: &str) -> String {
    format!("wait:{kind}:{key}")
}

pub(crate) fn new_row(
    run: &RunRow,
    name: &str,
    attempt: i64,
    status: StepStatus,
    input: String,
    delay: Duration,
) -> StepRow {
    let now = now_ms();
    StepRow {
        id: new_id(),
        run_id: run.id.clone(),
        name: name.to_owned(),
        attempt,
        status: status.to_owned(),
        input,
        output: None,
        error: None,
        scheduled_at: now,
        run_at: due_at(now, delay),
        started_at: None,
        finished_at: None,
        claimed_by: None,
        log: None,
        deferrals: 0,
        deferred_because: None,
    }
}

/// Moves `run` from its seq to the next with `advance` and queues `kind` for that seq after
/// `delay`. False (and no task) if the run moved on first.
pub(crate) async fn advance_and_queue(
    tx: &mut Tx,
    run: &RunRow,
    advance: &Advance,
    kind: TaskKind,
    delay: Duration,
) -> Result<bool> {
    let run_id = RunId(run.id.clone());
    if !runs::advance(tx, &run_id, run.seq, advance).await? {
        return Ok(false);
    }
    tasks::push(
        tx,
        &StepTask {
            run_id,
            seq: run.seq + 1,
            kind,
        },
        delay,
        run.queue_rank,
    )
    .await?;
    Ok(true)
}

/// Commits a [`Decision::Defer`]: attempt `row_id` of `run` waits again, the same row, and the
/// run with it.
async fn defer(tx: &mut Tx, run: &RunRow, row_id: &StepId, d: &Deferral) -> Result<Applied> {
    let until = due_at(now_ms(), d.delay);
    if !steps::defer(tx, row_id, until, &d.message, d.log.clone()).await? {
        return Ok(Applied::Stale);
    }
    let advance = Advance {
        status: RunStatus::Waiting,
        current_step: Some(d.step.clone()),
        current_row: Some(row_id.0.clone()),
        wait_kind: Some("deferred".into()),
        wait_until: Some(until),
        ..Advance::default()
    };
    if advance_and_queue(tx, run, &advance, TaskKind::Step, d.delay).await? {
        Ok(Applied::Moved)
    } else {
        Ok(Applied::Stale)
    }
}

/// What committing a decision did.
#[derive(Debug)]
pub(crate) enum Applied {
    /// Nothing: the run moved on first (cancelled, or the attempt superseded); roll back.
    Stale,
    /// The run is queued, waits, or ended.
    Moved,
    /// The next attempt is due now and claimed by the worker that goes on with it: the run at
    /// its new seq, and the attempt.
    Claimed(Box<(RunRow, StepRow)>),
}

/// Commits `decision` for the attempt `row_id` of `run`. With `go_on`, a worker that goes on
/// to the next attempt at once (a segment): that attempt is claimed by it here, and no task is
/// queued.
pub(crate) async fn apply(
    tx: &mut Tx,
    run: &RunRow,
    row_id: &StepId,
    decision: Decision,
    go_on: Option<&str>,
) -> Result<Applied> {
    // A deferral puts the attempt off instead (see `defer`).
    if let Some(finish) = decision.finish()
        && !steps::finish(
            tx,
            row_id,
            finish.status,
            finish.output.clone(),
            finish.error.clone(),
            finish.log.clone(),
        )
        .await?
    {
        return Ok(Applied::Stale);
    }
    let moved = |advanced: bool| {
        if advanced {
            Applied::Moved
        } else {
            Applied::Stale
        }
    };
    match decision {
        Decision::Defer(deferral) => defer(tx, run, row_id, &deferral).await,
        Decision::Schedule {
            step,
            attempt,
            input,
            delay,
            ..
        } if delay.is_zero() && go_on.is_some() => {
            let mut row = new_row(
                run,
                &step,
                attempt,
                StepStatus::Running,
                input.to_string(),
                delay,
            );
            row.started_at = Some(row.scheduled_at);
            row.claimed_by = go_on.map(str::to_owned);
            steps::insert(tx, &row).await?;
            let advance = Advance {
                status: RunStatus::Running,
                current_step: Some(step),
                current_row: Some(row.id.clone()),
                ..Advance::default()
            };
            if !runs::advance(tx, &RunId(run.id.clone()), run.seq, &advance).await? {
                return Ok(Applied::Stale);
            }
            let next = RunRow {
                status: advance.status,
                current_step: advance.current_step,
                current_row: advance.current_row,
                seq: run.seq + 1,
                wait_kind: None,
                wait_key: None,
                wait_until: None,
                updated_at: row.scheduled_at,
                ..run.clone()
            };
            Ok(Applied::Claimed(Box::new((next, row))))
        }
        Decision::Schedule {
            step,
            attempt,
            input,
            delay,
            why,
            ..
        } => {
            let waiting = !delay.is_zero();
            let (status, step_status) = if waiting {
                (RunStatus::Waiting, StepStatus::Waiting)
            } else {
                (RunStatus::Queued, StepStatus::Queued)
            };
            let row = new_row(run, &step, attempt, step_status, input.to_string(), delay);
            steps::insert(tx, &row).await?;
            let advance = Advance {
                status,
                current_step: Some(step),
                current_row: Some(row.id.clone()),
                wait_kind: waiting.then(|| why.to_owned()),
                wait_until: waiting.then_some(row.run_at),
                ..Advance::default()
            };
            Ok(moved(
                advance_and_queue(tx, run, &advance, TaskKind::Step, delay).await?,
            ))
        }
        Decision::Wait {
            step, carry, wait, ..
        } => {
            tx.lock_key(&wait_lock(&wait.kind, &wait.key)).await?;
            let row = new_row(
                run,
                &step,
                1,
                StepStatus::Waiting,
                carry.to_string(),
                Duration::ZERO,
            );
            steps::insert(tx, &row).await?;
            let now = now_ms();
            let mut wait_row = WaitRow {
                id: new_id(),
                run_id: run.id.clone(),
                seq: run.seq + 1,
                kind: wait.kind.clone(),
                key: wait.key.clone(),
                deadline: due_at(now, wait.timeout),
                status: WaitStatus::Waiting,
                event_id: None,
                created_at: now,
                resolved_at: None,
            };
            if let Some(event) = events::first_unconsumed(tx, &wait.kind, &wait.key).await? {
                // The event came before the run started waiting: consume it now.
                events::consume(tx, &event.id, &run.id).await?;
                wait_row.status = WaitStatus::Resolved;
                wait_row.event_id = Some(event.id.clone());
                wait_row.resolved_at = Some(now);
                waits::insert(tx, &wait_row).await?;
                let payload: serde_json::Value = serde_json::from_str(&event.payload)?;
                let input = resumed_input(&carry, WaitOutcome::Event { payload });
                steps::resume(tx, &StepId(row.id.clone()), &input).await?;
                let advance = Advance {
                    status: RunStatus::Queued,
                    current_step: Some(step),
                    current_row: Some(row.id),
                    ..Advance::default()
                };
                let queued =
                    advance_and_queue(tx, run, &advance, TaskKind::Step, Duration::ZERO).await?;
                Ok(moved(queued))
            } else {
                waits::insert(tx, &wait_row).await?;
                let advance = Advance {
                    status: RunStatus::Waiting,
                    current_step: Some(step),
                    current_row: Some(row.id),
                    wait_kind: Some(wait.kind),
                    wait_key: Some(wait.key),
                    wait_until: Some(wait_row.deadline),
                    ..Advance::default()
                };
                let deadline = TaskKind::Deadline {
                    wait_id: wait_row.id,
                };
                Ok(moved(
                    advance_and_queue(tx, run, &advance, deadline, wait.timeout).await?,
                ))
            }
        }
        Decision::Complete { outcome, .. } => {
            let advance = Advance {
                status: RunStatus::Succeeded,
                current_step: run.current_step.clone(),
                current_row: Some(row_id.0.clone()),
                outcome: Some(outcome),
                ..Advance::default()
            };
            Ok(moved(
                runs::advance(tx, &RunId(run.id.clone()), run.seq, &advance).await?,
            ))
        }
        Decision::Fail { error, .. } => {
            let advance = Advance {
                status: RunStatus::Failed,
                current_step: run.current_step.clone(),
                current_row: Some(row_id.0.clone()),
                outcome: Some("failed".into()),
                error: Some(error),
                ..Advance::default()
            };
            Ok(moved(
                runs::advance(tx, &RunId(run.id.clone()), run.seq, &advance).await?,
            ))
        }
    }
}

fn resumed_input(carry_json: &serde_json::Value, outcome: WaitOutcome) -> String {
    serde_json::json!({ "carry": carry_json, "outcome": outcome }).to_string()
}

/// Whether an attempt's input is a wait's resumption by its event (see [`resumed_input`]).
pub(crate) fn resumed_by_event(input: &serde_json::Value) -> bool {
    input.get("carry").is_some()
        && input
            .get("outcome")
            .and_then(|o| o.get("type"))
            .and_then(serde_json::Value::as_str)
            == Some("event")
}

/// Ends the open wait `wait` of `run` with `outcome` and queues the step that follows it.
/// False: the wait or the run moved on first; the caller rolls back.
pub(crate) async fn resume(
    tx: &mut Tx,
    run: &RunRow,
    wait: &WaitRow,
    outcome: WaitOutcome,
    event_id: Option<String>,
) -> Result<bool> {
    let closed = match outcome {
        WaitOutcome::TimedOut => WaitStatus::TimedOut,
        WaitOutcome::Event { .. } => WaitStatus::Resolved,
    };
    if run.seq != wait.seq || !waits::close(tx, &WaitId(wait.id.clone()), closed, event_id).await? {
        return Ok(false);
    }
    let Some(row_id) = run.current_row.clone() else {
        return Ok(false);
    };
    let Some(row) = steps::get(tx, &StepId(row_id.clone())).await? else {
        return Ok(false);
    };
    let carry: serde_json::Value = serde_json::from_str(&row.input)?;
    if !steps::resume(tx, &StepId(row_id.clone()), &resumed_input(&carry, outcome)).await? {
        return Ok(false);
    }
    let advance = Advance {
        status: RunStatus::Queued,
        current_step: run.current_step.clone(),
        current_row: Some(row_id),
        ..Advance::default()
    };
    advance_and_queue(tx, run, &advance, TaskKind::Step, Duration::ZERO).await
}
