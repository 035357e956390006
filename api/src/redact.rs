//! Keeps leads' phone numbers out of logs and Sentry: every E.164 number (`+` and 8–16 digits)
//! is masked to its last two digits before a log line is written or an event is sent.

use std::borrow::Cow;
use std::io;
use std::sync::LazyLock;

use regex::Regex;
use tracing_subscriber::fmt::MakeWriter;

static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+\d{6,14}(\d\d)").expect("a valid pattern"));

/// `text` with every phone number masked: `+14155552671` → `+…71`.
pub fn mask_phones(text: &str) -> Cow<'_, str> {
    PHONE.replace_all(text, "+…${1}")
}

/// Masks what the log writer it wraps writes (each event arrives as one write).
pub struct Masked<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Masked<M> {
    type Writer = MaskedWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        MaskedWriter(self.0.make_writer())
    }
}

/// See [`Masked`].
pub struct MaskedWriter<W>(W);

impl<W: io::Write> io::Write for MaskedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.0.write_all(mask_phones(text).as_bytes())?,
            Err(_) => self.0.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Sentry's `before_send`: the event with every string in it masked.
pub fn sentry_event(
    event: sentry::protocol::Event<'static>,
) -> Option<sentry::protocol::Event<'static>> {
    let Ok(mut value) = serde_json::to_value(&event) else {
        return Some(event);
    };
    mask_json(&mut value);
    // An event that no longer parses is dropped rather than sent unmasked.
    serde_json::from_value(value).ok()
}

fn mask_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let Cow::Owned(masked) = mask_phones(s) {
                *s = masked;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask_json),
        serde_json::Value::Object(map) => map.values_mut().for_each(mask_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn phone_numbers_keep_only_their_last_two_digits() {
        assert_eq!(
            mask_phones("calling +14155552671 and +442071838750 for run 01a1fd41-bc4d-7366"),
            "calling +…71 and +…50 for run 01a1fd41-bc4d-7366"
        );
        assert_eq!(
            mask_phones("2026-11-21T08:38:39Z took 1234567 µs"),
            "2026-11-21T08:38:39Z took 1234567 µs"
        );
    }

    #[test]
    fn log_lines_are_written_masked() {
        let mut out = MaskedWriter(Vec::new());
        out.write_all(b"{\"message\":\"dialling +14155552671\"}\n")
            .unwrap();
        assert_eq!(
            String::from_utf8(out.0).unwrap(),
            "{\"message\":\"dialling +…71\"}\n"
        );
    }

    #[test]
    fn sentry_events_are_sent_masked() {
        let event = sentry::protocol::Event {
            message: Some("place_call failed for +14155552671".into()),
            ..Default::default()
        };
        let masked = sentry_event(event).unwrap();
        assert_eq!(
            masked.message.as_deref(),
            Some("place_call failed for +…71")
        );
    }
}
