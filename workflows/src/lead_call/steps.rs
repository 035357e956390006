//! The eight steps of `lead_call`. Each asks the policy what to do and returns a typed transition.

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

/// `intake`: checks the stored lead and its business, then starts the first call.
pub struct Intake(pub Arc<Deps>);

#[async_trait]
impl Step for Intake {
    const NAME: &'static str = "intake";
    type Input = LeadRef;

    fn policy(&self) -> StepPolicy {
        quick()
    }

    async fn run(&self, ctx: &StepContext, input: LeadRef) -> Result<Transition, StepError> {
        let (lead, business) = load(&self.0, ctx, &input.lead_id).await?;
        business.check_custom_fields(&lead.custom_fields).fatal()?;
        Ok(Transition::next::<BuildContext>(CallAttempt {
            lead_id: lead.id,
            call_attempt: 1,
        }))
    }
}

/// `build_context`: the agent's prompt, first message and variables for this call.
pub struct BuildContext(pub Arc<Deps>);

#[async_trait]
impl Step for BuildContext {
    const NAME: &'static str = "build_context";
    type Input = CallAttempt;

    fn policy(&self) -> StepPolicy {
        quick()
    }

    async fn run(&self, ctx: &StepContext, input: CallAttempt) -> Result<Transition, StepError> {
        let (lead, business) = load(&self.0, ctx, &input.lead_id).await?;
        let decider = decider(&self.0, ctx, &lead, &business, input.call_attempt).await?;
        let context = decider.context().await.record(ctx);
        Ok(Transition::next::<Route>(Contextualised {
            lead_id: input.lead_id,
            call_attempt: input.call_attempt,
            context,
        }))
    }
}

/// `route`: whether, when and with which agent to call.
pub struct Route(pub Arc<Deps>);

#[async_trait]
impl Step for Route {
    const NAME: &'static str = "route";
    type Input = Contextualised;

    fn policy(&self) -> StepPolicy {
        quick()
    }

