//! The live feed of run changes for this process: one poller reads `sb_changes` in id order and
//! broadcasts each change to every subscriber (the API's server-sent events). Any process's
//! workers write the table, so clients of any process see every change.
//!
//! On PostgreSQL ids are taken at insert and a transaction may commit after one with a higher id:
//! at a gap the poller waits (up to [`GAP_GRACE`]) for the missing id to commit before going on,
//! so a client resuming from its last id misses nothing. A gap still open after that is an id a
//! rolled-back transaction took.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::error::Result;
use crate::ids::now_ms;
use crate::store::Db;
use crate::store::changes::{self, Change};

/// How often the table is read.
pub const POLL_EVERY: Duration = Duration::from_millis(200);
/// How long the poller waits at a gap in ids.
pub const GAP_GRACE: Duration = Duration::from_secs(3);
/// How long changes are kept for clients that reconnect.
pub const KEEP_FOR: Duration = Duration::from_secs(24 * 3600);
const BATCH: i64 = 500;

/// A process's feed of run changes. Cheap to clone.
#[derive(Clone)]
pub struct ChangeFeed {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    sender: broadcast::Sender<Change>,
    /// The last id broadcast: everything up to it was delivered in order.
    position: AtomicI64,
}

impl ChangeFeed {
    /// Starts polling `db` from its newest change.
    pub async fn start(db: Db) -> Result<ChangeFeed> {
        let (_, last) = changes::bounds(&db).await?;
        let (sender, _) = broadcast::channel(4096);
        let feed = ChangeFeed {
            inner: Arc::new(Inner {
                db,
                sender,
                position: AtomicI64::new(last.unwrap_or(0)),
            }),
        };
        let weak = Arc::downgrade(&feed.inner);
        tokio::spawn(async move {
            let mut gap_since: Option<Instant> = None;
            let mut pruned_at = Instant::now();
            loop {
                tokio::time::sleep(POLL_EVERY).await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = inner.poll(&mut gap_since).await {
                    tracing::warn!(error = %e, "reading the change feed failed");
                }
                if pruned_at.elapsed() > Duration::from_secs(600) {
                    pruned_at = Instant::now();
                    let before = now_ms() - KEEP_FOR.as_millis() as i64;
                    if let Err(e) = changes::prune(&inner.db, before).await {
                        tracing::warn!(error = %e, "pruning the change feed failed");
                    }
                }
            }
        });
        Ok(feed)
    }

    /// Changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.inner.sender.subscribe()
    }

    /// The last id broadcast.
    pub fn position(&self) -> i64 {
        self.inner.position.load(Ordering::SeqCst)
    }

    /// The database the feed reads (for replays after a reconnect).
    pub fn db(&self) -> &Db {
        &self.inner.db
    }
}

impl Inner {
    async fn poll(&self, gap_since: &mut Option<Instant>) -> Result<()> {
        loop {
            let mut last = self.position.load(Ordering::SeqCst);
            let batch = changes::after(&self.db, last, BATCH).await?;
            let full = batch.len() as i64 == BATCH;
            for change in batch {
                if change.id != last + 1 {
                    let since = *gap_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < GAP_GRACE {
                        return Ok(()); // wait for the missing id to commit
                    }
                }
                *gap_since = None;
                last = change.id;
                self.position.store(last, Ordering::SeqCst);
                // No subscriber is fine: nobody is watching.
                let _ = self.sender.send(change);
            }
            if !full {
                return Ok(());
            }
        }
    }
}
