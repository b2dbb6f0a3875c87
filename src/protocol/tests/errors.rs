//! The reason code every decode error closes the connection with (MQTT 5), and the CONNACK
//! return code it gets first in 3.1 and 3.1.1, checked against the spec section that says so.
//!
//! `variant_index` has no wildcard arm, so a new `DecodeError` variant does not compile here
//! until it has a row in `cases()`, and the coverage test fails until it does.

use super::super::reason::allowed;
use crate::protocol::{DecodeError, PacketType, PropertyId, ReasonCode};

/// Number of `DecodeError` variants.
const VARIANTS: usize = 32;

fn variant_index(err: &DecodeError) -> usize {
    use DecodeError::*;
    match err {
        MalformedRemainingLength => 0,
        MalformedVariableInteger => 1,
        PacketTooLarge { .. } => 2,
        ReservedPacketType(_) => 3,
        InvalidHeaderFlags { .. } => 4,
        InvalidQoS(_) => 5,
        DupWithQoS0 => 6,
        Truncated(_) => 7,
        TrailingBytes(_) => 8,
        InvalidUtf8 => 9,
        NullCharacter => 10,
        StringTooLong(_) => 11,
        EmptyTopicName => 12,
        WildcardInTopicName => 13,
        InvalidTopicFilter(_) => 14,
        UnknownProperty(_) => 15,
        PropertyNotAllowed { .. } => 16,
        DuplicateProperty(_) => 17,
        InvalidPropertyValue { .. } => 18,
        ZeroPacketId => 19,
        InvalidProtocolName => 20,
        UnsupportedProtocolVersion { .. } => 21,
        ReservedConnectFlag => 22,
        InconsistentWillFlags => 23,
        PasswordWithoutUsername => 24,
        EmptyPayload(_) => 25,
        InvalidSubscriptionOptions(_) => 26,
        ReservedSubscriptionOptionBits(_) => 27,
        InvalidReasonCode { .. } => 28,
        ReservedConnAckFlags => 29,
        SessionPresentOnFailure => 30,
        AuthenticationDataWithoutMethod => 31,
    }
}

const MALFORMED: ReasonCode = ReasonCode::MALFORMED_PACKET;
const PROTOCOL: ReasonCode = ReasonCode::PROTOCOL_ERROR;

