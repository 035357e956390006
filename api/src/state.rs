//! What every handler can reach: [`AppState`], built at start-up (`startup`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchboard_engine::{ChangeFeed, Engine};
use switchboard_workflows::policy::Policy;
use switchboard_workflows::providers::voice::Voices;

use crate::limits::RateLimits;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Engine,
    /// Run changes, live, for server-sent events.
    pub feed: ChangeFeed,
    /// The voice providers (each verifies and reads its own webhooks).
    pub voices: Voices,
    /// Where call recordings are written, if anywhere.
    pub call_audio_dir: Option<PathBuf>,
    /// Origins allowed to call the API from a browser.
    pub cors_origins: Arc<[String]>,
    /// Secret of inbound personalisation requests; the endpoint is off without it.
    pub personalization_secret: Option<Arc<str>>,
    /// Business decisions and the script host (validation, dry runs).
    pub policy: Arc<Policy>,
    /// Where the apalis queue view (apalis-board) is served; `/queue` redirects there.
    pub queue_board_url: Arc<str>,
    /// The name this process' workers run under (`/readyz` checks their heartbeat); `None`
    /// when it runs none.
    pub worker_name: Option<Arc<str>>,
    /// How long a request may take.
    pub request_timeout: Duration,
    /// Rate limits per API key and per client address.
    pub limits: Arc<RateLimits>,
    /// Whether the session cookie is marked `Secure` (the public URL is https).
    pub secure_cookies: bool,
}
