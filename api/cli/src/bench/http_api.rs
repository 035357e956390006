//! API figures over loopback HTTP: inbound personalisation, lead intake under load, and the
//! runs list with many runs stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use switchboard_engine::ids::{new_id, now_ms};
use switchboard_engine::store::runs::{INSERT_MANY_MAX, RunRow, insert_many};

use super::{Backend, BenchDb, Figure, latency, server, shut, single};

/// Inbound personalisation latency as ElevenLabs sees it: `POST /api/v1/webhooks/elevenlabs/
/// personalize` over loopback HTTP on a SQLite file holding one lead, for that lead and for a
/// new caller.
pub(super) async fn personalize(iterations: usize) -> anyhow::Result<Vec<Figure>> {
    let secret = "bench-personalization-secret";
    let db = BenchDb::create(&Backend::Sqlite, "personalize").await?;
    let (base, parts, task) =
        server(&db, &["--elevenlabs-personalization-secret", secret], false).await?;
    let client = super::client();
    let lead = serde_json::json!({"business": "demo", "name": "Ada Lovelace",
        "phone": "+14155552671"});
    let created = client
        .post(format!("{base}/api/v1/leads"))
        .json(&lead)
        .send()
        .await?;
    anyhow::ensure!(
        created.status() == 201,
        "lead not created: {}",
        created.status()
    );
    let mut figures = Vec::new();
    for (label, caller) in [
        ("known lead", "+14155552671"),
        ("new caller", "+442071838750"),
    ] {
        let body = serde_json::json!({"caller_id": caller, "agent_id": "agent_demo_realty",
            "called_number": "+18885550100", "call_sid": "CA1"});
        let mut samples = Vec::with_capacity(iterations);
        for i in 0..iterations + iterations / 10 {
            let start = Instant::now();
            let answer = client
                .post(format!("{base}/api/v1/webhooks/elevenlabs/personalize"))
                .header("X-Switchboard-Secret", secret)
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(
                answer.status() == 200,
                "personalize answered {}",
                answer.status()
            );
            answer.bytes().await?;
            if i >= iterations / 10 {
                samples.push(start.elapsed());
            }
        }
        figures.push(latency(
            &format!("personalize ({label})"),
            "sqlite",
            "inbound personalisation request over loopback HTTP, as the provider waits",
            samples,
        ));
    }
    shut(parts, task).await;
    db.remove().await?;
    Ok(figures)
}

/// A number for lead `i`, one of those reserved for fiction: nobody is behind it, so calls go
/// out at any hour of the bench (the legal calling window protects people, not fiction).
pub(super) fn phone(i: usize) -> String {
    switchboard_workflows::phone::Phone::fictional(i)
        .as_str()
        .to_owned()
}

