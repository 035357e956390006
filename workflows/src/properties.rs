//! Property tests of every parser that takes outside bytes: webhook envelopes (ElevenLabs and
//! Retell) and their signature headers, inbound personalisation requests, lead JSON with phone numbers and custom fields, and
//! business script sources. Whatever arrives, each answers `Ok` or `Err` — never a panic, never a
//! hang — and a signature verifies only for the exact body, secret and time it was made for.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::business;
use crate::lead::NewLead;
use crate::phone::Phone;
use crate::providers::elevenlabs::{
    self, PersonalizationRequest, SignatureError, WebhookEvent, parse_webhook, sign, verify,
};
use crate::providers::retell;
use crate::scripting::sandbox::{Limits, compile, harden};

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,24}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A webhook envelope of a known or unknown type around any `data`.
fn envelope() -> impl Strategy<Value = Vec<u8>> {
    let kind = prop_oneof![
        Just(elevenlabs::EVENT_TRANSCRIPTION.to_owned()),
        Just(elevenlabs::EVENT_INITIATION_FAILURE.to_owned()),
        Just(elevenlabs::EVENT_AUDIO.to_owned()),
        "\\PC{0,16}",
    ];
    (kind, json_value(), json_value()).prop_map(|(kind, data, timestamp)| {
        serde_json::to_vec(&json!({ "type": kind, "event_timestamp": timestamp, "data": data }))
            .unwrap()
    })
}

const SECRET: &str = "property-test-webhook-secret";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_as_a_webhook_are_parsed_or_refused(body in prop::collection::vec(any::<u8>(), 0..1024)) {
        let _ = parse_webhook(&body);
    }

    #[test]
    fn any_envelope_is_parsed_or_refused_and_unknown_types_are_kept(body in envelope()) {
        if let Ok(WebhookEvent::Other { kind }) = parse_webhook(&body) {
            let known = [
                elevenlabs::EVENT_TRANSCRIPTION,
                elevenlabs::EVENT_INITIATION_FAILURE,
                elevenlabs::EVENT_AUDIO,
            ];
            prop_assert!(!known.contains(&kind.as_str()));
        }
    }

    #[test]
    fn any_signature_header_is_checked_without_panicking(
        header in "\\PC{0,120}",
        body in prop::collection::vec(any::<u8>(), 0..256),
        now in any::<i64>(),
    ) {
        let _ = verify(SECRET, &header, &body, now);
    }

    #[test]
    fn extreme_timestamps_are_stale_not_overflowing(t in any::<i64>(), now in any::<i64>()) {
        let header = format!("t={t},v0=00");
        let verdict = verify(SECRET, &header, b"{}", now);
        let far = (now as i128 - t as i128).abs() > elevenlabs::SIGNATURE_TOLERANCE_SECS as i128;
        let stale = matches!(verdict, Err(SignatureError::Stale { .. }));
        prop_assert_eq!(stale, far);
    }

    #[test]
    fn a_signature_verifies_only_its_own_body_secret_and_time(
        body in prop::collection::vec(any::<u8>(), 1..256),
        at in 0i64..4_000_000_000,
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let header = sign(SECRET, at, &body);
        prop_assert!(verify(SECRET, &header, &body, at).is_ok());
        let mut changed = body.clone();
        changed[flip.index(body.len())] ^= 1 << bit;
        prop_assert!(matches!(verify(SECRET, &header, &changed, at), Err(SignatureError::Mismatch)));
        prop_assert!(verify("another-secret-entirely", &header, &body, at).is_err());
        let late = at + elevenlabs::SIGNATURE_TOLERANCE_SECS + 1;
        let stale = matches!(verify(SECRET, &header, &body, late), Err(SignatureError::Stale { .. }));
        prop_assert!(stale);
    }

    #[test]
    fn any_retell_webhook_is_parsed_or_refused(
        event in prop_oneof![Just("call_ended".to_owned()), Just("call_analyzed".to_owned()), "\\PC{0,16}"],
        call in json_value(),
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let body = serde_json::to_vec(&json!({ "event": event, "call": call })).unwrap();
        let _ = retell::parse_webhook(&body);
        let _ = retell::parse_webhook(&bytes);
    }

    #[test]
    fn any_retell_signature_header_is_checked_without_panicking(
        header in "\\PC{0,120}",
        v in any::<i64>(),
        now in any::<i64>(),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let _ = retell::verify(SECRET, &header, &body, now);
        let far = (now as i128 - v as i128).abs() > retell::SIGNATURE_TOLERANCE_MS as i128;
        let verdict = retell::verify(SECRET, &format!("v={v},d=00"), &body, now);
        prop_assert_eq!(matches!(verdict, Err(SignatureError::Stale { .. })), far);
    }

    #[test]
    fn a_retell_signature_verifies_only_its_own_body_key_and_time(
        body in prop::collection::vec(any::<u8>(), 1..256),
        at in 0i64..4_000_000_000_000,
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let header = retell::sign(SECRET, at, &body);
        prop_assert!(retell::verify(SECRET, &header, &body, at).is_ok());
        let mut changed = body.clone();
        changed[flip.index(body.len())] ^= 1 << bit;
        prop_assert!(matches!(retell::verify(SECRET, &header, &changed, at), Err(SignatureError::Mismatch)));
        prop_assert!(retell::verify("another-key-entirely", &header, &body, at).is_err());
        let late = at + retell::SIGNATURE_TOLERANCE_MS + 1;
        let stale = matches!(retell::verify(SECRET, &header, &body, late), Err(SignatureError::Stale { .. }));
        prop_assert!(stale);
    }

    #[test]
    fn any_personalisation_request_is_parsed_or_refused(body in json_value()) {
        let _ = serde_json::from_value::<PersonalizationRequest>(body);
    }

    #[test]
    fn any_lead_json_is_parsed_or_refused(body in json_value()) {
        let _ = serde_json::from_value::<NewLead>(body);
    }

    #[test]
    fn any_text_as_a_phone_is_parsed_or_refused_and_parsing_is_stable(raw in "\\+?[0-9 ()+.-]{0,24}|\\PC{0,24}") {
        if let Ok(phone) = Phone::parse(&raw) {
            prop_assert!(phone.as_str().starts_with('+'));
            let again = Phone::parse(phone.as_str()).expect("an E.164 number parses again");
            prop_assert_eq!(again, phone);
        }
    }

    #[test]
    fn any_custom_field_values_are_checked_without_panicking(
        fields in prop::collection::btree_map(
            prop_oneof![Just("insurance".to_owned()), Just("budget".to_owned()), "[a-z_]{1,12}"],
            json_value(),
            0..6,
        ),
    ) {
        let fields: serde_json::Map<String, Value> = fields.into_iter().collect();
        for definition in business::shipped() {
            let _ = definition.business.check_custom_fields(&fields);
        }
    }

    #[test]
    fn any_script_source_compiles_or_is_refused(source in "\\PC{0,400}") {
        let limits = Limits::default();
        let _ = compile(&harden(&limits), &limits, "property", &source);
    }

    #[test]
    fn deeply_nested_script_sources_are_refused_not_overflowing(depth in 1usize..20_000, open in "[\\(\\[\\{]") {
        let limits = Limits::default();
        let source = open.repeat(depth);
        let _ = compile(&harden(&limits), &limits, "property", &source);
    }
}
