//! Engine tests of the hooks and events: which events a shard records at which point, what the
//! system topics say, and how hook decisions reach clients (reason codes, drops, rewrites).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::*;
use crate::hooks::{
    AuthOnPublish, AuthOnRegister, AuthOnSubscribe, DecisionHooks, DeliverChanges, DeliverRequest,
    Denial, DisconnectReason, Event, EventDetail, EventKind, EventKinds, EventRing, EventSink,
    Feedback, OnDeliver, PublishChanges, PublishRequest, RegisterChanges, RegisterRequest,
    SubscribeChanges, SubscribeRequest, Verdict,
};
use crate::protocol::{Disconnect, MqttString};
use crate::shard::{SystemTopics, SystemTopicsConfig};

/// A hook answering with a closure, for every decision point.
struct Hook<F>(F);

impl<F: Fn(&RegisterRequest<'_>) -> Verdict<RegisterChanges>> AuthOnRegister for Hook<F> {
    fn auth_on_register(&self, request: &RegisterRequest<'_>) -> Verdict<RegisterChanges> {
        (self.0)(request)
    }
}

struct SubscribeHook<F>(F);

impl<F: Fn(&SubscribeRequest<'_>) -> Verdict<SubscribeChanges>> AuthOnSubscribe
    for SubscribeHook<F>
{
    fn auth_on_subscribe(&self, request: &SubscribeRequest<'_>) -> Verdict<SubscribeChanges> {
        (self.0)(request)
    }
}

struct PublishHook<F>(F);

impl<F: Fn(&PublishRequest<'_>) -> Verdict<PublishChanges>> AuthOnPublish for PublishHook<F> {
    fn auth_on_publish(&self, request: &PublishRequest<'_>) -> Verdict<PublishChanges> {
        (self.0)(request)
    }
}

struct DeliverHook<F>(F);

impl<F: Fn(&DeliverRequest<'_>) -> Verdict<DeliverChanges>> OnDeliver for DeliverHook<F> {
    fn on_deliver(&self, request: &DeliverRequest<'_>) -> Verdict<DeliverChanges> {
        (self.0)(request)
    }
}

fn engine_with(hooks: DecisionHooks) -> ShardEngine {
    engine().with_hooks(Rc::new(hooks))
}

fn recording(wanted: EventKinds) -> (ShardEngine, Arc<EventRing>) {
    let ring = Arc::new(EventRing::new(64));
    let sink = EventSink::new(wanted, Arc::clone(&ring), 1024);
    let system = SystemTopics::new(&SystemTopicsConfig::default()).unwrap();
    (engine().with_node(7).with_events(sink, system), ring)
}

fn drain(engine: &mut ShardEngine, ring: &EventRing) -> Vec<Event> {
    engine.flush_events();
    let mut events = Vec::new();
    while let Some(batch) = ring.pop() {
        events.extend(batch);
    }
    events
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|event| event.kind).collect()
}

fn puback(packet_id: u16) -> Packet {
    Packet::PubAck(PubResponse::success(PacketId::new(packet_id).unwrap()))
}

fn first_publish_id(packets: &[Packet]) -> u16 {
    publishes(packets)[0].packet_id.unwrap().get()
}

