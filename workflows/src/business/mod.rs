//! Business definitions: name, timezone, terminology, objectives, agents, campaigns, opening
//! hours, custom fields and the knobs of the default policy.
//!
//! Each business lives in `scripts/<id>/` as `business.toml` plus its `policy.rhai`; the shipped
//! ones are embedded in the binary and loaded into the database at start-up.

mod fields;
mod hours;
mod local_time;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::providers::voice::Line;
use crate::providers::voice::VoiceKind;

pub use fields::{CustomField, FieldType};
pub use hours::{Hours, Window, local_to_utc, timezone};
pub use local_time::{Callable, LocalTime, ZoneSource, widest_legal_window};

/// A business (tenant) as configured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Business {
    /// Stable id used in the API (`"business": "demo"`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// What the business does (`real-estate`, `dental`, `b2b-saas`, …).
    #[serde(default)]
    pub industry: String,
    /// IANA timezone, e.g. `America/New_York`.
    pub timezone: String,
    /// The business' words for things: `lead = "prospect"`, `appointment = "showing"`, …
    #[serde(default)]
    pub terminology: BTreeMap<String, String>,
    /// What calls can be for; the first is the default.
    pub objectives: Vec<Objective>,
    /// The key in `agents` used when no campaign matches.
    pub default_agent: String,
    /// The voice provider the business calls through (`elevenlabs`, the default, or `retell`).
    #[serde(default)]
    pub voice_provider: VoiceKind,
    /// The voice agents that place calls, by key.
    pub agents: BTreeMap<String, AgentConfig>,
    /// Lead sources mapped to an agent and objective.
    #[serde(default)]
    pub campaigns: Vec<Campaign>,
    /// Opening hours in `timezone`; absent means always open.
    #[serde(default)]
    pub hours: Option<Hours>,
    /// Attempts, delays and deadlines of the default policy.
    #[serde(default)]
    pub calling: CallingConfig,
    /// Custom lead fields the business collects.
    #[serde(default)]
    pub custom_fields: Vec<CustomField>,
    /// Days a lead's data is kept once its last run has ended: then the lead is erased with
    /// everything derived from it (runs, attempts, events, calls, transcripts). Absent: kept until
    /// erased by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Cron campaigns: leads called again on a schedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<Schedule>,
}

/// A cron campaign: at every tick of `cron`, in the business' timezone, the leads it selects
/// (those whose latest call was tagged `tag` and who have not been called for `idle_days`, with
/// no run in progress) are called again, at most `limit` a tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Unique in the business: how the API and dashboard name it.
    pub name: String,
    /// `sec min hour day-of-month month day-of-week`, e.g. `0 0 9 * * Mon-Fri` (every weekday at
    /// 09:00).
    pub cron: String,
    /// `hot`, `warm`, `cold` or `disqualified`: the tag of the lead's latest scored call.
    pub tag: String,
    /// Days since the lead's latest call, at least.
    #[serde(default)]
    pub idle_days: u32,
    /// Leads called a tick, at most; the rest wait for the next tick.
    #[serde(default = "default_schedule_limit")]
    pub limit: u32,
}

fn default_schedule_limit() -> u32 {
    500
}

impl Schedule {
    /// The parsed cron expression.
    pub fn cron(&self) -> Result<cron::Schedule, String> {
        self.cron
            .parse()
            .map_err(|e| format!("schedule {:?}: cron {:?}: {e}", self.name, self.cron))
    }
}

/// A call objective.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// Short name, e.g. `Schedule Showing`.
    pub name: String,
    /// What the agent should achieve, for the prompt.
    #[serde(default)]
    pub description: String,
}

/// A voice agent a business calls with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Provider agent id of an agent that already exists at the provider. Empty: the agent is
    /// created by `switchboard agents sync`, which stores the provider's id.
    #[serde(default)]
    pub agent_id: String,
    /// Provider phone number id the call is placed from.
    pub phone_number_id: String,
    /// How the number is connected: `twilio` (default) or `sip` (a SIP trunk).
    #[serde(default)]
    pub line: Line,
    /// Voice the agent speaks with (provider voice id); the agent's own voice when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_id: Option<String>,
    /// Base system prompt.
    pub prompt: String,
    /// First sentence; `{{customer_name}}` is filled by the provider.
    pub first_message: String,
    /// Spoken language.
    #[serde(default = "default_language")]
    pub language: String,
}

fn default_language() -> String {
    "en".into()
}

