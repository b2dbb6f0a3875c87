//! The exporter runtime: one OS thread, off the shards, that drains every shard's event ring
//! and runs every exporter.
//!
//! - **One thread named `starling-exporters`** runs a tokio runtime: `current_thread` when
//!   `worker_threads <= 1` (the drain loop and every exporter share that thread, enough for
//!   HTTP and file sinks that mostly wait), otherwise `multi_thread` with that many workers
//!   (named `starling-exp-w`; the drain loop stays on `starling-exporters` and the exporter
//!   tasks spread over the workers, for sinks that spend CPU rendering or compressing).
//! - **The drain loop polls.** A shard hands batches to its ring with one atomic push and must
//!   never make a syscall to wake anyone (no eventfd write, no futex wake on the hot path), so
//!   the runtime looks at the rings itself: it pops until a ring is empty (at most
//!   [`MAX_BATCHES_PER_PASS`] per ring per pass, so one busy shard cannot starve the others or
//!   the exporters), recycles each emptied `Vec` back to its ring, and sleeps
//!   `poll_interval` (default 2 ms) when every ring was empty. An event waits at most that
//!   long plus the shard's flush tick before an exporter sees it.
//! - **Each event is wrapped in an `Arc` once** and offered to every exporter's [`RuleSet`];
//!   every matching rule puts one [`ExportItem`] into that exporter's [`BoundedQueue`]
//!   (pushing never waits: a full queue drops by the exporter's [`Overflow`] policy, counted).
//! - **Overload sheds at the cheapest place.** When every exporter's queue is full and drops
//!   the newest, the drain loop leaves the rings alone: they fill, and the shards shed new
//!   events (counted per kind as `dropped_ring_full`) without building them. Exporters that
//!   drop the oldest keep draining, since they want the newest events.
//! - **Each exporter is a task** with its sink: it takes up to `batch_events` items (waiting up
//!   to `flush_interval` for a fuller batch), sends them, and retries a failed batch by its
//!   [`RetryPolicy`]. While it retries, its queue keeps filling and overflowing by policy:
//!   that is the bound on what a dead sink costs, in memory and nothing else. Other exporters
//!   and the shards do not notice. A sink must bound each call itself (the web-hook sink's
//!   `http_timeout`): a call that never returns stalls its own exporter, whose queue then
//!   overflows by policy, and nothing else.
//! - **Beside and below the shards.** Every runtime thread runs on the CPUs no shard is pinned
//!   to (when there are any) at nice 10 by default ([`RuntimeOptions::placement`], see
//!   [`thread_placement`](super::thread_placement)): when the CPUs are busy the shards win them
//!   and the exporters' queues overflow by policy, which is the point of having queues.
//! - **Shutdown** ([`ExporterRuntime::shutdown`] or drop): the drain loop drains the rings one
//!   last time, the exporters send what is queued (a failing batch is given up at once rather
//!   than retried), and whatever is still queued or in flight after `shutdown_deadline`
//!   (default 2 s) is counted as `dropped_at_shutdown` and the thread ends.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::counters::ExporterCounters;
use super::queue::{BoundedQueue, Overflow, PushOutcome};
use super::retry::{Backoff, RetryPolicy};
use super::rules::RuleSet;
use super::thread_placement::ThreadPlacement;
use super::{ExportItem, Sink, SinkError};
use crate::hooks::event::EventKinds;
use crate::hooks::ring::EventRing;

/// How many batches the drain loop takes from one ring before looking at the next and
/// letting the exporters run.
pub const MAX_BATCHES_PER_PASS: usize = 64;

/// What one exporter is: its name, queue, batching, retry and rules.
#[derive(Debug, Clone)]
pub struct ExporterSettings {
    /// Its name, for logs and counters (`webhook`, `audit-log` …).
    pub name: String,
    /// The most events its queue holds (`queue_capacity`).
    pub queue_capacity: usize,
    /// The most events handed to the sink at once.
    pub batch_events: usize,
    /// What a full queue loses.
    pub overflow: Overflow,
    /// How a failed batch is retried.
    pub retry: RetryPolicy,
    /// Which events it sends, as which action, to where.
    pub rules: RuleSet,
    /// How long a partial batch may wait for more events before it is sent anyway.
    pub flush_interval: Duration,
}

