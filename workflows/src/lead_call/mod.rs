//! The `lead_call` workflow: intake → build_context → route → place_call → await_call → analyze →
//! score → follow_up, with the no-answer and call-again branches.

mod inputs;
mod steps;

pub use inputs::*;
pub use steps::{Analyze, AwaitCall, BuildContext, FollowUp, Intake, PlaceCall, Route, Score};

use std::sync::Arc;
use std::time::Duration;

use switchboard_engine::store::Db;
use switchboard_engine::{EngineError, Workflow};

use crate::policy::Policy;
use crate::providers::openai::CallAnalyst;
use crate::providers::voice::Voices;

/// The workflow's registered name.
pub const WORKFLOW: &str = "lead_call";

/// The event kind a run waits on while a call is in progress; the key is the provider's call id
/// (or the call key, when the call's id was never recorded).
pub const CALL_EVENT: &str = "call.ended";

/// What the steps need from the outside world.
pub struct Deps {
    /// The database (leads, businesses, calls).
    pub db: Db,
    /// The voice providers (each business calls through its own).
    pub voices: Voices,
    /// The analysis model.
    pub llm: Arc<dyn CallAnalyst>,
    /// Every business decision.
    pub policy: Arc<Policy>,
    /// Overrides every business' webhook deadline (tests of the deadline path).
    pub await_call_timeout: Option<Duration>,
    /// Calls in flight at once across every business, at most (the provider plan's limit).
    pub max_concurrent_calls: u32,
    /// Calls started a minute across every business, at most (the provider plan's limit).
    pub max_calls_per_minute: Option<u32>,
    /// How long a run waits before asking a provider that is down again, unless it said
    /// (the breaker's cool-down; plus up to 50% jitter).
    pub provider_down_wait: Duration,
}

/// Starts a `lead_call` run for lead `lead_id` of `business_id` in `tx`, pinned to the business'
/// active script version (the caller commits, then notifies the engine).
pub async fn start_run(
    engine: &switchboard_engine::Engine,
    tx: &mut switchboard_engine::store::Tx,
    business_id: &str,
    lead_id: &str,
) -> Result<switchboard_engine::RunId, EngineError> {
    let run_id = engine
        .start_run_in::<Intake>(
            tx,
            switchboard_engine::NewRun {
                workflow: WORKFLOW,
                business_id: &switchboard_engine::BusinessId(business_id.to_owned()),
                subject_id: lead_id,
            },
            LeadRef {
                lead_id: lead_id.to_owned(),
            },
        )
        .await?;
    crate::store::scripts::pin(tx, &run_id.0, business_id).await?;
    crate::store::configs::pin(tx, &run_id.0, business_id).await?;
    Ok(run_id)
}

/// Builds the `lead_call` workflow on `deps`.
pub fn workflow(deps: Arc<Deps>) -> Result<Workflow, EngineError> {
    Workflow::builder(WORKFLOW)
        .step(Intake(deps.clone()))
        .step(BuildContext(deps.clone()))
        .step(Route(deps.clone()))
        .step(PlaceCall(deps.clone()))
        .step(AwaitCall(deps.clone()))
        .step(Analyze(deps.clone()))
        .step(Score(deps.clone()))
        .step(FollowUp(deps))
        .build()
}
