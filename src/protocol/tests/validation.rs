//! One test per validation rule: each builds the smallest packet that breaks exactly that rule
//! and asserts the exact `DecodeError` (or `EncodeError` for what a caller may not encode).
//! Rules that hold in every version are checked in every version.

use bytes::{Bytes, BytesMut};

use super::golden::all;
use super::{decode, encode, field, frame, hex, pid, props, string, topic};
use crate::protocol::{
    Auth, AuthProperties, Codec, Connect, ConnectProperties, DecodeError, EncodeError, Packet,
    PacketType, PropertyId, ProtocolVersion, Publish, PublishProperties, QoS, SubAck, Subscribe,
    SubscribeProperties, TopicFilter, TopicName, UnsubAck, Unsubscribe, UnsubscribeProperties,
    Will, WillProperties, MAX_VARIABLE_INTEGER,
};

use ProtocolVersion::{V3_1, V3_1_1, V5};

const ALL: [ProtocolVersion; 3] = [V3_1, V3_1_1, V5];

/// `bytes` fed to a codec in `version`, expected to fail with `expected`.
fn assert_rejects(version: ProtocolVersion, bytes: &[u8], expected: DecodeError) {
    assert_eq!(
        decode(version, bytes),
        Err(expected),
        "{bytes:02x?} in {version}"
    );
}

/// The property length a 5.0 packet carries; nothing before 5.0.
fn props_in(version: ProtocolVersion, properties: &[u8]) -> Vec<u8> {
    if version.is_v5() {
        props(properties)
    } else {
        assert!(properties.is_empty(), "properties before 5.0");
        Vec::new()
    }
}

/// A PUBLISH: topic, packet id if any, properties (5.0), payload "x".
fn publish(
    version: ProtocolVersion,
    first_byte: u8,
    topic: &[u8],
    packet_id: Option<u16>,
    properties: &[u8],
) -> Vec<u8> {
    let packet_id = packet_id.map_or(Vec::new(), |id| id.to_be_bytes().to_vec());
    let body = [
        field(topic),
        packet_id,
        props_in(version, properties),
        b"x".to_vec(),
    ]
    .concat();
    frame(first_byte, &body)
}

/// A CONNECT in `version` with the given connect flags; `payload` starts at the client id.
fn connect(version: ProtocolVersion, flags: u8, properties: &[u8], payload: &[u8]) -> Vec<u8> {
    let header = [
        field(version.protocol_name().as_bytes()),
        vec![version.level(), flags, 0x00, 0x3C],
        props_in(version, properties),
    ]
    .concat();
    frame(0x10, &[header, payload.to_vec()].concat())
}

/// A CONNECT with the given protocol name and level and nothing else wrong.
fn connect_named(name: &[u8], level: u8) -> Vec<u8> {
    frame(
        0x10,
        &[
            field(name),
            vec![level, 0x02, 0x00, 0x3C, 0x00],
            field(b"c"),
        ]
        .concat(),
    )
}

/// A CONNECT with a will, whose will properties (5.0) and topic are given.
fn connect_with_will(
    version: ProtocolVersion,
    will_properties: &[u8],
    will_topic: &[u8],
) -> Vec<u8> {
    let payload = [
        field(b"c"),
        props_in(version, will_properties),
        field(will_topic),
        field(b"bye"),
    ]
    .concat();
    connect(version, 0x06, &[], &payload)
}

/// A SUBSCRIBE with packet id 1 and the given filter and options entries.
fn subscribe(version: ProtocolVersion, properties: &[u8], entries: &[u8]) -> Vec<u8> {
    let body = [
        vec![0x00, 0x01],
        props_in(version, properties),
        entries.to_vec(),
    ]
    .concat();
    frame(0x82, &body)
}

/// A SUBSCRIBE of one filter with the given options byte.
fn subscribe_one(version: ProtocolVersion, filter: &[u8], options: u8) -> Vec<u8> {
    subscribe(version, &[], &[field(filter), vec![options]].concat())
}

/// An UNSUBSCRIBE with packet id 1 and the given filters (already length-prefixed).
fn unsubscribe(version: ProtocolVersion, properties: &[u8], filters: &[u8]) -> Vec<u8> {
    let body = [
        vec![0x00, 0x01],
        props_in(version, properties),
        filters.to_vec(),
    ]
    .concat();
    frame(0xA2, &body)
}

// ---- fixed header ----

