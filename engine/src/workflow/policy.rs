//! Per-step retry policy: attempts, exponential backoff, and a timeout per attempt.

use std::time::Duration;

/// How a step is retried and how long one attempt may take.
#[derive(Clone, Debug)]
pub struct StepPolicy {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub backoff: Duration,
    /// Each further retry waits this many times longer.
    pub backoff_factor: u32,
    /// No retry waits longer than this.
    pub max_backoff: Duration,
    /// One attempt is cut off after this long and counts as a retryable failure.
    pub timeout: Duration,
}

impl Default for StepPolicy {
    fn default() -> Self {
        StepPolicy {
            max_attempts: 3,
            backoff: Duration::from_secs(2),
            backoff_factor: 4,
            max_backoff: Duration::from_secs(600),
            timeout: Duration::from_secs(60),
        }
    }
}

impl StepPolicy {
    /// The delay before attempt `next_attempt` (2 = first retry).
    pub fn backoff_for(&self, next_attempt: u32) -> Duration {
        let exp = next_attempt.saturating_sub(2).min(16);
        let factor = (self.backoff_factor.max(1) as u64).saturating_pow(exp);
        let ms = (self.backoff.as_millis() as u64).saturating_mul(factor);
        Duration::from_millis(ms).min(self.max_backoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = StepPolicy {
            backoff: Duration::from_secs(1),
            backoff_factor: 3,
            max_backoff: Duration::from_secs(20),
            ..StepPolicy::default()
        };
        assert_eq!(p.backoff_for(2), Duration::from_secs(1));
        assert_eq!(p.backoff_for(3), Duration::from_secs(3));
        assert_eq!(p.backoff_for(4), Duration::from_secs(9));
        assert_eq!(p.backoff_for(5), Duration::from_secs(20));
        assert_eq!(p.backoff_for(60), Duration::from_secs(20));
    }
}
