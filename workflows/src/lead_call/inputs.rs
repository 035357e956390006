//! The typed inputs handed from step to step (stored as JSON on each attempt).

use serde::{Deserialize, Serialize};

use crate::policy::{CallContext, NoConnect, RouteDecision, Score};
use crate::providers::openai::CallAnalysis;
use crate::providers::voice::VoiceKind;

/// `intake`: the stored lead.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LeadRef {
    pub lead_id: String,
}

/// `build_context`: which call of the run this is (from 1).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallAttempt {
    pub lead_id: String,
    pub call_attempt: u32,
}

/// `route`: the context built for the call.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Contextualised {
    pub lead_id: String,
    pub call_attempt: u32,
    pub context: CallContext,
}

/// `place_call`: everything needed to dial.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallPlan {
    pub lead_id: String,
    pub call_attempt: u32,
    pub route: RouteDecision,
    pub context: CallContext,
    /// The prompt sent: the routed agent's, the context's sections and the objective.
    pub prompt: String,
    /// The first sentence sent.
    pub first_message: String,
}

/// Our key for a call, sent to the provider and used as the `calls` row id: `<run id>:<attempt>`.
pub fn call_key(run_id: &impl std::fmt::Display, call_attempt: u32) -> String {
    format!("{run_id}:{call_attempt}")
}

/// Carried through the wait to `await_call`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallInFlight {
    pub lead_id: String,
    pub call_attempt: u32,
    /// The provider's id for the call; unknown when the request was sent but its answer never
    /// recorded (a timeout or a crash): then the run waits on the call key the webhook echoes.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// The objective the call was routed with.
    #[serde(default)]
    pub objective: String,
    /// Times the run waited again because the provider still reported the call under way.
    #[serde(default)]
    pub rechecks: u32,
    /// The provider the call went through (its webhooks and lookups are read by it).
    #[serde(default)]
    pub provider: VoiceKind,
}

/// `analyze`: a call that connected.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConnectedCall {
    pub lead_id: String,
    pub call_attempt: u32,
    pub conversation_id: String,
    /// The objective the call was routed with.
    #[serde(default)]
    pub objective: String,
    /// The transcript as `agent: …` / `user: …` lines.
    pub transcript: String,
    pub duration_secs: Option<f64>,
}

/// `score`: the analysed call.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AnalysedCall {
    pub lead_id: String,
    pub call_attempt: u32,
    pub conversation_id: String,
    pub analysis: CallAnalysis,
}

/// `follow_up`: how the call went.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallResult {
    pub lead_id: String,
    pub call_attempt: u32,
    pub result: Outcome,
}

/// A scored call, one the model would not analyse, or one that did not connect.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    Scored {
        score: Score,
    },
    /// Connected, but without an analysis: why (the model's refusal, or its content filter).
    Unanalysed {
        why: String,
    },
    NotConnected {
        reason: NoConnect,
    },
}
