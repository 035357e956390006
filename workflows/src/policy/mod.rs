//! The policy seam: every business decision of the lead pipeline. The steps ask a [`Decider`]
//! (one business, one lead, the script version the run is pinned to) and never decide
//! themselves. Each decision runs the business' script hook if it defines one, else the
//! documented default in [`defaults`]; a hook that fails falls back to the default and says so.

mod clock;
pub mod defaults;
mod scripted;

use serde::{Deserialize, Serialize};

pub use clock::BusinessClock;
pub use scripted::{Decided, Decider, Policy, view};

pub use crate::providers::voice::NoConnect;
pub use crate::scripting::host_api::{LeadView, sample_analysis};
pub use crate::scripting::sandbox::script_name;

/// What the agent is told for one call, before routing picks the agent and objective.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallContext {
    /// Prompt sections, appended to the agent's base prompt.
    pub sections: Vec<String>,
    /// The first sentence (`None`: the agent's own).
    #[serde(default)]
    pub first_message: Option<String>,
    /// Values the provider substitutes into prompt and first message.
    #[schema(value_type = std::collections::HashMap<String, serde_json::Value>)]
    pub dynamic_variables: serde_json::Map<String, serde_json::Value>,
}

/// Whether, when and with whom to call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RouteDecision {
    /// Call now, later, or not at all.
    pub action: RouteAction,
    /// Key of the agent in the business configuration.
    pub agent: String,
    /// Provider agent id.
    pub agent_id: String,
    /// Provider phone number id to call from.
    pub phone_number_id: String,
    /// What the call is for (an objective's name).
    pub objective: String,
    /// 0 (low) to 10 (high).
    pub priority: u8,
    /// The campaign the lead's source matched, if any.
    #[serde(default)]
    pub campaign: Option<String>,
    /// A script allowed this lead's call outside the business' calling hours; otherwise the
    /// hours are checked again just before dialling.
    #[serde(default)]
    pub outside_hours: bool,
}

/// Whole seconds from `now` until `at`, rounded up (a call due a moment early would only be put
/// off again by the calling-hours check); 0 if `at` has passed.
pub fn secs_until(at: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> u64 {
    ((at - now).num_milliseconds().max(0) as u64).div_ceil(1000)
}

/// When to call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Score {
    /// 0–100.
    pub value: u8,
    /// `hot`, `warm`, `cold` or `disqualified`.
    pub tag: String,
    /// Why, one line per reason.
    pub reasons: Vec<String>,
}

/// What to do after a call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FollowUpDecision {
    /// Call again after this many seconds.
    CallAgain { after_secs: u64 },
    /// Hand the lead to a human.
    HandOff { reason: String },
    /// Stop; `outcome` names why.
    Stop { outcome: String },
    /// The person asked not to be called again: onto the do-not-call list, and every open run
    /// for the number ends `opted_out`.
    OptOut { reason: String },
}

/// The run as `follow_up(run)` and `on_no_answer(run)` see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    pub id: String,
    /// The call just made, from 1.
    pub call_attempt: u32,
    /// The business' cap on calls per run.
    pub max_call_attempts: u32,
    /// `connected`, or why it did not connect (`no_answer`, `busy`, `voicemail`, `no_webhook`,
    /// `unknown`).
    pub outcome: String,
    /// The score of a connected call.
    pub score: Option<u8>,
    pub tag: Option<String>,
    pub reasons: Vec<String>,
    pub lead: LeadView,
}

impl RunView {
    /// The run after call `lead.call_attempt` ended with `outcome` (scored if it connected).
    pub fn after_call(
        run_id: String,
        max_call_attempts: u32,
        lead: LeadView,
        outcome: &str,
        score: Option<&Score>,
    ) -> RunView {
        RunView {
            id: run_id,
            call_attempt: lead.call_attempt,
            max_call_attempts,
            outcome: outcome.to_owned(),
            score: score.map(|s| s.value),
            tag: score.map(|s| s.tag.clone()),
            reasons: score.map(|s| s.reasons.clone()).unwrap_or_default(),
            lead,
        }
    }
}
