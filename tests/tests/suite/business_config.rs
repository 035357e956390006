//! Businesses onboarded and changed through the API only: created with a key of their own,
//! configured and changed (every change a version that another process uses at once, while a
//! run in flight keeps the version it started with), refused field by field, and out of every
//! other business' reach.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_cli::businesses::{self, BusinessesCommand, ImportArgs};
use switchboard_tests::*;
use switchboard_workflows::phone::Phone;

const T: Duration = Duration::from_secs(60);

/// Calls recorded for lead `id`.
async fn calls(app: &TestApp, id: &str) -> usize {
    let (status, page) = app.get(&format!("/api/v1/leads/{id}")).await;
    assert_eq!(status, 200, "{page}");
    page["calls"].as_array().map_or(0, Vec::len)
}

async fn a_business_is_created_configured_changed_and_used_through_the_api_only(backend: Backend) {
    let app = spawn_app(&backend).await;
    // Another process on the same database, with workers of its own.
    let other = app.another_process(TestOptions::default()).await;
    let (_, demo) = app.get("/api/v1/businesses/demo/config").await;
    let mut config = demo["config"].clone();
    config["id"] = json!("acme");
    config["name"] = json!("Acme Solar");

    // An invalid configuration is refused, naming the field, and creates nothing.
    let mut wider = config.clone();
    wider["calling"]["legal_hours"] = json!("07:00-21:00");
    let (status, err) = app
        .send(
            "POST",
            "/api/v1/businesses",
            &json!({"config": wider, "key_name": "CRM"}),
        )
        .await;
    assert_eq!(
        (
            status,
            &err["error"]["code"],
            &err["error"]["details"]["field"]
        ),
        (422, &json!("invalid_config"), &json!("calling.legal_hours")),
        "{err}"
    );
    let mut no_agent = config.clone();
    no_agent["default_agent"] = json!("nobody");
    let (_, err) = app
        .send("POST", "/api/v1/businesses", &json!({"config": no_agent}))
        .await;
    assert_eq!(err["error"]["details"]["field"], "default_agent", "{err}");
    let mut bad_type = config.clone();
    bad_type["calling"]["max_call_attempts"] = json!("three");
    let (_, err) = app
        .send("POST", "/api/v1/businesses", &json!({"config": bad_type}))
        .await;
    assert_eq!(
        err["error"]["details"]["field"], "calling.max_call_attempts",
        "{err}"
    );
    assert_eq!(app.get("/api/v1/businesses/acme").await.0, 404);

    // Created by an operator, with a key of its own; only once.
    let (status, created) = app
        .send(
            "POST",
            "/api/v1/businesses",
            &json!({"config": config, "key_name": "Acme CRM"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (&created["config_version"], &created["script_version"]),
        (&json!(1), &json!(1))
    );
    let (status, _) = app
        .send("POST", "/api/v1/businesses", &json!({"config": config}))
        .await;
    assert_eq!(status, 409);
    let key = created["key"]["key"].as_str().unwrap();
    let acme = client_with_key(key);

    // Its key reaches its own business only, and cannot create businesses.
    for (method, path) in [
        ("GET", "/api/v1/businesses/demo/config"),
        ("PATCH", "/api/v1/businesses/demo/config"),
        ("PUT", "/api/v1/businesses/demo/config"),
        ("GET", "/api/v1/businesses/demo/config/versions"),
    ] {
        let (status, body) = app.send_with(&acme, method, path, Some(&json!({}))).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    let (status, _) = app
        .send_with(
            &acme,
            "POST",
            "/api/v1/businesses",
            Some(&json!({"config": config})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, own) = app
        .send_with(&acme, "GET", "/api/v1/businesses/acme/config", None)
        .await;
    assert_eq!((status, &own["version"]), (200, &json!(1)), "{own}");

    // A lead taken by the other process, nobody answering: the run may call three times.
    let nobody_answers = |i| {
        json!({"business": "acme", "name": "Ada Lovelace", "phone": Phone::fictional(i).as_str(),
               "sim": {"outcome": "no_answer"}})
    };
    let (status, first) = other
        .send_with(&acme, "POST", "/api/v1/leads", Some(&nobody_answers(1)))
        .await;
    assert_eq!(status, 201, "{first}");
    let first_lead = first["lead"]["id"].as_str().unwrap().to_owned();
    let first_run = first["run"]["id"].as_str().unwrap().to_owned();
    eventually("the first call", T, || async {
        (calls(&app, &first_lead).await >= 1).then_some(())
    })
    .await;

    // The business changes itself while that run is in flight: one call per run from now on.
    let patch = json!({"calling": {"max_call_attempts": 1}, "terminology": {"lead": "homeowner"}});
    let path = "/api/v1/businesses/acme/config";
    let (status, changed) = app.send_with(&acme, "PATCH", path, Some(&patch)).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (&changed["version"], &changed["changed"]),
        (&json!(2), &json!(true))
    );
    let (_, again) = app.send_with(&acme, "PATCH", path, Some(&patch)).await;
    assert_eq!(
        (&again["version"], &again["changed"]),
        (&json!(2), &json!(false))
    );
    // Invalid changes are refused field by field and change nothing.
    for (patch, field) in [
        (
            json!({"calling": {"max_calls_per_minute": 0}}),
            "calling.max_calls_per_minute",
        ),
        (json!({"timezone": "Mars/Olympus_Mons"}), "timezone"),
        (json!({"id": "renamed"}), "id"),
        (json!({"objectives": []}), "objectives"),
    ] {
        let (status, err) = app.send_with(&acme, "PATCH", path, Some(&patch)).await;
        assert_eq!(
            (status, &err["error"]["details"]["field"]),
            (422, &json!(field)),
            "{patch}: {err}"
        );
    }
    // The other process sees the change at once.
    let (_, seen) = other.send_with(&acme, "GET", path, None).await;
    assert_eq!(
        (
            &seen["version"],
            &seen["config"]["calling"]["max_call_attempts"]
        ),
        (&json!(2), &json!(1)),
        "{seen}"
    );

    // The run in flight keeps the version it started with: three calls. A new run: one.
    let run = app.wait_for_status(&first_run, "succeeded", T).await;
    assert_eq!(run["config_version"], 1, "{run}");
    assert_eq!(calls(&app, &first_lead).await, 3, "{run}");
    let (_, second) = other
        .send_with(&acme, "POST", "/api/v1/leads", Some(&nobody_answers(2)))
        .await;
    let second_run = second["run"]["id"].as_str().unwrap();
    let run = app.wait_for_status(second_run, "succeeded", T).await;
    assert_eq!(run["config_version"], 2, "{run}");
    assert_eq!(
        calls(&app, second["lead"]["id"].as_str().unwrap()).await,
        1,
        "{run}"
    );

    // Versions are listed and compared; the changes are audited.
    let (_, versions) = app.get("/api/v1/businesses/acme/config/versions").await;
    let numbers: Vec<&Value> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["version"])
        .collect();
    assert_eq!(numbers, [&json!(2), &json!(1)], "{versions}");
    let (_, diff) = app
        .get("/api/v1/businesses/acme/config/versions/2?diff_from=1")
        .await;
    let changes = diff["changes"].as_array().unwrap();
    assert!(
        changes
            .contains(&json!({"op": "replace", "path": "/calling/max_call_attempts", "value": 1})),
        "{diff}"
    );
    assert_eq!(changes.len(), 2, "{diff}");
    let (_, audit) = app.get("/api/v1/audit?business=acme").await;
    let actions = audit.to_string();
    assert!(
        actions.contains("business.created") && actions.contains("config.changed"),
        "{audit}"
    );

    // A whole configuration may be put back; its id must stay.
    let mut first_config = config.clone();
    first_config.as_object_mut().unwrap().remove("id");
    let (status, put) = app.send_with(&acme, "PUT", path, Some(&first_config)).await;
    assert_eq!((status, &put["version"]), (200, &json!(3)), "{put}");
    first_config["id"] = json!("demo");
    let (status, err) = app.send_with(&acme, "PUT", path, Some(&first_config)).await;
    assert_eq!(
        (status, &err["error"]["details"]["field"]),
        (422, &json!("id")),
        "{err}"
    );
}

/// Runs `switchboard businesses import DIR` on the app's database: `(exit code, stdout, stderr)`.
async fn import(app: &TestApp, dir: &std::path::Path) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let command = BusinessesCommand::Import(ImportArgs {
        dir: dir.to_owned(),
        database_url: app.database.url.clone(),
    });
    let code = businesses::run(command, &mut out, &mut err)
        .await
        .expect("the command runs");
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

async fn business_folders_are_imported_as_new_versions_and_an_invalid_one_stores_nothing(
    backend: Backend,
) {
    let app = spawn_app_with(&backend, TestOptions::without_workers()).await;
    let dir = demo_variant("acme", &[("name = \"Demo Realty\"", "name = \"Acme\"")]);
    let (code, out, err) = import(&app, &dir).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "acme: configuration version 1 (new), script version 1 (new)\n"
    );
    // The running server sees it at once.
    let (status, config) = app.get("/api/v1/businesses/acme/config").await;
    assert_eq!(
        (status, &config["config"]["name"]),
        (200, &json!("Acme")),
        "{config}"
    );

    // A changed folder is a new configuration version; the unchanged script stays.
    let toml = dir.join("acme/business.toml");
    let source = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        source.replace("name = \"Acme\"", "name = \"Acme Solar\""),
    )
    .unwrap();
    let (code, out, _) = import(&app, &dir).await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "acme: configuration version 2 (new), script version 1 (unchanged)\n"
    );

    // A folder whose script does not compile stores nothing, the valid folder beside it neither.
    std::fs::write(
        &toml,
        source.replace("name = \"Acme\"", "name = \"Acme Energy\""),
    )
    .unwrap();
    let beta = dir.join("beta");
    std::fs::create_dir_all(&beta).unwrap();
    std::fs::write(
        beta.join("business.toml"),
        source.replace("id = \"acme\"", "id = \"beta\""),
    )
    .unwrap();
    std::fs::write(
        beta.join("policy.rhai"),
        "fn route(lead) {\n    let x = ;\n}\n",
    )
    .unwrap();
    let (code, out, err) = import(&app, &dir).await;
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.starts_with("beta/policy.rhai:"), "{err}");
    let (_, config) = app.get("/api/v1/businesses/acme/config").await;
    assert_eq!(
        (&config["version"], &config["config"]["name"]),
        (&json!(2), &json!("Acme Solar"))
    );
    assert_eq!(app.get("/api/v1/businesses/beta").await.0, 404);
}

crate::on_both_backends!(
    a_business_is_created_configured_changed_and_used_through_the_api_only,
    business_folders_are_imported_as_new_versions_and_an_invalid_one_stores_nothing,
);
