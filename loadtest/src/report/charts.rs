//! The plots of the HTML report, built from one or several reports: throughput, latency over
//! time, latency by percentile, the latency histogram, connections and CPU over time. Each run
//! gets its own colour, so compare mode overlays brokers. Builds chart descriptions only; the
//! SVG is drawn by `svg`.

use super::svg::{Chart, Scale, Series, Shape};
use super::RunReport;
use crate::progress::SeriesPoint;
use crate::units::format_us;

const COLORS: [&str; 6] = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2",
];

fn us_tick(value: f64) -> String {
    format_us(value.round() as u64)
}

fn rate_tick(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.0}k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

fn seconds_tick(value: f64) -> String {
    format!("{value:.0} s")
}

fn percentile_tick(value: f64) -> String {
    let rounded = (value * 1e4).round() / 1e4;
    format!("{rounded}%")
}

fn plain_tick(value: f64) -> String {
    format!("{value:.0}")
}

fn percent_tick(value: f64) -> String {
    format!("{value:.0}%")
}

fn color(index: usize) -> &'static str {
    COLORS[index % COLORS.len()]
}

/// Series name: the metric, prefixed with the broker when several runs are shown.
fn name(reports: &[RunReport], report: &RunReport, metric: &str) -> String {
    if reports.len() > 1 {
        format!("{} {metric}", report.label)
    } else {
        metric.to_owned()
    }
}

fn line(name: String, color: &'static str, dashed: bool, points: Vec<(f64, f64)>) -> Series {
    Series {
        name,
        color,
        dashed,
        shape: Shape::Line(points),
    }
}

fn throughput_chart(reports: &[RunReport]) -> Chart {
    let mut series = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let points = |f: fn(&SeriesPoint) -> f64| r.series.iter().map(|p| (p.t_s, f(p))).collect();
        series.push(line(
            name(reports, r, "delivered/s"),
            color(i),
            false,
            points(|p| p.delivered_per_s),
        ));
        let published_color = if reports.len() > 1 {
            color(i)
        } else {
            color(1)
        };
        series.push(line(
            name(reports, r, "published/s"),
            published_color,
            true,
            points(|p| p.published_per_s),
        ));
    }
    Chart {
        title: "Throughput over time".into(),
        x_label: "seconds since setup started".into(),
        y_label: "messages per second".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        x_format: seconds_tick,
        y_format: rate_tick,
        series,
    }
}

fn latency_time_chart(reports: &[RunReport]) -> Chart {
    let mut series = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let pick = |f: fn(&SeriesPoint) -> Option<u64>| {
            r.series
                .iter()
                .filter_map(|p| f(p).map(|v| (p.t_s, v.max(1) as f64)))
                .collect::<Vec<_>>()
        };
        let (c50, c99) = if reports.len() > 1 {
            (color(i), color(i))
        } else {
            (color(0), color(1))
        };
        series.push(line(
            name(reports, r, "p50"),
            c50,
            false,
            pick(|p| p.latency_p50_us),
        ));
        series.push(line(
            name(reports, r, "p99"),
            c99,
            true,
            pick(|p| p.latency_p99_us),
        ));
    }
    Chart {
        title: "End-to-end latency over time (per second)".into(),
        x_label: "seconds since setup started".into(),
        y_label: "latency".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Log,
        x_format: seconds_tick,
        y_format: us_tick,
        series,
    }
}

fn percentile_chart(reports: &[RunReport]) -> Chart {
    let series = reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            // The maximum (100%) has no place on a nines axis; it is in the figures above.
            let points = r
                .latency_percentiles
                .iter()
                .filter(|p| p.percentile < 100.0)
                .map(|p| (p.percentile, p.latency_us.max(1) as f64))
                .collect();
            line(name(reports, r, "latency"), color(i), false, points)
        })
        .collect();
    Chart {
        title: "Latency by percentile".into(),
        x_label: "percentile".into(),
        y_label: "end-to-end latency".into(),
        x_scale: Scale::Nines,
        y_scale: Scale::Log,
        x_format: percentile_tick,
        y_format: us_tick,
        series,
    }
}

fn histogram_chart(reports: &[RunReport]) -> Chart {
    let series = reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let total: u64 = r.latency_histogram.iter().map(|b| b.count).sum();
            let bars = r
                .latency_histogram
                .iter()
                .map(|b| {
                    (
                        b.from_us,
                        b.to_us,
                        100.0 * b.count as f64 / total.max(1) as f64,
                    )
                })
                .collect();
            Series {
                name: name(reports, r, "deliveries"),
                color: color(i),
                dashed: false,
                shape: Shape::Bars(bars),
            }
        })
        .collect();
    Chart {
        title: "Latency histogram".into(),
        x_label: "end-to-end latency (log scale)".into(),
        y_label: "% of deliveries".into(),
        x_scale: Scale::Log,
        y_scale: Scale::Linear,
        x_format: us_tick,
        y_format: percent_tick,
        series,
    }
}

fn connections_chart(reports: &[RunReport]) -> Chart {
    let series = reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let points = r
                .series
                .iter()
                .map(|p| (p.t_s, p.connections as f64))
                .collect();
            line(
                name(reports, r, "open connections"),
                color(i),
                false,
                points,
            )
        })
        .collect();
    Chart {
        title: "Connections open".into(),
        x_label: "seconds since setup started".into(),
        y_label: "connections".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        x_format: seconds_tick,
        y_format: plain_tick,
        series,
    }
}

fn cpu_chart(reports: &[RunReport]) -> Chart {
    let mut series = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let broker: Vec<(f64, f64)> = r
            .series
            .iter()
            .filter_map(|p| p.broker_cpu_pct.map(|c| (p.t_s, c)))
            .collect();
        let (cb, ct) = if reports.len() > 1 {
            (color(i), color(i))
        } else {
            (color(0), color(1))
        };
        if !broker.is_empty() {
            series.push(line(name(reports, r, "broker CPU"), cb, false, broker));
        }
        let tool = r.series.iter().map(|p| (p.t_s, p.tool_cpu_pct)).collect();
        series.push(line(name(reports, r, "harness CPU"), ct, true, tool));
    }
    Chart {
        title: "CPU over time (100% = one core)".into(),
        x_label: "seconds since setup started".into(),
        y_label: "CPU".into(),
        x_scale: Scale::Linear,
        y_scale: Scale::Linear,
        x_format: seconds_tick,
        y_format: percent_tick,
        series,
    }
}

/// Every plot of the page, in order.
pub fn all(reports: &[RunReport]) -> Vec<Chart> {
    vec![
        throughput_chart(reports),
        latency_time_chart(reports),
        percentile_chart(reports),
        histogram_chart(reports),
        connections_chart(reports),
        cpu_chart(reports),
    ]
}
