//! SQL for `backtests`: each policy backtest, its progress and its report.

use sqlx::FromRow;
use switchboard_engine::ids::now_ms;
use switchboard_engine::store::{Db, Q, Tx};

use super::Result;

/// A stored backtest.
#[derive(Clone, Debug, FromRow)]
pub struct BacktestRow {
    pub id: String,
    pub business_id: String,
    pub candidate_hash: String,
    /// JSON: what was asked.
    pub request: String,
    /// `running`, `done` or `failed`.
    pub status: String,
    pub total: i64,
    pub done: i64,
    /// JSON, once done.
    pub report: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str = "id, business_id, candidate_hash, request, status, total, done, report, \
     error, created_at, updated_at, finished_at";

/// Records a new backtest as `running` (how many decisions it replays is not known yet).
pub async fn insert(
    tx: &mut Tx,
    id: &str,
    business_id: &str,
    candidate_hash: &str,
    request: &str,
) -> Result<()> {
    let now = now_ms();
    tx.execute(
        Q::new(
            "INSERT INTO backtests (id, business_id, candidate_hash, request, status, total, \
             done, created_at, updated_at) VALUES ($1, $2, $3, $4, 'running', 0, 0, $5, $5)",
        )
        .bind(id)
        .bind(business_id)
        .bind(candidate_hash)
        .bind(request)
        .bind(now),
    )
    .await?;
    Ok(())
}

/// Records how many of its `total` decisions a running backtest has replayed.
pub async fn progress(db: &Db, id: &str, done: i64, total: i64) -> Result<()> {
    db.execute(
        Q::new(
            "UPDATE backtests SET done = $1, total = $2, updated_at = $3 \
             WHERE id = $4 AND status = 'running'",
        )
        .bind(done)
        .bind(total)
        .bind(now_ms())
        .bind(id),
    )
    .await?;
    Ok(())
}

/// Records that a running backtest is alive.
pub async fn beat(db: &Db, id: &str) -> Result<()> {
    db.execute(
        Q::new("UPDATE backtests SET updated_at = $1 WHERE id = $2 AND status = 'running'")
            .bind(now_ms())
            .bind(id),
    )
    .await?;
    Ok(())
}

/// Records how a running backtest ended: its report, or why it failed.
pub async fn finish(
    db: &Db,
    id: &str,
    outcome: std::result::Result<(i64, &str), &str>,
) -> Result<()> {
    let now = now_ms();
    let (status, done, report, error) = match outcome {
        Ok((done, report)) => ("done", Some(done), Some(report), None),
        Err(error) => ("failed", None, None, Some(error)),
    };
    db.execute(
        Q::new(
            "UPDATE backtests SET status = $1, done = COALESCE($2, done), report = $3, \
             error = $4, updated_at = $5, finished_at = $5 WHERE id = $6 AND status = 'running'",
        )
        .bind(status)
        .bind(done)
        .bind(report)
        .bind(error)
        .bind(now)
        .bind(id),
    )
    .await?;
    Ok(())
}

/// One backtest.
pub async fn get(db: &Db, id: &str) -> Result<Option<BacktestRow>> {
    db.fetch_optional(Q::new(format!("SELECT {COLUMNS} FROM backtests WHERE id = $1")).bind(id))
        .await
}

/// The business' backtests still running whose heartbeat moved since `since` (unix ms).
pub async fn running(tx: &mut Tx, business_id: &str, since: i64) -> Result<Vec<BacktestRow>> {
    tx.fetch_all(
        Q::new(format!(
            "SELECT {COLUMNS} FROM backtests WHERE business_id = $1 AND status = 'running' \
             AND updated_at >= $2 ORDER BY created_at"
        ))
        .bind(business_id)
        .bind(since),
    )
    .await
}

/// Deletes the backtests whose report samples a decision about lead `lead_id` (erasure: the
/// samples hold what the decisions said about the lead).
pub async fn delete_sampling_lead(tx: &mut Tx, lead_id: &str) -> Result<u64> {
    tx.execute(
        Q::new("DELETE FROM backtests WHERE report LIKE $1")
            .bind(format!("%\"lead_id\":\"{lead_id}\"%")),
    )
    .await
}

/// Deletes the backtests started before `cutoff` (unix ms); how many went.
pub async fn delete_before(db: &Db, cutoff: i64) -> Result<u64> {
    db.execute(Q::new("DELETE FROM backtests WHERE created_at < $1").bind(cutoff))
        .await
}