#[test]
fn a_client_life_records_every_event_in_order_with_its_facts() {
    let (mut engine, ring) = recording(EventKinds::ALL);
    let now = Instant::now();
    let mut packet = connect_packet(ProtocolVersion::V5, "sub", true);
    packet.username = Some(MqttString::new("alice").unwrap());
    let sub = connect(&mut engine, now, packet);
    let publisher = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V3_1_1, "pub", true),
    );
    subscribe(&mut engine, now, &sub, "a/+", QoS::AtLeastOnce);
    engine.handle_packet(
        now,
        publisher.key,
        publish_packet("a/1", QoS::AtLeastOnce, false, b"hi"),
    );
    let packets = received(&sub);
    engine.handle_packet(now, sub.key, puback(first_publish_id(&packets)));
    engine.handle_packet(
        now,
        publisher.key,
        publish_packet("nobody/here", QoS::AtMostOnce, false, b"x"),
    );
    let disconnect = Packet::Disconnect(Disconnect::default());
    engine.handle_packet(now, sub.key, disconnect);
    let close = sub.handle.close_requested();
    engine.connection_closed(now, sub.key, &sub.handle, close);

    let events = drain(&mut engine, &ring);
    use EventKind::*;
    assert_eq!(
        kinds(&events),
        vec![
            ClientConnect,
            SessionCreated,
            ClientConnack,
            ClientConnected, // sub
            ClientConnect,
            SessionCreated,
            ClientConnack,
            ClientConnected, // pub
            ClientSubscribe,
            SessionSubscribed,
            MessagePublish,
            MessageDelivered,
            MessageAcked,
            MessagePublish,
            MessageDropped,
            ClientDisconnected,
            SessionTerminated,
        ]
    );
    let sub_info = &events[0].client;
    assert_eq!(sub_info.client_id.as_str(), "sub");
    assert_eq!(
        sub_info.username.as_ref().map(|name| name.as_str()),
        Some("alice")
    );
    assert_eq!(
        (sub_info.node, sub_info.protocol, sub_info.keep_alive_secs),
        (7, 5, 30)
    );
    assert!(events
        .iter()
        .all(|event| event.at_ns > 1_577_836_800_000_000_000));
    match &events[9].detail {
        EventDetail::Subscription { filter, qos } => {
            assert_eq!((filter.as_str(), *qos), ("a/+", QoS::AtLeastOnce));
        }
        other => panic!("{other:?}"),
    }
    for (index, kind) in [(11, MessageDelivered), (12, MessageAcked)] {
        assert_eq!(events[index].kind, kind);
        assert_eq!(events[index].client.client_id.as_str(), "sub", "{kind:?}");
        let EventDetail::Message(facts) = &events[index].detail else {
            panic!("{:?}", events[index].detail)
        };
        assert_eq!(facts.publisher.client_id.as_str(), "pub");
        assert_eq!(&facts.message.payload[..], b"hi");
        assert_eq!(
            (facts.qos, facts.packet_id.is_some()),
            (QoS::AtLeastOnce, true)
        );
        assert!(facts.published_at_ns > 0);
    }
    let EventDetail::Message(dropped) = &events[14].detail else {
        panic!()
    };
    assert_eq!(dropped.dropped, Some(DropReason::NoSubscribers));
    assert_eq!(events[14].client.client_id.as_str(), "pub");
    assert_eq!(
        events[15].detail,
        EventDetail::Disconnected(DisconnectReason::ClientDisconnect(ReasonCode::SUCCESS))
    );
    assert_eq!(engine.event_counters().recorded[MessagePublish.index()], 2);
}

#[test]
fn only_wanted_kinds_are_recorded() {
    let wanted = EventKinds::NONE.with(EventKind::ClientConnected);
    let (mut engine, ring) = recording(wanted);
    let now = Instant::now();
    let client = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V5, "c", true),
    );
    subscribe(&mut engine, now, &client, "t", QoS::AtMostOnce);
    engine.handle_packet(
        now,
        client.key,
        publish_packet("t", QoS::AtMostOnce, false, b"x"),
    );
    assert_eq!(
        kinds(&drain(&mut engine, &ring)),
        vec![EventKind::ClientConnected]
    );
}

