//! Decisions through a business' script: run the hook if the script defines it, parse its
//! decision strictly, and fall back to the documented default — with the script error — if it
//! fails. A run uses the script version it was pinned to when it started.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use switchboard_engine::store::Db;
use switchboard_engine::{EngineError, StepContext};

use super::clock::BusinessClock;
use super::defaults;
use super::{CallContext, FollowUpDecision, LeadView, RouteAction, RouteDecision, RunView, Score};
use crate::business::Business;
use crate::lead::Lead;
use crate::providers::openai::CallAnalysis;
use crate::scripting::decisions::{
    ContextChoice, FollowUpChoice, ObjectivesChoice, RouteChoice, ScoreChoice, TerminologyChoice,
};
use crate::scripting::host::{Compiled, HookArgs, ScriptHost};
use crate::scripting::host_api::{HistoryEntry, HostEnv, parse_time};
use crate::scripting::sandbox::{ScriptError, script_name};
use crate::store;

/// The furthest ahead a script may schedule a call.
pub const MAX_DELAY_SECS: u64 = 366 * 86_400;

fn delay_secs(hook: &str, minutes: u64) -> Result<u64, String> {
    match minutes.checked_mul(60) {
        Some(secs) if secs <= MAX_DELAY_SECS => Ok(secs),
        _ => Err(format!(
            "{hook}() asked for a delay of {minutes} minutes; the most is {} (366 days)",
            MAX_DELAY_SECS / 60
        )),
    }
}

/// A decision, what the script logged while taking it, and the script error if it fell back.
#[derive(Clone, Debug, PartialEq)]
pub struct Decided<T> {
    /// The decision taken (the script's, or the default).
    pub value: T,
    /// Lines the script logged.
    pub log: Vec<String>,
    /// Why the default was used although the script defines the hook.
    pub error: Option<ScriptError>,
}

impl<T> Decided<T> {
    /// Writes the log and any script error to the step's timeline entry, and returns the value.
    pub fn record(self, ctx: &StepContext) -> T {
        for line in self.log {
            ctx.log(line);
        }
        if let Some(e) = self.error {
            ctx.log("the script failed: the default decision was used");
            ctx.fell_back(e.to_string());
        }
        self.value
    }
}

/// Process-wide: the script host, the database and the clock.
pub struct Policy {
    host: Arc<ScriptHost>,
    db: Db,
    clock: BusinessClock,
}

impl Policy {
    /// A policy over `host`, reading pins and history from `db`.
    pub fn new(host: Arc<ScriptHost>, db: Db) -> Self {
        Policy {
            host,
            db,
            clock: BusinessClock::system(),
        }
    }

    /// Decides by `clock` instead of the system clock (tests and demos of time-dependent
    /// routing).
    pub fn with_clock(mut self, clock: BusinessClock) -> Self {
        self.clock = clock;
        self
    }

    /// The script host.
    pub fn host(&self) -> &Arc<ScriptHost> {
        &self.host
    }

    /// How far the policy's clock is from the system clock (zero unless set for tests or
    /// demos): attempts record system time, decisions saw this much later.
    pub fn clock_offset(&self) -> chrono::TimeDelta {
        self.clock.offset()
    }

    /// Now, by the policy's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The decider for a step of run `run_id`: its pinned script version, the lead's history.
    pub async fn for_run(
        &self,
        run_id: &str,
        business: &Business,
        lead: &Lead,
        call_attempt: u32,
    ) -> Result<Decider, EngineError> {
        let name = script_name(&business.id);
        let (pinned, history) = futures::try_join!(
            store::scripts::pinned(&self.db, run_id),
            store::lead_history(&self.db, &lead.id)
        )?;
        let script = match pinned {
            None => Ok(None),
            Some((version, hash)) => match self.host.cached(&name, &hash) {
                Some(c) => Ok(Some(c)),
                None => match store::scripts::version(&self.db, &business.id, version).await? {
                    Some(v) => self.host.compile(&name, &v.source).await.map(Some),
                    None => Ok(None),
                },
            },
        };
        Ok(Decider::new(
            self.host.clone(),
            business,
            view(lead, call_attempt),
            script,
            self.now(),
            history,
            true,
        )
        .await)
    }

    /// A decider for an unsaved `source` (dry runs): `Err` if it does not compile.
    pub async fn for_source(
        &self,
        business: &Business,
        lead: LeadView,
        source: &str,
        history: Vec<HistoryEntry>,
    ) -> Result<Decider, ScriptError> {
        let script = self
            .host
            .compile_once(&script_name(&business.id), source)
            .await?;
        Ok(Decider::new(
            self.host.clone(),
            business,
            lead,
            Ok(Some(script)),
            self.now(),
            history,
            true,
        )
        .await)
    }
}

