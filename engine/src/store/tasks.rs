//! Pushing step tasks onto the apalis queue inside our own transaction.
//!
//! A transition writes its result, the run's new state and the next task in one transaction: a
//! rollback removes the task too, so every transition enqueues exactly one next task.

use std::time::Duration;

use apalis::prelude::TaskBuilder;
use serde::{Deserialize, Serialize};

use sqlx::FromRow;

use super::{Db, Q, Tx};
use crate::error::{EngineError, Result};
use crate::ids::{JobId, RunId};

/// The apalis queue all step tasks go through.
pub const QUEUE: &str = "switchboard.steps";

/// apalis' own retries are for infrastructure trouble only (a database hiccup while handling);
/// step retries are ours, with backoff (apalis retries a failed task at once, without backoff).
pub const QUEUE_MAX_ATTEMPTS: usize = 5;

/// The payload of one apalis task: which run, at which transition, and what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTask {
    /// The run.
    pub run_id: RunId,
    /// The run's `seq` when the task was pushed; a task whose seq is stale does nothing.
    pub seq: i64,
    /// Run the current step, or end a wait at its deadline.
    pub kind: TaskKind,
}

/// What a [`StepTask`] asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskKind {
    /// Execute the run's current step attempt.
    Step,
    /// The wait's deadline passed: end it and resume the run on the timeout path.
    Deadline {
        /// The wait.
        wait_id: String,
    },
}

/// Queue ranks told apart: a run ranked this or lower waits behind every run ranked higher.
pub const RANKS: i64 = 1_000;

/// Pushes `task` of a run with `queue_rank` to run after `delay`, inside `tx`. Among due tasks
/// apalis fetches the highest priority first: a run's priority falls with its rank, so the runs
/// of a business with a long backlog queue behind the few of a business without one.
pub async fn push(tx: &mut Tx, task: &StepTask, delay: Duration, queue_rank: i64) -> Result<()> {
    let args = serde_json::to_vec(task)?;
    let priority = (RANKS - queue_rank.clamp(0, RANKS)) as usize;
    let builder = TaskBuilder::new(args)
        .max_attempts(QUEUE_MAX_ATTEMPTS)
        .priority(priority);
    // apalis stores run_at in whole seconds (pitfall 1): round the due time up to the next
    // second so a delayed step never runs early.
    let builder = if delay.is_zero() {
        builder
    } else {
        let due_ms = crate::ids::due_at(crate::ids::now_ms(), delay);
        builder.run_at_timestamp((due_ms as u64).div_ceil(1000))
    };
    let queue_err = |e: &dyn std::fmt::Display| EngineError::Queue(e.to_string());
    match tx {
        Tx::Sqlite(t) => apalis_sqlite::queries::push_tasks(&mut **t, QUEUE, &[builder.build()])
            .await
            .map_err(|e| queue_err(&e)),
        Tx::Postgres(t) => {
            apalis_postgres::queries::push_tasks(&mut **t, QUEUE, vec![builder.build()])
                .await
                .map_err(|e| queue_err(&e))
        }
    }
}

/// A task a worker took from the queue: apalis' job and the payload it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The apalis job, locked to the worker until acknowledged.
    pub job: JobId,
    /// What to do.
    pub task: StepTask,
}

#[derive(FromRow)]
struct JobRow {
    id: String,
    job: Vec<u8>,
}

/// Takes up to `limit` due tasks for `worker`, highest priority first, oldest first among equals,
/// and locks them to it (status `Queued`). Tasks a dead worker held come back through
/// [`super::workers::heartbeat`].
pub async fn fetch(db: &Db, worker: &str, limit: usize) -> Result<Vec<Fetched>> {
    let limit = limit.max(1) as i64;
    let rows: Vec<JobRow> = match db {
        Db::Sqlite(_) => {
            db.write_returning(
                Q::new(
                    "UPDATE Jobs SET status = 'Queued', lock_by = $1, lock_at = strftime('%s', 'now') \
                     WHERE id IN (SELECT id FROM Jobs WHERE job_type = $2 \
                       AND ((status = 'Pending' AND lock_by IS NULL) \
                            OR (status = 'Failed' AND attempts < max_attempts)) \
                       AND run_at <= strftime('%s', 'now') \
                       ORDER BY priority DESC, run_at ASC, id ASC LIMIT $3) \
                     RETURNING id, job",
                )
                .bind(worker)
                .bind(QUEUE)
                .bind(limit),
            )
            .await?
        }
        // apalis' own fetch: FOR UPDATE SKIP LOCKED, then locked to the worker, in one statement.
        Db::Postgres(_) => {
            db.write_returning(
                Q::new("SELECT id, job FROM apalis.get_jobs($1, $2, CAST($3 AS INTEGER))")
                    .bind(worker)
                    .bind(QUEUE)
                    .bind(limit),
            )
            .await?
        }
    };
    rows.into_iter()
        .map(|r| {
            Ok(Fetched {
                job: JobId(r.id),
                task: serde_json::from_slice(&r.job)?,
            })
        })
        .collect()
}

