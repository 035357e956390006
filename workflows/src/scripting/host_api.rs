//! The host API scripts call: time in the business' timezone, opening hours, durations, the lead's
//! history, terminology, logging, and the fixtures and asserts of `fn test_*()`. Every function
//! is registered with its parameters and doc comment, and [`reference()`](fn@reference) is generated from them.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, SecondsFormat, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use rhai::{Array, Dynamic, Engine, EvalAltResult, FuncRegistration, INT, Map};
use serde::{Deserialize, Serialize};

use crate::business::{Business, Hours};
use crate::providers::openai::{CallAnalysis, CtaInteractions, Dimension, Level, Sentiment};

/// A previous call to the lead, as scripts see it in `history()`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// The run that placed it.
    pub run_id: String,
    /// The call's number in its run, from 1.
    pub attempt: i64,
    /// When it was placed, RFC 3339 UTC.
    pub at: String,
    /// `connected`, `no_answer`, `busy`, `voicemail`, `no_webhook`, `unknown`, or `()` while in
    /// progress.
    pub outcome: Option<String>,
    /// 0–100 when the call was scored.
    pub score: Option<i64>,
    /// `hot`, `warm`, `cold` or `disqualified` when scored.
    pub tag: Option<String>,
    /// What the call's analysis found, in two or three sentences, when it was analysed.
    #[serde(default)]
    pub summary: Option<String>,
}

/// What the host functions know during one hook call.
#[derive(Clone, Debug)]
pub struct HostEnv {
    /// The clock.
    pub now: DateTime<Utc>,
    /// The business' timezone.
    pub tz: Tz,
    /// Its opening hours (`None`: always open).
    pub hours: Option<Hours>,
    /// Its words for things.
    pub terminology: BTreeMap<String, String>,
    /// The lead's earlier calls, oldest first.
    pub history: Vec<HistoryEntry>,
    /// Whether `fn test_*()` functions are running (enables `set_clock`).
    pub testing: bool,
}

impl HostEnv {
    /// What hooks of `business` see at `now`, given the lead's earlier calls.
    pub fn for_business(
        business: &Business,
        now: DateTime<Utc>,
        history: Vec<HistoryEntry>,
        testing: bool,
    ) -> HostEnv {
        HostEnv {
            now,
            tz: business.tz(),
            hours: business.hours.clone(),
            terminology: business.terminology.clone(),
            history,
            testing,
        }
    }
}

thread_local! {
    static ENV: RefCell<Option<Arc<HostEnv>>> = const { RefCell::new(None) };
}

/// Runs `f` with `env` visible to the host functions. Call on a script thread.
pub fn with_env<T>(env: &Arc<HostEnv>, f: impl FnOnce() -> T) -> T {
    ENV.with(|e| *e.borrow_mut() = Some(env.clone()));
    let out = f();
    ENV.with(|e| *e.borrow_mut() = None);
    out
}

type Fallible<T> = Result<T, Box<EvalAltResult>>;

fn env<T>(f: impl FnOnce(&HostEnv) -> Fallible<T>) -> Fallible<T> {
    ENV.with(|e| match e.borrow().as_deref() {
        Some(env) => f(env),
        None => Err("this function needs a business context".into()),
    })
}

/// The environment to change (`set_clock`): copied on write, so callers' env stays as it was.
fn env_mut<T>(f: impl FnOnce(&mut HostEnv) -> Fallible<T>) -> Fallible<T> {
    ENV.with(|e| match e.borrow_mut().as_mut() {
        Some(env) => f(Arc::make_mut(env)),
        None => Err("this function needs a business context".into()),
    })
}

