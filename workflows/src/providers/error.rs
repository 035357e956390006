//! Errors from calling a provider, and whether to retry them.
//!
//! Every provider client (ElevenLabs, OpenAI) returns [`ProviderError`]. The error itself says
//! whether another attempt can succeed ([`ProviderError::is_retryable`]) and how long the provider
//! asked us to wait ([`ProviderError::retry_after`]), so a step can turn it into a retry, a snooze
//! or a terminal failure without knowing which provider answered.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// Longest wait we honour from a provider's `retry-after` headers (the SDKs cap backoff at 60 s).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// OpenAI's code for an exhausted quota or billing problem: a 429 that must not be retried.
pub const CODE_INSUFFICIENT_QUOTA: &str = "insufficient_quota";

/// What went wrong when calling a provider.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered with a non-success HTTP status.
    #[error("{provider} answered {status}: {message}")]
    Status {
        /// Which provider answered (`"elevenlabs"`, `"openai"`).
        provider: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The provider's machine-readable error code, when the body carried one.
        code: Option<String>,
        /// The provider's human-readable message (or the raw body when it had no known shape).
        message: String,
        /// How long the provider asked us to wait (`retry-after-ms`, then `retry-after`).
        retry_after: Option<Duration>,
    },
    /// The request could not be sent or timed out. For a call-placing request this does not prove
    /// that no call was placed: reconcile before placing another one.
    #[error("{provider} request failed: {message}")]
    Transport {
        /// Which provider we were calling.
        provider: &'static str,
        /// What failed (connect, timeout, body read…).
        message: String,
    },
    /// The provider could not be reached (connection refused, DNS): the request was not sent.
    #[error("{provider} is unreachable: {message}")]
    Unreachable {
        /// Which provider we were calling.
        provider: &'static str,
        /// What failed.
        message: String,
    },
    /// The provider's circuit breaker is open after repeated outage failures: nothing was sent
    /// (or the failure that opened it is reported this way, so the caller waits).
    #[error("{provider} is failing ({cause}); requests paused for {retry_in:?}")]
    CircuitOpen {
        /// Which provider.
        provider: &'static str,
        /// When the next probe request may go out.
        retry_in: Duration,
        /// The failure that opened the circuit.
        cause: String,
    },
    /// The response did not have the documented shape.
    #[error("{provider} response could not be decoded: {message}")]
    Decode {
        /// Which provider answered.
        provider: &'static str,
        /// What did not match.
        message: String,
    },
    /// The provider answered with a success status but declined the request in the body
    /// (ElevenLabs `success:false`, or no conversation id). Not retryable.
    #[error("{provider} rejected the request: {message}")]
    Rejected {
        /// Which provider answered.
        provider: &'static str,
        /// The provider's message.
        message: String,
    },
    /// The provider answered with a success status, but the answer does not say what it did (no
    /// call id, or an unreadable body): it may have acted, so the request is not sent again.
    #[error("{provider} answered without saying what it did: {message}")]
    Ambiguous {
        /// Which provider answered.
        provider: &'static str,
        /// What was missing or unreadable.
        message: String,
    },
    /// The request could not be built (bad base URL or identifier); a configuration error.
    #[error("{provider} request is invalid: {message}")]
    InvalidRequest {
        /// Which provider we were about to call.
        provider: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl ProviderError {
    /// The kind of failure, as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Status { status: 429, .. } => "http_429",
            ProviderError::Status { status, .. } if *status >= 500 => "http_5xx",
            ProviderError::Status { .. } => "http_4xx",
            ProviderError::Transport { .. } => "transport",
            ProviderError::Unreachable { .. } => "unreachable",
            ProviderError::CircuitOpen { .. } => "circuit_open",
            ProviderError::Decode { .. } => "decode",
            ProviderError::Rejected { .. } => "rejected",
            ProviderError::Ambiguous { .. } => "ambiguous",
            ProviderError::InvalidRequest { .. } => "invalid_request",
        }
    }

    /// Whether another attempt of the same request can succeed: 408, 409, 429 (except
    /// `insufficient_quota`), 5xx and transport failures are retryable; other 4xx, decode errors,
    /// rejections and invalid requests are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Status { status, code, .. } => match status {
                408 | 409 => true,
                429 => code.as_deref() != Some(CODE_INSUFFICIENT_QUOTA),
                500..=599 => true,
                _ => false,
            },
            ProviderError::Transport { .. }
            | ProviderError::Unreachable { .. }
            | ProviderError::CircuitOpen { .. } => true,
            ProviderError::Decode { .. }
            | ProviderError::Rejected { .. }
            | ProviderError::Ambiguous { .. }
            | ProviderError::InvalidRequest { .. } => false,
        }
    }

    /// How long the provider asked us to wait before retrying, if it said so (or how long its
    /// circuit stays open).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::Status { retry_after, .. } => *retry_after,
            ProviderError::CircuitOpen { retry_in, .. } => Some(*retry_in),
            _ => None,
        }
    }

    /// Whether the provider looks down (5xx, unreachable, no answer): what opens its circuit.
    pub fn is_outage(&self) -> bool {
        match self {
            ProviderError::Status { status, .. } => *status >= 500,
            ProviderError::Transport { .. } | ProviderError::Unreachable { .. } => true,
            _ => false,
        }
    }

    /// Whether the provider may have acted on the request although we got no answer (it timed
    /// out or the connection broke after sending). A call request that fails this way must be
    /// reconciled, never sent again blindly.
    pub fn may_have_been_acted_on(&self) -> bool {
        matches!(
            self,
            ProviderError::Transport { .. } | ProviderError::Ambiguous { .. }
        )
    }

    /// Whether the provider refuses for billing (429 `insufficient_quota`): the account is out of
    /// credit or over its spending limit. No request succeeds until someone pays, so work that
    /// needs the provider pauses (and an operator is told) instead of failing.
    pub fn is_billing_lapse(&self) -> bool {
        matches!(self, ProviderError::Status { status: 429, code: Some(code), .. }
            if code == CODE_INSUFFICIENT_QUOTA)
    }

    /// Whether the provider asked us to wait (429 other than `insufficient_quota`) or is known
    /// to be down (its circuit is open): the caller should wait rather than spend an attempt.
    /// A lone 5xx or timeout is not enough; it spends an attempt until the breaker opens.
    pub fn is_unavailable(&self) -> bool {
        match self {
            ProviderError::Status { status: 429, .. } => self.is_retryable(),
            ProviderError::CircuitOpen { .. } => true,
            _ => false,
        }
    }

    /// Which provider the error came from.
    pub fn provider(&self) -> &'static str {
        match self {
            ProviderError::Status { provider, .. }
            | ProviderError::Transport { provider, .. }
            | ProviderError::Unreachable { provider, .. }
            | ProviderError::CircuitOpen { provider, .. }
            | ProviderError::Decode { provider, .. }
            | ProviderError::Rejected { provider, .. }
            | ProviderError::Ambiguous { provider, .. }
            | ProviderError::InvalidRequest { provider, .. } => provider,
        }
    }

    /// The HTTP status, for [`ProviderError::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The provider's error code, for [`ProviderError::Status`].
    pub fn code(&self) -> Option<&str> {
        match self {
            ProviderError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// Turns a `reqwest` failure into [`ProviderError::Transport`] (or
    /// [`ProviderError::InvalidRequest`] when the request could not even be built), keeping the
    /// whole cause chain in the message.
    pub(crate) fn from_reqwest(provider: &'static str, err: &reqwest::Error) -> Self {
        let mut message = if err.is_timeout() {
            "timed out".to_owned()
        } else {
            err.to_string()
        };
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        if err.is_builder() {
            ProviderError::InvalidRequest { provider, message }
        } else if err.is_connect() {
            ProviderError::Unreachable { provider, message }
        } else {
            ProviderError::Transport { provider, message }
        }
    }

    /// A [`ProviderError::Decode`] for a body that did not match `what`, with a short excerpt.
    pub(crate) fn decode(
        provider: &'static str,
        what: &str,
        err: &serde_json::Error,
        body: &[u8],
    ) -> Self {
        ProviderError::Decode {
            provider,
            message: format!("{what}: {err} (body: {})", excerpt(body)),
        }
    }
}

/// Reads the provider's requested wait: `retry-after-ms` (milliseconds) first, then
/// `retry-after` (seconds, or an HTTP date). Capped at [`MAX_RETRY_AFTER`]; negative or
/// unparseable values are ignored.
pub fn retry_after_from_headers(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let wait = text("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
        .map(|ms| Duration::from_secs_f64(ms.min(1e9) / 1000.0))
        .or_else(|| {
            let value = text("retry-after")?;
            if let Ok(secs) = value.parse::<f64>() {
                return (secs.is_finite() && secs >= 0.0)
                    .then(|| Duration::from_secs_f64(secs.min(1e9)));
            }
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            let ms = at.timestamp_millis() - chrono::Utc::now().timestamp_millis();
            Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
        })?;
    Some(wait.min(MAX_RETRY_AFTER))
}

/// At most 300 characters of a body, for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    match trimmed.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &trimmed[..cut]),
        None => trimmed.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn status(status: u16, code: Option<&str>) -> ProviderError {
        ProviderError::Status {
            provider: "test",
            status,
            code: code.map(str::to_owned),
            message: "m".into(),
            retry_after: None,
        }
    }

    #[test]
    fn retryable_classification() {
        for s in [408, 409, 429, 500, 502, 503, 504] {
            assert!(status(s, None).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert!(!status(s, None).is_retryable(), "{s}");
        }
        assert!(status(429, Some("rate_limit_exceeded")).is_retryable());
        assert!(status(429, Some("concurrent_limit_exceeded")).is_retryable());
        assert!(!status(429, Some(CODE_INSUFFICIENT_QUOTA)).is_retryable());
        let transport = ProviderError::Transport {
            provider: "t",
            message: "x".into(),
        };
        assert!(transport.is_retryable());
        let decode = ProviderError::Decode {
            provider: "t",
            message: "x".into(),
        };
        assert!(!decode.is_retryable());
        let rejected = ProviderError::Rejected {
            provider: "t",
            message: "x".into(),
        };
        assert!(!rejected.is_retryable());
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after_from_headers(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after_from_headers(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(
            retry_after_from_headers(&h),
            Some(Duration::from_millis(1500))
        );
        h.insert("retry-after-ms", HeaderValue::from_static("garbage"));
        assert_eq!(retry_after_from_headers(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", HeaderValue::from_static("100000"));
        assert_eq!(retry_after_from_headers(&h), Some(MAX_RETRY_AFTER));
        h.insert("retry-after", HeaderValue::from_static("-3"));
        assert_eq!(retry_after_from_headers(&h), None);
        let past = "Wed, 21 Oct 2015 07:28:00 GMT";
        h.insert("retry-after", HeaderValue::from_static(past));
        assert_eq!(retry_after_from_headers(&h), Some(Duration::ZERO));
    }

    #[test]
    fn excerpt_is_bounded() {
        let long = "é".repeat(1000);
        assert_eq!(excerpt(long.as_bytes()).chars().count(), 301);
        assert_eq!(excerpt(b"  short "), "short");
    }
}
