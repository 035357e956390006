//! Errors of the engine (`EngineError`) and of a step (`StepError`, which says whether to retry).

use std::time::Duration;

/// What can go wrong inside the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Running migrations failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The task queue failed.
    #[error("task queue: {0}")]
    Queue(String),
    /// Stored JSON did not decode.
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A workflow or step is not registered, or registered twice.
    #[error("workflow definition: {0}")]
    Definition(String),
    /// A setting is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// No run with that id.
    #[error("run {0} not found")]
    RunNotFound(String),
    /// The run is in a state that does not allow the action.
    #[error("run is {status}: {action} is not possible")]
    InvalidState {
        /// The run's status.
        status: crate::status::RunStatus,
        /// What was asked.
        action: &'static str,
    },
}

/// `Result` with [`EngineError`].
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// How a step failed, which decides what the engine does next.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Try the step again after the policy's backoff, while attempts remain.
    #[error("{0}")]
    Retryable(String),
    /// Try again after this delay (a provider's `retry-after`), while attempts remain.
    #[error("{message} (retry after {after:?})")]
    RetryAfter {
        /// What happened.
        message: String,
        /// How long to wait.
        after: Duration,
    },
    /// Not now: run the same attempt again after this delay without using up an attempt
    /// (all call lines busy, the provider's circuit open, its concurrency limit reached).
    #[error("{message} (deferred {after:?})")]
    Defer {
        /// Why the step could not run now.
        message: String,
        /// How long to wait.
        after: Duration,
    },
    /// Do not retry: the run fails.
    #[error("{0}")]
    Fatal(String),
}

impl StepError {
    /// A retryable error.
    pub fn retryable(e: impl std::fmt::Display) -> Self {
        StepError::Retryable(e.to_string())
    }
    /// Run the same attempt again after `after`, without using up an attempt.
    pub fn defer(message: impl std::fmt::Display, after: Duration) -> Self {
        StepError::Defer {
            message: message.to_string(),
            after,
        }
    }
    /// A fatal error.
    pub fn fatal(e: impl std::fmt::Display) -> Self {
        StepError::Fatal(e.to_string())
    }
}

impl From<EngineError> for StepError {
    fn from(e: EngineError) -> Self {
        StepError::Retryable(e.to_string())
    }
}

impl From<sqlx::Error> for StepError {
    fn from(e: sqlx::Error) -> Self {
        StepError::Retryable(e.to_string())
    }
}

/// Adds `.retryable()?` and `.fatal()?` to any `Result`.
pub trait ResultExt<T> {
    /// Maps the error to [`StepError::Retryable`].
    fn retryable(self) -> Result<T, StepError>;
    /// Maps the error to [`StepError::Fatal`].
    fn fatal(self) -> Result<T, StepError>;
}

impl<T, E: std::fmt::Display> ResultExt<T> for std::result::Result<T, E> {
    fn retryable(self) -> Result<T, StepError> {
        self.map_err(StepError::retryable)
    }
    fn fatal(self) -> Result<T, StepError> {
        self.map_err(StepError::fatal)
    }
}
