//! Per-exporter counters: what an exporter queued, sent, retried and dropped, and how far
//! behind it is.
//!
//! The exporter runtime writes them from its own thread; anything (a metrics endpoint, a log
//! line, a test) reads them from any thread through [`ExporterCounters::snapshot`]. They are
//! relaxed atomics: each number is exact, but a snapshot is not one instant across all of them.
//!
//! Every event offered to an exporter ends in exactly one place, so once the exporter is idle
//! `queued = sent + dropped_retries_exhausted + dropped_rejected + dropped_at_shutdown +
//! queue_len + evicted`, where `evicted` is `dropped_queue_full` under drop-oldest (those
//! events were queued, then pushed out by newer ones) and 0 under drop-newest (there
//! `dropped_queue_full` counts events that never got in).

use std::sync::atomic::{AtomicU64, Ordering};

/// The live counters of one exporter.
#[derive(Debug, Default)]
pub struct ExporterCounters {
    pub(super) queued: AtomicU64,
    pub(super) sent: AtomicU64,
    pub(super) batches_sent: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) dropped_queue_full: AtomicU64,
    pub(super) dropped_retries_exhausted: AtomicU64,
    pub(super) dropped_rejected: AtomicU64,
    pub(super) dropped_at_shutdown: AtomicU64,
    pub(super) queue_len: AtomicU64,
    pub(super) lag_ms: AtomicU64,
}

/// The counters of one exporter at one moment (serialized as a JSON object of these numbers
/// on the exporter's `$SYS/` stats topic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CountersSnapshot {
    /// Events accepted into the queue.
    pub queued: u64,
    /// Events the sink took.
    pub sent: u64,
    /// Batches the sink took.
    pub batches_sent: u64,
    /// Send attempts that were retries of a failed batch.
    pub retried: u64,
    /// Batches given up (retries exhausted or rejected by the sink).
    pub failed: u64,
    /// Events dropped by the overflow policy: refused (drop-newest) or evicted (drop-oldest).
    pub dropped_queue_full: u64,
    /// Events of batches given up after `max_elapsed_time` of retries.
    pub dropped_retries_exhausted: u64,
    /// Events of batches the sink rejected as permanently wrong (not retried).
    pub dropped_rejected: u64,
    /// Events still queued or in flight when shutdown's deadline passed.
    pub dropped_at_shutdown: u64,
    /// Events in the queue now (a gauge; never above the queue's capacity).
    pub queue_len: u64,
    /// Age in milliseconds of the oldest event not yet sent (queued or in a batch being sent
    /// or retried), measured from the event's own time (`at_ns`); 0 when nothing is waiting.
    /// Refreshed every pass of the drain loop and whenever the exporter takes or finishes a
    /// batch, so it keeps growing while a dead sink holds a batch.
    pub lag_ms: u64,
}

impl ExporterCounters {
    /// The current values.
    pub fn snapshot(&self) -> CountersSnapshot {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CountersSnapshot {
            queued: read(&self.queued),
            sent: read(&self.sent),
            batches_sent: read(&self.batches_sent),
            retried: read(&self.retried),
            failed: read(&self.failed),
            dropped_queue_full: read(&self.dropped_queue_full),
            dropped_retries_exhausted: read(&self.dropped_retries_exhausted),
            dropped_rejected: read(&self.dropped_rejected),
            dropped_at_shutdown: read(&self.dropped_at_shutdown),
            queue_len: read(&self.queue_len),
            lag_ms: read(&self.lag_ms),
        }
    }

    /// Sets every counter to `values` (tests of what reads them).
    #[cfg(test)]
    pub(crate) fn store(&self, values: CountersSnapshot) {
        let set = |counter: &AtomicU64, value: u64| counter.store(value, Ordering::Relaxed);
        set(&self.queued, values.queued);
        set(&self.sent, values.sent);
        set(&self.batches_sent, values.batches_sent);
        set(&self.retried, values.retried);
        set(&self.failed, values.failed);
        set(&self.dropped_queue_full, values.dropped_queue_full);
        set(
            &self.dropped_retries_exhausted,
            values.dropped_retries_exhausted,
        );
        set(&self.dropped_rejected, values.dropped_rejected);
        set(&self.dropped_at_shutdown, values.dropped_at_shutdown);
        set(&self.queue_len, values.queue_len);
        set(&self.lag_ms, values.lag_ms);
    }

    /// Adds `amount` to `counter` (a helper so call sites read as what they count).
    pub(super) fn add(counter: &AtomicU64, amount: usize) {
        counter.fetch_add(amount as u64, Ordering::Relaxed);
    }

    /// Sets a gauge.
    pub(super) fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_what_was_counted() {
        let counters = ExporterCounters::default();
        ExporterCounters::add(&counters.queued, 5);
        ExporterCounters::add(&counters.sent, 3);
        ExporterCounters::add(&counters.dropped_queue_full, 2);
        ExporterCounters::set(&counters.queue_len, 2);
        ExporterCounters::set(&counters.lag_ms, 40);
        let snapshot = counters.snapshot();
        assert_eq!(snapshot.queued, 5);
        assert_eq!(snapshot.sent, 3);
        assert_eq!(snapshot.dropped_queue_full, 2);
        assert_eq!(snapshot.queue_len, 2);
        assert_eq!(snapshot.lag_ms, 40);
        assert_eq!(snapshot.failed, 0);
    }
}
