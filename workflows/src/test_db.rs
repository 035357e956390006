//! Test support: a fresh, migrated SQLite database file per test.

use switchboard_engine::Db;

/// A fresh, migrated SQLite file, removed on drop.
pub(crate) struct TestDb {
    pub db: Db,
    path: std::path::PathBuf,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let name = format!("sb-workflows-{}.db", uuid::Uuid::now_v7().simple());
        let path = std::env::temp_dir().join(name);
        let db = Db::connect(&format!("sqlite://{}", path.display()), 2)
            .await
            .expect("connect");
        switchboard_engine::migrate(&db).await.expect("migrate");
        TestDb { db, path }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}
