//! Settings: every one is a flag and an environment variable, with defaults that run the whole
//! product locally on SQLite with the simulator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Shortest webhook or personalisation secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// Longest provider timeout: a provider step's own timeout (120 s) must cover a request and its
/// two quick retries.
pub const MAX_PROVIDER_TIMEOUT_SECS: u64 = 35;

/// Pool connections beyond one per step in flight, by default.
pub const DB_CONNECTIONS_BESIDES_STEPS: u32 = 16;

/// The fewest pool connections beyond one per step in flight that work (apalis' fetch,
/// heartbeat and acknowledgements, the change feed, an API request or two).
pub const MIN_DB_CONNECTIONS_BESIDES_STEPS: u32 = 6;

/// Settings of `switchboard serve`.
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// Address the HTTP server listens on.
    #[arg(long, env = "SWITCHBOARD_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// Database: `sqlite://FILE` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://switchboard.db")]
    pub database_url: String,

    /// Base URL this server is reachable at, used by the simulator to post webhooks back
    /// [default: http://<addr>].
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Steps executed at once by this process' workers.
    #[arg(long, env = "SWITCHBOARD_WORKER_CONCURRENCY", default_value_t = 16)]
    pub worker_concurrency: usize,

    /// How often workers poll for due timers and heartbeat, in milliseconds.
    #[arg(long, env = "SWITCHBOARD_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub poll_interval_ms: u64,

    /// Threads that run business scripts (off the async workers).
    #[arg(long, env = "SWITCHBOARD_SCRIPT_THREADS", default_value_t = 2)]
    pub script_threads: usize,

    /// Database connections in the pool [default: worker concurrency + 16; 16 with
    /// `--no-workers`]. Every step in flight holds one while it commits; the queue, the API and
    /// the change feed need the rest.
    #[arg(long, env = "SWITCHBOARD_DB_CONNECTIONS")]
    pub db_connections: Option<u32>,

    /// ElevenLabs API key; without it calls go to the built-in simulator.
    #[arg(long, env = "ELEVENLABS_API_KEY", hide_env_values = true)]
    pub elevenlabs_api_key: Option<String>,

    /// ElevenLabs API base URL.
    #[arg(
        long,
        env = "ELEVENLABS_BASE_URL",
        default_value = "https://api.elevenlabs.io"
    )]
    pub elevenlabs_base_url: String,

    /// Secret that signs ElevenLabs webhooks [default, simulator only: a random one stored once in
    /// the database, shared by every process].
    #[arg(long, env = "ELEVENLABS_WEBHOOK_SECRET", hide_env_values = true)]
    pub elevenlabs_webhook_secret: Option<String>,

    /// Retell API key (it also signs Retell's webhooks); without it the businesses that call
    /// through Retell call the built-in simulator.
    #[arg(long, env = "RETELL_API_KEY", hide_env_values = true)]
    pub retell_api_key: Option<String>,

    /// Retell API base URL.
    #[arg(
        long,
        env = "RETELL_BASE_URL",
        default_value = "https://api.retellai.com"
    )]
    pub retell_base_url: String,

    /// OpenAI API key; without it analysis goes to the built-in simulator.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<String>,

    /// OpenAI-compatible API base URL.
    #[arg(
        long,
        env = "OPENAI_BASE_URL",
        default_value = "https://api.openai.com"
    )]
    pub openai_base_url: String,

    /// Model used for call analysis.
    #[arg(long, env = "OPENAI_MODEL", default_value = "gpt-4o-mini")]
    pub openai_model: String,

    /// Calls in flight at once across every business, at most (your voice provider plan's
    /// concurrency); each business has its own cap as well (`calling.max_concurrent_calls`).
    /// Calls beyond it wait in line.
    #[arg(long, env = "SWITCHBOARD_MAX_CONCURRENT_CALLS", default_value_t = 20)]
    pub max_concurrent_calls: u32,

    /// Calls started a minute across every business, at most (your voice provider plan's rate);
    /// each business can set its own as well (`calling.max_calls_per_minute`). Unset: no limit.
    #[arg(long, env = "SWITCHBOARD_MAX_CALLS_PER_MINUTE")]
    pub max_calls_per_minute: Option<u32>,

    /// Seconds before a request to a provider gives up (at most 35).
    #[arg(long, env = "SWITCHBOARD_PROVIDER_TIMEOUT_SECS", default_value_t = 30)]
    pub provider_timeout_secs: u64,

    /// Consecutive provider failures (5xx, unreachable, timed out) that open its circuit
    /// breaker.
    #[arg(long, env = "SWITCHBOARD_BREAKER_THRESHOLD", default_value_t = 5)]
    pub breaker_threshold: u32,

    /// Seconds a provider's open circuit stays open before one probe request is let through.
    #[arg(long, env = "SWITCHBOARD_BREAKER_OPEN_SECS", default_value_t = 30)]
    pub breaker_open_secs: u64,

    /// Directory where call recordings (`post_call_audio` webhooks) are written as
    /// `<conversation id>.mp3`; without it recordings are acknowledged and dropped.
    #[arg(long, env = "SWITCHBOARD_CALL_AUDIO_DIR")]
    pub call_audio_dir: Option<PathBuf>,

    /// Directory of more business folders (each a `business.toml` and a `policy.rhai`, as in
    /// `scripts/`), loaded at start beside the shipped ones; a folder named like a shipped
    /// business replaces it.
    #[arg(long, env = "SWITCHBOARD_BUSINESSES_DIR")]
    pub businesses_dir: Option<PathBuf>,

    /// Secret ElevenLabs sends in the `X-Switchboard-Secret` header of inbound personalisation
    /// requests (`POST /api/v1/webhooks/elevenlabs/personalize`); the endpoint answers 404
    /// without it.
    #[arg(
        long,
        env = "ELEVENLABS_PERSONALIZATION_SECRET",
        hide_env_values = true
    )]
    pub elevenlabs_personalization_secret: Option<String>,

    /// Origins allowed to call the API from a browser (CORS), comma-separated, e.g.
    /// `https://app.example.com`; `*` allows any origin. Empty: none (same-origin only).
    #[arg(
        long,
        env = "SWITCHBOARD_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = ""
    )]
    pub cors_origins: Vec<String>,

    /// Address the built-in simulator listens on when it is used (port 0: any free port).
    #[arg(
        long,
        env = "SWITCHBOARD_SIMULATOR_ADDR",
        default_value = "127.0.0.1:0"
    )]
    pub simulator_addr: SocketAddr,

    /// Address of the apalis queue view (apalis-board) for operators; `/queue` on the main server
    /// redirects there. It has no authentication: keep it on a loopback or private address.
    #[arg(
        long,
        env = "SWITCHBOARD_QUEUE_BOARD_ADDR",
        default_value = "127.0.0.1:8081"
    )]
    pub queue_board_addr: SocketAddr,

    /// Seconds a request may take before it is answered `503 timeout` (the live event stream
    /// excepted).
    #[arg(long, env = "SWITCHBOARD_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// An operator key (at least 16 characters) for automation: stored (hashed) at start-up and
    /// usable as `Authorization: Bearer <key>`. Unset, the first start on an empty database
    /// creates an operator key and prints it once.
    #[arg(long, env = "SWITCHBOARD_OPERATOR_KEY", hide_env_values = true)]
    pub operator_key: Option<String>,

    /// Requests a second each API key may make (per API process); more get `429` with
    /// `Retry-After`.
    #[arg(long, env = "SWITCHBOARD_KEY_RATE_LIMIT", default_value_t = 50)]
    pub key_rate_limit: u32,

    /// Requests a second each client address may make to the unauthenticated routes (webhooks,
    /// dashboard sign-in), per API process.
    #[arg(long, env = "SWITCHBOARD_ADDRESS_RATE_LIMIT", default_value_t = 200)]
    pub address_rate_limit: u32,

    /// Also serve this process' Prometheus metrics on this address, without authentication (for
    /// `switchboard worker` processes, which serve no HTTP otherwise); keep it private. Unset: only
    /// the API's `GET /metrics` (operator key) serves them.
    #[arg(long, env = "SWITCHBOARD_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info,sqlx=warn")]
    pub log: String,

    /// Log lines as human-readable text or as JSON objects, one per line.
    #[arg(
        long,
        env = "SWITCHBOARD_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Sentry DSN: errors (failed runs, 5xx, panics) are reported there with their run, business
    /// and step. Unset: nothing is sent.
    #[arg(long, env = "SENTRY_DSN", hide_env_values = true)]
    pub sentry_dsn: Option<String>,

    /// Environment name on Sentry events (e.g. `production`).
    #[arg(long, env = "SENTRY_ENVIRONMENT")]
    pub sentry_environment: Option<String>,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people: one readable line per event.
    #[default]
    Text,
    /// For log pipelines: one JSON object per line, with the span fields.
    Json,
}