impl ExporterSettings {
    /// An exporter of every event with the web-hook document's queue and retry settings:
    /// 300,000 events, batches of 100 flushed after 100 ms, dropping the newest when full.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            queue_capacity: 300_000,
            batch_events: 100,
            overflow: Overflow::DropNewest,
            retry: RetryPolicy::default(),
            rules: RuleSet::all(),
            flush_interval: Duration::from_millis(100),
        }
    }
}

/// How the runtime itself runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// tokio worker threads (the web-hook document's `worker_threads`); `<= 1` runs
    /// everything on the one `starling-exporters` thread.
    pub worker_threads: usize,
    /// How long the drain loop sleeps when every ring was empty.
    pub poll_interval: Duration,
    /// How long shutdown waits for the exporters to send what is queued.
    pub shutdown_deadline: Duration,
    /// Nice value and CPUs of every runtime thread (see
    /// [`thread_placement`](super::thread_placement)).
    pub placement: ThreadPlacement,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            worker_threads: 1,
            poll_interval: Duration::from_millis(2),
            shutdown_deadline: Duration::from_secs(2),
            placement: ThreadPlacement::default(),
        }
    }
}

/// The running exporters. Stops (with the shutdown deadline) when shut down or dropped.
#[derive(Debug)]
pub struct ExporterRuntime {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counters: Vec<(String, Arc<ExporterCounters>)>,
    wanted: EventKinds,
}

impl ExporterRuntime {
    /// Starts the runtime thread: drains `rings` into `exporters`.
    pub fn start_with(
        rings: Vec<Arc<EventRing>>,
        exporters: Vec<(ExporterSettings, Box<dyn Sink>)>,
        options: RuntimeOptions,
    ) -> io::Result<Self> {
        let tokio = build_tokio(options.worker_threads, &options.placement)?;
        let stop = Arc::new(AtomicBool::new(false));
        let wanted = exporters
            .iter()
            .fold(EventKinds::NONE, |set, (settings, _)| {
                set.union(settings.rules.wanted())
            });
        let exporters: Vec<Exporter> = exporters
            .into_iter()
            .map(|(settings, sink)| Exporter::new(settings, sink))
            .collect();
        let counters = exporters
            .iter()
            .map(|exporter| {
                (
                    exporter.settings.name.clone(),
                    Arc::clone(&exporter.shared.counters),
                )
            })
            .collect();
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("starling-exporters".into())
                .spawn(move || {
                    options.placement.apply_to_current_thread();
                    tokio.block_on(run(rings, exporters, options, stop));
                })?
        };
        Ok(Self {
            stop,
            thread: Some(thread),
            counters,
            wanted,
        })
    }

    /// Every exporter's name and live counters, in the order they were given.
    pub fn counters(&self) -> Vec<(String, Arc<ExporterCounters>)> {
        self.counters.clone()
    }

    /// The event kinds some exporter wants: what the shards' `EventSink`s should record.
    pub fn wanted(&self) -> EventKinds {
        self.wanted
    }

    /// Drains what it can within the shutdown deadline, then stops the thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the exporter runtime thread panicked");
            }
        }
    }
}

impl Drop for ExporterRuntime {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn build_tokio(
    worker_threads: usize,
    placement: &ThreadPlacement,
) -> io::Result<tokio::runtime::Runtime> {
    if worker_threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads)
            .thread_name("starling-exp-w")
            .on_thread_start({
                let placement = placement.clone();
                move || placement.apply_to_current_thread()
            })
            .enable_all()
            .build()
    }
}

/// One exporter before its task starts.
struct Exporter {
    settings: ExporterSettings,
    sink: Box<dyn Sink>,
    shared: Arc<ExporterShared>,
}

