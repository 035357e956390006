//! Retell's wire shapes, signatures and client against a local fake server.

use super::*;
use crate::providers::resilience::{BreakerSettings, RetryPolicy};
use crate::providers::voice::Line;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Mutex;

const KEY: &str = "key_test_retell";
const NOW_MS: i64 = 1_764_000_000_000;

fn webhook(event: &str, call: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ "event": event, "call": call })).unwrap()
}

fn ended(extra: serde_json::Value) -> serde_json::Value {
    let mut call = json!({
        "call_type": "phone_call", "call_id": "call_1", "agent_id": "agent_r",
        "call_status": "ended", "direction": "outbound",
        "from_number": "+15550100000", "to_number": "+14155552671",
        "metadata": {"call_key": "run:1", "lead_id": "lead_1"},
        "start_timestamp": NOW_MS, "end_timestamp": NOW_MS + 42_000, "duration_ms": 42_000,
        "transcript": "Agent: Hi Ada\nUser: Yes, tell me more\n",
        "transcript_object": [
            {"role": "agent", "content": "Hi Ada", "words": []},
            {"role": "user", "content": "Yes, tell me more", "words": []}
        ],
        "disconnection_reason": "user_hangup"
    });
    for (k, v) in extra.as_object().unwrap() {
        call[k] = v.clone();
    }
    call
}

#[test]
fn signatures_verify_the_body_key_and_time_and_nothing_else() {
    let body = webhook("call_ended", ended(json!({})));
    let header = sign(KEY, NOW_MS, &body);
    assert!(header.starts_with(&format!("v={NOW_MS},d=")));
    assert_eq!(verify(KEY, &header, &body, NOW_MS), Ok(()));
    assert_eq!(
        verify(KEY, &header, &body, NOW_MS + SIGNATURE_TOLERANCE_MS),
        Ok(())
    );
    // Reordered parts and spaces are read; upper-case hex too.
    let (v, d) = header.split_once(',').unwrap();
    assert_eq!(
        verify(
            KEY,
            &format!("{} , {v}", d.to_ascii_uppercase().replace("D=", "d=")),
            &body,
            NOW_MS
        ),
        Ok(())
    );
    let mut changed = body.clone();
    changed[10] ^= 1;
    assert_eq!(
        verify(KEY, &header, &changed, NOW_MS),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify("another", &header, &body, NOW_MS),
        Err(SignatureError::Mismatch)
    );
    assert!(matches!(
        verify(KEY, &header, &body, NOW_MS + SIGNATURE_TOLERANCE_MS + 1),
        Err(SignatureError::Stale { .. })
    ));
    assert_eq!(
        verify(KEY, "", &body, NOW_MS),
        Err(SignatureError::Missing(SIGNATURE_HEADER))
    );
    assert!(matches!(
        verify(KEY, "v=1", &body, NOW_MS),
        Err(SignatureError::Malformed(_))
    ));
    assert!(matches!(
        verify(KEY, "d=00", &body, NOW_MS),
        Err(SignatureError::Malformed(_))
    ));
    assert!(matches!(
        verify(KEY, "v=soon,d=00", &body, NOW_MS),
        Err(SignatureError::Malformed(_))
    ));
}

