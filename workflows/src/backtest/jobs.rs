//! Backtests as background jobs: checked and recorded when asked for, replayed off the request
//! path with their progress stored after every page and a heartbeat in between, read back by
//! id. A process that stops mid-way leaves its backtest `running` without a heartbeat: after
//! [`STALE_MS`] it reads as `interrupted` (start it again; a backtest changes nothing, so
//! nothing is half done).

use serde::{Deserialize, Serialize};
use switchboard_engine::EngineError;
use switchboard_engine::ids::now_ms;
use switchboard_engine::store::Db;
use tracing::{info, warn};
use utoipa::ToSchema;

use super::{Backtest, Report, Request, rfc3339};
use crate::business::Business;
use crate::policy::Policy;
use crate::scripting::sandbox::ScriptError;
use crate::scripting::validate::{self, Report as Validation};
use crate::store::backtests::{self, BacktestRow};

/// A running backtest whose heartbeat has not moved for this long was cut off (its process
/// stopped).
pub const STALE_MS: i64 = 60_000;

/// How often a running backtest says it is alive, whatever its progress (a page of hostile
/// hooks, each running to its time limit, can take minutes).
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long backtests are kept (their samples name leads): a week.
pub const KEPT_MS: i64 = 7 * 86_400_000;

/// Where a backtest is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Running,
    Done,
    Failed,
    /// Its process stopped before it finished: start it again.
    Interrupted,
}

/// Decisions replayed so far, of how many.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// A backtest as its author sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// `bt_…`.
    pub id: String,
    pub business: String,
    pub status: State,
    /// `sha256` of the candidate source.
    pub candidate_hash: String,
    pub request: Request,
    pub progress: Progress,
    /// RFC 3339 UTC.
    pub created_at: String,
    pub finished_at: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Once done.
    pub report: Option<Report>,
}

impl Status {
    fn of(row: BacktestRow, now: i64) -> Result<Status, EngineError> {
        let status = match row.status.as_str() {
            "done" => State::Done,
            "failed" => State::Failed,
            _ if row.updated_at < now - STALE_MS => State::Interrupted,
            _ => State::Running,
        };
        Ok(Status {
            id: row.id,
            business: row.business_id,
            status,
            candidate_hash: row.candidate_hash,
            request: serde_json::from_str(&row.request)?,
            progress: Progress {
                done: row.done.max(0) as u64,
                total: row.total.max(0) as u64,
            },
            created_at: rfc3339(row.created_at),
            finished_at: row.finished_at.map(rfc3339),
            error: row.error,
            report: row
                .report
                .as_deref()
                .map(serde_json::from_str)
                .transpose()?,
        })
    }
}

/// Why a backtest was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The candidate is not a valid script (as a new version would be refused).
    #[error("the candidate script is not valid")]
    Invalid {
        errors: Vec<ScriptError>,
        validation: Option<Box<Validation>>,
    },
    /// The business already has one running.
    #[error("backtest {id} of this business is still running")]
    Running { id: String },
    #[error(transparent)]
    Store(#[from] EngineError),
}

/// Checks `source` as a new version is checked, records the backtest and starts replaying it
/// in the background; its status.
pub async fn start(
    policy: &Policy,
    db: Db,
    business: Business,
    source: &str,
    request: Request,
) -> Result<Status, StartError> {
    let validation = validate::validate(policy.host(), &business, source).await;
    if !validation.valid {
        return Err(StartError::Invalid {
            errors: validation.problems(),
            validation: Some(Box::new(validation)),
        });
    }
    let business_id = business.id.clone();
    let backtest = Backtest::new(policy, db.clone(), business, source, request.clone())
        .await
        .map_err(|e| StartError::Invalid {
            errors: vec![e],
            validation: None,
        })?;
    let id = format!("bt_{}", uuid::Uuid::now_v7().simple());
    let mut tx = db.begin().await?;
    tx.lock_key(&format!("backtest:{business_id}")).await?;
    if let Some(running) = backtests::running(&mut tx, &business_id, now_ms() - STALE_MS)
        .await?
        .into_iter()
        .next()
    {
        return Err(StartError::Running { id: running.id });
    }
    let asked = serde_json::to_string(&request).map_err(EngineError::from)?;
    let hash = backtest.candidate_hash().to_owned();
    backtests::insert(&mut tx, &id, &business_id, &hash, &asked).await?;
    tx.commit().await?;
    // Read before the replay starts: a short one may end before the caller is answered.
    let started = status(&db, &id)
        .await?
        .expect("the backtest was just recorded");
    info!(backtest = %id, business = %business_id, "backtest started");
    tokio::spawn(replay(backtest, db, id));
    Ok(started)
}

/// Replays backtest `id` to the end and records its report (or why it failed), beating its
/// heart meanwhile.
async fn replay(backtest: Backtest, db: Db, id: String) {
    let work = async {
        let (total, _) = backtest.total().await?;
        backtests::progress(&db, &id, 0, total as i64).await?;
        let report = backtest
            .run(|done| backtests::progress(&db, &id, done as i64, total as i64))
            .await?;
        Ok::<_, EngineError>((total, report))
    };
    let heartbeat = async {
        let mut every = tokio::time::interval(HEARTBEAT);
        loop {
            every.tick().await;
            if let Err(e) = backtests::beat(&db, &id).await {
                warn!(backtest = %id, error = %e, "backtest heartbeat not recorded");
            }
        }
    };
    let outcome = tokio::select! {
        outcome = work => outcome,
        _ = heartbeat => unreachable!("the heartbeat beats until the work is done"),
    };
    let recorded = match &outcome {
        Ok((total, report)) => {
            info!(backtest = %id, compared = report.compared, changed = report.changed, "backtest done");
            match serde_json::to_string(report) {
                Ok(json) => backtests::finish(&db, &id, Ok((*total as i64, &json))).await,
                Err(e) => backtests::finish(&db, &id, Err(&e.to_string())).await,
            }
        }
        Err(e) => {
            warn!(backtest = %id, error = %e, "backtest failed");
            backtests::finish(&db, &id, Err(&e.to_string())).await
        }
    };
    if let Err(e) = recorded {
        warn!(backtest = %id, error = %e, "backtest outcome not recorded");
    }
}

/// Backtest `id`, if it exists.
pub async fn status(db: &Db, id: &str) -> Result<Option<Status>, EngineError> {
    backtests::get(db, id)
        .await?
        .map(|row| Status::of(row, now_ms()))
        .transpose()
}

/// Deletes the backtests older than [`KEPT_MS`] at `now` (unix ms); how many.
pub async fn sweep(db: &Db, now: i64) -> Result<u64, EngineError> {
    backtests::delete_before(db, now - KEPT_MS).await
}
