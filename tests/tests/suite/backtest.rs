//! Policy backtests through the API: a candidate script replayed over a business' recorded
//! decisions reports exactly what it would change, changes nothing itself, contains a hostile
//! candidate and never reads another business' runs.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::*;

crate::on_both_backends!(
    a_raised_hot_threshold_moves_exactly_the_expected_leads_from_hot_to_warm,
    a_candidate_identical_to_the_active_version_changes_nothing,
    a_hostile_candidate_is_contained_and_reported,
    another_business_decisions_are_never_read,
    bad_backtests_are_refused_and_change_nothing,
    a_backtest_whose_process_stopped_reads_interrupted_and_blocks_nothing,
    the_cli_backtests_a_script_folder_against_the_database,
);

/// Scores a lead by the points in its source: hot from `hot`, warm from 40. Every run stops
/// after its first call, so no call-again adds decisions while a test counts them.
pub(crate) fn scoring(hot: u32) -> String {
    format!(
        r#"fn score(lead, analysis) {{
    let s = parse_int(lead.source);
    let tag = if s >= {hot} {{ "hot" }} else if s >= 40 {{ "warm" }} else {{ "cold" }};
    #{{ score: s, tag: tag, reasons: [`${{s}} points`] }}
}}

fn follow_up(run) {{
    #{{ action: "stop", outcome: "scored" }}
}}
"#
    )
}

/// Leads of `business` whose calls connect, one per entry of `points` (their source), each
/// waited for until its first follow-up is decided; their run ids.
pub(crate) async fn scored_leads(
    app: &TestApp,
    business: &str,
    phone_base: u32,
    points: &[u32],
) -> Vec<String> {
    let mut runs = Vec::new();
    for (i, p) in points.iter().enumerate() {
        let body = json!({
            "business": business,
            "name": format!("Lead {i}"),
            "phone": format!("+1415555{:04}", phone_base + i as u32),
            "source": p.to_string(),
            "custom_fields": fields(business),
            "sim": {"outcome": "interested"},
        });
        runs.push(app.create_lead_with(&body).await.1);
    }
    for run in &runs {
        app.first_follow_up_decided(run).await;
    }
    runs
}

/// Custom fields `business` requires.
fn fields(business: &str) -> Value {
    match business {
        "realty" => json!({"budget_range": "500K-1M"}),
        _ => json!({}),
    }
}

/// Starts a backtest of `source` for `business` (plus `extra` fields) and waits for its end.
async fn backtest(app: &TestApp, business: &str, source: &str, extra: Value) -> Value {
    // The range defaults to the 30 days before now, on the business clock the app runs.
    let mut body = json!({ "source": source });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let path = format!("/api/v1/businesses/{business}/script/backtest");
    let (status, started) = app.send("POST", &path, &body).await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["status"], "running", "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    eventually(
        "the backtest to finish",
        Duration::from_secs(60),
        || async {
            let (status, bt) = app.get(&format!("/api/v1/backtests/{id}")).await;
            assert_eq!(status, 200, "{bt}");
            (bt["status"] != "running").then_some(bt)
        },
    )
    .await
}

/// The tag moves of a report as `from → to: count`.
fn tag_moves(report: &Value) -> Vec<String> {
    report["scoring"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} → {}: {}",
                m["from"].as_str().unwrap(),
                m["to"].as_str().unwrap(),
                m["count"]
            )
        })
        .collect()
}