impl Config {
    /// How long a provider request may take.
    pub fn provider_timeout(&self) -> Duration {
        Duration::from_secs(self.provider_timeout_secs)
    }

    /// Steps this process runs at once: none without workers (`serve --no-workers`).
    fn steps_in_flight(&self, runs_workers: bool) -> u32 {
        if runs_workers {
            self.worker_concurrency as u32
        } else {
            0
        }
    }

    /// Connections in the database pool.
    pub fn db_connections(&self, runs_workers: bool) -> u32 {
        self.db_connections
            .unwrap_or(self.steps_in_flight(runs_workers) + DB_CONNECTIONS_BESIDES_STEPS)
    }

    /// The worker poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(50))
    }

    /// Rejects settings that cannot work, with a message naming the setting; the pool's size is
    /// checked against the workers only when this process runs them.
    pub fn validate(&self, runs_workers: bool) -> Result<(), String> {
        if !(self.database_url.starts_with("sqlite:") || self.database_url.starts_with("postgres"))
        {
            return Err(format!(
                "DATABASE_URL must be sqlite://… or postgres://… (got {:?})",
                self.database_url
            ));
        }
        if self.worker_concurrency == 0 {
            return Err("SWITCHBOARD_WORKER_CONCURRENCY must be at least 1".into());
        }
        for origin in self
            .cors_origins
            .iter()
            .filter(|o| !o.is_empty() && *o != "*")
        {
            if axum::http::HeaderValue::from_str(origin).is_err()
                || !(origin.starts_with("http://") || origin.starts_with("https://"))
            {
                return Err(format!(
                    "SWITCHBOARD_CORS_ORIGINS: {origin:?} is not an origin like https://app.example.com"
                ));
            }
        }
        if let Some(n) = self.db_connections
            && n < self.steps_in_flight(runs_workers) + MIN_DB_CONNECTIONS_BESIDES_STEPS
        {
            return Err(format!(
                "SWITCHBOARD_DB_CONNECTIONS ({n}) must be at least the worker concurrency ({}) + \
                 {MIN_DB_CONNECTIONS_BESIDES_STEPS}: every step in flight holds a connection, and \
                 with none left for the queue and the API the workers stall",
                self.worker_concurrency
            ));
        }
        if self.max_concurrent_calls == 0 || self.max_calls_per_minute == Some(0) {
            return Err(
                "SWITCHBOARD_MAX_CONCURRENT_CALLS and SWITCHBOARD_MAX_CALLS_PER_MINUTE must be at \
                 least 1"
                    .into(),
            );
        }
        if self.provider_timeout_secs == 0 || self.breaker_threshold == 0 {
            return Err(
                "SWITCHBOARD_PROVIDER_TIMEOUT_SECS and SWITCHBOARD_BREAKER_THRESHOLD must be at least 1"
                    .into(),
            );
        }
        if self.script_threads == 0 {
            return Err("SWITCHBOARD_SCRIPT_THREADS must be at least 1".into());
        }
        if self.key_rate_limit == 0 || self.address_rate_limit == 0 {
            return Err(
                "SWITCHBOARD_KEY_RATE_LIMIT and SWITCHBOARD_ADDRESS_RATE_LIMIT must be at least 1"
                    .into(),
            );
        }
        for (name, secret) in [
            ("SWITCHBOARD_OPERATOR_KEY", &self.operator_key),
            ("ELEVENLABS_WEBHOOK_SECRET", &self.elevenlabs_webhook_secret),
            (
                "ELEVENLABS_PERSONALIZATION_SECRET",
                &self.elevenlabs_personalization_secret,
            ),
        ] {
            if secret
                .as_deref()
                .is_some_and(|s| s.trim().len() < MIN_SECRET_LEN)
            {
                return Err(format!(
                    "{name} must be at least {MIN_SECRET_LEN} characters (an empty secret would \
                     let anyone in)"
                ));
            }
        }
        if self.provider_timeout_secs > MAX_PROVIDER_TIMEOUT_SECS {
            return Err(format!(
                "SWITCHBOARD_PROVIDER_TIMEOUT_SECS must be at most {MAX_PROVIDER_TIMEOUT_SECS} \
                 (a step allows a request and two quick retries)"
            ));
        }
        if self.elevenlabs_api_key.is_some() && self.elevenlabs_webhook_secret.is_none() {
            return Err("ELEVENLABS_WEBHOOK_SECRET is required with ELEVENLABS_API_KEY".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Config;

    #[derive(Parser)]
    struct Settings {
        #[command(flatten)]
        config: Config,
    }

    fn parse(args: &[&str]) -> Config {
        let all = std::iter::once("switchboard").chain(args.iter().copied());
        Settings::try_parse_from(all).expect("parses").config
    }

    #[test]
    fn the_pool_grows_with_the_worker_concurrency() {
        assert_eq!(parse(&[]).db_connections(true), 16 + 16);
        assert_eq!(
            parse(&["--worker-concurrency", "40"]).db_connections(true),
            56
        );
        assert_eq!(parse(&["--db-connections", "22"]).db_connections(true), 22);
        assert_eq!(
            parse(&["--worker-concurrency", "40"]).db_connections(false),
            16
        );
    }

    #[test]
    fn a_pool_too_small_for_the_workers_is_refused_with_the_setting_named() {
        let error = parse(&["--db-connections", "16"])
            .validate(true)
            .unwrap_err();
        assert!(error.contains("SWITCHBOARD_DB_CONNECTIONS (16)"), "{error}");
        assert!(parse(&["--db-connections", "22"]).validate(true).is_ok());
        // `serve --no-workers` runs no steps: a small pool serves the API.
        assert!(parse(&["--db-connections", "8"]).validate(false).is_ok());
        assert!(parse(&["--db-connections", "5"]).validate(false).is_err());
    }
}
