//! The harness against a real broker: short runs of every scenario against mosquitto that
//! check the counts (no loss at QoS 1, exactly once at QoS 2, fan-out multiplies, every
//! connection opened), the completeness of the JSON and HTML reports, compare mode, and that
//! refusals and dropped connections end the run non-zero with a message naming the client.
//!
//! Runs are 1-2 s each and nothing asserts timings: a slow machine only makes them slower.

// Test helpers (tests/common) are not `#[test]` functions, so clippy's allow-in-tests setting
// does not reach them; a panic with its message is the failure report a test needs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};

use common::{free_port, loadtest, read_json, run_ok, u64_at, Mosquitto};

/// Short run settings shared by the tests.
const SHORT: [&str; 6] = [
    "--duration",
    "1s",
    "--warmup",
    "300ms",
    "--quiet",
    "--connect-timeout=5s",
];

fn args<'a>(scenario: &[&'a str], broker: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut all = scenario.to_vec();
    all.extend(["--port", broker]);
    all.extend(SHORT);
    all.extend(extra);
    all
}

#[test]
fn fanout_delivers_every_message_to_every_subscriber_and_reports_completely() {
    let broker = Mosquitto::start();
    let port = broker.port.to_string();
    let pid = broker.pid().to_string();
    let json_path = broker.dir().join("fanout.json");
    let html_path = broker.dir().join("fanout.html");
    let json_arg = json_path.to_str().unwrap();
    let html_arg = html_path.to_str().unwrap();
    let output = run_ok(&args(
        &[
            "fanout",
            "--subscribers",
            "5",
            "--rate",
            "500",
            "--payload",
            "100",
        ],
        &port,
        &["--broker-pid", &pid, "--json", json_arg, "--html", html_arg],
    ));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("fanout") && stdout.contains("p99.9"),
        "{stdout}"
    );

    let report = read_json(&json_path);
    let published = u64_at(&report, "/total/published");
    assert!(published > 0);
    assert_eq!(u64_at(&report, "/total/expected"), published * 5);
    assert_eq!(u64_at(&report, "/total/received"), published * 5);
    assert_eq!(u64_at(&report, "/total/lost"), 0);
    assert_eq!(u64_at(&report, "/total/duplicates"), 0);
    assert_eq!(u64_at(&report, "/total/latency/count"), published * 5);
    for key in ["p50_us", "p90_us", "p99_us", "p999_us", "max_us", "min_us"] {
        assert!(
            report["total"]["latency"][key].is_u64(),
            "latency {key} missing"
        );
    }
    assert_eq!(u64_at(&report, "/connect/connections"), 6);
    assert_eq!(u64_at(&report, "/connect/handshake/count"), 6);
    assert_eq!(u64_at(&report, "/connect/suback/count"), 5);
    assert_eq!(report["config"]["blocks"][0]["kind"], "fanout");
    assert_eq!(report["config"]["blocks"][0]["payload_bytes"], 100);
    assert!(report["total"]["delivered_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["harness"]["cpu_pct"].is_number());
    assert_eq!(u64_at(&report, "/broker/pid"), u64::from(broker.pid()));
    assert!(u64_at(&report, "/broker/rss_kib_before") > 0);
    assert!(report["broker"]["cpu_us_per_delivered"].is_number());
    assert!(!report["series"].as_array().unwrap().is_empty());
    assert!(report["series"][0]["delivered_per_s"].is_number());
    assert!(!report["latency_percentiles"].as_array().unwrap().is_empty());
    let buckets: u64 = report["latency_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(buckets, published * 5);
    let publishers = report["publishers"].as_array().unwrap();
    assert_eq!(publishers.len(), 1);
    assert_eq!(publishers[0]["client_id"], "lt-fanout-p0");
    assert_eq!(publishers[0]["lost"], 0);
    assert!(report["dropped"].as_array().unwrap().is_empty());

    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.matches("<svg").count() >= 4,
        "the report has its plots"
    );
    assert!(html.contains("Latency by percentile") && html.contains("Throughput over time"));
    assert!(
        !html.contains("<script") && !html.contains(" src=") && !html.contains("href="),
        "self-contained"
    );
    assert!(
        !html
            .replace("http://www.w3.org/2000/svg", "")
            .contains("http"),
        "nothing fetched"
    );
}

#[test]
fn p2p_at_qos1_over_mqtt5_loses_nothing() {
    let broker = Mosquitto::start();
    let port = broker.port.to_string();
    let json_path = broker.dir().join("p2p.json");
    run_ok(&args(
        &[
            "p2p",
            "--pairs",
            "4",
            "--qos",
            "1",
            "--rate",
            "2000",
            "--mqtt-version",
            "5",
        ],
        &port,
        &["--json", json_path.to_str().unwrap()],
    ));
    let report = read_json(&json_path);
    let published = u64_at(&report, "/total/published");
    assert!(published > 0);
    assert_eq!(u64_at(&report, "/total/expected"), published);
    assert_eq!(u64_at(&report, "/total/received"), published);
    assert_eq!(u64_at(&report, "/total/lost"), 0);
    assert_eq!(u64_at(&report, "/total/duplicates"), 0);
    assert_eq!(u64_at(&report, "/total/unacked"), 0);
    assert_eq!(u64_at(&report, "/total/rejected"), 0);
    assert!(u64_at(&report, "/total/acked") >= published);
    assert_eq!(report["config"]["mqtt_version"], "5.0");
    let publishers = report["publishers"].as_array().unwrap();
    assert_eq!(publishers.len(), 4);
    assert!(publishers
        .iter()
        .all(|p| p["expected"] == p["published"] && p["lost"] == 0));
}

#[test]
fn fanin_at_qos2_and_max_rate_is_exactly_once() {
    let broker = Mosquitto::start();
    let port = broker.port.to_string();
    let json_path = broker.dir().join("fanin.json");
    run_ok(&args(
        &[
            "fanin",
            "--publishers",
            "4",
            "--qos",
            "2",
            "--rate",
            "max",
            "--inflight",
            "16",
        ],
        &port,
        &["--json", json_path.to_str().unwrap(), "--drain", "5s"],
    ));
    let report = read_json(&json_path);
    let published = u64_at(&report, "/total/published");
    assert!(published > 0);
    assert_eq!(
        u64_at(&report, "/total/received"),
        published,
        "every QoS 2 message arrives"
    );
    assert_eq!(u64_at(&report, "/total/duplicates"), 0, "and only once");
    assert_eq!(
        u64_at(&report, "/total/unacked"),
        0,
        "every PUBREC/PUBCOMP flow completed"
    );
    assert_eq!(report["total"]["offered_per_s"], serde_json::Value::Null);
}

#[test]
fn qos0_at_max_rate_keeps_an_end_to_end_window() {
    let broker = Mosquitto::start();
    let port = broker.port.to_string();
    let json_path = broker.dir().join("fanin0.json");
    run_ok(&args(
        &[
            "fanin",
            "--publishers",
            "4",
            "--qos",
            "0",
            "--rate",
            "max",
            "--inflight",
            "32",
        ],
        &port,
        &["--json", json_path.to_str().unwrap()],
    ));
    let report = read_json(&json_path);
    let published = u64_at(&report, "/total/published");
    assert!(published > 0);
    // With at most 4 x 32 messages between publishers and the subscriber, nothing piles up in
    // socket buffers: every measured message arrives within the drain.
    assert_eq!(u64_at(&report, "/total/received"), published);
    assert_eq!(report["phases"]["drained"], true);
}

#[test]
fn shared_group_gets_each_message_once() {
    let broker = Mosquitto::start();
    let port = broker.port.to_string();
    let json_path = broker.dir().join("shared.json");
    run_ok(&args(
        &[
            "shared",
            "--publishers",
            "2",
            "--subscribers",
            "3",
            "--qos",
            "1",
            "--rate",
            "600",
            "--mqtt-version",
            "5.0",
        ],
        &port,
        &["--json", json_path.to_str().unwrap()],
    ));
    let report = read_json(&json_path);
    let published = u64_at(&report, "/total/published");
    assert!(published > 0);
    assert_eq!(
        u64_at(&report, "/total/expected"),
        published,
        "a group gets each message once"
    );
    assert_eq!(u64_at(&report, "/total/received"), published);
    assert_eq!(u64_at(&report, "/total/duplicates"), 0);
}

#[test]
fn conn_opens_and_holds_every_connection_with_keepalive_pings() {
    let broker = Mosquitto::start();
    let port = broker.port.to_string();
    let pid = broker.pid().to_string();
    let json_path = broker.dir().join("conn.json");
    let json_arg = json_path.to_str().unwrap();
    // Keep-alive 1 s over a 2 s hold: without PINGREQs mosquitto would drop them all.
    run_ok(&[
        "conn",
        "--connections",
        "300",
        "--connect-rate",
        "2000",
        "--port",
        &port,
        "--duration",
        "2s",
        "--keep-alive",
        "1",
        "--quiet",
        "--broker-pid",
        &pid,
        "--json",
        json_arg,
    ]);
    let report = read_json(&json_path);
    assert_eq!(u64_at(&report, "/connect/connections"), 300);
    assert_eq!(u64_at(&report, "/connect/handshake/count"), 300);
    assert!(report["connect"]["rate_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["broker"]["rss_bytes_per_connection"].is_number());
    assert!(report["dropped"].as_array().unwrap().is_empty());
    let held = report["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["connections"].as_u64())
        .max();
    assert_eq!(held, Some(300));
}

#[test]
fn scenario_file_runs_overlapping_blocks_concurrently() {
    let broker = Mosquitto::start();
    let path = broker.dir().join("mixed.toml");
    std::fs::write(
        &path,
        r#"
        duration = "1s"
        warmup = "300ms"

        [[block]]
        name = "devices"
        kind = "fanin"
        publishers = 10
        subscribers = 2
        topic = "site/d{id}/telemetry"
        filter = "site/+/telemetry"
        qos = 1
        rate = 400

        [[block]]
        name = "ops"
        kind = "fanin"
        publishers = 0
        subscribers = 1
        filter = "site/#"

        [[block]]
        name = "cmd"
        kind = "p2p"
        pairs = 3
        qos = 2
        rate = 90

        [[block]]
        name = "idle"
        kind = "conn"
        connections = 20
        "#,
    )
    .unwrap();
    let json_path = broker.dir().join("mixed.json");
    let port = broker.port.to_string();
    run_ok(&[
        "run",
        path.to_str().unwrap(),
        "--port",
        &port,
        "--quiet",
        "--json",
        json_path.to_str().unwrap(),
    ]);
    let report = read_json(&json_path);
    let blocks = report["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 4);
    let devices = &blocks[0];
    let published = devices["published"].as_u64().unwrap();
    assert!(published > 0);
    assert_eq!(devices["expected"].as_u64().unwrap(), published * 2);
    assert_eq!(devices["lost"], 0);
    let ops = &blocks[1];
    assert_eq!(
        ops["expected"].as_u64().unwrap(),
        published,
        "the ops wildcard hears every device"
    );
    assert_eq!(ops["lost"], 0);
    assert_eq!(blocks[2]["lost"], 0);
    assert_eq!(blocks[2]["duplicates"], 0);
    assert_eq!(u64_at(&report, "/connect/connections"), 10 + 2 + 1 + 6 + 20);
}

#[test]
fn compare_runs_both_brokers_and_prints_them_side_by_side() {
    let first = Mosquitto::start();
    let second = Mosquitto::start();
    let a = format!("alpha=127.0.0.1:{},{}", first.port, first.pid());
    let b = format!("beta=127.0.0.1:{}", second.port);
    let json_path = first.dir().join("compare.json");
    let html_path = first.dir().join("compare.html");
    let output = run_ok(&[
        "compare",
        "--broker",
        &a,
        "--broker",
        &b,
        "fanout",
        "--subscribers",
        "3",
        "--rate",
        "300",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--quiet",
        "--json",
        json_path.to_str().unwrap(),
        "--html",
        html_path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("== compare"), "{stdout}");
    assert!(
        stdout.contains(&format!("alpha (127.0.0.1:{})", first.port)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("beta (127.0.0.1:{})", second.port)),
        "{stdout}"
    );
    assert!(
        stdout.contains("delivered/s") && stdout.contains('×'),
        "{stdout}"
    );
    let report = read_json(&json_path);
    assert_eq!(report["mode"], "compare");
    assert_eq!(report["baseline"], "alpha");
    assert_eq!(report["runs"].as_array().unwrap().len(), 2);
    assert_eq!(report["runs"][1]["label"], "beta");
    assert_eq!(report["runs"][1]["total"]["lost"], 0);
    assert!(report["ratios"]["beta"]["delivered/s"].is_number());
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("alpha") && html.contains("beta"));
}

#[test]
fn closed_port_fails_with_a_clear_message() {
    let port = free_port().to_string();
    let output = loadtest()
        .args([
            "fanout",
            "--port",
            &port,
            "--subscribers",
            "2",
            "--duration",
            "1s",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("could not set up") && stderr.contains("lt-fanout-"),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("refused"), "{stderr}");
}

#[test]
fn broker_refusal_fails_with_the_reason_code() {
    let broker = Mosquitto::with_config("allow_anonymous false\n");
    let port = broker.port.to_string();
    let output = loadtest()
        .args([
            "p2p",
            "--pairs",
            "2",
            "--port",
            &port,
            "--duration",
            "1s",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broker refused the connection"), "{stderr}");
    assert!(stderr.contains("Not authorized"), "{stderr}");
}

#[test]
fn dropped_connections_are_reported_with_client_ids() {
    let mut broker = Mosquitto::start();
    let port = broker.port.to_string();
    let mut child = loadtest()
        .args([
            "p2p",
            "--pairs",
            "3",
            "--qos",
            "1",
            "--port",
            &port,
            "--duration",
            "3s",
        ])
        .args(["--warmup", "0s", "--drain", "1s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the broker once the progress line says the measured window is running, so the
    // connections drop mid-run however slow the machine is.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let mut lines = stderr.lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let measuring = line.contains("] measure");
        seen.push(line);
        if measuring {
            broker.kill();
            break;
        }
    }
    seen.extend(lines.map_while(Result::ok));
    let status = child.wait().unwrap();
    let stderr = seen.join("\n");
    assert!(
        !status.success(),
        "a run that lost its broker must fail: {stderr}"
    );
    assert!(
        stderr.contains("connection lt-p2p-"),
        "the client id is named: {stderr}"
    );
    assert!(stderr.contains("dropped"), "{stderr}\n{}", broker.log());
}
