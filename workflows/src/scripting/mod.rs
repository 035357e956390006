//! Per-business Rhai scripts: the sandbox they run in, strict decisions, and the host that
//! compiles and calls them, the host API they call, and the validation of a new version.

pub mod decisions;
pub mod host;
pub mod host_api;
pub mod sandbox;
pub mod validate;