#[test]
fn a_call_is_read_as_the_pipeline_needs_it() {
    let reason = |event: CallEvent| match event {
        CallEvent::NotConnected {
            reason, call_key, ..
        } => {
            assert_eq!(call_key.as_deref(), Some("run:1"));
            Some(reason)
        }
        CallEvent::Ended(report) => {
            assert_eq!(report.call_key.as_deref(), Some("run:1"));
            None
        }
        other => panic!("unexpected {other:?}"),
    };
    let silent = json!([{"role": "agent", "content": "Hello?"}]);
    for (extra, expected) in [
        (json!({}), None),
        (json!({"disconnection_reason": "agent_hangup"}), None),
        (
            json!({"disconnection_reason": "voicemail_reached"}),
            Some(NoConnect::Voicemail),
        ),
        (
            json!({"call_analysis": {"in_voicemail": true}}),
            Some(NoConnect::Voicemail),
        ),
        (
            json!({"call_status": "not_connected", "disconnection_reason": "dial_busy", "transcript_object": []}),
            Some(NoConnect::Busy),
        ),
        (
            json!({"call_status": "not_connected", "disconnection_reason": "dial_no_answer", "transcript_object": []}),
            Some(NoConnect::NoAnswer),
        ),
        (
            json!({"call_status": "not_connected", "disconnection_reason": "dial_failed", "transcript_object": []}),
            Some(NoConnect::Unknown),
        ),
        (
            json!({"call_status": "error", "disconnection_reason": "error_llm_websocket_open", "transcript_object": silent}),
            Some(NoConnect::Unknown),
        ),
        // The person spoke before the error: the call connected and is analysed.
        (
            json!({"call_status": "error", "disconnection_reason": "error_llm_websocket_lost_connection"}),
            None,
        ),
    ] {
        let event = parse_webhook(&webhook("call_ended", ended(extra.clone()))).unwrap();
        assert_eq!(reason(event), expected, "{extra}");
    }
    let CallEvent::Ended(report) =
        parse_webhook(&webhook("call_analyzed", ended(json!({})))).unwrap()
    else {
        panic!("call_analyzed ends the call too")
    };
    assert_eq!(report.transcript, "agent: Hi Ada\nuser: Yes, tell me more");
    assert_eq!(report.duration_secs, Some(42.0));
    assert_eq!(
        parse_webhook(&webhook(
            "call_started",
            ended(json!({"call_status": "ongoing"}))
        ))
        .unwrap(),
        CallEvent::Ignored {
            kind: "call_started".into()
        }
    );
    assert!(parse_webhook(br#"{"event":"call_ended"}"#).is_err());
    assert!(parse_webhook(b"not json").is_err());
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://{addr}")
}

fn client(base: String) -> Retell {
    let once = RetryPolicy {
        max_retries: 0,
        ..RetryPolicy::default()
    };
    Retell::new(base, KEY, Duration::from_secs(5)).with_resilience(Arc::new(Resilience::new(
        PROVIDER,
        once,
        BreakerSettings::default(),
    )))
}

fn request() -> CallRequest {
    let mut variables = serde_json::Map::new();
    variables.insert("customer_name".into(), "Ada".into());
    variables.insert("call_attempt".into(), 2.into());
    CallRequest {
        call_key: "run:2".into(),
        lead_id: "lead_1".into(),
        agent_id: "agent_r".into(),
        phone_number_id: "+15550100000".into(),
        line: Line::Twilio,
        to_number: "+14155552671".into(),
        variables,
        prompt: "p".into(),
        first_message: "Hi".into(),
        language: "en".into(),
        voice_id: None,
        ringing_timeout_secs: 30,
    }
}

#[tokio::test]
async fn calls_are_created_and_looked_up_with_the_key() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new()
        .route(
            CREATE_CALL_PATH,
            post(move |headers: HeaderMap, Json(body): Json<serde_json::Value>| {
                let auth = headers["authorization"].to_str().unwrap().to_owned();
                record.lock().unwrap().push((auth, body.clone()));
                async move {
                    (axum::http::StatusCode::CREATED, Json(json!({
                        "call_type": "phone_call", "call_id": "call_9", "agent_id": body["override_agent_id"],
                        "call_status": "registered", "metadata": body["metadata"],
                        "retell_llm_dynamic_variables": body["retell_llm_dynamic_variables"],
                        "from_number": body["from_number"], "to_number": body["to_number"], "direction": "outbound"})))
                }
            }),
        )
        .route(
            &format!("{GET_CALL_PATH}/{{id}}"),
            get(|axum::extract::Path(id): axum::extract::Path<String>| async move {
                if id == "call_9" {
                    Json(ended(json!({"call_id": "call_9"}))).into_response()
                } else {
                    (axum::http::StatusCode::NOT_FOUND, Json(json!({"message": "Call not found"}))).into_response()
                }
            }),
        );
    use axum::response::IntoResponse;
    let retell = client(serve(app).await);
    let placed = retell.place_call(&request()).await.expect("placed");
    assert_eq!(placed.call_id, "call_9");
    let (auth, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(auth, format!("Bearer {KEY}"));
    assert_eq!(body["override_agent_id"], "agent_r");
    assert_eq!(body["from_number"], "+15550100000");
    assert_eq!(body["metadata"]["call_key"], "run:2");
    let vars = &body["retell_llm_dynamic_variables"];
    assert_eq!(
        (vars["call_key"].as_str(), vars["call_attempt"].as_str()),
        (Some("run:2"), Some("2")),
        "strings only"
    );
    match retell.get_call("call_9").await.expect("found") {
        CallStatus::Finished(CallEvent::Ended(report)) => assert_eq!(report.call_id, "call_9"),
        other => panic!("{other:?}"),
    }
    let missing = retell.get_call("call_0").await.expect_err("404");
    assert_eq!(missing.status(), Some(404));
    assert!(missing.to_string().contains("Call not found"), "{missing}");
}
