//! SQL for the lead pipeline's tables: `businesses` and `leads` here, configuration versions
//! in [`configs`], `calls` in [`calls`], scripts in [`scripts`], provider agents in [`agents`],
//! do-not-call lists in [`do_not_call`].

pub mod agents;
pub mod analytics;
pub mod backtests;
pub mod calls;
pub mod configs;
pub mod do_not_call;
pub mod schedules;
pub mod scripts;
pub mod sim_steering;

pub use calls::lead_history;

use sqlx::FromRow;
use switchboard_engine::EngineError;
use switchboard_engine::store::{Db, Q, Tx, runs};

use crate::business::Business;
use crate::lead::Lead;
use crate::phone::Phone;

type Result<T> = std::result::Result<T, EngineError>;

#[derive(FromRow)]
struct BusinessRow {
    config: String,
}

/// The ids of the runs that have not finished of every lead of `business_id` with `phone`.
pub async fn open_runs_of_number(db: &Db, business_id: &str, phone: &str) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = db
        .fetch_all(
            Q::new(runs::sql::open_runs_of(
                "SELECT id FROM leads WHERE business_id = $1 AND phone = $2",
            ))
            .bind(business_id)
            .bind(phone),
        )
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Makes `run_id` the lead's current run (a cron campaign called it again).
pub async fn set_lead_run(tx: &mut Tx, lead_id: &str, run_id: &str) -> Result<()> {
    tx.execute(
        Q::new("UPDATE leads SET run_id = $1 WHERE id = $2")
            .bind(run_id)
            .bind(lead_id),
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

/// The versions these runs are pinned to in `table` (`run_scripts` or `run_configs`), by run.
async fn run_pins(
    db: &Db,
    table: &'static str,
    run_ids: &[&str],
) -> Result<std::collections::HashMap<String, i64>> {
    if run_ids.is_empty() {
        return Ok(Default::default());
    }
    let q = Q::new(format!(
        "SELECT run_id, version FROM {table} WHERE run_id IN ({})",
        Q::placeholders(1, run_ids.len())
    ));
    let rows: Vec<(String, i64)> = db
        .fetch_all(run_ids.iter().fold(q, |q, id| q.bind(*id)))
        .await?;
    Ok(rows.into_iter().collect())
}

/// The leads with these ids (those that still exist), by id.
pub async fn leads_by_id(db: &Db, ids: &[&str]) -> Result<std::collections::HashMap<String, Lead>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let q = Q::new(format!(
        "SELECT {LEAD_COLUMNS} FROM leads WHERE id IN ({})",
        Q::placeholders(1, ids.len())
    ));
    let rows: Vec<LeadRow> = db
        .fetch_all(ids.iter().fold(q, |q, id| q.bind(*id)))
        .await?;
    rows.into_iter()
        .map(|r| Lead::try_from(r).map(|l| (l.id.clone(), l)))
        .collect()
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
    run_id: String,
    created_at: i64,
    consent: Option<String>,
    timezone: Option<String>,
}

impl TryFrom<LeadRow> for Lead {
    type Error = EngineError;
    fn try_from(r: LeadRow) -> Result<Lead> {
        Ok(Lead {
            phone: Phone::parse(&r.phone).map_err(|e| EngineError::Config(e.to_string()))?,
            custom_fields: serde_json::from_str(&r.custom_fields)?,
            consent: r.consent.as_deref().map(serde_json::from_str).transpose()?,
            timezone: r.timezone,
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

const LEAD_COLUMNS: &str = "id, business_id, name, phone, email, source, custom_fields, run_id, created_at, consent, timezone";

/// An `Idempotency-Key` with the fingerprint of the request it came with.
#[derive(Clone, Copy, Debug)]
pub struct Idempotency<'a> {
    pub key: &'a str,
    /// `None`: not compared (an import's own key).
    pub fingerprint: Option<&'a str>,
}

/// Stores a lead (inside the transaction that starts its run).
pub async fn insert_lead(
    tx: &mut Tx,
    lead: &Lead,
    idempotency: Option<Idempotency<'_>>,
) -> Result<()> {
    tx.execute(
        Q::new(format!(
            "INSERT INTO leads ({LEAD_COLUMNS}, idempotency_key, idempotency_fingerprint) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)"
        ))
        .bind(&lead.id)
        .bind(&lead.business_id)
        .bind(&lead.name)
        .bind(lead.phone.as_str())
        .bind(lead.email.clone())
        .bind(lead.source.clone())
        .bind(serde_json::to_string(&lead.custom_fields)?)
        .bind(&lead.run_id)
        .bind(lead.created_at)
        .bind(
            lead.consent
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?,
        )
        .bind(lead.timezone.clone())
        .bind(idempotency.map(|i| i.key))
        .bind(idempotency.and_then(|i| i.fingerprint)),
    )
    .await?;
    Ok(())
}

/// Leads (of one business, or all) created in `[from, to)` (unix ms), oldest first, after lead
/// `after` (keyset paging), at most `limit`.
pub async fn leads_created(
    db: &Db,
    business_id: Option<&str>,
    (from, to): (i64, i64),
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Lead>> {
    let rows: Vec<LeadRow> = db
        .fetch_all(
            Q::new(format!(
                "SELECT {LEAD_COLUMNS} FROM leads WHERE ($1 IS NULL OR business_id = $1) \
                 AND created_at >= $2 AND created_at < $3 AND ($4 IS NULL OR id > $4) \
                 ORDER BY id LIMIT $5"
            ))
            .bind(business_id)
            .bind(from)
            .bind(to)
            .bind(after)
            .bind(limit),
        )
        .await?;
    rows.into_iter().map(Lead::try_from).collect()
}

/// Every phone number of the business' leads with the id of its most recent lead.
pub async fn leads_by_phone(db: &Db, business_id: &str) -> Result<Vec<(String, String)>> {
    db.fetch_all(
        Q::new("SELECT phone, id FROM leads WHERE business_id = $1 ORDER BY created_at, id")
            .bind(business_id),
    )
    .await
}

/// Replaces what was submitted about lead `id` (an import's update of a duplicate); its runs,
/// calls and phone number stay. False if there is no such lead.
pub async fn update_lead_details(
    tx: &mut Tx,
    id: &str,
    new: &crate::lead::CheckedLead,
) -> Result<bool> {
    let changed = tx
        .execute(
            Q::new(
                "UPDATE leads SET name = $1, email = $2, source = $3, custom_fields = $4 \
                 WHERE id = $5",
            )
            .bind(new.name.as_str())
            .bind(new.email.as_ref().map(|e| e.as_str()))
            .bind(new.source.clone())
            .bind(serde_json::to_string(&new.custom_fields)?)
            .bind(id),
        )
        .await?;
    Ok(changed == 1)
}

/// The lead a business stored under an idempotency key, if any, with the fingerprint of the
/// request it came with.
pub async fn lead_by_idempotency_key(
    tx: &mut Tx,
    business_id: &str,
    key: &str,
) -> Result<Option<(Lead, Option<String>)>> {
    #[derive(FromRow)]
    struct Keyed {
        #[sqlx(flatten)]
        lead: LeadRow,
        idempotency_fingerprint: Option<String>,
    }
    let row: Option<Keyed> = tx
        .fetch_optional(
            Q::new(format!(
                "SELECT {LEAD_COLUMNS}, idempotency_fingerprint FROM leads \
                 WHERE business_id = $1 AND idempotency_key = $2"
            ))
            .bind(business_id)
            .bind(key),
        )
        .await?;
    row.map(|r| Ok((Lead::try_from(r.lead)?, r.idempotency_fingerprint)))
        .transpose()
}

/// Frees lead `lead_id`'s idempotency key (remembered for a day; an older key means a new
/// request).
pub async fn release_idempotency_key(tx: &mut Tx, lead_id: &str) -> Result<()> {
    tx.execute(
        Q::new(
            "UPDATE leads SET idempotency_key = NULL, idempotency_fingerprint = NULL WHERE id = $1",
        )
        .bind(lead_id),
    )
    .await?;
    Ok(())
}

/// Reads a lead.
pub async fn lead(db: &Db, id: &str) -> Result<Option<Lead>> {
    let row: Option<LeadRow> = db
        .fetch_optional(Q::new(format!("SELECT {LEAD_COLUMNS} FROM leads WHERE id = $1")).bind(id))
        .await?;
    row.map(Lead::try_from).transpose()
}

/// Erases a lead and everything derived from it, in one transaction: its runs (with their
/// attempts, waits, events and changes), their script pins, its calls (transcripts, analyses,
/// scores), the backtests whose samples name it and the lead itself. Refused while one of its
/// runs has not finished. Returns the keys its calls were known by (call keys and conversation
/// ids: files named after them are the caller's to remove), or `None` if the lead did not exist.
pub async fn erase_lead(
    engine: &switchboard_engine::Engine,
    lead_id: &str,
) -> Result<Option<Vec<String>>> {
    let mut tx = engine.db().begin().await?;
    let keys = calls::event_keys_of_lead(&mut tx, lead_id).await?;
    scripts::unpin_runs_of_subject(&mut tx, lead_id).await?;
    configs::unpin_runs_of_subject(&mut tx, lead_id).await?;
    engine.erase_subject(&mut tx, lead_id, &keys).await?;
    calls::delete_of_lead(&mut tx, lead_id).await?;
    backtests::delete_sampling_lead(&mut tx, lead_id).await?;
    sim_steering::delete_of_lead(&mut tx, lead_id).await?;
    let existed = tx
        .execute(Q::new("DELETE FROM leads WHERE id = $1").bind(lead_id))
        .await?
        == 1;
    tx.commit().await?;
    Ok(existed.then_some(keys))
}

/// Up to `limit` leads of `business_id` created before `cutoff` (unix ms) with no run in flight
/// and none that changed since `cutoff`: past the business' retention.
pub async fn leads_past_retention(
    db: &Db,
    business_id: &str,
    cutoff: i64,
    limit: i64,
) -> Result<Vec<String>> {
    let rows: Vec<IdRow> = db
        .fetch_all(
            Q::new(format!(
                "SELECT l.id FROM leads l WHERE l.business_id = $1 AND l.created_at < $2 \
                 AND NOT {} ORDER BY l.created_at LIMIT $3",
                runs::sql::subject_has_run_active_since("l.id", "$2")
            ))
            .bind(business_id)
            .bind(cutoff)
            .bind(limit),
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// The business' most recent lead with this phone number (E.164).
pub async fn lead_by_phone(db: &Db, business_id: &str, phone: &str) -> Result<Option<Lead>> {
    let row: Option<LeadRow> = db
        .fetch_optional(
            Q::new(format!(
                "SELECT {LEAD_COLUMNS} FROM leads WHERE business_id = $1 AND phone = $2 \
                 ORDER BY created_at DESC LIMIT 1"
            ))
            .bind(business_id)
            .bind(phone),
        )
        .await?;
    row.map(Lead::try_from).transpose()
}

#[derive(FromRow)]
struct IdRow {
    id: String,
}

/// A lead's name and phone, as lists show who a run is for.
#[derive(Clone, Debug, FromRow)]
pub struct LeadLabel {
    pub id: String,
    pub name: String,
    pub phone: String,
}

/// The name and phone of each of the leads `ids` that exists (one query, for a page of runs).
pub async fn lead_labels(db: &Db, ids: &[String]) -> Result<Vec<LeadLabel>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let slots: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let mut q = Q::new(format!(
        "SELECT id, name, phone FROM leads WHERE id IN ({})",
        slots.join(", ")
    ));
    for id in ids {
        q = q.bind(id);
    }
    db.fetch_all(q).await
}

/// Ids of the leads (of one business, or all) whose name or phone contains `text`, case
/// insensitively; newest first, at most `limit`.
pub async fn lead_ids_matching(
    db: &Db,
    business_id: Option<&str>,
    text: &str,
    limit: i64,
) -> Result<Vec<String>> {
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let pattern = format!("%{escaped}%");
    let (filter, business) = match business_id {
        Some(b) => ("business_id = $1 AND", b.to_owned()),
        None => ("$1 = $1 AND", String::new()),
    };
    let rows: Vec<IdRow> = db
        .fetch_all(
            Q::new(format!(
                "SELECT id FROM leads WHERE {filter} \
                 (lower(name) LIKE $2 ESCAPE '\\' OR phone LIKE $2 ESCAPE '\\') \
                 ORDER BY created_at DESC LIMIT $3"
            ))
            .bind(business)
            .bind(pattern)
            .bind(limit),
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}