fn rfc3339(tz: Tz, at: DateTime<Utc>) -> String {
    at.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Parses RFC 3339, or a local time without offset (`2026-11-21T10:30`) in `tz`.
pub fn parse_time(tz: Tz, when: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(when) {
        return Ok(t.with_timezone(&Utc));
    }
    // A local time without offset, in the business' timezone.
    chrono::NaiveDateTime::parse_from_str(when, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(when, "%Y-%m-%dT%H:%M"))
        .ok()
        .and_then(|naive| crate::business::local_to_utc(tz, naive))
        .ok_or_else(|| {
            format!(
                "{when:?} is not a time like \"2026-11-21T10:30:00-05:00\" or \"2026-11-21T10:30\""
            )
        })
}

fn time_arg(tz: Tz, when: &str) -> Fallible<DateTime<Utc>> {
    parse_time(tz, when).map_err(Into::into)
}

fn to_dynamic<T: Serialize>(v: &T) -> Fallible<Dynamic> {
    rhai::serde::to_dynamic(v)
}

fn since(when: &str, unit: i64) -> Fallible<INT> {
    env(|e| Ok((e.now - time_arg(e.tz, when)?).num_seconds() / unit))
}

/// The clock used by `fn test_*()` unless a test sets another: Monday 2026-01-05, 10:00 local.
pub fn test_clock(tz: Tz) -> DateTime<Utc> {
    tz.with_ymd_and_hms(2026, 1, 5, 10, 0, 0)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now)
}

/// Registers one documented host function.
macro_rules! host_fn {
    ($engine:expr, $name:literal, [$($param:literal),*], $doc:literal, $f:expr) => {
        FuncRegistration::new($name)
            .with_params_info([$($param),*])
            .with_comments([concat!("/// ", $doc)])
            .register_into_engine($engine, $f);
    };
}

