//! Authentication and tenancy: every route of the OpenAPI document refuses a request without a
//! key (401) and answers another business' key 404 on this business' data (changing nothing);
//! keys are shown once, stored hashed and revocable; dashboard sessions are HttpOnly cookies whose
//! actions need the CSRF token; changes land in the audit log; keys and addresses are
//! rate-limited; the first start prints an operator key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_engine::store::Q;
use switchboard_tests::children::Process;
use switchboard_tests::*;

const T: Duration = Duration::from_secs(30);

crate::on_both_backends!(
    every_route_refuses_no_key_and_hides_another_business_data,
    keys_are_shown_once_stored_hashed_and_revocable,
    a_dashboard_session_is_an_httponly_cookie_and_its_actions_need_the_csrf_token,
    operator_and_script_changes_are_in_the_audit_log,
    the_first_operator_key_is_created_once_by_processes_starting_together,
);

/// The business whose data is probed, and the other business whose key probes it.
const MINE: &str = "demo";
const OTHER: &str = "dental";

/// The probed business' data whose ids fill the paths.
struct Probed {
    lead_id: String,
    run_id: String,
    key_id: String,
    import_id: String,
}

/// `path` with its parameters filled from the probed data.
fn concrete(path: &str, p: &Probed) -> String {
    let (lead_id, run_id, key_id) = (&p.lead_id, &p.run_id, &p.key_id);
    path.replace("/leads/{id}", &format!("/leads/{lead_id}"))
        .replace("/runs/{id}", &format!("/runs/{run_id}"))
        .replace("/businesses/{id}", &format!("/businesses/{MINE}"))
        .replace("/keys/{id}", &format!("/keys/{key_id}"))
        .replace("/dead-letters/{id}", "/dead-letters/dl_0")
        .replace("/imports/{id}", &format!("/imports/{}", p.import_id))
        .replace("{version}", "1")
        .replace("{phone}", "%2B14155550100")
}

/// What each operation is sent: a body aimed at the probed business.
fn body_for(method: &str, path: &str, script: &str) -> Option<Value> {
    match (method, path) {
        ("post", "/api/v1/leads") => Some(json!({
            "business": MINE, "name": "Eve", "phone": "+14155550100"
        })),
        ("post", "/api/v1/keys") => Some(json!({ "name": "stolen", "business": MINE })),
        (_, p) if p.contains("/script") && method != "get" => Some(json!({ "source": script })),
        ("post", p) if p.ends_with("/do-not-call") => Some(json!({ "phones": ["+14155550100"] })),
        ("put" | "patch", p) if p.ends_with("/config") => Some(json!({ "name": "Stolen" })),
        ("post", _) => Some(json!({})),
        _ => None,
    }
}

/// What another business' key gets where it is not 404: routes that hold no business' data,
/// and the operator's.
fn expected_for_another_business() -> BTreeMap<(&'static str, &'static str), u16> {
    BTreeMap::from([
        // A lead names its business in the body: 422 `unknown_business`, exactly as for a
        // business that does not exist.
        (("post", "/api/v1/leads"), 422),
        (("get", "/api/v1/businesses"), 200),
        // Only operators create businesses.
        (("post", "/api/v1/businesses"), 403),
        (("get", "/api/v1/scripts/reference"), 200),
        (("get", "/api/v1/sessions/current"), 200),
        (("delete", "/api/v1/sessions/current"), 204),
        (("get", "/metrics"), 403),
        (("get", "/api/v1/dead-letters"), 403),
        (("get", "/api/v1/dead-letters/{id}"), 403),
        (("post", "/api/v1/dead-letters/{id}/replay"), 403),
        (("get", "/queue"), 403),
    ])
}

/// An app with one lead of [`MINE`] whose run waits on its call's webhook (for an hour).
async fn app_with_a_waiting_run(backend: Backend) -> (TestApp, String, String) {
    let app = spawn_app_with(&backend, TestOptions::webhooks_wait_an_hour()).await;
    let (lead_id, run_id) = app
        .create_lead(json!({"outcome": "interested", "webhook_delay_ms": 600_000}))
        .await;
    app.wait_for_status(&run_id, "waiting", T).await;
    (app, lead_id, run_id)
}

