//! A real broker under MQTT load whose Redis exporter loses its server and gets it back: the
//! broker loses no MQTT message while the sink is down, the exporter's retained `$SYS/` stats
//! show the retries, the overflow and a queue that stays within its capacity, the broker's
//! memory stays bounded, and once Redis is back the exporter sends again. It runs once per
//! overflow policy: `drop_newest` (the default) loses the dead sink's events at the shards
//! (shed, `dropped_ring_full`), `drop_oldest` at the exporter's queue (`dropped_queue_full`).
//!
//! The same load runs in three phases (publisher/subscriber pairs of rumqttc 3.1.1 clients at
//! QoS 1, a fixed number of messages per pair): Redis up, Redis killed, Redis restarted (empty)
//! on the same port. The clients stay connected throughout, with clean sessions, so the broker
//! owes each subscriber every message once, in publish order; a copy flagged DUP would be
//! within QoS 1's at-least-once and is tolerated, an unflagged copy or a missing message fails.
//!
//! Nothing here asserts a duration: every wait is a poll that gives up after [`GIVE_UP`] of
//! polling with the clients' progress and the last stats in its message. Redis, the broker and the clients'
//! tasks are stopped by their `Drop`s, so a failing test leaves nothing running.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::servers::RedisServer;
use common::Broker;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde::Deserialize;
use serde_json::Value;

/// Publisher/subscriber pairs, and messages each publisher sends per phase.
const PAIRS: usize = 4;
const MESSAGES: usize = 500;
/// The exporter's queue: small, so the down phase overflows it (each QoS 1 message makes
/// three events: publish, delivered, acked).
const QUEUE_CAPACITY: u64 = 2000;
const NODE: u32 = 5;
/// The longest any wait lasts before the test fails.
const GIVE_UP: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);
/// Generous: the queue holds at most 2000 events of about 120-byte payloads; the rest is the
/// broker's own footprint.
const RSS_LIMIT_KIB: u64 = 256 * 1024;

/// Polls `$done` (which may `.await`) every [`POLL`] until it holds; after [`GIVE_UP`] of
/// polling fails with `$what` and `$context`. The give-up counts polls instead of reading the
/// clock: on a machine that stalls every process for a while (a paused VM, an overloaded CI
/// host; seen on the shared development VM, where nothing ran for over a minute), a clock
/// deadline fails on the first poll after the stall, before the broker had a chance to run.
macro_rules! wait_for {
    ($what:expr, $done:expr, $context:expr) => {{
        let mut polls_left = GIVE_UP.as_millis() / POLL.as_millis();
        loop {
            if $done {
                break;
            }
            polls_left -= 1;
            if polls_left == 0 {
                panic!(
                    "gave up after {GIVE_UP:?} waiting for {}\n{}",
                    $what, $context
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }};
}

/// The exporter's overflow policy, which decides where a dead sink's events are lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overflow {
    /// Evicting keeps the exporter draining: every event reaches its queue (`queued` counts
    /// each) and the queue's overflow is `dropped_queue_full`.
    DropOldest,
    /// The default: a full queue refuses, the exporter stops draining, the shards' small ring
    /// fills and the shards shed new events (`dropped_ring_full`).
    DropNewest,
}

impl Overflow {
    fn name(self) -> &'static str {
        match self {
            Overflow::DropOldest => "drop_oldest",
            Overflow::DropNewest => "drop_newest",
        }
    }
}

fn broker_config(redis_url: &str, overflow: Overflow) -> String {
    // With drop_newest the ring must be small enough for the down phase to fill it.
    let ring = match overflow {
        Overflow::DropOldest => "",
        Overflow::DropNewest => "ring_batches = 4\nbatch_events = 64",
    };
    let overflow = overflow.name();
    format!(
        r#"
[events]
node = {NODE}
flush_interval_ms = 5
stats_interval_ms = 200
{ring}

[[exporters]]
name = "redis"
type = "redis"
url = "{redis_url}"
timeout = "500ms"
queue_capacity = {QUEUE_CAPACITY}
overflow = "{overflow}"
batch_events = 100
flush_interval = "10ms"
retry_initial_interval = "20ms"
retry_multiplier = 2.0
retry_max_elapsed_time = "1s"
"#
    )
}

/// What a client's event loop has seen.
#[derive(Default)]
struct Seen {
    connected: AtomicBool,
    subacks: AtomicUsize,
    pubacks: AtomicUsize,
    publishes: Mutex<Vec<rumqttc::Publish>>,
    error: Mutex<Option<String>>,
}

/// One rumqttc 3.1.1 connection whose event loop a task of its own pumps; it never
/// reconnects (a reconnect would hide a loss), it records the error instead.
struct Mqtt {
    id: String,
    client: AsyncClient,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Mqtt {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mqtt {
    async fn connect(port: u16, id: &str) -> Self {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(60));
        options.set_inflight(100);
        let (client, mut eventloop) = AsyncClient::new(options, 256);
        let seen = Arc::new(Seen::default());
        let pumped = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        pumped.connected.store(true, Ordering::SeqCst);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        pumped.subacks.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        pumped.pubacks.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        pumped.publishes.lock().unwrap().push(publish);
                    }
                    Ok(_) => {}
                    Err(error) => {
                        *pumped.error.lock().unwrap() = Some(error.to_string());
                        break;
                    }
                }
            }
        });
        let mqtt = Self {
            id: id.to_owned(),
            client,
            seen,
            task,
        };
        wait_for!(
            format!("the CONNACK of {id}"),
            mqtt.seen.connected.load(Ordering::SeqCst),
            mqtt.state()
        );
        mqtt
    }

    async fn subscribe(&self, filter: &str) {
        let before = self.seen.subacks.load(Ordering::SeqCst);
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        wait_for!(
            format!("the SUBACK of {filter} for {}", self.id),
            self.seen.subacks.load(Ordering::SeqCst) > before,
            self.state()
        );
    }

    fn pubacks(&self) -> usize {
        self.seen.pubacks.load(Ordering::SeqCst)
    }

    fn received(&self) -> usize {
        self.seen.publishes.lock().unwrap().len()
    }

    fn error(&self) -> Option<String> {
        self.seen.error.lock().unwrap().clone()
    }

    fn state(&self) -> String {
        format!(
            "{}: {} PUBACKs, {} PUBLISHes received, error: {:?}",
            self.id,
            self.pubacks(),
            self.received(),
            self.error()
        )
    }
}

