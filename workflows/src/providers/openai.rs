//! OpenAI Chat Completions: structured call analysis (wire format, schema and client).
//!
//! Every OpenAI shape Switchboard reads or writes lives here: the [`CallAnalysis`] the model must
//! return, its strict JSON schema, the chat-completion request and response, and the error body.
//! The base URL is configurable, so any OpenAI-compatible server (and the built-in simulator)
//! works. The model's output is checked again on our side: unknown fields, missing fields and
//! out-of-range scores make the outcome [`AnalysisOutcome::Invalid`].

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::error::{MAX_RETRY_AFTER, ProviderError, retry_after_from_headers};
use super::resilience::{Idempotency, Resilience};

/// Provider name used in [`ProviderError`]s.
pub const PROVIDER: &str = "openai";
/// Path of the model list, the circuit breaker's health probe.
pub const MODELS_PATH: &str = "/v1/models";
/// Path of the chat-completions endpoint, relative to the base URL.
pub const CHAT_COMPLETIONS_PATH: &str = "/v1/chat/completions";
/// Name of the structured-output schema sent with each request.
pub const SCHEMA_NAME: &str = "call_analysis";
/// Tokens a first analysis may use (a full analysis takes about 500); an answer cut off at the
/// budget is asked for again with a larger one.
pub const ANALYSIS_TOKENS: u32 = 1_500;

// ---------------------------------------------------------------------------------------------
// The analysis the model returns

/// Structured analysis of one call transcript.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, utoipa::ToSchema)]
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
    /// The customer asked not to be called again (absent in analyses made before it was asked
    /// for: false).
    #[serde(default)]
    pub opt_out: bool,
}

/// The customer's overall sentiment.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
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
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
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
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, utoipa::ToSchema)]
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
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, utoipa::ToSchema)]
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
            "opt_out": {"type": "boolean",
                "description": "The customer asked not to be called again (stop calling, remove me, do not call)."},
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
            "budget", "fit", "engagement", "cta", "opt_out"],
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
    /// The output was cut off at the token budget (`finish_reason: length`): a larger budget
    /// may be enough.
    Truncated,
    /// The provider's content filter withheld the output (`finish_reason: content_filter`):
    /// asking again gives the same answer.
    Filtered,
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
    /// The most tokens the answer may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
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
    match choice.finish_reason.as_deref() {
        Some("length") => return Ok(AnalysisOutcome::Truncated),
        Some("content_filter") => return Ok(AnalysisOutcome::Filtered),
        _ => {}
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
    resilience: Arc<Resilience>,
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
            resilience: Arc::new(Resilience::defaults(PROVIDER)),
        }
    }

    /// Uses `resilience` (retries and circuit breaker) for every request.
    pub fn with_resilience(mut self, resilience: Arc<Resilience>) -> Self {
        self.resilience = resilience;
        self
    }

    /// The request [`OpenAiClient::analyze`] sends: `user` analysed under `system`, in at most
    /// `max_tokens`.
    pub fn analysis_request(
        &self,
        system: &str,
        user: &str,
        max_tokens: u32,
    ) -> ChatCompletionRequest {
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
            max_completion_tokens: Some(max_tokens),
        }
    }

    /// Asks the model for a [`CallAnalysis`] of `user` (the transcript and context) under the
    /// `system` instructions in at most [`ANALYSIS_TOKENS`], through the breaker and with quick
    /// retries.
    pub async fn analyze(
        &self,
        system: &str,
        user: &str,
    ) -> Result<AnalysisOutcome, ProviderError> {
        self.analyze_within(system, user, ANALYSIS_TOKENS).await
    }

    /// [`OpenAiClient::analyze`] with an answer of at most `max_tokens`.
    pub async fn analyze_within(
        &self,
        system: &str,
        user: &str,
        max_tokens: u32,
    ) -> Result<AnalysisOutcome, ProviderError> {
        let request = self.analysis_request(system, user, max_tokens);
        self.resilience
            .run(
                Idempotency::Safe,
                || self.health(),
                || self.analyze_once(&request),
            )
            .await
    }

    /// The breaker's probe: `GET /v1/models`. Any answer but an outage proves the API is up.
    async fn health(&self) -> Result<(), ProviderError> {
        let response = self
            .http
            .get(format!("{}{MODELS_PATH}", self.base_url))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|e| ProviderError::from_reqwest(PROVIDER, &e))?;
        let status = response.status();
        if status.is_server_error() {
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap_or_default();
            return Err(status_error(status.as_u16(), &headers, &body));
        }
        Ok(())
    }

    async fn analyze_once(
        &self,
        request: &ChatCompletionRequest,
    ) -> Result<AnalysisOutcome, ProviderError> {
        let url = format!("{}{CHAT_COMPLETIONS_PATH}", self.base_url);
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.api_key)
            .json(request)
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

/// Structured analysis of a call transcript, whichever model serves it.
#[async_trait::async_trait]
pub trait CallAnalyst: Send + Sync + 'static {
    /// Analyses `user` (transcript and context) under the `system` instructions, in an answer
    /// of at most `max_tokens`. Refusal, truncation, filtering and schema-invalid output are
    /// distinct [`AnalysisOutcome`]s, not errors.
    async fn analyze(
        &self,
        system: &str,
        user: &str,
        max_tokens: u32,
    ) -> Result<AnalysisOutcome, ProviderError>;
}

#[async_trait::async_trait]
impl CallAnalyst for OpenAiClient {
    async fn analyze(
        &self,
        system: &str,
        user: &str,
        max_tokens: u32,
    ) -> Result<AnalysisOutcome, ProviderError> {
        self.analyze_within(system, user, max_tokens).await
    }
}

#[cfg(test)]
mod tests;
