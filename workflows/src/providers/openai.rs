//! OpenAI Chat Completions: structured call analysis (wire format, schema and client).
//!
//! Every OpenAI shape Switchboard reads or writes lives here: the [`CallAnalysis`] the model must
//! return, its strict JSON schema, the chat-completion request and response, and the error body.
//! The base URL is configurable, so any OpenAI-compatible server (and the built-in simulator)
//! works. The model's output is checked again on our side: unknown fields, missing fields and
//! out-of-range scores make the outcome [`AnalysisOutcome::Invalid`].

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::error::{MAX_RETRY_AFTER, ProviderError, retry_after_from_headers};

/// Provider name used in [`ProviderError`]s.
pub const PROVIDER: &str = "openai";
/// Path of the chat-completions endpoint, relative to the base URL.
pub const CHAT_COMPLETIONS_PATH: &str = "/v1/chat/completions";
/// Name of the structured-output schema sent with each request.
pub const SCHEMA_NAME: &str = "call_analysis";

// ---------------------------------------------------------------------------------------------
// The analysis the model returns

/// Structured analysis of one call transcript.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CallAnalysis {
    /// Two or three sentences on what happened.
    pub summary: String,
    /// The customer's overall sentiment.
    pub sentiment: Sentiment,
    /// Objections the customer raised, in their words, shortened.
    pub objections: Vec<String>,
    /// What should happen next.
    pub next_action: String,
    /// How much the customer wants what is offered.
    pub intent: Dimension,
    /// How soon they need it.
    pub urgency: Dimension,
    /// Whether they can pay for it.
    pub budget: Dimension,
    /// How well they match the offer.
    pub fit: Dimension,
    /// How engaged they were in the conversation.
    pub engagement: Dimension,
    /// Calls to action the customer took up.
    pub cta: CtaInteractions,
}

/// The customer's overall sentiment.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Sentiment {
    /// Warm, interested.
    Positive,
    /// Neither.
    Neutral,
    /// Annoyed, declining.
    Negative,
}

/// A coarse level.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

/// One lead-analytics dimension.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    /// Coarse level.
    pub level: Level,
    /// Score, 0 to 100.
    pub score: u8,
    /// Why, citing the transcript.
    pub reasoning: String,
}

/// Calls to action the customer took up during the call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CtaInteractions {
    /// Asked for or discussed pricing.
    pub pricing: bool,
    /// Agreed to or asked for a demo.
    pub demo: bool,
    /// Agreed to a follow-up.
    pub follow_up: bool,
    /// Asked for a sample or trial.
    pub sample: bool,
    /// Asked to speak to a human.
    pub escalated_to_human: bool,
}

impl CallAnalysis {
    /// Checks what the type system does not: every score is within 0..=100.
    pub fn validate(&self) -> Result<(), String> {
        for (name, dim) in [
            ("intent", &self.intent),
            ("urgency", &self.urgency),
            ("budget", &self.budget),
            ("fit", &self.fit),
            ("engagement", &self.engagement),
        ] {
            if dim.score > 100 {
                return Err(format!("{name}.score {} is outside 0..=100", dim.score));
            }
        }
        Ok(())
    }
}