#[test]
fn a_persistent_session_reports_offline_messages_and_takeovers() {
    let (mut engine, ring) = recording(EventKinds::ALL);
    let now = Instant::now();
    let mut packet = connect_packet(ProtocolVersion::V5, "sub", false);
    packet.properties.session_expiry_interval = Some(600);
    let sub = connect(&mut engine, now, packet.clone());
    subscribe(&mut engine, now, &sub, "t", QoS::AtLeastOnce);
    engine.connection_closed(now, sub.key, &sub.handle, None);
    let publisher = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V5, "pub", true),
    );
    engine.handle_packet(
        now,
        publisher.key,
        publish_packet("t", QoS::AtLeastOnce, false, b"q"),
    );
    let _again = connect(&mut engine, now, packet.clone());
    let _third = connect(&mut engine, now, packet);
    let events = drain(&mut engine, &ring);
    let find = |kind| {
        events
            .iter()
            .filter(|event| event.kind == kind)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        find(EventKind::ClientDisconnected)
            .iter()
            .map(|event| event.detail.clone())
            .collect::<Vec<_>>(),
        vec![
            EventDetail::Disconnected(DisconnectReason::ConnectionLost),
            EventDetail::Disconnected(DisconnectReason::TakenOver),
        ]
    );
    let offline = find(EventKind::OfflineMessage);
    assert_eq!(offline.len(), 1);
    assert_eq!(offline[0].client.client_id.as_str(), "sub");
    // Resumed twice: the session was created once and never terminated.
    assert_eq!(find(EventKind::SessionCreated).len(), 2, "sub and pub");
    assert!(find(EventKind::SessionTerminated).is_empty());
    let connacks: Vec<_> = find(EventKind::ClientConnack)
        .iter()
        .map(|event| event.detail.clone())
        .collect();
    assert_eq!(
        connacks.last(),
        Some(&EventDetail::Connack {
            code: ReasonCode::SUCCESS,
            session_present: true
        })
    );
}

#[test]
fn system_topics_report_presence_subscriptions_messages_and_json_acks() {
    let (mut engine, _ring) = recording(EventKinds::NONE);
    let system = SystemTopics::new(&SystemTopicsConfig {
        enabled: true,
        ..SystemTopicsConfig::default()
    })
    .unwrap();
    engine = engine.with_events(EventSink::disabled(), system);
    let now = Instant::now();
    let watcher = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V5, "watcher", true),
    );
    subscribe(&mut engine, now, &watcher, "SYSTEM/#", QoS::AtMostOnce);
    let _ = received(&watcher);
    let device = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V3_1_1, "device", true),
    );
    subscribe(&mut engine, now, &device, "orders", QoS::AtLeastOnce);
    let body = br#"{"product_id":"p1","message_id":42,"payload":"data"}"#;
    engine.handle_packet(
        now,
        watcher.key,
        publish_packet("orders", QoS::AtLeastOnce, false, body),
    );
    let packets = received(&device);
    engine.handle_packet(now, device.key, puback(first_publish_id(&packets)));
    engine.handle_packet(
        now,
        watcher.key,
        publish_packet("orders", QoS::AtLeastOnce, false, b"plain"),
    );
    let packets = received(&device);
    engine.handle_packet(now, device.key, puback(first_publish_id(&packets)));
    engine.connection_closed(now, device.key, &device.handle, None);

    let seen: Vec<(String, serde_json::Value)> = publishes(&received(&watcher))
        .into_iter()
        .map(|publish| {
            let json = serde_json::from_slice(&publish.payload).unwrap();
            (publish.topic.as_str().to_owned(), json)
        })
        .collect();
    use serde_json::json;
    assert_eq!(
        seen,
        vec![
            (
                "SYSTEM/presence/connected".into(),
                json!({"client_id": "device"})
            ),
            (
                "SYSTEM/subscription/subscribed".into(),
                json!({"client_id": "device", "topic": "orders"})
            ),
            (
                "SYSTEM/message".into(),
                json!({"pub_client_id": "watcher", "topic": "orders", "payload": std::str::from_utf8(body).unwrap(), "qos": 1})
            ),
            (
                "SYSTEM/msgack".into(),
                json!({"pub_client_id": "watcher", "ack_client_id": "device", "product_id": "p1", "message_id": 42, "topic": "orders"})
            ),
            (
                "SYSTEM/message".into(),
                json!({"pub_client_id": "watcher", "topic": "orders", "payload": "plain", "qos": 1})
            ),
            (
                "SYSTEM/presence/disconnected".into(),
                json!({"client_id": "device", "reason": "connection_lost"})
            ),
        ],
        "no msgack for a payload without product_id and message_id, and no system message \
         about the system messages themselves"
    );
}

