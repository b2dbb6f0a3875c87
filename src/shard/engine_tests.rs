//! Shard engine tests without sockets: clients are `ConnectionHandle`s whose outbound queues
//! are decoded back into packets, driven in virtual time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::*;
use crate::protocol::{
    ClientId, Codec, Connect, ConnectProperties, Packet, PacketId, ProtocolVersion, PubResponse,
    Publish, PublishProperties, QoS, ReasonCode, Subscribe, SubscribeProperties, Subscription,
    SubscriptionOptions, TopicFilter, TopicName, Will, WillProperties,
};
use crate::session::BrokerLimits;
use crate::topic::ShareStrategy;

fn engine() -> ShardEngine {
    ShardEngine::new(
        0,
        Arc::new(BrokerLimits::default()),
        true,
        ShareStrategy::RoundRobin,
    )
}

fn connect_packet(version: ProtocolVersion, id: &str, clean: bool) -> Connect {
    Connect {
        protocol: version,
        clean_start: clean,
        keep_alive: 30,
        client_id: ClientId::new(id).unwrap(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

struct Client {
    handle: Rc<ConnectionHandle>,
    key: SessionKey,
    version: ProtocolVersion,
    /// What was queued right after the CONNACK (redeliveries).
    after_connack: Vec<Packet>,
}

fn connect(engine: &mut ShardEngine, now: Instant, connect: Connect) -> Client {
    let version = connect.protocol;
    let handle = Rc::new(ConnectionHandle::new(version, 1 << 20));
    let outcome = engine.connect(now, &connect, Rc::clone(&handle));
    let ConnectOutcome::Accepted(key) = outcome else {
        panic!("refused")
    };
    let mut client = Client {
        handle,
        key,
        version,
        after_connack: Vec::new(),
    };
    let mut packets = received(&client);
    assert!(
        matches!(packets.first(), Some(Packet::ConnAck(ack)) if ack.reason_code == ReasonCode::SUCCESS)
    );
    client.after_connack = packets.split_off(1);
    client
}

/// Drains and decodes everything queued for a client.
fn received(client: &Client) -> Vec<Packet> {
    let mut wire = BytesMut::new();
    let mut queue = client.handle.outbound.borrow_mut();
    while let Some(chunk) = queue.next_chunk() {
        wire.extend_from_slice(&chunk);
    }
    let codec = Codec::new(client.version);
    let mut packets = Vec::new();
    while let Some(packet) = codec.decode(&mut wire).unwrap() {
        packets.push(packet);
    }
    packets
}

fn subscribe(engine: &mut ShardEngine, now: Instant, client: &Client, filter: &str, qos: QoS) {
    let packet = Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(1).unwrap(),
        properties: SubscribeProperties::default(),
        filters: vec![Subscription {
            filter: TopicFilter::new(filter).unwrap(),
            options: SubscriptionOptions {
                qos,
                ..Default::default()
            },
        }],
    });
    engine.handle_packet(now, client.key, packet);
}

fn publish_packet(topic: &str, qos: QoS, retain: bool, payload: &'static [u8]) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: TopicName::new(topic).unwrap(),
        packet_id: PacketId::new(5).filter(|_| qos != QoS::AtMostOnce),
        properties: PublishProperties::default(),
        payload: Bytes::from_static(payload),
    })
}

fn publishes(packets: &[Packet]) -> Vec<&Publish> {
    packets
        .iter()
        .filter_map(|packet| match packet {
            Packet::Publish(publish) => Some(publish),
            _ => None,
        })
        .collect()
}

#[test]
fn a_publish_reaches_a_wildcard_subscriber_at_the_granted_qos() {
    let mut engine = engine();
    let now = Instant::now();
    let sub = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V5, "sub", true),
    );
    let publisher = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V3_1_1, "pub", true),
    );
    subscribe(&mut engine, now, &sub, "sensors/+/t", QoS::AtMostOnce);
    assert!(matches!(received(&sub)[..], [Packet::SubAck(_)]));

    engine.handle_packet(
        now,
        publisher.key,
        publish_packet("sensors/1/t", QoS::AtLeastOnce, false, b"21"),
    );
    assert_eq!(
        received(&publisher),
        vec![Packet::PubAck(PubResponse::success(
            PacketId::new(5).unwrap()
        ))]
    );
    let packets = received(&sub);
    let delivered = publishes(&packets);
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].qos,
        QoS::AtMostOnce,
        "min of published and granted QoS"
    );
    assert_eq!(&delivered[0].payload[..], b"21");
    assert_eq!(engine.counters().deliveries, 1);
}

