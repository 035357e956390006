//! What a backtest found: the tallies of every replayed decision, built in the order the
//! decisions were read so the same candidate over the same range gives the same report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Hook;
use crate::policy::{CallContext, FollowUpDecision, RouteAction, RouteDecision, Score};
use crate::scripting::sandbox::ScriptError;

/// Changed decisions kept as samples, at most.
pub const MAX_SAMPLES: usize = 50;

/// Distinct candidate errors kept, at most (the rest still count in `errors` per hook).
pub const MAX_ERRORS: usize = 20;

/// A backtest's findings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Report {
    /// Decisions replayed with both scripts.
    pub compared: u64,
    /// Of those, decided differently by the candidate.
    pub changed: u64,
    pub unchanged: u64,
    /// Decisions found but not replayed: their lead is gone or their recorded input unreadable.
    pub skipped: u64,
    /// The range held more decisions than the limit: the most recent were replayed.
    pub truncated: bool,
    /// Per hook.
    pub hooks: BTreeMap<Hook, HookTally>,
    /// How `route` decisions moved.
    pub routing: Routing,
    /// How `score` decisions moved.
    pub scoring: Scoring,
    /// Changed `follow_up` and `on_no_answer` actions: from → to, with how many.
    pub follow_ups: Vec<Move>,
    /// What the candidate raised (each time it did, the default decision was used), most
    /// frequent first.
    pub errors: Vec<ErrorCount>,
    /// The first changed decisions, newest first.
    pub samples: Vec<Sample>,
}

/// One hook's decisions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HookTally {
    pub compared: u64,
    pub changed: u64,
    pub unchanged: u64,
    /// Decisions where the candidate raised an error (and the default was used).
    pub errors: u64,
    /// Decisions the step recorded (context, route and score do), checked against the replay
    /// with the run's own version.
    pub checked: u64,
    /// Of those, the replay decided the same: fewer means inputs changed since (a lead edited)
    /// and the comparison is approximate for the rest.
    pub reproduced: u64,
}

/// Routing decisions that moved.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Routing {
    /// Leads called before that the candidate would not call.
    pub no_longer_called: u64,
    /// Leads not called before that the candidate would call.
    pub newly_called: u64,
    /// Called by both, after a different delay.
    pub another_time: u64,
    /// Called by both, by a different agent.
    pub another_agent: u64,
    /// Called by both, for a different objective.
    pub another_objective: u64,
}

/// Scores before and after.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Scoring {
    /// Scores in buckets of ten (0–9, 10–19, …, 90–100), as decided before.
    pub before: [u64; 10],
    /// The same with the candidate.
    pub after: [u64; 10],
    /// Every tag pair seen, unchanged ones included (`warm` → `warm`), by tag.
    pub tags: Vec<Move>,
}

/// Decisions that went from one value to another.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct Move {
    pub from: String,
    pub to: String,
    pub count: u64,
}

/// An error the candidate raised, with how often and the first run it raised it in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorCount {
    pub hook: Hook,
    /// The error, with the script's line and column.
    pub message: String,
    pub count: u64,
    pub run_id: String,
}

/// A changed decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Sample {
    pub run_id: String,
    pub lead_id: String,
    pub hook: Hook,
    /// When the decision was taken, RFC 3339 UTC.
    pub decided_at: String,
    /// The decision of the version the run used.
    #[schema(value_type = Object)]
    pub before: serde_json::Value,
    /// The candidate's.
    #[schema(value_type = Object)]
    pub after: serde_json::Value,
    /// The candidate's error, if it raised one (`after` is then the default decision).
    pub error: Option<String>,
}

/// One decision, as the run's version and the candidate took it.
#[derive(Clone, Debug)]
pub enum Pair {
    Context(CallContext, CallContext),
    Route(RouteDecision, RouteDecision),
    Score(Score, Score),
    FollowUp(FollowUpDecision, FollowUpDecision),
}

/// Where a replayed decision came from.
#[derive(Clone, Debug)]
pub struct Origin<'a> {
    pub hook: Hook,
    pub run_id: &'a str,
    pub lead_id: &'a str,
    /// Unix ms.
    pub decided_at: i64,
}

/// The report as it is being built.
#[derive(Debug, Default)]
pub struct Tally {
    report: Report,
    tags: BTreeMap<(String, String), u64>,
    follow_ups: BTreeMap<(String, String), u64>,
    /// By hook and message: count, first run, first seen (order of first sight).
    errors: BTreeMap<(Hook, String), (u64, String, usize)>,
}

fn bucket(score: u8) -> usize {
    usize::from(score / 10).min(9)
}

