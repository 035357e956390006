//! `switchboard agents sync`: creates or updates each business' configured voice agents at
//! ElevenLabs and stores their ids, so calls can use them.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};
use switchboard_engine::Db;
use switchboard_workflows::agents_sync::{self, SyncAction, SyncError, SyncReport};
use switchboard_workflows::providers::elevenlabs::ElevenLabsClient;

use switchboard_api::startup::load_businesses;

/// Exit code when the command cannot run as asked (missing key, unknown business).
pub const EXIT_USAGE: i32 = 2;
/// Exit code when at least one agent failed to sync.
pub const EXIT_FAILED: i32 = 1;

/// Voice agents at the provider.
#[derive(Subcommand, Debug)]
pub enum AgentsCommand {
    /// Create or update every configured agent at ElevenLabs (idempotent) and store the ids.
    ///
    /// For each agent in each business.toml: the agent is named "<business name> — <agent key>",
    /// tagged "switchboard" and the business id, given the configured prompt, first message,
    /// language and voice, and allowed per-call overrides of those four (the pipeline sets them
    /// on every call). An agent with `agent_id` in business.toml is adopted and updated; one
    /// without is created (or found again by name if an earlier sync created it). Agents whose
    /// configuration did not change since the last sync are left alone, so running it again
    /// sends nothing. Exit code: 0 all synced, 1 some agent failed (or the database failed), 2
    /// usage error.
    Sync(SyncArgs),
}

/// Options of `agents sync`.
#[derive(Args, Clone, Debug)]
pub struct SyncArgs {
    /// Only this business (its id, e.g. `demo`) [default: every business].
    #[arg(long, value_name = "ID")]
    pub business: Option<String>,

    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Database that keeps the businesses and the agents' provider ids (the server's).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://switchboard.db")]
    pub database_url: String,

    /// More business folders, as `serve` takes them.
    #[arg(long, env = "SWITCHBOARD_BUSINESSES_DIR")]
    pub businesses_dir: Option<std::path::PathBuf>,

    /// ElevenLabs API key (required: this command changes agents at ElevenLabs).
    #[arg(long, env = "ELEVENLABS_API_KEY", hide_env_values = true)]
    pub elevenlabs_api_key: Option<String>,

    /// ElevenLabs API base URL.
    #[arg(
        long,
        env = "ELEVENLABS_BASE_URL",
        default_value = "https://api.elevenlabs.io"
    )]
    pub elevenlabs_base_url: String,
}

/// Runs the command, writing the report to `out` and problems to `err`; returns the exit code
/// (0 all synced, 1 some agent failed, 2 usage error). Database failures are errors.
pub async fn run(
    command: AgentsCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<i32> {
    let AgentsCommand::Sync(args) = command;
    let Some(key) = args.elevenlabs_api_key.filter(|k| !k.trim().is_empty()) else {
        writeln!(
            err,
            "agents sync needs an ElevenLabs API key: set ELEVENLABS_API_KEY (or pass \
             --elevenlabs-api-key). It creates and updates agents at ElevenLabs, so the \
             simulator cannot stand in."
        )?;
        return Ok(EXIT_USAGE);
    };
    let db = Db::connect(&args.database_url, 2).await?;
    switchboard_engine::migrate(&db).await?;
    load_businesses(&db, args.businesses_dir.as_deref()).await?;
    let client = ElevenLabsClient::new(args.elevenlabs_base_url, key, Duration::from_secs(30));
    let report = match agents_sync::sync(&db, &client, args.business.as_deref()).await {
        Ok(report) => report,
        Err(SyncError::UnknownBusiness(id)) => {
            writeln!(err, "agents sync: no business {id:?}")?;
            return Ok(EXIT_USAGE);
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        write_table(out, &report)?;
    }
    Ok(if report.has_failures() {
        EXIT_FAILED
    } else {
        0
    })
}

/// The report as an aligned table, failures' reasons on their own lines, and a summary line.
fn write_table(out: &mut dyn Write, report: &SyncReport) -> std::io::Result<()> {
    let header = ["BUSINESS", "AGENT", "ACTION", "PROVIDER AGENT ID"];
    let rows: Vec<[String; 4]> = report
        .agents
        .iter()
        .map(|a| {
            [
                a.business.clone(),
                a.agent.clone(),
                a.action.to_string(),
                a.provider_agent_id.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    writeln!(
        out,
        "{:w0$}  {:w1$}  {:w2$}  {}",
        header[0], header[1], header[2], header[3]
    )?;
    for (row, a) in rows.iter().zip(&report.agents) {
        writeln!(
            out,
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0], row[1], row[2], row[3]
        )?;
        if let Some(e) = &a.error {
            writeln!(out, "    error: {e}")?;
        }
    }
    writeln!(
        out,
        "{} agents: {} created, {} updated, {} unchanged, {} failed",
        report.agents.len(),
        report.count(SyncAction::Created),
        report.count(SyncAction::Updated),
        report.count(SyncAction::Unchanged),
        report.count(SyncAction::Failed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use switchboard_workflows::agents_sync::AgentSyncResult;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: AgentsCommand,
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "agents",
            "sync",
            "--business",
            "demo",
            "--json",
            "--database-url",
            "sqlite://x.db",
            "--elevenlabs-api-key",
            "k",
            "--elevenlabs-base-url",
            "http://127.0.0.1:1",
        ])
        .expect("parses");
        let AgentsCommand::Sync(args) = cli.command;
        assert_eq!(args.business.as_deref(), Some("demo"));
        assert!(args.json);
        assert_eq!(args.database_url, "sqlite://x.db");
        assert_eq!(args.elevenlabs_api_key.as_deref(), Some("k"));
        assert_eq!(args.elevenlabs_base_url, "http://127.0.0.1:1");
    }

    #[tokio::test]
    async fn without_a_key_it_says_so_and_exits_2() {
        let args = SyncArgs {
            business: None,
            json: false,
            database_url: "sqlite://never-created.db".into(),
            businesses_dir: None,
            elevenlabs_api_key: Some("  ".into()),
            elevenlabs_base_url: "http://127.0.0.1:9".into(),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(AgentsCommand::Sync(args), &mut out, &mut err)
            .await
            .expect("runs");
        assert_eq!(code, EXIT_USAGE);
        assert!(out.is_empty());
        assert!(String::from_utf8_lossy(&err).contains("ELEVENLABS_API_KEY"));
        assert!(!std::path::Path::new("never-created.db").exists());
    }

    #[test]
    fn the_table_aligns_and_shows_errors() {
        let entry = |agent: &str, action, id: Option<&str>, error: Option<&str>| AgentSyncResult {
            business: "demo".into(),
            agent: agent.into(),
            provider_agent_id: id.map(str::to_owned),
            action,
            error: error.map(str::to_owned),
        };
        let report = SyncReport {
            agents: vec![
                entry("riley", SyncAction::Created, Some("agent_1"), None),
                entry(
                    "a_long_agent_key",
                    SyncAction::Failed,
                    None,
                    Some("answered 422"),
                ),
            ],
        };
        let mut out = Vec::new();
        write_table(&mut out, &report).expect("writes");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "BUSINESS  AGENT             ACTION   PROVIDER AGENT ID\n\
             demo      riley             created  agent_1\n\
             demo      a_long_agent_key  failed   -\n    error: answered 422\n\
             2 agents: 1 created, 0 updated, 0 unchanged, 1 failed\n"
        );
    }
}