/// Each error, the 5.0 reason code the spec asks for (section in the comment), and the 3.x
/// CONNACK return code sent before closing, if any.
fn cases() -> Vec<(DecodeError, ReasonCode, Option<u8>)> {
    vec![
        // 1.5.5: more than four bytes is a Malformed Packet.
        (DecodeError::MalformedRemainingLength, MALFORMED, None),
        (DecodeError::MalformedVariableInteger, MALFORMED, None),
        // 3.2.2.3.6 and 4.13: 0x95 Packet too large.
        (
            DecodeError::PacketTooLarge {
                size: 2000,
                max: 1024,
            },
            ReasonCode::PACKET_TOO_LARGE,
            None,
        ),
        // 2.1.2: packet type 0 is reserved (forbidden).
        (DecodeError::ReservedPacketType(0), MALFORMED, None),
        // 2.1.3: "If invalid flags are received it is a Malformed Packet".
        (
            DecodeError::InvalidHeaderFlags {
                packet: PacketType::Subscribe,
                flags: 0,
            },
            MALFORMED,
            None,
        ),
        // 3.3.1.2: both QoS bits set is a Malformed Packet; 3.1.2.6 the same for the will.
        (DecodeError::InvalidQoS(3), MALFORMED, None),
        // 3.3.1.1 [MQTT-3.3.1-2]: DUP MUST be 0 for QoS 0.
        (DecodeError::DupWithQoS0, PROTOCOL, None),
        // 4.13.1: a packet that cannot be parsed is a Malformed Packet.
        (DecodeError::Truncated("topic name"), MALFORMED, None),
        (DecodeError::TrailingBytes(1), MALFORMED, None),
        // 1.5.4 [MQTT-1.5.4-1], [MQTT-1.5.4-2].
        (DecodeError::InvalidUtf8, MALFORMED, None),
        (DecodeError::NullCharacter, MALFORMED, None),
        (DecodeError::StringTooLong(70_000), MALFORMED, None),
        // 3.3.2.1: "It is a Protocol Error if the Topic Name is zero length and there is no
        // Topic Alias".
        (DecodeError::EmptyTopicName, PROTOCOL, None),
        // 3.3.2.1 [MQTT-3.3.2-2]: 0x90 Topic Name invalid.
        (
            DecodeError::WildcardInTopicName,
            ReasonCode::TOPIC_NAME_INVALID,
            None,
        ),
        // 4.7.1: 0x8F Topic Filter invalid.
        (
            DecodeError::InvalidTopicFilter("# must be the last level"),
            ReasonCode::TOPIC_FILTER_INVALID,
            None,
        ),
        // 2.2.2.2: an identifier not valid for the packet type is a Malformed Packet.
        (DecodeError::UnknownProperty(0x7F), MALFORMED, None),
        (
            DecodeError::PropertyNotAllowed {
                property: PropertyId::TopicAlias,
                packet: "CONNECT",
            },
            MALFORMED,
            None,
        ),
        // 3.1.2.11.2, and the same sentence for every other property: "It is a Protocol
        // Error to include the Session Expiry Interval more than once".
        (
            DecodeError::DuplicateProperty(PropertyId::SessionExpiryInterval),
            PROTOCOL,
            None,
        ),
        // 3.1.2.11.3: "It is a Protocol Error ... for it to have the value 0".
        (
            DecodeError::InvalidPropertyValue {
                property: PropertyId::ReceiveMaximum,
                value: 0,
            },
            PROTOCOL,
            None,
        ),
        // 2.2.1 [MQTT-2.2.1-3]: a non-zero packet identifier is required.
        (DecodeError::ZeroPacketId, PROTOCOL, None),
        // 3.1.2.1 and 3.1.2.2: the server MAY answer 0x84 Unsupported Protocol Version; 3.1.1
        // only asks for return code 1 on a bad level, and lets a bad name just close.
        (
            DecodeError::InvalidProtocolName,
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            None,
        ),
        (
            DecodeError::UnsupportedProtocolVersion {
                name: "MQTT",
                level: 6,
            },
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            Some(1),
        ),
        // 3.1.2.3 [MQTT-3.1.2-3]: a reserved flag that is not 0 is a Malformed Packet.
        (DecodeError::ReservedConnectFlag, MALFORMED, None),
        // 3.1.2.6 [MQTT-3.1.2-11], 3.1.2.7 [MQTT-3.1.2-13].
        (DecodeError::InconsistentWillFlags, MALFORMED, None),
        // 3.1.1 section 3.1.2.9 [MQTT-3.1.2-22]: 3.x only, where there are no reason codes.
        (DecodeError::PasswordWithoutUsername, MALFORMED, None),
        // 3.8.3 and 3.10.3: "A SUBSCRIBE packet with no Payload is a Protocol Error".
        (
            DecodeError::EmptyPayload(PacketType::Subscribe),
            PROTOCOL,
            None,
        ),
        // 3.8.3.1: Maximum QoS 3, Retain Handling 3 and No Local on a shared subscription
        // are Protocol Errors ...
        (
            DecodeError::InvalidSubscriptionOptions(0x31),
            PROTOCOL,
            None,
        ),
        // ... while reserved bits that are not 0 make it malformed [MQTT-3.8.3-5].
        (
            DecodeError::ReservedSubscriptionOptionBits(0x40),
            MALFORMED,
            None,
        ),
        (
            DecodeError::InvalidReasonCode {
                packet: PacketType::PubRel,
                code: 0x10,
            },
            PROTOCOL,
            None,
        ),
        // 3.2.2.1: reserved acknowledge flags.
        (DecodeError::ReservedConnAckFlags, MALFORMED, None),
        // 3.2.2.1.1 [MQTT-3.2.2-6]: Session Present must be 0 with a failure code.
        (DecodeError::SessionPresentOnFailure, PROTOCOL, None),
        // 3.1.2.11.10, 3.2.2.3.18, 3.15.2.2.3: data without a method is a Protocol Error.
        (DecodeError::AuthenticationDataWithoutMethod, PROTOCOL, None),
    ]
}

#[test]
fn every_decode_error_variant_has_a_reason_code_case() {
    let mut covered = [false; VARIANTS];
    for (err, _, _) in cases() {
        covered[variant_index(&err)] = true;
    }
    let missing: Vec<usize> = (0..VARIANTS).filter(|&i| !covered[i]).collect();
    assert_eq!(missing, Vec::<usize>::new(), "variants without a case");
}

#[test]
fn every_decode_error_maps_to_the_reason_code_the_spec_asks_for() {
    for (err, expected, _) in cases() {
        assert_eq!(err.reason_code(), expected, "{err}");
    }
}

