//! State shared between the connection tasks and the runner while a run is live: the phase,
//! per-block counters, per-block latency histograms, per-publisher measured counts and the
//! delivery trackers.
//!
//! Tasks update it once per read batch or write batch, never per message under a lock, so the
//! harness spends its time on the broker's traffic rather than on bookkeeping. Nothing here
//! does I/O.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use hdrhistogram::Histogram;
use tokio::sync::Notify;

use crate::sequence::Tracker;

/// Where the run is. Ordered: later phases compare greater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Connecting and subscribing; nothing is published.
    Setup,
    /// Publishing; messages are not counted.
    Warmup,
    /// Publishing; messages are counted.
    Measure,
    /// Publishing has stopped; outstanding deliveries and acks still arrive.
    Drain,
    /// Disconnect cleanly.
    Stop,
    /// Leave at once: the run failed.
    Abort,
}

impl Phase {
    /// Lowercase name for progress lines and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Warmup => "warmup",
            Self::Measure => "measure",
            Self::Drain => "drain",
            Self::Stop => "stop",
            Self::Abort => "abort",
        }
    }

    /// True while publishers send.
    pub fn is_publishing(self) -> bool {
        matches!(self, Self::Warmup | Self::Measure)
    }
}

/// A relaxed counter: the runner reads totals, never orders other memory by them.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        if n > 0 {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Subtracts `n`.
    pub fn sub(&self, n: u64) {
        if n > 0 {
            self.0.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Overwrites the value.
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}

/// Counters of one block.
#[derive(Debug, Default)]
pub struct BlockCounters {
    /// PUBLISH packets written, every phase.
    pub published: Counter,
    /// PUBLISH packets of this run received by subscribers, every phase, duplicates included.
    pub delivered: Counter,
    /// QoS 1/2 publishes whose flow completed with success (PUBACK, or PUBCOMP).
    pub acked: Counter,
    /// QoS 1/2 publishes the broker answered with a failure reason code.
    pub rejected: Counter,
    /// QoS 1/2 publishes sent and not yet completed.
    pub inflight: Counter,
    /// PUBLISH packets received that are not from this run (retained, other clients, short).
    pub foreign: Counter,
    /// Connections currently open.
    pub open: Counter,
}

/// Latency histograms count microseconds up to a minute, to three significant digits.
pub const LATENCY_MAX_US: u64 = 60_000_000;

/// A new, empty latency histogram.
// The bounds are constants that satisfy hdrhistogram's rules (low >= 1, high >= 2 * low,
// 3 significant figures), so construction cannot fail; a failure would be a bug here.
#[allow(clippy::expect_used)]
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("constant histogram bounds are valid")
}

/// Shared state of one block.
#[derive(Debug)]
pub struct BlockShared {
    /// Its counters.
    pub counters: BlockCounters,
    /// Latencies of first deliveries of measured messages since the runner last took them.
    interval: Mutex<Histogram<u64>>,
    /// How late measured messages were queued against their publisher's fixed schedule.
    lag: Mutex<Histogram<u64>>,
}

impl BlockShared {
    fn new() -> Self {
        Self {
            counters: BlockCounters::default(),
            interval: Mutex::new(latency_histogram()),
            lag: Mutex::new(latency_histogram()),
        }
    }

    /// Records a batch of latencies in microseconds.
    pub fn record_latencies(&self, latencies_us: &[u64]) {
        if latencies_us.is_empty() {
            return;
        }
        let mut histogram = lock(&self.interval);
        for &latency in latencies_us {
            histogram.saturating_record(latency);
        }
    }

    /// Records a batch of schedule lags in microseconds.
    pub fn record_lags(&self, lags_us: &[u64]) {
        if lags_us.is_empty() {
            return;
        }
        let mut histogram = lock(&self.lag);
        for &lag in lags_us {
            histogram.saturating_record(lag);
        }
    }

    /// Every schedule lag recorded so far.
    pub fn lags(&self) -> Histogram<u64> {
        lock(&self.lag).clone()
    }

