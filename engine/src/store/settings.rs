//! `sb_settings`: values shared by every process on one database that nobody configured (the
//! first process to need one stores it; the others read the same value).

use super::{Db, Q};
use crate::error::Result;

#[derive(sqlx::FromRow)]
struct Setting {
    value: String,
}

/// The value stored under `key`, storing `candidate` first if there is none.
pub async fn get_or_insert(db: &Db, key: &str, candidate: &str) -> Result<String> {
    db.execute(
        Q::new("INSERT INTO sb_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(candidate),
    )
    .await?;
    let s: Setting = db
        .fetch_one(Q::new("SELECT value FROM sb_settings WHERE key = $1").bind(key))
        .await?;
    Ok(s.value)
}
