//! The `--html` report: one self-contained page (inline CSS and SVG, no scripts, nothing
//! fetched) with the key figures, throughput and latency over time, the latency-by-percentile
//! curve, the latency histogram, connections and CPU over time, the per-block table and the
//! exact configuration. Several runs (compare mode) are overlaid, one colour per broker.

use std::fmt::Write;

use super::charts;
use super::svg::escape;
use super::RunReport;
use crate::units::{format_kib, format_rate, format_unix_ms, format_us, group_digits};

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1100px;color:#1f2937;padding:0 16px}\
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}\
.sub{color:#6b7280;font-size:13px}.cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:12px}\
.card{border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;min-width:140px;background:#f9fafb}\
.card .v{font-size:20px;font-weight:600}.card .k{font-size:12px;color:#6b7280}\
table{border-collapse:collapse;font-size:13px;margin-top:8px}td,th{border-bottom:1px solid #e5e7eb;padding:4px 6px;text-align:right;white-space:nowrap}.scroll{overflow-x:auto}\
td:first-child,th:first-child{text-align:left}.bad{color:#b91c1c;font-weight:600}.ok{color:#15803d}\
svg.chart{width:100%;height:auto;margin-top:8px}svg .title{font-size:14px;font-weight:600;fill:#111827}\
svg .tick,svg .legend{font-size:11px;fill:#4b5563}svg .label{font-size:12px;fill:#374151}\
svg .grid{stroke:#e5e7eb;stroke-width:1}svg .frame{fill:none;stroke:#9ca3af}pre{background:#f3f4f6;padding:10px;font-size:12px;overflow:auto}";

fn card(out: &mut String, key: &str, value: &str) {
    let _ = write!(
        out,
        "<div class=\"card\"><div class=\"v\">{}</div><div class=\"k\">{}</div></div>",
        escape(value),
        escape(key)
    );
}

fn opt_us(value: Option<u64>) -> String {
    value.map_or_else(|| "-".into(), format_us)
}

fn cards(out: &mut String, r: &RunReport) {
    let t = &r.total;
    out.push_str("<div class=\"cards\">");
    card(out, "delivered / s", &format_rate(t.delivered_per_s));
    card(out, "published / s", &format_rate(t.published_per_s));
    card(out, "latency p50", &opt_us(t.latency.p50_us));
    card(out, "latency p99", &opt_us(t.latency.p99_us));
    card(out, "latency p99.9", &opt_us(t.latency.p999_us));
    card(out, "latency max", &opt_us(t.latency.max_us));
    card(
        out,
        "lost",
        &format!("{} ({:.3}%)", group_digits(t.lost), t.loss_pct),
    );
    card(
        out,
        "duplicates / out of order",
        &format!(
            "{} / {}",
            group_digits(t.duplicates),
            group_digits(t.out_of_order)
        ),
    );
    card(out, "connections / s", &format_rate(r.connect.rate_per_s));
    card(out, "handshake p99", &opt_us(r.connect.handshake.p99_us));
    if let Some(b) = &r.broker {
        card(
            out,
            "broker CPU µs / delivery",
            &b.cpu_us_per_delivered
                .map_or("-".into(), |v| format!("{v:.2}")),
        );
        card(
            out,
            "broker RSS / connection",
            &b.rss_bytes_per_connection
                .map_or("-".into(), |v| format!("{:.1} KiB", v / 1024.0)),
        );
        card(
            out,
            "broker RSS connected",
            &format_kib(b.rss_kib_connected),
        );
    }
    card(
        out,
        "harness CPU",
        &format!(
            "{:.0}% of {} thread(s)",
            r.harness.cpu_pct, r.harness.threads
        ),
    );
    out.push_str("</div>");
    if r.harness.saturated {
        out.push_str("<p class=\"bad\">The harness was CPU-saturated: these figures may measure the harness, not the broker.</p>");
    }
    if !r.dropped.is_empty() {
        let _ = write!(
            out,
            "<p class=\"bad\">{} connection(s) dropped during the run:</p><ul>",
            r.dropped.len()
        );
        for d in r.dropped.iter().take(20) {
            let _ = write!(
                out,
                "<li>{} during {}: {}</li>",
                escape(&d.client_id),
                d.phase,
                escape(&d.reason)
            );
        }
        out.push_str("</ul>");
    }
}

fn blocks_table(out: &mut String, r: &RunReport) {
    out.push_str("<div class=\"scroll\"><table><tr><th>block</th><th>kind</th><th>pubs</th><th>subs</th><th>idle</th><th>QoS</th><th>payload</th>\
                  <th>published/s</th><th>delivered/s</th><th>p50</th><th>p99</th><th>p99.9</th><th>max</th><th>expected</th><th>lost</th><th>dup</th><th>ooo</th></tr>");
    for b in &r.blocks {
        let t = &b.traffic;
        let lost_class = if t.lost > 0 { "bad" } else { "ok" };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} B</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{lost_class}\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&b.name), b.kind, b.publishers, b.subscribers, b.idle, b.qos, b.payload_bytes,
            format_rate(t.published_per_s), format_rate(t.delivered_per_s), opt_us(t.latency.p50_us), opt_us(t.latency.p99_us),
            opt_us(t.latency.p999_us), opt_us(t.latency.max_us), group_digits(t.expected), group_digits(t.lost),
            group_digits(t.duplicates), group_digits(t.out_of_order)
        );
    }
    out.push_str("</table></div>");
}

/// Renders the page for one run, or several overlaid (compare mode).
pub fn render(reports: &[RunReport]) -> String {
    let mut out = String::new();
    let title = match reports {
        [one] if one.label == one.target => format!("Load test of {}", one.target),
        [one] => format!("Load test of {} ({})", one.label, one.target),
        many => format!(
            "Load test: {}",
            many.iter()
                .map(|r| r.label.as_str())
                .collect::<Vec<_>>()
                .join(" vs ")
        ),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        escape(&title),
        escape(&title)
    );
    if let Some(first) = reports.first() {
        let scenario: Vec<String> = first
            .config
            .blocks
            .iter()
            .map(|b| match b.kind.name() {
                kind if kind == b.name => kind.to_owned(),
                kind => format!("{} ({kind})", b.name),
            })
            .collect();
        let _ = write!(
            out,
            "<p class=\"sub\">starling-loadtest {} · scenario {} · measured {:.1} s after {:.1} s warm-up · started {}</p>",
            first.harness_version,
            escape(&scenario.join(", ")),
            first.phases.measure_s,
            first.phases.warmup_s,
            format_unix_ms(first.started_unix_ms)
        );
    }
    for r in reports {
        if reports.len() > 1 {
            let _ = write!(out, "<h2>{} ({})</h2>", escape(&r.label), escape(&r.target));
        }
        cards(&mut out, r);
    }
    out.push_str("<h2>Plots</h2>");
    for chart in &charts::all(reports) {
        out.push_str(&chart.render());
    }
    for r in reports {
        let _ = write!(out, "<h2>Blocks — {}</h2>", escape(&r.label));
        blocks_table(&mut out, r);
    }
    if let Some(first) = reports.first() {
        let config = serde_json::to_string_pretty(&first.config).unwrap_or_default();
        let _ = write!(out, "<h2>Configuration</h2><pre>{}</pre>", escape(&config));
    }
    out.push_str("</body></html>\n");
    out
}
