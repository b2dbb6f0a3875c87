//! Codec errors. Every decode error names what was wrong and maps to the MQTT 5 reason code the
//! server sends before closing (in a CONNACK if the connection is not yet accepted, else in a
//! DISCONNECT). For 3.1 and 3.1.1, which have no reason codes, the spec asks the server to close
//! the connection; only an unacceptable protocol level gets CONNACK return code 1 first.

use thiserror::Error;

use super::property::PropertyId;
use super::reason::ReasonCode;
use super::PacketType;

/// Why bytes from the network are not a valid MQTT packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The remaining length used more than four bytes.
    #[error("malformed remaining length: more than four bytes")]
    MalformedRemainingLength,
    /// A variable byte integer inside the packet used more than four bytes.
    #[error("malformed variable byte integer")]
    MalformedVariableInteger,
    /// The packet is bigger than the configured maximum.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge {
        /// Total size of the packet in bytes, fixed header included.
        size: usize,
        /// The limit in force.
        max: u32,
    },
    /// Packet type 0, or 15 (AUTH) outside MQTT 5.
    #[error("reserved packet type {0}")]
    ReservedPacketType(u8),
    /// The low four bits of the first byte are not what the packet type requires.
    #[error("invalid fixed header flags {flags:#06b} for {packet:?}")]
    InvalidHeaderFlags {
        /// The packet type.
        packet: PacketType,
        /// The flag bits received.
        flags: u8,
    },
    /// QoS 3.
    #[error("invalid QoS {0}")]
    InvalidQoS(u8),
    /// A QoS 0 PUBLISH with the DUP flag set.
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupWithQoS0,
    /// A field runs past the end of the packet.
    #[error("packet ends inside {0}")]
    Truncated(&'static str),
    /// Bytes left over after the last field of the packet.
    #[error("{0} unexpected bytes after the end of the packet")]
    TrailingBytes(usize),
    /// A string is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A string contains U+0000.
    #[error("string contains U+0000")]
    NullCharacter,
    /// A string or binary value is longer than 65,535 bytes (only possible when encoding).
    #[error("string of {0} bytes exceeds 65,535")]
    StringTooLong(usize),
    /// A PUBLISH names an empty topic without a topic alias.
    #[error("empty topic name")]
    EmptyTopicName,
    /// A topic name contains `+` or `#`.
    #[error("topic name contains a wildcard")]
    WildcardInTopicName,
    /// A topic filter breaks the wildcard rules.
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(&'static str),
    /// A property identifier the spec does not define.
    #[error("unknown property identifier {0:#04x}")]
    UnknownProperty(u32),
    /// A property that this packet may not carry.
    #[error("property {property:?} is not allowed in {packet}")]
    PropertyNotAllowed {
        /// The property.
        property: PropertyId,
        /// The packet (or will) that carried it.
        packet: &'static str,
    },
    /// A property that may appear once appeared twice.
    #[error("property {0:?} appears more than once")]
    DuplicateProperty(PropertyId),
    /// A property value out of its allowed range (for example Receive Maximum 0).
    #[error("property {property:?} has invalid value {value}")]
    InvalidPropertyValue {
        /// The property.
        property: PropertyId,
        /// The value received.
        value: u32,
    },
    /// A packet identifier of zero where one is required.
    #[error("packet identifier 0")]
    ZeroPacketId,
    /// A CONNECT whose protocol name is neither `MQTT` nor `MQIsdp`.
    #[error("invalid protocol name")]
    InvalidProtocolName,
    /// A protocol level this codec does not speak, or one that does not match the name.
    #[error("unsupported protocol level {level} for protocol name {name}")]
    UnsupportedProtocolVersion {
        /// The protocol name received.
        name: &'static str,
        /// The level received.
        level: u8,
    },
    /// The reserved bit of the CONNECT flags is set.
    #[error("reserved CONNECT flag set")]
    ReservedConnectFlag,
    /// Will QoS or Will Retain set without the Will flag (Will QoS 3 is `InvalidQoS`).
    #[error("will QoS or retain set without a will")]
    InconsistentWillFlags,
    /// A 3.x CONNECT with a password but no user name.
    #[error("password without user name")]
    PasswordWithoutUsername,
    /// A SUBSCRIBE or UNSUBSCRIBE without topic filters, or a SUBACK or 5.0 UNSUBACK without
    /// reason codes.
    #[error("{0} with an empty payload")]
    EmptyPayload(PacketType),
    /// Subscription options with Maximum QoS 3, Retain Handling 3, or No Local on a shared
    /// subscription.
    #[error("invalid subscription options {0:#010b}")]
    InvalidSubscriptionOptions(u8),
    /// Reserved bits of subscription options set (bits 6 and 7 in 5.0, 2 to 7 before).
    #[error("reserved bits set in subscription options {0:#010b}")]
    ReservedSubscriptionOptionBits(u8),
    /// A reason code this packet may not carry.
    #[error("reason code {code:#04x} is not allowed in {packet:?}")]
    InvalidReasonCode {
        /// The packet type.
        packet: PacketType,
        /// The code received.
        code: u8,
    },
    /// A reserved bit of the CONNACK acknowledge flags is set.
    #[error("reserved CONNACK flag set")]
    ReservedConnAckFlags,
    /// A CONNACK that refuses the connection but says a session is present.
    #[error("CONNACK with a failure reason code sets Session Present")]
    SessionPresentOnFailure,
    /// Authentication Data without an Authentication Method.
    #[error("authentication data without an authentication method")]
    AuthenticationDataWithoutMethod,
}

impl DecodeError {
    /// The MQTT 5 reason code to close the connection with.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            Self::UnsupportedProtocolVersion { .. } | Self::InvalidProtocolName => {
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
            }
            Self::WildcardInTopicName => ReasonCode::TOPIC_NAME_INVALID,
            Self::InvalidTopicFilter(_) => ReasonCode::TOPIC_FILTER_INVALID,
            // 3.3.4: a Topic Alias of 0 gets 0x94 rather than a plain Protocol Error.
            Self::InvalidPropertyValue {
                property: PropertyId::TopicAlias,
                ..
            } => ReasonCode::TOPIC_ALIAS_INVALID,
            // The spec calls these out as Protocol Errors rather than malformed packets.
            Self::EmptyTopicName
            | Self::DuplicateProperty(_)
            | Self::InvalidPropertyValue { .. }
            | Self::ZeroPacketId
            | Self::EmptyPayload(_)
            | Self::InvalidSubscriptionOptions(_)
            | Self::InvalidReasonCode { .. }
            | Self::DupWithQoS0
            | Self::SessionPresentOnFailure
            | Self::AuthenticationDataWithoutMethod => ReasonCode::PROTOCOL_ERROR,
            _ => ReasonCode::MALFORMED_PACKET,
        }
    }

    /// For 3.1 and 3.1.1: the CONNACK return code to send before closing, where the spec asks
    /// for one (an unacceptable protocol level); `None` means close without a CONNACK.
    pub fn v3_connack_return_code(&self) -> Option<u8> {
        match self {
            Self::UnsupportedProtocolVersion { .. } => Some(1),
            _ => None,
        }
    }
}

