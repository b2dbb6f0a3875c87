//! One encoded PUBLISH shared by every subscriber that gets identical bytes: a QoS 0 delivery
//! without packet id, subscription identifiers or topic alias is the same packet for every
//! subscriber of a protocol version (given the retain flag and remaining expiry). The engine
//! encodes it once and queues the same `Bytes` to each of them, a shared chunk when large.
//!
//! Shard-local; holds one packet per protocol version, so it costs three `Bytes` at most and
//! pins each message only until the next different one is encoded.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::protocol::{Codec, EncodeError, Packet, ProtocolVersion, QoS};
use crate::session::{Message, OutgoingPublish};

/// The cache: per protocol version, the last shareable delivery and its bytes.
#[derive(Debug, Default)]
pub(super) struct SharedEncoding {
    entries: [Option<Entry>; 3],
}

#[derive(Debug)]
struct Entry {
    /// Held so the pointer compared below cannot be reused by another message.
    message: Arc<Message>,
    retain: bool,
    expiry_secs: Option<u32>,
    encoded: Bytes,
}

impl SharedEncoding {
    /// The packet of `publish` encoded for `version`, shared with the previous identical
    /// delivery; `None` when the delivery has per-subscriber parts and cannot be shared.
    pub(super) fn get(
        &mut self,
        publish: &OutgoingPublish,
        version: ProtocolVersion,
    ) -> Option<Result<Bytes, EncodeError>> {
        let shareable = publish.qos == QoS::AtMostOnce
            && publish.packet_id.is_none()
            && publish.subscription_ids.is_empty()
            && publish.topic_alias.is_none();
        if !shareable {
            return None;
        }
        let slot = &mut self.entries[slot_of(version)];
        if let Some(entry) = slot {
            if Arc::ptr_eq(&entry.message, &publish.message)
                && entry.retain == publish.retain
                && entry.expiry_secs == publish.message_expiry_secs
            {
                return Some(Ok(entry.encoded.clone()));
            }
        }
        let mut buf = BytesMut::new();
        let encoded = Codec::new(version)
            .encode(&Packet::Publish(publish.to_packet()), &mut buf)
            .map(|()| buf.freeze());
        if let Ok(encoded) = &encoded {
            *slot = Some(Entry {
                message: Arc::clone(&publish.message),
                retain: publish.retain,
                expiry_secs: publish.message_expiry_secs,
                encoded: encoded.clone(),
            });
        }
        Some(encoded)
    }
}

fn slot_of(version: ProtocolVersion) -> usize {
    match version {
        ProtocolVersion::V3_1 => 0,
        ProtocolVersion::V3_1_1 => 1,
        ProtocolVersion::V5 => 2,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::protocol::{ClientId, PublishProperties, TopicName};
    use crate::session::SubscriptionIds;

    fn delivery(message: &Arc<Message>, qos: QoS) -> OutgoingPublish {
        OutgoingPublish {
            message: Arc::clone(message),
            qos,
            packet_id: None,
            dup: false,
            retain: false,
            subscription_ids: SubscriptionIds::default(),
            message_expiry_secs: None,
            topic_alias: None,
        }
    }

    fn message(payload: &'static [u8]) -> Arc<Message> {
        Arc::new(Message {
            topic: TopicName::new("a/b").unwrap(),
            payload: Bytes::from_static(payload),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: PublishProperties::default(),
            expires_at: None,
            origin: ClientId::new("p").unwrap(),
            publisher: None,
            received_at_ns: 0,
        })
    }

    #[test]
    fn identical_qos0_deliveries_share_one_encoding_per_version() {
        let mut cache = SharedEncoding::default();
        let first = message(b"hello");
        let a = cache.get(&delivery(&first, QoS::AtMostOnce), ProtocolVersion::V5);
        let b = cache.get(&delivery(&first, QoS::AtMostOnce), ProtocolVersion::V5);
        let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same bytes, not a copy");
        let v3 = cache
            .get(&delivery(&first, QoS::AtMostOnce), ProtocolVersion::V3_1_1)
            .unwrap()
            .unwrap();
        assert_ne!(v3, a, "5.0 has a property length byte, 3.1.1 does not");
        let decoded = Codec::new(ProtocolVersion::V5)
            .decode(&mut BytesMut::from(&a[..]))
            .unwrap();
        assert!(matches!(decoded, Some(Packet::Publish(p)) if &p.payload[..] == b"hello"));

        let second = message(b"other");
        let c = cache
            .get(&delivery(&second, QoS::AtMostOnce), ProtocolVersion::V5)
            .unwrap()
            .unwrap();
        assert_ne!(c, a);
    }

    #[test]
    fn per_subscriber_deliveries_are_not_shared() {
        let mut cache = SharedEncoding::default();
        let shared = message(b"x");
        assert!(cache
            .get(&delivery(&shared, QoS::AtLeastOnce), ProtocolVersion::V5)
            .is_none());
        let mut with_id = delivery(&shared, QoS::AtMostOnce);
        with_id
            .subscription_ids
            .push(crate::protocol::SubscriptionId::new(3).unwrap());
        assert!(cache.get(&with_id, ProtocolVersion::V5).is_none());
    }
}
