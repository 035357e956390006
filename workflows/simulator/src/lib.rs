//! Built-in simulated voice (ElevenLabs, Retell) and LLM (OpenAI) providers speaking the real
//! wire formats.
//!
//! Used when no provider keys are configured: the simulator serves on its own local port
//! ([`Simulator::serve`]) as a fake ElevenLabs, Retell and OpenAI, and the real clients
//! ([`ElevenLabsClient`](switchboard_workflows::providers::elevenlabs::ElevenLabsClient),
//! Retell's, [`OpenAiClient`](switchboard_workflows::providers::openai::OpenAiClient))
//! talk to `http://<sim>/elevenlabs`, `http://<sim>/retell` and `http://<sim>/openai`, so the
//! whole pipeline runs on the production code path (retries, circuit breaker and all). A placed
//! call later posts a real signed webhook back to the server (`ElevenLabs-Signature`, or Retell's
//! `x-retell-signature`).
//!
//! Steering, through the call's dynamic variables (strings, numbers and booleans all accepted):
//! - `sim_outcome`: one of [`SimOutcome`]'s names (`interested`, `not_interested`, `no_answer`,
//!   `busy`, `voicemail`, `failed`, `opt_out`). Without it the outcome is a realistic deterministic mix
//!   hashed from (`user_id`, `call_attempt`): ~45% interested, 20% not interested, 15% no answer,
//!   7% busy, 8% voicemail, 5% failed. A simulated `failed` is transient (a retry of the same
//!   attempt connects), and from `call_attempt` 3 on (1 = first call; missing means 1) only
//!   connected conversations are picked, so demo runs terminate quickly.
//! - `sim_deliver_webhook` (default true): false simulates a lost webhook; the conversation still
//!   ends (and `GET conversations/{id}` shows it) so reconciliation can be exercised.
//! - `sim_webhook_delay_ms` (default 300): how long the call "lasts" before it ends. A connected
//!   call is then `processing` (as long again, at most 100 ms) before it is `done` and announced.
//!
//! Like a provider plan, the simulator can cap active calls ([`Simulator::set_concurrency_limit`]):
//! a call beyond the cap is refused with 429 `concurrent_limit_exceeded` and `retry-after: 1`.
//!
//! The simulated LLM derives a [`CallAnalysis`](switchboard_workflows::providers::openai::CallAnalysis) from
//! keywords in the customer's lines, and honours `max_completion_tokens` (an answer takes its
//! length / 4 tokens). Markers in the user message force the other outcomes: `[sim:refuse]`,
//! `[sim:truncate]` (the answer runs long: cut off at a first analysis' budget, complete with
//! twice as many), `[sim:filter]` (`finish_reason: content_filter`), `[sim:error]` (HTTP 500),
//! `[sim:quota]` (HTTP 429 `insufficient_quota`).
//!
//! Layout: this module holds the public types, steering and shared state; `voice` is the
//! ElevenLabs side (calls, conversations, webhooks), `agents` its agents API and OpenAI's model
//! list, `retell` the Retell side, and `llm` the OpenAI analyses.

mod agents;
mod call;
mod llm;
mod retell;

mod voice;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::{get, post};

pub use switchboard_workflows::sim_steer::{
    SimOutcome, SimSteer, VAR_DELIVER_WEBHOOK, VAR_OUTCOME, VAR_WEBHOOK_DELAY_MS,
};

use switchboard_workflows::providers::elevenlabs::{self as el, Conversation};
use switchboard_workflows::providers::openai;
use switchboard_workflows::providers::voice::Line;

/// Dynamic variable with the attempt number (1 for the first call).
pub const VAR_CALL_ATTEMPT: &str = "call_attempt";
/// Dynamic variable with the name the agent greets.
pub const VAR_CUSTOMER_NAME: &str = "customer_name";

const DEFAULT_DELAY_MS: u64 = 300;
const MAX_DELAY_MS: u64 = 10 * 60 * 1000;
/// Webhook deliveries are tried this often, 200 ms apart at first, doubling up to 2 s: about 13 s
/// in all, so a server restarting in that time still gets them.
const WEBHOOK_ATTEMPTS: u32 = 10;
const WEBHOOK_BACKOFF: Duration = Duration::from_millis(200);
const WEBHOOK_BACKOFF_MAX: Duration = Duration::from_secs(2);
const MAX_STORED_CONVERSATIONS: usize = 10_000;