#[test]
fn remaining_length_longer_than_four_bytes_is_malformed() {
    for version in ALL {
        for bytes in [
            &[0x30, 0x80, 0x80, 0x80, 0x80, 0x01][..],
            &[0xC0, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
        ] {
            let mut buf = BytesMut::from(bytes);
            assert_eq!(
                Codec::new(version).decode(&mut buf),
                Err(DecodeError::MalformedRemainingLength)
            );
        }
    }
}

#[test]
fn packet_type_zero_is_reserved() {
    for version in ALL {
        assert_rejects(version, &[0x00, 0x00], DecodeError::ReservedPacketType(0));
    }
}

#[test]
fn auth_packet_type_is_reserved_before_v5() {
    for version in [V3_1, V3_1_1] {
        assert_rejects(version, &[0xF0, 0x00], DecodeError::ReservedPacketType(15));
    }
}

/// Every packet but PUBLISH has fixed flags (0b0010 for PUBREL, SUBSCRIBE and UNSUBSCRIBE,
/// 0 for the rest, and in 3.1 also 0b1010 for the three that 3.1 re-delivers with DUP); each
/// golden packet with any other flags is malformed.
#[test]
fn reserved_fixed_header_flags_must_have_their_fixed_values() {
    let mut checked = 0;
    for case in all() {
        let packet = case.packet.packet_type();
        if packet == PacketType::Publish {
            continue;
        }
        let fixed = case.bytes[0] & 0x0F;
        let redelivered = matches!(
            packet,
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe
        ) && case.version == V3_1;
        let valid = |flags: u8| flags == fixed || (redelivered && flags == fixed | 0x08);
        for flags in (0..16u8).filter(|&flags| !valid(flags)) {
            let mut bytes = case.bytes.clone();
            bytes[0] = bytes[0] & 0xF0 | flags;
            assert_rejects(
                case.version,
                &bytes,
                DecodeError::InvalidHeaderFlags { packet, flags },
            );
            checked += 1;
        }
    }
    assert!(checked > 40 * 15, "checked {checked} flag values");
}

/// 3.1 section 2.1: DUP is set when a PUBLISH, PUBREL, SUBSCRIBE or UNSUBSCRIBE is
/// re-delivered; 3.1.1 made the bit reserved in all but PUBLISH.
#[test]
fn dup_on_pubrel_subscribe_and_unsubscribe_is_accepted_only_in_v31() {
    for (bytes, packet) in [
        (hex("6a 02 0001"), PacketType::PubRel),
        (hex("8a 06 0001 0001 61 01"), PacketType::Subscribe),
        (hex("aa 05 0001 0001 61"), PacketType::Unsubscribe),
    ] {
        let decoded = decode(V3_1, &bytes);
        assert_eq!(decoded.map(|p| p.packet_type()), Ok(packet));
        let flags = bytes[0] & 0x0F;
        assert_rejects(
            V3_1_1,
            &bytes,
            DecodeError::InvalidHeaderFlags { packet, flags },
        );
    }
}

// ---- PUBLISH flags and packet ids ----

#[test]
fn publish_with_qos_3_is_malformed() {
    for version in ALL {
        for first_byte in [0x36, 0x37, 0x3E] {
            let bytes = publish(version, first_byte, b"a/b", Some(1), &[]);
            assert_rejects(version, &bytes, DecodeError::InvalidQoS(3));
        }
    }
}

#[test]
fn dup_flag_on_a_qos_0_publish_is_rejected() {
    for version in ALL {
        let bytes = publish(version, 0x38, b"a/b", None, &[]);
        assert_rejects(version, &bytes, DecodeError::DupWithQoS0);
    }
}

#[test]
fn zero_packet_id_is_rejected_where_one_is_required() {
    for version in ALL {
        let v5 = version.is_v5();
        let mut packets = vec![
            publish(version, 0x32, b"a/b", Some(0), &[]),
            publish(version, 0x34, b"a/b", Some(0), &[]),
            hex("40 02 0000"),
            hex("50 02 0000"),
            hex("62 02 0000"),
            hex("70 02 0000"),
            frame(
                0x82,
                &[vec![0, 0], props_in(version, &[]), field(b"a"), vec![1]].concat(),
            ),
            frame(
                0xA2,
                &[vec![0, 0], props_in(version, &[]), field(b"a")].concat(),
            ),
            frame(
                0x90,
                &[vec![0, 0], props_in(version, &[]), vec![1]].concat(),
            ),
        ];
        packets.push(if v5 {
            hex("b0 04 0000 00 00")
        } else {
            hex("b0 02 0000")
        });
        for bytes in packets {
            assert_rejects(version, &bytes, DecodeError::ZeroPacketId);
        }
    }
}

// ---- strings ----

/// Byte sequences that are not UTF-8: a lone continuation byte, an overlong '/', an encoded
/// surrogate (U+D800), a truncated three-byte sequence, and 0xFF.
const NOT_UTF8: [&[u8]; 5] = [
    &[b'a', 0x80],
    &[0xC0, 0xAF],
    &[0xED, 0xA0, 0x80],
    &[0xE2, 0x82],
    &[0xFF],
];

/// One packet per string field, with `text` in that field.
fn packets_with_string(version: ProtocolVersion, text: &[u8]) -> Vec<Vec<u8>> {
    let mut packets = vec![
        // PUBLISH topic name.
        publish(version, 0x30, text, None, &[]),
        // CONNECT client id, will topic, user name.
        connect(version, 0x02, &[], &field(text)),
        connect_with_will(version, &[], text),
        connect(version, 0x82, &[], &[field(b"c"), field(text)].concat()),
        // SUBSCRIBE and UNSUBSCRIBE topic filters.
        subscribe_one(version, text, 0x00),
        unsubscribe(version, &[], &field(text)),
    ];
    if version.is_v5() {
        // A user property name and value, and a Content Type.
        let user_name = [vec![0x26], field(text), field(b"v")].concat();
        let user_value = [vec![0x26], field(b"k"), field(text)].concat();
        let content_type = [vec![0x03], field(text)].concat();
        packets.push(publish(version, 0x30, b"a/b", None, &user_name));
        packets.push(publish(version, 0x30, b"a/b", None, &user_value));
        packets.push(publish(version, 0x30, b"a/b", None, &content_type));
        // A Reason String in a DISCONNECT.
        let reason = [vec![0x1F], field(text)].concat();
        packets.push(frame(0xE0, &[vec![0x00], props(&reason)].concat()));
    }
    packets
}

#[test]
fn invalid_utf8_is_malformed_in_every_string_field() {
    for version in ALL {
        for text in NOT_UTF8 {
            for bytes in packets_with_string(version, text) {
                assert_rejects(version, &bytes, DecodeError::InvalidUtf8);
            }
        }
    }
}

#[test]
fn null_character_is_malformed_in_every_string_field() {
    for version in ALL {
        for text in [&b"\0"[..], b"a/\0", b"a\0b"] {
            for bytes in packets_with_string(version, text) {
                assert_rejects(version, &bytes, DecodeError::NullCharacter);
            }
        }
    }
}

#[test]
fn non_ascii_utf8_strings_are_accepted() {
    // "é/€/😀": two-, three- and four-byte sequences.
    let text = "é/€/😀".as_bytes();
    for version in ALL {
        for bytes in packets_with_string(version, text) {
            assert!(decode(version, &bytes).is_ok(), "{bytes:02x?} in {version}");
        }
    }
}

#[test]
fn binary_fields_are_not_checked_as_utf8() {
    for version in ALL {
        // A password of 0xFF 0x00.
        let payload = [field(b"c"), field(b"u"), field(&[0xFF, 0x00])].concat();
        let decoded = decode(version, &connect(version, 0xC2, &[], &payload));
        let Ok(Packet::Connect(connect)) = decoded else {
            panic!("expected a CONNECT, got {decoded:?}");
        };
        assert_eq!(connect.password, Some(Bytes::from_static(&[0xFF, 0x00])));
    }
}

// ---- topic names ----

#[test]
fn wildcards_in_publish_topic_names_are_rejected() {
    for version in ALL {
        for name in [&b"a/+"[..], b"#", b"a/b#", b"+x", b"sport/+/player"] {
            let bytes = publish(version, 0x30, name, None, &[]);
            assert_rejects(version, &bytes, DecodeError::WildcardInTopicName);
        }
    }
}

#[test]
fn wildcards_in_will_topics_are_rejected() {
    for version in ALL {
        let bytes = connect_with_will(version, &[], b"will/#");
        assert_rejects(version, &bytes, DecodeError::WildcardInTopicName);
    }
}

#[test]
fn wildcards_in_response_topics_are_rejected() {
    let response_topic = [vec![0x08], field(b"reply/+")].concat();
    let bytes = publish(V5, 0x30, b"a/b", None, &response_topic);
    assert_rejects(V5, &bytes, DecodeError::WildcardInTopicName);
    let bytes = connect_with_will(V5, &response_topic, b"will/t");
    assert_rejects(V5, &bytes, DecodeError::WildcardInTopicName);
}

#[test]
fn empty_topic_name_without_topic_alias_is_rejected() {
    for version in ALL {
        let bytes = publish(version, 0x30, b"", None, &[]);
        assert_rejects(version, &bytes, DecodeError::EmptyTopicName);
        let bytes = connect_with_will(version, &[], b"");
        assert_rejects(version, &bytes, DecodeError::EmptyTopicName);
    }
}

#[test]
fn empty_topic_name_with_topic_alias_is_accepted() {
    let bytes = publish(V5, 0x30, b"", None, &[0x23, 0x00, 0x07]);
    let decoded = decode(V5, &bytes);
    let Ok(Packet::Publish(publish)) = decoded else {
        panic!("expected a PUBLISH, got {decoded:?}");
    };
    assert!(publish.topic.is_empty());
    assert_eq!(publish.properties.topic_alias.map(|a| a.get()), Some(7));
}

#[test]
fn topic_name_constructors_apply_the_same_rules() {
    assert_eq!(TopicName::new(""), Err(DecodeError::EmptyTopicName));
    assert_eq!(TopicName::new("a/+"), Err(DecodeError::WildcardInTopicName));
    assert_eq!(TopicName::new("a\0"), Err(DecodeError::NullCharacter));
    assert_eq!(topic("a/b").levels().collect::<Vec<_>>(), ["a", "b"]);
}

// ---- topic filters ----

/// Filters that break the wildcard rules (4.7.1), and the reason given.
const INVALID_FILTERS: [(&str, &str); 8] = [
    ("a/#/b", "# must be the last level"),
    ("#/a", "# must be the last level"),
    ("a+", "+ must be a whole level"),
    ("a/b+/c", "+ must be a whole level"),
    ("+a", "+ must be a whole level"),
    ("a#", "# must be a whole level"),
    ("a/b#", "# must be a whole level"),
    ("", "empty filter"),
];

/// Shared subscription filters (4.8.2) that are not `$share/{group}/{filter}`.
const INVALID_SHARED_FILTERS: [(&str, &str); 6] = [
    ("$share/g", "$share filter without a filter"),
    ("$share/g/", "$share filter without a filter"),
    ("$share//a", "$share group must be non-empty without + or #"),
    (
        "$share/g+/a",
        "$share group must be non-empty without + or #",
    ),
    (
        "$share/#/a",
        "$share group must be non-empty without + or #",
    ),
    ("$share/g/a/#/b", "# must be the last level"),
];

#[test]
fn invalid_topic_filters_are_rejected_in_subscribe() {
    for version in ALL {
        for (filter, reason) in INVALID_FILTERS {
            let bytes = subscribe_one(version, filter.as_bytes(), 0x01);
            assert_rejects(version, &bytes, DecodeError::InvalidTopicFilter(reason));
        }
    }
    for (filter, reason) in INVALID_SHARED_FILTERS {
        let bytes = subscribe_one(V5, filter.as_bytes(), 0x01);
        assert_rejects(V5, &bytes, DecodeError::InvalidTopicFilter(reason));
    }
}

#[test]
fn invalid_topic_filters_are_rejected_in_unsubscribe() {
    for version in ALL {
        for (filter, reason) in INVALID_FILTERS {
            let bytes = unsubscribe(version, &[], &field(filter.as_bytes()));
            assert_rejects(version, &bytes, DecodeError::InvalidTopicFilter(reason));
        }
    }
    for (filter, reason) in INVALID_SHARED_FILTERS {
        let bytes = unsubscribe(V5, &[], &field(filter.as_bytes()));
        assert_rejects(V5, &bytes, DecodeError::InvalidTopicFilter(reason));
    }
}

#[test]
fn valid_topic_filters_are_accepted() {
    let filters = [
        "#",
        "+",
        "+/+",
        "a/+/b",
        "a/#",
        "+/#",
        "/",
        "//",
        "$SYS/#",
        "a b/c",
        "$share/g/a/+",
        "$share/g/#",
    ];
    for version in ALL {
        for filter in filters {
            let bytes = subscribe_one(version, filter.as_bytes(), 0x01);
            let decoded = decode(version, &bytes);
            let Ok(Packet::Subscribe(subscribe)) = decoded else {
                panic!("{filter:?} in {version}: {decoded:?}");
            };
            assert_eq!(subscribe.filters[0].filter.as_str(), filter);
        }
    }
}

#[test]
fn shared_filters_split_into_group_and_filter() {
    let shared = TopicFilter::new("$share/g/a/+").unwrap();
    assert_eq!(shared.shared(), Some(("g", "a/+")));
    assert!(shared.has_wildcards());
    let plain = TopicFilter::new("$share").unwrap();
    assert_eq!(plain.shared(), None);
    assert!(!TopicFilter::new("$share/g/a").unwrap().has_wildcards());
}

// ---- properties ----

/// Properties that may appear once, each in a packet that allows it.
fn duplicated_properties() -> Vec<(PropertyId, PropertyCarrier)> {
    vec![
        (
            PropertyId::SessionExpiryInterval,
            PropertyCarrier::Connect(hex("11 00000010")),
        ),
        (
            PropertyId::ReceiveMaximum,
            PropertyCarrier::Connect(hex("21 0010")),
        ),
        (
            PropertyId::AuthenticationMethod,
            PropertyCarrier::Connect(hex("15 0001 61")),
        ),
        (
            PropertyId::WillDelayInterval,
            PropertyCarrier::Will(hex("18 00000001")),
        ),
        (
            PropertyId::ResponseTopic,
            PropertyCarrier::Will(hex("08 0001 72")),
        ),
        (
            PropertyId::MaximumQoS,
            PropertyCarrier::ConnAck(hex("24 01")),
        ),
        (
            PropertyId::AssignedClientIdentifier,
            PropertyCarrier::ConnAck(hex("12 0001 63")),
        ),
        (
            PropertyId::MessageExpiryInterval,
            PropertyCarrier::Publish(hex("02 0000001e")),
        ),
        (
            PropertyId::TopicAlias,
            PropertyCarrier::Publish(hex("23 0001")),
        ),
        (
            PropertyId::PayloadFormatIndicator,
            PropertyCarrier::Publish(hex("01 01")),
        ),
        (
            PropertyId::CorrelationData,
            PropertyCarrier::Publish(hex("09 0001 ff")),
        ),
        (
            PropertyId::ReasonString,
            PropertyCarrier::PubAck(hex("1f 0001 72")),
        ),
        (
            PropertyId::SubscriptionIdentifier,
            PropertyCarrier::Subscribe(hex("0b 01")),
        ),
        (
            PropertyId::SessionExpiryInterval,
            PropertyCarrier::Disconnect(hex("11 00000000")),
        ),
        (
            PropertyId::ServerReference,
            PropertyCarrier::Disconnect(hex("1c 0001 73")),
        ),
        (
            PropertyId::AuthenticationData,
            // With a method after it (data needs a method); the second copy of the data is
            // seen before the second copy of the method.
            PropertyCarrier::Auth(hex("16 0001 ff 15 0001 6d")),
        ),
    ]
}

/// A 5.0 packet that carries the properties it holds, which may be repeated.
enum PropertyCarrier {
    Connect(Vec<u8>),
    Will(Vec<u8>),
    ConnAck(Vec<u8>),
    Publish(Vec<u8>),
    PubAck(Vec<u8>),
    Subscribe(Vec<u8>),
    Unsubscribe(Vec<u8>),
    Disconnect(Vec<u8>),
    Auth(Vec<u8>),
}

impl PropertyCarrier {
    /// The packet's bytes, with its properties repeated `times`.
    fn bytes(&self, times: usize) -> Vec<u8> {
        let repeat = |properties: &[u8]| properties.repeat(times);
        match self {
            Self::Connect(p) => connect(V5, 0x02, &repeat(p), &field(b"c")),
            Self::Will(p) => connect_with_will(V5, &repeat(p), b"will/t"),
            Self::ConnAck(p) => frame(0x20, &[vec![0x00, 0x00], props(&repeat(p))].concat()),
            Self::Publish(p) => publish(V5, 0x30, b"a/b", None, &repeat(p)),
            Self::PubAck(p) => frame(0x40, &[vec![0x00, 0x01, 0x10], props(&repeat(p))].concat()),
            Self::Subscribe(p) => subscribe(V5, &repeat(p), &[field(b"a"), vec![0x01]].concat()),
            Self::Unsubscribe(p) => unsubscribe(V5, &repeat(p), &field(b"a")),
            Self::Disconnect(p) => frame(0xE0, &[vec![0x00], props(&repeat(p))].concat()),
            Self::Auth(p) => frame(0xF0, &[vec![0x18], props(&repeat(p))].concat()),
        }
    }
}

#[test]
fn properties_that_may_appear_once_are_accepted_once() {
    for (property, packet) in duplicated_properties() {
        assert!(decode(V5, &packet.bytes(1)).is_ok(), "{property:?} once");
    }
}

#[test]
fn duplicate_properties_are_rejected() {
    for (property, packet) in duplicated_properties() {
        assert_rejects(
            V5,
            &packet.bytes(2),
            DecodeError::DuplicateProperty(property),
        );
    }
}

#[test]
fn user_properties_and_publish_subscription_ids_may_repeat() {
    let users = hex("26 0001 6b 0001 76 26 0001 6b 0001 77");
    for packet in [
        PropertyCarrier::Connect(users.clone()),
        PropertyCarrier::Will(users.clone()),
        PropertyCarrier::ConnAck(users.clone()),
        PropertyCarrier::Publish(users.clone()),
        PropertyCarrier::PubAck(users.clone()),
        PropertyCarrier::Subscribe(users.clone()),
        PropertyCarrier::Unsubscribe(users.clone()),
        PropertyCarrier::Disconnect(users.clone()),
        PropertyCarrier::Auth(users.clone()),
    ] {
        let bytes = packet.bytes(1);
        assert!(decode(V5, &bytes).is_ok(), "{bytes:02x?}");
    }
    let decoded = decode(V5, &PropertyCarrier::Publish(hex("0b 01 0b 02")).bytes(1));
    let Ok(Packet::Publish(publish)) = decoded else {
        panic!("expected a PUBLISH, got {decoded:?}");
    };
    let ids: Vec<u32> = publish
        .properties
        .subscription_identifiers
        .iter()
        .map(|id| id.get())
        .collect();
    assert_eq!(ids, [1, 2]);
}

#[test]
fn properties_not_allowed_in_the_packet_are_rejected() {
    let not_allowed = |property, packet| DecodeError::PropertyNotAllowed { property, packet };
    let cases = [
        (
            PropertyCarrier::Connect(hex("23 0001")),
            not_allowed(PropertyId::TopicAlias, "CONNECT"),
        ),
        (
            PropertyCarrier::Connect(hex("18 00000001")),
            not_allowed(PropertyId::WillDelayInterval, "CONNECT"),
        ),
        (
            PropertyCarrier::Will(hex("11 00000001")),
            not_allowed(PropertyId::SessionExpiryInterval, "will properties"),
        ),
        (
            PropertyCarrier::ConnAck(hex("18 00000001")),
            not_allowed(PropertyId::WillDelayInterval, "CONNACK"),
        ),
        (
            PropertyCarrier::Publish(hex("11 00000001")),
            not_allowed(PropertyId::SessionExpiryInterval, "PUBLISH"),
        ),
        (
            PropertyCarrier::Publish(hex("1f 0001 72")),
            not_allowed(PropertyId::ReasonString, "PUBLISH"),
        ),
        (
            PropertyCarrier::PubAck(hex("03 0001 74")),
            not_allowed(PropertyId::ContentType, "acknowledgement"),
        ),
        (
            PropertyCarrier::Subscribe(hex("23 0001")),
            not_allowed(PropertyId::TopicAlias, "SUBSCRIBE"),
        ),
        (
            PropertyCarrier::Unsubscribe(hex("0b 01")),
            not_allowed(PropertyId::SubscriptionIdentifier, "UNSUBSCRIBE"),
        ),
        (
            PropertyCarrier::Disconnect(hex("21 0001")),
            not_allowed(PropertyId::ReceiveMaximum, "DISCONNECT"),
        ),
        (
            PropertyCarrier::Auth(hex("11 00000001")),
            not_allowed(PropertyId::SessionExpiryInterval, "AUTH"),
        ),
    ];
    for (packet, expected) in cases {
        assert_rejects(V5, &packet.bytes(1), expected);
    }
    // SUBACK and UNSUBACK share the acknowledgement properties.
    let suback = frame(
        0x90,
        &[vec![0x00, 0x01], props(&hex("0b 01")), vec![0x00]].concat(),
    );
    assert_rejects(
        V5,
        &suback,
        not_allowed(PropertyId::SubscriptionIdentifier, "acknowledgement"),
    );
    let unsuback = frame(
        0xB0,
        &[vec![0x00, 0x01], props(&hex("1c 0001 73")), vec![0x00]].concat(),
    );
    assert_rejects(
        V5,
        &unsuback,
        not_allowed(PropertyId::ServerReference, "acknowledgement"),
    );
}

#[test]
fn unknown_property_identifiers_are_malformed() {
    for (identifier, expected) in [
        (hex("00"), 0x00),
        (hex("04"), 0x04),
        (hex("10"), 0x10),
        (hex("2b"), 0x2B),
        (hex("7f"), 0x7F),
        // 0x80 0x01 is the variable byte integer 128.
        (hex("80 01"), 128),
    ] {
        let properties = [identifier, vec![0x00]].concat();
        let bytes = publish(V5, 0x30, b"a/b", None, &properties);
        assert_rejects(V5, &bytes, DecodeError::UnknownProperty(expected));
    }
}

#[test]
fn property_values_out_of_range_are_rejected() {
    let invalid = |property, value| DecodeError::InvalidPropertyValue { property, value };
    let cases = [
        (
            PropertyCarrier::Connect(hex("21 0000")),
            invalid(PropertyId::ReceiveMaximum, 0),
        ),
        (
            PropertyCarrier::Connect(hex("27 00000000")),
            invalid(PropertyId::MaximumPacketSize, 0),
        ),
        (
            PropertyCarrier::Connect(hex("17 02")),
            invalid(PropertyId::RequestProblemInformation, 2),
        ),
        (
            PropertyCarrier::Connect(hex("19 ff")),
            invalid(PropertyId::RequestResponseInformation, 255),
        ),
        (
            PropertyCarrier::ConnAck(hex("24 02")),
            invalid(PropertyId::MaximumQoS, 2),
        ),
        (
            PropertyCarrier::ConnAck(hex("25 02")),
            invalid(PropertyId::RetainAvailable, 2),
        ),
        (
            PropertyCarrier::ConnAck(hex("21 0000")),
            invalid(PropertyId::ReceiveMaximum, 0),
        ),
        (
            PropertyCarrier::ConnAck(hex("2a 05")),
            invalid(PropertyId::SharedSubscriptionAvailable, 5),
        ),
        (
            PropertyCarrier::Publish(hex("23 0000")),
            invalid(PropertyId::TopicAlias, 0),
        ),
        (
            PropertyCarrier::Publish(hex("01 02")),
            invalid(PropertyId::PayloadFormatIndicator, 2),
        ),
        (
            PropertyCarrier::Publish(hex("0b 00")),
            invalid(PropertyId::SubscriptionIdentifier, 0),
        ),
        (
            PropertyCarrier::Subscribe(hex("0b 00")),
            invalid(PropertyId::SubscriptionIdentifier, 0),
        ),
        (
            PropertyCarrier::Will(hex("01 02")),
            invalid(PropertyId::PayloadFormatIndicator, 2),
        ),
    ];
    for (packet, expected) in cases {
        assert_rejects(V5, &packet.bytes(1), expected);
    }
}

#[test]
fn property_length_past_the_end_of_the_packet_is_malformed() {
    // Property length 5 with two bytes left in the packet.
    let bytes = frame(0x30, &[field(b"a/b"), vec![0x05, 0x01, 0x01]].concat());
    assert_rejects(V5, &bytes, DecodeError::Truncated("properties"));
}

#[test]
fn property_value_past_the_end_of_the_properties_is_malformed() {
    // Message Expiry Interval needs four bytes; the property length leaves it two.
    let bytes = publish(V5, 0x30, b"a/b", None, &hex("02 0000"));
    assert_rejects(V5, &bytes, DecodeError::Truncated("property"));
}

#[test]
fn property_length_of_five_bytes_is_malformed() {
    let bytes = frame(0x30, &[field(b"a/b"), hex("ff ff ff ff 01")].concat());
    assert_rejects(V5, &bytes, DecodeError::MalformedVariableInteger);
}

// ---- CONNECT ----

#[test]
fn protocol_level_that_does_not_match_the_name_is_unsupported() {
    let unsupported = |name, level| DecodeError::UnsupportedProtocolVersion { name, level };
    for (name, level, expected) in [
        (&b"MQTT"[..], 3, unsupported("MQTT", 3)),
        (b"MQTT", 6, unsupported("MQTT", 6)),
        (b"MQTT", 0, unsupported("MQTT", 0)),
        (b"MQTT", 0x84, unsupported("MQTT", 0x84)),
        (b"MQIsdp", 4, unsupported("MQIsdp", 4)),
        (b"MQIsdp", 5, unsupported("MQIsdp", 5)),
    ] {
        for version in ALL {
            assert_rejects(version, &connect_named(name, level), expected.clone());
        }
    }
}

#[test]
fn protocol_name_other_than_mqtt_or_mqisdp_is_invalid() {
    for name in [&b"MQTX"[..], b"mqtt", b"MQTT ", b"MQIsdP", b"", b"HTTP"] {
        for level in [3, 4, 5] {
            assert_rejects(
                V5,
                &connect_named(name, level),
                DecodeError::InvalidProtocolName,
            );
        }
    }
}

#[test]
fn reserved_connect_flag_is_malformed() {
    for version in ALL {
        let bytes = connect(version, 0x03, &[], &field(b"c"));
        assert_rejects(version, &bytes, DecodeError::ReservedConnectFlag);
    }
}

#[test]
fn will_qos_or_retain_without_the_will_flag_is_rejected() {
    // Clean start plus will QoS 1, will QoS 2, will retain.
    for flags in [0x0A, 0x12, 0x22, 0x2A] {
        for version in ALL {
            let bytes = connect(version, flags, &[], &field(b"c"));
            assert_rejects(version, &bytes, DecodeError::InconsistentWillFlags);
        }
    }
}

#[test]
fn will_qos_3_is_malformed() {
    for version in ALL {
        let payload = [
            field(b"c"),
            props_in(version, &[]),
            field(b"t"),
            field(b"x"),
        ]
        .concat();
        let bytes = connect(version, 0x1E, &[], &payload);
        assert_rejects(version, &bytes, DecodeError::InvalidQoS(3));
    }
}

#[test]
fn password_without_user_name_is_rejected_before_v5() {
    let payload = [field(b"c"), field(b"secret")].concat();
    for version in [V3_1, V3_1_1] {
        let bytes = connect(version, 0x42, &[], &payload);
        assert_rejects(version, &bytes, DecodeError::PasswordWithoutUsername);
    }
}

#[test]
fn password_without_user_name_is_accepted_in_v5() {
    let payload = [field(b"c"), field(b"secret")].concat();
    let decoded = decode(V5, &connect(V5, 0x42, &[], &payload));
    let Ok(Packet::Connect(connect)) = decoded else {
        panic!("expected a CONNECT, got {decoded:?}");
    };
    assert_eq!(connect.username, None);
    assert_eq!(connect.password, Some(Bytes::from_static(b"secret")));
}

#[test]
fn connect_missing_its_client_id_is_malformed() {
    for version in ALL {
        let bytes = connect(version, 0x02, &[], &[]);
        assert_rejects(version, &bytes, DecodeError::Truncated("client identifier"));
    }
}

#[test]
fn connect_missing_a_flagged_user_name_is_malformed() {
    for version in ALL {
        let bytes = connect(version, 0x82, &[], &field(b"c"));
        assert_rejects(version, &bytes, DecodeError::Truncated("user name"));
    }
}

// ---- SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK ----

#[test]
fn subscribe_without_filters_is_rejected() {
    for version in ALL {
        assert_rejects(
            version,
            &subscribe(version, &[], &[]),
            DecodeError::EmptyPayload(PacketType::Subscribe),
        );
    }
}

#[test]
fn unsubscribe_without_filters_is_rejected() {
    for version in ALL {
        assert_rejects(
            version,
            &unsubscribe(version, &[], &[]),
            DecodeError::EmptyPayload(PacketType::Unsubscribe),
        );
    }
}

#[test]
fn suback_without_reason_codes_is_rejected() {
    for version in ALL {
        let bytes = frame(0x90, &[vec![0x00, 0x01], props_in(version, &[])].concat());
        assert_rejects(
            version,
            &bytes,
            DecodeError::EmptyPayload(PacketType::SubAck),
        );
    }
}

#[test]
fn v5_unsuback_without_reason_codes_is_rejected() {
    assert_rejects(
        V5,
        &hex("b0 03 0001 00"),
        DecodeError::EmptyPayload(PacketType::UnsubAck),
    );
}

#[test]
fn subscribe_filter_without_its_options_byte_is_malformed() {
    for version in ALL {
        let bytes = subscribe(version, &[], &field(b"a/b"));
        assert_rejects(
            version,
            &bytes,
            DecodeError::Truncated("subscription options"),
        );
    }
}

#[test]
fn reserved_subscription_option_bits_are_malformed() {
    // 5.0 reserves bits 6 and 7 (3.8.3.1); 3.x reserves bits 2 to 7 (3.1.1 section 3.8.3).
    for (version, options) in [
        (V5, 0x40),
        (V5, 0x80),
        (V5, 0xC1),
        (V3_1_1, 0x04),
        (V3_1_1, 0x08),
        (V3_1_1, 0x10),
        (V3_1_1, 0x80),
        (V3_1, 0x20),
    ] {
        let bytes = subscribe_one(version, b"a/b", options);
        assert_rejects(
            version,
            &bytes,
            DecodeError::ReservedSubscriptionOptionBits(options),
        );
    }
}

#[test]
fn subscription_maximum_qos_3_is_rejected() {
    for version in ALL {
        let bytes = subscribe_one(version, b"a/b", 0x03);
        assert_rejects(
            version,
            &bytes,
            DecodeError::InvalidSubscriptionOptions(0x03),
        );
    }
}

#[test]
fn retain_handling_3_is_rejected() {
    let bytes = subscribe_one(V5, b"a/b", 0x31);
    assert_rejects(V5, &bytes, DecodeError::InvalidSubscriptionOptions(0x31));
}

#[test]
fn no_local_on_a_shared_subscription_is_rejected() {
    let bytes = subscribe_one(V5, b"$share/g/a", 0x05);
    assert_rejects(V5, &bytes, DecodeError::InvalidSubscriptionOptions(0x05));
    // No Local on an ordinary subscription is fine.
    assert!(decode(V5, &subscribe_one(V5, b"a", 0x05)).is_ok());
}

// ---- reason codes ----

#[test]
fn reason_codes_not_allowed_in_the_packet_are_rejected() {
    let invalid = |packet, code| DecodeError::InvalidReasonCode { packet, code };
    for (version, bytes, expected) in [
        (
            V5,
            hex("20 03 00 04 00"),
            invalid(PacketType::ConnAck, 0x04),
        ),
        (
            V5,
            hex("20 03 00 8e 00"),
            invalid(PacketType::ConnAck, 0x8E),
        ),
        (
            V3_1_1,
            hex("20 02 00 06"),
            invalid(PacketType::ConnAck, 0x06),
        ),
        (V3_1, hex("20 02 00 80"), invalid(PacketType::ConnAck, 0x80)),
        (V5, hex("40 03 0001 92"), invalid(PacketType::PubAck, 0x92)),
        (V5, hex("50 03 0001 11"), invalid(PacketType::PubRec, 0x11)),
        (V5, hex("62 03 0001 10"), invalid(PacketType::PubRel, 0x10)),
        (V5, hex("70 03 0001 80"), invalid(PacketType::PubComp, 0x80)),
        (
            V5,
            hex("90 04 0001 00 03"),
            invalid(PacketType::SubAck, 0x03),
        ),
        (
            V3_1_1,
            hex("90 03 0001 87"),
            invalid(PacketType::SubAck, 0x87),
        ),
        (
            V3_1_1,
            hex("90 03 0001 03"),
            invalid(PacketType::SubAck, 0x03),
        ),
        (
            V5,
            hex("b0 04 0001 00 02"),
            invalid(PacketType::UnsubAck, 0x02),
        ),
        (V5, hex("e0 01 01"), invalid(PacketType::Disconnect, 0x01)),
        (V5, hex("e0 01 92"), invalid(PacketType::Disconnect, 0x92)),
        (V5, hex("f0 01 01"), invalid(PacketType::Auth, 0x01)),
    ] {
        assert_rejects(version, &bytes, expected);
    }
}

/// 3.1 section 3.2: the first byte of the variable header is unused, so there is no Session
/// Present to send or to read.
#[test]
fn v31_connack_has_no_session_present_flag() {
    let connack = Packet::ConnAck(crate::protocol::ConnAck {
        session_present: true,
        ..Default::default()
    });
    assert_eq!(super::encode(V3_1, &connack), hex("20 02 00 00"));
    assert_eq!(super::encode(V3_1_1, &connack), hex("20 02 01 00"));
    for byte in [0x01, 0xFF] {
        let decoded = decode(V3_1, &[0x20, 0x02, byte, 0x00]);
        let Ok(Packet::ConnAck(connack)) = decoded else {
            panic!("expected a CONNACK, got {decoded:?}");
        };
        assert!(!connack.session_present);
    }
}

#[test]
fn reserved_connack_flags_are_malformed() {
    assert_rejects(
        V3_1_1,
        &hex("20 02 02 00"),
        DecodeError::ReservedConnAckFlags,
    );
    assert_rejects(
        V5,
        &hex("20 03 80 00 00"),
        DecodeError::ReservedConnAckFlags,
    );
}

#[test]
fn a_refused_connack_with_session_present_is_a_protocol_error() {
    assert_rejects(
        V3_1_1,
        &hex("20 02 01 05"),
        DecodeError::SessionPresentOnFailure,
    );
    assert_rejects(
        V5,
        &hex("20 03 01 87 00"),
        DecodeError::SessionPresentOnFailure,
    );
}

#[test]
fn authentication_data_without_a_method_is_a_protocol_error() {
    let data_only = [0x16, 0x00, 0x01, 0xAA];
    let connect = connect(V5, 0x02, &data_only, &field(b"c"));
    assert_rejects(V5, &connect, DecodeError::AuthenticationDataWithoutMethod);
    let connack = frame(0x20, &[vec![0x00, 0x00], props(&data_only)].concat());
    assert_rejects(V5, &connack, DecodeError::AuthenticationDataWithoutMethod);
    let auth = frame(0xF0, &[vec![0x18], props(&data_only)].concat());
    assert_rejects(V5, &auth, DecodeError::AuthenticationDataWithoutMethod);
    // With a method the same data is fine.
    let with_method = [&[0x15, 0x00, 0x01, b'm'][..], &data_only].concat();
    let auth = frame(0xF0, &[vec![0x18], props(&with_method)].concat());
    assert!(matches!(decode(V5, &auth), Ok(Packet::Auth(_))));
}

// ---- lengths ----

#[test]
fn bytes_after_the_last_field_are_malformed() {
    for (version, bytes, extra) in [
        (V3_1_1, hex("c0 01 00"), 1),
        (V3_1_1, hex("d0 01 00"), 1),
        (V3_1_1, hex("e0 01 00"), 1),
        (V3_1, hex("e0 02 0000"), 2),
        (V3_1_1, hex("40 03 0001 00"), 1),
        (V3_1_1, hex("20 03 00 00 00"), 1),
        (V3_1_1, hex("b0 03 0002 00"), 1),
        (V5, hex("40 05 0001 10 00 00"), 1),
        (V5, hex("e0 03 00 00 00"), 1),
        (V5, hex("20 04 00 00 00 00"), 1),
    ] {
        assert_rejects(version, &bytes, DecodeError::TrailingBytes(extra));
    }
    // A CONNECT whose remaining length covers one byte more than its last field.
    let mut connect = [connect(V3_1_1, 0x02, &[], &field(b"c")), vec![0x00]].concat();
    connect[1] += 1;
    assert_rejects(V3_1_1, &connect, DecodeError::TrailingBytes(1));
}

#[test]
fn fields_running_past_the_end_of_the_packet_are_malformed() {
    for (version, bytes, field_name) in [
        (V3_1_1, hex("30 03 0005 61"), "topic name"),
        (V3_1_1, hex("32 04 0001 61 00"), "packet identifier"),
        (V3_1_1, hex("40 01 00"), "packet identifier"),
        (V5, hex("20 02 00 00"), "property length"),
        (V5, hex("90 02 0001"), "property length"),
        (V3_1_1, hex("20 01 00"), "connect reason code"),
        (V3_1_1, hex("10 03 0004 4d"), "protocol name"),
    ] {
        assert_rejects(version, &bytes, DecodeError::Truncated(field_name));
    }
}

// ---- what a caller may not encode ----

/// Encodes into a buffer that already holds a byte, and checks that a failure leaves it alone.
fn encode_err(version: ProtocolVersion, packet: &Packet) -> EncodeError {
    let mut buf = BytesMut::from(&[0xAA][..]);
    let err = Codec::new(version).encode(packet, &mut buf).unwrap_err();
    assert_eq!(&buf[..], &[0xAA], "nothing is written when encoding fails");
    err
}

fn plain_publish(qos: QoS, packet_id: Option<u16>, payload: Bytes) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic("a"),
        packet_id: packet_id.map(pid),
        properties: PublishProperties::default(),
        payload,
    }
}

