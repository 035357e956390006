//! `switchboard bench`: figures measured on this machine, printed as a table and written as JSON.
//! Each scenario names what it measures; BENCHMARKS.md records the command and the results.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use switchboard_engine::Db;
use switchboard_workflows::business::shipped;
use switchboard_workflows::policy::{Policy, sample_analysis, script_name};
use switchboard_workflows::scripting::decisions::{RouteChoice, ScoreChoice};
use switchboard_workflows::scripting::host::{HookArgs, ScriptHost};
use switchboard_workflows::scripting::host_api::{HostEnv, sample_lead};
use switchboard_workflows::scripting::sandbox::Limits;

/// What to measure.
#[derive(Args, Debug)]
pub struct BenchOptions {
    /// Fewer iterations: every figure in well under a minute.
    #[arg(long)]
    pub quick: bool,
    /// Run only the scenarios whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
    /// Where to write the figures as JSON.
    #[arg(long, default_value = "bench-results.json")]
    pub out: PathBuf,
}

/// One measured figure.
#[derive(Debug, Serialize)]
pub struct Figure {
    pub scenario: String,
    pub what: String,
    pub iterations: usize,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// Runs the benchmarks; prints a table and writes JSON.
pub async fn run(opts: BenchOptions) -> anyhow::Result<()> {
    let wanted = |name: &str| opts.only.as_deref().is_none_or(|o| name.contains(o));
    let mut figures = Vec::new();
    if wanted("script_decision") {
        figures.extend(script_decision(if opts.quick { 5_000 } else { 50_000 }).await?);
    }
    if wanted("personalize") {
        figures.extend(personalize(if opts.quick { 500 } else { 5_000 }).await?);
    }
    if wanted("runs_list") {
        let (runs, iterations) = if opts.quick {
            (10_000, 50)
        } else {
            (100_000, 300)
        };
        figures.extend(runs_list(runs, iterations).await?);
    }
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>10}",
        "scenario", "iterations", "mean µs", "p50 µs", "p99 µs"
    );
    for f in &figures {
        println!(
            "{:<34} {:>10} {:>10.2} {:>10.2} {:>10.2}\n  {}",
            f.scenario, f.iterations, f.mean_us, f.p50_us, f.p99_us, f.what
        );
    }
    let json = serde_json::json!({
        "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) },
        "figures": figures,
    });
    std::fs::write(&opts.out, serde_json::to_string_pretty(&json)?)?;
    println!("written to {}", opts.out.display());
    Ok(())
}

fn summarise(scenario: &str, what: &str, mut samples: Vec<Duration>) -> Figure {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let n = samples.len();
    Figure {
        scenario: scenario.into(),
        what: what.into(),
        iterations: n,
        mean_us: samples.iter().map(|d| us(*d)).sum::<f64>() / n as f64,
        p50_us: us(samples[n / 2]),
        p99_us: us(samples[(n * 99 / 100).min(n - 1)]),
    }
}