/// Registers the host API on `engine`.
pub fn register(engine: &mut Engine) {
    // Time.
    host_fn!(
        engine,
        "now",
        ["String"],
        "The current time in the business' timezone, RFC 3339: `2026-11-21T10:30:00-05:00`.",
        || env(|e| Ok(rfc3339(e.tz, e.now)))
    );
    host_fn!(
        engine,
        "today",
        ["String"],
        "Today's date in the business' timezone: `2026-11-21`.",
        || env(|e| Ok(e.now.with_timezone(&e.tz).format("%Y-%m-%d").to_string()))
    );
    host_fn!(
        engine,
        "weekday",
        ["String"],
        "Today's weekday in the business' timezone: `mon` … `sun`.",
        || env(|e| Ok(e
            .now
            .with_timezone(&e.tz)
            .weekday()
            .to_string()
            .to_lowercase()))
    );
    host_fn!(
        engine,
        "local_hour",
        ["INT"],
        "The hour (0–23) in the business' timezone.",
        || env(|e| Ok(e.now.with_timezone(&e.tz).hour() as INT))
    );
    host_fn!(
        engine,
        "local_minute",
        ["INT"],
        "The minute (0–59) in the business' timezone.",
        || env(|e| Ok(e.now.with_timezone(&e.tz).minute() as INT))
    );
    // Opening hours.
    host_fn!(
        engine,
        "is_open",
        ["bool"],
        "Whether the business is open now (always, if it has no `[hours]`).",
        || env(|e| Ok(e.hours.as_ref().is_none_or(|h| h.is_open(e.tz, e.now))))
    );
    host_fn!(
        engine,
        "is_open_at",
        ["when: String", "bool"],
        "Whether the business is open at `when` (RFC 3339, or local `2026-11-21T10:30`).",
        |when: &str| env(|e| {
            let at = time_arg(e.tz, when)?;
            Ok(e.hours.as_ref().is_none_or(|h| h.is_open(e.tz, at)))
        })
    );
    host_fn!(
        engine,
        "next_opening",
        ["String"],
        "When the business next opens (now if open), RFC 3339 local; `\"\"` if it never opens.",
        || env(|e| Ok(match &e.hours {
            None => rfc3339(e.tz, e.now),
            Some(h) => h
                .next_opening(e.tz, e.now)
                .map(|t| rfc3339(e.tz, t))
                .unwrap_or_default(),
        }))
    );
    host_fn!(
        engine,
        "minutes_until_open",
        ["INT"],
        "Minutes until the business opens: 0 when open now, -1 if it never opens.",
        || env(|e| Ok(match &e.hours {
            None => 0,
            Some(h) => h
                .next_opening(e.tz, e.now)
                .map(|t| ((t - e.now).num_seconds() + 59) / 60)
                .unwrap_or(-1),
        }))
    );
    // Durations.
    host_fn!(
        engine,
        "minutes_since",
        ["when: String", "INT"],
        "Whole minutes from `when` (RFC 3339, or local `2026-11-21T10:30`) to now.",
        |when: &str| since(when, 60)
    );
    host_fn!(
        engine,
        "hours_since",
        ["when: String", "INT"],
        "Whole hours from `when` to now.",
        |when: &str| since(when, 3600)
    );
    host_fn!(
        engine,
        "days_since",
        ["when: String", "INT"],
        "Whole days from `when` to now.",
        |when: &str| since(when, 86400)
    );
    host_fn!(
        engine,
        "minutes_until",
        ["when: String", "INT"],
        "Whole minutes from now until `when` (negative if it has passed).",
        |when: &str| since(when, 60).map(|m| -m)
    );
    // History.
    host_fn!(
        engine,
        "history",
        ["Array"],
        "The lead's earlier calls, oldest first: maps of `run_id`, `attempt`, `at`, `outcome`, `score`, `tag`, `summary`.",
        || env(|e| e
            .history
            .iter()
            .map(to_dynamic)
            .collect::<Fallible<Array>>())
    );
    host_fn!(
        engine,
        "last_call",
        ["Dynamic"],
        "The lead's most recent earlier call (a map like `history()`'s), or `()` if none.",
        || env(|e| e.history.last().map_or(Ok(Dynamic::UNIT), to_dynamic))
    );
    host_fn!(
        engine,
        "calls_made",
        ["INT"],
        "How many calls were placed to the lead before this decision.",
        || env(|e| Ok(e.history.len() as INT))
    );
    // Terminology and the timeline.
    host_fn!(
        engine,
        "term",
        ["key: String", "String"],
        "The business' word for `key` (`term(\"lead\")` → `\"prospect\"`), or `key` itself.",
        |key: &str| env(|e| Ok(e
            .terminology
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.to_owned())))
    );
    host_fn!(
        engine,
        "log",
        ["line: String"],
        "Writes `line` to this step's log in the run's timeline (`print` does the same).",
        |line: &str| super::sandbox::log_line(line)
    );
    // Tests.
    host_fn!(
        engine,
        "set_clock",
        ["when: String"],
        "Tests only: sets the clock to `when` (RFC 3339, or local `2026-11-21T10:30`). Tests start at Monday 2026-01-05 10:00 local.",
        |when: &str| env_mut(|e| {
            if !e.testing {
                return Err("set_clock is only available in fn test_*()".into());
            }
            e.now = time_arg(e.tz, when)?;
            Ok(())
        })
    );
    host_fn!(
        engine,
        "sample_lead",
        ["Map"],
        "Tests: a lead as hooks receive it (source `web`, no custom fields, created an hour ago).",
        || env(|e| to_dynamic(&sample_lead(e.now)).map(|d| d.cast::<Map>()))
    );
    host_fn!(
        engine,
        "sample_analysis",
        ["Map"],
        "Tests: a call analysis as `score` receives it, every dimension `medium` (50).",
        || to_dynamic(&sample_analysis()).map(|d| d.cast::<Map>())
    );
    host_fn!(
        engine,
        "assert",
        ["condition: bool", "message: String"],
        "Tests: fails the test with `message` unless `condition` holds.",
        |ok: bool, message: &str| -> Fallible<()> {
            if ok {
                Ok(())
            } else {
                Err(format!("assertion failed: {message}").into())
            }
        }
    );
}

