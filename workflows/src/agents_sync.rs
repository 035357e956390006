//! `switchboard agents sync`: each business' configured voice agents created or updated at
//! ElevenLabs, idempotently, with the provider's ids stored in `provider_agents`.
//!
//! For every agent of every business (or of one), the desired agent is built from its
//! [`AgentConfig`] ([`desired_spec`]: prompt, first message, language and voice, with per-call
//! overrides of those four allowed, since the pipeline overrides them on each call) and hashed
//! ([`config_hash`]). What to do is decided before anything is sent ([`plan`]):
//!
//! - the configuration's `agent_id` if set, else the stored id, is the agent to keep in shape;
//! - if that id was last synced with the same hash, nothing is sent (`unchanged`), so a second
//!   run in a row makes no provider writes;
//! - otherwise the agent is updated (`PATCH`). A stored id the provider no longer knows (404) is
//!   created anew; a configured id it does not know is an error (a typo must not silently become
//!   a new agent);
//! - without any id, an agent this sync made earlier is looked for by name and tags (its id was
//!   never stored: a crash between create and store, or a fresh database) and updated; only when
//!   there is none is one created.
//!
//! The id and hash are stored once the provider has accepted. One agent failing does not stop
//! the others; the [`SyncReport`] says what happened to each.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use switchboard_engine::ids::now_ms;
use switchboard_engine::{Db, EngineError};

use crate::business::{AgentConfig, Business};
use crate::providers::ProviderError;
use crate::providers::elevenlabs::{
    AgentSettings, AgentSpec, AgentSummary, ConversationConfig, ElevenLabsClient,
    OverridePermissions, PROVIDER, PlatformSettings, PromptSettings, TtsSettings,
};
use crate::store;
use crate::store::agents::ProviderAgent;

/// Tag on every agent Switchboard creates (the business id is the other tag).
pub const TAG: &str = "switchboard";
/// Agents per page when looking for an agent made earlier.
const LIST_PAGE_SIZE: u32 = 100;
/// Pages read at most when looking for an agent made earlier (10 000 agents).
const MAX_LIST_PAGES: usize = 100;

/// What can stop a sync as a whole (a single agent's failure is in the report instead).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The database failed while reading the businesses.
    #[error(transparent)]
    Db(#[from] EngineError),
    /// `--business` named a business that is not stored.
    #[error("no business {0:?}")]
    UnknownBusiness(String),
}

/// What the sync did with one agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncAction {
    /// A new agent was created at the provider.
    Created,
    /// An existing agent was updated to match the configuration.
    Updated,
    /// The agent already matched what was last sent; nothing was sent.
    Unchanged,
    /// The agent could not be synced; see the error.
    Failed,
}

impl SyncAction {
    /// `created`, `updated`, `unchanged` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncAction::Created => "created",
            SyncAction::Updated => "updated",
            SyncAction::Unchanged => "unchanged",
            SyncAction::Failed => "failed",
        }
    }
}

impl fmt::Display for SyncAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome for one agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSyncResult {
    /// Business id.
    pub business: String,
    /// The key in the business' `[agents]`.
    pub agent: String,
    /// The provider's id: the synced agent's, or for a failure the id that was tried, if any.
    pub provider_agent_id: Option<String>,
    /// What happened.
    pub action: SyncAction,
    /// Why it failed (only for [`SyncAction::Failed`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a sync did, agent by agent (by business id, then agent key).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncReport {
    /// One entry per configured agent.
    pub agents: Vec<AgentSyncResult>,
}

impl SyncReport {
    /// How many agents ended with `action`.
    pub fn count(&self, action: SyncAction) -> usize {
        self.agents.iter().filter(|a| a.action == action).count()
    }

    /// Whether any agent failed.
    pub fn has_failures(&self) -> bool {
        self.count(SyncAction::Failed) > 0
    }
}

/// The provider name of a business agent: `"<business name> — <agent key>"`.
pub fn agent_name(business: &Business, key: &str) -> String {
    format!("{} — {key}", business.name)
}