async fn a_raised_hot_threshold_moves_exactly_the_expected_leads_from_hot_to_warm(
    backend: Backend,
) {
    let app = spawn_app(&backend).await;
    assert_eq!(app.put_script("demo", &scoring(70)).await.0, 200);
    let runs = scored_leads(&app, "demo", 2700, &[95, 75, 72, 50, 85, 30]).await;

    let bt = backtest(&app, "demo", &scoring(80), json!({})).await;
    assert_eq!(bt["status"], "done", "{bt}");
    let report = &bt["report"];
    // 75 and 72 were hot and would be warm; 95 and 85 stay hot, 50 warm, 30 cold.
    assert_eq!(
        tag_moves(report),
        [
            "cold → cold: 1",
            "hot → hot: 2",
            "hot → warm: 2",
            "warm → warm: 1"
        ],
        "{report:#}"
    );
    assert_eq!(report["hooks"]["score"]["compared"], 6, "{report:#}");
    assert_eq!(report["hooks"]["score"]["changed"], 2, "{report:#}");
    assert_eq!(report["hooks"]["score"]["errors"], 0, "{report:#}");
    // The same scores, so the same buckets before and after.
    assert_eq!(
        report["scoring"]["before"], report["scoring"]["after"],
        "{report:#}"
    );
    assert_eq!(
        report["scoring"]["before"],
        json!([0, 0, 0, 1, 0, 1, 0, 2, 1, 1])
    );
    // Only scoring changed; the other hooks are the defaults on both sides.
    for hook in ["context", "route", "follow_up"] {
        let h = &report["hooks"][hook];
        assert_eq!(h["changed"], 0, "{hook}: {report:#}");
        assert!(h["compared"].as_u64().unwrap() >= 6, "{hook}: {report:#}");
    }
    // The samples are exactly the two moved leads, linked to their runs.
    let moved: Vec<&Value> = report["samples"].as_array().unwrap().iter().collect();
    assert_eq!(moved.len(), 2, "{report:#}");
    let mut moved_runs: Vec<&str> = moved
        .iter()
        .map(|s| s["run_id"].as_str().unwrap())
        .collect();
    moved_runs.sort();
    let mut expected = vec![runs[1].as_str(), runs[2].as_str()];
    expected.sort();
    assert_eq!(moved_runs, expected);
    for s in &moved {
        assert_eq!(s["hook"], "score");
        assert_eq!(s["before"]["tag"], "hot");
        assert_eq!(s["after"]["tag"], "warm");
    }
    assert_eq!(bt["progress"]["done"], bt["progress"]["total"], "{bt}");

    // Deterministic: the same candidate over the same range gives the same report, byte for byte.
    let again = backtest(
        &app,
        "demo",
        &scoring(80),
        json!({"from": bt["request"]["from"], "to": bt["request"]["to"]}),
    )
    .await;
    assert_eq!(
        serde_json::to_string(&again["report"]).unwrap(),
        serde_json::to_string(&bt["report"]).unwrap()
    );
    assert_ne!(again["id"], bt["id"]);

    // Erasing a lead takes the backtests whose samples name it with it.
    let lead_id = app.run(&runs[1]).await["lead_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app.delete(&format!("/api/v1/leads/{lead_id}")).await;
    assert_eq!(status, 204, "{body}");
    for id in [&bt["id"], &again["id"]] {
        let (status, _) = app
            .get(&format!("/api/v1/backtests/{}", id.as_str().unwrap()))
            .await;
        assert_eq!(status, 404);
    }
}

async fn a_candidate_identical_to_the_active_version_changes_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let active = include_str!("../../../scripts/demo/policy.rhai");
    assert_eq!(app.put_script("demo", active).await.0, 200);
    scored_leads(&app, "demo", 2710, &[90, 60, 20]).await;
    // A lead that never answers: its no-answer decision is replayed too (one: the call back
    // waits an hour, past the backtest).
    app.call_back_after_an_hour("demo").await;
    let body = json!({"business": "demo", "name": "Nobody Home", "phone": "+14155552719", "sim": {"outcome": "no_answer"}});
    let (_, silent) = app.create_lead_with(&body).await;
    app.first_follow_up_decided(&silent).await;

    let bt = backtest(&app, "demo", active, json!({})).await;
    assert_eq!(bt["status"], "done", "{bt}");
    let report = &bt["report"];
    assert_eq!(report["changed"], 0, "{report:#}");
    assert_eq!(report["compared"], report["unchanged"], "{report:#}");
    assert_eq!(report["samples"], json!([]), "{report:#}");
    assert_eq!(report["errors"], json!([]), "{report:#}");
    for hook in ["context", "route", "score", "follow_up", "on_no_answer"] {
        assert!(
            report["hooks"][hook]["compared"].as_u64().unwrap() >= 1,
            "{hook}: {report:#}"
        );
    }
    assert_eq!(report["hooks"]["score"]["compared"], 3, "{report:#}");
    // Replaying the runs' own version reproduces every decision the steps recorded.
    for hook in ["context", "route", "score", "follow_up"] {
        let h = &report["hooks"][hook];
        assert!(h["checked"].as_u64().unwrap() >= 3, "{hook}: {report:#}");
        assert_eq!(h["checked"], h["reproduced"], "{hook}: {report:#}");
    }
    assert_eq!(report["hooks"]["on_no_answer"]["compared"], 1, "{report:#}");

    // `hooks` and `limit` narrow it.
    let only = backtest(
        &app,
        "demo",
        active,
        json!({"hooks": ["score"], "limit": 2}),
    )
    .await;
    let report = &only["report"];
    assert_eq!(report["compared"], 2, "{report:#}");
    assert_eq!(report["truncated"], true, "{report:#}");
    assert_eq!(
        report["hooks"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["score"]
    );
}

async fn a_hostile_candidate_is_contained_and_reported(backend: Backend) {
    let app = spawn_app(&backend).await;
    assert_eq!(app.put_script("demo", &scoring(70)).await.0, 200);
    scored_leads(&app, "demo", 2720, &[90, 50]).await;
    let tables = [
        "leads",
        "sb_runs",
        "sb_steps",
        "calls",
        "business_scripts",
        "run_scripts",
    ];
    let mut before = Vec::new();
    for t in tables {
        before.push(app.count(t).await);
    }

    let hostile = "fn score(lead, analysis) { let x = 0; loop { x += 1; } }\n\
                   fn route(lead) { #{ action: \"call_now\", agent: \"nobody\" } }\n";
    let bt = backtest(&app, "demo", hostile, json!({})).await;
    assert_eq!(bt["status"], "done", "{bt}");
    let report = &bt["report"];
    // Every score fell back to the default and says why; route chose an agent that does not exist.
    assert_eq!(report["hooks"]["score"]["errors"], 2, "{report:#}");
    assert_eq!(report["hooks"]["route"]["errors"], 2, "{report:#}");
    let errors = report["errors"].as_array().unwrap();
    let hooks: Vec<&str> = errors.iter().map(|e| e["hook"].as_str().unwrap()).collect();
    assert!(
        hooks.contains(&"score") && hooks.contains(&"route"),
        "{report:#}"
    );
    // (A loop may be stopped by the operation limit or, on a loaded machine, the time limit.)
    let counted: u64 = errors.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 4, "{report:#}");
    for e in errors {
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .starts_with("demo/policy.rhai:"),
            "{e}"
        );
        assert!(!e["run_id"].as_str().unwrap().is_empty(), "{e}");
    }

    // Nothing changed, and live decisions still run after it.
    let mut after = Vec::new();
    for t in tables {
        after.push(app.count(t).await);
    }
    assert_eq!(before, after, "{tables:?}");
    let (status, active) = app.get("/api/v1/businesses/demo/script").await;
    assert_eq!(status, 200);
    assert_eq!(active["source"], scoring(70));
    let (_, run) = app
        .create_lead_with(&json!({"business": "demo", "name": "Later", "phone": "+14155552729", "source": "90", "sim": {"outcome": "interested"}}))
        .await;
    let run = app.first_follow_up_decided(&run).await;
    let follow_up = attempts(&run, "follow_up");
    assert_eq!(
        follow_up[0]["input"]["result"]["score"]["tag"], "hot",
        "{run:#}"
    );
}

