//! Workflows: typed steps, the transitions they return, and the registry that finds them by name.
//!
//! A step is a struct implementing [`Step`] with a typed input. It returns a [`Transition`] that
//! names the next step by its type, so the input handed to the next step is checked at compile
//! time. Steps are registered by a stable name; a run stores the step name and its JSON input,
//! so a deploy that adds steps never breaks runs in flight.

mod policy;
mod registry;
mod transition;

pub use policy::StepPolicy;
pub(crate) use registry::ErasedStep;
pub use registry::{Registry, Workflow, WorkflowBuilder};
pub use transition::{Resumed, Transition, WaitFor, WaitOutcome};

use async_trait::async_trait;
use serde::{Serialize, de::DeserializeOwned};

use crate::error::StepError;
use crate::ids::{BusinessId, RunId};

/// What a step knows about the run it executes in, and its journal for the timeline.
#[derive(Clone, Debug)]
pub struct StepContext {
    /// The run.
    pub run_id: RunId,
    /// The business the run belongs to.
    pub business_id: BusinessId,
    /// What the run is about (for `lead_call`, the lead id).
    pub subject_id: String,
    /// This step's name.
    pub step: &'static str,
    /// 1 for the first attempt of this step, 2 for its first retry, …
    pub attempt: u32,
    /// Lines and errors recorded on this attempt (see [`StepContext::log`]).
    pub journal: Journal,
}

impl StepContext {
    /// Adds a line to this attempt's log in the run's timeline.
    pub fn log(&self, line: impl Into<String>) {
        self.journal.lock().log.push(line.into());
    }

    /// Records that this attempt failed with `error` although the run goes on with the
    /// transition the step returns (a fallback): the attempt shows as `failed` with the error.
    pub fn fell_back(&self, error: impl Into<String>) {
        self.journal.lock().error = Some(error.into());
    }
}

/// What a step attempt recorded besides its result.
#[derive(Clone, Debug, Default)]
pub struct Journal(std::sync::Arc<std::sync::Mutex<Entries>>);

/// The journal's content.
#[derive(Clone, Debug, Default)]
pub struct Entries {
    /// Log lines, in order.
    pub log: Vec<String>,
    /// The error of a fallback, if the step fell back.
    pub error: Option<String>,
}

impl Journal {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding this lock loses nothing worth refusing to go on for.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What was recorded so far.
    pub fn entries(&self) -> Entries {
        self.lock().clone()
    }
}

/// One step of a workflow.
#[async_trait]
pub trait Step: Send + Sync + 'static {
    /// The step's stable name, stored with every run; never rename a step that has runs.
    const NAME: &'static str;
    /// The typed input, stored as JSON between steps.
    type Input: Serialize + DeserializeOwned + Send + 'static;

    /// Retries, backoff and timeout for this step.
    fn policy(&self) -> StepPolicy {
        StepPolicy::default()
    }

    /// Does the work and decides what comes next. Effects that must not repeat carry an
    /// idempotency key derived from the context and are recorded before they happen.
    async fn run(&self, ctx: &StepContext, input: Self::Input) -> Result<Transition, StepError>;
}
