//! The Redis Streams, NATS JetStream and Kafka sinks against real servers
//! (`tests/common/servers.rs`): batches of events go in through the `Sink` trait, and come out
//! read back with each server's own client, checked field by field in SuperMQ's format.
//! Fault tests stop the server, expect a retryable error, restart it on the same port and
//! expect the sink to deliver again without being rebuilt.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::servers::{KafkaServer, NatsServer, RedisServer};
use serde_json::json;
use starling::hooks::event::{
    ClientInfo, DisconnectReason, Event, EventDetail, EventKind, MessageFacts,
};
use starling::hooks::exporters::kafka::{partition_for, KafkaConfig, KafkaSink, TopicMode};
use starling::hooks::exporters::nats::{NatsConfig, NatsJetStreamSink};
use starling::hooks::exporters::redis::{RedisConfig, RedisStreamsSink};
use starling::hooks::exporters::{ExportItem, Sink, SinkError};
use starling::protocol::{ClientId, MqttString, PacketId, PublishProperties, QoS, TopicName};
use starling::session::{DropReason, Message};

const AT: u64 = 1_693_312_937_469_719_069;
const PUBLISHED_AT: u64 = 1_693_312_937_000_000_001;

fn client(id: &str) -> Arc<ClientInfo> {
    Arc::new(ClientInfo {
        node: 1,
        shard: 0,
        client_id: ClientId::new(id).unwrap(),
        username: Some(MqttString::new("alice").unwrap()),
        address: Some("10.0.0.7:51234".parse().unwrap()),
        protocol: 4,
        keep_alive_secs: 60,
        clean_start: true,
    })
}

fn item(kind: EventKind, client_id: &str, detail: EventDetail) -> ExportItem {
    ExportItem {
        event: Arc::new(Event {
            kind,
            at_ns: AT,
            client: client(client_id),
            detail,
        }),
        action: Arc::from(kind.name()),
        destinations: None,
    }
}

fn connected(client_id: &str) -> ExportItem {
    item(EventKind::ClientConnected, client_id, EventDetail::None)
}

fn disconnected(client_id: &str) -> ExportItem {
    item(
        EventKind::ClientDisconnected,
        client_id,
        EventDetail::Disconnected(DisconnectReason::ConnectionLost),
    )
}

/// A QoS 1 message from `pub-1` on `a/b` with a payload that is not UTF-8, as `kind` sees it
/// for `client_id`.
fn message(kind: EventKind, client_id: &str, dropped: Option<DropReason>) -> ExportItem {
    let publisher = client("pub-1");
    let detail = EventDetail::Message(MessageFacts {
        message: Arc::new(Message {
            topic: TopicName::new("a/b").unwrap(),
            payload: Bytes::from_static(b"\x00hi\xff"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: PublishProperties::default(),
            expires_at: None,
            origin: publisher.client_id.clone(),
            publisher: None,
            received_at_ns: 0,
        }),
        publisher,
        published_at_ns: PUBLISHED_AT,
        qos: QoS::AtLeastOnce,
        packet_id: PacketId::new(9),
        dup: false,
        dropped,
    });
    item(kind, client_id, detail)
}

/// The four fields of SuperMQ's connect and disconnect events, as text.
fn supermq_fields(client_id: &str, event_type: &str) -> Vec<(String, String)> {
    [
        ("client_id", client_id),
        ("event_type", event_type),
        ("instance", "node-a"),
        ("occurred_at", "1693312937469719069"),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .to_vec()
}

/// The fields of the `message()` event as text (`to` is the event's client).
fn message_fields(operation: &str, to: &str) -> Vec<(String, String)> {
    [
        ("operation", operation),
        ("client_id", to),
        ("instance", "node-a"),
        ("occurred_at", "1693312937469719069"),
        ("username", "alice"),
        ("ipaddress", "10.0.0.7:51234"),
        ("topic", "a/b"),
        ("qos", "1"),
        ("retain", "false"),
        ("dup", "false"),
        ("packet_id", "9"),
        ("payload", "AGhp/w=="),
        ("from_client_id", "pub-1"),
        ("from_username", "alice"),
        ("published_at", "1693312937000000001"),
    ]
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .to_vec()
}

// ---------------------------------------------------------------------------------------------
// Redis

/// Every entry of `stream`: (id, fields in order).
async fn xrange(url: &str, stream: &str) -> Vec<(String, Vec<(String, String)>)> {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut connection)
        .await
        .unwrap();
    entries
        .into_iter()
        .map(|(id, flat)| {
            let pairs = flat
                .chunks(2)
                .map(|pair| (pair[0].clone(), pair[1].clone()))
                .collect();
            (id, pairs)
        })
        .collect()
}

async fn xlen(url: &str, stream: &str) -> usize {
    let client = redis::Client::open(url).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(&mut connection)
        .await
        .unwrap()
}

fn redis_config(url: &str) -> RedisConfig {
    RedisConfig {
        instance: "node-a".to_owned(),
        timeout: Duration::from_secs(5),
        ..RedisConfig::new(url)
    }
}

#[tokio::test]
async fn redis_connect_and_disconnect_are_supermq_entries_of_four_fields() {
    let redis = RedisServer::start();
    let mut sink = RedisStreamsSink::new(redis_config(&redis.url())).unwrap();
    assert_eq!(sink.kind(), "redis");
    let batch = [connected("76a58221"), disconnected("76a58221")];
    sink.send(&batch).await.unwrap();

    let entries = xrange(&redis.url(), "supermq.mqtt").await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].1, supermq_fields("76a58221", "connect"));
    assert_eq!(entries[1].1, supermq_fields("76a58221", "disconnect"));
    // Redis made the ids (`*`): one per entry.
    assert_ne!(entries[0].0, entries[1].0);
}

