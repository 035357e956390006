//! Chaos: hundreds of leads run while their worker processes are killed with SIGKILL at random
//! moments and started again, and while the fake providers answer at random with 503s, 429s and
//! answers that come after the client gave up (the call placed all the same). On PostgreSQL three
//! `switchboard worker` processes serve an API process; on SQLite one `switchboard serve` process
//! does everything and is killed whole.
//!
//! At the end every run has ended (or waits on a timer it set, due later); no call attempt dialled
//! anyone twice (the fake provider counts conversations per lead and attempt); every webhook the
//! server acknowledged is stored and its call recorded as ended; no step succeeded twice with the
//! same input. The tallies are printed (`cargo test chaos -- --nocapture`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_engine::Db;
use switchboard_engine::store::Q;
use switchboard_tests::children::{Process, log_dir};
use switchboard_tests::fakes::{Chaos, FakeProviders};
use switchboard_tests::*;
use switchboard_workflows::phone::Phone;

/// The provider faults: 6% 503, 4% 429, 4% answers held past the client's 1 s timeout.
const CHAOS: Chaos = Chaos {
    server_error: 60,
    rate_limited: 40,
    timeout: 40,
    hold_ms: 1_500,
};

/// How the calls go, in turn: some leads are called again (no answer), some decline.
const OUTCOMES: [&str; 4] = ["interested", "no_answer", "not_interested", "interested"];

/// How long every run may take to settle after the last kill.
const SETTLE_DEADLINE: Duration = Duration::from_secs(240);

/// One chaos scenario's size.
struct Shape {
    leads: usize,
    kills: usize,
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn runs_survive_sigkilled_workers_and_provider_faults() {
        match switchboard_tests::Backend::postgres() {
            Some(backend) => super::on_postgres(backend).await,
            None => eprintln!("skipped: TEST_DATABASE_URL is not set"),
        }
    }
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn runs_survive_a_sigkilled_process_and_provider_faults() {
        super::on_sqlite().await
    }
}

/// The environment of a child process that talks to the fake providers.
fn provider_env(fakes: &FakeProviders) -> Vec<(&'static str, String)> {
    let mut env = fakes.env();
    env.extend([
        ("SWITCHBOARD_PROVIDER_TIMEOUT_SECS", "1".to_owned()),
        ("SWITCHBOARD_MAX_CONCURRENT_CALLS", "100".to_owned()),
        ("SWITCHBOARD_POLL_INTERVAL_MS", "500".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]);
    env
}

async fn chaotic_fakes() -> FakeProviders {
    let fakes = FakeProviders::start().await;
    *fakes.faults.outcomes.lock().unwrap() = OUTCOMES.to_vec();
    *fakes.faults.chaos.lock().unwrap() = Some(CHAOS);
    fakes
}

/// A random pause between `min_ms` and `max_ms`.
async fn pause(min_ms: u64, max_ms: u64) {
    let ms = min_ms + rand::random::<u64>() % (max_ms - min_ms + 1);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Posts `n` leads of the demo business to `address` through `client`, 16 at a time, each with
/// an Idempotency-Key so that a post cut off by a kill is simply sent again.
fn post_leads(client: reqwest::Client, address: String, n: usize) -> tokio::task::JoinSet<String> {
    let gate = Arc::new(tokio::sync::Semaphore::new(16));
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..n {
        let (client, url, gate) = (
            client.clone(),
            format!("{address}/api/v1/leads"),
            gate.clone(),
        );
        posts.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let body = json!({
                "business": "demo",
                "name": format!("Chaos lead {i}"),
                "phone": Phone::fictional(2000 + i).as_str(),
            });
            let created = eventually("the lead to be taken", Duration::from_secs(60), || async {
                let resp = client
                    .post(&url)
                    .header("Idempotency-Key", format!("chaos-{i}"))
                    .json(&body)
                    .send()
                    .await
                    .ok()?;
                if resp.status() != 201 {
                    return None;
                }
                resp.json::<serde_json::Value>().await.ok()
            })
            .await;
            created["run"]["id"].as_str().unwrap().to_owned()
        });
    }
    posts
}