/// The simulated providers. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    webhook_url: Mutex<String>,
    retell_webhook_url: Mutex<String>,
    secret: String,
    http: reqwest::Client,
    state: Mutex<SimState>,
    /// Notified whenever a call finishes (see [`Simulator::finish_calls`]).
    call_finished: tokio::sync::Notify,
}

#[derive(Default)]
struct SimState {
    /// Calls accepted and not yet ended.
    active: usize,
    /// Calls whose end (and webhook) is not yet done, delivery included.
    unfinished: usize,
    /// The most calls ever active at once.
    max_active: usize,
    /// Like a provider plan: more active calls than this are refused with 429
    /// `concurrent_limit_exceeded`.
    limit: Option<usize>,
    total: usize,
    per_lead: HashMap<String, usize>,
    per_attempt: HashMap<(String, String), usize>,
    /// Calls accepted (conversations started) per (lead, call attempt).
    placed: HashMap<(String, String), usize>,
    /// Conversations whose webhook the server acknowledged with a 2xx.
    delivered: Vec<String>,
    conversations: HashMap<String, Conversation>,
    order: VecDeque<String>,
    /// ElevenLabs agents by id.
    agents: std::collections::BTreeMap<String, switchboard_workflows::providers::elevenlabs::Agent>,
    /// Retell calls by id, oldest first in `retell_order`.
    retell_calls: HashMap<String, switchboard_workflows::providers::retell::Call>,
    retell_order: VecDeque<String>,
}

impl Simulator {
    /// `webhook_url` is the full URL of the server's `POST /api/v1/webhooks/elevenlabs`;
    /// `secret` signs webhooks.
    pub fn new(webhook_url: String, secret: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .no_proxy() // the webhook goes back to our own server
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let state = Mutex::new(SimState::default());
        Self {
            inner: Arc::new(Inner {
                webhook_url: Mutex::new(webhook_url),
                retell_webhook_url: Mutex::new(String::new()),
                secret,
                http,
                state,
                call_finished: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Routes: `POST /elevenlabs/v1/convai/twilio/outbound-call` (and the SIP-trunk variant,
    /// which answers a `sip_call_id`), `GET /elevenlabs/v1/convai/conversations/{id}`, the
    /// agents (`POST …/agents/create`, `GET …/agents`, `GET|PATCH|DELETE …/agents/{id}`),
    /// `GET /openai/v1/models`,
    /// `POST /retell/v2/create-phone-call`, `GET /retell/v2/get-call/{id}`,
    /// `POST /openai/v1/chat/completions`.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                &format!("/elevenlabs{}", el::OUTBOUND_CALL_PATH),
                post(|sim: State<Simulator>, body: Bytes| {
                    voice::outbound_call(sim, body, Line::Twilio)
                }),
            )
            .route(
                &format!("/elevenlabs{}", el::SIP_OUTBOUND_CALL_PATH),
                post(|sim: State<Simulator>, body: Bytes| {
                    voice::outbound_call(sim, body, Line::Sip)
                }),
            )
            .route(
                &format!("/elevenlabs{}/{{id}}", el::CONVERSATIONS_PATH),
                get(voice::get_conversation),
            )
            .route(
                &format!("/elevenlabs{}", el::CREATE_AGENT_PATH),
                post(agents::create),
            )
            .route(
                &format!("/elevenlabs{}", el::AGENTS_PATH),
                get(agents::list),
            )
            .route(
                &format!("/elevenlabs{}/{{id}}", el::AGENTS_PATH),
                get(agents::get)
                    .patch(agents::update)
                    .delete(agents::delete),
            )
            .route(
                &format!("/openai{}", openai::MODELS_PATH),
                get(agents::models),
            )
            .route(
                &format!(
                    "/retell{}",
                    switchboard_workflows::providers::retell::CREATE_CALL_PATH
                ),
                post(retell::create_phone_call),
            )
            .route(
                &format!(
                    "/retell{}/{{id}}",
                    switchboard_workflows::providers::retell::GET_CALL_PATH
                ),
                get(retell::get_call),
            )
            .route(
                &format!("/openai{}", openai::CHAT_COMPLETIONS_PATH),
                post(llm::chat_completions),
            )
            .with_state(self.clone())
    }

    /// Posts later webhooks to `url` instead (a simulator started before the server it serves).
    pub fn set_webhook_url(&self, url: String) {
        *self
            .inner
            .webhook_url
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = url;
    }

    /// Posts Retell's webhooks to `url` (the server's `POST /api/v1/webhooks/retell`).
    pub fn with_retell_webhook_url(self, url: String) -> Self {
        self.set_retell_webhook_url(url);
        self
    }

    /// Posts later Retell webhooks to `url` instead.
    pub fn set_retell_webhook_url(&self, url: String) {
        *self
            .inner
            .retell_webhook_url
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = url;
    }

    fn retell_webhook_url(&self) -> String {
        self.inner
            .retell_webhook_url
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn webhook_url(&self) -> String {
        self.inner
            .webhook_url
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Serves the simulator on `addr` (port 0: any free port) in the background, for as long as
    /// the runtime lives; returns its base URL.
    pub async fn serve(&self, addr: std::net::SocketAddr) -> std::io::Result<String> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let router = self.router();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "the simulator stopped serving");
            }
        });
        Ok(format!("http://{local}"))
    }

