//! The documented default of every hook, used when a business' script does not define the hook
//! or the hook fails. Pure functions of the business configuration and the facts at hand.

use chrono::{DateTime, Utc};

use super::{CallContext, FollowUpDecision, LeadView, RouteAction, RouteDecision, RunView, Score};
use crate::business::{Business, Campaign, Opening};
use crate::providers::openai::{CallAnalysis, Dimension, Sentiment};
use crate::scripting::host_api::HistoryEntry;

/// `route(lead)` default: the campaign for the lead's source (its agent and objective), else the
/// default agent and the first objective; priority 5; now if open, else at the next opening;
/// never if the business never opens.
pub fn route(business: &Business, lead: &LeadView, now: DateTime<Utc>) -> RouteDecision {
    let campaign = business.campaign_for(lead.source.as_deref());
    let (agent, objective) = target(business, campaign, &lead.id);
    let action = match business.opening(now) {
        Opening::Now => RouteAction::CallNow,
        Opening::At(at) => RouteAction::CallAfter {
            secs: super::secs_until(at, now),
        },
        Opening::Never => RouteAction::Never {
            reason: "the business has no opening hours".into(),
        },
    };
    routed(
        business,
        action,
        &agent,
        objective,
        5,
        campaign.map(|c| c.name.clone()),
    )
}

/// Who calls lead `lead_id` and about what when nothing else says: the campaign's agent (its
/// split's pick for the lead; else the default agent) and its objective if that is one of the
/// objectives in effect (a script's `objectives()` may leave it out), else the first objective.
pub fn target(business: &Business, campaign: Option<&Campaign>, lead_id: &str) -> (String, String) {
    let agent = campaign
        .map_or(business.default_agent.as_str(), |c| c.agent_for(lead_id))
        .to_owned();
    let objective = campaign
        .and_then(|c| c.objective.clone())
        .filter(|o| business.objective(o).is_some())
        .unwrap_or_else(|| business.objectives[0].name.clone());
    (agent, objective)
}

