//! Claiming a line for a call under the concurrent-call caps: the calls in flight (its rows
//! dialing or placed) are counted, and a business that waits for a shared line goes first.

use super::*;

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
pub(super) struct InFlight {
    pub(super) total: i64,
    pub(super) business: i64,
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
pub(super) fn in_flight_query(business_id: &str, now: i64) -> Q {
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
