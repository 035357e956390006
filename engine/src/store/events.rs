//! SQL for `sb_events`: external events as received, each stored once, consumed by at most one wait.

use sqlx::FromRow;

use super::{Q, Tx};
use crate::error::Result;
use crate::ids::now_ms;

/// An event as stored.
#[derive(Clone, Debug, FromRow)]
pub struct EventRow {
    pub id: String,
    pub kind: String,
    pub key: String,
    pub dedupe_key: String,
    pub payload: String,
    pub received_at: i64,
    pub consumed_at: Option<i64>,
    pub run_id: Option<String>,
}

const COLUMNS: &str = "id, kind, key, dedupe_key, payload, received_at, consumed_at, run_id";

/// Stores an event; false if one with the same dedupe key was stored before.
pub async fn insert(tx: &mut Tx, e: &EventRow) -> Result<bool> {
    let n = tx
        .execute(
            Q::new(format!(
                "INSERT INTO sb_events ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) \
                 ON CONFLICT (dedupe_key) DO NOTHING"
            ))
            .bind(&e.id)
            .bind(&e.kind)
            .bind(&e.key)
            .bind(&e.dedupe_key)
            .bind(&e.payload)
            .bind(e.received_at)
            .bind(e.consumed_at)
            .bind(e.run_id.clone()),
        )
        .await?;
    Ok(n == 1)
}

/// The oldest event on this key that no wait has consumed yet (one that came early).
pub async fn first_unconsumed(tx: &mut Tx, kind: &str, key: &str) -> Result<Option<EventRow>> {
    tx.fetch_optional(
        Q::new(format!(
            "SELECT {COLUMNS} FROM sb_events WHERE kind = $1 AND key = $2 AND consumed_at IS NULL \
             ORDER BY received_at, id LIMIT 1"
        ))
        .bind(kind)
        .bind(key),
    )
    .await
}

/// Marks an event consumed by a run.
pub async fn consume(tx: &mut Tx, id: &str, run_id: &str) -> Result<()> {
    tx.execute(
        Q::new("UPDATE sb_events SET consumed_at = $1, run_id = $2 WHERE id = $3")
            .bind(now_ms())
            .bind(run_id)
            .bind(id),
    )
    .await?;
    Ok(())
}

/// Deletes the events consumed by a run of `subject_id`, and those received under any of `keys`
/// (erasure: a late webhook for one of its calls is the subject's too).
pub async fn delete_of_subject(tx: &mut Tx, subject_id: &str, keys: &[String]) -> Result<u64> {
    // `$2`… one per key; `key IN ()` would not parse, so no keys means no key condition.
    let by_key = if keys.is_empty() {
        String::new()
    } else {
        let params: Vec<String> = (2..keys.len() + 2).map(|i| format!("${i}")).collect();
        format!(" OR key IN ({})", params.join(","))
    };
    let mut q = Q::new(format!(
        "DELETE FROM sb_events \
         WHERE run_id IN (SELECT id FROM sb_runs WHERE subject_id = $1){by_key}"
    ))
    .bind(subject_id);
    for key in keys {
        q = q.bind(key.as_str());
    }
    tx.execute(q).await
}
