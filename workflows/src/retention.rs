//! Erasure and retention: [`erase`] removes a lead with everything derived from it, its call
//! recordings included (`DELETE /api/v1/leads/{id}`); a lead of a business with `retention_days`
//! whose runs have all ended more than that many days ago is erased the same way, and backtests
//! are kept a week. Every process that runs workers sweeps once an hour; sweeps are idempotent,
//! so several processes sweeping at once only share the work.

use std::path::{Path, PathBuf};
use std::time::Duration;

use switchboard_engine::ids::now_ms;
use switchboard_engine::{Engine, EngineError};
use tracing::{info, warn};

use crate::store;

/// How often a process sweeps.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Leads erased per query, so a large backlog is worked off in bounded steps.
const BATCH: i64 = 200;

/// Erases lead `lead_id` with everything derived from it (see `store::erase_lead`) and its call
/// recordings in `audio_dir`; false if there was no such lead.
pub async fn erase(
    engine: &Engine,
    lead_id: &str,
    audio_dir: Option<&Path>,
) -> Result<bool, EngineError> {
    let Some(call_keys) = store::erase_lead(engine, lead_id).await? else {
        return Ok(false);
    };
    if let Some(dir) = audio_dir {
        for key in call_keys {
            let path = dir.join(format!("{key}.mp3"));
            match tokio::fs::remove_file(&path).await {
                Ok(()) => info!(path = %path.display(), "call recording erased"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warn!(path = %path.display(), error = %e, "call recording not erased"),
            }
        }
    }
    Ok(true)
}

/// Erases every lead past its business' retention at `now` (unix ms), with its recordings in
/// `audio_dir`; returns how many were erased per business (those without a retention are
/// skipped). Backtests older than a week go too (their samples name leads).
pub async fn sweep(
    engine: &Engine,
    now: i64,
    audio_dir: Option<&Path>,
) -> Result<Vec<(String, u64)>, EngineError> {
    match crate::backtest::jobs::sweep(engine.db(), now).await {
        Ok(0) => {}
        Ok(backtests) => info!(backtests, "old backtests deleted"),
        // The leads' retention does not wait on it.
        Err(e) => warn!(error = %e, "old backtests not deleted; trying again next time"),
    }
    let mut erased = Vec::new();
    for business in store::businesses(engine.db()).await? {
        let Some(days) = business.retention_days else {
            continue;
        };
        let cutoff = now - i64::from(days) * 86_400_000;
        let mut count = 0;
        loop {
            let leads =
                store::leads_past_retention(engine.db(), &business.id, cutoff, BATCH).await?;
            for lead in &leads {
                match erase(engine, lead, audio_dir).await {
                    Ok(true) => count += 1,
                    // Erased meanwhile by another sweep or by hand.
                    Ok(false) => {}
                    // A run started meanwhile: the lead is no longer past retention.
                    Err(EngineError::InvalidState { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            if (leads.len() as i64) < BATCH {
                break;
            }
        }
        if count > 0 {
            info!(business = %business.id, leads = count, days, "leads past retention erased");
        }
        erased.push((business.id, count));
    }
    Ok(erased)
}

/// Sweeps every [`SWEEP_EVERY`] until the task is dropped (`after`: before the first sweep).
pub async fn sweep_periodically(engine: Engine, after: Duration, audio_dir: Option<PathBuf>) {
    tokio::time::sleep(after).await;
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        every.tick().await;
        if let Err(e) = sweep(&engine, now_ms(), audio_dir.as_deref()).await {
            warn!(error = %e, "retention sweep failed; trying again next time");
        }
    }
}
