//! Each business' do-not-call list: managed through the API (audited, per business), and a
//! number on it is never dialled: refused at intake, rejected by imports, and checked again
//! before every dial (a follow-up or retry of a run that started before the number was listed).
//! A person who asks on a call not to be called again goes on it, and the other runs for their
//! number end.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::*;

const T: Duration = Duration::from_secs(30);

crate::on_both_backends!(
    a_script_can_opt_a_lead_out,
    the_list_is_kept_through_the_api_per_business_and_audited,
    a_listed_number_is_never_dialled,
    a_lead_who_asks_not_to_be_called_again_is_listed_and_their_runs_end,
);

const LISTED: &str = "+14155550101";

async fn the_list_is_kept_through_the_api_per_business_and_audited(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::without_workers()).await;
    let list = "/api/v1/businesses/demo/do-not-call";
    // One unreadable number refuses the whole request, naming it.
    let (status, body) = app
        .send("POST", list, &json!({"phones": [LISTED, "not a phone"]}))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &json!("invalid_phone")),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["field"], "phones[1]");
    let (_, check) = app.get(&format!("{list}/{LISTED}")).await;
    assert_eq!(check["listed"], false, "nothing was added: {check}");
    for bad in [json!({"phones": []}), json!({"phone": LISTED})] {
        let (status, body) = app.send("POST", list, &bad).await;
        assert!(matches!(status, 400 | 422), "{bad}: {status} {body}");
    }

    // Added in bulk, in any format a lead's phone is read in; the second time they are there.
    let body = json!({"phones": [LISTED, "+1 (415) 555-0102"], "note": "asked by email"});
    let (status, added) = app.send("POST", list, &body).await;
    assert_eq!((status, &added), (200, &json!({"added": 2, "already": 0})));
    let (_, again) = app.send("POST", list, &json!({"phones": [LISTED]})).await;
    assert_eq!(again, json!({"added": 0, "already": 1}));
    let (status, check) = app.get(&format!("{list}/%2B14155550102")).await;
    assert_eq!((status, &check["listed"]), (200, &json!(true)), "{check}");
    assert_eq!(check["entry"]["reason"], "listed");
    assert_eq!(check["entry"]["note"], "asked by email");
    let (_, page) = app.get(&format!("{list}?limit=1")).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    let next = page["next"].as_str().unwrap();
    let (_, rest) = app
        .get(&format!("{list}?limit=1&after=%2B{}", &next[1..]))
        .await;
    assert_eq!(rest["entries"][0]["phone"], "+14155550102", "{rest}");

    // Per business: another business' list does not have it, and its key cannot reach ours.
    let (_, other) = app
        .get(&format!("/api/v1/businesses/dental/do-not-call/{LISTED}"))
        .await;
    assert_eq!(other["listed"], false);
    let (_, dental_key) = app.create_key("dental").await;
    let dental = client_with_key(&dental_key);
    let (status, _) = app
        .send_with(&dental, "GET", &format!("{list}/{LISTED}"), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .send_with(
            &dental,
            "POST",
            list,
            Some(&json!({"phones": ["+14155550199"]})),
        )
        .await;
    assert_eq!(status, 404);

    // Removed once; then it is not there.
    let (status, removed) = app.delete(&format!("{list}/{LISTED}")).await;
    assert_eq!((status, &removed), (200, &json!({"removed": true})));
    let (status, _) = app.delete(&format!("{list}/{LISTED}")).await;
    assert_eq!(status, 404);

    let (_, audit) = app.get("/api/v1/audit?business=demo").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| a.starts_with("do_not_call."))
            .count(),
        3,
        "two additions and a removal: {actions:?}"
    );
    assert!(actions.contains(&"do_not_call.removed"));
}