/// Leads from `source` are called by `agent` about `objective`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    /// Campaign name.
    pub name: String,
    /// The lead source it applies to (exact match).
    pub source: String,
    /// Key in `agents` (when there is no `split`).
    pub agent: String,
    /// An objective's name (default: the business' first).
    #[serde(default)]
    pub objective: Option<String>,
    /// An A/B test of agents: each lead of the campaign is called by one of these, chosen by
    /// weight, the same one every time for the same lead. Empty: `agent`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub split: Vec<AgentShare>,
}

/// One agent's share of a campaign's leads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentShare {
    /// Key in `agents`.
    pub agent: String,
    /// Its weight among the split's (e.g. 70 and 30).
    pub weight: u32,
}

impl Campaign {
    /// The agent that calls lead `lead_id`: `agent`, or the split's pick for this lead (stable:
    /// a hash of the campaign and the lead, spread by weight).
    pub fn agent_for(&self, lead_id: &str) -> &str {
        use sha2::{Digest, Sha256};
        let total: u64 = self.split.iter().map(|s| u64::from(s.weight)).sum();
        if total == 0 {
            return &self.agent;
        }
        let digest = Sha256::digest(format!("{}\0{lead_id}", self.name).as_bytes());
        let mut point = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default()) % total;
        for share in &self.split {
            match point.checked_sub(u64::from(share.weight)) {
                Some(rest) => point = rest,
                None => return &share.agent,
            }
        }
        &self.agent
    }
}

/// Knobs of the default calling policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CallingConfig {
    /// Calls placed to one lead in one run, at most.
    pub max_call_attempts: u32,
    /// Delay before calling again after no answer, busy or voicemail.
    pub retry_after_secs: u64,
    /// Delay before a follow-up call to a warm lead.
    pub follow_up_after_secs: u64,
    /// How long to wait for the provider's end-of-call webhook.
    pub await_call_timeout_secs: u64,
    /// Score at or above which a lead is handed to a human.
    pub hand_off_score: u8,
    /// Score at or above which a lead is called again.
    pub follow_up_score: u8,
    /// Calls of this business in flight at once, at most (dialing or talking); more wait in
    /// line. The process-wide cap (`SWITCHBOARD_MAX_CONCURRENT_CALLS`) applies as well.
    pub max_concurrent_calls: u32,
    /// Calls of this business started in any minute, at most; more wait in line. Absent: no
    /// limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_calls_per_minute: Option<u32>,
    /// What follows a connected call the model would not analyse (it refused, or its content
    /// filter withheld the answer).
    pub analysis_unavailable: WithoutAnalysis,
    /// Whether a lead is called only with a consent record (its run ends `no_consent` without
    /// one).
    pub require_consent: bool,
    /// When calls may be placed in the called person's local time: 08:00–21:00 (the US federal
    /// rule) unless narrowed; never wider.
    pub legal_hours: Window,
    /// Narrower windows for people in a region: a country (`GB`) or a US state or Canadian
    /// province (`US-FL`), e.g. `{ "US-FL" = "08:00-20:00" }`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub region_hours: BTreeMap<String, Window>,
}

/// What follows a connected call without an analysis (`calling.analysis_unavailable`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WithoutAnalysis {
    /// A person reads the call and decides (the run ends `handed_off`).
    #[default]
    HandOff,
    /// Call again after `follow_up_after_secs`, while attempts are left.
    CallAgain,
    /// The run ends `analysis_unavailable`.
    Stop,
}

impl Default for CallingConfig {
    fn default() -> Self {
        CallingConfig {
            max_call_attempts: 3,
            retry_after_secs: 4 * 3600,
            follow_up_after_secs: 2 * 86400,
            await_call_timeout_secs: 3600,
            hand_off_score: 70,
            follow_up_score: 40,
            max_concurrent_calls: 10,
            max_calls_per_minute: None,
            analysis_unavailable: WithoutAnalysis::default(),
            require_consent: false,
            legal_hours: widest_legal_window(),
            region_hours: BTreeMap::new(),
        }
    }
}

/// A business definition with its script, as shipped in `scripts/<id>/`.
#[derive(Clone, Debug)]
pub struct Definition {
    /// `business.toml`, parsed and checked.
    pub business: Business,
    /// `policy.rhai`.
    pub script: String,
}

/// The businesses shipped in `scripts/`, embedded at build time.
pub fn shipped() -> Vec<Definition> {
    macro_rules! shipped {
        ($($id:literal),*) => {
            vec![$(Definition::parse(
                $id,
                include_str!(concat!("../../../scripts/", $id, "/business.toml")),
                include_str!(concat!("../../../scripts/", $id, "/policy.rhai")),
            )
            .expect("shipped business definitions are checked by a test")),*]
        };
    }
    shipped!("demo", "realty", "dental", "saas")
}

