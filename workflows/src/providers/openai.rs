//! OpenAI Chat Completions: structured call analysis (wire format, schema and client).
//!
//! Every OpenAI shape Switchboard reads or writes lives here: the [`CallAnalysis`] the model must
//! return, its strict JSON schema, the chat-completion request and response, and the error body.
//! The base URL is configurable, so any OpenAI-compatible server (and the built-in simulator)
//! works. The model's output is checked again on our side: unknown fields, missing fields and
//! out-of-range scores make the outcome [`AnalysisOutcome::Invalid`]. The HTTP client is in
//! `client`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};

use super::error::ProviderError;

mod client;
pub use client::*;

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

#[cfg(test)]
mod tests;
