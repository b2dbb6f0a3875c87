//! Session state machine tests in virtual time: no sockets, no clock; every test drives a
//! `Session` with packets, deliveries and instants and checks the actions it asks for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::protocol::{
    ClientId, Connect, ConnectProperties, Disconnect, DisconnectProperties, Packet, PacketId,
    PayloadFormat, ProtocolVersion, PubResponse, Publish, PublishProperties, QoS, ReasonCode,
    Subscribe, SubscribeProperties, Subscription, SubscriptionOptions, TopicFilter, TopicName,
    Unsubscribe, UnsubscribeProperties, Will, WillProperties,
};

fn pid(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

fn topic(text: &str) -> TopicName {
    TopicName::new(text).unwrap()
}

fn connect_packet(version: ProtocolVersion, keep_alive: u16) -> Connect {
    Connect {
        protocol: version,
        clean_start: true,
        keep_alive,
        client_id: ClientId::new("c1").unwrap(),
        will: Some(Will {
            topic: topic("will/c1"),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: WillProperties::default(),
        }),
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

struct Harness {
    session: Session,
    now: Instant,
    actions: Vec<Action>,
    hooks: crate::hooks::DecisionHooks,
    report_acks: bool,
}

fn attach(session_present: bool, assigned_client_id: bool) -> Attach {
    Attach {
        session_present,
        assigned_client_id,
        info: None,
    }
}

impl Harness {
    fn new(limits: BrokerLimits) -> Self {
        let session = Session::new(ClientId::new("c1").unwrap(), Arc::new(limits));
        Self {
            session,
            now: Instant::now(),
            actions: Vec::new(),
            hooks: Default::default(),
            report_acks: false,
        }
    }

    fn connected(version: ProtocolVersion, properties: ConnectProperties) -> Self {
        let mut harness = Self::new(BrokerLimits::default());
        let mut connect = connect_packet(version, 10);
        connect.properties = properties;
        harness.session.connect(
            harness.now,
            &connect,
            attach(false, false),
            &mut harness.actions,
        );
        harness.actions.clear();
        harness
    }

    fn packet(&mut self, packet: Packet) -> Vec<Action> {
        let context = SessionContext {
            hooks: &self.hooks,
            unix_ns: 0,
            report_acks: self.report_acks,
        };
        self.session
            .handle_packet(self.now, packet, &context, &mut self.actions);
        std::mem::take(&mut self.actions)
    }

    fn deliver(&mut self, message: Arc<Message>, qos: QoS) -> Vec<Action> {
        let delivery = Delivery {
            message,
            qos,
            retain: false,
            subscription_ids: SubscriptionIds::default(),
        };
        self.session.deliver(self.now, delivery, &mut self.actions);
        std::mem::take(&mut self.actions)
    }
}

fn publish(qos: QoS, packet_id: Option<u16>, topic_text: &str) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic(topic_text),
        packet_id: packet_id.map(pid),
        properties: PublishProperties::default(),
        payload: Bytes::from_static(b"payload"),
    }
}

fn message(topic_text: &str, qos: QoS) -> Arc<Message> {
    Arc::new(Message {
        topic: topic(topic_text),
        payload: Bytes::from_static(b"m"),
        qos,
        retain: false,
        properties: PublishProperties::default(),
        expires_at: None,
        origin: ClientId::new("other").unwrap(),
        publisher: None,
        received_at_ns: 0,
    })
}

fn sent_packets(actions: &[Action]) -> Vec<Packet> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Send(Outgoing::Packet(packet)) => Some(packet.clone()),
            _ => None,
        })
        .collect()
}

fn sent_publishes(actions: &[Action]) -> Vec<OutgoingPublish> {
    actions
        .iter()
        .filter_map(|action| match action {
            Action::Send(Outgoing::Publish(publish)) => Some(publish.clone()),
            _ => None,
        })
        .collect()
}

