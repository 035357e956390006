//! Usage metering: every call that ended is recorded with its length and its credits (one per
//! started minute: 2:13 → 3), and `GET /api/v1/businesses/{id}/usage` sums them over a range.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::*;

crate::on_both_backends!(usage_counts_credits_per_started_call_minute);

const T: Duration = Duration::from_secs(30);

async fn usage(app: &TestApp, query: &str) -> Value {
    let (status, usage) = app
        .get(&format!("/api/v1/businesses/demo/usage{query}"))
        .await;
    assert_eq!(status, 200, "{usage}");
    usage
}

async fn usage_counts_credits_per_started_call_minute(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::webhooks_wait_an_hour()).await;
    let now = chrono::Utc::now().timestamp();
    // Two calls that connected (2:13 and 0:59) and one that was not answered.
    for (ended, seconds) in [(1, Some(133)), (2, Some(59)), (3, None)] {
        let (_, _, conversation) = app.lead_awaiting_call().await;
        let webhook = match seconds {
            Some(secs) => {
                let mut w = transcription_webhook(&conversation, true);
                w["data"]["metadata"]["call_duration_secs"] = json!(secs);
                w
            }
            None => json!({"type": "call_initiation_failure", "event_timestamp": now,
                "data": {"agent_id": "a", "conversation_id": conversation,
                    "failure_reason": "no-answer", "metadata": {"type": "twilio", "body": {}}}}),
        };
        let (status, _) = app.post_webhook(&webhook, WEBHOOK_SECRET, now).await;
        assert_eq!(status, 200);
        eventually("the call's end to be metered", T, || async {
            (usage(&app, "").await["calls"] == ended).then_some(())
        })
        .await;
    }
    let metered = usage(&app, "").await;
    assert_eq!(
        (
            &metered["calls"],
            &metered["connected_calls"],
            &metered["billed_seconds"],
            &metered["credits"]
        ),
        (&json!(3), &json!(2), &json!(133 + 59), &json!(3 + 1)),
        "{metered}"
    );
    // A range before the calls ended holds none of them.
    let before = usage(&app, "?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z").await;
    assert_eq!(
        (&before["calls"], &before["credits"]),
        (&json!(0), &json!(0))
    );
    let (status, answer) = app
        .get("/api/v1/businesses/demo/usage?from=yesterday")
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("invalid_time"))
    );
    let (_, key) = app.create_key("dental").await;
    let (status, _) = app
        .send_with(
            &client_with_key(&key),
            "get",
            "/api/v1/businesses/demo/usage",
            None,
        )
        .await;
    assert_eq!(status, 404);
}
