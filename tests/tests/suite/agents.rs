//! `switchboard agents sync` against a fake ElevenLabs on a fresh database: the shipped businesses'
//! agents (all configured with an `agent_id`) are adopted and their ids stored, a second run sends
//! nothing, and failures and usage errors show in the output and the exit code.
//!
//! The command runs in-process through `agents::run`, the function the binary's `main` calls
//! with stdout and stderr: this crate cannot depend on the binary itself (Cargo only hands a
//! package's own integration tests its executables).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use switchboard_cli::agents::{self, AgentsCommand, SyncArgs};
use switchboard_engine::Db;
use switchboard_tests::*;
use switchboard_workflows::business;
use switchboard_workflows::store::agents::{self as stored_agents, provider_agent_id};

crate::on_both_backends!(
    sync_adopts_the_configured_agents_and_a_second_run_sends_nothing,
    a_missing_agent_fails_the_command_and_usage_errors_exit_2,
    sync_creates_agents_at_the_built_in_simulator_and_finds_them_again,
);

const KEY: &str = "xi_agents_test";

/// The fake's agents (id → last body) and the writes it took.
#[derive(Default)]
struct Provider {
    agents: BTreeMap<String, Value>,
    writes: usize,
    /// Requests that came without our API key.
    unauthorised: usize,
}

type Shared = Arc<Mutex<Provider>>;

/// A fake ElevenLabs that knows the agents `ids`; returns its base URL and state.
async fn fake_elevenlabs(ids: &[String]) -> (String, Shared) {
    let state = Shared::default();
    {
        let mut p = state.lock().unwrap();
        for id in ids {
            p.agents.insert(id.clone(), json!({"name": "made by hand"}));
        }
    }
    let checked = |headers: &HeaderMap, s: &Shared| {
        let ok = headers.get("xi-api-key").and_then(|v| v.to_str().ok()) == Some(KEY);
        if !ok {
            s.lock().unwrap().unauthorised += 1;
        }
        ok
    };
    let update = move |State(s): State<Shared>,
                       Path(id): Path<String>,
                       headers: HeaderMap,
                       Json(body): Json<Value>| async move {
        if !checked(&headers, &s) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let mut p = s.lock().unwrap();
        if !p.agents.contains_key(&id) {
            let detail = json!({"detail": {"code": "agent_not_found",
                "message": format!("Agent {id} not found")}});
            return (StatusCode::NOT_FOUND, Json(detail)).into_response();
        }
        p.writes += 1;
        p.agents.insert(id.clone(), body);
        Json(json!({"agent_id": id})).into_response()
    };
    let create = |State(s): State<Shared>, Json(body): Json<Value>| async move {
        let mut p = s.lock().unwrap();
        p.writes += 1;
        let id = format!("agent_created_{}", p.writes);
        p.agents.insert(id.clone(), body);
        Json(json!({"agent_id": id})).into_response()
    };
    let list = |State(s): State<Shared>| async move {
        let p = s.lock().unwrap();
        let agents: Vec<Value> = p
            .agents
            .iter()
            .map(|(id, a)| json!({"agent_id": id, "name": a["name"], "tags": a["tags"]}))
            .collect();
        Json(json!({"agents": agents, "has_more": false})).into_response()
    };
    let app = Router::new()
        .route("/v1/convai/agents/{id}", patch(update))
        .route("/v1/convai/agents/create", post(create))
        .route("/v1/convai/agents", get(list))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (format!("http://{addr}"), state)
}

