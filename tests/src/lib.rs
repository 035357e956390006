//! Test helpers: `spawn_app()` starts the whole application on port 0 with a fresh database, and
//! `TestApp` drives it over HTTP. Waiting is always for a condition with a deadline.

pub mod browser;
pub mod children;
pub mod fakes;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_api::config::Config;
use switchboard_api::startup::{Application, BackgroundJobs, Overrides};
use switchboard_engine::{Engine, WorkerOptions, Workers};
use switchboard_simulator::Simulator;
use switchboard_workflows::policy::BusinessClock;
use switchboard_workflows::providers::resilience::Resilience;

/// The webhook secret every test app uses.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
/// The secret inbound personalisation requests carry.
pub const PERSONALIZATION_SECRET: &str = "test-personalization-secret";
/// The operator key every test app starts with (`SWITCHBOARD_OPERATOR_KEY`); [`TestApp::client`]
/// sends it.
pub const OPERATOR_KEY: &str = "sbk_test-operator-key-0123456789";

/// Today at 18:30 UTC: inside the legal calling window (08:00–21:00) of every US timezone from
/// Hawaii to Puerto Rico and of the UK, all year. The business clock of a test that does not set
/// one starts here, so the leads' numbers may be called whatever the hour the suite runs at.
pub fn lawful_hour_today() -> chrono::DateTime<chrono::Utc> {
    let today = chrono::Utc::now().date_naive();
    today
        .and_hms_opt(18, 30, 0)
        .expect("18:30 exists")
        .and_utc()
}

/// With `TEST_LOG` set (e.g. `TEST_LOG=warn`), the apps of a test binary log to the test's
/// output at that level, so a failure such as an unexpected 500 shows its cause.
fn init_test_log() {
    if let Ok(level) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(level))
            .with_test_writer()
            .try_init();
    }
}

/// A port free to bind on 127.0.0.1 (for a child process to listen on).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("its address")
        .port()
}

/// An HTTP client that sends `key` as `Authorization: Bearer` on every request.
pub fn client_with_key(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {key}").parse().expect("a header value");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("a client")
}

/// Which database a test runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    /// A fresh SQLite file in the temp dir.
    Sqlite,
    /// A fresh database on the server at `TEST_DATABASE_URL`.
    Postgres(String),
}

impl Backend {
    /// PostgreSQL if `TEST_DATABASE_URL` is set.
    pub fn postgres() -> Option<Backend> {
        std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .map(Backend::Postgres)
    }
}

/// A database that exists for one test and is removed afterwards.
pub struct TestDatabase {
    /// Its URL.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    /// Another test app owns the database.
    None,
    File(std::path::PathBuf),
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl TestDatabase {
    /// Creates a fresh, empty database.
    pub async fn create(backend: &Backend) -> TestDatabase {
        let name = format!("sb_test_{}", uuid::Uuid::now_v7().simple());
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                TestDatabase {
                    url: format!("sqlite://{}", path.display()),
                    cleanup: Cleanup::File(path),
                }
            }
            Backend::Postgres(admin_url) => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(admin_url)
                    .await
                    .expect("connect to TEST_DATABASE_URL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b)
                    .unwrap_or(admin_url);
                TestDatabase {
                    url: format!("{base}/{name}"),
                    cleanup: Cleanup::Postgres {
                        admin_url: admin_url.clone(),
                        name,
                    },
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::None => {}
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs outside any runtime we may block: use a thread with its own.
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    rt.block_on(async {
                        use sqlx::Connection;
                        let mut conn = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                        sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await
                        .ok()
                    })
                })
                .join();
            }
        }
    }
}

/// Options for [`spawn_app_with`].
#[derive(Clone, Debug, Default)]
pub struct TestOptions {
    /// Webhook deadline for every call (default: the business setting).
    pub await_call_timeout: Option<Duration>,
    /// Start without workers.
    pub no_workers: bool,
    /// Where the business clock (scripts, routing, calling hours) starts; it runs on from there
    /// (default: [`lawful_hour_today`]).
    pub business_clock: Option<chrono::DateTime<chrono::Utc>>,
    /// More business folders (`SWITCHBOARD_BUSINESSES_DIR`).
    pub businesses_dir: Option<std::path::PathBuf>,
}