#[test]
fn only_an_unsupported_protocol_level_gets_a_v3_connack_return_code() {
    for (err, _, expected) in cases() {
        assert_eq!(err.v3_connack_return_code(), expected, "{err}");
    }
    let mqisdp = DecodeError::UnsupportedProtocolVersion {
        name: "MQIsdp",
        level: 4,
    };
    assert_eq!(mqisdp.v3_connack_return_code(), Some(1));
}

#[test]
fn topic_alias_of_zero_maps_to_topic_alias_invalid() {
    // 3.3.4: "A Topic Alias value of 0 or greater than the Maximum Topic Alias is a Protocol
    // Error, the receiver uses DISCONNECT with Reason Code of 0x94 (Topic Alias invalid)".
    let err = DecodeError::InvalidPropertyValue {
        property: PropertyId::TopicAlias,
        value: 0,
    };
    assert_eq!(err.reason_code(), ReasonCode::TOPIC_ALIAS_INVALID);
}

/// Errors only a CONNECT can cause are answered in a CONNACK; every other one closes the
/// connection with a DISCONNECT, so its code must be one DISCONNECT may carry.
#[test]
fn every_mapped_reason_code_may_be_sent_in_a_disconnect_or_connack() {
    for (err, _, _) in cases() {
        let code = err.reason_code();
        let allowed = match err {
            DecodeError::InvalidProtocolName | DecodeError::UnsupportedProtocolVersion { .. } => {
                allowed::CONNACK
            }
            _ => allowed::DISCONNECT,
        };
        assert!(allowed.contains(&code.0), "{err} maps to {code}");
    }
}

#[test]
fn errors_a_connect_can_cause_may_be_sent_in_a_connack() {
    let connect_errors = [
        DecodeError::MalformedRemainingLength,
        DecodeError::PacketTooLarge { size: 10, max: 5 },
        DecodeError::InvalidHeaderFlags {
            packet: PacketType::Connect,
            flags: 1,
        },
        DecodeError::InvalidQoS(3),
        DecodeError::InvalidUtf8,
        DecodeError::EmptyTopicName,
        DecodeError::WildcardInTopicName,
        DecodeError::DuplicateProperty(PropertyId::ReceiveMaximum),
        DecodeError::InvalidProtocolName,
        DecodeError::UnsupportedProtocolVersion {
            name: "MQTT",
            level: 7,
        },
        DecodeError::ReservedConnectFlag,
        DecodeError::InconsistentWillFlags,
    ];
    for err in connect_errors {
        let code = err.reason_code();
        assert!(allowed::CONNACK.contains(&code.0), "{err} maps to {code}");
    }
}

#[test]
fn v3_connack_return_codes_map_to_reason_codes_and_back() {
    for code in 0..=5u8 {
        let reason = ReasonCode::from_v3_connack(code).unwrap();
        assert_eq!(reason.to_v3_connack(), code);
        assert_eq!(reason.is_success(), code == 0);
    }
    for code in 6..=255u8 {
        assert_eq!(ReasonCode::from_v3_connack(code), None);
    }
    // 5.0 refusals without a 3.x equivalent fall back to the closest 3.x code.
    assert_eq!(ReasonCode::BANNED.to_v3_connack(), 5);
    assert_eq!(ReasonCode::BAD_AUTHENTICATION_METHOD.to_v3_connack(), 4);
    assert_eq!(ReasonCode::SERVER_BUSY.to_v3_connack(), 3);
    assert_eq!(ReasonCode::MALFORMED_PACKET.to_v3_connack(), 3);
}

#[test]
fn v3_suback_return_codes_are_the_granted_qos_or_0x80() {
    for (reason, v3) in [
        (ReasonCode::GRANTED_QOS_0, 0x00),
        (ReasonCode::GRANTED_QOS_1, 0x01),
        (ReasonCode::GRANTED_QOS_2, 0x02),
        (ReasonCode::UNSPECIFIED_ERROR, 0x80),
        (ReasonCode::NOT_AUTHORIZED, 0x80),
        (ReasonCode::QUOTA_EXCEEDED, 0x80),
        (ReasonCode::TOPIC_FILTER_INVALID, 0x80),
    ] {
        assert_eq!(reason.to_v3_suback(), v3, "{reason}");
    }
}

#[test]
fn reason_codes_print_their_spec_names() {
    assert_eq!(ReasonCode::SUCCESS.to_string(), "0x00 (Success)");
    assert_eq!(
        format!("{:?}", ReasonCode::TOPIC_ALIAS_INVALID),
        "0x94 (Topic Alias invalid)"
    );
    assert_eq!(ReasonCode(0x05).name(), "Unknown reason code");
}
