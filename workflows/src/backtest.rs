//! Policy backtest: what a candidate script would have decided on a business' recorded
//! decisions. Every decision a step of `lead_call` took through a hook (`context`, `route`,
//! `score`, `follow_up`, `on_no_answer`) is taken again twice, on the inputs the step recorded:
//! the lead, the call's analysis and outcome, the lead's call history as it stood at that moment,
//! the clock at that moment (when the attempt started, on the policy's clock) and the
//! configuration version the run was pinned to. Once with the script version the run was pinned to, once with the candidate, both
//! under the sandbox's limits; the two are compared into a [`Report`].
//!
//! Replaying both sides, rather than comparing with what was stored, leaves the script as the
//! only difference: a lead edited since (an import that updated it) looks the same to both.
//! Each decision is replayed on its own inputs: a changed score does not feed the replay of the
//! same call's follow-up. Read-only: no run, lead or script changes.
//!
//! Where a step recorded its decision (context, route, score), the replay with the run's own
//! version is checked against it: the report says how many were reproduced, so an author sees
//! how far the replay can be trusted (a lead edited since is the usual reason it cannot).

pub mod jobs;
mod report;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use switchboard_engine::EngineError;
use switchboard_engine::store::Db;
use switchboard_engine::store::steps::{self, StepRow};

pub use report::{ErrorCount, HookTally, Move, Report, Routing, Sample, Scoring};
use report::{Origin, Pair, Tally};

use crate::business::Business;
use crate::lead::Lead;
use crate::lead_call::{AnalysedCall, CallAttempt, CallPlan, CallResult, Contextualised, Outcome};
use crate::policy::{
    CallContext, Decider, FollowUpDecision, Policy, RouteDecision, RunView, Score, script_name,
    view,
};
use crate::providers::openai::CallAnalysis;
use crate::scripting::host::{Compiled, ScriptHost};
use crate::scripting::host_api::HistoryEntry;
use crate::scripting::sandbox::ScriptError;
use crate::store::{self, calls};

/// Decisions replayed when the request says no limit.
pub const DEFAULT_LIMIT: u32 = 10_000;

/// Decisions one backtest may replay, at most.
pub const MAX_LIMIT: u32 = 100_000;

/// How far back a backtest reads when the request gives no start.
pub const DEFAULT_DAYS: i64 = 30;

/// Decisions read per query (progress is reported after each page).
const PAGE: usize = 500;

/// Decisions replayed at once (each waits its turn on the script threads).
const CONCURRENCY: usize = 16;

/// A hook a backtest replays.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    Context,
    Route,
    Score,
    FollowUp,
    OnNoAnswer,
}

impl Hook {
    /// Every hook, in pipeline order.
    pub const ALL: [Hook; 5] = [
        Hook::Context,
        Hook::Route,
        Hook::Score,
        Hook::FollowUp,
        Hook::OnNoAnswer,
    ];

    /// The hook's name in scripts and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Context => "context",
            Hook::Route => "route",
            Hook::Score => "score",
            Hook::FollowUp => "follow_up",
            Hook::OnNoAnswer => "on_no_answer",
        }
    }

    /// The step that takes this hook's decisions.
    fn step(self) -> &'static str {
        match self {
            Hook::Context => "build_context",
            Hook::Route => "route",
            Hook::Score => "score",
            Hook::FollowUp | Hook::OnNoAnswer => "follow_up",
        }
    }
}

/// What to replay: the decisions taken in `[from, to)` by `hooks`, the most recent `limit`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Request {
    #[schema(value_type = String, format = DateTime)]
    pub from: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub to: DateTime<Utc>,
    pub hooks: BTreeSet<Hook>,
    pub limit: u32,
}

/// RFC 3339 UTC, to the second, of a unix-ms time.
fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `at` on the policy's clock as unix ms on the system clock the tables record.
fn system_ms(at: DateTime<Utc>, clock_offset: chrono::TimeDelta) -> i64 {
    at.timestamp_millis()
        .saturating_sub(clock_offset.num_milliseconds())
}

