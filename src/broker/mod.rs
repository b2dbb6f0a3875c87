//! The running broker: starts one shard per configured CPU, binds every listener on every
//! shard, connects the shards' mesh, and stops them all on SIGINT or SIGTERM.
//!
//! [`run`] is called by `main` once the config is validated and the process limits are raised.
//! It blocks the calling thread (which becomes the signal and supervision thread) until the
//! broker has stopped. Everything a shard does lives in [`shard_main`]; this module only starts,
//! watches and stops.

mod exporter_log;
mod hook_setup;
mod shard_main;
mod signals;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use crate::config::{Config, ConfigError, ListenerConfig};
use crate::shard::{spawn_shards, MeshEndpoints, ShardStartError};

pub use signals::{block_shutdown_signals, wait_for_shutdown_signal};

/// How long `main`'s thread sleeps between looks at the shards while waiting for a signal.
const SUPERVISE_INTERVAL: Duration = Duration::from_millis(200);

/// How long start-up waits for every shard to bind its listeners.
const BIND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the broker could not run, or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The config cannot be used on this machine.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Signals could not be set up.
    #[error("cannot block SIGINT and SIGTERM for orderly shutdown: {0}")]
    Signals(#[source] std::io::Error),
    /// A listener's address is taken or not allowed.
    #[error("listener {name} ({bind}): cannot bind: {source}; another process (or another broker) listens there, or the address is not on this machine")]
    Bind {
        /// The listener's name.
        name: String,
        /// Its address.
        bind: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A shard could not start or ended badly.
    #[error(transparent)]
    Shard(#[from] ShardStartError),
    /// A shard reported a failure after start-up.
    #[error("{0}")]
    ShardFailed(String),
    /// The shards did not all bind in time.
    #[error("the shards did not bind their listeners within {0:?}")]
    BindTimeout(Duration),
    /// A built-in hook's file (password, token, schema) or topic table cannot be used.
    #[error("hooks: {0}")]
    Hooks(#[from] crate::hooks::builtin::BuiltinError),
    /// An exporter cannot start.
    #[error(transparent)]
    Exporter(#[from] hook_setup::ExporterSetupError),
}

/// What a shard reports to `main`'s thread while starting.
#[derive(Debug)]
enum ShardStatus {
    /// Every listener is bound on this shard.
    Listening,
    /// The shard could not start serving.
    Failed(BrokerError),
}

/// What every shard is given: the config, the stop flag, where to report, and its mesh ends.
#[derive(Clone)]
struct ShardShared {
    config: Arc<Config>,
    shutdown: Arc<AtomicBool>,
    running: Arc<AtomicUsize>,
    status: mpsc::Sender<ShardStatus>,
    mesh: Arc<std::sync::Mutex<Vec<Option<MeshEndpoints>>>>,
    hooks: Arc<hook_setup::HookSources>,
    events: hook_setup::EventPlumbing,
}

impl ShardShared {
    /// Number of shards the mesh was built for.
    fn mesh_len(&self) -> usize {
        self.mesh.lock().map_or(1, |ends| ends.len())
    }

    /// Takes `shard`'s ends of the mesh (once); `None` on a one-shard broker.
    fn take_mesh(&self, shard: crate::topic::ShardId) -> Option<MeshEndpoints> {
        let mut ends = self.mesh.lock().ok()?;
        if ends.len() < 2 {
            return None;
        }
        ends.get_mut(shard.index()).and_then(Option::take)
    }
}

/// Runs the broker until SIGINT or SIGTERM, then shuts down in order: listeners close, MQTT 5
/// clients get DISCONNECT 0x8B (Server shutting down), wills are handled as for any
/// server-side close, and the shards end once their connections have. Returns `Ok` after an
/// orderly stop.
pub fn run(config: Config) -> Result<(), BrokerError> {
    let cpus = config.tuning.shard_cpus()?;
    for listener in &config.listeners {
        probe_bind(listener)?;
    }
    let hooks = Arc::new(hook_setup::HookSources::load(&config)?);
    block_shutdown_signals().map_err(BrokerError::Signals)?;
    let shard_count = cpus.len();
    let ring_batches = config.events.ring_batches.get();
    let rings: Vec<_> = (0..shard_count)
        .map(|_| Arc::new(crate::hooks::EventRing::new(ring_batches)))
        .collect();
    let exporters = hook_setup::start_exporters(&config, &rings, &cpus)?;
    let exporter_counters = exporters
        .as_ref()
        .map_or_else(Vec::new, |runtime| runtime.counters());
    let mut exporter_log =
        exporter_log::IntervalLog::new(&exporter_counters, &rings, config.events.stats_interval);
    let events = hook_setup::EventPlumbing {
        wanted: exporters
            .as_ref()
            .map_or(crate::hooks::EventKinds::NONE, |runtime| runtime.wanted()),
        rings,
        exporters: exporter_counters,
    };
    let (status_tx, status_rx) = mpsc::channel();
    let capacity = config.tuning.cross_shard_queue_capacity.get();
    let shared = ShardShared {
        config: Arc::new(config),
        shutdown: Arc::new(AtomicBool::new(false)),
        running: Arc::new(AtomicUsize::new(shard_count)),
        status: status_tx,
        mesh: Arc::new(std::sync::Mutex::new(
            MeshEndpoints::build(shard_count, capacity)
                .into_iter()
                .map(Some)
                .collect(),
        )),
        hooks,
        events,
    };
    let tuning = shared.config.tuning.clone();
    let handles = {
        let shared = shared.clone();
        spawn_shards(&cpus, &tuning, move |shard| {
            shard_main::run_shard(shard, shared.clone())
        })?
    };
    let shutdown = Arc::clone(&shared.shutdown);
    let running = Arc::clone(&shared.running);
    drop(shared);
    let started = wait_until_listening(&status_rx, shard_count);
    if let Err(error) = started {
        shutdown.store(true, Ordering::SeqCst);
        let _ = handles.join();
        return Err(error);
    }
    tracing::info!(shards = shard_count, "broker started");
    let mut failure = None;
    loop {
        if let Some(signal) = wait_for_shutdown_signal(SUPERVISE_INTERVAL) {
            tracing::info!(signal, "shutting down: closing listeners and connections");
            break;
        }
        if let Ok(ShardStatus::Failed(error)) = status_rx.try_recv() {
            failure = Some(error);
            break;
        }
        if running.load(Ordering::SeqCst) < shard_count {
            tracing::error!("a shard stopped on its own; shutting the others down");
            break;
        }
        if let Some(log) = &mut exporter_log {
            log.log_if_due(Instant::now());
        }
    }
    shutdown.store(true, Ordering::SeqCst);
    let started_join = Instant::now();
    handles.join()?;
    if let Some(exporters) = exporters {
        // After the shards: their last events (the shutdown's disconnects) are in the rings.
        let counters = exporters.counters();
        exporters.shutdown();
        hook_setup::log_exporter_counters(&counters);
    }
    tracing::info!(took = ?started_join.elapsed(), "broker stopped");
    failure.map_or(Ok(()), Err)
}

/// Waits until every shard has bound its listeners, or one failed.
fn wait_until_listening(
    status: &mpsc::Receiver<ShardStatus>,
    shards: usize,
) -> Result<(), BrokerError> {
    let deadline = Instant::now() + BIND_TIMEOUT;
    let mut listening = 0;
    while listening < shards {
        let left = deadline.saturating_duration_since(Instant::now());
        match status.recv_timeout(left) {
            Ok(ShardStatus::Listening) => listening += 1,
            Ok(ShardStatus::Failed(error)) => return Err(error),
            Err(_) => return Err(BrokerError::BindTimeout(BIND_TIMEOUT)),
        }
    }
    Ok(())
}

/// Binds `listener`'s address once without SO_REUSEPORT and lets it go. Shards bind with
/// SO_REUSEPORT, which would let a second broker started by the same user on the same port
/// silently share its connections; this bind fails when anything listens there.
fn probe_bind(listener: &ListenerConfig) -> Result<(), BrokerError> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(listener.bind),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    );
    let result = socket.and_then(|socket| {
        // SO_REUSEADDR alone still fails on a listening socket, but not on TIME_WAIT leftovers.
        socket.set_reuse_address(true)?;
        if let SocketAddr::V6(v6) = listener.bind {
            if v6.ip().is_unspecified() {
                socket.set_only_v6(false)?;
            }
        }
        socket.bind(&listener.bind.into())
    });
    result.map_err(|source| BrokerError::Bind {
        name: listener.name.clone(),
        bind: listener.bind,
        source,
    })
}