/// An exporter's counters as its `$SYS/` topic says them.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct ExporterStats {
    queued: u64,
    sent: u64,
    retried: u64,
    dropped_queue_full: u64,
    queue_len: u64,
    lag_ms: u64,
}

/// A client subscribed to the broker's `$SYS/brokers/<node>/#`.
struct StatsWatcher(Mqtt);

impl StatsWatcher {
    async fn start(broker: &Broker) -> Self {
        let watcher = Mqtt::connect(broker.port, "stats-watcher").await;
        watcher.subscribe(&format!("$SYS/brokers/{NODE}/#")).await;
        Self(watcher)
    }

    /// Every stats message so far, in order: topic and payload.
    fn messages(&self) -> Vec<(String, Value)> {
        let publishes = self.0.seen.publishes.lock().unwrap();
        publishes
            .iter()
            .map(|publish| {
                let json = serde_json::from_slice(&publish.payload)
                    .unwrap_or_else(|error| panic!("{publish:?} is not JSON: {error}"));
                (publish.topic.clone(), json)
            })
            .collect()
    }

    /// Every value the redis exporter's topic has had.
    fn exporter_history(&self) -> Vec<ExporterStats> {
        let topic = format!("$SYS/brokers/{NODE}/exporters/redis");
        self.messages()
            .into_iter()
            .filter(|(seen, _)| *seen == topic)
            .map(|(_, json)| serde_json::from_value(json).unwrap())
            .collect()
    }

    /// The redis exporter's latest counters (zeros before the first message).
    fn exporter(&self) -> ExporterStats {
        self.exporter_history().last().copied().unwrap_or_default()
    }

    /// The latest payload of each shard's events topic.
    fn shard_events(&self) -> Vec<Value> {
        let latest: BTreeMap<String, Value> = self
            .messages()
            .into_iter()
            .filter(|(topic, _)| topic.ends_with("/events"))
            .collect();
        latest.into_values().collect()
    }

    /// Events the shards shed because their ring was full, summed over shards and kinds.
    fn shed(&self) -> u64 {
        self.shard_events()
            .iter()
            .filter_map(|json| json["dropped_ring_full"].as_object())
            .flat_map(|kinds| kinds.values().filter_map(Value::as_u64))
            .sum()
    }

    /// Events of `kind` recorded, summed over the shards.
    fn recorded(&self, kind: &str) -> u64 {
        self.shard_events()
            .iter()
            .map(|json| json["recorded"][kind].as_u64().unwrap_or(0))
            .sum()
    }

