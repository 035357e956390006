//! The business clock: the time scripts, routing defaults and the calling-hours check see. It
//! is the system clock, or one set ahead or behind it that runs on from there (tests and demos
//! of time-dependent routing); clones share one setting, so a test may move it while runs wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

/// The clock business decisions see (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct BusinessClock {
    /// Milliseconds the clock is ahead of the system clock (negative: behind).
    offset_ms: Arc<AtomicI64>,
}

impl BusinessClock {
    /// The system clock.
    pub fn system() -> Self {
        BusinessClock::default()
    }

    /// A clock that reads `at` now and runs on from there.
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        let clock = BusinessClock::default();
        clock.set(at);
        clock
    }

    /// Sets the clock (and every clone of it) to read `at` now; it runs on from there.
    pub fn set(&self, at: DateTime<Utc>) {
        let offset = (at - Utc::now()).num_milliseconds();
        self.offset_ms.store(offset, Ordering::Relaxed);
    }

    /// How far the clock is from the system clock: attempts record system time, decisions saw
    /// this much later.
    pub fn offset(&self) -> TimeDelta {
        TimeDelta::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Now, by this clock.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_clock_runs_on_and_its_clones_follow_a_new_setting() {
        let system = BusinessClock::system();
        assert!((system.now() - Utc::now()).abs() < TimeDelta::seconds(1));

        let friday: DateTime<Utc> = "2026-10-30T21:59:40Z".parse().unwrap();
        let clock = BusinessClock::starting_at(friday);
        let seen_by_workers = clock.clone();
        assert!((seen_by_workers.now() - friday).abs() < TimeDelta::seconds(1));

        let closed: DateTime<Utc> = "2026-10-30T22:00:30Z".parse().unwrap();
        clock.set(closed);
        let now = seen_by_workers.now();
        assert!(
            now >= closed && now - closed < TimeDelta::seconds(1),
            "{now}"
        );
    }
}
