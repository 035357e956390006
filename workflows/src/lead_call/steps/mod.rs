//! The eight steps of `lead_call`. Each asks the policy what to do and returns a typed transition.
//! Before the call (`prepare`: intake, build_context, route), the call (`call`: place_call,
//! await_call) and after it (`outcome`: analyze, score, follow_up); what they share is here.

mod call;
mod outcome;
mod prepare;

pub use call::{AwaitCall, PlaceCall};
pub use outcome::{Analyze, FollowUp, Score};
pub use prepare::{BuildContext, Intake, Route};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use switchboard_engine::{
    ResultExt, Resumed, RunId, Step, StepContext, StepError, StepPolicy, Transition, WaitFor,
    WaitOutcome, end_run,
};
use tracing::{error, info};

use super::inputs::*;
use super::{CALL_EVENT, Deps};
use crate::agents_sync;
use crate::business::{Business, Callable, LocalTime, WithoutAnalysis};
use crate::lead::Lead;
use crate::policy::{
    Decider, FollowUpDecision, NoConnect, RouteAction, RunView, defaults, secs_until,
};
use crate::providers::ProviderError;
use crate::providers::error::CODE_INSUFFICIENT_QUOTA;
use crate::providers::openai::{ANALYSIS_TOKENS, AnalysisOutcome};
use crate::providers::voice::{CallEvent, CallRequest, CallStatus};
use crate::store::do_not_call::{self, Reason};
use crate::store::{self, calls};

/// The run's business, in the configuration version the run started with.
async fn business(deps: &Deps, ctx: &StepContext) -> Result<Business, StepError> {
    let id = &ctx.business_id.0;
    store::configs::for_run(&deps.db, &ctx.run_id.0, id)
        .await?
        .ok_or_else(|| StepError::fatal(format!("business {id} does not exist")))
}

/// The lead and the run's business, read together.
async fn load(
    deps: &Deps,
    ctx: &StepContext,
    lead_id: &str,
) -> Result<(Lead, Business), StepError> {
    let lead = async {
        store::lead(&deps.db, lead_id)
            .await?
            .ok_or_else(|| StepError::fatal(format!("lead {lead_id} does not exist")))
    };
    futures::try_join!(lead, business(deps, ctx))
}

/// The policy's decider for this step: the run's pinned script, the lead's history.
async fn decider(
    deps: &Deps,
    ctx: &StepContext,
    lead: &Lead,
    business: &Business,
    call_attempt: u32,
) -> Result<Decider, StepError> {
    Ok(deps
        .policy
        .for_run(&ctx.run_id.to_string(), business, lead, call_attempt)
        .await?)
}

fn quick() -> StepPolicy {
    StepPolicy {
        timeout: Duration::from_secs(10),
        ..StepPolicy::default()
    }
}

/// A provider error as a step error: while the provider is down or busy the run waits (without
/// using up attempts) as long as the provider asked, else one breaker cool-down; what another
/// attempt may fix is retried; the rest fails the run.
fn provider_step_error(deps: &Deps, e: ProviderError) -> StepError {
    if e.is_billing_lapse() {
        // Every request fails until someone pays: pause (holding no worker, spending no
        // attempt) and tell an operator (an error reaches Sentry when configured).
        error!(provider = e.provider(), error = %e, "the provider refuses for billing: work that needs it waits until it clears");
        StepError::defer(
            format!(
                "the provider refuses for billing ({CODE_INSUFFICIENT_QUOTA}): {e}; waiting until \
                 the account's billing is fixed"
            ),
            spread(deps.provider_down_wait * BILLING_WAIT_FACTOR),
        )
    } else if e.is_unavailable() {
        let after = e.retry_after().unwrap_or(deps.provider_down_wait);
        StepError::defer(e, spread(after))
    } else if e.is_retryable() {
        match e.retry_after() {
            Some(after) => StepError::RetryAfter {
                message: e.to_string(),
                after,
            },
            None => StepError::retryable(e),
        }
    } else {
        StepError::fatal(e)
    }
}

/// `wait` plus up to 50%, so runs that wait on the same thing do not all come back at once.
fn spread(wait: Duration) -> Duration {
    wait.mul_f64(1.0 + 0.5 * rand::random::<f64>())
}

/// How many breaker cool-downs work waits before asking a provider that refused for billing
/// again (plus up to 50% jitter): five minutes with the default cool-down.
const BILLING_WAIT_FACTOR: u32 = 10;
