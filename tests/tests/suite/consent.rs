//! Consent: a lead may carry the record of the person's prior consent to be called; a business
//! that requires it never calls a lead without one (the run ends `no_consent`). The lead page and
//! the export show it.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::*;

const T: Duration = Duration::from_secs(30);

crate::on_both_backends!(
    a_business_that_requires_consent_calls_only_leads_that_gave_it,
    a_consent_record_is_checked_field_by_field,
);

/// A business folder `careful`: the demo business, calling only with consent.
fn careful_dir() -> std::path::PathBuf {
    demo_variant(
        "careful",
        &[(
            "follow_up_score = 40",
            "follow_up_score = 40\nrequire_consent = true",
        )],
    )
}

fn consent() -> Value {
    json!({"source": "web_form", "at": "2026-11-30T14:02:00Z",
        "text": "I agree that Careful Realty may call me about my enquiry, including with an AI voice."})
}

async fn a_business_that_requires_consent_calls_only_leads_that_gave_it(backend: Backend) {
    let dir = careful_dir();
    let app = spawn_app_with(
        &backend,
        TestOptions {
            businesses_dir: Some(dir.clone()),
            ..TestOptions::default()
        },
    )
    .await;
    let lead = |consent: Option<Value>| {
        let mut lead = json!({"business": "careful", "name": "Ada Lovelace",
            "phone": "+14155552671", "sim": {"outcome": "interested"}});
        if let Some(c) = consent {
            lead["consent"] = c;
        }
        lead
    };
    let (without, run_without) = app.create_lead_with(&lead(None)).await;
    let run = app.wait_for_status(&run_without, "succeeded", T).await;
    assert_eq!(run["outcome"], "no_consent", "{run:#}");
    let dial = attempts(&run, "place_call")[0];
    assert!(dial["log"].to_string().contains("consent"), "{dial}");
    assert_eq!(app.sim().calls_for(&without), 0, "never dialled");

    let (with, run_with) = app.create_lead_with(&lead(Some(consent()))).await;
    let run = app.wait_for_status(&run_with, "succeeded", T).await;
    assert_eq!(run["outcome"], "handed_off", "{run:#}");
    assert_eq!(app.sim().calls_for(&with), 1);

    // The lead page and the export carry the record.
    let (_, page) = app.get(&format!("/api/v1/leads/{with}")).await;
    assert_eq!(page["lead"]["consent"]["source"], "web_form", "{page}");
    assert_eq!(page["do_not_call"], Value::Null);
    let (_, page) = app.get(&format!("/api/v1/leads/{without}")).await;
    assert_eq!(page["lead"]["consent"], Value::Null);
    let export = app
        .client
        .get(format!(
            "{}/api/v1/exports/leads?business=careful",
            app.address
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row = export
        .lines()
        .find(|l| l.starts_with(&with))
        .expect("the lead is exported");
    assert!(
        row.contains("web_form") && row.contains("AI voice"),
        "{row}"
    );
    std::fs::remove_dir_all(dir).ok();
}

async fn a_consent_record_is_checked_field_by_field(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::without_workers()).await;
    let with = |consent: Value| json!({"business": "demo", "name": "Ada", "phone": "+14155552671", "consent": consent});
    let mut future = consent();
    future["at"] = json!("2999-01-01T00:00:00Z");
    let mut bare = consent();
    bare.as_object_mut().unwrap().remove("text");
    let mut nameless = consent();
    nameless["source"] = json!(" ");
    for (consent, field) in [
        (future, "consent.at"),
        (bare, "consent"),
        (nameless, "consent.source"),
    ] {
        let resp = app.post_lead(&with(consent.clone())).await;
        assert_eq!(resp.status(), 422, "{consent}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_consent", "{body}");
        assert_eq!(body["error"]["details"]["field"], field, "{body}");
    }
    let mut unknown = consent();
    unknown["signed"] = json!(true);
    let resp = app.post_lead(&with(unknown)).await;
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let mut referenced = consent();
    referenced.as_object_mut().unwrap().remove("text");
    referenced["reference"] = json!("crm://consents/8812");
    let resp = app.post_lead(&with(referenced)).await;
    assert_eq!(
        resp.status(),
        201,
        "a reference instead of the text will do"
    );
    let (_, runs) = app.get("/api/v1/runs?business=demo").await;
    assert_eq!(
        runs["runs"].as_array().map(Vec::len),
        Some(1),
        "only the valid lead: {runs}"
    );
}
