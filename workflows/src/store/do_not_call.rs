//! SQL for `do_not_call`: each business' list of numbers it must never dial.

use sqlx::FromRow;
use switchboard_engine::EngineError;
use switchboard_engine::ids::now_ms;
use switchboard_engine::store::{Db, Q, Tx};

use crate::phone::Phone;

type Result<T> = std::result::Result<T, EngineError>;

/// Why a number is on a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Put there through the API (by hand or a bulk import).
    Listed,
    /// The person asked on a call not to be called again.
    OptedOut,
}

impl Reason {
    /// `listed` or `opted_out`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Listed => "listed",
            Reason::OptedOut => "opted_out",
        }
    }
}

/// A number on a business' list.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Entry {
    /// E.164.
    pub phone: String,
    /// `listed` or `opted_out`.
    pub reason: String,
    /// Free text given when it was added.
    pub note: Option<String>,
    /// When (Unix ms).
    pub added_at: i64,
}

/// Puts `phones` on `business_id`'s list (those already there keep their entry); returns how
/// many were new.
pub async fn add(
    tx: &mut Tx,
    business_id: &str,
    phones: &[Phone],
    reason: Reason,
    note: Option<&str>,
) -> Result<u64> {
    let now = now_ms();
    let mut added = 0;
    for phone in phones {
        added += tx
            .execute(
                Q::new(
                    "INSERT INTO do_not_call (business_id, phone, reason, note, added_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(business_id)
                .bind(phone.as_str())
                .bind(reason.as_str())
                .bind(note.map(str::to_owned))
                .bind(now),
            )
            .await?;
    }
    Ok(added)
}

/// Takes `phone` off `business_id`'s list; false if it was not on it.
pub async fn remove(tx: &mut Tx, business_id: &str, phone: &Phone) -> Result<bool> {
    let n = tx
        .execute(
            Q::new("DELETE FROM do_not_call WHERE business_id = $1 AND phone = $2")
                .bind(business_id)
                .bind(phone.as_str()),
        )
        .await?;
    Ok(n == 1)
}

/// `phone`'s entry on `business_id`'s list, if it is on it.
pub async fn find(db: &Db, business_id: &str, phone: &str) -> Result<Option<Entry>> {
    db.fetch_optional(
        Q::new(
            "SELECT phone, reason, note, added_at FROM do_not_call \
             WHERE business_id = $1 AND phone = $2",
        )
        .bind(business_id)
        .bind(phone),
    )
    .await
}

/// The do-not-call reason (`listed`, `opted_out`) of each lead with an id in `[first, last]`
/// (of business `business_id`, or any) whose number is on its business' list: the leads of an
/// export page.
pub async fn reasons_of_leads(
    db: &Db,
    business_id: Option<&str>,
    (first, last): (&str, &str),
) -> Result<std::collections::HashMap<String, String>> {
    let rows: Vec<(String, String)> = db
        .fetch_all(
            Q::new(
                "SELECT l.id, d.reason FROM leads l JOIN do_not_call d \
                   ON d.business_id = l.business_id AND d.phone = l.phone \
                 WHERE ($1 IS NULL OR l.business_id = $1) AND l.id >= $2 AND l.id <= $3",
            )
            .bind(business_id)
            .bind(first)
            .bind(last),
        )
        .await?;
    Ok(rows.into_iter().collect())
}

/// Whether `phone` is on `business_id`'s list.
pub async fn listed(db: &Db, business_id: &str, phone: &str) -> Result<bool> {
    Ok(find(db, business_id, phone).await?.is_some())
}

/// Up to `limit` entries of `business_id`'s list, by number, after `after` (the last number of
/// the previous page).
pub async fn list(
    db: &Db,
    business_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Entry>> {
    db.fetch_all(
        Q::new(
            "SELECT phone, reason, note, added_at FROM do_not_call \
             WHERE business_id = $1 AND phone > $2 ORDER BY phone LIMIT $3",
        )
        .bind(business_id)
        .bind(after.unwrap_or_default())
        .bind(limit),
    )
    .await
}
