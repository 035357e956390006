//! Our apalis backend for step tasks: a worker fetches as soon as it has a free slot and work
//! may be due, and never loses a wake-up.
//!
//! apalis 1.0's own storages start a fetch on every poll of the worker and park it when a fetch
//! comes back empty, even if a wake-up arrived while that fetch was in flight (the wake-up only
//! re-polls the fetch). Here every commit that may make a task due counts a wake-up ([`Wake`]);
//! a fetch remembers the count it started at, and if the count moved by the time it returns,
//! another fetch starts at once. A fetch that filled every free slot is followed by another as
//! soon as a slot is free again. Otherwise the worker sleeps until the next wake-up or the poll
//! interval (due timers, and on SQLite the tasks other processes push).
//!
//! Tasks stay apalis jobs (`Jobs` / `apalis.jobs`), so apalis' queue view, its worker table and
//! its orphan recovery keep working. A fetched job stays locked to its worker while the run's
//! segment executes; the executor acknowledges it in the transaction that ends the segment.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::layers::Identity;
use apalis_core::task::Task;
use apalis_core::task::task_id::RandomId;
use apalis_core::worker::context::WorkerContext;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::futures::OwnedNotified;
use tokio::time::Sleep;
use tracing::warn;

use super::wake::Wake;
use crate::error::{EngineError, Result};
use crate::ids::JobId;
use crate::store::tasks::{self, Fetched};
use crate::store::{Db, workers};

/// Where tasks come from: the database, or a test's stand-in.
pub(crate) trait Source: Send + Sync + 'static {
    /// Takes up to `limit` due tasks for `worker`.
    fn fetch(&self, worker: &str, limit: usize) -> BoxFuture<'static, Result<Vec<Fetched>>>;
    /// Records `worker` as alive; it may take tasks from then on.
    fn register(&self, worker: &str) -> BoxFuture<'static, Result<()>>;
    /// Records that `worker` is still alive and hands dead workers' tasks back to the queue.
    fn heartbeat(&self, worker: &str) -> BoxFuture<'static, Result<()>>;
    /// Hands tasks `worker` fetched but never started back to the queue.
    fn abandon(&self, worker: &str, jobs: Vec<JobId>) -> BoxFuture<'static, Result<()>>;
}

/// The queue in the database (apalis' job and worker tables).
pub(crate) struct DbSource {
    pub db: Db,
    /// A worker silent this long is dead: its tasks go back to the queue.
    pub dead_after: Duration,
}

impl Source for DbSource {
    fn fetch(&self, worker: &str, limit: usize) -> BoxFuture<'static, Result<Vec<Fetched>>> {
        let (db, worker) = (self.db.clone(), worker.to_owned());
        async move { tasks::fetch(&db, &worker, limit).await }.boxed()
    }

    fn register(&self, worker: &str) -> BoxFuture<'static, Result<()>> {
        let (db, worker) = (self.db.clone(), worker.to_owned());
        async move { workers::register(&db, &worker).await }.boxed()
    }

    fn heartbeat(&self, worker: &str) -> BoxFuture<'static, Result<()>> {
        let (db, worker, dead_after) = (self.db.clone(), worker.to_owned(), self.dead_after);
        async move { workers::heartbeat(&db, &worker, dead_after).await }.boxed()
    }

    fn abandon(&self, worker: &str, jobs: Vec<JobId>) -> BoxFuture<'static, Result<()>> {
        let (db, worker) = (self.db.clone(), worker.to_owned());
        async move { tasks::abandon(&db, &jobs, &worker).await }.boxed()
    }
}

/// A task handed to a worker slot; the slot is free again when it is dropped.
pub(crate) struct Leased {
    pub fetched: Fetched,
    _slot: Slot,
}

/// One busy slot of a worker.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a [`StepQueue`] fetches.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueOptions {
    /// Slots of the worker (its concurrency): a fetch takes at most the free ones.
    pub concurrency: usize,
    /// With no wake-up, fetch again after this long (timers come due without one).
    pub poll_interval: Duration,
    /// How often the worker records that it is alive.
    pub heartbeat: Duration,
}

