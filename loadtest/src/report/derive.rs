//! Builds a [`RunReport`] from an [`Outcome`]: the arithmetic behind every figure (rates over
//! the measured window, CPU per message, memory per connection, the percentile curve and the
//! log-spaced histogram). Pure functions.

use hdrhistogram::Histogram;

use super::{
    offered, sum_blocks, traffic, BlockReport, BrokerReport, ConnectReport, DroppedReport,
    HarnessReport, HistogramBucket, LatencySummary, PercentilePoint, Phases, PublisherReport,
    RunReport,
};
use crate::config::RunConfig;
use crate::outcome::{BrokerOutcome, Outcome};

/// Histogram buckets per decade of latency.
const BUCKETS_PER_DECADE: f64 = 10.0;

pub(super) fn build(label: &str, config: &RunConfig, outcome: Outcome) -> RunReport {
    let measure_s = outcome.measure.as_secs_f64();
    let total_outcome = sum_blocks(&outcome.blocks);
    let offered_total: Option<f64> = config
        .blocks
        .iter()
        .filter(|b| b.publishers > 0)
        .map(|b| offered(b.rate, b.publishers))
        .try_fold(0.0, |sum, rate| rate.map(|r| sum + r));
    let offered_total = offered_total.filter(|_| config.blocks.iter().any(|b| b.publishers > 0));
    let total = traffic(&total_outcome, offered_total, measure_s);
    let blocks = config
        .blocks
        .iter()
        .zip(&outcome.blocks)
        .map(|(spec, block)| BlockReport {
            name: spec.name.clone(),
            kind: spec.kind.name(),
            publishers: spec.publishers,
            subscribers: spec.subscribers,
            idle: spec.idle,
            qos: spec.qos,
            payload_bytes: spec.payload_bytes,
            traffic: traffic(block, offered(spec.rate, spec.publishers), measure_s),
        })
        .collect();
    let publishers = outcome
        .publishers
        .iter()
        .map(|p| PublisherReport {
            client_id: p.client_id.clone(),
            block: config
                .blocks
                .get(p.block)
                .map_or_else(String::new, |b| b.name.clone()),
            topic: p.topic.clone(),
            published: p.published,
            expected: p.delivery.expected,
            received: p.delivery.received,
            lost: p.delivery.lost(),
            duplicates: p.delivery.duplicates,
            out_of_order: p.delivery.out_of_order,
        })
        .collect();
    let connect = &outcome.connect;
    let setup_s = connect.setup.as_secs_f64();
    let connect = ConnectReport {
        connections: connect.connections,
        setup_s,
        rate_per_s: connect.connections as f64 / setup_s.max(1e-9),
        tcp_connect: LatencySummary::of(&connect.tcp),
        connack: LatencySummary::of(&connect.connack),
        handshake: LatencySummary::of(&connect.handshake),
        suback: LatencySummary::of(&connect.suback),
        harness_cpu_pct: cpu_pct(outcome.tool.setup_cpu_us, setup_s),
        broker_cpu_pct: outcome
            .broker
            .map(|b| cpu_pct(b.connected.cpu_us.saturating_sub(b.before.cpu_us), setup_s)),
    };
    let delivered = total_outcome.delivered_window;
    let handled = total_outcome.published_window + delivered;
    let broker = outcome
        .broker
        .map(|b| broker_report(&b, delivered, connect.connections, measure_s));
    let tool_pct = cpu_pct(outcome.tool.measure_cpu_us, measure_s);
    let harness = HarnessReport {
        threads: outcome.tool.threads,
        cpu_us: outcome.tool.measure_cpu_us,
        cpu_pct: tool_pct,
        cpu_us_per_message: per(outcome.tool.measure_cpu_us, handled),
        setup_cpu_us: outcome.tool.setup_cpu_us,
        saturated: tool_pct >= 90.0 * outcome.tool.threads as f64,
    };
    let label = if label.is_empty() {
        outcome.target.to_string()
    } else {
        label.to_owned()
    };
    RunReport {
        label,
        harness_version: env!("CARGO_PKG_VERSION"),
        target: outcome.target.to_string(),
        started_unix_ms: outcome.started_unix_ms,
        config: config.clone(),
        phases: Phases {
            setup_s,
            warmup_s: outcome.warmup.as_secs_f64(),
            measure_s,
            drain_s: outcome.drain.as_secs_f64(),
            drained: outcome.drained,
            interrupted: outcome.interrupted,
        },
        total,
        blocks,
        publishers,
        connect,
        broker,
        harness,
        dropped: outcome
            .drops
            .into_iter()
            .map(|d| DroppedReport {
                client_id: d.client_id,
                phase: d.phase,
                reason: d.reason,
            })
            .collect(),
        series: outcome.series,
        latency_percentiles: percentile_curve(&total_outcome.latency),
        latency_histogram: log_buckets(&total_outcome.latency),
    }
}

