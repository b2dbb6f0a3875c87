//! The outbound queue of one connection: everything waiting to be written to the client, as a
//! list of `Bytes` chunks with a byte budget.
//!
//! Small packets (acks, headers, small publishes) are encoded straight into one coalescing
//! buffer so a flush writes many packets with few syscalls. A large payload is not copied: the
//! header before it ends the current chunk and the payload's shared `Bytes` becomes a chunk of
//! its own. The queue never touches a socket; the connection's writer drains it with
//! [`OutboundQueue::next_chunk`] once per executor tick.
//!
//! The budget bounds memory per connection: a QoS 0 message that would take the queue over it
//! is refused (the caller counts a drop). QoS 1/2 messages are always accepted because their
//! number is already bounded by the session's window.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::protocol::{Codec, EncodeError, Packet, ProtocolVersion, QoS};
use crate::session::OutgoingPublish;

/// Payloads at least this big are sent from their shared `Bytes` rather than copied into the
/// coalescing buffer; below it a copy is cheaper than an extra chunk and write.
pub const SHARE_PAYLOAD_FROM_BYTES: usize = 1024;

/// Why something was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// A QoS 0 message over the byte budget.
    OverBudget,
    /// The packet could not be encoded (a caller bug, logged).
    Encode(EncodeError),
}

/// The queue of one connection.
#[derive(Debug)]
pub struct OutboundQueue {
    codec: Codec,
    chunks: VecDeque<Bytes>,
    current: BytesMut,
    queued_bytes: usize,
    budget_bytes: usize,
}

impl OutboundQueue {
    /// An empty queue for a client speaking `version`, holding at most `budget_bytes` of QoS 0.
    pub fn new(version: ProtocolVersion, budget_bytes: usize) -> Self {
        Self {
            codec: Codec::new(version),
            chunks: VecDeque::new(),
            current: BytesMut::new(),
            queued_bytes: 0,
            budget_bytes,
        }
    }

    /// The protocol version packets are encoded in.
    pub fn version(&self) -> ProtocolVersion {
        self.codec.version
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queued_bytes == 0
    }

    /// Queues a control packet (never refused: acks must go out for the protocol to progress).
    pub fn push_packet(&mut self, packet: &Packet) -> Result<(), QueueError> {
        let before = self.current.len();
        self.codec
            .encode(packet, &mut self.current)
            .map_err(QueueError::Encode)?;
        self.queued_bytes += self.current.len() - before;
        Ok(())
    }

    /// Queues a PUBLISH: its header encoded here, its payload copied when small and shared
    /// when large.
    pub fn push_publish(&mut self, publish: &OutgoingPublish) -> Result<(), QueueError> {
        let packet = publish.to_packet();
        let version = self.codec.version;
        let size = packet.encoded_len(version);
        self.check_budget(publish.qos, size)?;
        let before = self.current.len();
        packet
            .encode_header(version, &mut self.current)
            .map_err(QueueError::Encode)?;
        let header = self.current.len() - before;
        if packet.payload.len() >= SHARE_PAYLOAD_FROM_BYTES {
            self.seal_current();
            self.chunks.push_back(packet.payload);
        } else {
            self.current.extend_from_slice(&packet.payload);
        }
        self.queued_bytes += header + publish.message.payload.len();
        Ok(())
    }

    /// Queues a packet encoded once and shared by many subscribers (identical QoS 0 deliveries).
    pub fn push_encoded(&mut self, encoded: &Bytes) -> Result<(), QueueError> {
        self.check_budget(QoS::AtMostOnce, encoded.len())?;
        if encoded.len() >= SHARE_PAYLOAD_FROM_BYTES {
            self.seal_current();
            self.chunks.push_back(encoded.clone());
        } else {
            self.current.extend_from_slice(encoded);
        }
        self.queued_bytes += encoded.len();
        Ok(())
    }

    fn check_budget(&self, qos: QoS, size: usize) -> Result<(), QueueError> {
        if qos == QoS::AtMostOnce && self.queued_bytes + size > self.budget_bytes {
            Err(QueueError::OverBudget)
        } else {
            Ok(())
        }
    }

    fn seal_current(&mut self) {
        if !self.current.is_empty() {
            self.chunks.push_back(self.current.split().freeze());
        }
    }

    /// The next chunk to write, in order. The writer writes it whole (or puts the unwritten
    /// rest back with [`Self::unwrite`]).
    pub fn next_chunk(&mut self) -> Option<Bytes> {
        if self.chunks.is_empty() {
            self.seal_current();
        }
        let chunk = self.chunks.pop_front()?;
        self.queued_bytes -= chunk.len();
        Some(chunk)
    }

