//! SQL for `sb_runs`: one row per workflow run, compare-and-set on `seq` for every transition.

use sqlx::FromRow;

use super::{Db, Q, Tx};
use crate::error::Result;
use crate::ids::{RunId, now_ms};
use crate::status::RunStatus;

/// A run as stored.
#[derive(Clone, Debug, FromRow)]
pub struct RunRow {
    pub id: String,
    pub workflow: String,
    pub business_id: String,
    pub subject_id: String,
    #[sqlx(try_from = "String")]
    pub status: RunStatus,
    pub current_step: Option<String>,
    pub current_row: Option<String>,
    pub seq: i64,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub wait_kind: Option<String>,
    pub wait_key: Option<String>,
    pub wait_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// How many runs of its business were ready to run when it started (capped at
    /// [`crate::store::tasks::RANKS`]): its tasks go before those of runs ranked lower.
    pub queue_rank: i64,
}

const COLUMNS: &str = "id, workflow, business_id, subject_id, status, current_step, current_row, seq, \
    outcome, error, wait_kind, wait_key, wait_until, created_at, updated_at, queue_rank";

/// Inserts a new run (its change is recorded by the database, see [`super::changes`]).
pub async fn insert(tx: &mut Tx, r: &RunRow) -> Result<()> {
    tx.execute(bind_row(
        Q::new(format!(
            "INSERT INTO sb_runs ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)"
        )),
        r,
    ))
    .await?;
    Ok(())
}

/// Inserts many new runs in one statement (bulk seeding). At most [`INSERT_MANY_MAX`] rows.
pub async fn insert_many(tx: &mut Tx, rows: &[RunRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    assert!(
        rows.len() <= INSERT_MANY_MAX,
        "insert_many takes at most {INSERT_MANY_MAX} rows"
    );
    let values: Vec<String> = (0..rows.len())
        .map(|i| {
            let p: Vec<String> = (1..=16).map(|c| format!("${}", i * 16 + c)).collect();
            format!("({})", p.join(","))
        })
        .collect();
    let mut q = Q::bulk(format!(
        "INSERT INTO sb_runs ({COLUMNS}) VALUES {}",
        values.join(",")
    ));
    for r in rows {
        q = bind_row(q, r);
    }
    tx.execute(q).await?;
    Ok(())
}

/// Binds a run's columns in [`COLUMNS`] order.
fn bind_row(q: Q, r: &RunRow) -> Q {
    q.bind(&r.id)
        .bind(&r.workflow)
        .bind(&r.business_id)
        .bind(&r.subject_id)
        .bind(r.status.as_str())
        .bind(r.current_step.clone())
        .bind(r.current_row.clone())
        .bind(r.seq)
        .bind(r.outcome.clone())
        .bind(r.error.clone())
        .bind(r.wait_kind.clone())
        .bind(r.wait_key.clone())
        .bind(r.wait_until)
        .bind(r.created_at)
        .bind(r.updated_at)
        .bind(r.queue_rank)
}

/// The most rows [`insert_many`] takes (16 parameters each stay under SQLite's 32,766).
pub const INSERT_MANY_MAX: usize = 2_000;

fn by_id(id: &RunId) -> Q {
    Q::new(format!("SELECT {COLUMNS} FROM sb_runs WHERE id = $1")).bind(id)
}

/// How many runs of `business_id` are ready to run (queued or running), counted up to `cap`.
pub async fn ready_in_business(tx: &mut Tx, business_id: &str, cap: i64) -> Result<i64> {
    let (n,): (i64,) = tx
        .fetch_one(
            Q::new(
                "SELECT COUNT(*) FROM (SELECT 1 FROM sb_runs WHERE business_id = $1 \
                 AND status IN ('queued', 'running') LIMIT $2) ready",
            )
            .bind(business_id)
            .bind(cap),
        )
        .await?;
    Ok(n)
}

/// Reads a run inside a transaction.
pub async fn get(tx: &mut Tx, id: &RunId) -> Result<Option<RunRow>> {
    tx.fetch_optional(by_id(id)).await
}

/// Reads a run.
pub async fn find(db: &Db, id: &RunId) -> Result<Option<RunRow>> {
    db.fetch_optional(by_id(id)).await
}

/// Marks the run `running` if it still is at `seq` and not finished. False: the task is stale.
pub async fn claim(tx: &mut Tx, id: &RunId, seq: i64) -> Result<bool> {
    let n = tx
        .execute(
            Q::new(
                "UPDATE sb_runs SET status = 'running', wait_kind = NULL, wait_key = NULL, \
                 wait_until = NULL, updated_at = $1 \
                 WHERE id = $2 AND seq = $3 AND status IN ('queued', 'waiting', 'running')",
            )
            .bind(now_ms())
            .bind(id)
            .bind(seq),
        )
        .await?;
    Ok(n == 1)
}

/// The state a transition moves a run to.
#[derive(Clone, Debug, Default)]
pub struct Advance {
    pub status: RunStatus,
    pub current_step: Option<String>,
    pub current_row: Option<String>,
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub wait_kind: Option<String>,
    pub wait_key: Option<String>,
    pub wait_until: Option<i64>,
}

/// Moves the run from `seq` to `seq + 1` if nobody else did first (cancel, a duplicate task).
pub async fn advance(tx: &mut Tx, id: &RunId, seq: i64, a: &Advance) -> Result<bool> {
    let n = tx
        .execute(
            Q::new(
                "UPDATE sb_runs SET status = $1, current_step = $2, current_row = $3, outcome = $4, \
                 error = $5, wait_kind = $6, wait_key = $7, wait_until = $8, seq = seq + 1, \
                 updated_at = $9 \
                 WHERE id = $10 AND seq = $11 AND status NOT IN ('succeeded', 'failed', 'cancelled')",
            )
            .bind(a.status.as_str())
            .bind(a.current_step.clone())
            .bind(a.current_row.clone())
            .bind(a.outcome.clone())
            .bind(a.error.clone())
            .bind(a.wait_kind.clone())
            .bind(a.wait_key.clone())
            .bind(a.wait_until)
            .bind(now_ms())
            .bind(id)
            .bind(seq),
        )
        .await?;
    Ok(n == 1)
}

/// Moves a failed run from `seq` on with `a` (an operator's retry); false if it is no longer
/// failed at `seq`.
pub async fn reopen(tx: &mut Tx, id: &RunId, seq: i64, a: &Advance) -> Result<bool> {
    let n = tx
        .execute(
            Q::new(
                "UPDATE sb_runs SET status = $1, current_step = $2, current_row = $3, outcome = NULL, \
                 error = NULL, wait_kind = NULL, wait_key = NULL, wait_until = NULL, \
                 seq = seq + 1, updated_at = $4 WHERE id = $5 AND seq = $6 AND status = 'failed'",
            )
            .bind(a.status.as_str())
            .bind(a.current_step.clone())
            .bind(a.current_row.clone())
            .bind(now_ms())
            .bind(id)
            .bind(seq),
        )
        .await?;
    Ok(n == 1)
}

/// Cancels a run that is not finished, with `outcome` (`cancelled`, or why it was ended);
/// returns whether it did.
pub async fn cancel(tx: &mut Tx, id: &RunId, outcome: &str) -> Result<bool> {
    let n = tx
        .execute(
            Q::new(
                "UPDATE sb_runs SET status = 'cancelled', outcome = $3, wait_kind = NULL, \
                 wait_key = NULL, wait_until = NULL, seq = seq + 1, updated_at = $1 \
                 WHERE id = $2 AND status NOT IN ('succeeded', 'failed', 'cancelled')",
            )
            .bind(now_ms())
            .bind(id)
            .bind(outcome),
        )
        .await?;
    Ok(n == 1)
}

/// Filters for [`list`].
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub business_id: Option<String>,
    pub status: Option<RunStatus>,
    pub subject_id: Option<String>,
    pub current_step: Option<String>,
    pub outcome: Option<String>,
    /// Only runs about one of these subjects (a search resolved to leads); empty: none.
    pub subject_ids: Option<Vec<String>>,
    /// Only runs with an id at or above this (created at or after a time: [`crate::ids::id_floor_at`]).
    pub since: Option<String>,
    /// Only runs with an id below this (keyset paging, newest first).
    pub before: Option<String>,
    pub limit: i64,
}