impl Exporter {
    fn new(settings: ExporterSettings, sink: Box<dyn Sink>) -> Self {
        let shared = Arc::new(ExporterShared {
            queue: Mutex::new(BoundedQueue::new(
                settings.queue_capacity,
                settings.overflow,
            )),
            wake: Notify::new(),
            counters: Arc::new(ExporterCounters::default()),
            in_flight_oldest_ns: AtomicU64::new(0),
            in_flight_events: AtomicU64::new(0),
            closing: AtomicBool::new(false),
        });
        Self {
            settings,
            sink,
            shared,
        }
    }
}

/// What the drain loop and an exporter's task share.
#[derive(Debug)]
struct ExporterShared {
    queue: Mutex<BoundedQueue>,
    /// Rung by the drain loop when it queued something, and at shutdown.
    wake: Notify,
    counters: Arc<ExporterCounters>,
    /// `at_ns` of the oldest event of the batch being sent or retried; 0 when none.
    in_flight_oldest_ns: AtomicU64,
    /// Events in the batch being sent or retried.
    in_flight_events: AtomicU64,
    /// Set once the drain loop has stopped: send what is queued, then end.
    closing: AtomicBool,
}

impl ExporterShared {
    /// The queue. Held only for pushes and takes, never across an `.await`; a panic while
    /// holding it leaves a queue that is still consistent, so poisoning is ignored.
    fn queue(&self) -> MutexGuard<'_, BoundedQueue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts routed items into the queue by its overflow policy and wakes the exporter.
    fn offer(&self, items: &mut Vec<ExportItem>) {
        if items.is_empty() {
            return;
        }
        let (mut queued, mut dropped) = (0, 0);
        let len = {
            let mut queue = self.queue();
            for item in items.drain(..) {
                match queue.push(item) {
                    PushOutcome::Queued => queued += 1,
                    PushOutcome::EvictedOldest => {
                        queued += 1;
                        dropped += 1;
                    }
                    PushOutcome::Refused => dropped += 1,
                }
            }
            queue.len()
        };
        let counters = &self.counters;
        ExporterCounters::add(&counters.queued, queued);
        ExporterCounters::add(&counters.dropped_queue_full, dropped);
        ExporterCounters::set(&counters.queue_len, len as u64);
        self.wake.notify_one();
    }

    /// Recomputes the lag gauge from the in-flight batch and the queue's front.
    fn refresh_lag(&self, now_ns: u64) {
        let in_flight = self.in_flight_oldest_ns.load(Ordering::Relaxed);
        let queued = self.queue().oldest_at_ns();
        let oldest = match (in_flight, queued) {
            (0, queued) => queued,
            (in_flight, Some(queued)) => Some(in_flight.min(queued)),
            (in_flight, None) => Some(in_flight),
        };
        let lag_ms = oldest.map_or(0, |at| now_ns.saturating_sub(at) / 1_000_000);
        ExporterCounters::set(&self.counters.lag_ms, lag_ms);
    }
}

/// Unix nanoseconds, the clock events are stamped with.
fn unix_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// The runtime thread's whole life.
async fn run(
    rings: Vec<Arc<EventRing>>,
    exporters: Vec<Exporter>,
    options: RuntimeOptions,
    stop: Arc<AtomicBool>,
) {
    let mut routes = Vec::with_capacity(exporters.len());
    let mut tasks = Vec::with_capacity(exporters.len());
    for exporter in exporters {
        routes.push((
            exporter.settings.rules.clone(),
            Arc::clone(&exporter.shared),
        ));
        let shared = Arc::clone(&exporter.shared);
        tasks.push(tokio::spawn(run_exporter(
            shared,
            exporter.sink,
            exporter.settings,
        )));
    }
    drain_until_stopped(&rings, &routes, options.poll_interval, &stop).await;
    for (_, shared) in &routes {
        shared.closing.store(true, Ordering::Release);
        shared.wake.notify_one();
    }
    let finished = tokio::time::timeout(options.shutdown_deadline, async {
        for task in &mut tasks {
            let _ = task.await;
        }
    })
    .await;
    if finished.is_err() {
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }
    for (_, shared) in &routes {
        let left = shared.queue().clear() as u64 + shared.in_flight_events.load(Ordering::Relaxed);
        let counters = &shared.counters;
        ExporterCounters::add(&counters.dropped_at_shutdown, left as usize);
        ExporterCounters::set(&counters.queue_len, 0);
        ExporterCounters::set(&counters.lag_ms, 0);
    }
}

