//! The `switchboard` command: `serve` (default) runs the API, the dashboard and the workers;
//! `scripts` checks and tests business scripts from files; `agents sync` creates or updates the
//! businesses' voice agents at ElevenLabs.

use clap::{Parser, Subcommand};
use switchboard_api::agents_cli::{self, AgentsCommand};
use switchboard_api::bench::{self, BenchOptions};
use switchboard_api::config::Config;
use switchboard_api::scripts_cli::{self, ScriptsCommand};
use switchboard_api::startup::{Application, Overrides};
use tracing_subscriber::EnvFilter;

/// Durable workflow engine for AI outbound-calling pipelines.
///
/// Without provider keys, calls and analyses go to a built-in simulator that speaks the real
/// wire formats and posts signed webhooks back, so the whole pipeline runs locally.
#[derive(Parser, Debug)]
#[command(name = "switchboard", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Config,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the API, the dashboard and the workers (the default).
    Serve(Box<Config>),
    /// Measure this machine: print a table of figures and write them as JSON (use a release
    /// build).
    Bench(BenchOptions),
    /// Check and test business scripts from files (`scripts/<business>/`).
    Scripts {
        #[command(subcommand)]
        command: ScriptsCommand,
    },
    /// Create or update the businesses' voice agents at ElevenLabs (`agents sync`).
    Agents {
        #[command(subcommand)]
        command: AgentsCommand,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = match cli.command {
        Some(Command::Serve(c)) => *c,
        Some(Command::Bench(opts)) => return bench::run(opts).await,
        Some(Command::Scripts { command }) => {
            std::process::exit(scripts_cli::run(command).await?);
        }
        Some(Command::Agents { command }) => {
            let code =
                agents_cli::run(command, &mut std::io::stdout(), &mut std::io::stderr()).await?;
            std::process::exit(code);
        }
        None => cli.serve,
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&config.log)?)
        .init();
    let app = Application::build(config, Overrides::default()).await?;
    println!(
        "Switchboard is serving the API and dashboard on {}",
        app.public_url()
    );
    app.run_until(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing steps in flight");
}
