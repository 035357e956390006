//! E.164 phone numbers: parsed and validated once, then carried as a newtype.

use serde::{Deserialize, Deserializer, Serialize};

/// A valid phone number in E.164 form (`+14155552671`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Phone(String);

/// Why a phone number was rejected.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a valid phone number in E.164 form (+ and country code, e.g. +14155552671)")]
pub struct InvalidPhone(pub String);

impl Phone {
    /// Parses `+<country code><number>`; rejects anything libphonenumber does not call valid.
    pub fn parse(raw: &str) -> Result<Phone, InvalidPhone> {
        let trimmed = raw.trim();
        if !trimmed.starts_with('+') || trimmed.len() > 20 {
            return Err(InvalidPhone(raw.to_owned()));
        }
        let number = phonenumber::parse(None, trimmed).map_err(|_| InvalidPhone(raw.to_owned()))?;
        if !phonenumber::is_valid(&number) {
            return Err(InvalidPhone(raw.to_owned()));
        }
        Ok(Phone(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Phone::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises_valid_numbers() {
        assert_eq!(
            Phone::parse("+14155552671").unwrap().as_str(),
            "+14155552671"
        );
        assert_eq!(
            Phone::parse(" +44 20 7946 0958 ").unwrap().as_str(),
            "+442079460958"
        );
    }

    #[test]
    fn rejects_invalid_numbers() {
        for bad in [
            "",
            "4155552671",
            "+0123",
            "+1415555267199999",
            "+1 abc",
            "++1415",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
