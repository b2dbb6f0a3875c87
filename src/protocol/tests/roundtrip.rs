//! Round-trip property tests: every packet each version can express is generated, encoded,
//! and decoded back to the same packet, with `Codec::encoded_len` equal to the bytes written
//! and `Ok(None)` for every strict prefix of them. Arbitrary bytes never panic the decoder.
//!
//! The strategies respect what each version can carry: 3.x packets have default properties
//! and success reason codes, 3.x CONNACK codes are those that map to return codes 0 to 5 (and
//! 3.1 has no Session Present), 3.x
//! SUBACK codes are 0, 1, 2 and 0x80, a 3.x UNSUBACK has no reason codes, AUTH exists only in
//! 5.0, and only a 5.0 PUBLISH with a topic alias may have an empty topic name.

use std::fmt::Debug;
use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;

use super::super::reason::allowed;
use crate::protocol::{
    AckProperties, Auth, AuthProperties, ClientId, Codec, ConnAck, ConnAckProperties, Connect,
    ConnectProperties, Disconnect, DisconnectProperties, MqttString, Packet, PacketId,
    PayloadFormat, ProtocolVersion, PubResponse, Publish, PublishProperties, QoS, ReasonCode,
    RetainHandling, SubAck, Subscribe, SubscribeProperties, Subscription, SubscriptionId,
    SubscriptionOptions, TopicFilter, TopicName, UnsubAck, Unsubscribe, UnsubscribeProperties,
    UserProperty, Will, WillProperties,
};

use ProtocolVersion::{V3_1, V3_1_1, V5};

// ---- values ----

/// Mostly ASCII with `/` and spaces, sometimes any character but U+0000.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z0-9/ ]{0,8}", 1 => "[^\\x00]{0,4}"]
}

fn mqtt_string() -> impl Strategy<Value = MqttString> {
    text().prop_map(|text| MqttString::new(&text).unwrap())
}

fn topic_name() -> impl Strategy<Value = TopicName> {
    prop_oneof![3 => "[a-z0-9/ $]{1,8}", 1 => "[^\\x00+#]{1,4}"]
        .prop_map(|text| TopicName::new(&text).unwrap())
}

/// Filters built from levels so that `+` and `#` land only where they are allowed, sometimes
/// as a `$share/{group}/` filter.
fn topic_filter() -> impl Strategy<Value = TopicFilter> {
    let level = prop_oneof![1 => Just("+".to_owned()), 3 => "[a-z0-9 é]{0,3}"];
    (
        vec(level, 1..4),
        any::<bool>(),
        option::weighted(0.2, "[a-z0-9]{1,4}"),
    )
        .prop_map(|(levels, multi_level, share_group)| {
            let mut filter = levels.join("/");
            if multi_level {
                filter.push_str("/#");
            }
            if filter.is_empty() {
                filter.push('#');
            }
            if let Some(group) = share_group {
                filter = format!("$share/{group}/{filter}");
            }
            TopicFilter::new(&filter).unwrap()
        })
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..16).prop_map(Bytes::from)
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|id| PacketId::new(id).unwrap())
}

fn qos() -> impl Strategy<Value = QoS> {
    select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

fn nonzero_u16() -> impl Strategy<Value = NonZeroU16> {
    (1..=u16::MAX).prop_map(|value| NonZeroU16::new(value).unwrap())
}

fn nonzero_u32() -> impl Strategy<Value = NonZeroU32> {
    (1..=u32::MAX).prop_map(|value| NonZeroU32::new(value).unwrap())
}

fn subscription_id() -> impl Strategy<Value = SubscriptionId> {
    (1..=SubscriptionId::MAX).prop_map(|id| SubscriptionId::new(id).unwrap())
}

fn payload_format() -> impl Strategy<Value = PayloadFormat> {
    select(vec![PayloadFormat::Unspecified, PayloadFormat::Utf8])
}

fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    vec(
        (mqtt_string(), mqtt_string()).prop_map(|(name, value)| UserProperty { name, value }),
        0..3,
    )
}

fn reason_code(codes: &'static [u8]) -> impl Strategy<Value = ReasonCode> {
    select(codes).prop_map(ReasonCode)
}

/// `strategy` in 5.0; the default (no properties, success) before it.
fn v5_only<T, S>(version: ProtocolVersion, strategy: S) -> BoxedStrategy<T>
where
    T: Default + Clone + Debug + 'static,
    S: Strategy<Value = T> + 'static,
{
    if version.is_v5() {
        strategy.boxed()
    } else {
        Just(T::default()).boxed()
    }
}

