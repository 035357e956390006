//! The database handle: SQLite's or PostgreSQL's connections, queries written once for both.
//!
//! Every query in the engine and the workflows is plain SQL with `$1`-style parameters, which
//! both SQLite and PostgreSQL accept. [`Q`] carries the SQL and its arguments; [`Db`] and [`Tx`]
//! run it on whichever backend `DATABASE_URL` chose.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteRow, SqliteSynchronous};
use sqlx::{FromRow, PgConnection, Postgres, Sqlite, SqliteConnection};

use super::pool::{self, Leased, Pool};
use crate::error::{EngineError, Result};

mod query;
pub use query::*;

/// The connections of the configured backend.
#[derive(Clone)]
pub enum Db {
    /// SQLite: one writing connection and a pool of readers.
    Sqlite(SqlitePools),
    /// PostgreSQL.
    Postgres(PgPools),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Db::Sqlite(_) => "Db::Sqlite",
            Db::Postgres(_) => "Db::Postgres",
        })
    }
}

/// SQLite's connections: every write goes through one connection, in the order asked for, and
/// reads have a pool of their own (WAL lets them read while it writes). SQLite takes one writer
/// at a time anyway; many connections racing for its lock sleep on the busy timeout instead of
/// queueing, and fail with `database is locked` under load. All are WAL, `synchronous=NORMAL`,
/// with a busy timeout (for another process writing the same file).
#[derive(Clone)]
pub struct SqlitePools {
    write: Pool<SqliteConnection>,
    read: Pool<SqliteConnection>,
    options: std::sync::Arc<SqliteConnectOptions>,
}

impl SqlitePools {
    /// The one writing connection: transactions and statements that write.
    pub fn writer(&self) -> &Pool<SqliteConnection> {
        &self.write
    }

    /// The readers (read-only connections; an in-memory database has only the writer).
    pub fn reader(&self) -> &Pool<SqliteConnection> {
        &self.read
    }

    /// The options every connection is opened with (writable), for a tool that needs a pool of
    /// its own, such as apalis' queue view.
    pub fn connect_options(&self) -> &SqliteConnectOptions {
        &self.options
    }
}

/// PostgreSQL's connections: the engine's pool, and a small sqlx pool for code that takes one
/// (apalis' insert notifications and queue view).
#[derive(Clone)]
pub struct PgPools {
    conns: Pool<PgConnection>,
    sqlx: PgPool,
}

impl PgPools {
    /// A small sqlx pool on the same database, opening its connections when first asked.
    pub fn sqlx_pool(&self) -> &PgPool {
        &self.sqlx
    }
}

/// An open transaction on the configured backend. Dropped before [`Tx::commit`], it is rolled
/// back before its connection is used again.
pub enum Tx {
    /// SQLite transaction, begun with `BEGIN IMMEDIATE` on the writing connection.
    Sqlite(Open<SqliteConnection>),
    /// PostgreSQL transaction.
    Postgres(Open<PgConnection>),
}

/// A connection with a transaction open on it.
pub struct Open<C: sqlx::Connection> {
    held: Option<Leased<C>>,
}

impl<C: sqlx::Connection> std::ops::Deref for Open<C>
where
    C::Options: Sync,
{
    type Target = C;
    fn deref(&self) -> &C {
        self.held
            .as_ref()
            .expect("an open transaction has its connection")
    }
}

impl<C: sqlx::Connection> std::ops::DerefMut for Open<C>
where
    C::Options: Sync,
{
    fn deref_mut(&mut self) -> &mut C {
        self.held
            .as_mut()
            .expect("an open transaction has its connection")
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        match self {
            Tx::Sqlite(open) => roll_back_later(open.held.take()),
            Tx::Postgres(open) => roll_back_later(open.held.take()),
        }
    }
}

/// Rolls back the transaction left open on `held` (if any) before the connection serves anyone
/// else: it goes back to the pool when the rollback is done. Without a runtime to do that, the
/// connection is not reused at all.
fn roll_back_later<C: Raw + 'static>(held: Option<Leased<C>>)
where
    C::Options: Sync,
{
    let Some(mut held) = held else {
        return;
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(async move {
                if held.raw("ROLLBACK").await.is_err() {
                    held.discard();
                }
            });
        }
        Err(_) => held.discard(),
    }
}

