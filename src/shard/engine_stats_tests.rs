//! Engine tests of the `$SYS/` stats topics: what a shard publishes, to whom, retained, only
//! when the numbers changed, and without recording events about itself.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::*;
use crate::hooks::exporters::{CountersSnapshot, ExporterCounters};
use crate::hooks::{EventKind, EventKinds, EventRing, EventSink};
use crate::shard::{ShardStats, SystemTopics};

/// A shard recording every event kind, publishing the stats of one exporter, `redis`.
fn stats_engine() -> (ShardEngine, Arc<EventRing>, Arc<ExporterCounters>) {
    let ring = Arc::new(EventRing::new(64));
    let sink = EventSink::new(EventKinds::ALL, Arc::clone(&ring), 1024);
    let counters = Arc::new(ExporterCounters::default());
    let exporters = vec![("redis".to_owned(), Arc::clone(&counters))];
    let stats = ShardStats::new(7, 0, sink.wanted(), &exporters);
    let engine = engine()
        .with_node(7)
        .with_events(sink, SystemTopics::disabled())
        .with_stats(stats);
    (engine, ring, counters)
}

/// The stats messages a client got: topic, retain flag, JSON payload.
fn stats_received(client: &Client) -> Vec<(String, bool, Value)> {
    publishes(&received(client))
        .into_iter()
        .map(|publish| {
            let json = serde_json::from_slice(&publish.payload).unwrap();
            (publish.topic.as_str().to_owned(), publish.retain, json)
        })
        .collect()
}

#[test]
fn stats_reach_sys_subscribers_retained_only_when_changed_and_record_no_events() {
    let (mut engine, ring, counters) = stats_engine();
    assert!(engine.has_stats());
    let now = Instant::now();
    let watcher = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V5, "watcher", true),
    );
    subscribe(&mut engine, now, &watcher, "$SYS/#", QoS::AtMostOnce);
    let curious = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V3_1_1, "curious", true),
    );
    subscribe(&mut engine, now, &curious, "#", QoS::AtMostOnce);
    let _ = (received(&watcher), received(&curious));
    let before: Vec<_> = ring_events(&mut engine, &ring);

    counters.store(CountersSnapshot {
        queued: 12,
        sent: 10,
        retried: 3,
        dropped_queue_full: 2,
        queue_len: 2,
        ..CountersSnapshot::default()
    });
    engine.publish_stats(now);
    let seen = stats_received(&watcher);
    let twice = json!(2);
    let zero = json!(0);
    let mut recorded = serde_json::Map::new();
    let mut dropped = serde_json::Map::new();
    for kind in EventKind::ALL {
        let count = match kind {
            EventKind::ClientConnect
            | EventKind::SessionCreated
            | EventKind::ClientConnack
            | EventKind::ClientConnected
            | EventKind::ClientSubscribe
            | EventKind::SessionSubscribed => &twice,
            _ => &zero,
        };
        recorded.insert(kind.name().to_owned(), count.clone());
        dropped.insert(kind.name().to_owned(), zero.clone());
    }
    assert_eq!(
        seen,
        vec![
            (
                "$SYS/brokers/7/exporters/redis".to_owned(),
                false,
                json!({
                    "queued": 12, "sent": 10, "batches_sent": 0, "retried": 3, "failed": 0,
                    "dropped_queue_full": 2, "dropped_retries_exhausted": 0,
                    "dropped_rejected": 0, "dropped_at_shutdown": 0, "queue_len": 2,
                    "lag_ms": 0
                })
            ),
            (
                "$SYS/brokers/7/shards/0/events".to_owned(),
                false,
                json!({"recorded": recorded, "dropped_ring_full": dropped})
            ),
        ]
    );
    assert!(
        received(&curious).is_empty(),
        "'#' does not match topics starting with '$'"
    );
    assert_eq!(before.len(), 12, "the two clients' connects and subscribes");
    assert!(
        ring_events(&mut engine, &ring).is_empty(),
        "the stats messages record no events (no publish, delivery or drop)"
    );

    engine.publish_stats(now);
    assert!(
        stats_received(&watcher).is_empty(),
        "nothing changed: nothing is published again"
    );
    counters.store(CountersSnapshot {
        sent: 11,
        ..counters.snapshot()
    });
    engine.publish_stats(now);
    let seen = stats_received(&watcher);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "$SYS/brokers/7/exporters/redis");
    assert_eq!(seen[0].2["sent"], json!(11));

    let late = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V5, "late", true),
    );
    subscribe(
        &mut engine,
        now,
        &late,
        "$SYS/brokers/7/+/#",
        QoS::AtMostOnce,
    );
    let retained = stats_received(&late);
    let mut topics: Vec<(&str, bool)> = retained
        .iter()
        .map(|(topic, retain, _)| (topic.as_str(), *retain))
        .collect();
    topics.sort_unstable();
    assert_eq!(
        topics,
        [
            ("$SYS/brokers/7/exporters/redis", true),
            ("$SYS/brokers/7/shards/0/events", true)
        ]
    );
    let exporter = retained
        .iter()
        .find(|(topic, _, _)| topic.ends_with("/redis"))
        .unwrap();
    assert_eq!(exporter.2["sent"], json!(11), "the latest numbers");
}

#[test]
fn a_shard_without_events_or_exporters_has_no_stats() {
    let stats = ShardStats::new(1, 0, EventKinds::NONE, &[]);
    let mut engine = engine().with_stats(stats);
    assert!(!engine.has_stats());
    let now = Instant::now();
    let watcher = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V5, "watcher", true),
    );
    subscribe(&mut engine, now, &watcher, "$SYS/#", QoS::AtMostOnce);
    let _ = received(&watcher);
    engine.publish_stats(now);
    assert!(received(&watcher).is_empty());
    assert_eq!(engine.counters().messages_received, 0);
}

/// Every event the shard has recorded since the last call.
fn ring_events(engine: &mut ShardEngine, ring: &EventRing) -> Vec<crate::hooks::Event> {
    engine.flush_events();
    let mut events = Vec::new();
    while let Some(batch) = ring.pop() {
        events.extend(batch);
    }
    events
}
