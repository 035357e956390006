//! Tests for the agent sync against a stateful local fake of the ElevenLabs agent endpoints that
//! counts writes, on a fresh SQLite file.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::*;
use crate::business::{Line, shipped};
use crate::test_db::TestDb;

// ---------------------------------------------------------------------------------------------
// A fake provider

/// The fake's agents (id → last body received) and what it was asked.
#[derive(Default)]
struct Provider {
    agents: BTreeMap<String, Value>,
    created: usize,
    patched: usize,
    listed: usize,
    /// Creates and updates of the agent with this name are answered 422.
    reject: Option<String>,
}

type Shared = Arc<Mutex<Provider>>;

struct Fake {
    state: Shared,
    client: ElevenLabsClient,
}

impl Fake {
    async fn start() -> Fake {
        let state = Shared::default();
        let app = Router::new()
            .route("/v1/convai/agents/create", post(create))
            .route("/v1/convai/agents", get(list))
            .route("/v1/convai/agents/{id}", get(read).patch(patch))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        let client = ElevenLabsClient::new(format!("http://{addr}"), "xi", Duration::from_secs(5));
        Fake { state, client }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Provider) -> T) -> T {
        f(&mut self.state.lock().expect("fake state"))
    }

    /// Creates plus updates so far.
    fn writes(&self) -> usize {
        self.with(|p| p.created + p.patched)
    }

    fn agent(&self, id: &str) -> Value {
        self.with(|p| p.agents.get(id).cloned())
            .unwrap_or_else(|| panic!("no agent {id} at the fake"))
    }
}

