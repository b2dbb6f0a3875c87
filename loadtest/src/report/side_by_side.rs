//! The side-by-side table of compare mode: the same metrics for every broker, each with its
//! ratio against the first. Also gives the metric values to the compare JSON, so the table and
//! the file list the same figures. Renders strings only.

use super::table::columns;
use super::RunReport;
use crate::units::{format_rate, format_us, group_digits};

/// One metric of the compare table: its name and how to read it from a report.
struct Metric {
    name: &'static str,
    value: fn(&RunReport) -> Option<f64>,
    show: fn(f64) -> String,
}

fn us(value: f64) -> String {
    format_us(value.round() as u64)
}

fn count(value: f64) -> String {
    group_digits(value.round() as u64)
}

fn decimal(value: f64) -> String {
    format!("{value:.2}")
}

const METRICS: &[Metric] = &[
    Metric {
        name: "published/s",
        value: |r| Some(r.total.published_per_s),
        show: format_rate,
    },
    Metric {
        name: "delivered/s",
        value: |r| Some(r.total.delivered_per_s),
        show: format_rate,
    },
    Metric {
        name: "latency p50",
        value: |r| r.total.latency.p50_us.map(|v| v as f64),
        show: us,
    },
    Metric {
        name: "latency p90",
        value: |r| r.total.latency.p90_us.map(|v| v as f64),
        show: us,
    },
    Metric {
        name: "latency p99",
        value: |r| r.total.latency.p99_us.map(|v| v as f64),
        show: us,
    },
    Metric {
        name: "latency p99.9",
        value: |r| r.total.latency.p999_us.map(|v| v as f64),
        show: us,
    },
    Metric {
        name: "latency max",
        value: |r| r.total.latency.max_us.map(|v| v as f64),
        show: us,
    },
    Metric {
        name: "lost",
        value: |r| Some(r.total.lost as f64),
        show: count,
    },
    Metric {
        name: "duplicates",
        value: |r| Some(r.total.duplicates as f64),
        show: count,
    },
    Metric {
        name: "out of order",
        value: |r| Some(r.total.out_of_order as f64),
        show: count,
    },
    Metric {
        name: "connect rate/s",
        value: |r| Some(r.connect.rate_per_s),
        show: format_rate,
    },
    Metric {
        name: "handshake p50",
        value: |r| r.connect.handshake.p50_us.map(|v| v as f64),
        show: us,
    },
    Metric {
        name: "handshake p99",
        value: |r| r.connect.handshake.p99_us.map(|v| v as f64),
        show: us,
    },
    Metric {
        name: "broker CPU %",
        value: |r| r.broker.as_ref().map(|b| b.cpu_pct),
        show: decimal,
    },
    Metric {
        name: "broker µs/delivery",
        value: |r| r.broker.as_ref().and_then(|b| b.cpu_us_per_delivered),
        show: decimal,
    },
    Metric {
        name: "broker KiB/conn",
        value: |r| {
            r.broker
                .as_ref()
                .and_then(|b| b.rss_bytes_per_connection)
                .map(|v| v / 1024.0)
        },
        show: decimal,
    },
    Metric {
        name: "harness CPU %",
        value: |r| Some(r.harness.cpu_pct),
        show: decimal,
    },
    Metric {
        name: "dropped conns",
        value: |r| Some(r.dropped.len() as f64),
        show: count,
    },
];

/// Every compared metric of `report`: its name and value.
pub fn metric_values(report: &RunReport) -> Vec<(&'static str, Option<f64>)> {
    METRICS
        .iter()
        .map(|m| (m.name, (m.value)(report)))
        .collect()
}

/// The side-by-side table of compare mode; ratios are against the first report.
pub fn render(reports: &[RunReport]) -> String {
    let mut header = vec!["metric".to_owned()];
    header.extend(
        reports
            .iter()
            .map(|r| format!("{} ({})", r.label, r.target)),
    );
    let mut rows = vec![header];
    for metric in METRICS {
        let base = reports.first().and_then(|r| (metric.value)(r));
        let mut row = vec![metric.name.to_owned()];
        for (index, report) in reports.iter().enumerate() {
            let cell = match (metric.value)(report) {
                None => "-".to_owned(),
                Some(value) => match base {
                    Some(base) if index > 0 && base != 0.0 => {
                        format!("{} ({:.2}×)", (metric.show)(value), value / base)
                    }
                    _ => (metric.show)(value),
                },
            };
            row.push(cell);
        }
        rows.push(row);
    }
    format!(
        "\n== compare (ratios against {})\n{}",
        reports.first().map_or("", |r| r.label.as_str()),
        columns(&rows, 1)
    )
}
