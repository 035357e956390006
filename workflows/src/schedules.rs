//! Cron campaigns: every schedule of every business ticks on apalis-cron, in the business'
//! timezone, in each process that runs workers. A tick fires once however many processes see
//! it (the first to record it in `schedule_ticks` starts its runs in the same transaction), and
//! not at all while its schedule is paused. A tick that passes while no process runs is missed.
//! A changed configuration restarts its business' schedules within a second.

use std::collections::HashMap;
use std::time::Duration;

use apalis_cron::CronScheduler;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use switchboard_engine::{Engine, EngineError};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::business::{Business, Schedule};
use crate::{lead_call, store};

/// What a tick did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fired {
    /// It started this many runs.
    Started(usize),
    /// Another process fired it.
    AlreadyFired,
    /// The schedule is paused.
    Paused,
}

/// Fires the tick of `schedule` at `tick_at`: if no process has and the schedule is not paused,
/// starts a `lead_call` run for every lead the schedule selects (as of `now`).
pub async fn fire(
    engine: &Engine,
    business: &Business,
    schedule: &Schedule,
    tick_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Fired, EngineError> {
    let mut tx = engine.db().begin().await?;
    if store::schedules::is_paused(&mut tx, &business.id, &schedule.name).await? {
        return Ok(Fired::Paused);
    }
    let tick_ms = tick_at.timestamp_millis();
    if !store::schedules::claim_tick(&mut tx, &business.id, &schedule.name, tick_ms).await? {
        return Ok(Fired::AlreadyFired);
    }
    let idle_since = now.timestamp_millis() - i64::from(schedule.idle_days) * 86_400_000;
    let leads = store::schedules::due_leads(
        &mut tx,
        &business.id,
        &schedule.tag,
        idle_since,
        i64::from(schedule.limit),
    )
    .await?;
    for lead_id in &leads {
        let run_id = lead_call::start_run(engine, &mut tx, &business.id, lead_id).await?;
        store::set_lead_run(&mut tx, lead_id, &run_id.0).await?;
    }
    store::schedules::record_started(
        &mut tx,
        &business.id,
        &schedule.name,
        tick_ms,
        leads.len() as i64,
    )
    .await?;
    tx.commit().await?;
    engine.notify_changed();
    Ok(Fired::Started(leads.len()))
}

/// The next tick of `schedule` after `after`, in `business`' timezone.
pub fn next_tick(
    business: &Business,
    schedule: &Schedule,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let cron = schedule.cron().ok()?;
    cron.after(&after.with_timezone(&business.tz()))
        .next()
        .map(|t| t.with_timezone(&Utc))
}

/// How often the businesses' configuration versions are read for changed schedules.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Runs every schedule of the businesses in the database until the task is dropped: each ticks
/// on its own apalis-cron stream and fires through [`fire`]. The configuration versions are
/// read every second: a business created or changed since (a new version) has its schedules
/// started again from the new version, so a change needs no restart.
pub async fn run_all(engine: Engine) {
    let mut running: HashMap<String, (i64, JoinSet<()>)> = HashMap::new();
    let mut every = tokio::time::interval(RELOAD_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let versions = match store::configs::active_versions(engine.db()).await {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "cron campaigns could not be read; trying again");
                continue;
            }
        };
        // Dropping a business' tasks stops its tickers.
        running.retain(|id, (version, _)| versions.get(id) == Some(version));
        for (id, version) in versions {
            if running.contains_key(&id) {
                continue;
            }
            let business = match store::business(engine.db(), &id).await {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    warn!(business = %id, error = %e, "cron campaigns could not be read; trying again");
                    continue;
                }
            };
            let mut tickers = JoinSet::new();
            for schedule in business.schedules.clone() {
                let (engine, business) = (engine.clone(), business.clone());
                tickers.spawn(async move { tick_forever(&engine, &business, &schedule).await });
            }
            running.insert(id, (version, tickers));
        }
    }
}

/// How long a tick that failed (say the database was away) is tried again, at most.
const RETRY_FOR: Duration = Duration::from_secs(30);

async fn tick_forever(engine: &Engine, business: &Business, schedule: &Schedule) {
    let Ok(cron) = schedule.cron() else {
        return; // checked when the business was loaded
    };
    let mut ticks = std::pin::pin!(
        CronScheduler::new(cron)
            .with_timezone(business.tz())
            .into_stream()
    );
    while let Some(tick) = ticks.next().await {
        let Ok(tick) = tick else { continue };
        let Some(tick_at) = DateTime::from_timestamp(tick.get_timestamp() as i64, 0) else {
            continue;
        };
        let started = tokio::time::Instant::now();
        loop {
            match fire(engine, business, schedule, tick_at, Utc::now()).await {
                Ok(Fired::Started(n)) => {
                    info!(business = %business.id, schedule = %schedule.name, %tick_at, runs = n, "cron campaign fired");
                    break;
                }
                Ok(_) => break,
                Err(e) if started.elapsed() < RETRY_FOR => {
                    warn!(business = %business.id, schedule = %schedule.name, error = %e, "cron tick failed; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    warn!(business = %business.id, schedule = %schedule.name, error = %e, "cron tick missed");
                    break;
                }
            }
        }
    }
}
