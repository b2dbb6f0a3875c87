//! The plain-text summary printed at the end of a run: one row per block, then acks, loss,
//! schedule lag, connect statistics, broker and harness cost, and dropped connections.
//! Renders strings; the caller prints.

use std::fmt::Write;

use super::{LatencySummary, RunReport, Traffic};
use crate::units::{format_kib, format_rate, format_unix_ms, format_us, group_digits};

/// Lays out rows in columns: the first `left` columns left-aligned, the rest right-aligned.
pub(super) fn columns(rows: &[Vec<String>], left: usize) -> String {
    let widths: Vec<usize> = (0..rows.iter().map(Vec::len).max().unwrap_or(0))
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c].saturating_sub(cell.chars().count());
            if c > 0 {
                line.push_str("  ");
            }
            if c < left {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn opt_us(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), format_us)
}

/// The traffic columns; `publishes` says whether any publisher contributes, so a block of
/// subscribers or idle connections shows no offered rate rather than "max".
fn traffic_cells(t: &Traffic, publishes: bool) -> Vec<String> {
    let offered = match t.offered_per_s {
        Some(rate) => format_rate(rate),
        None if publishes => "max".to_owned(),
        None => "-".to_owned(),
    };
    vec![
        offered,
        format_rate(t.published_per_s),
        format_rate(t.delivered_per_s),
        opt_us(t.latency.p50_us),
        opt_us(t.latency.p90_us),
        opt_us(t.latency.p99_us),
        opt_us(t.latency.p999_us),
        opt_us(t.latency.max_us),
        format!("{} ({:.2}%)", group_digits(t.lost), t.loss_pct),
        group_digits(t.duplicates),
        group_digits(t.out_of_order),
    ]
}

fn handshake_line(name: &str, l: &LatencySummary) -> String {
    if l.count == 0 {
        return String::new();
    }
    format!(
        "{name} p50 {} p99 {} max {}",
        opt_us(l.p50_us),
        opt_us(l.p99_us),
        opt_us(l.max_us)
    )
}