impl TestOptions {
    /// An API without workers: runs stay queued (or another process runs them).
    pub fn without_workers() -> TestOptions {
        TestOptions {
            no_workers: true,
            ..TestOptions::default()
        }
    }

    /// Runs wait an hour for their call's webhook, so a test can look at them waiting.
    pub fn webhooks_wait_an_hour() -> TestOptions {
        TestOptions {
            await_call_timeout: Some(Duration::from_secs(3600)),
            ..TestOptions::default()
        }
    }
}

/// A running application on a fresh database.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The engine, for direct inspection.
    pub engine: Engine,
    /// The built-in simulator (absent when provider keys are configured).
    pub simulator: Option<Simulator>,
    /// The voice provider's retries and circuit breaker.
    pub voice_resilience: Arc<Resilience>,
    /// The app's workers, if running.
    pub workers: Option<Workers>,
    /// The clock the app's scripts, routing and calling-hours check see: a test may set it.
    pub business_clock: BusinessClock,
    worker_options: WorkerOptions,
    /// The retention sweep and cron campaigns beside the workers (they stop with the app).
    _background: Option<BackgroundJobs>,
    server: tokio::task::JoinHandle<()>,
    /// The database (dropped last).
    pub database: TestDatabase,
}

/// The app on a fresh database with default options.
pub async fn spawn_app(backend: &Backend) -> TestApp {
    spawn_app_with(backend, TestOptions::default()).await
}

/// A test configuration: port 0, fast polling, the shared test secret.
pub fn test_config(database_url: &str) -> Config {
    Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url.to_owned(),
        public_url: None,
        worker_concurrency: 8,
        poll_interval_ms: 200,
        db_connections: None,
        script_threads: 2,
        elevenlabs_api_key: None,
        elevenlabs_base_url: "http://127.0.0.1:9".into(),
        elevenlabs_webhook_secret: Some(WEBHOOK_SECRET.into()),
        retell_api_key: None,
        retell_base_url: "http://127.0.0.1:9".into(),
        openai_api_key: None,
        openai_base_url: "http://127.0.0.1:9".into(),
        openai_model: "test-model".into(),
        max_concurrent_calls: 20,
        max_calls_per_minute: None,
        provider_timeout_secs: 5,
        breaker_threshold: 5,
        breaker_open_secs: 30,
        call_audio_dir: None,
        businesses_dir: None,
        elevenlabs_personalization_secret: Some(PERSONALIZATION_SECRET.into()),
        simulator_addr: "127.0.0.1:0".parse().unwrap(),
        queue_board_addr: "127.0.0.1:0".parse().unwrap(),
        cors_origins: vec!["https://app.example.com".into()],
        log: "warn".into(),
        log_format: Default::default(),
        request_timeout_secs: 30,
        operator_key: Some(OPERATOR_KEY.into()),
        metrics_addr: None,
        key_rate_limit: 10_000,
        address_rate_limit: 10_000,
        sentry_dsn: None,
        sentry_environment: None,
    }
}

/// The app on a fresh database.
pub async fn spawn_app_with(backend: &Backend, opts: TestOptions) -> TestApp {
    spawn_app_configured(backend, opts, |_| {}).await
}

/// The app on a fresh database, with `configure` applied to the test configuration (provider
/// keys and base URLs pointed at fakes, caps, breaker settings…).
pub async fn spawn_app_configured(
    backend: &Backend,
    opts: TestOptions,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    spawn_on(TestDatabase::create(backend).await, opts, configure).await
}