fn refused_code(engine: &mut ShardEngine, connect: Connect) -> ReasonCode {
    let handle = Rc::new(ConnectionHandle::new(connect.protocol, 1 << 20));
    assert_eq!(
        engine.connect(Instant::now(), &connect, Rc::clone(&handle)),
        ConnectOutcome::Refused
    );
    let client = Client {
        handle,
        key: 0,
        version: connect.protocol,
        after_connack: Vec::new(),
    };
    match received(&client).first() {
        Some(Packet::ConnAck(ack)) => ack.reason_code,
        other => panic!("{other:?}"),
    }
}

#[test]
fn register_hooks_and_reserved_ids_refuse_connects_and_may_rename_the_user() {
    let mut hooks = DecisionHooks::default();
    hooks.register.push(Box::new(Hook(
        |request: &RegisterRequest<'_>| match request.password.map(|password| &password[..]) {
            Some(b"token") => Verdict::AllowWith(RegisterChanges {
                username: Some(MqttString::new("identity").unwrap()),
            }),
            Some(_) => Verdict::Deny(Denial::new(ReasonCode::BAD_USER_NAME_OR_PASSWORD, "wrong")),
            None => Verdict::Next,
        },
    )));
    let (mut engine, ring) = recording(EventKinds::ALL);
    engine = engine.with_hooks(Rc::new(hooks));
    let mut packet = connect_packet(ProtocolVersion::V5, "c", true);
    packet.username = Some(MqttString::new("authorization").unwrap());
    packet.password = Some(Bytes::from_static(b"nope"));
    assert_eq!(
        refused_code(&mut engine, packet.clone()),
        ReasonCode::BAD_USER_NAME_OR_PASSWORD
    );
    packet.password = None;
    assert_eq!(
        refused_code(&mut engine, packet.clone()),
        ReasonCode::NOT_AUTHORIZED,
        "nobody decided"
    );
    let reserved = connect_packet(ProtocolVersion::V3_1_1, "broker", true);
    assert_eq!(
        refused_code(&mut engine, reserved),
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
    );
    packet.password = Some(Bytes::from_static(b"token"));
    let _ = drain(&mut engine, &ring);
    connect(&mut engine, Instant::now(), packet);
    let events = drain(&mut engine, &ring);
    let connected = events
        .iter()
        .find(|event| event.kind == EventKind::ClientConnected)
        .unwrap();
    assert_eq!(
        connected.client.username.as_ref().map(|name| name.as_str()),
        Some("identity")
    );
}

