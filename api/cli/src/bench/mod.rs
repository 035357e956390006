//! `switchboard bench`: figures measured on this machine, printed as a table and written as JSON.
//! Each scenario names what it measures; BENCHMARKS.md records the command and the results.
//!
//! Scenarios that touch a database run on a fresh SQLite file and, with `--postgres`, on a fresh
//! PostgreSQL database each, removed afterwards. Servers run in this process over loopback HTTP;
//! worker processes and measured servers are this binary started as `worker` / `serve`.

mod backtest;
mod decisions;
mod engine;
mod http_api;
mod limit;
mod pipeline;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use switchboard_engine::Db;

use switchboard_api::config::Config;
use switchboard_api::startup::{Application, Overrides, Parts};

/// What to measure.
#[derive(Args, Debug)]
pub struct BenchOptions {
    /// Fewer iterations and smaller data sets: every figure in about two minutes.
    #[arg(long)]
    pub quick: bool,
    /// Run only the scenarios whose name contains this: script_decision, script_fairness,
    /// personalize, db_commit_limit, raw_apalis, engine, pipeline (the last two run
    /// db_commit_limit and raw_apalis too, for their ratios), step_overhead, webhook_resume,
    /// intake, runs_list, memory, backtest.
    #[arg(long)]
    pub only: Option<String>,
    /// Where to write the figures as JSON.
    #[arg(long, default_value = "bench-results.json")]
    pub out: PathBuf,
    /// A PostgreSQL server to measure on as well (a URL whose user may create databases, e.g.
    /// `postgres://postgres@127.0.0.1:5432/postgres`); each scenario gets a database of its own,
    /// dropped afterwards. Without it only SQLite is measured.
    #[arg(long, env = "SWITCHBOARD_BENCH_POSTGRES")]
    pub postgres: Option<String>,
    /// Keep each scenario's database for inspection (their names are printed).
    #[arg(long)]
    pub keep: bool,
}

/// `--keep`: leave the databases behind.
static KEEP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// One measured figure.
#[derive(Debug, Serialize)]
pub struct Figure {
    pub scenario: String,
    /// `sqlite`, `postgres`, or `-` when no database is involved.
    pub backend: String,
    pub what: String,
    /// Samples, runs, requests or tasks behind the figure.
    pub n: usize,
    pub unit: String,
    /// The mean of a latency, or the figure itself (a rate, a total, a size).
    pub value: f64,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

/// Where a scenario's database lives.
#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Sqlite,
    Postgres { admin_url: String },
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }
}

/// Runs the benchmarks; prints a table and writes JSON.
pub async fn run(opts: BenchOptions) -> anyhow::Result<()> {
    let quick = opts.quick;
    let mut backends = vec![Backend::Sqlite];
    if let Some(url) = &opts.postgres {
        backends.push(Backend::Postgres {
            admin_url: url.clone(),
        });
    }
    KEEP.store(opts.keep, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let mut figures = Vec::new();
    let measured = measure(&opts, &backends, &mut figures).await;
    print_table(&figures);
    measured?;
    let json = serde_json::json!({
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "os": std::env::consts::OS,
        },
        "quick": quick,
        "seconds": started.elapsed().as_secs_f64(),
        "figures": figures,
    });
    std::fs::write(&opts.out, serde_json::to_string_pretty(&json)?)?;
    println!(
        "{} figures in {:.0} s, written to {}",
        figures.len(),
        started.elapsed().as_secs_f64(),
        opts.out.display()
    );
    Ok(())
}

