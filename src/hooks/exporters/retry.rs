//! Retry with exponential backoff and jitter, for a batch a sink could not take.
//!
//! The web-hook document's knobs: `retry_multiplier = 2.5` and `retry_max_elapsed_time =
//! "60s"` ("retried approximately 2, 4, 7, 11, 18, or 42 seconds later"). The n-th wait is
//! `initial_interval * multiplier^(n-1)`, capped at `max_interval`, then moved by up to
//! ±[`JITTER`] of itself at random so that many brokers (or exporters) that lost the same sink
//! do not all come back at the same instant. Once `max_elapsed_time` has passed since the
//! first failure the batch is given up; the last wait is shortened so that one final attempt
//! happens at that deadline rather than never.

use std::time::{Duration, Instant};

/// How far a wait may move either way, as a fraction of itself (the `backoff` crate's and
/// Go's `cenkalti/backoff` default randomisation factor).
pub const JITTER: f64 = 0.5;

/// How a failed batch is retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// The first wait.
    pub initial_interval: Duration,
    /// How much each wait grows over the one before (`retry_multiplier`).
    pub multiplier: f64,
    /// The longest single wait, before jitter.
    pub max_interval: Duration,
    /// How long after the first failure a batch is given up (`retry_max_elapsed_time`).
    pub max_elapsed_time: Duration,
}

impl Default for RetryPolicy {
    /// The web-hook document's settings; 500 ms is the `backoff` crate's first interval, which
    /// with 2.5 gives waits of about 0.5, 1.25, 3.1, 7.8, 19.5 s …
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_millis(500),
            multiplier: 2.5,
            max_interval: Duration::from_secs(60),
            max_elapsed_time: Duration::from_secs(60),
        }
    }
}

/// The retry state of one failing batch.
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    first_failure: Instant,
    /// The next wait before jitter.
    current: Duration,
    rng: u64,
}

impl Backoff {
    /// Starts counting from the first failure, at `first_failure`.
    pub fn new(policy: RetryPolicy, first_failure: Instant) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos() as u64);
        Self::with_seed(policy, first_failure, seed)
    }

    /// Like [`Backoff::new`] with a chosen jitter seed (for tests).
    pub fn with_seed(policy: RetryPolicy, first_failure: Instant, seed: u64) -> Self {
        Self {
            policy,
            first_failure,
            current: policy.initial_interval.min(policy.max_interval),
            // xorshift must not start at zero; the odd constant keeps distinct seeds distinct.
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// How long to wait before the next attempt, or `None` when the batch is to be given up
    /// (`now` is at or past `max_elapsed_time` after the first failure).
    pub fn next_delay(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.first_failure);
        let left = self.policy.max_elapsed_time.checked_sub(elapsed)?;
        if left.is_zero() {
            return None;
        }
        let jittered = self.jitter(self.current);
        let grown = self.current.as_secs_f64() * self.policy.multiplier.max(1.0);
        self.current = Duration::from_secs_f64(grown.min(self.policy.max_interval.as_secs_f64()));
        Some(jittered.min(left))
    }

    /// `interval` moved by a random amount within ±[`JITTER`] of itself.
    fn jitter(&mut self, interval: Duration) -> Duration {
        // xorshift64: enough randomness to spread retries, no dependency for it.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64; // in [0, 1)
        let factor = 1.0 - JITTER + 2.0 * JITTER * unit;
        Duration::from_secs_f64(interval.as_secs_f64() * factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_interval: Duration::from_millis(100),
            multiplier: 2.5,
            max_interval: Duration::from_secs(2),
            max_elapsed_time: Duration::from_secs(60),
        }
    }

    #[test]
    fn waits_grow_by_the_multiplier_within_the_jitter_and_stop_at_the_cap() {
        for seed in 0..50 {
            let start = Instant::now();
            let mut backoff = Backoff::with_seed(policy(), start, seed);
            let mut base = 0.1_f64;
            for _ in 0..10 {
                // Asked right at the first failure: far from the elapsed limit.
                let wait = backoff.next_delay(start).unwrap_or_default().as_secs_f64();
                assert!(
                    wait >= base * (1.0 - JITTER) - 1e-9 && wait <= base * (1.0 + JITTER) + 1e-9,
                    "seed {seed}: wait {wait} outside the jitter around {base}"
                );
                base = (base * 2.5).min(2.0);
            }
        }
    }

    #[test]
    fn the_document_schedule_is_roughly_what_the_defaults_give() {
        // Without jitter's spread the cumulative times of the defaults are 0.5, 1.75, 4.9,
        // 12.7, 32.2 s: the same order as the document's "2, 4, 7, 11, 18, 42".
        let start = Instant::now();
        let mut backoff = Backoff::with_seed(RetryPolicy::default(), start, 7);
        let mut total = Duration::ZERO;
        let mut attempts = 0;
        while let Some(wait) = backoff.next_delay(start + total) {
            total += wait;
            attempts += 1;
            assert!(attempts < 100, "the schedule must end");
        }
        assert!(
            (4..=10).contains(&attempts),
            "{attempts} attempts in a minute"
        );
        assert_eq!(
            total,
            RetryPolicy::default().max_elapsed_time,
            "the last wait lands on the deadline for one final attempt"
        );
    }

    #[test]
    fn past_the_elapsed_limit_the_batch_is_given_up() {
        let start = Instant::now();
        let policy = RetryPolicy {
            max_elapsed_time: Duration::from_millis(250),
            ..policy()
        };
        let mut backoff = Backoff::with_seed(policy, start, 1);
        let wait = backoff.next_delay(start + Duration::from_millis(200));
        assert!(wait.is_some_and(|wait| wait <= Duration::from_millis(50)));
        assert_eq!(backoff.next_delay(start + Duration::from_millis(250)), None);
        assert_eq!(backoff.next_delay(start + Duration::from_secs(5)), None);
    }
}
