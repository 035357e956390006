//! Script costs: `route` + `score` of a shipped script, in place and as a step pays it; one
//! business' decisions while another floods the script threads; the time limit's overrun.

use std::sync::Arc;
use std::time::Instant;

use switchboard_engine::Db;
use switchboard_workflows::business::shipped;
use switchboard_workflows::policy::{BusinessClock, Policy, sample_analysis, script_name};
use switchboard_workflows::scripting::decisions::{RouteChoice, ScoreChoice};
use switchboard_workflows::scripting::host::{HookArgs, ScriptHost};
use switchboard_workflows::scripting::host_api::{HostEnv, sample_lead};
use switchboard_workflows::scripting::sandbox::Limits;

use super::{Figure, latency};

/// Script decision cost: `route(lead)` + `score(lead, analysis)` of the shipped real-estate
/// script with a warm compile cache.
pub(super) async fn script_decision(iterations: usize) -> anyhow::Result<Vec<Figure>> {
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
    let policy = Policy::new(host, db).with_clock(BusinessClock::starting_at(clock));
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
        latency(
            "script_decision (in place)",
            "-",
            "route + score of scripts/realty on the calling thread, warm cache, arguments prepared",
            in_place,
        ),
        latency(
            "script_decision (as a step)",
            "-",
            "route + score through the script threads: arguments, hop, strict parsing, checks",
            via_step,
        ),
    ])
}

/// Script fairness: one business' decision latency through the script threads, alone and while
/// another business floods the same threads with heavy `fn test_*()` calls (12 at a time, each
/// busy for its whole time limit), as concurrent validations do. And the time limit: how far past
/// it a loop of each of the costliest operations at the data limits runs.
pub(super) async fn script_fairness(iterations: usize) -> anyhow::Result<Vec<Figure>> {
    use std::sync::atomic::{AtomicBool, Ordering};

    let realty = shipped()
        .into_iter()
        .find(|d| d.business.id == "realty")
        .expect("realty is shipped");
    let limits = Limits::default();
    let host = Arc::new(ScriptHost::new(limits.clone(), 2)?);
    let script = host
        .compile(&script_name(&realty.business.id), &realty.script)
        .await?;
    let clock = switchboard_workflows::scripting::host_api::test_clock(realty.business.tz());
    let env = Arc::new(HostEnv::for_business(
        &realty.business,
        clock,
        Vec::new(),
        false,
    ));
    let lead = sample_lead(clock);
    let decide = || async {
        let start = Instant::now();
        host.call::<RouteChoice, _>(&script, "route", (lead.clone(),), &env)
            .await
            .map_err(anyhow::Error::msg)?;
        anyhow::Ok(start.elapsed())
    };
    let mut alone = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        alone.push(decide().await?);
    }

    // The flood: 12 calls at a time of a test that computes until its time limit stops it, by
    // another business, then (for contrast: what first come, first served would give) by the
    // deciding business itself.
    let flooded = |tenant: String, n: usize| {
        let (host, env) = (host.clone(), env.clone());
        let decide = &decide;
        async move {
            let heavy = host
                .compile(
                    &tenant,
                    "fn test_busy() { let a = []; a.pad(10000, 1); let b = a; loop { a == b; } }",
                )
                .await?;
            let stop = Arc::new(AtomicBool::new(false));
            let mut flood = Vec::new();
            for _ in 0..12 {
                let (host, heavy, env, stop) =
                    (host.clone(), heavy.clone(), env.clone(), stop.clone());
                flood.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = host.run_function(&heavy, "test_busy", &env).await;
                    }
                }));
            }
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                samples.push(decide().await?);
            }
            stop.store(true, Ordering::Relaxed);
            for f in flood {
                f.await?;
            }
            anyhow::Ok(samples)
        }
    };
    let by_another = flooded("flood/policy.rhai".into(), iterations / 10).await?;
    let by_itself = flooded(script_name(&realty.business.id), iterations / 20).await?;

    // The costliest single operations at the data limits, each called until the time limit:
    // how far past it a script runs is what one operation can cost.
    let size = limits.max_array_size;
    let mut figures = Vec::new();
    for (label, op) in COSTLY {
        let source = format!(
            "fn test_costly() {{ let a = []; a.pad({size}, 1); let b = a; let f = []; \
             f.pad({size}, 1.5); let row = []; row.pad(99, 1); let nested = []; \
             nested.pad({}, row); let same = nested; let n = 0; loop {{ {op}; n += 1; }} }}",
            size / 100
        );
        let costly = host.compile("costly/policy.rhai", &source).await?;
        let mut overrun = Vec::new();
        for _ in 0..iterations.min(30) {
            let start = Instant::now();
            let stopped = host.run_function(&costly, "test_costly", &env).await;
            anyhow::ensure!(
                stopped
                    .as_ref()
                    .is_err_and(|e| e.message.contains("time limit")),
                "{label}: not stopped by the clock: {stopped:?}"
            );
            overrun.push(start.elapsed().saturating_sub(limits.max_time));
        }
        figures.push(latency(
            &format!("script_time_limit ({label})"),
            "-",
            &format!("how long past its time limit a loop of `{op}` runs, at the data limits"),
            overrun,
        ));
    }
    Ok([
        latency(
            "script_fairness (alone)",
            "-",
            "route of scripts/realty through 2 script threads, nothing else running",
            alone,
        ),
        latency(
            "script_fairness (flooded by another business)",
            "-",
            "the same while another business keeps 12 time-limit-long (50 ms) test calls queued",
            by_another,
        ),
        latency(
            "script_fairness (flooded by itself)",
            "-",
            "the same flood by the deciding business: it waits behind its own calls",
            by_itself,
        ),
    ]
    .into_iter()
    .chain(figures)
    .collect())
}

/// Operations whose cost grows with the data they touch, at the largest data the limits allow
/// (`a`, `b`: equal arrays of ints; `f`: floats; `nested`, `same`: equal arrays of arrays).
const COSTLY: [(&str, &str); 6] = [
    ("compare arrays", "a == b"),
    ("compare nested arrays", "nested == same"),
    ("search an array", "a.index_of(2)"),
    ("a string in an array of ints", "\"x\" in a"),
    ("sort", "f.reverse(); f.sort()"),
    ("sort nested", "nested.sort(|x, y| y.len() - x.len())"),
];
