//! Script decision cost: `route` + `score` of a shipped script, in place and as a step pays it.

use std::sync::Arc;
use std::time::Instant;

use switchboard_engine::Db;
use switchboard_workflows::business::shipped;
use switchboard_workflows::policy::{Policy, sample_analysis, script_name};
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
