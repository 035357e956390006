//! Decide: turn a step's result and its retry policy into the transition to commit (pure, no I/O).

use crate::status::StepStatus;
use std::time::Duration;

use crate::error::StepError;
use crate::workflow::{Entries, StepPolicy, Transition, WaitFor};

/// The most attempts one task runs back to back (a segment) before its run is queued again.
pub(crate) const SEGMENT_STEPS: u32 = 8;
/// How long a segment goes on starting attempts before its run is queued again.
pub(crate) const SEGMENT_TIME: Duration = Duration::from_millis(100);

/// How the finished attempt is recorded.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Finish {
    pub status: StepStatus,
    pub output: Option<String>,
    pub error: Option<String>,
    /// The attempt's log lines as a JSON array, if it logged any.
    pub log: Option<String>,
}

/// What the engine does after an attempt.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Schedule `step` (attempt `attempt`) after `delay`; `why` names the wait kind when delayed.
    Schedule {
        finish: Finish,
        step: String,
        attempt: i64,
        input: serde_json::Value,
        delay: Duration,
        why: &'static str,
    },
    /// Pause on an external event, then run `step`.
    Wait {
        finish: Finish,
        step: String,
        carry: serde_json::Value,
        wait: WaitFor,
    },
    /// The run succeeded.
    Complete { finish: Finish, outcome: String },
    /// The run failed.
    Fail { finish: Finish, error: String },
    /// Put the attempt off (a line is busy, the provider's breaker is open).
    Defer(Deferral),
}

/// An attempt put off by `delay`: the same attempt row waits again, its deferrals counted, so
/// however long a step waits its turn, it writes no new rows.
#[derive(Debug)]
pub(crate) struct Deferral {
    pub step: String,
    /// Why, e.g. `every line is busy`.
    pub message: String,
    pub log: Option<String>,
    pub delay: Duration,
}

impl Finish {
    /// A failed attempt with `error`.
    pub(crate) fn failed(error: String, log: Option<String>) -> Finish {
        Finish {
            status: StepStatus::Failed,
            output: None,
            error: Some(error),
            log,
        }
    }
}

impl Decision {
    /// After a failed attempt that may be retried: the next attempt after `delay` while the
    /// policy allows one, else the run fails with `exhausted`.
    pub(crate) fn retry_or_fail(
        finish: Finish,
        step: &str,
        attempt: i64,
        input: serde_json::Value,
        policy: &StepPolicy,
        delay: Duration,
        exhausted: impl FnOnce() -> String,
    ) -> Decision {
        if attempt < policy.max_attempts as i64 {
            Decision::Schedule {
                finish,
                step: step.to_owned(),
                attempt: attempt + 1,
                input,
                delay,
                why: "retry",
            }
        } else {
            Decision::Fail {
                finish,
                error: exhausted(),
            }
        }
    }

    /// Whether the worker that ran the attempt goes on to the next one itself, in the same
    /// segment: the next attempt is due now and the segment, `steps` attempts and `elapsed` long
    /// so far, has budget left. Otherwise the run goes through the queue, where other runs (and
    /// other businesses) get their turn.
    pub(crate) fn continues(&self, steps: u32, elapsed: Duration) -> bool {
        matches!(self, Decision::Schedule { delay, .. } if delay.is_zero())
            && steps < SEGMENT_STEPS
            && elapsed < SEGMENT_TIME
    }

    /// How the finished attempt is recorded; `None` when it is put off, not finished.
    pub(crate) fn finish(&self) -> Option<&Finish> {
        match self {
            Decision::Schedule { finish, .. }
            | Decision::Wait { finish, .. }
            | Decision::Complete { finish, .. }
            | Decision::Fail { finish, .. } => Some(finish),
            Decision::Defer(_) => None,
        }
    }
}

