//! The policy seam: every business decision of the lead pipeline, behind one trait.
//!
//! The steps ask a [`LeadPolicy`] what to do and never decide themselves, so per-business scripts
//! can replace [`DefaultPolicy`] without touching the pipeline's durability.

use std::time::Duration;

use async_trait::async_trait;

use serde::{Deserialize, Serialize};

use crate::business::Business;
use crate::lead::Lead;
use crate::providers::openai::{CallAnalysis, Sentiment};

/// What the agent is told for one call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallContext {
    /// The full system prompt.
    pub prompt: String,
    /// The first sentence.
    pub first_message: String,
    /// Values the provider substitutes into prompt and first message.
    pub dynamic_variables: serde_json::Map<String, serde_json::Value>,
}

/// Whether, when and with whom to call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteDecision {
    /// Call now, later, or not at all.
    pub action: RouteAction,
    /// Provider agent id.
    pub agent_id: String,
    /// Provider phone number id to call from.
    pub phone_number_id: String,
    /// What the call is for.
    pub objective: String,
    /// 0 (low) to 10 (high).
    pub priority: u8,
}

/// When to call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RouteAction {
    /// Now.
    CallNow,
    /// After this many seconds (e.g. at the next opening).
    CallAfter { secs: u64 },
    /// Not at all.
    Never { reason: String },
}

/// A lead's score after a call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// 0–100.
    pub value: u8,
    /// `hot`, `warm`, `cold` or `disqualified`.
    pub tag: String,
    /// Why, one line per reason.
    pub reasons: Vec<String>,
}

/// Why a call did not connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoConnect {
    NoAnswer,
    Busy,
    Voicemail,
    /// No end-of-call webhook came before the deadline.
    NoWebhook,
    /// The provider said it failed without a reason, or a crash left the outcome unknown.
    Unknown,
}

/// What to do after a call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FollowUpDecision {
    /// Call again after this many seconds.
    CallAgain { after_secs: u64 },
    /// Hand the lead to a human.
    HandOff { reason: String },
    /// Stop; `outcome` names why.
    Stop { outcome: String },
}

impl FollowUpDecision {
    /// The delay of a `CallAgain`.
    pub fn delay(&self) -> Option<Duration> {
        match self {
            FollowUpDecision::CallAgain { after_secs } => Some(Duration::from_secs(*after_secs)),
            _ => None,
        }
    }
}

/// Every decision the lead pipeline takes. `attempt` counts calls in this run, from 1.
///
/// Async because a business' script runs on the sandbox's own threads and is awaited.
#[async_trait]
pub trait LeadPolicy: Send + Sync + 'static {
    /// The agent's prompt and first message for this call.
    async fn context(&self, business: &Business, lead: &Lead, attempt: u32) -> CallContext;
    /// Whether, when and with whom to call.
    async fn route(&self, business: &Business, lead: &Lead, attempt: u32) -> RouteDecision;
    /// Score a connected call.
    async fn score(&self, business: &Business, lead: &Lead, analysis: &CallAnalysis) -> Score;
    /// After a scored call.
    async fn follow_up(
        &self,
        business: &Business,
        lead: &Lead,
        attempt: u32,
        score: &Score,
    ) -> FollowUpDecision;
    /// After a call that did not connect.
    async fn on_no_answer(
        &self,
        business: &Business,
        lead: &Lead,
        attempt: u32,
        why: NoConnect,
    ) -> FollowUpDecision;
}

/// The built-in decisions, tuned by each business' `[calling]` settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultPolicy;

#[async_trait]
impl LeadPolicy for DefaultPolicy {
    async fn context(&self, business: &Business, lead: &Lead, attempt: u32) -> CallContext {
        let mut sections = vec![business.agent.prompt.clone()];
        sections.push(format!(
            "Lead: {} (source: {}).",
            lead.name,
            lead.source.as_deref().unwrap_or("unknown")
        ));
        sections.push(format!(
            "Objective: {}. This is call attempt {attempt}.",
            business.agent.objective
        ));
        if !lead.custom_fields.is_empty() {
            let fields: Vec<String> = lead
                .custom_fields
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            sections.push(format!("Known details: {}.", fields.join(", ")));
        }
        let mut vars = serde_json::Map::new();
        vars.insert("customer_name".into(), lead.name.clone().into());
        vars.insert("lead_id".into(), lead.id.clone().into());
        vars.insert("business".into(), business.name.clone().into());
        CallContext {
            prompt: sections.join("\n\n"),
            first_message: business.agent.first_message.clone(),
            dynamic_variables: vars,
        }
    }

    async fn route(&self, business: &Business, _lead: &Lead, _attempt: u32) -> RouteDecision {
        RouteDecision {
            action: RouteAction::CallNow,
            agent_id: business.agent.agent_id.clone(),
            phone_number_id: business.agent.phone_number_id.clone(),
            objective: business.agent.objective.clone(),
            priority: 5,
        }
    }

    async fn score(&self, business: &Business, _lead: &Lead, a: &CallAnalysis) -> Score {
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

    async fn follow_up(
        &self,
        business: &Business,
        _lead: &Lead,
        attempt: u32,
        score: &Score,
    ) -> FollowUpDecision {
        match score.tag.as_str() {
            "hot" => FollowUpDecision::HandOff {
                reason: format!("hot lead, score {}", score.value),
            },
            "warm" if attempt < business.calling.max_call_attempts => FollowUpDecision::CallAgain {
                after_secs: business.calling.follow_up_after_secs,
            },
            "warm" => FollowUpDecision::Stop {
                outcome: "follow_ups_exhausted".into(),
            },
            "disqualified" => FollowUpDecision::Stop {
                outcome: "disqualified".into(),
            },
            _ => FollowUpDecision::Stop {
                outcome: "not_interested".into(),
            },
        }
    }

    async fn on_no_answer(
        &self,
        business: &Business,
        _lead: &Lead,
        attempt: u32,
        _why: NoConnect,
    ) -> FollowUpDecision {
        if attempt < business.calling.max_call_attempts {
            FollowUpDecision::CallAgain {
                after_secs: business.calling.retry_after_secs,
            }
        } else {
            FollowUpDecision::Stop {
                outcome: "unreachable".into(),
            }
        }
    }
}

fn level(d: &crate::providers::openai::Dimension) -> String {
    serde_json::to_value(d.level)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
