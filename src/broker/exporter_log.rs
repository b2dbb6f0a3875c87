//! The exporters' counters in the log while the broker runs: every `events.stats_interval_ms`,
//! one `warn!` line per exporter that dropped or failed events since the previous interval
//! (with the differences), a `debug!` line for each other one, and one `warn!` line when the
//! shards shed events because their rings were full (how `drop_newest` exporters lose events
//! under overload). The shutdown line stays in `hook_setup`.
//!
//! Runs on `main`'s supervision thread, which wakes every 200 ms anyway: no shard ever waits on
//! a log write for this, and an interval shorter than that wake-up is logged at the wake-up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hooks::exporters::{CountersSnapshot, ExporterCounters};
use crate::hooks::EventRing;

/// The exporters and rings watched, and when to look next.
#[derive(Debug)]
pub(super) struct IntervalLog {
    exporters: Vec<Watched>,
    rings: Vec<Arc<EventRing>>,
    /// The shards' shed events, all rings together, at the last look.
    shed: u64,
    interval: Duration,
    next: Instant,
}

#[derive(Debug)]
struct Watched {
    name: String,
    counters: Arc<ExporterCounters>,
    last: CountersSnapshot,
}

impl IntervalLog {
    /// Watches `exporters` every `interval`; `None` when there is nothing to watch or the
    /// interval is off.
    pub fn new(
        exporters: &[(String, Arc<ExporterCounters>)],
        rings: &[Arc<EventRing>],
        interval: Option<Duration>,
    ) -> Option<Self> {
        let interval = interval?;
        if exporters.is_empty() {
            return None;
        }
        let exporters = exporters
            .iter()
            .map(|(name, counters)| Watched {
                name: name.clone(),
                counters: Arc::clone(counters),
                last: counters.snapshot(),
            })
            .collect();
        Some(Self {
            exporters,
            rings: rings.to_vec(),
            shed: shed_total(rings),
            interval,
            next: Instant::now() + interval,
        })
    }

    /// Logs every exporter once an interval has passed since the last time.
    pub fn log_if_due(&mut self, now: Instant) {
        if now < self.next {
            return;
        }
        self.next = now + self.interval;
        let shed = shed_total(&self.rings);
        let grew = shed.saturating_sub(self.shed);
        self.shed = shed;
        if grew > 0 {
            tracing::warn!(
                shed = grew,
                shed_total = shed,
                "the shards shed events in the last interval: the exporters are behind and \
                 their event rings were full (per kind: dropped_ring_full on \
                 $SYS/brokers/<node>/shards/<shard>/events)"
            );
        }
        for exporter in &mut self.exporters {
            let current = exporter.counters.snapshot();
            let delta = Delta::between(&exporter.last, &current);
            exporter.last = current;
            if delta.is_trouble() {
                tracing::warn!(
                    exporter = exporter.name,
                    sent = delta.sent,
                    retried = delta.retried,
                    failed = delta.failed,
                    dropped_queue_full = delta.dropped_queue_full,
                    dropped_retries_exhausted = delta.dropped_retries_exhausted,
                    dropped_rejected = delta.dropped_rejected,
                    queue_len = current.queue_len,
                    lag_ms = current.lag_ms,
                    "exporter dropped or failed events in the last interval"
                );
            } else {
                tracing::debug!(
                    exporter = exporter.name,
                    sent = delta.sent,
                    retried = delta.retried,
                    queue_len = current.queue_len,
                    lag_ms = current.lag_ms,
                    "exporter interval"
                );
            }
        }
    }
}

/// Events shed by every shard so far.
fn shed_total(rings: &[Arc<EventRing>]) -> u64 {
    rings.iter().map(|ring| ring.dropped_total()).sum()
}

/// What an exporter's counters grew by over one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Delta {
    sent: u64,
    retried: u64,
    failed: u64,
    dropped_queue_full: u64,
    dropped_retries_exhausted: u64,
    dropped_rejected: u64,
}

impl Delta {
    fn between(before: &CountersSnapshot, after: &CountersSnapshot) -> Self {
        // The counters only grow; saturating keeps a torn read from logging a huge number.
        let grew = |before: u64, after: u64| after.saturating_sub(before);
        Self {
            sent: grew(before.sent, after.sent),
            retried: grew(before.retried, after.retried),
            failed: grew(before.failed, after.failed),
            dropped_queue_full: grew(before.dropped_queue_full, after.dropped_queue_full),
            dropped_retries_exhausted: grew(
                before.dropped_retries_exhausted,
                after.dropped_retries_exhausted,
            ),
            dropped_rejected: grew(before.dropped_rejected, after.dropped_rejected),
        }
    }

    /// Whether events were lost or batches given up: worth a warning. Retries alone are not
    /// (a sink that recovers within its retry budget loses nothing).
    fn is_trouble(&self) -> bool {
        self.failed
            + self.dropped_queue_full
            + self.dropped_retries_exhausted
            + self.dropped_rejected
            > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_drops_and_failures_since_the_last_interval_are_trouble() {
        let before = CountersSnapshot {
            sent: 10,
            retried: 1,
            dropped_queue_full: 5,
            ..CountersSnapshot::default()
        };
        let retried_only = CountersSnapshot {
            sent: 20,
            retried: 4,
            ..before
        };
        let delta = Delta::between(&before, &retried_only);
        assert_eq!((delta.sent, delta.retried), (10, 3));
        assert!(!delta.is_trouble(), "old drops are not counted again");
        let dropped = CountersSnapshot {
            dropped_queue_full: 7,
            ..retried_only
        };
        let delta = Delta::between(&retried_only, &dropped);
        assert_eq!(delta.dropped_queue_full, 2);
        assert!(delta.is_trouble());
        let failed = CountersSnapshot {
            failed: 1,
            dropped_retries_exhausted: 100,
            ..dropped
        };
        assert!(Delta::between(&dropped, &failed).is_trouble());
    }

    #[test]
    fn nothing_is_watched_without_exporters_or_interval() {
        let exporters = vec![("redis".to_owned(), Arc::default())];
        assert!(IntervalLog::new(&[], &[], Some(Duration::from_secs(1))).is_none());
        assert!(IntervalLog::new(&exporters, &[], None).is_none());
        let mut log = IntervalLog::new(&exporters, &[], Some(Duration::from_secs(1)))
            .unwrap_or_else(|| panic!("an exporter and an interval are watched"));
        let due = log.next;
        log.log_if_due(due - Duration::from_millis(1));
        assert_eq!(log.next, due, "not due yet");
        log.log_if_due(due);
        assert_eq!(log.next, due + Duration::from_secs(1));
    }
}