    /// How many outbound-call requests the simulator received for this lead (keyed by the
    /// request's `user_id`).
    pub fn calls_for(&self, lead_id: &str) -> usize {
        self.state().per_lead.get(lead_id).copied().unwrap_or(0)
    }

    /// Total outbound-call requests received.
    pub fn total_calls(&self) -> usize {
        self.state().total
    }

    /// Refuses calls beyond `limit` active at once with 429 `concurrent_limit_exceeded`, as a
    /// provider plan does (`None`: no limit, the default).
    pub fn set_concurrency_limit(&self, limit: Option<usize>) {
        self.state().limit = limit;
    }

    /// Calls accepted and not yet ended.
    pub fn active_calls(&self) -> usize {
        self.state().active
    }

    /// The most calls that were ever active at once.
    pub fn max_active_calls(&self) -> usize {
        self.state().max_active
    }

    /// Takes a line for a new call, unless the concurrency limit is reached.
    fn start_call(&self) -> bool {
        let mut state = self.state();
        if state.limit.is_some_and(|limit| state.active >= limit) {
            return false;
        }
        state.active += 1;
        state.max_active = state.max_active.max(state.active);
        true
    }

    /// Waits until every call placed so far has ended and its webhook was delivered (or given
    /// up), for at most `within`; false if some had not. A stopping process calls it so that the
    /// calls it placed are not left without their webhook, as a real provider's would not be.
    pub async fn finish_calls(&self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // Registered before the check, so a call finishing in between still wakes us.
            let finished = self.inner.call_finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            if self.state().unfinished == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                return false;
            }
        }
    }

    fn call_unfinished(&self) {
        self.state().unfinished += 1;
    }

    fn call_finished(&self) {
        {
            let mut state = self.state();
            state.unfinished = state.unfinished.saturating_sub(1);
        }
        self.inner.call_finished.notify_waiters();
    }

    fn end_call(&self) {
        let mut state = self.state();
        state.active = state.active.saturating_sub(1);
    }

    fn state(&self) -> MutexGuard<'_, SimState> {
        // Only counters and a cache live here: after a panic elsewhere, keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Calls accepted (each a conversation started) per `(lead id, call attempt)`: more than one
    /// for an attempt means it dialled the person twice.
    pub fn calls_placed_per_attempt(&self) -> HashMap<(String, String), usize> {
        self.state().placed.clone()
    }

    /// Conversations whose end-of-call webhook the server acknowledged (2xx), in order.
    pub fn delivered_webhooks(&self) -> Vec<String> {
        self.state().delivered.clone()
    }

    fn placed(&self, user_id: Option<&str>, attempt: &str) {
        let key = (user_id.unwrap_or_default().to_owned(), attempt.to_owned());
        *self.state().placed.entry(key).or_default() += 1;
    }

    fn delivered(&self, conversation_id: &str) {
        self.state().delivered.push(conversation_id.to_owned());
    }

    /// Counts a request; returns how many requests this (lead, attempt) has had, this one included.
    fn count(&self, user_id: Option<&str>, attempt: &str) -> usize {
        let mut state = self.state();
        state.total += 1;
        let Some(user) = user_id else { return 1 };
        *state.per_lead.entry(user.to_owned()).or_default() += 1;
        let seen = state
            .per_attempt
            .entry((user.to_owned(), attempt.to_owned()))
            .or_default();
        *seen += 1;
        *seen
    }
}
