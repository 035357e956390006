//! Leads: the person a business wants called, as submitted and as stored.

use serde::{Deserialize, Serialize};

use crate::phone::Phone;
pub use crate::simulator::SimSteer;

/// A lead as submitted to `POST /api/v1/leads`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLead {
    /// The business id.
    pub business: String,
    /// The person's name.
    pub name: String,
    /// E.164 phone number.
    pub phone: String,
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
    /// Where the lead came from (web form, campaign, …).
    #[serde(default)]
    pub source: Option<String>,
    /// Values of the business' custom fields.
    #[serde(default)]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    /// Simulator steering.
    #[serde(default)]
    pub sim: Option<SimSteer>,
}

/// A stored lead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    pub id: String,
    pub business_id: String,
    pub name: String,
    pub phone: Phone,
    pub email: Option<String>,
    pub source: Option<String>,
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sim: Option<SimSteer>,
    pub run_id: String,
    pub created_at: i64,
}
