//! The broker's event and exporter counters as retained `$SYS/` messages, published by the
//! shards every `events.stats_interval_ms`:
//!
//! | topic | published by | payload |
//! |---|---|---|
//! | `$SYS/brokers/<node>/exporters/<name>` | shard 0 | the exporter's [`CountersSnapshot`] |
//! | `$SYS/brokers/<node>/shards/<shard>/events` | each shard that records events | `{"recorded": {<event>: n}, "dropped_ring_full": {<event>: n}}` |
//!
//! The events payload names every kind the shard records (the kinds some exporter wants),
//! zeros included, so a dashboard sees the same keys every time; kinds nobody wants are never
//! counted and are left out. A topic is published only when its numbers changed since the
//! last interval (as Mosquitto does for its `$SYS` tree): the retained message already says
//! the rest, and an idle broker publishes nothing.
//!
//! Built on the shard, read from shared atomics (exporters) or the shard's own counters
//! (events); it allocates a few small strings per changed topic and interval, never more.
//! Messages under [`STATS_PREFIX`] made by the broker record no events (see
//! [`is_broker_stats`]): counting them would change the numbers they report, and every
//! interval would publish again.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::hooks::exporters::{CountersSnapshot, ExporterCounters};
use crate::hooks::{EventCounters, EventKinds};
use crate::protocol::{ClientId, QoS, TopicName};
use crate::session::Message;

/// Where every stats topic lives.
pub const STATS_PREFIX: &str = "$SYS/brokers/";

/// One shard's stats topics and what it last published on them.
#[derive(Debug, Default)]
pub struct ShardStats {
    events: Option<EventsTopic>,
    exporters: Vec<ExporterTopic>,
}

#[derive(Debug)]
struct EventsTopic {
    topic: TopicName,
    recorded: EventKinds,
    last: Option<EventCounters>,
}

#[derive(Debug)]
struct ExporterTopic {
    topic: TopicName,
    counters: Arc<ExporterCounters>,
    last: Option<CountersSnapshot>,
}

impl ShardStats {
    /// Nothing to publish.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// The stats of shard `shard` of node `node`: its events topic when it records any kind
    /// (`recorded`), and a topic per exporter in `exporters` (give them to one shard only).
    pub fn new(
        node: u32,
        shard: usize,
        recorded: EventKinds,
        exporters: &[(String, Arc<ExporterCounters>)],
    ) -> Self {
        let events = if recorded.is_empty() {
            None
        } else {
            stats_topic(&format!("{STATS_PREFIX}{node}/shards/{shard}/events")).map(|topic| {
                EventsTopic {
                    topic,
                    recorded,
                    last: None,
                }
            })
        };
        let exporters = exporters
            .iter()
            .filter_map(|(name, counters)| {
                let topic = stats_topic(&format!("{STATS_PREFIX}{node}/exporters/{name}"))?;
                Some(ExporterTopic {
                    topic,
                    counters: Arc::clone(counters),
                    last: None,
                })
            })
            .collect();
        Self { events, exporters }
    }

    /// Whether there is nothing to publish (the shard then runs no stats timer at all).
    pub fn is_empty(&self) -> bool {
        self.events.is_none() && self.exporters.is_empty()
    }

    /// Appends to `out` a retained message for every topic whose numbers changed since the
    /// last call; `events` are the shard's event counters now, `origin` the broker's client id.
    pub fn changed_messages(
        &mut self,
        events: &EventCounters,
        origin: &ClientId,
        out: &mut Vec<Message>,
    ) {
        for exporter in &mut self.exporters {
            let now = exporter.counters.snapshot();
            if exporter.last == Some(now) {
                continue;
            }
            exporter.last = Some(now);
            if let Ok(payload) = serde_json::to_vec(&now) {
                out.push(retained(&exporter.topic, payload, origin));
            }
        }
        if let Some(topic) = &mut self.events {
            if topic.last.as_ref() == Some(events) {
                return;
            }
            topic.last = Some(*events);
            let payload = events_json(events, topic.recorded).to_string().into_bytes();
            out.push(retained(&topic.topic, payload, origin));
        }
    }
}

/// Whether `message` is one of the broker's own stats messages: those record no events.
pub fn is_broker_stats(message: &Message) -> bool {
    message.publisher.is_none() && message.topic.as_str().starts_with(STATS_PREFIX)
}

