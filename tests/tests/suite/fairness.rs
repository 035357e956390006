//! Fairness between businesses: one business' big import does not hold up another business'
//! fresh leads — their steps queue ahead of the backlog, and freed call lines go to them first.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::*;

crate::on_both_backends!(a_big_import_does_not_hold_up_another_business_fresh_leads);

/// How long another business' fresh lead may wait for its call, at most, behind a 5,000-lead
/// import (the bound is generous for a loaded CI machine; it takes a few seconds).
const BOUND: Duration = Duration::from_secs(45);

async fn a_big_import_does_not_hold_up_another_business_fresh_leads(backend: Backend) {
    // Monday 2026-01-05, 15:00 in New York: the realty business is open.
    let app = spawn_app_configured(
        &backend,
        TestOptions {
            business_clock: Some("2026-01-05T20:00:00Z".parse().unwrap()),
            ..TestOptions::default()
        },
        |c| c.max_concurrent_calls = 10,
    )
    .await;

    // The demo business uploads 5,000 leads…
    let mut csv = String::from("Name,Phone\n");
    for i in 0..5_000 {
        csv.push_str(&format!("Lead {i},+1415555{i:04}\n"));
    }
    let params = [
        ("business", "demo"),
        ("mapping", r#"{"name":"Name","phone":"Phone"}"#),
    ];
    let encoded = reqwest::Url::parse_with_params("http://query/", &params).unwrap();
    let resp = app
        .upload_import(encoded.query().unwrap(), "text/csv", csv)
        .await;
    assert_eq!(resp.status(), 202);
    let import: Value = resp.json().await.unwrap();
    let import = app.import_done(import["id"].as_str().unwrap()).await;
    assert_eq!(
        (&import["status"], &import["created"]),
        (&json!("done"), &json!(5_000)),
        "{import}"
    );

    // …and then the realty business gets five fresh leads.
    let started = Instant::now();
    let mut fresh = Vec::new();
    for i in 0..5 {
        fresh.push(
            app.create_lead_with(&json!({
                "business": "realty", "name": format!("Fresh {i}"),
                "phone": format!("+1206555{i:04}"), "source": "zillow",
                "custom_fields": {"budget_range": "500K-1M"}, "sim": {"outcome": "interested"}
            }))
            .await,
        );
    }
    let mut waited = Vec::new();
    for (lead_id, _) in &fresh {
        eventually("the fresh lead's call", BOUND, || async {
            (app.sim().calls_for(lead_id) > 0).then_some(())
        })
        .await;
        waited.push(started.elapsed());
    }
    let import_calls = app.sim().total_calls() - fresh.len();
    eprintln!(
        "fairness ({backend:?}): the five fresh leads were called after {waited:?}; the import's \
         leads called meanwhile: {import_calls} of 5,000"
    );
    assert!(
        import_calls < 2_500,
        "the import's backlog was still there when the fresh leads were called"
    );
}
