//! CSV exports of leads and runs: a business' rows in a time range; a business' key exports
//! only its own.

use serde_json::json;
use switchboard_tests::*;

crate::on_both_backends!(leads_and_runs_export_as_csv_for_the_callers_business);

async fn csv(client: &reqwest::Client, app: &TestApp, path: &str) -> (u16, Vec<String>) {
    let resp = client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    if status == 200 {
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
    }
    let text = resp.text().await.unwrap();
    (status, text.lines().map(str::to_owned).collect())
}

async fn leads_and_runs_export_as_csv_for_the_callers_business(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::without_workers()).await;
    let mut run_ids = Vec::new();
    for i in 0..3 {
        let (_, run) = app
            .create_lead_with(&json!({"business": "demo", "name": format!("Lead, {i}"),
                "phone": format!("+1415555{:04}", 3000 + i),
                "timezone": (i == 1).then_some("America/Chicago"),
                "custom_fields": {"budget_range": "Over 1M"}}))
            .await;
        run_ids.push(run);
    }
    // The second lead's number goes on the list after it came in.
    let (status, _) = app
        .send(
            "POST",
            "/api/v1/businesses/demo/do-not-call",
            &json!({"phones": ["+14155553001"]}),
        )
        .await;
    assert_eq!(status, 200);
    let client = &app.client;
    let (status, leads) = csv(client, &app, "/api/v1/exports/leads?business=demo").await;
    assert_eq!(status, 200);
    assert_eq!(
        leads[0],
        "id,business,name,phone,email,source,created_at,run_id,custom_fields,consent,timezone,do_not_call"
    );
    assert!(
        leads[1].ends_with(",,"),
        "no timezone, not listed: {}",
        leads[1]
    );
    assert!(
        leads[2].ends_with(",America/Chicago,listed"),
        "{}",
        leads[2]
    );
    assert_eq!(leads.len(), 4, "{leads:#?}");
    assert!(
        leads[1].contains("\"Lead, 0\"") && leads[1].contains("+14155553000"),
        "{}",
        leads[1]
    );
    assert!(leads[1].contains("budget_range"), "{}", leads[1]);
    let (_, runs) = csv(client, &app, "/api/v1/exports/runs?business=demo").await;
    assert_eq!(runs.len(), 4, "{runs:#?}");
    assert!(
        runs[1].starts_with(&run_ids[2]),
        "newest first: {}",
        runs[1]
    );
    let (_, past) = csv(client, &app, "/api/v1/exports/runs?to=2026-01-01T00:00:00Z").await;
    assert_eq!(past.len(), 1, "only the header: {past:?}");

    // Another business' key: its own rows only, and demo's answer 404.
    let (_, key) = app.create_key("dental").await;
    let other = client_with_key(&key);
    let (status, own) = csv(&other, &app, "/api/v1/exports/leads").await;
    assert_eq!((status, own.len()), (200, 1));
    let (status, _) = csv(&other, &app, "/api/v1/exports/runs?business=demo").await;
    assert_eq!(status, 404);
}
