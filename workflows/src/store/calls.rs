//! SQL for `calls`: one row per call attempt, written before the provider is asked to dial, so a
//! crash can never lead to a second call placed blindly; the concurrent-call caps count its rows
//! (`lines`: claiming one).

use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use switchboard_engine::EngineError;
use switchboard_engine::ids::now_ms;
use switchboard_engine::store::{Db, Q, Tx, runs};

use crate::scripting::host_api::HistoryEntry;

type Result<T> = std::result::Result<T, EngineError>;

mod lines;
pub use lines::*;

/// A call dialing or placed longer ago than this no longer holds a line (its run was cancelled
/// or its end was never learnt); no real call lasts this long.
pub const LINE_HELD_AT_MOST_MS: i64 = 2 * 3600 * 1000;

/// The state of one call attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, FromRow)]
pub struct CallRecord {
    /// The call key sent to the provider: `<run id>:<attempt>`.
    pub id: String,
    pub run_id: String,
    pub lead_id: String,
    pub business_id: Option<String>,
    pub attempt: i64,
    /// `dialing` (request about to be sent, or sent without a recorded answer), `placed`,
    /// `rejected` (did not start), `unknown` (never learnt whether it started).
    pub status: String,
    pub conversation_id: Option<String>,
    pub request: String,
    pub error: Option<String>,
    /// When the call's end was learnt.
    pub ended_at: Option<i64>,
}

const COLUMNS: &str =
    "id, run_id, lead_id, business_id, attempt, status, conversation_id, request, error, ended_at";

/// Reads the record of one call attempt.
pub async fn call(db: &Db, id: &str) -> Result<Option<CallRecord>> {
    db.fetch_optional(Q::new(format!("SELECT {COLUMNS} FROM calls WHERE id = $1")).bind(id))
        .await
}

/// Records that the provider placed the call under `conversation_id`.
pub async fn record_placed(db: &Db, id: &str, conversation_id: &str) -> Result<()> {
    db.execute(
        Q::new(
            "UPDATE calls SET status = 'placed', conversation_id = $1, error = NULL, \
             updated_at = $2 WHERE id = $3",
        )
        .bind(conversation_id)
        .bind(now_ms())
        .bind(id),
    )
    .await?;
    Ok(())
}

/// Records that a `dialing` call did not start (`rejected`: the provider said so) or that we
/// never learnt whether it did (`unknown`), freeing its line. False when the call is no longer
/// `dialing` without an id: a webhook has told us its id in the meantime (read it again).
pub async fn record_not_started(db: &Db, id: &str, status: &str, error: String) -> Result<bool> {
    let changed = db
        .execute(
            Q::new(
                "UPDATE calls SET status = $1, error = $2, updated_at = $3 \
                 WHERE id = $4 AND status = 'dialing' AND conversation_id IS NULL",
            )
            .bind(status)
            .bind(error)
            .bind(now_ms())
            .bind(id),
        )
        .await?;
    Ok(changed > 0)
}

/// The call to `to_number` whose request was sent but whose answer was never recorded (`dialing`
/// without an id, recent enough to hold a line, its run not finished), when there is exactly one
/// and no call is known by `conversation_id` yet: a webhook about `conversation_id` that names the
/// number called but no call key (an initiation failure) is about it.
pub async fn unanswered_call_to(
    db: &Db,
    to_number: &str,
    conversation_id: &str,
) -> Result<Option<String>> {
    #[derive(FromRow)]
    struct Key {
        id: String,
    }
    let keys: Vec<Key> = db
        .fetch_all(
            Q::new(format!(
                "SELECT c.id FROM calls c JOIN leads l ON l.id = c.lead_id \
                 WHERE c.status = 'dialing' AND c.conversation_id IS NULL AND l.phone = $1 \
                 AND c.updated_at > $2 AND {} \
                 AND NOT EXISTS (SELECT 1 FROM calls k WHERE k.conversation_id = $3) LIMIT 2",
                runs::sql::run_is_open("c.run_id")
            ))
            .bind(to_number)
            .bind(now_ms() - LINE_HELD_AT_MOST_MS)
            .bind(conversation_id),
        )
        .await?;
    Ok(match keys.as_slice() {
        [only] => Some(only.id.clone()),
        _ => None,
    })
}

/// A webhook named `id` (echoed call key) and its conversation: if the call is still `dialing`
/// (its answer was never recorded), record it as placed. True if it was.
pub async fn adopt_conversation(db: &Db, id: &str, conversation_id: &str) -> Result<bool> {
    let changed = db
        .execute(
            Q::new(
                "UPDATE calls SET status = 'placed', conversation_id = $1, updated_at = $2 \
                 WHERE id = $3 AND status = 'dialing' AND conversation_id IS NULL",
            )
            .bind(conversation_id)
            .bind(now_ms())
            .bind(id),
        )
        .await?;
    Ok(changed > 0)
}