/// The agent as it should be at the provider: name, tags (`switchboard` and the business id),
/// prompt, first message, language and voice from the configuration, and permission for each
/// call to override those four.
pub fn desired_spec(business: &Business, key: &str, config: &AgentConfig) -> AgentSpec {
    AgentSpec {
        name: agent_name(business, key),
        tags: vec![TAG.to_owned(), business.id.clone()],
        conversation_config: ConversationConfig {
            agent: Some(AgentSettings {
                first_message: Some(config.first_message.clone()),
                language: Some(config.language.clone()),
                prompt: Some(PromptSettings {
                    prompt: Some(config.prompt.clone()),
                    ..PromptSettings::default()
                }),
            }),
            tts: config.voice_id.as_ref().map(|voice| TtsSettings {
                voice_id: Some(voice.clone()),
            }),
        },
        platform_settings: Some(PlatformSettings {
            overrides: Some(OverridePermissions::per_call()),
            ..PlatformSettings::default()
        }),
    }
}

/// `sha256` (hex) of the spec's canonical JSON (keys sorted at every level, no whitespace).
pub fn config_hash(spec: &AgentSpec) -> String {
    let value = serde_json::to_value(spec).unwrap_or(Value::Null);
    let canonical = serde_json::to_string(&sorted(value)).unwrap_or_default();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// The value with every object's keys in sorted order, whatever map serde_json was built with.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Where the id of an agent to update comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdSource {
    /// `agent_id` in `business.toml`: an agent that exists at the provider is adopted.
    Configured,
    /// `provider_agents`, stored by an earlier sync.
    Stored,
}

/// What to do with one agent, decided before anything is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Synced before to this id with the same hash: send nothing.
    Unchanged {
        /// The provider id.
        id: String,
    },
    /// Update this agent.
    Update {
        /// The provider id.
        id: String,
        /// Where the id came from (decides what a 404 means).
        source: IdSource,
    },
    /// No id known: find the agent made earlier, or create one.
    Create,
}

/// Decides what to do with an agent: `configured_id` is the configuration's `agent_id` (empty:
/// none), `stored` what an earlier sync recorded, `hash` the desired spec's [`config_hash`].
///
/// A configured id wins over a stored one, so that setting or changing `agent_id` in
/// `business.toml` takes effect even after an earlier sync stored another id.
pub fn plan(configured_id: &str, stored: Option<&ProviderAgent>, hash: &str) -> Plan {
    let (id, source) = match (configured_id.trim(), stored) {
        ("", Some(s)) => (s.provider_agent_id.clone(), IdSource::Stored),
        ("", None) => return Plan::Create,
        (configured, _) => (configured.to_owned(), IdSource::Configured),
    };
    match stored {
        Some(s) if s.provider_agent_id == id && s.config_hash == hash => Plan::Unchanged { id },
        _ => Plan::Update { id, source },
    }
}

/// The ElevenLabs agent id to call with for a business agent: the configured `agent_id` when
/// set, else the one `agents sync` stored (the same precedence the sync uses); `None` when the
/// agent has no id yet (it needs a sync).
pub async fn agent_id(
    db: &Db,
    business_id: &str,
    agent_key: &str,
    config: &AgentConfig,
) -> Result<Option<String>, EngineError> {
    let configured = config.agent_id.trim();
    if !configured.is_empty() {
        return Ok(Some(configured.to_owned()));
    }
    store::agents::provider_agent_id(db, business_id, agent_key).await
}

/// Syncs the agents of business `business` (every stored business when `None`) to ElevenLabs.
/// An agent's failure is reported in its entry; only a database failure while reading the
/// businesses, or an unknown business id, fails the whole sync.
pub async fn sync(
    db: &Db,
    client: &ElevenLabsClient,
    business: Option<&str>,
) -> Result<SyncReport, SyncError> {
    let businesses = match business {
        Some(id) => vec![
            store::business(db, id)
                .await?
                .ok_or_else(|| SyncError::UnknownBusiness(id.to_owned()))?,
        ],
        None => store::businesses(db).await?,
    };
    let mut syncer = Syncer {
        db,
        client,
        listed: None,
    };
    let mut report = SyncReport::default();
    for b in &businesses {
        for (key, config) in &b.agents {
            let result = match syncer.agent(b, key, config).await {
                Ok((action, id)) => AgentSyncResult {
                    business: b.id.clone(),
                    agent: key.clone(),
                    provider_agent_id: Some(id),
                    action,
                    error: None,
                },
                Err(Failure { id, message }) => AgentSyncResult {
                    business: b.id.clone(),
                    agent: key.clone(),
                    provider_agent_id: id,
                    action: SyncAction::Failed,
                    error: Some(message),
                },
            };
            report.agents.push(result);
        }
    }
    Ok(report)
}

