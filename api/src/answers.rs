//! Answer shapes more than one route gives, typed so the OpenAPI document describes them.

use serde::Serialize;
use switchboard_engine::store::runs::RunRow;
use utoipa::ToSchema;

use crate::time::rfc3339;

/// A run as lists and a lead's page show it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub business: String,
    pub lead_id: String,
    pub workflow: String,
    /// `queued`, `running`, `waiting`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
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
            status: r.status.clone(),
            current_step: r.current_step.clone(),
            outcome: r.outcome.clone(),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            error: r.error.clone(),
            wait,
        }
    }
}
