//! Switchboard's durable workflow engine, generic over what the steps do.
//!
//! Runs advance step by step on apalis workers. Each transition commits the attempt's result,
//! the run's new state and the next task in one transaction; a pause for an external event is a
//! state plus a deadline task, holding no worker. Retries with backoff, timeouts, timers and
//! cancellation are the engine's own, around the apalis 1.0 pitfalls (one test each in
//! `tests/tests/suite/engine.rs`).
//!
//! - [`workflow`]: the [`Step`] trait, [`Transition`]s and the [`Registry`].
//! - [`Engine`]: start, cancel, deliver events, run workers.
//! - [`store`]: all SQL, for SQLite and PostgreSQL.

pub mod error;
pub mod ids;
mod runtime;
pub mod store;
pub mod workflow;

pub use error::{EngineError, ResultExt, StepError};
pub use ids::{BusinessId, RunId, StepId, WaitId};
pub use runtime::{ChangeFeed, Delivery, Engine, ExternalEvent, NewRun, WorkerOptions, Workers};
pub use store::{Db, migrate, pending_migrations};
pub use workflow::{
    Registry, Resumed, Step, StepContext, StepPolicy, Transition, WaitFor, WaitOutcome, Workflow,
};