/// The drain loop: rings to queues until `stop`, then one last pass.
async fn drain_until_stopped(
    rings: &[Arc<EventRing>],
    routes: &[(RuleSet, Arc<ExporterShared>)],
    poll_interval: Duration,
    stop: &AtomicBool,
) {
    let mut routed: Vec<Vec<ExportItem>> = routes.iter().map(|_| Vec::new()).collect();
    loop {
        // Read before draining, so the pass after a stop request still takes everything the
        // shards handed over before it.
        let stopping = stop.load(Ordering::Acquire);
        let mut drained_any = false;
        for ring in rings {
            for _ in 0..MAX_BATCHES_PER_PASS {
                // When every exporter would refuse new events (full, dropping the newest),
                // they stay in the ring: it fills and the shard sheds them, counting them
                // there, which costs the shard less than events built and then dropped here.
                if !stopping && !routes.iter().any(|(_, shared)| shared.queue().takes_more()) {
                    break;
                }
                let Some(mut batch) = ring.pop() else {
                    break;
                };
                drained_any = true;
                for event in batch.drain(..) {
                    let event = Arc::new(event);
                    for ((rules, _), out) in routes.iter().zip(&mut routed) {
                        rules.route(&event, out);
                    }
                }
                ring.recycle(batch);
                for ((_, shared), items) in routes.iter().zip(&mut routed) {
                    shared.offer(items);
                }
            }
        }
        let now_ns = unix_now_ns();
        for (_, shared) in routes {
            shared.refresh_lag(now_ns);
        }
        if stopping && !drained_any {
            return;
        }
        if drained_any {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(poll_interval).await;
        }
    }
}

/// One exporter's task: batches from its queue to its sink until closed and empty.
async fn run_exporter(
    shared: Arc<ExporterShared>,
    mut sink: Box<dyn Sink>,
    settings: ExporterSettings,
) {
    let batch_events = settings.batch_events.max(1);
    let mut batch = Vec::with_capacity(batch_events.min(4096));
    while next_batch(&shared, batch_events, settings.flush_interval, &mut batch).await {
        deliver(&shared, sink.as_mut(), &batch, &settings).await;
        batch.clear();
        shared.in_flight_events.store(0, Ordering::Relaxed);
        shared.in_flight_oldest_ns.store(0, Ordering::Relaxed);
    }
}

/// Fills `batch` with the next batch: a full one as soon as there is one, a partial one once
/// its first event has waited `flush_interval`, whatever is left at shutdown. False when
/// closing with nothing left.
async fn next_batch(
    shared: &ExporterShared,
    batch_events: usize,
    flush_interval: Duration,
    batch: &mut Vec<ExportItem>,
) -> bool {
    let mut flush_at: Option<Instant> = None;
    loop {
        let closing = shared.closing.load(Ordering::Acquire);
        {
            let mut queue = shared.queue();
            let due = flush_at.is_some_and(|at| Instant::now() >= at);
            if !queue.is_empty() && (queue.len() >= batch_events || due || closing) {
                queue.take_batch(batch_events, batch);
                ExporterCounters::set(&shared.counters.queue_len, queue.len() as u64);
                drop(queue);
                let oldest = batch.iter().map(|item| item.event.at_ns).min();
                // 0 means "no batch": an event stamped 0 would hide, so it counts as 1 ns.
                let oldest = oldest.unwrap_or(0).max(1);
                shared.in_flight_oldest_ns.store(oldest, Ordering::Relaxed);
                shared
                    .in_flight_events
                    .store(batch.len() as u64, Ordering::Relaxed);
                return true;
            }
            if queue.is_empty() && closing {
                return false;
            }
            if !queue.is_empty() && flush_at.is_none() {
                flush_at = Some(Instant::now() + flush_interval);
            }
        }
        match flush_at {
            Some(at) => {
                let _ = tokio::time::timeout_at(at, shared.wake.notified()).await;
            }
            None => shared.wake.notified().await,
        }
    }
}