/// The strict JSON schema of [`CallAnalysis`]: every property required, no additional
/// properties on any object, enums for levels and sentiment, integer scores within 0..=100.
pub fn call_analysis_schema() -> Value {
    let dimension = |description: &str| {
        json!({
            "type": "object",
            "description": description,
            "properties": {
                "level": {"type": "string", "enum": ["low", "medium", "high"]},
                "score": {"type": "integer", "minimum": 0, "maximum": 100},
                "reasoning": {"type": "string"}
            },
            "required": ["level", "score", "reasoning"],
            "additionalProperties": false
        })
    };
    json!({
        "type": "object",
        "properties": {
            "summary": {"type": "string", "description": "Two or three sentences on the call."},
            "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
            "objections": {"type": "array", "items": {"type": "string"},
                "description": "Objections the customer raised; empty when none."},
            "next_action": {"type": "string", "description": "What should happen next."},
            "intent": dimension("How much the customer wants the offer."),
            "urgency": dimension("How soon the customer needs it."),
            "budget": dimension("Whether the customer can pay for it."),
            "fit": dimension("How well the customer matches the offer."),
            "engagement": dimension("How engaged the customer was in the conversation."),
            "cta": {
                "type": "object",
                "description": "Calls to action the customer took up.",
                "properties": {
                    "pricing": {"type": "boolean"},
                    "demo": {"type": "boolean"},
                    "follow_up": {"type": "boolean"},
                    "sample": {"type": "boolean"},
                    "escalated_to_human": {"type": "boolean"}
                },
                "required": ["pricing", "demo", "follow_up", "sample", "escalated_to_human"],
                "additionalProperties": false
            }
        },
        "required": ["summary", "sentiment", "objections", "next_action", "intent", "urgency",
            "budget", "fit", "engagement", "cta"],
        "additionalProperties": false
    })
}

/// What the model made of a transcript.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // short-lived, moved once; boxing would only add noise
pub enum AnalysisOutcome {
    /// A valid analysis.
    Parsed(CallAnalysis),
    /// The model refused (`message.refusal`).
    Refused(String),
    /// The output was cut off (`finish_reason` `length` or `content_filter`).
    Truncated {
        /// The finish reason given.
        finish_reason: String,
    },
    /// The content was missing, did not parse into [`CallAnalysis`], or broke a range.
    Invalid(String),
}

// ---------------------------------------------------------------------------------------------
// Wire format

/// Body of `POST /v1/chat/completions`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ChatCompletionRequest {
    /// Model name.
    pub model: String,
    /// Conversation so far.
    pub messages: Vec<ChatMessage>,
    /// Structured-output format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
}

/// One input message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ChatMessage {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    /// Text content.
    pub content: String,
}

/// `response_format`: `{"type":"json_schema","json_schema":{…}}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ResponseFormat {
    /// `json_schema`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The schema, for `json_schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<JsonSchemaFormat>,
}

/// A named JSON schema for structured output.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct JsonSchemaFormat {
    /// Schema name.
    pub name: String,
    /// Whether the model must follow the schema exactly.
    #[serde(default)]
    pub strict: bool,
    /// The JSON schema.
    pub schema: Value,
}

/// A `chat.completion` answer. Parsing is lenient about fields we do not use.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ChatCompletionResponse {
    /// Completion id.
    #[serde(default)]
    pub id: String,
    /// `chat.completion`.
    #[serde(default)]
    pub object: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: i64,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// The answers; we ask for one.
    #[serde(default)]
    pub choices: Vec<Choice>,
    /// Token usage.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// One answer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Choice {
    /// Position.
    #[serde(default)]
    pub index: u32,
    /// The assistant message.
    #[serde(default)]
    pub message: AssistantMessage,
    /// `stop`, `length`, `content_filter`, `tool_calls`.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// The assistant's message.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct AssistantMessage {
    /// `assistant`.
    #[serde(default)]
    pub role: String,
    /// JSON text when structured output succeeded.
    #[serde(default)]
    pub content: Option<String>,
    /// Why the model refused, when it did.
    #[serde(default)]
    pub refusal: Option<String>,
}

/// Token usage.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens.
    #[serde(default)]
    pub prompt_tokens: u32,
    /// Output tokens.
    #[serde(default)]
    pub completion_tokens: u32,
    /// Both.
    #[serde(default)]
    pub total_tokens: u32,
}

/// An OpenAI error body: `{"error":{"message","type","param","code"}}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ApiErrorBody {
    /// The error.
    pub error: ApiError,
}

