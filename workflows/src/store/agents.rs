//! SQL for `provider_agents`: the id each configured agent of a business has at a voice provider,
//! and the hash of the configuration last sent there (written by `switchboard agents sync`).

use sqlx::FromRow;
use switchboard_engine::store::{Db, Q};

use super::Result;
use crate::providers::elevenlabs;

/// A business agent as known to a provider.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct ProviderAgent {
    pub business_id: String,
    /// The key in the business' `[agents]`.
    pub agent: String,
    /// `elevenlabs`.
    pub provider: String,
    /// The provider's id for the agent.
    pub provider_agent_id: String,
    /// `sha256` (hex) of the agent as last sent to the provider.
    pub config_hash: String,
    /// When it was last sent (unix milliseconds).
    pub synced_at: i64,
}

const COLUMNS: &str = "business_id, agent, provider, provider_agent_id, config_hash, synced_at";

/// The provider agent of one business agent, if it was synced.
pub async fn get(
    db: &Db,
    provider: &str,
    business_id: &str,
    agent: &str,
) -> Result<Option<ProviderAgent>> {
    db.fetch_optional(
        Q::new(format!(
            "SELECT {COLUMNS} FROM provider_agents \
             WHERE business_id = $1 AND agent = $2 AND provider = $3"
        ))
        .bind(business_id)
        .bind(agent)
        .bind(provider),
    )
    .await
}

/// The ElevenLabs agent id stored for a business agent by `agents sync`, if any.
pub async fn provider_agent_id(db: &Db, business_id: &str, agent: &str) -> Result<Option<String>> {
    Ok(get(db, elevenlabs::PROVIDER, business_id, agent)
        .await?
        .map(|a| a.provider_agent_id))
}

/// The (business, agent key) pairs whose synced ElevenLabs agent is `provider_agent_id`.
pub async fn owners_of(db: &Db, provider_agent_id: &str) -> Result<Vec<(String, String)>> {
    #[derive(FromRow)]
    struct Owner {
        business_id: String,
        agent: String,
    }
    let rows: Vec<Owner> = db
        .fetch_all(
            Q::new(
                "SELECT business_id, agent FROM provider_agents \
                 WHERE provider = $1 AND provider_agent_id = $2",
            )
            .bind(elevenlabs::PROVIDER)
            .bind(provider_agent_id),
        )
        .await?;
    Ok(rows.into_iter().map(|o| (o.business_id, o.agent)).collect())
}

/// Every synced agent of a business (all businesses when `None`), by business and agent key.
pub async fn list(db: &Db, business_id: Option<&str>) -> Result<Vec<ProviderAgent>> {
    db.fetch_all(
        Q::new(format!(
            "SELECT {COLUMNS} FROM provider_agents \
             WHERE ($1 IS NULL OR business_id = $1) ORDER BY business_id, agent, provider"
        ))
        .bind(business_id),
    )
    .await
}

/// Records (inserts or replaces) a business agent's provider id and configuration hash.
pub async fn record(db: &Db, a: &ProviderAgent) -> Result<()> {
    db.execute(
        Q::new(format!(
            "INSERT INTO provider_agents ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (business_id, agent, provider) DO UPDATE SET \
             provider_agent_id = excluded.provider_agent_id, \
             config_hash = excluded.config_hash, synced_at = excluded.synced_at"
        ))
        .bind(&a.business_id)
        .bind(&a.agent)
        .bind(&a.provider)
        .bind(&a.provider_agent_id)
        .bind(&a.config_hash)
        .bind(a.synced_at),
    )
    .await?;
    Ok(())
}
