//! Settings: every one is a flag and an environment variable, with defaults that run the whole
//! product locally on SQLite with the simulator.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

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

    /// Database connections in the pool.
    #[arg(long, env = "SWITCHBOARD_DB_CONNECTIONS", default_value_t = 16)]
    pub db_connections: u32,

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

    /// Secret that signs ElevenLabs webhooks [default: random per start, shared with the simulator].
    #[arg(long, env = "ELEVENLABS_WEBHOOK_SECRET", hide_env_values = true)]
    pub elevenlabs_webhook_secret: Option<String>,

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

    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info,sqlx=warn")]
    pub log: String,
}

impl Config {
    /// The worker poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(50))
    }

    /// Rejects settings that cannot work, with a message naming the setting.
    pub fn validate(&self) -> Result<(), String> {
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
        if self.script_threads == 0 {
            return Err("SWITCHBOARD_SCRIPT_THREADS must be at least 1".into());
        }
        if self.elevenlabs_api_key.is_some() && self.elevenlabs_webhook_secret.is_none() {
            return Err("ELEVENLABS_WEBHOOK_SECRET is required with ELEVENLABS_API_KEY".into());
        }
        Ok(())
    }
}
