//! The statuses of runs, step attempts and waits: typed here, stored as their lowercase names
//! (`queued`, `timed_out`) in the `status` column of `sb_runs`, `sb_steps` and `sb_waits`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A status text that names no status of its kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a {kind} status (one of {names})")]
pub struct UnknownStatus {
    kind: &'static str,
    text: String,
    names: String,
}

/// Defines a status enum with its stored names, parsing, display, and comparison with text
/// (so `run.status == "succeeded"` reads as it did when statuses were strings).
macro_rules! status {
    ($(#[$doc:meta])* $name:ident, $kind:literal { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every status, in their lifecycle's order.
            pub const ALL: &[$name] = &[$($name::$variant),+];

            /// The stored (and JSON) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(text: &str) -> Result<Self, UnknownStatus> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownStatus {
                        kind: $kind,
                        text: text.to_owned(),
                        names: [$($text),+].join(", "),
                    }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownStatus;
            fn try_from(text: String) -> Result<Self, UnknownStatus> {
                text.parse()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, text: &str) -> bool {
                self.as_str() == text
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, text: &&str) -> bool {
                self.as_str() == *text
            }
        }
    };
}

status!(
    /// Where a run is.
    RunStatus, "run" {
        /// Its next step is due (a task is queued).
        Queued = "queued",
        /// A worker runs its step.
        Running = "running",
        /// It waits: for an event, a timer, or a deferred attempt.
        Waiting = "waiting",
        /// It ended with an outcome.
        Succeeded = "succeeded",
        /// A step failed for good.
        Failed = "failed",
        /// Cancelled (by an operator, or ended early with a reason as its outcome).
        Cancelled = "cancelled",
    }
);

impl RunStatus {
    /// Whether nothing happens to the run any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// A new run is queued.
impl Default for RunStatus {
    fn default() -> Self {
        RunStatus::Queued
    }
}

status!(
    /// Where one attempt of one step is.
    StepStatus, "step" {
        /// Due; its task is queued.
        Queued = "queued",
        /// A worker runs it.
        Running = "running",
        /// Due later (a backoff, a timer, a deferral) or until an event resumes it.
        Waiting = "waiting",
        Succeeded = "succeeded",
        Failed = "failed",
        /// Its run was cancelled first.
        Cancelled = "cancelled",
    }
);

status!(
    /// Where a run's wait for an event is.
    WaitStatus, "wait" {
        /// Open: the event has not come and the deadline has not passed.
        Waiting = "waiting",
        /// The event came.
        Resolved = "resolved",
        /// The deadline passed first.
        TimedOut = "timed_out",
        /// Its run was cancelled.
        Cancelled = "cancelled",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_parses_from_its_own_name_and_nothing_else() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(*status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        for status in StepStatus::ALL {
            assert_eq!(status.as_str().parse::<StepStatus>(), Ok(*status));
        }
        for status in WaitStatus::ALL {
            assert_eq!(status.as_str().parse::<WaitStatus>(), Ok(*status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        let unknown = "Queued".parse::<RunStatus>().unwrap_err();
        assert!(unknown.to_string().contains("queued, running"), "{unknown}");
    }

    #[test]
    fn terminal_statuses_are_the_three_ends() {
        let ends: Vec<_> = RunStatus::ALL.iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(
            ends,
            [
                &RunStatus::Succeeded,
                &RunStatus::Failed,
                &RunStatus::Cancelled
            ]
        );
    }
}