async fn a_listed_number_is_never_dialled(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (status, _) = app
        .send(
            "POST",
            "/api/v1/businesses/demo/do-not-call",
            &json!({"phones": [LISTED]}),
        )
        .await;
    assert_eq!(status, 200);

    // A single lead: refused, nothing stored.
    let lead = json!({"business": "demo", "name": "Ada Lovelace", "phone": LISTED});
    let resp = app.post_lead(&lead).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "do_not_call", "{body}");
    let (_, runs) = app.get("/api/v1/runs?business=demo").await;
    assert_eq!(
        runs["runs"].as_array().map(Vec::len),
        Some(0),
        "nothing started: {runs}"
    );

    // An import: the listed row is rejected with its line, the others go in.
    let file = [
        json!({"name": "Grace Hopper", "phone": "+14155550103"}),
        json!({"name": "Ada Lovelace", "phone": "+1 415 555 0101"}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let import = app
        .import_file("business=demo", "application/x-ndjson", file)
        .await;
    assert_eq!(
        (import["created"].as_i64(), import["rejected"].as_i64()),
        (Some(1), Some(1)),
        "{import}"
    );
    let rejection = &import["rejections"][0];
    assert_eq!(rejection["line"], 2);
    assert!(
        rejection["reason"]
            .as_str()
            .unwrap()
            .contains("do-not-call"),
        "{rejection}"
    );

    // A run that started before its number was listed: the next dial (a call back after no
    // answer, brought forward by hand) checks the list and ends the run instead.
    app.call_back_after_an_hour("demo").await;
    let (lead_id, run_id) = app
        .create_lead_with(&json!({"business": "demo", "name": "Alan Turing",
            "phone": "+14155550104", "sim": {"outcome": "no_answer", "webhook_delay_ms": 20}}))
        .await;
    app.first_follow_up_decided(&run_id).await;
    let (status, _) = app
        .send(
            "POST",
            "/api/v1/businesses/demo/do-not-call",
            &json!({"phones": ["+14155550104"]}),
        )
        .await;
    assert_eq!(status, 200);
    app.resume(&run_id).await;
    let run = app.wait_for_status(&run_id, "succeeded", T).await;
    assert_eq!(run["outcome"], "do_not_call", "{run:#}");
    let last_dial = *attempts(&run, "place_call").last().unwrap();
    assert!(
        last_dial["log"].to_string().contains("do-not-call list"),
        "{last_dial}"
    );
    assert_eq!(
        app.sim().calls_for(&lead_id),
        1,
        "called once, before it was listed"
    );
}

async fn a_lead_who_asks_not_to_be_called_again_is_listed_and_their_runs_end(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::webhooks_wait_an_hour()).await;
    let phone = "+14155550105";
    // The same person came in twice: one run waits on its call while the other calls.
    let waiting = a_run_waiting_on_its_call(&app, phone).await;
    let (_, run_id) = app
        .create_lead_with(
            &json!({"business": "demo", "name": "Ada Lovelace", "phone": phone,
            "sim": {"outcome": "opt_out"}}),
        )
        .await;

    let run = app.wait_for_status(&run_id, "succeeded", T).await;
    assert_eq!(run["outcome"], "opted_out", "{run:#}");
    let score = attempts(&run, "score")[0];
    assert!(
        score["log"]
            .to_string()
            .contains("asked not to be called again"),
        "{score}"
    );
    let other = app.run(&waiting).await;
    assert_eq!(
        (&other["status"], &other["outcome"]),
        (&json!("cancelled"), &json!("opted_out")),
        "{other:#}"
    );
    let (_, check) = app
        .get(&format!("/api/v1/businesses/demo/do-not-call/{phone}"))
        .await;
    assert_eq!(
        (&check["listed"], &check["entry"]["reason"]),
        (&json!(true), &json!("opted_out")),
        "{check}"
    );
    let resp = app
        .post_lead(&json!({"business": "demo", "name": "Ada", "phone": phone}))
        .await;
    assert_eq!(resp.status(), 422, "never called again");
}

async fn a_script_can_opt_a_lead_out(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::webhooks_wait_an_hour()).await;
    // The business learns of opt-outs its own way (say, an email reply) and keeps them in a
    // custom field its script reads.
    let (_, active) = app.get("/api/v1/businesses/demo/script").await;
    let source = format!(
        "{}\nfn follow_up(run) {{\n    if run.lead.source == \"unsubscribed\" {{\n        \
         return #{{ action: \"opt_out\", reason: \"replied STOP by email\" }};\n    }}\n    \
         #{{ action: \"hand_off\", reason: \"scripted\" }}\n}}\n",
        active["source"].as_str().unwrap()
    );
    let (status, put) = app
        .send(
            "PUT",
            "/api/v1/businesses/demo/script",
            &json!({"source": source}),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    let phone = "+14155550107";
    let waiting = a_run_waiting_on_its_call(&app, phone).await;
    let (_, run_id) = app
        .create_lead_with(
            &json!({"business": "demo", "name": "Ada Lovelace", "phone": phone,
            "source": "unsubscribed", "sim": {"outcome": "interested"}}),
        )
        .await;
    let run = app.wait_for_status(&run_id, "succeeded", T).await;
    assert_eq!(run["outcome"], "opted_out", "{run:#}");
    let follow_up = attempts(&run, "follow_up")[0];
    assert!(
        follow_up["log"]
            .to_string()
            .contains("replied STOP by email"),
        "{follow_up}"
    );
    let other = app.run(&waiting).await;
    assert_eq!(other["outcome"], "opted_out", "{other:#}");
    let (_, check) = app
        .get(&format!("/api/v1/businesses/demo/do-not-call/{phone}"))
        .await;
    assert_eq!(
        (&check["entry"]["reason"], &check["entry"]["note"]),
        (&json!("opted_out"), &json!("replied STOP by email")),
        "{check}"
    );
}

/// Starts a run for `phone` whose call never ends (no webhook) and returns it once it waits.
async fn a_run_waiting_on_its_call(app: &TestApp, phone: &str) -> String {
    let (_, waiting) = app
        .create_lead_with(&json!({"business": "demo", "name": "Ada", "phone": phone,
            "sim": {"outcome": "interested", "deliver_webhook": false}}))
        .await;
    app.wait_for_call_wait(&waiting).await;
    waiting
}
