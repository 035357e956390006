//! Opening hours in a business' own timezone, with holidays (closed all day) and quiet windows
//! (no calls, every day): is it open at an instant, and when does it open next.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One day's opening window, `"09:00-17:30"` in configuration. Closes the same day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Opening time, local.
    pub open: NaiveTime,
    /// Closing time, local (after `open`).
    pub close: NaiveTime,
}

impl FromStr for Window {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an opening window like \"09:00-17:30\"");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").map_err(|_| bad());
        let (open, close) = (time(a)?, time(b)?);
        if close <= open {
            return Err(format!("{s:?} closes before it opens"));
        }
        Ok(Window { open, close })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.open.format("%H:%M"),
            self.close.format("%H:%M")
        )
    }
}

/// In configuration and the API a window is text, `"HH:MM-HH:MM"`.
impl utoipa::PartialSchema for Window {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^\d{2}:\d{2}-\d{2}:\d{2}$"))
            .description(Some("Opening and closing time, local: `HH:MM-HH:MM`"))
            .examples([serde_json::json!("09:00-17:30")])
            .into()
    }
}

impl utoipa::ToSchema for Window {}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Opening windows per weekday; a day without one is closed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Hours {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mon: Option<Window>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tue: Option<Window>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wed: Option<Window>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thu: Option<Window>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fri: Option<Window>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sat: Option<Window>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sun: Option<Window>,
    /// Local dates closed all day (public holidays), e.g. `["2026-12-25"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>, format = Date)]
    pub holidays: Vec<NaiveDate>,
    /// Windows when nobody is called, every day, e.g. `["12:00-13:00"]` (lunch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quiet: Vec<Window>,
}

/// How far ahead the next opening is looked for (holidays may close several weeks).
const LOOK_AHEAD_DAYS: i64 = 62;

impl Hours {
    /// Open in `window` every day.
    pub fn every_day(window: Window) -> Hours {
        let day = Some(window);
        Hours {
            mon: day,
            tue: day,
            wed: day,
            thu: day,
            fri: day,
            sat: day,
            sun: day,
            ..Hours::default()
        }
    }

    /// The window of a weekday.
    pub fn on(&self, day: Weekday) -> Option<Window> {
        match day {
            Weekday::Mon => self.mon,
            Weekday::Tue => self.tue,
            Weekday::Wed => self.wed,
            Weekday::Thu => self.thu,
            Weekday::Fri => self.fri,
            Weekday::Sat => self.sat,
            Weekday::Sun => self.sun,
        }
    }

    /// Whether the business is open at `at`, in `tz`: in its weekday's window, not on a holiday,
    /// not in a quiet window.
    pub fn is_open(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&tz);
        let time = local.time();
        !self.holidays.contains(&local.date_naive())
            && self
                .on(local.weekday())
                .is_some_and(|w| (w.open..w.close).contains(&time))
            && !self.quiet.iter().any(|q| (q.open..q.close).contains(&time))
    }

    /// `at` itself if open then, else the next opening (a window opening, or a quiet window
    /// ending inside one) within `LOOK_AHEAD_DAYS`; `None` if never open.
    pub fn next_opening(&self, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open(tz, at) {
            return Some(at);
        }
        let today = at.with_timezone(&tz).date_naive();
        (0..=LOOK_AHEAD_DAYS).find_map(|d| {
            let day = today + Duration::days(d);
            let window = self.on(day.weekday())?;
            let mut starts: Vec<NaiveTime> = std::iter::once(window.open)
                .chain(self.quiet.iter().map(|q| q.close))
                .filter(|t| (window.open..window.close).contains(t))
                .collect();
            starts.sort();
            starts.into_iter().find_map(|start| {
                let t = local_to_utc(tz, day.and_time(start))?;
                (t > at && self.is_open(tz, t)).then_some(t)
            })
        })
    }
}

