//! SQL for `business_scripts` (every version of every business' script), the active version on
//! `businesses.script_version`, and `run_scripts` (the version each run is pinned to).

use sqlx::FromRow;
use switchboard_engine::ids::now_ms;
use switchboard_engine::store::{Db, Q, Tx, runs};

use super::Result;

/// A stored script version.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct ScriptVersion {
    pub business_id: String,
    /// 1, 2, … per business.
    pub version: i64,
    /// `sha256` of the source, hex.
    pub hash: String,
    pub source: String,
    pub created_at: i64,
    /// Whether it is the business' active version.
    pub active: bool,
}

/// Whether `s` is the active version of business `b`.
const ACTIVE: &str = "(b.script_version IS NOT NULL AND s.version = b.script_version) AS active";

/// Selects versions with their source and `active` flag; append a `WHERE`.
const SELECT_VERSIONS: &str = "SELECT s.business_id, s.version, s.hash, s.source, s.created_at";

fn active_q(business_id: &str) -> Q {
    Q::new(format!(
        "{SELECT_VERSIONS}, {ACTIVE} FROM business_scripts s JOIN businesses b ON b.id = s.business_id \
         WHERE b.id = $1 AND s.version = b.script_version"
    ))
    .bind(business_id)
}

/// A version without its source.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct VersionInfo {
    pub version: i64,
    pub hash: String,
    pub created_at: i64,
    /// Whether it is the business' active version.
    pub active: bool,
}

/// Stores `source` as the business' next version and makes it the active one; an unchanged
/// source (same hash as the active version) stores nothing. Returns the active version number
/// and whether it is new.
pub async fn store_and_activate(
    tx: &mut Tx,
    business_id: &str,
    hash: &str,
    source: &str,
) -> Result<(i64, bool)> {
    // Serialise writers of one business' versions (PostgreSQL; SQLite's write lock does this).
    tx.lock_key(&format!("script:{business_id}")).await?;
    let active: Option<ScriptVersion> = tx.fetch_optional(active_q(business_id)).await?;
    if let Some(active) = active
        && active.hash == hash
    {
        return Ok((active.version, false));
    }
    let (next,): (i64,) = tx
        .fetch_one(
            Q::new(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM business_scripts WHERE business_id = $1",
            )
            .bind(business_id),
        )
        .await?;
    tx.execute(
        Q::new(
            "INSERT INTO business_scripts (business_id, version, hash, source, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(business_id)
        .bind(next)
        .bind(hash)
        .bind(source)
        .bind(now_ms()),
    )
    .await?;
    tx.execute(
        Q::new("UPDATE businesses SET script_version = $1 WHERE id = $2")
            .bind(next)
            .bind(business_id),
    )
    .await?;
    Ok((next, true))
}

/// The business' active script, if it has one.
pub async fn active(db: &Db, business_id: &str) -> Result<Option<ScriptVersion>> {
    db.fetch_optional(active_q(business_id)).await
}

/// Whether the business has any stored script version.
pub async fn has_any_in(tx: &mut Tx, business_id: &str) -> Result<bool> {
    let (n,): (i64,) = tx
        .fetch_one(
            Q::new("SELECT COUNT(*) FROM business_scripts WHERE business_id = $1")
                .bind(business_id),
        )
        .await?;
    Ok(n > 0)
}

/// One version, with its source.
pub async fn version(db: &Db, business_id: &str, version: i64) -> Result<Option<ScriptVersion>> {
    db.fetch_optional(
        Q::new(format!(
            "{SELECT_VERSIONS}, {ACTIVE} FROM business_scripts s JOIN businesses b ON b.id = s.business_id \
             WHERE s.business_id = $1 AND s.version = $2"
        ))
        .bind(business_id)
        .bind(version),
    )
    .await
}

/// Every version of the business' script, newest first.
pub async fn versions(db: &Db, business_id: &str) -> Result<Vec<VersionInfo>> {
    db.fetch_all(
        Q::new(format!(
            "SELECT s.version, s.hash, s.created_at, {ACTIVE} \
             FROM business_scripts s JOIN businesses b ON b.id = s.business_id \
             WHERE s.business_id = $1 ORDER BY s.version DESC"
        ))
        .bind(business_id),
    )
    .await
}

/// Pins a new run to its business' active script version (inside the transaction that starts
/// the run). A business without a script pins nothing: its runs use the defaults.
pub async fn pin(tx: &mut Tx, run_id: &str, business_id: &str) -> Result<()> {
    tx.execute(
        Q::new(
            "INSERT INTO run_scripts (run_id, business_id, version) \
             SELECT $1, id, script_version FROM businesses \
             WHERE id = $2 AND script_version IS NOT NULL",
        )
        .bind(run_id)
        .bind(business_id),
    )
    .await?;
    Ok(())
}

/// The version a run is pinned to: `(version, hash)`.
pub async fn pinned(db: &Db, run_id: &str) -> Result<Option<(i64, String)>> {
    db.fetch_optional(
        Q::new(
            "SELECT r.version, s.hash FROM run_scripts r JOIN business_scripts s \
               ON s.business_id = r.business_id AND s.version = r.version \
             WHERE r.run_id = $1",
        )
        .bind(run_id),
    )
    .await
}

/// The versions these runs are pinned to, by run (runs of a business without a script have
/// none).
pub async fn pinned_runs(
    db: &Db,
    run_ids: &[&str],
) -> Result<std::collections::HashMap<String, i64>> {
    super::run_pins(db, "run_scripts", run_ids).await
}

/// Deletes the script pins of every run of `subject_id` (erasure, before the runs go).
pub async fn unpin_runs_of_subject(tx: &mut Tx, subject_id: &str) -> Result<u64> {
    tx.execute(
        Q::new(format!(
            "DELETE FROM run_scripts WHERE run_id IN ({})",
            runs::sql::runs_of_subject("$1")
        ))
        .bind(subject_id),
    )
    .await
}
