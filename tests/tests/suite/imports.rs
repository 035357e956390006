//! Bulk import: a CSV or JSON-lines file becomes leads and runs in the background; every bad row
//! is reported with its line and reason; duplicates (the same phone number in the business) are
//! skipped or updated as asked; the same upload again changes nothing.

use serde_json::{Value, json};
use switchboard_engine::store::Q;
use switchboard_tests::*;

crate::on_both_backends!(
    duplicates_are_skipped_or_updated_as_asked,
    bad_uploads_are_refused_and_change_nothing,
    a_stalled_import_is_run_again_by_the_next_upload,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_rows_with_bad_ones_become_leads_and_a_second_upload_changes_nothing() {
    // No workers: the runs wait in the queue; this is about the import.
    let app = spawn_app_with(&Backend::Sqlite, TestOptions::without_workers()).await;
    let mut csv = String::from("Full Name,Mobile,E-mail,Budget\n");
    let mut bad = Vec::new();
    for i in 0..10_000 {
        let line = i + 2; // the header is line 1
        let (name, phone, email, budget) = match (i % 33 == 7, (i / 33) % 4) {
            (true, 0) => (format!("Lead {i}"), "12345".to_owned(), String::new(), ""),
            (true, 1) => (
                format!("Lead {i}"),
                format!("+1415555{i:04}"),
                "not-an-email".into(),
                "",
            ),
            (true, 2) => (
                format!("Lead {i}"),
                format!("+1415555{i:04}"),
                String::new(),
                "Lots",
            ),
            (true, _) => (String::new(), format!("+1415555{i:04}"), String::new(), ""),
            (false, _) => (
                format!("Lead {i}"),
                format!("+1415555{i:04}"),
                format!("lead{i}@example.com"),
                "500K-1M",
            ),
        };
        if i % 33 == 7 {
            bad.push(line);
        }
        csv.push_str(&format!("\"{name}\",{phone},{email},{budget}\n"));
    }
    let mapping = r#"{"name":"Full Name","phone":"Mobile","email":"E-mail","custom_fields":{"budget_range":"Budget"}}"#;
    let params = [("business", "demo"), ("mapping", mapping)];
    let encoded = reqwest::Url::parse_with_params("http://query/", &params).unwrap();
    let query = encoded.query().unwrap().to_owned();
    let resp = app.upload_import(&query, "text/csv", csv.clone()).await;
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let accepted: Value = resp.json().await.unwrap();
    let id = accepted["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/imports/{id}"));
    assert_eq!(accepted["total_rows"], 10_000);

    let import = app.import_done(&id).await;
    let good = 10_000 - bad.len() as i64;
    assert_eq!(import["status"], "done", "{import}");
    assert_eq!(
        (
            import["created"].as_i64(),
            import["rejected"].as_i64(),
            import["skipped"].as_i64()
        ),
        (Some(good), Some(bad.len() as i64), Some(0)),
        "{}",
        import["rejections"]
    );
    let rejections = import["rejections"].as_array().unwrap();
    let lines: Vec<i64> = rejections
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, bad);
    let reasons: Vec<&str> = rejections
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("phone"), "{:?}", &reasons[..4]);
    assert!(reasons[1].contains("email"), "{:?}", &reasons[..4]);
    assert!(reasons[2].contains("budget_range"), "{:?}", &reasons[..4]);
    assert!(reasons[3].contains("name"), "{:?}", &reasons[..4]);
    assert_eq!(app.count("leads").await, good);
    assert_eq!(app.count("sb_runs").await, good);

    // The same file again: the same import, nothing new.
    let resp = app.upload_import(&query, "text/csv", csv).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["idempotent-replayed"], "true");
    let again: Value = resp.json().await.unwrap();
    assert_eq!(again["id"], id.as_str());
    assert_eq!(app.count("leads").await, good);
    assert_eq!(app.count("sb_runs").await, good);
}