/// A local time in `tz` as an instant: the earlier of an ambiguous time, and for a time skipped
/// by a DST jump the first minute after the gap.
pub fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    (0..=180).find_map(|minutes| {
        tz.from_local_datetime(&(local + Duration::minutes(minutes)))
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}

/// Parses an IANA timezone name.
pub fn timezone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>()
        .map_err(|_| format!("{name:?} is not an IANA timezone (like \"America/New_York\")"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekdays() -> Hours {
        let w: Window = "09:00-17:00".parse().unwrap();
        Hours {
            mon: Some(w),
            tue: Some(w),
            wed: Some(w),
            thu: Some(w),
            fri: Some(w),
            ..Hours::default()
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn open_and_next_opening_in_the_business_timezone() {
        let ny = timezone("America/New_York").unwrap();
        let h = weekdays();
        // Friday 2026-11-20 16:30 in New York is 21:30 UTC: open.
        assert!(h.is_open(ny, utc("2026-11-20T21:30:00Z")));
        // 17:30 local: closed; next opening Monday 09:00 local = 14:00 UTC.
        let friday_evening = utc("2026-11-20T22:30:00Z");
        assert!(!h.is_open(ny, friday_evening));
        assert_eq!(
            h.next_opening(ny, friday_evening),
            Some(utc("2026-11-23T14:00:00Z"))
        );
        // Early Monday: opens the same day.
        assert_eq!(
            h.next_opening(ny, utc("2026-11-23T12:00:00Z")),
            Some(utc("2026-11-23T14:00:00Z"))
        );
        assert_eq!(Hours::default().next_opening(ny, friday_evening), None);
    }

    #[test]
    fn a_time_skipped_by_dst_moves_to_the_end_of_the_gap() {
        let ny = timezone("America/New_York").unwrap();
        // 2026-03-08 02:30 does not exist in New York; 03:00 EDT (07:00 UTC) is the next minute.
        let local = "2026-03-08T02:30:00".parse::<NaiveDateTime>().unwrap();
        assert_eq!(local_to_utc(ny, local), Some(utc("2026-03-08T07:00:00Z")));
    }

    #[test]
    fn holidays_and_quiet_windows_are_closed_across_a_dst_change() {
        let ny = timezone("America/New_York").unwrap();
        let mut h = weekdays();
        h.holidays = vec!["2026-11-02".parse().unwrap()];
        h.quiet = vec!["12:00-13:00".parse().unwrap()];
        // Friday 2026-10-30, before the change: 09:00 EDT is 13:00 UTC.
        assert_eq!(
            h.next_opening(ny, utc("2026-10-30T12:00:00Z")),
            Some(utc("2026-10-30T13:00:00Z"))
        );
        // Lunch is quiet: 12:30 EDT is closed, calls resume at 13:00 EDT (17:00 UTC).
        assert!(!h.is_open(ny, utc("2026-10-30T16:30:00Z")));
        assert_eq!(
            h.next_opening(ny, utc("2026-10-30T16:30:00Z")),
            Some(utc("2026-10-30T17:00:00Z"))
        );
        // Friday evening: Monday 2026-11-02 is a holiday, so Tuesday 09:00 EST, after the clocks
        // went back on Sunday: 14:00 UTC, not 13:00.
        assert!(
            !h.is_open(ny, utc("2026-11-02T15:00:00Z")),
            "the holiday is closed"
        );
        assert_eq!(
            h.next_opening(ny, utc("2026-10-30T22:00:00Z")),
            Some(utc("2026-11-03T14:00:00Z"))
        );
        // Configuration reads both.
        let parsed: Hours = toml::from_str(
            "mon = \"09:00-17:00\"\nholidays = [\"2026-12-25\"]\nquiet = [\"12:00-13:00\"]",
        )
        .unwrap();
        assert_eq!(parsed.holidays.len(), 1);
        assert_eq!(parsed.quiet[0].to_string(), "12:00-13:00");
    }

    #[test]
    fn windows_parse_strictly() {
        assert!("9-5".parse::<Window>().is_err());
        assert!(
            "17:00-09:00"
                .parse::<Window>()
                .unwrap_err()
                .contains("closes")
        );
        assert_eq!(
            "08:30-12:00".parse::<Window>().unwrap().to_string(),
            "08:30-12:00"
        );
        assert!(timezone("Mars/Olympus").unwrap_err().contains("IANA"));
    }
}
