//! Typed values carried by MQTT packets: protocol versions, QoS, packet ids, and the validated
//! string newtypes (`MqttString`, `TopicName`, `TopicFilter`, `ClientId`).
//!
//! Every string type wraps a `Bytes` that has been checked once (UTF-8, no U+0000, at most
//! 65,535 bytes), so a decoded topic stays a zero-copy slice of the read buffer. These types are
//! made only by parsing; nothing here allocates on the decode path.

use std::fmt;
use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;

use super::error::DecodeError;

/// The protocol version a connection speaks, fixed by its CONNECT packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// MQTT 3.1: protocol name `MQIsdp`, level 3.
    V3_1,
    /// MQTT 3.1.1: protocol name `MQTT`, level 4.
    V3_1_1,
    /// MQTT 5.0: protocol name `MQTT`, level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte sent in CONNECT.
    pub fn level(self) -> u8 {
        match self {
            Self::V3_1 => 3,
            Self::V3_1_1 => 4,
            Self::V5 => 5,
        }
    }

    /// The protocol name sent in CONNECT.
    pub fn protocol_name(self) -> &'static str {
        match self {
            Self::V3_1 => "MQIsdp",
            Self::V3_1_1 | Self::V5 => "MQTT",
        }
    }

    /// True for 5.0, the only version with properties and reason codes everywhere.
    pub fn is_v5(self) -> bool {
        matches!(self, Self::V5)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V3_1 => "3.1",
            Self::V3_1_1 => "3.1.1",
            Self::V5 => "5.0",
        })
    }
}

/// Quality of service of a message or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum QoS {
    /// At most once (0).
    #[default]
    AtMostOnce = 0,
    /// At least once (1).
    AtLeastOnce = 1,
    /// Exactly once (2).
    ExactlyOnce = 2,
}

impl QoS {
    /// Parses the two QoS bits; 3 is not a QoS.
    pub fn from_bits(bits: u8) -> Result<Self, DecodeError> {
        match bits {
            0 => Ok(Self::AtMostOnce),
            1 => Ok(Self::AtLeastOnce),
            2 => Ok(Self::ExactlyOnce),
            other => Err(DecodeError::InvalidQoS(other)),
        }
    }

    /// The wire value, 0 to 2.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A packet identifier: never zero on the wire where one is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PacketId(NonZeroU16);

impl PacketId {
    /// Makes a packet id; `None` for zero.
    pub fn new(value: u16) -> Option<Self> {
        NonZeroU16::new(value).map(Self)
    }

    /// The wire value, 1 to 65,535.
    pub fn get(self) -> u16 {
        self.0.get()
    }

    /// The id after this one, wrapping from 65,535 to 1.
    pub fn next(self) -> Self {
        Self(self.0.checked_add(1).unwrap_or(NonZeroU16::MIN))
    }
}

impl From<NonZeroU16> for PacketId {
    fn from(value: NonZeroU16) -> Self {
        Self(value)
    }
}

/// A subscription identifier (MQTT 5): 1 to 268,435,455, carried as a variable byte integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(NonZeroU32);

impl SubscriptionId {
    /// The largest value a variable byte integer can hold.
    pub const MAX: u32 = 268_435_455;

    /// Makes a subscription id; `None` for zero or a value above [`Self::MAX`].
    pub fn new(value: u32) -> Option<Self> {
        if value > Self::MAX {
            return None;
        }
        NonZeroU32::new(value).map(Self)
    }

    /// The wire value.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

/// The longest string or binary field MQTT can carry: its length is a two-byte integer.
pub const MAX_STRING_LEN: usize = u16::MAX as usize;

/// A UTF-8 string as MQTT defines it: valid UTF-8, no U+0000, at most 65,535 bytes, held as a
/// `Bytes` so a decoded string is a slice of the read buffer rather than a copy.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MqttString(Bytes);

impl MqttString {
    /// Validates `bytes` as an MQTT UTF-8 string.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_STRING_LEN {
            return Err(DecodeError::StringTooLong(bytes.len()));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| DecodeError::InvalidUtf8)?;
        if text.contains('\0') {
            return Err(DecodeError::NullCharacter);
        }
        Ok(Self(bytes))
    }

    /// Copies a `&str` into a new MQTT string, with the same checks as decoding.
    pub fn new(text: &str) -> Result<Self, DecodeError> {
        Self::from_bytes(Bytes::copy_from_slice(text.as_bytes()))
    }

    /// The same text in an allocation of its own. A decoded string is a slice of the read
    /// buffer it arrived in; whatever is kept for long (a client id, a subscription, a will)
    /// takes a copy so it does not keep that whole buffer alive.
    pub fn to_owned_copy(&self) -> Self {
        Self(Bytes::copy_from_slice(&self.0))
    }

