//! What the session state machine asks its driver (the shard's connection task) to do. The
//! session never performs I/O: it appends actions, the driver carries them out in order.

use std::sync::Arc;

use crate::protocol::{
    AckProperties, Packet, PacketId, ReasonCode, SubAck, SubscriptionId, SubscriptionOptions,
    TopicFilter,
};

use super::message::{Message, OutgoingPublish};

/// One thing for the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write to this client.
    Send(Outgoing),
    /// Hand a client's message to the router (which also stores it if retained).
    Route(Arc<Message>),
    /// Add subscriptions to the router; send `request.suback()` once they are in force
    /// everywhere, then the retained messages the request asks for.
    Subscribe(SubscribeRequest),
    /// Remove subscriptions from the router (the UNSUBACK is already sent).
    Unsubscribe(Vec<TopicFilter>),
    /// Close the connection.
    Close(Close),
    /// A message was not delivered to this client; counted and reported as an event.
    Dropped(DropReason, Arc<Message>),
    /// The client acknowledged a delivery (PUBACK, or PUBREC for QoS 2), reported as
    /// `message_acked`; only asked for when an exporter wants it.
    Acked(Acked),
    /// A publish the hooks denied: not routed, reported as dropped, and the feedback message
    /// the denial carries (if any) is routed in its place.
    Denied {
        /// The message as it would have been routed.
        message: Arc<Message>,
        /// Published by the broker instead (`<topic>/rejected`).
        feedback: Option<Arc<Message>>,
    },
}

/// A delivery the client acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    /// The message.
    pub message: Arc<Message>,
    /// QoS of the delivery.
    pub qos: crate::protocol::QoS,
    /// Its packet id.
    pub packet_id: PacketId,
    /// Whether it had been sent more than once.
    pub dup: bool,
}

/// A packet for the client's writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A control packet.
    Packet(Packet),
    /// An application message, encoded by the writer around the shared payload.
    Publish(OutgoingPublish),
}

/// How and why the connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    /// The reason code, sent in a DISCONNECT to 5.0 clients when it is not the client who
    /// disconnected; logged and counted either way.
    pub reason: ReasonCode,
    /// Whether the driver sends a DISCONNECT (5.0 only) before closing.
    pub send_disconnect: bool,
    /// Whether the will is published (every close but a clean DISCONNECT).
    pub publish_will: bool,
}

/// Why a message did not reach a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The session's queue of QoS 1/2 messages was full.
    QueueFull,
    /// The message expired before it could be sent.
    Expired,
    /// Bigger than the client's Maximum Packet Size.
    TooLarge,
    /// QoS 0 to a client that is not connected.
    Offline,
    /// Published where no subscriber was listening (counted per message, not per recipient).
    NoSubscribers,
    /// The publish hooks denied it.
    NotAuthorized,
}

impl DropReason {
    /// The reason as one snake_case word (the `reason` field of `message_dropped`).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Expired => "expired",
            DropReason::TooLarge => "too_large",
            DropReason::Offline => "offline",
            DropReason::NoSubscribers => "no_subscribers",
            DropReason::NotAuthorized => "not_authorized",
        }
    }
}

/// One accepted filter of a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeEntry {
    /// The filter.
    pub filter: TopicFilter,
    /// Its options, QoS already capped at the broker's maximum.
    pub options: SubscriptionOptions,
    /// Subscription identifier (5.0).
    pub id: Option<SubscriptionId>,
    /// Whether the session already had this filter (Retain Handling 1 sends retained messages
    /// only for new subscriptions).
    pub existed: bool,
}

/// A SUBSCRIBE, validated: the entries to add and the SUBACK to send once they are in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    /// The SUBSCRIBE's packet id.
    pub packet_id: PacketId,
    /// Accepted filters.
    pub entries: Vec<SubscribeEntry>,
    /// One per filter of the SUBSCRIBE, in order: granted QoS or the refusal.
    pub reason_codes: Vec<ReasonCode>,
}

impl SubscribeRequest {
    /// The SUBACK answering this request.
    pub fn suback(&self) -> Packet {
        Packet::SubAck(SubAck {
            packet_id: self.packet_id,
            properties: AckProperties::default(),
            reason_codes: self.reason_codes.clone(),
        })
    }
}
