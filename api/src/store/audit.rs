//! `sb_audit_log`: operator and script changes, recorded right after each succeeds.

use serde_json::Value;
use sqlx::FromRow;
use switchboard_engine::ids::now_ms;
use switchboard_engine::store::{Db, Q};

type Result<T> = std::result::Result<T, switchboard_engine::EngineError>;

/// One change to record.
pub struct Entry<'a> {
    /// The key that made it.
    pub actor: &'a str,
    /// The business it is about, if one.
    pub business_id: Option<&'a str>,
    /// What was done, e.g. `script.activated`.
    pub action: &'a str,
    /// What it was done to (an id).
    pub target: &'a str,
    /// More, as JSON (never phone numbers or transcripts).
    pub detail: Value,
}

/// Records `entry`.
pub async fn record(db: &Db, entry: Entry<'_>) -> Result<()> {
    db.execute(
        Q::new(
            "INSERT INTO sb_audit_log (at, actor, business_id, action, target, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(now_ms())
        .bind(entry.actor)
        .bind(entry.business_id)
        .bind(entry.action)
        .bind(entry.target)
        .bind(entry.detail.to_string()),
    )
    .await?;
    Ok(())
}

/// A recorded change.
#[derive(Debug, FromRow)]
pub struct Recorded {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub business_id: Option<String>,
    pub action: String,
    pub target: String,
    pub detail: String,
}

/// Changes about `business` (`None`: all), newest first, before id `before`, at most `limit`.
pub async fn list(
    db: &Db,
    business: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Recorded>> {
    db.fetch_all(
        Q::new(
            "SELECT id, at, actor, business_id, action, target, detail FROM sb_audit_log \
             WHERE ($1 IS NULL OR business_id = $1) AND ($2 IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(business)
        .bind(before)
        .bind(limit),
    )
    .await
}
