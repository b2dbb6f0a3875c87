//! Shards on real glommio executors and listeners on real sockets: start-up, the kernel's
//! SO_REUSEPORT spreading, dual-stack listeners, and the errors of shards that cannot start.
//!
//! Every test ends by itself: shards stop when their work is done or at a deadline, and no
//! test asserts on timings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpStream};
use std::num::NonZeroU32;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::future;
use starling::config::{available_cpus, Config, CpuId, ListenerConfig, Transport, TuningConfig};
use starling::net::bind_listener;
use starling::shard::{spawn_shards, ShardStartError};
use starling::topic::ShardId;

/// How long a test's shards keep at their work before giving up.
const TEST_DEADLINE: Duration = Duration::from_secs(30);

fn tuning() -> TuningConfig {
    Config::default().tuning
}

/// Two CPUs for two shards: the first two this process may use, or the one it has twice.
fn two_shard_cpus() -> Vec<CpuId> {
    match available_cpus().unwrap().as_slice() {
        [first, second, ..] => vec![*first, *second],
        [only] => vec![*only, *only],
        [] => panic!("the affinity mask is empty"),
    }
}

/// A loopback port nobody listens on: bound by the OS for a moment, then released.
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

fn listener_on(bind: SocketAddr) -> ListenerConfig {
    ListenerConfig {
        name: "test".to_owned(),
        bind,
        transport: Transport::Tcp,
        backlog: NonZeroU32::new(1024).unwrap(),
    }
}

