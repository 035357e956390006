//! SQL for `sb_steps`: one row per step attempt, with its input, output, error and timings.

use sqlx::FromRow;

use super::{Db, Q, Tx};
use crate::error::Result;
use crate::ids::{RunId, StepId, now_ms};

/// A step attempt as stored.
#[derive(Clone, Debug, FromRow)]
pub struct StepRow {
    pub id: String,
    pub run_id: String,
    pub name: String,
    pub attempt: i64,
    pub status: String,
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
        .bind(&s.status)
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
    status: &str,
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
            .bind(status)
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

/// Which attempts of one business' runs [`of_business`] reads: those of `steps` that started in
/// `[from, to)` (unix ms) and returned a transition (their output is recorded).
#[derive(Clone, Copy, Debug)]
pub struct OfBusiness<'a> {
    pub business_id: &'a str,
    /// Step names.
    pub steps: &'a [&'a str],
    pub from: i64,
    pub to: i64,
}

impl OfBusiness<'_> {
    /// The `FROM … WHERE …` shared by the count and the pages, and its arguments.
    fn filter(&self) -> (String, Vec<super::Arg>) {
        let names = (0..self.steps.len())
            .map(|i| format!("${}", i + 4))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "FROM sb_steps s JOIN sb_runs r ON r.id = s.run_id \
             WHERE r.business_id = $1 AND s.started_at >= $2 AND s.started_at < $3 \
             AND s.output IS NOT NULL AND s.name IN ({names})"
        );
        let mut args = vec![self.business_id.into(), self.from.into(), self.to.into()];
        args.extend(self.steps.iter().map(|s| super::Arg::from(*s)));
        (sql, args)
    }
}

/// How many attempts `which` names.
pub async fn count_of_business(db: &Db, which: &OfBusiness<'_>) -> Result<i64> {
    let (filter, args) = which.filter();
    let q = args
        .into_iter()
        .fold(Q::new(format!("SELECT count(*) {filter}")), Q::bind);
    let (n,): (i64,) = db.fetch_one(q).await?;
    Ok(n)
}

/// Up to `limit` of the attempts `which` names, newest first (by start, then id), after the
/// attempt `after` (`(started_at, id)` of the last one of the previous page).
pub async fn of_business(
    db: &Db,
    which: &OfBusiness<'_>,
    after: Option<(i64, &str)>,
    limit: i64,
) -> Result<Vec<StepRow>> {
    let (filter, args) = which.filter();
    let columns = COLUMNS
        .split(", ")
        .map(|c| format!("s.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let n = args.len();
    let (cursor, limit_at) = match after {
        Some(_) => (
            format!(
                " AND (s.started_at < ${a} OR (s.started_at = ${a} AND s.id < ${b}))",
                a = n + 1,
                b = n + 2
            ),
            n + 3,
        ),
        None => (String::new(), n + 1),
    };
    let mut q = args.into_iter().fold(
        Q::new(format!(
            "SELECT {columns} {filter}{cursor} ORDER BY s.started_at DESC, s.id DESC \
             LIMIT ${limit_at}"
        )),
        Q::bind,
    );
    if let Some((started_at, id)) = after {
        q = q.bind(started_at).bind(id);
    }
    db.fetch_all(q.bind(limit)).await
}
