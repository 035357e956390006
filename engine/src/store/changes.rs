//! SQL for `sb_changes`: one row per change of a run's state, written by the database itself in
//! the statement that makes it (a trigger on `sb_runs`, see the migrations); the feed of live
//! events reads it in id order.

use serde::Serialize;
use sqlx::FromRow;

use super::{Db, Q, Tx};
use crate::error::Result;

/// A run's state after a change.
#[derive(Clone, Debug, PartialEq, Eq, FromRow, Serialize)]
pub struct Change {
    /// Position in the feed (the SSE event id).
    pub id: i64,
    pub run_id: String,
    pub business_id: String,
    pub status: String,
    pub current_step: Option<String>,
    pub outcome: Option<String>,
    /// When (unix ms).
    pub at: i64,
}

const COLUMNS: &str = "id, run_id, business_id, status, current_step, outcome, at";

/// Changes after `id`, oldest first, at most `limit`.
pub async fn after(db: &Db, id: i64, limit: i64) -> Result<Vec<Change>> {
    db.fetch_all(
        Q::new(format!(
            "SELECT {COLUMNS} FROM sb_changes WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(id)
        .bind(limit),
    )
    .await
}

#[derive(FromRow)]
struct Bounds {
    first: Option<i64>,
    last: Option<i64>,
}

/// The oldest and newest change ids kept (`None` when there are none).
pub async fn bounds(db: &Db) -> Result<(Option<i64>, Option<i64>)> {
    let b: Bounds = db
        .fetch_one(Q::new(
            "SELECT min(id) AS first, max(id) AS last FROM sb_changes",
        ))
        .await?;
    Ok((b.first, b.last))
}

/// Deletes changes older than `before` (unix ms); returns how many.
pub async fn prune(db: &Db, before: i64) -> Result<u64> {
    db.execute(Q::new("DELETE FROM sb_changes WHERE at < $1").bind(before))
        .await
}

/// Deletes the rows of every run of `subject_id` (erasure; the runs go last).
pub async fn delete_of_subject(tx: &mut Tx, subject_id: &str) -> Result<u64> {
    tx.execute(
        Q::new(
            "DELETE FROM sb_changes WHERE run_id IN (SELECT id FROM sb_runs WHERE subject_id = $1)",
        )
        .bind(subject_id),
    )
    .await
}
