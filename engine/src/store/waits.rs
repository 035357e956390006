//! SQL for `sb_waits`: a run paused on an external event (correlation key + deadline).

use sqlx::FromRow;

use super::{Db, Q, Tx};
use crate::error::Result;
use crate::ids::{RunId, WaitId, now_ms};
use crate::status::WaitStatus;

/// A wait as stored.
#[derive(Clone, Debug, FromRow)]
pub struct WaitRow {
    pub id: String,
    pub run_id: String,
    pub seq: i64,
    pub kind: String,
    pub key: String,
    pub deadline: i64,
    #[sqlx(try_from = "String")]
    pub status: WaitStatus,
    pub event_id: Option<String>,
    pub created_at: i64,
    pub resolved_at: Option<i64>,
}

const COLUMNS: &str =
    "id, run_id, seq, kind, key, deadline, status, event_id, created_at, resolved_at";

/// How many waits are open.
pub async fn count_waiting(db: &Db) -> Result<i64> {
    let (n,): (i64,) = db
        .fetch_one(Q::new(
            "SELECT count(*) FROM sb_waits WHERE status = 'waiting'",
        ))
        .await?;
    Ok(n)
}

/// Up to `limit` open waits, in no particular order.
pub async fn some_waiting(db: &Db, limit: i64) -> Result<Vec<WaitRow>> {
    db.fetch_all(
        Q::new(format!(
            "SELECT {COLUMNS} FROM sb_waits WHERE status = 'waiting' LIMIT $1"
        ))
        .bind(limit),
    )
    .await
}

/// Inserts a wait.
pub async fn insert(tx: &mut Tx, w: &WaitRow) -> Result<()> {
    tx.execute(
        Q::new(format!(
            "INSERT INTO sb_waits ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
        ))
        .bind(&w.id)
        .bind(&w.run_id)
        .bind(w.seq)
        .bind(&w.kind)
        .bind(&w.key)
        .bind(w.deadline)
        .bind(w.status.as_str())
        .bind(w.event_id.clone())
        .bind(w.created_at)
        .bind(w.resolved_at),
    )
    .await?;
    Ok(())
}

/// Reads one wait.
pub async fn get(tx: &mut Tx, id: &WaitId) -> Result<Option<WaitRow>> {
    tx.fetch_optional(Q::new(format!("SELECT {COLUMNS} FROM sb_waits WHERE id = $1")).bind(id))
        .await
}

/// The open wait on this key, if any.
pub async fn find_waiting(tx: &mut Tx, kind: &str, key: &str) -> Result<Option<WaitRow>> {
    tx.fetch_optional(
        Q::new(format!(
            "SELECT {COLUMNS} FROM sb_waits WHERE kind = $1 AND key = $2 AND status = 'waiting' \
             ORDER BY created_at LIMIT 1"
        ))
        .bind(kind)
        .bind(key),
    )
    .await
}

/// Ends an open wait (`resolved`, `timed_out`); false if something else ended it first.
pub async fn close(
    tx: &mut Tx,
    id: &WaitId,
    status: WaitStatus,
    event_id: Option<String>,
) -> Result<bool> {
    let n = tx
        .execute(
            Q::new(
                "UPDATE sb_waits SET status = $1, event_id = $2, resolved_at = $3 \
                 WHERE id = $4 AND status = 'waiting'",
            )
            .bind(status.as_str())
            .bind(event_id)
            .bind(now_ms())
            .bind(id),
        )
        .await?;
    Ok(n == 1)
}

/// Cancels the open waits of a run.
pub async fn cancel_for_run(tx: &mut Tx, run_id: &RunId) -> Result<u64> {
    tx.execute(
        Q::new(
            "UPDATE sb_waits SET status = 'cancelled', resolved_at = $1 \
             WHERE run_id = $2 AND status = 'waiting'",
        )
        .bind(now_ms())
        .bind(run_id),
    )
    .await
}

/// Deletes the rows of every run of `subject_id` (erasure; the runs go last).
pub async fn delete_of_subject(tx: &mut Tx, subject_id: &str) -> Result<u64> {
    tx.execute(
        Q::new(
            "DELETE FROM sb_waits WHERE run_id IN (SELECT id FROM sb_runs WHERE subject_id = $1)",
        )
        .bind(subject_id),
    )
    .await
}
