//! `GET /api/v1/analytics`: the funnel, outcomes, score distribution, and connect rate and
//! average score per agent, campaign and objective, for the leads created in a time range.

use axum::Json as JsonResponse;
use axum::extract::State;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchboard_workflows::store::analytics::{self, Cohort, Dimension, Funnel, Group};
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::error::ErrorBody;
use crate::extract::Query;
use crate::state::AppState;
use crate::tenant::Caller;
use crate::time::{parse_time, rfc3339};

/// Query of `GET /api/v1/analytics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyticsQuery {
    business: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// Answer of `GET /api/v1/analytics`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Analytics {
    /// The business, or `null` for all the caller may reach.
    pub business: Option<String>,
    /// RFC 3339: leads created at or after.
    pub from: String,
    /// RFC 3339: leads created before.
    pub to: String,
    pub funnel: Funnel,
    /// Runs per outcome.
    pub outcomes: BTreeMap<String, i64>,
    /// Scored calls in ten buckets: 0–9, 10–19, …, 90–100.
    pub score_distribution: [i64; 10],
    pub by_agent: Vec<CallGroup>,
    pub by_campaign: Vec<CallGroup>,
    pub by_objective: Vec<CallGroup>,
}

/// The calls of one agent, campaign or objective.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallGroup {
    /// The agent's key, the campaign's or the objective's name (`null`: calls without one).
    pub key: Option<String>,
    pub calls: i64,
    pub connected: i64,
    /// `connected / calls`; `null` without calls.
    pub connect_rate: Option<f64>,
    pub scored: i64,
    /// `null` without scored calls.
    pub average_score: Option<f64>,
}

fn groups(groups: Vec<Group>) -> Vec<CallGroup> {
    groups
        .into_iter()
        .map(|g| CallGroup {
            connect_rate: (g.calls > 0).then(|| g.connected as f64 / g.calls as f64),
            average_score: (g.scored > 0).then(|| g.score_sum as f64 / g.scored as f64),
            key: g.key,
            calls: g.calls,
            connected: g.connected,
            scored: g.scored,
        })
        .collect()
}

/// Analytics of the leads created in the range.
#[utoipa::path(
    get, path = "/api/v1/analytics", tag = "runs", operation_id = "analytics",
    params(
        ("business" = Option<String>, Query, description = "Business id (a business' key: its own; an operator without it: all)"),
        ("from" = Option<String>, Query, format = DateTime, description = "Leads created at or after (RFC 3339; default 30 days ago)"),
        ("to" = Option<String>, Query, format = DateTime, description = "Leads created before (RFC 3339; default now)"),
    ),
    responses(
        (status = 200, description = "The analytics of the leads created in the range", body = Analytics),
        (status = 404, description = "Not the caller's business", body = ErrorBody),
    )
)]
pub async fn analytics(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AnalyticsQuery>,
) -> ApiResult<JsonResponse<Analytics>> {
    let business = caller.scope(q.business)?;
    let now = switchboard_engine::ids::now_ms();
    let to = parse_time("to", q.to.as_deref())?.unwrap_or(now + 1);
    let from = parse_time("from", q.from.as_deref())?.unwrap_or(now - 30 * 86_400_000);
    let cohort = Cohort {
        business: business.as_deref(),
        from,
        to,
    };
    let db = state.engine.db();
    let (funnel, outcomes, buckets, agents, campaigns, objectives) = futures::try_join!(
        analytics::funnel(db, cohort),
        analytics::outcomes(db, cohort),
        analytics::score_buckets(db, cohort),
        analytics::calls_by(db, cohort, Dimension::Agent),
        analytics::calls_by(db, cohort, Dimension::Campaign),
        analytics::calls_by(db, cohort, Dimension::Objective),
    )?;
    let mut distribution = [0i64; 10];
    for (bucket, n) in buckets {
        distribution[bucket.clamp(0, 9) as usize] += n;
    }
    Ok(JsonResponse(Analytics {
        business,
        from: rfc3339(from),
        to: rfc3339(to),
        funnel,
        outcomes: outcomes.into_iter().collect(),
        score_distribution: distribution,
        by_agent: groups(agents),
        by_campaign: groups(campaigns),
        by_objective: groups(objectives),
    }))
}