/// Runs the wanted scenarios on every backend, adding their figures as they come.
async fn measure(
    opts: &BenchOptions,
    backends: &[Backend],
    figures: &mut Vec<Figure>,
) -> anyhow::Result<()> {
    let wanted = |name: &str| opts.only.as_deref().is_none_or(|o| name.contains(o));
    let quick = opts.quick;
    if wanted("script_decision") {
        figures.extend(decisions::script_decision(if quick { 5_000 } else { 50_000 }).await?);
    }
    if wanted("script_fairness") {
        figures.extend(decisions::script_fairness(if quick { 100 } else { 1_000 }).await?);
    }
    if wanted("personalize") {
        figures.extend(http_api::personalize(if quick { 500 } else { 5_000 }).await?);
    }
    for backend in backends {
        let b = backend;
        // The baselines engine figures are read against, measured in this run.
        if wanted("db_commit_limit")
            || wanted("raw_apalis")
            || wanted("engine")
            || wanted("pipeline")
        {
            let secs = Duration::from_secs(if quick { 2 } else { 5 });
            let (limit_figures, commits) = limit::commit_limit(b, secs).await?;
            figures.extend(limit_figures);
            let tasks = if quick { 2_000 } else { 10_000 };
            let raw = engine::raw_apalis(b, tasks).await?;
            let raw_rate = raw.value;
            figures.push(raw);
            if wanted("engine") {
                let runs = if quick { 300 } else { 2_000 };
                figures.extend(engine::throughput(b, runs, raw_rate, commits).await?);
            }
            if wanted("pipeline") {
                let runs = if quick { 150 } else { 1_000 };
                for processes in [1, 3] {
                    let baselines = pipeline::Baselines {
                        raw_tasks_per_sec: raw_rate,
                        commits_per_sec: commits,
                    };
                    figures.extend(pipeline::throughput(b, processes, runs, baselines).await?);
                }
            }
        }
        if wanted("step_overhead") {
            figures.extend(engine::step_overhead(b, if quick { 1 } else { 3 }).await?);
        }
        if wanted("webhook_resume") {
            let (waiting, samples) = if quick { (300, 50) } else { (1_000, 300) };
            figures.push(pipeline::webhook_resume(b, waiting, samples).await?);
        }
        if wanted("intake") {
            let secs = if quick { 3 } else { 10 };
            figures.extend(http_api::intake(b, Duration::from_secs(secs), 16).await?);
        }
        if wanted("runs_list") {
            let (runs, iterations) = if quick {
                (20_000, 100)
            } else {
                (1_000_000, 300)
            };
            figures.extend(http_api::runs_list(b, runs, iterations).await?);
        }
        if wanted("backtest") {
            let decisions = if quick { 1_000 } else { 10_000 };
            figures.extend(backtest::backtest(b, decisions).await?);
        }
        if wanted("memory") {
            let (waiting, settle) = if quick { (10_000, 2) } else { (100_000, 5) };
            figures.extend(engine::memory(b, waiting, Duration::from_secs(settle)).await?);
        }
    }
    Ok(())
}

fn print_table(figures: &[Figure]) {
    println!(
        "{:<44} {:<8} {:>8} {:>12} {:>10} {:>10}  unit",
        "scenario", "backend", "n", "value", "p50", "p99"
    );
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
    for f in figures {
        println!(
            "{:<44} {:<8} {:>8} {:>12.2} {:>10} {:>10}  {}\n    {}",
            f.scenario,
            f.backend,
            f.n,
            f.value,
            opt(f.p50),
            opt(f.p99),
            f.unit,
            f.what
        );
    }
}

/// A latency figure: mean, p50 and p99 of `samples`, in µs below a millisecond, else in ms.
fn latency(scenario: &str, backend: &str, what: &str, mut samples: Vec<Duration>) -> Figure {
    samples.sort();
    let n = samples.len().max(1);
    let mean = samples.iter().sum::<Duration>() / n as u32;
    let (unit, scale) = if mean < Duration::from_millis(1) {
        ("µs", 1e6)
    } else {
        ("ms", 1e3)
    };
    let at = |q: usize| {
        samples
            .get((n * q / 100).min(n - 1))
            .map(|d| d.as_secs_f64() * scale)
    };
    Figure {
        scenario: scenario.into(),
        backend: backend.into(),
        what: what.into(),
        n: samples.len(),
        unit: unit.into(),
        value: mean.as_secs_f64() * scale,
        p50: at(50),
        p99: at(99),
    }
}

/// A single-valued figure (a rate, a total, a size).
fn single(scenario: &str, backend: &str, what: &str, n: usize, unit: &str, value: f64) -> Figure {
    Figure {
        scenario: scenario.into(),
        backend: backend.into(),
        what: what.into(),
        n,
        unit: unit.into(),
        value,
        p50: None,
        p99: None,
    }
}

/// A fresh database for one scenario; [`BenchDb::remove`] deletes it.
pub(crate) struct BenchDb {
    pub url: String,
    backend: Backend,
    name: String,
    dir: PathBuf,
}

impl BenchDb {
    pub async fn create(backend: &Backend, label: &str) -> anyhow::Result<BenchDb> {
        let name = format!(
            "sb_bench_{label}_{}",
            &uuid::Uuid::now_v7().simple().to_string()[20..]
        );
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir)?;
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.join("bench.db").display()),
            Backend::Postgres { admin_url } => {
                crate::store::bench::create_database(admin_url, &name).await?;
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b);
                format!("{base}/{name}")
            }
        };
        Ok(BenchDb {
            url,
            backend: backend.clone(),
            name,
            dir,
        })
    }

    pub async fn remove(self) -> anyhow::Result<()> {
        if KEEP.load(std::sync::atomic::Ordering::Relaxed) {
            println!("kept {}", self.url);
            return Ok(());
        }
        std::fs::remove_dir_all(&self.dir).ok();
        if let Backend::Postgres { admin_url } = &self.backend {
            crate::store::bench::drop_database(admin_url, &self.name).await?;
        }
        Ok(())
    }
}