fn broker_report(
    b: &BrokerOutcome,
    delivered: u64,
    connections: u64,
    measure_s: f64,
) -> BrokerReport {
    let cpu_us = b.measure_end.cpu_us.saturating_sub(b.measure_start.cpu_us);
    let setup_cpu_us = b.connected.cpu_us.saturating_sub(b.before.cpu_us);
    let rss_growth_bytes = (b.connected.rss_kib as f64 - b.before.rss_kib as f64) * 1024.0;
    BrokerReport {
        pid: b.pid,
        cpu_us,
        cpu_pct: cpu_pct(cpu_us, measure_s),
        cpu_us_per_delivered: per(cpu_us, delivered),
        setup_cpu_us,
        setup_cpu_us_per_connection: per(setup_cpu_us, connections),
        rss_kib_before: b.before.rss_kib,
        rss_kib_connected: b.connected.rss_kib,
        rss_kib_measure_end: b.measure_end.rss_kib,
        rss_bytes_per_connection: (connections > 0).then(|| rss_growth_bytes / connections as f64),
    }
}

fn cpu_pct(cpu_us: u64, seconds: f64) -> f64 {
    cpu_us as f64 / (seconds.max(1e-9) * 1e4)
}

fn per(amount: u64, count: u64) -> Option<f64> {
    (count > 0).then(|| amount as f64 / count as f64)
}

/// Latency at percentiles spaced evenly on the "nines" scale (12 points per nine), up to the
/// last percentile the sample size supports, then the maximum.
fn percentile_curve(histogram: &Histogram<u64>) -> Vec<PercentilePoint> {
    if histogram.is_empty() {
        return Vec::new();
    }
    let supported = 1.0 - 1.0 / histogram.len() as f64;
    let mut points: Vec<PercentilePoint> = (0..=72)
        .map(|step| 1.0 - 10f64.powf(-f64::from(step) / 12.0))
        .take_while(|&q| q <= supported)
        .map(|q| PercentilePoint {
            percentile: 100.0 * q,
            latency_us: histogram.value_at_quantile(q),
        })
        .collect();
    points.push(PercentilePoint {
        percentile: 100.0,
        latency_us: histogram.max(),
    });
    points
}

/// Counts per log-spaced bucket, from the first non-empty bucket to the last.
fn log_buckets(histogram: &Histogram<u64>) -> Vec<HistogramBucket> {
    if histogram.is_empty() {
        return Vec::new();
    }
    let bucket_of =
        |value: u64| ((value.max(1) as f64).log10() * BUCKETS_PER_DECADE).floor() as usize;
    let first = bucket_of(histogram.min());
    let last = bucket_of(histogram.max());
    let mut counts = vec![0u64; last - first + 1];
    for value in histogram.iter_recorded() {
        let index = bucket_of(value.value_iterated_to()).clamp(first, last) - first;
        counts[index] += value.count_at_value();
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(offset, count)| {
            let index = (first + offset) as f64;
            HistogramBucket {
                from_us: 10f64.powf(index / BUCKETS_PER_DECADE),
                to_us: 10f64.powf((index + 1.0) / BUCKETS_PER_DECADE),
                count,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::latency_histogram;

    #[test]
    fn percentile_curve_stops_at_supported_precision() {
        let mut histogram = latency_histogram();
        for value in 1..=1000 {
            histogram.record(value).unwrap();
        }
        let curve = percentile_curve(&histogram);
        let last = curve.last().unwrap();
        assert_eq!(last.percentile, 100.0);
        assert_eq!(last.latency_us, 1000);
        assert!(curve.iter().all(|p| p.percentile <= 100.0));
        assert!(curve.windows(2).all(|w| w[0].latency_us <= w[1].latency_us));
        assert!(curve[curve.len() - 2].percentile <= 99.9 + 1e-9);
    }

    #[test]
    fn buckets_hold_every_value() {
        let mut histogram = latency_histogram();
        for value in [5, 50, 50, 500, 5000] {
            histogram.record(value).unwrap();
        }
        let buckets = log_buckets(&histogram);
        assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 5);
        assert!(buckets.first().unwrap().from_us <= 5.0);
        assert!(buckets.last().unwrap().to_us > 5000.0);
    }

    #[test]
    fn cpu_helpers() {
        assert_eq!(cpu_pct(500_000, 1.0), 50.0);
        assert_eq!(per(10, 0), None);
        assert_eq!(per(10, 4), Some(2.5));
    }
}