#[test]
fn retained_messages_reach_later_subscribers_and_an_empty_payload_deletes() {
    let mut engine = engine();
    let now = Instant::now();
    let publisher = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V3_1_1, "pub", true),
    );
    engine.handle_packet(
        now,
        publisher.key,
        publish_packet("status/a", QoS::AtMostOnce, true, b"on"),
    );
    engine.handle_packet(
        now,
        publisher.key,
        publish_packet("status/b", QoS::AtMostOnce, true, b"off"),
    );
    engine.handle_packet(
        now,
        publisher.key,
        publish_packet("status/b", QoS::AtMostOnce, true, b""),
    );

    let sub = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V3_1_1, "sub", true),
    );
    subscribe(&mut engine, now, &sub, "status/#", QoS::AtLeastOnce);
    let packets = received(&sub);
    assert!(
        matches!(packets.first(), Some(Packet::SubAck(_))),
        "SUBACK comes first"
    );
    let retained = publishes(&packets);
    assert_eq!(retained.len(), 1);
    assert_eq!(retained[0].topic.as_str(), "status/a");
    assert!(retained[0].retain);
}

#[test]
fn a_second_connect_takes_over_and_resumes_the_session() {
    let mut engine = engine();
    let now = Instant::now();
    let first = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V5, "dev", false),
    );
    subscribe(&mut engine, now, &first, "cmd", QoS::AtLeastOnce);
    let second_handle = Rc::new(ConnectionHandle::new(ProtocolVersion::V5, 1 << 20));
    let outcome = engine.connect(
        now,
        &connect_packet(ProtocolVersion::V5, "dev", false),
        Rc::clone(&second_handle),
    );
    assert!(matches!(outcome, ConnectOutcome::Accepted(_)));
    let close = first.handle.close_requested().unwrap();
    assert_eq!(close.reason, ReasonCode::SESSION_TAKEN_OVER);
    let second = Client {
        handle: second_handle,
        key: first.key,
        version: ProtocolVersion::V5,
        after_connack: Vec::new(),
    };
    let Some(Packet::ConnAck(ack)) = received(&second).into_iter().next() else {
        panic!()
    };
    assert!(ack.session_present);
    // The old connection's end does not detach the new one.
    engine.connection_closed(now, first.key, &first.handle, None);
    let publisher = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V5, "p", true),
    );
    engine.handle_packet(
        now,
        publisher.key,
        publish_packet("cmd", QoS::AtLeastOnce, false, b"go"),
    );
    assert_eq!(
        publishes(&received(&second)).len(),
        1,
        "the resumed subscription still routes"
    );
}

#[test]
fn an_unclean_close_publishes_the_will_and_a_clean_one_does_not() {
    for (close, expect_will) in [
        (None, true),
        (
            Some(crate::session::Close {
                reason: ReasonCode::SUCCESS,
                send_disconnect: false,
                publish_will: false,
            }),
            false,
        ),
    ] {
        let mut engine = engine();
        let now = Instant::now();
        let watcher = connect(
            &mut engine,
            now,
            connect_packet(ProtocolVersion::V3_1_1, "w", true),
        );
        subscribe(&mut engine, now, &watcher, "will/#", QoS::AtMostOnce);
        received(&watcher);
        let mut with_will = connect_packet(ProtocolVersion::V3_1_1, "d", true);
        with_will.will = Some(Will {
            topic: TopicName::new("will/d").unwrap(),
            payload: Bytes::from_static(b"offline"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: WillProperties::default(),
        });
        let device = connect(&mut engine, now, with_will);
        engine.connection_closed(now, device.key, &device.handle, close);
        assert_eq!(
            publishes(&received(&watcher)).len(),
            usize::from(expect_will)
        );
        assert_eq!(
            engine.session_count(),
            1,
            "a clean-session session ends with its connection"
        );
    }
}

#[test]
fn a_persistent_session_queues_while_offline_and_expires() {
    let mut engine = engine();
    let now = Instant::now();
    let mut persistent = connect_packet(ProtocolVersion::V5, "p", true);
    persistent.properties.session_expiry_interval = Some(60);
    let sub = connect(&mut engine, now, persistent.clone());
    subscribe(&mut engine, now, &sub, "q", QoS::AtLeastOnce);
    engine.connection_closed(now, sub.key, &sub.handle, None);
    let publisher = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V5, "x", true),
    );
    engine.handle_packet(
        now,
        publisher.key,
        publish_packet("q", QoS::AtLeastOnce, false, b"1"),
    );

    persistent.clean_start = false;
    let back = connect(
        &mut engine,
        now + Duration::from_secs(30),
        persistent.clone(),
    );
    assert_eq!(
        publishes(&back.after_connack).len(),
        1,
        "queued message delivered on reconnect"
    );
    engine.connection_closed(now, back.key, &back.handle, None);
    engine.tick(now + Duration::from_secs(59));
    assert_eq!(engine.session_count(), 2);
    engine.tick(now + Duration::from_secs(61));
    assert_eq!(engine.session_count(), 1, "expired after 60 s offline");
    assert_eq!(engine.counters().sessions_expired, 1);
}

