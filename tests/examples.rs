//! Every example config in `examples/` starts the broker as its comment says
//! (`starling --config examples/<name>.toml`): `check-config` accepts it, and the broker starts
//! with it, serves an MQTT client and stops cleanly on SIGTERM, with its sinks absent (the
//! exporters then retry in the background; the sinks' own tests run them against real servers).
//!
//! The examples are copied to a scratch directory first, since paths in them resolve against
//! the config file's directory and the JSON-lines example writes `events.jsonl` beside it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use common::{free_port, Broker};

fn repo_examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// A copy of `examples/` (with `hooks/`) in a scratch directory of its own.
fn scratch_copy(name: &str) -> PathBuf {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&target);
    copy_dir(&repo_examples(), &target);
    target
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the scratch directory");
    for entry in std::fs::read_dir(from).expect("read examples/") {
        let entry = entry.expect("directory entry");
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy an example");
        }
    }
}

fn example_configs(dir: &Path) -> Vec<PathBuf> {
    let mut configs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the examples")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    configs.sort();
    configs
}

/// Connects as `alice` (the topic-table example's password file has her; the other examples
/// let anyone in), subscribes to `topic` and publishes one message to it; returns what came
/// back.
fn round_trip(port: u16, topic: &str) -> Vec<u8> {
    let mut options = MqttOptions::new("example-check", "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_credentials("alice", "alice-secret");
    let (client, mut connection) = Client::new(options, 10);
    client
        .subscribe(topic, QoS::AtLeastOnce)
        .expect("queue the subscribe");
    for notification in connection.iter() {
        match notification.expect("the broker answers") {
            Event::Incoming(Packet::SubAck(_)) => {
                client
                    .publish(topic, QoS::AtLeastOnce, false, b"{\"ok\":true}".to_vec())
                    .expect("queue the publish");
            }
            Event::Incoming(Packet::Publish(publish)) => {
                let _ = client.disconnect();
                return publish.payload.to_vec();
            }
            _ => {}
        }
    }
    panic!("the connection ended before the message came back");
}

#[test]
fn every_example_passes_check_config() {
    let dir = scratch_copy("examples-check");
    let configs = example_configs(&dir);
    assert!(configs.len() >= 7, "examples: {configs:?}");
    for config in configs {
        let output = Command::new(env!("CARGO_BIN_EXE_starling"))
            .arg("check-config")
            .arg(&config)
            .output()
            .expect("run starling check-config");
        assert!(
            output.status.success(),
            "{}: {}",
            config.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn every_example_starts_serves_a_client_and_stops_cleanly() {
    let dir = scratch_copy("examples-run");
    for config in example_configs(&dir) {
        let name = config.file_stem().unwrap().to_string_lossy().into_owned();
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let broker = Broker::start_with(
            port,
            &[
                "--config",
                config.to_str().unwrap(),
                "--listen",
                &listen,
                "--shards",
                "1",
            ],
        );
        // The topic-table example closes the connection on any topic outside its table.
        let topic = if name == "topic-table" {
            "devices/alice/actions"
        } else {
            "examples/check"
        };
        assert_eq!(round_trip(port, topic), b"{\"ok\":true}", "{name}");
        broker.signal(libc::SIGTERM);
        let (status, log) = broker.wait();
        assert!(status.success(), "{name} exited with {status}:\n{log}");
    }
}