#[test]
fn publish_packet_id_must_match_its_qos_to_be_encoded() {
    for version in ALL {
        for (qos, packet_id, has_id) in [
            (QoS::AtMostOnce, Some(1), true),
            (QoS::AtLeastOnce, None, false),
            (QoS::ExactlyOnce, None, false),
        ] {
            let publish = plain_publish(qos, packet_id, Bytes::new());
            let expected = EncodeError::PacketIdMismatch {
                qos: qos.as_u8(),
                has_id,
            };
            assert_eq!(
                encode_err(version, &Packet::Publish(publish.clone())),
                expected
            );
            let mut buf = BytesMut::new();
            assert_eq!(publish.encode_header(version, &mut buf), Err(expected));
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn publish_with_an_empty_topic_needs_a_topic_alias_to_be_encoded() {
    let mut publish = plain_publish(QoS::AtMostOnce, None, Bytes::from_static(b"x"));
    publish.topic = TopicName::empty();
    for version in ALL {
        assert_eq!(
            encode_err(version, &Packet::Publish(publish.clone())),
            EncodeError::EmptyTopicWithoutAlias
        );
    }
    // 3.x has no aliases, so an alias does not help there; in 5.0 it does.
    publish.properties.topic_alias = std::num::NonZeroU16::new(3);
    assert_eq!(
        encode_err(V3_1_1, &Packet::Publish(publish.clone())),
        EncodeError::EmptyTopicWithoutAlias
    );
    let bytes = encode(V5, &Packet::Publish(publish.clone()));
    assert_eq!(decode(V5, &bytes), Ok(Packet::Publish(publish)));
}

#[test]
fn auth_cannot_be_encoded_before_v5() {
    for version in [V3_1, V3_1_1] {
        assert_eq!(
            encode_err(version, &Packet::Auth(Auth::default())),
            EncodeError::NotInVersion {
                packet: PacketType::Auth,
                version
            }
        );
    }
}

fn minimal_connect(protocol: ProtocolVersion) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 0,
        client_id: crate::protocol::ClientId::default(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

#[test]
fn password_without_user_name_cannot_be_encoded_before_v5() {
    for protocol in [V3_1, V3_1_1] {
        let connect = Connect {
            password: Some(Bytes::from_static(b"secret")),
            ..minimal_connect(protocol)
        };
        assert_eq!(
            encode_err(protocol, &Packet::Connect(Box::new(connect))),
            EncodeError::PasswordWithoutUsername
        );
    }
}

#[test]
fn empty_subscribe_unsubscribe_and_acks_cannot_be_encoded() {
    let subscribe = Subscribe {
        packet_id: pid(1),
        properties: SubscribeProperties::default(),
        filters: Vec::new(),
    };
    let unsubscribe = Unsubscribe {
        packet_id: pid(1),
        properties: UnsubscribeProperties::default(),
        filters: Vec::new(),
    };
    let suback = SubAck {
        packet_id: pid(1),
        properties: Default::default(),
        reason_codes: Vec::new(),
    };
    let unsuback = UnsubAck {
        packet_id: pid(1),
        properties: Default::default(),
        reason_codes: Vec::new(),
    };
    for version in ALL {
        assert_eq!(
            encode_err(version, &Packet::Subscribe(subscribe.clone())),
            EncodeError::EmptyPayload(PacketType::Subscribe)
        );
        assert_eq!(
            encode_err(version, &Packet::Unsubscribe(unsubscribe.clone())),
            EncodeError::EmptyPayload(PacketType::Unsubscribe)
        );
        assert_eq!(
            encode_err(version, &Packet::SubAck(suback.clone())),
            EncodeError::EmptyPayload(PacketType::SubAck)
        );
    }
    assert_eq!(
        encode_err(V5, &Packet::UnsubAck(unsuback.clone())),
        EncodeError::EmptyPayload(PacketType::UnsubAck)
    );
    // A 3.x UNSUBACK has no reason codes at all.
    assert_eq!(
        super::encode(V3_1_1, &Packet::UnsubAck(unsuback)),
        hex("b0 02 0001")
    );
}

#[test]
fn binary_fields_longer_than_65535_bytes_cannot_be_encoded() {
    let too_long = Bytes::from(vec![0u8; 65_536]);
    let will = Will {
        topic: topic("w"),
        payload: too_long.clone(),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: WillProperties::default(),
    };
    for protocol in ALL {
        let connect = Connect {
            will: Some(will.clone()),
            ..minimal_connect(protocol)
        };
        assert_eq!(
            encode_err(protocol, &Packet::Connect(Box::new(connect))),
            EncodeError::FieldTooLong("will payload")
        );
        let connect = Connect {
            username: Some(string("u")),
            password: Some(too_long.clone()),
            ..minimal_connect(protocol)
        };
        assert_eq!(
            encode_err(protocol, &Packet::Connect(Box::new(connect))),
            EncodeError::FieldTooLong("password")
        );
    }
    let mut publish = plain_publish(QoS::AtMostOnce, None, Bytes::new());
    publish.properties.correlation_data = Some(too_long.clone());
    assert_eq!(
        encode_err(V5, &Packet::Publish(publish)),
        EncodeError::FieldTooLong("binary property")
    );
    let auth = Auth {
        properties: AuthProperties {
            authentication_data: Some(too_long),
            ..AuthProperties::default()
        },
        ..Auth::default()
    };
    assert_eq!(
        encode_err(V5, &Packet::Auth(auth)),
        EncodeError::FieldTooLong("binary property")
    );
    // Exactly 65,535 bytes fit.
    let mut publish = plain_publish(QoS::AtMostOnce, None, Bytes::new());
    publish.properties.correlation_data = Some(Bytes::from(vec![0u8; 65_535]));
    let bytes = super::encode(V5, &Packet::Publish(publish.clone()));
    assert_eq!(decode(V5, &bytes), Ok(Packet::Publish(publish)));
}

#[test]
fn packet_larger_than_mqtt_can_frame_cannot_be_encoded() {
    // "a" takes three bytes, so this payload makes the remaining length one too many. The
    // zeroed allocation is never touched: encoding fails before reading the payload.
    let max = MAX_VARIABLE_INTEGER as usize;
    let payload = Bytes::from(vec![0u8; max - 2]);
    let publish = plain_publish(QoS::AtMostOnce, None, payload);
    let expected = EncodeError::PacketTooLarge { size: max + 1, max };
    assert_eq!(
        encode_err(V3_1_1, &Packet::Publish(publish.clone())),
        expected
    );
    let mut buf = BytesMut::new();
    assert_eq!(publish.encode_header(V3_1_1, &mut buf), Err(expected));
    assert!(buf.is_empty());
}