fn action(d: &FollowUpDecision) -> String {
    match d {
        FollowUpDecision::CallAgain { .. } => "call_again".into(),
        FollowUpDecision::HandOff { .. } => "hand_off".into(),
        FollowUpDecision::Stop { outcome } => format!("stop: {outcome}"),
        FollowUpDecision::OptOut { .. } => "opt_out".into(),
    }
}

fn delay(a: &RouteAction) -> Option<u64> {
    match a {
        RouteAction::CallNow => Some(0),
        RouteAction::CallAfter { secs } => Some(*secs),
        RouteAction::Never { .. } => None,
    }
}

impl Tally {
    /// Counts a decision the lead's absence or an unreadable input kept from being replayed.
    pub fn skip(&mut self) {
        self.report.skipped += 1;
    }

    /// Counts one replayed decision.
    /// `reproduced`: whether the replay with the run's version matched what the step recorded
    /// (`None`: it recorded nothing to check).
    pub fn add(
        &mut self,
        origin: Origin<'_>,
        pair: Pair,
        error: Option<ScriptError>,
        reproduced: Option<bool>,
    ) {
        let (changed, before, after) = match &pair {
            Pair::Context(b, a) => (b != a, json(b), json(a)),
            Pair::Route(b, a) => (b != a, json(b), json(a)),
            Pair::Score(b, a) => (b != a, json(b), json(a)),
            Pair::FollowUp(b, a) => (b != a, json(b), json(a)),
        };
        match pair {
            Pair::Route(b, a) => self.route(&b, &a),
            Pair::Score(b, a) => {
                self.report.scoring.before[bucket(b.value)] += 1;
                self.report.scoring.after[bucket(a.value)] += 1;
                *self.tags.entry((b.tag, a.tag)).or_default() += 1;
            }
            Pair::FollowUp(b, a) if changed => {
                *self.follow_ups.entry((action(&b), action(&a))).or_default() += 1;
            }
            Pair::FollowUp(..) | Pair::Context(..) => {}
        }
        let r = &mut self.report;
        let hook = r.hooks.entry(origin.hook).or_default();
        hook.compared += 1;
        r.compared += 1;
        if let Some(same) = reproduced {
            hook.checked += 1;
            hook.reproduced += u64::from(same);
        }
        if changed {
            hook.changed += 1;
            r.changed += 1;
        } else {
            hook.unchanged += 1;
            r.unchanged += 1;
        }
        if let Some(e) = &error {
            hook.errors += 1;
            let seen = self.errors.len();
            let entry = self
                .errors
                .entry((origin.hook, e.to_string()))
                .or_insert_with(|| (0, origin.run_id.to_owned(), seen));
            entry.0 += 1;
        }
        if changed && r.samples.len() < MAX_SAMPLES {
            r.samples.push(Sample {
                run_id: origin.run_id.to_owned(),
                lead_id: origin.lead_id.to_owned(),
                hook: origin.hook,
                decided_at: super::rfc3339(origin.decided_at),
                before,
                after,
                error: error.map(|e| e.to_string()),
            });
        }
    }

    fn route(&mut self, b: &RouteDecision, a: &RouteDecision) {
        let r = &mut self.report.routing;
        match (delay(&b.action), delay(&a.action)) {
            (Some(_), None) => r.no_longer_called += 1,
            (None, Some(_)) => r.newly_called += 1,
            (Some(x), Some(y)) => {
                r.another_time += u64::from(x != y);
                r.another_agent += u64::from(b.agent != a.agent);
                r.another_objective += u64::from(b.objective != a.objective);
            }
            (None, None) => {}
        }
    }

    /// The report, with `truncated` as given.
    pub fn finish(mut self, truncated: bool) -> Report {
        let moves = |m: BTreeMap<(String, String), u64>| {
            m.into_iter()
                .map(|((from, to), count)| Move { from, to, count })
                .collect()
        };
        self.report.scoring.tags = moves(self.tags);
        self.report.follow_ups = moves(self.follow_ups);
        let mut errors: Vec<_> = self.errors.into_iter().collect();
        errors
            .sort_by(|(_, (n1, _, seen1)), (_, (n2, _, seen2))| n2.cmp(n1).then(seen1.cmp(seen2)));
        self.report.errors = errors
            .into_iter()
            .take(MAX_ERRORS)
            .map(|((hook, message), (count, run_id, _))| ErrorCount {
                hook,
                message,
                count,
                run_id,
            })
            .collect();
        self.report.truncated = truncated;
        self.report
    }
}

fn json(v: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}