/// A connection that runs a statement without arguments (`BEGIN`, `COMMIT`, `ROLLBACK`).
trait Raw: sqlx::Connection {
    fn raw(&mut self, sql: &'static str) -> futures::future::BoxFuture<'_, Result<()>>;
}

impl Raw for SqliteConnection {
    fn raw(&mut self, sql: &'static str) -> futures::future::BoxFuture<'_, Result<()>> {
        Box::pin(async move { Ok(sqlx::raw_sql(sql).execute(self).await.map(drop)?) })
    }
}

impl Raw for PgConnection {
    fn raw(&mut self, sql: &'static str) -> futures::future::BoxFuture<'_, Result<()>> {
        Box::pin(async move { Ok(sqlx::raw_sql(sql).execute(self).await.map(drop)?) })
    }
}

/// Begins a transaction with `begin` on a connection from `pool`.
async fn open<C: Raw + 'static>(pool: &Pool<C>, begin: &'static str) -> Result<Open<C>>
where
    C::Options: Sync,
{
    let mut pending = Pending(Some(pool::lease(pool).await?));
    let begun = pending.conn().raw(begin).await;
    let mut held = pending.finished();
    held.check(begun)?;
    Ok(Open { held: Some(held) })
}

/// Ends the transaction on `open` with `end` (`COMMIT`, `ROLLBACK`) and returns its connection.
async fn close<C: Raw + 'static>(open: &mut Open<C>, end: &'static str) -> Result<()>
where
    C::Options: Sync,
{
    let mut pending = Pending(open.held.take());
    let ended = pending.conn().raw(end).await;
    pending.finished().check(ended)
}

/// A connection whose `BEGIN`, `COMMIT` or `ROLLBACK` is under way. If the task awaiting it is
/// cancelled (a worker aborted), the statement may still run to completion on the connection
/// (SQLite's connection thread does), so the connection is rolled back before it is reused
/// instead of going back to the pool inside a transaction.
struct Pending<C: Raw + 'static>(Option<Leased<C>>)
where
    C::Options: Sync;

impl<C: Raw + 'static> Pending<C>
where
    C::Options: Sync,
{
    fn conn(&mut self) -> &mut Leased<C> {
        self.0
            .as_mut()
            .expect("a pending statement has its connection")
    }

    /// The connection, once its statement has finished.
    fn finished(mut self) -> Leased<C> {
        self.0
            .take()
            .expect("a pending statement has its connection")
    }
}

impl<C: Raw + 'static> Drop for Pending<C>
where
    C::Options: Sync,
{
    fn drop(&mut self) {
        roll_back_later(self.0.take());
    }
}

/// A row type readable from both backends (derive `sqlx::FromRow`).
pub trait Row: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}
impl<T> Row for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{}

enum Target<S, P> {
    Sqlite(S),
    Postgres(P),
}

async fn execute<'c, S, P>(t: Target<S, P>, q: &Q) -> Result<u64>
where
    S: sqlx::Executor<'c, Database = Sqlite>,
    P: sqlx::Executor<'c, Database = Postgres>,
{
    Ok(match t {
        Target::Sqlite(e) => q.sqlite().execute(e).await?.rows_affected(),
        Target::Postgres(e) => q.pg().execute(e).await?.rows_affected(),
    })
}

async fn fetch_all<'c, T: Row, S, P>(t: Target<S, P>, q: &Q) -> Result<Vec<T>>
where
    S: sqlx::Executor<'c, Database = Sqlite>,
    P: sqlx::Executor<'c, Database = Postgres>,
{
    Ok(match t {
        Target::Sqlite(e) => {
            let rows = q.sqlite().fetch_all(e).await?;
            rows.iter()
                .map(T::from_row)
                .collect::<std::result::Result<Vec<_>, _>>()?
        }
        Target::Postgres(e) => {
            let rows = q.pg().fetch_all(e).await?;
            rows.iter()
                .map(T::from_row)
                .collect::<std::result::Result<Vec<_>, _>>()?
        }
    })
}