    async fn run(&self, ctx: &StepContext, input: Contextualised) -> Result<Transition, StepError> {
        let (lead, business) = load(&self.0, ctx, &input.lead_id).await?;
        let decider = decider(&self.0, ctx, &lead, &business, input.call_attempt).await?;
        let route = decider.route().await.record(ctx);
        let (prompt, first_message) = defaults::compose(decider.business(), &route, &input.context);
        let plan = |route| CallPlan {
            lead_id: input.lead_id.clone(),
            call_attempt: input.call_attempt,
            route,
            context: input.context.clone(),
            prompt: prompt.clone(),
            first_message: first_message.clone(),
        };
        let secs = match route.action.clone() {
            RouteAction::CallNow => 0,
            RouteAction::CallAfter { secs } => secs,
            RouteAction::Never { reason } => {
                info!(%reason, "route decided not to call");
                return Ok(Transition::complete("not_called"));
            }
        };
        // Whatever the route said, the call is due only where the lead may lawfully be called
        // (and inside the opening hours, unless a script allowed otherwise).
        let now = self.0.policy.now();
        let due = now + chrono::Duration::seconds(secs as i64);
        let local = LocalTime::of(&lead, &business);
        let after = match business.callable(&local, due, !route.outside_hours) {
            Callable::Now => secs,
            Callable::At { at, why, zone } => {
                ctx.log(format!(
                    "{why}: the call waits until {}",
                    at.with_timezone(&zone).to_rfc3339()
                ));
                secs_until(at, now)
            }
            Callable::Never { why } => {
                ctx.log(format!("not called: {why}"));
                return Ok(Transition::complete("not_called"));
            }
        };
        Ok(match after {
            0 => Transition::next::<PlaceCall>(plan(route)),
            secs => Transition::after::<PlaceCall>(plan(route), Duration::from_secs(secs)),
        })
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

/// How long a call waits for a free line before trying again (plus up to 50% jitter).
const LINE_WAIT: Duration = Duration::from_secs(2);

/// How long the phone rings before the provider gives up.
const RINGING_TIMEOUT_SECS: u32 = 30;

/// `place_call`: claims a line, records the request, dials through the voice provider, then
/// waits for the call's end.
pub struct PlaceCall(pub Arc<Deps>);

impl PlaceCall {
    /// Wait for the end of the call: by the provider's id when it is known, else by the call key
    /// the provider's webhook echoes.
    fn await_end(
        &self,
        input: &CallPlan,
        call_key: &str,
        conversation_id: Option<String>,
        business: &Business,
    ) -> Transition {
        let key = conversation_id
            .clone()
            .unwrap_or_else(|| call_key.to_owned());
        let wait = WaitFor {
            kind: CALL_EVENT.into(),
            key,
            timeout: self.0.await_call_timeout.unwrap_or(Duration::from_secs(
                business.calling.await_call_timeout_secs,
            )),
        };
        let carry = CallInFlight {
            lead_id: input.lead_id.clone(),
            call_attempt: input.call_attempt,
            conversation_id,
            objective: input.route.objective.clone(),
            rechecks: 0,
            provider: business.voice_provider,
        };
        Transition::wait::<AwaitCall, _>(wait, carry)
    }
}

impl PlaceCall {
    /// What to do about a call this attempt already recorded: wait for a placed call or one
    /// whose answer was lost, treat one never learnt as not connected; `None` when there is no
    /// record, or the provider said the call did not start (dial).
    async fn recorded(
        &self,
        ctx: &StepContext,
        input: &CallPlan,
        call_key: &str,
        business: &Business,
    ) -> Result<Option<Transition>, StepError> {
        let Some(previous) = calls::call(&self.0.db, call_key).await? else {
            return Ok(None);
        };
        Ok(match previous.status.as_str() {
            "rejected" => None,
            "placed" => {
                ctx.log("the call was already placed: waiting for its end, not dialing again");
                Some(self.await_end(input, call_key, previous.conversation_id, business))
            }
            "dialing" => {
                ctx.log(
                    "the call request was sent but its answer never recorded: waiting for the \
                     provider's webhook instead of dialing again",
                );
                Some(self.await_end(input, call_key, None, business))
            }
            other => {
                ctx.log(format!(
                    "the call's outcome is {other}: it is not dialed again in this attempt"
                ));
                Some(Transition::next::<FollowUp>(CallResult {
                    lead_id: input.lead_id.clone(),
                    call_attempt: input.call_attempt,
                    result: Outcome::NotConnected {
                        reason: NoConnect::Unknown,
                    },
                }))
            }
        })
    }
}

#[async_trait]
impl Step for PlaceCall {
    const NAME: &'static str = "place_call";
    type Input = CallPlan;

    fn policy(&self) -> StepPolicy {
        StepPolicy {
            max_attempts: 4,
            backoff: Duration::from_secs(1),
            backoff_factor: 3,
            // Room for the request and its quick retries (each bounded by the provider timeout).
            timeout: Duration::from_secs(120),
            ..StepPolicy::default()
        }
    }

    async fn run(&self, ctx: &StepContext, input: CallPlan) -> Result<Transition, StepError> {
        let deps = &self.0;
        let (lead, business) = load(deps, ctx, &input.lead_id).await?;
        let call_key = call_key(&ctx.run_id, input.call_attempt);

        // Never dial blindly twice: look at what an earlier execution recorded.
        if let Some(next) = self.recorded(ctx, &input, &call_key, &business).await? {
            return Ok(next);
        }
        // Checked at every dial: the number may have gone on the list since the run started.
        if let Some(entry) = do_not_call::find(&deps.db, &business.id, lead.phone.as_str()).await? {
            ctx.log(format!(
                "not dialled: the number is on the business' do-not-call list ({})",
                entry.reason
            ));
            return Ok(Transition::complete("do_not_call"));
        }
        if business.calling.require_consent && lead.consent.is_none() {
            ctx.log("not dialled: the business calls only with the person's consent, and none was recorded");
            return Ok(Transition::complete("no_consent"));
        }
        // The hours may have closed since the route was decided (the call waited for a line or
        // for the provider): a call is only dialled inside the legal window in the lead's local
        // time, and inside the opening hours unless a script allowed otherwise.
        let now = deps.policy.now();
        let local = LocalTime::of(&lead, &business);
        match business.callable(&local, now, !input.route.outside_hours) {
            Callable::Now => {}
            Callable::At { at, why, zone } => {
                return Err(StepError::defer(
                    format!(
                        "{why}: the call waits until {}",
                        at.with_timezone(&zone).to_rfc3339()
                    ),
                    (at - now).to_std().unwrap_or_default(),
                ));
            }
            Callable::Never { why } => {
                ctx.log(format!("not called: {why}"));
                return Ok(Transition::complete("not_called"));
            }
        }

        let agent = business.agent(&input.route.agent);
        let agent_id = agents_sync::agent_id(&deps.db, &business.id, &input.route.agent, agent)
            .await?
            .ok_or_else(|| {
                StepError::fatal(format!(
                    "agent {:?} of {} has no provider id: set its agent_id or run \
                     `switchboard agents sync`",
                    input.route.agent, business.id
                ))
            })?;
        let mut variables = input.context.dynamic_variables.clone();
        variables.insert("run_id".into(), ctx.run_id.to_string().into());
        variables.insert("call_attempt".into(), input.call_attempt.into());
        let voice = deps.voices.get(business.voice_provider);
        if voice.simulated
            && let Some(steer) = store::sim_steering::of_lead(&deps.db, &lead.id).await?
        {
            steer.apply_to(&mut variables);
        }
        let request = CallRequest {
            call_key: call_key.clone(),
            lead_id: lead.id.clone(),
            agent_id,
            phone_number_id: input.route.phone_number_id.clone(),
            line: agent.line,
            to_number: lead.phone.as_str().to_owned(),
            variables,
            prompt: input.prompt.clone(),
            first_message: input.first_message.clone(),
            language: agent.language.clone(),
            voice_id: agent.voice_id.clone(),
            ringing_timeout_secs: RINGING_TIMEOUT_SECS,
        };
        let record = calls::CallRecord {
            id: call_key.clone(),
            run_id: ctx.run_id.to_string(),
            lead_id: lead.id.clone(),
            business_id: Some(business.id.clone()),
            attempt: i64::from(input.call_attempt),
            status: "dialing".into(),
            conversation_id: None,
            request: serde_json::to_string(&request).fatal()?,
            error: None,
            ended_at: None,
        };
        let caps = calls::Caps {
            global: deps.max_concurrent_calls,
            business: business.calling.max_concurrent_calls,
            business_per_minute: business.calling.max_calls_per_minute,
            global_per_minute: deps.max_calls_per_minute,
        };
        let claim = calls::claim_line(&deps.db, &record, caps).await?;
        match claim {
            calls::Claim::Claimed => {
                let route = &input.route;
                let campaign = route.campaign.as_deref();
                calls::record_route(
                    &deps.db,
                    &call_key,
                    &route.agent,
                    campaign,
                    &route.objective,
                )
                .await?;
            }
            calls::Claim::Busy { .. }
            | calls::Claim::MinuteUsed { .. }
            | calls::Claim::OtherBusinessFirst => {
                return Err(StepError::defer(claim.to_string(), spread(LINE_WAIT)));
            }
            calls::Claim::AlreadyRecorded => {
                // Another execution of this attempt recorded the call first.
                return self
                    .recorded(ctx, &input, &call_key, &business)
                    .await?
                    .ok_or_else(|| StepError::retryable("the call record changed: read it again"));
            }
        }
        match voice.provider.place_call(&request).await {
            Ok(placed) => {
                calls::record_placed(&deps.db, &call_key, &placed.call_id).await?;
                Ok(self.await_end(&input, &call_key, Some(placed.call_id), &business))
            }
            Err(e) if e.may_have_been_acted_on() => {
                // The call may be ringing: the row stays `dialing` and the run waits for the
                // webhook that echoes the call key.
                ctx.log(format!(
                    "no answer to the call request ({e}): the call may be ringing, so it is not \
                     dialed again; waiting for the provider's webhook"
                ));
                Ok(self.await_end(&input, &call_key, None, &business))
            }
            Err(e) => {
                if !calls::record_not_started(&deps.db, &call_key, "rejected", e.to_string())
                    .await?
                {
                    // A webhook for this call arrived meanwhile: it did start after all.
                    if let Some(next) = self.recorded(ctx, &input, &call_key, &business).await? {
                        return Ok(next);
                    }
                }
                Err(provider_step_error(deps, e))
            }
        }
    }
}

/// `await_call`: runs when the end-of-call webhook arrives or the deadline passes. At the
/// deadline it first asks the provider for the call: a lost webhook must not turn a real
/// conversation into a no-answer.
pub struct AwaitCall(pub Arc<Deps>);

/// Times a run waits again for a call the provider still reports as under way.
const MAX_RECHECKS: u32 = 3;

/// How long to wait again for a call the provider reports as still under way.
const RECHECK_AFTER: Duration = Duration::from_secs(600);

fn not_connected(call: &CallInFlight, reason: NoConnect) -> Transition {
    Transition::next::<FollowUp>(CallResult {
        lead_id: call.lead_id.clone(),
        call_attempt: call.call_attempt,
        result: Outcome::NotConnected { reason },
    })
}

/// What `await_call` found: the call is over, connected or not, or the run waits again.
enum CallState {
    Connected(ConnectedCall),
    NotConnected(NoConnect),
    WaitAgain(Transition),
}

/// How the call went, from its provider's event.
fn after_call(call: &CallInFlight, event: CallEvent) -> Result<CallState, StepError> {
    match event {
        CallEvent::Ended(report) => Ok(CallState::Connected(ConnectedCall {
            lead_id: call.lead_id.clone(),
            call_attempt: call.call_attempt,
            conversation_id: report.call_id,
            objective: call.objective.clone(),
            transcript: report.transcript,
            duration_secs: report.duration_secs,
        })),
        CallEvent::NotConnected { reason, .. } => Ok(CallState::NotConnected(reason)),
        other => Err(StepError::fatal(format!(
            "unexpected {} event for a call",
            other.kind()
        ))),
    }
}

impl AwaitCall {
    /// The deadline passed without a webhook: what does the provider say about the call?
    async fn reconcile(
        &self,
        ctx: &StepContext,
        call: CallInFlight,
        call_key: &str,
    ) -> Result<CallState, StepError> {
        let deps = &self.0;
        // A request whose answer was never recorded: a webhook may have told us its id since.
        let known = match call.conversation_id.clone() {
            Some(id) => Some(id),
            None => calls::call(&deps.db, call_key)
                .await?
                .and_then(|c| c.conversation_id),
        };
        let known = match known {
            Some(id) => Some(id),
            None => {
                let gave_up = calls::record_not_started(
                    &deps.db,
                    call_key,
                    "unknown",
                    "no trace of the call at the provider by the deadline".into(),
                )
                .await?;
                if gave_up {
                    None
                } else {
                    // A webhook named the call just now.
                    calls::call(&deps.db, call_key)
                        .await?
                        .and_then(|c| c.conversation_id)
                }
            }
        };
        let Some(conversation_id) = known else {
            ctx.log(
                "the provider never reported a call for this request by the deadline: treating \
                 it as not connected (it is not dialed again in this attempt)",
            );
            return Ok(CallState::NotConnected(NoConnect::Unknown));
        };
        self.read_call(ctx, call, conversation_id, "no webhook by the deadline")
            .await
    }

    /// Asks the provider how the call went (`why` says why it is asked), and waits again while
    /// the provider still reports it under way or without its transcript.
    async fn read_call(
        &self,
        ctx: &StepContext,
        call: CallInFlight,
        conversation_id: String,
        why: &str,
    ) -> Result<CallState, StepError> {
        let deps = &self.0;
        let voice = &deps.voices.get(call.provider).provider;
        let pending = match voice.get_call(&conversation_id).await {
            Ok(CallStatus::Finished(CallEvent::Incomplete { .. })) => "without its transcript",
            Ok(CallStatus::Finished(event)) => {
                ctx.log(format!(
                    "{why}; the provider reports the call {}",
                    event.kind()
                ));
                return after_call(&call, event);
            }
            Ok(CallStatus::Pending(state)) => &format!("still {state}"),
            Err(e) if e.status() == Some(404) => {
                ctx.log(format!("{why}, and the provider has no such call"));
                return Ok(CallState::NotConnected(NoConnect::NoWebhook));
            }
            Err(e) if e.is_unavailable() => return Err(provider_step_error(deps, e)),
            Err(e) if e.is_retryable() && ctx.attempt < self.policy().max_attempts => {
                return Err(StepError::retryable(e));
            }
            Err(e) => {
                ctx.log(format!("{why}, and the provider could not be asked: {e}"));
                return Ok(CallState::NotConnected(NoConnect::NoWebhook));
            }
        };
        if call.rechecks >= MAX_RECHECKS {
            ctx.log(format!(
                "{why}; the call is {pending} after {MAX_RECHECKS} more waits: giving up on it"
            ));
            return Ok(CallState::NotConnected(NoConnect::NoWebhook));
        }
        ctx.log(format!(
            "{why}; the call is {pending} at the provider: waiting again"
        ));
        let wait = WaitFor {
            kind: CALL_EVENT.into(),
            key: conversation_id.clone(),
            timeout: deps.await_call_timeout.unwrap_or(RECHECK_AFTER),
        };
        let carry = CallInFlight {
            rechecks: call.rechecks + 1,
            conversation_id: Some(conversation_id),
            ..call
        };
        Ok(CallState::WaitAgain(Transition::wait::<AwaitCall, _>(
            wait, carry,
        )))
    }
}

#[async_trait]
impl Step for AwaitCall {
    const NAME: &'static str = "await_call";
    type Input = Resumed<CallInFlight>;

    fn policy(&self) -> StepPolicy {
        StepPolicy {
            // Room for the provider lookup at the deadline (with its quick retries).
            timeout: Duration::from_secs(120),
            ..StepPolicy::default()
        }
    }

    async fn run(
        &self,
        ctx: &StepContext,
        input: Resumed<CallInFlight>,
    ) -> Result<Transition, StepError> {
        let call = input.carry;
        let call_key = call_key(&ctx.run_id, call.call_attempt);
        let state = match input.outcome {
            WaitOutcome::Event { payload } => {
                let voice = &self.0.voices.get(call.provider).provider;
                match voice.parse_webhook(payload.to_string().as_bytes()) {
                    Ok(CallEvent::Incomplete { call_id, .. }) => {
                        let why = "the webhook left out the transcript or the call's details";
                        self.read_call(ctx, call.clone(), call_id, why).await
                    }
                    Ok(event) => after_call(&call, event),
                    Err(e) => Err(StepError::fatal(e)),
                }
            }
            WaitOutcome::TimedOut => self.reconcile(ctx, call.clone(), &call_key).await,
        };
        // The call is over (or the run fails): its line is free again, and a connected call's
        // length is metered.
        let (next, duration) = match state {
            Ok(CallState::WaitAgain(wait)) => return Ok(wait),
            Ok(CallState::Connected(connected)) => {
                let duration = connected.duration_secs;
                (Ok(Transition::next::<Analyze>(connected)), duration)
            }
            Ok(CallState::NotConnected(reason)) => (Ok(not_connected(&call, reason)), None),
            Err(fatal @ StepError::Fatal(_)) => (Err(fatal), None),
            Err(e) => return Err(e),
        };
        calls::end(&self.0.db, &call_key, duration).await?;
        next
    }
}

/// `analyze`: structured analysis of the transcript by the LLM.
pub struct Analyze(pub Arc<Deps>);

#[async_trait]
impl Step for Analyze {
    const NAME: &'static str = "analyze";
    type Input = ConnectedCall;

    fn policy(&self) -> StepPolicy {
        StepPolicy {
            max_attempts: 3,
            backoff: Duration::from_secs(2),
            timeout: Duration::from_secs(120),
            ..StepPolicy::default()
        }
    }

    async fn run(&self, ctx: &StepContext, input: ConnectedCall) -> Result<Transition, StepError> {
        let business = business(&self.0, ctx).await?;
        let objective = match input.objective.as_str() {
            "" => business.objectives[0].name.as_str(),
            o => o,
        };
        let system = format!(
            "You analyse sales calls for {}. Objective: {objective}. Rate intent, urgency, budget, fit and \
             engagement from the transcript only, and answer in the given JSON schema.",
            business.name
        );
        // Each later attempt (after an answer cut off at its budget, or any other retry) may use
        // twice the tokens of the one before.
        let budget = ANALYSIS_TOKENS.saturating_mul(1 << (ctx.attempt.clamp(1, 4) - 1));
        let outcome = self
            .0
            .llm
            .analyze(&system, &input.transcript, budget)
            .await
            .map_err(|e| provider_step_error(&self.0, e))?;
        let unanalysed = |why: String| {
            ctx.log(format!(
                "no analysis: {why}; the business' rule for calls without one applies"
            ));
            Ok(Transition::next::<FollowUp>(CallResult {
                lead_id: input.lead_id.clone(),
                call_attempt: input.call_attempt,
                result: Outcome::Unanalysed { why },
            }))
        };
        match outcome {
            AnalysisOutcome::Parsed(analysis) => Ok(Transition::next::<Score>(AnalysedCall {
                lead_id: input.lead_id,
                call_attempt: input.call_attempt,
                conversation_id: input.conversation_id,
                analysis,
            })),
            AnalysisOutcome::Refused(why) => unanalysed(format!("the model refused ({why})")),
            AnalysisOutcome::Filtered => {
                unanalysed("the provider's content filter withheld the answer".into())
            }
            AnalysisOutcome::Truncated => Err(StepError::retryable(format!(
                "the analysis was cut off at {budget} tokens: asking again with {}",
                budget.saturating_mul(2)
            ))),
            AnalysisOutcome::Invalid(why) => {
                Err(StepError::retryable(format!("analysis invalid: {why}")))
            }
        }
    }
}

/// `score`: 0–100 and a tag from the analysis.
pub struct Score(pub Arc<Deps>);

#[async_trait]
impl Step for Score {
    const NAME: &'static str = "score";
    type Input = AnalysedCall;

    fn policy(&self) -> StepPolicy {
        quick()
    }

    async fn run(&self, ctx: &StepContext, input: AnalysedCall) -> Result<Transition, StepError> {
        let (lead, business) = load(&self.0, ctx, &input.lead_id).await?;
        // The lead's history carries what this call found to the next call's context.
        let call_key = call_key(&ctx.run_id, input.call_attempt);
        calls::record_summary(&self.0.db, &call_key, &input.analysis.summary).await?;
        if input.analysis.opt_out {
            opt_out(&self.0, ctx, &business, &lead, "asked on a call").await?;
        }
        let decider = decider(&self.0, ctx, &lead, &business, input.call_attempt).await?;
        let score = decider.score(&input.analysis).await.record(ctx);
        Ok(Transition::next::<FollowUp>(CallResult {
            lead_id: input.lead_id,
            call_attempt: input.call_attempt,
            result: Outcome::Scored { score },
        }))
    }
}

/// `follow_up`: call again after a delay, hand off, or stop.
pub struct FollowUp(pub Arc<Deps>);

#[async_trait]
impl Step for FollowUp {
    const NAME: &'static str = "follow_up";
    type Input = CallResult;

    fn policy(&self) -> StepPolicy {
        quick()
    }

    async fn run(&self, ctx: &StepContext, input: CallResult) -> Result<Transition, StepError> {
        let (lead, business) = load(&self.0, ctx, &input.lead_id).await?;
        let call_key = call_key(&ctx.run_id, input.call_attempt);
        let (outcome, score) = match &input.result {
            Outcome::Scored { score } => ("connected", Some(score)),
            Outcome::Unanalysed { .. } => ("connected", None),
            Outcome::NotConnected { reason } => (reason.as_str(), None),
        };
        calls::record_outcome(
            &self.0.db,
            &call_key,
            outcome,
            score.map(|s| s.value as i64),
            score.map(|s| s.tag.as_str()),
        )
        .await?;
        // The number may have gone on the list during the call (or the person asked, above).
        if let Some(entry) =
            do_not_call::find(&self.0.db, &business.id, lead.phone.as_str()).await?
        {
            ctx.log(format!(
                "not called again: the number is on the business' do-not-call list ({})",
                entry.reason
            ));
            return Ok(Transition::complete(match entry.reason.as_str() {
                "opted_out" => "opted_out",
                _ => "do_not_call",
            }));
        }
        let decider = decider(&self.0, ctx, &lead, &business, input.call_attempt).await?;
        let run = RunView::after_call(
            ctx.run_id.to_string(),
            business.calling.max_call_attempts,
            crate::policy::view(&lead, input.call_attempt),
            outcome,
            score,
        );
        let decision = match &input.result {
            Outcome::Scored { .. } => decider.follow_up(run).await.record(ctx),
            Outcome::Unanalysed { why } => without_analysis(&business, why),
            Outcome::NotConnected { .. } => decider.on_no_answer(run).await.record(ctx),
        };
        ctx.log(format!(
            "decision: {}",
            serde_json::to_string(&decision).unwrap_or_default()
        ));
        Ok(match decision {
            FollowUpDecision::CallAgain { after_secs }
                if input.call_attempt < business.calling.max_call_attempts =>
            {
                let next = CallAttempt {
                    lead_id: input.lead_id,
                    call_attempt: input.call_attempt + 1,
                };
                Transition::after::<BuildContext>(next, Duration::from_secs(after_secs))
            }
            FollowUpDecision::CallAgain { .. } => Transition::complete(match input.result {
                Outcome::Scored { .. } | Outcome::Unanalysed { .. } => "follow_ups_exhausted",
                Outcome::NotConnected { .. } => "unreachable",
            }),
            FollowUpDecision::HandOff { reason } => {
                info!(%reason, "handing the lead off");
                Transition::complete("handed_off")
            }
            FollowUpDecision::Stop { outcome } => Transition::complete(outcome),
            FollowUpDecision::OptOut { reason } => {
                opt_out(&self.0, ctx, &business, &lead, &reason).await?;
                Transition::complete("opted_out")
            }
        })
    }
}

/// The business' rule for a connected call the model would not analyse (`why`).
fn without_analysis(business: &Business, why: &str) -> FollowUpDecision {
    match business.calling.analysis_unavailable {
        WithoutAnalysis::HandOff => FollowUpDecision::HandOff {
            reason: format!("a person reads the call: {why}"),
        },
        WithoutAnalysis::CallAgain => FollowUpDecision::CallAgain {
            after_secs: business.calling.follow_up_after_secs,
        },
        WithoutAnalysis::Stop => FollowUpDecision::Stop {
            outcome: "analysis_unavailable".into(),
        },
    }
}

/// The person asked not to be called again (on the call, or so the business' script decided,
/// `reason` says): their number goes on the business' do-not-call list and the other open runs
/// for that number end `opted_out` (this one ends so at its follow-up). Personalised inbound
/// calls still work for them.
async fn opt_out(
    deps: &Deps,
    ctx: &StepContext,
    business: &Business,
    lead: &Lead,
    reason: &str,
) -> Result<(), StepError> {
    let runs = store::open_runs_of_number(&deps.db, &business.id, lead.phone.as_str()).await?;
    let mut tx = deps.db.begin().await?;
    let phones = [lead.phone.clone()];
    do_not_call::add(
        &mut tx,
        &business.id,
        &phones,
        Reason::OptedOut,
        Some(reason),
    )
    .await?;
    let mut ended = 0;
    for run in runs.iter().filter(|r| **r != ctx.run_id.0) {
        ended += u32::from(end_run(&mut tx, &RunId(run.clone()), "opted_out").await?);
    }
    tx.commit().await?;
    ctx.log(format!(
        "the lead asked not to be called again ({reason}): the number is on the do-not-call list{}",
        match ended {
            0 => String::new(),
            n => format!(", and {n} other run(s) for the number ended"),
        }
    ));
    Ok(())
}
