//! The application message as the broker routes it: decoded once from a PUBLISH, shared by
//! `Arc` with every subscriber on every shard, never copied per subscriber.
//!
//! A `Message` is immutable after it is made. What differs per subscriber (QoS, packet id, DUP,
//! retain flag, subscription identifiers, topic alias, remaining expiry) travels beside it in
//! an [`OutgoingPublish`].

use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::hooks::ClientInfo;
use crate::protocol::{ClientId, PacketId, PublishProperties, QoS, TopicName};
pub use crate::topic::SubscriptionIds;

/// An application message in flight through the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic it was published to (aliases already resolved).
    pub topic: TopicName,
    /// The payload, shared with the publisher's read buffer or its own allocation.
    pub payload: Bytes,
    /// QoS it was published with.
    pub qos: QoS,
    /// Retain flag as published.
    pub retain: bool,
    /// Properties forwarded to subscribers: topic alias and subscription identifiers removed,
    /// message expiry kept as published (the remaining interval is computed per delivery).
    pub properties: PublishProperties,
    /// When it expires, from the Message Expiry Interval.
    pub expires_at: Option<Instant>,
    /// The client that published it, for No Local.
    pub origin: ClientId,
    /// Who published it, as events report it (`from_*` fields); `None` for messages the
    /// broker makes itself (system topics, rejected-publish feedback).
    pub publisher: Option<Arc<ClientInfo>>,
    /// When the broker received it, Unix nanoseconds (`pts` of the delivery events).
    pub received_at_ns: u64,
}

impl Message {
    /// Builds the routed message from a client's PUBLISH (`topic` with any alias resolved).
    pub fn from_publish(
        now: Instant,
        origin: ClientId,
        topic: TopicName,
        publish: crate::protocol::Publish,
    ) -> Self {
        Self::published_by(now, origin, None, 0, topic, publish)
    }

    /// [`Self::from_publish`] with the publisher's identity and the Unix time of receipt, for
    /// the events about the message.
    pub fn published_by(
        now: Instant,
        origin: ClientId,
        publisher: Option<Arc<ClientInfo>>,
        received_at_ns: u64,
        topic: TopicName,
        publish: crate::protocol::Publish,
    ) -> Self {
        let mut properties = publish.properties;
        properties.topic_alias = None;
        properties.subscription_identifiers.clear();
        let expires_at = properties
            .message_expiry_interval
            .map(|secs| now + Duration::from_secs(u64::from(secs)));
        Self {
            topic,
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            properties,
            expires_at,
            origin,
            publisher,
            received_at_ns,
        }
    }

    /// True once the message's expiry interval has passed.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// Seconds left of the expiry interval, rounded up, for the forwarded property.
    pub fn remaining_expiry_secs(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }
}

/// A message handed to one session by the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The shared message.
    pub message: Arc<Message>,
    /// QoS granted for this subscriber: the lower of the published and subscribed QoS.
    pub qos: QoS,
    /// Retain flag to send (set for retained messages sent on subscribe, or kept as published
    /// with Retain As Published).
    pub retain: bool,
    /// Identifiers of the matching subscriptions (5.0).
    pub subscription_ids: SubscriptionIds,
}

/// One PUBLISH to write to a client: the shared message plus what is particular to this
/// subscriber. The writer encodes the header and sends the shared payload after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingPublish {
    /// The shared message.
    pub message: Arc<Message>,
    /// QoS of this delivery.
    pub qos: QoS,
    /// Packet id, present for QoS 1 and 2.
    pub packet_id: Option<PacketId>,
    /// Set on redelivery.
    pub dup: bool,
    /// Retain flag to send.
    pub retain: bool,
    /// Subscription identifiers (5.0).
    pub subscription_ids: SubscriptionIds,
    /// Remaining message expiry in seconds, when the message has one (5.0).
    pub message_expiry_secs: Option<u32>,
    /// Topic alias to send (5.0), and whether the topic name must be sent with it (false once
    /// the client knows the alias).
    pub topic_alias: Option<(NonZeroU16, bool)>,
}

impl OutgoingPublish {
    /// The PUBLISH packet for this delivery. Cheap: the topic, payload and property strings
    /// are reference-counted `Bytes`.
    pub fn to_packet(&self) -> crate::protocol::Publish {
        let message = &self.message;
        let mut properties = message.properties.clone();
        properties.message_expiry_interval = self.message_expiry_secs;
        properties.subscription_identifiers = self.subscription_ids.iter().collect();
        let mut topic = message.topic.clone();
        if let Some((alias, send_topic)) = self.topic_alias {
            properties.topic_alias = Some(alias);
            if !send_topic {
                topic = TopicName::empty();
            }
        }
        crate::protocol::Publish {
            dup: self.dup,
            qos: self.qos,
            retain: self.retain,
            topic,
            packet_id: self.packet_id,
            properties,
            payload: message.payload.clone(),
        }
    }
}
