use super::*;
use crate::business::Window;
use crate::scripting::sandbox::{Limits, harden, with_limits};

fn env(now: &str) -> Arc<HostEnv> {
    let w: Window = "09:00-17:00".parse().unwrap();
    Arc::new(HostEnv {
        now: now.parse().unwrap(),
        tz: "America/New_York".parse().unwrap(),
        hours: Some(Hours {
            mon: Some(w),
            fri: Some(w),
            ..Hours::default()
        }),
        terminology: [("lead".to_owned(), "prospect".to_owned())].into(),
        history: vec![HistoryEntry {
            run_id: "r1".into(),
            attempt: 1,
            at: "2026-11-20T15:00:00Z".into(),
            outcome: Some("no_answer".into()),
            score: None,
            tag: None,
            summary: None,
        }],
        testing: false,
    })
}

fn eval(env: &Arc<HostEnv>, src: &str) -> (Result<Dynamic, String>, Vec<String>) {
    let limits = Limits::default();
    let engine = harden(&limits);
    let (r, log) = with_limits(&limits, || with_env(env, || engine.eval::<Dynamic>(src)));
    (r.map_err(|e| e.to_string()), log)
}

/// Evaluates an array expression into the strings of its items.
fn eval_strings(env: &Arc<HostEnv>, src: &str) -> (Vec<String>, Vec<String>) {
    let (r, log) = eval(env, src);
    let items = r
        .unwrap()
        .cast::<Array>()
        .iter()
        .map(|d| d.to_string())
        .collect();
    (items, log)
}

#[test]
fn time_and_hours_are_in_the_business_timezone() {
    // Friday 2026-11-20 17:30 New York.
    let e = env("2026-11-20T22:30:00Z");
    let (got, _) = eval_strings(
        &e,
        r#"[now(), today(), weekday(), local_hour(), is_open(), next_opening(),
            minutes_until_open(), is_open_at("2026-11-23T10:00"), hours_since("2026-11-20T15:00:00Z")]"#,
    );
    assert_eq!(
        got,
        [
            "2026-11-20T17:30:00-05:00",
            "2026-11-20",
            "fri",
            "17",
            "false",
            "2026-11-23T09:00:00-05:00",
            "3810",
            "true",
            "7"
        ]
    );
}

#[test]
fn history_terms_and_log() {
    let e = env("2026-11-20T22:30:00Z");
    let (got, log) = eval_strings(
        &e,
        r#"log(`calls: ${calls_made()}`); [last_call().outcome, term("lead"), term("call")]"#,
    );
    assert_eq!(got, ["no_answer", "prospect", "call"]);
    assert_eq!(log, ["calls: 1"]);
}

#[test]
fn the_clock_is_fixed_only_in_tests() {
    let e = env("2026-11-20T22:30:00Z");
    let (r, _) = eval(&e, r#"set_clock("2026-11-23T10:00")"#);
    assert!(r.unwrap_err().contains("only available in fn test_"));
    let mut testing = HostEnv::clone(&e);
    testing.testing = true;
    let (r, _) = eval(
        &Arc::new(testing),
        r#"set_clock("2026-11-23T10:00"); is_open()"#,
    );
    assert!(r.unwrap().as_bool().unwrap());
    let (r, _) = eval(&e, r#"assert(1 > 2, "one is not more than two")"#);
    assert!(
        r.unwrap_err()
            .contains("assertion failed: one is not more than two")
    );
}

#[test]
fn without_a_business_context_host_functions_say_so() {
    let engine = harden(&Limits::default());
    let err = engine.eval::<Dynamic>("now()").unwrap_err().to_string();
    assert!(err.contains("needs a business context"), "{err}");
}

#[test]
fn the_reference_lists_every_host_function_with_its_doc() {
    let engine = harden(&Limits::default());
    let docs = reference(&engine);
    for name in [
        "now",
        "is_open",
        "next_opening",
        "history",
        "log",
        "term",
        "minutes_since",
    ] {
        let f = docs
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name}"));
        assert!(!f.doc.is_empty() && f.signature.starts_with(name), "{f:?}");
    }
    let md = reference_markdown(&engine);
    assert!(md.contains("`is_open_at(when: String) -> bool`"), "{md}");
}