/// Lists runs newest first, by keyset on the time-ordered id.
pub async fn list(db: &Db, f: &RunFilter) -> Result<Vec<RunRow>> {
    let mut sql = format!("SELECT {COLUMNS} FROM sb_runs WHERE 1 = 1");
    let mut args = Vec::new();
    let status = f.status.map(|s| s.as_str().to_owned());
    for (col, val) in [
        ("business_id", &f.business_id),
        ("status", &status),
        ("subject_id", &f.subject_id),
        ("current_step", &f.current_step),
        ("outcome", &f.outcome),
    ] {
        if let Some(v) = val {
            args.push(v.clone());
            sql.push_str(&format!(" AND {col} = ${}", args.len()));
        }
    }
    if let Some(ids) = &f.subject_ids {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let first = args.len() + 1;
        args.extend(ids.iter().cloned());
        let marks: Vec<String> = (first..=args.len()).map(|i| format!("${i}")).collect();
        sql.push_str(&format!(" AND subject_id IN ({})", marks.join(", ")));
    }
    if let Some(since) = &f.since {
        args.push(since.clone());
        sql.push_str(&format!(" AND id >= ${}", args.len()));
    }
    if let Some(b) = &f.before {
        args.push(b.clone());
        sql.push_str(&format!(" AND id < ${}", args.len()));
    }
    sql.push_str(&format!(
        " ORDER BY id DESC LIMIT {}",
        f.limit.clamp(1, 500)
    ));
    let q = args.into_iter().fold(Q::new(sql), Q::bind);
    db.fetch_all(q).await
}

#[derive(FromRow)]
struct StatusCount {
    #[sqlx(try_from = "String")]
    status: RunStatus,
    n: i64,
}

