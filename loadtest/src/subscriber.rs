//! The subscriber role: receives PUBLISH packets, answers QoS 1 with PUBACK and QoS 2 with
//! PUBREC, then PUBREL with PUBCOMP, and records latency, delivery counts and per-publisher
//! sequence numbers.
//!
//! Work per message is a header parse and a push into a batch; the batch goes to the shared
//! tracker and histogram under one lock each per read, not per message. A QoS 2 message counts
//! once: a redelivery of a packet id still awaiting PUBREL is answered but not counted again,
//! as the spec's exactly-once receiver must do.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use starling::protocol::{Codec, Packet, PubResponse, Publish, QoS, ReasonCode};

use crate::driver::Role;
use crate::payload::Stamp;
use crate::stats::{lock, Phase, RunShared};

/// The subscriber state machine.
#[derive(Debug)]
pub struct Subscriber {
    codec: Codec,
    shared: Arc<RunShared>,
    block: usize,
    tracker: usize,
    /// QoS 2 packet ids received and not yet released.
    awaiting_rel: HashSet<u16>,
    /// Measured deliveries of the current read batch: publisher, sequence, send time.
    batch: Vec<(u32, u64, u64)>,
    /// Publishers of every delivery of this run in the batch, for their QoS 0 windows.
    senders: Vec<u32>,
    /// Scratch for the latencies of the batch's first deliveries, microseconds.
    latencies: Vec<u64>,
    delivered: u64,
    foreign: u64,
}

impl Subscriber {
    /// A subscriber of `block` that reports to tracker `tracker`.
    pub fn new(codec: Codec, shared: Arc<RunShared>, block: usize, tracker: usize) -> Self {
        Self {
            codec,
            shared,
            block,
            tracker,
            awaiting_rel: HashSet::new(),
            batch: Vec::with_capacity(256),
            senders: Vec::with_capacity(256),
            latencies: Vec::with_capacity(256),
            delivered: 0,
            foreign: 0,
        }
    }

    fn receive(&mut self, publish: &Publish, out: &mut BytesMut) -> Result<(), String> {
        let reply = match (publish.qos, publish.packet_id) {
            (QoS::AtMostOnce, _) => None,
            (_, None) => return Err("QoS 1/2 PUBLISH without a packet id".into()),
            (QoS::AtLeastOnce, Some(id)) => Some(Packet::PubAck(PubResponse::success(id))),
            (QoS::ExactlyOnce, Some(id)) => {
                if !self.awaiting_rel.insert(id.get()) {
                    // A redelivery before PUBREL: the message was already counted.
                    let rec = Packet::PubRec(PubResponse::success(id));
                    return self.encode(&rec, out);
                }
                Some(Packet::PubRec(PubResponse::success(id)))
            }
        };
        match Stamp::read(&publish.payload).filter(|stamp| stamp.nonce == self.shared.nonce) {
            Some(stamp) => {
                self.delivered += 1;
                self.senders.push(stamp.publisher);
                if stamp.measured {
                    self.batch.push((stamp.publisher, stamp.seq, stamp.sent_ns));
                }
            }
            None => self.foreign += 1,
        }
        match reply {
            Some(reply) => self.encode(&reply, out),
            None => Ok(()),
        }
    }

    fn release(&mut self, rel: &PubResponse, out: &mut BytesMut) -> Result<(), String> {
        let known = self.awaiting_rel.remove(&rel.packet_id.get());
        let mut comp = PubResponse::success(rel.packet_id);
        if !known {
            comp.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        }
        self.encode(&Packet::PubComp(comp), out)
    }

    /// Reports the batch's deliveries to their publishers, one update per run of the same
    /// publisher (a subscriber usually hears few publishers per read).
    fn credit_publishers(&mut self) {
        let mut senders = self.senders.drain(..).peekable();
        while let Some(publisher) = senders.next() {
            let mut count = 1;
            while senders.next_if_eq(&publisher).is_some() {
                count += 1;
            }
            // Ids come from payloads that carried this run's nonce; still never index blindly.
            if let Some(slot) = self.shared.publishers.get(publisher as usize) {
                slot.deliver(count);
            }
        }
    }

    fn encode(&self, packet: &Packet, out: &mut BytesMut) -> Result<(), String> {
        self.codec
            .encode(packet, out)
            .map_err(|e| format!("cannot encode {}: {e}", packet.packet_type()))
    }
}

impl Role for Subscriber {
    fn on_packet(&mut self, packet: Packet, _: Instant, out: &mut BytesMut) -> Result<(), String> {
        match packet {
            Packet::Publish(publish) => self.receive(&publish, out),
            Packet::PubRel(rel) => self.release(&rel, out),
            other => Err(format!(
                "unexpected {} for a subscriber",
                other.packet_type()
            )),
        }
    }

