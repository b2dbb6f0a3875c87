//! The MQTT codec: every control packet of MQTT 3.1, 3.1.1 and 5.0, sans-IO.
//!
//! It owns the wire format and its validation, and nothing else: it never touches a socket, a
//! clock or an executor, so it runs the same on a shard, in the load-test harness and under a
//! fuzzer. [`Codec::decode`] takes bytes from a `BytesMut` read buffer and returns `Ok(None)`
//! while a packet is incomplete; a decoded PUBLISH's topic and payload are `Bytes` slices of that
//! buffer. [`Codec::encode`] appends to a caller's `BytesMut`; [`Publish::encode_header`] writes
//! everything but the payload so one payload can be shared by many subscribers.
//!
//! It must never panic on bytes from the network: every malformed input is a [`DecodeError`]
//! that maps to the reason code the spec asks for.

mod codec;
mod connect;
mod control;
mod error;
mod packet;
mod property;
mod publish;
mod reason;
mod subscribe;
mod types;
mod wire;

pub use codec::{Codec, MAX_PACKET_SIZE};
pub use error::{DecodeError, EncodeError};
pub use packet::{
    Auth, ConnAck, Connect, Disconnect, Packet, PacketType, PubResponse, Publish, SubAck,
    Subscribe, Subscription, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};
pub use property::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PropertyId, PublishProperties, SubscribeProperties, UnsubscribeProperties, WillProperties,
};
pub use reason::ReasonCode;
pub use types::{
    ClientId, MqttString, PacketId, PayloadFormat, ProtocolVersion, QoS, RetainHandling,
    SubscriptionId, TopicFilter, TopicName, UserProperty, MAX_STRING_LEN, SHARE_PREFIX,
};
pub use wire::MAX_VARIABLE_INTEGER;

#[cfg(test)]
mod tests;
