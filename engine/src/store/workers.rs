//! SQL over apalis' worker table: registering a worker, its heartbeat (its liveness), and
//! handing a dead worker's tasks back to the queue.

use std::time::Duration;

use sqlx::FromRow;

use super::db::Writer;
use super::tasks::QUEUE;
use super::{Db, Q, Tx};
use crate::error::{EngineError, Result};
use crate::ids::now_ms;

/// Registers `worker` as alive now (apalis' `Workers` / `apalis.workers`, which its queue view
/// lists and which jobs locked to a worker refer to).
pub async fn register(db: &Db, worker: &str) -> Result<()> {
    let sql = match db {
        Db::Sqlite(_) => {
            "INSERT INTO Workers (id, worker_type, storage_name, layers, last_seen, started_at) \
             VALUES ($1, $2, 'switchboard', '', strftime('%s', 'now'), strftime('%s', 'now')) \
             ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen"
        }
        Db::Postgres(_) => {
            "INSERT INTO apalis.workers (id, worker_type, storage_name, layers, last_seen) \
             VALUES ($1, $2, 'switchboard', '', now()) \
             ON CONFLICT (id) DO UPDATE SET last_seen = now()"
        }
    };
    let n = db.execute(Q::new(sql).bind(worker).bind(QUEUE)).await?;
    if n != 1 {
        return Err(EngineError::Queue(format!(
            "worker {worker} could not register"
        )));
    }
    Ok(())
}

/// Records that `worker` is alive, then hands the tasks of workers silent for `dead_after` back
/// to the queue (apalis' orphan recovery). Fails if the worker's row is gone or refuses the beat.
pub async fn heartbeat(db: &Db, worker: &str, dead_after: Duration) -> Result<()> {
    let beat = match db {
        Db::Sqlite(_) => "UPDATE Workers SET last_seen = strftime('%s', 'now') WHERE id = $1",
        Db::Postgres(_) => "UPDATE apalis.workers SET last_seen = now() WHERE id = $1",
    };
    if db.execute(Q::new(beat).bind(worker)).await? != 1 {
        return Err(EngineError::Queue(format!(
            "worker {worker} missed its heartbeat"
        )));
    }
    let secs = dead_after.as_secs().max(1);
    let queue_err = |e: &dyn std::fmt::Display| EngineError::Queue(e.to_string());
    let filter = apalis_core::backend::WorkerFilter::AllExcept(worker.to_owned());
    match db.writer().await? {
        Writer::Sqlite(mut conn) => {
            apalis_sqlite::queries::reenqueue_orphaned(&mut **conn, secs as i64, QUEUE, &filter)
                .await
                .map_err(|e| queue_err(&e))?;
        }
        Writer::Postgres(mut conn) => {
            apalis_postgres::queries::reenqueue_orphaned(&mut **conn, QUEUE, secs)
                .await
                .map_err(|e| queue_err(&e))?;
        }
    }
    Ok(())
}

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
