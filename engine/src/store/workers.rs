//! SQL over apalis' worker table: when a worker last heartbeat (its liveness).

use sqlx::FromRow;

use super::{Db, Q, Tx};
use crate::error::Result;
use crate::ids::now_ms;

#[derive(FromRow)]
struct LastSeen {
    last_seen: Option<i64>,
}

/// The newest heartbeat, in Unix seconds, of the workers whose id matches `condition` (`$1`).
fn last_seen(sqlite: bool, condition: &str, arg: String) -> Q {
    let sql = if sqlite {
        format!("SELECT MAX(last_seen) AS last_seen FROM Workers WHERE id {condition}")
    } else {
        format!(
            "SELECT FLOOR(EXTRACT(EPOCH FROM MAX(last_seen)))::BIGINT AS last_seen FROM apalis.workers WHERE id {condition}"
        )
    };
    Q::new(sql).bind(arg)
}

fn age(row: LastSeen) -> Option<i64> {
    row.last_seen.map(|seen| now_ms() / 1000 - seen)
}

/// Seconds since a worker whose name starts with `prefix` last heartbeat; `None` if none has.
pub async fn heartbeat_age(db: &Db, prefix: &str) -> Result<Option<i64>> {
    let q = last_seen(matches!(db, Db::Sqlite(_)), "LIKE $1", format!("{prefix}%"));
    Ok(age(db.fetch_one(q).await?))
}

/// Seconds since the worker named `name` last heartbeat; `None` if it never registered.
pub async fn heartbeat_age_of(tx: &mut Tx, name: &str) -> Result<Option<i64>> {
    let q = last_seen(matches!(tx, Tx::Sqlite(_)), "= $1", name.to_owned());
    Ok(age(tx.fetch_one(q).await?))
}