/// A route decision for agent key `agent` (which the caller checked exists).
pub fn routed(
    business: &Business,
    action: RouteAction,
    agent: &str,
    objective: String,
    priority: u8,
    campaign: Option<String>,
) -> RouteDecision {
    let config = business.agent(agent);
    RouteDecision {
        action,
        agent: agent.to_owned(),
        agent_id: config.agent_id.clone(),
        phone_number_id: config.phone_number_id.clone(),
        objective,
        priority,
        campaign,
        outside_hours: false,
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `context(lead, history)` default: who the lead is (in the business' terminology), the known
/// details, and what earlier calls gave; the agent's own first message.
pub fn context(business: &Business, lead: &LeadView, history: &[HistoryEntry]) -> CallContext {
    let lead_term = business.term("lead");
    let mut sections = vec![format!(
        "{}: {} (source: {}).",
        capitalised(lead_term),
        lead.name,
        lead.source.as_deref().unwrap_or("unknown")
    )];
    if !lead.fields.is_empty() {
        let fields: Vec<String> = lead
            .fields
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        sections.push(format!("Known details: {}.", fields.join(", ")));
    }
    sections.push(match history.len() {
        0 => format!("This is the first call to this {lead_term}."),
        n => {
            let last = &history[n - 1];
            format!(
                "Earlier calls: {n}; the last one ({}) ended {}{}.",
                last.at,
                last.outcome.as_deref().unwrap_or("without a known outcome"),
                last.tag
                    .as_deref()
                    .map(|t| format!(", tagged {t}"))
                    .unwrap_or_default()
            )
        }
    });
    // What the last connected calls found, newest last, so the agent picks up where they left off.
    let summaries: Vec<String> = history
        .iter()
        .filter_map(|h| h.summary.as_deref().map(|s| format!("{}: {s}", h.at)))
        .collect();
    if !summaries.is_empty() {
        let recent = &summaries[summaries.len().saturating_sub(3)..];
        sections.push(format!("What earlier calls found: {}", recent.join(" | ")));
    }
    CallContext {
        sections,
        first_message: None,
        dynamic_variables: variables(business, lead),
    }
}

/// The variables sent with every call, whoever built the context.
pub fn variables(
    business: &Business,
    lead: &LeadView,
) -> serde_json::Map<String, serde_json::Value> {
    let mut vars = serde_json::Map::new();
    vars.insert("customer_name".into(), lead.name.clone().into());
    vars.insert("lead_id".into(), lead.id.clone().into());
    vars.insert("business".into(), business.name.clone().into());
    vars.insert("lead_term".into(), business.term("lead").into());
    vars
}

/// The prompt and first message sent to the provider: the routed agent's base prompt, the
/// context's sections and the call's objective.
pub fn compose(
    business: &Business,
    route: &RouteDecision,
    context: &CallContext,
) -> (String, String) {
    let agent = business.agent(&route.agent);
    let mut parts = vec![agent.prompt.clone()];
    parts.extend(context.sections.iter().cloned());
    let objective = business
        .objective(&route.objective)
        .map(|o| o.description.as_str())
        .filter(|d| !d.is_empty())
        .map_or_else(
            || format!("Call objective: {}.", route.objective),
            |d| format!("Call objective: {} — {d}", route.objective),
        );
    parts.push(objective);
    let first = context
        .first_message
        .clone()
        .unwrap_or_else(|| agent.first_message.clone());
    (parts.join("\n\n"), first)
}

/// `score(lead, analysis)` default: intent 30 %, budget 20 %, fit 20 %, urgency 15 %, engagement
/// 15 %; `hot` at the business' hand-off score, `warm` at its follow-up score, else `cold`;
/// `disqualified` for negative sentiment with no intent.
pub fn score(business: &Business, a: &CallAnalysis) -> Score {
    let weighted = [
        (&a.intent, 30u32, "intent"),
        (&a.budget, 20, "budget"),
        (&a.fit, 20, "fit"),
        (&a.urgency, 15, "urgency"),
        (&a.engagement, 15, "engagement"),
    ];
    let value = weighted
        .iter()
        .map(|(d, w, _)| d.score as u32 * w)
        .sum::<u32>()
        / 100;
    let mut reasons: Vec<String> = weighted
        .iter()
        .map(|(d, w, name)| {
            format!(
                "{name} {} ({}/100, weight {w}%): {}",
                level(d),
                d.score,
                d.reasoning
            )
        })
        .collect();
    let tag = if a.sentiment == Sentiment::Negative && a.intent.score < 20 {
        reasons.push("negative sentiment and no intent".into());
        "disqualified"
    } else if value >= business.calling.hand_off_score as u32 {
        "hot"
    } else if value >= business.calling.follow_up_score as u32 {
        "warm"
    } else {
        "cold"
    };
    Score {
        value: value.min(100) as u8,
        tag: tag.into(),
        reasons,
    }
}

/// `follow_up(run)` default: `hot` → hand off; `warm` → call again after
/// `follow_up_after_secs` while calls remain; otherwise stop.
pub fn follow_up(business: &Business, run: &RunView) -> FollowUpDecision {
    match run.tag.as_deref() {
        Some("hot") => FollowUpDecision::HandOff {
            reason: format!("hot lead, score {}", run.score.unwrap_or_default()),
        },
        Some("warm") if run.call_attempt < run.max_call_attempts => FollowUpDecision::CallAgain {
            after_secs: business.calling.follow_up_after_secs,
        },
        Some("warm") => FollowUpDecision::Stop {
            outcome: "follow_ups_exhausted".into(),
        },
        Some("disqualified") => FollowUpDecision::Stop {
            outcome: "disqualified".into(),
        },
        _ => FollowUpDecision::Stop {
            outcome: "not_interested".into(),
        },
    }
}

/// `on_no_answer(run)` default: call again after `retry_after_secs` while calls remain, else
/// stop as `unreachable`.
pub fn on_no_answer(business: &Business, run: &RunView) -> FollowUpDecision {
    if run.call_attempt < run.max_call_attempts {
        FollowUpDecision::CallAgain {
            after_secs: business.calling.retry_after_secs,
        }
    } else {
        FollowUpDecision::Stop {
            outcome: "unreachable".into(),
        }
    }
}

fn level(d: &Dimension) -> String {
    serde_json::to_value(d.level)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_carries_what_earlier_calls_found() {
        let business = crate::business::shipped().remove(0).business;
        let lead = crate::scripting::host_api::sample_lead(chrono::Utc::now());
        let entry = |at: &str, summary: Option<&str>| HistoryEntry {
            run_id: "r".into(),
            attempt: 1,
            at: at.into(),
            outcome: Some("connected".into()),
            score: Some(55),
            tag: Some("warm".into()),
            summary: summary.map(Into::into),
        };
        let history = [
            entry("2026-11-01T10:00:00Z", Some("Wants a 3-bed house.")),
            entry("2026-11-02T10:00:00Z", None),
            entry(
                "2026-11-03T10:00:00Z",
                Some("Asked to be called after the holidays."),
            ),
        ];
        let sections = context(&business, &lead, &history).sections;
        let found = sections
            .iter()
            .find(|s| s.starts_with("What earlier calls found"))
            .expect("a section on what earlier calls found");
        assert!(
            found.contains("2026-11-01T10:00:00Z: Wants a 3-bed house.")
                && found.contains("after the holidays"),
            "{found}"
        );
        let first = context(&business, &lead, &[]).sections;
        assert!(
            !first.iter().any(|s| s.contains("What earlier")),
            "{first:?}"
        );
    }
}
