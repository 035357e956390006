//! Unit tests for the ElevenLabs wire format: signatures, webhooks, error bodies and the client.

use super::*;
use crate::providers::resilience::{BreakerSettings, Resilience, RetryPolicy};
use crate::providers::voice::Line;
use axum::{
    Router,
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

const SECRET: &str = "wsec_test";
const NOW: i64 = 1_760_000_000;

#[test]
fn sign_verify_roundtrip() {
    let body = br#"{"type":"post_call_transcription","data":{}}"#;
    let header = sign(SECRET, NOW, body);
    assert!(header.starts_with(&format!("t={NOW},v0=")));
    assert_eq!(verify(SECRET, &header, body, NOW), Ok(()));
    assert_eq!(
        verify(SECRET, &header, body, NOW + SIGNATURE_TOLERANCE_SECS),
        Ok(())
    );
    // Spaces after the comma and reordered parts are tolerated.
    let (t, v) = header.split_once(',').expect("two parts");
    assert_eq!(verify(SECRET, &format!("{v}, {t}"), body, NOW), Ok(()));
}

#[test]
fn known_vector() {
    // Computed independently: python hmac.new(b"secret", b"1.{}", sha256).hexdigest().
    let expected = "t=1,v0=1122767b193110cfec322b6f199b599edbf608ed087f2d27afb0b97d99523908";
    assert_eq!(sign("secret", 1, b"{}"), expected);
    assert_eq!(verify("secret", expected, b"{}", 1), Ok(()));
}

#[test]
fn verify_rejects_bad_signatures() {
    let body = br#"{"a":1}"#;
    let header = sign(SECRET, NOW, body);
    assert_eq!(
        verify(SECRET, &header, br#"{"a":2}"#, NOW),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify("other", &header, body, NOW),
        Err(SignatureError::Mismatch)
    );
    let stale = verify(SECRET, &header, body, NOW + 31 * 60);
    assert!(
        matches!(stale, Err(SignatureError::Stale { .. })),
        "{stale:?}"
    );
    let future = verify(SECRET, &header, body, NOW - 31 * 60);
    assert!(
        matches!(future, Err(SignatureError::Stale { .. })),
        "{future:?}"
    );
    assert_eq!(
        verify(SECRET, "", body, NOW),
        Err(SignatureError::Missing(SIGNATURE_HEADER))
    );
    for bad in [
        "garbage",
        "t=abc,v0=00",
        "v0=00",
        &format!("t={NOW}"),
        "t=,v0=1",
    ] {
        let got = verify(SECRET, bad, body, NOW);
        assert!(
            matches!(got, Err(SignatureError::Malformed(_))),
            "{bad}: {got:?}"
        );
    }
    // The v0= prefix is part of what is compared: a bare hex or other scheme fails.
    let hex = header
        .split_once(",v0=")
        .map(|(_, h)| h.to_owned())
        .unwrap_or_default();
    let v1 = format!("t={NOW},v1={hex}");
    assert!(matches!(
        verify(SECRET, &v1, body, NOW),
        Err(SignatureError::Malformed(_))
    ));
    let upper = format!("t={NOW},v0={}", hex.to_uppercase());
    assert_eq!(
        verify(SECRET, &upper, body, NOW),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn parse_transcription_with_string_timestamp_and_null_messages() {
    let body = json!({
        "type": "post_call_transcription",
        "event_timestamp": "1739537297",
        "data": {
            "agent_id": "agent_1", "conversation_id": "conv_1", "status": "done",
            "user_id": "lead_1",
            "transcript": [
                {"role": "agent", "message": "Hi Ada", "time_in_call_secs": 0,
                 "tool_calls": null, "unknown_field": 1},
                {"role": "user", "message": null, "time_in_call_secs": 3},
                {"role": "agent", "message": "Bye"}
            ],
            "metadata": {"start_time_unix_secs": 1739537200, "call_duration_secs": 22,
                "cost": 296, "termination_reason": "end_call tool was called",
                "phone_call": {"type": "twilio", "direction": "outbound",
                    "external_number": "+14155552671", "call_sid": "CA1"}},
            "analysis": {"call_successful": "success", "transcript_summary": "ok",
                "evaluation_criteria_results": {}, "data_collection_results": {}},
            "conversation_initiation_client_data": {
                "dynamic_variables": {"customer_name": "Ada"},
                "conversation_config_override": {"agent": {"prompt": null,
                    "first_message": null, "language": null}, "tts": {"voice_id": null}}}
        }
    });
    let event = parse_webhook(body.to_string().as_bytes()).expect("parses");
    assert_eq!(event.kind(), EVENT_TRANSCRIPTION);
    assert_eq!(event.conversation_id(), Some("conv_1"));
    let WebhookEvent::Transcription(c) = event else {
        panic!("not a transcription")
    };
    assert_eq!(c.status, ConversationStatus::Done);
    assert_eq!(c.user_id.as_deref(), Some("lead_1"));
    let transcript = c.transcript.as_ref().expect("transcript");
    assert_eq!(transcript.len(), 3);
    assert_eq!(transcript[1].message, None);
    assert_eq!(transcript[1].role, Role::User);
    assert_eq!(transcript[2].time_in_call_secs, 0);
    let metadata = c.metadata.as_ref().expect("metadata");
    assert_eq!(metadata.call_duration_secs, Some(22));
    assert_eq!(metadata.cost, Some(296));
    let phone = metadata.phone_call.as_ref().expect("phone call");
    assert_eq!(phone.kind.as_deref(), Some("twilio"));
    let analysis = c.analysis.as_ref().expect("analysis");
    assert_eq!(analysis.call_successful.as_deref(), Some("success"));
    let client = c
        .conversation_initiation_client_data
        .as_ref()
        .expect("client data");
    assert_eq!(client.dynamic_variables["customer_name"], "Ada");
}

#[test]
fn parse_minimal_and_odd_transcriptions() {
    let body = br#"{"type":"post_call_transcription","event_timestamp":1.5,
            "data":{"conversation_id":"c","status":"weird","transcript":null,"metadata":null}}"#;
    let WebhookEvent::Transcription(c) = parse_webhook(body).expect("parses") else {
        panic!("not a transcription")
    };
    assert_eq!(c.status, ConversationStatus::Unknown);
    assert!(
        c.transcript.is_none() && c.metadata.is_none(),
        "left out, not empty"
    );
    assert!(c.analysis.is_none());
    assert!(parse_webhook(br#"{"type":"post_call_transcription","data":{}}"#).is_err());
    assert!(parse_webhook(b"not json").is_err());
}

#[test]
fn parse_initiation_failures_audio_and_others() {
    for (wire, reason) in [
        ("busy", FailureReason::Busy),
        ("no-answer", FailureReason::NoAnswer),
        ("unknown", FailureReason::Unknown),
        ("carrier-exploded", FailureReason::Unknown),
    ] {
        let body = json!({"type": "call_initiation_failure", "event_timestamp": 1739537297,
            "data": {"agent_id": "agent_1", "conversation_id": "conv_2",
                "failure_reason": wire, "metadata": {"type": "twilio",
                    "body": {"CallSid": "CA1", "To": "+14155552671"}}}});
        let event = parse_webhook(body.to_string().as_bytes()).expect("parses");
        assert_eq!(
            event,
            WebhookEvent::InitiationFailure {
                conversation_id: "conv_2".into(),
                agent_id: Some("agent_1".into()),
                reason,
                to_number: Some("+14155552671".into()),
            }
        );
        assert_eq!(event.kind(), EVENT_INITIATION_FAILURE);
    }
    let loose = br#"{"type":"call_initiation_failure","data":{"conversation_id":"c","failure_reason":null}}"#;
    let event = parse_webhook(loose).expect("parses");
    assert!(matches!(
        event,
        WebhookEvent::InitiationFailure {
            reason: FailureReason::Unknown,
            ..
        }
    ));

    let audio = br#"{"type":"post_call_audio","event_timestamp":"1","data":{"agent_id":"a","conversation_id":"conv_3","full_audio":"SUQz"}}"#;
    let event = parse_webhook(audio).expect("parses");
    assert_eq!(
        event,
        WebhookEvent::Audio {
            conversation_id: "conv_3".into(),
            full_audio: "SUQz".into(),
        }
    );
    assert_eq!(event.conversation_id(), Some("conv_3"));

    let other = br#"{"type":"something_new","event_timestamp":1}"#;
    let event = parse_webhook(other).expect("parses");
    assert_eq!(
        event,
        WebhookEvent::Other {
            kind: "something_new".into()
        }
    );
    assert_eq!(event.conversation_id(), None);
    assert_eq!(event.kind(), "something_new");
}

#[test]
fn envelope_roundtrip() {
    let data = InitiationFailureData {
        agent_id: Some("a".into()),
        conversation_id: "c".into(),
        failure_reason: FailureReason::NoAnswer,
        metadata: Some(FailureMetadata {
            kind: Some("twilio".into()),
            body: json!({}),
        }),
    };
    let env = WebhookEnvelope {
        kind: EVENT_INITIATION_FAILURE.into(),
        event_timestamp: 5,
        data,
    };
    let body = serde_json::to_vec(&env).expect("serialises");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains(r#""failure_reason":"no-answer""#), "{text}");
    let event = parse_webhook(&body).expect("parses");
    assert!(matches!(
        event,
        WebhookEvent::InitiationFailure {
            reason: FailureReason::NoAnswer,
            ..
        }
    ));
}

#[test]
fn request_serialisation_skips_nones() {
    let req = OutboundCallRequest {
        agent_id: "agent_1".into(),
        agent_phone_number_id: "phnum_1".into(),
        to_number: "+14155552671".into(),
        conversation_initiation_client_data: ClientData {
            user_id: Some("lead_1".into()),
            dynamic_variables: json!({"customer_name": "Ada"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            conversation_config_override: Some(ConfigOverride {
                agent: Some(AgentOverride {
                    first_message: Some("Hi {{customer_name}}".into()),
                    ..Default::default()
                }),
                tts: None,
            }),
        },
        telephony_call_config: None,
    };
    let value = serde_json::to_value(&req).expect("serialises");
    assert_eq!(
        value,
        json!({
            "agent_id": "agent_1", "agent_phone_number_id": "phnum_1", "to_number": "+14155552671",
            "conversation_initiation_client_data": {
                "user_id": "lead_1", "dynamic_variables": {"customer_name": "Ada"},
                "conversation_config_override": {"agent": {"first_message": "Hi {{customer_name}}"}}}
        })
    );
    let resp: OutboundCallResponse = serde_json::from_value(json!({"success": true,
        "message": "Call initiated successfully", "conversation_id": "conv_1", "callSid": "CA1"}))
    .expect("parses");
    assert_eq!(resp.call_sid.as_deref(), Some("CA1"));
}

#[test]
fn error_bodies() {
    let mut headers = reqwest::header::HeaderMap::new();
    let body = json!({"detail": [
        {"loc": ["body", "to_number"], "msg": "invalid phone number", "type": "value_error"},
        {"loc": ["body", 0], "msg": "second", "type": "x"}]});
    let err = status_error(422, &headers, body.to_string().as_bytes());
    assert_eq!(err.code(), Some("value_error"));
    assert!(
        err.to_string()
            .contains("body.to_number: invalid phone number; body.0: second"),
        "{err}"
    );
    assert!(!err.is_retryable());

    headers.insert(
        "retry-after-ms",
        reqwest::header::HeaderValue::from_static("250"),
    );
    let body = json!({"detail": {"type": "rate_limit", "code": "concurrent_limit_exceeded",
        "message": "Too many concurrent calls", "status": "error", "request_id": "r1", "param": null}});
    let err = status_error(429, &headers, body.to_string().as_bytes());
    assert_eq!(err.code(), Some("concurrent_limit_exceeded"));
    assert_eq!(err.retry_after(), Some(Duration::from_millis(250)));
    assert!(err.is_retryable());
    assert!(err.to_string().contains("Too many concurrent calls"));

    let err = status_error(
        404,
        &reqwest::header::HeaderMap::new(),
        br#"{"detail":"Not Found"}"#,
    );
    assert!(err.to_string().contains("Not Found"));
    let err = status_error(
        502,
        &reqwest::header::HeaderMap::new(),
        b"<html>bad gateway</html>",
    );
    assert!(err.to_string().contains("bad gateway") && err.is_retryable());
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://{addr}")
}

/// A client without quick retries, so each test request is sent exactly once.
fn no_retries(base: impl Into<String>, key: &str, timeout: Duration) -> ElevenLabsClient {
    let once = RetryPolicy {
        max_retries: 0,
        ..RetryPolicy::default()
    };
    ElevenLabsClient::new(base, key, timeout).with_resilience(Arc::new(Resilience::new(
        PROVIDER,
        once,
        BreakerSettings::default(),
    )))
}

fn sample_request() -> OutboundCallRequest {
    OutboundCallRequest {
        agent_id: "agent_1".into(),
        agent_phone_number_id: "phnum_1".into(),
        to_number: "+14155552671".into(),
        conversation_initiation_client_data: ClientData {
            user_id: Some("lead_1".into()),
            ..Default::default()
        },
        telephony_call_config: Some(TelephonyCallConfig {
            ringing_timeout_secs: 30,
        }),
    }
}

#[tokio::test]
async fn client_places_calls_and_reads_errors() {
    let app = Router::new().route(
        OUTBOUND_CALL_PATH,
        post(|headers: axum::http::HeaderMap, body: axum::Json<OutboundCallRequest>| async move {
            let key = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if key != "key_1" {
                let err = json!({"detail": {"type": "authentication_error",
                    "code": "invalid_api_key", "message": "Invalid API key"}});
                return (StatusCode::UNAUTHORIZED, axum::Json(err)).into_response();
            }
            match body.0.to_number.as_str() {
                "+10000000000" => axum::Json(json!({"success": false,
                    "message": "Agent not allowed to call", "conversation_id": null}))
                    .into_response(),
                "+10000000001" => axum::Json(json!({"success": true})).into_response(),
                "+10000000002" => (StatusCode::OK, "not json").into_response(),
                "+10000000003" => (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "3")],
                    axum::Json(json!({"detail": {"code": "rate_limit_exceeded", "message": "slow down"}})),
                )
                    .into_response(),
                _ => {
                    assert_eq!(body.0.telephony_call_config, Some(TelephonyCallConfig { ringing_timeout_secs: 30 }));
                    axum::Json(json!({"success": true, "message": "Call initiated successfully",
                        "conversation_id": "conv_1", "callSid": "CA1"})).into_response()
                }
            }
        }),
    );
    let base = serve(app).await;
    let client = no_retries(format!("{base}/"), "key_1", Duration::from_secs(5));
    let mut req = sample_request();
    let ok = client
        .outbound_call(&req, Line::Twilio)
        .await
        .expect("call placed");
    assert_eq!(ok.conversation_id.as_deref(), Some("conv_1"));
    assert_eq!(ok.call_sid.as_deref(), Some("CA1"));

    req.to_number = "+10000000000".into();
    let err = client
        .outbound_call(&req, Line::Twilio)
        .await
        .expect_err("rejected");
    assert_eq!(
        err,
        ProviderError::Rejected {
            provider: PROVIDER,
            message: "Agent not allowed to call".into()
        }
    );
    req.to_number = "+10000000001".into();
    let err = client
        .outbound_call(&req, Line::Twilio)
        .await
        .expect_err("no conversation id");
    // Both ids are optional on the wire: a success without one may still have started a call.
    assert!(
        matches!(err, ProviderError::Ambiguous { .. })
            && !err.is_retryable()
            && err.may_have_been_acted_on(),
        "{err:?}"
    );
    req.to_number = "+10000000002".into();
    let err = client
        .outbound_call(&req, Line::Twilio)
        .await
        .expect_err("bad body");
    assert!(
        matches!(err, ProviderError::Ambiguous { .. }) && err.may_have_been_acted_on(),
        "{err:?}"
    );
    req.to_number = "+10000000003".into();
    let err = client
        .outbound_call(&req, Line::Twilio)
        .await
        .expect_err("rate limited");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert!(err.is_retryable());

    let bad_key = no_retries(base, "nope", Duration::from_secs(5));
    let err = bad_key
        .outbound_call(&sample_request(), Line::Twilio)
        .await
        .expect_err("unauthorised");
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.code(), Some("invalid_api_key"));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn client_gets_conversations() {
    let app = Router::new().route(
        "/v1/convai/conversations/{id}",
        get(|axum::extract::Path(id): axum::extract::Path<String>| async move {
            if id == "conv 1/x" {
                axum::Json(json!({"agent_id": "a", "conversation_id": id, "status": "processing",
                    "transcript": [], "metadata": {}})).into_response()
            } else {
                let err = json!({"detail": {"type": "not_found", "code": "conversation_not_found",
                    "message": format!("Conversation {id} not found")}});
                (StatusCode::NOT_FOUND, axum::Json(err)).into_response()
            }
        }),
    );
    let base = serve(app).await;
    let client = no_retries(base, "k", Duration::from_secs(5));
    let conv = client.get_conversation("conv 1/x").await.expect("found");
    assert_eq!(conv.conversation_id, "conv 1/x");
    assert_eq!(conv.status, ConversationStatus::Processing);
    assert!(!conv.status.is_final());
    let err = client
        .get_conversation("missing")
        .await
        .expect_err("not found");
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("conversation_not_found"));
}

#[tokio::test]
async fn transport_failures_are_retryable() {
    // A port that was just freed: connection refused.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let client = no_retries(format!("http://{addr}"), "k", Duration::from_secs(5));
    let err = client
        .outbound_call(&sample_request(), Line::Twilio)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, ProviderError::Unreachable { .. })
            && err.is_retryable()
            && !err.may_have_been_acted_on(),
        "{err:?}"
    );

    // A server that never answers: timeout.
    let app = Router::new().route(OUTBOUND_CALL_PATH, post(std::future::pending::<String>));
    let base = serve(app).await;
    let client = no_retries(base, "k", Duration::from_millis(200));
    let err = client
        .outbound_call(&sample_request(), Line::Twilio)
        .await
        .expect_err("timeout");
    assert!(
        matches!(&err, ProviderError::Transport { message, .. } if message.contains("timed out")),
        "{err:?}"
    );
    assert!(
        err.may_have_been_acted_on(),
        "a timed-out call request may have placed the call"
    );

    let client = no_retries("not a url", "k", Duration::from_secs(1));
    let err = client.get_conversation("c").await.expect_err("bad url");
    assert!(matches!(err, ProviderError::InvalidRequest { .. }) && !err.is_retryable());
}

/// The documented algorithm implemented again with another HMAC library (ring): what it signs
/// verifies, and any change to the body, timestamp or signature fails.
#[test]
fn a_signature_from_an_independent_implementation_verifies() {
    fn independent_sign(secret: &str, t: i64, body: &[u8]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let mut message = format!("{t}.").into_bytes();
        message.extend_from_slice(body);
        let tag = ring::hmac::sign(&key, &message);
        format!("t={t},v0={}", hex::encode(tag.as_ref()))
    }
    let body = br#"{"type":"post_call_transcription","event_timestamp":1760000000,"data":{"conversation_id":"c"}}"#;
    let header = independent_sign(SECRET, NOW, body);
    assert_eq!(
        header,
        sign(SECRET, NOW, body),
        "both implementations agree"
    );
    assert_eq!(verify(SECRET, &header, body, NOW + 60), Ok(()));
    let mut tampered = body.to_vec();
    tampered[10] ^= 1;
    assert_eq!(
        verify(SECRET, &header, &tampered, NOW),
        Err(SignatureError::Mismatch)
    );
    let other_time = header.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
    assert_eq!(
        verify(SECRET, &other_time, body, NOW),
        Err(SignatureError::Mismatch)
    );
    let flipped = format!("{}0", &header[..header.len() - 1]);
    let flipped = if flipped == header {
        format!("{}1", &header[..header.len() - 1])
    } else {
        flipped
    };
    assert_eq!(
        verify(SECRET, &flipped, body, NOW),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify("another secret", &header, body, NOW),
        Err(SignatureError::Mismatch)
    );
}

/// Serves `answers` in order to outbound-call requests (then 200 with a conversation), counting
/// requests; each answer is (status, headers, body).
/// A scripted answer: status, headers, JSON body.
type Answer = (u16, Vec<(&'static str, &'static str)>, serde_json::Value);

async fn scripted_server(answers: Vec<Answer>) -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let answers = Arc::new(answers);
    let handler = move || {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let answers = answers.clone();
        async move {
            let Some((status, headers, body)) = answers.get(n).cloned() else {
                return axum::Json(
                    json!({"success": true, "conversation_id": format!("conv_{n}")}),
                )
                .into_response();
            };
            let mut response =
                (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
    };
    let app = Router::new()
        .route(OUTBOUND_CALL_PATH, post(handler.clone()))
        .route(SIP_OUTBOUND_CALL_PATH, post(handler));
    (serve(app).await, count)
}

#[tokio::test]
async fn quick_retries_honour_both_429_codes_and_their_headers() {
    let limited = |code| json!({"detail": {"type": "rate_limit", "code": code, "message": "wait"}});
    let (base, count) = scripted_server(vec![
        (
            429,
            vec![("retry-after-ms", "150")],
            limited("rate_limit_exceeded"),
        ),
        (
            429,
            vec![("retry-after", "1")],
            limited("concurrent_limit_exceeded"),
        ),
    ])
    .await;
    let client = ElevenLabsClient::new(base, "k", Duration::from_secs(5));
    let started = std::time::Instant::now();
    let answer = client
        .outbound_call(&sample_request(), Line::Twilio)
        .await
        .expect("placed on the third request");
    assert_eq!(answer.conversation_id.as_deref(), Some("conv_2"));
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert!(
        started.elapsed() >= Duration::from_millis(1150),
        "waited as asked"
    );

    // A wait longer than a step should hold a worker is left to the step.
    let (base, count) = scripted_server(vec![(
        429,
        vec![("retry-after", "30")],
        limited("concurrent_limit_exceeded"),
    )])
    .await;
    let client = ElevenLabsClient::new(base, "k", Duration::from_secs(5));
    let err = client
        .outbound_call(&sample_request(), Line::Twilio)
        .await
        .expect_err("left to the step");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(err.code(), Some("concurrent_limit_exceeded"));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    assert!(err.is_unavailable());
}

#[tokio::test]
async fn server_errors_are_retried_and_validation_errors_are_not() {
    let (base, count) = scripted_server(vec![
        (500, vec![], json!({"detail": {"message": "boom"}})),
        (503, vec![], json!({"detail": "unavailable"})),
    ])
    .await;
    let client = ElevenLabsClient::new(base, "k", Duration::from_secs(5));
    client
        .outbound_call(&sample_request(), Line::Sip)
        .await
        .expect("third request succeeds");
    assert_eq!(count.load(Ordering::SeqCst), 3);

    let invalid = json!({"detail": [{"loc": ["body", "to_number"], "msg": "invalid number",
        "type": "value_error"}]});
    let (base, count) = scripted_server(vec![(422, vec![], invalid)]).await;
    let client = ElevenLabsClient::new(base, "k", Duration::from_secs(5));
    let err = client
        .outbound_call(&sample_request(), Line::Twilio)
        .await
        .expect_err("invalid");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(err.status(), Some(422));
    assert!(
        err.to_string().contains("body.to_number: invalid number"),
        "{err}"
    );
    assert!(!err.is_retryable() && !err.is_unavailable());
}

#[tokio::test]
async fn a_timed_out_call_request_is_not_sent_again() {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let app = Router::new().route(
        OUTBOUND_CALL_PATH,
        post(move || {
            seen.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<String>()
        }),
    );
    let base = serve(app).await;
    let client = ElevenLabsClient::new(base, "k", Duration::from_millis(200));
    let err = client
        .outbound_call(&sample_request(), Line::Twilio)
        .await
        .expect_err("timeout");
    assert!(err.may_have_been_acted_on());
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_sip_variant_uses_its_own_path() {
    let app = Router::new().route(
        SIP_OUTBOUND_CALL_PATH,
        post(|| async {
            axum::Json(
                json!({"success": true, "conversation_id": "conv_sip", "sip_call_id": "sip_1"}),
            )
        }),
    );
    let base = serve(app).await;
    let client = no_retries(base, "k", Duration::from_secs(5));
    let answer = client
        .outbound_call(&sample_request(), Line::Sip)
        .await
        .expect("placed over SIP");
    assert_eq!(answer.sip_call_id.as_deref(), Some("sip_1"));
    let err = client
        .outbound_call(&sample_request(), Line::Twilio)
        .await
        .expect_err("no Twilio route here");
    assert_eq!(err.status(), Some(404));
}

#[test]
fn the_provider_reads_every_webhook_type_into_call_events() {
    use crate::providers::voice::NoConnect;
    use crate::providers::voice::{CallEvent, VoiceProvider};
    let provider = ElevenLabs::new(
        no_retries("http://127.0.0.1:9", "k", Duration::from_secs(1)),
        SECRET,
    );
    let transcription = json!({"type": "post_call_transcription", "event_timestamp": NOW,
        "data": {"conversation_id": "conv_1", "status": "done",
            "transcript": [{"role": "agent", "message": "Hi"}, {"role": "user", "message": "Hello"},
                {"role": "agent", "message": null}],
            "metadata": {"call_duration_secs": 42.0},
            "conversation_initiation_client_data": {"dynamic_variables": {"call_key": "run:1"}}}});
    let body = serde_json::to_vec(&transcription).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    let now = chrono::Utc::now().timestamp();
    headers.insert(SIGNATURE_HEADER, sign(SECRET, now, &body).parse().unwrap());
    assert_eq!(provider.verify_webhook(&headers, &body, now), Ok(()));
    assert_eq!(
        provider.verify_webhook(&reqwest::header::HeaderMap::new(), &body, now),
        Err(SignatureError::Missing(SIGNATURE_HEADER))
    );
    match provider.parse_webhook(&body).expect("parses") {
        CallEvent::Ended(report) => {
            assert_eq!(report.call_id, "conv_1");
            assert_eq!(report.call_key.as_deref(), Some("run:1"));
            assert_eq!(report.transcript, "agent: Hi\nuser: Hello");
            assert_eq!(report.duration_secs, Some(42.0));
        }
        other => panic!("expected an ended call, got {other:?}"),
    }
    let voicemail = json!({"type": "post_call_transcription", "event_timestamp": NOW,
        "data": {"conversation_id": "conv_2", "status": "done",
            "metadata": {"termination_reason": "voicemail_detected"}}});
    let event = provider
        .parse_webhook(&serde_json::to_vec(&voicemail).unwrap())
        .expect("parses");
    assert!(matches!(
        event,
        CallEvent::NotConnected {
            reason: NoConnect::Voicemail,
            ..
        }
    ));
    for (wire, reason) in [
        ("busy", NoConnect::Busy),
        ("no-answer", NoConnect::NoAnswer),
        ("unknown", NoConnect::Unknown),
    ] {
        let failure = json!({"type": "call_initiation_failure", "event_timestamp": NOW,
            "data": {"conversation_id": "conv_3", "failure_reason": wire,
                "metadata": {"type": "twilio", "body": {}}}});
        let event = provider
            .parse_webhook(&serde_json::to_vec(&failure).unwrap())
            .expect("parses");
        assert_eq!(
            event,
            CallEvent::NotConnected {
                call_id: "conv_3".into(),
                call_key: None,
                to_number: None,
                reason
            }
        );
    }
    let audio = json!({"type": "post_call_audio", "event_timestamp": NOW,
        "data": {"conversation_id": "conv_4", "full_audio": "SUQzBA=="}});
    let event = provider
        .parse_webhook(&serde_json::to_vec(&audio).unwrap())
        .expect("parses");
    assert_eq!(
        event,
        CallEvent::Audio {
            call_id: "conv_4".into(),
            audio: b"ID3\x04".to_vec()
        }
    );
    let bad_audio = json!({"type": "post_call_audio", "event_timestamp": NOW,
        "data": {"conversation_id": "conv_4", "full_audio": "%%%"}});
    assert!(
        provider
            .parse_webhook(&serde_json::to_vec(&bad_audio).unwrap())
            .is_err()
    );
    let other = json!({"type": "something_new", "event_timestamp": NOW});
    assert_eq!(
        provider
            .parse_webhook(&serde_json::to_vec(&other).unwrap())
            .expect("parses"),
        CallEvent::Ignored {
            kind: "something_new".into()
        }
    );
    assert!(provider.parse_webhook(b"{not json").is_err());
}

/// A transcription webhook for `conv_1` with `data` merged over a minimal conversation.
fn conversation_event_of(data: serde_json::Value) -> crate::providers::voice::CallEvent {
    let mut conversation = json!({"conversation_id": "conv_1", "status": "done",
        "conversation_initiation_client_data": {"dynamic_variables": {"call_key": "run:1"}}});
    for (k, v) in data.as_object().unwrap() {
        conversation[k] = v.clone();
    }
    let body =
        json!({"type": "post_call_transcription", "event_timestamp": NOW, "data": conversation});
    let WebhookEvent::Transcription(c) = parse_webhook(body.to_string().as_bytes()).unwrap() else {
        panic!("not a transcription")
    };
    super::provider::conversation_event(&c)
}

#[test]
fn a_conversation_is_read_by_its_call_result_then_its_words() {
    use crate::providers::voice::CallEvent;
    use crate::providers::voice::NoConnect;
    let greeting = json!([{"role": "user", "message": "Hi, you've reached Ada, leave a message."},
        {"role": "agent", "message": "Hi Ada, I'll call back."}]);
    let line = |result: &str| {
        json!({"termination_reason": "Call ended by remote party",
        "call_duration_secs": 21, "phone_call": {"type": "twilio", "call_result": result}})
    };
    let reason = |event: CallEvent| match event {
        CallEvent::NotConnected {
            reason, call_key, ..
        } => {
            assert_eq!(call_key.as_deref(), Some("run:1"));
            Some(reason)
        }
        CallEvent::Ended(_) => None,
        other => panic!("unexpected {other:?}"),
    };
    // The structured result decides, whatever the free text says.
    for (result, expected) in [
        ("voicemail", Some(NoConnect::Voicemail)),
        ("busy", Some(NoConnect::Busy)),
        ("no_answer", Some(NoConnect::NoAnswer)),
        ("answered", None),
        ("something_new", None),
    ] {
        let event =
            conversation_event_of(json!({"transcript": greeting, "metadata": line(result)}));
        assert_eq!(reason(event), expected, "call_result {result}");
    }
    // A failed conversation in which the person spoke connected: it is analysed.
    let spoke = json!([{"role": "agent", "message": "Hi Ada"},
        {"role": "user", "message": "Yes, I'm interested, call me back."}]);
    let failed = |transcript| {
        conversation_event_of(json!({"status": "failed", "transcript": transcript,
        "metadata": {"termination_reason": "Client disconnected: 1011"}}))
    };
    match failed(spoke) {
        CallEvent::Ended(report) => assert!(report.transcript.contains("interested")),
        other => panic!("a conversation with the person's words is analysed: {other:?}"),
    }
    // One in which nobody answered did not.
    let silent = json!([{"role": "agent", "message": "Hello?"}, {"role": "user", "message": null}]);
    assert_eq!(reason(failed(silent)), Some(NoConnect::Unknown));
    let busy = conversation_event_of(json!({"status": "failed", "transcript": [],
        "metadata": {"termination_reason": "Call initiation failed: busy"}}));
    assert_eq!(reason(busy), Some(NoConnect::Busy));
}

#[test]
fn a_conversation_without_its_transcript_or_metadata_is_incomplete() {
    use crate::providers::voice::CallEvent;
    use crate::providers::voice::NoConnect;
    let incomplete = CallEvent::Incomplete {
        call_id: "conv_1".into(),
        call_key: Some("run:1".into()),
    };
    let metadata =
        json!({"call_duration_secs": 42, "termination_reason": "end_call tool was called"});
    for data in [
        json!({"transcript": null, "metadata": null}),
        json!({"metadata": metadata}),
        json!({"transcript": null, "metadata": metadata}),
        json!({"transcript": [{"role": "user", "message": "Yes please"}]}),
        json!({"transcript": [{"role": "user", "message": "Yes please"}], "metadata": null}),
    ] {
        assert_eq!(conversation_event_of(data.clone()), incomplete, "{data}");
    }
    // What the line reported is enough to know the person was not reached.
    let voicemail = conversation_event_of(json!({"transcript": null,
        "metadata": {"phone_call": {"call_result": "voicemail"}}}));
    assert!(matches!(
        voicemail,
        CallEvent::NotConnected {
            reason: NoConnect::Voicemail,
            ..
        }
    ));
    // An empty transcript that was sent is a call where nobody spoke, not a missing one.
    let empty = conversation_event_of(json!({"transcript": [], "metadata": metadata}));
    assert!(
        matches!(empty, CallEvent::Ended(ref r) if r.transcript.is_empty()),
        "{empty:?}"
    );
}
