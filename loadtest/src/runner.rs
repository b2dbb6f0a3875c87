//! Runs one load test against one broker: setup, warm-up, measured window, drain, stop.
//!
//! The runner owns the phase and the clock. It spawns one task per connection, waits for all
//! of them to be ready (any setup failure aborts the run with the client's id and reason),
//! switches phases on time, samples once a second, records dropped connections, and collects
//! the results. Every wait is bounded, so a run always ends by itself.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{interval, sleep_until, MissedTickBehavior};

use crate::client::{ClientOptions, Handshake};
use crate::config::RunConfig;
use crate::outcome::{
    account, expected_per_tracker, BlockOutcome, BrokerOutcome, ConnectOutcome, DropRecord,
    Outcome, ToolOutcome,
};
use crate::plan::Plan;
use crate::procstat::{self, ProcSample};
use crate::progress::Sampler;
use crate::stats::{latency_histogram, lock, Phase, RunShared};
use crate::task::{run_connection, scheduled_start, Event, TaskContext};

/// How often the drain checks whether everything arrived.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// Longest wait for tasks to disconnect after Stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The live parts of a run the phase helpers share.
struct Live {
    shared: Arc<RunShared>,
    phase: watch::Sender<Phase>,
    events: mpsc::UnboundedReceiver<Event>,
    sampler: Sampler,
    ticker: tokio::time::Interval,
    drops: Vec<DropRecord>,
    print: bool,
    /// SIGINT: the operator wants the run cut short, with a report of what was measured.
    interrupt: Signal,
    interrupted: bool,
}

impl Live {
    fn set_phase(&mut self, phase: Phase) {
        // send_replace cannot fail: it stores the value even with no receivers.
        self.phase.send_replace(phase);
    }

    fn record(&mut self, event: Event) {
        if let Event::Dropped {
            client_id,
            phase,
            reason,
        } = event
        {
            if phase >= Phase::Stop {
                return;
            }
            if self.print {
                eprintln!(
                    "connection {client_id} dropped during {}: {reason}",
                    phase.name()
                );
            }
            self.drops.push(DropRecord {
                client_id,
                phase: phase.name(),
                reason,
            });
        }
    }

    /// Samples and records events until `until`.
    /// Samples and records events until `until`, or until interrupted.
    async fn hold(&mut self, phase: Phase, until: Instant) {
        while !self.interrupted {
            tokio::select! {
                () = sleep_until(until.into()) => return,
                _ = self.ticker.tick() => self.sampler.tick(phase, ""),
                Some(event) = self.events.recv() => self.record(event),
                _ = self.interrupt.recv() => {
                    self.interrupted = true;
                    eprintln!("interrupted: draining and reporting what was measured");
                }
            }
        }
    }
}