/// `{"recorded": {...}, "dropped_ring_full": {...}}` over the `recorded` kinds.
fn events_json(counters: &EventCounters, recorded: EventKinds) -> Value {
    let by_kind = |numbers: &[u64]| -> Value {
        let map: Map<String, Value> = recorded
            .iter()
            .map(|kind| (kind.name().to_owned(), Value::from(numbers[kind.index()])))
            .collect();
        Value::Object(map)
    };
    let mut payload = Map::new();
    payload.insert("recorded".to_owned(), by_kind(&counters.recorded));
    payload.insert(
        "dropped_ring_full".to_owned(),
        by_kind(&counters.dropped_ring_full),
    );
    Value::Object(payload)
}

/// The topic, or `None` (logged) when the name cannot be one; config validation keeps
/// exporter names to valid topic levels, so this is a guard, not an expected path.
fn stats_topic(text: &str) -> Option<TopicName> {
    match TopicName::new(text) {
        Ok(topic) => Some(topic),
        Err(error) => {
            tracing::warn!(topic = text, %error, "no stats topic: not a valid topic name");
            None
        }
    }
}

fn retained(topic: &TopicName, payload: Vec<u8>, origin: &ClientId) -> Message {
    Message {
        topic: topic.clone(),
        payload: Bytes::from(payload),
        qos: QoS::AtMostOnce,
        retain: true,
        properties: Default::default(),
        expires_at: None,
        origin: origin.clone(),
        publisher: None,
        received_at_ns: 0,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::hooks::EventKind;

    fn origin() -> ClientId {
        ClientId::new("broker").unwrap()
    }

    fn payload(message: &Message) -> Value {
        serde_json::from_slice(&message.payload).unwrap()
    }

    #[test]
    fn topics_carry_the_node_the_shard_and_the_exporter_name() {
        let exporters = vec![("redis".to_owned(), Arc::default())];
        let recorded = EventKinds::NONE.with(EventKind::ClientConnected);
        let mut stats = ShardStats::new(3, 1, recorded, &exporters);
        let mut out = Vec::new();
        stats.changed_messages(&EventCounters::default(), &origin(), &mut out);
        let topics: Vec<&str> = out.iter().map(|m| m.topic.as_str()).collect();
        assert_eq!(
            topics,
            [
                "$SYS/brokers/3/exporters/redis",
                "$SYS/brokers/3/shards/1/events"
            ]
        );
        assert!(out
            .iter()
            .all(|m| m.retain && m.publisher.is_none() && is_broker_stats(m)));
        assert_eq!(
            payload(&out[1]),
            serde_json::json!({
                "recorded": {"client_connected": 0},
                "dropped_ring_full": {"client_connected": 0}
            })
        );
    }

    #[test]
    fn unchanged_numbers_are_not_published_again() {
        let counters: Arc<ExporterCounters> = Arc::default();
        let exporters = vec![("file".to_owned(), Arc::clone(&counters))];
        let mut stats = ShardStats::new(1, 0, EventKinds::ALL, &exporters);
        let mut events = EventCounters::default();
        let mut out = Vec::new();
        stats.changed_messages(&events, &origin(), &mut out);
        assert_eq!(out.len(), 2);
        out.clear();
        stats.changed_messages(&events, &origin(), &mut out);
        assert!(out.is_empty(), "{out:?}");
        events.dropped_ring_full[EventKind::MessageAcked.index()] = 4;
        stats.changed_messages(&events, &origin(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(
            payload(&out[0])["dropped_ring_full"]["message_acked"],
            Value::from(4)
        );
        out.clear();
        counters.store(CountersSnapshot {
            sent: 9,
            queue_len: 2,
            ..CountersSnapshot::default()
        });
        stats.changed_messages(&events, &origin(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic.as_str(), "$SYS/brokers/1/exporters/file");
        let json = payload(&out[0]);
        assert_eq!(
            (json["sent"].as_u64(), json["queue_len"].as_u64()),
            (Some(9), Some(2))
        );
        assert_eq!(json.as_object().unwrap().len(), 11, "every counter: {json}");
    }

    #[test]
    fn nothing_recorded_and_no_exporters_is_empty() {
        assert!(ShardStats::new(1, 0, EventKinds::NONE, &[]).is_empty());
        assert!(ShardStats::disabled().is_empty());
        let bad = vec![("a/+".to_owned(), Arc::default())];
        assert!(
            ShardStats::new(1, 0, EventKinds::NONE, &bad).is_empty(),
            "a name that makes no topic is skipped"
        );
    }
}
