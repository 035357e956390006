//! Inbound calls: who is calling (a known lead or a new caller) and what the answering agent
//! says first. Serves the provider's personalisation webhook, which must answer in milliseconds:
//! a few indexed reads, no script.

use serde_json::{Map, Value};
use switchboard_engine::EngineError;

use crate::business::{AgentConfig, Business};
use crate::phone::Phone;
use crate::store::{self, calls};

/// What the agent should know and say on an inbound call.
#[derive(Clone, Debug, PartialEq)]
pub struct Greeting {
    /// The business whose agent answers.
    pub business_id: String,
    /// The caller's lead, when the number is known.
    pub lead_id: Option<String>,
    /// Values for the agent's `{{placeholders}}`.
    pub variables: Map<String, Value>,
    /// The system prompt for the call.
    pub prompt: String,
    /// The first sentence.
    pub first_message: String,
    /// Spoken language.
    pub language: String,
    /// Voice override.
    pub voice_id: Option<String>,
}

/// The business and agent configured with the provider agent id `agent_id`.
fn agent_of<'a>(
    businesses: &'a [Business],
    agent_id: &str,
    synced: &[(String, String)],
) -> Option<(&'a Business, &'a AgentConfig)> {
    businesses.iter().find_map(|b| {
        b.agents
            .iter()
            .find(|(key, a)| {
                (!a.agent_id.is_empty() && a.agent_id == agent_id)
                    || synced.iter().any(|(bid, k)| *bid == b.id && k == *key)
            })
            .map(|(_, a)| (b, a))
    })
}

/// The greeting for `caller` (any format; E.164 expected) calling the agent `agent_id`, or
/// `None` when no business has that agent.
pub async fn greet(
    db: &switchboard_engine::Db,
    agent_id: &str,
    caller: &str,
) -> Result<Option<Greeting>, EngineError> {
    let (businesses, synced) = futures::try_join!(
        store::businesses(db),
        store::agents::owners_of(db, agent_id)
    )?;
    let Some((business, agent)) = agent_of(&businesses, agent_id, &synced) else {
        return Ok(None);
    };
    let lead = match Phone::parse(caller) {
        Ok(phone) => store::lead_by_phone(db, &business.id, phone.as_str()).await?,
        Err(_) => None,
    };
    let mut variables = Map::new();
    variables.insert("business_name".into(), business.name.clone().into());
    let lead_word = business.term("lead");
    let (prompt_tail, first_message) = match &lead {
        Some(lead) => {
            variables.insert("customer_name".into(), lead.name.clone().into());
            variables.insert("lead_id".into(), lead.id.clone().into());
            let history = calls::lead_history(db, &lead.id).await?;
            let last = history.last().map(|h| {
                let outcome = h.outcome.as_deref().unwrap_or("no outcome recorded");
                match h.score {
                    Some(score) => {
                        format!(
                            " Our last call with them ({}) ended {outcome}, scored {score}.",
                            h.at
                        )
                    }
                    None => format!(" Our last call with them ({}) ended {outcome}.", h.at),
                }
            });
            (
                format!(
                    "This is an inbound call from {}, a known {lead_word} ({} earlier calls).{}",
                    lead.name,
                    history.len(),
                    last.unwrap_or_default()
                ),
                format!(
                    "Hi {}, thanks for calling {} back! How can I help you today?",
                    lead.name, business.name
                ),
            )
        }
        None => (
            format!(
                "This is an inbound call from a new caller. Ask for their name and what they \
                 are looking for, as you would with a new {lead_word}."
            ),
            format!(
                "Thanks for calling {}! Who do I have the pleasure of speaking with?",
                business.name
            ),
        ),
    };
    Ok(Some(Greeting {
        business_id: business.id.clone(),
        lead_id: lead.map(|l| l.id),
        variables,
        prompt: format!("{}\n\n{prompt_tail}", agent.prompt),
        first_message,
        language: agent.language.clone(),
        voice_id: agent.voice_id.clone(),
    }))
}