/// The end-of-run summary of one report.
pub fn render(report: &RunReport) -> String {
    let mut out = String::new();
    let config = &report.config;
    let name = if report.label == report.target {
        report.target.clone()
    } else {
        format!("{} ({})", report.label, report.target)
    };
    let _ = writeln!(
        out,
        "\n== {name}, MQTT {}, started {}",
        match config.mqtt_version {
            crate::config::MqttVersion::V311 => "3.1.1",
            crate::config::MqttVersion::V5 => "5.0",
        },
        format_unix_ms(report.started_unix_ms)
    );
    let p = &report.phases;
    let _ = writeln!(
        out,
        "phases: setup {:.2} s, warm-up {:.2} s, measured {:.2} s, drain {:.2} s ({})\n",
        p.setup_s,
        p.warmup_s,
        p.measure_s,
        p.drain_s,
        if p.drained {
            "everything arrived"
        } else {
            "timed out: some messages or acks never arrived"
        }
    );
    if p.interrupted {
        out.insert_str(
            out.len() - 1,
            "INTERRUPTED: the measured window was cut short\n",
        );
    }
    let mut rows = vec![[
        "block",
        "kind",
        "pubs",
        "subs",
        "idle",
        "qos",
        "payload",
        "offered/s",
        "published/s",
        "delivered/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "lost",
        "dup",
        "ooo",
    ]
    .map(str::to_owned)
    .to_vec()];
    for block in &report.blocks {
        let mut row = vec![
            block.name.clone(),
            block.kind.to_owned(),
            block.publishers.to_string(),
            block.subscribers.to_string(),
            block.idle.to_string(),
            block.qos.to_string(),
            format!("{} B", block.payload_bytes),
        ];
        row.extend(traffic_cells(&block.traffic, block.publishers > 0));
        rows.push(row);
    }
    if report.blocks.len() > 1 {
        let mut row = vec![
            "total".to_owned(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ];
        row.extend(traffic_cells(
            &report.total,
            report.blocks.iter().any(|b| b.publishers > 0),
        ));
        rows.push(row);
    }
    out.push_str(&columns(&rows, 2));
    out.push('\n');
    let t = &report.total;
    if t.acked + t.rejected + t.unacked + t.foreign + t.unexpected > 0 {
        let _ = writeln!(
            out,
            "acks      {} acked, {} rejected by the broker, {} never acked; {} foreign and {} unexpected deliveries",
            group_digits(t.acked),
            group_digits(t.rejected),
            group_digits(t.unacked),
            group_digits(t.foreign),
            group_digits(t.unexpected)
        );
    }
    let lossy: Vec<_> = report.publishers.iter().filter(|p| p.lost > 0).collect();
    if let Some(worst) = lossy.iter().max_by_key(|p| p.lost) {
        let _ = writeln!(
            out,
            "loss      {} of {} publishers lost messages; worst {}: {} of {} deliveries missing",
            lossy.len(),
            report.publishers.len(),
            worst.client_id,
            group_digits(worst.lost),
            group_digits(worst.expected)
        );
        if !report.phases.drained {
            out.push_str(
                "          the drain timed out: some of these were still in flight (raise --drain)\n",
            );
        }
    }
    if t.schedule_lag.count > 0 {
        let _ = writeln!(
            out,
            "schedule  publishes queued behind their fixed-rate schedule by p50 {} p99 {} max {}",
            opt_us(t.schedule_lag.p50_us),
            opt_us(t.schedule_lag.p99_us),
            opt_us(t.schedule_lag.max_us)
        );
    }
    let c = &report.connect;
    let _ = writeln!(
        out,
        "connect   {} connections in {:.2} s = {}/s (CPU harness {:.0}%{}); {}",
        group_digits(c.connections),
        c.setup_s,
        format_rate(c.rate_per_s),
        c.harness_cpu_pct,
        c.broker_cpu_pct
            .map_or_else(String::new, |cpu| format!(", broker {cpu:.0}%")),
        handshake_line("handshake", &c.handshake)
    );
    let _ = writeln!(
        out,
        "          {}; {}{}",
        handshake_line("TCP connect", &c.tcp_connect),
        handshake_line("CONNECT→CONNACK", &c.connack),
        if c.suback.count > 0 {
            format!("; {}", handshake_line("SUBACK", &c.suback))
        } else {
            String::new()
        }
    );
    match &report.broker {
        Some(b) => {
            let per_msg = b
                .cpu_us_per_delivered
                .map_or_else(String::new, |v| format!(" = {v:.2} µs per delivery"));
            let per_conn = b.rss_bytes_per_connection.map_or_else(String::new, |v| {
                format!(" = {:.1} KiB per connection", v / 1024.0)
            });
            let _ = writeln!(
                out,
                "broker    pid {}: {:.1}% CPU while measured{per_msg}",
                b.pid, b.cpu_pct
            );
            let _ = writeln!(
                out,
                "          RSS {} before, {} connected{per_conn}, {} at end; setup CPU {:.1} µs per connection",
                format_kib(b.rss_kib_before),
                format_kib(b.rss_kib_connected),
                format_kib(b.rss_kib_measure_end),
                b.setup_cpu_us_per_connection.unwrap_or(0.0)
            );
        }
        None => {
            out.push_str("broker    no --broker-pid given: broker CPU and memory not measured\n")
        }
    }
    let h = &report.harness;
    let per = h
        .cpu_us_per_message
        .map_or_else(String::new, |v| format!(" = {v:.2} µs per message handled"));
    let _ = writeln!(
        out,
        "harness   {:.1}% CPU with {} thread(s){per}{}",
        h.cpu_pct,
        h.threads,
        if h.saturated {
            " — SATURATED: these figures may measure the harness, not the broker"
        } else {
            ""
        }
    );
    if report.dropped.is_empty() {
        out.push_str("drops     none\n");
    } else {
        let _ = writeln!(
            out,
            "drops     {} connection(s) dropped:",
            report.dropped.len()
        );
        for d in report.dropped.iter().take(10) {
            let _ = writeln!(
                out,
                "          {} during {}: {}",
                d.client_id, d.phase, d.reason
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let rows = vec![
            vec!["a".to_owned(), "1".to_owned()],
            vec!["long".to_owned(), "1000".to_owned()],
        ];
        assert_eq!(columns(&rows, 1), "a        1\nlong  1000\n");
    }
}
