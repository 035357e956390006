//! Analytics over a cohort of leads (those created in a time range, of one business or all): the
//! funnel, how their runs ended, their calls' scores, and calls per agent, campaign and objective.
//! Read-only SQL over `leads`, `calls` and `sb_runs`.

use serde::Serialize;
use sqlx::FromRow;
use switchboard_engine::EngineError;
use switchboard_engine::store::{Db, Q, runs};

type Result<T> = std::result::Result<T, EngineError>;

/// The cohort: leads of `business` (all when `None`) created in `[from, to)` (unix ms).
#[derive(Clone, Copy, Debug)]
pub struct Cohort<'a> {
    pub business: Option<&'a str>,
    pub from: i64,
    pub to: i64,
}

/// The cohort's condition on leads `l` (`$1` business, `$2`–`$3` the range).
const COHORT: &str =
    "($1 IS NULL OR l.business_id = $1) AND l.created_at >= $2 AND l.created_at < $3";

fn q(sql: String, c: Cohort<'_>) -> Q {
    Q::new(sql).bind(c.business).bind(c.from).bind(c.to)
}

/// Leads → called → connected → qualified (a call tagged hot or warm) → handed off.
#[derive(Debug, Default, FromRow, Serialize, utoipa::ToSchema)]
pub struct Funnel {
    pub leads: i64,
    pub called: i64,
    pub connected: i64,
    pub qualified: i64,
    pub handed_off: i64,
}

/// The cohort's funnel.
pub async fn funnel(db: &Db, c: Cohort<'_>) -> Result<Funnel> {
    let sql = format!(
        "SELECT COUNT(*) AS leads, \
         CAST(COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM calls k WHERE k.lead_id = l.id \
           AND k.status = 'placed') THEN 1 ELSE 0 END), 0) AS BIGINT) AS called, \
         CAST(COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM calls k WHERE k.lead_id = l.id \
           AND k.outcome = 'connected') THEN 1 ELSE 0 END), 0) AS BIGINT) AS connected, \
         CAST(COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM calls k WHERE k.lead_id = l.id \
           AND k.tag IN ('hot', 'warm')) THEN 1 ELSE 0 END), 0) AS BIGINT) AS qualified, \
         CAST(COALESCE(SUM(CASE WHEN {handed_off} THEN 1 ELSE 0 END), 0) AS BIGINT) AS handed_off \
         FROM leads l WHERE {COHORT}",
        handed_off = runs::sql::subject_has_run_with_outcome("l.id", "'handed_off'"),
    );
    db.fetch_one(q(sql, c)).await
}

/// How the cohort's runs ended (`outcome`, runs), finished runs only.
pub async fn outcomes(db: &Db, c: Cohort<'_>) -> Result<Vec<(String, i64)>> {
    let sql = runs::sql::outcomes_of(&format!("SELECT l.id FROM leads l WHERE {COHORT}"));
    db.fetch_all(q(sql, c)).await
}

/// Scored calls per bucket of ten (`0` is 0–9, …, `9` is 90–100).
pub async fn score_buckets(db: &Db, c: Cohort<'_>) -> Result<Vec<(i64, i64)>> {
    let sql = format!(
        "SELECT CAST(CASE WHEN k.score >= 90 THEN 9 ELSE k.score / 10 END AS BIGINT) AS bucket, COUNT(*) \
         FROM calls k JOIN leads l ON l.id = k.lead_id WHERE k.score IS NOT NULL AND {COHORT} \
         GROUP BY 1 ORDER BY 1"
    );
    db.fetch_all(q(sql, c)).await
}

/// Calls placed by one agent, campaign or objective.
#[derive(Debug, FromRow, Serialize)]
pub struct Group {
    /// The agent key, campaign or objective (`null`: none, e.g. no campaign matched).
    pub key: Option<String>,
    pub calls: i64,
    pub connected: i64,
    #[serde(skip)]
    pub score_sum: i64,
    pub scored: i64,
}

/// What calls are grouped by.
#[derive(Clone, Copy, Debug)]
pub enum Dimension {
    Agent,
    Campaign,
    Objective,
}

/// The cohort's placed calls grouped by `dimension`.
pub async fn calls_by(db: &Db, c: Cohort<'_>, dimension: Dimension) -> Result<Vec<Group>> {
    let column = match dimension {
        Dimension::Agent => "k.agent",
        Dimension::Campaign => "k.campaign",
        Dimension::Objective => "k.objective",
    };
    let sql = format!(
        "SELECT {column} AS key, COUNT(*) AS calls, \
         CAST(COALESCE(SUM(CASE WHEN k.outcome = 'connected' THEN 1 ELSE 0 END), 0) AS BIGINT) \
           AS connected, \
         CAST(COALESCE(SUM(k.score), 0) AS BIGINT) AS score_sum, COUNT(k.score) AS scored \
         FROM calls k JOIN leads l ON l.id = k.lead_id WHERE k.status = 'placed' AND {COHORT} \
         GROUP BY {column} ORDER BY {column}"
    );
    db.fetch_all(q(sql, c)).await
}
