//! SQL for the lead pipeline's tables: `businesses`, `leads` and `calls` here, scripts in
//! [`scripts`], provider agents in [`agents`].

pub mod agents;
pub mod scripts;

use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use switchboard_engine::EngineError;
use switchboard_engine::ids::now_ms;
use switchboard_engine::store::{Db, Q, Tx};

use crate::business::Business;
use crate::lead::Lead;
use crate::phone::Phone;

type Result<T> = std::result::Result<T, EngineError>;

use crate::scripting::host_api::HistoryEntry;

#[derive(FromRow)]
struct BusinessRow {
    config: String,
}

/// Inserts or replaces a business definition (its script versions are kept apart).
pub async fn upsert_business(db: &Db, b: &Business) -> Result<()> {
    db.execute(
        Q::new(
            "INSERT INTO businesses (id, name, timezone, config, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, timezone = excluded.timezone, \
             config = excluded.config, updated_at = excluded.updated_at",
        )
        .bind(&b.id)
        .bind(&b.name)
        .bind(&b.timezone)
        .bind(serde_json::to_string(b)?)
        .bind(now_ms()),
    )
    .await?;
    Ok(())
}

/// Reads a business.
pub async fn business(db: &Db, id: &str) -> Result<Option<Business>> {
    let row: Option<BusinessRow> = db
        .fetch_optional(Q::new("SELECT config FROM businesses WHERE id = $1").bind(id))
        .await?;
    row.map(|r| serde_json::from_str(&r.config).map_err(EngineError::from))
        .transpose()
}

/// Every business, by id.
pub async fn businesses(db: &Db) -> Result<Vec<Business>> {
    let rows: Vec<BusinessRow> = db
        .fetch_all(Q::new("SELECT config FROM businesses ORDER BY id"))
        .await?;
    rows.into_iter()
        .map(|r| serde_json::from_str(&r.config).map_err(EngineError::from))
        .collect()
}

#[derive(FromRow)]
struct LeadRow {
    id: String,
    business_id: String,
    name: String,
    phone: String,
    email: Option<String>,
    source: Option<String>,
    custom_fields: String,
    sim: Option<String>,
    run_id: String,
    created_at: i64,
}

impl TryFrom<LeadRow> for Lead {
    type Error = EngineError;
    fn try_from(r: LeadRow) -> Result<Lead> {
        Ok(Lead {
            phone: Phone::parse(&r.phone).map_err(|e| EngineError::Config(e.to_string()))?,
            custom_fields: serde_json::from_str(&r.custom_fields)?,
            sim: r.sim.as_deref().map(serde_json::from_str).transpose()?,
            id: r.id,
            business_id: r.business_id,
            name: r.name,
            email: r.email,
            source: r.source,
            run_id: r.run_id,
            created_at: r.created_at,
        })
    }
}

const LEAD_COLUMNS: &str =
    "id, business_id, name, phone, email, source, custom_fields, sim, run_id, created_at";

/// Stores a lead (inside the transaction that starts its run).
pub async fn insert_lead(tx: &mut Tx, lead: &Lead, idempotency_key: Option<&str>) -> Result<()> {
    tx.execute(
        Q::new(format!(
            "INSERT INTO leads ({LEAD_COLUMNS}, idempotency_key) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"
        ))
        .bind(&lead.id)
        .bind(&lead.business_id)
        .bind(&lead.name)
        .bind(lead.phone.as_str())
        .bind(lead.email.clone())
        .bind(lead.source.clone())
        .bind(serde_json::to_string(&lead.custom_fields)?)
        .bind(lead.sim.as_ref().map(serde_json::to_string).transpose()?)
        .bind(&lead.run_id)
        .bind(lead.created_at)
        .bind(idempotency_key),
    )
    .await?;
    Ok(())
}

/// The lead a business stored under an idempotency key, if any.
pub async fn lead_by_idempotency_key(
    tx: &mut Tx,
    business_id: &str,
    key: &str,
) -> Result<Option<Lead>> {
    let row: Option<LeadRow> = tx
        .fetch_optional(
            Q::new(format!(
                "SELECT {LEAD_COLUMNS} FROM leads WHERE business_id = $1 AND idempotency_key = $2"
            ))
            .bind(business_id)
            .bind(key),
        )
        .await?;
    row.map(Lead::try_from).transpose()
}

