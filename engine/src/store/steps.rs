//! SQL for `sb_steps`: one row per step attempt, with its input, output, error and timings.

use sqlx::FromRow;

use super::{Db, Q, Tx};
use crate::error::Result;
use crate::ids::{RunId, StepId, now_ms};
use crate::status::StepStatus;

/// A step attempt as stored.
#[derive(Clone, Debug, FromRow)]
pub struct StepRow {
    pub id: String,
    pub run_id: String,
    pub name: String,
    pub attempt: i64,
    #[sqlx(try_from = "String")]
    pub status: StepStatus,
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub scheduled_at: i64,
    pub run_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The apalis worker executing (or last executing) the attempt.
    pub claimed_by: Option<String>,
    /// What the attempt logged (a JSON array of lines), e.g. a script's `log()` calls.
    pub log: Option<String>,
    /// How many times the attempt was put off (see [`defer`]); `run_at` says until when.
    pub deferrals: i64,
    /// Why it was last put off.
    pub deferred_because: Option<String>,
}

const COLUMNS: &str = "id, run_id, name, attempt, status, input, output, error, scheduled_at, \
    run_at, started_at, finished_at, claimed_by, log, deferrals, deferred_because";

/// Inserts a scheduled attempt (`queued` or `waiting`).
pub async fn insert(tx: &mut Tx, s: &StepRow) -> Result<()> {
    tx.execute(
        Q::new(format!(
            "INSERT INTO sb_steps ({COLUMNS}) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)"
        ))
        .bind(&s.id)
        .bind(&s.run_id)
        .bind(&s.name)
        .bind(s.attempt)
        .bind(s.status.as_str())
        .bind(&s.input)
        .bind(s.output.clone())
        .bind(s.error.clone())
        .bind(s.scheduled_at)
        .bind(s.run_at)
        .bind(s.started_at)
        .bind(s.finished_at)
        .bind(s.claimed_by.clone())
        .bind(s.log.clone())
        .bind(s.deferrals)
        .bind(s.deferred_because.clone()),
    )
    .await?;
    Ok(())
}

/// Reads one attempt.
pub async fn get(tx: &mut Tx, id: &StepId) -> Result<Option<StepRow>> {
    tx.fetch_optional(Q::new(format!("SELECT {COLUMNS} FROM sb_steps WHERE id = $1")).bind(id))
        .await
}

/// Marks a scheduled attempt as running on `worker`.
pub async fn start(tx: &mut Tx, id: &StepId, worker: &str) -> Result<bool> {
    let n = tx
        .execute(
            Q::new(
                "UPDATE sb_steps SET status = 'running', started_at = $1, claimed_by = $2 \
                 WHERE id = $3 AND status IN ('queued', 'waiting')",
            )
            .bind(now_ms())
            .bind(worker)
            .bind(id),
        )
        .await?;
    Ok(n == 1)
}

/// Makes a scheduled attempt due now (an operator resumed its run); false if it is not scheduled.
pub async fn due_now(tx: &mut Tx, id: &StepId) -> Result<bool> {
    let n = tx
        .execute(
            Q::new(
                "UPDATE sb_steps SET run_at = $1 WHERE id = $2 AND status IN ('queued', 'waiting')",
            )
            .bind(now_ms())
            .bind(id),
        )
        .await?;
    Ok(n == 1)
}

/// Records how a running attempt ended; false if it is no longer running (cancelled, superseded).
pub async fn finish(
    tx: &mut Tx,
    id: &StepId,
    status: StepStatus,
    output: Option<String>,
    error: Option<String>,
    log: Option<String>,
) -> Result<bool> {
    let n = tx
        .execute(
            Q::new(
                "UPDATE sb_steps SET status = $1, output = $2, error = $3, log = $6, finished_at = $4 \
                 WHERE id = $5 AND status = 'running'",
            )
            .bind(status.as_str())
            .bind(output)
            .bind(error)
            .bind(now_ms())
            .bind(id)
            .bind(log),
        )
        .await?;
    Ok(n == 1)
}

/// Puts a running attempt off until `run_at`: it waits again (the same row), counting the
/// deferral and saying why; false if it is no longer running.
pub async fn defer(
    tx: &mut Tx,
    id: &StepId,
    run_at: i64,
    why: &str,
    log: Option<String>,
) -> Result<bool> {
    let n = tx
        .execute(
            Q::new(
                "UPDATE sb_steps SET status = 'waiting', deferrals = deferrals + 1, \
                 deferred_because = $1, log = $2, run_at = $3, started_at = NULL, \
                 claimed_by = NULL \
                 WHERE id = $4 AND status = 'running'",
            )
            .bind(why)
            .bind(log)
            .bind(run_at)
            .bind(id),
        )
        .await?;
    Ok(n == 1)
}

/// Hands a waiting attempt its input (the carried data plus how the wait ended) and queues it.
pub async fn resume(tx: &mut Tx, id: &StepId, input: &str) -> Result<bool> {
    let n = tx
        .execute(
            Q::new(
                "UPDATE sb_steps SET status = 'queued', input = $1, run_at = $2 \
                 WHERE id = $3 AND status = 'waiting'",
            )
            .bind(input)
            .bind(now_ms())
            .bind(id),
        )
        .await?;
    Ok(n == 1)
}

