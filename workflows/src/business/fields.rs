//! Custom lead fields a business defines, with types and required flags, and the check of a lead's
//! values against them (errors name the field).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::phone::Phone;

/// A custom lead field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomField {
    /// Key in the lead's `custom_fields`.
    pub name: String,
    /// The value's type.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Whether every lead must have it.
    #[serde(default)]
    pub required: bool,
    /// Allowed values of a `select`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// The type of a custom field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Number,
    Boolean,
    /// One of `options`.
    Select,
    /// `YYYY-MM-DD`.
    Date,
    Email,
    /// E.164.
    Phone,
}

impl CustomField {
    /// The value a text cell (a CSV column) stands for: a number or a boolean when the field
    /// has that type and the text reads as one, the text itself otherwise (so that [`check`]
    /// explains what was expected).
    ///
    /// [`check`]: CustomField::check
    pub fn from_text(&self, text: &str) -> Value {
        let text = text.trim();
        match self.kind {
            FieldType::Number => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| Value::from(text), Value::Number),
            FieldType::Boolean => match text.to_ascii_lowercase().as_str() {
                "true" | "yes" | "y" | "1" => Value::Bool(true),
                "false" | "no" | "n" | "0" => Value::Bool(false),
                _ => Value::from(text),
            },
            _ => Value::from(text),
        }
    }

    /// Whether `v` is a valid value; the error says what was expected.
    pub fn check(&self, v: &Value) -> Result<(), String> {
        let ok = match self.kind {
            FieldType::Text => v.is_string(),
            FieldType::Number => v.is_number(),
            FieldType::Boolean => v.is_boolean(),
            FieldType::Select => v
                .as_str()
                .is_some_and(|s| self.options.iter().any(|o| o == s)),
            FieldType::Date => v
                .as_str()
                .is_some_and(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
            FieldType::Email => v.as_str().is_some_and(|s| {
                s.split_once('@')
                    .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
            }),
            FieldType::Phone => v.as_str().is_some_and(|s| Phone::parse(s).is_ok()),
        };
        if ok {
            return Ok(());
        }
        let expected = match self.kind {
            FieldType::Text => "a text".to_owned(),
            FieldType::Number => "a number".to_owned(),
            FieldType::Boolean => "true or false".to_owned(),
            FieldType::Select => format!("one of {:?}", self.options),
            FieldType::Date => "a date like \"2026-11-21\"".to_owned(),
            FieldType::Email => "an email address".to_owned(),
            FieldType::Phone => "an E.164 phone number like \"+14155550123\"".to_owned(),
        };
        Err(format!("custom field {:?} must be {expected}", self.name))
    }
}

/// Checks `fields` against `defs`: required ones present, every value of its type, none unknown.
pub fn check(
    business_id: &str,
    defs: &[CustomField],
    fields: &Map<String, Value>,
) -> Result<(), String> {
    for def in defs {
        match fields.get(&def.name) {
            None | Some(Value::Null) if def.required => {
                return Err(format!("custom field {:?} is required", def.name));
            }
            None | Some(Value::Null) => {}
            Some(v) => def.check(v)?,
        }
    }
    match fields.keys().find(|k| !defs.iter().any(|d| &d.name == *k)) {
        Some(unknown) => Err(format!(
            "custom field {unknown:?} is not defined for business {business_id:?}"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field(kind: FieldType) -> CustomField {
        CustomField {
            name: "f".into(),
            kind,
            required: true,
            options: vec!["A".into(), "B".into()],
        }
    }

    #[test]
    fn every_type_is_checked() {
        let cases = [
            (FieldType::Text, json!("x"), json!(1)),
            (FieldType::Number, json!(2.5), json!("2.5")),
            (FieldType::Boolean, json!(true), json!("yes")),
            (FieldType::Select, json!("A"), json!("C")),
            (FieldType::Date, json!("2026-02-28"), json!("2026-02-30")),
            (FieldType::Email, json!("a@b.io"), json!("a@b")),
            (FieldType::Phone, json!("+14155550123"), json!("555-0123")),
        ];
        for (kind, good, bad) in cases {
            let f = field(kind);
            assert_eq!(f.check(&good), Ok(()), "{kind:?}");
            let err = f.check(&bad).unwrap_err();
            assert!(err.contains("\"f\""), "{kind:?}: {err}");
        }
    }

    #[test]
    fn required_and_unknown_fields_are_named() {
        let defs = [field(FieldType::Text)];
        let err = check("acme", &defs, &Map::new()).unwrap_err();
        assert_eq!(err, "custom field \"f\" is required");
        let mut m = Map::new();
        m.insert("f".into(), json!("x"));
        m.insert("shoe_size".into(), json!(42));
        assert!(check("acme", &defs, &m).unwrap_err().contains("shoe_size"));
    }
}