/// Why one agent failed, and the id that was tried.
struct Failure {
    id: Option<String>,
    message: String,
}

impl Failure {
    fn provider(id: Option<&str>, e: &ProviderError) -> Self {
        Failure {
            id: id.map(str::to_owned),
            message: e.to_string(),
        }
    }
}

/// One sync's connections, and the provider's agent list once it was read.
struct Syncer<'a> {
    db: &'a Db,
    client: &'a ElevenLabsClient,
    listed: Option<Vec<AgentSummary>>,
}

impl Syncer<'_> {
    /// Syncs one agent: returns what was done and the provider id.
    async fn agent(
        &mut self,
        b: &Business,
        key: &str,
        config: &AgentConfig,
    ) -> Result<(SyncAction, String), Failure> {
        let spec = desired_spec(b, key, config);
        let hash = config_hash(&spec);
        let stored = store::agents::get(self.db, PROVIDER, &b.id, key)
            .await
            .map_err(|e| Failure {
                id: None,
                message: format!("reading the stored agent: {e}"),
            })?;
        let (action, id) = match plan(&config.agent_id, stored.as_ref(), &hash) {
            Plan::Unchanged { id } => return Ok((SyncAction::Unchanged, id)),
            Plan::Update { id, source } => match self.client.update_agent(&id, &spec).await {
                Ok(()) => (SyncAction::Updated, id),
                Err(e) if e.status() == Some(404) && source == IdSource::Stored => {
                    self.create(&spec).await?
                }
                Err(e) if e.status() == Some(404) => {
                    return Err(Failure {
                        message: format!(
                            "agent_id {id:?} in business.toml is not an agent at ElevenLabs \
                             ({e}); correct it, or remove it to have an agent created"
                        ),
                        id: Some(id),
                    });
                }
                Err(e) => return Err(Failure::provider(Some(&id), &e)),
            },
            Plan::Create => self.create(&spec).await?,
        };
        let row = ProviderAgent {
            business_id: b.id.clone(),
            agent: key.to_owned(),
            provider: PROVIDER.to_owned(),
            provider_agent_id: id.clone(),
            config_hash: hash,
            synced_at: now_ms(),
        };
        store::agents::record(self.db, &row)
            .await
            .map_err(|e| Failure {
                message: format!(
                    "{action} agent {id} at ElevenLabs but could not store its id ({e}); \
                     the next sync finds it by name"
                ),
                id: Some(id.clone()),
            })?;
        Ok((action, id))
    }

    /// Updates the agent an earlier sync made under this name (id never stored), or creates one.
    async fn create(&mut self, spec: &AgentSpec) -> Result<(SyncAction, String), Failure> {
        if let Some(id) = self.made_earlier(spec).await? {
            self.client
                .update_agent(&id, spec)
                .await
                .map_err(|e| Failure::provider(Some(&id), &e))?;
            return Ok((SyncAction::Updated, id));
        }
        let id = self
            .client
            .create_agent(spec)
            .await
            .map_err(|e| Failure::provider(None, &e))?;
        Ok((SyncAction::Created, id))
    }

    /// The id of a provider agent with the spec's name and all of its tags, if one exists. The
    /// provider's list is read once per sync.
    async fn made_earlier(&mut self, spec: &AgentSpec) -> Result<Option<String>, Failure> {
        if self.listed.is_none() {
            let all = self.list_all().await.map_err(|e| Failure {
                id: None,
                message: format!("looking for an agent made earlier: {e}"),
            })?;
            self.listed = Some(all);
        }
        Ok(self.listed.iter().flatten().find_map(|a| {
            let tagged = spec.tags.iter().all(|t| a.tags.contains(t));
            (a.name == spec.name && tagged).then(|| a.agent_id.clone())
        }))
    }

    /// Every agent of the account (up to [`MAX_LIST_PAGES`] pages).
    async fn list_all(&self) -> Result<Vec<AgentSummary>, ProviderError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let page = self
                .client
                .list_agents(Some(LIST_PAGE_SIZE), cursor.as_deref())
                .await?;
            all.extend(page.agents);
            match page.next_cursor {
                Some(next) if page.has_more && cursor.as_deref() != Some(next.as_str()) => {
                    cursor = Some(next);
                }
                _ => break,
            }
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests;