    /// Takes the latencies recorded since the last call, leaving an empty histogram.
    pub fn take_interval(&self) -> Histogram<u64> {
        let mut histogram = lock(&self.interval);
        let taken = histogram.clone();
        histogram.reset();
        taken
    }
}

/// Shared state of one publisher.
#[derive(Debug, Default)]
pub struct PublisherSlot {
    /// Messages published in the measured window: the next measured sequence number.
    pub measured: Counter,
    /// Set once the publisher has seen the drain phase and will send nothing more.
    pub stopped: AtomicBool,
    /// Deliveries of its messages to any subscriber, every phase: the feedback of the QoS 0
    /// end-to-end window.
    pub received: AtomicU64,
    /// Set by a publisher blocked on its QoS 0 window; the subscriber that moves `received` to
    /// `wake_at` clears it and wakes the publisher through `credit`.
    pub waiting: AtomicBool,
    /// The `received` count a blocked publisher waits for: half its window, so it wakes to
    /// write a batch rather than one message at a time.
    pub wake_at: AtomicU64,
    /// Wakes a publisher blocked on its QoS 0 window.
    pub credit: Arc<Notify>,
}

impl PublisherSlot {
    /// Adds `n` deliveries and wakes the publisher if it waits for them. Sequentially
    /// consistent with [`Self::block`], so a wake-up is never lost between the two.
    pub fn deliver(&self, n: u64) {
        let received = self.received.fetch_add(n, Ordering::SeqCst) + n;
        if self.waiting.load(Ordering::SeqCst)
            && received >= self.wake_at.load(Ordering::SeqCst)
            && self.waiting.swap(false, Ordering::SeqCst)
        {
            self.credit.notify_one();
        }
    }

    /// Marks the publisher as waiting until `received` reaches `wake_at`, and returns the
    /// deliveries counted after that, so a delivery racing with the mark is seen either here
    /// or by the waker.
    pub fn block(&self, wake_at: u64) -> u64 {
        self.wake_at.store(wake_at, Ordering::SeqCst);
        self.waiting.store(true, Ordering::SeqCst);
        self.received.load(Ordering::SeqCst)
    }
}

/// Everything the tasks of one run share.
#[derive(Debug)]
pub struct RunShared {
    /// The run's clock origin; payload timestamps count nanoseconds from it.
    pub epoch: Instant,
    /// Marks this run's messages.
    pub nonce: u32,
    /// Per block.
    pub blocks: Vec<BlockShared>,
    /// Per publisher id.
    pub publishers: Vec<PublisherSlot>,
    /// Per tracker id: one per subscriber, or one per `$share` group.
    pub trackers: Vec<Mutex<Tracker>>,
}

impl RunShared {
    /// Empty state for the given numbers of blocks, publishers and trackers.
    pub fn new(nonce: u32, blocks: usize, publishers: usize, trackers: usize) -> Self {
        Self {
            epoch: Instant::now(),
            nonce,
            blocks: (0..blocks).map(|_| BlockShared::new()).collect(),
            publishers: (0..publishers).map(|_| PublisherSlot::default()).collect(),
            trackers: (0..trackers)
                .map(|_| Mutex::new(Tracker::default()))
                .collect(),
        }
    }

    /// Nanoseconds from the epoch to `at`.
    pub fn nanos_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Sum of a counter over all blocks.
    pub fn total(&self, counter: impl Fn(&BlockCounters) -> &Counter) -> u64 {
        self.blocks
            .iter()
            .map(|block| counter(&block.counters).get())
            .sum()
    }
}

/// Locks a mutex, recovering the data if a panicking task poisoned it: the counts are still
/// the best record of the run, and a panic is reported by the task's join handle anyway.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_histogram_is_taken_and_reset() {
        let block = BlockShared::new();
        block.record_latencies(&[10, 20, 30]);
        let taken = block.take_interval();
        assert_eq!(taken.len(), 3);
        assert_eq!(block.take_interval().len(), 0);
    }

    #[test]
    fn phases_are_ordered() {
        assert!(Phase::Setup < Phase::Warmup);
        assert!(Phase::Measure < Phase::Drain);
        assert!(Phase::Measure.is_publishing());
        assert!(!Phase::Drain.is_publishing());
    }
}
