//! Persistence: the only home of SQL. One module per table, written once for SQLite and PostgreSQL.

pub mod changes;
mod db;
pub mod events;
pub mod runs;
pub mod settings;
pub mod steps;
pub mod tasks;
pub mod waits;
pub mod workers;

pub use db::{Arg, Db, Q, Row, SqlitePools, Tx};

use crate::error::Result;

/// The table that records which of our migrations ran. Not `_sqlx_migrations`: apalis keeps its
/// own history there on SQLite, and the two would collide.
pub const MIGRATIONS_TABLE: &str = "_switchboard_migrations";

/// Creates or upgrades our tables and apalis' tables.
pub async fn migrate(db: &Db) -> Result<()> {
    match db {
        Db::Sqlite(pools) => {
            let pool = pools.writer();
            // apalis' setup() switches its connection to synchronous=OFF; give it a pool of its own
            // that is closed right after, so our connections keep synchronous=NORMAL.
            let opts = pool.connect_options().as_ref().clone();
            let setup_pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(opts)
                .await?;
            let result = apalis_sqlite::SqliteStorage::setup(&setup_pool).await;
            setup_pool.close().await;
            result.map_err(|e| crate::EngineError::Queue(e.to_string()))?;
            migrator(db).run(pool).await?;
        }
        Db::Postgres(pool) => {
            apalis_postgres::PostgresStorage::setup(pool)
                .await
                .map_err(|e| crate::EngineError::Queue(e.to_string()))?;
            migrator(db).run(pool).await?;
        }
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
