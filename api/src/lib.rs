//! Switchboard's HTTP API and process start-up: the `switchboard` binary's library. Routes
//! (`routes/`) only translate between HTTP and the use cases of `switchboard_workflows`
//! (intake, call events, backtests, …); around them live access control (`access`, `tenant`),
//! limits, the bulk import, dead letters, and the command-line tools.

pub mod access;
pub mod agents_cli;
pub mod answers;
pub mod bench;
pub mod businesses_cli;
pub mod call_audio;
pub mod cli;
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
pub mod scripts_cli;
pub mod startup;
pub mod state;
pub mod storable;
pub mod store;
pub mod tenant;
pub mod time;
