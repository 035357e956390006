//! The call: `place_call` dials, `await_call` learns how it went.

use super::*;

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