/// How many runs are in each status (of one business, or all).
pub async fn count_by_status(db: &Db, business_id: Option<&str>) -> Result<Vec<(RunStatus, i64)>> {
    // Two statements, so each is answered from its own index.
    let q = match business_id {
        Some(b) => Q::new(
            "SELECT status, count(*) AS n FROM sb_runs WHERE business_id = $1 \
             GROUP BY status ORDER BY status",
        )
        .bind(b),
        None => Q::new("SELECT status, count(*) AS n FROM sb_runs GROUP BY status ORDER BY status"),
    };
    let rows: Vec<StatusCount> = db.fetch_all(q).await?;
    Ok(rows.into_iter().map(|r| (r.status, r.n)).collect())
}

#[derive(FromRow)]
struct GroupCount {
    business_id: String,
    label: Option<String>,
    n: i64,
}

/// Runs created in `[since, before)` (id bounds, see [`crate::ids::id_floor_at`]) counted per
/// business and per `status`, `outcome` or waiting kind (`column`).
pub async fn tally(
    db: &Db,
    column: Tally,
    since: &str,
    before: &str,
) -> Result<Vec<(String, Option<String>, i64)>> {
    let col = match column {
        Tally::Status => "status",
        Tally::Outcome => "outcome",
        Tally::WaitKind => "wait_kind",
    };
    let rows: Vec<GroupCount> = db
        .fetch_all(
            Q::new(format!(
                "SELECT business_id, {col} AS label, count(*) AS n FROM sb_runs \
                 WHERE id >= $1 AND id < $2 GROUP BY business_id, {col} ORDER BY business_id, {col}"
            ))
            .bind(since)
            .bind(before),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.business_id, r.label, r.n))
        .collect())
}

/// What [`tally`] groups by.
#[derive(Clone, Copy, Debug)]
pub enum Tally {
    Status,
    Outcome,
    WaitKind,
}

/// Statuses of every run of `subject_id`.
pub async fn statuses_of_subject(tx: &mut Tx, subject_id: &str) -> Result<Vec<RunStatus>> {
    let rows: Vec<(String,)> = tx
        .fetch_all(Q::new("SELECT status FROM sb_runs WHERE subject_id = $1").bind(subject_id))
        .await?;
    rows.into_iter()
        .map(|(s,)| {
            s.parse()
                .map_err(|e| sqlx::Error::Decode(Box::new(e)).into())
        })
        .collect()
}

/// Deletes every run of `subject_id` (erasure; their steps, waits, events and changes first).
pub async fn delete_of_subject(tx: &mut Tx, subject_id: &str) -> Result<u64> {
    tx.execute(Q::new("DELETE FROM sb_runs WHERE subject_id = $1").bind(subject_id))
        .await
}

/// Conditions and subqueries over `sb_runs` for the queries of the crates built on the engine,
/// so that its table, its columns and which statuses are finished are named only here. Each
/// takes the SQL expression it is about: a column of the caller's query or a `$n` parameter.
pub mod sql {
    /// The statuses of a finished run.
    const FINISHED: &str = "('succeeded', 'failed', 'cancelled')";

    /// True while run `run_id` has not finished.
    pub fn run_is_open(run_id: &str) -> String {
        format!(
            "EXISTS (SELECT 1 FROM sb_runs r WHERE r.id = {run_id} AND r.status NOT IN {FINISHED})"
        )
    }

    /// True while a run of `subject` has not finished.
    pub fn subject_has_open_run(subject: &str) -> String {
        format!(
            "EXISTS (SELECT 1 FROM sb_runs r WHERE r.subject_id = {subject} \
             AND r.status NOT IN {FINISHED})"
        )
    }

    /// True when a run of `subject` has not finished, or changed at or after `since` (unix ms).
    pub fn subject_has_run_active_since(subject: &str, since: &str) -> String {
        format!(
            "EXISTS (SELECT 1 FROM sb_runs r WHERE r.subject_id = {subject} \
             AND (r.updated_at >= {since} OR r.status NOT IN {FINISHED}))"
        )
    }

    /// True when a run of `subject` ended with `outcome` (a quoted literal or a parameter).
    pub fn subject_has_run_with_outcome(subject: &str, outcome: &str) -> String {
        format!(
            "EXISTS (SELECT 1 FROM sb_runs r WHERE r.subject_id = {subject} \
             AND r.outcome = {outcome})"
        )
    }

    /// The ids of the runs that have not finished of the subjects `subjects` selects.
    pub fn open_runs_of(subjects: &str) -> String {
        format!(
            "SELECT r.id FROM sb_runs r WHERE r.subject_id IN ({subjects}) \
             AND r.status NOT IN {FINISHED}"
        )
    }

    /// `(outcome, runs)` of the runs with an outcome of the subjects `subjects` selects.
    pub fn outcomes_of(subjects: &str) -> String {
        format!(
            "SELECT r.outcome, COUNT(*) FROM sb_runs r WHERE r.outcome IS NOT NULL \
             AND r.subject_id IN ({subjects}) GROUP BY r.outcome ORDER BY r.outcome"
        )
    }

    /// The ids of every run of `subject`.
    pub fn runs_of_subject(subject: &str) -> String {
        format!("SELECT id FROM sb_runs WHERE subject_id = {subject}")
    }
}