/// One recorded decision, ready to replay.
struct Recorded {
    hook: Hook,
    run_id: String,
    lead_id: String,
    call_attempt: u32,
    /// When the step's attempt started (unix ms, the system clock the tables record).
    started_at: i64,
    /// The same on the policy's clock: the clock both sides see.
    decided_at: i64,
    replay: Replay,
    /// The decision as the step recorded it, where it did.
    made: Option<Made>,
}

/// A decision as a step recorded it (in the input it handed the next step, or its log).
enum Made {
    Context(CallContext),
    Route(RouteDecision),
    Score(Score),
    FollowUp(FollowUpDecision),
}

/// The follow-up decision the `follow_up` step logged (`decision: {…}`, its last line: a
/// script's own lines come before it), if it took one.
fn logged_decision(row: &StepRow) -> Option<FollowUpDecision> {
    let lines: Vec<String> = serde_json::from_str(row.log.as_deref()?).ok()?;
    let line = lines.iter().rev().find(|l| l.starts_with("decision: "))?;
    serde_json::from_str(&line["decision: ".len()..]).ok()
}

/// The hook's own input, as the step recorded it.
enum Replay {
    Context,
    Route,
    Score(CallAnalysis),
    /// After the call: `connected` with its score, or why it did not connect.
    AfterCall {
        outcome: String,
        score: Option<Score>,
    },
}

impl Recorded {
    /// The decision attempt `row` took, if it is one of `hooks` (`Err` if its input does not
    /// read: such a decision is counted as skipped).
    fn of(
        row: &StepRow,
        hooks: &BTreeSet<Hook>,
        clock_offset: chrono::TimeDelta,
    ) -> Result<Option<Recorded>, serde_json::Error> {
        // What the step handed on, when it is the next step's input (not a wait or an end).
        fn handed<T: serde::de::DeserializeOwned>(row: &StepRow) -> Option<T> {
            serde_json::from_str(row.output.as_deref()?).ok()
        }
        let made;
        let (hook, lead_id, call_attempt, replay) = match row.name.as_str() {
            "build_context" => {
                let i: CallAttempt = serde_json::from_str(&row.input)?;
                made = handed::<Contextualised>(row).map(|o| Made::Context(o.context));
                (Hook::Context, i.lead_id, i.call_attempt, Replay::Context)
            }
            "route" => {
                let i: Contextualised = serde_json::from_str(&row.input)?;
                made = handed::<CallPlan>(row).map(|o| Made::Route(o.route));
                (Hook::Route, i.lead_id, i.call_attempt, Replay::Route)
            }
            "score" => {
                let i: AnalysedCall = serde_json::from_str(&row.input)?;
                made = handed::<CallResult>(row).and_then(|o| match o.result {
                    Outcome::Scored { score } => Some(Made::Score(score)),
                    _ => None,
                });
                let replay = Replay::Score(i.analysis);
                (Hook::Score, i.lead_id, i.call_attempt, replay)
            }
            "follow_up" => {
                // Only an attempt that took its decision (a number found on the do-not-call
                // list ends the run before the hook is asked); it logged what it decided.
                let Some(decided) = logged_decision(row) else {
                    return Ok(None);
                };
                made = Some(Made::FollowUp(decided));
                let i: CallResult = serde_json::from_str(&row.input)?;
                let (hook, outcome, score) = match i.result {
                    Outcome::Scored { score } => (Hook::FollowUp, "connected".into(), Some(score)),
                    Outcome::NotConnected { reason } => {
                        (Hook::OnNoAnswer, reason.as_str().to_owned(), None)
                    }
                    // The business' rule decided, not the script.
                    Outcome::Unanalysed { .. } => return Ok(None),
                };
                let replay = Replay::AfterCall { outcome, score };
                (hook, i.lead_id, i.call_attempt, replay)
            }
            _ => return Ok(None),
        };
        Ok(hooks.contains(&hook).then(|| Recorded {
            hook,
            run_id: row.run_id.clone(),
            lead_id,
            call_attempt,
            started_at: row.started_at.unwrap_or_default(),
            decided_at: row.started_at.unwrap_or_default() + clock_offset.num_milliseconds(),
            replay,
            made,
        }))
    }

