//! Text from outside at every route: a NUL (which PostgreSQL cannot store and SQLite would) is
//! refused at the edge as `422 invalid_text` in the error shape, the same on both backends, and
//! arbitrary strings in every parameter and body field of the OpenAPI document never make a 5xx.

use std::time::Duration;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use switchboard_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T: Duration = Duration::from_secs(30);

crate::on_both_backends!(
    a_nul_anywhere_is_refused_in_the_error_shape_and_stores_nothing,
    an_import_rejects_a_row_holding_a_nul_and_goes_on,
    every_route_answers_arbitrary_strings_without_a_5xx,
    requests_http_cannot_parse_are_answered_in_the_error_shape,
);

fn assert_refused(status: u16, answer: &Value, field: &str, what: &str) {
    assert_eq!(status, 422, "{what}: {answer}");
    assert_eq!(answer["error"]["code"], "invalid_text", "{what}: {answer}");
    assert_eq!(
        answer["error"]["details"]["field"], field,
        "{what}: {answer}"
    );
}

async fn a_nul_anywhere_is_refused_in_the_error_shape_and_stores_nothing(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::without_workers()).await;

    for field in ["name", "email", "source", "business"] {
        let mut body = lead(json!({}));
        body[field] = json!(format!("{}\u{0}x", body[field].as_str().unwrap_or("Ada")));
        let (status, answer) = app.send("POST", "/api/v1/leads", &body).await;
        assert_refused(status, &answer, field, field);
    }
    let mut body = lead(json!({}));
    body["custom_fields"] = json!({ "budget": "8\u{0}00" });
    let (status, answer) = app.send("POST", "/api/v1/leads", &body).await;
    assert_refused(status, &answer, "custom_fields.budget", "a custom field");
    assert_eq!(app.count("leads").await, 0, "no lead was stored");

    for url in [
        "/api/v1/runs?q=%00",
        "/api/v1/runs/%00",
        "/api/v1/leads/%00",
        "/api/v1/keys?business=%00",
        "/api/v1/businesses/demo%00/config",
        "/api/v1/runs?q=a%%00",
    ] {
        let (status, answer) = app.get(url).await;
        assert_refused(status, &answer, "url", url);
    }

    let keys = app.count("sb_api_keys").await;
    let key = json!({ "name": "nul\u{0}key", "business": "demo" });
    let (status, answer) = app.send("POST", "/api/v1/keys", &key).await;
    assert_refused(status, &answer, "name", "a key's name");
    assert_eq!(app.count("sb_api_keys").await, keys, "no key was stored");

    // A signed webhook naming a call whose id holds a NUL: refused, not dead-lettered.
    let webhook = transcription_webhook("conv_\u{0}1", true);
    let (status, answer) = app
        .post_webhook(&webhook, WEBHOOK_SECRET, chrono::Utc::now().timestamp())
        .await;
    assert_refused(status, &answer, "data.conversation_id", "a webhook");
    assert_eq!(
        app.count("sb_dead_letters").await,
        0,
        "nothing dead-lettered"
    );

    // The escaped text `\u0000` (a backslash, then `u0000`) is text like any other.
    let mut body = lead(json!({}));
    body["name"] = json!("Ada \\u0000 Lovelace");
    let (status, answer) = app.send("POST", "/api/v1/leads", &body).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["lead"]["name"], "Ada \\u0000 Lovelace", "{answer}");
}

async fn an_import_rejects_a_row_holding_a_nul_and_goes_on(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::without_workers()).await;
    let csv = "name,phone\n\
               Ada,+14155550101\n\
               Bad\0Row,+14155550102\n\
               Grace,+14155550103\n"
        .to_owned();
    let import = app.import_file("business=demo", "text/csv", csv).await;
    assert_eq!(import["status"], "done", "{import}");
    assert_eq!(
        import["created"], 2,
        "the rows after it are imported: {import}"
    );
    assert_eq!(import["rejected"], 1, "{import}");
    assert_eq!(import["rejections"][0]["line"], 3, "{import}");
    let reason = import["rejections"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("name holds a NUL"), "{reason}");
    assert_eq!(app.count("leads").await, 2);
}

/// Strings every run tries, then arbitrary ones.
const HOSTILE: &[&str] = &[
    "\u{0}",
    "a\u{0}b",
    "\u{1}\u{7}\u{1b}[2J\u{7f}",
    "\r\n\t",
    "%00",
    "\\u0000",
    "'; DROP TABLE leads; --",
    "../../etc/passwd",
    "\u{202e}evil\u{200b}",
    "𝕊𝕨𝕚𝕥𝕔𝕙 👩‍💻",
    "",
    " ",
    "null",
    "-1",
    "99999999999999999999",
    "2026-02-30T25:61:61Z",
];

