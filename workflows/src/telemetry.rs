//! The pipeline's metrics, named in one place and recorded through the `metrics` facade (a
//! no-op until the process installs a recorder): provider requests, circuit breakers, scripts.

/// Counter: requests to a provider by outcome: `ok` or the error's kind (`http_4xx`,
/// `http_429`, `http_5xx`, `transport`, `unreachable`, `decode`, `rejected`, `ambiguous` …).
pub const PROVIDER_REQUESTS: &str = "switchboard_provider_requests_total";
/// Gauge: a provider's circuit breaker in this process: 0 closed, 1 open, 2 half-open (probing).
pub const CIRCUIT_BREAKER_STATE: &str = "switchboard_circuit_breaker_state";
/// Counter: script hooks that failed (the business's defaults were used), by business and hook.
pub const SCRIPT_ERRORS: &str = "switchboard_script_errors_total";

/// One request to `provider` ended with `outcome`: `ok`, or its error's kind.
pub(crate) fn provider_request(provider: &'static str, outcome: &'static str) {
    metrics::counter!(PROVIDER_REQUESTS, "provider" => provider, "outcome" => outcome).increment(1);
}

/// `provider`'s breaker is now `state`.
pub(crate) fn breaker_state(provider: &'static str, state: BreakerState) {
    let value = match state {
        BreakerState::Closed => 0.0,
        BreakerState::Open => 1.0,
        BreakerState::HalfOpen => 2.0,
    };
    metrics::gauge!(CIRCUIT_BREAKER_STATE, "provider" => provider).set(value);
}

/// `business`'s script failed in `hook`.
pub(crate) fn script_error(business: &str, hook: &'static str) {
    metrics::counter!(SCRIPT_ERRORS, "business" => business.to_owned(), "hook" => hook)
        .increment(1);
}

/// The breaker's state, for logs, metrics and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Requests fail at once until the cool-down ends.
    Open,
    /// One probe request is under way; its result closes or reopens the circuit.
    HalfOpen,
}