    /// The lead's calls as the step saw them: those placed by then, the latest
    /// [`calls::HISTORY_LEN`]. While scoring, the call being scored had no outcome yet.
    fn history(&self, placed: &[calls::PastCall]) -> Vec<HistoryEntry> {
        let mut seen: Vec<HistoryEntry> = placed
            .iter()
            .filter(|c| c.placed_at <= self.started_at)
            .map(|c| {
                let mut e = c.entry.clone();
                let this_call =
                    e.run_id == self.run_id && e.attempt == i64::from(self.call_attempt);
                if this_call && self.hook == Hook::Score {
                    (e.outcome, e.score, e.tag) = (None, None, None);
                }
                e
            })
            .collect();
        let cut = seen.len().saturating_sub(calls::HISTORY_LEN);
        seen.drain(..cut);
        seen
    }
}

/// What one page of decisions needs besides the step rows.
struct PageData {
    leads: HashMap<String, Lead>,
    calls: HashMap<String, Vec<calls::PastCall>>,
    /// Run → its script and configuration versions.
    script_pins: HashMap<String, i64>,
    config_pins: HashMap<String, i64>,
}

/// A candidate script replayed over one business' recorded decisions.
pub struct Backtest {
    host: Arc<ScriptHost>,
    db: Db,
    /// The business as configured now (for runs that predate configuration versions).
    business: Business,
    candidate: Compiled,
    request: Request,
    /// The policy's clock less the system clock, which attempts record.
    clock_offset: chrono::TimeDelta,
    /// Script versions by number, compiled (on the backtest's lane).
    scripts: tokio::sync::Mutex<HashMap<i64, Result<Option<Compiled>, ScriptError>>>,
    /// Configuration versions by number.
    configs: tokio::sync::Mutex<HashMap<i64, Business>>,
    /// The attempts in range, newest first: `(started_at, id)`.
    attempts: tokio::sync::OnceCell<Vec<(i64, String)>>,
}

impl Backtest {
    /// A backtest of `source` for `business`; `Err` if the candidate does not compile. The
    /// caller checks it first as a new version is checked (a backtest runs hooks, not tests).
    pub async fn new(
        policy: &Policy,
        db: Db,
        business: Business,
        source: &str,
        request: Request,
    ) -> Result<Backtest, ScriptError> {
        let host = policy.host().clone();
        let candidate = host
            .compile_once(&script_name(&business.id), source)
            .await?
            .on_lane(&lane(&business.id));
        Ok(Backtest {
            host,
            db,
            business,
            candidate,
            request,
            clock_offset: policy.clock_offset(),
            scripts: Default::default(),
            configs: Default::default(),
            attempts: Default::default(),
        })
    }

    /// The candidate's hash.
    pub fn candidate_hash(&self) -> &str {
        &self.candidate.hash
    }

    /// The attempts in range (read once), newest first.
    async fn attempts(&self) -> Result<&[(i64, String)], EngineError> {
        let read = self.attempts.get_or_try_init(|| async {
            let steps: BTreeSet<_> = self.request.hooks.iter().map(|h| h.step()).collect();
            let steps: Vec<&str> = steps.into_iter().collect();
            let which = steps::OfBusiness {
                business_id: &self.business.id,
                steps: &steps,
                from: system_ms(self.request.from, self.clock_offset),
                to: system_ms(self.request.to, self.clock_offset),
            };
            let keep = self.request.limit as usize + 1;
            steps::of_business(&self.db, &which, keep).await
        });
        Ok(read.await?.as_slice())
    }