fn routed(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|action| matches!(action, Action::Route(_)))
        .count()
}

fn close_reason(actions: &[Action]) -> Option<Close> {
    actions.iter().find_map(|action| match action {
        Action::Close(close) => Some(*close),
        _ => None,
    })
}

#[test]
fn v5_connack_announces_the_broker_limits_and_an_assigned_id() {
    let mut harness = Harness::new(BrokerLimits {
        max_keep_alive_secs: 30,
        ..BrokerLimits::default()
    });
    let connect = connect_packet(ProtocolVersion::V5, 0);
    let connack = harness.session.connect(
        harness.now,
        &connect,
        attach(false, true),
        &mut harness.actions,
    );
    assert_eq!(connack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(connack.properties.receive_maximum, NonZeroU16::new(128));
    assert_eq!(connack.properties.topic_alias_maximum, Some(64));
    assert_eq!(
        connack.properties.server_keep_alive,
        Some(30),
        "keep-alive 0 is capped"
    );
    assert_eq!(
        connack.properties.assigned_client_identifier,
        Some(ClientId::new("c1").unwrap())
    );
    assert_eq!(
        harness.session.next_timeout(),
        Some(harness.now + Duration::from_secs(45)),
        "1.5 times the server keep-alive"
    );
}

#[test]
fn v3_connack_carries_no_properties() {
    let mut harness = Harness::new(BrokerLimits::default());
    let connect = connect_packet(ProtocolVersion::V3_1_1, 10);
    let connack = harness.session.connect(
        harness.now,
        &connect,
        attach(true, false),
        &mut harness.actions,
    );
    assert!(connack.session_present);
    assert!(connack.properties.is_empty());
}

#[test]
fn qos1_publish_is_routed_and_acknowledged() {
    let mut harness = Harness::connected(ProtocolVersion::V3_1_1, ConnectProperties::default());
    let actions = harness.packet(Packet::Publish(publish(QoS::AtLeastOnce, Some(7), "a/b")));
    assert_eq!(routed(&actions), 1);
    assert_eq!(
        sent_packets(&actions),
        vec![Packet::PubAck(PubResponse::success(pid(7)))]
    );
    let Some(Action::Route(message)) = actions.first() else {
        panic!("{actions:?}")
    };
    assert_eq!(message.topic, topic("a/b"));
    assert_eq!(message.origin, ClientId::new("c1").unwrap());
}

#[test]
fn qos2_publish_is_routed_once_however_often_it_is_retried() {
    let mut harness = Harness::connected(ProtocolVersion::V5, ConnectProperties::default());
    let first = harness.packet(Packet::Publish(publish(QoS::ExactlyOnce, Some(3), "a")));
    assert_eq!(routed(&first), 1);
    assert_eq!(
        sent_packets(&first),
        vec![Packet::PubRec(PubResponse::success(pid(3)))]
    );
    let mut retry = publish(QoS::ExactlyOnce, Some(3), "a");
    retry.dup = true;
    let second = harness.packet(Packet::Publish(retry));
    assert_eq!(
        routed(&second),
        0,
        "a retried QoS 2 PUBLISH is not routed again"
    );
    assert_eq!(
        sent_packets(&second),
        vec![Packet::PubRec(PubResponse::success(pid(3)))]
    );
    let release = harness.packet(Packet::PubRel(PubResponse::success(pid(3))));
    assert_eq!(
        sent_packets(&release),
        vec![Packet::PubComp(PubResponse::success(pid(3)))]
    );
    // The id is free again: a new message with it is routed.
    let reuse = harness.packet(Packet::Publish(publish(QoS::ExactlyOnce, Some(3), "a")));
    assert_eq!(routed(&reuse), 1);
}

#[test]
fn pubrel_for_an_unknown_id_gets_packet_identifier_not_found() {
    let mut harness = Harness::connected(ProtocolVersion::V5, ConnectProperties::default());
    let actions = harness.packet(Packet::PubRel(PubResponse::success(pid(9))));
    let [Packet::PubComp(comp)] = &sent_packets(&actions)[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(comp.reason_code, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND);
}

#[test]
fn more_unreleased_qos2_publishes_than_receive_maximum_closes_with_0x93() {
    let limits = BrokerLimits {
        receive_maximum: NonZeroU16::new(2).unwrap(),
        ..BrokerLimits::default()
    };
    let mut harness = Harness::new(limits);
    let connect = connect_packet(ProtocolVersion::V5, 0);
    harness.session.connect(
        harness.now,
        &connect,
        attach(false, false),
        &mut harness.actions,
    );
    for id in 1..=2 {
        let actions = harness.packet(Packet::Publish(publish(QoS::ExactlyOnce, Some(id), "a")));
        assert_eq!(close_reason(&actions), None);
    }
    let actions = harness.packet(Packet::Publish(publish(QoS::ExactlyOnce, Some(3), "a")));
    let close = close_reason(&actions).unwrap();
    assert_eq!(close.reason, ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
    assert!(close.send_disconnect && close.publish_will);
    assert_eq!(routed(&actions), 0);
}

#[test]
fn outbound_window_follows_the_client_receive_maximum() {
    let properties = ConnectProperties {
        receive_maximum: NonZeroU16::new(2),
        ..Default::default()
    };
    let mut harness = Harness::connected(ProtocolVersion::V5, properties);
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.extend(sent_publishes(
            &harness.deliver(message("t", QoS::AtLeastOnce), QoS::AtLeastOnce),
        ));
    }
    assert_eq!(sent.len(), 2, "the third waits for a free slot");
    assert_eq!(harness.session.pending_len(), 3);
    let first_id = sent[0].packet_id.unwrap();
    let actions = harness.packet(Packet::PubAck(PubResponse::success(first_id)));
    let released = sent_publishes(&actions);
    assert_eq!(released.len(), 1);
    assert!(released[0].packet_id.is_some());
    assert_eq!(harness.session.pending_len(), 2);
}

#[test]
fn a_full_queue_drops_and_counts_new_qos1_messages() {
    let limits = BrokerLimits {
        max_queued_messages: 2,
        max_outbound_window: NonZeroU16::new(1).unwrap(),
        ..BrokerLimits::default()
    };
    let mut harness = Harness::new(limits);
    let connect = connect_packet(ProtocolVersion::V3_1_1, 0);
    harness.session.connect(
        harness.now,
        &connect,
        attach(false, false),
        &mut harness.actions,
    );
    let mut drops = 0;
    for _ in 0..5 {
        let actions = harness.deliver(message("t", QoS::AtLeastOnce), QoS::AtLeastOnce);
        drops += actions
            .iter()
            .filter(|a| matches!(a, Action::Dropped(DropReason::QueueFull, _)))
            .count();
    }
    // One in flight, two queued, two refused.
    assert_eq!(harness.session.pending_len(), 3);
    assert_eq!(drops, 2);
}

#[test]
fn the_queue_is_bounded_in_bytes_too() {
    // Each message counts its topic (1 byte) and payload (1 byte): 2 bytes.
    let limits = BrokerLimits {
        max_queued_messages: 100,
        max_queued_bytes: 5,
        max_outbound_window: NonZeroU16::new(1).unwrap(),
        ..BrokerLimits::default()
    };
    let mut harness = Harness::new(limits);
    let connect = connect_packet(ProtocolVersion::V3_1_1, 0);
    harness.session.connect(
        harness.now,
        &connect,
        attach(false, false),
        &mut harness.actions,
    );
    let mut drops = 0;
    for _ in 0..6 {
        let actions = harness.deliver(message("t", QoS::AtLeastOnce), QoS::AtLeastOnce);
        drops += actions
            .iter()
            .filter(|a| matches!(a, Action::Dropped(DropReason::QueueFull, _)))
            .count();
    }
    // One in flight, two queued (4 of 5 bytes), three refused.
    assert_eq!(harness.session.pending_len(), 3);
    assert_eq!(drops, 3);
}

#[test]
fn offline_session_queues_qos1_drops_qos0_and_redelivers_with_dup_on_reconnect() {
    let mut harness = Harness::connected(ProtocolVersion::V3_1_1, ConnectProperties::default());
    let in_flight =
        sent_publishes(&harness.deliver(message("a", QoS::AtLeastOnce), QoS::AtLeastOnce));
    assert_eq!(in_flight.len(), 1);
    assert!(!in_flight[0].dup);
    let detached = harness.session.detach(true);
    assert!(detached.will.is_some());
    let qos0 = harness.deliver(message("b", QoS::AtMostOnce), QoS::AtMostOnce);
    assert!(
        matches!(qos0.as_slice(), [Action::Dropped(DropReason::Offline, _)]),
        "{:?}",
        qos0
    );
    assert!(harness
        .deliver(message("c", QoS::AtLeastOnce), QoS::AtLeastOnce)
        .is_empty());

    let mut connect = connect_packet(ProtocolVersion::V3_1_1, 10);
    connect.clean_start = false;
    let mut actions = Vec::new();
    harness
        .session
        .connect(harness.now, &connect, attach(true, false), &mut actions);
    let resent = sent_publishes(&actions);
    assert_eq!(resent.len(), 2);
    assert_eq!(resent[0].packet_id, in_flight[0].packet_id);
    assert!(
        resent[0].dup,
        "the unacknowledged message goes again with DUP"
    );
    assert_eq!(resent[1].message.topic, topic("c"));
    assert!(!resent[1].dup);
}

#[test]
fn outbound_qos2_runs_pubrec_pubrel_pubcomp_and_resends_pubrel_after_reconnect() {
    let mut harness = Harness::connected(ProtocolVersion::V5, ConnectProperties::default());
    let sent = sent_publishes(&harness.deliver(message("a", QoS::ExactlyOnce), QoS::ExactlyOnce));
    let id = sent[0].packet_id.unwrap();
    let actions = harness.packet(Packet::PubRec(PubResponse::success(id)));
    assert_eq!(
        sent_packets(&actions),
        vec![Packet::PubRel(PubResponse::success(id))]
    );

    harness.session.detach(false);
    let mut actions = Vec::new();
    let mut connect = connect_packet(ProtocolVersion::V5, 10);
    connect.clean_start = false;
    harness
        .session
        .connect(harness.now, &connect, attach(true, false), &mut actions);
    assert_eq!(
        sent_packets(&actions),
        vec![Packet::PubRel(PubResponse::success(id))]
    );
    assert!(
        sent_publishes(&actions).is_empty(),
        "the message itself is not sent again"
    );

    harness.packet(Packet::PubComp(PubResponse::success(id)));
    assert_eq!(harness.session.pending_len(), 0);
}

#[test]
fn keep_alive_expires_after_one_and_a_half_times_the_interval() {
    let mut harness = Harness::connected(ProtocolVersion::V5, ConnectProperties::default());
    let start = harness.now;
    harness
        .session
        .handle_timeout(start + Duration::from_secs(14), &mut harness.actions);
    assert!(harness.actions.is_empty());
    // A packet pushes the deadline out.
    harness.now = start + Duration::from_secs(10);
    harness.packet(Packet::PingReq);
    assert_eq!(
        harness.session.next_timeout(),
        Some(harness.now + Duration::from_secs(15))
    );
    harness
        .session
        .handle_timeout(start + Duration::from_secs(25), &mut harness.actions);
    let close = close_reason(&harness.actions).unwrap();
    assert_eq!(close.reason, ReasonCode::KEEP_ALIVE_TIMEOUT);
    assert!(close.publish_will);
}

#[test]
fn disconnect_decides_about_the_will() {
    for (code, publish_will) in [
        (ReasonCode::NORMAL_DISCONNECTION, false),
        (ReasonCode::DISCONNECT_WITH_WILL, true),
    ] {
        let mut harness = Harness::connected(ProtocolVersion::V5, ConnectProperties::default());
        let disconnect = Disconnect {
            reason_code: code,
            properties: DisconnectProperties::default(),
        };
        let close = close_reason(&harness.packet(Packet::Disconnect(disconnect))).unwrap();
        assert_eq!(close.publish_will, publish_will);
        assert!(!close.send_disconnect);
        let detached = harness.session.detach(close.publish_will);
        assert_eq!(detached.will.is_some(), publish_will);
    }
}

#[test]
fn disconnect_may_not_raise_a_zero_session_expiry() {
    let mut harness = Harness::connected(ProtocolVersion::V5, ConnectProperties::default());
    let disconnect = Disconnect {
        reason_code: ReasonCode::SUCCESS,
        properties: DisconnectProperties {
            session_expiry_interval: Some(60),
            ..Default::default()
        },
    };
    let close = close_reason(&harness.packet(Packet::Disconnect(disconnect))).unwrap();
    assert_eq!(close.reason, ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn session_expiry_is_capped_at_the_broker_maximum() {
    let mut harness = Harness::new(BrokerLimits {
        max_session_expiry_secs: 100,
        ..BrokerLimits::default()
    });
    let mut connect = connect_packet(ProtocolVersion::V5, 0);
    connect.properties.session_expiry_interval = Some(1000);
    let connack = harness.session.connect(
        harness.now,
        &connect,
        attach(false, false),
        &mut harness.actions,
    );
    assert_eq!(connack.properties.session_expiry_interval, Some(100));
    assert_eq!(
        harness.session.detach(false).expiry,
        Duration::from_secs(100)
    );
}

#[test]
fn inbound_topic_alias_resolves_and_an_out_of_range_alias_closes_with_0x94() {
    let mut harness = Harness::connected(ProtocolVersion::V5, ConnectProperties::default());
    let mut named = publish(QoS::AtMostOnce, None, "long/topic");
    named.properties.topic_alias = NonZeroU16::new(1);
    assert_eq!(routed(&harness.packet(Packet::Publish(named))), 1);
    let mut aliased = publish(QoS::AtMostOnce, None, "x");
    aliased.topic = TopicName::empty();
    aliased.properties.topic_alias = NonZeroU16::new(1);
    let actions = harness.packet(Packet::Publish(aliased));
    let Some(Action::Route(message)) = actions.first() else {
        panic!("{actions:?}")
    };
    assert_eq!(message.topic, topic("long/topic"));
    assert_eq!(
        message.properties.topic_alias, None,
        "aliases never travel to subscribers"
    );

    let mut bad = publish(QoS::AtMostOnce, None, "a");
    bad.properties.topic_alias = NonZeroU16::new(65);
    let close = close_reason(&harness.packet(Packet::Publish(bad))).unwrap();
    assert_eq!(close.reason, ReasonCode::TOPIC_ALIAS_INVALID);
}

#[test]
fn outbound_topic_alias_sends_the_name_once() {
    let properties = ConnectProperties {
        topic_alias_maximum: Some(4),
        ..Default::default()
    };
    let mut harness = Harness::connected(ProtocolVersion::V5, properties);
    let first = sent_publishes(&harness.deliver(message("a/b", QoS::AtMostOnce), QoS::AtMostOnce));
    let second = sent_publishes(&harness.deliver(message("a/b", QoS::AtMostOnce), QoS::AtMostOnce));
    assert_eq!(first[0].topic_alias, Some((NonZeroU16::MIN, true)));
    assert_eq!(second[0].topic_alias, Some((NonZeroU16::MIN, false)));
    assert!(second[0].to_packet().topic.is_empty());
}

#[test]
fn expired_messages_are_dropped_and_the_remaining_interval_is_forwarded() {
    let mut harness = Harness::connected(ProtocolVersion::V5, ConnectProperties::default());
    let mut expiring = (*message("t", QoS::AtMostOnce)).clone();
    expiring.expires_at = Some(harness.now + Duration::from_secs(10));
    let expiring = Arc::new(expiring);
    harness.now += Duration::from_secs(4);
    let sent = sent_publishes(&harness.deliver(Arc::clone(&expiring), QoS::AtMostOnce));
    assert_eq!(sent[0].message_expiry_secs, Some(6));
    assert_eq!(
        sent[0].to_packet().properties.message_expiry_interval,
        Some(6)
    );
    harness.now += Duration::from_secs(6);
    let actions = harness.deliver(expiring, QoS::AtMostOnce);
    assert!(
        matches!(
            actions.as_slice(),
            [Action::Dropped(DropReason::Expired, _)]
        ),
        "{:?}",
        actions
    );
}

#[test]
fn subscribe_caps_qos_refuses_what_is_not_offered_and_knows_existing_filters() {
    let limits = BrokerLimits {
        maximum_qos: QoS::AtLeastOnce,
        wildcard_subscription_available: false,
        ..BrokerLimits::default()
    };
    let mut harness = Harness::new(limits);
    let connect = connect_packet(ProtocolVersion::V5, 0);
    harness.session.connect(
        harness.now,
        &connect,
        attach(false, false),
        &mut harness.actions,
    );
    let subscribe = |filters: &[&str]| {
        Packet::Subscribe(Subscribe {
            packet_id: pid(1),
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
    let actions = harness.packet(subscribe(&["a/b", "a/+"]));
    let [Action::Subscribe(request)] = &actions[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(
        request.reason_codes,
        vec![
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED
        ]
    );
    assert_eq!(request.entries.len(), 1);
    assert!(!request.entries[0].existed);
    assert!(matches!(request.suback(), Packet::SubAck(_)));
    let again = harness.packet(subscribe(&["a/b"]));
    let [Action::Subscribe(request)] = &again[..] else {
        panic!("{again:?}")
    };
    assert!(request.entries[0].existed);
    assert_eq!(harness.session.subscriptions().count(), 1);
}

#[test]
fn unsubscribe_answers_per_filter_and_forgets_the_subscription() {
    let mut harness = Harness::connected(ProtocolVersion::V5, ConnectProperties::default());
    harness.packet(Packet::Subscribe(Subscribe {
        packet_id: pid(1),
        properties: SubscribeProperties::default(),
        filters: vec![Subscription {
            filter: TopicFilter::new("a").unwrap(),
            options: Default::default(),
        }],
    }));
    let actions = harness.packet(Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(2),
        properties: UnsubscribeProperties::default(),
        filters: vec![
            TopicFilter::new("a").unwrap(),
            TopicFilter::new("b").unwrap(),
        ],
    }));
    let [Packet::UnsubAck(ack)] = &sent_packets(&actions)[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(
        ack.reason_codes,
        vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
    );
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Unsubscribe(filters) if filters.len() == 2)));
    assert_eq!(harness.session.subscriptions().count(), 0);
}

#[test]
fn a_message_too_big_for_the_client_is_not_sent_and_frees_its_slot() {
    let properties = ConnectProperties {
        maximum_packet_size: NonZeroU32::new(20),
        receive_maximum: NonZeroU16::new(1),
        ..Default::default()
    };
    let mut harness = Harness::connected(ProtocolVersion::V5, properties);
    let big = Arc::new(Message {
        payload: Bytes::from(vec![0u8; 100]),
        ..(*message("t", QoS::AtLeastOnce)).clone()
    });
    let actions = harness.deliver(big, QoS::AtLeastOnce);
    assert!(
        matches!(
            actions.as_slice(),
            [Action::Dropped(DropReason::TooLarge, _)]
        ),
        "{:?}",
        actions
    );
    assert_eq!(harness.session.pending_len(), 0);
    let small = sent_publishes(&harness.deliver(message("t", QoS::AtLeastOnce), QoS::AtLeastOnce));
    assert_eq!(small.len(), 1, "the window slot was given back");
}

#[test]
fn invalid_utf8_payload_declared_as_utf8_is_refused_with_0x99() {
    let mut harness = Harness::connected(ProtocolVersion::V5, ConnectProperties::default());
    let mut bad = publish(QoS::AtLeastOnce, Some(1), "a");
    bad.payload = Bytes::from_static(&[0xFF, 0xFE]);
    bad.properties.payload_format_indicator = Some(PayloadFormat::Utf8);
    let actions = harness.packet(Packet::Publish(bad));
    assert_eq!(routed(&actions), 0);
    let [Packet::PubAck(ack)] = &sent_packets(&actions)[..] else {
        panic!("{actions:?}")
    };
    assert_eq!(ack.reason_code, ReasonCode::PAYLOAD_FORMAT_INVALID);
}

#[test]
fn a_client_may_not_send_subscription_identifiers_or_server_packets() {
    let mut harness = Harness::connected(ProtocolVersion::V5, ConnectProperties::default());
    let mut with_id = publish(QoS::AtMostOnce, None, "a");
    with_id.properties.subscription_identifiers =
        vec![crate::protocol::SubscriptionId::new(1).unwrap()];
    let close = close_reason(&harness.packet(Packet::Publish(with_id))).unwrap();
    assert_eq!(close.reason, ReasonCode::PROTOCOL_ERROR);
    let close = close_reason(&harness.packet(Packet::PingResp)).unwrap();
    assert_eq!(close.reason, ReasonCode::PROTOCOL_ERROR);
}

#[test]
fn v3_deliveries_carry_no_v5_properties() {
    let mut harness = Harness::connected(ProtocolVersion::V3_1_1, ConnectProperties::default());
    let mut expiring = (*message("t", QoS::AtMostOnce)).clone();
    expiring.expires_at = Some(harness.now + Duration::from_secs(10));
    let mut ids = SubscriptionIds::default();
    ids.push(crate::protocol::SubscriptionId::new(5).unwrap());
    let delivery = Delivery {
        message: Arc::new(expiring),
        qos: QoS::AtMostOnce,
        retain: false,
        subscription_ids: ids,
    };
    harness
        .session
        .deliver(harness.now, delivery, &mut harness.actions);
    let sent = sent_publishes(&harness.actions);
    assert_eq!(sent[0].message_expiry_secs, None);
    assert!(sent[0].subscription_ids.is_empty());
    assert_eq!(sent[0].topic_alias, None);
}

#[test]
fn packet_ids_skip_ids_still_in_flight() {
    let mut inflight = Inflight::new(10, usize::MAX);
    let publish = sent_publishes(&{
        let mut harness = Harness::connected(ProtocolVersion::V5, ConnectProperties::default());
        harness.deliver(message("t", QoS::AtLeastOnce), QoS::AtLeastOnce)
    })
    .remove(0);
    for _ in 0..3 {
        let mut fresh = publish.clone();
        fresh.packet_id = None;
        inflight.enqueue(fresh).unwrap();
    }
    let ids: Vec<u16> = (0..3)
        .map(|_| inflight.send_next(10).unwrap().packet_id.unwrap().get())
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    let acked = inflight
        .on_puback(pid(2))
        .expect("id 2 waits for its PUBACK");
    assert_eq!(acked.packet_id, Some(pid(2)));
    assert!(
        inflight.on_puback(pid(2)).is_none(),
        "a duplicate ack is unknown"
    );
}
