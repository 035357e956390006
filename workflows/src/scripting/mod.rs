//! Per-business Rhai scripts: the sandbox they run in. (The policy built on it comes next.)

pub mod decisions;
pub mod sandbox;