// ---- properties ----

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        option::of(any::<u32>()),
        option::of(nonzero_u16()),
        option::of(nonzero_u32()),
        option::of(any::<u16>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(mqtt_string()),
        option::of(binary()),
        user_properties(),
    )
        .prop_map(|fields| ConnectProperties {
            session_expiry_interval: fields.0,
            receive_maximum: fields.1,
            maximum_packet_size: fields.2,
            topic_alias_maximum: fields.3,
            request_response_information: fields.4,
            request_problem_information: fields.5,
            // Authentication data needs a method (a Protocol Error otherwise).
            authentication_data: fields.7.filter(|_| fields.6.is_some()),
            authentication_method: fields.6,
            user_properties: fields.8,
        })
}

fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        option::of(any::<u32>()),
        option::of(payload_format()),
        option::of(any::<u32>()),
        option::of(mqtt_string()),
        option::of(topic_name()),
        option::of(binary()),
        user_properties(),
    )
        .prop_map(|fields| WillProperties {
            will_delay_interval: fields.0,
            payload_format_indicator: fields.1,
            message_expiry_interval: fields.2,
            content_type: fields.3,
            response_topic: fields.4,
            correlation_data: fields.5,
            user_properties: fields.6,
        })
}

fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    let limits = (
        option::of(any::<u32>()),
        option::of(nonzero_u16()),
        option::of(select(vec![QoS::AtMostOnce, QoS::AtLeastOnce])),
        option::of(any::<bool>()),
        option::of(nonzero_u32()),
        option::of(mqtt_string().prop_map(ClientId::from_mqtt_string)),
        option::of(any::<u16>()),
        option::of(mqtt_string()),
        user_properties(),
    );
    let features = (
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<u16>()),
        option::of(mqtt_string()),
        option::of(mqtt_string()),
        option::of(mqtt_string()),
        option::of(binary()),
    );
    (limits, features).prop_map(|(limits, features)| ConnAckProperties {
        session_expiry_interval: limits.0,
        receive_maximum: limits.1,
        maximum_qos: limits.2,
        retain_available: limits.3,
        maximum_packet_size: limits.4,
        assigned_client_identifier: limits.5,
        topic_alias_maximum: limits.6,
        reason_string: limits.7,
        user_properties: limits.8,
        wildcard_subscription_available: features.0,
        subscription_identifiers_available: features.1,
        shared_subscription_available: features.2,
        server_keep_alive: features.3,
        response_information: features.4,
        server_reference: features.5,
        authentication_data: features.7.filter(|_| features.6.is_some()),
        authentication_method: features.6,
    })
}

fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        option::of(payload_format()),
        option::of(any::<u32>()),
        option::of(nonzero_u16()),
        option::of(topic_name()),
        option::of(binary()),
        user_properties(),
        vec(subscription_id(), 0..3),
        option::of(mqtt_string()),
    )
        .prop_map(|fields| PublishProperties {
            payload_format_indicator: fields.0,
            message_expiry_interval: fields.1,
            topic_alias: fields.2,
            response_topic: fields.3,
            correlation_data: fields.4,
            user_properties: fields.5,
            subscription_identifiers: fields.6,
            content_type: fields.7,
        })
}

fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (option::of(mqtt_string()), user_properties()).prop_map(|(reason_string, user_properties)| {
        AckProperties {
            reason_string,
            user_properties,
        }
    })
}

fn subscribe_properties() -> impl Strategy<Value = SubscribeProperties> {
    (option::of(subscription_id()), user_properties()).prop_map(
        |(subscription_identifier, user_properties)| SubscribeProperties {
            subscription_identifier,
            user_properties,
        },
    )
}

fn unsubscribe_properties() -> impl Strategy<Value = UnsubscribeProperties> {
    user_properties().prop_map(|user_properties| UnsubscribeProperties { user_properties })
}

fn disconnect_properties() -> impl Strategy<Value = DisconnectProperties> {
    (
        option::of(any::<u32>()),
        option::of(mqtt_string()),
        user_properties(),
        option::of(mqtt_string()),
    )
        .prop_map(|fields| DisconnectProperties {
            session_expiry_interval: fields.0,
            reason_string: fields.1,
            user_properties: fields.2,
            server_reference: fields.3,
        })
}

fn auth_properties() -> impl Strategy<Value = AuthProperties> {
    (
        option::of(mqtt_string()),
        option::of(binary()),
        option::of(mqtt_string()),
        user_properties(),
    )
        .prop_map(|fields| AuthProperties {
            authentication_data: fields.1.filter(|_| fields.0.is_some()),
            authentication_method: fields.0,
            reason_string: fields.2,
            user_properties: fields.3,
        })
}