/// Cancels every attempt of a run that has not finished.
pub async fn cancel_open(tx: &mut Tx, run_id: &RunId) -> Result<u64> {
    tx.execute(
        Q::new(
            "UPDATE sb_steps SET status = 'cancelled', finished_at = $1 \
             WHERE run_id = $2 AND status IN ('queued', 'waiting', 'running')",
        )
        .bind(now_ms())
        .bind(run_id),
    )
    .await
}

/// Every attempt of a run, in the order they were scheduled.
pub async fn list_for_run(db: &Db, run_id: &RunId) -> Result<Vec<StepRow>> {
    db.fetch_all(
        Q::new(format!(
            "SELECT {COLUMNS} FROM sb_steps WHERE run_id = $1 ORDER BY scheduled_at, id"
        ))
        .bind(run_id),
    )
    .await
}

/// How many attempts succeeded, with the first one's start and the last one's end (unix ms),
/// across every run: a benchmark's throughput.
pub async fn succeeded_span(db: &Db) -> Result<(i64, Option<i64>, Option<i64>)> {
    db.fetch_one(Q::new(
        "SELECT count(*), min(started_at), max(finished_at) FROM sb_steps \
         WHERE status = 'succeeded'",
    ))
    .await
}

/// When an attempt of step `name` of run `run_id` started (unix ms), once one has.
pub async fn started_at(db: &Db, run_id: &RunId, name: &str) -> Result<Option<i64>> {
    let row: Option<(Option<i64>,)> = db
        .fetch_optional(
            Q::new(
                "SELECT started_at FROM sb_steps WHERE run_id = $1 AND name = $2 \
                 AND started_at IS NOT NULL",
            )
            .bind(run_id)
            .bind(name),
        )
        .await?;
    Ok(row.and_then(|(at,)| at))
}

/// Deletes the rows of every run of `subject_id` (erasure; the runs go last).
pub async fn delete_of_subject(tx: &mut Tx, subject_id: &str) -> Result<u64> {
    tx.execute(
        Q::new(
            "DELETE FROM sb_steps WHERE run_id IN (SELECT id FROM sb_runs WHERE subject_id = $1)",
        )
        .bind(subject_id),
    )
    .await
}

/// Which attempts of one business' runs [`of_business`] names: those of `steps` that started in
/// `[from, to)` (unix ms) and returned a transition (their output is recorded).
#[derive(Clone, Copy, Debug)]
pub struct OfBusiness<'a> {
    pub business_id: &'a str,
    /// Step names.
    pub steps: &'a [&'a str],
    pub from: i64,
    pub to: i64,
}

/// Runs (or attempts) read per `IN (…)` list.
const CHUNK: usize = 500;

/// The newest `keep` of the attempts `which` names, newest first (by start, then id):
/// `(started_at, id)`.
///
/// Read in two steps that each use an index whatever the planner believes: the business' runs
/// updated since `from` (a run that decided then was updated since), then their attempts, runs
/// a few hundred at a time. One join let PostgreSQL, with tables not yet analysed, pair every
/// run with every attempt: two seconds for 10,000 attempts.
pub async fn of_business(
    db: &Db,
    which: &OfBusiness<'_>,
    keep: usize,
) -> Result<Vec<(i64, String)>> {
    let runs: Vec<(String,)> = db
        .fetch_all(
            Q::new("SELECT id FROM sb_runs WHERE business_id = $1 AND updated_at >= $2")
                .bind(which.business_id)
                .bind(which.from),
        )
        .await?;
    let mut found = Vec::new();
    for chunk in runs.chunks(CHUNK) {
        let names = Q::placeholders(3, which.steps.len());
        let ids = Q::placeholders(3 + which.steps.len(), chunk.len());
        let q = Q::new(format!(
            "SELECT started_at, id FROM sb_steps WHERE started_at >= $1 AND started_at < $2 \
             AND output IS NOT NULL AND name IN ({names}) AND run_id IN ({ids})"
        ))
        .bind(which.from)
        .bind(which.to);
        let q = which.steps.iter().fold(q, |q, s| q.bind(*s));
        let q = chunk.iter().fold(q, |q, (id,)| q.bind(id));
        found.extend(db.fetch_all::<(i64, String)>(q).await?);
        found.sort_by(|a, b| b.cmp(a));
        found.truncate(keep);
    }
    Ok(found)
}

/// The attempts with these ids, in the order given (those that no longer exist are left out).
pub async fn by_ids(db: &Db, ids: &[&str]) -> Result<Vec<StepRow>> {
    let mut rows: std::collections::HashMap<String, StepRow> = Default::default();
    for chunk in ids.chunks(CHUNK) {
        let q = Q::new(format!(
            "SELECT {COLUMNS} FROM sb_steps WHERE id IN ({})",
            Q::placeholders(1, chunk.len())
        ));
        let q = chunk.iter().fold(q, |q, id| q.bind(*id));
        rows.extend(
            db.fetch_all::<StepRow>(q)
                .await?
                .into_iter()
                .map(|r| (r.id.clone(), r)),
        );
    }
    Ok(ids.iter().filter_map(|id| rows.remove(*id)).collect())
}
