//! E.164 phone numbers: parsed and validated once, then carried as a newtype.

mod regions;

use serde::{Deserialize, Deserializer, Serialize};

pub use regions::PhoneRegion;

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

    /// Whether this is one of the North American numbers reserved for fiction (555-0100 to
    /// 555-0199 in every area code): it reaches no one, so no calling-hours law protects anyone
    /// at it. Demos, examples and load tests use them (see [`Phone::fictional`]).
    pub fn is_fictional(&self) -> bool {
        let s = self.0.as_bytes();
        s.len() == 12 && s.starts_with(b"+1") && &s[5..10] == b"55501"
    }

    /// The `i`-th number reserved for fiction: 100 in each of the area codes listed, then
    /// again from the start.
    pub fn fictional(i: usize) -> Phone {
        const AREAS: [u16; 12] = [415, 628, 510, 650, 408, 212, 646, 718, 917, 312, 617, 206];
        Phone(format!(
            "+1{}55501{:02}",
            AREAS[(i / 100) % AREAS.len()],
            i % 100
        ))
    }

    /// Where the number rings, as far as its digits tell (see the `regions` table); `None` for a
    /// country the table does not know.
    pub fn region(&self) -> Option<PhoneRegion> {
        let number = phonenumber::parse(None, &self.0).ok()?;
        let country = number.country().id()?;
        match number.country().code() {
            1 => regions::north_american(country.as_ref(), self.0.get(2..5)?),
            _ => regions::country_region(country.as_ref()),
        }
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
    fn numbers_ring_in_the_region_of_their_area_code_or_country() {
        let region = |n: &str| Phone::parse(n).unwrap().region().map(|r| r.code);
        assert_eq!(region("+12125550123").as_deref(), Some("US-NY"));
        assert_eq!(region("+13105550123").as_deref(), Some("US-CA"));
        assert_eq!(region("+14165550123").as_deref(), Some("CA-ON"));
        assert_eq!(region("+442079460958").as_deref(), Some("GB"));
        assert_eq!(region("+18095550123").as_deref(), Some("DO"));
    }

    #[test]
    fn numbers_reserved_for_fiction_are_valid_and_known_as_such() {
        for i in [0, 99, 100, 1234] {
            let phone = Phone::fictional(i);
            assert_eq!(Phone::parse(phone.as_str()).as_ref().ok(), Some(&phone));
            assert!(phone.is_fictional(), "{phone:?}");
        }
        assert_ne!(Phone::fictional(0), Phone::fictional(100));
        assert!(!Phone::parse("+14155552671").unwrap().is_fictional());
        assert!(!Phone::parse("+14155550200").unwrap().is_fictional());
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
