//! Business scripts through the API: versions pinned by runs, hostile scripts contained, errors
//! with line and column in validate, dry-run and the run timeline.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::*;

const T: Duration = Duration::from_secs(30);

crate::on_both_backends!(
    the_example_businesses_run_the_pipeline_and_decide_differently,
    dental_calls_only_in_opening_hours,
    in_flight_runs_keep_their_script_version_new_runs_use_the_new_one,
    hostile_scripts_fail_their_step_fall_back_and_leave_other_businesses_alone,
    script_errors_reach_the_author_with_line_and_column,
    versions_validation_and_reference_endpoints,
);

/// The reasons the run's score step gave (from the follow-up step's input).
fn score_reasons(run: &Value) -> Vec<String> {
    let follow_up = attempts(run, "follow_up");
    let input = &follow_up.last().expect("a follow-up step")["input"];
    input["result"]["score"]["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("a scored call: {input}"))
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

/// Monday 2026-01-05 17:00 UTC: noon in New York, 11:00 in Chicago, 09:00 in Los Angeles.
fn monday_midday() -> chrono::DateTime<chrono::Utc> {
    "2026-01-05T17:00:00Z".parse().unwrap()
}

/// Creates a lead whose call waits for a webhook, answers it with the same interested transcript
/// for every business, and returns the finished (or follow-up-waiting) run.
async fn interested_call(app: &TestApp, mut body: Value) -> Value {
    body["phone"] = json!("+14155552671");
    body["name"] = json!("Ada Lovelace");
    body["sim"] = json!({"outcome": "interested", "deliver_webhook": false});
    let (_, run_id) = app.create_lead_with(&body).await;
    let conversation_id = app.wait_for_call_wait(&run_id).await;
    assert_eq!(app.answer_call(&conversation_id, true).await.0, 200);
    followed_up(app, &run_id).await
}

/// The run once its first follow-up decision is taken.
async fn followed_up(app: &TestApp, run_id: &str) -> Value {
    eventually("the follow-up decision", T, || async {
        let run = app.run(run_id).await;
        let decided = attempts(&run, "follow_up")
            .first()
            .is_some_and(|f| f["status"] == "succeeded");
        decided.then_some(run)
    })
    .await
}

/// What a run decided, for comparing businesses.
struct Decisions {
    prompt: String,
    agent_id: String,
    objective: String,
    priority: u64,
    score: u64,
    tag: String,
    reasons: Vec<String>,
    /// The follow-up decision, as logged by the step.
    follow_up: Value,
}

/// The decision the follow-up step logged.
fn follow_up_decision(run: &Value) -> Value {
    let step = attempts(run, "follow_up")[0];
    step["log"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|l| l.as_str()?.strip_prefix("decision: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .unwrap_or_else(|| panic!("a logged decision: {step}"))
}

fn decisions(run: &Value) -> Decisions {
    let plan = &attempts(run, "place_call")[0]["input"];
    let result = &attempts(run, "follow_up")[0]["input"]["result"]["score"];
    Decisions {
        prompt: plan["prompt"].as_str().unwrap().to_owned(),
        agent_id: plan["route"]["agent_id"].as_str().unwrap().to_owned(),
        objective: plan["route"]["objective"].as_str().unwrap().to_owned(),
        priority: plan["route"]["priority"].as_u64().unwrap(),
        score: result["value"].as_u64().unwrap(),
        tag: result["tag"].as_str().unwrap().to_owned(),
        reasons: score_reasons(run),
        follow_up: follow_up_decision(run),
    }
}

async fn the_example_businesses_run_the_pipeline_and_decide_differently(backend: Backend) {
    let app = spawn_app_with(
        &backend,
        TestOptions {
            business_clock: Some(monday_midday()),
            ..TestOptions::default()
        },
    )
    .await;
    let demo =
        decisions(&interested_call(&app, json!({"business": "demo", "source": "listing"})).await);
    let realty = decisions(
        &interested_call(
            &app,
            json!({"business": "realty", "source": "zillow",
                   "custom_fields": {"budget_range": "Over 1M", "pre_approved": true}}),
        )
        .await,
    );
    let dental = decisions(
        &interested_call(
            &app,
            json!({"business": "dental", "source": "website",
                   "custom_fields": {"reason": "Toothache"}}),
        )
        .await,
    );
    let saas = decisions(
        &interested_call(
            &app,
            json!({"business": "saas", "source": "pricing-page",
                   "custom_fields": {"company_size": 800, "annual_budget_usd": 90000}}),
        )
        .await,
    );

    // Terminology reaches the agent's prompt.
    assert!(demo.prompt.contains("prospect"), "{}", demo.prompt);
    assert!(realty.prompt.contains("prospect"), "{}", realty.prompt);
    assert!(dental.prompt.contains("patient"), "{}", dental.prompt);
    assert!(saas.prompt.contains("account"), "{}", saas.prompt);
    assert!(!dental.prompt.contains("prospect") && !saas.prompt.contains("prospect"));

    // Routing: campaign agents, objectives and priorities of each business' script.
    let routes: Vec<(&str, &str, u64)> = [&demo, &realty, &dental, &saas]
        .iter()
        .map(|d| (d.agent_id.as_str(), d.objective.as_str(), d.priority))
        .collect();
    assert_eq!(
        routes,
        [
            ("agent_demo_realty", "Schedule Showing", 8),
            ("agent_harbor_buyers", "Schedule Showing", 9),
            ("agent_brightsmile_desk", "New Patient Booking", 9),
            ("agent_ledgerly_enterprise", "Book Demo", 9),
        ]
    );

    // Scoring: the same call weighs differently per business, with its own reasons.
    let all = [&demo, &realty, &dental, &saas];
    for d in all {
        assert!(d.score <= 100 && !d.reasons.is_empty());
    }
    let distinct_reasons: std::collections::HashSet<_> = all.iter().map(|d| &d.reasons).collect();
    assert_eq!(
        distinct_reasons.len(),
        4,
        "every script explains itself its own way"
    );
    // The same call, scored by each business' own weights (deterministic: the simulated analysis
    // depends only on the transcript).
    let scores: Vec<(u64, &str)> = all.iter().map(|d| (d.score, d.tag.as_str())).collect();
    assert_eq!(
        scores,
        [(55, "warm"), (54, "warm"), (71, "hot"), (53, "warm")]
    );

    // Follow-up: each business' own decision and delay.
    let follow_ups: Vec<&Value> = all.iter().map(|d| &d.follow_up).collect();
    assert_eq!(
        follow_ups[0],
        &json!({"type": "call_again", "after_secs": 5})
    );
    assert_eq!(
        follow_ups[1],
        &json!({"type": "call_again", "after_secs": 2880 * 60})
    );
    assert_eq!(follow_ups[2]["type"], "hand_off", "{}", follow_ups[2]);
    assert!(
        follow_ups[2]["reason"]
            .as_str()
            .unwrap()
            .contains("front desk")
    );
    assert_eq!(
        follow_ups[3],
        &json!({"type": "call_again", "after_secs": 10080 * 60})
    );

    // A SaaS account below the minimum size is never called.
    let (_, run_id) = app
        .create_lead_with(&json!({
            "business": "saas", "name": "Tiny Co", "phone": "+14155552673",
            "custom_fields": {"company_size": 4}, "sim": {"outcome": "interested"}
        }))
        .await;
    let run = app.wait_for_status(&run_id, "succeeded", T).await;
    assert_eq!(run["outcome"], "not_called", "{run}");
    assert!(attempts(&run, "place_call").is_empty());
}

async fn dental_calls_only_in_opening_hours(backend: Backend) {
    // Saturday 2026-01-10, 10:00 in Chicago: the clinic is closed until Monday 08:00.
    let saturday: chrono::DateTime<chrono::Utc> = "2026-01-10T16:00:00Z".parse().unwrap();
    let app = spawn_app_with(
        &backend,
        TestOptions {
            business_clock: Some(saturday),
            ..TestOptions::default()
        },
    )
    .await;
    let (lead_id, run_id) = app
        .create_lead_with(&json!({
            "business": "dental", "name": "Ada Lovelace", "phone": "+14155552671",
            "custom_fields": {"reason": "Cleaning"}, "sim": {"outcome": "interested"}
        }))
        .await;
    let run = eventually("the call scheduled for Monday", T, || async {
        let run = app.run(&run_id).await;
        (run["current_step"] == "place_call" && run["status"] == "waiting").then_some(run)
    })
    .await;
    let plan = &attempts(&run, "place_call")[0]["input"]["route"];
    // Monday 08:00 Chicago is 14:00 UTC, 46 hours after the Saturday clock, less the moments
    // the clock has run on since.
    let monday_opening: chrono::DateTime<chrono::Utc> = "2026-01-12T14:00:00Z".parse().unwrap();
    let at_least = (monday_opening - app.business_clock.now()).num_seconds();
    assert_eq!(plan["action"]["type"], "call_after", "{run}");
    let secs = plan["action"]["secs"].as_i64().unwrap();
    assert!((at_least..=46 * 3600).contains(&secs), "{run}");
    assert_eq!(app.sim().calls_for(&lead_id), 0);

    // The demo business has no opening hours: it calls at once, Saturday or not.
    let (demo_lead, demo_run) = app.create_lead(json!({"outcome": "interested"})).await;
    app.wait_for_status(&demo_run, "succeeded", T).await;
    assert_eq!(app.sim().calls_for(&demo_lead), 1);
}

async fn in_flight_runs_keep_their_script_version_new_runs_use_the_new_one(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (status, v1) = app.get("/api/v1/businesses/demo/script").await;
    assert_eq!((status, &v1["version"]), (200, &json!(1)), "{v1}");

    // A run waits for its call's webhook with version 1…
    let (_, old_run, conversation_id) = app.lead_awaiting_call().await;

    // …while the business activates version 2.
    let v2 = r#"
fn score(lead, analysis) {
    log("scoring with version 2");
    #{ score: 88, tag: "hot", reasons: ["scored by version 2"] }
}
"#;
    let (status, put) = app.put_script("demo", v2).await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(
        (&put["version"], &put["changed"]),
        (&json!(2), &json!(true))
    );

    let (_, new_run) = app.create_lead(json!({"outcome": "interested"})).await;
    let new = app.wait_for_status(&new_run, "succeeded", T).await;
    assert_eq!(new["script"]["version"], 2, "{new}");
    assert_eq!(score_reasons(&new), ["scored by version 2"]);
    let score = attempts(&new, "score")[0];
    assert_eq!(score["log"], json!(["scoring with version 2"]));

    assert_eq!(app.answer_call(&conversation_id, true).await.0, 200);
    let old = followed_up(&app, &old_run).await;
    assert_eq!(old["script"]["version"], 1, "{old}");
    let reasons = score_reasons(&old);
    assert!(
        reasons.iter().any(|r| r.starts_with("intent"))
            && !reasons.iter().any(|r| r.contains("version 2")),
        "the old run must score with version 1: {reasons:?}"
    );
}

async fn hostile_scripts_fail_their_step_fall_back_and_leave_other_businesses_alone(
    backend: Backend,
) {
    let app = spawn_app(&backend).await;
    // Each attack becomes the demo business' active version in turn and pins one run.
    let attacks = [
        // Stopped by the operation limit, or by the time limit on a machine that descheduled
        // the script thread mid-loop.
        (
            "fn route(lead) { loop { } }",
            "too many operations|time limit exceeded",
        ),
        (
            "fn route(lead) { let s = \"x\"; loop { s += s; } }",
            "length of string",
        ),
        (
            "fn route(lead) { let a = []; a.pad(1000000, 0); a }",
            "size of array",
        ),
        (
            "fn route(lead) {\n  let s = \"\";\n  s.pad(8000, \"a\");\n  s.replace(\"a\", \"aaaaaaaaaa\");\n  s\n}",
            "replace would make",
        ),
        (
            "fn down(n) { down(n + 1) }\nfn route(lead) { down(0) }",
            "stack overflow",
        ),
    ];
    let mut runs = Vec::new();
    for (source, expected) in attacks {
        let (status, put) = app.put_script("demo", source).await;
        assert_eq!(status, 200, "{put}");
        let (_, run) = app.create_lead(json!({"outcome": "interested"})).await;
        runs.push((run, expected));
    }
    // Meanwhile another business' script keeps deciding for its own leads.
    let other = r#"
fn route(lead) { #{ action: "call_now", priority: 7, outside_hours: true } }
fn score(lead, analysis) { #{ score: 91, tag: "hot", reasons: ["other business"] } }
"#;
    let (status, put) = app.put_script("demo_other", other).await;
    assert_eq!(status, 404, "only shipped businesses exist: {put}");
    let (status, put) = app.put_script("realty", other).await;
    assert_eq!(status, 200, "{put}");
    let (_, healthy) = app
        .create_lead_with(&json!({
            "business": "realty", "name": "Grace Hopper", "phone": "+14155552672",
            "source": "web", "custom_fields": {"budget_range": "500K-1M"},
            "sim": {"outcome": "interested"}
        }))
        .await;

    let run = app.wait_for_status(&healthy, "succeeded", T).await;
    assert_eq!(score_reasons(&run), ["other business"]);
    assert_eq!(attempts(&run, "route")[0]["status"], "succeeded");

    for (run_id, expected) in runs {
        // The run followed the default route (call now) and finished normally…
        let run = app.wait_for_status(&run_id, "succeeded", T).await;
        assert_eq!(run["outcome"], "handed_off", "{run}");
        // …and its route step shows the script error, located, as a failed attempt.
        let route = attempts(&run, "route");
        assert_eq!(route.len(), 1);
        assert_eq!(route[0]["status"], "failed", "{run}");
        let error = route[0]["error"].as_str().unwrap();
        assert!(
            error.starts_with("demo/policy.rhai:")
                && expected
                    .split('|')
                    .any(|e| error.to_lowercase().contains(e)),
            "expected {expected:?} at a location in: {error}"
        );
        let (line, column) = location(error);
        assert!(line >= 1 && column >= 1, "{error}");
        assert!(
            route[0]["log"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l.as_str().unwrap().contains("default decision")),
            "{run}"
        );
    }
    // The server is still up and answering.
    assert_eq!(app.get("/healthz").await.0, 200);
}

/// `(line, column)` of `name:line:col: message`.
fn location(error: &str) -> (usize, usize) {
    let mut parts = error.splitn(4, ':');
    let _name = parts.next();
    let line = parts.next().unwrap().parse().unwrap();
    let column = parts.next().unwrap().parse().unwrap();
    (line, column)
}

async fn script_errors_reach_the_author_with_line_and_column(backend: Backend) {
    let app = spawn_app(&backend).await;
    let validate = "/api/v1/businesses/demo/script/validate";

    // A syntax error: validate reports it, PUT refuses it and stores nothing.
    let broken = "fn route(lead) {\n  #{ action: \"call_now\", }\n}\n\nfn score(lead, analysis) {\n  let x = ;\n}\n";
    let (status, report) = app
        .send("POST", validate, &json!({ "source": broken }))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["valid"], false);
    let error = &report["errors"][0];
    assert_eq!(error["source"], "demo/policy.rhai");
    assert_eq!(error["line"], 6, "{report}");
    assert!(error["column"].as_u64().unwrap() > 0);

    let (status, err) = app.put_script("demo", broken).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["code"], "invalid_script");
    assert_eq!(err["error"]["details"]["errors"][0]["line"], 6);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("demo/policy.rhai:6:"),
        "{err}"
    );
    let (_, versions) = app.get("/api/v1/businesses/demo/script/versions").await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1);

    // A failing test of the script's own keeps the version out.
    let failing = "fn score(lead, analysis) { #{ score: 10, tag: \"cold\" } }\n\nfn test_keen_buyers_are_hot() {\n  let s = score(sample_lead(), sample_analysis());\n  assert(s.tag == \"hot\", \"keen buyers are hot\");\n}\n";
    let (status, err) = app.put_script("demo", failing).await;
    assert_eq!(status, 422, "{err}");
    let test = &err["error"]["details"]["tests"][0];
    assert_eq!(test["name"], "test_keen_buyers_are_hot");
    assert_eq!(test["passed"], false);
    assert_eq!(test["error"]["line"], 5, "{err}");

    // Wrong arity of an entry point.
    let (_, report) = app
        .send(
            "POST",
            validate,
            &json!({ "source": "fn route() { #{ action: \"call_now\" } }" }),
        )
        .await;
    assert!(
        report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("route must take 1 parameter(s) (lead), not 0"),
        "{report}"
    );

    // A runtime error in a dry run: the default decision, and the error with its place.
    let runtime = "fn score(lead, analysis) {\n  let b = analysis.budgett.score;\n  #{ score: b, tag: \"warm\" }\n}\n\nfn route(lead) { #{ action: \"call_later\", delay_minuts: 5 } }\n";
    let (status, dry) = app
        .send(
            "POST",
            "/api/v1/businesses/demo/script/dry-run",
            &json!({ "source": runtime }),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    let score = &dry["decisions"]["score"];
    assert_eq!(score["error"]["line"], 2, "{dry}");
    assert!(score["error"]["column"].as_u64().unwrap() > 0);
    assert!(
        score["decision"]["value"].is_number(),
        "default score: {dry}"
    );
    let route = &dry["decisions"]["route"];
    assert!(
        route["error"]["message"]
            .as_str()
            .unwrap()
            .contains("delay_minuts"),
        "{dry}"
    );
    assert_eq!(route["decision"]["action"]["type"], "call_now", "{dry}");
    assert_eq!(route["error"]["line"], 6, "located at fn route: {dry}");

    // Decisions that parse but make no sense are refused too, located at their hook.
    let absurd = "fn route(lead) { #{ action: \"call_later\", delay_minutes: 100000000000 } }\n\
                  fn follow_up(run) { #{ action: \"stop\", outcome: \"Not interested!\" } }\n";
    let (_, dry) = app
        .send(
            "POST",
            "/api/v1/businesses/demo/script/dry-run",
            &json!({ "source": absurd }),
        )
        .await;
    let route = &dry["decisions"]["route"]["error"];
    assert!(
        route["message"].as_str().unwrap().contains("366 days"),
        "{dry}"
    );
    assert_eq!((&route["line"], &route["column"]), (&json!(1), &json!(1)));
    let follow_up = &dry["decisions"]["follow_up"]["error"];
    assert!(
        follow_up["message"].as_str().unwrap().contains("a-z"),
        "{dry}"
    );
    assert_eq!(follow_up["line"], 2);

    // And in the run timeline: the step fails with the error, the run goes on.
    let (status, _) = app
        .put_script(
            "demo",
            "fn score(lead, analysis) {\n  let b = analysis.budgett.score;\n  #{ score: b, tag: \"warm\" }\n}\n",
        )
        .await;
    assert_eq!(status, 200);
    let (_, run_id) = app.create_lead(json!({"outcome": "interested"})).await;
    let run = app.wait_for_status(&run_id, "succeeded", T).await;
    let score = attempts(&run, "score");
    assert_eq!(score[0]["status"], "failed");
    let error = score[0]["error"].as_str().unwrap();
    assert!(error.starts_with("demo/policy.rhai:2:"), "{error}");
    assert_eq!(step_names(&run), LEAD_CALL_STEPS);
}

async fn versions_validation_and_reference_endpoints(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (status, v1) = app.get("/api/v1/businesses/demo/script").await;
    assert_eq!(status, 200);
    let source = v1["source"].as_str().unwrap().to_owned();

    // Re-sending the active source stores nothing new.
    let (status, same) = app.put_script("demo", &source).await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(
        (&same["version"], &same["changed"]),
        (&json!(1), &json!(false))
    );

    let edited = format!("{source}\n// tuned\n");
    let (_, put) = app.put_script("demo", &edited).await;
    assert_eq!(put["version"], 2);
    let (_, versions) = app.get("/api/v1/businesses/demo/script/versions").await;
    let list = versions["versions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        (&list[0]["version"], &list[0]["active"]),
        (&json!(2), &json!(true))
    );
    assert_eq!(
        (&list[1]["version"], &list[1]["active"]),
        (&json!(1), &json!(false))
    );
    let (_, old) = app.get("/api/v1/businesses/demo/script/versions/1").await;
    assert_eq!(old["source"], source);
    assert_eq!(old["active"], false);

    // Dry run of the active version on a chosen lead: every decision, no error.
    let (status, dry) = app
        .send(
            "POST",
            "/api/v1/businesses/demo/script/dry-run",
            &json!({ "lead": { "source": "listing", "custom_fields": {"budget_range": "Over 1M"} } }),
        )
        .await;
    assert_eq!(status, 200, "{dry}");
    for hook in ["context", "route", "score", "follow_up", "on_no_answer"] {
        assert!(dry["decisions"][hook]["error"].is_null(), "{hook}: {dry}");
    }
    assert_eq!(
        dry["decisions"]["route"]["decision"]["objective"],
        "Schedule Showing"
    );
    assert_eq!(dry["terminology"]["lead"], "prospect");

    // Bad requests come back in the error shape and change nothing.
    let (status, err) = app
        .send(
            "PUT",
            "/api/v1/businesses/demo/script",
            &json!({ "sourse": "fn route(lead) {}" }),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("sourse"));
    let (status, err) = app
        .send(
            "POST",
            "/api/v1/businesses/demo/script/dry-run",
            &json!({ "lead": { "custom_fields": {"budget_range": "Lots"} } }),
        )
        .await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (422, &json!("invalid_custom_fields"))
    );
    let huge = format!("fn route(lead) {{ 1 }} // {}", "x".repeat(70_000));
    let (status, err) = app.put_script("demo", &huge).await;
    assert_eq!(status, 422, "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("limit"));
    let (status, err) = app
        .put_script("demo", "import \"x\" as x;\nfn route(lead) { eval(\"1\") }")
        .await;
    assert_eq!(status, 422, "{err}");
    let (status, _) = app.get("/api/v1/businesses/nope/script").await;
    assert_eq!(status, 404);
    let (_, versions) = app.get("/api/v1/businesses/demo/script/versions").await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);

    // The reference is generated from the registered functions.
    let (status, reference) = app.get("/api/v1/scripts/reference").await;
    assert_eq!(status, 200);
    let functions = reference["functions"].as_array().unwrap();
    for name in [
        "now",
        "is_open",
        "next_opening",
        "history",
        "log",
        "minutes_since",
    ] {
        let f = functions
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {reference}"));
        assert!(!f["doc"].as_str().unwrap().is_empty());
    }
    assert_eq!(reference["hooks"].as_array().unwrap().len(), 7);

    let (status, businesses) = app.get("/api/v1/businesses").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = businesses["businesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["demo", "dental", "realty", "saas"]);
}
