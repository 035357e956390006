//! What an operator watches: `/healthz`, `/readyz`, the Prometheus metrics at `/metrics`, and
//! errors reported to Sentry.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::json;
use switchboard_tests::fakes::FakeProviders;
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

/// What a fake Sentry received: each envelope's headers and body.
type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// A local stand-in for Sentry's envelope endpoint; returns its DSN.
async fn fake_sentry(received: Received) -> String {
    let app = axum::Router::new().route(
        "/api/1/envelope/",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let received = received.clone();
            async move {
                received.lock().unwrap().push((headers, body));
                axum::Json(json!({"id": "0"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    format!("http://public-key@{addr}/1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_reaches_sentry_with_its_run_and_the_release() {
    let received: Received = Default::default();
    let dsn = fake_sentry(received.clone()).await;
    // The provider refuses the call (422): the run fails at place_call.
    let fakes = FakeProviders::start().await;
    fakes.faults.reject_calls.store(true, Ordering::SeqCst);
    let database = TestDatabase::create(&Backend::Sqlite).await;
    let port = free_port();
    let address = format!("http://127.0.0.1:{port}");
    let mut env = fakes.env();
    env.extend([
        ("DATABASE_URL", database.url.clone()),
        ("SWITCHBOARD_ADDR", format!("127.0.0.1:{port}")),
        ("SWITCHBOARD_QUEUE_BOARD_ADDR", "127.0.0.1:0".to_owned()),
        ("SWITCHBOARD_SIMULATOR_ADDR", "127.0.0.1:0".to_owned()),
        ("SENTRY_DSN", dsn.clone()),
        ("SENTRY_ENVIRONMENT", "ci".to_owned()),
        ("SWITCHBOARD_OPERATOR_KEY", OPERATOR_KEY.to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]);
    let logs = switchboard_tests::children::log_dir("sentry");
    let serve = switchboard_tests::children::Process::start("serve", "serve", &env, &logs);
    let client = client_with_key(OPERATOR_KEY);
    let lead = json!({"business": "demo", "name": "Ada Lovelace", "phone": "+14155552671"});
    let created: serde_json::Value = eventually("the process answers", T, || async {
        let resp = client
            .post(format!("{address}/api/v1/leads"))
            .json(&lead)
            .send()
            .await
            .ok()?;
        (resp.status() == 201).then_some(())?;
        resp.json().await.ok()
    })
    .await;
    let run_id = created["run"]["id"].as_str().unwrap().to_owned();

    let envelope = eventually("Sentry receives the failed run", T, || async {
        received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| String::from_utf8_lossy(body).into_owned())
            .find(|body| body.contains(&run_id))
    })
    .await;
    for expected in [
        r#""message":"run failed""#,
        r#""step":"place_call""#,
        r#""business":"demo""#,
        r#""attempt":1"#,
        "answered 422",
        r#""release":"switchboard@"#,
        r#""environment":"ci""#,
    ] {
        assert!(envelope.contains(expected), "{expected} in {envelope}");
    }
    // The lead's phone number stays out of what Sentry receives.
    assert!(!envelope.contains("4155552671"), "{envelope}");
    serve.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_serves_its_own_metrics() {
    // The API in this test runs no workers; a `switchboard worker` process runs the steps and
    // serves what it recorded on its own metrics address.
    let app = spawn_app_with(&Backend::Sqlite, TestOptions::without_workers()).await;
    let metrics_port = free_port();
    let logs = switchboard_tests::children::log_dir("worker_metrics");
    let env = [
        ("DATABASE_URL", app.database.url.clone()),
        ("SWITCHBOARD_PUBLIC_URL", app.address.clone()),
        ("ELEVENLABS_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        (
            "SWITCHBOARD_METRICS_ADDR",
            format!("127.0.0.1:{metrics_port}"),
        ),
        ("SWITCHBOARD_SIMULATOR_ADDR", "127.0.0.1:0".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    let worker = switchboard_tests::children::Process::start("worker", "worker", &env, &logs);
    let (_, run_id) = app.create_lead(json!({"outcome": "interested"})).await;
    app.wait_for_status(&run_id, "succeeded", T).await;
    let text = eventually("the worker's metrics", T, || async {
        let resp = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .await
            .ok()?;
        (resp.status() == 200).then_some(())?;
        resp.text().await.ok()
    })
    .await;
    assert!(
        text.contains("switchboard_step_duration_seconds_count{")
            && text.contains("step=\"place_call\""),
        "the worker's step metrics: {text}\nlog: {}",
        worker.log_text()
    );
    assert!(
        text.contains("switchboard_runs{status=\"succeeded\"} 1"),
        "{text}"
    );
    worker.kill().await;
}