/// The shipped businesses, with those in `dir` (one folder per business, each holding a
/// `business.toml` and a `policy.rhai`; a folder named like a shipped business replaces it).
pub fn definitions(dir: Option<&std::path::Path>) -> Result<Vec<Definition>, String> {
    let mut all = shipped();
    for d in dir.map(folders).transpose()?.unwrap_or_default() {
        all.retain(|s| s.business.id != d.business.id);
        all.push(d);
    }
    Ok(all)
}

/// The businesses in `dir`: every folder holding a `business.toml` (and its `policy.rhai`),
/// read and checked, in the order of their names.
pub fn folders(dir: &std::path::Path) -> Result<Vec<Definition>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut folders: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("business.toml").is_file())
        .collect();
    folders.sort();
    folders.iter().map(|f| Definition::load(f)).collect()
}

impl Definition {
    /// Reads and checks a business folder: its `business.toml` and `policy.rhai`.
    pub fn load(folder: &std::path::Path) -> Result<Definition, String> {
        let read = |name: &str| {
            let p = folder.join(name);
            std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
        };
        let id = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Definition::parse(&id, &read("business.toml")?, &read("policy.rhai")?)
            .map_err(|e| format!("{}: {e}", folder.display()))
    }

    /// Parses and checks a folder's `business.toml`; `folder` must match the business id.
    pub fn parse(folder: &str, toml_source: &str, script: &str) -> Result<Definition, String> {
        let business = Business::from_toml(toml_source)?;
        if business.id != folder {
            return Err(format!(
                "business.toml: id {:?} does not match its folder {folder:?}",
                business.id
            ));
        }
        Ok(Definition {
            script: script.to_owned(),
            business,
        })
    }
}

/// A configuration that does not hold together: which field (`campaigns[1].agent`), and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The field's path in the configuration.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// When a business may next be called, seen from some instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    /// Now: calls may be placed.
    Now,
    /// Closed until then.
    At(chrono::DateTime<chrono::Utc>),
    /// The hours never open.
    Never,
}

impl Business {
    /// Parses `business.toml` and checks that its references hold.
    pub fn from_toml(source: &str) -> Result<Business, String> {
        let b: Business = toml::from_str(source).map_err(|e| format!("business.toml: {e}"))?;
        b.check().map_err(|e| format!("business.toml: {e}"))?;
        Ok(b)
    }

    /// A configuration given as JSON (the content of a `business.toml`), parsed and checked;
    /// the error names the field.
    pub fn from_json(config: serde_json::Value) -> Result<Business, Invalid> {
        let business: Business = serde_path_to_error::deserialize(config).map_err(|e| {
            let field = e.path().to_string();
            Invalid {
                field: if field == "." { "config".into() } else { field },
                message: e.into_inner().to_string(),
            }
        })?;
        business.check()?;
        Ok(business)
    }

