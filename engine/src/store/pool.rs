//! The engine's connection pools: a connection is handed out and taken back without a round
//! trip to the database.
//!
//! sqlx' own pool pings every connection it takes back (a round trip to PostgreSQL, a hop to
//! SQLite's connection thread), once per transaction and per statement outside one; on SQLite's
//! one writing connection the next writer waited for that ping too. Here the pool (deadpool)
//! takes a connection back as it is. sqlx finishes what an interrupted query left on a
//! connection before its next one, and a transaction dropped before it ended is rolled back
//! before its connection is reused ([`super::Tx`]). A connection a query failed on other than
//! by the database's own answer (I/O, protocol) is dropped and a new one opened.

use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{self, Manager, Metrics, PoolError, RecycleError, RecycleResult};
use sqlx::{ConnectOptions, Connection};

use crate::error::{EngineError, Result};

/// A pool of connections of type `C`.
pub type Pool<C> = managed::Pool<Connector<C>>;

/// A connection taken from a [`Pool`]; back in the pool when dropped.
pub type Leased<C> = managed::Object<Connector<C>>;

/// Opens the pool's connections.
pub struct Connector<C: Connection> {
    options: C::Options,
}

/// A pooled connection, and whether a query on it failed in a way that leaves it unusable.
pub struct Held<C> {
    conn: C,
    broken: bool,
}

impl<C> std::ops::Deref for Held<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.conn
    }
}

impl<C> std::ops::DerefMut for Held<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.conn
    }
}

impl<C> Held<C> {
    /// Passes `result` on; an error that is not the database's own answer (a constraint, a
    /// syntax error) marks the connection unusable, so the pool opens a new one instead.
    pub(crate) fn check<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(EngineError::Db(e)) = &result {
            self.broken |= matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::Protocol(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::WorkerCrashed
            );
        }
        result
    }

    /// Marks the connection unusable.
    pub(crate) fn discard(&mut self) {
        self.broken = true;
    }
}

impl<C> Manager for Connector<C>
where
    C: Connection,
    C::Options: Sync,
{
    type Type = Held<C>;
    type Error = sqlx::Error;

    async fn create(&self) -> std::result::Result<Held<C>, sqlx::Error> {
        Ok(Held {
            conn: self.options.connect().await?,
            broken: false,
        })
    }

    async fn recycle(&self, held: &mut Held<C>, _: &Metrics) -> RecycleResult<sqlx::Error> {
        if held.broken {
            return Err(RecycleError::message("a query failed on the connection"));
        }
        Ok(())
    }
}

/// A pool of at most `size` connections opened with `options`; taking one waits at most `wait`.
pub(crate) fn build<C>(options: C::Options, size: u32, wait: Duration) -> Result<Pool<C>>
where
    C: Connection,
    C::Options: Sync,
{
    managed::Pool::builder(Connector { options })
        .max_size(size.max(1) as usize)
        .wait_timeout(Some(wait))
        .create_timeout(Some(wait))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| EngineError::Config(format!("connection pool: {e}")))
}

/// Takes a connection from `pool`, opening one if none is idle and the pool is not full.
pub(crate) async fn lease<C>(pool: &Pool<C>) -> Result<Leased<C>>
where
    C: Connection,
    C::Options: Sync,
{
    pool.get().await.map_err(|e| match e {
        PoolError::Backend(e) => EngineError::Db(e),
        PoolError::Closed => EngineError::Db(sqlx::Error::PoolClosed),
        _ => EngineError::Db(sqlx::Error::PoolTimedOut),
    })
}
