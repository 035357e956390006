//! Switchboard's lead pipeline on the engine: businesses, leads, the `lead_call` workflow, the
//! policy seam every business decision goes through, providers, the sync of businesses' voice
//! agents to the provider (`agents_sync`) and the built-in simulator.

pub mod agents_sync;
pub mod business;
pub mod inbound;
pub mod lead;
pub mod lead_call;
pub mod phone;
pub mod policy;
pub mod providers;
pub mod retention;
pub mod schedules;
pub mod scripting;
pub mod simulator;
pub mod store;
pub mod telemetry;

#[cfg(test)]
mod test_db;

#[cfg(test)]
mod properties;