/// Credits a call of `duration_secs` costs: one per started minute (2:13 → 3, 0:00 → 0).
pub fn credits(duration_secs: f64) -> i64 {
    (duration_secs.max(0.0) / 60.0).ceil() as i64
}

/// The call's end was learnt: it no longer holds a line. A call that connected records how
/// long it lasted and the credits it costs.
pub async fn end(db: &Db, id: &str, duration_secs: Option<f64>) -> Result<()> {
    let now = now_ms();
    db.execute(
        Q::new(
            "UPDATE calls SET ended_at = COALESCE(ended_at, $1), updated_at = $1, \
             duration_secs = COALESCE($2, duration_secs), credits = COALESCE($3, credits, 0) \
             WHERE id = $4",
        )
        .bind(now)
        .bind(duration_secs.map(|s| s.max(0.0).ceil() as i64))
        .bind(duration_secs.map(credits))
        .bind(id),
    )
    .await?;
    Ok(())
}

/// A business' calls that ended in `[from, to)` (unix ms): how many, how many connected, their
/// seconds and credits.
#[derive(Debug, Default, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Usage {
    /// Calls that ended in the range.
    pub calls: i64,
    /// Of those, the ones a person answered.
    pub connected_calls: i64,
    /// Their seconds on the line.
    pub billed_seconds: i64,
    /// One per started call minute (2:13 → 3).
    pub credits: i64,
}

/// [`Usage`] of `business_id` over `[from, to)`.
pub async fn usage(db: &Db, business_id: &str, from: i64, to: i64) -> Result<Usage> {
    db.fetch_one(
        Q::new(
            "SELECT COUNT(*) AS calls, \
             CAST(COALESCE(SUM(CASE WHEN duration_secs IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) \
               AS connected_calls, \
             CAST(COALESCE(SUM(duration_secs), 0) AS BIGINT) AS billed_seconds, \
             CAST(COALESCE(SUM(credits), 0) AS BIGINT) AS credits \
             FROM calls WHERE business_id = $1 AND ended_at >= $2 AND ended_at < $3",
        )
        .bind(business_id)
        .bind(from)
        .bind(to),
    )
    .await
}

/// Records who placed the call and why (agent key, campaign, objective), for analytics.
pub async fn record_route(
    db: &Db,
    id: &str,
    agent: &str,
    campaign: Option<&str>,
    objective: &str,
) -> Result<()> {
    db.execute(
        Q::new("UPDATE calls SET agent = $1, campaign = $2, objective = $3 WHERE id = $4")
            .bind(agent)
            .bind(campaign)
            .bind(objective)
            .bind(id),
    )
    .await?;
    Ok(())
}

/// Records what the call's analysis found (the lead's history shows it to later calls).
pub async fn record_summary(db: &Db, id: &str, summary: &str) -> Result<()> {
    db.execute(
        Q::new("UPDATE calls SET summary = $1, updated_at = $2 WHERE id = $3")
            .bind(summary)
            .bind(now_ms())
            .bind(id),
    )
    .await?;
    Ok(())
}

/// Records how a call ended (and its score, when it was scored), for the lead's history.
pub async fn record_outcome(
    db: &Db,
    id: &str,
    outcome: &str,
    score: Option<i64>,
    tag: Option<&str>,
) -> Result<()> {
    let now = now_ms();
    db.execute(
        Q::new(
            "UPDATE calls SET outcome = $1, score = $2, tag = $3, ended_at = COALESCE(ended_at, $4), \
             updated_at = $4 WHERE id = $5",
        )
        .bind(outcome)
        .bind(score)
        .bind(tag)
        .bind(now)
        .bind(id),
    )
    .await?;
    Ok(())
}

#[derive(FromRow)]
struct HistoryRow {
    run_id: String,
    lead_id: String,
    attempt: i64,
    created_at: i64,
    outcome: Option<String>,
    score: Option<i64>,
    tag: Option<String>,
    summary: Option<String>,
}

/// The most calls a lead's history holds (the latest).
pub const HISTORY_LEN: usize = 50;

impl From<HistoryRow> for HistoryEntry {
    fn from(r: HistoryRow) -> HistoryEntry {
        HistoryEntry {
            run_id: r.run_id,
            attempt: r.attempt,
            at: chrono::DateTime::from_timestamp_millis(r.created_at)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            outcome: r.outcome,
            score: r.score,
            tag: r.tag,
            summary: r.summary,
        }
    }
}

