//! Unit tests for the OpenAI wire format: schema, outcomes, error bodies, resets and the client.

use super::*;
use crate::providers::error::MAX_RETRY_AFTER;
use axum::{Router, http::StatusCode, response::IntoResponse, routing::post};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A scripted answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, &'static str)>, String);

fn sample() -> CallAnalysis {
    let dim = |level, score| Dimension {
        level,
        score,
        reasoning: "because".into(),
    };
    CallAnalysis {
        summary: "Ada wants a demo.".into(),
        sentiment: Sentiment::Positive,
        objections: vec!["price".into()],
        next_action: "Book the demo".into(),
        intent: dim(Level::High, 90),
        urgency: dim(Level::Medium, 55),
        budget: dim(Level::Medium, 60),
        fit: dim(Level::High, 80),
        engagement: dim(Level::High, 85),
        cta: CtaInteractions {
            pricing: true,
            demo: true,
            follow_up: false,
            sample: false,
            escalated_to_human: false,
        },
        opt_out: false,
    }
}

fn response(content: Option<&str>, refusal: Option<&str>, finish: &str) -> ChatCompletionResponse {
    ChatCompletionResponse {
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".into(),
                content: content.map(str::to_owned),
                refusal: refusal.map(str::to_owned),
            },
            finish_reason: Some(finish.into()),
        }],
        ..Default::default()
    }
}

#[test]
fn outcomes() {
    let good = serde_json::to_string(&sample()).expect("serialises");
    let parsed = outcome_from_response(&response(Some(&good), None, "stop")).expect("ok");
    assert_eq!(parsed, AnalysisOutcome::Parsed(sample()));

    let refused = outcome_from_response(&response(None, Some("I can't help"), "stop")).expect("ok");
    assert_eq!(refused, AnalysisOutcome::Refused("I can't help".into()));

    for (reason, expected) in [
        ("length", AnalysisOutcome::Truncated),
        ("content_filter", AnalysisOutcome::Filtered),
    ] {
        let got = outcome_from_response(&response(Some("{\"summ"), None, reason)).expect("ok");
        assert_eq!(got, expected, "{reason}");
    }

    let mut wrong = serde_json::to_value(sample()).expect("value");
    wrong["intent"]["score"] = json!(101);
    let got = outcome_from_response(&response(Some(&wrong.to_string()), None, "stop")).expect("ok");
    assert!(
        matches!(&got, AnalysisOutcome::Invalid(r) if r.contains("intent.score")),
        "{got:?}"
    );
    wrong["intent"]["score"] = json!(300);
    let got = outcome_from_response(&response(Some(&wrong.to_string()), None, "stop")).expect("ok");
    assert!(matches!(got, AnalysisOutcome::Invalid(_)));

    let mut extra = serde_json::to_value(sample()).expect("value");
    extra["cta"]["extra"] = json!(true);
    let got = outcome_from_response(&response(Some(&extra.to_string()), None, "stop")).expect("ok");
    assert!(matches!(got, AnalysisOutcome::Invalid(_)), "{got:?}");
    let mut missing = serde_json::to_value(sample()).expect("value");
    missing.as_object_mut().map(|o| o.remove("fit"));
    let got =
        outcome_from_response(&response(Some(&missing.to_string()), None, "stop")).expect("ok");
    assert!(matches!(got, AnalysisOutcome::Invalid(_)), "{got:?}");
    let mut level = serde_json::to_value(sample()).expect("value");
    level["fit"]["level"] = json!("extreme");
    let got = outcome_from_response(&response(Some(&level.to_string()), None, "stop")).expect("ok");
    assert!(matches!(got, AnalysisOutcome::Invalid(_)), "{got:?}");

    for content in [None, Some(""), Some("not json")] {
        let got = outcome_from_response(&response(content, None, "stop")).expect("ok");
        assert!(matches!(got, AnalysisOutcome::Invalid(_)), "{content:?}");
    }
    let none = ChatCompletionResponse::default();
    assert!(matches!(
        outcome_from_response(&none),
        Err(ProviderError::Decode { .. })
    ));
}