async fn another_business_decisions_are_never_read(backend: Backend) {
    let app = spawn_app(&backend).await;
    assert_eq!(app.put_script("demo", &scoring(70)).await.0, 200);
    assert_eq!(app.put_script("realty", &scoring(70)).await.0, 200);
    let demo_runs = scored_leads(&app, "demo", 2730, &[75, 75, 75]).await;
    let realty_runs = scored_leads(&app, "realty", 2740, &[75]).await;

    let bt = backtest(&app, "realty", &scoring(80), json!({})).await;
    let report = &bt["report"];
    assert_eq!(report["hooks"]["score"]["compared"], 1, "{report:#}");
    assert_eq!(tag_moves(report), ["hot → warm: 1"], "{report:#}");
    let sampled: Vec<&str> = report["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(sampled, [realty_runs[0].as_str()]);
    assert!(demo_runs.iter().all(|r| !sampled.contains(&r.as_str())));

    // Another tenant cannot start one for a business it cannot see, nor read this one.
    let (_, demo_key) = app.create_key("demo").await;
    let demo = client_with_key(&demo_key);
    let body = json!({ "source": scoring(80) });
    let (status, err) = app
        .send_with(
            &demo,
            "POST",
            "/api/v1/businesses/realty/script/backtest",
            Some(&body),
        )
        .await;
    assert_eq!(status, 404, "{err}");
    let path = format!("/api/v1/backtests/{}", bt["id"].as_str().unwrap());
    let (status, err) = app.send_with(&demo, "GET", &path, None).await;
    assert_eq!(status, 404, "{err}");
    assert_eq!(err["error"]["code"], "not_found");
}

async fn bad_backtests_are_refused_and_change_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let path = "/api/v1/businesses/demo/script/backtest";
    let good = scoring(80);
    let cases = [
        (
            json!({"source": "fn score(lead, analysis) {"}),
            422,
            "invalid_script",
        ),
        (
            json!({"source": "fn test_fails() { assert(false, \"no\"); }"}),
            422,
            "invalid_script",
        ),
        (
            json!({"source": good, "from": "2026-12-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}),
            422,
            "invalid_range",
        ),
        (json!({"source": good, "hooks": []}), 422, "invalid_hooks"),
        (json!({"source": good, "limit": 0}), 422, "invalid_limit"),
        (
            json!({"source": good, "limit": 100_001}),
            422,
            "invalid_limit",
        ),
    ];
    for (body, status, code) in cases {
        let (got, err) = app.send("POST", path, &body).await;
        assert_eq!(
            (got, err["error"]["code"].as_str().unwrap()),
            (status, code),
            "{body}: {err}"
        );
    }
    for body in [
        json!({"source": good, "hooks": ["nope"]}),
        json!({"source": good, "from": "yesterday"}),
        json!({"source": good, "surprise": true}),
    ] {
        let (got, err) = app.send("POST", path, &body).await;
        assert_eq!(got, 422, "{body}: {err}");
        assert!(err["error"]["code"].is_string(), "{err}");
    }
    let (got, err) = app
        .send(
            "POST",
            "/api/v1/businesses/nope/script/backtest",
            &json!({"source": good}),
        )
        .await;
    assert_eq!(got, 404, "{err}");
    let (got, err) = app.get("/api/v1/backtests/bt_nope").await;
    assert_eq!(got, 404, "{err}");
    assert_eq!(app.count("backtests").await, 0);
}

async fn a_backtest_whose_process_stopped_reads_interrupted_and_blocks_nothing(backend: Backend) {
    use switchboard_engine::store::Q;
    let app = spawn_app(&backend).await;
    let db = app.engine.db();
    let now = switchboard_engine::ids::now_ms();
    let insert = |id: &str, updated_at: i64| {
        Q::new(
            "INSERT INTO backtests (id, business_id, candidate_hash, request, status, total, done, \
             created_at, updated_at) VALUES ($1, 'demo', 'h', $2, 'running', 10, 3, $3, $3)",
        )
        .bind(id)
        .bind(r#"{"from":"2026-11-01T00:00:00Z","to":"2026-12-01T00:00:00Z","hooks":["score"],"limit":10}"#)
        .bind(updated_at)
    };
    // One cut off two minutes ago: interrupted, and another may start.
    db.execute(insert("bt_stopped", now - 120_000))
        .await
        .unwrap();
    let (_, bt) = app.get("/api/v1/backtests/bt_stopped").await;
    assert_eq!(bt["status"], "interrupted", "{bt}");
    assert_eq!(bt["progress"], json!({"done": 3, "total": 10}));
    let done = backtest(&app, "demo", &scoring(80), json!({})).await;
    assert_eq!(done["status"], "done", "{done}");

    // One still making progress: a second is refused until it ends.
    let now = switchboard_engine::ids::now_ms();
    db.execute(insert("bt_busy", now)).await.unwrap();
    let body = json!({ "source": scoring(80) });
    let (status, err) = app
        .send("POST", "/api/v1/businesses/demo/script/backtest", &body)
        .await;
    assert_eq!(status, 409, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bt_busy"),
        "{err}"
    );
}

async fn the_cli_backtests_a_script_folder_against_the_database(backend: Backend) {
    use switchboard_cli::scripts::backtest::{BacktestArgs, run};
    let app = spawn_app(&backend).await;
    assert_eq!(app.put_script("demo", &scoring(70)).await.0, 200);
    let runs = scored_leads(&app, "demo", 2750, &[95, 75]).await;
    let folder = demo_variant("demo", &[]).join("demo");
    std::fs::write(folder.join("policy.rhai"), scoring(80)).unwrap();
    let args = |json| BacktestArgs {
        path: folder.clone(),
        database_url: app.database.url.clone(),
        // Wide: the app's business clock is not the system clock the command uses.
        from: Some("2020-01-01T00:00:00Z".parse().unwrap()),
        to: Some("2100-01-01T00:00:00Z".parse().unwrap()),
        hooks: vec![],
        limit: 10_000,
        json,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        run(args(true), &mut out, &mut err).await.unwrap(),
        0,
        "{}",
        String::from_utf8_lossy(&err)
    );
    let report: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        tag_moves(&report),
        ["hot → hot: 1", "hot → warm: 1"],
        "{report:#}"
    );
    assert_eq!(report["samples"][0]["run_id"], runs[1].as_str());

    // The same report as the API's, for people.
    let api = backtest(
        &app,
        "demo",
        &scoring(80),
        json!({"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(report["scoring"], api["report"]["scoring"]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(run(args(false), &mut out, &mut err).await.unwrap(), 0);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("hot → warm: 1  *"), "{text}");
    assert!(text.contains(&format!("score run {}", runs[1])), "{text}");

    // A candidate that is not valid is refused, with where.
    std::fs::write(folder.join("policy.rhai"), "fn score(lead, analysis) {").unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(run(args(false), &mut out, &mut err).await.unwrap(), 1);
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains("policy.rhai:"), "{err}");
}
