//! ElevenLabs agents: the agent object as created, read and updated, and the client calls that
//! manage agents (`/v1/convai/agents…`).
//!
//! One shape serves both directions: [`AgentSpec`] is the body of a create or an update, and the
//! `GET` answer ([`Agent`]) is the same object plus its id. Every field is optional and reads
//! leniently (unknown fields ignored, `null` taken as absent), because the provider's agent carries
//! far more settings than Switchboard manages; an update sends only what Switchboard manages.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ElevenLabsClient, PROVIDER, null_default};
use crate::providers::error::ProviderError;
use crate::providers::resilience::Idempotency;

/// Path of the agents collection (`GET` lists; `{path}/{agent_id}` reads, updates, deletes).
pub const AGENTS_PATH: &str = "/v1/convai/agents";
/// Path of the agent-creation endpoint.
pub const CREATE_AGENT_PATH: &str = "/v1/convai/agents/create";

// ---------------------------------------------------------------------------------------------
// The agent object

/// An agent as sent to `POST /v1/convai/agents/create` and `PATCH /v1/convai/agents/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentSpec {
    /// Display name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Free-form tags (Switchboard tags its agents `switchboard` and the business id).
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
    /// What the agent says and how it sounds.
    #[serde(default, deserialize_with = "null_default")]
    pub conversation_config: ConversationConfig,
    /// Permissions and limits around the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_settings: Option<PlatformSettings>,
}

/// `conversation_config`: the agent's behaviour and voice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationConfig {
    /// Prompt, first message and language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentSettings>,
    /// Text-to-speech settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts: Option<TtsSettings>,
}

/// `conversation_config.agent`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentSettings {
    /// First sentence the agent says (`{{name}}` placeholders are filled per conversation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_message: Option<String>,
    /// Language code, e.g. `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// System prompt and model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptSettings>,
}

/// `conversation_config.agent.prompt`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptSettings {
    /// The system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The language model, e.g. `gpt-4o-mini` (the provider's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<String>,
    /// Sampling temperature (the provider's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

/// `conversation_config.tts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TtsSettings {
    /// ElevenLabs voice id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_id: Option<String>,
}

/// `platform_settings`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlatformSettings {
    /// Which conversation settings a call may override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<OverridePermissions>,
    /// What the provider extracts from each conversation (passed through as is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_collection: Option<Value>,
    /// How the provider judges each conversation, `{"criteria":[…]}` (passed through as is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Value>,
    /// Concurrency and daily call limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_limits: Option<CallLimits>,
}

/// `platform_settings.overrides`. A call's `conversation_config_override` is rejected unless the
/// matching leaf here is `true`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OverridePermissions {
    /// Mirrors the shape of a call's `conversation_config_override`, with booleans as leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_config_override: Option<ConfigOverridePermissions>,
}

impl OverridePermissions {
    /// What Switchboard overrides on every call: prompt, first message, language and voice.
    pub fn per_call() -> Self {
        OverridePermissions {
            conversation_config_override: Some(ConfigOverridePermissions {
                agent: Some(AgentOverridePermissions {
                    prompt: Some(PromptOverridePermissions { prompt: Some(true) }),
                    first_message: Some(true),
                    language: Some(true),
                }),
                tts: Some(TtsOverridePermissions {
                    voice_id: Some(true),
                }),
            }),
        }
    }
}

/// `platform_settings.overrides.conversation_config_override`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigOverridePermissions {
    /// Agent settings a call may override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentOverridePermissions>,
    /// Voice settings a call may override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts: Option<TtsOverridePermissions>,
}

/// `…conversation_config_override.agent`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentOverridePermissions {
    /// Whether the system prompt may be overridden (`prompt.prompt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptOverridePermissions>,
    /// Whether the first message may be overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_message: Option<bool>,
    /// Whether the language may be overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<bool>,
}

/// `…conversation_config_override.agent.prompt`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptOverridePermissions {
    /// Whether the prompt text may be overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<bool>,
}

/// `…conversation_config_override.tts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TtsOverridePermissions {
    /// Whether the voice may be overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_id: Option<bool>,
}

/// `platform_settings.call_limits`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallLimits {
    /// Conversations of this agent at once, at most (`-1`: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_concurrency_limit: Option<i64>,
    /// Conversations of this agent per day, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_limit: Option<i64>,
}

/// `GET /v1/convai/agents/{id}`: the agent with its id. Unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// The provider's id, `agent_…`.
    pub agent_id: String,
    /// Everything else, in the shape of a create body.
    #[serde(flatten)]
    pub spec: AgentSpec,
}

