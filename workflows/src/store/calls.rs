//! SQL for `calls`: one row per call attempt, written before the provider is asked to dial, so a
//! crash can never lead to a second call placed blindly; the concurrent-call caps count its rows.

use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use switchboard_engine::EngineError;
use switchboard_engine::ids::now_ms;
use switchboard_engine::store::{Db, Q, Tx, runs};

use crate::scripting::host_api::HistoryEntry;

type Result<T> = std::result::Result<T, EngineError>;

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

/// How many calls may be in flight at once, and started a minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    /// Across every business (the provider plan's limit).
    pub global: u32,
    /// For the call's business.
    pub business: u32,
    /// Calls the business may start a minute (`None`: no limit).
    pub business_per_minute: Option<u32>,
    /// Calls every business together may start a minute (`None`: no limit).
    pub global_per_minute: Option<u32>,
}

/// The answer to a line claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The call holds a line and is recorded as `dialing`: send it.
    Claimed,
    /// The call is already recorded in a state other than `rejected` (another execution got
    /// there first): read it again, do not send.
    AlreadyRecorded,
    /// Every line is busy (`scope` is `global` or `business`): try again later.
    Busy {
        /// Which cap is reached.
        scope: &'static str,
        /// The cap.
        cap: u32,
    },
    /// As many calls as may be were started in the last minute (`scope` is `global` or
    /// `business`): try again later.
    MinuteUsed {
        /// Which cap is reached.
        scope: &'static str,
        /// Calls a minute.
        cap: u32,
    },
    /// A line is free, but another business waits for one with fewer calls in flight: it goes
    /// there first. Try again later.
    OtherBusinessFirst,
}

impl std::fmt::Display for Claim {
    /// Why a call waits in line (or what happened to the claim).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Claim::Claimed => write!(f, "a line is claimed"),
            Claim::AlreadyRecorded => write!(f, "the call is already recorded"),
            Claim::Busy { scope, cap } => write!(f, "all {cap} call lines ({scope}) are busy"),
            Claim::MinuteUsed { scope, cap } => {
                write!(f, "the {cap} calls a minute ({scope}) are used")
            }
            Claim::OtherBusinessFirst => write!(
                f,
                "the free line goes first to a business with fewer calls in flight"
            ),
        }
    }
}

/// A business that asked for a shared line this recently still waits for one.
const WAITING_FRESH_MS: i64 = 5_000;

#[derive(FromRow)]
struct InFlight {
    total: i64,
    business: i64,
}

/// The condition on `calls` (as `c`) for a call in flight: dialing or placed, end not learnt,
/// within [`LINE_HELD_AT_MOST_MS`] (`held_since`: a parameter), its run not finished (a call
/// whose run failed or was cancelled holds no line, whatever its row says).
fn in_flight(held_since: &str) -> String {
    format!(
        "c.status IN ('dialing', 'placed') AND c.ended_at IS NULL AND c.updated_at > {held_since} \
         AND {}",
        runs::sql::run_is_open("c.run_id")
    )
}

/// Calls in flight in all businesses and in `business_id`.
fn in_flight_query(business_id: &str, now: i64) -> Q {
    Q::new(format!(
        "SELECT count(*) AS total, \
         COALESCE(sum(CASE WHEN c.business_id = $1 THEN 1 ELSE 0 END), 0) AS business \
         FROM calls c WHERE {}",
        in_flight("$2")
    ))
    .bind(business_id)
    .bind(now - LINE_HELD_AT_MOST_MS)
}

/// Calls started (recorded) since `since`, in `business_id` or (`None`) in all businesses.
async fn started_since(tx: &mut Tx, business_id: Option<&str>, since: i64) -> Result<i64> {
    let q = match business_id {
        Some(b) => Q::new("SELECT COUNT(*) FROM calls WHERE business_id = $1 AND created_at > $2")
            .bind(b)
            .bind(since),
        None => Q::new("SELECT COUNT(*) FROM calls WHERE created_at > $1").bind(since),
    };
    let (n,): (i64,) = tx.fetch_one(q).await?;
    Ok(n)
}