/// The error object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ApiError {
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
    /// Category, e.g. `invalid_request_error`, `insufficient_quota`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The offending parameter.
    #[serde(default)]
    pub param: Option<String>,
    /// Machine-readable code, e.g. `insufficient_quota` (a number is read as text).
    #[serde(default, deserialize_with = "string_or_number")]
    pub code: Option<String>,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// Builds a [`ProviderError::Status`]; `code` falls back to the error `type`.
fn status_error(status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> ProviderError {
    let (code, message) = match serde_json::from_slice::<ApiErrorBody>(body) {
        Ok(ApiErrorBody { error }) => (error.code.or(error.kind), error.message),
        Err(_) => (None, super::error::excerpt(body)),
    };
    let retry_after = retry_after_from_headers(headers).or_else(|| {
        // OpenAI also says when its windows reset, as durations like `6m0s`.
        (status == 429)
            .then(|| {
                ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
                    .iter()
                    .filter_map(|h| headers.get(*h)?.to_str().ok().and_then(parse_reset))
                    .max()
            })
            .flatten()
            .map(|d| d.min(MAX_RETRY_AFTER))
    });
    ProviderError::Status {
        provider: PROVIDER,
        status,
        code,
        message,
        retry_after,
    }
}

/// Parses durations like `6m0s`, `1.5s`, `20ms`, `1h2m`.
fn parse_reset(text: &str) -> Option<Duration> {
    let mut total = 0.0_f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, tail) = rest.split_at(split);
        let value: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        total += value
            * match unit {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 0.001,
                _ => return None,
            };
        rest = next;
    }
    total
        .is_finite()
        .then(|| Duration::from_secs_f64(total.min(1e9)))
}

/// Turns a chat-completion answer into an [`AnalysisOutcome`]. No choice at all is a
/// [`ProviderError::Decode`]; everything the model itself got wrong is an outcome.
pub fn outcome_from_response(
    resp: &ChatCompletionResponse,
) -> Result<AnalysisOutcome, ProviderError> {
    let choice = resp.choices.first().ok_or_else(|| ProviderError::Decode {
        provider: PROVIDER,
        message: "chat completion has no choices".into(),
    })?;
    if let Some(refusal) = choice
        .message
        .refusal
        .as_deref()
        .filter(|r| !r.trim().is_empty())
    {
        return Ok(AnalysisOutcome::Refused(refusal.to_owned()));
    }
    if let Some(reason @ ("length" | "content_filter")) = choice.finish_reason.as_deref() {
        return Ok(AnalysisOutcome::Truncated {
            finish_reason: reason.to_owned(),
        });
    }
    let Some(content) = choice
        .message
        .content
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    else {
        return Ok(AnalysisOutcome::Invalid("empty content".into()));
    };
    let analysis: CallAnalysis = match serde_json::from_str(content) {
        Ok(a) => a,
        Err(e) => {
            return Ok(AnalysisOutcome::Invalid(format!(
                "content does not match the schema: {e}"
            )));
        }
    };
    Ok(match analysis.validate() {
        Ok(()) => AnalysisOutcome::Parsed(analysis),
        Err(reason) => AnalysisOutcome::Invalid(reason),
    })
}

// ---------------------------------------------------------------------------------------------
// Client

/// HTTP client for OpenAI-compatible chat completions.
#[derive(Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    model: String,
    timeout: Duration,
}

