//! Before the call: `intake`, `build_context` and `route`.

use super::*;

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