#[tokio::test]
async fn redis_other_kinds_go_to_their_own_streams_with_their_facts() {
    let redis = RedisServer::start();
    let mut sink = RedisStreamsSink::new(redis_config(&redis.url())).unwrap();
    let batch = [
        message(EventKind::MessagePublish, "pub-1", None),
        message(
            EventKind::MessageDropped,
            "sub-1",
            Some(DropReason::QueueFull),
        ),
        connected("pub-1"),
    ];
    sink.send(&batch).await.unwrap();

    let published = xrange(&redis.url(), "supermq.mqtt.message_publish").await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].1, message_fields("message_publish", "pub-1"));

    let dropped = xrange(&redis.url(), "supermq.mqtt.message_dropped").await;
    assert_eq!(dropped.len(), 1);
    let mut expected = message_fields("message_dropped", "sub-1");
    expected.push(("reason".to_owned(), "queue_full".to_owned()));
    assert_eq!(dropped[0].1, expected);

    let main = xrange(&redis.url(), "supermq.mqtt").await;
    assert_eq!(main.len(), 1);
    assert_eq!(main[0].1, supermq_fields("pub-1", "connect"));
}

#[tokio::test]
async fn redis_maxlen_trims_the_streams() {
    let redis = RedisServer::start();
    let mut sink = RedisStreamsSink::new(RedisConfig {
        maxlen: 10,
        ..redis_config(&redis.url())
    })
    .unwrap();
    let batch: Vec<ExportItem> = (0..100).map(|_| connected("c")).collect();
    for _ in 0..5 {
        sink.send(&batch).await.unwrap();
    }
    // `MAXLEN ~` trims whole internal nodes (100 entries each by default), so the length is
    // not exactly 10, but 500 entries cannot all be there.
    let length = xlen(&redis.url(), "supermq.mqtt").await;
    assert!((10..500).contains(&length), "length {length}");
}

#[tokio::test]
async fn redis_down_is_retryable_and_the_sink_recovers_after_a_restart() {
    let mut redis = RedisServer::start();
    let mut sink = RedisStreamsSink::new(redis_config(&redis.url())).unwrap();
    sink.send(&[connected("before")]).await.unwrap();

    redis.stop();
    let err = sink.send(&[connected("during")]).await.unwrap_err();
    assert!(matches!(err, SinkError::Retryable(_)), "{err:?}");
    // Still down: the reconnect fails the same way.
    let err = sink.send(&[connected("during")]).await.unwrap_err();
    assert!(matches!(err, SinkError::Retryable(_)), "{err:?}");

    redis.restart_on_same_port();
    sink.send(&[connected("after")]).await.unwrap();
    let entries = xrange(&redis.url(), "supermq.mqtt").await;
    assert_eq!(entries.len(), 1, "the restarted server is empty");
    assert_eq!(entries[0].1, supermq_fields("after", "connect"));
}

#[tokio::test]
async fn redis_a_key_that_is_not_a_stream_is_permanent() {
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("supermq.mqtt")
        .arg("not a stream")
        .query_async(&mut connection)
        .await
        .unwrap();
    let mut sink = RedisStreamsSink::new(redis_config(&redis.url())).unwrap();
    let err = sink.send(&[connected("c")]).await.unwrap_err();
    assert!(matches!(err, SinkError::Permanent(_)), "{err:?}");
}