/// The worker's liveness: registered once, then a heartbeat every interval.
enum Beat {
    Unregistered,
    Registering(BoxFuture<'static, Result<()>>),
    Idle(Pin<Box<Sleep>>),
    Beating(BoxFuture<'static, Result<()>>),
}

/// The backend one apalis worker fetches step tasks from.
pub(crate) struct StepQueue<S: Source = DbSource> {
    source: Arc<S>,
    wake: Arc<Wake>,
    opts: QueueOptions,
    /// Slots executing a task (a [`Leased`] not yet dropped).
    busy: Arc<AtomicUsize>,
    /// Fetched, not yet handed to a slot.
    buffer: VecDeque<Fetched>,
    /// The fetch in flight and how many tasks it asked for.
    fetching: Option<(BoxFuture<'static, Result<Vec<Fetched>>>, usize)>,
    /// The wake-up count when the last fetch started.
    seen: Option<u64>,
    /// The last fetch took all it asked for: more may be due.
    more: bool,
    /// When to fetch without a wake-up.
    poll: Pin<Box<Sleep>>,
    /// Resolves at the next wake-up while the worker sleeps.
    next_wake: Option<Pin<Box<OwnedNotified>>>,
    beat: Beat,
    /// Handing unstarted tasks back at shutdown.
    closing: Option<BoxFuture<'static, Result<()>>>,
}

impl<S: Source> StepQueue<S> {
    pub(crate) fn new(source: Arc<S>, wake: Arc<Wake>, opts: QueueOptions) -> Self {
        StepQueue {
            source,
            wake,
            opts,
            busy: Arc::default(),
            buffer: VecDeque::new(),
            fetching: None,
            seen: None,
            more: false,
            poll: Box::pin(tokio::time::sleep(opts.poll_interval)),
            next_wake: None,
            beat: Beat::Unregistered,
            closing: None,
        }
    }

    fn lease(&self, fetched: Fetched) -> Leased {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Leased {
            fetched,
            _slot: Slot(self.busy.clone()),
        }
    }

    fn start_fetch(&mut self, worker: &str, count: u64) {
        let busy = self.busy.load(Ordering::SeqCst);
        let limit = self.opts.concurrency.saturating_sub(busy).max(1);
        self.seen = Some(count);
        self.next_wake = None;
        self.fetching = Some((self.source.fetch(worker, limit), limit));
    }

    fn rearm_poll(&mut self) {
        let at = tokio::time::Instant::now() + self.opts.poll_interval;
        self.poll.as_mut().reset(at);
    }
}

impl<S: Source> Backend for StepQueue<S> {
    type Task = Task<Leased>;
    type Error = EngineError;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        loop {
            match &mut self.beat {
                Beat::Unregistered => {
                    self.beat = Beat::Registering(self.source.register(worker.name()));
                }
                // Tasks are locked to a registered worker: no fetch before it is.
                Beat::Registering(registering) => match registering.poll_unpin(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) => {
                        worker.heartbeat(cx);
                        self.beat = Beat::Idle(Box::pin(tokio::time::sleep(self.opts.heartbeat)));
                    }
                },
                Beat::Idle(due) => {
                    if due.as_mut().poll(cx).is_pending() {
                        return Poll::Ready(Ok(()));
                    }
                    self.beat = Beat::Beating(self.source.heartbeat(worker.name()));
                }
                // Steps go on while the heartbeat is written.
                Beat::Beating(beating) => match beating.poll_unpin(cx) {
                    Poll::Pending => return Poll::Ready(Ok(())),
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) => {
                        worker.heartbeat(cx);
                        self.beat = Beat::Idle(Box::pin(tokio::time::sleep(self.opts.heartbeat)));
                    }
                },
            }
        }
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        loop {
            if let Some(fetched) = self.buffer.pop_front() {
                return Poll::Ready(Some(Ok(Task::new(self.lease(fetched)))));
            }
            if let Some((fetch, limit)) = &mut self.fetching {
                let limit = *limit;
                let fetched = match fetch.poll_unpin(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(fetched) => fetched,
                };
                self.fetching = None;
                self.rearm_poll();
                match fetched {
                    Ok(tasks) => {
                        self.more = tasks.len() >= limit;
                        self.buffer.extend(tasks);
                    }
                    Err(e) => {
                        // The database is away: try again at the next wake-up or poll.
                        warn!(error = %e, "fetching step tasks failed");
                        self.more = false;
                    }
                }
                continue;
            }
            // Idle: take the next wake-up's future before reading the count, so that a wake-up
            // between the two still wakes this worker.
            self.next_wake.get_or_insert_with(|| self.wake.next());
            let count = self.wake.count();
            let timer_due = self.poll.as_mut().poll(cx).is_ready();
            if self.more || timer_due || self.seen != Some(count) {
                self.start_fetch(worker.name(), count);
                continue;
            }
            match self.next_wake.as_mut().map(|w| w.as_mut().poll(cx)) {
                Some(Poll::Pending) => return Poll::Pending,
                _ => self.next_wake = None,
            }
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        // A fetch in flight finishes first, so that what it took is handed back too.
        if let Some((fetch, _)) = &mut self.fetching {
            let Poll::Ready(fetched) = fetch.poll_unpin(cx) else {
                return Poll::Pending;
            };
            self.fetching = None;
            self.buffer.extend(fetched.unwrap_or_default());
        }
        if self.closing.is_none() && !self.buffer.is_empty() {
            let jobs = self.buffer.drain(..).map(|f| f.job).collect();
            self.closing = Some(self.source.abandon(worker.name(), jobs));
        }
        let Some(closing) = &mut self.closing else {
            return Poll::Ready(Ok(()));
        };
        let done = futures::ready!(closing.poll_unpin(cx));
        self.closing = None;
        Poll::Ready(done)
    }
}

impl<S: Source> BackendConfig for StepQueue<S> {
    type Args = Leased;
    type Id = RandomId;
    type Kind = Ephemeral;
    type Config = QueueOptions;
    type Layer = Identity;

