//! `switchboard scripts backtest scripts/<business>`: the folder's script as a candidate,
//! replayed over the business' recorded decisions in a database, printed as a report (or as the
//! API's JSON with `--json`). Reads the database, writes nothing.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::Args;
use switchboard_engine::Db;
use switchboard_workflows::backtest::{
    Backtest, DEFAULT_DAYS, DEFAULT_LIMIT, Hook, MAX_LIMIT, Report, Request,
};
use switchboard_workflows::business::Definition;
use switchboard_workflows::policy::Policy;
use switchboard_workflows::scripting::host::ScriptHost;
use switchboard_workflows::scripting::sandbox::Limits;
use switchboard_workflows::scripting::validate::validate;
use switchboard_workflows::store;

/// Options of `scripts backtest`.
#[derive(Args, Clone, Debug)]
pub struct BacktestArgs {
    /// `scripts/<business>` (or its policy.rhai): the candidate script and the business.
    pub path: PathBuf,

    /// The database holding the business' runs (read only).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://switchboard.db")]
    pub database_url: String,

    /// Decisions taken from this moment (RFC 3339; default: 30 days before --to).
    #[arg(long)]
    pub from: Option<DateTime<Utc>>,

    /// … until before this one (RFC 3339; default: now).
    #[arg(long)]
    pub to: Option<DateTime<Utc>>,

    /// The hooks to replay, comma-separated (default: all of context, route, score, follow_up,
    /// on_no_answer).
    #[arg(long, value_delimiter = ',', value_parser = parse_hook)]
    pub hooks: Vec<Hook>,

    /// The most recent decisions replayed, at most.
    #[arg(long, default_value_t = DEFAULT_LIMIT, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LIMIT)))]
    pub limit: u32,

    /// Print the report as the API's JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_hook(s: &str) -> Result<Hook, String> {
    serde_json::from_value(serde_json::Value::String(s.trim().to_owned())).map_err(|_| {
        format!("{s:?} is not a hook: context, route, score, follow_up or on_no_answer")
    })
}

/// Runs the backtest, writing the report to `out` and problems to `err`; the exit code (0: a
/// report was printed, 1: the folder or the candidate is not valid).
pub async fn run(
    args: BacktestArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<i32> {
    let folder = if args.path.is_dir() {
        args.path.clone()
    } else {
        args.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };
    let definition = match Definition::load(&folder) {
        Ok(d) => d,
        Err(e) => {
            writeln!(err, "{e}")?;
            return Ok(1);
        }
    };
    let business = definition.business;
    let host = Arc::new(ScriptHost::new(Limits::default(), 2)?);
    let validation = validate(&host, &business, &definition.script).await;
    if !validation.valid {
        for problem in validation.problems() {
            writeln!(err, "{}: {problem}", folder.join("policy.rhai").display())?;
        }
        return Ok(1);
    }
    let to = args.to.unwrap_or_else(Utc::now);
    let from = args
        .from
        .or_else(|| to.checked_sub_signed(chrono::Duration::days(DEFAULT_DAYS)));
    let Some(from) = from.filter(|from| *from < to) else {
        writeln!(err, "--from must be before --to ({to})")?;
        return Ok(1);
    };
    let hooks: BTreeSet<Hook> = match args.hooks.is_empty() {
        true => Hook::ALL.into(),
        false => args.hooks.into_iter().collect(),
    };
    let db = open(&args.database_url).await?;
    if store::business(&db, &business.id).await?.is_none() {
        writeln!(
            err,
            "the database has no business {:?}: nothing was decided for it",
            business.id
        )?;
        return Ok(1);
    }
    let request = Request {
        from,
        to,
        hooks,
        limit: args.limit,
    };
    let policy = Policy::new(host, db.clone());
    let backtest = Backtest::new(&policy, db, business.clone(), &definition.script, request)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = backtest.run(|_| async { Ok(()) }).await?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        let head = format!(
            "backtest of {} (sha256 {}) for {}, decisions from {} to {}",
            folder.join("policy.rhai").display(),
            &backtest.candidate_hash()[..12],
            business.id,
            from.to_rfc3339(),
            to.to_rfc3339()
        );
        write!(out, "{head}\n\n{}", text(&report))?;
    }
    Ok(0)
}

/// Connects to the database without creating or migrating it.
async fn open(url: &str) -> anyhow::Result<Db> {
    if let Some(path) = url.strip_prefix("sqlite://")
        && !path.starts_with(':')
        && !Path::new(path.split('?').next().unwrap_or(path)).exists()
    {
        anyhow::bail!("no database at {url} (set --database-url or DATABASE_URL)");
    }
    Ok(Db::connect(url, 2).await?)
}

/// The report as people read it.
pub fn text(r: &Report) -> String {
    let mut s = format!(
        "{} decisions replayed: {} changed, {} unchanged",
        r.compared, r.changed, r.unchanged
    );
    if r.skipped > 0 {
        s += &format!(" ({} skipped: lead gone or input unreadable)", r.skipped);
    }
    if r.truncated {
        s += " (the range holds more: the most recent were replayed)";
    }
    s += "\n\nhook            compared  changed  errors  reproduced\n";
    for (hook, t) in &r.hooks {
        let reproduced = match t.checked {
            0 => "-".to_owned(),
            n => format!("{}/{n}", t.reproduced),
        };
        s += &format!(
            "{:<14} {:>9} {:>8} {:>7}  {reproduced}\n",
            hook.as_str(),
            t.compared,
            t.changed,
            t.errors
        );
    }
    let g = &r.routing;
    s += &format!(
        "\nrouting: {} no longer called, {} newly called, {} at another time, {} by another \
         agent, {} for another objective\n",
        g.no_longer_called, g.newly_called, g.another_time, g.another_agent, g.another_objective
    );
    if r.scoring
        .before
        .iter()
        .chain(&r.scoring.after)
        .any(|n| *n > 0)
    {
        s += "\nscores    before   after\n";
        for (i, (b, a)) in r.scoring.before.iter().zip(&r.scoring.after).enumerate() {
            let bucket = match i {
                9 => "90-100".to_owned(),
                i => format!("{}-{}", i * 10, i * 10 + 9),
            };
            s += &format!("{bucket:<8} {b:>7} {a:>7}\n");
        }
        s += "\ntags\n";
        for m in &r.scoring.tags {
            let mark = if m.from == m.to { "" } else { "  *" };
            s += &format!("  {} → {}: {}{mark}\n", m.from, m.to, m.count);
        }
    }
    if !r.follow_ups.is_empty() {
        s += "\nfollow-ups\n";
        for m in &r.follow_ups {
            s += &format!("  {} → {}: {}\n", m.from, m.to, m.count);
        }
    }
    if !r.errors.is_empty() {
        s += "\nerrors the candidate raised (the default decision was used)\n";
        for e in &r.errors {
            s += &format!(
                "  {} ×{}: {} (first in run {})\n",
                e.hook.as_str(),
                e.count,
                e.message,
                e.run_id
            );
        }
    }
    if !r.samples.is_empty() {
        s += "\nchanged decisions\n";
        for c in &r.samples {
            s += &format!(
                "  {} {} run {}\n    before: {}\n    after:  {}\n",
                c.decided_at,
                c.hook.as_str(),
                c.run_id,
                c.before,
                c.after
            );
        }
    }
    s
}
