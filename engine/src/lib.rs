//! Switchboard's durable workflow engine, generic over what the steps do.
//!
//! Runs advance step by step on apalis workers. Each transition commits the attempt's result,
//! the run's new state and what comes next in one transaction: when the next step is due at
//! once, the claim of its attempt by the same worker, which goes on with it (a segment, a few
//! steps long); otherwise the next task. A pause for an external event is a state plus a deadline
//! task, holding no worker. The workers fetch from our own apalis backend over apalis' job table,
//! woken by commits without losing a wake-up. Retries with backoff, timeouts, timers and
//! cancellation are the engine's own, around the apalis 1.0 pitfalls (one test each in
//! `tests/tests/suite/engine.rs`).
//!
//! - [`workflow`]: the [`Step`] trait, [`Transition`]s and the [`Registry`].
//! - [`Engine`]: start, cancel, deliver events, run workers.
//! - [`store`]: all SQL, for SQLite and PostgreSQL.

pub mod error;
pub mod ids;
mod runtime;
pub mod status;
pub mod store;
pub mod workflow;

pub use error::{EngineError, ResultExt, StepError};
pub use ids::{BusinessId, RunId, StepId, WaitId};
pub use runtime::{
    ChangeFeed, Delivery, Engine, ExternalEvent, NewRun, WorkerOptions, Workers, end_run,
};
pub use status::{RunStatus, StepStatus, WaitStatus};
pub use store::{Db, migrate, pending_migrations};
pub use workflow::{
    Registry, Resumed, Step, StepContext, StepPolicy, Transition, WaitFor, WaitOutcome, Workflow,
};
