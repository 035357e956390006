//! `sb_dead_letters`: provider webhooks whose signature was good but whose processing failed
//! (malformed, or our fault), kept once per body for an operator to inspect and replay.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::FromRow;
use switchboard_engine::ids::now_ms;
use switchboard_engine::store::{Db, Q};

type Result<T> = std::result::Result<T, switchboard_engine::EngineError>;

/// A kept webhook.
#[derive(Clone, Debug, FromRow, Serialize)]
pub struct DeadLetter {
    /// `dl_…`, from the body's hash: the same body received again is the same dead letter.
    pub id: String,
    /// The provider that sent it.
    pub provider: String,
    /// The raw body (empty in listings).
    pub body: String,
    /// The body's size.
    pub bytes: i64,
    /// Why processing failed, the last time.
    pub error: String,
    /// How often processing failed (received again, replayed).
    pub failures: i64,
    /// Unix ms, the first time.
    pub received_at: i64,
    /// Unix ms.
    pub last_failed_at: i64,
    /// Unix ms, once a replay succeeded.
    pub replayed_at: Option<i64>,
}

/// Every column but the body (listings leave it out: it may be megabytes).
const SUMMARY: &str = "id, provider, CAST(LENGTH(body) AS BIGINT) AS bytes, error, failures, \
     received_at, last_failed_at, replayed_at";

/// Keeps `body` from `provider`, which failed with `error` (counted again if kept already);
/// returns its id.
pub async fn record(db: &Db, provider: &str, body: &[u8], error: &str) -> Result<String> {
    let id = format!("dl_{}", &hex::encode(Sha256::digest(body))[..24]);
    let now = now_ms();
    db.execute(
        Q::new(
            "INSERT INTO sb_dead_letters (id, provider, body, error, failures, received_at, \
             last_failed_at) VALUES ($1, $2, $3, $4, 1, $5, $5) \
             ON CONFLICT (id) DO UPDATE SET error = excluded.error, \
             failures = sb_dead_letters.failures + 1, last_failed_at = excluded.last_failed_at, \
             replayed_at = NULL",
        )
        .bind(id.as_str())
        .bind(provider)
        .bind(String::from_utf8_lossy(body).into_owned())
        .bind(error)
        .bind(now),
    )
    .await?;
    Ok(id)
}

/// Dead letters without their bodies, newest first: those not replayed yet, or all.
pub async fn list(db: &Db, include_replayed: bool, limit: i64) -> Result<Vec<DeadLetter>> {
    let filter = if include_replayed {
        ""
    } else {
        "WHERE replayed_at IS NULL"
    };
    db.fetch_all(
        Q::new(format!(
            "SELECT {SUMMARY}, '' AS body FROM sb_dead_letters {filter} \
             ORDER BY received_at DESC, id LIMIT $1"
        ))
        .bind(limit),
    )
    .await
}

/// The dead letter `id`.
pub async fn find(db: &Db, id: &str) -> Result<Option<DeadLetter>> {
    db.fetch_optional(
        Q::new(format!(
            "SELECT {SUMMARY}, body FROM sb_dead_letters WHERE id = $1"
        ))
        .bind(id),
    )
    .await
}

/// Records that replaying `id` worked.
pub async fn replayed(db: &Db, id: &str) -> Result<()> {
    db.execute(
        Q::new("UPDATE sb_dead_letters SET replayed_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id),
    )
    .await?;
    Ok(())
}

/// Records that replaying `id` failed again with `error`.
pub async fn failed_again(db: &Db, id: &str, error: &str) -> Result<()> {
    db.execute(
        Q::new(
            "UPDATE sb_dead_letters SET error = $1, failures = failures + 1, last_failed_at = $2 \
             WHERE id = $3",
        )
        .bind(error)
        .bind(now_ms())
        .bind(id),
    )
    .await?;
    Ok(())
}