async fn spawn_on(
    database: TestDatabase,
    opts: TestOptions,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    init_test_log();
    let business_clock =
        BusinessClock::starting_at(opts.business_clock.unwrap_or_else(lawful_hour_today));
    let overrides = Overrides {
        await_call_timeout: opts.await_call_timeout,
        no_workers: opts.no_workers,
        business_clock: business_clock.clone(),
    };
    let mut config = test_config(&database.url);
    config.businesses_dir = opts.businesses_dir.clone();
    configure(&mut config);
    let app = Application::build(config, overrides)
        .await
        .expect("app starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let parts = app.into_parts();
    let serve = parts.serve;
    let server = tokio::spawn(async move {
        let _ = serve.await;
    });
    TestApp {
        address,
        client: client_with_key(OPERATOR_KEY),
        engine: parts.engine,
        simulator: parts.simulator,
        voice_resilience: parts.voice_resilience,
        workers: parts.workers,
        business_clock,
        worker_options: parts.worker_options,
        _background: parts.background,
        server,
        database,
    }
}

impl TestApp {
    /// A second server process on the same database (its own workers unless `opts` says not),
    /// as another machine of a scaled-out deployment would be.
    pub async fn another_process(&self, opts: TestOptions) -> TestApp {
        let database = TestDatabase {
            url: self.database.url.clone(),
            cleanup: Cleanup::None,
        };
        spawn_on(database, opts, |_| {}).await
    }

    /// Opens `GET /api/v1/events?{query}` (resuming after `last_event_id`) and waits until it
    /// is live.
    pub async fn events(&self, query: &str, last_event_id: Option<i64>) -> EventStream {
        let mut req = self
            .client
            .get(format!("{}/api/v1/events?{query}", self.address));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "events stream refused");
        let mut stream = EventStream::new(resp);
        let first = stream
            .next(Duration::from_secs(10))
            .await
            .expect("ready event");
        assert!(
            first.event == "ready" || first.event == "reset",
            "{first:?}"
        );
        stream
    }

    /// The built-in simulator (panics when the app was configured with provider keys).
    pub fn sim(&self) -> &Simulator {
        self.simulator
            .as_ref()
            .expect("this app runs on the simulator")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(w) = self.workers.take() {
            w.abort();
        }
    }
}

/// One server-sent event.
#[derive(Clone, Debug)]
pub struct SseEvent {
    /// `event:` (`message` when absent).
    pub event: String,
    /// `id:`, if any.
    pub id: Option<i64>,
    /// `data:` as JSON (`null` when it is not JSON).
    pub data: Value,
}

/// A server-sent events response, read event by event.
pub struct EventStream {
    resp: reqwest::Response,
    buf: String,
}

impl EventStream {
    /// Reads `resp`, an answer of `GET /api/v1/events`, as events.
    pub fn new(resp: reqwest::Response) -> Self {
        EventStream {
            resp,
            buf: String::new(),
        }
    }

    /// The next event, or `None` when `within` passes first (keep-alive comments are skipped).
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = ("message".to_owned(), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() && id.is_none() && event == "message" {
                    continue; // a keep-alive comment
                }
                let data = serde_json::from_str(&data).unwrap_or(Value::Null);
                return Some(SseEvent { event, id, data });
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .ok()?;
            let bytes = chunk.ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&bytes));
        }
    }

    /// Run events until one for `run_id` has `status`; returns every event for that run seen.
    pub async fn until_run_status(
        &mut self,
        run_id: &str,
        status: &str,
        within: Duration,
    ) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(e) = self.next(left).await else {
                panic!("no {status} event for run {run_id} within {within:?}; saw {seen:?}");
            };
            if e.event == "run" && e.data["run_id"] == run_id {
                let done = e.data["status"] == status;
                seen.push(e);
                if done {
                    return seen;
                }
            }
        }
    }
}

/// Waits until `check` returns `Some`, polling every 50 ms, failing after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(deadline, check)
        .await
        .unwrap_or_else(|| panic!("timed out after {deadline:?} waiting for {what}"))
}

