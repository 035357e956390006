//! `switchboard businesses import DIR`: loads business folders (`business.toml` and
//! `policy.rhai` each) into the database, as the businesses' new configuration and script
//! versions; every process picks them up at once.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use switchboard_engine::Db;
use switchboard_workflows::business;
use switchboard_workflows::scripting::host::ScriptHost;
use switchboard_workflows::scripting::sandbox::Limits;
use switchboard_workflows::scripting::validate::validate;
use switchboard_workflows::store;

/// Businesses in the database.
#[derive(Subcommand, Debug)]
pub enum BusinessesCommand {
    /// Load every business folder in DIR (each a `business.toml` and a `policy.rhai`) into the
    /// database: a business not there yet is created; for one that is, the folder's
    /// configuration and script become new versions (runs already started keep theirs), and an
    /// unchanged file stores nothing. Every folder is checked (its script validated and tested)
    /// before anything is stored: one invalid folder stores none. Exit code: 0 imported, 1
    /// invalid.
    Import(ImportArgs),
}

/// Options of `businesses import`.
#[derive(Args, Clone, Debug)]
pub struct ImportArgs {
    /// The folder of business folders (like `scripts/`).
    pub dir: PathBuf,

    /// Database that keeps the businesses (the server's).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://switchboard.db")]
    pub database_url: String,
}

/// Runs the command, writing what it stored to `out` and problems to `err`; returns the exit
/// code.
pub async fn run(
    command: BusinessesCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<i32> {
    let BusinessesCommand::Import(args) = command;
    let definitions = match business::folders(&args.dir) {
        Ok(d) if d.is_empty() => {
            writeln!(
                err,
                "{}: no business folder (one holding a business.toml)",
                args.dir.display()
            )?;
            return Ok(1);
        }
        Ok(d) => d,
        Err(e) => {
            writeln!(err, "{e}")?;
            return Ok(1);
        }
    };
    let host = ScriptHost::new(Limits::default(), 1)?;
    let mut reports = Vec::new();
    for d in &definitions {
        let report = validate(&host, &d.business, &d.script).await;
        if !report.valid {
            for problem in report.problems() {
                writeln!(err, "{}/policy.rhai: {problem}", d.business.id)?;
            }
            return Ok(1);
        }
        reports.push(report);
    }
    let db = Db::connect(&args.database_url, 2).await?;
    switchboard_engine::migrate(&db).await?;
    let mut tx = db.begin().await?;
    let mut stored = Vec::new();
    for (d, report) in definitions.iter().zip(&reports) {
        let config = store::configs::store_and_activate(&mut tx, &d.business).await?;
        let script =
            store::scripts::store_and_activate(&mut tx, &d.business.id, &report.hash, &d.script)
                .await?;
        stored.push((d.business.id.clone(), config, script));
    }
    tx.commit().await?;
    let said = |(version, new): (i64, bool)| match new {
        true => format!("version {version} (new)"),
        false => format!("version {version} (unchanged)"),
    };
    for (id, config, script) in stored {
        writeln!(
            out,
            "{id}: configuration {}, script {}",
            said(config),
            said(script)
        )?;
    }
    Ok(0)
}