async fn fetch_optional<'c, T: Row, S, P>(t: Target<S, P>, q: &Q) -> Result<Option<T>>
where
    S: sqlx::Executor<'c, Database = Sqlite>,
    P: sqlx::Executor<'c, Database = Postgres>,
{
    Ok(match t {
        Target::Sqlite(e) => match q.sqlite().fetch_optional(e).await? {
            Some(row) => Some(T::from_row(&row)?),
            None => None,
        },
        Target::Postgres(e) => match q.pg().fetch_optional(e).await? {
            Some(row) => Some(T::from_row(&row)?),
            None => None,
        },
    })
}

/// The query methods of [`Db`] and [`Tx`], run on the connection `conn` gives for a statement
/// that writes (`true`) or one that reads (`false`).
macro_rules! query_methods {
    ($s:ident, $($recv:tt)+) => {
        /// Runs a statement; returns the number of rows it changed.
        pub async fn execute($($recv)+, q: Q) -> Result<u64> {
            #[allow(unused_mut)]
            let mut conn = $s.conn(true).await?;
            let result = execute(conn.target(), &q).await;
            conn.check(result)
        }

        /// Fetches at most one row.
        pub async fn fetch_optional<T: Row>($($recv)+, q: Q) -> Result<Option<T>> {
            #[allow(unused_mut)]
            let mut conn = $s.conn(false).await?;
            let result = fetch_optional(conn.target(), &q).await;
            conn.check(result)
        }

        /// Fetches exactly one row.
        pub async fn fetch_one<T: Row>($($recv)+, q: Q) -> Result<T> {
            $s.fetch_optional(q).await?.ok_or(EngineError::Db(sqlx::Error::RowNotFound))
        }

        /// Fetches every row.
        pub async fn fetch_all<T: Row>($($recv)+, q: Q) -> Result<Vec<T>> {
            #[allow(unused_mut)]
            let mut conn = $s.conn(false).await?;
            let result = fetch_all(conn.target(), &q).await;
            conn.check(result)
        }
    };
}

/// A connection to run one query on, either backend.
type Conn<'c> = Target<&'c mut SqliteConnection, &'c mut PgConnection>;

/// Something holding a connection queries run on.
trait Connected {
    /// The connection.
    fn target(&mut self) -> Conn<'_>;
    /// Passes a query's `result` on, noting a failure that leaves the connection unusable.
    fn check<T>(&mut self, result: Result<T>) -> Result<T>;
}

/// A connection taken for one statement.
enum Lease {
    Sqlite(Leased<SqliteConnection>),
    Postgres(Leased<PgConnection>),
}

impl Connected for Lease {
    fn target(&mut self) -> Conn<'_> {
        match self {
            Lease::Sqlite(held) => Target::Sqlite(&mut ***held),
            Lease::Postgres(held) => Target::Postgres(&mut ***held),
        }
    }

    fn check<T>(&mut self, result: Result<T>) -> Result<T> {
        match self {
            Lease::Sqlite(held) => held.check(result),
            Lease::Postgres(held) => held.check(result),
        }
    }
}

impl Connected for Tx {
    fn target(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(open) => Target::Sqlite(&mut **open),
            Tx::Postgres(open) => Target::Postgres(&mut **open),
        }
    }

    fn check<T>(&mut self, result: Result<T>) -> Result<T> {
        let done = match self {
            Tx::Sqlite(open) => open.held.as_mut().map(|held| held.check(result)),
            Tx::Postgres(open) => open.held.as_mut().map(|held| held.check(result)),
        };
        done.expect("an open transaction has its connection")
    }
}

impl Tx {
    /// Every statement of a transaction runs on its own connection.
    async fn conn(&mut self, _write: bool) -> Result<&mut Tx> {
        Ok(self)
    }

    query_methods!(self, &mut self);

    /// Commits.
    pub async fn commit(mut self) -> Result<()> {
        match &mut self {
            Tx::Sqlite(open) => close(open, "COMMIT").await,
            Tx::Postgres(open) => close(open, "COMMIT").await,
        }
    }

    /// Rolls back (dropping a `Tx` also rolls back).
    pub async fn rollback(mut self) -> Result<()> {
        match &mut self {
            Tx::Sqlite(open) => close(open, "ROLLBACK").await,
            Tx::Postgres(open) => close(open, "ROLLBACK").await,
        }
    }