/// Script decision cost: `route(lead)` + `score(lead, analysis)` of the shipped real-estate
/// script with a warm compile cache.
async fn script_decision(iterations: usize) -> anyhow::Result<Vec<Figure>> {
    let realty = shipped()
        .into_iter()
        .find(|d| d.business.id == "realty")
        .expect("realty is shipped");
    let host = Arc::new(ScriptHost::new(Limits::default(), 1)?);
    let name = script_name(&realty.business.id);
    let script = host.compile(&name, &realty.script).await?;
    let clock = switchboard_workflows::scripting::host_api::test_clock(realty.business.tz());
    let mut lead = sample_lead(clock);
    lead.source = Some("zillow".into());
    lead.fields.insert("budget_range".into(), "500K-1M".into());
    let analysis = sample_analysis();
    let env = Arc::new(HostEnv::for_business(
        &realty.business,
        clock,
        Vec::new(),
        false,
    ));

    // In place: the hook calls and strict parsing, arguments already converted.
    let route_args = (lead.clone(),)
        .into_dynamics()
        .map_err(anyhow::Error::msg)?;
    let score_args = (lead.clone(), analysis.clone())
        .into_dynamics()
        .map_err(anyhow::Error::msg)?;
    let mut in_place = Vec::with_capacity(iterations);
    for i in 0..iterations + iterations / 10 {
        let start = Instant::now();
        host.call_on_this_thread::<RouteChoice>(&script, "route", route_args.clone(), &env)?;
        host.call_on_this_thread::<ScoreChoice>(&script, "score", score_args.clone(), &env)?;
        if i >= iterations / 10 {
            in_place.push(start.elapsed());
        }
    }

    // As a step pays it: arguments converted, the hop to a script thread and back, parsing
    // and checking the decision against the business.
    let db = Db::connect("sqlite::memory:", 1).await?;
    let policy = Policy::new(host, db).with_clock(Some(clock));
    let decider = policy
        .for_source(&realty.business, lead, &realty.script, Vec::new())
        .await?;
    let mut via_step = Vec::with_capacity(iterations);
    for i in 0..iterations + iterations / 10 {
        let start = Instant::now();
        let route = decider.route().await;
        let score = decider.score(&analysis).await;
        if i >= iterations / 10 {
            via_step.push(start.elapsed());
        }
        anyhow::ensure!(
            route.error.is_none() && score.error.is_none(),
            "the script failed"
        );
    }
    Ok(vec![
        summarise(
            "script_decision (in place)",
            "route + score of scripts/realty on the calling thread, warm cache, arguments prepared",
            in_place,
        ),
        summarise(
            "script_decision (as a step)",
            "route + score through the script threads: arguments, hop, strict parsing, checks",
            via_step,
        ),
    ])
}

