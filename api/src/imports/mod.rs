//! Bulk lead import: an uploaded CSV or JSON-lines file becomes leads (each with its run), row by
//! row, in the background, with its progress and a report of every rejected row (line and
//! reason) in `lead_imports`. Rows are checked like `POST /api/v1/leads`; a phone number the
//! business already has (or that an earlier row of the file had) is a duplicate, skipped or
//! updated as asked. The same file uploaded again with the same options is the same import.

pub mod parse;

use std::collections::HashMap;
use switchboard_workflows::intake::{self, IntakeError};
use switchboard_workflows::store::{Idempotency, do_not_call};

use serde::Deserialize;
use switchboard_engine::Engine;
use switchboard_workflows::business::Business;
use tracing::{info, warn};

use crate::error::ApiError;
use crate::store::imports as store;
pub use crate::store::imports::{Rejection, Tally};
use parse::Row;

/// Rows an import may hold.
pub const MAX_ROWS: usize = 50_000;

/// Rows written per transaction (progress is recorded after each).
const BATCH: usize = 250;

/// What to do with a row whose phone number the business already has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnDuplicate {
    /// Leave the existing lead as it is (the default).
    #[default]
    Skip,
    /// Replace the existing lead's name, email, source and custom fields (no new run).
    Update,
}

impl OnDuplicate {
    pub fn as_str(self) -> &'static str {
        match self {
            OnDuplicate::Skip => "skip",
            OnDuplicate::Update => "update",
        }
    }
}

/// Reads, checks and stores every row of import `id`; records progress after each batch and the
/// report at the end (`failed` with the error if storing fails).
pub async fn run(
    engine: Engine,
    id: String,
    business: Business,
    rows: Vec<Row>,
    on_duplicate: OnDuplicate,
) {
    let outcome = store_rows(&engine, &id, &business, rows, on_duplicate).await;
    let db = engine.db();
    let recorded = match outcome {
        Ok(tally) => {
            info!(import = %id, business = %business.id, created = tally.created,
                updated = tally.updated, skipped = tally.skipped,
                rejected = tally.rejections.len(), "lead import done");
            store::finish(db, &id, &tally, None).await
        }
        Err((tally, e)) => {
            warn!(import = %id, error = %e, "lead import failed");
            store::finish(db, &id, &tally, Some(&e.to_string())).await
        }
    };
    if let Err(e) = recorded {
        warn!(import = %id, error = %e, "lead import's end not recorded");
    }
}

async fn store_rows(
    engine: &Engine,
    id: &str,
    business: &Business,
    rows: Vec<Row>,
    on_duplicate: OnDuplicate,
) -> Result<Tally, (Tally, ApiError)> {
    let mut tally = Tally::default();
    let known = match switchboard_workflows::store::leads_by_phone(engine.db(), &business.id).await
    {
        Ok(rows) => rows,
        Err(e) => return Err((tally, e.into())),
    };
    // Phone → the lead it belongs to (stored before, or by an earlier row of this file).
    let mut phones: HashMap<String, String> = known.into_iter().collect();
    for batch in rows.chunks(BATCH) {
        if let Err(e) = store_batch(
            engine,
            business,
            batch,
            on_duplicate,
            &mut phones,
            &mut tally,
        )
        .await
        {
            return Err((tally, e));
        }
        engine.notify_changed();
        if let Err(e) = store::progress(engine.db(), id, &tally).await {
            return Err((tally, e.into()));
        }
    }
    Ok(tally)
}

async fn store_batch(
    engine: &Engine,
    business: &Business,
    batch: &[Row],
    on_duplicate: OnDuplicate,
    phones: &mut HashMap<String, String>,
    tally: &mut Tally,
) -> Result<(), ApiError> {
    let mut tx = engine.db().begin().await?;
    for row in batch {
        tally.processed += 1;
        let reject = |reason: String| Rejection {
            line: row.line,
            reason,
        };
        let checked = row
            .lead
            .clone()
            .and_then(|new| intake::check(business, new).map_err(|e| e.to_string()));
        let lead = match checked {
            Ok(ok) => ok,
            Err(reason) => {
                tally.rejections.push(reject(reason));
                continue;
            }
        };
        match phones.get(lead.phone.as_str()) {
            Some(existing) => match on_duplicate {
                OnDuplicate::Skip => tally.skipped += 1,
                OnDuplicate::Update => {
                    switchboard_workflows::store::update_lead_details(&mut tx, existing, &lead)
                        .await?;
                    tally.updated += 1;
                }
            },
            None if do_not_call::listed(engine.db(), &business.id, lead.phone.as_str()).await? => {
                let listed = IntakeError::DoNotCall(business.id.clone());
                tally.rejections.push(reject(listed.to_string()));
            }
            None => {
                let key = format!("import:{}", lead.phone.as_str());
                let idempotency = Idempotency {
                    key: &key,
                    fingerprint: None,
                };
                let stored = intake::start(engine, &mut tx, &lead, Some(idempotency)).await?;
                phones.insert(lead.phone.as_str().to_owned(), stored.id);
                tally.created += 1;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// An import's progress and report, as the API answers it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ImportAnswer {
    /// `imp_…`.
    pub id: String,
    pub business: String,
    /// `csv` or `jsonl`.
    pub format: String,
    /// `skip` or `update`.
    pub on_duplicate: String,
    /// `processing`, `done` or `failed`.
    pub status: String,
    pub total_rows: i64,
    pub processed: i64,
    pub created: i64,
    pub updated: i64,
    pub skipped: i64,
    pub rejected: i64,
    pub rejections: Vec<Rejection>,
    /// Why it failed.
    pub error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<&store::Import> for ImportAnswer {
    fn from(i: &store::Import) -> ImportAnswer {
        ImportAnswer {
            id: i.id.clone(),
            business: i.business_id.clone(),
            format: i.format.clone(),
            on_duplicate: i.on_duplicate.clone(),
            status: i.status.clone(),
            total_rows: i.total_rows,
            processed: i.processed,
            created: i.created,
            updated: i.updated,
            skipped: i.skipped,
            rejected: i.rejected,
            rejections: serde_json::from_str(&i.rejections).unwrap_or_default(),
            error: i.error.clone(),
            created_at: crate::time::rfc3339(i.created_at),
            finished_at: i.finished_at.map(crate::time::rfc3339),
        }
    }
}