/// Lead intake: `POST /api/v1/leads` from `connections` clients in a closed loop for `length`,
/// against an API without workers (the load generator shares the machine, as a load tool
/// would). Every answer must be 201.
pub(super) async fn intake(
    backend: &Backend,
    length: Duration,
    connections: usize,
) -> anyhow::Result<Vec<Figure>> {
    let db = BenchDb::create(backend, "intake").await?;
    let (base, parts, task) = server(&db, &[], false).await?;
    let client = super::client();
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let loops = (0..connections).map(|_| {
        let (client, base, next, errors) =
            (client.clone(), base.clone(), next.clone(), errors.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while start.elapsed() < length {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let lead = serde_json::json!({"business": "demo", "name": format!("Lead {i}"),
                    "phone": phone(i), "source": "bench"});
                let sent = Instant::now();
                let ok = match client
                    .post(format!("{base}/api/v1/leads"))
                    .json(&lead)
                    .send()
                    .await
                {
                    Ok(r) => r.status() == 201 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    samples.push(sent.elapsed());
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            samples
        })
    });
    let mut samples = Vec::new();
    for l in futures::future::join_all(loops).await {
        samples.extend(l?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let errors = errors.load(Ordering::Relaxed);
    shut(parts, task).await;
    db.remove().await?;
    anyhow::ensure!(errors == 0, "{errors} lead requests failed");
    let b = backend.name();
    let n = samples.len();
    let what = format!(
        "POST /api/v1/leads (lead + run stored), {connections} connections in a closed loop for {} s, no errors",
        length.as_secs()
    );
    Ok(vec![
        single(
            "intake (sustained)",
            b,
            &what,
            n,
            "req/s",
            n as f64 / elapsed,
        ),
        latency("intake (latency)", b, &what, samples),
    ])
}

/// Stores `runs` finished and waiting runs in bulk, spread over four businesses and six
/// statuses; returns the id of the run in the middle.
async fn seed_runs(db: &switchboard_engine::Db, runs: usize) -> anyhow::Result<String> {
    let businesses = ["demo", "realty", "dental", "saas"];
    use switchboard_engine::RunStatus::{Cancelled, Failed, Succeeded, Waiting};
    let statuses = [Succeeded, Succeeded, Succeeded, Failed, Waiting, Cancelled];
    let mut middle = String::new();
    let mut done = 0;
    while done < runs {
        let mut tx = db.begin().await?;
        for _ in 0..10 {
            let batch: Vec<RunRow> = (done..(done + INSERT_MANY_MAX).min(runs))
                .map(|i| {
                    let now = now_ms();
                    RunRow {
                        id: new_id(),
                        workflow: "lead_call".into(),
                        business_id: businesses[i % businesses.len()].into(),
                        subject_id: new_id(),
                        status: statuses[i % statuses.len()],
                        current_step: Some("follow_up".into()),
                        current_row: None,
                        seq: 8,
                        outcome: Some("handed_off".into()),
                        error: None,
                        wait_kind: None,
                        wait_key: None,
                        wait_until: None,
                        created_at: now,
                        updated_at: now,
                        queue_rank: 0,
                    }
                })
                .collect();
            if batch.is_empty() {
                break;
            }
            if done <= runs / 2 && runs / 2 < done + batch.len() {
                middle = batch[runs / 2 - done].id.clone();
            }
            done += batch.len();
            insert_many(&mut tx, &batch).await?;
        }
        tx.commit().await?;
    }
    Ok(middle)
}

/// `GET /api/v1/runs` with `runs` runs stored, over loopback HTTP: the first page, filtered by
/// business, by status, both, a page deep in the list by cursor, and the counts.
pub(super) async fn runs_list(
    backend: &Backend,
    runs: usize,
    iterations: usize,
) -> anyhow::Result<Vec<Figure>> {
    let db = BenchDb::create(backend, "runs").await?;
    let (base, parts, task) = server(&db, &[], false).await?;
    let seeding = Instant::now();
    let middle = seed_runs(parts.engine.db(), runs).await?;
    let seeded = seeding.elapsed();
    let client = super::client();
    let b = backend.name();
    let mut figures = vec![single(
        "runs_list (seeding)",
        b,
        "runs stored per second by the bulk seeding (multi-row inserts, 20,000 per transaction)",
        runs,
        "runs/s",
        runs as f64 / seeded.as_secs_f64(),
    )];
    let cases = [
        ("first page", "?limit=50".to_owned()),
        ("one business", "?business=realty&limit=50".to_owned()),
        ("one status", "?status=failed&limit=50".to_owned()),
        (
            "business and status",
            "?business=dental&status=waiting&limit=50".to_owned(),
        ),
        ("a page halfway down", format!("?limit=50&cursor={middle}")),
        ("counts per status", "/counts".to_owned()),
        (
            "counts of one business",
            "/counts?business=realty".to_owned(),
        ),
    ];
    for (label, query) in cases {
        let url = format!("{base}/api/v1/runs{query}");
        let mut samples = Vec::with_capacity(iterations);
        for i in 0..iterations + iterations / 10 {
            let start = Instant::now();
            let answer = client.get(&url).send().await?;
            anyhow::ensure!(
                answer.status() == 200,
                "runs list answered {}",
                answer.status()
            );
            let body: serde_json::Value = answer.json().await?;
            let full_page = body["runs"].as_array().is_some_and(|r| r.len() == 50);
            anyhow::ensure!(full_page || body["total"].as_u64().is_some(), "{body}");
            if i >= iterations / 10 {
                samples.push(start.elapsed());
            }
        }
        figures.push(latency(
            &format!("runs_list ({label})"),
            b,
            &format!("GET /api/v1/runs{query} with {runs} runs stored, loopback HTTP"),
            samples,
        ));
    }
    shut(parts, task).await;
    db.remove().await?;
    Ok(figures)
}

/// Creates `n` leads through the API, `concurrency` at a time; returns their run ids.
pub(super) async fn create_leads(
    base: &str,
    n: usize,
    concurrency: usize,
    business: &str,
    sim: serde_json::Value,
) -> anyhow::Result<Vec<String>> {
    let client = super::client();
    let results: Vec<anyhow::Result<String>> = futures::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let lead = serde_json::json!({"business": business, "name": format!("Lead {i}"),
                "phone": phone(i), "sim": sim});
            async move {
                let r = client
                    .post(format!("{base}/api/v1/leads"))
                    .json(&lead)
                    .send()
                    .await?;
                anyhow::ensure!(r.status() == 201, "lead not created: {}", r.status());
                let body: serde_json::Value = r.json().await?;
                Ok(body["run"]["id"].as_str().unwrap_or_default().to_owned())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().collect()
}