    /// How many attempts will be replayed, and whether the range holds more than the limit.
    pub async fn total(&self) -> Result<(u64, bool), EngineError> {
        let found = self.attempts().await?.len() as u64;
        let limit = u64::from(self.request.limit);
        Ok((found.min(limit), found > limit))
    }

    /// Replays every decision in range, newest first, calling `progress` with how many were
    /// read after each page; the report.
    pub async fn run<F, Fut>(&self, mut progress: F) -> Result<Report, EngineError>
    where
        F: FnMut(u64) -> Fut,
        Fut: std::future::Future<Output = Result<(), EngineError>>,
    {
        let (total, truncated) = self.total().await?;
        let attempts = &self.attempts().await?[..total as usize];
        let mut tally = Tally::default();
        let mut read = 0;
        for page in attempts.chunks(PAGE) {
            let ids: Vec<&str> = page.iter().map(|(_, id)| id.as_str()).collect();
            let rows = steps::by_ids(&self.db, &ids).await?;
            // An attempt erased since (its lead was) is not there to replay.
            (rows.len()..ids.len()).for_each(|_| tally.skip());
            self.replay_page(&rows, &mut tally).await?;
            read += page.len() as u64;
            progress(read).await?;
        }
        Ok(tally.finish(truncated))
    }

    async fn replay_page(&self, rows: &[StepRow], tally: &mut Tally) -> Result<(), EngineError> {
        let mut recorded = Vec::with_capacity(rows.len());
        for row in rows {
            match Recorded::of(row, &self.request.hooks, self.clock_offset) {
                Ok(Some(r)) => recorded.push(r),
                Ok(None) => {}
                Err(_) => tally.skip(),
            }
        }
        let data = self.page_data(&recorded).await?;
        // Built up front: a stream mapping borrowed decisions to futures trips the compiler's
        // higher-ranked lifetime inference once the whole thing is spawned.
        let pending: Vec<_> = recorded.iter().map(|r| self.replay(r, &data)).collect();
        let replayed: Vec<_> = futures::stream::iter(pending)
            .buffered(CONCURRENCY)
            .collect()
            .await;
        for (r, outcome) in recorded.iter().zip(replayed) {
            match outcome? {
                None => tally.skip(),
                Some((pair, error)) => {
                    let origin = Origin {
                        hook: r.hook,
                        run_id: &r.run_id,
                        lead_id: &r.lead_id,
                        decided_at: r.decided_at,
                    };
                    let reproduced = r.made.as_ref().map(|made| pair.reproduces(made));
                    tally.add(origin, pair, error, reproduced);
                }
            }
        }
        Ok(())
    }

    async fn page_data(&self, recorded: &[Recorded]) -> Result<PageData, EngineError> {
        let distinct = |f: fn(&Recorded) -> &str| -> Vec<&str> {
            let set: BTreeSet<&str> = recorded.iter().map(f).collect();
            set.into_iter().collect()
        };
        let (runs, leads) = (distinct(|r| &r.run_id), distinct(|r| &r.lead_id));
        let (leads, calls, script_pins, config_pins) = futures::try_join!(
            store::leads_by_id(&self.db, &leads),
            calls::calls_of_leads(&self.db, &leads),
            store::scripts::pinned_runs(&self.db, &runs),
            store::configs::pinned_runs(&self.db, &runs),
        )?;
        let data = PageData {
            // Another business' lead is never replayed, whatever a run's input says.
            leads: leads
                .into_iter()
                .filter(|(_, l)| l.business_id == self.business.id)
                .collect(),
            calls,
            script_pins,
            config_pins,
        };
        self.load_versions(&data).await?;
        Ok(data)
    }

