//! Real servers for the exporter sinks' tests: Redis, NATS with JetStream, and a
//! Kafka-protocol broker (tansu), each started on a free loopback port with its data in a
//! temporary directory of its own, and killed when dropped, so a failing test leaves no
//! process behind.
//!
//! `scripts/install-test-deps.sh` installs the three binaries; a missing one fails the test
//! with that advice rather than skipping it, so a machine without them cannot pass silently.
//!
//! Readiness is asked of each server in its own protocol (Redis answers `PING`, NATS sends an
//! `INFO` that says JetStream is on, tansu accepts a connection) instead of sleeping: how long
//! a server takes to start is never assumed.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// How long a server may take to become ready.
const READY: Duration = Duration::from_secs(30);

/// A server process on a fixed port, with its own directory.
struct Process {
    name: &'static str,
    program: PathBuf,
    port: u16,
    dir: PathBuf,
    /// Arguments for a port and directory.
    args: fn(u16, &Path) -> Vec<String>,
    /// Whether the server on this port is ready.
    ready: fn(u16) -> bool,
    child: Option<Child>,
}

/// The first of `candidates` that exists, else the program found on `PATH`; panics with the
/// install advice when there is none.
fn find_program(name: &str, candidates: &[PathBuf]) -> PathBuf {
    if let Some(found) = candidates.iter().find(|path| path.is_file()) {
        return found.clone();
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let path = dir.join(name);
            if path.is_file() {
                return path;
            }
        }
    }
    panic!("`{name}` is not installed: run scripts/install-test-deps.sh");
}

impl Process {
    fn start(
        name: &'static str,
        program: PathBuf,
        args: fn(u16, &Path) -> Vec<String>,
        ready: fn(u16) -> bool,
    ) -> Self {
        // A free port can be taken by someone else between the probe and the server's bind;
        // a server that exits at once gets another port.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("{name}-{}-{port}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mut process = Self {
                name,
                program: program.clone(),
                port,
                dir,
                args,
                ready,
                child: None,
            };
            match process.spawn_and_wait() {
                Ok(()) => return process,
                Err(log) => last_log = log,
            }
        }
        panic!("{name} did not start; its log:\n{last_log}");
    }

    /// Starts the process on its port and waits until it is ready; on failure returns its log.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(self.log_path()).unwrap();
        let child = Command::new(&self.program)
            .args((self.args)(self.port, &self.dir))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("start {}: {err}", self.program.display()));
        self.child = Some(child);
        let deadline = Instant::now() + READY;
        loop {
            if (self.ready)(self.port) {
                return Ok(());
            }
            let exited = self.child.as_mut().unwrap().try_wait().unwrap().is_some();
            if exited || Instant::now() > deadline {
                self.stop();
                return Err(self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.stop();
        if let Err(log) = self.spawn_and_wait() {
            panic!(
                "{} did not restart on port {}; its log:\n{log}",
                self.name, self.port
            );
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Connects to a loopback port, with short timeouts so a probe never hangs.
fn probe(port: u16) -> Option<TcpStream> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let stream = TcpStream::connect_timeout(&address, Duration::from_millis(500)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    stream
        .set_write_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    Some(stream)
}

/// A Redis server.
pub struct RedisServer(Process);

impl RedisServer {
    /// Starts `redis-server` without persistence and waits until it answers `PING`.
    pub fn start() -> Self {
        let program = find_program("redis-server", &[PathBuf::from("/usr/bin/redis-server")]);
        Self(Process::start(
            "redis",
            program,
            |port, dir| {
                [
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    dir.to_str().unwrap(),
                ]
                .map(str::to_owned)
                .to_vec()
            },
            |port| {
                let Some(mut stream) = probe(port) else {
                    return false;
                };
                let mut reply = [0u8; 7];
                stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut reply).is_ok()
                    && &reply == b"+PONG\r\n"
            },
        ))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.0.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// Kills the server; its data is gone.
    pub fn stop(&mut self) {
        self.0.stop();
    }

    /// Starts it again (empty) on the same port and waits until it answers.
    pub fn restart_on_same_port(&mut self) {
        self.0.restart();
    }
}

/// A NATS server with JetStream.
pub struct NatsServer(Process);

impl NatsServer {
    /// Starts `nats-server -js` with its store in a temporary directory and waits until its
    /// greeting says JetStream is on.
    pub fn start() -> Self {
        let program = find_program(
            "nats-server",
            &[
                PathBuf::from("/usr/sbin/nats-server"),
                PathBuf::from("/usr/bin/nats-server"),
            ],
        );
        Self(Process::start(
            "nats",
            program,
            |port, dir| {
                [
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-sd",
                    dir.to_str().unwrap(),
                ]
                .map(str::to_owned)
                .to_vec()
            },
            |port| {
                // The server greets every connection with one INFO line; JetStream is set up
                // before the listener opens, and the line says whether it is on.
                let Some(stream) = probe(port) else {
                    return false;
                };
                let mut info = String::new();
                BufReader::new(stream).read_line(&mut info).is_ok()
                    && info.starts_with("INFO ")
                    && info.contains("\"jetstream\":true")
            },
        ))
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.0.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        self.0.stop();
    }

    /// Starts it again on the same port with the same store.
    pub fn restart_on_same_port(&mut self) {
        self.0.restart();
    }
}

/// A Kafka-protocol broker: tansu, storing in memory.
pub struct KafkaServer(Process);

impl KafkaServer {
    /// Starts `tansu broker` with in-memory storage, listening and advertising
    /// 127.0.0.1:PORT, and waits until it accepts connections.
    pub fn start() -> Self {
        let mut candidates = Vec::new();
        if let Some(home) = std::env::var_os("CARGO_HOME") {
            candidates.push(PathBuf::from(home).join("bin/tansu"));
        }
        if let Some(home) = std::env::var_os("HOME") {
            candidates.push(PathBuf::from(home).join(".cargo/bin/tansu"));
        }
        let program = find_program("tansu", &candidates);
        Self(Process::start(
            "tansu",
            program,
            |port, _dir| {
                let url = format!("tcp://127.0.0.1:{port}");
                [
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                    "--storage-engine",
                    "memory://tansu/",
                ]
                .map(str::to_owned)
                .to_vec()
            },
            |port| probe(port).is_some(),
        ))
    }

    /// `127.0.0.1:PORT`, a bootstrap address.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.0.port)
    }

    /// The same as [`KafkaServer::bootstrap`]: Kafka addresses have no scheme.
    pub fn url(&self) -> String {
        self.bootstrap()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.0.port
    }

    /// Kills the broker; its data is gone.
    pub fn stop(&mut self) {
        self.0.stop();
    }

    /// Starts it again (empty) on the same port.
    pub fn restart_on_same_port(&mut self) {
        self.0.restart();
    }
}
