//! SQL for cron campaigns: `schedule_ticks` (one row per tick fired: its primary key is what
//! makes a tick fire once however many processes see it) and `schedule_pauses` (a row while a
//! schedule is paused).

use sqlx::FromRow;
use switchboard_engine::EngineError;
use switchboard_engine::ids::now_ms;
use switchboard_engine::store::{Db, Q, Tx, runs};

type Result<T> = std::result::Result<T, EngineError>;

/// Claims the tick at `tick_at` (Unix ms) of schedule `name` for this process. False: another
/// process fired it already.
pub async fn claim_tick(tx: &mut Tx, business_id: &str, name: &str, tick_at: i64) -> Result<bool> {
    let n = tx
        .execute(
            Q::new(
                "INSERT INTO schedule_ticks (business_id, schedule, tick_at, fired_at, runs_started) \
                 VALUES ($1, $2, $3, $4, 0) ON CONFLICT DO NOTHING",
            )
            .bind(business_id)
            .bind(name)
            .bind(tick_at)
            .bind(now_ms()),
        )
        .await?;
    Ok(n == 1)
}

/// Records how many runs a claimed tick started.
pub async fn record_started(
    tx: &mut Tx,
    business_id: &str,
    name: &str,
    tick_at: i64,
    runs_started: i64,
) -> Result<()> {
    tx.execute(
        Q::new(
            "UPDATE schedule_ticks SET runs_started = $1 \
             WHERE business_id = $2 AND schedule = $3 AND tick_at = $4",
        )
        .bind(runs_started)
        .bind(business_id)
        .bind(name)
        .bind(tick_at),
    )
    .await?;
    Ok(())
}

/// A tick that fired.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Tick {
    /// The tick's time (Unix ms).
    pub tick_at: i64,
    /// When it was fired (Unix ms).
    pub fired_at: i64,
    /// Runs it started.
    pub runs_started: i64,
}

/// The latest `limit` ticks fired of schedule `name` of `business_id`, newest first.
pub async fn recent_ticks(db: &Db, business_id: &str, name: &str, limit: i64) -> Result<Vec<Tick>> {
    db.fetch_all(
        Q::new(
            "SELECT tick_at, fired_at, runs_started FROM schedule_ticks \
             WHERE business_id = $1 AND schedule = $2 ORDER BY tick_at DESC LIMIT $3",
        )
        .bind(business_id)
        .bind(name)
        .bind(limit),
    )
    .await
}

/// Whether schedule `name` is paused.
pub async fn is_paused(tx: &mut Tx, business_id: &str, name: &str) -> Result<bool> {
    let row: Option<(i64,)> = tx
        .fetch_optional(
            Q::new(
                "SELECT paused_at FROM schedule_pauses WHERE business_id = $1 AND schedule = $2",
            )
            .bind(business_id)
            .bind(name),
        )
        .await?;
    Ok(row.is_some())
}

/// The paused schedules of `business_id`.
pub async fn paused(db: &Db, business_id: &str) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = db
        .fetch_all(
            Q::new("SELECT schedule FROM schedule_pauses WHERE business_id = $1").bind(business_id),
        )
        .await?;
    Ok(rows.into_iter().map(|(s,)| s).collect())
}

/// Pauses or resumes schedule `name`. False: it already was.
pub async fn set_paused(db: &Db, business_id: &str, name: &str, paused: bool) -> Result<bool> {
    let q = if paused {
        Q::new(
            "INSERT INTO schedule_pauses (business_id, schedule, paused_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(business_id)
        .bind(name)
        .bind(now_ms())
    } else {
        Q::new("DELETE FROM schedule_pauses WHERE business_id = $1 AND schedule = $2")
            .bind(business_id)
            .bind(name)
    };
    Ok(db.execute(q).await? == 1)
}

/// Leads of `business_id` a tick calls again, at most `limit`, oldest first: no run in
/// progress, their latest scored call tagged `tag`, no call since `idle_since` (Unix ms), and
/// not on the business' do-not-call list.
pub async fn due_leads(
    tx: &mut Tx,
    business_id: &str,
    tag: &str,
    idle_since: i64,
    limit: i64,
) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = tx
        .fetch_all(
            Q::new(format!(
                "SELECT l.id FROM leads l WHERE l.business_id = $1 AND NOT {} \
                 AND (SELECT c.tag FROM calls c WHERE c.lead_id = l.id AND c.tag IS NOT NULL \
                   ORDER BY c.created_at DESC LIMIT 1) = $2 \
                 AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.lead_id = l.id \
                   AND c.created_at > $3) \
                 AND NOT EXISTS (SELECT 1 FROM do_not_call d \
                   WHERE d.business_id = l.business_id AND d.phone = l.phone) \
                 ORDER BY l.created_at, l.id LIMIT $4",
                runs::sql::subject_has_open_run("l.id")
            ))
            .bind(business_id)
            .bind(tag)
            .bind(idle_since)
            .bind(limit),
        )
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}