async fn duplicates_are_skipped_or_updated_as_asked(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::without_workers()).await;
    let (existing, _) = app
        .create_lead_with(&json!({"business": "demo", "name": "Ada", "phone": "+14155552671"}))
        .await;
    let file = [
        json!({"name": "Ada Lovelace", "phone": "+14155552671", "source": "fair"}),
        json!({"name": "Grace Hopper", "phone": "+14155552672"}),
        json!({"name": "Grace H.", "phone": "+1 415 555 2672", "budget_range": "Over 1M"}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");

    let resp = app
        .upload_import("business=demo", "application/x-ndjson", file.clone())
        .await;
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let skipped = app.import_done(&id).await;
    assert_eq!(
        (
            skipped["created"].as_i64(),
            skipped["skipped"].as_i64(),
            skipped["rejected"].as_i64()
        ),
        (Some(1), Some(2), Some(0)),
        "{skipped}"
    );
    let (_, lead) = app.get(&format!("/api/v1/leads/{existing}")).await;
    assert_eq!(lead["lead"]["name"], "Ada", "skipped: unchanged");

    let resp = app
        .upload_import(
            "business=demo&on_duplicate=update",
            "application/x-ndjson",
            file,
        )
        .await;
    assert_eq!(resp.status(), 202, "other options: another import");
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let updated = app.import_done(&id).await;
    assert_eq!(
        (updated["created"].as_i64(), updated["updated"].as_i64()),
        (Some(0), Some(3)),
        "{updated}"
    );
    let (_, lead) = app.get(&format!("/api/v1/leads/{existing}")).await;
    assert_eq!(lead["lead"]["name"], "Ada Lovelace", "{lead}");
    assert_eq!(lead["lead"]["source"], "fair", "{lead}");
    assert_eq!(app.count("leads").await, 2);
    assert_eq!(app.count("sb_runs").await, 2, "updates start no run");
}

async fn bad_uploads_are_refused_and_change_nothing(backend: Backend) {
    let app = spawn_app(&backend).await;
    let csv = "name,phone\nAda,+14155552671\n".to_owned();
    let refused = [
        (
            "business=demo",
            "application/pdf",
            csv.clone(),
            415,
            "unsupported_media_type",
        ),
        (
            "business=demo&mapping=%7Bnope",
            "text/csv",
            csv.clone(),
            422,
            "invalid_mapping",
        ),
        (
            // A column the file does not have: every row would be rejected.
            "business=demo&mapping=%7B%22phone%22%3A%22mobile%22%7D",
            "text/csv",
            csv.clone(),
            422,
            "invalid_mapping",
        ),
        (
            "business=demo",
            "text/csv",
            String::new(),
            422,
            "unreadable_file",
        ),
        (
            "business=demo",
            "text/csv",
            "name,phone\n".to_owned(),
            422,
            "empty_file",
        ),
        ("business=nope", "text/csv", csv.clone(), 404, "not_found"),
        (
            "business=demo&on_duplicate=merge",
            "text/csv",
            csv.clone(),
            422,
            "invalid_query",
        ),
    ];
    for (query, content_type, body, status, code) in refused {
        let resp = app.upload_import(query, content_type, body).await;
        assert_eq!(resp.status(), status, "{query} {content_type}");
        let answer: Value = resp.json().await.unwrap();
        assert_eq!(answer["error"]["code"], code, "{query}: {answer}");
    }
    // Another business' key: as if the business did not exist.
    let (_, key) = app.create_key("dental").await;
    let resp = client_with_key(&key)
        .post(format!("{}/api/v1/leads/import?business=demo", app.address))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(app.count("leads").await, 0);
    assert_eq!(app.count("lead_imports").await, 0);
}

async fn a_stalled_import_is_run_again_by_the_next_upload(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::without_workers()).await;
    let csv = "name,phone\nAda,+14155552671\nGrace,+14155552672\n".to_owned();
    let resp = app
        .upload_import("business=demo", "text/csv", csv.clone())
        .await;
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.import_done(&id).await;
    // As if its process had died half-way: still processing, no progress for long.
    app.engine
        .db()
        .execute(
            Q::new("UPDATE lead_imports SET status = 'processing', updated_at = 0 WHERE id = $1")
                .bind(id.as_str()),
        )
        .await
        .unwrap();
    let resp = app.upload_import("business=demo", "text/csv", csv).await;
    assert_eq!(resp.status(), 200);
    let again = app.import_done(&id).await;
    assert_eq!(again["status"], "done", "{again}");
    assert_eq!(
        (again["created"].as_i64(), again["skipped"].as_i64()),
        (Some(0), Some(2)),
        "stored the first time: duplicates now; {again}"
    );
    assert_eq!(app.count("leads").await, 2);
}
