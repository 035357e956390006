//! SQL for the API's own tables, one module per table: API keys, dashboard sessions, the audit
//! log, dead letters and lead imports. (The engine's tables are the engine's; the pipeline's are
//! in `switchboard_workflows::store`.)

pub mod audit;
pub mod dead_letters;
pub mod imports;
pub mod keys;
pub mod sessions;
