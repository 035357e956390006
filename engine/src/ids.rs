//! Typed identifiers and the engine's clock.

use serde::{Deserialize, Serialize};

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A workflow run (UUIDv7 text, so ids sort by creation time).
    RunId
);
text_id!(
    /// One step attempt row.
    StepId
);
text_id!(
    /// A wait for an external event.
    WaitId
);
text_id!(
    /// A business (tenant); every run belongs to one.
    BusinessId
);
text_id!(
    /// A task in apalis' queue (its job id).
    JobId
);

impl RunId {
    /// A new time-ordered id.
    pub fn new() -> Self {
        RunId(new_id())
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

/// A new UUIDv7 as text.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Unix milliseconds `delay` after `now`, saturating instead of overflowing.
pub fn due_at(now: i64, delay: std::time::Duration) -> i64 {
    now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
}

/// Now, in Unix milliseconds (the engine's timestamp unit).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The smallest run id (UUIDv7, lowercase text) created at or after `ms` (unix milliseconds):
/// ids are time-ordered, so a time range over runs is an id range over an index.
pub fn id_floor_at(ms: i64) -> String {
    let ms = ms.clamp(0, (1 << 48) - 1) as u64;
    format!(
        "{:08x}-{:04x}-0000-0000-000000000000",
        ms >> 16,
        ms & 0xffff
    )
}
