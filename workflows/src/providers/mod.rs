//! External providers: the provider-neutral voice interface ([`voice`]), ElevenLabs and Retell
//! (voice),
//! OpenAI (analysis), and the retries and circuit breakers every request goes through
//! ([`resilience`]). Each provider's wire shapes live in its one file, so a provider change is a
//! one-file change.

pub mod elevenlabs;
pub mod error;
pub mod openai;
pub mod resilience;
pub mod retell;
pub mod voice;

pub use error::ProviderError;

/// The HTTP client a provider's requests go through, each giving up after `timeout`.
pub(crate) fn http_client(timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}