async fn every_route_refuses_no_key_and_hides_another_business_data(backend: Backend) {
    let (app, lead_id, run_id) = app_with_a_waiting_run(backend).await;
    let (my_key_id, my_key) = app.create_key(MINE).await;
    let (_, other_key) = app.create_key(OTHER).await;
    let (_, script) = app.get(&format!("/api/v1/businesses/{MINE}/script")).await;
    let script = script["source"].as_str().unwrap().to_owned();
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    let imported = app
        .client
        .post(format!(
            "{}/api/v1/leads/import?business={MINE}",
            app.address
        ))
        .header("content-type", "text/csv")
        .body("name,phone\nEve,+14155550199\n")
        .send()
        .await
        .unwrap();
    assert_eq!(imported.status(), 202);
    let imported: Value = imported.json().await.unwrap();
    let import_id = imported["id"].as_str().unwrap().to_owned();
    eventually("the import to finish", T, || async {
        let (_, import) = app.get(&format!("/api/v1/imports/{import_id}")).await;
        (import["status"] == "done").then_some(())
    })
    .await;
    let data = Probed {
        lead_id: lead_id.clone(),
        run_id: run_id.clone(),
        key_id: my_key_id.clone(),
        import_id,
    };

    let anonymous = reqwest::Client::new();
    let other = client_with_key(&other_key);
    let exceptions = expected_for_another_business();
    let mut probed = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["security"] == json!([{}]) {
                continue; // public: health, the document, signed webhooks, sign-in
            }
            probed += 1;
            let mut url = concrete(path, &data);
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            if params
                .iter()
                .any(|p| p["in"] == "query" && p["name"] == "business")
            {
                url.push_str(&format!("?business={MINE}"));
            }
            let body = body_for(method, path, &script);
            let (status, answer) = app.send_with(&anonymous, method, &url, body.as_ref()).await;
            assert_eq!(status, 401, "{method} {url} without a key: {answer}");
            assert_eq!(answer["error"]["code"], "unauthorized", "{method} {url}");

            let expected = exceptions
                .get(&(method.as_str(), path.as_str()))
                .copied()
                .unwrap_or(404);
            let (status, answer) = app.send_with(&other, method, &url, body.as_ref()).await;
            assert_eq!(
                status, expected,
                "{method} {url} with another business' key: {answer}"
            );
            if status >= 400 {
                assert!(
                    answer["error"]["code"].is_string(),
                    "{method} {url}: {answer}"
                );
            }
            if (method.as_str(), path.as_str()) == ("get", "/api/v1/businesses") {
                let ids: Vec<&str> = answer["businesses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|b| b["id"].as_str())
                    .collect();
                assert_eq!(ids, [OTHER], "a business' key lists only its own business");
            }
        }
    }
    assert!(probed >= 25, "only {probed} operations probed");

    // Nothing changed: the run still waits, the lead, the script and the key are as they were.
    let run = app.run(&run_id).await;
    assert_eq!(run["status"], "waiting", "{run}");
    let (status, _) = app.get(&format!("/api/v1/leads/{lead_id}")).await;
    assert_eq!(status, 200);
    let (_, versions) = app
        .get(&format!("/api/v1/businesses/{MINE}/script/versions"))
        .await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "{versions}"
    );
    let (_, config) = app.get(&format!("/api/v1/businesses/{MINE}/config")).await;
    assert_eq!(config["version"], 1, "{config}");
    let (leads,): (i64,) = app
        .engine
        .db()
        .fetch_one(Q::new("SELECT COUNT(*) FROM leads"))
        .await
        .unwrap();
    assert_eq!(
        leads, 2,
        "no lead was created for the probed business (one run, one import)"
    );
    let (_, keys) = app.get(&format!("/api/v1/keys?business={MINE}")).await;
    assert!(keys["keys"][0]["revoked_at"].is_null(), "{keys}");

    // The business' own key reaches its data, and only its data.
    let mine = client_with_key(&my_key);
    let (status, run) = app
        .send_with(&mine, "get", &format!("/api/v1/runs/{run_id}"), None)
        .await;
    assert_eq!(status, 200, "{run}");
    let (status, runs) = app.send_with(&mine, "get", "/api/v1/runs", None).await;
    assert_eq!(status, 200);
    assert!(
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["business"] == MINE),
        "{runs}"
    );
    let (_, other_runs) = app.send_with(&other, "get", "/api/v1/runs", None).await;
    assert_eq!(other_runs["runs"], json!([]), "{other_runs}");
}

