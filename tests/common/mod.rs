//! The shared broker harness of the integration tests: starts the real `starling` binary on a
//! free loopback port with a given shard count and extra config, reads its JSON log lines to
//! learn which shard each client landed on, and stops it with SIGTERM.
//!
//! Each test file that uses it declares `mod common;`. Every broker started here is killed when
//! its `Broker` is dropped, so a failing test leaves no process behind.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod servers;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long the harness waits for the broker to start, or for a log line.
pub const WAIT: Duration = Duration::from_secs(15);

/// A running broker process.
pub struct Broker {
    child: Option<Child>,
    /// The loopback port it listens on.
    pub port: u16,
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
}

/// A loopback port nobody listens on: bound by the OS for a moment, then released.
pub fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

impl Broker {
    /// Starts `starling` with `shards` shards; `extra_config` is TOML appended to the config
    /// file (for instance `"[mqtt]\nmax_queued_messages = 5\n"`).
    pub fn start(shards: usize, extra_config: &str) -> Self {
        let port = free_port();
        let config = format!(
            "[[listeners]]\nname = \"test\"\nbind = \"127.0.0.1:{port}\"\n\n[log]\nformat = \"json\"\nlevel = \"info\"\n\n{extra_config}"
        );
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("broker-{port}.toml"));
        std::fs::write(&path, config).unwrap();
        let shards = shards.to_string();
        Self::start_with(
            port,
            &["--config", path.to_str().unwrap(), "--shards", &shards],
        )
    }

    /// Starts `starling` with these command-line arguments and waits for `broker started`;
    /// `port` is where the arguments make it listen.
    pub fn start_with(port: u16, args: &[&str]) -> Self {
        let broker = Self::spawn(port, args);
        broker.wait_for_log(|line| line.contains("broker started"));
        broker
    }

    /// Runs `starling` with these arguments without waiting for anything; its standard error
    /// (the log) is collected line by line.
    pub fn spawn(port: u16, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_starling"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start starling");
        let stderr = child.stderr.take().unwrap();
        let log: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let (lines, changed) = &*lines;
                lines.lock().unwrap().push(line);
                changed.notify_all();
            }
        });
        Self {
            child: Some(child),
            port,
            log,
        }
    }

    /// The broker's process id (for /proc/<pid>/status).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The broker's log lines so far.
    pub fn log(&self) -> Vec<String> {
        self.log.0.lock().unwrap().clone()
    }

    /// Waits until a log line satisfies `wanted`; returns it. Panics after [`WAIT`].
    pub fn wait_for_log(&self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let (lines, changed) = &*self.log;
        let mut guard = lines.lock().unwrap();
        loop {
            if let Some(line) = guard.iter().find(|line| wanted(line)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no such log line; the log:\n{}",
                guard.join("\n")
            );
            guard = changed.wait_timeout(guard, left).unwrap().0;
        }
    }

    /// The shard the client `client_id` was connected on, the last time it connected (from
    /// the broker's `client connected` log line). Waits for the line.
    pub fn shard_of(&self, client_id: &str) -> usize {
        let needle = format!("\"client_id\":\"{client_id}\"");
        self.wait_for_log(|line| line.contains("client connected") && line.contains(&needle));
        let line = self
            .log()
            .into_iter()
            .rev()
            .find(|line| line.contains("client connected") && line.contains(&needle))
            .unwrap();
        let shard = line.split("\"shard\":").nth(1).expect("a shard field");
        shard
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Sends `signal` to the broker process.
    pub fn signal(&self, signal: libc::c_int) {
        let child = self.child.as_ref().unwrap();
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0);
    }

    /// Waits for the process to exit (at most [`WAIT`], then kills it and panics) and returns
    /// its status and its whole log.
    pub fn wait(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + WAIT;
        // Counted in polls, not read from the clock: a machine that stalls (a paused VM, an
        // overloaded host) must not fail the first look after the stall.
        let mut polls_left = WAIT.as_millis() / 20;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            polls_left -= 1;
            if polls_left == 0 {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the broker did not exit within {WAIT:?}; its log:\n{}",
                    self.log().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread ends at EOF, right after the exit; give it that moment.
        while Arc::strong_count(&self.log) > 1 && Instant::now() < deadline + WAIT {
            std::thread::sleep(Duration::from_millis(10));
        }
        (status, self.log().join("\n"))
    }

    /// Stops the broker with SIGTERM and returns its exit status.
    pub fn stop(self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait().0
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Broker {
    /// The shard of the `nth` connection (1 for the first) of the client `client_id`, from the
    /// broker's `client connected` log lines; waits for that line. Unlike [`Broker::shard_of`],
    /// which reads the latest line, this cannot mistake an earlier connection of the same id
    /// for the one just made when its log line has not been read yet.
    pub fn shard_of_nth(&self, client_id: &str, nth: usize) -> usize {
        assert!(nth > 0, "connections are counted from 1");
        let needle = format!("\"client_id\":\"{client_id}\"");
        let is_connection =
            |line: &str| line.contains("client connected") && line.contains(&needle);
        let deadline = Instant::now() + WAIT;
        let (lines, changed) = &*self.log;
        let mut guard = lines.lock().unwrap();
        loop {
            if let Some(line) = guard.iter().filter(|line| is_connection(line)).nth(nth - 1) {
                let shard = line.split("\"shard\":").nth(1).expect("a shard field");
                return shard
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no connection {nth} of {client_id}; the log:\n{}",
                guard.join("\n")
            );
            guard = changed.wait_timeout(guard, left).unwrap().0;
        }
    }
}