/// The lead `sample_lead()` returns.
pub fn sample_lead(now: DateTime<Utc>) -> LeadView {
    LeadView {
        id: "lead_sample".into(),
        name: "Ada Lovelace".into(),
        phone: "+14155550123".into(),
        email: Some("ada@example.com".into()),
        source: Some("web".into()),
        fields: serde_json::Map::new(),
        created_at: (now - Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true),
        call_attempt: 1,
    }
}

/// One function of the host API, for authors.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct FnDoc {
    /// Its name.
    pub name: String,
    /// `name(param: Type, …) -> Type`.
    pub signature: String,
    /// What it does.
    pub doc: String,
}

/// The host API reference, generated from the functions registered on `engine` (those with doc
/// comments: the host API and the sandbox's replacements of built-ins).
pub fn reference(engine: &Engine) -> Vec<FnDoc> {
    #[derive(Deserialize)]
    struct Meta {
        functions: Vec<FnMeta>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct FnMeta {
        name: String,
        signature: String,
        #[serde(default)]
        doc_comments: Vec<String>,
    }
    let json = engine.gen_fn_metadata_to_json(false).unwrap_or_default();
    let meta: Meta = serde_json::from_str(&json).unwrap_or(Meta {
        functions: Vec::new(),
    });
    meta.functions
        .into_iter()
        .filter(|f| !f.doc_comments.is_empty())
        .map(|f| FnDoc {
            doc: f
                .doc_comments
                .iter()
                .flat_map(|c| c.lines())
                .map(|l| l.trim_start_matches("///").trim())
                .collect::<Vec<_>>()
                .join(" "),
            signature: f.signature,
            name: f.name,
        })
        .collect()
}

/// The reference as Markdown, for `switchboard scripts reference` and the docs.
pub fn reference_markdown(engine: &Engine) -> String {
    let mut out = String::from(
        "# Business scripts\n\n## Entry points\n\nEach is optional; without it (or when it fails) the default applies.\n\n",
    );
    for h in super::validate::HOOKS {
        out.push_str(&format!(
            "- `fn {}({})` → `{}`\n  Default: {}.\n",
            h.name,
            h.params.join(", "),
            h.returns,
            h.default
        ));
    }
    out.push_str("\n## Host functions\n\n");
    for f in reference(engine) {
        out.push_str(&format!("- `{}`\n  {}\n", f.signature, f.doc));
    }
    out
}

/// The lead as a script's hooks see it (`lead.name`, `lead.fields.budget_range`, …).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeadView {
    pub id: String,
    pub name: String,
    /// E.164.
    pub phone: String,
    pub email: Option<String>,
    pub source: Option<String>,
    /// The business' custom fields.
    #[schema(value_type = std::collections::HashMap<String, serde_json::Value>)]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// When the lead came in, RFC 3339 UTC.
    pub created_at: String,
    /// Which call of the run is being prepared or was just made, from 1.
    pub call_attempt: u32,
}

/// The analysis `sample_analysis()` gives script tests and dry runs: every dimension medium.
pub fn sample_analysis() -> CallAnalysis {
    let dim = |what: &str| Dimension {
        level: Level::Medium,
        score: 50,
        reasoning: format!("some {what}"),
    };
    CallAnalysis {
        summary: "The customer listened and asked a few questions.".into(),
        sentiment: Sentiment::Neutral,
        objections: vec!["wants to think about it".into()],
        next_action: "follow up".into(),
        intent: dim("interest"),
        urgency: dim("urgency"),
        budget: dim("budget"),
        fit: dim("fit"),
        engagement: dim("engagement"),
        cta: CtaInteractions {
            pricing: false,
            demo: false,
            follow_up: true,
            sample: false,
            escalated_to_human: false,
        },
        opt_out: false,
    }
}

#[cfg(test)]
mod tests;
