//! Answer shapes more than one route gives, typed so the OpenAPI document describes them.

use serde::Serialize;
use serde_json::Value;
use switchboard_engine::store::runs::RunRow;
use switchboard_engine::store::steps::StepRow;
use switchboard_engine::{RunStatus, StepStatus};
use utoipa::ToSchema;

use crate::time::rfc3339;

/// A run as lists and a lead's page show it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub business: String,
    pub lead_id: String,
    pub workflow: String,
    pub status: RunStatus,
    pub current_step: Option<String>,
    pub outcome: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    pub updated_at: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What it waits on, while it waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<RunWait>,
}

/// What a run waits on.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RunWait {
    /// What it waits for: an event kind (`call.ended`), a timer, or a deferral.
    pub kind: String,
    pub key: Option<String>,
    /// RFC 3339.
    pub deadline: String,
}

impl From<&RunRow> for RunSummary {
    fn from(r: &RunRow) -> RunSummary {
        let wait = match (&r.wait_kind, r.wait_until) {
            (Some(kind), Some(until)) => Some(RunWait {
                kind: kind.clone(),
                key: r.wait_key.clone(),
                deadline: rfc3339(until),
            }),
            _ => None,
        };
        RunSummary {
            id: r.id.clone(),
            business: r.business_id.clone(),
            lead_id: r.subject_id.clone(),
            workflow: r.workflow.clone(),
            status: r.status,
            current_step: r.current_step.clone(),
            outcome: r.outcome.clone(),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            error: r.error.clone(),
            wait,
        }
    }
}

/// A run in `GET /api/v1/runs`: the run and who it is for.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ListedRun {
    #[serde(flatten)]
    pub run: RunSummary,
    /// The lead's name and phone (absent once the lead is erased).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead: Option<RunLead>,
}

/// Who a run is for, as a person looks for it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RunLead {
    pub name: String,
    pub phone: String,
}

/// A page of `GET /api/v1/runs`, newest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RunPage {
    pub runs: Vec<ListedRun>,
    /// The `cursor` of the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// One run with every step attempt: `GET /api/v1/runs/{id}`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunSummary,
    /// The script version the run is pinned to (`null` before it took one).
    pub script: Option<ScriptRef>,
    /// The business configuration version it started with.
    pub config_version: Option<i64>,
    pub steps: Vec<StepAttempt>,
}

/// A business script version: the one a run is pinned to, or a business' active one.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ScriptRef {
    pub version: i64,
    /// SHA-256 of the source, hex.
    pub hash: String,
}

/// One attempt of one step.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StepAttempt {
    /// The step, e.g. `place_call`.
    pub name: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    pub status: StepStatus,
    /// What the step was given (JSON as the step recorded it).
    pub input: Value,
    /// RFC 3339: when it was scheduled.
    pub scheduled_at: String,
    /// RFC 3339: when it may run (later than `scheduled_at` when backed off or put off).
    pub due_at: String,
    /// Times the attempt was put off (a line was busy, say).
    pub deferrals: i64,
    /// Why it was last put off.
    pub deferred_because: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// What the step returned.
    pub output: Option<Value>,
    pub error: Option<String>,
    /// What the attempt logged, e.g. a script's `log()` lines.
    pub log: Value,
}

/// Stored JSON text as JSON (text that is not JSON stays a string).
pub(crate) fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

impl From<&StepRow> for StepAttempt {
    fn from(s: &StepRow) -> StepAttempt {
        StepAttempt {
            name: s.name.clone(),
            attempt: s.attempt,
            status: s.status,
            input: parse_json(&s.input),
            scheduled_at: rfc3339(s.scheduled_at),
            due_at: rfc3339(s.run_at),
            deferrals: s.deferrals,
            deferred_because: s.deferred_because.clone(),
            started_at: s.started_at.map(rfc3339),
            finished_at: s.finished_at.map(rfc3339),
            output: s.output.as_deref().map(parse_json),
            error: s.error.clone(),
            log: s
                .log
                .as_deref()
                .map(parse_json)
                .unwrap_or_else(|| Value::Array(Vec::new())),
        }
    }
}

/// Why a number is on a business' do-not-call list.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Listing {
    /// `listed` (by the business) or `opted_out` (the person asked on a call).
    pub reason: String,
    pub note: Option<String>,
    /// RFC 3339.
    pub added_at: String,
}

impl From<&switchboard_workflows::store::do_not_call::Entry> for Listing {
    fn from(e: &switchboard_workflows::store::do_not_call::Entry) -> Listing {
        Listing {
            reason: e.reason.clone(),
            note: e.note.clone(),
            added_at: rfc3339(e.added_at),
        }
    }
}

/// A number on a business' do-not-call list.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DoNotCallEntry {
    /// E.164.
    pub phone: String,
    #[serde(flatten)]
    pub listing: Listing,
}

impl From<&switchboard_workflows::store::do_not_call::Entry> for DoNotCallEntry {
    fn from(e: &switchboard_workflows::store::do_not_call::Entry) -> DoNotCallEntry {
        DoNotCallEntry {
            phone: e.phone.clone(),
            listing: Listing::from(e),
        }
    }
}
