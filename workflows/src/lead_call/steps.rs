//! The eight steps of `lead_call`. Each asks the policy what to do and returns a typed transition.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use switchboard_engine::{
    ResultExt, Resumed, Step, StepContext, StepError, StepPolicy, Transition, WaitFor, WaitOutcome,
};
use tracing::info;

use super::inputs::*;
use super::{CALL_EVENT, Deps};
use crate::business::Business;
use crate::lead::Lead;
use crate::policy::{Decider, FollowUpDecision, NoConnect, RouteAction, RunView, defaults};
use crate::providers::elevenlabs::{
    AgentOverride, ClientData, ConfigOverride, Conversation, ConversationStatus, FailureReason,
    OutboundCallRequest, PromptOverride, TelephonyCallConfig, WebhookEvent, parse_webhook,
};
use crate::providers::openai::AnalysisOutcome;
use crate::store;

/// The run's business.
async fn business(deps: &Deps, ctx: &StepContext) -> Result<Business, StepError> {
    let id = &ctx.business_id.0;
    store::business(&deps.db, id)
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
        Ok(match route.action.clone() {
            RouteAction::CallNow => Transition::next::<PlaceCall>(plan(route)),
            RouteAction::CallAfter { secs } => {
                Transition::after::<PlaceCall>(plan(route), Duration::from_secs(secs))
            }
            RouteAction::Never { reason } => {
                info!(%reason, "route decided not to call");
                Transition::complete("not_called")
            }
        })
    }
}

/// `place_call`: dials through the voice provider, recording the request first, then waits.
pub struct PlaceCall(pub Arc<Deps>);

#[async_trait]
impl Step for PlaceCall {
    const NAME: &'static str = "place_call";
    type Input = CallPlan;

    fn policy(&self) -> StepPolicy {
        StepPolicy {
            max_attempts: 4,
            backoff: Duration::from_secs(1),
            backoff_factor: 3,
            timeout: Duration::from_secs(30),
            ..StepPolicy::default()
        }
    }

    async fn run(&self, ctx: &StepContext, input: CallPlan) -> Result<Transition, StepError> {
        let deps = &self.0;
        let (lead, business) = load(deps, ctx, &input.lead_id).await?;
        let call_key = call_key(&ctx.run_id, input.call_attempt);
        let in_flight = |conversation_id: String| CallInFlight {
            lead_id: input.lead_id.clone(),
            call_attempt: input.call_attempt,
            conversation_id,
            objective: input.route.objective.clone(),
            rechecks: 0,
        };
        let timeout = deps.await_call_timeout.unwrap_or(Duration::from_secs(
            business.calling.await_call_timeout_secs,
        ));
        let wait = |conversation_id: &str| WaitFor {
            kind: CALL_EVENT.into(),
            key: conversation_id.into(),
            timeout,
        };

        // Never dial blindly twice: look at what an earlier execution recorded.
        if let Some(previous) = store::call(&deps.db, &call_key).await? {
            match (previous.status.as_str(), previous.conversation_id) {
                ("placed", Some(conversation_id)) => {
                    return Ok(Transition::wait::<AwaitCall, _>(
                        wait(&conversation_id),
                        in_flight(conversation_id),
                    ));
                }
                ("dialing", _) => {
                    // Sent, but the answer was never recorded: the call may be ringing. Do not dial
                    // again now; treat it as not connected and let the policy decide.
                    store::record_call_result(
                        &deps.db,
                        &call_key,
                        "unknown",
                        None,
                        Some("outcome unknown after a crash".into()),
                    )
                    .await?;
                    return Ok(Transition::next::<FollowUp>(CallResult {
                        lead_id: input.lead_id,
                        call_attempt: input.call_attempt,
                        result: Outcome::NotConnected {
                            reason: NoConnect::Unknown,
                        },
                    }));
                }
                _ => {} // rejected: the provider said the call did not start; dial again.
            }
        }

        let mut dynamic_variables = input.context.dynamic_variables.clone();
        dynamic_variables.insert("run_id".into(), ctx.run_id.to_string().into());
        dynamic_variables.insert("call_key".into(), call_key.clone().into());
        dynamic_variables.insert("call_attempt".into(), input.call_attempt.into());
        if let (true, Some(sim)) = (deps.simulated, &lead.sim) {
            sim.apply_to(&mut dynamic_variables);
        }
        let language = business.agent(&input.route.agent).language.clone();
        let request = OutboundCallRequest {
            agent_id: input.route.agent_id.clone(),
            agent_phone_number_id: input.route.phone_number_id.clone(),
            to_number: lead.phone.as_str().to_owned(),
            conversation_initiation_client_data: ClientData {
                user_id: Some(lead.id.clone()),
                dynamic_variables,
                conversation_config_override: Some(ConfigOverride {
                    agent: Some(AgentOverride {
                        prompt: Some(PromptOverride {
                            prompt: Some(input.prompt.clone()),
                        }),
                        first_message: Some(input.first_message.clone()),
                        language: Some(language),
                    }),
                    tts: None,
                }),
            },
            telephony_call_config: Some(TelephonyCallConfig {
                ringing_timeout_secs: 30,
            }),
        };
        let record = store::CallRecord {
            id: call_key.clone(),
            run_id: ctx.run_id.to_string(),
            lead_id: lead.id.clone(),
            attempt: input.call_attempt as i64,
            status: "dialing".into(),
            conversation_id: None,
            request: serde_json::to_string(&request).fatal()?,
            error: None,
        };
        store::record_dialing(&deps.db, &record).await?;
        match deps.voice.outbound_call(&request).await {
            Ok(resp) => {
                let conversation_id = resp.conversation_id.ok_or_else(|| {
                    StepError::fatal("provider accepted the call without a conversation id")
                })?;
                store::record_call_result(
                    &deps.db,
                    &call_key,
                    "placed",
                    Some(&conversation_id),
                    None,
                )
                .await?;
                Ok(Transition::wait::<AwaitCall, _>(
                    wait(&conversation_id),
                    in_flight(conversation_id),
                ))
            }
            Err(e) => {
                store::record_call_result(
                    &deps.db,
                    &call_key,
                    "rejected",
                    None,
                    Some(e.to_string()),
                )
                .await?;
                Err(match (e.is_retryable(), e.retry_after()) {
                    (true, Some(after)) => StepError::RetryAfter {
                        message: e.to_string(),
                        after,
                    },
                    (true, None) => StepError::retryable(e),
                    (false, _) => StepError::fatal(e),
                })
            }
        }
    }
}

