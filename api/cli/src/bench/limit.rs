//! The database's own limit: single-row write transactions per second (`BEGIN`, one `INSERT`,
//! `COMMIT`, in a closed loop — what pgbench's insert-only script measures), from 1 and from 16
//! connections, on a fresh database with the settings the engine uses. Engine figures are read
//! as ratios to it, measured in the same bench run.

use std::time::Duration;

use sqlx::{Postgres, Sqlite};
use switchboard_engine::Db;

use super::{Backend, BenchDb, Figure, single};
use crate::store::bench as bench_store;

/// The connection counts measured.
const CONNECTIONS: [u32; 2] = [1, 16];

/// Commits per second from each of [`CONNECTIONS`] connections for `secs` each; returns the
/// figures and the best rate (the limit engine figures are compared with).
pub(super) async fn commit_limit(
    backend: &Backend,
    secs: Duration,
) -> anyhow::Result<(Vec<Figure>, f64)> {
    let bench = BenchDb::create(backend, "commits").await?;
    let db = Db::connect(&bench.url, 16).await?;
    bench_store::create_commits_table(&db).await?;
    let mut figures = Vec::new();
    let mut best: f64 = 0.0;
    for connections in CONNECTIONS {
        let rate = match &db {
            // Connections of their own, all writing (on SQLite its busy timeout sorts them out).
            Db::Sqlite(pools) => {
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(connections)
                    .connect_with(pools.connect_options().clone())
                    .await?;
                let rate = bench_store::commit_loop::<Sqlite>(&pool, connections, secs).await?;
                pool.close().await;
                rate
            }
            Db::Postgres(_) => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(connections)
                    .connect(&bench.url)
                    .await?;
                let rate = bench_store::commit_loop::<Postgres>(&pool, connections, secs).await?;
                pool.close().await;
                rate
            }
        };
        best = best.max(rate);
        figures.push(single(
            &format!(
                "db_commit_limit ({connections} connection{})",
                if connections == 1 { "" } else { "s" }
            ),
            backend.name(),
            &format!(
                "the database alone: BEGIN, one INSERT, COMMIT per transaction, {connections} connections in a closed loop for {} s",
                secs.as_secs()
            ),
            connections as usize,
            "commits/s",
            rate,
        ));
    }
    db.close().await;
    bench.remove().await?;
    Ok((figures, best))
}