async fn on_postgres(backend: Backend) {
    let shape = Shape {
        leads: 200,
        kills: 8,
    };
    let started = Instant::now();
    let fakes = chaotic_fakes().await;
    let app = spawn_app_configured(
        &backend,
        TestOptions {
            no_workers: true,
            ..Default::default()
        },
        |c| {
            fakes.configure(c);
            c.provider_timeout_secs = 1;
        },
    )
    .await;
    fakes.post_webhooks_to(&app.address);
    let logs = log_dir("chaos_postgres");
    let mut env = provider_env(&fakes);
    env.extend([
        ("DATABASE_URL", app.database.url.clone()),
        ("SWITCHBOARD_PUBLIC_URL", app.address.clone()),
        // The smallest pool allowed for 8 steps at once, so the suite stays under PostgreSQL's
        // connection limit.
        ("SWITCHBOARD_WORKER_CONCURRENCY", "8".to_owned()),
        ("SWITCHBOARD_DB_CONNECTIONS", "14".to_owned()),
    ]);
    let start = |i: usize| Process::start(&format!("worker-{i}"), "worker", &env, &logs);
    let mut workers: Vec<Option<Process>> = (0..3).map(|i| Some(start(i))).collect();

    let posts = post_leads(app.client.clone(), app.address.clone(), shape.leads);
    let mut kills = 0;
    while kills < shape.kills {
        pause(700, 2_500).await;
        let i = rand::random::<u32>() as usize % workers.len();
        if let Some(victim) = workers[i].take() {
            victim.kill().await;
            kills += 1;
        }
        pause(0, 1_500).await;
        workers[i] = Some(start(i));
    }
    let run_ids = joined(posts).await;
    settle_and_check(
        "PostgreSQL, 3 worker processes",
        app.engine.db(),
        &fakes,
        &run_ids,
        &shape,
        started,
        &logs,
    )
    .await;
}

async fn on_sqlite() {
    let shape = Shape {
        leads: 80,
        kills: 4,
    };
    let started = Instant::now();
    let fakes = chaotic_fakes().await;
    let database = TestDatabase::create(&Backend::Sqlite).await;
    let port = free_port();
    let address = format!("http://127.0.0.1:{port}");
    fakes.post_webhooks_to(&address);
    let logs = log_dir("chaos_sqlite");
    let mut env = provider_env(&fakes);
    env.extend([
        ("DATABASE_URL", database.url.clone()),
        ("SWITCHBOARD_ADDR", format!("127.0.0.1:{port}")),
        ("SWITCHBOARD_QUEUE_BOARD_ADDR", "127.0.0.1:0".to_owned()),
        ("SWITCHBOARD_OPERATOR_KEY", OPERATOR_KEY.to_owned()),
    ]);
    let start = || Process::start("serve", "serve", &env, &logs);
    let mut server = Some(start());

    let posts = post_leads(client_with_key(OPERATOR_KEY), address, shape.leads);
    for _ in 0..shape.kills {
        pause(1_500, 3_500).await;
        if let Some(victim) = server.take() {
            victim.kill().await;
        }
        // Started again at once: the provider's webhooks are retried for ~13 s.
        server = Some(start());
    }
    let run_ids = joined(posts).await;
    let db = Db::connect(&database.url, 4).await.unwrap();
    settle_and_check(
        "SQLite, 1 process",
        &db,
        &fakes,
        &run_ids,
        &shape,
        started,
        &logs,
    )
    .await;
    db.close().await;
    drop(server);
}

async fn joined(mut posts: tokio::task::JoinSet<String>) -> Vec<String> {
    let mut run_ids = Vec::new();
    while let Some(run_id) = posts.join_next().await {
        run_ids.push(run_id.expect("a lead post panicked"));
    }
    run_ids.sort();
    run_ids.dedup();
    run_ids
}

/// Runs whose status is not final and that do not wait on a timer due a minute or more from now.
async fn unsettled(db: &Db) -> i64 {
    let later = chrono::Utc::now().timestamp_millis() + 60_000;
    let (n,): (i64,) = db
        .fetch_one(
            Q::new(
                "SELECT COUNT(*) FROM sb_runs WHERE status NOT IN ('succeeded', 'failed', 'cancelled') \
                 AND NOT (status = 'waiting' AND wait_kind = 'timer' AND wait_until > $1)",
            )
            .bind(later),
        )
        .await
        .unwrap();
    n
}