    fn config(&self) -> &Self::Config {
        &self.opts
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        Identity::new()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use futures::channel::oneshot;

    use super::*;
    use crate::ids::RunId;
    use crate::store::tasks::{StepTask, TaskKind};

    /// A queue whose fetches the test answers by hand, one at a time.
    #[derive(Default)]
    struct Manual {
        /// How many tasks each fetch asked for, in order.
        asked: Mutex<Vec<usize>>,
        /// The answer to the fetch in flight.
        answer: Mutex<Option<oneshot::Sender<Vec<Fetched>>>>,
    }

    impl Manual {
        fn fetches(&self) -> usize {
            self.asked.lock().unwrap().len()
        }

        /// Answers the fetch in flight with `tasks`.
        fn answer(&self, tasks: Vec<Fetched>) {
            let answer = self
                .answer
                .lock()
                .unwrap()
                .take()
                .expect("a fetch in flight");
            answer.send(tasks).expect("the fetch is awaited");
        }
    }

    impl Source for Manual {
        fn fetch(&self, _: &str, limit: usize) -> BoxFuture<'static, Result<Vec<Fetched>>> {
            self.asked.lock().unwrap().push(limit);
            let (send, answer) = oneshot::channel();
            *self.answer.lock().unwrap() = Some(send);
            async move { Ok(answer.await.unwrap_or_default()) }.boxed()
        }
        fn register(&self, _: &str) -> BoxFuture<'static, Result<()>> {
            futures::future::ready(Ok(())).boxed()
        }
        fn heartbeat(&self, _: &str) -> BoxFuture<'static, Result<()>> {
            futures::future::ready(Ok(())).boxed()
        }
        fn abandon(&self, _: &str, _: Vec<JobId>) -> BoxFuture<'static, Result<()>> {
            futures::future::ready(Ok(())).boxed()
        }
    }

    fn task(n: usize) -> Fetched {
        Fetched {
            job: JobId(format!("job-{n}")),
            task: StepTask {
                run_id: RunId(format!("run-{n}")),
                seq: 0,
                kind: TaskKind::Step,
            },
        }
    }

    /// The queue under test, registered, with a poll interval that never passes during a test.
    fn queue(source: &Arc<Manual>, wake: &Arc<Wake>) -> (StepQueue<Manual>, WorkerContext) {
        let opts = QueueOptions {
            concurrency: 4,
            poll_interval: Duration::from_secs(3600),
            heartbeat: Duration::from_secs(3600),
        };
        let mut queue = StepQueue::new(source.clone(), wake.clone(), opts);
        let worker = WorkerContext::new("w");
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        assert!(matches!(
            queue.poll_ready(&mut cx, &worker),
            Poll::Ready(Ok(()))
        ));
        (queue, worker)
    }

    /// What the worker gets when it asks for its next task now: a job id, or `None` (pending).
    fn next(queue: &mut StepQueue<Manual>, worker: &WorkerContext) -> Option<String> {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        match queue.poll_next(&mut cx, worker) {
            Poll::Pending => None,
            Poll::Ready(Some(Ok(task))) => Some(task.args.fetched.job.0.clone()),
            Poll::Ready(other) => panic!("the queue ended: {:?}", other.map(|r| r.err())),
        }
    }

    /// A wake-up that arrives while a fetch is in flight, which that fetch may have missed,
    /// starts another fetch as soon as it returns, even empty; without a wake-up, an idle worker
    /// does not fetch at all.
    #[tokio::test]
    async fn a_wake_up_during_a_fetch_is_never_lost() {
        let (source, wake) = (Arc::new(Manual::default()), Arc::new(Wake::default()));
        let (mut queue, worker) = queue(&source, &wake);

        assert_eq!(
            next(&mut queue, &worker),
            None,
            "the first fetch is in flight"
        );
        assert_eq!(source.fetches(), 1);
        wake.notify();
        source.answer(vec![]);
        assert_eq!(next(&mut queue, &worker), None);
        assert_eq!(
            source.fetches(),
            2,
            "the wake-up during the fetch fetched again"
        );
        source.answer(vec![task(1)]);
        assert_eq!(next(&mut queue, &worker).as_deref(), Some("job-1"));

        // Idle, nothing announced: no fetch, however often the worker is polled.
        for _ in 0..3 {
            assert_eq!(next(&mut queue, &worker), None);
        }
        assert_eq!(source.fetches(), 2);
        // A wake-up while idle fetches at once.
        wake.notify();
        assert_eq!(next(&mut queue, &worker), None);
        assert_eq!(source.fetches(), 3);
        source.answer(vec![]);
        assert_eq!(next(&mut queue, &worker), None);
        assert_eq!(source.fetches(), 3);
    }

    /// A fetch asks for the free slots only, and one that filled them all is followed by
    /// another as soon as a slot is free, with no wake-up.
    #[tokio::test]
    async fn a_full_fetch_is_followed_by_another_when_a_slot_frees() {
        let (source, wake) = (Arc::new(Manual::default()), Arc::new(Wake::default()));
        let (mut queue, worker) = queue(&source, &wake);
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());

        assert_eq!(next(&mut queue, &worker), None);
        source.answer((0..4).map(task).collect());
        let mut running = Vec::new();
        for _ in 0..4 {
            match queue.poll_next(&mut cx, &worker) {
                Poll::Ready(Some(Ok(task))) => running.push(task),
                _ => panic!("a fetched task was not handed out"),
            }
        }
        // Every slot busy: the worker does not ask (apalis polls only with a free slot); one
        // frees.
        running.pop();
        assert_eq!(next(&mut queue, &worker), None);
        assert_eq!(*source.asked.lock().unwrap(), [4, 1]);
    }
}
