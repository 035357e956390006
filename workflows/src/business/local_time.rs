//! Calls only when the called person may lawfully be called: inside the legal calling window in
//! their own local time — in every timezone they may be in — as well as inside the business'
//! opening hours (in the business' timezone).
//!
//! US law (47 CFR 64.1200(c)(1)) allows telephone solicitations only between 08:00 and 21:00 at
//! the called party's location; some states allow less (Florida, Oklahoma, Maryland: 20:00).
//! `calling.legal_hours` is that window for a business (08:00–21:00 unless narrowed) and
//! `calling.region_hours` narrows it further per region (`US-FL`, or a country such as `GB`).
//! Where the person is comes from the lead's own `timezone` when given, else from the region
//! of the phone number (see `crate::phone`); a number that may ring in several zones is called
//! only when the window is open in all of them; a number of unknown region falls back on the
//! business' timezone. A script may call outside the business' opening hours, never outside
//! the legal window. Numbers reserved for fiction (555-0100 to 555-0199) reach no one and are
//! held to the opening hours only: demos and load tests use them at any hour.

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{Business, Hours, Opening, Window, timezone};
use crate::lead::Lead;

/// The widest legal calling window: 08:00–21:00 in the called person's local time.
pub fn widest_legal_window() -> Window {
    Window {
        open: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default(),
        close: NaiveTime::from_hms_opt(21, 0, 0).unwrap_or_default(),
    }
}

/// Where the person called is, as far as anyone knows.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LocalTime {
    /// The timezones the person may be in (more than one: the hours that hold in all).
    pub zones: Vec<String>,
    /// The phone number's region (`US-CA`, `GB`), if known.
    pub region: Option<String>,
    /// Where the zones come from.
    pub from: ZoneSource,
}

/// Where a lead's timezones come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ZoneSource {
    /// The lead's own `timezone`.
    Lead,
    /// The region of the phone number.
    PhoneNumber,
    /// Neither is known: the business' timezone.
    Business,
    /// The number is reserved for fiction and reaches no one: no legal window applies.
    Fictional,
}

impl LocalTime {
    /// Where `lead` of `business` is called.
    pub fn of(lead: &Lead, business: &Business) -> LocalTime {
        if lead.phone.is_fictional() {
            return LocalTime {
                zones: Vec::new(),
                region: None,
                from: ZoneSource::Fictional,
            };
        }
        let region = lead.phone.region();
        if let Some(zone) = &lead.timezone {
            return LocalTime {
                zones: vec![zone.clone()],
                region: region.map(|r| r.code),
                from: ZoneSource::Lead,
            };
        }
        match region {
            Some(r) => LocalTime {
                zones: r.zones.iter().map(|z| (*z).to_owned()).collect(),
                region: Some(r.code),
                from: ZoneSource::PhoneNumber,
            },
            None => LocalTime {
                zones: vec![business.timezone.clone()],
                region: None,
                from: ZoneSource::Business,
            },
        }
    }

    fn tzs(&self) -> Vec<Tz> {
        self.zones.iter().filter_map(|z| timezone(z).ok()).collect()
    }

    fn describe(&self) -> String {
        let from = match (self.from, &self.region) {
            (ZoneSource::Lead, _) => "the lead's timezone".to_owned(),
            (ZoneSource::PhoneNumber, Some(region)) => {
                format!("the phone number's region {region}")
            }
            (ZoneSource::PhoneNumber, None) => "the phone number".to_owned(),
            (ZoneSource::Business, _) => {
                "the business' timezone: the number's region is unknown".to_owned()
            }
            (ZoneSource::Fictional, _) => "a number reserved for fiction".to_owned(),
        };
        format!("{}, from {from}", self.zones.join(", "))
    }
}

/// When a lead may be called, seen from some instant.
#[derive(Clone, Debug, PartialEq)]
pub enum Callable {
    /// Now.
    Now,
    /// Not before `at`; `why` names the rule that holds the call back now, `zone` the timezone
    /// `at` reads best in.
    At {
        at: DateTime<Utc>,
        why: String,
        zone: Tz,
    },
    /// Never: `why`.
    Never { why: String },
}

/// How many times the opening hours and the legal window may push a call back before it is
/// given up (each push moves to an opening, so a handful suffice where both overlap at all).
const MAX_PUSHES: usize = 64;

impl Business {
    /// The legal window for a person in `region`: `calling.legal_hours`, narrowed by the
    /// `calling.region_hours` of the region's country and of the region itself. `None` if
    /// those do not overlap.
    pub fn legal_window(&self, region: Option<&str>) -> Option<Window> {
        let country = region.map(|r| r.split('-').next().unwrap_or(r));
        let narrower = [country, region]
            .into_iter()
            .flatten()
            .filter_map(|r| self.calling.region_hours.get(r));
        let mut window = self.calling.legal_hours;
        for w in narrower {
            window.open = window.open.max(w.open);
            window.close = window.close.min(w.close);
        }
        (window.open < window.close).then_some(window)
    }