    /// Serialises transactions that touch the same correlation key until commit.
    ///
    /// SQLite transactions are already serialised by `BEGIN IMMEDIATE`; on PostgreSQL this takes
    /// a transaction-scoped advisory lock, so that an event arriving while a run starts to wait
    /// on it is seen by exactly one of the two transactions.
    pub async fn lock_key(&mut self, key: &str) -> Result<()> {
        if let Tx::Postgres(_) = self {
            self.execute(Q::new("SELECT pg_advisory_xact_lock(hashtext($1))::text").bind(key))
                .await?;
        }
        Ok(())
    }
}

impl Db {
    /// A connection for one statement that writes (`write`) or only reads.
    async fn conn(&self, write: bool) -> Result<Lease> {
        Ok(match self {
            Db::Sqlite(p) => {
                Lease::Sqlite(pool::lease(if write { &p.write } else { &p.read }).await?)
            }
            Db::Postgres(p) => Lease::Postgres(pool::lease(&p.conns).await?),
        })
    }

    query_methods!(self, &self);

    /// Runs a statement that writes and returns rows (`… RETURNING`).
    pub async fn write_returning<T: Row>(&self, q: Q) -> Result<Vec<T>> {
        let mut conn = self.conn(true).await?;
        let result = fetch_all(conn.target(), &q).await;
        conn.check(result)
    }

    /// Connects to `sqlite://…` (file created if missing) or `postgres://…`, with at most
    /// `max_connections` connections (SQLite: readers, besides its one writer).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db> {
        let db = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            // Writers queue here for the one connection, in order (not on SQLite's busy
            // timeout); a transaction holds it only for its statements, never across a step.
            let write = pool::build(options.clone(), 1, Duration::from_secs(60))?;
            // Each connection of an in-memory database is a database of its own.
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let read = if in_memory {
                write.clone()
            } else {
                // Opened after the writer made the file and switched it to WAL.
                drop(pool::lease(&write).await?);
                let readers = options.clone().create_if_missing(false).read_only(true);
                pool::build(readers, max_connections, Duration::from_secs(10))?
            };
            Db::Sqlite(SqlitePools {
                write,
                read,
                options: options.into(),
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = pg_options(url)?;
            let conns = pool::build(options.clone(), max_connections, Duration::from_secs(10))?;
            let sqlx = PgPoolOptions::new()
                .max_connections(4)
                .min_connections(0)
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy_with(options);
            Db::Postgres(PgPools { conns, sqlx })
        } else {
            return Err(EngineError::Config(format!(
                "DATABASE_URL must start with sqlite:// or postgres:// (got {url:?})"
            )));
        };
        // Fail now, not at the first query, when the database cannot be reached.
        db.execute(Q::new("SELECT 1")).await?;
        Ok(db)
    }

    /// Closes every connection; later queries fail.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => {
                p.read.close();
                p.write.close();
            }
            Db::Postgres(p) => {
                p.conns.close();
                p.sqlx.close().await;
            }
        }
    }

    /// Begins a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(open(&p.write, "BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(open(&p.conns, "BEGIN").await?),
        })
    }

    /// A connection that may write, for SQL that takes a connection of its own (apalis'
    /// queries). Back in the pool when dropped.
    pub(crate) async fn writer(&self) -> Result<Writer> {
        Ok(match self {
            Db::Sqlite(p) => Writer::Sqlite(pool::lease(&p.write).await?),
            Db::Postgres(p) => Writer::Postgres(pool::lease(&p.conns).await?),
        })
    }
}

/// A connection from [`Db::writer`].
pub(crate) enum Writer {
    Sqlite(Leased<SqliteConnection>),
    Postgres(Leased<PgConnection>),
}

/// PostgreSQL connection options from `url`. On a loopback host without an `sslmode`, TLS is
/// off: negotiating it (sqlx' default is `prefer`) cost every new connection a round trip and a
/// handshake for nothing.
fn pg_options(url: &str) -> Result<PgConnectOptions> {
    let opts = PgConnectOptions::from_str(url)?.statement_cache_capacity(512);
    let loopback = ["localhost", "127.0.0.1", "::1", "[::1]"].contains(&opts.get_host())
        || opts.get_host().starts_with('/');
    Ok(if loopback && !url.contains("sslmode=") {
        opts.ssl_mode(PgSslMode::Disable)
    } else {
        opts
    })
}

#[cfg(test)]
mod tests;