/// Notes that `business_id` waits for a shared line (or, `waiting` false, no longer does).
async fn set_waiting(tx: &mut Tx, business_id: &str, waiting: bool, now: i64) -> Result<()> {
    let q = if waiting {
        Q::new(
            "INSERT INTO call_line_waits (business_id, since, seen_at) VALUES ($1, $2, $2) \
             ON CONFLICT (business_id) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(business_id)
        .bind(now)
    } else {
        Q::new("DELETE FROM call_line_waits WHERE business_id = $1").bind(business_id)
    };
    tx.execute(q).await?;
    Ok(())
}

/// Whether another business waits for a shared line with fewer than `mine` calls in flight.
async fn fewer_in_flight_waiting(
    tx: &mut Tx,
    business_id: &str,
    mine: i64,
    now: i64,
) -> Result<bool> {
    let (n,): (i64,) = tx
        .fetch_one(
            Q::new(format!(
                "SELECT COUNT(*) FROM call_line_waits w WHERE w.business_id <> $1 \
                 AND w.seen_at > $2 AND (SELECT COUNT(*) FROM calls c \
                 WHERE c.business_id = w.business_id AND {}) < $4",
                in_flight("$3")
            ))
            .bind(business_id)
            .bind(now - WAITING_FRESH_MS)
            .bind(now - LINE_HELD_AT_MOST_MS)
            .bind(mine),
        )
        .await?;
    Ok(n > 0)
}

/// Claims a line for `call` under `caps` and, if one is free, records the call as `dialing`
/// (before the request is sent) in the same transaction. Claims are serialised across processes,
/// so the caps hold however many workers dial at once.
///
/// Shared lines are shared fairly: a business held back by a global cap is noted as waiting, and
/// a line that frees goes to the waiting business with the fewest calls in flight, so a business
/// with thousands of calls queued cannot take every line from one with a few.
pub async fn claim_line(db: &Db, call: &CallRecord, caps: Caps) -> Result<Claim> {
    let business_id = call.business_id.as_deref().unwrap_or_default();
    let mut tx = db.begin().await?;
    tx.lock_key("calls:lines").await?;
    let now = now_ms();
    let row: InFlight = tx.fetch_one(in_flight_query(business_id, now)).await?;
    let minute_ago = now - 60_000;
    // The business' own caps first: while they hold it back, it does not wait for a shared line.
    let own = if row.business >= i64::from(caps.business) {
        Some(Claim::Busy {
            scope: "business",
            cap: caps.business,
        })
    } else {
        match caps.business_per_minute {
            Some(cap)
                if started_since(&mut tx, Some(business_id), minute_ago).await?
                    >= i64::from(cap) =>
            {
                Some(Claim::MinuteUsed {
                    scope: "business",
                    cap,
                })
            }
            _ => None,
        }
    };
    let shared = match own {
        Some(_) => None,
        None if row.total >= i64::from(caps.global) => Some(Claim::Busy {
            scope: "global",
            cap: caps.global,
        }),
        None => match caps.global_per_minute {
            Some(cap) if started_since(&mut tx, None, minute_ago).await? >= i64::from(cap) => {
                Some(Claim::MinuteUsed {
                    scope: "global",
                    cap,
                })
            }
            _ if fewer_in_flight_waiting(&mut tx, business_id, row.business, now).await? => {
                Some(Claim::OtherBusinessFirst)
            }
            _ => None,
        },
    };
    if let Some(refused) = own.or(shared) {
        set_waiting(&mut tx, business_id, shared.is_some(), now).await?;
        tx.commit().await?;
        return Ok(refused);
    }
    // Only a call the provider said did not start may be dialled again.
    let written = tx
        .execute(
        Q::new(
            "INSERT INTO calls (id, run_id, lead_id, business_id, attempt, status, conversation_id, \
             request, error, created_at, updated_at) \
             VALUES ($1,$2,$3,$4,$5,'dialing',NULL,$6,NULL,$7,$7) \
             ON CONFLICT (id) DO UPDATE SET status = 'dialing', request = excluded.request, \
             error = NULL, ended_at = NULL, updated_at = $7 WHERE calls.status = 'rejected'",
        )
        .bind(&call.id)
        .bind(&call.run_id)
        .bind(&call.lead_id)
        .bind(business_id)
        .bind(call.attempt)
        .bind(&call.request)
        .bind(now),
    )
    .await?;
    if written == 0 {
        tx.rollback().await?;
        return Ok(Claim::AlreadyRecorded);
    }
    set_waiting(&mut tx, business_id, false, now).await?;
    tx.commit().await?;
    Ok(Claim::Claimed)
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