/// Decides what follows an attempt of `step` (attempt number `attempt`, input `input`) that
/// returned `result` and recorded `journal`. An attempt that fell back is recorded as failed with
/// its error, and the run still follows the transition it returned.
pub(crate) fn decide(
    step: &str,
    attempt: i64,
    input: serde_json::Value,
    policy: &StepPolicy,
    result: Result<Transition, StepError>,
    journal: Entries,
) -> Decision {
    let log = (!journal.log.is_empty()).then(|| serde_json::json!(journal.log).to_string());
    let ok = |output: Option<String>| Finish {
        status: if journal.error.is_some() {
            StepStatus::Failed
        } else {
            StepStatus::Succeeded
        },
        output,
        error: journal.error.clone(),
        log: log.clone(),
    };
    match result {
        Ok(Transition::Next {
            step: next,
            input: next_input,
            delay,
        }) => Decision::Schedule {
            finish: ok(Some(next_input.to_string())),
            step: next.to_owned(),
            attempt: 1,
            input: next_input,
            delay,
            why: "timer",
        },
        Ok(Transition::Wait {
            wait,
            step: next,
            carry,
        }) => Decision::Wait {
            finish: ok(Some(
                serde_json::json!({ "wait": &wait, "carry": &carry }).to_string(),
            )),
            step: next.to_owned(),
            carry,
            wait,
        },
        Ok(Transition::Complete { outcome }) => Decision::Complete {
            finish: ok(Some(serde_json::json!({ "outcome": &outcome }).to_string())),
            outcome,
        },
        Err(StepError::Defer { message, after }) => Decision::Defer(Deferral {
            step: step.to_owned(),
            message,
            log: log.clone(),
            delay: after,
        }),
        Err(err) => {
            let message = err.to_string();
            let failed = Finish::failed(message.clone(), log.clone());
            let delay = match &err {
                StepError::Fatal(_) => None,
                StepError::Retryable(_) => Some(policy.backoff_for(attempt as u32 + 1)),
                StepError::RetryAfter { after, .. } | StepError::Defer { after, .. } => {
                    Some(*after)
                }
            };
            match delay {
                Some(delay) => {
                    Decision::retry_or_fail(failed, step, attempt, input, policy, delay, || {
                        format!("{step} failed after {attempt} attempts: {message}")
                    })
                }
                None => Decision::Fail {
                    finish: failed,
                    error: format!("{step} failed: {message}"),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> StepPolicy {
        StepPolicy {
            max_attempts: 3,
            backoff: Duration::from_secs(1),
            ..StepPolicy::default()
        }
    }

    /// What follows attempt `attempt` failing with `err`.
    fn after_error(attempt: i64, err: StepError) -> Decision {
        decide(
            "s",
            attempt,
            serde_json::json!(1),
            &policy(),
            Err(err),
            Entries::default(),
        )
    }

    #[test]
    fn retryable_error_schedules_next_attempt_with_backoff() {
        let d = after_error(1, StepError::retryable("boom"));
        match d {
            Decision::Schedule {
                attempt,
                delay,
                why,
                finish,
                ..
            } => {
                assert_eq!(attempt, 2);
                assert_eq!(delay, Duration::from_secs(1));
                assert_eq!(why, "retry");
                assert_eq!(finish.status, "failed");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn retryable_error_on_last_attempt_fails_the_run() {
        let d = after_error(3, StepError::retryable("boom"));
        assert!(
            matches!(d, Decision::Fail { ref error, .. } if error.contains("after 3 attempts"))
        );
    }

    #[test]
    fn fatal_error_fails_at_once() {
        let d = after_error(1, StepError::fatal("bad"));
        assert!(matches!(d, Decision::Fail { .. }));
    }

    #[test]
    fn retry_after_uses_the_given_delay() {
        let err = StepError::RetryAfter {
            message: "429".into(),
            after: Duration::from_secs(7),
        };
        let d = after_error(1, err);
        assert!(matches!(d, Decision::Schedule { delay, .. } if delay == Duration::from_secs(7)));
    }

    #[test]
    fn a_deferred_attempt_runs_again_without_using_up_an_attempt() {
        let d = after_error(3, StepError::defer("lines busy", Duration::from_secs(4)));
        assert!(d.finish().is_none(), "the attempt is put off, not finished");
        let Decision::Defer(deferral) = d else {
            panic!("unexpected {d:?}")
        };
        assert_eq!(deferral.step, "s");
        assert_eq!(deferral.message, "lines busy");
        assert_eq!(deferral.delay, Duration::from_secs(4));
    }

    /// What follows an attempt that returned `transition`.
    fn after(transition: Transition) -> Decision {
        decide(
            "s",
            1,
            serde_json::json!(1),
            &policy(),
            Ok(transition),
            Entries::default(),
        )
    }

    #[test]
    fn a_segment_goes_on_only_with_an_immediate_next_step_and_budget_left() {
        let next_after = |delay| {
            after(Transition::Next {
                step: "t",
                input: serde_json::json!(2),
                delay,
            })
        };
        let next = next_after(Duration::ZERO);
        assert!(next.continues(1, Duration::ZERO));
        assert!(next.continues(SEGMENT_STEPS - 1, SEGMENT_TIME / 2));
        assert!(
            !next.continues(SEGMENT_STEPS, Duration::ZERO),
            "step budget spent"
        );
        assert!(!next.continues(1, SEGMENT_TIME), "time budget spent");
        let later = next_after(Duration::from_millis(1));
        assert!(
            !later.continues(1, Duration::ZERO),
            "a timer goes through the queue"
        );
        assert!(!after_error(1, StepError::retryable("boom")).continues(1, Duration::ZERO));
        assert!(!after(Transition::complete("done")).continues(1, Duration::ZERO));
    }

    #[test]
    fn a_fallback_records_a_failed_attempt_and_still_moves_on() {
        let journal = Entries {
            log: vec!["scored 80".into()],
            error: Some("acme/policy.rhai:3:9: boom".into()),
        };
        let d = decide(
            "s",
            1,
            serde_json::json!(1),
            &StepPolicy::default(),
            Ok(Transition::complete("done")),
            journal,
        );
        let finish = d.finish().unwrap().clone();
        assert_eq!(finish.status, "failed");
        assert_eq!(finish.error.as_deref(), Some("acme/policy.rhai:3:9: boom"));
        assert_eq!(finish.log.as_deref(), Some(r#"["scored 80"]"#));
        assert!(matches!(d, Decision::Complete { ref outcome, .. } if outcome == "done"));
    }
}