    fn end_batch(&mut self, now: Instant) {
        self.credit_publishers();
        let block = &self.shared.blocks[self.block];
        block.counters.delivered.add(self.delivered);
        block.counters.foreign.add(self.foreign);
        self.delivered = 0;
        self.foreign = 0;
        if self.batch.is_empty() {
            return;
        }
        let now_ns = self.shared.nanos_since_epoch(now);
        self.latencies.clear();
        {
            let mut tracker = lock(&self.shared.trackers[self.tracker]);
            for &(publisher, seq, sent_ns) in &self.batch {
                if tracker.observe(publisher, seq) {
                    self.latencies.push(now_ns.saturating_sub(sent_ns) / 1000);
                }
            }
        }
        self.batch.clear();
        block.record_latencies(&self.latencies);
    }

    fn generate(
        &mut self,
        _: Instant,
        _: Phase,
        _: &mut BytesMut,
    ) -> Result<Option<Instant>, String> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use starling::protocol::{PacketId, ProtocolVersion, PublishProperties, TopicName};

    fn publish(qos: QoS, id: u16, seq: u64, nonce: u32) -> Publish {
        let mut payload = BytesMut::new();
        Stamp {
            nonce,
            publisher: 0,
            seq,
            measured: true,
            sent_ns: 0,
        }
        .write(8, &mut payload);
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: TopicName::new("t").unwrap(),
            packet_id: PacketId::new(id),
            properties: PublishProperties::default(),
            payload: Bytes::from(payload),
        }
    }

    #[test]
    fn qos2_redelivery_before_pubrel_counts_once() {
        let shared = Arc::new(RunShared::new(9, 1, 1, 1));
        let codec = Codec::new(ProtocolVersion::V3_1_1);
        let mut subscriber = Subscriber::new(codec, Arc::clone(&shared), 0, 0);
        let now = Instant::now();
        let mut out = BytesMut::new();
        let message = publish(QoS::ExactlyOnce, 5, 0, 9);
        subscriber
            .on_packet(Packet::Publish(message.clone()), now, &mut out)
            .unwrap();
        subscriber
            .on_packet(
                Packet::Publish(Publish {
                    dup: true,
                    ..message
                }),
                now,
                &mut out,
            )
            .unwrap();
        let id = PacketId::new(5).unwrap();
        subscriber
            .on_packet(Packet::PubRel(PubResponse::success(id)), now, &mut out)
            .unwrap();
        subscriber.end_batch(now);
        let replies: Vec<Packet> = std::iter::from_fn(|| codec.decode(&mut out).unwrap()).collect();
        assert!(matches!(
            replies[..],
            [Packet::PubRec(_), Packet::PubRec(_), Packet::PubComp(_)]
        ));
        assert_eq!(shared.blocks[0].counters.delivered.get(), 1);
        assert_eq!(lock(&shared.trackers[0]).unique, 1);
        assert_eq!(shared.blocks[0].take_interval().len(), 1);
    }

    #[test]
    fn qos1_is_acked_and_foreign_payloads_are_set_aside() {
        let shared = Arc::new(RunShared::new(9, 1, 1, 1));
        let codec = Codec::new(ProtocolVersion::V3_1_1);
        let mut subscriber = Subscriber::new(codec, Arc::clone(&shared), 0, 0);
        let now = Instant::now();
        let mut out = BytesMut::new();
        subscriber
            .on_packet(
                Packet::Publish(publish(QoS::AtLeastOnce, 1, 0, 9)),
                now,
                &mut out,
            )
            .unwrap();
        subscriber
            .on_packet(
                Packet::Publish(publish(QoS::AtLeastOnce, 2, 0, 9)),
                now,
                &mut out,
            )
            .unwrap();
        subscriber
            .on_packet(
                Packet::Publish(publish(QoS::AtMostOnce, 0, 1, 1234)),
                now,
                &mut out,
            )
            .unwrap();
        subscriber.end_batch(now);
        let replies: Vec<Packet> = std::iter::from_fn(|| codec.decode(&mut out).unwrap()).collect();
        assert!(matches!(
            replies[..],
            [Packet::PubAck(_), Packet::PubAck(_)]
        ));
        let counters = &shared.blocks[0].counters;
        assert_eq!((counters.delivered.get(), counters.foreign.get()), (2, 1));
        let tracker = lock(&shared.trackers[0]);
        assert_eq!(
            tracker.stream(0).map(|s| (s.unique, s.duplicates)),
            Some((1, 1))
        );
    }
}