    /// Whether the shards have recorded the publish, delivery and ack of each of `messages`
    /// messages, and the exporter has taken every event the shards handed over (of every
    /// kind: the exporter has no rules) and has nothing left to send or retry.
    fn exporter_settled(&self, messages: u64, overflow: Overflow) -> bool {
        let complete = ["message_publish", "message_delivered", "message_acked"]
            .iter()
            .all(|kind| self.recorded(kind) == messages);
        let sum = |json: &Value| -> u64 {
            json.as_object()
                .map_or(0, |kinds| kinds.values().filter_map(Value::as_u64).sum())
        };
        let offered: u64 = self
            .shard_events()
            .iter()
            .map(|json| sum(&json["recorded"]) - sum(&json["dropped_ring_full"]))
            .sum();
        let exporter = self.exporter();
        // Evicted events were queued first; refused ones never were.
        let taken = match overflow {
            Overflow::DropOldest => exporter.queued,
            Overflow::DropNewest => exporter.queued + exporter.dropped_queue_full,
        };
        complete && taken == offered && exporter.queue_len == 0 && exporter.lag_ms == 0
    }

    fn report(&self) -> String {
        let latest: BTreeMap<String, Value> = self.messages().into_iter().collect();
        format!("last stats: {latest:#?}; watcher {}", self.0.state())
    }
}

struct Pair {
    topic: String,
    publisher: Mqtt,
    subscriber: Mqtt,
}

/// The payload of message `seq` of `pair` in `phase`: different for every message, 120 bytes.
fn payload(phase: usize, pair: usize, seq: usize) -> Vec<u8> {
    let mut text = format!("phase {phase} pair {pair} message {seq:04} ");
    while text.len() < 120 {
        text.push(char::from(b'a' + ((seq + text.len()) % 26) as u8));
    }
    text.into_bytes()
}

async fn connect_pairs(broker: &Broker) -> Vec<Pair> {
    let mut pairs = Vec::with_capacity(PAIRS);
    for index in 0..PAIRS {
        let topic = format!("fault/{index}");
        let subscriber = Mqtt::connect(broker.port, &format!("sub-{index}")).await;
        subscriber.subscribe(&topic).await;
        let publisher = Mqtt::connect(broker.port, &format!("pub-{index}")).await;
        pairs.push(Pair {
            topic,
            publisher,
            subscriber,
        });
    }
    pairs
}

fn progress(pairs: &[Pair], watcher: &StatsWatcher) -> String {
    let mut lines: Vec<String> = pairs
        .iter()
        .flat_map(|pair| [pair.publisher.state(), pair.subscriber.state()])
        .collect();
    lines.push(watcher.report());
    lines.join("\n")
}

/// Publishes `MESSAGES` per pair and waits until every one is acknowledged and delivered,
/// then checks what each subscriber got over phases `0..=phase`.
async fn run_phase(phase: usize, pairs: &[Pair], watcher: &StatsWatcher) {
    for seq in 0..MESSAGES {
        for (index, pair) in pairs.iter().enumerate() {
            pair.publisher
                .client
                .publish(
                    pair.topic.as_str(),
                    QoS::AtLeastOnce,
                    false,
                    payload(phase, index, seq),
                )
                .await
                .unwrap();
        }
    }
    let expected = (phase + 1) * MESSAGES;
    wait_for!(
        format!("phase {phase}: every publish acknowledged and delivered"),
        pairs.iter().all(|pair| {
            pair.publisher.pubacks() >= expected && pair.subscriber.received() >= expected
        }) || pairs
            .iter()
            .any(|pair| pair.publisher.error().is_some() || pair.subscriber.error().is_some()),
        progress(pairs, watcher)
    );
    check_deliveries(pairs, phase, watcher);
}

/// Every subscriber got every message of phases `0..=last_phase` once, in publish order, with
/// its payload and QoS 1; a repeated message is accepted only when flagged DUP.
fn check_deliveries(pairs: &[Pair], last_phase: usize, watcher: &StatsWatcher) {
    for (index, pair) in pairs.iter().enumerate() {
        for client in [&pair.publisher, &pair.subscriber] {
            assert_eq!(client.error(), None, "{}", progress(pairs, watcher));
        }
        let received = pair.subscriber.seen.publishes.lock().unwrap();
        let mut distinct: Vec<&[u8]> = Vec::with_capacity(received.len());
        let mut known: HashSet<&[u8]> = HashSet::with_capacity(received.len());
        for publish in received.iter() {
            assert_eq!(publish.topic, pair.topic);
            assert_eq!(publish.qos, QoS::AtLeastOnce, "{publish:?}");
            if !known.insert(&publish.payload[..]) {
                assert!(publish.dup, "a copy not flagged DUP: {publish:?}");
                continue;
            }
            distinct.push(&publish.payload[..]);
        }
        let sent: Vec<Vec<u8>> = (0..=last_phase)
            .flat_map(|phase| (0..MESSAGES).map(move |seq| payload(phase, index, seq)))
            .collect();
        assert_eq!(distinct.len(), sent.len(), "{}", pair.subscriber.state());
        for (position, (got, want)) in distinct.iter().zip(&sent).enumerate() {
            assert!(
                *got == &want[..],
                "{}: message {position} is {:?}, expected {:?}",
                pair.subscriber.id,
                String::from_utf8_lossy(got),
                String::from_utf8_lossy(want)
            );
        }
    }
}

