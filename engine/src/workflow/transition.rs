//! What a step returns: go on to a typed next step (now or later), wait for an event, or finish.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Step;

/// The decision a step returns; the engine commits it atomically with the step's result.
#[derive(Debug)]
pub enum Transition {
    /// Run `step` with `input`, after `delay` (zero = now).
    Next {
        /// The next step's name.
        step: &'static str,
        /// Its input as JSON.
        input: serde_json::Value,
        /// How long to wait first.
        delay: Duration,
    },
    /// Pause until an event with `wait.kind` / `wait.key` arrives or `wait.deadline` passes,
    /// then run `step` with [`Resumed`] input. No worker is held meanwhile.
    Wait {
        /// What to wait for.
        wait: WaitFor,
        /// The step that runs when the wait ends.
        step: &'static str,
        /// Data carried to that step.
        carry: serde_json::Value,
    },
    /// The run is finished; `outcome` says how it ended.
    Complete {
        /// A short machine-readable outcome (`qualified`, `not_interested`, …).
        outcome: String,
    },
}

/// An external event a run waits for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WaitFor {
    /// The event family, e.g. `call.ended`.
    pub kind: String,
    /// The correlation key, e.g. the provider's conversation id.
    pub key: String,
    /// Give up waiting after this long.
    pub timeout: Duration,
}

/// The input of a step that runs after a wait.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Resumed<C> {
    /// What the step before the wait carried over.
    pub carry: C,
    /// How the wait ended.
    pub outcome: WaitOutcome,
}

/// How a wait ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WaitOutcome {
    /// The event arrived; its payload as recorded.
    Event {
        /// The event payload.
        payload: serde_json::Value,
    },
    /// The deadline passed first.
    TimedOut,
}

fn to_json<T: Serialize>(v: &T) -> serde_json::Value {
    // Step inputs are plain data structs; serialising them cannot fail.
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

impl Transition {
    /// Run step `S` next, now.
    pub fn next<S: Step>(input: S::Input) -> Self {
        Self::after::<S>(input, Duration::ZERO)
    }

    /// Run step `S` next, after `delay`.
    pub fn after<S: Step>(input: S::Input, delay: Duration) -> Self {
        Transition::Next {
            step: S::NAME,
            input: to_json(&input),
            delay,
        }
    }

    /// Wait for an event, then run step `S` with the carried data and the outcome.
    pub fn wait<S, C>(wait: WaitFor, carry: C) -> Self
    where
        S: Step<Input = Resumed<C>>,
        C: Serialize,
    {
        Transition::Wait {
            wait,
            step: S::NAME,
            carry: to_json(&carry),
        }
    }

    /// Finish the run successfully with this outcome.
    pub fn complete(outcome: impl Into<String>) -> Self {
        Transition::Complete {
            outcome: outcome.into(),
        }
    }
}