#[test]
fn denied_publishes_get_0x87_in_v5_are_dropped_in_v3_and_may_disconnect() {
    let hooks = || {
        let mut hooks = DecisionHooks::default();
        hooks.publish.push(Box::new(PublishHook(
            |request: &PublishRequest<'_>| match request.topic.as_str() {
                "secret" => Verdict::Deny(Denial::new(ReasonCode::NOT_AUTHORIZED, "no")),
                "old" => Verdict::AllowWith(PublishChanges {
                    topic: Some(TopicName::new("new").unwrap()),
                    payload: Some(Bytes::from_static(b"rewritten")),
                    ..PublishChanges::default()
                }),
                _ => Verdict::Allow,
            },
        )));
        hooks
    };
    let mut engine = engine_with(hooks());
    let now = Instant::now();
    let sub = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V5, "sub", true),
    );
    subscribe(&mut engine, now, &sub, "#", QoS::AtMostOnce);
    let _ = received(&sub);
    let v5 = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V5, "v5", true),
    );
    let v3 = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V3_1_1, "v3", true),
    );
    engine.handle_packet(
        now,
        v5.key,
        publish_packet("secret", QoS::AtLeastOnce, false, b"x"),
    );
    engine.handle_packet(
        now,
        v3.key,
        publish_packet("secret", QoS::AtLeastOnce, false, b"x"),
    );
    engine.handle_packet(
        now,
        v5.key,
        publish_packet("secret", QoS::ExactlyOnce, false, b"x"),
    );
    engine.handle_packet(
        now,
        v5.key,
        publish_packet("old", QoS::AtMostOnce, false, b"x"),
    );
    let acks: Vec<ReasonCode> = received(&v5)
        .iter()
        .filter_map(|packet| match packet {
            Packet::PubAck(ack) | Packet::PubRec(ack) => Some(ack.reason_code),
            _ => None,
        })
        .collect();
    assert_eq!(
        acks,
        vec![ReasonCode::NOT_AUTHORIZED, ReasonCode::NOT_AUTHORIZED]
    );
    assert_eq!(
        received(&v3),
        vec![puback(5)],
        "3.1.1 cannot be told: a positive ack"
    );
    let packets = received(&sub);
    let delivered = publishes(&packets);
    assert_eq!(delivered.len(), 1, "only the rewritten message");
    assert_eq!(
        (delivered[0].topic.as_str(), &delivered[0].payload[..]),
        ("new", &b"rewritten"[..])
    );
    assert_eq!(engine.counters().dropped_not_authorized, 3);
    assert!(v3.handle.close_requested().is_none());

    let limits = BrokerLimits {
        disconnect_on_denied_publish_v3: true,
        ..BrokerLimits::default()
    };
    let mut strict = ShardEngine::new(0, Arc::new(limits), true, ShareStrategy::RoundRobin)
        .with_hooks(Rc::new(hooks()));
    let v3 = connect(
        &mut strict,
        now,
        connect_packet(ProtocolVersion::V3_1_1, "v3", true),
    );
    strict.handle_packet(
        now,
        v3.key,
        publish_packet("secret", QoS::AtLeastOnce, false, b"x"),
    );
    assert!(received(&v3).is_empty(), "no PUBACK: the connection closes");
    assert!(v3.handle.close_requested().is_some());
}

#[test]
fn a_denial_with_feedback_publishes_it_and_a_disconnecting_denial_closes() {
    let mut hooks = DecisionHooks::default();
    hooks.publish.push(Box::new(PublishHook(
        |request: &PublishRequest<'_>| match request.topic.as_str() {
            "devices/1/meta" => Verdict::Deny(
                Denial::new(ReasonCode::PAYLOAD_FORMAT_INVALID, "schema").with_feedback(Feedback {
                    topic: TopicName::new("devices/1/meta/rejected").unwrap(),
                    payload: Bytes::from_static(br#"{"error":{}}"#),
                }),
            ),
            _ => Verdict::Deny(Denial::new(ReasonCode::NOT_AUTHORIZED, "unknown").and_disconnect()),
        },
    )));
    let mut engine = engine_with(hooks);
    let now = Instant::now();
    let device = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V5, "device", true),
    );
    let no_local = Subscribe {
        packet_id: PacketId::new(1).unwrap(),
        properties: SubscribeProperties::default(),
        filters: vec![Subscription {
            filter: TopicFilter::new("devices/1/meta/rejected").unwrap(),
            options: SubscriptionOptions {
                no_local: true,
                ..Default::default()
            },
        }],
    };
    engine.handle_packet(now, device.key, Packet::Subscribe(no_local));
    let _ = received(&device);
    engine.handle_packet(
        now,
        device.key,
        publish_packet("devices/1/meta", QoS::AtLeastOnce, false, b"[]"),
    );
    let packets = received(&device);
    assert!(packets.contains(&Packet::PubAck(PubResponse {
        packet_id: PacketId::new(5).unwrap(),
        reason_code: ReasonCode::PAYLOAD_FORMAT_INVALID,
        properties: Default::default(),
    })));
    let feedback = publishes(&packets);
    assert_eq!(
        feedback.len(),
        1,
        "the publisher gets its own rejection despite No Local"
    );
    assert_eq!(feedback[0].topic.as_str(), "devices/1/meta/rejected");

    engine.handle_packet(
        now,
        device.key,
        publish_packet("elsewhere", QoS::AtLeastOnce, false, b"x"),
    );
    assert!(publishes(&received(&device)).is_empty());
    assert_eq!(
        device.handle.close_requested().map(|close| close.reason),
        Some(ReasonCode::NOT_AUTHORIZED)
    );
}

