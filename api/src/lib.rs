//! Switchboard's HTTP API and process start-up (`startup`), which the `switchboard` command
//! (crate `switchboard` in `cli/`) serves. Routes (`routes/`) only translate between HTTP and
//! the use cases of `switchboard_workflows` (intake, call events, backtests, …); around them live
//! access control (`access`, `tenant`), limits, the bulk import and dead letters.

pub mod access;
pub mod answers;
pub mod call_audio;
pub mod config;
pub mod error;
pub mod extract;
pub mod imports;
pub mod limits;
pub mod listener;
pub mod openapi;
pub mod prometheus;
pub mod provider_webhooks;
pub mod queue_board;
pub mod redact;
pub mod router;
pub mod routes;
pub mod startup;
pub mod state;
pub mod storable;
pub mod store;
pub mod tenant;
pub mod time;