/// `await_call`: runs when the end-of-call webhook arrives or the deadline passes. At the
/// deadline it first asks the provider for the conversation: a lost webhook must not turn a
/// real conversation into a no-answer.
pub struct AwaitCall(pub Arc<Deps>);

/// Times a run waits again for a call the provider still reports as under way.
const MAX_RECHECKS: u32 = 3;

fn not_connected(call: &CallInFlight, reason: NoConnect) -> Transition {
    Transition::next::<FollowUp>(CallResult {
        lead_id: call.lead_id.clone(),
        call_attempt: call.call_attempt,
        result: Outcome::NotConnected { reason },
    })
}

/// A finished conversation: analyse it, unless a voicemail answered.
fn ended(call: &CallInFlight, conversation: &Conversation) -> Transition {
    let voicemail = conversation
        .metadata
        .termination_reason
        .as_deref()
        .is_some_and(|r| r.to_ascii_lowercase().contains("voicemail"));
    if voicemail {
        return not_connected(call, NoConnect::Voicemail);
    }
    let transcript = conversation
        .transcript
        .iter()
        .filter_map(|t| {
            let role = serde_json::to_value(t.role).ok()?;
            Some(format!(
                "{}: {}",
                role.as_str().unwrap_or("unknown"),
                t.message.as_deref()?
            ))
        })
        .collect::<Vec<_>>()
        .join("\n");
    Transition::next::<Analyze>(ConnectedCall {
        lead_id: call.lead_id.clone(),
        call_attempt: call.call_attempt,
        conversation_id: call.conversation_id.clone(),
        objective: call.objective.clone(),
        transcript,
        duration_secs: conversation.metadata.call_duration_secs,
    })
}

/// Why a failed conversation did not connect, from its termination reason.
fn failure_reason(conversation: &Conversation) -> NoConnect {
    let reason = conversation
        .metadata
        .termination_reason
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if reason.contains("busy") {
        NoConnect::Busy
    } else if reason.contains("no-answer") || reason.contains("no_answer") {
        NoConnect::NoAnswer
    } else if reason.contains("voicemail") {
        NoConnect::Voicemail
    } else {
        NoConnect::Unknown
    }
}

