//! Policy backtest figures: a candidate script (the demo script with a higher hot threshold)
//! replayed over the decisions of real pipeline runs, its time per decision, and the check that
//! the same candidate over the same range gives the same report, byte for byte.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_workflows::backtest::{Backtest, Hook, Request};
use switchboard_workflows::business::shipped;
use switchboard_workflows::policy::Policy;
use switchboard_workflows::scripting::host::ScriptHost;
use switchboard_workflows::scripting::sandbox::Limits;
use switchboard_workflows::store;

use super::http_api::create_leads;
use super::pipeline::{BUSINESS, add_bench_business, every_run_succeeded};
use super::{Backend, BenchDb, Figure, server, shut, single};

/// Decisions each run of the bench business takes through a hook: context, route, score,
/// follow-up (an interested call, scored hot, handed off).
const DECISIONS_PER_RUN: usize = 4;

/// `decisions` decisions recorded by real runs (the demo script, simulated calls), then
/// backtested twice with a candidate that raises the hot threshold.
pub(super) async fn backtest(backend: &Backend, decisions: usize) -> anyhow::Result<Vec<Figure>> {
    let runs = decisions.div_ceil(DECISIONS_PER_RUN);
    let bench = BenchDb::create(backend, "backtest").await?;
    let (base, parts, task) = server(&bench, &[], true).await?;
    let db = parts.engine.db().clone();
    add_bench_business(&db).await?;
    let sim = json!({"outcome": "interested", "webhook_delay_ms": 0});
    create_leads(&base, runs, 16, BUSINESS, sim).await?;
    every_run_succeeded(&db, runs, Duration::from_secs(900)).await?;
    let business = store::business(&db, BUSINESS)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the bench business is stored"))?;
    let demo = shipped()
        .into_iter()
        .find(|d| d.business.id == "demo")
        .ok_or_else(|| anyhow::anyhow!("demo is shipped"))?;
    let candidate = demo.script.replace("s >= 70", "s >= 80");
    anyhow::ensure!(
        candidate != demo.script,
        "the demo script's hot threshold moved"
    );
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let policy = Policy::new(
        Arc::new(ScriptHost::new(Limits::default(), threads)?),
        db.clone(),
    );
    let now = chrono::Utc::now();
    let request = Request {
        from: now - chrono::Duration::days(1),
        to: now + chrono::Duration::minutes(1),
        hooks: Hook::ALL.into(),
        limit: decisions as u32,
    };
    let mut reports = Vec::new();
    let mut took = Vec::new();
    for _ in 0..2 {
        let backtest = Backtest::new(
            &policy,
            db.clone(),
            business.clone(),
            &candidate,
            request.clone(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let start = Instant::now();
        let report = backtest.run(|_| async { Ok(()) }).await?;
        took.push(start.elapsed());
        reports.push(serde_json::to_string(&report)?);
        anyhow::ensure!(
            report.compared as usize >= decisions * 9 / 10,
            "only {} of {decisions} decisions were replayed",
            report.compared
        );
    }
    // Stopped only now: its background tasks would complain about a closed pool meanwhile.
    shut(parts, task).await;
    bench.remove().await?;
    anyhow::ensure!(
        reports[0] == reports[1],
        "the same backtest gave two different reports"
    );
    let b = backend.name();
    let secs = took[0].as_secs_f64();
    let what = format!(
        "{decisions} decisions of {runs} real runs (context, route, score, follow-up) replayed \
         with the run's script version and a candidate, inputs read page by page"
    );
    Ok(vec![
        single("backtest", b, &what, decisions, "s", secs),
        single(
            "backtest per decision",
            b,
            "the same, per decision (both scripts' hooks, the preamble hooks, the reads)",
            decisions,
            "µs",
            secs * 1e6 / decisions as f64,
        ),
        single(
            "backtest deterministic",
            b,
            "1 when the second backtest's report is byte for byte the first's",
            2,
            "bool",
            1.0,
        ),
    ])
}