/// The lead as hooks see it.
pub fn view(lead: &Lead, call_attempt: u32) -> LeadView {
    LeadView {
        id: lead.id.clone(),
        name: lead.name.clone(),
        phone: lead.phone.as_str().to_owned(),
        email: lead.email.clone(),
        source: lead.source.clone(),
        fields: lead.custom_fields.clone(),
        created_at: DateTime::from_timestamp_millis(lead.created_at)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        call_attempt,
    }
}

/// The decisions about one lead with one script version.
pub struct Decider {
    host: Arc<ScriptHost>,
    /// The business, with the script's terminology and objectives applied.
    business: Business,
    lead: LeadView,
    script: Result<Option<Compiled>, ScriptError>,
    env: Arc<HostEnv>,
    /// What `terminology()` / `objectives()` logged or failed with; reported with every decision.
    preamble: Decided<()>,
    /// Script errors count in the metrics (not while a backtest replays decisions).
    live: bool,
}

impl Decider {
    /// The decisions about `lead` with `script`, at `now`, with the lead's `history`; `live`
    /// ones count their script errors in the metrics.
    pub(crate) async fn new(
        host: Arc<ScriptHost>,
        business: &Business,
        lead: LeadView,
        script: Result<Option<Compiled>, ScriptError>,
        now: DateTime<Utc>,
        history: Vec<HistoryEntry>,
        live: bool,
    ) -> Decider {
        let env = HostEnv::for_business(business, now, history, false);
        let mut d = Decider {
            host,
            business: business.clone(),
            lead,
            script,
            env: Arc::new(env),
            preamble: Decided {
                value: (),
                log: Vec::new(),
                error: None,
            },
            live,
        };
        let base = d.business.terminology.clone();
        let terms = d
            .hook::<TerminologyChoice, _, _>("terminology", (), Ok, || base)
            .await;
        let base = d.business.objectives.clone();
        let objectives = d
            .hook::<ObjectivesChoice, _, _>(
                "objectives",
                (),
                |o| match o.is_empty() {
                    true => Err("objectives() returned no objective".into()),
                    false => Ok(o),
                },
                || base,
            )
            .await;
        d.preamble.log = [terms.log, objectives.log].concat();
        d.preamble.error = terms.error.or(objectives.error);
        d.business.terminology = terms.value;
        d.business.objectives = objectives.value;
        Arc::make_mut(&mut d.env).terminology = d.business.terminology.clone();
        d
    }

    /// The business as decisions see it (terminology and objectives from the script).
    pub fn business(&self) -> &Business {
        &self.business
    }

    /// The script version's hash, if the run has a script.
    pub fn script_hash(&self) -> Option<&str> {
        self.script.as_ref().ok()?.as_ref().map(|c| c.hash.as_str())
    }

    /// Runs `hook` if defined, converting its parsed choice `C` with `convert`; otherwise, or if
    /// anything fails, `default()`.
    async fn hook<C, T, A>(
        &self,
        hook: &'static str,
        args: A,
        convert: impl FnOnce(C) -> Result<T, String>,
        default: impl FnOnce() -> T,
    ) -> Decided<T>
    where
        C: DeserializeOwned + Send + 'static,
        A: HookArgs,
    {
        let mut log = self.preamble.log.clone();
        let outcome: Result<Option<T>, ScriptError> = async {
            let script = match &self.script {
                Err(e) => return Err(e.clone()),
                Ok(None) => return Ok(None),
                Ok(Some(s)) => s,
            };
            match self
                .host
                .call::<C, A>(script, hook, args, &self.env)
                .await?
            {
                None => Ok(None),
                Some(r) => {
                    log.extend(r.log);
                    convert(r.decision)
                        .map(Some)
                        .map_err(|message| script.error_at(hook, message))
                }
            }
        }
        .await;
        let (value, error) = match outcome {
            Ok(Some(value)) => (value, self.preamble.error.clone()),
            Ok(None) => (default(), self.preamble.error.clone()),
            Err(e) => {
                if self.live {
                    crate::telemetry::script_error(&self.business.id, hook);
                }
                (default(), Some(e))
            }
        };
        Decided { value, log, error }
    }

    /// `context(lead, history)`: the prompt sections and first message.
    pub async fn context(&self) -> Decided<CallContext> {
        let b = &self.business;
        let args = (self.lead.clone(), self.env.history.clone());
        self.hook::<ContextChoice, _, _>(
            "context",
            args,
            |c| {
                Ok(CallContext {
                    sections: c.sections,
                    first_message: c.first_message,
                    dynamic_variables: defaults::variables(b, &self.lead),
                })
            },
            || defaults::context(b, &self.lead, &self.env.history),
        )
        .await
    }

    /// `route(lead)`: whether, when and with whom to call.
    pub async fn route(&self) -> Decided<RouteDecision> {
        self.hook::<RouteChoice, _, _>(
            "route",
            (self.lead.clone(),),
            |c| self.resolve_route(c),
            || defaults::route(&self.business, &self.lead, self.env.now),
        )
        .await
    }