/// `n` arbitrary strings, the same in every run (a deterministic runner).
fn arbitrary_strings(n: usize) -> Vec<String> {
    let mut runner = TestRunner::deterministic();
    let strategy = proptest::string::string_regex("(?s).{0,40}").unwrap();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

/// A valid body for each operation that takes one; every string field of it is then replaced.
fn valid_body(method: &str, path: &str) -> Option<Value> {
    match (method, path) {
        ("post", "/api/v1/leads") => Some(lead(json!({}))),
        ("post", "/api/v1/keys") => Some(json!({ "name": "k", "business": "demo" })),
        ("post", "/api/v1/businesses") => Some(json!({ "id": "acme", "name": "Acme" })),
        ("post", "/api/v1/sessions") => Some(json!({ "key": OPERATOR_KEY })),
        ("post", p) if p.ends_with("/do-not-call") => Some(json!({ "phones": ["+14155550100"] })),
        ("put" | "patch", p) if p.ends_with("/config") => Some(json!({ "name": "Demo" })),
        ("post", p) if p.ends_with("/dry-run") => Some(json!({
            "source": "fn score(lead, analysis) { 50 }",
            "lead": { "name": "Ada", "phone": "+14155550100" },
        })),
        (_, p) if p.contains("/script") && method != "get" => {
            Some(json!({ "source": "fn score(lead, analysis) { 50 }" }))
        }
        ("post", _) => Some(json!({})),
        _ => None,
    }
}

/// `body` with the string at each place replaced by `s`, one place at a time.
fn with_each_string_replaced(body: &Value, s: &str) -> Vec<Value> {
    fn places(v: &Value, at: &mut Vec<String>, out: &mut Vec<String>) {
        match v {
            Value::String(_) => out.push(format!("/{}", at.join("/"))),
            Value::Array(items) => (0..items.len()).for_each(|i| {
                at.push(i.to_string());
                places(&items[i], at, out);
                at.pop();
            }),
            Value::Object(fields) => fields.iter().for_each(|(k, item)| {
                at.push(k.clone());
                places(item, at, out);
                at.pop();
            }),
            _ => {}
        }
    }
    let mut found = Vec::new();
    places(body, &mut Vec::new(), &mut found);
    found
        .into_iter()
        .map(|pointer| {
            let mut b = body.clone();
            *b.pointer_mut(&pointer).unwrap() = json!(s);
            b
        })
        .collect()
}

async fn every_route_answers_arbitrary_strings_without_a_5xx(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::without_workers()).await;
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    let mut strings: Vec<String> = HOSTILE.iter().map(|s| (*s).to_owned()).collect();
    strings.extend(arbitrary_strings(8));
    let base = reqwest::Url::parse(&app.address).unwrap();
    let mut sent = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path == "/api/v1/events" {
            continue; // a live stream: it never ends by itself
        }
        for (method, op) in item.as_object().unwrap() {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let queries: Vec<&str> = params
                .iter()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str())
                .collect();
            for s in &strings {
                // Every path parameter holds `s`; then each query parameter in turn; then each
                // string of the body in turn.
                let mut url = base.clone();
                let segments: Vec<&str> = path
                    .trim_start_matches('/')
                    .split('/')
                    .map(|seg| {
                        if seg.starts_with('{') {
                            s.as_str()
                        } else {
                            seg
                        }
                    })
                    .collect();
                url.path_segments_mut().unwrap().clear().extend(segments);
                let mut requests = vec![(url.clone(), valid_body(method, path))];
                for name in &queries {
                    let mut with_query = url.clone();
                    with_query.query_pairs_mut().append_pair(name, s);
                    requests.push((with_query, valid_body(method, path)));
                }
                if let Some(body) = valid_body(method, path) {
                    for b in with_each_string_replaced(&body, s) {
                        requests.push((url.clone(), Some(b)));
                    }
                }
                for (url, body) in requests {
                    let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                    let mut request = app.client.request(m, url.clone());
                    if let Some(body) = &body {
                        request = request.json(body);
                    }
                    let resp = tokio::time::timeout(T, request.send())
                        .await
                        .unwrap_or_else(|_| panic!("{method} {url} answered in time"))
                        .unwrap();
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    sent += 1;
                    assert!(
                        status < 500,
                        "{method} {url} with {body:?} (string {s:?}): {status} {text}"
                    );
                    if status >= 400 && status != 405 {
                        let answer: Value = serde_json::from_str(&text).unwrap_or_else(|_| {
                            panic!("{method} {url}: {status} not in the error shape: {text:?}")
                        });
                        assert!(
                            answer["error"]["code"].is_string(),
                            "{method} {url}: {answer}"
                        );
                    }
                }
            }
        }
    }
    assert!(sent > 1000, "only {sent} requests sent");
    // The server still serves.
    let (status, _) = app.get("/api/v1/runs").await;
    assert_eq!(status, 200);
}

/// Requests hyper refuses before any handler (a control character in a header, a URL over
/// 64 KiB) are answered in the error shape, not with an empty body.
async fn requests_http_cannot_parse_are_answered_in_the_error_shape(backend: Backend) {
    let app = spawn_app_with(&backend, TestOptions::without_workers()).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let long_url = format!("/api/v1/runs?q={}", "a".repeat(100_000));
    let cases = [
        (
            format!("GET {long_url} HTTP/1.1\r\nhost: x\r\n\r\n"),
            "414",
            "url_too_long",
        ),
        (
            "POST /api/v1/leads HTTP/1.1\r\nhost: x\r\nidempotency-key: a\u{1}b\r\n\
             content-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
                .to_owned(),
            "400",
            "malformed_request",
        ),
    ];
    for (request, status, code) in cases {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        // The server may answer (and close) before reading all of a long request.
        let _ = stream.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        tokio::time::timeout(T, stream.read_to_end(&mut answer))
            .await
            .expect("the server answers and closes")
            .unwrap();
        let answer = String::from_utf8(answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    // The server goes on serving.
    let (status, _) = app.get("/api/v1/runs").await;
    assert_eq!(status, 200);
}