async fn settle_and_check(
    label: &str,
    db: &Db,
    fakes: &FakeProviders,
    run_ids: &[String],
    shape: &Shape,
    started: Instant,
    logs: &std::path::Path,
) {
    assert_eq!(run_ids.len(), shape.leads, "one run per lead");
    let settled = within(SETTLE_DEADLINE, || async {
        (unsettled(db).await == 0).then_some(())
    })
    .await;
    let ends: Vec<(String, Option<String>, i64)> = db
        .fetch_all(Q::new(
            "SELECT status, outcome, COUNT(*) FROM sb_runs GROUP BY status, outcome ORDER BY 1, 2",
        ))
        .await
        .unwrap();
    assert!(
        settled.is_some(),
        "{label}: runs not settled {SETTLE_DEADLINE:?} after the last kill: {ends:?}; logs in {}",
        logs.display()
    );

    // No attempt dialled twice.
    let placed = fakes.sim.calls_placed_per_attempt();
    let duplicates: BTreeMap<_, _> = placed.iter().filter(|(_, n)| **n > 1).collect();
    let calls_placed: usize = placed.values().sum();

    // Every acknowledged webhook is stored, and its call recorded as ended.
    let stored: HashSet<String> = db
        .fetch_all::<(String,)>(Q::new(
            "SELECT key FROM sb_events WHERE kind = 'call.ended'",
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|(k,)| k)
        .collect();
    let ended: HashSet<String> = db
        .fetch_all::<(String,)>(Q::new(
            "SELECT conversation_id FROM calls WHERE conversation_id IS NOT NULL \
             AND ended_at IS NOT NULL",
        ))
        .await
        .unwrap()
        .into_iter()
        .map(|(c,)| c)
        .collect();
    let delivered = fakes.sim.delivered_webhooks();
    let lost: Vec<&String> = delivered
        .iter()
        .filter(|c| !stored.contains(*c) || !ended.contains(*c))
        .collect();

    // No step succeeded twice with the same input (its side effect would have run twice).
    let twice: Vec<(String, String, i64)> = db
        .fetch_all(Q::new(
            "SELECT run_id, name, COUNT(*) FROM sb_steps WHERE status = 'succeeded' \
             GROUP BY run_id, name, input HAVING COUNT(*) > 1",
        ))
        .await
        .unwrap();
    let calls_twice: Vec<(String, i64, i64)> = db
        .fetch_all(Q::new(
            "SELECT run_id, attempt, COUNT(*) FROM calls GROUP BY run_id, attempt HAVING COUNT(*) > 1",
        ))
        .await
        .unwrap();

    // The slowest run's steps, to see what a long tail waited on.
    let slowest: Vec<(String, i64, i64)> = db
        .fetch_all(Q::new(
            "SELECT id, created_at, updated_at - created_at FROM sb_runs \
             ORDER BY updated_at - created_at DESC LIMIT 1",
        ))
        .await
        .unwrap();
    if let Some((run_id, created_at, took)) = slowest.first() {
        type Attempt = (String, i64, String, Option<i64>, Option<String>);
        let steps: Vec<Attempt> = db
            .fetch_all(
                Q::new(
                    "SELECT name, attempt, status, started_at, error FROM sb_steps \
                     WHERE run_id = $1 ORDER BY scheduled_at, id",
                )
                .bind(run_id.as_str()),
            )
            .await
            .unwrap();
        println!("slowest run {run_id} took {took} ms:");
        for (name, attempt, status, started_at, error) in steps {
            let at = started_at.map(|t| t - created_at);
            println!("    +{at:?} ms {name} #{attempt} {status} {error:?}");
        }
    }
    let injected = &fakes.faults.injected;
    println!(
        "chaos ({label}): {} runs {ends:?}; {} kills; injected faults: {} ({} 503, {} 429, {} \
         timeouts); calls placed: {calls_placed}; webhooks acknowledged: {}; duplicates: {}; \
         lost events: {}; steps done twice: {}; in {:.0?}",
        run_ids.len(),
        shape.kills,
        injected.total(),
        injected.server_errors.load(Ordering::SeqCst),
        injected.rate_limited.load(Ordering::SeqCst),
        injected.timeouts.load(Ordering::SeqCst),
        delivered.len(),
        duplicates.len(),
        lost.len(),
        twice.len() + calls_twice.len(),
        started.elapsed(),
    );
    assert!(
        duplicates.is_empty(),
        "{label}: attempts dialled twice: {duplicates:?}"
    );
    if !lost.is_empty() {
        let mut report = String::new();
        for conversation in &lost {
            let calls: Vec<(String, String)> = db
                .fetch_all(
                    Q::new("SELECT id, status FROM calls WHERE conversation_id = $1")
                        .bind(conversation.as_str()),
                )
                .await
                .unwrap();
            let events: Vec<(String, Option<i64>)> = db
                .fetch_all(
                    Q::new("SELECT dedupe_key, consumed_at FROM sb_events WHERE key = $1")
                        .bind(conversation.as_str()),
                )
                .await
                .unwrap();
            report += &format!("{conversation}: calls {calls:?}, events {events:?}\n");
        }
        panic!(
            "{label}: acknowledged webhooks lost:\n{report}logs in {}",
            logs.display()
        );
    }
    assert!(
        twice.is_empty(),
        "{label}: steps that succeeded twice: {twice:?}"
    );
    assert!(
        calls_twice.is_empty(),
        "{label}: calls recorded twice: {calls_twice:?}"
    );
    assert!(injected.total() > 0, "the fakes injected no fault");
    assert!(
        calls_placed >= shape.leads,
        "{label}: fewer calls than leads"
    );
}