    fn resolve_route(&self, choice: RouteChoice) -> Result<RouteDecision, String> {
        let b = &self.business;
        let campaign = b.campaign_for(self.lead.source.as_deref());
        let (action, agent, objective, priority, outside_hours) = match choice {
            RouteChoice::CallNow {
                agent,
                objective,
                priority,
                outside_hours,
            } => (
                RouteAction::CallNow,
                agent,
                objective,
                priority,
                outside_hours,
            ),
            RouteChoice::CallLater {
                delay_minutes,
                agent,
                objective,
                priority,
                outside_hours,
            } => (
                RouteAction::CallAfter {
                    secs: delay_secs("route", delay_minutes)?,
                },
                agent,
                objective,
                priority,
                outside_hours,
            ),
            RouteChoice::CallAt {
                at,
                agent,
                objective,
                priority,
                outside_hours,
            } => {
                let at = parse_time(self.env.tz, &at).map_err(|e| format!("route(): {e}"))?;
                let secs = super::secs_until(at, self.env.now);
                if secs > MAX_DELAY_SECS {
                    return Err("route() asked to call more than 366 days ahead".into());
                }
                let action = RouteAction::CallAfter { secs };
                (action, agent, objective, priority, outside_hours)
            }
            RouteChoice::Never { reason } => {
                (RouteAction::Never { reason }, None, None, None, false)
            }
        };
        let (default_agent, default_objective) = defaults::target(b, campaign, &self.lead.id);
        let agent = agent.unwrap_or(default_agent);
        if !b.agents.contains_key(&agent) {
            return Err(format!(
                "route() chose agent {agent:?}, which is not one of {:?}",
                b.agents.keys().collect::<Vec<_>>()
            ));
        }
        let objective = objective.unwrap_or(default_objective);
        if b.objective(&objective).is_none() {
            return Err(format!(
                "route() chose objective {objective:?}, which is not one of {:?}",
                b.objectives.iter().map(|o| &o.name).collect::<Vec<_>>()
            ));
        }
        let priority = priority.unwrap_or(5);
        if priority > 10 {
            return Err(format!(
                "route() chose priority {priority}; it must be 0–10"
            ));
        }
        Ok(RouteDecision {
            outside_hours,
            ..defaults::routed(
                b,
                action,
                &agent,
                objective,
                priority,
                campaign.map(|c| c.name.clone()),
            )
        })
    }

    /// `score(lead, analysis)`.
    pub async fn score(&self, analysis: &CallAnalysis) -> Decided<Score> {
        self.hook::<ScoreChoice, _, _>(
            "score",
            (self.lead.clone(), analysis.clone()),
            |c| {
                if c.score > 100 {
                    return Err(format!(
                        "score() returned score {}; it must be 0–100",
                        c.score
                    ));
                }
                Ok(Score {
                    value: c.score,
                    tag: serde_json::to_value(c.tag)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    reasons: c.reasons,
                })
            },
            || defaults::score(&self.business, analysis),
        )
        .await
    }

    /// `follow_up(run)` after a scored call.
    pub async fn follow_up(&self, run: RunView) -> Decided<FollowUpDecision> {
        let default = || defaults::follow_up(&self.business, &run);
        self.hook::<FollowUpChoice, _, _>("follow_up", (run.clone(),), follow_up, default)
            .await
    }

    /// `on_no_answer(run)` after a call that did not connect.
    pub async fn on_no_answer(&self, run: RunView) -> Decided<FollowUpDecision> {
        let default = || defaults::on_no_answer(&self.business, &run);
        self.hook::<FollowUpChoice, _, _>("on_no_answer", (run.clone(),), follow_up, default)
            .await
    }

    /// The terminology and objectives in effect, with what the script logged deciding them.
    pub fn preamble(&self) -> &Decided<()> {
        &self.preamble
    }
}

fn follow_up(c: FollowUpChoice) -> Result<FollowUpDecision, String> {
    Ok(match c {
        FollowUpChoice::CallAgain { delay_minutes } => FollowUpDecision::CallAgain {
            after_secs: delay_secs("follow_up", delay_minutes)?,
        },
        FollowUpChoice::HandOff { reason } => FollowUpDecision::HandOff { reason },
        FollowUpChoice::Stop { outcome } => {
            let ok = (1..=64).contains(&outcome.len())
                && outcome
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return Err(format!(
                    "stop outcome {outcome:?} must be 1–64 characters of a-z, 0-9 and _"
                ));
            }
            FollowUpDecision::Stop { outcome }
        }
        FollowUpChoice::OptOut { reason } => {
            let reason = reason.unwrap_or_else(|| "the business' script opted the lead out".into());
            if reason.chars().count() > 500 {
                return Err("opt_out reason must be at most 500 characters".into());
            }
            FollowUpDecision::OptOut { reason }
        }
    })
}