    /// Puts back the part of a chunk a short write left unwritten, ahead of everything else.
    pub fn unwrite(&mut self, rest: Bytes) {
        self.queued_bytes += rest.len();
        self.chunks.push_front(rest);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use crate::protocol::{ClientId, PacketId, PubResponse, PublishProperties, TopicName};
    use crate::session::{Message, SubscriptionIds};

    fn outgoing(payload: Bytes, qos: QoS) -> OutgoingPublish {
        let message = Message {
            topic: TopicName::new("t").unwrap(),
            payload,
            qos,
            retain: false,
            properties: PublishProperties::default(),
            expires_at: None,
            origin: ClientId::new("p").unwrap(),
            publisher: None,
            received_at_ns: 0,
        };
        OutgoingPublish {
            message: Arc::new(message),
            qos,
            packet_id: PacketId::new(1).filter(|_| qos != QoS::AtMostOnce),
            dup: false,
            retain: false,
            subscription_ids: SubscriptionIds::default(),
            message_expiry_secs: None,
            topic_alias: None,
        }
    }

    /// Drains the queue and decodes everything written.
    fn drain_and_decode(
        queue: &mut OutboundQueue,
        version: ProtocolVersion,
    ) -> (usize, Vec<Packet>) {
        let mut wire = BytesMut::new();
        let mut chunks = 0;
        while let Some(chunk) = queue.next_chunk() {
            chunks += 1;
            wire.extend_from_slice(&chunk);
        }
        let codec = Codec::new(version);
        let mut packets = Vec::new();
        while let Some(packet) = codec.decode(&mut wire).unwrap() {
            packets.push(packet);
        }
        assert!(wire.is_empty());
        (chunks, packets)
    }

    #[test]
    fn small_packets_coalesce_into_one_chunk() {
        let mut queue = OutboundQueue::new(ProtocolVersion::V3_1_1, 1 << 20);
        for id in 1..=10 {
            let ack = PubResponse::success(PacketId::new(id).unwrap());
            queue.push_packet(&Packet::PubAck(ack)).unwrap();
            queue
                .push_publish(&outgoing(Bytes::from_static(b"small"), QoS::AtMostOnce))
                .unwrap();
        }
        assert_eq!(queue.queued_bytes(), 10 * (4 + 2 + 2 + 1 + 5));
        let (chunks, packets) = drain_and_decode(&mut queue, ProtocolVersion::V3_1_1);
        assert_eq!(chunks, 1);
        assert_eq!(packets.len(), 20);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_large_payload_is_shared_not_copied() {
        let mut queue = OutboundQueue::new(ProtocolVersion::V5, 1 << 20);
        let payload = Bytes::from(vec![7u8; 4096]);
        queue
            .push_publish(&outgoing(payload.clone(), QoS::AtLeastOnce))
            .unwrap();
        queue.push_packet(&Packet::PingResp).unwrap();
        let header = queue.next_chunk().unwrap();
        let body = queue.next_chunk().unwrap();
        assert_eq!(
            body.as_ptr(),
            payload.as_ptr(),
            "the payload chunk is the shared Bytes"
        );
        let tail = queue.next_chunk().unwrap();
        assert_eq!(&tail[..], &[0xD0, 0x00]);
        let wire = [&header[..], &body[..]].concat();
        let Some(Packet::Publish(publish)) = Codec::new(ProtocolVersion::V5)
            .decode(&mut BytesMut::from(&wire[..]))
            .unwrap()
        else {
            panic!("not a publish");
        };
        assert_eq!(publish.payload, payload);
        assert!(queue.next_chunk().is_none());
    }

    #[test]
    fn qos0_over_budget_is_refused_and_qos1_is_not() {
        let mut queue = OutboundQueue::new(ProtocolVersion::V3_1_1, 100);
        let payload = Bytes::from(vec![0u8; 60]);
        queue
            .push_publish(&outgoing(payload.clone(), QoS::AtMostOnce))
            .unwrap();
        assert_eq!(
            queue.push_publish(&outgoing(payload.clone(), QoS::AtMostOnce)),
            Err(QueueError::OverBudget)
        );
        assert_eq!(
            queue.push_encoded(&Bytes::from(vec![0u8; 60])),
            Err(QueueError::OverBudget)
        );
        queue
            .push_publish(&outgoing(payload, QoS::AtLeastOnce))
            .unwrap();
        let (_, packets) = drain_and_decode(&mut queue, ProtocolVersion::V3_1_1);
        assert_eq!(packets.len(), 2);
    }

    #[test]
    fn a_short_write_puts_the_rest_back_first() {
        let mut queue = OutboundQueue::new(ProtocolVersion::V3_1_1, 1 << 20);
        queue.push_packet(&Packet::PingResp).unwrap();
        let chunk = queue.next_chunk().unwrap();
        queue.push_packet(&Packet::PingResp).unwrap();
        queue.unwrite(chunk.slice(1..));
        assert_eq!(queue.queued_bytes(), 3);
        assert_eq!(&queue.next_chunk().unwrap()[..], &[0x00]);
        assert_eq!(&queue.next_chunk().unwrap()[..], &[0xD0, 0x00]);
    }
}