/// Runs `config` and returns its raw results. An error means the run could not be carried
/// out (unreachable broker, refused connection, failed subscription); dropped connections
/// during the run are in the outcome instead.
pub async fn run(config: &RunConfig, print: bool) -> Result<Outcome> {
    let addr = resolve(&config.host, config.port).await?;
    let plan = Plan::build(config)?;
    let shared = Arc::new(RunShared::new(
        nonce(),
        config.blocks.len(),
        plan.publishers.len(),
        plan.trackers.len(),
    ));
    let broker_before = sample_broker(config.broker_pid)?;
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let (event_tx, events) = mpsc::unbounded_channel();
    let context = Arc::new(TaskContext {
        addr,
        options: ClientOptions {
            version: config.mqtt_version,
            keep_alive_s: config.keep_alive_s,
            username: config.username.clone(),
            password: config.password.clone(),
            timeout: config.connect_timeout,
        },
        shared: Arc::clone(&shared),
        phase: phase_rx,
        events: event_tx,
        handshakes: Arc::new(Semaphore::new(config.connect_concurrency as usize)),
        block_qos: config.blocks.iter().map(|b| b.qos()).collect(),
    });
    let mut ticker = interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.reset(); // the first tick comes after a second, not at once
    let mut live = Live {
        sampler: Sampler::new(Arc::clone(&shared), config.broker_pid, print),
        shared: Arc::clone(&shared),
        phase: phase_tx,
        events,
        ticker,
        drops: Vec::new(),
        print,
        interrupt: signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?,
        interrupted: false,
    };

    let tool_start = procstat::self_cpu_us();
    let setup_start = Instant::now();
    let mut tasks = JoinSet::new();
    for connection in &plan.connections {
        let rate = config.blocks[connection.block].connect_rate;
        let start = scheduled_start(setup_start, rate, connection.slot);
        tasks.spawn(run_connection(
            Arc::clone(&context),
            connection.clone(),
            start,
        ));
    }
    drop(context);
    let connect = match wait_for_setup(&mut live, config.connections(), setup_start).await {
        Ok(connect) => connect,
        Err(error) => {
            live.set_phase(Phase::Abort);
            tasks.shutdown().await;
            return Err(error);
        }
    };
    let broker_connected = sample_broker(config.broker_pid)?;
    let tool_connected = procstat::self_cpu_us();

    let warmup_start = Instant::now();
    live.set_phase(Phase::Warmup);
    live.hold(Phase::Warmup, warmup_start + config.warmup).await;

    let measure_start = Instant::now();
    live.set_phase(Phase::Measure);
    let per_block_start = per_block_counts(&shared);
    let tool_measure_start = procstat::self_cpu_us();
    let broker_measure_start = sample_broker(config.broker_pid)?;
    live.hold(Phase::Measure, measure_start + config.duration)
        .await;
    let per_block_end = per_block_counts(&shared);
    let tool_measure_end = procstat::self_cpu_us();
    let broker_measure_end = sample_broker(config.broker_pid)?;
    let measure = measure_start.elapsed();

    let drain_start = Instant::now();
    live.set_phase(Phase::Drain);
    let drained = drain(&mut live, &plan, drain_start + config.drain).await;
    let drain_time = drain_start.elapsed();

    live.set_phase(Phase::Stop);
    let stop_deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    while let Ok(Some(joined)) = tokio::time::timeout_at(stop_deadline, tasks.join_next()).await {
        if let Err(error) = joined {
            if error.is_panic() {
                bail!("a connection task panicked: {error}");
            }
        }
    }
    tasks.shutdown().await;
    while let Ok(event) = live.events.try_recv() {
        live.record(event);
    }
    live.sampler.collect_latency();

    let (deliveries, publishers) = account(&plan, &shared, config.blocks.len());
    let blocks = deliveries
        .into_iter()
        .enumerate()
        .map(|(index, delivery)| {
            let counters = &shared.blocks[index].counters;
            BlockOutcome {
                published_window: per_block_end[index].0 - per_block_start[index].0,
                delivered_window: per_block_end[index].1 - per_block_start[index].1,
                published: publishers
                    .iter()
                    .filter(|p| p.block == index)
                    .map(|p| p.published)
                    .sum(),
                delivery,
                acked: counters.acked.get(),
                rejected: counters.rejected.get(),
                unacked: counters.inflight.get(),
                foreign: counters.foreign.get(),
                latency: live.sampler.totals[index].clone(),
                lag: shared.blocks[index].lags(),
            }
        })
        .collect();
    let broker = match (
        config.broker_pid,
        broker_before,
        broker_connected,
        broker_measure_start,
        broker_measure_end,
    ) {
        (Some(pid), Some(before), Some(connected), Some(measure_start), Some(measure_end)) => {
            Some(BrokerOutcome {
                pid,
                before,
                connected,
                measure_start,
                measure_end,
            })
        }
        _ => None,
    };
    Ok(Outcome {
        target: addr,
        started_unix_ms,
        connect,
        warmup: measure_start.duration_since(warmup_start),
        measure,
        drain: drain_time,
        drained,
        interrupted: live.interrupted,
        blocks,
        publishers,
        broker,
        tool: ToolOutcome {
            threads: config.threads,
            setup_cpu_us: tool_connected.saturating_sub(tool_start),
            measure_cpu_us: tool_measure_end.saturating_sub(tool_measure_start),
        },
        drops: live.drops,
        series: live.sampler.series,
    })
}

