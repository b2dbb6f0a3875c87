//! Shared harness of the integration tests: a real mosquitto on a free loopback port with a
//! minimal config in a temporary directory, killed when dropped, and a runner for the
//! `starling-loadtest` binary that parses its JSON report.
//!
//! It only ever starts brokers on 127.0.0.1 and only points the harness at them.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A mosquitto process for one test.
pub struct Mosquitto {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: TempDir,
}

/// The mosquitto binary: on PATH, or where Debian installs it.
fn mosquitto_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("mosquitto"))
            .collect::<Vec<_>>()
    });
    on_path
        .chain([PathBuf::from("/usr/sbin/mosquitto")])
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "mosquitto not found on PATH or at /usr/sbin/mosquitto; the loadtest integration \
                 tests need it: install it with `apt-get install -y mosquitto`"
            )
        })
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

impl Mosquitto {
    /// Starts mosquitto with anonymous access and generous queues.
    pub fn start() -> Self {
        Self::with_config("allow_anonymous true\n")
    }

    /// Starts mosquitto with `extra` appended to the base config.
    pub fn with_config(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let config = format!(
            "listener {port} 127.0.0.1\n\
             persistence false\n\
             set_tcp_nodelay true\n\
             max_queued_messages 100000\n\
             max_inflight_messages 0\n\
             log_dest stderr\n\
             log_type error\n\
             log_type warning\n\
             {extra}"
        );
        let config_path = dir.path().join("mosquitto.conf");
        std::fs::write(&config_path, config).expect("write mosquitto.conf");
        let log = std::fs::File::create(dir.path().join("mosquitto.log")).expect("create log");
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        let mut broker = Self { child, port, dir };
        broker.wait_until_listening();
        broker
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mosquitto exited with {status}: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "mosquitto did not listen on port {} within 10 s: {}",
            self.port,
            self.log()
        );
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Kills it now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A directory for the test's files, removed with the broker.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The harness binary.
pub fn loadtest() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_starling-loadtest"));
    command.stdin(Stdio::null());
    command
}

/// Runs the harness with `args`, asserts success, and returns its output.
pub fn run_ok(args: &[&str]) -> Output {
    let output = loadtest()
        .args(args)
        .output()
        .expect("run starling-loadtest");
    assert!(
        output.status.success(),
        "starling-loadtest {args:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Reads a JSON report.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("read the JSON report");
    serde_json::from_str(&text).expect("the JSON report parses")
}

/// A u64 at `pointer` (e.g. `/total/lost`), with a clear failure.
pub fn u64_at(json: &serde_json::Value, pointer: &str) -> u64 {
    json.pointer(pointer)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("no integer at {pointer}"))
}
