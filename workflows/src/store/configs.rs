//! SQL for `business_configs` (every version of every business' configuration, the content of
//! its `business.toml`), the active version on `businesses` (`config`, `config_version`), and
//! `run_configs` (the version each run is pinned to).

use switchboard_engine::EngineError;
use switchboard_engine::ids::now_ms;
use switchboard_engine::store::{Db, Q, Tx, runs};

use super::Result;
use crate::business::Business;

/// A stored configuration version.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigVersion {
    /// 1, 2, … per business.
    pub version: i64,
    pub config: Business,
    pub created_at: i64,
    /// Whether it is the business' active version.
    pub active: bool,
}

type VersionRow = (i64, String, i64, bool);

fn parse((version, config, created_at, active): VersionRow) -> Result<ConfigVersion> {
    Ok(ConfigVersion {
        version,
        config: serde_json::from_str(&config).map_err(EngineError::from)?,
        created_at,
        active,
    })
}

/// Selects versions with their `active` flag; append a `WHERE`.
const SELECT_VERSIONS: &str = "SELECT c.version, c.config, c.created_at, \
     (b.config_version IS NOT NULL AND c.version = b.config_version) AS active \
     FROM business_configs c JOIN businesses b ON b.id = c.business_id";

/// Creates business `b` with its configuration as version 1. False (and nothing stored) if a
/// business with its id exists.
pub async fn create(tx: &mut Tx, b: &Business) -> Result<bool> {
    let config = serde_json::to_string(b)?;
    let now = now_ms();
    let created = tx
        .execute(
            Q::new(
                "INSERT INTO businesses (id, name, timezone, config, config_version, updated_at) \
                 VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&b.id)
            .bind(&b.name)
            .bind(&b.timezone)
            .bind(config.clone())
            .bind(now),
        )
        .await?;
    if created == 0 {
        return Ok(false);
    }
    insert_version(tx, &b.id, 1, &config, now).await?;
    Ok(true)
}

async fn insert_version(tx: &mut Tx, id: &str, version: i64, config: &str, now: i64) -> Result<()> {
    tx.execute(
        Q::new(
            "INSERT INTO business_configs (business_id, version, config, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(version)
        .bind(config)
        .bind(now),
    )
    .await?;
    Ok(())
}

/// Stores `b` as its business' next configuration version and makes it the active one (creating
/// the business if it does not exist); a configuration equal to the active one stores nothing.
/// Returns the active version and whether it is new.
pub async fn store_and_activate(tx: &mut Tx, b: &Business) -> Result<(i64, bool)> {
    // Serialise writers of one business' versions (PostgreSQL; SQLite's write lock does this).
    tx.lock_key(&format!("config:{}", b.id)).await?;
    let active: Option<(String, Option<i64>)> = tx
        .fetch_optional(
            Q::new("SELECT config, config_version FROM businesses WHERE id = $1").bind(&b.id),
        )
        .await?;
    let Some((config, version)) = active else {
        create(tx, b).await?;
        return Ok((1, true));
    };
    let current: Business = serde_json::from_str(&config).map_err(EngineError::from)?;
    if let Some(version) = version
        && current == *b
    {
        return Ok((version, false));
    }
    let (next,): (i64,) = tx
        .fetch_one(
            Q::new(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM business_configs WHERE business_id = $1",
            )
            .bind(&b.id),
        )
        .await?;
    let config = serde_json::to_string(b)?;
    let now = now_ms();
    insert_version(tx, &b.id, next, &config, now).await?;
    tx.execute(
        Q::new(
            "UPDATE businesses SET name = $1, timezone = $2, config = $3, config_version = $4, \
             updated_at = $5 WHERE id = $6",
        )
        .bind(&b.name)
        .bind(&b.timezone)
        .bind(config)
        .bind(next)
        .bind(now)
        .bind(&b.id),
    )
    .await?;
    Ok((next, true))
}

/// The business' active configuration with its version.
pub async fn active(db: &Db, business_id: &str) -> Result<Option<ConfigVersion>> {
    let row: Option<VersionRow> = db
        .fetch_optional(
            Q::new(format!(
                "{SELECT_VERSIONS} WHERE b.id = $1 AND c.version = b.config_version"
            ))
            .bind(business_id),
        )
        .await?;
    row.map(parse).transpose()
}

/// The active configuration version of every business, by id.
pub async fn active_versions(db: &Db) -> Result<std::collections::HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = db
        .fetch_all(Q::new(
            "SELECT id, COALESCE(config_version, 0) FROM businesses",
        ))
        .await?;
    Ok(rows.into_iter().collect())
}

/// One version.
pub async fn version(db: &Db, business_id: &str, version: i64) -> Result<Option<ConfigVersion>> {
    let row: Option<VersionRow> = db
        .fetch_optional(
            Q::new(format!(
                "{SELECT_VERSIONS} WHERE c.business_id = $1 AND c.version = $2"
            ))
            .bind(business_id)
            .bind(version),
        )
        .await?;
    row.map(parse).transpose()
}

/// Every version of the business' configuration, newest first.
pub async fn versions(db: &Db, business_id: &str) -> Result<Vec<ConfigVersion>> {
    let rows: Vec<VersionRow> = db
        .fetch_all(
            Q::new(format!(
                "{SELECT_VERSIONS} WHERE c.business_id = $1 ORDER BY c.version DESC"
            ))
            .bind(business_id),
        )
        .await?;
    rows.into_iter().map(parse).collect()
}

/// Pins a new run to its business' active configuration version (inside the transaction that
/// starts the run).
pub async fn pin(tx: &mut Tx, run_id: &str, business_id: &str) -> Result<()> {
    tx.execute(
        Q::new(
            "INSERT INTO run_configs (run_id, business_id, version) \
             SELECT $1, id, config_version FROM businesses \
             WHERE id = $2 AND config_version IS NOT NULL",
        )
        .bind(run_id)
        .bind(business_id),
    )
    .await?;
    Ok(())
}

/// The configuration run `run_id` of business `business_id` works with: the version it is
/// pinned to, else (a run started before versions were kept) the active one.
pub async fn for_run(db: &Db, run_id: &str, business_id: &str) -> Result<Option<Business>> {
    let row: Option<(String,)> = db
        .fetch_optional(
            Q::new(
                "SELECT COALESCE(c.config, b.config) FROM businesses b \
                 LEFT JOIN run_configs r ON r.run_id = $1 AND r.business_id = b.id \
                 LEFT JOIN business_configs c ON c.business_id = b.id AND c.version = r.version \
                 WHERE b.id = $2",
            )
            .bind(run_id)
            .bind(business_id),
        )
        .await?;
    row.map(|(config,)| serde_json::from_str(&config).map_err(EngineError::from))
        .transpose()
}

/// The version a run is pinned to.
pub async fn pinned(db: &Db, run_id: &str) -> Result<Option<i64>> {
    let row: Option<(i64,)> = db
        .fetch_optional(Q::new("SELECT version FROM run_configs WHERE run_id = $1").bind(run_id))
        .await?;
    Ok(row.map(|(v,)| v))
}

/// The configuration versions these runs are pinned to, by run.
pub async fn pinned_runs(
    db: &Db,
    run_ids: &[&str],
) -> Result<std::collections::HashMap<String, i64>> {
    super::run_pins(db, "run_configs", run_ids).await
}

/// Deletes the configuration pins of every run of `subject_id` (erasure, before the runs go).
pub async fn unpin_runs_of_subject(tx: &mut Tx, subject_id: &str) -> Result<u64> {
    tx.execute(
        Q::new(format!(
            "DELETE FROM run_configs WHERE run_id IN ({})",
            runs::sql::runs_of_subject("$1")
        ))
        .bind(subject_id),
    )
    .await
}
