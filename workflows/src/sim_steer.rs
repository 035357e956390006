//! How a lead steers the simulated call it gets (demo and tests only; real providers never see
//! it): the outcome, whether the webhook comes, and when. A leaf: the lead model and the store
//! name these types, and the simulator (crate `switchboard-simulator`) reads them from a call's
//! dynamic variables.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Dynamic variable that forces an outcome.
pub const VAR_OUTCOME: &str = "sim_outcome";
/// Dynamic variable that turns webhook delivery off (`false`).
pub const VAR_DELIVER_WEBHOOK: &str = "sim_deliver_webhook";
/// Dynamic variable with the delay before the call ends, in milliseconds.
pub const VAR_WEBHOOK_DELAY_MS: &str = "sim_webhook_delay_ms";
/// How a simulated call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SimOutcome {
    /// The customer talks and wants to go on (`post_call_transcription`).
    Interested,
    /// The customer talks and declines (`post_call_transcription`).
    NotInterested,
    /// Nobody picks up (`call_initiation_failure`, `no-answer`).
    NoAnswer,
    /// The line is busy (`call_initiation_failure`, `busy`).
    Busy,
    /// The agent leaves a voicemail (`post_call_transcription`, `voicemail_detected`).
    Voicemail,
    /// The call does not start: the outbound-call request answers HTTP 500.
    Failed,
    /// The customer asks not to be called again (only when steered: not in the default mix).
    OptOut,
}

impl SimOutcome {
    /// Every outcome.
    pub const ALL: [SimOutcome; 7] = [
        SimOutcome::Interested,
        SimOutcome::NotInterested,
        SimOutcome::NoAnswer,
        SimOutcome::Busy,
        SimOutcome::Voicemail,
        SimOutcome::Failed,
        SimOutcome::OptOut,
    ];

    /// The steering name, e.g. `not_interested`.
    pub fn as_str(self) -> &'static str {
        match self {
            SimOutcome::Interested => "interested",
            SimOutcome::NotInterested => "not_interested",
            SimOutcome::NoAnswer => "no_answer",
            SimOutcome::Busy => "busy",
            SimOutcome::Voicemail => "voicemail",
            SimOutcome::Failed => "failed",
            SimOutcome::OptOut => "opt_out",
        }
    }

    /// Reads a steering name (case and `-`/`_` do not matter).
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_lowercase().replace('-', "_");
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

/// A lead's steering of the simulator (demo and tests only; real providers never see it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimSteer {
    /// How the call goes; without it the simulator picks a realistic, deterministic mix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<SimOutcome>,
    /// Whether the end-of-call webhook is posted (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_webhook: Option<bool>,
    /// Delay before the webhook, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_delay_ms: Option<u64>,
}

impl SimSteer {
    /// Adds the steering to a call's dynamic variables, where the simulator reads it.
    pub fn apply_to(&self, vars: &mut Map<String, Value>) {
        if let Some(outcome) = self.outcome {
            vars.insert(VAR_OUTCOME.into(), outcome.as_str().into());
        }
        if let Some(deliver) = self.deliver_webhook {
            vars.insert(VAR_DELIVER_WEBHOOK.into(), deliver.into());
        }
        if let Some(delay) = self.webhook_delay_ms {
            vars.insert(VAR_WEBHOOK_DELAY_MS.into(), delay.into());
        }
    }
}