fn validation_error(msg: &str) -> Response {
    let body = json!({"detail": [{"loc": ["body", "name"], "msg": msg, "type": "value_error"}]});
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

fn not_found(id: &str) -> Response {
    let body = json!({"detail": {"type": "not_found", "code": "agent_not_found",
        "message": format!("Agent {id} not found")}});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn create(State(s): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut p = s.lock().expect("fake state");
    if p.reject.as_deref() == body["name"].as_str() {
        return validation_error("name is not allowed");
    }
    p.created += 1;
    let id = format!("agent_new_{}", p.created);
    p.agents.insert(id.clone(), body);
    Json(json!({"agent_id": id})).into_response()
}

/// Two agents per page, the cursor being the index of the next one.
async fn list(State(s): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut p = s.lock().expect("fake state");
    p.listed += 1;
    let from: usize = q.get("cursor").map_or(0, |c| c.parse().expect("cursor"));
    let all: Vec<Value> = p
        .agents
        .iter()
        .map(|(id, a)| json!({"agent_id": id, "name": a["name"], "tags": a["tags"]}))
        .collect();
    let page: Vec<Value> = all.iter().skip(from).take(2).cloned().collect();
    let has_more = from + 2 < all.len();
    Json(json!({"agents": page, "has_more": has_more,
        "next_cursor": has_more.then(|| (from + 2).to_string())}))
    .into_response()
}

async fn read(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    let p = s.lock().expect("fake state");
    match p.agents.get(&id) {
        Some(a) => Json(json!({"agent_id": id, "name": a["name"], "tags": a["tags"],
            "conversation_config": a["conversation_config"]}))
        .into_response(),
        None => not_found(&id),
    }
}

async fn patch(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let mut p = s.lock().expect("fake state");
    if !p.agents.contains_key(&id) {
        return not_found(&id);
    }
    if p.reject.as_deref() == body["name"].as_str() {
        return validation_error("name is not allowed");
    }
    p.patched += 1;
    p.agents.insert(id.clone(), body);
    Json(json!({"agent_id": id})).into_response()
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A business `id` with the given agents `(key, configured agent_id)`.
fn business(id: &str, agents: &[(&str, &str)]) -> Business {
    let mut b = shipped().remove(0).business;
    b.id = id.to_owned();
    b.name = format!("{id} Inc");
    b.campaigns.clear();
    b.default_agent = agents[0].0.to_owned();
    b.agents = agents
        .iter()
        .map(|(key, agent_id)| {
            let config = AgentConfig {
                agent_id: (*agent_id).to_owned(),
                phone_number_id: "phnum_1".into(),
                line: Line::Twilio,
                voice_id: Some(format!("voice_{key}")),
                prompt: format!("You are {key}."),
                first_message: "Hi {{customer_name}}".into(),
                language: "en".into(),
            };
            ((*key).to_owned(), config)
        })
        .collect();
    b
}

async fn store(db: &Db, b: &Business) {
    let mut tx = db.begin().await.expect("a transaction");
    store::configs::store_and_activate(&mut tx, b)
        .await
        .expect("business stored");
    tx.commit().await.expect("committed");
}

fn actions(report: &SyncReport) -> Vec<(String, SyncAction)> {
    report
        .agents
        .iter()
        .map(|a| (format!("{}/{}", a.business, a.agent), a.action))
        .collect()
}

fn pairs(items: &[(&str, SyncAction)]) -> Vec<(String, SyncAction)> {
    items.iter().map(|(k, a)| ((*k).to_owned(), *a)).collect()
}

async fn run(t: &TestDb, fake: &Fake, business: Option<&str>) -> SyncReport {
    sync(&t.db, &fake.client, business)
        .await
        .expect("sync runs")
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn first_run_creates_the_agents_and_a_second_run_sends_nothing() {
    let (t, fake) = (TestDb::new().await, Fake::start().await);
    store(&t.db, &business("acme", &[("closer", ""), ("opener", "")])).await;

    let first = run(&t, &fake, None).await;
    use SyncAction::*;
    assert_eq!(
        actions(&first),
        pairs(&[("acme/closer", Created), ("acme/opener", Created)])
    );
    assert!(!first.has_failures());
    assert_eq!(fake.with(|p| (p.created, p.patched)), (2, 0));
    // Stored ids are the provider's, and what the call step reads.
    for a in &first.agents {
        let id = a.provider_agent_id.clone().expect("an id");
        let stored = store::agents::provider_agent_id(&t.db, "acme", &a.agent).await;
        assert_eq!(stored.expect("read"), Some(id.clone()));
        let b = store::business(&t.db, "acme")
            .await
            .expect("read")
            .expect("b");
        let resolved = agent_id(&t.db, "acme", &a.agent, &b.agents[&a.agent]).await;
        assert_eq!(resolved.expect("read"), Some(id));
    }
    // What the provider received: name, tags, settings and the override permissions.
    let closer = fake.agent(first.agents[0].provider_agent_id.as_deref().unwrap_or(""));
    assert_eq!(closer["name"], "acme Inc — closer");
    assert_eq!(closer["tags"], json!(["switchboard", "acme"]));
    assert_eq!(
        closer["conversation_config"],
        json!({"agent": {"first_message": "Hi {{customer_name}}", "language": "en",
                         "prompt": {"prompt": "You are closer."}},
               "tts": {"voice_id": "voice_closer"}})
    );
    assert_eq!(
        closer["platform_settings"],
        json!({"overrides": {"conversation_config_override": {
            "agent": {"prompt": {"prompt": true}, "first_message": true, "language": true},
            "tts": {"voice_id": true}}}})
    );

    let writes = fake.writes();
    let second = run(&t, &fake, None).await;
    assert_eq!(
        actions(&second),
        pairs(&[("acme/closer", Unchanged), ("acme/opener", Unchanged)])
    );
    assert_eq!(fake.writes(), writes, "no provider writes the second time");
    assert_eq!(
        second
            .agents
            .iter()
            .map(|a| &a.provider_agent_id)
            .collect::<Vec<_>>(),
        first
            .agents
            .iter()
            .map(|a| &a.provider_agent_id)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        fake.with(|p| p.listed),
        1,
        "the list is read once, when creating"
    );
}

#[tokio::test]
async fn a_changed_prompt_is_exactly_one_patch() {
    let (t, fake) = (TestDb::new().await, Fake::start().await);
    let mut b = business("acme", &[("closer", ""), ("opener", "")]);
    store(&t.db, &b).await;
    run(&t, &fake, None).await;
    let writes = fake.writes();

    b.agents.get_mut("opener").expect("opener").prompt = "You open, briefly.".into();
    store(&t.db, &b).await;
    let report = run(&t, &fake, None).await;
    use SyncAction::*;
    assert_eq!(
        actions(&report),
        pairs(&[("acme/closer", Unchanged), ("acme/opener", Updated)])
    );
    assert_eq!(fake.writes(), writes + 1);
    assert_eq!(fake.with(|p| p.patched), 1);
    let opener = fake.agent(report.agents[1].provider_agent_id.as_deref().unwrap_or(""));
    assert_eq!(
        opener["conversation_config"]["agent"]["prompt"]["prompt"],
        "You open, briefly."
    );
    // And that is now the synced state.
    run(&t, &fake, None).await;
    assert_eq!(fake.writes(), writes + 1);
}

#[tokio::test]
async fn a_stored_agent_deleted_at_the_provider_is_created_anew() {
    let (t, fake) = (TestDb::new().await, Fake::start().await);
    let mut b = business("acme", &[("closer", "")]);
    store(&t.db, &b).await;
    let first = run(&t, &fake, None).await;
    let old = first.agents[0].provider_agent_id.clone().expect("id");
    fake.with(|p| p.agents.remove(&old));

    // Unchanged configuration: nothing is sent, so the deletion goes unnoticed…
    assert_eq!(
        run(&t, &fake, None).await.agents[0].action,
        SyncAction::Unchanged
    );
    // …until the configuration changes and the update meets a 404.
    b.agents.get_mut("closer").expect("closer").language = "es".into();
    store(&t.db, &b).await;
    let report = run(&t, &fake, None).await;
    let a = &report.agents[0];
    assert_eq!(a.action, SyncAction::Created, "{a:?}");
    let new = a.provider_agent_id.clone().expect("new id");
    assert_ne!(new, old);
    assert_eq!(
        fake.agent(&new)["conversation_config"]["agent"]["language"],
        "es"
    );
    let stored = store::agents::provider_agent_id(&t.db, "acme", "closer").await;
    assert_eq!(stored.expect("read"), Some(new));
}

#[tokio::test]
async fn one_failing_agent_is_reported_and_the_others_sync() {
    let (t, fake) = (TestDb::new().await, Fake::start().await);
    store(&t.db, &business("acme", &[("a", ""), ("b", ""), ("c", "")])).await;
    store(&t.db, &business("zeta", &[("z", "")])).await;
    fake.with(|p| p.reject = Some("acme Inc — b".into()));

    let report = run(&t, &fake, None).await;
    use SyncAction::*;
    assert_eq!(
        actions(&report),
        pairs(&[
            ("acme/a", Created),
            ("acme/b", Failed),
            ("acme/c", Created),
            ("zeta/z", Created)
        ])
    );
    assert!(report.has_failures());
    let failed = &report.agents[1];
    assert_eq!(failed.provider_agent_id, None);
    let error = failed.error.as_deref().unwrap_or("");
    assert!(
        error.contains("422") && error.contains("name is not allowed"),
        "{error}"
    );
    assert_eq!(
        store::agents::provider_agent_id(&t.db, "acme", "b")
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        store::agents::list(&t.db, None).await.expect("list").len(),
        3
    );
    assert_eq!(
        store::agents::list(&t.db, Some("zeta"))
            .await
            .expect("list")
            .len(),
        1
    );

    // Once the provider accepts it, the next run creates it and leaves the others alone.
    fake.with(|p| p.reject = None);
    let writes = fake.writes();
    let report = run(&t, &fake, None).await;
    assert_eq!(
        actions(&report),
        pairs(&[
            ("acme/a", Unchanged),
            ("acme/b", Created),
            ("acme/c", Unchanged),
            ("zeta/z", Unchanged)
        ])
    );
    assert_eq!(fake.writes(), writes + 1);
}

#[tokio::test]
async fn a_configured_agent_id_is_adopted_by_patch() {
    let (t, fake) = (TestDb::new().await, Fake::start().await);
    fake.with(|p| {
        p.agents.insert(
            "agent_existing".into(),
            json!({"name": "Made by hand", "tags": []}),
        )
    });
    store(&t.db, &business("acme", &[("closer", "agent_existing")])).await;

    let report = run(&t, &fake, None).await;
    let a = &report.agents[0];
    assert_eq!(
        (a.action, a.provider_agent_id.as_deref()),
        (SyncAction::Updated, Some("agent_existing"))
    );
    assert_eq!(fake.with(|p| (p.created, p.patched, p.listed)), (0, 1, 0));
    assert_eq!(fake.agent("agent_existing")["name"], "acme Inc — closer");
    let stored = store::agents::provider_agent_id(&t.db, "acme", "closer").await;
    assert_eq!(stored.expect("read").as_deref(), Some("agent_existing"));

    assert_eq!(
        run(&t, &fake, None).await.agents[0].action,
        SyncAction::Unchanged
    );
    assert_eq!(fake.writes(), 1);
}

#[tokio::test]
async fn a_configured_agent_id_the_provider_does_not_know_is_an_error_not_a_new_agent() {
    let (t, fake) = (TestDb::new().await, Fake::start().await);
    store(
        &t.db,
        &business("acme", &[("closer", "agent_typo"), ("opener", "")]),
    )
    .await;

    let report = run(&t, &fake, None).await;
    let a = &report.agents[0];
    assert_eq!(a.action, SyncAction::Failed);
    assert_eq!(a.provider_agent_id.as_deref(), Some("agent_typo"));
    let error = a.error.as_deref().unwrap_or("");
    assert!(
        error.contains("agent_typo") && error.contains("business.toml"),
        "{error}"
    );
    assert_eq!(report.agents[1].action, SyncAction::Created);
    assert_eq!(
        fake.with(|p| p.created),
        1,
        "only the agent without an id is created"
    );
}

#[tokio::test]
async fn a_configured_agent_id_replaces_one_stored_earlier() {
    let (t, fake) = (TestDb::new().await, Fake::start().await);
    let mut b = business("acme", &[("closer", "")]);
    store(&t.db, &b).await;
    let created = run(&t, &fake, None).await.agents[0]
        .provider_agent_id
        .clone();
    fake.with(|p| p.agents.insert("agent_chosen".into(), json!({"name": "x"})));

    b.agents.get_mut("closer").expect("closer").agent_id = "agent_chosen".into();
    store(&t.db, &b).await;
    let report = run(&t, &fake, None).await;
    let a = &report.agents[0];
    assert_eq!(
        (a.action, a.provider_agent_id.as_deref()),
        (SyncAction::Updated, Some("agent_chosen"))
    );
    assert_ne!(created.as_deref(), Some("agent_chosen"));
    let stored = store::agents::provider_agent_id(&t.db, "acme", "closer").await;
    assert_eq!(stored.expect("read").as_deref(), Some("agent_chosen"));
}

#[tokio::test]
async fn an_agent_created_but_never_stored_is_found_by_name_not_duplicated() {
    let (t, fake) = (TestDb::new().await, Fake::start().await);
    // Five agents at the provider (three pages of two): two unrelated, one with our name but
    // another business' tag, one ours (created by a sync whose store failed), one more.
    fake.with(|p| {
        for (id, name, tags) in [
            ("agent_a", "Someone else", json!(["x"])),
            ("agent_b", "Other", json!([])),
            (
                "agent_c",
                "acme Inc — closer",
                json!(["switchboard", "other"]),
            ),
            (
                "agent_d",
                "acme Inc — closer",
                json!(["switchboard", "acme"]),
            ),
            ("agent_e", "Last", json!(null)),
        ] {
            p.agents
                .insert(id.into(), json!({"name": name, "tags": tags}));
        }
    });
    store(&t.db, &business("acme", &[("closer", "")])).await;

    let report = run(&t, &fake, None).await;
    let a = &report.agents[0];
    assert_eq!(
        (a.action, a.provider_agent_id.as_deref()),
        (SyncAction::Updated, Some("agent_d"))
    );
    assert_eq!(fake.with(|p| (p.created, p.patched, p.listed)), (0, 1, 3));
}

#[tokio::test]
async fn one_business_only_and_unknown_businesses() {
    let (t, fake) = (TestDb::new().await, Fake::start().await);
    store(&t.db, &business("acme", &[("closer", "")])).await;
    store(&t.db, &business("zeta", &[("z", "")])).await;
    let report = run(&t, &fake, Some("zeta")).await;
    assert_eq!(actions(&report), pairs(&[("zeta/z", SyncAction::Created)]));
    assert_eq!(
        store::agents::list(&t.db, Some("acme"))
            .await
            .expect("list"),
        []
    );
    let err = sync(&t.db, &fake.client, Some("nope"))
        .await
        .expect_err("unknown");
    assert!(
        matches!(err, SyncError::UnknownBusiness(ref id) if id == "nope"),
        "{err}"
    );
}

#[test]
fn the_hash_follows_the_configuration_and_not_key_order() {
    let b = business("acme", &[("closer", "")]);
    let config = &b.agents["closer"];
    let spec = desired_spec(&b, "closer", config);
    let hash = config_hash(&spec);
    assert_eq!(hash.len(), 64);
    assert_eq!(
        hash,
        config_hash(&desired_spec(&b, "closer", &config.clone()))
    );
    // Fields the provider does not get (phone number, line) do not count.
    let mut other = config.clone();
    other.phone_number_id = "phnum_2".into();
    other.line = Line::Sip;
    assert_eq!(hash, config_hash(&desired_spec(&b, "closer", &other)));
    for change in [
        |c: &mut AgentConfig| c.prompt.push('!'),
        |c: &mut AgentConfig| c.first_message.push('!'),
        |c: &mut AgentConfig| c.language = "de".into(),
        |c: &mut AgentConfig| c.voice_id = None,
    ] {
        let mut changed = config.clone();
        change(&mut changed);
        assert_ne!(hash, config_hash(&desired_spec(&b, "closer", &changed)));
    }
    // The canonical form sorts keys, so the hash does not depend on serialisation order.
    let a = sorted(json!({"b": 1, "a": {"d": [{"f": 1, "e": 2}], "c": 3}}));
    assert_eq!(
        serde_json::to_string(&a).expect("json"),
        r#"{"a":{"c":3,"d":[{"e":2,"f":1}]},"b":1}"#
    );
}

#[test]
fn plans() {
    let stored = |id: &str, hash: &str| ProviderAgent {
        business_id: "b".into(),
        agent: "a".into(),
        provider: PROVIDER.into(),
        provider_agent_id: id.into(),
        config_hash: hash.into(),
        synced_at: 0,
    };
    let update = |id: &str, source| Plan::Update {
        id: id.into(),
        source,
    };
    assert_eq!(plan("", None, "h"), Plan::Create);
    assert_eq!(plan("  ", None, "h"), Plan::Create);
    assert_eq!(
        plan("", Some(&stored("s", "h")), "h"),
        Plan::Unchanged { id: "s".into() }
    );
    assert_eq!(
        plan("", Some(&stored("s", "old")), "h"),
        update("s", IdSource::Stored)
    );
    assert_eq!(plan("c", None, "h"), update("c", IdSource::Configured));
    assert_eq!(
        plan("c", Some(&stored("c", "h")), "h"),
        Plan::Unchanged { id: "c".into() }
    );
    assert_eq!(
        plan("c", Some(&stored("c", "old")), "h"),
        update("c", IdSource::Configured)
    );
    assert_eq!(
        plan("c", Some(&stored("s", "h")), "h"),
        update("c", IdSource::Configured)
    );
}
