//! The `switchboard` command: `serve` (default) runs the API, the dashboard and the workers
//! (`--no-workers`: API and dashboard only); `worker` runs workers only; `bench` measures;
//! `scripts` checks, tests and backtests business scripts from files; `businesses import` loads
//! business folders into the database; `agents sync` creates or updates the businesses' voice
//! agents at ElevenLabs.

pub mod agents;
pub mod bench;
pub mod businesses;
pub mod scripts;
pub mod store;

use crate::agents::AgentsCommand;
use crate::bench::BenchOptions;
use crate::businesses::BusinessesCommand;
use crate::scripts::ScriptsCommand;
use clap::{Parser, Subcommand};
use switchboard_api::config::{Config, LogFormat};
use switchboard_api::redact::Masked;
use switchboard_api::startup::{Application, Overrides, run_worker};
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
    Serve {
        /// Serve the API and dashboard only; `switchboard worker` processes on the same database
        /// run the steps.
        #[arg(long, env = "SWITCHBOARD_NO_WORKERS")]
        no_workers: bool,
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Run workers only (no HTTP), on the database an API process uses: any number of these and
    /// of `serve` processes may share one PostgreSQL. SIGTERM lets the steps in flight finish.
    Worker(Box<Config>),
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
    /// Load business folders into the database (`businesses import DIR`).
    Businesses {
        #[command(subcommand)]
        command: BusinessesCommand,
    },
}

/// The `switchboard` binary's `main`: runs the command and prints its error as people read it
/// (the causes on one line, no backtrace).
pub async fn run() -> std::process::ExitCode {
    run_with(Overrides::default()).await
}

/// [`run`] with `base` under the choices of the command line (the suite's processes set their
/// business clock this way; the product's binary never does).
pub async fn run_with(base: Overrides) -> std::process::ExitCode {
    match main(base).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Parses the command line and runs the command, `serve` and `worker` with `base`.
pub async fn main(base: Overrides) -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (config, no_workers) = match cli.command {
        Some(Command::Serve { no_workers, config }) => (*config, no_workers),
        Some(Command::Worker(config)) => {
            let _sentry = init_logs(&config)?;
            return run_worker(*config, &base, shutdown_signal()).await;
        }
        Some(Command::Bench(opts)) => {
            // Warnings only (RUST_LOG may ask for more): a figure taken amid errors is suspect.
            let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,sqlx=error".into());
            tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::try_new(filter)?)
                .init();
            return bench::run(opts).await;
        }
        Some(Command::Scripts { command }) => {
            std::process::exit(scripts::run(command).await?);
        }
        Some(Command::Agents { command }) => {
            let code = agents::run(command, &mut std::io::stdout(), &mut std::io::stderr()).await?;
            std::process::exit(code);
        }
        Some(Command::Businesses { command }) => {
            let code =
                businesses::run(command, &mut std::io::stdout(), &mut std::io::stderr()).await?;
            std::process::exit(code);
        }
        None => (cli.serve, false),
    };
    let _sentry = init_logs(&config)?;
    let overrides = Overrides { no_workers, ..base };
    let app = Application::build(config, overrides).await?;
    println!(
        "Switchboard is serving the API and dashboard on {}{}",
        app.public_url(),
        if no_workers { " (no workers)" } else { "" }
    );
    app.run_until(shutdown_signal()).await
}

/// Installs the log subscriber (text or JSON lines) and, with `SENTRY_DSN`, the Sentry client:
/// errors logged anywhere (a failed run, a 5xx, a panic) become Sentry events carrying their
/// fields and spans (run, business, step, attempt), tagged with this release. Keep the returned
/// guard alive: dropping it flushes what Sentry has not sent yet.
fn init_logs(config: &Config) -> anyhow::Result<Option<sentry::ClientInitGuard>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let sentry = match &config.sentry_dsn {
        Some(dsn) => Some(sentry::init(sentry::ClientOptions {
            dsn: Some(
                dsn.parse()
                    .map_err(|e| anyhow::anyhow!("SENTRY_DSN: {e}"))?,
            ),
            release: sentry::release_name!(),
            environment: config.sentry_environment.clone().map(Into::into),
            before_send: Some(std::sync::Arc::new(switchboard_api::redact::sentry_event)),
            ..Default::default()
        })),
        None => None,
    };
    let sentry_layer = sentry
        .as_ref()
        .map(|_| sentry::integrations::tracing::layer());
    let logs = tracing_subscriber::registry()
        .with(EnvFilter::try_new(&config.log)?)
        .with(sentry_layer);
    let lines = tracing_subscriber::fmt::layer().with_writer(Masked(std::io::stdout));
    match config.log_format {
        LogFormat::Text => logs.with(lines).init(),
        LogFormat::Json => logs.with(lines.json().flatten_event(true)).init(),
    }
    Ok(sentry)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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