/// `(business id, agent key, configured agent_id)` of every shipped agent.
fn shipped_agents() -> Vec<(String, String, String)> {
    let mut all: Vec<_> = business::shipped()
        .into_iter()
        .flat_map(|d| {
            let b = d.business;
            b.agents
                .into_iter()
                .map(move |(key, a)| (b.id.clone(), key, a.agent_id))
        })
        .collect();
    all.sort();
    all
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `switchboard agents sync` with these arguments.
async fn agents_sync(args: SyncArgs) -> Output {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = agents::run(AgentsCommand::Sync(args), &mut out, &mut err)
        .await
        .expect("the command runs");
    Output {
        code,
        stdout: String::from_utf8(out).unwrap(),
        stderr: String::from_utf8(err).unwrap(),
    }
}

fn args(database_url: &str, base_url: &str) -> SyncArgs {
    SyncArgs {
        business: None,
        json: false,
        database_url: database_url.to_owned(),
        businesses_dir: None,
        elevenlabs_api_key: Some(KEY.into()),
        elevenlabs_base_url: base_url.to_owned(),
    }
}

async fn sync_adopts_the_configured_agents_and_a_second_run_sends_nothing(backend: Backend) {
    let database = TestDatabase::create(&backend).await;
    let agents = shipped_agents();
    assert!(agents.len() >= 4 && agents.iter().all(|(_, _, id)| !id.is_empty()));
    let ids: Vec<String> = agents.iter().map(|(_, _, id)| id.clone()).collect();
    let (base, fake) = fake_elevenlabs(&ids).await;

    let first = agents_sync(args(&database.url, &base)).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let lines: Vec<&str> = first.stdout.lines().collect();
    assert!(lines[0].starts_with("BUSINESS"), "{}", first.stdout);
    for (i, (business, key, id)) in agents.iter().enumerate() {
        let words: Vec<&str> = lines[i + 1].split_whitespace().collect();
        assert_eq!(
            words,
            [business.as_str(), key, "updated", id],
            "{}",
            first.stdout
        );
    }
    let n = agents.len();
    assert_eq!(
        lines[n + 1],
        format!("{n} agents: 0 created, {n} updated, 0 unchanged, 0 failed")
    );
    {
        let p = fake.lock().unwrap();
        assert_eq!((p.writes, p.unauthorised), (n, 0));
        let demo = &p.agents["agent_demo_realty"];
        assert_eq!(demo["name"], "Demo Realty — riley");
        assert_eq!(demo["tags"], json!(["switchboard", "demo"]));
        let allowed = &demo["platform_settings"]["overrides"]["conversation_config_override"];
        assert_eq!(allowed["agent"]["prompt"]["prompt"], true);
        assert_eq!(allowed["tts"]["voice_id"], true);
    }
    let db = Db::connect(&database.url, 1).await.unwrap();
    for (business, key, id) in &agents {
        let stored = provider_agent_id(&db, business, key).await.unwrap();
        assert_eq!(stored.as_deref(), Some(id.as_str()), "{business}/{key}");
    }
    assert_eq!(stored_agents::list(&db, None).await.unwrap().len(), n);
    let realty = stored_agents::list(&db, Some("realty")).await.unwrap();
    assert_eq!(
        realty.iter().map(|a| a.agent.as_str()).collect::<Vec<_>>(),
        ["buyers", "listings"]
    );

    let second = agents_sync(SyncArgs {
        json: true,
        ..args(&database.url, &base)
    })
    .await;
    assert_eq!(second.code, 0, "{}{}", second.stdout, second.stderr);
    let report: Value = serde_json::from_str(&second.stdout).expect("JSON report");
    let entries = report["agents"].as_array().expect("agents");
    assert_eq!(entries.len(), n);
    for (entry, (business, key, id)) in entries.iter().zip(&agents) {
        assert_eq!(
            entry,
            &json!({"business": business, "agent": key, "provider_agent_id": id,
                    "action": "unchanged"})
        );
    }
    assert_eq!(fake.lock().unwrap().writes, n, "no writes the second time");
}

async fn a_missing_agent_fails_the_command_and_usage_errors_exit_2(backend: Backend) {
    let database = TestDatabase::create(&backend).await;
    let agents = shipped_agents();
    // The provider knows every configured agent but the demo's.
    let ids: Vec<String> = agents
        .iter()
        .filter(|(b, _, _)| b != "demo")
        .map(|(_, _, id)| id.clone())
        .collect();
    let (base, fake) = fake_elevenlabs(&ids).await;

    let out = agents_sync(args(&database.url, &base)).await;
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let demo = out
        .stdout
        .lines()
        .position(|l| l.starts_with("demo "))
        .expect("a demo line");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[demo].split_whitespace().collect::<Vec<_>>(),
        ["demo", "riley", "failed", "agent_demo_realty"]
    );
    assert!(
        lines[demo + 1].contains("error:") && lines[demo + 1].contains("business.toml"),
        "{}",
        out.stdout
    );
    let n = agents.len();
    assert!(
        out.stdout.contains(&format!(
            "{n} agents: 0 created, {} updated, 0 unchanged, 1 failed",
            n - 1
        )),
        "{}",
        out.stdout
    );
    // No agent was created in place of the missing one.
    assert_eq!(fake.lock().unwrap().writes, n - 1);
    let db = Db::connect(&database.url, 1).await.unwrap();
    assert_eq!(provider_agent_id(&db, "demo", "riley").await.unwrap(), None);

    // One business only; an unknown one is a usage error.
    let only = agents_sync(SyncArgs {
        business: Some("realty".into()),
        ..args(&database.url, &base)
    })
    .await;
    assert_eq!(only.code, 0, "{}{}", only.stdout, only.stderr);
    assert!(
        only.stdout
            .contains("2 agents: 0 created, 0 updated, 2 unchanged, 0 failed")
    );
    let unknown = agents_sync(SyncArgs {
        business: Some("nope".into()),
        ..args(&database.url, &base)
    })
    .await;
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no business \"nope\""),
        "{}",
        unknown.stderr
    );

    // Without a key nothing is contacted.
    let keyless = agents_sync(SyncArgs {
        elevenlabs_api_key: None,
        ..args(&database.url, &base)
    })
    .await;
    assert_eq!(keyless.code, 2);
    assert!(keyless.stderr.contains("ELEVENLABS_API_KEY"));
    assert_eq!(fake.lock().unwrap().writes, n - 1);
}

