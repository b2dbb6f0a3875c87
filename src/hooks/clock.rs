//! The wall clock events are stamped with, read without a system call.
//!
//! Shards keep time as `Instant`s (monotonic, what timers and expiry need); events and their
//! exporters want Unix time. [`WallClock`] takes both once, when a shard starts, and turns any
//! later `Instant` into Unix nanoseconds by adding the elapsed monotonic time: no
//! `clock_gettime` per event, and the same `Instant` always gives the same stamp (so tests in
//! virtual time stay exact). A wall clock stepped while the broker runs is not followed; the
//! stamps keep the start's offset, which is what ordering events needs.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A fixed pairing of a monotonic instant with the Unix time it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    base: Instant,
    base_unix_ns: u64,
}

impl WallClock {
    /// Pairs `Instant::now()` with the system's Unix time now.
    pub fn start() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        Self::at(Instant::now(), u64::try_from(unix).unwrap_or(u64::MAX))
    }

    /// Pairs `base` with `base_unix_ns` (tests pin both).
    pub fn at(base: Instant, base_unix_ns: u64) -> Self {
        Self { base, base_unix_ns }
    }

    /// `now` as Unix nanoseconds (an instant before the base counts back from it).
    #[inline]
    pub fn unix_ns(&self, now: Instant) -> u64 {
        match now.checked_duration_since(self.base) {
            Some(after) => self
                .base_unix_ns
                .saturating_add(u64::try_from(after.as_nanos()).unwrap_or(u64::MAX)),
            None => {
                let before = self.base.saturating_duration_since(now);
                self.base_unix_ns
                    .saturating_sub(u64::try_from(before.as_nanos()).unwrap_or(u64::MAX))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn instants_map_to_the_base_plus_the_elapsed_time() {
        let base = Instant::now();
        let clock = WallClock::at(base, 1_000_000_000);
        assert_eq!(clock.unix_ns(base), 1_000_000_000);
        assert_eq!(
            clock.unix_ns(base + Duration::from_millis(3)),
            1_003_000_000
        );
    }

    #[test]
    fn the_real_clock_is_after_2020() {
        let clock = WallClock::start();
        assert!(clock.unix_ns(Instant::now()) > 1_577_836_800 * 1_000_000_000);
    }
}
