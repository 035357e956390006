//! After the call: `analyze`, `score` and `follow_up`.

use super::*;

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