    /// This configuration with a JSON merge patch (RFC 7396) applied, parsed and checked.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<Business, Invalid> {
        let mut config = serde_json::to_value(self).unwrap_or_default();
        json_patch::merge(&mut config, patch);
        Business::from_json(config)
    }

    /// Checks the timezone, the calling limits and windows, and that the default agent,
    /// campaigns, objectives and schedules refer to things that exist; the error names the
    /// field (`campaigns[1].agent`).
    pub fn check(&self) -> Result<(), Invalid> {
        let at = |field: String| move |message: String| Invalid { field, message };
        let id_chars =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        if self.id.is_empty() || self.id.len() > 64 || !self.id.chars().all(id_chars) {
            return Err(at("id".into())(format!(
                "{:?} is not an id: 1 to 64 lowercase letters, digits, - and _",
                self.id
            )));
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err(at("name".into())("must be 1 to 200 characters".into()));
        }
        timezone(&self.timezone).map_err(at("timezone".into()))?;
        if self.objectives.is_empty() {
            return Err(at("objectives".into())(
                "at least one objective is needed".into(),
            ));
        }
        if !self.agents.contains_key(&self.default_agent) {
            return Err(at("default_agent".into())(format!(
                "{:?} is not one of the agents {:?}",
                self.default_agent,
                self.agents.keys().collect::<Vec<_>>()
            )));
        }
        if self.calling.max_concurrent_calls == 0 {
            return Err(at("calling.max_concurrent_calls".into())(
                "must be at least 1".into(),
            ));
        }
        if self.calling.max_calls_per_minute == Some(0) {
            return Err(at("calling.max_calls_per_minute".into())(
                "must be at least 1".into(),
            ));
        }
        let widest = widest_legal_window();
        let legal = self.calling.legal_hours;
        if legal.open < widest.open || legal.close > widest.close {
            return Err(at("calling.legal_hours".into())(format!(
                "{legal} may only narrow the legal calling window {widest}"
            )));
        }
        for region in self.calling.region_hours.keys() {
            let mut parts = region.split('-');
            let country = parts.next().unwrap_or_default();
            let sub = parts.next();
            let upper = |s: &str, n: std::ops::RangeInclusive<usize>| {
                n.contains(&s.len())
                    && s.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            };
            if !upper(country, 2..=2)
                || sub.is_some_and(|s| !upper(s, 1..=3))
                || parts.next().is_some()
            {
                return Err(at(format!("calling.region_hours.{region}"))(format!(
                    "{region:?} is not a region like \"GB\" or \"US-FL\""
                )));
            }
        }
        for (i, c) in self.campaigns.iter().enumerate() {
            let field = |name: &str| format!("campaigns[{i}].{name}");
            if !self.agents.contains_key(&c.agent) {
                return Err(at(field("agent"))(format!("no agent {:?}", c.agent)));
            }
            for (j, share) in c.split.iter().enumerate() {
                let field = field(&format!("split[{j}]"));
                if !self.agents.contains_key(&share.agent) {
                    return Err(at(field)(format!("no agent {:?}", share.agent)));
                }
                if share.weight == 0 {
                    return Err(at(field)("every split weight must be at least 1".into()));
                }
            }
            if let Some(o) = &c.objective
                && self.objective(o).is_none()
            {
                return Err(at(field("objective"))(format!("no objective {o:?}")));
            }
        }
        for (i, schedule) in self.schedules.iter().enumerate() {
            let field = |name: &str| format!("schedules[{i}].{name}");
            schedule.cron().map_err(at(field("cron")))?;
            if !["hot", "warm", "cold", "disqualified"].contains(&schedule.tag.as_str()) {
                return Err(at(field("tag"))(format!(
                    "{:?} is not one of hot, warm, cold, disqualified",
                    schedule.tag
                )));
            }
            if self.schedules[..i].iter().any(|s| s.name == schedule.name) {
                return Err(at(field("name"))(format!(
                    "{:?}: names must be unique",
                    schedule.name
                )));
            }
            if schedule.limit == 0 {
                return Err(at(field("limit"))("must be at least 1".into()));
            }
        }
        Ok(())
    }

    /// The business' timezone (checked when the business was loaded).
    pub fn tz(&self) -> chrono_tz::Tz {
        timezone(&self.timezone).unwrap_or(chrono_tz::UTC)
    }

    /// Whether the business may be called at `now`: always without opening hours, else inside
    /// them (in its timezone, holidays and quiet windows left out).
    pub fn opening(&self, now: chrono::DateTime<chrono::Utc>) -> Opening {
        match &self.hours {
            None => Opening::Now,
            Some(hours) => match hours.next_opening(self.tz(), now) {
                Some(at) if at <= now => Opening::Now,
                Some(at) => Opening::At(at),
                None => Opening::Never,
            },
        }
    }

    /// The business' word for `key` (`lead` → `prospect`), or `key` itself.
    pub fn term<'a>(&'a self, key: &'a str) -> &'a str {
        self.terminology.get(key).map_or(key, String::as_str)
    }

    /// The objective called `name`.
    pub fn objective(&self, name: &str) -> Option<&Objective> {
        self.objectives.iter().find(|o| o.name == name)
    }

    /// The default agent.
    pub fn default_agent(&self) -> &AgentConfig {
        &self.agents[&self.default_agent]
    }

    /// The agent with key `key`, or the default agent if there is none.
    pub fn agent(&self, key: &str) -> &AgentConfig {
        self.agents.get(key).unwrap_or_else(|| self.default_agent())
    }

    /// The campaign for a lead source, if any.
    pub fn campaign_for(&self, source: Option<&str>) -> Option<&Campaign> {
        let source = source?;
        self.campaigns.iter().find(|c| c.source == source)
    }

    /// Checks a lead's custom fields against this business' definitions; the error names the field.
    pub fn check_custom_fields(
        &self,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), String> {
        fields::check(&self.id, &self.custom_fields, fields)
    }
}

#[cfg(test)]
mod tests;