impl std::fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("model", &self.model)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl OpenAiClient {
    /// A client for `base_url` (e.g. `https://api.openai.com`, without `/v1`) using `model`,
    /// whose requests each give up after `timeout`.
    pub fn new(
        base_url: impl Into<String>,
        api_key: impl Into<String>,
        model: impl Into<String>,
        timeout: Duration,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key: api_key.into(),
            model: model.into(),
            timeout,
        }
    }

    /// The request [`OpenAiClient::analyze`] sends.
    pub fn analysis_request(&self, system: &str, user: &str) -> ChatCompletionRequest {
        ChatCompletionRequest {
            model: self.model.clone(),
            messages: vec![
                ChatMessage {
                    role: "system".into(),
                    content: system.into(),
                },
                ChatMessage {
                    role: "user".into(),
                    content: user.into(),
                },
            ],
            response_format: Some(ResponseFormat {
                kind: "json_schema".into(),
                json_schema: Some(JsonSchemaFormat {
                    name: SCHEMA_NAME.into(),
                    strict: true,
                    schema: call_analysis_schema(),
                }),
            }),
        }
    }

    /// Asks the model for a [`CallAnalysis`] of `user` (the transcript and context) under the
    /// `system` instructions.
    pub async fn analyze(
        &self,
        system: &str,
        user: &str,
    ) -> Result<AnalysisOutcome, ProviderError> {
        let url = format!("{}{CHAT_COMPLETIONS_PATH}", self.base_url);
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.api_key)
            .json(&self.analysis_request(system, user))
            .send()
            .await
            .map_err(|e| ProviderError::from_reqwest(PROVIDER, &e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| ProviderError::from_reqwest(PROVIDER, &e))?;
        if !status.is_success() {
            return Err(status_error(status.as_u16(), &headers, &body));
        }
        let parsed: ChatCompletionResponse = serde_json::from_slice(&body)
            .map_err(|e| ProviderError::decode(PROVIDER, "chat completion", &e, &body))?;
        if let Some(usage) = parsed.usage {
            tracing::debug!(
                model = %parsed.model,
                prompt_tokens = usage.prompt_tokens,
                completion_tokens = usage.completion_tokens,
                "openai analysis usage"
            );
        }
        outcome_from_response(&parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{Router, http::StatusCode, response::IntoResponse, routing::post};

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
        }
    }

    fn response(
        content: Option<&str>,
        refusal: Option<&str>,
        finish: &str,
    ) -> ChatCompletionResponse {
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

        let refused =
            outcome_from_response(&response(None, Some("I can't help"), "stop")).expect("ok");
        assert_eq!(refused, AnalysisOutcome::Refused("I can't help".into()));

        for reason in ["length", "content_filter"] {
            let got = outcome_from_response(&response(Some("{\"summ"), None, reason)).expect("ok");
            assert_eq!(
                got,
                AnalysisOutcome::Truncated {
                    finish_reason: reason.into()
                }
            );
        }

        let mut wrong = serde_json::to_value(sample()).expect("value");
        wrong["intent"]["score"] = json!(101);
        let got =
            outcome_from_response(&response(Some(&wrong.to_string()), None, "stop")).expect("ok");
        assert!(
            matches!(&got, AnalysisOutcome::Invalid(r) if r.contains("intent.score")),
            "{got:?}"
        );
        wrong["intent"]["score"] = json!(300);
        let got =
            outcome_from_response(&response(Some(&wrong.to_string()), None, "stop")).expect("ok");
        assert!(matches!(got, AnalysisOutcome::Invalid(_)));

        let mut extra = serde_json::to_value(sample()).expect("value");
        extra["cta"]["extra"] = json!(true);
        let got =
            outcome_from_response(&response(Some(&extra.to_string()), None, "stop")).expect("ok");
        assert!(matches!(got, AnalysisOutcome::Invalid(_)), "{got:?}");
        let mut missing = serde_json::to_value(sample()).expect("value");
        missing.as_object_mut().map(|o| o.remove("fit"));
        let got =
            outcome_from_response(&response(Some(&missing.to_string()), None, "stop")).expect("ok");
        assert!(matches!(got, AnalysisOutcome::Invalid(_)), "{got:?}");
        let mut level = serde_json::to_value(sample()).expect("value");
        level["fit"]["level"] = json!("extreme");
        let got =
            outcome_from_response(&response(Some(&level.to_string()), None, "stop")).expect("ok");
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
}