/// Like [`eventually`], but returns `None` at the deadline so the caller can show what it saw.
pub async fn within<T, F, Fut>(deadline: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if start.elapsed() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The steps of a `lead_call` run that connects, in order.
pub const LEAD_CALL_STEPS: [&str; 8] = [
    "intake",
    "build_context",
    "route",
    "place_call",
    "await_call",
    "analyze",
    "score",
    "follow_up",
];

/// Tasks in apalis' queue that are due and not finished.
pub async fn due_tasks(db: &switchboard_engine::Db) -> i64 {
    let sql = match db {
        switchboard_engine::Db::Sqlite(_) => {
            "SELECT COUNT(*) FROM Jobs WHERE status IN ('Pending', 'Queued', 'Running') \
             AND (run_at IS NULL OR run_at <= strftime('%s', 'now'))"
        }
        switchboard_engine::Db::Postgres(_) => {
            "SELECT COUNT(*) FROM apalis.jobs WHERE status IN ('Pending', 'Queued', 'Running') AND run_at <= now()"
        }
    };
    db.fetch_one::<(i64,)>(switchboard_engine::store::Q::new(sql))
        .await
        .expect("count due tasks")
        .0
}

/// Waits until every due task has been handled: after this, an effect that queued a task (say,
/// a webhook that wrongly resumed a run) has run its course.
pub async fn wait_until_queue_idle(db: &switchboard_engine::Db) {
    eventually(
        "the queue to have no due task",
        Duration::from_secs(30),
        || async { (due_tasks(db).await == 0).then_some(()) },
    )
    .await
}

/// A fresh folder of business folders (`SWITCHBOARD_BUSINESSES_DIR`) holding one business `id`:
/// the demo business' `business.toml` with each `(from, to)` of `edits` replaced (the id is set
/// already), and its script.
pub fn demo_variant(id: &str, edits: &[(&str, &str)]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sb-{id}-{}", uuid::Uuid::now_v7().simple()));
    let business = dir.join(id);
    std::fs::create_dir_all(&business).unwrap();
    let mut toml = include_str!("../../scripts/demo/business.toml")
        .replace("id = \"demo\"", &format!("id = \"{id}\""));
    for (from, to) in edits {
        assert!(toml.contains(from), "the demo business has no {from:?}");
        toml = toml.replace(from, to);
    }
    std::fs::write(business.join("business.toml"), toml).unwrap();
    std::fs::write(
        business.join("policy.rhai"),
        include_str!("../../scripts/demo/policy.rhai"),
    )
    .unwrap();
    dir
}

/// A lead body for the demo business, steered by `sim`.
pub fn lead(sim: Value) -> Value {
    json!({ "business": "demo", "name": "Ada Lovelace", "phone": "+14155552671", "sim": sim })
}

impl TestApp {
    /// `POST /api/v1/leads`.
    pub async fn post_lead(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/v1/leads", self.address))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Posts a lead and returns `(lead_id, run_id)`; panics unless 201.
    pub async fn create_lead(&self, sim: Value) -> (String, String) {
        self.create_lead_with(&lead(sim)).await
    }

    /// `GET` a path, returning the response as it came.
    pub async fn get_response(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap()
    }

    /// `GET` a path, returning status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self.get_response(path).await;
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `POST` a path with an empty JSON body.
    pub async fn post(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.address))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `DELETE` a path, returning status and JSON body (`null` when empty).
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .delete(format!("{}{path}", self.address))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Posts a correctly signed, current transcription webhook for `conversation_id` (interested
    /// or declining), as the provider would when the call ends.
    pub async fn answer_call(&self, conversation_id: &str, interested: bool) -> (u16, Value) {
        let body = transcription_webhook(conversation_id, interested);
        self.post_webhook(&body, WEBHOOK_SECRET, chrono::Utc::now().timestamp())
            .await
    }

    /// Sends `body` as JSON with `method` to `path`, returning status and JSON body.
    pub async fn send(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        self.send_with(&self.client, method, path, Some(body)).await
    }

    /// Sends `body` (if any) as JSON with `method` to `path` through `client` (say, one with
    /// another key, or none), returning status and JSON body (`null` when empty).
    pub async fn send_with(
        &self,
        client: &reqwest::Client,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut request = client.request(method, format!("{}{path}", self.address));
        if let Some(body) = body {
            request = request.json(body);
        }
        let resp = request.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Creates an API key for `business` as the operator; returns `(key id, key)`.
    pub async fn create_key(&self, business: &str) -> (String, String) {
        let body = json!({ "name": format!("{business} test key"), "business": business });
        let (status, key) = self.send("POST", "/api/v1/keys", &body).await;
        assert_eq!(status, 201, "{key}");
        (
            key["id"].as_str().unwrap().to_owned(),
            key["key"].as_str().unwrap().to_owned(),
        )
    }

    /// `PUT /api/v1/businesses/{business}/script`.
    pub async fn put_script(&self, business: &str, source: &str) -> (u16, Value) {
        self.send(
            "PUT",
            &format!("/api/v1/businesses/{business}/script"),
            &json!({ "source": source }),
        )
        .await
    }

    /// Posts `body` as `content_type` to `/api/v1/leads/import?{query}`.
    pub async fn upload_import(
        &self,
        query: &str,
        content_type: &str,
        body: String,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}/api/v1/leads/import?{query}", self.address))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Uploads a file as [`TestApp::upload_import`] does, expects `202` and returns the import
    /// once it ended.
    pub async fn import_file(&self, query: &str, content_type: &str, body: String) -> Value {
        let resp = self.upload_import(query, content_type, body).await;
        assert_eq!(resp.status(), 202);
        let id = resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.import_done(&id).await
    }

    /// Rows in `table`.
    pub async fn count(&self, table: &str) -> i64 {
        let (n,): (i64,) = self
            .engine
            .db()
            .fetch_one(switchboard_engine::store::Q::new(format!(
                "SELECT COUNT(*) FROM {table}"
            )))
            .await
            .unwrap();
        n
    }

    /// Waits (up to two minutes) until import `id` is no longer processing and returns it.
    pub async fn import_done(&self, id: &str) -> Value {
        eventually("the import to finish", Duration::from_secs(120), || async {
            let (status, import) = self.get(&format!("/api/v1/imports/{id}")).await;
            assert_eq!(status, 200, "{import}");
            (import["status"] != "processing").then_some(import)
        })
        .await
    }

    /// Posts a lead body and returns `(lead_id, run_id)`; panics unless 201.
    pub async fn create_lead_with(&self, body: &Value) -> (String, String) {
        let resp = self.post_lead(body).await;
        assert_eq!(
            resp.status(),
            201,
            "lead not created: {}",
            resp.text().await.unwrap()
        );
        let body: Value = resp.json().await.unwrap();
        (
            body["lead"]["id"].as_str().unwrap().to_owned(),
            body["run"]["id"].as_str().unwrap().to_owned(),
        )
    }

    /// Where `/queue` redirects: the apalis queue view's base URL.
    pub async fn queue_board_url(&self) -> String {
        let no_redirects = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = no_redirects
            .get(format!("{}/queue", self.address))
            .bearer_auth(OPERATOR_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 307, "/queue redirects to the queue view");
        resp.headers()["location"].to_str().unwrap().to_owned()
    }

    /// `GET /api/v1/runs/{id}`.
    pub async fn run(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/v1/runs/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until the run's status is `status`; on timeout the panic shows the run as last seen.
    pub async fn wait_for_status(&self, id: &str, status: &str, deadline: Duration) -> Value {
        let start = Instant::now();
        loop {
            let run = self.run(id).await;
            if run["status"] == status {
                return run;
            }
            assert!(
                start.elapsed() < deadline,
                "run {id} not {status} after {deadline:?}: {run:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A lead whose call connects but whose webhook never comes, once its run waits on it:
    /// `(lead_id, run_id, conversation_id)`.
    pub async fn lead_awaiting_call(&self) -> (String, String, String) {
        let (lead_id, run_id) = self
            .create_lead(json!({"outcome": "interested", "deliver_webhook": false}))
            .await;
        let conversation_id = self.wait_for_call_wait(&run_id).await;
        (lead_id, run_id, conversation_id)
    }

    /// `POST /api/v1/runs/{id}/resume`, as an operator ends a run's wait by hand: must answer
    /// `200`; returns the run as answered.
    pub async fn resume(&self, run_id: &str) -> Value {
        let (status, run) = self.post(&format!("/api/v1/runs/{run_id}/resume")).await;
        assert_eq!(status, 200, "{run}");
        run
    }

    /// Makes `business` call back an hour after a call that was not answered (the shipped
    /// businesses wait seconds), so a test can act while its run waits without racing the timer.
    pub async fn call_back_after_an_hour(&self, business: &str) {
        let path = format!("/api/v1/businesses/{business}/config");
        let patch = json!({"calling": {"retry_after_secs": 3600}});
        let (status, answer) = self.send("PATCH", &path, &patch).await;
        assert_eq!(status, 200, "{answer}");
    }

    /// Waits until the run's first follow-up is decided (the run then ends or waits to call
    /// again) and returns the run.
    pub async fn first_follow_up_decided(&self, run_id: &str) -> Value {
        eventually(
            "the follow-up to be decided",
            Duration::from_secs(30),
            || async {
                let run = self.run(run_id).await;
                let decided = attempts(&run, "follow_up")
                    .first()
                    .is_some_and(|a| a["status"] == "succeeded");
                decided.then_some(run)
            },
        )
        .await
    }

    /// Waits until the run waits on a call webhook; returns the conversation id.
    pub async fn wait_for_call_wait(&self, id: &str) -> String {
        eventually(
            "the run to wait on its call",
            Duration::from_secs(20),
            || async {
                let run = self.run(id).await;
                (run["status"] == "waiting"
                    && run["wait"]["kind"] == switchboard_workflows::lead_call::CALL_EVENT)
                    .then(|| run["wait"]["key"].as_str().unwrap().to_owned())
            },
        )
        .await
    }

    /// Posts an ElevenLabs webhook body signed with `secret` at `timestamp`.
    pub async fn post_webhook(&self, body: &Value, secret: &str, timestamp: i64) -> (u16, Value) {
        self.post_webhook_raw(serde_json::to_vec(body).unwrap(), secret, timestamp)
            .await
    }

    /// Posts raw ElevenLabs webhook bytes signed with `secret` at `timestamp`.
    pub async fn post_webhook_raw(
        &self,
        raw: Vec<u8>,
        secret: &str,
        timestamp: i64,
    ) -> (u16, Value) {
        let signature = switchboard_workflows::providers::elevenlabs::sign(secret, timestamp, &raw);
        let resp = self
            .client
            .post(format!("{}/api/v1/webhooks/elevenlabs", self.address))
            .header("ElevenLabs-Signature", signature)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Stops the workers gracefully.
    pub async fn stop_workers(&mut self) {
        if let Some(w) = self.workers.take() {
            w.stop().await;
        }
    }

    /// Kills the workers mid-flight, as a crash would.
    pub fn crash_workers(&mut self) {
        if let Some(w) = self.workers.take() {
            w.abort();
        }
    }

    /// Starts a fresh set of workers (new unique name).
    pub fn start_workers(&mut self) {
        assert!(self.workers.is_none(), "workers already running");
        self.workers = Some(self.engine.start_workers(self.worker_options.clone()));
    }
}

/// A signed-able `post_call_transcription` body for a conversation.
pub fn transcription_webhook(conversation_id: &str, interested: bool) -> Value {
    let (user, summary) = if interested {
        (
            "Yes, I'm very interested, we have a budget of 800K and want to move this month. Please book a showing.",
            "Interested, wants a showing.",
        )
    } else {
        ("No thanks, I'm not interested.", "Declined.")
    };
    json!({
        "type": "post_call_transcription",
        "event_timestamp": chrono::Utc::now().timestamp(),
        "data": {
            "agent_id": "agent_demo_realty",
            "conversation_id": conversation_id,
            "status": "done",
            "transcript": [
                {"role": "agent", "message": "Hi Ada, this is Riley from Demo Realty.", "time_in_call_secs": 0},
                {"role": "user", "message": user, "time_in_call_secs": 4}
            ],
            "metadata": {"start_time_unix_secs": chrono::Utc::now().timestamp(), "call_duration_secs": 42, "termination_reason": "end_call tool was called"},
            "analysis": {"call_successful": "success", "transcript_summary": summary}
        }
    })
}

/// The attempts of step `name` in a run's timeline that were put off at least once.
pub fn deferred<'a>(run: &'a Value, name: &str) -> Vec<&'a Value> {
    attempts(run, name)
        .into_iter()
        .filter(|a| a["deferrals"].as_i64().unwrap_or(0) > 0)
        .collect()
}

/// Why attempt `a` was last put off (empty if it never was).
pub fn deferred_because(a: &Value) -> &str {
    a["deferred_because"].as_str().unwrap_or_default()
}

/// The attempts of step `name` in a run's timeline.
pub fn attempts<'a>(run: &'a Value, name: &str) -> Vec<&'a Value> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == name)
        .collect()
}

/// Step names of a run, in order.
pub fn step_names(run: &Value) -> Vec<String> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}