impl AwaitCall {
    /// The deadline passed without a webhook: what does the provider say about the call?
    async fn reconcile(
        &self,
        ctx: &StepContext,
        call: CallInFlight,
    ) -> Result<Transition, StepError> {
        let deps = &self.0;
        match deps.voice.get_conversation(&call.conversation_id).await {
            Ok(c) if c.status == ConversationStatus::Done => {
                ctx.log("no webhook by the deadline; the provider has the finished conversation");
                Ok(ended(&call, &c))
            }
            Ok(c) if c.status == ConversationStatus::Failed => {
                ctx.log("no webhook by the deadline; the provider says the call failed");
                Ok(not_connected(&call, failure_reason(&c)))
            }
            Ok(c) if call.rechecks < MAX_RECHECKS => {
                ctx.log(format!(
                    "no webhook by the deadline; the call is still {:?} at the provider: waiting again",
                    c.status
                ));
                let wait = WaitFor {
                    kind: CALL_EVENT.into(),
                    key: call.conversation_id.clone(),
                    timeout: deps.await_call_timeout.unwrap_or(RECHECK_AFTER),
                };
                let carry = CallInFlight {
                    rechecks: call.rechecks + 1,
                    ..call
                };
                Ok(Transition::wait::<AwaitCall, _>(wait, carry))
            }
            Ok(c) => {
                ctx.log(format!(
                    "the call is still {:?} after {MAX_RECHECKS} more waits: giving up on it",
                    c.status
                ));
                Ok(not_connected(&call, NoConnect::NoWebhook))
            }
            Err(e) if e.status() == Some(404) => {
                ctx.log("no webhook by the deadline and no such conversation at the provider");
                Ok(not_connected(&call, NoConnect::NoWebhook))
            }
            Err(e) if e.is_retryable() && ctx.attempt < self.policy().max_attempts => {
                Err(StepError::retryable(e))
            }
            Err(e) => {
                ctx.log(format!("could not ask the provider about the call: {e}"));
                Ok(not_connected(&call, NoConnect::NoWebhook))
            }
        }
    }
}

/// How long to wait again for a call the provider reports as still under way.
const RECHECK_AFTER: Duration = Duration::from_secs(600);

#[async_trait]
impl Step for AwaitCall {
    const NAME: &'static str = "await_call";
    type Input = Resumed<CallInFlight>;

    fn policy(&self) -> StepPolicy {
        StepPolicy {
            // Room for the provider lookup at the deadline (its client times out at 30 s).
            timeout: Duration::from_secs(45),
            ..StepPolicy::default()
        }
    }

    async fn run(
        &self,
        ctx: &StepContext,
        input: Resumed<CallInFlight>,
    ) -> Result<Transition, StepError> {
        let call = input.carry;
        let payload = match input.outcome {
            WaitOutcome::Event { payload } => payload,
            WaitOutcome::TimedOut => return self.reconcile(ctx, call).await,
        };
        let event = parse_webhook(payload.to_string().as_bytes()).fatal()?;
        Ok(match event {
            WebhookEvent::Transcription(conversation) => ended(&call, &conversation),
            WebhookEvent::InitiationFailure { reason, .. } => not_connected(
                &call,
                match reason {
                    FailureReason::Busy => NoConnect::Busy,
                    FailureReason::NoAnswer => NoConnect::NoAnswer,
                    FailureReason::Unknown => NoConnect::Unknown,
                },
            ),
            other => {
                return Err(StepError::fatal(format!(
                    "unexpected {} event for a call",
                    other.kind()
                )));
            }
        })
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
            timeout: Duration::from_secs(90),
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
        let outcome = self
            .0
            .llm
            .analyze(&system, &input.transcript)
            .await
            .map_err(|e| {
                if e.is_retryable() {
                    StepError::retryable(e)
                } else {
                    StepError::fatal(e)
                }
            })?;
        match outcome {
            AnalysisOutcome::Parsed(analysis) => Ok(Transition::next::<Score>(AnalysedCall {
                lead_id: input.lead_id,
                call_attempt: input.call_attempt,
                conversation_id: input.conversation_id,
                analysis,
            })),
            AnalysisOutcome::Refused(why) => {
                Err(StepError::fatal(format!("the model refused: {why}")))
            }
            AnalysisOutcome::Truncated { finish_reason } => Err(StepError::retryable(format!(
                "analysis cut off ({finish_reason})"
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
            Outcome::NotConnected { reason } => (reason.as_str(), None),
        };
        store::record_call_outcome(
            &self.0.db,
            &call_key,
            outcome,
            score.map(|s| s.value as i64),
            score.map(|s| s.tag.as_str()),
        )
        .await?;
        let decider = decider(&self.0, ctx, &lead, &business, input.call_attempt).await?;
        let run = RunView::after_call(
            ctx.run_id.to_string(),
            business.calling.max_call_attempts,
            crate::policy::view(&lead, input.call_attempt),
            outcome,
            score,
        );
        let decision = match &input.result {
            Outcome::Scored { .. } => decider.follow_up(run).await,
            Outcome::NotConnected { .. } => decider.on_no_answer(run).await,
        }
        .record(ctx);
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
                Outcome::Scored { .. } => "follow_ups_exhausted",
                Outcome::NotConnected { .. } => "unreachable",
            }),
            FollowUpDecision::HandOff { reason } => {
                info!(%reason, "handing the lead off");
                Transition::complete("handed_off")
            }
            FollowUpDecision::Stop { outcome } => Transition::complete(outcome),
        })
    }
}