    /// Makes a string from a `'static` literal without copying.
    pub fn from_static(text: &'static str) -> Result<Self, DecodeError> {
        Self::from_bytes(Bytes::from_static(text.as_bytes()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checked these bytes with `std::str::from_utf8`, and `Bytes`
        // is immutable, so they are still valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes (a cheap reference-counted clone).
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implements the accessors every string newtype shares.
macro_rules! string_newtype_common {
    ($name:ident) => {
        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            /// The underlying MQTT string.
            pub fn as_mqtt_str(&self) -> &MqttString {
                &self.0
            }

            /// The same value in an allocation of its own (see [`MqttString::to_owned_copy`]).
            pub fn to_owned_copy(&self) -> Self {
                Self(self.0.to_owned_copy())
            }

            /// Length in bytes.
            pub fn len(&self) -> usize {
                self.0.len()
            }

            /// True when empty.
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// A topic name a message is published to: no `+` or `#`. It is empty only in an MQTT 5
/// PUBLISH that names its topic by a topic alias.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TopicName(MqttString);

string_newtype_common!(TopicName);

impl TopicName {
    /// Validates a non-empty topic name.
    pub fn new(text: &str) -> Result<Self, DecodeError> {
        Self::from_mqtt_string(MqttString::new(text)?)
    }

    /// Validates a non-empty topic name from an already checked string.
    pub fn from_mqtt_string(text: MqttString) -> Result<Self, DecodeError> {
        if text.is_empty() {
            return Err(DecodeError::EmptyTopicName);
        }
        Self::from_mqtt_string_allow_empty(text)
    }

    /// Like [`Self::from_mqtt_string`] but allows the empty name an aliased MQTT 5 PUBLISH
    /// carries.
    pub fn from_mqtt_string_allow_empty(text: MqttString) -> Result<Self, DecodeError> {
        if text.as_bytes().iter().any(|&b| b == b'+' || b == b'#') {
            return Err(DecodeError::WildcardInTopicName);
        }
        Ok(Self(text))
    }

    /// The empty name of an aliased MQTT 5 PUBLISH.
    pub fn empty() -> Self {
        Self(MqttString::default())
    }

    /// The topic's levels, split on `/`.
    pub fn levels(&self) -> std::str::Split<'_, char> {
        self.as_str().split('/')
    }
}

/// A subscription topic filter: non-empty; `+` only as a whole level; `#` only as the whole
/// last level. A `$share/{group}/{filter}` filter has a non-empty group without `+`, `#` or `/`
/// and a non-empty filter after it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicFilter(MqttString);

string_newtype_common!(TopicFilter);

/// The prefix of a shared subscription filter.
pub const SHARE_PREFIX: &str = "$share/";

impl TopicFilter {
    /// Validates a topic filter.
    pub fn new(text: &str) -> Result<Self, DecodeError> {
        Self::from_mqtt_string(MqttString::new(text)?)
    }

    /// Validates a topic filter from an already checked string.
    pub fn from_mqtt_string(text: MqttString) -> Result<Self, DecodeError> {
        let filter = text.as_str();
        if filter.is_empty() {
            return Err(DecodeError::InvalidTopicFilter("empty filter"));
        }
        let body = match filter.strip_prefix(SHARE_PREFIX) {
            Some(rest) => {
                let (group, inner) = rest.split_once('/').ok_or(
                    DecodeError::InvalidTopicFilter("$share filter without a filter"),
                )?;
                if group.is_empty() || group.contains(['+', '#']) {
                    return Err(DecodeError::InvalidTopicFilter(
                        "$share group must be non-empty without + or #",
                    ));
                }
                if inner.is_empty() {
                    return Err(DecodeError::InvalidTopicFilter(
                        "$share filter without a filter",
                    ));
                }
                inner
            }
            None => filter,
        };
        validate_filter_levels(body)?;
        Ok(Self(text))
    }

    /// For `$share/{group}/{filter}`, the group and the inner filter.
    pub fn shared(&self) -> Option<(&str, &str)> {
        self.as_str().strip_prefix(SHARE_PREFIX)?.split_once('/')
    }

    /// True when the filter has a `+` or `#` level.
    pub fn has_wildcards(&self) -> bool {
        let filter = self.shared().map_or(self.as_str(), |(_, inner)| inner);
        filter.contains(['+', '#'])
    }
}

fn validate_filter_levels(filter: &str) -> Result<(), DecodeError> {
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let is_last = levels.peek().is_none();
        match level {
            "#" if !is_last => {
                return Err(DecodeError::InvalidTopicFilter("# must be the last level"))
            }
            "#" | "+" => {}
            _ if level.contains('#') => {
                return Err(DecodeError::InvalidTopicFilter("# must be a whole level"))
            }
            _ if level.contains('+') => {
                return Err(DecodeError::InvalidTopicFilter("+ must be a whole level"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// A client identifier. May be empty on the wire (the server then assigns one or rejects the
/// client, depending on the version); which characters a server accepts is its own policy.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ClientId(MqttString);

string_newtype_common!(ClientId);

impl ClientId {
    /// Validates a client id.
    pub fn new(text: &str) -> Result<Self, DecodeError> {
        Ok(Self(MqttString::new(text)?))
    }

    /// Wraps an already checked string.
    pub fn from_mqtt_string(text: MqttString) -> Self {
        Self(text)
    }
}

/// An MQTT 5 user property: a name and a value, both UTF-8 strings; names may repeat.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserProperty {
    /// The name.
    pub name: MqttString,
    /// The value.
    pub value: MqttString,
}

impl UserProperty {
    /// The same pair in allocations of its own (see [`MqttString::to_owned_copy`]).
    pub fn to_owned_copy(&self) -> Self {
        Self {
            name: self.name.to_owned_copy(),
            value: self.value.to_owned_copy(),
        }
    }
}

/// MQTT 5 payload format indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PayloadFormat {
    /// 0: unspecified bytes.
    #[default]
    Unspecified,
    /// 1: UTF-8 encoded character data.
    Utf8,
}

/// MQTT 5 retain handling subscription option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe,
    /// 1: send retained messages only if the subscription did not exist.
    SendIfNew,
    /// 2: do not send retained messages.
    DoNotSend,
}
