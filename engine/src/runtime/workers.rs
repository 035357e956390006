//! apalis wiring: one worker per process with a unique name, fetching from our step queue
//! (woken by commits, and on PostgreSQL by other processes' notifications), restarted if it dies
//! or its heartbeat stops, and stopped gracefully.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use futures::StreamExt;
use tokio::sync::oneshot;
use tokio_util::task::AbortOnDropHandle;
use tracing::{error, info, warn};

use super::queue::{DbSource, Leased, QueueOptions, StepQueue};
use super::wake::Wake;
use super::{Engine, executor};
use crate::error::Result;
use crate::store::tasks::{self, QUEUE};
use crate::store::{Db, workers};

/// How this process runs steps.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Prefix of the worker's name; a random suffix makes every process unique (pitfall 5).
    pub name: String,
    /// Steps executed at once.
    pub concurrency: usize,
    /// How often the worker heartbeats and, with no wake-up, looks for due timers (pitfall 1:
    /// apalis' default of 30 s would delay every timer by up to 30 s).
    pub poll_interval: Duration,
    /// After this many missed heartbeats a dead worker's tasks are handed to others.
    pub missed_heartbeats: usize,
    /// How long a graceful stop waits for steps in flight.
    pub shutdown_timeout: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            name: "switchboard".into(),
            concurrency: 16,
            poll_interval: Duration::from_secs(1),
            missed_heartbeats: 5,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Running workers; [`Workers::stop`] ends them gracefully.
pub struct Workers {
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    /// The running monitor's task (it runs apart from the supervisor in `done`).
    monitor: Arc<std::sync::Mutex<Option<tokio::task::AbortHandle>>>,
    name: String,
}

impl Workers {
    /// The unique name this process' workers register under (a restart appends `-g<n>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops fetching, lets steps in flight finish (up to the shutdown timeout) and returns.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.done).await;
    }

    /// Kills the workers at once, as a crash would: steps in flight are dropped mid-way and their
    /// tasks stay claimed until another worker sees this one's heartbeat stop.
    pub fn abort(self) {
        self.done.abort();
        if let Some(monitor) = self
            .monitor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            monitor.abort();
        }
    }
}

/// Handles one task in a tokio task of its own: the steps of one worker run on every core, and
/// a step's database replies wake only its own task, not the whole worker. The task is aborted
/// with the worker (a crash stops its steps).
async fn handle(
    leased: Leased,
    engine: Data<Engine>,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    let engine = (*engine).clone();
    let running = tokio::spawn(async move {
        let fetched = &leased.fetched;
        let stopping = || worker.is_shutting_down();
        let me = executor::Worker {
            name: worker.name(),
            stopping: &stopping,
        };
        if let Err(e) = executor::handle(&engine, fetched, &me).await {
            error!(error = %e, "task failed; it goes back to the queue");
            let (job, name) = (&fetched.job, worker.name());
            if let Err(e) =
                tasks::release(engine.db(), job, name, RETRY_AFTER, &e.to_string()).await
            {
                // Its worker's heartbeat stops when the database is gone; then the task goes
                // back to the queue with the worker's other tasks.
                error!(error = %e, job = %job, "could not hand a failed task back");
            }
        }
    });
    if let Err(e) = AbortOnDropHandle::new(running).await {
        error!(error = %e, "task panicked outside its step");
    }
    Ok(())
}

/// How long a task whose handling failed (the database failed) waits before it runs again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// On PostgreSQL, wakes this process' workers whenever any process pushes a task (LISTEN on
/// apalis' insert notification); this process' own commits wake them directly.
fn listen(pool: &sqlx::PgPool, wake: Arc<Wake>) -> AbortOnDropHandle<()> {
    let notified = apalis_postgres::Pubsub::new(pool.clone(), QUEUE.to_owned());
    AbortOnDropHandle::new(tokio::spawn(async move {
        futures::pin_mut!(notified);
        while let Some(event) = notified.next().await {
            if let Err(e) = event {
                warn!(error = %e, "listening for new tasks failed");
            }
            wake.notify();
        }
    }))
}

/// The heartbeat actually used on this backend.
fn heartbeat(db: &Db, opts: &WorkerOptions) -> Duration {
    match db {
        Db::Sqlite(_) => opts.poll_interval,
        // Processes on other hosts judge liveness from these stamps against their own clocks:
        // beats of at least a second keep a little clock skew from counting a live worker dead.
        Db::Postgres(_) => opts.poll_interval.max(Duration::from_secs(1)),
    }
}

/// Runs one apalis monitor under `name` until `stop` resolves or it ends.
async fn run_monitor(
    engine: Engine,
    name: String,
    opts: WorkerOptions,
    stop: oneshot::Receiver<()>,
) {
    let signal = async move {
        let _ = stop.await;
        Ok(())
    };
    let source = Arc::new(DbSource {
        db: engine.db().clone(),
        dead_after: engine.dead_after(),
    });
    let queue = QueueOptions {
        concurrency: opts.concurrency,
        poll_interval: opts.poll_interval,
        heartbeat: heartbeat(engine.db(), &opts),
    };
    let _listening = match engine.db() {
        Db::Postgres(pools) => Some(listen(pools.sqlx_pool(), engine.wake())),
        Db::Sqlite(_) => None,
    };
    let wake = engine.wake();
    let result = Monitor::new()
        .register(move |restarts| {
            WorkerBuilder::new(restarted(&name, restarts))
                .backend(StepQueue::new(source.clone(), wake.clone(), queue))
                .data(engine.clone())
                .concurrency(opts.concurrency)
                .build(handle)
        })
        .should_restart(|worker, _| worker.restarts() < QUICK_RESTARTS)
        .shutdown_timeout(opts.shutdown_timeout)
        .run_with_signal(signal)
        .await;
    if let Err(e) = result {
        error!(error = %e, "workers ended with an error");
    }
}

