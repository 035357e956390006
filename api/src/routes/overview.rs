//! `GET /api/v1/overview`: what happened in a time range, per business and overall — leads in,
//! calls placed and connected, runs by status and outcome, the score distribution, follow-ups
//! due and failures. The dashboard's overview charts read it.

use std::collections::BTreeMap;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use switchboard_engine::ids::{id_floor_at, now_ms};
use switchboard_engine::store::runs::{self, Tally};
use switchboard_workflows::store::calls;
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::error::ErrorBody;
use crate::extract::Query;
use crate::state::AppState;
use crate::tenant::Caller;
use crate::time::{parse_time, rfc3339};

/// Query of `GET /api/v1/overview`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverviewQuery {
    business: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The figures of one business (or of all).
#[derive(Default)]
struct Figures {
    leads: i64,
    calls: i64,
    placed: i64,
    connected: i64,
    statuses: BTreeMap<String, i64>,
    outcomes: BTreeMap<String, i64>,
    scores: [i64; 10],
    follow_ups_due: i64,
}

impl Figures {
    /// Adds another business' figures (for the overall ones).
    fn add(&mut self, other: &Figures) {
        self.leads += other.leads;
        self.calls += other.calls;
        self.placed += other.placed;
        self.connected += other.connected;
        self.follow_ups_due += other.follow_ups_due;
        for (k, v) in &other.statuses {
            *self.statuses.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.outcomes {
            *self.outcomes.entry(k.clone()).or_default() += v;
        }
        for (total, v) in self.scores.iter_mut().zip(other.scores) {
            *total += v;
        }
    }

    fn answer(&self) -> FiguresAnswer {
        let rate = if self.placed > 0 {
            self.connected as f64 / self.placed as f64
        } else {
            0.0
        };
        FiguresAnswer {
            leads: self.leads,
            calls: self.calls,
            calls_placed: self.placed,
            connected: self.connected,
            connect_rate: (rate * 1000.0).round() / 1000.0,
            by_status: self.statuses.clone(),
            outcomes: self.outcomes.clone(),
            failures: self.statuses.get("failed").copied().unwrap_or(0),
            follow_ups_due: self.follow_ups_due,
            score_distribution: self.scores,
        }
    }
}

/// What happened in the range, for one business or all.
#[derive(Debug, Serialize, ToSchema)]
pub struct FiguresAnswer {
    /// Leads in (runs started).
    pub leads: i64,
    pub calls: i64,
    pub calls_placed: i64,
    pub connected: i64,
    /// `connected / calls_placed`, to three decimals (0 without calls).
    pub connect_rate: f64,
    /// Runs per status.
    pub by_status: BTreeMap<String, i64>,
    /// Runs per outcome.
    pub outcomes: BTreeMap<String, i64>,
    /// Runs failed.
    pub failures: i64,
    /// Runs waiting on a follow-up timer.
    pub follow_ups_due: i64,
    /// Scored calls in ten buckets: 0–9, 10–19, …, 90–100.
    pub score_distribution: [i64; 10],
}

/// One business' figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct BusinessFigures {
    pub id: String,
    #[serde(flatten)]
    pub figures: FiguresAnswer,
}

/// Answer of `GET /api/v1/overview`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Overview {
    /// RFC 3339.
    pub from: String,
    pub to: String,
    pub overall: FiguresAnswer,
    pub businesses: Vec<BusinessFigures>,
}

/// `GET /api/v1/overview?business=&from=&to=` (default: the last 7 days).
#[utoipa::path(
    get, path = "/api/v1/overview", tag = "runs", operation_id = "overview",
    params(("business" = Option<String>, Query, description = "Business id"), ("from" = Option<String>, Query, format = DateTime, description = "From (RFC 3339; default 7 days ago)"), ("to" = Option<String>, Query, format = DateTime, description = "To (RFC 3339; default now)")),
    responses((status = 200, description = "The range's figures, overall and per business", body = Overview), (status = 422, description = "Invalid time", body = ErrorBody))
)]
pub async fn overview(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<OverviewQuery>,
) -> ApiResult<axum::Json<Overview>> {
    let now = now_ms();
    let to = parse_time("to", q.to.as_deref())?.unwrap_or(now + 1);
    let from = parse_time("from", q.from.as_deref())?.unwrap_or(now - 7 * 86_400_000);
    let only = caller.scope(q.business)?;
    let db = state.engine.db();
    let (since, before) = (id_floor_at(from), id_floor_at(to));
    let (statuses, outcomes, waits, call_rows) = futures::try_join!(
        runs::tally(db, Tally::Status, &since, &before),
        runs::tally(db, Tally::Outcome, &since, &before),
        runs::tally(db, Tally::WaitKind, &since, &before),
        calls::tally(db, from, to),
    )?;
    let mut per: BTreeMap<String, Figures> = BTreeMap::new();
    let wanted = |b: &str| only.as_deref().is_none_or(|o| o == b);
    for (business, status, n) in statuses.into_iter().filter(|r| wanted(&r.0)) {
        let f = per.entry(business).or_default();
        f.leads += n;
        *f.statuses.entry(status.unwrap_or_default()).or_default() += n;
    }
    for (business, outcome, n) in outcomes.into_iter().filter(|r| wanted(&r.0)) {
        if let Some(outcome) = outcome {
            *per.entry(business)
                .or_default()
                .outcomes
                .entry(outcome)
                .or_default() += n;
        }
    }
    for (business, kind, n) in waits.into_iter().filter(|r| wanted(&r.0)) {
        if kind.as_deref() == Some("timer") {
            per.entry(business).or_default().follow_ups_due += n;
        }
    }
    for row in call_rows.into_iter().filter(|r| wanted(&r.business_id)) {
        let f = per.entry(row.business_id).or_default();
        f.calls += row.calls;
        f.placed += row.placed;
        f.connected += row.connected;
        if let Some(b) = row.bucket {
            f.scores[b.clamp(0, 9) as usize] += row.calls;
        }
    }
    let mut overall = Figures::default();
    for f in per.values() {
        overall.add(f);
    }
    let businesses = per
        .iter()
        .map(|(id, f)| BusinessFigures {
            id: id.clone(),
            figures: f.answer(),
        })
        .collect();
    Ok(axum::Json(Overview {
        from: rfc3339(from),
        to: rfc3339(to),
        overall: overall.answer(),
        businesses,
    }))
}
