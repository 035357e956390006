//! External providers: ElevenLabs (voice) and OpenAI (analysis). Each provider's wire shapes
//! live in its one file, so a provider change is a one-file change.

pub mod elevenlabs;
pub mod error;
pub mod openai;

pub use error::ProviderError;