/// The calls placed to a lead, oldest first (the last [`HISTORY_LEN`]).
pub async fn lead_history(db: &Db, lead_id: &str) -> Result<Vec<HistoryEntry>> {
    let rows: Vec<HistoryRow> = db
        .fetch_all(
            Q::new(
                "SELECT run_id, lead_id, attempt, created_at, outcome, score, tag, summary \
                 FROM calls WHERE lead_id = $1 ORDER BY created_at DESC, attempt DESC LIMIT $2",
            )
            .bind(lead_id)
            .bind(HISTORY_LEN as i64),
        )
        .await?;
    Ok(rows.into_iter().rev().map(HistoryEntry::from).collect())
}

/// A call as a lead's history saw it at some moment: placed at `placed_at` (unix ms).
#[derive(Clone, Debug)]
pub struct PastCall {
    pub placed_at: i64,
    pub entry: HistoryEntry,
}

/// Every call placed to these leads, oldest first per lead (a backtest cuts each lead's history
/// at the moment of each decision).
pub async fn calls_of_leads(
    db: &Db,
    lead_ids: &[&str],
) -> Result<std::collections::HashMap<String, Vec<PastCall>>> {
    let mut by_lead: std::collections::HashMap<String, Vec<PastCall>> = Default::default();
    if lead_ids.is_empty() {
        return Ok(by_lead);
    }
    let q = Q::new(format!(
        "SELECT run_id, lead_id, attempt, created_at, outcome, score, tag, summary FROM calls \
         WHERE lead_id IN ({}) ORDER BY created_at, attempt",
        Q::placeholders(1, lead_ids.len())
    ));
    let rows: Vec<HistoryRow> = db
        .fetch_all(lead_ids.iter().fold(q, |q, id| q.bind(*id)))
        .await?;
    for r in rows {
        by_lead
            .entry(r.lead_id.clone())
            .or_default()
            .push(PastCall {
                placed_at: r.created_at,
                entry: r.into(),
            });
    }
    Ok(by_lead)
}

#[derive(FromRow)]
struct CallTally {
    business_id: Option<String>,
    placed: i64,
    connected: i64,
    bucket: Option<i64>,
    n: i64,
}

/// Calls per business in `[since, before)` (unix ms): placed, connected, and scores in buckets
/// of ten (`bucket` 0..=9; 100 counts in 9). One row per (business, bucket).
pub async fn tally(db: &Db, since: i64, before: i64) -> Result<Vec<CallTallyRow>> {
    let rows: Vec<CallTally> = db
        .fetch_all(
            Q::new(
                "SELECT business_id, \
                 sum(CASE WHEN status = 'placed' OR conversation_id IS NOT NULL THEN 1 ELSE 0 END) AS placed, \
                 sum(CASE WHEN outcome = 'connected' THEN 1 ELSE 0 END) AS connected, \
                 CASE WHEN score IS NULL THEN NULL WHEN score >= 100 THEN 9 ELSE score / 10 END AS bucket, \
                 count(*) AS n \
                 FROM calls WHERE created_at >= $1 AND created_at < $2 \
                 GROUP BY business_id, CASE WHEN score IS NULL THEN NULL WHEN score >= 100 THEN 9 ELSE score / 10 END",
            )
            .bind(since)
            .bind(before),
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| CallTallyRow {
            business_id: r.business_id.unwrap_or_default(),
            placed: r.placed,
            connected: r.connected,
            bucket: r.bucket,
            calls: r.n,
        })
        .collect())
}

/// See [`tally`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallTallyRow {
    pub business_id: String,
    pub placed: i64,
    pub connected: i64,
    /// Score bucket (`score / 10`), `None` for calls without a score.
    pub bucket: Option<i64>,
    pub calls: i64,
}

/// The keys a lead's call events arrive under: each call's key and its conversation id.
pub async fn event_keys_of_lead(tx: &mut Tx, lead_id: &str) -> Result<Vec<String>> {
    let rows: Vec<(String, Option<String>)> = tx
        .fetch_all(Q::new("SELECT id, conversation_id FROM calls WHERE lead_id = $1").bind(lead_id))
        .await?;
    Ok(rows
        .into_iter()
        .flat_map(|(id, conversation)| std::iter::once(id).chain(conversation))
        .collect())
}

/// Deletes a lead's calls (erasure).
pub async fn delete_of_lead(tx: &mut Tx, lead_id: &str) -> Result<u64> {
    tx.execute(Q::new("DELETE FROM calls WHERE lead_id = $1").bind(lead_id))
        .await
}

#[cfg(test)]
mod tests;