/// Why a packet cannot be encoded. These are caller faults, never peer faults.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The packet would exceed the largest remaining length MQTT can express (268,435,455) or
    /// the limit the caller gave.
    #[error("packet of {size} bytes exceeds the maximum of {max} bytes")]
    PacketTooLarge {
        /// Size the packet would have.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A string or binary field is longer than 65,535 bytes.
    #[error("{0} is longer than 65,535 bytes")]
    FieldTooLong(&'static str),
    /// QoS 0 with a packet id, or QoS 1/2 without one.
    #[error("QoS {qos} PUBLISH with packet id present = {has_id}")]
    PacketIdMismatch {
        /// The QoS.
        qos: u8,
        /// Whether a packet id was given.
        has_id: bool,
    },
    /// A packet that does not exist in the chosen version (AUTH before 5.0).
    #[error("{packet:?} does not exist in MQTT {version}")]
    NotInVersion {
        /// The packet type.
        packet: PacketType,
        /// The version.
        version: super::ProtocolVersion,
    },
    /// A PUBLISH with an empty topic name and no topic alias (or before 5.0, where there are
    /// no aliases).
    #[error("PUBLISH with an empty topic name and no topic alias")]
    EmptyTopicWithoutAlias,
    /// A 3.x CONNECT with a password but no user name, which 3.x cannot express.
    #[error("MQTT 3.x cannot send a password without a user name")]
    PasswordWithoutUsername,
    /// A SUBSCRIBE, UNSUBSCRIBE, SUBACK or UNSUBACK with nothing in it.
    #[error("{0:?} with an empty payload")]
    EmptyPayload(PacketType),
}