/// Sends one batch, retrying by the policy; counts how it ended.
async fn deliver(
    shared: &ExporterShared,
    sink: &mut dyn Sink,
    batch: &[ExportItem],
    settings: &ExporterSettings,
) {
    let counters = &shared.counters;
    let mut backoff: Option<Backoff> = None;
    loop {
        let error = match sink.send(batch).await {
            Ok(()) => {
                ExporterCounters::add(&counters.sent, batch.len());
                ExporterCounters::add(&counters.batches_sent, 1);
                if backoff.is_some() {
                    tracing::info!(exporter = %settings.name, "exporter sink is back");
                }
                return;
            }
            Err(SinkError::Permanent(reason)) => {
                tracing::warn!(exporter = %settings.name, sink = sink.kind(), %reason,
                    events = batch.len(), "exporter sink rejected a batch; not retried");
                ExporterCounters::add(&counters.failed, 1);
                ExporterCounters::add(&counters.dropped_rejected, batch.len());
                return;
            }
            Err(SinkError::Retryable(reason)) => reason,
        };
        if shared.closing.load(Ordering::Acquire) {
            // Shutting down: no time for backoff; the batch is lost and counted as such.
            ExporterCounters::add(&counters.dropped_at_shutdown, batch.len());
            return;
        }
        let now = Instant::now();
        let backoff = backoff.get_or_insert_with(|| {
            tracing::warn!(exporter = %settings.name, sink = sink.kind(), reason = %error,
                "exporter sink failed; retrying with backoff");
            Backoff::new(settings.retry, now.into_std())
        });
        match backoff.next_delay(now.into_std()) {
            Some(wait) => {
                tracing::debug!(exporter = %settings.name, reason = %error, ?wait, "retrying");
                ExporterCounters::add(&counters.retried, 1);
                tokio::time::sleep(wait).await;
            }
            None => {
                tracing::warn!(exporter = %settings.name, sink = sink.kind(), reason = %error,
                    events = batch.len(), "exporter gave up a batch after retrying");
                ExporterCounters::add(&counters.failed, 1);
                ExporterCounters::add(&counters.dropped_retries_exhausted, batch.len());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::hooks::event::{ClientInfo, EventDetail, EventKind};
    use crate::hooks::exporters::counters::CountersSnapshot;
    use crate::hooks::exporters::rules::RuleConfig;
    use crate::hooks::ring::EventSink;
    use crate::protocol::ClientId;

    /// What the test sink saw: (action, at_ns) per item, batch by batch.
    type Seen = Arc<Mutex<Vec<Vec<(String, u64)>>>>;

    /// A sink that fails its first `failures` sends as told, then takes everything.
    struct TestSink {
        seen: Seen,
        failures: usize,
        failure: fn(String) -> SinkError,
        attempts: Arc<AtomicUsize>,
    }

    impl TestSink {
        fn taking() -> (Self, Seen) {
            Self::failing(0, SinkError::Retryable)
        }

        fn failing(failures: usize, failure: fn(String) -> SinkError) -> (Self, Seen) {
            let seen = Seen::default();
            let sink = Self {
                seen: Arc::clone(&seen),
                failures,
                failure,
                attempts: Arc::default(),
            };
            (sink, seen)
        }
    }

    impl Sink for TestSink {
        fn kind(&self) -> &'static str {
            "test"
        }

        fn send<'a>(&'a mut self, batch: &'a [ExportItem]) -> super::super::SinkFuture<'a> {
            Box::pin(async move {
                let attempt = self.attempts.fetch_add(1, Ordering::Relaxed);
                if attempt < self.failures {
                    return Err((self.failure)(format!("attempt {attempt} fails")));
                }
                let items = batch
                    .iter()
                    .map(|item| (item.action.to_string(), item.event.at_ns))
                    .collect();
                self.seen.lock().unwrap().push(items);
                Ok(())
            })
        }
    }

    fn client() -> Arc<ClientInfo> {
        Arc::new(ClientInfo {
            node: 1,
            shard: 0,
            client_id: ClientId::new("c").unwrap(),
            username: None,
            address: None,
            protocol: 5,
            keep_alive_secs: 30,
            clean_start: true,
        })
    }

    /// Records `kinds` into `ring` as a shard would, stamped `first_at_ns`, +1, +2 …
    fn record(ring: &Arc<EventRing>, kinds: &[EventKind], first_at_ns: u64) {
        let mut sink = EventSink::new(EventKinds::ALL, Arc::clone(ring), 8);
        let client = client();
        for (offset, kind) in kinds.iter().enumerate() {
            sink.record(*kind, first_at_ns + offset as u64, &client, || {
                EventDetail::None
            });
        }
        sink.flush();
        assert_eq!(sink.counters().dropped_ring_full.iter().sum::<u64>(), 0);
    }

    fn settings(name: &str) -> ExporterSettings {
        ExporterSettings {
            batch_events: 4,
            flush_interval: Duration::from_millis(5),
            retry: RetryPolicy {
                initial_interval: Duration::from_millis(1),
                multiplier: 2.0,
                max_interval: Duration::from_millis(5),
                max_elapsed_time: Duration::from_secs(60),
            },
            ..ExporterSettings::new(name)
        }
    }

    fn quick_options() -> RuntimeOptions {
        RuntimeOptions {
            shutdown_deadline: Duration::from_millis(200),
            ..RuntimeOptions::default()
        }
    }

    /// Polls `counters` until `done` holds; panics after 20 s (the test then fails, not hangs).
    fn wait_for(
        counters: &ExporterCounters,
        mut done: impl FnMut(&CountersSnapshot) -> bool,
    ) -> CountersSnapshot {
        let give_up = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let snapshot = counters.snapshot();
            if done(&snapshot) {
                return snapshot;
            }
            assert!(
                std::time::Instant::now() < give_up,
                "gave up waiting: {snapshot:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn accounted(snapshot: &CountersSnapshot) -> u64 {
        snapshot.sent
            + snapshot.dropped_retries_exhausted
            + snapshot.dropped_rejected
            + snapshot.dropped_at_shutdown
            + snapshot.queue_len
    }

    #[test]
    fn events_reach_every_exporter_whose_rules_want_them_in_order() {
        let rings = vec![Arc::new(EventRing::new(64)), Arc::new(EventRing::new(64))];
        let (all_sink, all_seen) = TestSink::taking();
        let (renamed_sink, renamed_seen) = TestSink::taking();
        let renamed = RuleSet::new(&[RuleConfig {
            action: Some("client_connected_2".into()),
            ..RuleConfig::for_event(EventKind::ClientConnected)
        }])
        .unwrap();
        let runtime = ExporterRuntime::start_with(
            rings.clone(),
            vec![
                (settings("all"), Box::new(all_sink) as Box<dyn Sink>),
                (
                    ExporterSettings {
                        rules: renamed,
                        ..settings("renamed")
                    },
                    Box::new(renamed_sink),
                ),
            ],
            quick_options(),
        )
        .unwrap();
        assert_eq!(runtime.wanted(), EventKinds::ALL);
        let kinds = [
            EventKind::ClientConnect,
            EventKind::ClientConnected,
            EventKind::SessionCreated,
        ];
        for _ in 0..5 {
            record(&rings[0], &kinds, 100);
            record(&rings[1], &kinds, 200);
        }
        let counters = runtime.counters();
        assert_eq!(counters[0].0, "all");
        let all = wait_for(&counters[0].1, |c| c.sent == 30);
        let renamed = wait_for(&counters[1].1, |c| c.sent == 10);
        assert_eq!(all.queued, 30);
        assert!(all.batches_sent >= 30 / 4);
        assert_eq!(renamed.queued, 10);
        runtime.shutdown();

        let all: Vec<(String, u64)> = all_seen.lock().unwrap().concat();
        assert!(all.iter().all(|(_, at)| *at >= 100));
        let from_first_shard: Vec<u64> = all
            .iter()
            .filter(|(_, at)| *at < 200)
            .map(|(_, at)| *at)
            .collect();
        assert_eq!(
            from_first_shard,
            [100, 101, 102].repeat(5),
            "per-shard order"
        );
        let renamed = renamed_seen.lock().unwrap().concat();
        assert!(renamed
            .iter()
            .all(|(action, at)| action == "client_connected_2" && (*at == 101 || *at == 201)));
    }

    #[test]
    fn a_failing_batch_is_retried_until_the_sink_takes_it() {
        let ring = Arc::new(EventRing::new(64));
        let (sink, seen) = TestSink::failing(3, SinkError::Retryable);
        let runtime = ExporterRuntime::start_with(
            vec![Arc::clone(&ring)],
            vec![(settings("flaky"), Box::new(sink))],
            quick_options(),
        )
        .unwrap();
        record(&ring, &[EventKind::ClientConnected; 3], 1);
        let counters = Arc::clone(&runtime.counters()[0].1);
        let done = wait_for(&counters, |c| c.sent == 3);
        assert_eq!(done.retried, 3);
        assert_eq!(done.failed, 0);
        runtime.shutdown();
        assert_eq!(
            seen.lock().unwrap().concat().len(),
            3,
            "sent once, not repeated"
        );
    }

    #[test]
    fn retries_end_after_the_elapsed_limit_and_the_batch_is_counted_lost() {
        let ring = Arc::new(EventRing::new(64));
        let (sink, _) = TestSink::failing(usize::MAX, SinkError::Retryable);
        let mut settings = settings("dead");
        settings.retry.max_elapsed_time = Duration::from_millis(30);
        let runtime = ExporterRuntime::start_with(
            vec![Arc::clone(&ring)],
            vec![(settings, Box::new(sink))],
            quick_options(),
        )
        .unwrap();
        record(&ring, &[EventKind::ClientConnected; 3], 1);
        let counters = Arc::clone(&runtime.counters()[0].1);
        let done = wait_for(&counters, |c| c.dropped_retries_exhausted == 3);
        assert_eq!(done.failed, 1);
        assert!(done.retried >= 1);
        assert_eq!(done.sent, 0);
        runtime.shutdown();
    }

    #[test]
    fn a_rejected_batch_is_not_retried() {
        let ring = Arc::new(EventRing::new(64));
        let (sink, _) = TestSink::failing(1, SinkError::Permanent);
        let runtime = ExporterRuntime::start_with(
            vec![Arc::clone(&ring)],
            vec![(settings("picky"), Box::new(sink))],
            quick_options(),
        )
        .unwrap();
        record(&ring, &[EventKind::ClientConnected; 4], 1);
        let counters = Arc::clone(&runtime.counters()[0].1);
        let done = wait_for(&counters, |c| c.dropped_rejected == 4);
        assert_eq!((done.failed, done.retried, done.sent), (1, 0, 0));
        runtime.shutdown();
    }

    #[test]
    fn a_dead_sink_costs_at_most_the_queue_and_shows_as_lag() {
        for overflow in [Overflow::DropNewest, Overflow::DropOldest] {
            let ring = Arc::new(EventRing::new(64));
            let (sink, _) = TestSink::failing(usize::MAX, SinkError::Retryable);
            let mut settings = settings("stuck");
            settings.queue_capacity = 5;
            settings.overflow = overflow;
            // One retry far in the future: the first batch stays in flight all test long.
            settings.retry.initial_interval = Duration::from_secs(30);
            settings.retry.max_interval = Duration::from_secs(30);
            let runtime = ExporterRuntime::start_with(
                vec![Arc::clone(&ring)],
                vec![(settings, Box::new(sink))],
                quick_options(),
            )
            .unwrap();
            let counters = Arc::clone(&runtime.counters()[0].1);
            // Stamped ten seconds ago, so the lag is at least that.
            let past = unix_now_ns() - 10_000_000_000;
            record(&ring, &[EventKind::ClientConnected; 4], past);
            wait_for(&counters, |c| c.retried >= 1);
            record(&ring, &[EventKind::ClientConnected; 46], past + 4);
            let stuck = wait_for(&counters, |c| {
                assert!(c.queue_len <= 5, "{c:?}");
                c.queue_len == 5 && c.lag_ms >= 10_000
            });
            let offered = 50;
            let expected_dropped = offered - 4 - 5;
            match overflow {
                // Evicting keeps draining: the queue holds the newest.
                Overflow::DropOldest => {
                    wait_for(&counters, |c| c.dropped_queue_full == expected_dropped);
                }
                // Refusing stops draining: the rest waits in the ring (for the shard to shed).
                Overflow::DropNewest => assert!(!ring.is_empty(), "{stuck:?}"),
            }
            runtime.shutdown();
            let end = counters.snapshot();
            // At shutdown the last pass takes what the ring held, and the full queue refuses it.
            assert_eq!(
                end.dropped_queue_full, expected_dropped,
                "{overflow:?}: {end:?}"
            );
            assert_eq!(end.queue_len, 0);
            assert_eq!(end.dropped_at_shutdown, 4 + 5, "{overflow:?}: {end:?}");
            // Every event ends in one place; evicted ones were queued before they were lost.
            let evicted = match overflow {
                Overflow::DropOldest => end.dropped_queue_full,
                Overflow::DropNewest => 0,
            };
            assert_eq!(accounted(&end) + evicted, end.queued, "{end:?}");
            assert_eq!(end.queued + end.dropped_queue_full - evicted, offered);
        }
    }

    #[test]
    fn full_exporters_that_drop_the_newest_leave_events_in_the_ring_for_the_shard_to_shed() {
        let ring = Arc::new(EventRing::new(64));
        let (sink, _) = TestSink::failing(usize::MAX, SinkError::Retryable);
        let mut settings = settings("stuck");
        settings.queue_capacity = 4;
        settings.overflow = Overflow::DropNewest;
        // One retry far in the future: the first batch stays in flight all test long.
        settings.retry.initial_interval = Duration::from_secs(30);
        settings.retry.max_interval = Duration::from_secs(30);
        let runtime = ExporterRuntime::start_with(
            vec![Arc::clone(&ring)],
            vec![(settings, Box::new(sink))],
            quick_options(),
        )
        .unwrap();
        let counters = Arc::clone(&runtime.counters()[0].1);
        record(&ring, &[EventKind::ClientConnected; 4], 1);
        wait_for(&counters, |c| c.retried >= 1);
        record(&ring, &[EventKind::ClientConnected; 4], 5);
        wait_for(&counters, |c| c.queue_len == 4);
        record(&ring, &[EventKind::ClientConnected; 4], 9);
        // Many drain passes (one per 2 ms poll); none may take the batch. A slow machine
        // only makes this check weaker, never wrong.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ring.len(), 1, "{:?}", counters.snapshot());
        assert_eq!(counters.snapshot().dropped_queue_full, 0);
        runtime.shutdown();
        // The last pass at shutdown takes the ring's batch, and the full queue refuses it.
        let end = counters.snapshot();
        assert_eq!(ring.len(), 0);
        assert_eq!(end.dropped_queue_full, 4, "{end:?}");
        assert_eq!(end.dropped_at_shutdown, 4 + 4, "{end:?}");
    }

    #[test]
    fn shutdown_sends_what_is_queued_without_waiting_for_a_full_batch() {
        let ring = Arc::new(EventRing::new(64));
        let (sink, seen) = TestSink::taking();
        let mut settings = settings("patient");
        settings.batch_events = 1000;
        settings.flush_interval = Duration::from_secs(3600);
        let runtime = ExporterRuntime::start_with(
            vec![Arc::clone(&ring)],
            vec![(settings, Box::new(sink))],
            RuntimeOptions {
                worker_threads: 2,
                ..RuntimeOptions::default()
            },
        )
        .unwrap();
        let counters = Arc::clone(&runtime.counters()[0].1);
        record(&ring, &[EventKind::SessionCreated; 3], 1);
        wait_for(&counters, |c| c.queued == 3);
        runtime.shutdown();
        let end = counters.snapshot();
        assert_eq!((end.sent, end.dropped_at_shutdown), (3, 0));
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert_eq!(ring.len(), 0);
    }
}