async fn keys_are_shown_once_stored_hashed_and_revocable(backend: Backend) {
    let app = spawn_app(&backend).await;
    let (key_id, key) = app.create_key(MINE).await;
    assert!(key.starts_with("sbk_") && key.len() > 60, "{key}");
    let mine = client_with_key(&key);

    // Listed without its secret; the database holds only its hash.
    let (_, listed) = app.get("/api/v1/keys").await;
    let text = listed.to_string();
    assert!(text.contains(&key_id) && !text.contains(&key), "{listed}");
    let (stored,): (String,) = app
        .engine
        .db()
        .fetch_one(Q::new("SELECT secret_hash FROM sb_api_keys WHERE id = $1").bind(&key_id))
        .await
        .unwrap();
    assert_ne!(stored, key);
    assert!(
        !stored.contains(&key[4..]),
        "the stored form is not the key"
    );

    // A business' key makes keys for its own business only, and no operator keys.
    let (status, own) = app
        .send_with(
            &mine,
            "post",
            "/api/v1/keys",
            Some(&json!({"name": "second"})),
        )
        .await;
    assert_eq!(status, 201, "{own}");
    assert_eq!(own["business_id"], MINE, "{own}");
    let created = own["created_at"].as_str().unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "times are RFC 3339, as in every answer: {own}"
    );
    let (status, _) = app
        .send_with(
            &mine,
            "post",
            "/api/v1/keys",
            Some(&json!({"name": "x", "business": OTHER})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, answer) = app.send_with(&mine, "get", "/metrics", None).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("operator_only"))
    );

    // Bad input: 422 naming the field, nothing stored.
    let (status, answer) = app
        .send(
            "POST",
            "/api/v1/keys",
            &json!({"name": " ", "business": MINE}),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["details"]["field"], "name");
    let (_, listed) = app.get(&format!("/api/v1/keys?business={MINE}")).await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2, "{listed}");

    // Revoked: refused at once; revoking again is a conflict.
    let (status, revoked) = app.delete(&format!("/api/v1/keys/{key_id}")).await;
    assert_eq!(status, 200, "{revoked}");
    assert!(
        chrono::DateTime::parse_from_rfc3339(revoked["revoked_at"].as_str().unwrap()).is_ok(),
        "{revoked}"
    );
    let (status, answer) = app.send_with(&mine, "get", "/api/v1/runs", None).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"]["code"], "unauthorized");
    let (status, _) = app.delete(&format!("/api/v1/keys/{key_id}")).await;
    assert_eq!(status, 409);

    // The last usable operator key cannot be revoked (nobody could get in again).
    let (_, me) = app.get("/api/v1/sessions/current").await;
    let operator_key_id = me["key_id"].as_str().unwrap();
    let (status, answer) = app.delete(&format!("/api/v1/keys/{operator_key_id}")).await;
    assert_eq!(status, 409, "{answer}");

    // A malformed Authorization header is a 401 in the error shape, not a 500.
    let resp = reqwest::Client::new()
        .get(format!("{}/api/v1/runs", app.address))
        .header("Authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

async fn a_dashboard_session_is_an_httponly_cookie_and_its_actions_need_the_csrf_token(
    backend: Backend,
) {
    let (app, _, run_id) = app_with_a_waiting_run(backend).await;
    let (key_id, key) = app.create_key(MINE).await;
    let browser = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", app.address);

    let (status, _) = app
        .send_with(
            &browser,
            "post",
            "/api/v1/sessions",
            Some(&json!({"key": "sbk_wrong"})),
        )
        .await;
    assert_eq!(status, 401);
    let resp = browser
        .post(url("/api/v1/sessions"))
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let signed_in: Value = resp.json().await.unwrap();
    assert_eq!(signed_in["business"], MINE);
    let csrf = signed_in["csrf_token"].as_str().unwrap().to_owned();

    let (status, who) = (async {
        let r = browser
            .get(url("/api/v1/sessions/current"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(who["csrf_token"], csrf.as_str());

    // An action without the CSRF token (a forged cross-site request) is refused and changes
    // nothing; with it, it is done.
    let cancel = url(&format!("/api/v1/runs/{run_id}/cancel"));
    let resp = browser
        .post(&cancel)
        .header("cookie", &cookie)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "csrf_failed");
    assert_eq!(app.run(&run_id).await["status"], "waiting");
    let resp = browser
        .post(&cancel)
        .header("cookie", &cookie)
        .header("x-csrf-token", "0".repeat(64))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "a wrong token is no token");
    let resp = browser
        .post(&cancel)
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(app.run(&run_id).await["status"], "cancelled");

    // Signing out ends the session; so does revoking its key.
    let resp = browser
        .delete(url("/api/v1/sessions/current"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = browser
        .get(url("/api/v1/runs"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let resp = browser
        .post(url("/api/v1/sessions"))
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let resp = browser
        .get(url("/api/v1/runs"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.delete(&format!("/api/v1/keys/{key_id}")).await;
    let resp = browser
        .get(url("/api/v1/runs"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

async fn operator_and_script_changes_are_in_the_audit_log(backend: Backend) {
    let (app, _, run_id) = app_with_a_waiting_run(backend).await;
    let (_, source) = app.get(&format!("/api/v1/businesses/{OTHER}/script")).await;
    let edited = format!("{}\n// edited\n", source["source"].as_str().unwrap());
    let (status, _) = app.put_script(OTHER, &edited).await;
    assert_eq!(status, 200);
    let (key_id, key) = app.create_key(MINE).await;
    app.delete(&format!("/api/v1/keys/{key_id}")).await;
    app.post(&format!("/api/v1/runs/{run_id}/cancel")).await;

    let (status, log) = app.get("/api/v1/audit").await;
    assert_eq!(status, 200, "{log}");
    let actions: Vec<(&str, &str)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["target"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("run.cancelled", run_id.as_str()),
            ("key.revoked", key_id.as_str()),
            ("key.created", key_id.as_str()),
            ("script.activated", OTHER),
        ],
        "{log}"
    );
    let operator_key_id = log["entries"][0]["actor"].as_str().unwrap();
    assert!(operator_key_id.starts_with("key_"), "{log}");
    assert!(!log.to_string().contains(&key), "no secret in the log");

    // A business sees only its own entries.
    let (_, mine) = app.create_key(MINE).await;
    let (_, own_log) = app
        .send_with(&client_with_key(&mine), "get", "/api/v1/audit", None)
        .await;
    assert!(
        own_log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["business"] == MINE),
        "{own_log}"
    );
    let (status, _) = app
        .send_with(
            &client_with_key(&mine),
            "get",
            &format!("/api/v1/audit?business={OTHER}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after() {
    let app = spawn_app_configured(&Backend::Sqlite, TestOptions::default(), |c| {
        c.key_rate_limit = 3;
        c.address_rate_limit = 2;
    })
    .await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..6 {
        let resp = app.get_response("/api/v1/businesses").await;
        statuses.push(resp.status().as_u16());
        last = Some(resp);
    }
    // A bucket of 3 refills at 3/s: at least 2 of 6 quick requests are refused.
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 2,
        "{statuses:?}"
    );
    let resp = last.unwrap();
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    // Unauthenticated routes are limited per client address: a webhook flood is cut off.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, _) = app
            .post_webhook(
                &transcription_webhook("conv_nobody", true),
                "wrong-secret",
                0,
            )
            .await;
        statuses.push(status);
    }
    assert!(
        statuses.contains(&401) && statuses.contains(&429),
        "{statuses:?}"
    );
}

/// A second server started on an address in use stops with one line naming the address and the
/// setting to change, for each of its listeners, and no backtrace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_a_taken_address_names_the_setting_to_change() {
    let database = TestDatabase::create(&Backend::Sqlite).await;
    let logs = switchboard_tests::children::log_dir("taken_address");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    for setting in ["SWITCHBOARD_ADDR", "SWITCHBOARD_QUEUE_BOARD_ADDR"] {
        let mut env = vec![
            ("DATABASE_URL", database.url.clone()),
            ("SWITCHBOARD_ADDR", format!("127.0.0.1:{}", free_port())),
            ("SWITCHBOARD_QUEUE_BOARD_ADDR", "127.0.0.1:0".to_owned()),
            ("SWITCHBOARD_NO_WORKERS", "true".to_owned()),
            ("RUST_BACKTRACE", "1".to_owned()),
        ];
        env.retain(|(name, _)| *name != setting);
        env.push((setting, taken.clone()));
        let mut process = Process::start(setting, "serve", &env, &logs);
        let status = process.exited(T).await;
        assert!(!status.success(), "{status}");
        let output = process.log_text();
        assert!(
            output.contains(&format!("Error: cannot listen on {taken}"))
                && output.contains(&format!("set {setting}")),
            "{output}"
        );
        assert!(!output.contains("backtrace"), "{output}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_prints_an_operator_key_once_and_it_works() {
    let database = TestDatabase::create(&Backend::Sqlite).await;
    let logs = switchboard_tests::children::log_dir("first_start");
    // Starts `serve` (each start logging to its own file) and returns its output once it says it
    // is serving, and its address.
    let start = |label: &'static str| {
        let port = free_port();
        let env = [
            ("DATABASE_URL", database.url.clone()),
            ("SWITCHBOARD_ADDR", format!("127.0.0.1:{port}")),
            ("SWITCHBOARD_QUEUE_BOARD_ADDR", "127.0.0.1:0".to_owned()),
            ("SWITCHBOARD_NO_WORKERS", "true".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ];
        let process = Process::start(label, "serve", &env, &logs);
        async move {
            let output = eventually("the process to serve", T, || {
                let text = process.log_text();
                std::future::ready(text.contains("Switchboard is serving").then_some(text))
            })
            .await;
            (process, output, format!("http://127.0.0.1:{port}"))
        }
    };

    let (first, printed, address) = start("first").await;
    let keys: Vec<&str> = printed
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("sbk_"))
        .collect();
    assert_eq!(keys.len(), 1, "{printed}");
    let key = keys[0].to_owned();
    let (status, _) = businesses_with(&address, &key).await;
    assert_eq!(status, 200);
    let (status, _) = businesses_with(&address, "sbk_guess").await;
    assert_eq!(status, 401);
    first.kill().await;

    // Started again on the same database: no new key; the printed one still works.
    let (_second, printed, address) = start("second").await;
    assert!(!printed.contains("sbk_"), "{printed}");
    let (status, _) = businesses_with(&address, &key).await;
    assert_eq!(status, 200);
}

/// `GET /api/v1/businesses` on `address` with `key`, once the server answers.
async fn businesses_with(address: &str, key: &str) -> (u16, Value) {
    let client = client_with_key(key);
    eventually("the server answers", T, || async {
        let resp = client
            .get(format!("{address}/api/v1/businesses"))
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.json().await.unwrap_or(Value::Null)))
    })
    .await
}

async fn the_first_operator_key_is_created_once_by_processes_starting_together(backend: Backend) {
    use switchboard_api::access::{Bootstrap, bootstrap};
    let database = TestDatabase::create(&backend).await;
    let db = switchboard_engine::Db::connect(&database.url, 8)
        .await
        .unwrap();
    switchboard_engine::migrate(&db).await.unwrap();
    let (a, b, c) = tokio::join!(
        bootstrap(&db, None),
        bootstrap(&db, None),
        bootstrap(&db, None)
    );
    let created = [a.unwrap(), b.unwrap(), c.unwrap()]
        .into_iter()
        .filter(|r| matches!(r, Bootstrap::Created(_)))
        .count();
    assert_eq!(created, 1);
    assert_eq!(bootstrap(&db, None).await.unwrap(), Bootstrap::Existing);

    // A configured key is stored once and usable; once revoked, start-up refuses it.
    let configured = "sbk_configured-operator-key";
    assert_eq!(
        bootstrap(&db, Some(configured)).await.unwrap(),
        Bootstrap::FromSetting
    );
    assert_eq!(
        bootstrap(&db, Some(configured)).await.unwrap(),
        Bootstrap::FromSetting
    );
    let (n,): (i64,) = db
        .fetch_one(Q::new(
            "SELECT COUNT(*) FROM sb_api_keys WHERE business_id IS NULL",
        ))
        .await
        .unwrap();
    assert_eq!(n, 2);
    db.execute(Q::new(
        "UPDATE sb_api_keys SET revoked_at = 1 WHERE name = 'SWITCHBOARD_OPERATOR_KEY'",
    ))
    .await
    .unwrap();
    assert_eq!(
        bootstrap(&db, Some(configured)).await.unwrap(),
        Bootstrap::SettingRevoked
    );
    // A configured key read from a file with a trailing newline is the same key.
    let padded = "sbk_padded-operator-key\n";
    assert_eq!(
        bootstrap(&db, Some(padded)).await.unwrap(),
        Bootstrap::FromSetting
    );
    let (n,): (i64,) = db
        .fetch_one(
            Q::new("SELECT COUNT(*) FROM sb_api_keys WHERE secret_hash = $1").bind(
                switchboard_api::store::keys::hash("sbk_padded-operator-key"),
            ),
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_ends_when_its_key_is_revoked() {
    let app = spawn_app(&Backend::Sqlite).await;
    let (key_id, key) = app.create_key(MINE).await;
    let mut stream = client_with_key(&key)
        .get(format!("{}/api/v1/events", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let first = stream.chunk().await.unwrap().unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&first).contains("ready"),
        "{first:?}"
    );
    assert_eq!(app.delete(&format!("/api/v1/keys/{key_id}")).await.0, 200);
    // Checked every CREDENTIALS_RECHECK (10 s): the stream closes soon after.
    let drained = async {
        // Keep-alives until it closes.
        while let Ok(Some(_)) = stream.chunk().await {}
    };
    let ended = tokio::time::timeout(Duration::from_secs(40), drained)
        .await
        .ok();
    assert!(ended.is_some(), "the stream of a revoked key stays open");
}
