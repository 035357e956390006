//! Scale-out across real processes: three `switchboard worker` processes on one PostgreSQL run a
//! few hundred runs behind an API process without workers. Every run completes once, no step
//! attempt is executed twice, and a worker stopped with SIGTERM mid-load loses nothing.
//!
//! "Once" is read from the database: each step of each run succeeded exactly once, on its first
//! attempt, and there are no other rows (no attempt failed, timed out or was lost with a worker;
//! a `place_call` put off while every line was busy counts its deferrals in its one row), and each
//! run placed exactly one call whose one end-of-call webhook it consumed (a second dial would show
//! as a second conversation).
//!
//! Without provider keys each worker process answers its own calls with the built-in simulator;
//! a stopping worker lets its simulator's calls end and post their webhooks before it exits, as
//! a real provider (which outlives any worker) would send them.
//!
//! PostgreSQL only: one SQLite file is one process' database.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use switchboard_tests::children::{Process, log_dir, registered_worker_name};
use switchboard_tests::*;
use switchboard_workflows::phone::Phone;

/// Leads created, each one run.
const RUNS: usize = 300;
/// Worker processes started.
const PROCESSES: usize = 3;
/// The worker stopped with SIGTERM once this many runs have succeeded.
const SIGTERM_AFTER: i64 = (RUNS / 3) as i64;
/// How long a SIGTERM'd worker may take to finish its steps in flight and exit.
const EXIT_DEADLINE: Duration = Duration::from_secs(40);
/// How long every run may take to end once the leads are in.
const ALL_DONE_DEADLINE: Duration = Duration::from_secs(120);

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_worker_processes_run_every_run_once_and_a_sigterm_loses_nothing() {
        match switchboard_tests::Backend::postgres() {
            Some(backend) => super::three_worker_processes(backend).await,
            None => eprintln!("skipped: TEST_DATABASE_URL is not set"),
        }
    }
}

/// One `switchboard worker` child process and the apalis worker name it registered under.
struct WorkerProcess {
    process: Process,
    /// The apalis worker name it registered under (from its log).
    name: String,
}