/// Walks the schema: every object lists all properties in `required` and forbids others.
fn assert_strict(schema: &Value, path: &str) {
    if schema["type"] == "object" {
        assert_eq!(schema["additionalProperties"], json!(false), "{path}");
        let props = schema["properties"].as_object().expect("properties");
        let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
        let mut required: Vec<&str> = schema["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        names.sort_unstable();
        required.sort_unstable();
        assert_eq!(names, required, "{path}");
        for (name, sub) in props {
            assert_strict(sub, &format!("{path}.{name}"));
        }
    }
    if let Some(items) = schema.get("items") {
        assert_strict(items, &format!("{path}[]"));
    }
    if schema["type"] == "integer" {
        assert_eq!(
            (schema["minimum"].as_i64(), schema["maximum"].as_i64()),
            (Some(0), Some(100)),
            "{path}"
        );
    }
}

/// Checks that `value` conforms to `schema` (the subset of JSON Schema we use).
fn conforms(schema: &Value, value: &Value) -> bool {
    let enum_ok = schema
        .get("enum")
        .and_then(Value::as_array)
        .is_none_or(|e| e.contains(value));
    enum_ok
        && match schema["type"].as_str() {
            Some("object") => value.as_object().is_some_and(|o| {
                let props = schema["properties"].as_object().expect("properties");
                o.len() == props.len()
                    && props
                        .iter()
                        .all(|(k, s)| o.get(k).is_some_and(|v| conforms(s, v)))
            }),
            Some("array") => value
                .as_array()
                .is_some_and(|a| a.iter().all(|v| conforms(&schema["items"], v))),
            Some("string") => value.is_string(),
            Some("boolean") => value.is_boolean(),
            Some("integer") => value.as_i64().is_some_and(|n| (0..=100).contains(&n)),
            _ => false,
        }
}

#[test]
fn schema_is_strict_and_matches_the_type() {
    let schema = call_analysis_schema();
    assert_strict(&schema, "$");
    assert_eq!(
        schema["properties"]["sentiment"]["enum"],
        json!(["positive", "neutral", "negative"])
    );
    assert_eq!(
        schema["properties"]["intent"]["properties"]["level"]["enum"],
        json!(["low", "medium", "high"])
    );
    assert!(conforms(
        &schema,
        &serde_json::to_value(sample()).expect("value")
    ));
}

#[test]
fn error_bodies() {
    let mut headers = reqwest::header::HeaderMap::new();
    let quota = json!({"error": {"message": "You exceeded your current quota",
        "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}});
    let err = status_error(429, &headers, quota.to_string().as_bytes());
    assert_eq!(err.code(), Some("insufficient_quota"));
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("exceeded your current quota"));

    headers.insert(
        "x-ratelimit-reset-requests",
        reqwest::header::HeaderValue::from_static("1.5s"),
    );
    headers.insert(
        "x-ratelimit-reset-tokens",
        reqwest::header::HeaderValue::from_static("6m0s"),
    );
    let limited = json!({"error": {"message": "Rate limit reached", "type": "requests",
        "param": null, "code": "rate_limit_exceeded"}});
    let err = status_error(429, &headers, limited.to_string().as_bytes());
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(MAX_RETRY_AFTER));
    headers.insert(
        "retry-after-ms",
        reqwest::header::HeaderValue::from_static("20"),
    );
    let err = status_error(429, &headers, limited.to_string().as_bytes());
    assert_eq!(err.retry_after(), Some(Duration::from_millis(20)));

    let invalid = json!({"error": {"message": "Invalid schema", "type": "invalid_request_error",
        "param": "response_format", "code": null}});
    let err = status_error(
        400,
        &reqwest::header::HeaderMap::new(),
        invalid.to_string().as_bytes(),
    );
    assert_eq!(err.code(), Some("invalid_request_error"));
    assert!(!err.is_retryable());
    let err = status_error(503, &reqwest::header::HeaderMap::new(), b"upstream down");
    assert!(err.is_retryable() && err.to_string().contains("upstream down"));
}

#[test]
fn reset_durations() {
    assert_eq!(parse_reset("6m0s"), Some(Duration::from_secs(360)));
    assert_eq!(parse_reset("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_reset("20ms"), Some(Duration::from_millis(20)));
    assert_eq!(parse_reset("1h2m3s"), Some(Duration::from_secs(3723)));
    for bad in ["", "abc", "5", "3d"] {
        assert_eq!(parse_reset(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn client_sends_structured_request() {
    let content = serde_json::to_string(&sample()).expect("serialises");
    let app = Router::new().route(
        CHAT_COMPLETIONS_PATH,
        post(move |headers: axum::http::HeaderMap, body: axum::Json<ChatCompletionRequest>| async move {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
            if auth != "Bearer sk-test" {
                let err = json!({"error": {"message": "bad key", "type": "invalid_request_error",
                    "param": null, "code": "invalid_api_key"}});
                return (StatusCode::UNAUTHORIZED, axum::Json(err)).into_response();
            }
            let format = body.0.response_format.clone().expect("response_format");
            let schema = format.json_schema.expect("json_schema");
            assert_eq!((format.kind.as_str(), schema.name.as_str(), schema.strict), ("json_schema", SCHEMA_NAME, true));
            assert_eq!(schema.schema, call_analysis_schema());
            assert_eq!(body.0.messages[0].role, "system");
            assert_eq!(body.0.messages[1].content, "transcript");
            axum::Json(json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                "model": body.0.model, "choices": [{"index": 0, "message": {"role": "assistant",
                "content": content, "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}}))
            .into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });

    let client = OpenAiClient::new(&base, "sk-test", "gpt-test", Duration::from_secs(5));
    let got = client
        .analyze("system", "transcript")
        .await
        .expect("answered");
    assert_eq!(got, AnalysisOutcome::Parsed(sample()));
    let bad = OpenAiClient::new(base, "sk-wrong", "gpt-test", Duration::from_secs(5));
    let err = bad
        .analyze("system", "transcript")
        .await
        .expect_err("unauthorised");
    assert_eq!(
        (err.status(), err.code()),
        (Some(401), Some("invalid_api_key"))
    );
    assert!(!format!("{bad:?}").contains("sk-wrong"));
}

/// Serves `answers` (status, headers, body) in order to chat-completion requests, then a valid
/// analysis; returns the base URL and the request count.
async fn scripted(answers: Vec<Answer>) -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let answers = Arc::new(answers);
    let content = serde_json::to_string(&sample()).expect("serialises");
    let app = Router::new().route(
        CHAT_COMPLETIONS_PATH,
        post(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let answers = answers.clone();
            let content = content.clone();
            async move {
                let Some((status, headers, body)) = answers.get(n).cloned() else {
                    return axum::Json(json!({"id": "c", "object": "chat.completion",
                        "created": 1, "model": "m", "choices": [{"index": 0, "message":
                        {"role": "assistant", "content": content}, "finish_reason": "stop"}]}))
                    .into_response();
                };
                let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
                for (name, value) in headers {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                response
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (base, count)
}

fn error_body(code: &str) -> String {
    json!({"error": {"message": code, "type": "requests", "param": null, "code": code}}).to_string()
}

#[tokio::test]
async fn rate_limits_and_outages_are_retried_quota_and_validation_are_not() {
    let (base, count) = scripted(vec![
        (
            429,
            vec![("x-ratelimit-reset-requests", "120ms")],
            error_body("rate_limit_exceeded"),
        ),
        (500, vec![], "upstream exploded".into()),
    ])
    .await;
    let client = OpenAiClient::new(base, "k", "m", Duration::from_secs(5));
    let got = client
        .analyze("s", "t")
        .await
        .expect("third request answers");
    assert_eq!(got, AnalysisOutcome::Parsed(sample()));
    assert_eq!(count.load(Ordering::SeqCst), 3);

    for (status, code) in [(429, "insufficient_quota"), (400, "invalid_request_error")] {
        let (base, count) = scripted(vec![(status, vec![], error_body(code))]).await;
        let client = OpenAiClient::new(base, "k", "m", Duration::from_secs(5));
        let err = client.analyze("s", "t").await.expect_err("not retried");
        assert_eq!((err.status(), err.code()), (Some(status), Some(code)));
        assert!(!err.is_retryable() && !err.is_unavailable());
        assert_eq!(count.load(Ordering::SeqCst), 1, "{code} is sent once");
    }

    let (base, _) = scripted(vec![(200, vec![], "{\"choices\": 7}".into())]).await;
    let client = OpenAiClient::new(base, "k", "m", Duration::from_secs(5));
    let err = client.analyze("s", "t").await.expect_err("malformed");
    assert!(
        matches!(err, ProviderError::Decode { .. }) && !err.is_retryable(),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_slow_model_times_out_and_is_retried() {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let app = Router::new().route(
        CHAT_COMPLETIONS_PATH,
        post(move || {
            seen.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<String>()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    let client = OpenAiClient::new(base, "k", "m", Duration::from_millis(150));
    let err = client.analyze("s", "t").await.expect_err("timeout");
    assert!(
        matches!(&err, ProviderError::Transport { message, .. } if message.contains("timed out")),
        "{err:?}"
    );
    // An analysis has no effect in the world: a timed-out request is safe to send again.
    assert_eq!(count.load(Ordering::SeqCst), 3);
}
