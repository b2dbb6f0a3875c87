//! Once a second while a run is live: read the shared counters, the interval latency
//! histograms, the tool's and the broker's CPU time, print one progress line to stderr and
//! keep the point for the report's time series.
//!
//! It also owns the per-block total latency histograms, which it grows by merging each
//! interval, so subscribers only ever touch the small interval histogram. It never changes the
//! run's phase.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::procstat::{self, ProcSample};
use crate::stats::{latency_histogram, Phase, RunShared};
use crate::units::{format_us, group_digits};

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesPoint {
    /// Seconds since setup started, at the end of the interval.
    pub t_s: f64,
    /// Phase during the interval.
    pub phase: &'static str,
    /// PUBLISH packets written per second.
    pub published_per_s: f64,
    /// Deliveries received per second.
    pub delivered_per_s: f64,
    /// Connections open at the end of the interval.
    pub connections: u64,
    /// Latency of measured first deliveries in the interval, if any arrived.
    pub latency_p50_us: Option<u64>,
    /// 99th percentile of the same.
    pub latency_p99_us: Option<u64>,
    /// Maximum of the same.
    pub latency_max_us: Option<u64>,
    /// Harness CPU over the interval, percent of one core.
    pub tool_cpu_pct: f64,
    /// Broker CPU over the interval, percent of one core.
    pub broker_cpu_pct: Option<f64>,
    /// Broker resident memory at the end of the interval.
    pub broker_rss_kib: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Reading {
    at: Instant,
    published: u64,
    delivered: u64,
    tool_cpu_us: u64,
    broker: Option<ProcSample>,
}

/// The sampler.
#[derive(Debug)]
pub struct Sampler {
    shared: Arc<RunShared>,
    broker_pid: Option<u32>,
    origin: Instant,
    last: Reading,
    print: bool,
    /// Per block: every measured first-delivery latency so far.
    pub totals: Vec<Histogram<u64>>,
    /// The time series so far.
    pub series: Vec<SeriesPoint>,
}

impl Sampler {
    /// Starts sampling now; `print` turns the stderr progress line on.
    pub fn new(shared: Arc<RunShared>, broker_pid: Option<u32>, print: bool) -> Self {
        let totals = shared.blocks.iter().map(|_| latency_histogram()).collect();
        let last = read(&shared, broker_pid);
        Self {
            origin: last.at,
            shared,
            broker_pid,
            last,
            print,
            totals,
            series: Vec::new(),
        }
    }

    /// Moves every interval histogram into the totals; returns the merged interval.
    pub fn collect_latency(&mut self) -> Histogram<u64> {
        let mut interval = latency_histogram();
        for (block, total) in self.shared.blocks.iter().zip(&mut self.totals) {
            let taken = block.take_interval();
            // Both histograms have the same bounds, so adding cannot fail.
            let _ = total.add(&taken);
            let _ = interval.add(&taken);
        }
        interval
    }

    /// Samples, records a point for the interval since the last call and prints a line with
    /// `note` appended.
    pub fn tick(&mut self, phase: Phase, note: &str) {
        let now = read(&self.shared, self.broker_pid);
        let seconds = now.at.duration_since(self.last.at).as_secs_f64().max(1e-6);
        let per_second = |a: u64, b: u64| a.saturating_sub(b) as f64 / seconds;
        let interval = self.collect_latency();
        let latency = |q: f64| (!interval.is_empty()).then(|| interval.value_at_quantile(q));
        let cpu_pct = |a: u64, b: u64| a.saturating_sub(b) as f64 / (seconds * 1e4);
        let point = SeriesPoint {
            t_s: now.at.duration_since(self.origin).as_secs_f64(),
            phase: phase.name(),
            published_per_s: per_second(now.published, self.last.published),
            delivered_per_s: per_second(now.delivered, self.last.delivered),
            connections: self.shared.total(|c| &c.open),
            latency_p50_us: latency(0.5),
            latency_p99_us: latency(0.99),
            latency_max_us: (!interval.is_empty()).then(|| interval.max()),
            tool_cpu_pct: cpu_pct(now.tool_cpu_us, self.last.tool_cpu_us),
            broker_cpu_pct: match (now.broker, self.last.broker) {
                (Some(a), Some(b)) => Some(cpu_pct(a.cpu_us, b.cpu_us)),
                _ => None,
            },
            broker_rss_kib: now.broker.map(|b| b.rss_kib),
        };
        if self.print {
            print_line(&point, self.shared.total(|c| &c.inflight), note);
        }
        self.series.push(point);
        self.last = now;
    }
}

fn read(shared: &RunShared, broker_pid: Option<u32>) -> Reading {
    Reading {
        at: Instant::now(),
        published: shared.total(|c| &c.published),
        delivered: shared.total(|c| &c.delivered),
        tool_cpu_us: procstat::self_cpu_us(),
        // The broker may exit mid-run; the point then just has no broker figures.
        broker: broker_pid.and_then(|pid| procstat::sample_pid(pid).ok()),
    }
}

fn print_line(point: &SeriesPoint, inflight: u64, note: &str) {
    let latency = match (point.latency_p50_us, point.latency_p99_us) {
        (Some(p50), Some(p99)) => format!("p50 {} p99 {}", format_us(p50), format_us(p99)),
        _ => "p50 - p99 -".to_owned(),
    };
    let broker = point
        .broker_cpu_pct
        .map_or_else(String::new, |cpu| format!(" broker {cpu:.0}%"));
    let line = format!(
        "[{:>6.1}s] {:<7} pub {:>10}/s  del {:>10}/s  {latency}  inflight {inflight}  conns {}  cpu tool {:.0}%{broker}{note}\n",
        point.t_s,
        point.phase,
        group_digits(point.published_per_s.round() as u64),
        group_digits(point.delivered_per_s.round() as u64),
        point.connections,
        point.tool_cpu_pct,
    );
    // Progress is best effort: a closed stderr must not end the run.
    let _ = std::io::stderr().write_all(line.as_bytes());
}
