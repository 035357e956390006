//! Per-business Rhai scripts: the sandbox they run in, strict decisions, and the host that
//! compiles and calls them. (The policy built on these, versions and authoring come next.)

pub mod decisions;
pub mod host;
pub mod sandbox;
