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

/// What a step knows about the run it executes in.
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