// ---- packets ----

fn will(version: ProtocolVersion) -> impl Strategy<Value = Will> {
    (
        topic_name(),
        binary(),
        qos(),
        any::<bool>(),
        v5_only(version, will_properties()),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        })
}

fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        any::<u16>(),
        mqtt_string().prop_map(ClientId::from_mqtt_string),
        option::of(will(version)),
        option::of(mqtt_string()),
        option::of(binary()),
        v5_only(version, connect_properties()),
    )
        .prop_map(move |fields| {
            let (clean_start, keep_alive, client_id, will, mut username, password, properties) =
                fields;
            // 3.x cannot send a password without a user name.
            if !version.is_v5() && password.is_some() && username.is_none() {
                username = Some(MqttString::default());
            }
            Packet::Connect(Box::new(Connect {
                protocol: version,
                clean_start,
                keep_alive,
                client_id,
                will,
                username,
                password,
                properties,
            }))
        })
}

/// 3.x CONNACK codes: those that `from_v3_connack` gives for return codes 0 to 5.
const V3_CONNACK: &[u8] = &[0x00, 0x84, 0x85, 0x88, 0x86, 0x87];
/// 3.x SUBACK return codes.
const V3_SUBACK: &[u8] = &[0x00, 0x01, 0x02, 0x80];

fn connack(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let codes = if version.is_v5() {
        allowed::CONNACK
    } else {
        V3_CONNACK
    };
    let session_present = if version == V3_1 {
        Just(false).boxed()
    } else {
        any::<bool>().boxed()
    };
    (
        session_present,
        reason_code(codes),
        v5_only(version, connack_properties()),
    )
        .prop_map(|(session_present, reason_code, properties)| {
            Packet::ConnAck(ConnAck {
                // A refused connection never has a session.
                session_present: session_present && reason_code == ReasonCode::SUCCESS,
                reason_code,
                properties,
            })
        })
}

fn publish(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        (qos(), any::<bool>(), any::<bool>(), packet_id()),
        topic_name(),
        any::<bool>(),
        v5_only(version, publish_properties()),
        vec(any::<u8>(), 0..64).prop_map(Bytes::from),
    )
        .prop_map(
            |((qos, dup, retain, packet_id), topic, use_alias_only, properties, payload)| {
                let at_most_once = qos == QoS::AtMostOnce;
                // Only a PUBLISH with a topic alias may leave its topic name empty.
                let topic = if use_alias_only && properties.topic_alias.is_some() {
                    TopicName::empty()
                } else {
                    topic
                };
                Packet::Publish(Publish {
                    dup: dup && !at_most_once,
                    qos,
                    retain,
                    topic,
                    packet_id: (!at_most_once).then_some(packet_id),
                    properties,
                    payload,
                })
            },
        )
}

fn pub_response(version: ProtocolVersion, codes: &'static [u8]) -> BoxedStrategy<PubResponse> {
    (
        packet_id(),
        v5_only(version, reason_code(codes)),
        v5_only(version, ack_properties()),
    )
        .prop_map(|(packet_id, reason_code, properties)| PubResponse {
            packet_id,
            reason_code,
            properties,
        })
        .boxed()
}

fn subscription(version: ProtocolVersion) -> impl Strategy<Value = Subscription> {
    let retain_handling = select(vec![
        RetainHandling::SendAtSubscribe,
        RetainHandling::SendIfNew,
        RetainHandling::DoNotSend,
    ]);
    let v5_options = (any::<bool>(), any::<bool>(), retain_handling);
    (topic_filter(), qos(), v5_only(version, v5_options)).prop_map(
        |(filter, qos, (no_local, retain_as_published, retain_handling))| {
            // No Local on a shared subscription is a Protocol Error.
            let no_local = no_local && filter.shared().is_none();
            Subscription {
                filter,
                options: SubscriptionOptions {
                    qos,
                    no_local,
                    retain_as_published,
                    retain_handling,
                },
            }
        },
    )
}

fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        v5_only(version, subscribe_properties()),
        vec(subscription(version), 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                filters,
            })
        })
}

fn suback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let codes = if version.is_v5() {
        allowed::SUBACK
    } else {
        V3_SUBACK
    };
    (
        packet_id(),
        v5_only(version, ack_properties()),
        vec(reason_code(codes), 1..5),
    )
        .prop_map(|(packet_id, properties, reason_codes)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties,
                reason_codes,
            })
        })
}

fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        v5_only(version, unsubscribe_properties()),
        vec(topic_filter(), 1..4),
    )
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters,
            })
        })
}

fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    // A 3.x UNSUBACK carries no reason codes.
    let codes = if version.is_v5() {
        vec(reason_code(allowed::UNSUBACK), 1..5).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    (packet_id(), v5_only(version, ack_properties()), codes).prop_map(
        |(packet_id, properties, reason_codes)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                properties,
                reason_codes,
            })
        },
    )
}

fn disconnect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        v5_only(version, reason_code(allowed::DISCONNECT)),
        v5_only(version, disconnect_properties()),
    )
        .prop_map(|(reason_code, properties)| {
            Packet::Disconnect(Disconnect {
                reason_code,
                properties,
            })
        })
}

fn auth() -> impl Strategy<Value = Packet> {
    (reason_code(allowed::AUTH), auth_properties()).prop_map(|(reason_code, properties)| {
        Packet::Auth(Auth {
            reason_code,
            properties,
        })
    })
}

/// Any packet `version` can express.
fn packet(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let mut packets = vec![
        connect(version).boxed(),
        connack(version).boxed(),
        publish(version).boxed(),
        pub_response(version, allowed::PUBACK_PUBREC)
            .prop_map(Packet::PubAck)
            .boxed(),
        pub_response(version, allowed::PUBACK_PUBREC)
            .prop_map(Packet::PubRec)
            .boxed(),
        pub_response(version, allowed::PUBREL_PUBCOMP)
            .prop_map(Packet::PubRel)
            .boxed(),
        pub_response(version, allowed::PUBREL_PUBCOMP)
            .prop_map(Packet::PubComp)
            .boxed(),
        subscribe(version).boxed(),
        suback(version).boxed(),
        unsubscribe(version).boxed(),
        unsuback(version).boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        disconnect(version).boxed(),
    ];
    if version.is_v5() {
        packets.push(auth().boxed());
    }
    Union::new(packets)
}

// ---- properties checked ----

/// Encodes, checks the length, every strict prefix and the decoded packet.
fn assert_round_trip(version: ProtocolVersion, packet: &Packet) -> Result<(), TestCaseError> {
    let codec = Codec::new(version);
    let mut buf = BytesMut::new();
    prop_assert_eq!(codec.encode(packet, &mut buf), Ok(()));
    prop_assert_eq!(buf.len(), codec.encoded_len(packet));
    let encoded = buf.clone().freeze();

    for len in 0..encoded.len() {
        let mut prefix = BytesMut::from(&encoded[..len]);
        prop_assert_eq!(
            codec.decode(&mut prefix),
            Ok(None),
            "prefix of {} bytes",
            len
        );
        prop_assert_eq!(prefix.len(), len);
    }

    prop_assert_eq!(codec.decode(&mut buf), Ok(Some(packet.clone())));
    prop_assert!(buf.is_empty());

    if let Packet::Publish(publish) = packet {
        let mut header = BytesMut::new();
        prop_assert_eq!(publish.encode_header(version, &mut header), Ok(()));
        header.extend_from_slice(&publish.payload);
        prop_assert_eq!(&header[..], &encoded[..]);
        prop_assert_eq!(publish.encoded_len(version), encoded.len());
    }
    Ok(())
}

proptest! {
    #[test]
    fn every_v31_packet_round_trips(packet in packet(V3_1)) {
        assert_round_trip(V3_1, &packet)?;
    }

    #[test]
    fn every_v311_packet_round_trips(packet in packet(V3_1_1)) {
        assert_round_trip(V3_1_1, &packet)?;
    }

    #[test]
    fn every_v5_packet_round_trips(packet in packet(V5)) {
        assert_round_trip(V5, &packet)?;
    }

    /// Whatever the bytes, the decoder returns: an error, `Ok(None)` with the buffer left
    /// alone, or a packet that consumed bytes and re-encodes to bytes that decode to it again.
    #[test]
    fn arbitrary_bytes_decode_without_panicking(
        version in select(vec![V3_1, V3_1_1, V5]),
        bytes in vec(any::<u8>(), 0..96),
    ) {
        let codec = Codec::new(version);
        let mut buf = BytesMut::from(&bytes[..]);
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Err(_) => break,
                Ok(None) => {
                    prop_assert_eq!(buf.len(), before);
                    break;
                }
                Ok(Some(packet)) => {
                    prop_assert!(buf.len() < before);
                    let mut again = BytesMut::new();
                    prop_assert_eq!(codec.encode(&packet, &mut again), Ok(()));
                    prop_assert_eq!(codec.decode(&mut again), Ok(Some(packet)));
                }
            }
        }
    }
}