#[test]
fn an_empty_client_id_is_assigned_in_v5_and_refused_without_clean_session_in_v311() {
    let mut engine = engine();
    let now = Instant::now();
    let v5 = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V5, "", true),
    );
    assert_eq!(engine.session_count(), 1);
    drop(v5);
    let handle = Rc::new(ConnectionHandle::new(ProtocolVersion::V3_1_1, 1 << 20));
    let outcome = engine.connect(
        now,
        &connect_packet(ProtocolVersion::V3_1_1, "", false),
        Rc::clone(&handle),
    );
    assert_eq!(outcome, ConnectOutcome::Refused);
    let client = Client {
        handle,
        key: 0,
        version: ProtocolVersion::V3_1_1,
        after_connack: Vec::new(),
    };
    let Some(Packet::ConnAck(ack)) = received(&client).into_iter().next() else {
        panic!()
    };
    assert_eq!(ack.reason_code, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
    assert!(client.handle.close_requested().is_some());
}

#[test]
fn config_limits_refuse_long_client_ids_anonymous_clients_and_deep_topics() {
    let limits = BrokerLimits {
        max_client_id_bytes: 23,
        allow_anonymous: false,
        max_topic_levels: 3,
        ..BrokerLimits::default()
    };
    let mut engine = ShardEngine::new(0, Arc::new(limits), true, ShareStrategy::RoundRobin);
    let now = Instant::now();
    let refused = |engine: &mut ShardEngine, connect: Connect| {
        let handle = Rc::new(ConnectionHandle::new(connect.protocol, 1 << 20));
        assert_eq!(
            engine.connect(now, &connect, Rc::clone(&handle)),
            ConnectOutcome::Refused
        );
        let client = Client {
            handle,
            key: 0,
            version: connect.protocol,
            after_connack: Vec::new(),
        };
        match &received(&client)[..] {
            [Packet::ConnAck(ack)] => ack.reason_code,
            other => panic!("{other:?}"),
        }
    };
    let mut long = connect_packet(ProtocolVersion::V5, &"x".repeat(24), true);
    long.username = Some(crate::protocol::MqttString::new("u").unwrap());
    assert_eq!(
        refused(&mut engine, long),
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
    );
    let anonymous = connect_packet(ProtocolVersion::V3_1_1, "anon", true);
    assert_eq!(refused(&mut engine, anonymous), ReasonCode::NOT_AUTHORIZED);

    let mut named = connect_packet(ProtocolVersion::V5, "named", true);
    named.username = Some(crate::protocol::MqttString::new("u").unwrap());
    let client = connect(&mut engine, now, named);
    subscribe(&mut engine, now, &client, "a/b/c/d", QoS::AtMostOnce);
    match &received(&client)[..] {
        [Packet::SubAck(ack)] => {
            assert_eq!(ack.reason_codes, [ReasonCode::TOPIC_FILTER_INVALID])
        }
        other => panic!("{other:?}"),
    }
    engine.handle_packet(
        now,
        client.key,
        publish_packet("a/b/c/d", QoS::AtMostOnce, false, b"deep"),
    );
    let close = client.handle.close_requested().expect("closed");
    assert_eq!(close.reason, ReasonCode::TOPIC_NAME_INVALID);
}

#[path = "cluster_tests.rs"]
mod cluster;

#[path = "engine_hooks_tests.rs"]
mod hooks_and_events;

#[path = "engine_stats_tests.rs"]
mod stats;