async fn sync_creates_agents_at_the_built_in_simulator_and_finds_them_again(backend: Backend) {
    let database = TestDatabase::create(&backend).await;
    let sim = switchboard_simulator::Simulator::new(String::new(), "secret".into());
    let base = format!(
        "{}/elevenlabs",
        sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap()
    );
    // The demo business with an agent the provider does not know yet.
    let dir = demo_variant(
        "fresh",
        &[("agent_id = \"agent_demo_realty\"", "agent_id = \"\"")],
    );
    let sync = || SyncArgs {
        business: Some("fresh".into()),
        json: true,
        businesses_dir: Some(dir.clone()),
        ..args(&database.url, &base)
    };

    let first = agents_sync(sync()).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    let report: Value = serde_json::from_str(&first.stdout).expect("JSON report");
    let agent = &report["agents"][0];
    assert_eq!(agent["action"], "created", "{report}");
    let id = agent["provider_agent_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("agent_sim_"), "{report}");
    // The simulator keeps what was sent, as ElevenLabs would.
    let client = switchboard_workflows::providers::elevenlabs::ElevenLabsClient::new(
        base.clone(),
        KEY,
        std::time::Duration::from_secs(5),
    );
    let stored = client.get_agent(&id).await.expect("the agent exists");
    assert_eq!(stored.spec.tags, ["switchboard", "fresh"]);
    // A second run finds it and sends nothing.
    let second = agents_sync(sync()).await;
    assert_eq!(second.code, 0, "{}{}", second.stdout, second.stderr);
    let report: Value = serde_json::from_str(&second.stdout).expect("JSON report");
    assert_eq!(report["agents"][0]["action"], "unchanged", "{report}");
    assert_eq!(report["agents"][0]["provider_agent_id"], id.as_str());
    std::fs::remove_dir_all(dir).ok();
}
