//! The database handle: one SQLite or PostgreSQL pool, queries written once for both.
//!
//! Every query in the engine and the workflows is plain SQL with `$1`-style parameters, which
//! both SQLite and PostgreSQL accept. [`Q`] carries the SQL and its arguments; [`Db`] and [`Tx`]
//! run it on whichever backend `DATABASE_URL` chose.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgSslMode};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{FromRow, Postgres, Sqlite, Transaction};

use crate::error::{EngineError, Result};

/// A pool on the configured backend.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite: one writing connection and a pool of readers.
    Sqlite(SqlitePools),
    /// PostgreSQL pool.
    Postgres(PgPool),
}

/// SQLite's connections: every write goes through one connection, in the order asked for, and
/// reads have a pool of their own (WAL lets them read while it writes). SQLite takes one writer
/// at a time anyway; many connections racing for its lock sleep on the busy timeout instead of
/// queueing, and fail with `database is locked` under load. All are WAL, `synchronous=NORMAL`,
/// with a busy timeout (for another process writing the same file).
#[derive(Clone, Debug)]
pub struct SqlitePools {
    write: SqlitePool,
    read: SqlitePool,
}

impl SqlitePools {
    /// The one writing connection's pool: transactions and statements that write.
    pub fn writer(&self) -> &SqlitePool {
        &self.write
    }

    /// The readers' pool (read-only connections; an in-memory database has only the writer).
    pub fn reader(&self) -> &SqlitePool {
        &self.read
    }
}

/// An open transaction on the configured backend.
pub enum Tx {
    /// SQLite transaction, begun with `BEGIN IMMEDIATE` so writers queue instead of failing.
    Sqlite(Transaction<'static, Sqlite>),
    /// PostgreSQL transaction.
    Postgres(Transaction<'static, Postgres>),
}

/// One bound argument. Only the types the schema uses: integers and text, each nullable.
#[derive(Clone, Debug)]
pub enum Arg {
    /// BIGINT / INTEGER.
    Int(Option<i64>),
    /// TEXT.
    Text(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}

/// A query: SQL text with `$n` placeholders and its arguments in order.
#[derive(Clone, Debug)]
pub struct Q {
    sql: String,
    args: Vec<Arg>,
    /// The placeholders are `$1`…`$n`, each once and in order (see [`Q::bulk`]).
    in_order: bool,
}

impl Q {
    /// Starts a query.
    pub fn new(sql: impl Into<String>) -> Self {
        Q {
            sql: sql.into(),
            args: Vec::new(),
            in_order: false,
        }
    }

    /// Starts a query with thousands of arguments whose placeholders are `$1`…`$n`, each once
    /// and in order. SQLite gets them as anonymous `?`: it looks a numbered parameter's name up
    /// in a list for every argument bound, which made a 30,000-argument insert take a second
    /// and a half of CPU instead of milliseconds.
    pub fn bulk(sql: impl Into<String>) -> Self {
        Q {
            in_order: true,
            ..Q::new(sql)
        }
    }
    /// Binds the next `$n` argument.
    pub fn bind(mut self, arg: impl Into<Arg>) -> Self {
        self.args.push(arg.into());
        self
    }

    fn sqlite(&self) -> sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments> {
        let sql = if self.in_order {
            anonymous_placeholders(&self.sql)
        } else {
            self.sql.clone()
        };
        // SQL text is assembled only from constants in the store modules; values are bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in &self.args {
            q = match a {
                Arg::Int(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.clone()),
            };
        }
        q
    }

    fn pg(&self) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        // SQL text is assembled only from constants in the store modules; values are bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.sql.as_str()));
        for a in &self.args {
            q = match a {
                Arg::Int(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.clone()),
            };
        }
        q
    }
}

/// `$1`, `$2`, … as `?` (for [`Q::bulk`], whose placeholders come once each and in order).
fn anonymous_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
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

/// The query methods of [`Db`] and [`Tx`]: `$write` runs statements, `$read` fetches rows.
macro_rules! query_methods {
    ($s:ident, $write:ident, $read:ident, $($recv:tt)+) => {
        /// Runs a statement; returns the number of rows it changed.
        pub async fn execute($($recv)+, q: Q) -> Result<u64> {
            execute($s.$write(), &q).await
        }

        /// Fetches at most one row.
        pub async fn fetch_optional<T: Row>($($recv)+, q: Q) -> Result<Option<T>> {
            fetch_optional($s.$read(), &q).await
        }

        /// Fetches exactly one row.
        pub async fn fetch_one<T: Row>($($recv)+, q: Q) -> Result<T> {
            fetch_optional($s.$read(), &q).await?.ok_or(EngineError::Db(sqlx::Error::RowNotFound))
        }

        /// Fetches every row.
        pub async fn fetch_all<T: Row>($($recv)+, q: Q) -> Result<Vec<T>> {
            fetch_all($s.$read(), &q).await
        }
    };
}

impl Tx {
    fn target(&mut self) -> Target<&mut sqlx::SqliteConnection, &mut sqlx::PgConnection> {
        match self {
            Tx::Sqlite(t) => Target::Sqlite(&mut **t),
            Tx::Postgres(t) => Target::Postgres(&mut **t),
        }
    }