/// Reads a lead.
pub async fn lead(db: &Db, id: &str) -> Result<Option<Lead>> {
    let row: Option<LeadRow> = db
        .fetch_optional(Q::new(format!("SELECT {LEAD_COLUMNS} FROM leads WHERE id = $1")).bind(id))
        .await?;
    row.map(Lead::try_from).transpose()
}

/// The state of one call attempt, recorded before the provider is asked to dial.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, FromRow)]
pub struct CallRecord {
    /// The call key sent to the provider: `<run id>:<attempt>`.
    pub id: String,
    pub run_id: String,
    pub lead_id: String,
    pub attempt: i64,
    /// `dialing` (request about to be sent or sent), `placed`, `rejected` (did not start).
    pub status: String,
    pub conversation_id: Option<String>,
    pub request: String,
    pub error: Option<String>,
}

/// Reads the record of one call attempt.
pub async fn call(db: &Db, id: &str) -> Result<Option<CallRecord>> {
    db.fetch_optional(
        Q::new(
            "SELECT id, run_id, lead_id, attempt, status, conversation_id, request, error \
             FROM calls WHERE id = $1",
        )
        .bind(id),
    )
    .await
}

/// Records that a call attempt is about to be dialled (before the request is sent).
pub async fn record_dialing(db: &Db, c: &CallRecord) -> Result<()> {
    let now = now_ms();
    db.execute(
        Q::new(
            "INSERT INTO calls (id, run_id, lead_id, attempt, status, conversation_id, request, error, \
             created_at, updated_at) VALUES ($1,$2,$3,$4,'dialing',NULL,$5,NULL,$6,$6) \
             ON CONFLICT (id) DO UPDATE SET status = 'dialing', error = NULL, updated_at = $6",
        )
        .bind(&c.id)
        .bind(&c.run_id)
        .bind(&c.lead_id)
        .bind(c.attempt)
        .bind(&c.request)
        .bind(now),
    )
    .await?;
    Ok(())
}

/// Records the provider's answer to a call request.
pub async fn record_call_result(
    db: &Db,
    id: &str,
    status: &str,
    conversation_id: Option<&str>,
    error: Option<String>,
) -> Result<()> {
    db.execute(
        Q::new("UPDATE calls SET status = $1, conversation_id = $2, error = $3, updated_at = $4 WHERE id = $5")
            .bind(status)
            .bind(conversation_id)
            .bind(error)
            .bind(now_ms())
            .bind(id),
    )
    .await?;
    Ok(())
}

/// Records how a call ended (and its score, when it was scored), for the lead's history.
pub async fn record_call_outcome(
    db: &Db,
    id: &str,
    outcome: &str,
    score: Option<i64>,
    tag: Option<&str>,
) -> Result<()> {
    db.execute(
        Q::new(
            "UPDATE calls SET outcome = $1, score = $2, tag = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(outcome)
        .bind(score)
        .bind(tag)
        .bind(now_ms())
        .bind(id),
    )
    .await?;
    Ok(())
}

#[derive(FromRow)]
struct HistoryRow {
    run_id: String,
    attempt: i64,
    created_at: i64,
    outcome: Option<String>,
    score: Option<i64>,
    tag: Option<String>,
}

/// The calls placed to a lead, oldest first (the last 50).
pub async fn lead_history(db: &Db, lead_id: &str) -> Result<Vec<HistoryEntry>> {
    let rows: Vec<HistoryRow> = db
        .fetch_all(
            Q::new(
                "SELECT run_id, attempt, created_at, outcome, score, tag FROM calls \
                 WHERE lead_id = $1 ORDER BY created_at DESC, attempt DESC LIMIT 50",
            )
            .bind(lead_id),
        )
        .await?;
    Ok(rows
        .into_iter()
        .rev()
        .map(|r| HistoryEntry {
            run_id: r.run_id,
            attempt: r.attempt,
            at: chrono::DateTime::from_timestamp_millis(r.created_at)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            outcome: r.outcome,
            score: r.score,
            tag: r.tag,
        })
        .collect())
}
