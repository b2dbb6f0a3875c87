//! The report of one run: every figure the harness measured, derived from the raw
//! [`Outcome`] and serializable as the `--json` file. The table, JSON and HTML renderers all
//! read this one struct, so they can never disagree.
//!
//! Derivation only: rates, percentiles, per-message CPU, per-connection memory. No I/O here;
//! the renderers live in the submodules.

mod charts;
mod derive;
pub mod html;
pub mod json;
pub mod side_by_side;
mod svg;
pub mod table;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::config::{Rate, RunConfig};
use crate::outcome::{BlockOutcome, Delivery, Outcome};
use crate::progress::SeriesPoint;
use crate::stats::latency_histogram;

/// Latency percentiles, microseconds; `None` when nothing was recorded.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Smallest.
    pub min_us: Option<u64>,
    /// Mean.
    pub mean_us: Option<f64>,
    /// Median.
    pub p50_us: Option<u64>,
    /// 90th percentile.
    pub p90_us: Option<u64>,
    /// 99th percentile.
    pub p99_us: Option<u64>,
    /// 99.9th percentile.
    pub p999_us: Option<u64>,
    /// Largest.
    pub max_us: Option<u64>,
}

impl LatencySummary {
    /// Summarises a microsecond histogram.
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let q = |quantile| Some(histogram.value_at_quantile(quantile));
        Self {
            count: histogram.len(),
            min_us: Some(histogram.min()),
            mean_us: Some(histogram.mean()),
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: Some(histogram.max()),
        }
    }
}

/// Message traffic of a block or of the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Traffic {
    /// Offered rate from the configuration; `None` for `max`.
    pub offered_per_s: Option<f64>,
    /// PUBLISH packets written per second during the measured window.
    pub published_per_s: f64,
    /// Deliveries received per second during the measured window.
    pub delivered_per_s: f64,
    /// Messages published in the measured window (the ones loss is counted for).
    pub published: u64,
    /// Deliveries those should produce.
    pub expected: u64,
    /// First deliveries received.
    pub received: u64,
    /// Expected and never received (after the drain).
    pub lost: u64,
    /// `lost / expected`, percent.
    pub loss_pct: f64,
    /// Deliveries of a message already received.
    pub duplicates: u64,
    /// First deliveries that overtook a later message of the same publisher.
    pub out_of_order: u64,
    /// Measured messages received by a subscriber whose filter should not match them.
    pub unexpected: u64,
    /// Publishes received that were not sent by this run.
    pub foreign: u64,
    /// QoS 1/2 publishes acknowledged with success.
    pub acked: u64,
    /// QoS 1/2 publishes refused by the broker.
    pub rejected: u64,
    /// QoS 1/2 publishes never acknowledged.
    pub unacked: u64,
    /// Latency of first deliveries of measured messages.
    pub latency: LatencySummary,
    /// How late measured publishes were queued against their fixed-rate schedule; a large
    /// lag means the broker (or the harness) could not take the offered rate.
    pub schedule_lag: LatencySummary,
}

/// One block's report.
#[derive(Debug, Clone, Serialize)]
pub struct BlockReport {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: &'static str,
    /// Publishers.
    pub publishers: u32,
    /// Subscribers.
    pub subscribers: u32,
    /// Idle connections.
    pub idle: u32,
    /// QoS.
    pub qos: u8,
    /// Payload bytes.
    pub payload_bytes: usize,
    /// Traffic.
    #[serde(flatten)]
    pub traffic: Traffic,
}

/// One publisher's delivery accounting.
#[derive(Debug, Clone, Serialize)]
pub struct PublisherReport {
    /// Client id.
    pub client_id: String,
    /// Block name.
    pub block: String,
    /// Topic.
    pub topic: String,
    /// Messages published in the measured window.
    pub published: u64,
    /// Deliveries expected over all its subscribers.
    pub expected: u64,
    /// First deliveries received.
    pub received: u64,
    /// Never received.
    pub lost: u64,
    /// Received more than once.
    pub duplicates: u64,
    /// Received out of order.
    pub out_of_order: u64,
}

/// Connection setup.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectReport {
    /// Connections opened.
    pub connections: u64,
    /// Seconds from the first connect to the last connection ready.
    pub setup_s: f64,
    /// Connections per second over the setup.
    pub rate_per_s: f64,
    /// TCP connect.
    pub tcp_connect: LatencySummary,
    /// CONNECT→CONNACK.
    pub connack: LatencySummary,
    /// TCP connect + CONNECT→CONNACK.
    pub handshake: LatencySummary,
    /// SUBSCRIBE→SUBACK.
    pub suback: LatencySummary,
    /// Harness CPU during setup, percent of one core: near 100 × threads, the connect rate
    /// measured the harness.
    pub harness_cpu_pct: f64,
    /// Broker CPU during setup, percent of one core (with `--broker-pid`).
    pub broker_cpu_pct: Option<f64>,
}

/// The broker's cost, from `/proc/PID`.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerReport {
    /// Its pid.
    pub pid: u32,
    /// CPU time in the measured window, microseconds.
    pub cpu_us: u64,
    /// CPU in the measured window, percent of one core.
    pub cpu_pct: f64,
    /// CPU microseconds per delivery in the measured window.
    pub cpu_us_per_delivered: Option<f64>,
    /// CPU time during setup, microseconds.
    pub setup_cpu_us: u64,
    /// Setup CPU per connection, microseconds.
    pub setup_cpu_us_per_connection: Option<f64>,
    /// RSS before the first connection.
    pub rss_kib_before: u64,
    /// RSS when every connection was set up.
    pub rss_kib_connected: u64,
    /// RSS at the end of the measured window.
    pub rss_kib_measure_end: u64,
    /// (RSS connected - RSS before) / connections, bytes.
    pub rss_bytes_per_connection: Option<f64>,
}