/// A server on a fresh SQLite file in a temp dir, without workers: its base URL, its engine, the
/// serving task and the dir to remove.
async fn bench_server(
    name: &str,
    extra: &[&str],
) -> anyhow::Result<(
    String,
    switchboard_engine::Engine,
    tokio::task::JoinHandle<std::io::Result<()>>,
    PathBuf,
)> {
    use clap::Parser;
    #[derive(Parser)]
    struct Settings {
        #[command(flatten)]
        config: crate::config::Config,
    }
    let dir = std::env::temp_dir().join(format!("switchboard-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let mut args = vec![
        "bench",
        "--addr",
        "127.0.0.1:0",
        "--queue-board-addr",
        "127.0.0.1:0",
        "--database-url",
        &url,
        "--log",
        "warn",
    ];
    args.extend_from_slice(extra);
    let settings = Settings::try_parse_from(args)?;
    let overrides = crate::startup::Overrides {
        no_workers: true,
        ..Default::default()
    };
    let app = crate::startup::Application::build(settings.config, overrides).await?;
    let base = app.public_url().to_owned();
    let parts = app.into_parts();
    let server = tokio::spawn(parts.serve);
    Ok((base, parts.engine, server, dir))
}

/// `GET /api/v1/runs` with `runs` runs stored (SQLite file, over loopback HTTP): the first page,
/// filtered by business, by status, both, and a page deep in the list by cursor.
async fn runs_list(runs: usize, iterations: usize) -> anyhow::Result<Vec<Figure>> {
    use switchboard_engine::store::runs::{RunRow, insert};
    let (base, engine, server, dir) = bench_server("runs", &[]).await?;
    let businesses = ["demo", "realty", "dental", "saas"];
    let statuses = [
        "succeeded",
        "succeeded",
        "succeeded",
        "failed",
        "waiting",
        "cancelled",
    ];
    let mut middle = None;
    for chunk in 0..runs.div_ceil(1_000) {
        let mut tx = engine.db().begin().await?;
        for i in chunk * 1_000..((chunk + 1) * 1_000).min(runs) {
            let now = switchboard_engine::ids::now_ms();
            let row = RunRow {
                id: switchboard_engine::ids::new_id(),
                workflow: "lead_call".into(),
                business_id: businesses[i % businesses.len()].into(),
                subject_id: switchboard_engine::ids::new_id(),
                status: statuses[i % statuses.len()].into(),
                current_step: Some("follow_up".into()),
                current_row: None,
                seq: 8,
                outcome: Some("handed_off".into()),
                error: None,
                wait_kind: None,
                wait_key: None,
                wait_until: None,
                created_at: now,
                updated_at: now,
            };
            if i == runs / 2 {
                middle = Some(row.id.clone());
            }
            insert(&mut tx, &row).await?;
        }
        tx.commit().await?;
    }
    let middle = middle.unwrap_or_default();
    let client = reqwest::Client::new();
    let mut figures = Vec::new();
    let cases = [
        ("first page", "?limit=50".to_owned()),
        ("one business", "?business=realty&limit=50".to_owned()),
        ("one status", "?status=failed&limit=50".to_owned()),
        (
            "business and status",
            "?business=dental&status=waiting&limit=50".to_owned(),
        ),
        ("a page halfway down", format!("?limit=50&cursor={middle}")),
        ("counts per status", "/counts".to_owned()),
        (
            "counts of one business",
            "/counts?business=realty".to_owned(),
        ),
    ];
    for (label, query) in cases {
        let url = format!("{base}/api/v1/runs{query}");
        let mut samples = Vec::with_capacity(iterations);
        for i in 0..iterations + iterations / 10 {
            let start = Instant::now();
            let answer = client.get(&url).send().await?;
            anyhow::ensure!(
                answer.status() == 200,
                "runs list answered {}",
                answer.status()
            );
            let body: serde_json::Value = answer.json().await?;
            let full_page = body["runs"].as_array().is_some_and(|r| r.len() == 50);
            anyhow::ensure!(full_page || body["total"].as_u64().is_some(), "{body}");
            if i >= iterations / 10 {
                samples.push(start.elapsed());
            }
        }
        figures.push(summarise(
            &format!("runs_list ({label})"),
            &format!("GET /api/v1/runs{query} with {runs} runs stored, SQLite, loopback HTTP"),
            samples,
        ));
    }
    server.abort();
    std::fs::remove_dir_all(&dir).ok();
    Ok(figures)
}

/// Inbound personalisation latency as ElevenLabs sees it: `POST /api/v1/webhooks/elevenlabs/
/// personalize` over loopback HTTP on a SQLite file holding one lead, for that lead and for a
/// new caller.
async fn personalize(iterations: usize) -> anyhow::Result<Vec<Figure>> {
    let secret = "bench-personalization-secret";
    let (base, _engine, server, dir) = bench_server(
        "personalize",
        &["--elevenlabs-personalization-secret", secret],
    )
    .await?;
    let client = reqwest::Client::new();
    let lead = serde_json::json!({"business": "demo", "name": "Ada Lovelace",
        "phone": "+14155552671"});
    let created = client
        .post(format!("{base}/api/v1/leads"))
        .json(&lead)
        .send()
        .await?;
    anyhow::ensure!(
        created.status() == 201,
        "lead not created: {}",
        created.status()
    );
    let mut figures = Vec::new();
    for (label, caller) in [
        ("known lead", "+14155552671"),
        ("new caller", "+442071838750"),
    ] {
        let body = serde_json::json!({"caller_id": caller, "agent_id": "agent_demo_realty",
            "called_number": "+18885550100", "call_sid": "CA1"});
        let mut samples = Vec::with_capacity(iterations);
        for i in 0..iterations + iterations / 10 {
            let start = Instant::now();
            let answer = client
                .post(format!("{base}/api/v1/webhooks/elevenlabs/personalize"))
                .header("X-Switchboard-Secret", secret)
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(
                answer.status() == 200,
                "personalize answered {}",
                answer.status()
            );
            answer.bytes().await?;
            if i >= iterations / 10 {
                samples.push(start.elapsed());
            }
        }
        figures.push(summarise(
            &format!("personalize ({label})"),
            "inbound personalisation request over loopback HTTP, SQLite, as the provider waits",
            samples,
        ));
    }
    server.abort();
    std::fs::remove_dir_all(&dir).ok();
    Ok(figures)
}
