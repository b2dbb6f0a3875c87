//! One shard over real sockets with real clients: a glommio executor accepts on a loopback
//! port and serves every connection with `serve_connection` and one `ShardEngine`;
//! `mosquitto_sub` and `mosquitto_pub` (Debian's mosquitto-clients, installed by
//! scripts/install-test-deps.sh) talk to it in MQTT 3.1.1 and 5.0.

// Tests report failures by panicking with the message.
#![allow(clippy::expect_used)]
use std::cell::RefCell;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use starling::net::{serve_connection, ConnectionSettings, ReadScratch};
use starling::session::BrokerLimits;
use starling::shard::ShardEngine;
use starling::topic::ShareStrategy;

/// Starts a one-shard broker on a free loopback port in a background thread; returns the port.
fn start_broker() -> u16 {
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let executor = LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(128 * 1024)
            .ring_depth(256)
            .make()
            .expect("executor");
        executor.run(async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            port_tx
                .send(listener.local_addr().expect("addr").port())
                .expect("port");
            let limits = Arc::new(BrokerLimits::default());
            let engine = Rc::new(RefCell::new(ShardEngine::new(
                0,
                limits,
                true,
                ShareStrategy::RoundRobin,
            )));
            let settings = ConnectionSettings {
                max_packet_size: 1 << 20,
                outbound_budget_bytes: 1 << 20,
                connect_timeout: Duration::from_secs(10),
            };
            let scratch = Rc::new(RefCell::new(ReadScratch::new(16 * 1024)));
            // The thread ends with the test process.
            while let Ok(stream) = listener.accept().await {
                let connection =
                    serve_connection(stream, Rc::clone(&engine), Rc::clone(&scratch), settings);
                glommio::spawn_local(connection).detach();
            }
        });
    });
    port_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("broker started")
}

fn mosquitto_sub(port: u16, version: &str, topic: &str, count: u32) -> std::process::Child {
    Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-V",
            version,
            "-t",
            topic,
            "-q",
            "1",
        ])
        .args(["-C", &count.to_string(), "-W", "10", "-v"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub is installed (scripts/install-test-deps.sh)")
}

fn mosquitto_pub(port: u16, version: &str, topic: &str, message: &str, extra: &[&str]) {
    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-V",
            version,
            "-t",
            topic,
            "-m",
            message,
        ])
        .args(extra)
        .status()
        .expect("mosquitto_pub is installed");
    assert!(status.success(), "mosquitto_pub failed");
}

/// Publishes until the subscriber has its messages: its SUBACK timing is not observable from
/// here, so the first publishes may come before the subscription exists.
fn publish_until_received(port: u16, sub: std::process::Child, publish: impl Fn()) -> String {
    let pid = sub.id();
    let waiter = std::thread::spawn(move || sub.wait_with_output().expect("sub output"));
    for _ in 0..50 {
        if waiter.is_finished() {
            break;
        }
        publish();
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = waiter.join().expect("join");
    assert!(
        output.status.success(),
        "mosquitto_sub (pid {pid}) on port {port} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn mosquitto_clients_publish_and_subscribe_in_v311_and_v5() {
    let port = start_broker();
    for version in ["mqttv311", "mqttv5"] {
        let topic = format!("test/{version}/+");
        let sub = mosquitto_sub(port, version, &topic, 1);
        let out = publish_until_received(port, sub, || {
            mosquitto_pub(
                port,
                version,
                &format!("test/{version}/a"),
                "hello",
                &["-q", "1"],
            );
        });
        assert_eq!(out.trim(), format!("test/{version}/a hello"));
    }
}

#[test]
fn a_retained_message_reaches_a_later_subscriber_with_qos2() {
    let port = start_broker();
    mosquitto_pub(port, "mqttv5", "state/lamp", "on", &["-r", "-q", "2"]);
    let sub = mosquitto_sub(port, "mqttv311", "state/#", 1);
    let output = sub.wait_with_output().expect("sub");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "state/lamp on"
    );
}
