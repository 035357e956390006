//! Switchboard's lead pipeline on the engine: businesses, leads and their intake (`intake`),
//! provider call events (`call_events`), the `lead_call` workflow, the policy seam every
//! business decision goes through and its backtest (`backtest`), providers, the sync of businesses' voice
//! agents to the provider (`agents_sync`) and how a lead steers the built-in simulator
//! (`sim_steer`; the simulator itself is the `switchboard-simulator` crate in `simulator/`, which
//! speaks these providers' wire formats). The use cases the API serves live here, below the HTTP
//! layer; SQL lives in `store/`.

pub mod agents_sync;
pub mod backtest;
pub mod business;
pub mod call_events;
pub mod inbound;
pub mod intake;
pub mod lead;
pub mod lead_call;
pub mod phone;
pub mod policy;
pub mod providers;
pub mod retention;
pub mod schedules;
pub mod scripting;
pub mod sim_steer;
pub mod store;
pub mod telemetry;

#[cfg(test)]
mod test_db;

#[cfg(test)]
mod properties;
