//! Contract tests for the agent endpoints against a local fake that records every request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::*;
use crate::providers::elevenlabs::API_KEY_HEADER;

/// A request as the fake saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    /// The raw (still escaped) path.
    path: String,
    query: Option<String>,
    key: Option<String>,
    /// The JSON body, or `Null` when there was none.
    body: Value,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Serves `answer` for every request and records the requests.
async fn fake<F>(answer: F) -> (ElevenLabsClient, Log)
where
    F: Fn(&Seen) -> Response + Clone + Send + Sync + 'static,
{
    let log: Log = Arc::default();
    let recorder = log.clone();
    let app = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (answer, log) = (answer.clone(), recorder.clone());
            async move {
                let seen = Seen {
                    method,
                    path: uri.path().to_owned(),
                    query: uri.query().map(str::to_owned),
                    key: headers
                        .get(API_KEY_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    body: if body.is_empty() {
                        Value::Null
                    } else {
                        serde_json::from_slice(&body).expect("request bodies are JSON")
                    },
                };
                let response = answer(&seen);
                log.lock().expect("log").push(seen);
                response
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    let client = ElevenLabsClient::new(format!("http://{addr}"), "xi_test", Duration::from_secs(5));
    (client, log)
}

fn seen(log: &Log) -> Vec<Seen> {
    log.lock().expect("log").clone()
}

/// A spec like the one `agents sync` sends.
fn spec() -> AgentSpec {
    AgentSpec {
        name: "Demo Realty — riley".into(),
        tags: vec!["switchboard".into(), "demo".into()],
        conversation_config: ConversationConfig {
            agent: Some(AgentSettings {
                first_message: Some("Hi {{customer_name}}".into()),
                language: Some("en".into()),
                prompt: Some(PromptSettings {
                    prompt: Some("You are Riley.".into()),
                    ..Default::default()
                }),
            }),
            tts: Some(TtsSettings {
                voice_id: Some("voice_1".into()),
            }),
        },
        platform_settings: Some(PlatformSettings {
            overrides: Some(OverridePermissions::per_call()),
            ..Default::default()
        }),
    }
}

/// The wire form of [`spec`], written out by hand.
fn spec_json() -> Value {
    json!({
        "name": "Demo Realty — riley",
        "tags": ["switchboard", "demo"],
        "conversation_config": {
            "agent": {"first_message": "Hi {{customer_name}}", "language": "en",
                      "prompt": {"prompt": "You are Riley."}},
            "tts": {"voice_id": "voice_1"}
        },
        "platform_settings": {"overrides": {"conversation_config_override": {
            "agent": {"prompt": {"prompt": true}, "first_message": true, "language": true},
            "tts": {"voice_id": true}
        }}}
    })
}

#[tokio::test]
async fn create_posts_the_spec_and_returns_the_id() {
    let (client, log) = fake(|s: &Seen| match s.body["name"].as_str() {
        Some("no id") => axum::Json(json!({})).into_response(),
        Some("not json") => "created!".into_response(),
        _ => axum::Json(json!({"agent_id": "agent_1", "extra": 1})).into_response(),
    })
    .await;
    assert_eq!(client.create_agent(&spec()).await, Ok("agent_1".to_owned()));
    let req = &seen(&log)[0];
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.path, "/v1/convai/agents/create");
    assert_eq!(req.key.as_deref(), Some("xi_test"));
    assert_eq!(req.body, spec_json());

    let mut odd = spec();
    odd.name = "no id".into();
    let err = client.create_agent(&odd).await.expect_err("no id");
    assert!(matches!(err, ProviderError::Rejected { .. }), "{err:?}");
    odd.name = "not json".into();
    let err = client.create_agent(&odd).await.expect_err("not json");
    assert!(matches!(err, ProviderError::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn get_reads_leniently_and_escapes_the_id() {
    let (client, log) = fake(|_: &Seen| {
        axum::Json(json!({
            "agent_id": "agent 1/x",
            "name": "Demo Realty — riley",
            "tags": null,
            "conversation_config": {
                "agent": {"first_message": "Hi", "language": "en", "dynamic_variables": {},
                          "prompt": {"prompt": "You are Riley.", "llm": "gpt-4o-mini",
                                     "temperature": 0.2, "tools": [], "knowledge_base": []}},
                "tts": {"voice_id": "voice_1", "model_id": "eleven_flash_v2"},
                "asr": {"quality": "high"},
                "turn": {"turn_timeout": 7}
            },
            "metadata": {"created_at_unix_secs": 1739537297},
            "platform_settings": {
                "overrides": {"conversation_config_override": {
                    "agent": {"prompt": {"prompt": true}, "first_message": false, "language": null},
                    "tts": {"voice_id": true}},
                    "custom_llm_extra_body": false},
                "call_limits": {"agent_concurrency_limit": -1, "daily_limit": 100000},
                "evaluation": {"criteria": []},
                "widget": {"variant": "full"}
            },
            "phone_numbers": []
        }))
        .into_response()
    })
    .await;
    let agent = client.get_agent("agent 1/x").await.expect("agent");
    let req = &seen(&log)[0];
    assert_eq!(
        (req.method.clone(), req.path.as_str(), req.key.as_deref()),
        (
            Method::GET,
            "/v1/convai/agents/agent%201%2Fx",
            Some("xi_test")
        )
    );
    assert_eq!(agent.agent_id, "agent 1/x");
    assert!(agent.spec.tags.is_empty());
    let settings = agent
        .spec
        .conversation_config
        .agent
        .expect("agent settings");
    let prompt = settings.prompt.expect("prompt");
    assert_eq!(prompt.llm.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(prompt.temperature, Some(0.2));
    let platform = agent.spec.platform_settings.expect("platform settings");
    let allowed = platform
        .overrides
        .and_then(|o| o.conversation_config_override)
        .and_then(|c| c.agent)
        .expect("agent permissions");
    assert_eq!(allowed.first_message, Some(false));
    assert_eq!(allowed.language, None);
    assert_eq!(
        platform.call_limits.and_then(|l| l.daily_limit),
        Some(100_000)
    );
}

#[tokio::test]
async fn update_patches_and_delete_deletes_the_escaped_path() {
    let (client, log) = fake(|s: &Seen| {
        if s.method == Method::DELETE {
            StatusCode::OK.into_response()
        } else {
            // The PATCH answer is the whole agent; the client does not need it.
            axum::Json(json!({"agent_id": "a", "whatever": {"nested": true}})).into_response()
        }
    })
    .await;
    client
        .update_agent("agent_1?x=1", &spec())
        .await
        .expect("updated");
    client.delete_agent("agent_1").await.expect("deleted");
    let reqs = seen(&log);
    assert_eq!(reqs[0].method, Method::PATCH);
    assert_eq!(reqs[0].path, "/v1/convai/agents/agent_1%3Fx=1");
    assert_eq!(reqs[0].query, None);
    assert_eq!(reqs[0].body, spec_json());
    assert_eq!(reqs[1].method, Method::DELETE);
    assert_eq!(reqs[1].path, "/v1/convai/agents/agent_1");
    assert_eq!(reqs[1].body, Value::Null);
    assert!(reqs.iter().all(|r| r.key.as_deref() == Some("xi_test")));

    // An empty id would address the collection: refused before anything is sent.
    let err = client.delete_agent("").await.expect_err("empty id");
    assert!(
        matches!(err, ProviderError::InvalidRequest { .. }),
        "{err:?}"
    );
    assert_eq!(seen(&log).len(), 2);
}

#[tokio::test]
async fn list_pages_with_page_size_and_cursor() {
    let (client, log) = fake(|s: &Seen| match s.query.as_deref() {
        None => axum::Json(json!({
            "agents": [{"agent_id": "agent_1", "name": "One", "tags": ["switchboard"],
                        "created_at_unix_secs": 1, "access_info": {}},
                       {"agent_id": "agent_2", "name": null}],
            "next_cursor": "c 2&x", "has_more": true}))
        .into_response(),
        Some(_) => axum::Json(json!({"agents": null, "next_cursor": null, "has_more": false}))
            .into_response(),
    })
    .await;
    let first = client.list_agents(None, None).await.expect("first page");
    assert_eq!(first.agents.len(), 2);
    assert_eq!(first.agents[0].tags, ["switchboard"]);
    assert_eq!(first.agents[1].name, "");
    assert!(first.has_more);
    let next = client
        .list_agents(Some(50), first.next_cursor.as_deref())
        .await
        .expect("second page");
    assert!(next.agents.is_empty() && !next.has_more && next.next_cursor.is_none());
    let reqs = seen(&log);
    assert_eq!(
        (reqs[0].method.clone(), reqs[0].path.as_str()),
        (Method::GET, "/v1/convai/agents")
    );
    assert_eq!(reqs[0].query, None);
    assert_eq!(
        reqs[1].query.as_deref(),
        Some("page_size=50&cursor=c+2%26x")
    );
}

#[tokio::test]
async fn errors_keep_status_code_detail_and_retry_after() {
    let (client, _log) = fake(|s: &Seen| match s.method {
        Method::GET => (
            StatusCode::NOT_FOUND,
            axum::Json(
                json!({"detail": {"type": "not_found", "code": "agent_not_found",
                "message": "Agent agent_x not found", "status": "error", "request_id": "r1"}}),
            ),
        )
            .into_response(),
        Method::POST => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"detail": [
                {"loc": ["body", "conversation_config", "agent", "language"],
                 "msg": "unsupported language", "type": "value_error"}]})),
        )
            .into_response(),
        _ => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "7")],
            axum::Json(json!({"detail": {"code": "rate_limit_exceeded", "message": "slow down"}})),
        )
            .into_response(),
    })
    .await;
    let err = client.get_agent("agent_x").await.expect_err("404");
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.code(), Some("agent_not_found"));
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("Agent agent_x not found"), "{err}");

    let err = client.create_agent(&spec()).await.expect_err("422");
    assert_eq!(err.status(), Some(422));
    assert_eq!(err.code(), Some("value_error"));
    assert!(
        err.to_string()
            .contains("body.conversation_config.agent.language: unsupported language"),
        "{err}"
    );
    assert!(!err.is_retryable());

    let err = client
        .update_agent("agent_1", &spec())
        .await
        .expect_err("429");
    assert_eq!(err.status(), Some(429));
    assert_eq!(err.code(), Some("rate_limit_exceeded"));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(err.is_retryable());
}

#[test]
fn spec_round_trips_and_skips_absent_fields() {
    let value = serde_json::to_value(spec()).expect("serialises");
    assert_eq!(value, spec_json());
    let back: AgentSpec = serde_json::from_value(value).expect("parses");
    assert_eq!(back, spec());
    let bare = serde_json::to_value(AgentSpec::default()).expect("serialises");
    assert_eq!(
        bare,
        json!({"name": "", "tags": [], "conversation_config": {}})
    );
}