#[test]
fn redis_a_bad_url_is_permanent() {
    let err = RedisStreamsSink::new(RedisConfig::new("http://nowhere")).unwrap_err();
    assert!(matches!(err, SinkError::Permanent(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// NATS

fn nats_config(url: &str) -> NatsConfig {
    NatsConfig {
        instance: "node-a".to_owned(),
        timeout: Duration::from_secs(2),
        ..NatsConfig::new(url)
    }
}

/// Every message of the stream: (subject, JSON body).
async fn stream_messages(url: &str, stream: &str) -> Vec<(String, serde_json::Value)> {
    let client = async_nats::connect(url).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let mut stream = jetstream.get_stream(stream).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut messages = Vec::new();
    if state.messages == 0 {
        return messages;
    }
    for sequence in state.first_sequence..=state.last_sequence {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let body = serde_json::from_slice(&message.payload).unwrap();
        messages.push((message.subject.to_string(), body));
    }
    messages
}

fn message_json(operation: &str, to: &str) -> serde_json::Value {
    json!({
        "operation": operation,
        "client_id": to,
        "instance": "node-a",
        "occurred_at": AT,
        "username": "alice",
        "ipaddress": "10.0.0.7:51234",
        "topic": "a/b",
        "qos": 1,
        "retain": false,
        "dup": false,
        "packet_id": 9,
        "payload": "AGhp/w==",
        "from_client_id": "pub-1",
        "from_username": "alice",
        "published_at": PUBLISHED_AT,
    })
}

fn supermq_json(client_id: &str, event_type: &str) -> serde_json::Value {
    json!({
        "client_id": client_id,
        "event_type": event_type,
        "instance": "node-a",
        "occurred_at": AT,
    })
}

#[tokio::test]
async fn nats_events_land_in_the_stream_as_supermq_json() {
    let nats = NatsServer::start();
    let mut sink = NatsJetStreamSink::new(nats_config(&nats.url()));
    assert_eq!(sink.kind(), "nats");
    let batch = [
        connected("9b23fec0"),
        message(EventKind::MessageDelivered, "sub-1", None),
        disconnected("9b23fec0"),
    ];
    sink.send(&batch).await.unwrap();

    let messages = stream_messages(&nats.url(), "SUPERMQ_EVENTS").await;
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0].0, "events.supermq.mqtt");
    assert_eq!(messages[0].1, supermq_json("9b23fec0", "connect"));
    assert_eq!(messages[1].0, "events.supermq.mqtt.message_delivered");
    assert_eq!(messages[1].1, message_json("message_delivered", "sub-1"));
    assert_eq!(messages[2].0, "events.supermq.mqtt");
    assert_eq!(messages[2].1, supermq_json("9b23fec0", "disconnect"));
}

#[tokio::test]
async fn nats_without_a_stream_is_retryable_until_one_exists() {
    let nats = NatsServer::start();
    let mut sink = NatsJetStreamSink::new(NatsConfig {
        create_stream: false,
        ..nats_config(&nats.url())
    });
    let err = sink.send(&[connected("c")]).await.unwrap_err();
    assert!(matches!(err, SinkError::Retryable(_)), "{err:?}");

    // Someone else creates it (as the sink would with create_stream), then the same sink
    // delivers.
    let creator = NatsJetStreamSink::new(nats_config(&nats.url()));
    let client = async_nats::connect(nats.url()).await.unwrap();
    async_nats::jetstream::new(client)
        .create_stream(async_nats::jetstream::stream::Config {
            name: "SUPERMQ_EVENTS".to_owned(),
            subjects: creator.stream_subjects(),
            ..Default::default()
        })
        .await
        .unwrap();
    sink.send(&[connected("c")]).await.unwrap();
    let messages = stream_messages(&nats.url(), "SUPERMQ_EVENTS").await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].1, supermq_json("c", "connect"));
}

#[tokio::test]
async fn nats_down_is_retryable_and_the_sink_recovers_after_a_restart() {
    let mut nats = NatsServer::start();
    let mut sink = NatsJetStreamSink::new(nats_config(&nats.url()));
    sink.send(&[connected("before")]).await.unwrap();

    nats.stop();
    let err = sink.send(&[connected("during")]).await.unwrap_err();
    assert!(matches!(err, SinkError::Retryable(_)), "{err:?}");

    nats.restart_on_same_port();
    // The client reconnects on its own schedule: retry as the runtime would, without
    // assuming how long that takes (each failed try is bounded by the sink's timeout).
    let mut tries = 0;
    while let Err(err) = sink.send(&[connected("after")]).await {
        assert!(matches!(err, SinkError::Retryable(_)), "{err:?}");
        tries += 1;
        assert!(tries < 30, "never recovered: {err}");
    }
    let messages = stream_messages(&nats.url(), "SUPERMQ_EVENTS").await;
    let clients: Vec<&serde_json::Value> = messages
        .iter()
        .map(|(_, body)| &body["client_id"])
        .collect();
    // The store survived the restart; "during" may or may not have been stored when the
    // server came back before its acknowledgement timed out, "after" is there at least once.
    assert_eq!(clients[0], "before");
    assert!(clients.iter().any(|id| *id == "after"), "{clients:?}");
}

// ---------------------------------------------------------------------------------------------
// Kafka

