//! Fake ElevenLabs, Retell and OpenAI servers for tests that configure real provider keys: the simulator
//! served on its own port behind a fault injector (outages, lost answers), recording what the
//! clients sent.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use switchboard_api::config::Config;
use switchboard_simulator::Simulator;

use crate::WEBHOOK_SECRET;

/// The keys the fakes expect.
pub const ELEVENLABS_KEY: &str = "xi-test-key";
/// See [`ELEVENLABS_KEY`].
pub const OPENAI_KEY: &str = "sk-test-key";
/// See [`ELEVENLABS_KEY`]; Retell also signs its webhooks with it.
pub const RETELL_KEY: &str = "key_test_retell_0123456789";

/// What the fakes do wrong, switchable while a test runs.
#[derive(Default)]
pub struct Faults {
    /// Every request is answered 500.
    pub outage: AtomicBool,
    /// Outbound calls are refused with 422 (a validation error: not retried).
    pub reject_calls: AtomicBool,
    /// Analyses are refused with 429 `insufficient_quota` (the account's billing lapsed).
    pub quota_exhausted: AtomicBool,
    /// An accepted call's answer is held this long (ms) after the call was placed, so a client
    /// with a shorter timeout never learns the call's id.
    pub answer_delay_ms: AtomicU64,
    /// Requests answered 500 because of `outage`.
    pub outage_answers: AtomicUsize,
    /// How long a steered call lasts before its webhook (ms; 0: 200).
    pub call_ms: AtomicU64,
    /// `(path, API key header)` of every request, in order.
    pub requests: Mutex<Vec<(String, String)>>,
    /// Random faults on every authenticated request, when set.
    pub chaos: Mutex<Option<Chaos>>,
    /// The faults `chaos` injected.
    pub injected: Injected,
    /// Calls go with these outcomes in turn, set as `sim_outcome` (real clients never send
    /// simulator steering); empty: the simulator picks.
    pub outcomes: Mutex<Vec<&'static str>>,
    calls_steered: AtomicUsize,
}

/// Chances, in per mille, that a provider request gets a fault.
#[derive(Clone, Copy, Debug)]
pub struct Chaos {
    /// Answered 503 without being handled.
    pub server_error: u32,
    /// Answered 429 `rate_limit_exceeded` with `retry-after: 1`, without being handled.
    pub rate_limited: u32,
    /// Handled (a call is placed), but answered only after `hold_ms`: the client times out.
    pub timeout: u32,
    /// How long a timed-out answer is held (longer than the client's timeout).
    pub hold_ms: u64,
}

/// Tallies of injected faults.
#[derive(Default, Debug)]
pub struct Injected {
    pub server_errors: AtomicUsize,
    pub rate_limited: AtomicUsize,
    pub timeouts: AtomicUsize,
}

impl Injected {
    /// All injected faults.
    pub fn total(&self) -> usize {
        self.server_errors.load(Ordering::SeqCst)
            + self.rate_limited.load(Ordering::SeqCst)
            + self.timeouts.load(Ordering::SeqCst)
    }
}

/// What chaos does to one request.
enum Fault {
    None,
    ServerError,
    RateLimited,
    Timeout(Duration),
}

impl Faults {
    /// Draws this request's fault.
    fn draw(&self) -> Fault {
        let Some(chaos) = *self.chaos.lock().unwrap() else {
            return Fault::None;
        };
        let roll = rand::random::<u32>() % 1000;
        let tally = |counter: &AtomicUsize| counter.fetch_add(1, Ordering::SeqCst);
        if roll < chaos.server_error {
            tally(&self.injected.server_errors);
            Fault::ServerError
        } else if roll < chaos.server_error + chaos.rate_limited {
            tally(&self.injected.rate_limited);
            Fault::RateLimited
        } else if roll < chaos.server_error + chaos.rate_limited + chaos.timeout {
            tally(&self.injected.timeouts);
            Fault::Timeout(Duration::from_millis(chaos.hold_ms))
        } else {
            Fault::None
        }
    }

    /// The outcome of the next steered call.
    fn next_outcome(&self) -> Option<&'static str> {
        let cycle = self.outcomes.lock().unwrap();
        if cycle.is_empty() {
            return None;
        }
        let n = self.calls_steered.fetch_add(1, Ordering::SeqCst);
        Some(cycle[n % cycle.len()])
    }
}

/// The fake providers.
pub struct FakeProviders {
    /// `http://127.0.0.1:<port>`: ElevenLabs at `/elevenlabs`, OpenAI at `/openai`.
    pub base_url: String,
    /// The simulator behind the injector.
    pub sim: Simulator,
    /// The switches.
    pub faults: Arc<Faults>,
}

