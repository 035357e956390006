//! Wake-ups for this process' workers: a counter every commit that may have made a task due
//! bumps, so that a wake-up which arrives while a worker is fetching is seen after that fetch.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

/// Counts wake-ups and wakes every worker sleeping on them.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    count: AtomicU64,
    notify: Arc<Notify>,
}

impl Wake {
    /// A task may be due: count it and wake the sleepers.
    pub(crate) fn notify(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Wake-ups so far. A fetch that started at one count and ends at another may have missed
    /// what the later wake-ups announced.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// A future that resolves at the next wake-up. It is registered before it returns: read
    /// [`Wake::count`] after taking it, and a wake-up in between still resolves it.
    pub(crate) fn next(&self) -> Pin<Box<OwnedNotified>> {
        let mut next = Box::pin(self.notify.clone().notified_owned());
        next.as_mut().enable();
        next
    }
}
