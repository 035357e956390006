//! What an operator watches: `/healthz`, `/readyz` and the Prometheus metrics at `/metrics`.

use std::time::Duration;

use serde_json::json;
use switchboard_tests::*;

const T: Duration = Duration::from_secs(30);

crate::on_both_backends!(
    readiness_checks_the_database_the_migrations_and_the_workers,
    metrics_show_runs_steps_webhooks_providers_and_requests,
);

async fn readiness_checks_the_database_the_migrations_and_the_workers(backend: Backend) {
    let mut app = spawn_app(&backend).await;
    assert_eq!(app.get("/healthz").await, (200, json!({"status": "ok"})));
    let ready = eventually("/readyz answers 200", T, || async {
        let (status, body) = app.get("/readyz").await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(
        ready,
        json!({"status": "ready", "checks": {"database": "ok", "migrations": "ok", "workers": "ok"}})
    );

    // Workers that stop heartbeating make the process unready, in the one error shape.
    app.workers.take().expect("workers run").stop().await;
    let unready = eventually("/readyz answers 503", T, || async {
        let (status, body) = app.get("/readyz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(unready["error"]["code"], "not_ready", "{unready}");
    assert_eq!(
        unready["error"]["details"],
        json!({"database": "ok", "migrations": "ok", "workers": "not heartbeating"})
    );
    // /healthz only says the process answers.
    assert_eq!(app.get("/healthz").await.0, 200);
}

/// The value of the first sample of `text` whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics_show_runs_steps_webhooks_providers_and_requests(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (_, run_id) = app.create_lead(json!({"outcome": "interested"})).await;
    app.wait_for_status(&run_id, "succeeded", T).await;

    let resp = app.get_response("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = resp.text().await.unwrap();
    // Read from this app's database at scrape time: exact.
    assert_eq!(
        sample(&text, r#"switchboard_runs{status="succeeded"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"switchboard_runs{status="failed"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "switchboard_queue_depth "),
        Some(0.0),
        "{text}"
    );
    assert!(sample(&text, "switchboard_queue_oldest_age_seconds ").is_some());
    // Recorded by the process (shared by every app in this test binary): at least this run's.
    for series in [
        r#"switchboard_step_duration_seconds_count{workflow="lead_call",step="place_call",outcome="ok"}"#,
        r#"switchboard_step_start_delay_seconds_count{workflow="lead_call",step="place_call"}"#,
        r#"switchboard_webhook_to_resume_seconds_count{workflow="lead_call",step="await_call"}"#,
        r#"switchboard_provider_requests_total{provider="elevenlabs",outcome="ok"}"#,
        r#"switchboard_http_requests_total{method="POST",route="/api/v1/leads",status="201"}"#,
    ] {
        assert!(
            sample(&text, series).is_some_and(|n| n >= 1.0),
            "{series} in:\n{text}"
        );
    }
    assert!(
        text.contains(r#"switchboard_step_duration_seconds_bucket{workflow="lead_call",step="place_call",outcome="ok",le="0.005"}"#),
        "durations are histograms with buckets: {text}"
    );
    // Its value is the process' (other tests open the breaker on purpose): present, 0 to 2.
    assert!(
        sample(
            &text,
            r#"switchboard_circuit_breaker_state{provider="elevenlabs"}"#
        )
        .is_some_and(|v| (0.0..=2.0).contains(&v)),
        "{text}"
    );
}