    /// Compiles the script versions and reads the configuration versions the page's runs use
    /// that earlier pages did not.
    async fn load_versions(&self, data: &PageData) -> Result<(), EngineError> {
        let id = &self.business.id;
        let mut scripts = self.scripts.lock().await;
        for &v in data.script_pins.values() {
            if scripts.contains_key(&v) {
                continue;
            }
            let compiled = match store::scripts::version(&self.db, id, v).await? {
                None => Ok(None),
                Some(s) => self
                    .host
                    .compile(&script_name(id), &s.source)
                    .await
                    .map(|c| Some(c.on_lane(&lane(id)))),
            };
            scripts.insert(v, compiled);
        }
        let mut configs = self.configs.lock().await;
        for &v in data.config_pins.values() {
            if configs.contains_key(&v) {
                continue;
            }
            if let Some(c) = store::configs::version(&self.db, id, v).await? {
                configs.insert(v, c.config);
            }
        }
        Ok(())
    }

    /// Both decisions for `r`, and the candidate's error; `None` if its lead is gone.
    async fn replay(
        &self,
        r: &Recorded,
        data: &PageData,
    ) -> Result<Option<(Pair, Option<ScriptError>)>, EngineError> {
        let Some(lead) = data.leads.get(&r.lead_id) else {
            return Ok(None);
        };
        let business = match data.config_pins.get(&r.run_id) {
            Some(v) => self.configs.lock().await.get(v).cloned(),
            None => None,
        }
        .unwrap_or_else(|| self.business.clone());
        let pinned = match data.script_pins.get(&r.run_id) {
            Some(v) => self
                .scripts
                .lock()
                .await
                .get(v)
                .cloned()
                .unwrap_or(Ok(None)),
            None => Ok(None),
        };
        let now = DateTime::from_timestamp_millis(r.decided_at).unwrap_or_default();
        let history = r.history(data.calls.get(&r.lead_id).map_or(&[], Vec::as_slice));
        let lead = view(lead, r.call_attempt);
        let decider = |script| {
            Decider::new(
                self.host.clone(),
                &business,
                lead.clone(),
                script,
                now,
                history.clone(),
                false,
            )
        };
        let (before, after) =
            futures::join!(decider(pinned), decider(Ok(Some(self.candidate.clone()))));
        Ok(Some(match &r.replay {
            Replay::Context => {
                let (b, a) = futures::join!(before.context(), after.context());
                (Pair::Context(b.value, a.value), a.error)
            }
            Replay::Route => {
                let (b, a) = futures::join!(before.route(), after.route());
                (Pair::Route(b.value, a.value), a.error)
            }
            Replay::Score(analysis) => {
                let (b, a) = futures::join!(before.score(analysis), after.score(analysis));
                (Pair::Score(b.value, a.value), a.error)
            }
            Replay::AfterCall { outcome, score } => {
                let max = business.calling.max_call_attempts;
                let run = RunView::after_call(r.run_id.clone(), max, lead, outcome, score.as_ref());
                let (b, a) = match r.hook {
                    Hook::FollowUp => {
                        futures::join!(before.follow_up(run.clone()), after.follow_up(run))
                    }
                    _ => futures::join!(before.on_no_answer(run.clone()), after.on_no_answer(run)),
                };
                (Pair::FollowUp(b.value, a.value), a.error)
            }
        }))
    }
}

impl Pair {
    /// Whether the run's own version, replayed, decided what the step recorded.
    fn reproduces(&self, made: &Made) -> bool {
        match (self, made) {
            (Pair::Context(before, _), Made::Context(m)) => before == m,
            (Pair::Route(before, _), Made::Route(m)) => before == m,
            (Pair::Score(before, _), Made::Score(m)) => before == m,
            (Pair::FollowUp(before, _), Made::FollowUp(m)) => before == m,
            _ => false,
        }
    }
}

/// The script threads' lane a business' backtests take turns in, beside its live decisions.
fn lane(business_id: &str) -> String {
    format!("{business_id} (backtest)")
}
