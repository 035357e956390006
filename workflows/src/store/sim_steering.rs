//! SQL for `sim_steering`: how the built-in simulator plays a lead's calls (demo and tests),
//! kept apart from the lead itself. Real providers never see it.

use switchboard_engine::store::{Db, Q, Tx};

use super::Result;
use crate::sim_steer::SimSteer;

/// Records lead `lead_id`'s steering (inside the transaction that stores the lead).
pub async fn insert(tx: &mut Tx, lead_id: &str, steer: &SimSteer) -> Result<()> {
    tx.execute(
        Q::new("INSERT INTO sim_steering (lead_id, steer) VALUES ($1, $2)")
            .bind(lead_id)
            .bind(serde_json::to_string(steer)?),
    )
    .await?;
    Ok(())
}

/// Lead `lead_id`'s steering, if it came with one.
pub async fn of_lead(db: &Db, lead_id: &str) -> Result<Option<SimSteer>> {
    let row: Option<(String,)> = db
        .fetch_optional(Q::new("SELECT steer FROM sim_steering WHERE lead_id = $1").bind(lead_id))
        .await?;
    Ok(row.map(|(s,)| serde_json::from_str(&s)).transpose()?)
}

/// Deletes lead `lead_id`'s steering (erasure).
pub async fn delete_of_lead(tx: &mut Tx, lead_id: &str) -> Result<u64> {
    tx.execute(Q::new("DELETE FROM sim_steering WHERE lead_id = $1").bind(lead_id))
        .await
}
