//! One shard's life: its engine, its mesh tasks, a listener per configured listener with an
//! accept loop, the once-a-second engine tick, the event flush and stats timers, and the
//! orderly stop.
//!
//! Runs inside the shard's glommio executor, started by `broker::run` through `spawn_shards`.
//! Everything here is shard-local (`Rc`, `RefCell`); the only things shared with other threads
//! are the stop flag, the running count and the status channel to `main`'s thread.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::net::TcpListener;

use super::{BrokerError, ShardShared, ShardStatus};
use crate::config::{Config, SharedSubscriptionStrategy};
use crate::net::{bind_listener, serve_connection, ConnectionSettings, ReadScratch};
use crate::session::BrokerLimits;
use crate::shard::{start_mesh, ShardEngine};
use crate::topic::{ShardId, ShareStrategy};

/// How often a shard looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// How often the engine publishes delayed wills and ends expired sessions.
const TICK_INTERVAL: Duration = Duration::from_secs(1);

/// How long a stopping shard waits for its connections to finish closing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);

/// The shard's whole life.
pub(super) async fn run_shard(shard: ShardId, shared: ShardShared) {
    let _running = RunningGuard(Arc::clone(&shared.running));
    let config = Arc::clone(&shared.config);
    let engine = Rc::new(RefCell::new(new_engine(shard, &shared, shared.mesh_len())));
    let endpoints = shared.take_mesh(shard);
    let _mesh = match endpoints {
        Some(endpoints) => Some(start_mesh(endpoints, Rc::clone(&engine)).await),
        None => None,
    };
    let mut listeners = Vec::new();
    for listener in &config.listeners {
        match bind_listener(listener) {
            Ok(bound) => listeners.push(bound),
            Err(source) => {
                let error = BrokerError::Bind {
                    name: listener.name.clone(),
                    bind: listener.bind,
                    source,
                };
                let _ = shared.status.send(ShardStatus::Failed(error));
                return;
            }
        }
    }
    if shard.index() == 0 {
        for listener in &config.listeners {
            tracing::info!(
                listener = %listener.name,
                transport = listener.transport.as_str(),
                bind = %listener.bind,
                "listening"
            );
        }
    }
    let live = Rc::new(Cell::new(0_usize));
    let settings = connection_settings(&config);
    let scratch = Rc::new(RefCell::new(ReadScratch::new(
        config.tuning.read_buffer_bytes,
    )));
    let limit = config.tuning.max_connections_per_shard.map(|n| n.get());
    // Dropping these tasks at shutdown cancels their pending accepts: the listeners close.
    let accept_tasks: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let io = ShardIo {
                engine: Rc::clone(&engine),
                scratch: Rc::clone(&scratch),
            };
            let accepting = accept_loop(listener, io, settings, Rc::clone(&live), limit);
            glommio::spawn_local(accepting)
        })
        .collect();
    let _ = shared.status.send(ShardStatus::Listening);

    let flusher = (!engine.borrow().wanted_events().is_empty()).then(|| {
        let interval = config.events.flush_interval;
        glommio::spawn_local(flush_events(Rc::clone(&engine), interval))
    });
    let stats = config
        .events
        .stats_interval
        .filter(|_| engine.borrow().has_stats())
        .map(|interval| glommio::spawn_local(publish_stats(Rc::clone(&engine), interval)));
    let mut next_tick = Instant::now() + TICK_INTERVAL;
    while !shared.shutdown.load(Ordering::SeqCst) {
        glommio::timer::sleep(STOP_POLL).await;
        let now = Instant::now();
        if now >= next_tick {
            engine.borrow_mut().tick(now);
            next_tick = now + TICK_INTERVAL;
        }
    }
    drop(accept_tasks);
    drop(stats);
    engine.borrow_mut().shutdown();
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while live.get() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    drop(flusher);
    // The disconnects of the shutdown are events too.
    engine.borrow_mut().flush_events();
    let events = *engine.borrow().event_counters();
    let recorded: u64 = events.recorded.iter().sum();
    if recorded > 0 {
        let dropped: u64 = events.dropped_ring_full.iter().sum();
        tracing::info!(%shard, recorded, dropped_ring_full = dropped, "shard event counters");
    }
    let counters = engine.borrow().counters().clone();
    tracing::debug!(%shard, ?counters, "shard stopped");
}

/// Hands the shard's partial event batch to the exporters every `interval`, so events of a
/// quiet shard wait at most that long (a full batch goes at once).
async fn flush_events(engine: Rc<RefCell<ShardEngine>>, interval: Duration) {
    loop {
        glommio::timer::sleep(interval).await;
        engine.borrow_mut().flush_events();
    }
}

/// Publishes the shard's `$SYS/` stats topics every `interval` (those whose numbers changed).
async fn publish_stats(engine: Rc<RefCell<ShardEngine>>, interval: Duration) {
    loop {
        glommio::timer::sleep(interval).await;
        engine.borrow_mut().publish_stats(Instant::now());
    }
}

/// Counts the shard as running until its future ends, however it ends.
struct RunningGuard(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn new_engine(shard: ShardId, shared: &ShardShared, shards: usize) -> ShardEngine {
    let config = &shared.config;
    let limits = Arc::new(BrokerLimits::from(&config.mqtt));
    let strategy = match config.mqtt.shared_subscription_strategy {
        SharedSubscriptionStrategy::RoundRobin => ShareStrategy::RoundRobin,
        SharedSubscriptionStrategy::Random => ShareStrategy::Random {
            seed: random_seed(shard),
        },
    };
    let (sink, system_topics) = shared.events.sink_for(shard.index(), config);
    let stats = shared.events.stats_for(shard.index(), config, &sink);
    ShardEngine::new(
        shard.index(),
        limits,
        config.mqtt.allow_empty_client_id,
        strategy,
    )
    .with_mesh(shards, config.tuning.cross_shard_queue_capacity.get())
    .with_node(config.events.node)
    .with_hooks(Rc::new(shared.hooks.chains()))
    .with_events(sink, system_topics)
    .with_stats(stats)
}

/// A seed that differs per shard and per run: the clock, mixed with the shard index.
fn random_seed(shard: ShardId) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    nanos ^ ((shard.index() as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn connection_settings(config: &Config) -> ConnectionSettings {
    ConnectionSettings {
        max_packet_size: config.mqtt.max_packet_size_bytes.get(),
        outbound_budget_bytes: config.tuning.outbound_budget_bytes,
        connect_timeout: config.mqtt.connect_timeout,
    }
}

/// What every connection of the shard shares.
struct ShardIo {
    engine: Rc<RefCell<ShardEngine>>,
    scratch: Rc<RefCell<ReadScratch>>,
}

/// Accepts connections on one listener and serves each in its own task; over
/// `tuning.max_connections_per_shard`, a new connection is closed at once.
async fn accept_loop(
    listener: TcpListener,
    io: ShardIo,
    settings: ConnectionSettings,
    live: Rc<Cell<usize>>,
    limit: Option<usize>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(error) => {
                // EMFILE and friends: say so, and give the process a moment to free some.
                tracing::warn!(%error, "accept failed");
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if limit.is_some_and(|limit| live.get() >= limit) {
            io.engine.borrow_mut().count_connection_over_limit();
            drop(stream);
            continue;
        }
        live.set(live.get() + 1);
        let (engine, scratch, live) = (
            Rc::clone(&io.engine),
            Rc::clone(&io.scratch),
            Rc::clone(&live),
        );
        glommio::spawn_local(async move {
            serve_connection(stream, engine, scratch, settings).await;
            live.set(live.get() - 1);
        })
        .detach();
    }
}