impl FakeProviders {
    /// Starts the fakes; point [`FakeProviders::configure`] at them, then tell them the app's
    /// webhook URL with [`FakeProviders::post_webhooks_to`].
    pub async fn start() -> FakeProviders {
        let sim = Simulator::new(String::new(), WEBHOOK_SECRET.into());
        let faults = Arc::new(Faults::default());
        let app = sim
            .router()
            .layer(middleware::from_fn_with_state(faults.clone(), inject));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fakes");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        FakeProviders {
            base_url,
            sim,
            faults,
        }
    }

    /// Real-looking provider configuration: keys set, base URLs at the fakes.
    pub fn configure(&self, config: &mut Config) {
        config.elevenlabs_api_key = Some(ELEVENLABS_KEY.into());
        config.elevenlabs_base_url = format!("{}/elevenlabs", self.base_url);
        config.openai_api_key = Some(OPENAI_KEY.into());
        config.openai_base_url = format!("{}/openai", self.base_url);
        config.retell_api_key = Some(RETELL_KEY.into());
        config.retell_base_url = format!("{}/retell", self.base_url);
    }

    /// The same configuration for a child process, as environment variables.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ELEVENLABS_API_KEY", ELEVENLABS_KEY.to_owned()),
            (
                "ELEVENLABS_BASE_URL",
                format!("{}/elevenlabs", self.base_url),
            ),
            ("ELEVENLABS_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
            ("OPENAI_API_KEY", OPENAI_KEY.to_owned()),
            ("OPENAI_BASE_URL", format!("{}/openai", self.base_url)),
            ("RETELL_API_KEY", RETELL_KEY.to_owned()),
            ("RETELL_BASE_URL", format!("{}/retell", self.base_url)),
        ]
    }

    /// Webhooks go to the app at `address`.
    pub fn post_webhooks_to(&self, address: &str) {
        self.sim
            .set_webhook_url(format!("{address}/api/v1/webhooks/elevenlabs"));
        self.sim
            .set_retell_webhook_url(format!("{address}/api/v1/webhooks/retell"));
    }

    /// Every call connects with this outcome (`interested`, `no_answer`…).
    pub fn set_outcome(&self, outcome: &'static str) {
        *self.faults.outcomes.lock().unwrap() = vec![outcome];
    }

    /// Switches the outage on or off.
    pub fn set_outage(&self, on: bool) {
        self.faults.outage.store(on, Ordering::SeqCst);
    }

    /// Outbound-call requests received (refused ones included), at either voice provider.
    pub fn call_requests(&self) -> usize {
        self.requests_to("outbound-call") + self.requests_to("create-phone-call")
    }

    /// Requests whose path contains `fragment`.
    pub fn requests_to(&self, fragment: &str) -> usize {
        let requests = self.faults.requests.lock().unwrap();
        requests
            .iter()
            .filter(|(p, _)| p.contains(fragment))
            .count()
    }
}

async fn inject(State(faults): State<Arc<Faults>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let key = ["xi-api-key", "authorization"]
        .iter()
        .find_map(|h| request.headers().get(*h))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    faults
        .requests
        .lock()
        .unwrap()
        .push((path.clone(), key.clone()));
    let expected = if path.starts_with("/openai") {
        format!("Bearer {OPENAI_KEY}")
    } else if path.starts_with("/retell") {
        format!("Bearer {RETELL_KEY}")
    } else {
        ELEVENLABS_KEY.to_owned()
    };
    if key != expected {
        let body = json!({"detail": {"type": "authentication_error", "code": "invalid_api_key",
            "message": "Invalid API key"}});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    if faults.outage.load(Ordering::SeqCst) {
        faults.outage_answers.fetch_add(1, Ordering::SeqCst);
        let body = json!({"detail": {"type": "internal_error", "message": "injected outage"}});
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
    }
    let hold = match faults.draw() {
        Fault::None => None,
        Fault::ServerError => {
            let body = json!({"detail": {"status": "service_unavailable",
                "message": "injected fault"}});
            return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
        }
        Fault::RateLimited => {
            let body = json!({"detail": {"status": "rate_limit_exceeded",
                "message": "injected fault: too many requests"}});
            let mut answer = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            answer
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
            return answer;
        }
        Fault::Timeout(hold) => Some(hold),
    };
    if path.ends_with("/chat/completions") && faults.quota_exhausted.load(Ordering::SeqCst) {
        let body = json!({"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
            "type": "insufficient_quota", "param": null, "code": "insufficient_quota"}});
        return (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    }
    let is_call = path.ends_with("outbound-call") || path.ends_with("create-phone-call");
    if is_call && faults.reject_calls.load(Ordering::SeqCst) {
        let body = json!({"detail": [{"loc": ["body", "agent_phone_number_id"],
            "msg": "phone number is not verified", "type": "value_error"}]});
        return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response();
    }
    let outcome = if is_call { faults.next_outcome() } else { None };
    let request = match (is_call, outcome) {
        (true, Some(outcome)) => {
            let call_ms = match faults.call_ms.load(Ordering::SeqCst) {
                0 => 200,
                ms => ms,
            };
            steer(request, outcome, call_ms).await
        }
        _ => request,
    };
    let response = next.run(request).await;
    let delay = faults.answer_delay_ms.load(Ordering::SeqCst);
    if is_call && delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if let Some(hold) = hold {
        tokio::time::sleep(hold).await;
    }
    response
}

/// Adds `sim_outcome` to a call request's dynamic variables.
async fn steer(request: Request, outcome: &str, call_ms: u64) -> Request {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let vars = [
        "/conversation_initiation_client_data/dynamic_variables",
        "/retell_llm_dynamic_variables",
    ]
    .into_iter()
    .find(|at| value.pointer(at).is_some());
    if let Some(vars) = vars
        .and_then(|at| value.pointer_mut(at))
        .and_then(Value::as_object_mut)
    {
        // Strings, as Retell takes them; the simulator reads both.
        vars.insert("sim_outcome".into(), outcome.into());
        vars.insert("sim_webhook_delay_ms".into(), call_ms.to_string().into());
    }
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    let mut request = Request::from_parts(parts, Body::from(bytes));
    request.headers_mut().remove("content-length");
    request
}