    /// When a person at `local` may be called from `now` on: inside the legal window in every
    /// zone they may be in and, with `opening_hours`, inside the business' opening hours.
    pub fn callable(&self, local: &LocalTime, now: DateTime<Utc>, opening_hours: bool) -> Callable {
        let Some(window) = self.legal_window(local.region.as_deref()) else {
            return Callable::Never {
                why: format!(
                    "the calling windows configured for region {} do not overlap",
                    local.region.as_deref().unwrap_or("?")
                ),
            };
        };
        let every_day = Hours::every_day(window);
        let zones = local.tzs();
        let mut at = now;
        let mut held_back: Option<(String, Tz)> = None;
        for _ in 0..MAX_PUSHES {
            if opening_hours {
                match self.opening(at) {
                    Opening::Now => {}
                    Opening::At(next) => {
                        held_back.get_or_insert_with(|| {
                            ("outside the business' opening hours".into(), self.tz())
                        });
                        at = next;
                    }
                    Opening::Never => {
                        return Callable::Never {
                            why: "the business has no opening hours left".into(),
                        };
                    }
                }
            }
            let closed = zones.iter().find_map(|zone| {
                let next = every_day.next_opening(*zone, at);
                (next != Some(at)).then_some((*zone, next))
            });
            match closed {
                None if at == now => return Callable::Now,
                // `at` moved, so a rule held the call back and said why.
                None => {
                    let (why, zone) = held_back.unwrap_or_default();
                    return Callable::At { at, why, zone };
                }
                Some((_, None)) => break,
                Some((zone, Some(next))) => {
                    held_back.get_or_insert_with(|| {
                        (
                            format!(
                                "outside the legal calling window {window} in the lead's local \
                                 time ({})",
                                local.describe()
                            ),
                            zone,
                        )
                    });
                    at = next;
                }
            }
        }
        Callable::Never {
            why: format!(
                "the business' opening hours never meet the legal calling window {window} in \
                 the lead's local time ({})",
                local.describe()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::business::shipped;
    use crate::phone::Phone;

    /// The demo business: New York, no opening hours.
    fn new_york() -> Business {
        shipped()
            .into_iter()
            .find(|d| d.business.id == "demo")
            .unwrap()
            .business
    }

    fn lead(phone: &str, timezone: Option<&str>) -> Lead {
        Lead {
            id: "lead".into(),
            business_id: "demo".into(),
            name: "Ada".into(),
            phone: Phone::parse(phone).unwrap(),
            email: None,
            source: None,
            custom_fields: Default::default(),
            consent: None,
            timezone: timezone.map(str::to_owned),
            run_id: "run".into(),
            created_at: 0,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// When `phone` may be called from `now` by `business`: `None` now, else the instant.
    fn when(business: &Business, phone: &str, now: &str) -> Option<DateTime<Utc>> {
        let local = LocalTime::of(&lead(phone, None), business);
        match business.callable(&local, utc(now), true) {
            Callable::Now => None,
            Callable::At { at, .. } => Some(at),
            Callable::Never { why } => panic!("never: {why}"),
        }
    }

    #[test]
    fn a_new_york_business_waits_for_eight_in_the_morning_in_los_angeles() {
        let b = new_york();
        // Monday 09:00 in New York is 06:00 in Los Angeles.
        let local = LocalTime::of(&lead("+13105552671", None), &b);
        let Callable::At { at, why, zone } = b.callable(&local, utc("2026-11-09T14:00:00Z"), true)
        else {
            panic!("called at 06:00 Pacific");
        };
        assert_eq!(
            at.with_timezone(&zone).to_rfc3339(),
            "2026-11-09T08:00:00-08:00"
        );
        assert_eq!(
            why,
            "outside the legal calling window 08:00-21:00 in the lead's local time \
             (America/Los_Angeles, from the phone number's region US-CA)"
        );
        // A New York lead is called at once; so is the Los Angeles one at 08:00 Pacific, and
        // one who gave their timezone as New York.
        assert_eq!(when(&b, "+12125552671", "2026-11-09T14:00:00Z"), None);
        assert_eq!(when(&b, "+13105552671", "2026-11-09T16:00:00Z"), None);
        let given = LocalTime::of(&lead("+13105552671", Some("America/New_York")), &b);
        assert_eq!(given.from, ZoneSource::Lead);
        assert_eq!(
            b.callable(&given, utc("2026-11-09T14:00:00Z"), true),
            Callable::Now
        );
        // 21:00 closes the window: 20:59 Pacific is the last minute.
        assert_eq!(when(&b, "+13105552671", "2026-11-10T04:59:00Z"), None);
        assert_eq!(
            when(&b, "+13105552671", "2026-11-10T05:00:00Z"),
            Some(utc("2026-11-10T16:00:00Z"))
        );
    }

    #[test]
    fn arizona_and_hawaii_keep_their_hours_across_the_dst_change() {
        let b = new_york();
        // The clocks go back on Sunday 2026-11-01. Phoenix stays at UTC-7 and Honolulu at
        // UTC-10 on both sides; Denver moves from UTC-6 to UTC-7.
        for (before, after) in [
            ("2026-10-30T14:30:00Z", "2026-11-02T14:30:00Z"),
            ("2026-10-30T14:59:59Z", "2026-11-02T14:59:59Z"),
        ] {
            let opens = |day: &str| Some(utc(&format!("{day}T15:00:00Z")));
            assert_eq!(when(&b, "+16025552671", before), opens("2026-10-30"));
            assert_eq!(when(&b, "+16025552671", after), opens("2026-11-02"));
        }
        // 08:30 in Denver before the change (open), 07:30 after it (closed).
        assert_eq!(when(&b, "+13035552671", "2026-10-30T14:30:00Z"), None);
        assert_eq!(
            when(&b, "+13035552671", "2026-11-02T14:30:00Z"),
            Some(utc("2026-11-02T15:00:00Z"))
        );
        // Honolulu opens at 18:00 UTC on both sides, and closes at 07:00 UTC.
        for day in ["2026-10-30", "2026-11-02"] {
            assert_eq!(
                when(&b, "+18085552671", &format!("{day}T17:30:00Z")),
                Some(utc(&format!("{day}T18:00:00Z")))
            );
            assert_eq!(when(&b, "+18085552671", &format!("{day}T18:00:00Z")), None);
        }
        assert_eq!(
            when(&b, "+18085552671", "2026-11-03T07:00:00Z"),
            Some(utc("2026-11-03T18:00:00Z"))
        );
    }

    #[test]
    fn a_number_that_may_ring_in_two_zones_keeps_to_the_hours_of_both() {
        let b = new_york();
        // The Florida panhandle (850) is partly Eastern, partly Central.
        let local = LocalTime::of(&lead("+18505552671", None), &b);
        assert_eq!(local.zones, ["America/New_York", "America/Chicago"]);
        // 08:30 Eastern is 07:30 Central: wait for 08:00 Central.
        assert_eq!(
            when(&b, "+18505552671", "2026-11-09T13:30:00Z"),
            Some(utc("2026-11-09T14:00:00Z"))
        );
        // 20:30 Eastern is fine; 21:30 Eastern is closed, until 08:00 Central the next day.
        assert_eq!(when(&b, "+18505552671", "2026-11-10T01:30:00Z"), None);
        assert_eq!(
            when(&b, "+18505552671", "2026-11-10T02:30:00Z"),
            Some(utc("2026-11-10T14:00:00Z"))
        );
    }

    #[test]
    fn businesses_and_regions_narrow_the_window_and_scripts_cannot_widen_it() {
        let mut b = new_york();
        b.calling.legal_hours = "09:00-20:00".parse().unwrap();
        b.calling
            .region_hours
            .insert("US-FL".into(), "08:00-19:00".parse().unwrap());
        b.check().unwrap();
        // New York at 08:30: before the business' own 09:00.
        assert_eq!(
            when(&b, "+12125552671", "2026-11-09T13:30:00Z"),
            Some(utc("2026-11-09T14:00:00Z"))
        );
        // Miami at 19:30: Florida's window closed at 19:00.
        assert_eq!(
            when(&b, "+13055552671", "2026-11-10T00:30:00Z"),
            Some(utc("2026-11-10T14:00:00Z"))
        );
        // A script allowed to call outside the opening hours is still held to the law.
        let local = LocalTime::of(&lead("+13105552671", None), &b);
        assert!(matches!(
            b.callable(&local, utc("2026-11-09T14:00:00Z"), false),
            Callable::At { .. }
        ));
        // Wider than 08:00-21:00, or a region that is not one, is refused.
        b.calling.legal_hours = "07:00-21:00".parse().unwrap();
        assert!(
            b.check()
                .unwrap_err()
                .to_string()
                .contains("calling.legal_hours")
        );
        b.calling.legal_hours = "08:00-21:00".parse().unwrap();
        b.calling
            .region_hours
            .insert("florida".into(), "08:00-19:00".parse().unwrap());
        assert!(
            b.check()
                .unwrap_err()
                .to_string()
                .contains("calling.region_hours")
        );
    }

    #[test]
    fn numbers_reserved_for_fiction_and_unknown_regions() {
        let b = new_york();
        // Nobody is behind a fictional number: the law has no one to protect.
        let fiction = Phone::fictional(7);
        assert_eq!(when(&b, fiction.as_str(), "2026-11-09T08:00:00Z"), None);
        // A country the table does not know: the business' own timezone (03:00 in New York).
        let local = LocalTime::of(&lead("+998901234567", None), &b);
        assert_eq!(
            (local.from, local.zones.clone()),
            (ZoneSource::Business, vec!["America/New_York".to_owned()])
        );
        assert_eq!(
            when(&b, "+998901234567", "2026-11-09T08:00:00Z"),
            Some(utc("2026-11-09T13:00:00Z"))
        );
    }
}