/// The harness's own cost, to tell a tool-bound run from a broker-bound one.
#[derive(Debug, Clone, Serialize)]
pub struct HarnessReport {
    /// Worker threads.
    pub threads: usize,
    /// CPU time in the measured window, microseconds.
    pub cpu_us: u64,
    /// CPU in the measured window, percent of one core.
    pub cpu_pct: f64,
    /// CPU microseconds per message handled (published + delivered).
    pub cpu_us_per_message: Option<f64>,
    /// CPU time during setup, microseconds.
    pub setup_cpu_us: u64,
    /// True when the harness used at least 90% of its threads: the figures may measure it
    /// rather than the broker.
    pub saturated: bool,
}

/// A dropped connection.
#[derive(Debug, Clone, Serialize)]
pub struct DroppedReport {
    /// Client id.
    pub client_id: String,
    /// Phase.
    pub phase: &'static str,
    /// Reason.
    pub reason: String,
}

/// One point of the latency-by-percentile curve.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PercentilePoint {
    /// Percentile, 0 to 100.
    pub percentile: f64,
    /// Latency at it, microseconds.
    pub latency_us: u64,
}

/// One bucket of the latency histogram (log-spaced, ten per decade).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HistogramBucket {
    /// Lower bound, microseconds.
    pub from_us: f64,
    /// Upper bound, microseconds.
    pub to_us: f64,
    /// Deliveries in it.
    pub count: u64,
}

/// Phase lengths.
#[derive(Debug, Clone, Serialize)]
pub struct Phases {
    /// Setup seconds.
    pub setup_s: f64,
    /// Warm-up seconds.
    pub warmup_s: f64,
    /// Measured seconds.
    pub measure_s: f64,
    /// Drain seconds.
    pub drain_s: f64,
    /// True when everything expected arrived before the drain timeout.
    pub drained: bool,
    /// True when the run was cut short by SIGINT; the measured window is then shorter.
    pub interrupted: bool,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Name of the broker (compare mode) or its address.
    pub label: String,
    /// Harness version.
    pub harness_version: &'static str,
    /// Address every connection went to.
    pub target: String,
    /// Start, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// The configuration.
    pub config: RunConfig,
    /// Phase lengths.
    pub phases: Phases,
    /// All blocks together.
    pub total: Traffic,
    /// Per block.
    pub blocks: Vec<BlockReport>,
    /// Per publisher.
    pub publishers: Vec<PublisherReport>,
    /// Connection setup.
    pub connect: ConnectReport,
    /// Broker cost, when `--broker-pid` was given.
    pub broker: Option<BrokerReport>,
    /// Harness cost.
    pub harness: HarnessReport,
    /// Connections dropped during the run.
    pub dropped: Vec<DroppedReport>,
    /// Per-second samples.
    pub series: Vec<SeriesPoint>,
    /// Latency by percentile, all blocks.
    pub latency_percentiles: Vec<PercentilePoint>,
    /// Latency histogram, all blocks.
    pub latency_histogram: Vec<HistogramBucket>,
}

impl RunReport {
    /// Derives the report of `outcome`, run with `config`, naming it `label`.
    pub fn new(label: &str, config: &RunConfig, outcome: Outcome) -> Self {
        derive::build(label, config, outcome)
    }
}

/// Traffic of one block (or of the sum of all) from its outcome.
fn traffic(block: &BlockOutcome, offered: Option<f64>, measure_s: f64) -> Traffic {
    let seconds = measure_s.max(1e-9);
    let delivery = &block.delivery;
    let lost = delivery.lost();
    Traffic {
        offered_per_s: offered,
        published_per_s: block.published_window as f64 / seconds,
        delivered_per_s: block.delivered_window as f64 / seconds,
        published: block.published,
        expected: delivery.expected,
        received: delivery.received,
        lost,
        loss_pct: if delivery.expected == 0 {
            0.0
        } else {
            100.0 * lost as f64 / delivery.expected as f64
        },
        duplicates: delivery.duplicates,
        out_of_order: delivery.out_of_order,
        unexpected: delivery.unexpected,
        foreign: block.foreign,
        acked: block.acked,
        rejected: block.rejected,
        unacked: block.unacked,
        latency: LatencySummary::of(&block.latency),
        schedule_lag: LatencySummary::of(&block.lag),
    }
}

/// The offered rate of a configured rate.
fn offered(rate: Rate, publishers: u32) -> Option<f64> {
    match rate {
        Rate::PerSecond(rate) if publishers > 0 => Some(rate),
        _ => None,
    }
}

/// All blocks added up, latencies merged.
fn sum_blocks(blocks: &[BlockOutcome]) -> BlockOutcome {
    let mut sum = BlockOutcome {
        published_window: 0,
        delivered_window: 0,
        published: 0,
        delivery: Delivery::default(),
        acked: 0,
        rejected: 0,
        unacked: 0,
        foreign: 0,
        latency: latency_histogram(),
        lag: latency_histogram(),
    };
    for block in blocks {
        sum.published_window += block.published_window;
        sum.delivered_window += block.delivered_window;
        sum.published += block.published;
        sum.delivery.add(&block.delivery);
        sum.acked += block.acked;
        sum.rejected += block.rejected;
        sum.unacked += block.unacked;
        sum.foreign += block.foreign;
        // Every histogram has the same bounds, so adding cannot fail.
        let _ = sum.latency.add(&block.latency);
        let _ = sum.lag.add(&block.lag);
    }
    sum
}
