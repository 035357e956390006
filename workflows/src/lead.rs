//! Leads: the person a business wants called, as submitted and as stored.

use serde::{Deserialize, Serialize};

use crate::phone::Phone;
pub use crate::sim_steer::SimSteer;

/// A lead as submitted to `POST /api/v1/leads`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLead {
    /// The business id.
    #[schema(example = "demo")]
    pub business: String,
    /// The person's name (1–200 characters).
    #[schema(example = "Ada Lovelace", min_length = 1, max_length = 200)]
    pub name: String,
    /// E.164 phone number.
    #[schema(example = "+14155552671")]
    pub phone: String,
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
    /// Where the lead came from (web form, campaign, …).
    #[serde(default)]
    pub source: Option<String>,
    /// Values of the business' custom fields.
    #[serde(default)]
    #[schema(value_type = std::collections::HashMap<String, serde_json::Value>)]
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    /// The person's prior consent to be called.
    #[serde(default)]
    pub consent: Option<Consent>,
    /// The person's IANA timezone, when the business knows it (else it is derived from the
    /// phone number's region).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Simulator steering (demo and tests): kept apart from the lead, read only by the
    /// built-in simulator.
    #[serde(default)]
    pub sim: Option<SimSteer>,
}

impl NewLead {
    /// What identifies this request for `Idempotency-Key`: SHA-256 (hex) of its canonical JSON
    /// (fields in a fixed order, custom fields sorted), so the same lead sent with its fields
    /// in another order or spacing is the same request.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(serde_json::to_vec(self).unwrap_or_default()))
    }
}

/// A person's name: 1 to 200 characters once trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadName(String);

impl LeadName {
    /// The trimmed name, or why it is not one.
    pub fn parse(name: &str) -> Result<LeadName, String> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err("name must be 1 to 200 characters".into());
        }
        Ok(LeadName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address: at most 254 characters, a local part, `@` and a domain with a dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// The address, or why it is not one.
    pub fn parse(email: &str) -> Result<Email, String> {
        let valid = email.len() <= 254
            && email
                .split_once('@')
                .is_some_and(|(u, d)| !u.is_empty() && d.contains('.'));
        match valid {
            true => Ok(Email(email.to_owned())),
            false => Err(format!("{email:?} is not an email address")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A submitted lead checked against its business (see `intake::check`): every field parsed, so
/// what is stored was valid when it came in.
#[derive(Clone, Debug)]
pub struct CheckedLead {
    pub business: String,
    pub name: LeadName,
    pub phone: Phone,
    pub email: Option<Email>,
    /// At most 200 characters.
    pub source: Option<String>,
    /// Valid for the business' custom fields.
    pub custom_fields: serde_json::Map<String, serde_json::Value>,
    pub consent: Option<Consent>,
    /// A known IANA zone, trimmed.
    pub timezone: Option<String>,
    pub sim: Option<SimSteer>,
    /// [`NewLead::fingerprint`] of the request it came in.
    pub fingerprint: String,
}

/// The person's prior consent to be called, as the business recorded it. A business that
/// requires consent (`calling.require_consent`) never calls a lead without one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// Where it was given: `web_form`, `phone`, `paper`, …
    pub source: String,
    /// When it was given (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub at: chrono::DateTime<chrono::Utc>,
    /// The words the person agreed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Where the record of it is kept (a document id, a URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl Consent {
    /// Checks a submitted consent at `now`: a source of 1 to 100 characters, a time not in the
    /// future, and the text (at most 2,000 characters) or a reference (at most 500) it was given
    /// under. `Err` names the field.
    pub fn check(&self, now: chrono::DateTime<chrono::Utc>) -> Result<(), (&'static str, String)> {
        let source = self.source.trim();
        if source.is_empty() || source.chars().count() > 100 {
            return Err((
                "consent.source",
                "consent.source must be 1 to 100 characters".into(),
            ));
        }
        if self.at > now + chrono::Duration::minutes(5) {
            return Err(("consent.at", "consent.at is in the future".into()));
        }
        if self.text.as_ref().is_some_and(|t| t.chars().count() > 2000) {
            return Err((
                "consent.text",
                "consent.text must be at most 2000 characters".into(),
            ));
        }
        if self
            .reference
            .as_ref()
            .is_some_and(|r| r.chars().count() > 500)
        {
            return Err((
                "consent.reference",
                "consent.reference must be at most 500 characters".into(),
            ));
        }
        let given = |f: &Option<String>| f.as_ref().is_some_and(|v| !v.trim().is_empty());
        if !given(&self.text) && !given(&self.reference) {
            return Err((
                "consent",
                "consent needs the text the person agreed to or a reference to its record".into(),
            ));
        }
        Ok(())
    }
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<Consent>,
    /// The person's IANA timezone, as given with the lead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    pub run_id: String,
    pub created_at: i64,
}