/// Answer to `POST /v1/convai/agents/create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreatedAgent {
    /// The new agent's id.
    #[serde(default, deserialize_with = "null_default")]
    pub agent_id: String,
}

/// One page of `GET /v1/convai/agents`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentPage {
    /// The agents on this page.
    #[serde(default, deserialize_with = "null_default")]
    pub agents: Vec<AgentSummary>,
    /// Pass as `cursor` to get the next page.
    #[serde(default)]
    pub next_cursor: Option<String>,
    /// Whether another page follows.
    #[serde(default, deserialize_with = "null_default")]
    pub has_more: bool,
}

/// An agent as listed (a summary; [`ElevenLabsClient::get_agent`] has the rest).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentSummary {
    /// The provider's id.
    pub agent_id: String,
    /// Display name.
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// Tags.
    #[serde(default, deserialize_with = "null_default")]
    pub tags: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Client calls

impl ElevenLabsClient {
    /// Creates an agent; returns its id. Not idempotent: a [`ProviderError::Transport`] error
    /// does not prove that no agent was created.
    pub async fn create_agent(&self, spec: &AgentSpec) -> Result<String, ProviderError> {
        let url = format!("{}{CREATE_AGENT_PATH}", self.base_url);
        // Creating is not idempotent: a request that may have reached the provider is not sent
        // again (the next sync finds the agent by name instead).
        let request = self.http.post(url).json(spec);
        let body = self.send_with(Idempotency::OnlyIfNotSent, request).await?;
        let created: CreatedAgent = serde_json::from_slice(&body)
            .map_err(|e| ProviderError::decode(PROVIDER, "create-agent response", &e, &body))?;
        if created.agent_id.is_empty() {
            return Err(ProviderError::Rejected {
                provider: PROVIDER,
                message: "no agent_id in the create-agent answer".into(),
            });
        }
        Ok(created.agent_id)
    }

    /// Reads an agent. A missing agent is a [`ProviderError::Status`] with status 404.
    pub async fn get_agent(&self, agent_id: &str) -> Result<Agent, ProviderError> {
        let url = self.agent_url(agent_id)?;
        let body = self.send(self.http.get(url)).await?;
        serde_json::from_slice(&body)
            .map_err(|e| ProviderError::decode(PROVIDER, "agent", &e, &body))
    }

    /// Updates an agent with the fields `spec` carries (absent fields are left as they are).
    /// The answer's body is not read. A missing agent is a status-404 error.
    pub async fn update_agent(
        &self,
        agent_id: &str,
        spec: &AgentSpec,
    ) -> Result<(), ProviderError> {
        let url = self.agent_url(agent_id)?;
        self.send(self.http.patch(url).json(spec)).await?;
        Ok(())
    }

    /// Deletes an agent. A missing agent is a status-404 error.
    pub async fn delete_agent(&self, agent_id: &str) -> Result<(), ProviderError> {
        let url = self.agent_url(agent_id)?;
        self.send(self.http.delete(url)).await?;
        Ok(())
    }

    /// One page of the account's agents: up to `page_size` (the provider's default when `None`),
    /// starting at `cursor` (the previous page's `next_cursor`; `None` for the first page).
    pub async fn list_agents(
        &self,
        page_size: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<AgentPage, ProviderError> {
        let mut url = self.url(AGENTS_PATH)?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(size) = page_size {
                query.append_pair("page_size", &size.to_string());
            }
            if let Some(cursor) = cursor {
                query.append_pair("cursor", cursor);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let body = self.send(self.http.get(url)).await?;
        serde_json::from_slice(&body)
            .map_err(|e| ProviderError::decode(PROVIDER, "agent list", &e, &body))
    }

    /// `{base}{path}`, parsed.
    fn url(&self, path: &str) -> Result<reqwest::Url, ProviderError> {
        reqwest::Url::parse(&format!("{}{path}", self.base_url)).map_err(|e| {
            ProviderError::InvalidRequest {
                provider: PROVIDER,
                message: format!("bad base URL: {e}"),
            }
        })
    }

    /// `{base}/v1/convai/agents/{agent_id}`, the id escaped as one path segment.
    fn agent_url(&self, agent_id: &str) -> Result<reqwest::Url, ProviderError> {
        if agent_id.is_empty() {
            return Err(ProviderError::InvalidRequest {
                provider: PROVIDER,
                message: "empty agent id".into(),
            });
        }
        let mut url = self.url(AGENTS_PATH)?;
        url.path_segments_mut()
            .map_err(|()| ProviderError::InvalidRequest {
                provider: PROVIDER,
                message: "base URL cannot have a path".into(),
            })?
            .push(agent_id);
        Ok(url)
    }
}

#[cfg(test)]
mod tests;
