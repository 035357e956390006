//! The database's own limit: single-row write transactions per second (`BEGIN`, one `INSERT`,
//! `COMMIT`, in a closed loop — what pgbench's insert-only script measures), from 1 and from 16
//! connections, on a fresh database with the settings the engine uses. Engine figures are read
//! as ratios to it, measured in the same bench run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Executor, Postgres, Sqlite};
use switchboard_engine::Db;

use super::{Backend, BenchDb, Figure, single};

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
    let create = match db {
        Db::Sqlite(_) => {
            "CREATE TABLE bench_commits (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, note TEXT)"
        }
        Db::Postgres(_) => {
            "CREATE TABLE bench_commits (id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, note TEXT)"
        }
    };
    db.execute(switchboard_engine::store::Q::new(create))
        .await?;
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
                let rate = drive::<Sqlite>(&pool, connections, "BEGIN IMMEDIATE", secs).await?;
                pool.close().await;
                rate
            }
            Db::Postgres(_) => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(connections)
                    .connect(&bench.url)
                    .await?;
                let rate = drive::<Postgres>(&pool, connections, "BEGIN", secs).await?;
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

/// `connections` tasks, each on a connection of its own, commit single-row inserts until `secs`
/// pass; returns commits per second.
async fn drive<DB>(
    pool: &sqlx::Pool<DB>,
    connections: u32,
    begin: &'static str,
    secs: Duration,
) -> anyhow::Result<f64>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    let commits = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + secs;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let mut conn = pool.acquire().await?;
        let commits = commits.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                (&mut *conn).execute(begin).await?;
                sqlx::query("INSERT INTO bench_commits (at, note) VALUES ($1, 'x')")
                    .bind(switchboard_engine::ids::now_ms())
                    .execute(&mut *conn)
                    .await?;
                (&mut *conn).execute("COMMIT").await?;
                commits.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(commits.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
