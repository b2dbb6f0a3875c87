//! The raw results of one run, as the runner collects them: counts, histograms, samples and
//! the time series. The report module derives every rate and percentile from this.
//!
//! The accounting of loss, duplicates and ordering per publisher and per block lives here: it
//! joins what publishers sent with what each tracker received. No I/O.

use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::plan::Plan;
use crate::procstat::ProcSample;
use crate::progress::SeriesPoint;
use crate::stats::{lock, RunShared};

/// Connection setup of the whole run.
#[derive(Debug)]
pub struct ConnectOutcome {
    /// Connections opened.
    pub connections: u64,
    /// From the first connect to the last ready connection.
    pub setup: Duration,
    /// TCP connect, microseconds.
    pub tcp: Histogram<u64>,
    /// CONNECT→CONNACK, microseconds.
    pub connack: Histogram<u64>,
    /// TCP connect plus CONNECT→CONNACK, microseconds.
    pub handshake: Histogram<u64>,
    /// SUBSCRIBE→SUBACK, microseconds.
    pub suback: Histogram<u64>,
}

/// Delivery accounting of one block (by its subscribers) or one publisher.
#[derive(Debug, Default, Clone, Copy)]
pub struct Delivery {
    /// Measured messages that should have arrived (publishes × matching trackers).
    pub expected: u64,
    /// Of those, first deliveries.
    pub received: u64,
    /// Deliveries of a message already received.
    pub duplicates: u64,
    /// First deliveries that arrived after a later message of the same publisher.
    pub out_of_order: u64,
    /// Measured messages received from publishers this tracker should not hear.
    pub unexpected: u64,
}

impl Delivery {
    /// Expected but never received.
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.received)
    }

    /// Adds `other` to this.
    pub fn add(&mut self, other: &Self) {
        self.expected += other.expected;
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.unexpected += other.unexpected;
    }
}

/// One block's results.
#[derive(Debug)]
pub struct BlockOutcome {
    /// PUBLISH packets written during the measured window.
    pub published_window: u64,
    /// Deliveries received during the measured window.
    pub delivered_window: u64,
    /// Measured messages published (sum of the block's publishers' measured sequences).
    pub published: u64,
    /// Deliveries to the block's subscribers.
    pub delivery: Delivery,
    /// QoS 1/2 flows completed with success, whole run.
    pub acked: u64,
    /// QoS 1/2 publishes refused by the broker, whole run.
    pub rejected: u64,
    /// QoS 1/2 publishes still unacknowledged at the end.
    pub unacked: u64,
    /// PUBLISH packets received that were not from this run.
    pub foreign: u64,
    /// Latency of first deliveries of measured messages, microseconds.
    pub latency: Histogram<u64>,
    /// Schedule lag of measured publishes (fixed rate only), microseconds.
    pub lag: Histogram<u64>,
}

/// One publisher's results.
#[derive(Debug)]
pub struct PublisherOutcome {
    /// Block index.
    pub block: usize,
    /// Client id.
    pub client_id: String,
    /// Topic.
    pub topic: String,
    /// Measured messages it published.
    pub published: u64,
    /// Their deliveries over all trackers that should hear it.
    pub delivery: Delivery,
}

/// Broker samples at the run's milestones.
#[derive(Debug, Clone, Copy)]
pub struct BrokerOutcome {
    /// Its pid.
    pub pid: u32,
    /// Before the first connection.
    pub before: ProcSample,
    /// When every connection was set up.
    pub connected: ProcSample,
    /// At the start of the measured window.
    pub measure_start: ProcSample,
    /// At the end of the measured window.
    pub measure_end: ProcSample,
}

/// The harness's own CPU time.
#[derive(Debug, Clone, Copy)]
pub struct ToolOutcome {
    /// Worker threads.
    pub threads: usize,
    /// During setup, microseconds.
    pub setup_cpu_us: u64,
    /// During the measured window, microseconds.
    pub measure_cpu_us: u64,
}

/// A connection that ended before the run told it to.
#[derive(Debug, Clone)]
pub struct DropRecord {
    /// Client id.
    pub client_id: String,
    /// Phase it ended in.
    pub phase: &'static str,
    /// Why.
    pub reason: String,
}

/// Everything one run produced.
#[derive(Debug)]
pub struct Outcome {
    /// The address every connection went to.
    pub target: SocketAddr,
    /// Wall-clock start, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// Connection setup.
    pub connect: ConnectOutcome,
    /// Actual warm-up length.
    pub warmup: Duration,
    /// Actual measured window.
    pub measure: Duration,
    /// Actual drain length.
    pub drain: Duration,
    /// True when every expected delivery and ack arrived before the drain timeout.
    pub drained: bool,
    /// True when the operator cut the run short (SIGINT).
    pub interrupted: bool,
    /// Per block.
    pub blocks: Vec<BlockOutcome>,
    /// Per publisher.
    pub publishers: Vec<PublisherOutcome>,
    /// Broker samples, when a pid was given.
    pub broker: Option<BrokerOutcome>,
    /// Harness CPU.
    pub tool: ToolOutcome,
    /// Dropped connections.
    pub drops: Vec<DropRecord>,
    /// Per-second samples.
    pub series: Vec<SeriesPoint>,
}

/// Joins publisher counts with tracker contents: per block and per publisher delivery.
pub fn account(
    plan: &Plan,
    shared: &RunShared,
    blocks: usize,
) -> (Vec<Delivery>, Vec<PublisherOutcome>) {
    let measured: Vec<u64> = shared
        .publishers
        .iter()
        .map(|slot| slot.measured.get())
        .collect();
    let mut per_block = vec![Delivery::default(); blocks];
    let mut per_publisher = vec![Delivery::default(); plan.publishers.len()];
    for (tracker_plan, tracker) in plan.trackers.iter().zip(&shared.trackers) {
        let tracker = lock(tracker);
        let mut totals = Delivery::default();
        for &publisher in &tracker_plan.publishers {
            let index = publisher as usize;
            let mut delivery = Delivery {
                expected: measured[index],
                ..Delivery::default()
            };
            if let Some(stream) = tracker.stream(publisher) {
                delivery.received = stream.unique;
                delivery.duplicates = stream.duplicates;
                delivery.out_of_order = stream.out_of_order;
            }
            per_publisher[index].add(&delivery);
            totals.add(&delivery);
        }
        for (publisher, stream) in tracker.streams() {
            if tracker_plan.publishers.binary_search(&publisher).is_err() {
                totals.unexpected += stream.unique + stream.duplicates;
            }
        }
        per_block[tracker_plan.block].add(&totals);
    }
    let publishers = plan
        .publishers
        .iter()
        .zip(per_publisher)
        .zip(measured)
        .map(|((info, delivery), published)| PublisherOutcome {
            block: info.block,
            client_id: info.client_id.clone(),
            topic: info.topic.clone(),
            published,
            delivery,
        })
        .collect();
    (per_block, publishers)
}

/// Measured messages each tracker should have received so far.
pub fn expected_per_tracker(plan: &Plan, shared: &RunShared) -> Vec<u64> {
    plan.trackers
        .iter()
        .map(|tracker| {
            tracker
                .publishers
                .iter()
                .map(|&p| shared.publishers[p as usize].measured.get())
                .sum()
        })
        .collect()
}