impl WorkerProcess {
    /// Starts `switchboard worker` on `database_url`; its simulator posts webhooks to `api`.
    fn start(label: &str, database_url: &str, api: &str, logs: &Path) -> WorkerProcess {
        let env = [
            ("DATABASE_URL", database_url.to_owned()),
            ("SWITCHBOARD_PUBLIC_URL", api.to_owned()),
            // The API process verifies webhooks with the test secret.
            ("ELEVENLABS_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
            // The smallest pool allowed for 8 steps at once (the defaults are 16 and 32), so the
            // suite's parallel tests stay under PostgreSQL's limit.
            ("SWITCHBOARD_WORKER_CONCURRENCY", "8".to_owned()),
            ("SWITCHBOARD_DB_CONNECTIONS", "14".to_owned()),
            ("SWITCHBOARD_POLL_INTERVAL_MS", "1000".to_owned()),
            ("SWITCHBOARD_MAX_CONCURRENT_CALLS", "100".to_owned()),
            ("SWITCHBOARD_SIMULATOR_ADDR", "127.0.0.1:0".to_owned()),
            // Warnings, and the line that names the worker.
            ("RUST_LOG", "warn,switchboard_api::startup=info".to_owned()),
        ];
        WorkerProcess {
            process: Process::start(label, "worker", &env, logs),
            name: String::new(),
        }
    }

    fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// The worker name in its `worker running worker=<name>` line, once written; panics if the
    /// process has exited.
    fn registered_name(&mut self) -> Option<String> {
        self.process.assert_running();
        registered_worker_name(&self.log_text())
    }

    /// Sends SIGTERM and waits for a clean exit; returns how long it took.
    async fn stop(&mut self) -> Duration {
        let sent = Instant::now();
        self.process.stop(EXIT_DEADLINE).await;
        sent.elapsed()
    }
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn succeeded_runs(pool: &PgPool) -> i64 {
    count(
        pool,
        "SELECT count(*) FROM sb_runs WHERE status = 'succeeded'",
    )
    .await
}

/// Steps each worker name (apalis restarts add `-r<n>`/`-g<n>`) claimed.
async fn steps_claimed(pool: &PgPool) -> HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT claimed_by, count(*) FROM sb_steps WHERE claimed_by IS NOT NULL \
         GROUP BY claimed_by",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

fn claimed_by(claims: &HashMap<String, i64>, worker: &str) -> i64 {
    claims
        .iter()
        .filter(|(name, _)| name.starts_with(worker))
        .map(|(_, n)| n)
        .sum()
}

/// A run's step rows, for a failure message.
async fn run_rows(pool: &PgPool, run_id: &str) -> String {
    type Row = (
        String,
        i64,
        String,
        Option<String>,
        Option<i64>,
        Option<i64>,
        Option<String>,
    );
    let rows = sqlx::query_as::<_, Row>(
        "SELECT name, attempt, status, claimed_by, started_at, finished_at, error FROM sb_steps \
         WHERE run_id = $1 ORDER BY scheduled_at, id",
    )
    .bind(run_id)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut out = String::new();
    for (name, attempt, status, claimed_by, started, finished, error) in rows {
        out += &format!(
            "    {name} #{attempt} {status} by {claimed_by:?} started {started:?} finished \
             {finished:?} {error:?}\n"
        );
    }
    out
}

/// The runs not finished, with their step rows, for a failure message.
async fn unfinished(pool: &PgPool) -> String {
    let runs = sqlx::query_as::<_, (String, String, Option<String>, Option<String>)>(
        "SELECT id, status, current_step, wait_kind FROM sb_runs \
         WHERE status NOT IN ('succeeded', 'failed', 'cancelled') ORDER BY id LIMIT 10",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut out = String::new();
    for (id, status, step, wait) in runs {
        out += &format!("run {id}: {status} at {step:?} waiting on {wait:?}\n");
        out += &run_rows(pool, &id).await;
    }
    // What the database's sessions are doing (a step stuck on a lock shows here).
    let sessions = sqlx::query_as::<
        _,
        (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<f64>,
            Option<String>,
        ),
    >(
        "SELECT state, wait_event_type || ':' || wait_event, application_name, \
         EXTRACT(EPOCH FROM now() - xact_start)::float8, left(query, 160) \
         FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND state <> 'idle' ORDER BY xact_start",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    out += "sessions not idle (state, wait, application, transaction age s, query):\n";
    for s in sessions {
        out += &format!("    {s:?}\n");
    }
    out
}

async fn three_worker_processes(backend: Backend) {
    let started = Instant::now();
    // The API process (in this test): no workers; its address is where the workers'
    // simulators post their webhooks.
    let app = spawn_app_configured(
        &backend,
        TestOptions {
            no_workers: true,
            ..Default::default()
        },
        |c| c.max_concurrent_calls = 100,
    )
    .await;
    let switchboard_engine::Db::Postgres(pools) = app.engine.db().clone() else {
        unreachable!("a PostgreSQL test")
    };
    let pool = pools.sqlx_pool().clone();
    let logs = log_dir("processes");
    eprintln!("worker logs in {}", logs.display());

    let mut workers: Vec<WorkerProcess> = (1..=PROCESSES)
        .map(|i| {
            WorkerProcess::start(
                &format!("worker-{i}"),
                &app.database.url,
                &app.address,
                &logs,
            )
        })
        .collect();
    // Each has started its workers under a unique name, and apalis has registered them.
    for w in &mut workers {
        w.name = eventually(
            &format!("{} to start its workers", w.process.label),
            Duration::from_secs(60),
            || std::future::ready(w.registered_name()),
        )
        .await;
    }
    let names: Vec<String> = workers.iter().map(|w| w.name.clone()).collect();
    eventually(
        "the three workers in apalis' worker table",
        Duration::from_secs(30),
        || async {
            let registered: i64 =
                sqlx::query_scalar("SELECT count(*) FROM apalis.workers WHERE id = ANY($1)")
                    .bind(&names)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            (registered == PROCESSES as i64).then_some(())
        },
    )
    .await;
    let ready = started.elapsed();

    // A few hundred leads, posted concurrently (distinct valid numbers), each steered to an
    // interested customer whose webhook comes at once.
    let posting = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(16));
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..RUNS {
        let (client, url, gate) = (
            app.client.clone(),
            format!("{}/api/v1/leads", app.address),
            gate.clone(),
        );
        posts.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let body = json!({
                "business": "demo",
                "name": format!("Lead {i}"),
                "phone": Phone::fictional(1000 + i).as_str(),
                "sim": {"outcome": "interested", "webhook_delay_ms": 0},
            });
            let resp = client.post(&url).json(&body).send().await.unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            assert_eq!(status, 201, "lead {i} not created: {text}");
            let created: serde_json::Value = serde_json::from_str(&text).unwrap();
            created["run"]["id"].as_str().unwrap().to_owned()
        });
    }

    // Mid-load, a worker that is executing steps is told to stop: it finishes the steps it is
    // executing and exits cleanly; whatever it had not started goes to the other two. (Whichever
    // worker is busy at that moment: a fixed one may have no step of its own before the others
    // drain the queue.)
    eventually(
        "a third of the runs to succeed",
        ALL_DONE_DEADLINE,
        || async { (succeeded_runs(&pool).await >= SIGTERM_AFTER).then_some(()) },
    )
    .await;
    let running_of = |claimant: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, String, String)>(
                "SELECT id, run_id, name FROM sb_steps WHERE status = 'running' AND claimed_by LIKE $1",
            )
            .bind(format!("{claimant}%"))
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let (victim, in_flight) = eventually(
        "a worker to be executing a step",
        Duration::from_secs(30),
        || async {
            for (i, name) in names.iter().enumerate() {
                let steps = running_of(name.clone()).await;
                if !steps.is_empty() {
                    return Some((i, steps));
                }
            }
            None
        },
    )
    .await;
    let victim_like = format!("{}%", names[victim]);
    let running = || running_of(names[victim].clone());
    let open_at_sigterm = count(
        &pool,
        "SELECT count(*) FROM sb_runs WHERE status <> 'succeeded'",
    )
    .await;
    let sigterm_at = started.elapsed();
    let sigterm_ms = chrono::Utc::now().timestamp_millis();
    let exit_took = workers[victim].stop().await;
    let exit_ms = chrono::Utc::now().timestamp_millis();
    let victim_log = workers[victim].log_text();
    // Nothing it claimed is left running: it finished what it was executing before exiting.
    let abandoned = running().await;
    let in_flight_ids: Vec<&str> = in_flight.iter().map(|(id, ..)| id.as_str()).collect();
    let in_flight_now = sqlx::query_as::<_, (String, String, Option<i64>)>(
        "SELECT name, status, finished_at FROM sb_steps WHERE id = ANY($1)",
    )
    .bind(&in_flight_ids)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        abandoned.is_empty(),
        "worker-1 exited {exit_took:?} after SIGTERM leaving steps it claimed running \
         (executing at SIGTERM: {in_flight:?}, now {in_flight_now:?}): {abandoned:?}\n\
         its log:\n{victim_log}"
    );

    // The simulator that answered the calls this worker placed lived in its process: it sent
    // every end-of-call webhook before the process exited, as a real provider would send them.
    let unanswered: Vec<String> = sqlx::query_scalar(
        "SELECT c.conversation_id FROM calls c \
         JOIN sb_steps s ON s.run_id = c.run_id AND s.name = 'place_call' \
           AND s.status = 'succeeded' AND s.claimed_by LIKE $1 \
         WHERE c.conversation_id IS NOT NULL AND NOT EXISTS \
           (SELECT 1 FROM sb_events e WHERE e.kind = 'call.ended' AND e.key = c.conversation_id)",
    )
    .bind(&victim_like)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        unanswered.is_empty(),
        "calls of the stopped worker without their webhook: {unanswered:?}\nits log:\n{victim_log}"
    );

    let mut run_ids = Vec::with_capacity(RUNS);
    while let Some(joined) = posts.join_next().await {
        run_ids.push(joined.expect("a lead post panicked"));
    }
    let posted_in = posting.elapsed();
    run_ids.sort();
    run_ids.dedup();
    assert_eq!(run_ids.len(), RUNS, "one run per lead");

    // Every run ends.
    let done = within(ALL_DONE_DEADLINE, || async {
        let open = count(
            &pool,
            "SELECT count(*) FROM sb_runs WHERE status NOT IN ('succeeded', 'failed', 'cancelled')",
        )
        .await;
        (open == 0).then_some(())
    })
    .await;
    if done.is_none() {
        panic!(
            "runs still open {ALL_DONE_DEADLINE:?} after SIGTERM's load:\n{}\nlogs in {}",
            unfinished(&pool).await,
            logs.display()
        );
    }
    let all_done = started.elapsed();

    // Every run succeeded, once, and handed the lead off.
    let ends = sqlx::query_as::<_, (String, Option<String>, i64)>(
        "SELECT status, outcome, count(*) FROM sb_runs GROUP BY status, outcome ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        ends,
        vec![("succeeded".into(), Some("handed_off".into()), RUNS as i64)],
        "how the runs ended"
    );
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM sb_runs ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored, run_ids, "the runs are the leads' runs");

    // Step attempts: per run, each step of the pipeline succeeded once, on its first attempt,
    // in order, and nothing else: a place_call put off while every line was busy runs again as
    // the same attempt (its deferrals counted). Nothing was lost with a worker or failed.
    let rows = sqlx::query_as::<
        _,
        (
            String,
            String,
            i64,
            String,
            Option<String>,
            i64,
            Option<String>,
        ),
    >(
        "SELECT run_id, name, attempt, status, claimed_by, deferrals, deferred_because \
         FROM sb_steps ORDER BY run_id, scheduled_at, id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut per_run: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut deferred = 0;
    let mut wrong = Vec::new();
    for (run_id, name, attempt, status, claimed_by, deferrals, why) in &rows {
        deferred += deferrals;
        let put_off_for_lines = *deferrals == 0
            || (name == "place_call" && why.as_deref().is_some_and(|e| e.contains("lines")));
        let fine = match status.as_str() {
            "succeeded" => {
                per_run.entry(run_id).or_default().push(name);
                *attempt == 1 && claimed_by.is_some() && put_off_for_lines
            }
            _ => false,
        };
        if !fine {
            wrong.push(run_id.as_str());
        }
    }
    for (run_id, steps) in &per_run {
        if steps != &LEAD_CALL_STEPS {
            wrong.push(run_id);
        }
    }
    wrong.sort();
    wrong.dedup();
    if !wrong.is_empty() {
        let mut report = format!(
            "{} runs with unexpected step rows; workers {:?}; SIGTERM to {} at {sigterm_ms}, \
             exited at {exit_ms}\n",
            wrong.len(),
            workers
                .iter()
                .map(|w| (&w.process.label, &w.name))
                .collect::<Vec<_>>(),
            workers[victim].process.label,
        );
        for run_id in wrong.iter().take(5) {
            report += &format!("run {run_id}:\n{}", run_rows(&pool, run_id).await);
        }
        panic!("{report}logs in {}", logs.display());
    }
    assert_eq!(per_run.len(), RUNS);

    // One call per run, placed once: one record (call key <run>:1), and one end-of-call
    // webhook per run. A second dial of an attempt would have made a second conversation, whose
    // webhook would be stored unconsumed.
    let calls = sqlx::query_as::<_, (i64, i64, i64, i64)>(
        "SELECT count(*), count(DISTINCT run_id), \
         count(*) FILTER (WHERE attempt = 1 AND status = 'placed' AND conversation_id IS NOT NULL \
           AND ended_at IS NOT NULL AND outcome = 'connected'), \
         count(DISTINCT conversation_id) FROM calls",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        calls,
        (RUNS as i64, RUNS as i64, RUNS as i64, RUNS as i64),
        "calls (rows, runs, placed and connected, conversations)"
    );
    // A webhook that beats the provider's answer is also stored under the call key (unused
    // here: the run waits on the conversation); leave those aside.
    let events = sqlx::query_as::<_, (i64, i64, i64, i64)>(
        "SELECT count(*), count(DISTINCT e.key), count(DISTINCT e.run_id), \
         count(*) FILTER (WHERE e.consumed_at IS NOT NULL) \
         FROM sb_events e JOIN calls c ON c.conversation_id = e.key \
         WHERE e.kind = 'call.ended' AND e.dedupe_key NOT LIKE '%:by-call-key'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let strays = count(
        &pool,
        "SELECT count(*) FROM sb_events e WHERE e.kind = 'call.ended' AND NOT EXISTS \
         (SELECT 1 FROM calls c WHERE c.conversation_id = e.key OR c.id = e.key)",
    )
    .await;
    assert_eq!(
        (events, strays),
        ((RUNS as i64, RUNS as i64, RUNS as i64, RUNS as i64), 0),
        "end-of-call webhooks ((stored, conversations, runs, consumed), for no recorded call)"
    );

    // The stopped worker started nothing after it exited (what it started between SIGTERM and
    // its exit, already fetched when the signal came, is only counted), the other two took over,
    // and whatever it had fetched but not started was handed back: the queue drains.
    let victim_starts = sqlx::query_as::<_, (i64, i64)>(
        "SELECT count(*) FILTER (WHERE started_at > $2 AND started_at <= $3), \
         count(*) FILTER (WHERE started_at > $3) FROM sb_steps WHERE claimed_by LIKE $1",
    )
    .bind(format!("{}%", names[victim]))
    .bind(sigterm_ms)
    .bind(exit_ms)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        victim_starts.1, 0,
        "the SIGTERM'd worker started steps after it exited"
    );
    let claims = steps_claimed(&pool).await;
    let per_process: Vec<i64> = names.iter().map(|n| claimed_by(&claims, n)).collect();
    assert_eq!(
        per_process.iter().sum::<i64>(),
        claims.values().sum::<i64>(),
        "steps claimed by workers other than the three: {claims:?}"
    );
    for (w, n) in workers.iter().zip(&per_process) {
        assert!(*n > 0, "{} ran no step", w.process.label);
    }
    wait_until_queue_idle(app.engine.db()).await;
    assert!(
        !victim_log.contains("ERROR"),
        "the SIGTERM'd worker logged errors:\n{victim_log}"
    );

    // The other two stop cleanly as well.
    let mut idle_exits = Vec::new();
    for (i, w) in workers.iter_mut().enumerate() {
        if i != victim {
            idle_exits.push(w.stop().await);
        }
    }

    eprintln!(
        "{RUNS} runs on {PROCESSES} worker processes: workers ready after {ready:.1?}, leads \
         posted in {posted_in:.1?}, all runs ended {all_done:.1?} after the start; {} step \
         rows ({deferred} place_call deferrals while lines were busy)",
        rows.len()
    );
    for (w, n) in workers.iter().zip(&per_process) {
        eprintln!("  {} ({}): {n} steps", w.process.label, w.name);
    }
    eprintln!(
        "  SIGTERM to worker-1 {sigterm_at:.1?} after the start, once {SIGTERM_AFTER} runs had \
         succeeded ({open_at_sigterm} open) while it executed {} steps: exited cleanly \
         {exit_took:.1?} later, having started {} steps in between; the idle workers exited \
         {idle_exits:.1?} after theirs",
        in_flight.len(),
        victim_starts.0
    );
    drop(app);
    let _ = std::fs::remove_dir_all(&logs);
}