fn ack_sql(db_is_sqlite: bool) -> &'static str {
    if db_is_sqlite {
        "UPDATE Jobs SET status = 'Done', attempts = attempts + 1, \
         done_at = strftime('%s', 'now') WHERE id = $1 AND lock_by = $2"
    } else {
        "UPDATE apalis.jobs SET status = 'Done', attempts = attempts + 1, done_at = now() \
         WHERE id = $1 AND lock_by = $2"
    }
}

/// Marks `job`, taken by `worker`, done inside `tx` (with the transition that handled it).
/// Nothing happens if the job was handed to another worker meanwhile.
pub async fn ack(tx: &mut Tx, job: &JobId, worker: &str) -> Result<()> {
    let sql = ack_sql(matches!(tx, Tx::Sqlite(_)));
    tx.execute(Q::new(sql).bind(job).bind(worker)).await?;
    Ok(())
}

/// Marks `job` done on its own (its task turned out to have nothing to do).
pub async fn ack_now(db: &Db, job: &JobId, worker: &str) -> Result<()> {
    let sql = ack_sql(matches!(db, Db::Sqlite(_)));
    db.execute(Q::new(sql).bind(job).bind(worker)).await?;
    Ok(())
}

/// Hands `job` back to the queue after handling it failed (the database failed, say): it is
/// fetched again after `after`, while apalis' attempts for it last.
pub async fn release(
    db: &Db,
    job: &JobId,
    worker: &str,
    after: Duration,
    error: &str,
) -> Result<()> {
    let due = (crate::ids::due_at(crate::ids::now_ms(), after) as u64).div_ceil(1000) as i64;
    let result = serde_json::json!({ "Err": error }).to_string();
    let sql = match db {
        Db::Sqlite(_) => {
            "UPDATE Jobs SET status = 'Failed', attempts = attempts + 1, lock_by = NULL, \
             lock_at = NULL, run_at = $1, last_result = $2 WHERE id = $3 AND lock_by = $4"
        }
        Db::Postgres(_) => {
            "UPDATE apalis.jobs SET status = 'Failed', attempts = attempts + 1, lock_by = NULL, \
             lock_at = NULL, run_at = to_timestamp($1), last_result = CAST($2 AS jsonb) \
             WHERE id = $3 AND lock_by = $4"
        }
    };
    db.execute(Q::new(sql).bind(due).bind(result).bind(job).bind(worker))
        .await?;
    Ok(())
}

/// Hands jobs `worker` fetched but never started back to the queue (the worker stops).
pub async fn abandon(db: &Db, jobs: &[JobId], worker: &str) -> Result<()> {
    let sql = match db {
        Db::Sqlite(_) => {
            "UPDATE Jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL \
             WHERE id = $1 AND lock_by = $2 AND status = 'Queued'"
        }
        Db::Postgres(_) => {
            "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL \
             WHERE id = $1 AND lock_by = $2 AND status = 'Queued'"
        }
    };
    for job in jobs {
        db.execute(Q::new(sql).bind(job).bind(worker)).await?;
    }
    Ok(())
}

/// Step tasks due now that no worker has taken yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// How many.
    pub due: i64,
    /// How long the oldest has been due, in seconds (0 when none is).
    pub oldest_secs: i64,
}

/// The queue's backlog: tasks due and not yet fetched (a growing one means workers lag).
pub async fn backlog(db: &Db) -> Result<Backlog> {
    // apalis' own tables, whose shape differs per backend (run_at in seconds on SQLite).
    let sql = match db {
        Db::Sqlite(_) => {
            "SELECT COUNT(*) AS due, \
                    COALESCE(CAST(strftime('%s', 'now') AS INTEGER) - MIN(run_at), 0) AS oldest \
             FROM Jobs WHERE job_type = $1 AND status = 'Pending' \
               AND run_at <= CAST(strftime('%s', 'now') AS INTEGER)"
        }
        Db::Postgres(_) => {
            "SELECT COUNT(*)::BIGINT AS due, \
                    COALESCE(EXTRACT(EPOCH FROM now() - MIN(run_at))::BIGINT, 0) AS oldest \
             FROM apalis.jobs WHERE job_type = $1 AND status = 'Pending' AND run_at <= now()"
        }
    };
    let (due, oldest): (i64, i64) = db.fetch_one(Q::new(sql).bind(QUEUE)).await?;
    Ok(Backlog {
        due,
        oldest_secs: oldest.max(0),
    })
}