#[test]
fn subscribe_hooks_refuse_rewrite_or_disconnect_per_filter() {
    let mut hooks = DecisionHooks::default();
    hooks.subscribe.push(Box::new(SubscribeHook(
        |request: &SubscribeRequest<'_>| match request.filter.as_str() {
            "denied" => Verdict::Deny(Denial::new(ReasonCode::NOT_AUTHORIZED, "no")),
            "lower" => Verdict::AllowWith(SubscribeChanges {
                filter: None,
                qos: Some(QoS::AtMostOnce),
            }),
            "unknown" => {
                Verdict::Deny(Denial::new(ReasonCode::NOT_AUTHORIZED, "table").and_disconnect())
            }
            _ => Verdict::Allow,
        },
    )));
    let mut engine = engine_with(hooks);
    let now = Instant::now();
    let subscribe_all = |filters: &[&str]| {
        Packet::Subscribe(Subscribe {
            packet_id: PacketId::new(1).unwrap(),
            properties: SubscribeProperties::default(),
            filters: filters
                .iter()
                .map(|filter| Subscription {
                    filter: TopicFilter::new(filter).unwrap(),
                    options: SubscriptionOptions {
                        qos: QoS::ExactlyOnce,
                        ..Default::default()
                    },
                })
                .collect(),
        })
    };
    for version in [ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
        let client = connect(&mut engine, now, connect_packet(version, "c", true));
        engine.handle_packet(now, client.key, subscribe_all(&["ok", "denied", "lower"]));
        let Some(Packet::SubAck(suback)) = received(&client).into_iter().next() else {
            panic!()
        };
        let denied = if version == ProtocolVersion::V5 {
            ReasonCode::NOT_AUTHORIZED
        } else {
            ReasonCode(0x80)
        };
        assert_eq!(
            suback.reason_codes,
            vec![ReasonCode::GRANTED_QOS_2, denied, ReasonCode::GRANTED_QOS_0],
            "{version:?}"
        );
        engine.handle_packet(now, client.key, subscribe_all(&["ok", "unknown"]));
        assert!(
            received(&client).is_empty(),
            "no SUBACK: the connection closes"
        );
        assert!(client.handle.close_requested().is_some());
    }
}

#[test]
fn deliver_hooks_rewrite_per_subscriber_or_withhold() {
    let mut hooks = DecisionHooks::default();
    hooks.deliver.push(Box::new(DeliverHook(
        |request: &DeliverRequest<'_>| match request.client_id.as_str() {
            "masked" => Verdict::AllowWith(DeliverChanges {
                topic: None,
                payload: Some(Bytes::from_static(b"***")),
            }),
            "blocked" => Verdict::Deny(Denial::new(ReasonCode::NOT_AUTHORIZED, "no")),
            _ => Verdict::Next,
        },
    )));
    let mut engine = engine_with(hooks);
    let now = Instant::now();
    let clients: Vec<Client> = ["plain", "masked", "blocked"]
        .iter()
        .map(|id| {
            let client = connect(
                &mut engine,
                now,
                connect_packet(ProtocolVersion::V5, id, true),
            );
            subscribe(&mut engine, now, &client, "t", QoS::AtMostOnce);
            let _ = received(&client);
            client
        })
        .collect();
    let publisher = connect(
        &mut engine,
        now,
        connect_packet(ProtocolVersion::V5, "p", true),
    );
    engine.handle_packet(
        now,
        publisher.key,
        publish_packet("t", QoS::AtMostOnce, false, b"secret"),
    );
    let payloads: Vec<Vec<Vec<u8>>> = clients
        .iter()
        .map(|client| {
            publishes(&received(client))
                .iter()
                .map(|publish| publish.payload.to_vec())
                .collect()
        })
        .collect();
    assert_eq!(
        payloads,
        vec![vec![b"secret".to_vec()], vec![b"***".to_vec()], vec![]]
    );
    assert_eq!(engine.counters().dropped_not_authorized, 1);
}
