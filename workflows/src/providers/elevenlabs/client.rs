//! The ElevenLabs HTTP client: outbound calls, conversations and agents, through the shared
//! retries and circuit breaker.

use super::*;

/// HTTP client for the ElevenLabs API (or anything speaking it, like the simulator).
#[derive(Clone)]
pub struct ElevenLabsClient {
    pub(super) http: reqwest::Client,
    pub(super) base_url: String,
    api_key: String,
    timeout: Duration,
    resilience: Arc<Resilience>,
}

impl std::fmt::Debug for ElevenLabsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ElevenLabsClient")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ElevenLabsClient {
    /// A client for `base_url` (e.g. `https://api.elevenlabs.io`, no trailing path) whose
    /// requests each give up after `timeout`.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>, timeout: Duration) -> Self {
        let http = crate::providers::http_client(timeout);
        Self {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            api_key: api_key.into(),
            timeout,
            resilience: Arc::new(Resilience::defaults(PROVIDER)),
        }
    }

    /// Uses `resilience` (retries and circuit breaker) for every request.
    pub fn with_resilience(mut self, resilience: Arc<Resilience>) -> Self {
        self.resilience = resilience;
        self
    }

    /// Places an outbound call through a Twilio line or a SIP trunk. `success:false` is
    /// [`ProviderError::Rejected`]; a 2xx without a conversation id or that cannot be read is
    /// [`ProviderError::Ambiguous`] (the call may have started). It is retried only when the
    /// provider answered an error status or was not reached: a [`ProviderError::Transport`]
    /// error does not prove that no call was placed.
    pub async fn outbound_call(
        &self,
        req: &OutboundCallRequest,
        line: Line,
    ) -> Result<OutboundCallResponse, ProviderError> {
        let path = match line {
            Line::Twilio => OUTBOUND_CALL_PATH,
            Line::Sip => SIP_OUTBOUND_CALL_PATH,
        };
        let request = self.http.post(format!("{}{path}", self.base_url)).json(req);
        let body = self.send_with(Idempotency::OnlyIfNotSent, request).await?;
        // A 2xx that does not clearly decline may have started the call.
        let ambiguous = |message: String| ProviderError::Ambiguous {
            provider: PROVIDER,
            message,
        };
        let answer: OutboundCallResponse = serde_json::from_slice(&body).map_err(|e| {
            ambiguous(format!(
                "outbound-call response: {e} (body: {})",
                crate::providers::error::excerpt(&body)
            ))
        })?;
        if !answer.success {
            let message = answer
                .message
                .unwrap_or_else(|| "the provider declined the call".to_owned());
            return Err(ProviderError::Rejected {
                provider: PROVIDER,
                message,
            });
        }
        if answer.conversation_id.as_deref().is_none_or(str::is_empty) {
            return Err(ambiguous("no conversation id in the answer".into()));
        }
        Ok(answer)
    }

    /// Fetches a conversation; use it to reconcile a call whose webhook never came.
    pub async fn get_conversation(&self, id: &str) -> Result<Conversation, ProviderError> {
        let mut url = reqwest::Url::parse(&format!("{}{CONVERSATIONS_PATH}", self.base_url))
            .map_err(|e| ProviderError::InvalidRequest {
                provider: PROVIDER,
                message: format!("bad base URL: {e}"),
            })?;
        url.path_segments_mut()
            .map_err(|()| ProviderError::InvalidRequest {
                provider: PROVIDER,
                message: "base URL cannot have a path".into(),
            })?
            .push(id);
        let body = self.send(self.http.get(url)).await?;
        serde_json::from_slice(&body)
            .map_err(|e| ProviderError::decode(PROVIDER, "conversation", &e, &body))
    }

    /// Sends a request that may be repeated ([`Idempotency::Safe`]) and returns the body of a
    /// 2xx answer.
    pub(super) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, ProviderError> {
        self.send_with(Idempotency::Safe, request).await
    }

    /// Sends with the API key through the breaker and retries, and returns the body of a 2xx
    /// answer.
    pub(super) async fn send_with(
        &self,
        idempotency: Idempotency,
        request: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, ProviderError> {
        let request = request.header(API_KEY_HEADER, &self.api_key);
        self.resilience
            .send(idempotency, || self.health(), request, status_error)
            .await
    }

    /// The breaker's probe: a conversation lookup that changes nothing. Any answer but an outage
    /// (normally 404) proves the API is up.
    pub(super) async fn health(&self) -> Result<(), ProviderError> {
        let url = format!("{}{CONVERSATIONS_PATH}/{HEALTH_PROBE_ID}", self.base_url);
        let request = self.http.get(url).header(API_KEY_HEADER, &self.api_key);
        send_once(PROVIDER, request, status_error).await.map(drop)
    }
}
