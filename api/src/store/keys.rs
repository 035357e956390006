//! `sb_api_keys`: API keys, stored as their SHA-256. A key is `sbk_` and 64 hex digits, shown
//! once when created; a key with no business is an operator's.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::FromRow;
use switchboard_engine::ids::now_ms;
use switchboard_engine::store::{Db, Q, Tx};

type Result<T> = std::result::Result<T, switchboard_engine::EngineError>;

/// What every key starts with (so a leaked one is easy to recognise and scan for).
pub const KEY_PREFIX: &str = "sbk_";

/// Characters of a key kept in clear to recognise it in listings (`sbk_` and four more).
const SHOWN_CHARS: usize = 8;

/// A stored key (never its secret).
#[derive(Clone, Debug, FromRow, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    /// `key_…`.
    pub id: String,
    /// The business it may reach; `null`: an operator key (every business).
    pub business_id: Option<String>,
    /// What it is for.
    pub name: String,
    /// Its first characters, to recognise it.
    pub prefix: String,
    /// When it was made (RFC 3339; unix ms in the database).
    #[serde(serialize_with = "crate::time::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// When it was revoked; `null` while usable.
    #[serde(serialize_with = "crate::time::serialize_maybe_ms")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
}

/// A fresh random key.
pub fn generate() -> String {
    format!("{KEY_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// The stored form of a secret (keys and session tokens are random, so one SHA-256 suffices).
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

const COLUMNS: &str = "id, business_id, name, prefix, created_at, revoked_at";

/// Stores `secret` as a key of `business` (`None`: operator) named `name`; `false` if a key
/// with that id or that secret already exists.
pub async fn insert(
    tx: &mut Tx,
    id: &str,
    business: Option<&str>,
    name: &str,
    secret: &str,
) -> Result<bool> {
    let stored = tx
        .execute(
            Q::new(
                "INSERT INTO sb_api_keys (id, business_id, name, secret_hash, prefix, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(business)
            .bind(name)
            .bind(hash(secret))
            .bind(secret.chars().take(SHOWN_CHARS).collect::<String>())
            .bind(now_ms()),
        )
        .await?;
    Ok(stored == 1)
}

/// A fresh key id.
pub fn new_id() -> String {
    format!("key_{}", hex::encode(rand::random::<[u8; 8]>()))
}

/// The usable (not revoked) key whose secret is `secret`.
pub async fn find_usable(db: &Db, secret: &str) -> Result<Option<ApiKey>> {
    Ok(find_by_secret(db, secret)
        .await?
        .filter(|k| k.revoked_at.is_none()))
}

/// The key `id`, revoked or not.
pub async fn find(db: &Db, id: &str) -> Result<Option<ApiKey>> {
    db.fetch_optional(Q::new(format!("SELECT {COLUMNS} FROM sb_api_keys WHERE id = $1")).bind(id))
        .await
}

/// The key whose secret is `secret`, revoked or not.
pub async fn find_by_secret(db: &Db, secret: &str) -> Result<Option<ApiKey>> {
    db.fetch_optional(
        Q::new(format!(
            "SELECT {COLUMNS} FROM sb_api_keys WHERE secret_hash = $1"
        ))
        .bind(hash(secret)),
    )
    .await
}

/// Keys of `business` (`None`: every key, operators' included), newest first.
pub async fn list(db: &Db, business: Option<&str>) -> Result<Vec<ApiKey>> {
    let q = match business {
        Some(b) => Q::new(format!(
            "SELECT {COLUMNS} FROM sb_api_keys WHERE business_id = $1 ORDER BY created_at DESC, id"
        ))
        .bind(b),
        None => Q::new(format!(
            "SELECT {COLUMNS} FROM sb_api_keys ORDER BY created_at DESC, id"
        )),
    };
    db.fetch_all(q).await
}

/// Operator keys: all of them (revoked ones too), or only the usable ones.
pub async fn operator_keys(db: &Db, usable_only: bool) -> Result<i64> {
    #[derive(FromRow)]
    struct Count {
        n: i64,
    }
    let usable = if usable_only {
        " AND revoked_at IS NULL"
    } else {
        ""
    };
    let c: Count = db
        .fetch_one(Q::new(format!(
            "SELECT COUNT(*) AS n FROM sb_api_keys WHERE business_id IS NULL{usable}"
        )))
        .await?;
    Ok(c.n)
}

/// Revokes key `id` (and ends its dashboard sessions); `false` if it was already revoked.
pub async fn revoke(tx: &mut Tx, id: &str) -> Result<bool> {
    let revoked = tx
        .execute(
            Q::new("UPDATE sb_api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id),
        )
        .await?;
    super::sessions::end_all_of_key(tx, id).await?;
    Ok(revoked == 1)
}
