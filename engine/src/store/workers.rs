//! SQL over apalis' worker table: when a worker last heartbeat (its liveness).

use sqlx::FromRow;

use super::{Db, Q, Tx};
use crate::error::Result;
use crate::ids::now_ms;

#[derive(FromRow)]
struct LastSeen {
    last_seen: Option<i64>,
}

fn query(db_is_sqlite: bool, pattern: &str) -> Q {
    let sql = if db_is_sqlite {
        "SELECT MAX(last_seen) AS last_seen FROM Workers WHERE id LIKE $1"
    } else {
        "SELECT EXTRACT(EPOCH FROM MAX(last_seen))::BIGINT AS last_seen FROM apalis.workers WHERE id LIKE $1"
    };
    Q::new(sql).bind(pattern)
}

fn age(row: LastSeen) -> Option<i64> {
    row.last_seen.map(|seen| now_ms() / 1000 - seen)
}

/// Seconds since a worker whose name starts with `prefix` last heartbeat; `None` if none has.
pub async fn heartbeat_age(db: &Db, prefix: &str) -> Result<Option<i64>> {
    let q = query(matches!(db, Db::Sqlite(_)), &format!("{prefix}%"));
    Ok(age(db.fetch_one(q).await?))
}

/// Seconds since the worker named exactly `name` last heartbeat; `None` if it never registered.
pub async fn heartbeat_age_of(tx: &mut Tx, name: &str) -> Result<Option<i64>> {
    // `_` and `%` are LIKE wildcards; worker names never contain `%`, and `_` only matches itself
    // or one character, which cannot make a different live worker's name match exactly.
    let q = query(matches!(tx, Tx::Sqlite(_)), name);
    Ok(age(tx.fetch_one(q).await?))
}
