//! The engine's metrics, named in one place and recorded through the `metrics` facade: a no-op
//! until the process installs a recorder (the API's Prometheus exporter).

use std::time::Duration;

use crate::error::StepError;

/// Histogram: one step attempt's execution, by workflow, step and outcome.
pub const STEP_DURATION: &str = "switchboard_step_duration_seconds";
/// Histogram: an attempt's wait from due (queued, its timer passing, its event arriving) to start.
pub const STEP_START_DELAY: &str = "switchboard_step_start_delay_seconds";
/// Histogram: from the webhook that resumed a waiting run to its step starting again.
pub const WEBHOOK_TO_RESUME: &str = "switchboard_webhook_to_resume_seconds";

/// How an attempt ended, as a label.
pub(crate) fn outcome(result: &std::result::Result<impl Sized, StepError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(StepError::Retryable(_)) => "retryable",
        Err(StepError::RetryAfter { .. }) => "retry_after",
        Err(StepError::Defer { .. }) => "deferred",
        Err(StepError::Fatal(_)) => "fatal",
    }
}

/// An attempt started `delay` after it was due; `by_event` when a webhook's event made it due.
pub(crate) fn step_started(workflow: &str, step: &str, delay: Duration, by_event: bool) {
    let labels = [("workflow", workflow.to_owned()), ("step", step.to_owned())];
    metrics::histogram!(STEP_START_DELAY, &labels).record(delay.as_secs_f64());
    if by_event {
        metrics::histogram!(WEBHOOK_TO_RESUME, &labels).record(delay.as_secs_f64());
    }
}

/// An attempt ran for `took` and ended as `outcome`.
pub(crate) fn step_finished(workflow: &str, step: &str, outcome: &'static str, took: Duration) {
    let labels = [
        ("workflow", workflow.to_owned()),
        ("step", step.to_owned()),
        ("outcome", outcome.to_owned()),
    ];
    metrics::histogram!(STEP_DURATION, &labels).record(took.as_secs_f64());
}