/// Every record of `topic`/`partition`: (key, JSON value, timestamp in ms).
async fn kafka_records(
    bootstrap: &str,
    topic: &str,
    partition: i32,
) -> Vec<(String, serde_json::Value, i64)> {
    use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
    let client = rskafka::client::ClientBuilder::new(vec![bootstrap.to_owned()])
        .build()
        .await
        .unwrap();
    let partition = client
        .partition_client(topic, partition, UnknownTopicHandling::Error)
        .await
        .unwrap();
    let end = partition.get_offset(OffsetAt::Latest).await.unwrap();
    let mut records = Vec::new();
    let mut offset = partition.get_offset(OffsetAt::Earliest).await.unwrap();
    let mut empty_fetches = 0;
    while offset < end {
        let (batch, _high_watermark) = partition
            .fetch_records(offset, 1..1_000_000, 1_000)
            .await
            .unwrap();
        if batch.is_empty() {
            empty_fetches += 1;
            assert!(empty_fetches < 10, "no records from {offset} to {end}");
        }
        for record in batch {
            offset = record.offset + 1;
            let record = record.record;
            records.push((
                String::from_utf8(record.key.unwrap()).unwrap(),
                serde_json::from_slice(&record.value.unwrap()).unwrap(),
                record.timestamp.timestamp_millis(),
            ));
        }
    }
    records
}

fn kafka_config(bootstrap: &str) -> KafkaConfig {
    KafkaConfig {
        instance: "node-a".to_owned(),
        ..KafkaConfig::new(vec![bootstrap.to_owned()])
    }
}

#[tokio::test]
async fn kafka_per_event_topics_carry_keyed_supermq_json() {
    let kafka = KafkaServer::start();
    let mut sink = KafkaSink::new(kafka_config(&kafka.bootstrap()));
    assert_eq!(sink.kind(), "kafka");
    let batch = [
        connected("9b23fec0"),
        message(EventKind::MessagePublish, "pub-1", None),
        disconnected("9b23fec0"),
    ];
    sink.send(&batch).await.unwrap();

    let main = kafka_records(&kafka.bootstrap(), "supermq.mqtt", 0).await;
    let at_ms = i64::try_from(AT / 1_000_000).unwrap();
    assert_eq!(
        main,
        vec![
            (
                "9b23fec0".to_owned(),
                supermq_json("9b23fec0", "connect"),
                at_ms
            ),
            (
                "9b23fec0".to_owned(),
                supermq_json("9b23fec0", "disconnect"),
                at_ms
            ),
        ]
    );
    let published = kafka_records(&kafka.bootstrap(), "supermq.mqtt.message_publish", 0).await;
    assert_eq!(
        published,
        vec![(
            "pub-1".to_owned(),
            message_json("message_publish", "pub-1"),
            at_ms
        )]
    );
}

#[tokio::test]
async fn kafka_single_topic_partitions_by_client_id() {
    let kafka = KafkaServer::start();
    let mut sink = KafkaSink::new(KafkaConfig {
        topic_mode: TopicMode::Single("starling-events".to_owned()),
        partitions: 3,
        ..kafka_config(&kafka.bootstrap())
    });
    let clients = ["a", "b", "c", "d", "e", "f"];
    let batch: Vec<ExportItem> = clients.iter().map(|id| connected(id)).collect();
    sink.send(&batch).await.unwrap();

    let mut seen = 0;
    for partition in 0..3 {
        for (key, body, _) in kafka_records(&kafka.bootstrap(), "starling-events", partition).await
        {
            assert_eq!(partition_for(key.as_bytes(), 3), partition, "{key}");
            assert_eq!(body, supermq_json(&key, "connect"));
            seen += 1;
        }
    }
    assert_eq!(seen, clients.len());
}

#[tokio::test]
async fn kafka_down_is_retryable_and_the_sink_recovers_after_a_restart() {
    let mut kafka = KafkaServer::start();
    let mut sink = KafkaSink::new(KafkaConfig {
        timeout: Duration::from_secs(2),
        ..kafka_config(&kafka.bootstrap())
    });
    sink.send(&[connected("before")]).await.unwrap();

    kafka.stop();
    let err = sink.send(&[connected("during")]).await.unwrap_err();
    assert!(matches!(err, SinkError::Retryable(_)), "{err:?}");

    kafka.restart_on_same_port();
    let mut tries = 0;
    while let Err(err) = sink.send(&[connected("after")]).await {
        assert!(matches!(err, SinkError::Retryable(_)), "{err:?}");
        tries += 1;
        assert!(tries < 30, "never recovered: {err}");
    }
    // The in-memory broker came back empty: only what was sent after the restart is there.
    let records = kafka_records(&kafka.bootstrap(), "supermq.mqtt", 0).await;
    assert!(!records.is_empty());
    assert!(
        records.iter().all(|(key, _, _)| key == "after"),
        "{records:?}"
    );
}
