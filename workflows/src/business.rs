//! Business definitions: who calls, with which agent, and the knobs of the default policy.
//!
//! Each business lives in `scripts/<id>/business.toml`; the shipped ones are embedded in the
//! binary and loaded into the database at start-up.

use serde::{Deserialize, Serialize};

/// A business (tenant) as configured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Business {
    /// Stable id used in the API (`"business": "demo"`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// IANA timezone, e.g. `America/New_York`.
    pub timezone: String,
    /// The voice agent that places calls.
    pub agent: AgentConfig,
    /// Attempts, delays and deadlines of the default policy.
    #[serde(default)]
    pub calling: CallingConfig,
    /// Custom lead fields the business collects.
    #[serde(default)]
    pub custom_fields: Vec<CustomField>,
}

/// The agent a business calls with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Provider agent id.
    pub agent_id: String,
    /// Provider phone number id the call is placed from.
    pub phone_number_id: String,
    /// Base system prompt.
    pub prompt: String,
    /// First sentence; `{{customer_name}}` is filled by the provider.
    pub first_message: String,
    /// The call's objective.
    #[serde(default = "default_objective")]
    pub objective: String,
    /// Spoken language.
    #[serde(default = "default_language")]
    pub language: String,
}

fn default_objective() -> String {
    "Initial Qualification".into()
}
fn default_language() -> String {
    "en".into()
}

/// Knobs of the default calling policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallingConfig {
    /// Calls placed to one lead in one run, at most.
    pub max_call_attempts: u32,
    /// Delay before calling again after no answer, busy or voicemail.
    pub retry_after_secs: u64,
    /// Delay before a follow-up call to a warm lead.
    pub follow_up_after_secs: u64,
    /// How long to wait for the provider's end-of-call webhook.
    pub await_call_timeout_secs: u64,
    /// Score at or above which a lead is handed to a human.
    pub hand_off_score: u8,
    /// Score at or above which a lead is called again.
    pub follow_up_score: u8,
}

impl Default for CallingConfig {
    fn default() -> Self {
        CallingConfig {
            max_call_attempts: 3,
            retry_after_secs: 4 * 3600,
            follow_up_after_secs: 2 * 86400,
            await_call_timeout_secs: 3600,
            hand_off_score: 70,
            follow_up_score: 40,
        }
    }
}

/// A custom lead field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomField {
    /// Key in the lead's `custom_fields`.
    pub name: String,
    /// `text`, `number`, `boolean` or `select`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether every lead must have it.
    #[serde(default)]
    pub required: bool,
    /// Allowed values of a `select`.
    #[serde(default)]
    pub options: Vec<String>,
}

/// The businesses shipped in `scripts/`, embedded at build time.
pub fn shipped() -> Vec<Business> {
    [include_str!("../../scripts/demo/business.toml")]
        .iter()
        .map(|src| toml::from_str(src).expect("shipped business definitions are checked by a test"))
        .collect()
}

impl Business {
    /// Checks a lead's custom fields against this business' definitions; the error names the field.
    pub fn check_custom_fields(
        &self,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), String> {
        for def in &self.custom_fields {
            match fields.get(&def.name) {
                None | Some(serde_json::Value::Null) if def.required => {
                    return Err(format!("custom field {:?} is required", def.name));
                }
                None | Some(serde_json::Value::Null) => {}
                Some(v) => {
                    let ok = match def.kind.as_str() {
                        "number" => v.is_number(),
                        "boolean" => v.is_boolean(),
                        "select" => v
                            .as_str()
                            .is_some_and(|s| def.options.iter().any(|o| o == s)),
                        _ => v.is_string(),
                    };
                    if !ok {
                        let expected = if def.kind == "select" {
                            format!("one of {:?}", def.options)
                        } else {
                            format!("a {}", def.kind)
                        };
                        return Err(format!("custom field {:?} must be {expected}", def.name));
                    }
                }
            }
        }
        if let Some(unknown) = fields
            .keys()
            .find(|k| !self.custom_fields.iter().any(|d| &d.name == *k))
        {
            return Err(format!(
                "custom field {unknown:?} is not defined for business {:?}",
                self.id
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_businesses_parse() {
        let all = shipped();
        assert!(all.iter().any(|b| b.id == "demo"));
    }

    #[test]
    fn custom_fields_are_checked_by_name() {
        let demo = shipped().into_iter().find(|b| b.id == "demo").unwrap();
        let mut fields = serde_json::Map::new();
        fields.insert("budget_range".into(), "Lots".into());
        let err = demo.check_custom_fields(&fields).unwrap_err();
        assert!(err.contains("budget_range"), "{err}");
        fields.insert("budget_range".into(), "500K-1M".into());
        demo.check_custom_fields(&fields).unwrap();
        fields.insert("shoe_size".into(), 42.into());
        assert!(
            demo.check_custom_fields(&fields)
                .unwrap_err()
                .contains("shoe_size")
        );
    }
}