/// Waits until every connection is ready; the first setup failure ends the run.
async fn wait_for_setup(
    live: &mut Live,
    total: u64,
    setup_start: Instant,
) -> Result<ConnectOutcome> {
    let mut connect = ConnectOutcome {
        connections: 0,
        setup: Duration::ZERO,
        tcp: latency_histogram(),
        connack: latency_histogram(),
        handshake: latency_histogram(),
        suback: latency_histogram(),
    };
    while connect.connections < total {
        tokio::select! {
            _ = live.ticker.tick() => {
                let note = format!("  connected {}/{total}", connect.connections);
                live.sampler.tick(Phase::Setup, &note);
            }
            event = live.events.recv() => match event {
                Some(Event::Ready { handshake }) => {
                    record_handshake(&mut connect, &handshake);
                    connect.connections += 1;
                }
                Some(Event::SetupFailed { client_id, error }) => {
                    bail!("client {client_id} could not set up ({} of {total} ready): {error}", connect.connections);
                }
                Some(Event::Dropped { client_id, reason, .. }) => {
                    bail!("client {client_id} was dropped during setup: {reason}");
                }
                None => bail!("every connection task ended before setup finished"),
            },
            _ = live.interrupt.recv() => bail!("interrupted during setup"),
        }
    }
    connect.setup = setup_start.elapsed();
    Ok(connect)
}

fn record_handshake(connect: &mut ConnectOutcome, handshake: &Handshake) {
    let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    connect.tcp.saturating_record(us(handshake.tcp));
    connect.connack.saturating_record(us(handshake.connack));
    connect
        .handshake
        .saturating_record(us(handshake.tcp + handshake.connack));
    if let Some(suback) = handshake.suback {
        connect.suback.saturating_record(us(suback));
    }
}

/// Waits for publishers to stop, acks to complete and every expected delivery to arrive, or
/// for `deadline`. True when everything arrived.
async fn drain(live: &mut Live, plan: &Plan, deadline: Instant) -> bool {
    let mut poll = interval(DRAIN_POLL);
    loop {
        if drain_complete(&live.shared, plan) {
            return true;
        }
        // Past the deadline, or every connection is gone (dropped) so nothing more can arrive.
        if Instant::now() >= deadline || live.shared.total(|c| &c.open) == 0 {
            return false;
        }
        tokio::select! {
            _ = poll.tick() => {}
            _ = live.ticker.tick() => live.sampler.tick(Phase::Drain, ""),
            Some(event) = live.events.recv() => live.record(event),
            _ = live.interrupt.recv() => return false,
        }
    }
}

fn drain_complete(shared: &RunShared, plan: &Plan) -> bool {
    if !shared
        .publishers
        .iter()
        .all(|slot| slot.stopped.load(Ordering::Acquire))
    {
        return false;
    }
    if shared.total(|c| &c.inflight) > 0 {
        return false;
    }
    let expected = expected_per_tracker(plan, shared);
    shared
        .trackers
        .iter()
        .zip(expected)
        .all(|(tracker, expected)| lock(tracker).unique >= expected)
}

fn per_block_counts(shared: &RunShared) -> Vec<(u64, u64)> {
    shared
        .blocks
        .iter()
        .map(|block| {
            (
                block.counters.published.get(),
                block.counters.delivered.get(),
            )
        })
        .collect()
}

fn sample_broker(pid: Option<u32>) -> Result<Option<ProcSample>> {
    pid.map(|pid| procstat::sample_pid(pid).with_context(|| format!("broker pid {pid}")))
        .transpose()
}

/// Resolves the broker address once; every connection goes to exactly this address.
async fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    let mut addresses = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve broker host {host:?}"))?;
    addresses
        .next()
        .ok_or_else(|| anyhow!("broker host {host:?} has no address"))
}

/// A value that differs between runs, so messages left over from an earlier run (queued or
/// retained by the broker) are recognised as foreign.
fn nonce() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id().rotate_left(16)
}