/// Whether a heartbeat `age_secs` old is older than `after`. Signed: a heartbeat stamped by the
/// database's clock can be a second "in the future" of ours (age -1), which read as unsigned
/// once counted as stale and replaced a live worker mid-step.
fn stale(age_secs: i64, after: Duration) -> bool {
    age_secs > after.as_secs() as i64
}

/// apalis restarts a dead worker this many times; after that the supervisor starts a new
/// generation with backoff, so a persistent failure (database down) does not spin.
const QUICK_RESTARTS: usize = 3;

/// A worker apalis restarts gets a fresh name: it refuses a name whose heartbeat is still fresh.
fn restarted(base: &str, restarts: usize) -> String {
    if restarts == 0 {
        base.to_owned()
    } else {
        format!("{base}-r{restarts}")
    }
}

impl Engine {
    /// Whether the workers started under `name` (or their restarts) heartbeat recently enough
    /// to count as alive.
    pub async fn workers_alive(&self, name: &str) -> Result<bool> {
        let age = workers::heartbeat_age(self.db(), name).await?;
        Ok(age
            .is_some_and(|secs| secs.saturating_mul(1000) <= self.dead_after().as_millis() as i64))
    }

    /// Starts this process' workers, supervised: a worker whose heartbeat stops for
    /// `missed_heartbeats + 5` beats (at least 10 s) is replaced by a fresh one under a new name,
    /// and the stale one's tasks go back to the queue as a dead worker's would.
    pub fn start_workers(&self, opts: WorkerOptions) -> Workers {
        let name = format!("{}-{}", opts.name, &crate::ids::new_id()[24..]);
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let engine = self.clone();
        let base = name.clone();
        let beat = heartbeat(self.db(), &opts);
        let stale_after = (beat * (opts.missed_heartbeats as u32 + 5)).max(Duration::from_secs(10));
        // As apalis judges orphans: silent for heartbeat × missed heartbeats.
        self.set_dead_after(beat * opts.missed_heartbeats as u32);
        let monitor = Arc::new(std::sync::Mutex::new(None));
        let running = monitor.clone();
        let done = tokio::spawn(async move {
            let mut backoff = Duration::from_secs(1);
            for generation in 0u32.. {
                let name = if generation == 0 {
                    base.clone()
                } else {
                    format!("{base}-g{generation}")
                };
                let (monitor_stop, monitor_stop_rx) = oneshot::channel::<()>();
                // A task of its own: the monitor runs every step in flight, and must keep running
                // while this loop awaits the database (a heartbeat check that waited on the pool
                // used to freeze every step of the process, and with them their connections).
                let mut monitor = tokio::spawn(run_monitor(
                    engine.clone(),
                    name.clone(),
                    opts.clone(),
                    monitor_stop_rx,
                ));
                *running.lock().unwrap_or_else(|e| e.into_inner()) = Some(monitor.abort_handle());
                info!(worker = %name, "workers started");
                let started = tokio::time::Instant::now();
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => {
                            let _ = monitor_stop.send(());
                            let _ = monitor.await;
                            info!(worker = %name, "workers stopped");
                            return;
                        }
                        _ = &mut monitor => {
                            error!(worker = %name, ?backoff, "workers ended unexpectedly; starting new ones");
                            tokio::select! {
                                _ = &mut stop_rx => return,
                                _ = tokio::time::sleep(backoff) => {}
                            }
                            backoff = if started.elapsed() > Duration::from_secs(60) {
                                Duration::from_secs(1)
                            } else {
                                (backoff * 2).min(Duration::from_secs(30))
                            };
                            break;
                        }
                        _ = tokio::time::sleep(beat) => {
                            if started.elapsed() < stale_after {
                                continue;
                            }
                            match workers::heartbeat_age(engine.db(), &name).await {
                                Ok(Some(age)) if stale(age, stale_after) => {
                                    warn!(worker = %name, age_secs = age, "worker heartbeat stopped; replacing the worker");
                                    break;
                                }
                                Ok(_) => {}
                                Err(e) => warn!(error = %e, "could not read the worker heartbeat"),
                            }
                        }
                    }
                }
                // Replaced: the stale worker's steps stop here, as a crash would stop them.
                monitor.abort();
            }
        });
        Workers {
            stop: Some(stop_tx),
            done,
            monitor,
            name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_from_a_clock_a_little_ahead_is_fresh() {
        let after = Duration::from_secs(10);
        assert!(!stale(-1, after));
        assert!(!stale(0, after));
        assert!(!stale(10, after));
        assert!(stale(11, after));
    }
}
