//! Analytics: the funnel, outcomes, score distribution and per-agent connect rate of a cohort of
//! leads, checked against runs whose course is known (the simulator steers each call).

use std::time::Duration;

use serde_json::json;
use switchboard_tests::*;

crate::on_both_backends!(analytics_match_runs_whose_course_is_known);

const T: Duration = Duration::from_secs(60);

async fn analytics_match_runs_whose_course_is_known(backend: Backend) {
    let app = spawn_app(&backend).await;
    // One lead hands off, one declines, one never answers (three calls, then unreachable).
    let mut runs = Vec::new();
    for (i, outcome) in ["interested", "not_interested", "no_answer"]
        .iter()
        .enumerate()
    {
        let body = json!({"business": "demo", "name": format!("Lead {i}"),
            "phone": format!("+1415555{:04}", 4000 + i),
            "sim": {"outcome": outcome, "webhook_delay_ms": 20}});
        let (_, run) = app.create_lead_with(&body).await;
        runs.push(run);
    }
    for run in &runs {
        app.wait_for_status(run, "succeeded", T).await;
    }
    let (status, a) = app.get("/api/v1/analytics?business=demo").await;
    assert_eq!(status, 200, "{a}");
    let funnel = &a["funnel"];
    assert_eq!(
        (
            &funnel["leads"],
            &funnel["called"],
            &funnel["connected"],
            &funnel["handed_off"]
        ),
        (&json!(3), &json!(3), &json!(2), &json!(1)),
        "{a}"
    );
    assert!(
        (1..=2).contains(&funnel["qualified"].as_i64().unwrap()),
        "{a}"
    );
    assert_eq!(
        a["outcomes"],
        json!({"handed_off": 1, "not_interested": 1, "unreachable": 1})
    );
    let scored: i64 = a["score_distribution"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_i64().unwrap())
        .sum();
    assert_eq!(scored, 2, "the two connected calls were scored: {a}");
    let agents = a["by_agent"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{a}");
    assert_eq!(
        (
            &agents[0]["key"],
            &agents[0]["calls"],
            &agents[0]["connected"]
        ),
        (&json!("riley"), &json!(5), &json!(2)),
        "{a}"
    );
    assert_eq!(agents[0]["connect_rate"], json!(0.4));
    assert_eq!(a["by_objective"][0]["calls"], json!(5), "{a}");

    // Another range holds none of them; another business sees none of them.
    let (_, none) = app
        .get("/api/v1/analytics?business=demo&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z")
        .await;
    assert_eq!(none["funnel"]["leads"], 0);
    let (_, key) = app.create_key("dental").await;
    let (status, _) = app
        .send_with(
            &client_with_key(&key),
            "get",
            "/api/v1/analytics?business=demo",
            None,
        )
        .await;
    assert_eq!(status, 404);
}
