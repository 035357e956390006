//! SQL of the benchmark's own (`switchboard bench`): a database per scenario, made and dropped
//! on a PostgreSQL server, and the raw commit loop that measures the database's own limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, Postgres, Sqlite};
use switchboard_engine::Db;
use switchboard_engine::store::Q;

/// Makes database `name` on the PostgreSQL server of `admin_url`.
pub async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    admin(admin_url, &format!("CREATE DATABASE {name}")).await
}

/// Drops database `name`, connections and all.
pub async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    admin(
        admin_url,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await
}

async fn admin(admin_url: &str, sql: &str) -> anyhow::Result<()> {
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// The table the commit loop writes to.
pub async fn create_commits_table(db: &Db) -> anyhow::Result<()> {
    let create = match db {
        Db::Sqlite(_) => {
            "CREATE TABLE bench_commits (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, note TEXT)"
        }
        Db::Postgres(_) => {
            "CREATE TABLE bench_commits (id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, note TEXT)"
        }
    };
    db.execute(Q::new(create)).await?;
    Ok(())
}

/// How a write transaction begins on each database (SQLite takes its write lock at once, as
/// the engine's transactions do).
pub trait Begin {
    const BEGIN: &'static str;
}

impl Begin for Sqlite {
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
}

impl Begin for Postgres {
    const BEGIN: &'static str = "BEGIN";
}

/// `connections` tasks, each on a connection of its own, commit single-row inserts into
/// `bench_commits` until `secs` pass; returns commits per second.
pub async fn commit_loop<DB>(
    pool: &sqlx::Pool<DB>,
    connections: u32,
    secs: Duration,
) -> anyhow::Result<f64>
where
    DB: sqlx::Database + Begin,
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
                (&mut *conn).execute(DB::BEGIN).await?;
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
