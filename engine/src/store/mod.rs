//! Persistence: the only home of SQL. One module per table, written once for SQLite and PostgreSQL.

pub mod changes;
mod db;
pub mod events;
mod pool;
pub mod runs;
pub mod settings;
pub mod steps;
pub mod tasks;
pub mod waits;
pub mod workers;

pub use db::{Arg, Db, Open, PgPools, Q, Row, SqlitePools, Tx};
pub use pool::{Held, Pool};

use db::Writer;

use crate::error::Result;

/// The table that records which of our migrations ran. Not `_sqlx_migrations`: apalis keeps its
/// own history there on SQLite, and the two would collide.
pub const MIGRATIONS_TABLE: &str = "_switchboard_migrations";

/// Creates or upgrades our tables and apalis' tables.
pub async fn migrate(db: &Db) -> Result<()> {
    match db {
        Db::Sqlite(pools) => {
            // apalis' setup() switches its connection to synchronous=OFF; give it a pool of its own
            // that is closed right after, so our connections keep synchronous=NORMAL.
            let setup_pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(pools.connect_options().clone())
                .await?;
            let result = apalis_sqlite::SqliteStorage::setup(&setup_pool).await;
            setup_pool.close().await;
            result.map_err(|e| crate::EngineError::Queue(e.to_string()))?;
        }
        Db::Postgres(pools) => {
            apalis_postgres::PostgresStorage::setup(pools.sqlx_pool())
                .await
                .map_err(|e| crate::EngineError::Queue(e.to_string()))?;
        }
    }
    match db.writer().await? {
        Writer::Sqlite(mut conn) => migrator(db).run(&mut **conn).await?,
        Writer::Postgres(mut conn) => migrator(db).run(&mut **conn).await?,
    }
    Ok(())
}

/// Our migrations for `db`'s backend, recorded in [`MIGRATIONS_TABLE`].
fn migrator(db: &Db) -> sqlx::migrate::Migrator {
    let mut m = match db {
        Db::Sqlite(_) => sqlx::migrate!("../migrations/sqlite"),
        Db::Postgres(_) => sqlx::migrate!("../migrations/postgres"),
    };
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m
}

/// How many of this build's migrations the database has not applied (0: up to date).
pub async fn pending_migrations(db: &Db) -> Result<usize> {
    let applied: Vec<(i64,)> = db
        .fetch_all(Q::new(format!(
            "SELECT version FROM {MIGRATIONS_TABLE} WHERE success"
        )))
        .await?;
    let applied: std::collections::HashSet<i64> = applied.into_iter().map(|(v,)| v).collect();
    Ok(migrator(db)
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .count())
}