/// Settings as `switchboard serve` would parse them from `args` (plus quiet logs, any free
/// ports and no global call cap: the figures measure the engine, not the provider plan).
pub(crate) fn config(db: &BenchDb, args: &[&str]) -> anyhow::Result<Config> {
    use clap::Parser;
    #[derive(Parser)]
    struct Settings {
        #[command(flatten)]
        config: Config,
    }
    let mut all = vec!["bench".to_owned(), "--addr".into(), "127.0.0.1:0".into()];
    all.extend(common_args(db));
    all.extend(args.iter().map(|a| a.to_string()));
    Ok(Settings::try_parse_from(all)?.config)
}

fn common_args(db: &BenchDb) -> Vec<String> {
    [
        "--queue-board-addr",
        "127.0.0.1:0",
        "--database-url",
        &db.url,
        "--log",
        "warn",
        "--max-concurrent-calls",
        "1000000",
        "--elevenlabs-webhook-secret",
        WEBHOOK_SECRET,
        "--operator-key",
        OPERATOR_KEY,
        // The bench measures the service, not its abuse limits.
        "--key-rate-limit",
        "1000000",
        "--address-rate-limit",
        "1000000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The webhook secret of every bench server and worker.
pub(crate) const WEBHOOK_SECRET: &str = "bench-webhook-secret-0123456789";

/// The operator key of every bench server.
pub(crate) const OPERATOR_KEY: &str = "sbk_bench-operator-key-0123456789";

/// An HTTP client that authenticates as the bench's operator.
pub(crate) fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {OPERATOR_KEY}")
        .parse()
        .expect("a header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("a client")
}

/// A server in this process: its base URL, its parts and its serving task; [`shut`] stops it.
pub(crate) async fn server(
    db: &BenchDb,
    args: &[&str],
    workers: bool,
) -> anyhow::Result<(String, Parts, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let overrides = Overrides {
        no_workers: !workers,
        ..Overrides::default()
    };
    // A process without workers needs few connections (PostgreSQL allows 100 in all by default,
    // and the worker processes beside it need theirs).
    let lean = ["--worker-concurrency", "4", "--db-connections", "12"];
    let args: Vec<&str> = if workers {
        args.to_vec()
    } else {
        lean.iter().chain(args).copied().collect()
    };
    let app = Application::build(config(db, &args)?, overrides).await?;
    let base = app.public_url().to_owned();
    let mut parts = app.into_parts();
    let serve = std::mem::replace(&mut parts.serve, Box::pin(std::future::pending()));
    let task = tokio::spawn(serve);
    Ok((base, parts, task))
}

/// Stops a server started by [`server`]: its background jobs, its workers, its serving task,
/// its pool.
pub(crate) async fn shut(mut parts: Parts, task: tokio::task::JoinHandle<std::io::Result<()>>) {
    parts.background.take();
    if let Some(workers) = parts.workers.take() {
        workers.stop().await;
    }
    task.abort();
    parts.engine.db().close().await;
}

/// This binary started as `switchboard <role> …` on the scenario's database, quiet; it is killed
/// when the handle is dropped.
pub(crate) fn spawn_process(
    db: &BenchDb,
    role: &str,
    args: &[&str],
) -> anyhow::Result<tokio::process::Child> {
    let exe = std::env::current_exe()?;
    let child = tokio::process::Command::new(exe)
        .arg(role)
        .args(common_args(db))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    Ok(child)
}

/// Asks a child to stop (SIGTERM) and waits for it.
pub(crate) async fn stop_process(mut child: tokio::process::Child) -> anyhow::Result<()> {
    if let Some(pid) = child.id() {
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
    }
    match tokio::time::timeout(Duration::from_secs(40), child.wait()).await {
        Ok(status) => {
            status?;
        }
        Err(_) => child.kill().await?,
    }
    Ok(())
}

/// Waits until `check` returns `Some`, polling every `every`, for at most `within`.
pub(crate) async fn until<T, F, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(every).await;
    }
}

/// Steps that succeeded in a scenario's database, and the seconds from the first one's start to
/// the last one's end.
pub(crate) async fn succeeded_steps(db: &Db) -> anyhow::Result<(usize, f64)> {
    let (steps, first, last) = switchboard_engine::store::steps::succeeded_span(db).await?;
    let ms = (last.unwrap_or(0) - first.unwrap_or(0)).max(1);
    Ok((steps as usize, ms as f64 / 1000.0))
}

/// Runs of a workflow by status.
pub(crate) async fn count_runs(db: &Db, status: &str) -> anyhow::Result<i64> {
    let counts = switchboard_engine::store::runs::count_by_status(db, None).await?;
    Ok(counts
        .into_iter()
        .find(|(s, _)| s == status)
        .map_or(0, |(_, n)| n))
}
