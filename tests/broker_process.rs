//! The `starling` process as an operator sees it: started from the embedded defaults with only
//! command-line flags, `--shards 0`, the JSON log's `client connected` line, SIGTERM and SIGINT
//! (exit 0, MQTT 5 clients told 0x8B, 3.x clients closed), a second broker on a taken port, and a
//! bad config file.
//!
//! Every test runs the real binary on a free loopback port (never 1883, which may be taken on a
//! CI machine) with real clients: mosquitto_sub/mosquitto_pub and, where the test must know a
//! client's own port or see the raw close, a hand-written 3.1.1 client on a `TcpStream`. Every
//! process a test starts is killed when its guard drops, so a failing test leaves none behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{free_port, Broker, WAIT};
use starling::config::{available_cpus, Config};

/// Writes `text` to a config file of its own under Cargo's scratch directory.
fn config_file(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("process-{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A config file with one listener named `test` on `port` and JSON logs.
fn json_config(port: u16) -> PathBuf {
    config_file(
        &format!("json-{port}"),
        &format!(
            "[[listeners]]\nname = \"test\"\nbind = \"127.0.0.1:{port}\"\n\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n"
        ),
    )
}

/// Waits until `child` exits, at most [`WAIT`]; kills it and panics after that.
fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The JSON `client connected` line of `client_id` (waits for it).
fn connected_line(broker: &Broker, client_id: &str) -> String {
    let needle = format!("\"client_id\":\"{client_id}\"");
    broker.wait_for_log(|line| line.contains("\"client connected\"") && line.contains(&needle))
}

/// The shard `client_id` connected on, from its first JSON `client connected` line.
fn shard_of(broker: &Broker, client_id: &str) -> usize {
    json_number(&connected_line(broker, client_id), "shard")
}

/// The value of a numeric field of a JSON log line, such as `"shard":1`.
fn json_number(line: &str, field: &str) -> usize {
    let value = line
        .split(&format!("\"{field}\":"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {field} in {line}"));
    value
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number in {line}"))
}

/// A mosquitto client process whose standard output and error are read line by line.
struct Mosquitto {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Mosquitto {
    /// Runs `program` (mosquitto_sub or mosquitto_pub) against `port` with debug output.
    fn spawn(program: &str, port: u16, args: &[&str]) -> Self {
        let port = port.to_string();
        // Piped, mosquitto's stdio would hold its lines until exit: `stdbuf -oL` makes them
        // line-buffered.
        let mut child = Command::new("stdbuf")
            .args(["-oL", "-eL", program, "-h", "127.0.0.1", "-p", &port, "-d"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for an output line containing `text`; panics with the output after [`WAIT`].
    fn wait_line(&mut self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        if let Some(line) = self.seen.iter().find(|line| line.contains(text)) {
            return line.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {text:?}; output:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn wait_exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child, "a mosquitto client")
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A subscriber on `topic` connected with `version` and `id`, subscribed when this returns.
fn subscriber(port: u16, version: &str, id: &str, topic: &str) -> Mosquitto {
    let mut sub = Mosquitto::spawn(
        "mosquitto_sub",
        port,
        &[
            "-V",
            version,
            "-i",
            id,
            "-q",
            "1",
            "-t",
            topic,
            "-F",
            "MSG|%t|%p",
        ],
    );
    sub.wait_line("received SUBACK");
    sub
}

/// Publishes one QoS 1 message with mosquitto_pub and checks that it exits 0.
fn publish(port: u16, topic: &str, payload: &str) {
    let mut publisher = Mosquitto::spawn(
        "mosquitto_pub",
        port,
        &["-q", "1", "-t", topic, "-m", payload],
    );
    let status = publisher.wait_exit();
    assert!(status.success(), "mosquitto_pub: {status}");
}

/// One subscriber, one publisher: the broker on `port` routes a message end to end.
fn round_trip(port: u16, id: &str) {
    let topic = format!("process/{id}");
    let mut sub = subscriber(port, "5", id, &topic);
    publish(port, &topic, "hello");
    sub.wait_line(&format!("MSG|{topic}|hello"));
}

/// A raw MQTT 3.1.1 client: CONNECT with `client_id`, then the CONNACK is read.
fn raw_v311_client(port: u16, client_id: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let id = client_id.as_bytes();
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60];
    body.extend_from_slice(&(id.len() as u16).to_be_bytes());
    body.extend_from_slice(id);
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend_from_slice(&body);
    stream.write_all(&packet).unwrap();
    let mut connack = [0_u8; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "CONNACK accepted, no session");
    stream
}

#[test]
fn the_defaults_with_only_listen_and_shards_flags_run_a_working_broker() {
    // The embedded default listener is 127.0.0.1:1883: in the library and in the printed file.
    let default = Config::default();
    assert_eq!(default.listeners.len(), 1);
    assert_eq!(default.listeners[0].name, "default");
    assert_eq!(
        default.listeners[0].bind,
        "127.0.0.1:1883".parse::<SocketAddr>().unwrap()
    );
    let generated = Command::new(env!("CARGO_BIN_EXE_starling"))
        .arg("generate-config")
        .output()
        .unwrap();
    assert!(generated.status.success());
    let text = String::from_utf8(generated.stdout).unwrap();
    assert!(text.contains("bind = \"127.0.0.1:1883\""), "{text}");

    // No config file: every other key keeps its default (human-readable logs included).
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let broker = Broker::start_with(port, &["--shards", "2", "--listen", &listen]);
    let log = broker.log().join("\n");
    assert!(
        log.contains(&format!("listeners: {listen} (tcp {listen})")),
        "{log}"
    );
    assert!(log.contains("shards: 2 on CPUs "), "{log}");
    assert!(
        !log.lines().any(|line| line.starts_with('{')),
        "the default log format is human-readable:\n{log}"
    );
    round_trip(port, "defaults");
    broker.signal(libc::SIGTERM);
    let (status, log) = broker.wait();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("broker stopped"), "{log}");
}

#[test]
fn shards_0_starts_one_shard_per_cpu() {
    let cpus = available_cpus().unwrap().len();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let broker = Broker::start_with(port, &["--shards", "0", "--listen", &listen]);
    let log = broker.log().join("\n");
    assert!(log.contains(&format!("shards: {cpus} on CPUs ")), "{log}");
    assert!(
        log.contains(&format!("broker started shards={cpus}")),
        "{log}"
    );
    round_trip(port, "zero");
    broker.signal(libc::SIGTERM);
    let (status, log) = broker.wait();
    assert_eq!(status.code(), Some(0), "{log}");
}

/// Starts a 2-shard broker with JSON logs, connects MQTT 5 subscribers until one is on each
/// shard and a raw 3.1.1 client, sends `signal` and checks the orderly stop.
fn stop_with(signal: libc::c_int, name: &str) {
    let port = free_port();
    let config = json_config(port);
    let broker = Broker::start_with(
        port,
        &["--config", config.to_str().unwrap(), "--shards", "2"],
    );
    let mut v5_clients: Vec<Option<Mosquitto>> = vec![None, None];
    for attempt in 0..50 {
        if v5_clients.iter().all(Option::is_some) {
            break;
        }
        let id = format!("stop-{attempt}");
        let sub = subscriber(port, "5", &id, "stop/t");
        let shard = shard_of(&broker, &id);
        if v5_clients[shard].is_none() {
            v5_clients[shard] = Some(sub);
        }
    }
    let mut v5_clients: Vec<Mosquitto> = v5_clients
        .into_iter()
        .map(|client| client.expect("no MQTT 5 client landed on one of the shards"))
        .collect();
    let mut v311 = raw_v311_client(port, "stop-raw");
    connected_line(&broker, "stop-raw");

    broker.signal(signal);
    let (status, log) = broker.wait();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains(&format!("\"signal\":\"{name}\"")) && log.contains("broker stopped"),
        "{log}"
    );
    for client in &mut v5_clients {
        // mosquitto_sub -d prints the reason code of a server's DISCONNECT: 139 is 0x8B.
        client.wait_line("Received DISCONNECT (139)");
        client.wait_exit();
    }
    // 3.1.1 has no server DISCONNECT: the connection is just closed.
    let mut rest = Vec::new();
    let closed = v311.read_to_end(&mut rest);
    assert!(
        matches!(closed, Ok(0))
            || matches!(&closed, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{closed:?} {rest:?}"
    );
    assert!(rest.is_empty(), "nothing but the close: {rest:?}");
}

#[test]
fn sigterm_stops_it_with_status_0_after_telling_clients() {
    stop_with(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_stops_it_with_status_0_after_telling_clients() {
    stop_with(libc::SIGINT, "SIGINT");
}

#[test]
fn a_second_broker_on_the_same_port_fails_fast_naming_the_listener() {
    let port = free_port();
    let config = json_config(port);
    let config = config.to_str().unwrap();
    let first = Broker::start_with(port, &["--config", config, "--shards", "2"]);

    // The same file: its listener is named `test`.
    let second = Broker::spawn(port, &["--config", config, "--shards", "2"]);
    let (status, log) = second.wait();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!(
            "starling: listener test (127.0.0.1:{port}): cannot bind: "
        )),
        "{log}"
    );
    assert!(!log.contains("broker started"), "{log}");

    // `--listen` names the listener after its address.
    let listen = format!("127.0.0.1:{port}");
    let third = Broker::spawn(port, &["--listen", &listen, "--shards", "2"]);
    let (status, log) = third.wait();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("listener {listen} ({listen}): cannot bind")),
        "{log}"
    );

    // The first one still has every connection: none went to a half-started second.
    for n in 0..4 {
        round_trip(port, &format!("first-{n}"));
    }
    first.signal(libc::SIGTERM);
    let (status, log) = first.wait();
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn a_bad_config_file_stops_it_naming_the_key() {
    let port = free_port();
    let cases = [
        (
            "unknown-key",
            format!("[[listeners]]\nbind = \"127.0.0.1:{port}\"\n[log]\nformt = \"json\"\n"),
            "log.formt: unknown key `formt`",
        ),
        (
            "bad-bind",
            "[[listeners]]\nbind = \"127.0.0.1:99999\"\n".to_owned(),
            "listeners[0].bind: must be IP:PORT",
        ),
        (
            "bad-value",
            format!(
                "[[listeners]]\nbind = \"127.0.0.1:{port}\"\n[mqtt]\nmax_packet_size_bytes = 0\n"
            ),
            "mqtt.max_packet_size_bytes: must be between",
        ),
    ];
    for (name, text, expected) in cases {
        let path = config_file(name, &text);
        let path = path.to_str().unwrap();
        let broker = Broker::spawn(port, &["--config", path, "--shards", "2"]);
        let (status, log) = broker.wait();
        assert_eq!(status.code(), Some(1), "{name}: {log}");
        assert!(
            log.starts_with(&format!("starling: {path}: {expected}")),
            "{name}: {log}"
        );
        assert!(!log.contains("broker started"), "{name}: {log}");
    }
}

#[test]
fn the_json_log_has_a_client_connected_line_per_client() {
    let port = free_port();
    let config = json_config(port);
    let broker = Broker::start_with(
        port,
        &["--config", config.to_str().unwrap(), "--shards", "2"],
    );

    let raw = raw_v311_client(port, "json-raw");
    let line = connected_line(&broker, "json-raw");
    let local = raw.local_addr().unwrap();
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    assert!(line.contains("\"level\":\"INFO\""), "{line}");
    assert!(line.contains("\"timestamp\":\""), "{line}");
    assert!(
        line.contains("\"fields\":{\"message\":\"client connected\","),
        "{line}"
    );
    assert!(line.contains(&format!("\"peer\":\"{local}\"")), "{line}");
    assert_eq!(json_number(&line, "protocol"), 4, "{line}");
    assert!(shard_of(&broker, "json-raw") < 2, "{line}");

    for (version, level) in [("31", 3), ("311", 4), ("5", 5)] {
        let id = format!("json-v{version}");
        let _sub = subscriber(port, version, &id, "json/t");
        let line = connected_line(&broker, &id);
        assert_eq!(json_number(&line, "protocol"), level, "{line}");
        assert!(line.contains("\"peer\":\"127.0.0.1:"), "{line}");
        assert!(shard_of(&broker, &id) < 2, "{line}");
    }
    // Every line the broker wrote is one JSON object.
    for line in broker.log() {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    }
    drop(raw);
    broker.signal(libc::SIGTERM);
    let (status, log) = broker.wait();
    assert_eq!(status.code(), Some(0), "{log}");
}
