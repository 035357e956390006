use std::path::PathBuf;

use super::{Db, Q, anonymous_placeholders};

/// A fresh SQLite file with one table `t (n INTEGER)`.
async fn scratch_db() -> (Db, PathBuf) {
    let path = std::env::temp_dir().join(format!("sb-db-{}.db", uuid::Uuid::now_v7()));
    let db = Db::connect(&format!("sqlite://{}", path.display()), 2)
        .await
        .unwrap();
    db.execute(Q::new("CREATE TABLE t (n INTEGER)"))
        .await
        .unwrap();
    (db, path)
}

async fn remove(db: Db, path: PathBuf) {
    db.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// A transaction dropped before it ends leaves nothing behind, and its connection (SQLite's
/// one writer) serves the next transaction only once it is rolled back: begun on a connection
/// with the first still open, the second would fail.
#[tokio::test]
async fn a_dropped_transaction_is_rolled_back_before_its_connection_serves_again() {
    let (db, path) = scratch_db().await;
    let mut tx = db.begin().await.unwrap();
    tx.execute(Q::new("INSERT INTO t (n) VALUES (1)"))
        .await
        .unwrap();
    drop(tx);
    let mut tx = db.begin().await.unwrap();
    tx.execute(Q::new("INSERT INTO t (n) VALUES (2)"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let rows: Vec<(i64,)> = db.fetch_all(Q::new("SELECT n FROM t")).await.unwrap();
    assert_eq!(rows, [(2,)]);
    remove(db, path).await;
}

/// A task cancelled while its `BEGIN` is under way (a worker aborted) does not hand the
/// connection back inside the transaction that `BEGIN` went on to open.
#[tokio::test]
async fn a_begin_cancelled_midway_leaves_no_transaction_open() {
    let (db, path) = scratch_db().await;
    for _ in 0..20 {
        // Polled once: the writer is idle, so `BEGIN` is on its way; then cancelled.
        let begin = db.begin();
        let _ = futures::FutureExt::now_or_never(begin);
        let mut tx = db.begin().await.unwrap();
        tx.execute(Q::new("INSERT INTO t (n) VALUES (1)"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    let rows: Vec<(i64,)> = db
        .fetch_all(Q::new("SELECT count(*) FROM t"))
        .await
        .unwrap();
    assert_eq!(rows, [(20,)]);
    remove(db, path).await;
}

#[test]
fn bulk_placeholders_become_anonymous_and_the_rest_stays() {
    assert_eq!(
        anonymous_placeholders("INSERT INTO t (a, b) VALUES ($1,$2),($3,$10) -- $x"),
        "INSERT INTO t (a, b) VALUES (?,?),(?,?) -- $x"
    );
}
