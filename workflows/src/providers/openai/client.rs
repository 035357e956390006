//! The OpenAI HTTP client: chat completions through the shared retries and circuit breaker, and
//! how an error answer (status, body, rate-limit headers) becomes a [`ProviderError`].

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::providers::error::{MAX_RETRY_AFTER, excerpt, retry_after_from_headers};
use crate::providers::resilience::{Idempotency, Resilience};

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
        let http = crate::providers::http_client(timeout);
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

/// Builds a [`ProviderError::Status`]; `code` falls back to the error `type`.
pub(super) fn status_error(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> ProviderError {
    let (code, message) = match serde_json::from_slice::<ApiErrorBody>(body) {
        Ok(ApiErrorBody { error }) => (error.code.or(error.kind), error.message),
        Err(_) => (None, excerpt(body)),
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
pub(super) fn parse_reset(text: &str) -> Option<Duration> {
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