/// Resident memory of a process in KiB, from /proc.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Entries of a Redis stream; 0 when Redis cannot be asked.
async fn xlen(url: &str, stream: &str) -> u64 {
    let Ok(client) = redis::Client::open(url) else {
        return 0;
    };
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(&mut connection)
        .await
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_is_lost_while_the_redis_exporter_is_down_and_it_recovers() {
    fault_scenario(Overflow::DropNewest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_is_lost_while_a_drop_oldest_redis_exporter_is_down_and_it_recovers() {
    fault_scenario(Overflow::DropOldest).await;
}

async fn fault_scenario(overflow: Overflow) {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let broker = Broker::start(2, &broker_config(&url, overflow));
    let watcher = StatsWatcher::start(&broker).await;
    let pairs = connect_pairs(&broker).await;
    let stream = "supermq.mqtt.message_publish";

    // Phase 0: Redis up.
    run_phase(0, &pairs, &watcher).await;
    wait_for!(
        "the first events in Redis",
        watcher.exporter().sent > 0 && xlen(&url, stream).await > 0,
        watcher.report()
    );

    // The baseline of the down phase: phase 0's events all handled (sent, or dropped by the
    // overflow policy if the burst outran the exporter; the queue is small on purpose).
    let per_phase = (PAIRS * MESSAGES) as u64;
    wait_for!(
        "the exporter to take and send every event of phase 0",
        watcher.exporter_settled(per_phase, overflow),
        watcher.report()
    );
    let at_stop = watcher.exporter();
    let shed_at_stop = watcher.shed();

    // Phase 1: Redis killed. The broker's memory is sampled all along.
    redis.stop();
    let max_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (max_rss, pid) = (Arc::clone(&max_rss), broker.pid());
        tokio::spawn(async move {
            loop {
                if let Some(rss) = rss_kib(pid) {
                    max_rss.fetch_max(rss, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    run_phase(1, &pairs, &watcher).await;
    wait_for!(
        "retries and queue overflow while Redis is down",
        {
            let now = watcher.exporter();
            let dropped = match overflow {
                Overflow::DropOldest => now.dropped_queue_full > at_stop.dropped_queue_full,
                Overflow::DropNewest => watcher.shed() > shed_at_stop,
            };
            now.retried > at_stop.retried && dropped && now.queue_len > 0
        },
        format!("at the stop: {at_stop:?}; {}", watcher.report())
    );
    assert_eq!(
        watcher.exporter().sent,
        at_stop.sent,
        "nothing can be sent while Redis is down"
    );
    let warning = match overflow {
        Overflow::DropOldest => "exporter dropped or failed events",
        Overflow::DropNewest => "the shards shed events",
    };
    wait_for!(
        "the interval's warning about the lost events",
        broker.log().iter().any(|line| line.contains(warning)),
        broker.log().join("\n")
    );
    sampler.abort();
    let history = watcher.exporter_history();
    assert!(
        history
            .iter()
            .all(|stats| stats.queue_len <= QUEUE_CAPACITY),
        "the queue grew past its capacity: {history:?}"
    );
    let max_rss = max_rss.load(Ordering::SeqCst);
    assert!(max_rss > 0, "the broker's VmRSS was never read");
    assert!(
        max_rss < RSS_LIMIT_KIB,
        "the broker's RSS reached {max_rss} KiB while Redis was down"
    );

    // Phase 2: Redis back, empty, on the same port.
    let before_restart = watcher.exporter();
    redis.restart_on_same_port();
    run_phase(2, &pairs, &watcher).await;
    wait_for!(
        "events in the restarted Redis and the backlog drained",
        {
            let now = watcher.exporter();
            now.sent > before_restart.sent && now.queue_len == 0 && xlen(&url, stream).await > 0
        },
        format!(
            "before the restart: {before_restart:?}; {}",
            watcher.report()
        )
    );
    wait_for!(
        "the shards' events topics counting every message once and the exporter settled",
        watcher.exporter_settled(3 * per_phase, overflow),
        watcher.report()
    );
    // Late copies of earlier phases would show here.
    check_deliveries(&pairs, 2, &watcher);

    drop(pairs);
    drop(watcher);
    broker.signal(libc::SIGTERM);
    let (status, log) = broker.wait();
    assert!(status.success(), "{log}");
    assert!(log.contains("exporter counters"), "{log}");
}