    query_methods!(self, target, target, &mut self);

    /// Commits.
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Rolls back (dropping a `Tx` also rolls back).
    pub async fn rollback(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.rollback().await?,
            Tx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
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
    fn write_target(&self) -> Target<&SqlitePool, &PgPool> {
        match self {
            Db::Sqlite(p) => Target::Sqlite(&p.write),
            Db::Postgres(p) => Target::Postgres(p),
        }
    }

    fn read_target(&self) -> Target<&SqlitePool, &PgPool> {
        match self {
            Db::Sqlite(p) => Target::Sqlite(&p.read),
            Db::Postgres(p) => Target::Postgres(p),
        }
    }

    query_methods!(self, write_target, read_target, &self);

    /// Runs a statement that writes and returns rows (`… RETURNING`).
    pub async fn write_returning<T: Row>(&self, q: Q) -> Result<Vec<T>> {
        fetch_all(self.write_target(), &q).await
    }

    /// Connects to `sqlite://…` (file created if missing) or `postgres://…`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Db> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            // Writers queue here for the one connection, in order (not on SQLite's busy
            // timeout); a transaction holds it only for its statements, never across a step.
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(60))
                .test_before_acquire(false)
                .connect_with(opts.clone())
                .await?;
            // Each connection of an in-memory database is a database of its own.
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let read = if in_memory {
                write.clone()
            } else {
                SqlitePoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .min_connections(1)
                    .test_before_acquire(false)
                    .connect_with(opts.create_if_missing(false).read_only(true))
                    .await?
            };
            Ok(Db::Sqlite(SqlitePools { write, read }))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(10))
                // A connection that failed is dropped when a query on it fails; pinging every
                // connection before handing it out cost a round trip per transaction.
                .test_before_acquire(false)
                .connect_with(pg_options(url)?)
                .await?;
            Ok(Db::Postgres(pool))
        } else {
            Err(EngineError::Config(format!(
                "DATABASE_URL must start with sqlite:// or postgres:// (got {url:?})"
            )))
        }
    }

    /// Closes every connection of the pool; later queries fail.
    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => {
                p.read.close().await;
                p.write.close().await;
            }
            Db::Postgres(p) => p.close().await,
        }
    }

    /// Begins a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.write.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }
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
mod tests {
    use super::anonymous_placeholders;

    #[test]
    fn bulk_placeholders_become_anonymous_and_the_rest_stays() {
        assert_eq!(
            anonymous_placeholders("INSERT INTO t (a, b) VALUES ($1,$2),($3,$10) -- $x"),
            "INSERT INTO t (a, b) VALUES (?,?),(?,?) -- $x"
        );
    }
}