/// Sleeps on the shard until `count` reaches `target` or the deadline passes.
async fn until_reached(count: &AtomicUsize, target: usize, deadline: Instant) {
    while count.load(Ordering::SeqCst) < target && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn the_kernel_spreads_connections_over_the_shards() {
    const CONNECTIONS: usize = 200;
    let cpus = two_shard_cpus();
    let port = free_port();
    let config = listener_on(SocketAddr::from(([127, 0, 0, 1], port)));
    let total = Arc::new(AtomicUsize::new(0));
    let per_shard: Arc<Vec<AtomicUsize>> = Arc::new(cpus.iter().map(|_| 0.into()).collect());
    let started: Arc<Mutex<Vec<ShardId>>> = Arc::default();
    let (bound_tx, bound_rx) = mpsc::channel::<Result<(), String>>();
    let deadline = Instant::now() + TEST_DEADLINE;

    let shards = {
        let (total, per_shard, started) = (total.clone(), per_shard.clone(), started.clone());
        spawn_shards(&cpus, &tuning(), move |shard| {
            let (config, bound_tx) = (config.clone(), bound_tx.clone());
            let (total, per_shard, started) = (total.clone(), per_shard.clone(), started.clone());
            async move {
                started.lock().unwrap().push(shard);
                let listener = match bind_listener(&config) {
                    Ok(listener) => listener,
                    Err(error) => {
                        bound_tx.send(Err(format!("{shard}: {error}"))).unwrap();
                        return;
                    }
                };
                bound_tx.send(Ok(())).unwrap();
                // Accepted streams stay open until the end, like a broker's connections.
                let mut accepted = Vec::new();
                loop {
                    // The accept goes first: while connections are still coming, no accept is
                    // dropped half done; once all have come, the other shard's pending accept
                    // is cancelled by the count reaching the target.
                    let next = future::or(async { Some(listener.accept().await) }, async {
                        until_reached(&total, CONNECTIONS, deadline).await;
                        None
                    })
                    .await;
                    match next {
                        Some(Ok(stream)) => {
                            accepted.push(stream);
                            per_shard[shard.index()].fetch_add(1, Ordering::SeqCst);
                            total.fetch_add(1, Ordering::SeqCst);
                        }
                        Some(Err(error)) => panic!("{shard}: accept failed: {error}"),
                        None => break,
                    }
                }
            }
        })
        .unwrap()
    };
    assert_eq!(shards.len(), 2);
    // Connect only once every shard has its socket in the port's group; until then the kernel
    // would hand every connection to the shards already there.
    for _ in 0..cpus.len() {
        bound_rx
            .recv_timeout(TEST_DEADLINE)
            .expect("a shard did not bind")
            .unwrap();
    }
    let clients: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    shards.join().unwrap();
    drop(clients);

    let mut ids = started.lock().unwrap().clone();
    ids.sort();
    assert_eq!(ids, [ShardId::new(0).unwrap(), ShardId::new(1).unwrap()]);
    let counts: Vec<usize> = per_shard.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert_eq!(total.load(Ordering::SeqCst), CONNECTIONS, "{counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), CONNECTIONS);
    // SO_REUSEPORT picks the socket by a hash of each connection's ports: the chance that 200
    // connections all land on one of two shards is 2^-199.
    assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
}

#[test]
fn an_ipv6_wildcard_listener_accepts_ipv4_clients_on_a_shard() {
    if std::net::TcpListener::bind("[::]:0").is_err() {
        eprintln!("skipped: this machine has no IPv6");
        return;
    }
    let port = free_port();
    let config = listener_on(SocketAddr::from(([0u16; 8], port)));
    let (bound_tx, bound_rx) = mpsc::channel::<Result<(), String>>();
    let (peer_tx, peer_rx) = mpsc::channel::<Result<SocketAddr, String>>();
    let shards = spawn_shards(&two_shard_cpus()[..1], &tuning(), move |_| {
        let (config, bound_tx, peer_tx) = (config.clone(), bound_tx.clone(), peer_tx.clone());
        async move {
            let listener = match bind_listener(&config) {
                Ok(listener) => listener,
                Err(error) => {
                    bound_tx.send(Err(error.to_string())).unwrap();
                    return;
                }
            };
            bound_tx.send(Ok(())).unwrap();
            let deadline = async {
                glommio::timer::sleep(TEST_DEADLINE).await;
                Err("no connection before the deadline".to_owned())
            };
            let accepted = future::or(
                async {
                    let stream = listener.accept().await.map_err(|e| e.to_string())?;
                    stream.peer_addr().map_err(|e| e.to_string())
                },
                deadline,
            )
            .await;
            peer_tx.send(accepted).unwrap();
        }
    })
    .unwrap();
    bound_rx.recv_timeout(TEST_DEADLINE).unwrap().unwrap();
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let peer = peer_rx.recv_timeout(TEST_DEADLINE).unwrap().unwrap();
    shards.join().unwrap();
    // The shard sees the IPv4 client as an IPv4-mapped IPv6 address.
    let client = client.local_addr().unwrap();
    assert_eq!(peer.ip().to_canonical(), client.ip());
    assert!(peer.is_ipv6(), "{peer}");
    assert_eq!(peer.port(), client.port());
}

#[test]
fn a_cpu_outside_the_affinity_mask_is_refused_naming_shard_and_cpu() {
    let available = available_cpus().unwrap();
    let Some(outside) = (0..CpuId::MAX_EXCLUSIVE)
        .filter_map(CpuId::new)
        .find(|cpu| !available.contains(cpu))
    else {
        eprintln!("skipped: this process may run on every CPU id");
        return;
    };
    let ran = Arc::new(AtomicBool::new(false));
    let result = {
        let ran = ran.clone();
        spawn_shards(&[available[0], outside], &tuning(), move |_| {
            let ran = ran.clone();
            async move { ran.store(true, Ordering::SeqCst) }
        })
    };
    let error = result.unwrap_err();
    assert!(
        matches!(&error, ShardStartError::CpuUnavailable { shard, cpu, .. }
            if shard.index() == 1 && *cpu == outside),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.starts_with(&format!("shard 1 on CPU {outside} could not start:")),
        "{text}"
    );
    assert!(text.contains("affinity mask"), "{text}");
    assert!(
        !ran.load(Ordering::SeqCst),
        "no shard may run when one fails"
    );
}

#[test]
fn a_panicking_shard_is_reported_by_join() {
    let shards = spawn_shards(&two_shard_cpus(), &tuning(), |shard| async move {
        if shard.index() == 1 {
            panic!("shard one gives up");
        }
    })
    .unwrap();
    let error = shards.join().unwrap_err();
    assert!(
        matches!(&error, ShardStartError::Panicked { shard, message, .. }
            if shard.index() == 1 && message == "shard one gives up"),
        "{error:?}"
    );
}

/// Set in the environment of the child process that [`memlock_child`] runs in.
const MEMLOCK_CHILD: &str = "STARLING_TEST_MEMLOCK_CHILD";
/// The soft RLIMIT_MEMLOCK the child lowers itself to: below glommio's 512 KiB floor.
const LOW_MEMLOCK_BYTES: u64 = 64 * 1024;

/// A shard that glommio refuses for a low locked-memory limit must come back as an error that
/// names the limit, not as a panic or a hang.
///
/// glommio compares the soft RLIMIT_MEMLOCK with its floor itself, whoever runs it (CAP_IPC_LOCK
/// or not), so lowering the soft limit is enough to see the real refusal; no other user or
/// tool is needed. Limits are per process, so the test runs in a child process (this test
/// binary again, running only `memlock_child`) to leave the other tests' limits alone.
#[test]
fn a_low_memlock_limit_is_explained() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["memlock_child", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(MEMLOCK_CHILD, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The child's own start-up is bounded by SHARD_START_TIMEOUT; this only guards the test
    // against a child that never returns.
    let deadline = Instant::now() + TEST_DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the child did not finish in {TEST_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
    let line = stdout
        .lines()
        .find_map(|line| line.split_once("shard start error: "))
        .map(|(_, error)| error)
        .unwrap_or_else(|| panic!("no error line in:\n{stdout}"));
    assert!(
        line.starts_with("shard 0 on CPU ")
            && line.contains(
                " could not start: the locked-memory limit (RLIMIT_MEMLOCK soft limit) is "
            )
            && line.contains("glommio needs at least 524288 bytes;")
            && line.contains("ulimit -l"),
        "{line}"
    );
}

/// Run by [`a_low_memlock_limit_is_explained`] in a child process; does nothing elsewhere.
#[test]
#[ignore = "run in a child process by a_low_memlock_limit_is_explained"]
fn memlock_child() {
    if std::env::var_os(MEMLOCK_CHILD).is_none() {
        return;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit the call writes into.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) },
        0
    );
    // Lowering a soft limit needs no privilege; a lower one already in force is kept (as under
    // `prlimit --memlock=65536:65536`).
    limit.rlim_cur = limit.rlim_cur.min(LOW_MEMLOCK_BYTES);
    // SAFETY: `limit` is a valid rlimit the call only reads.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) }, 0);

    let cpus = &two_shard_cpus()[..1];
    let error = spawn_shards(cpus, &tuning(), |_| async {}).unwrap_err();
    println!("shard start error: {error}");
    assert!(
        matches!(&error, ShardStartError::MemLockLimit { shard, cpu, have, need: 524_288 }
            if shard.index() == 0 && *cpu == cpus[0] && *have == limit.rlim_cur),
        "{error:?}"
    );
}
