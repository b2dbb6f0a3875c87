//! The publisher role: sends stamped PUBLISH packets on a fixed schedule (or as fast as flow
//! control allows) and completes the QoS 1 (PUBACK) and QoS 2 (PUBREC→PUBREL→PUBCOMP) flows
//! with a bounded inflight window. At QoS 0 and the `max` rate, the window counts messages
//! not yet received by the run's own subscribers, since QoS 0 has no acknowledgement.
//!
//! Publishes are encoded straight into the connection's write buffer, many per write: the
//! header comes from a template `Publish` and the stamp and filler are appended after it, so a
//! message costs no allocation. Each message is stamped with the time it is queued for the
//! socket, right before the write. On a fixed rate the publisher also records how late that
//! was against its schedule (the schedule lag): a broker that pushes back (TCP, inflight
//! window) shows up there instead of being hidden, while the harness's 1 ms timer granularity
//! stays out of the end-to-end latency. It never retransmits: a broker that never answers
//! leaves the message unacked, and the report says so.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use starling::protocol::{
    Codec, Packet, PacketId, PubResponse, Publish, PublishProperties, QoS, TopicName,
};

use crate::config::Rate;
use crate::driver::Role;
use crate::payload::{Stamp, HEADER_LEN};
use crate::stats::{Phase, RunShared};

/// Stop queueing once this many bytes wait to be written: TCP is pushing back.
const HIGH_WATER: usize = 256 * 1024;
/// At the `max` rate, QoS 0 refills the buffer only when it has drained below this.
const LOW_WATER: usize = 16 * 1024;
/// Most messages queued in one pass, so reads are not starved by a long catch-up.
const BATCH_MAX: u64 = 1024;
/// A QoS 0 window that has not moved for this long gives up on its outstanding messages (the
/// broker dropped them), so a lossy broker cannot stall a publisher for good.
const STALL: Duration = Duration::from_millis(200);

/// What a QoS 1/2 publish in flight waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    /// QoS 1: PUBACK.
    Ack,
    /// QoS 2: PUBREC.
    Rec,
    /// QoS 2, PUBREL sent: PUBCOMP.
    Comp,
}

/// How a publisher is set up.
#[derive(Debug, Clone)]
pub struct PublisherSpec {
    /// Global publisher id (index into `RunShared::publishers`).
    pub id: u32,
    /// Block index.
    pub block: usize,
    /// Topic it publishes to.
    pub topic: TopicName,
    /// QoS of its publishes.
    pub qos: QoS,
    /// Shared zero bytes of the payload size: the template's payload, whose length sizes the
    /// header. The real bytes are written after it.
    pub zero_payload: Bytes,
    /// Its share of the block's rate.
    pub rate: Rate,
    /// Offset of its schedule within one period, so publishers of a block do not all fire at
    /// once.
    pub offset: Duration,
    /// Most unacknowledged publishes; at QoS 0 and the `max` rate, most publishes not yet
    /// delivered to every subscriber that should receive them.
    pub window: u16,
    /// Trackers (subscribers or share groups) that should receive each of its messages.
    pub fan: u32,
}

/// The publisher state machine.
#[derive(Debug)]
pub struct Publisher {
    spec: PublisherSpec,
    codec: Codec,
    shared: Arc<RunShared>,
    template: Publish,
    inflight: HashMap<u16, Awaiting>,
    next_id: PacketId,
    /// Start of the schedule and messages sent on it.
    schedule: Option<(Instant, u64)>,
    warmup_seq: u64,
    measured_seq: u64,
    stopped: bool,
    /// Every message published, and those given up on by the QoS 0 window.
    published_all: u64,
    forgiven: u64,
    /// When the QoS 0 window last blocked, and the deliveries then.
    blocked: Option<(Instant, u64)>,
    /// Schedule lag of the measured messages queued in this pass, microseconds.
    lags: Vec<u64>,
    // Deltas not yet added to the shared counters.
    published: u64,
    acked: u64,
    rejected: u64,
    completed: u64,
}

impl Publisher {
    /// A publisher that encodes with `codec`.
    pub fn new(spec: PublisherSpec, codec: Codec, shared: Arc<RunShared>) -> Self {
        let template = Publish {
            dup: false,
            qos: spec.qos,
            retain: false,
            topic: spec.topic.clone(),
            packet_id: None,
            properties: PublishProperties::default(),
            payload: spec.zero_payload.clone(),
        };
        Self {
            spec,
            codec,
            shared,
            template,
            inflight: HashMap::new(),
            next_id: PacketId::from(std::num::NonZeroU16::MIN),
            schedule: None,
            warmup_seq: 0,
            measured_seq: 0,
            stopped: false,
            published_all: 0,
            forgiven: 0,
            blocked: None,
            lags: Vec::new(),
            published: 0,
            acked: 0,
            rejected: 0,
            completed: 0,
        }
    }

    /// Messages it may queue now, and when to look again if that is limited by time.
    fn budget(&mut self, now: Instant, queued: usize) -> (u64, Option<Instant>) {
        if queued >= HIGH_WATER {
            return (0, None); // woken again when the write completes
        }
        let window = if self.spec.qos == QoS::AtMostOnce {
            BATCH_MAX
        } else {
            (u64::from(self.spec.window))
                .saturating_sub(self.inflight.len() as u64)
                .min(BATCH_MAX)
        };
        match self.spec.rate {
            Rate::Max if self.spec.qos == QoS::AtMostOnce => {
                if queued > LOW_WATER {
                    return (0, None);
                }
                let message_len = self.spec.zero_payload.len() + 64;
                let chunk = ((2 * LOW_WATER) / message_len).clamp(1, BATCH_MAX as usize) as u64;
                if self.spec.fan == 0 {
                    return (chunk, None); // nobody to hear it: only TCP holds it back
                }
                self.delivery_window(now, chunk)
            }
            Rate::Max => (window, None),
            Rate::PerSecond(rate) => {
                let (start, sent) = *self.schedule.get_or_insert((now + self.spec.offset, 0));
                if now < start {
                    return (0, Some(start));
                }
                let due = (now.duration_since(start).as_secs_f64() * rate) as u64 + 1;
                let count = due.saturating_sub(sent).min(window);
                let next = if count == due.saturating_sub(sent) {
                    Some(start + Duration::from_secs_f64((sent + count) as f64 / rate))
                } else {
                    None // limited by the window: an ack wakes us
                };
                (count, next)
            }
        }
    }

    /// The QoS 0 end-to-end window: at most `window` messages published and not yet received
    /// by all `fan` trackers. Without it a `max` QoS 0 run fills every socket buffer on the way
    /// and measures seconds of queueing instead of the broker.
    fn delivery_window(&mut self, now: Instant, chunk: u64) -> (u64, Option<Instant>) {
        let slot = &self.shared.publishers[self.spec.id as usize];
        let fan = u64::from(self.spec.fan);
        let outstanding =
            |received: u64| (self.published_all - self.forgiven).saturating_sub(received / fan);
        let window = u64::from(self.spec.window);
        let received = slot.received.load(Ordering::SeqCst);
        let Some((since, seen)) = self.blocked else {
            let open = window.saturating_sub(outstanding(received));
            if open > 0 {
                return (open.min(chunk), None);
            }
            // Full: sleep until half the window is free, then write half a window at once.
            let resume = (self.published_all - self.forgiven).saturating_sub(window / 2);
            let received = slot.block(resume * fan);
            if outstanding(received) > window / 2 {
                self.blocked = Some((now, received));
                return (0, Some(now + STALL));
            }
            slot.waiting.store(false, Ordering::SeqCst);
            return (
                window.saturating_sub(outstanding(received)).min(chunk),
                None,
            );
        };
        if outstanding(received) <= window / 2 {
            slot.waiting.store(false, Ordering::SeqCst);
            self.blocked = None;
            return (
                window.saturating_sub(outstanding(received)).min(chunk),
                None,
            );
        }
        if received != seen {
            // Still moving, just slowly: not a stall.
            self.blocked = Some((now, received));
            return (0, Some(now + STALL));
        }
        if now < since + STALL {
            return (0, Some(since + STALL));
        }
        // Nothing arrived for a while: the broker dropped the rest; stop waiting for it.
        self.forgiven += outstanding(received);
        slot.waiting.store(false, Ordering::SeqCst);
        self.blocked = None;
        (window.min(chunk), None)
    }

    fn due_time(&self, index: u64) -> Option<Instant> {
        match (self.spec.rate, self.schedule) {
            (Rate::PerSecond(rate), Some((start, _))) => {
                Some(start + Duration::from_secs_f64(index as f64 / rate))
            }
            _ => None,
        }
    }

    fn publish_one(
        &mut self,
        now: Instant,
        measured: bool,
        out: &mut BytesMut,
    ) -> Result<(), String> {
        let packet_id = if self.spec.qos == QoS::AtMostOnce {
            None
        } else {
            let id = self.allocate_id()?;
            let flight = if self.spec.qos == QoS::AtLeastOnce {
                Awaiting::Ack
            } else {
                Awaiting::Rec
            };
            self.inflight.insert(id.get(), flight);
            Some(id)
        };
        self.template.packet_id = packet_id;
        self.template
            .encode_header(self.codec.version, out)
            .map_err(|e| format!("cannot encode PUBLISH: {e}"))?;
        if measured {
            if let Some(due) = self.schedule.and_then(|(_, sent)| self.due_time(sent)) {
                let lag = now.saturating_duration_since(due).as_micros();
                self.lags.push(u64::try_from(lag).unwrap_or(u64::MAX));
            }
        }
        let seq = if measured {
            &mut self.measured_seq
        } else {
            &mut self.warmup_seq
        };
        let stamp = Stamp {
            nonce: self.shared.nonce,
            publisher: self.spec.id,
            seq: *seq,
            measured,
            sent_ns: self.shared.nanos_since_epoch(now),
        };
        *seq += 1;
        stamp.write(self.spec.zero_payload.len() - HEADER_LEN, out);
        if let Some((_, sent)) = &mut self.schedule {
            *sent += 1;
        }
        self.published += 1;
        self.published_all += 1;
        Ok(())
    }

    fn allocate_id(&mut self) -> Result<PacketId, String> {
        // The window is at most 65,535, so a free id is found within one lap.
        for _ in 0..=u16::MAX {
            let id = self.next_id;
            self.next_id = id.next();
            if !self.inflight.contains_key(&id.get()) {
                return Ok(id);
            }
        }
        Err("no free packet id".into())
    }

    fn complete(
        &mut self,
        response: &PubResponse,
        expected: Awaiting,
        name: &str,
    ) -> Result<(), String> {
        let id = response.packet_id.get();
        match self.inflight.get(&id) {
            Some(&flight) if flight == expected => {}
            Some(flight) => return Err(format!("{name} for packet id {id} in state {flight:?}")),
            None => return Err(format!("{name} for unknown packet id {id}")),
        }
        self.inflight.remove(&id);
        self.completed += 1;
        if response.reason_code.is_success() {
            self.acked += 1;
        } else {
            self.rejected += 1;
        }
        Ok(())
    }

    fn flush_counters(&mut self) {
        let counters = &self.shared.blocks[self.spec.block].counters;
        counters.published.add(self.published);
        if self.spec.qos != QoS::AtMostOnce {
            counters.inflight.add(self.published);
        }
        counters.inflight.sub(self.completed);
        counters.acked.add(self.acked);
        counters.rejected.add(self.rejected);
        self.published = 0;
        self.completed = 0;
        self.acked = 0;
        self.rejected = 0;
        let slot = &self.shared.publishers[self.spec.id as usize];
        slot.measured.set(self.measured_seq);
        self.shared.blocks[self.spec.block].record_lags(&self.lags);
        self.lags.clear();
    }
}

impl Role for Publisher {
    /// The QoS 0 window's wake-up, for publishers that have one.
    fn wake_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        let uses_window =
            self.spec.qos == QoS::AtMostOnce && self.spec.rate == Rate::Max && self.spec.fan > 0;
        uses_window.then(|| Arc::clone(&self.shared.publishers[self.spec.id as usize].credit))
    }

    fn on_packet(&mut self, packet: Packet, _: Instant, out: &mut BytesMut) -> Result<(), String> {
        match packet {
            Packet::PubAck(ack) => self.complete(&ack, Awaiting::Ack, "PUBACK"),
            Packet::PubRec(rec) => {
                let id = rec.packet_id.get();
                if self.inflight.get(&id) != Some(&Awaiting::Rec) {
                    return Err(format!("PUBREC for packet id {id} not awaiting one"));
                }
                if !rec.reason_code.is_success() {
                    // A failed PUBREC ends the flow: no PUBREL follows.
                    return self.complete(&rec, Awaiting::Rec, "PUBREC");
                }
                self.inflight.insert(id, Awaiting::Comp);
                let rel = Packet::PubRel(PubResponse::success(rec.packet_id));
                self.codec
                    .encode(&rel, out)
                    .map_err(|e| format!("cannot encode PUBREL: {e}"))
            }
            Packet::PubComp(comp) => self.complete(&comp, Awaiting::Comp, "PUBCOMP"),
            Packet::PubRel(rel) => {
                // Only follows a foreign QoS 2 PUBLISH answered below.
                let comp = Packet::PubComp(PubResponse::success(rel.packet_id));
                self.codec
                    .encode(&comp, out)
                    .map_err(|e| format!("cannot encode PUBCOMP: {e}"))
            }
            Packet::Publish(publish) => {
                // Publishers subscribe to nothing; still answer so the broker's flow completes.
                self.shared.blocks[self.spec.block].counters.foreign.add(1);
                answer_foreign(&self.codec, &publish, out)
            }
            other => Err(format!(
                "unexpected {} for a publisher",
                other.packet_type()
            )),
        }
    }

    fn end_batch(&mut self, _: Instant) {
        self.flush_counters();
    }

    fn generate(
        &mut self,
        now: Instant,
        phase: Phase,
        out: &mut BytesMut,
    ) -> Result<Option<Instant>, String> {
        if !phase.is_publishing() {
            if phase >= Phase::Drain && !self.stopped {
                self.stopped = true;
                self.flush_counters();
                self.shared.publishers[self.spec.id as usize]
                    .stopped
                    .store(true, Ordering::Release);
            }
            return Ok(None);
        }
        let (count, next) = self.budget(now, out.len());
        let measured = phase == Phase::Measure;
        for _ in 0..count {
            self.publish_one(now, measured, out)?;
        }
        if count > 0 {
            self.flush_counters();
        }
        Ok(next)
    }
}

/// Acknowledges a PUBLISH the role did not expect, so the broker's flow still completes.
pub fn answer_foreign(codec: &Codec, publish: &Publish, out: &mut BytesMut) -> Result<(), String> {
    let reply = match (publish.qos, publish.packet_id) {
        (QoS::AtMostOnce, _) | (_, None) => return Ok(()),
        (QoS::AtLeastOnce, Some(id)) => Packet::PubAck(PubResponse::success(id)),
        (QoS::ExactlyOnce, Some(id)) => Packet::PubRec(PubResponse::success(id)),
    };
    codec
        .encode(&reply, out)
        .map_err(|e| format!("cannot encode acknowledgement: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling::protocol::{ProtocolVersion, ReasonCode};

    fn publisher(qos: QoS, rate: Rate, window: u16) -> (Publisher, Arc<RunShared>) {
        let shared = Arc::new(RunShared::new(7, 1, 1, 0));
        let spec = PublisherSpec {
            id: 0,
            block: 0,
            topic: TopicName::new("t/0").unwrap(),
            qos,
            zero_payload: Bytes::from(vec![0u8; 32]),
            rate,
            offset: Duration::ZERO,
            window,
            fan: 1,
        };
        let codec = Codec::new(ProtocolVersion::V5);
        (Publisher::new(spec, codec, Arc::clone(&shared)), shared)
    }

    fn decode_all(codec: &Codec, out: &mut BytesMut) -> Vec<Packet> {
        std::iter::from_fn(|| codec.decode(out).unwrap()).collect()
    }

    #[test]
    fn qos2_flow_completes_within_the_window() {
        let (mut publisher, shared) = publisher(QoS::ExactlyOnce, Rate::Max, 3);
        let codec = publisher.codec;
        let now = Instant::now();
        let mut out = BytesMut::new();
        publisher.generate(now, Phase::Measure, &mut out).unwrap();
        let sent = decode_all(&codec, &mut out);
        assert_eq!(sent.len(), 3, "the window bounds the burst");
        let Packet::Publish(first) = &sent[0] else {
            panic!("expected PUBLISH")
        };
        let stamp = Stamp::read(&first.payload).unwrap();
        assert_eq!(
            (stamp.nonce, stamp.publisher, stamp.seq, stamp.measured),
            (7, 0, 0, true)
        );
        assert_eq!(first.payload.len(), 32);
        let id = first.packet_id.unwrap();

        publisher
            .on_packet(Packet::PubRec(PubResponse::success(id)), now, &mut out)
            .unwrap();
        assert!(
            matches!(decode_all(&codec, &mut out)[..], [Packet::PubRel(ref rel)] if rel.packet_id == id)
        );
        assert!(publisher
            .on_packet(Packet::PubRec(PubResponse::success(id)), now, &mut out)
            .is_err());
        publisher
            .on_packet(Packet::PubComp(PubResponse::success(id)), now, &mut out)
            .unwrap();
        publisher.end_batch(now);
        assert_eq!(shared.blocks[0].counters.acked.get(), 1);
        assert_eq!(shared.blocks[0].counters.inflight.get(), 2);

        publisher.generate(now, Phase::Measure, &mut out).unwrap();
        assert_eq!(decode_all(&codec, &mut out).len(), 1, "one slot was freed");
        assert_eq!(shared.publishers[0].measured.get(), 4);
    }

    #[test]
    fn failed_puback_counts_as_rejected() {
        let (mut publisher, shared) = publisher(QoS::AtLeastOnce, Rate::Max, 1);
        let codec = publisher.codec;
        let now = Instant::now();
        let mut out = BytesMut::new();
        publisher.generate(now, Phase::Warmup, &mut out).unwrap();
        let [Packet::Publish(publish)] = &decode_all(&codec, &mut out)[..] else {
            panic!()
        };
        let mut ack = PubResponse::success(publish.packet_id.unwrap());
        ack.reason_code = ReasonCode::NOT_AUTHORIZED;
        publisher
            .on_packet(Packet::PubAck(ack), now, &mut out)
            .unwrap();
        publisher.end_batch(now);
        assert_eq!(shared.blocks[0].counters.rejected.get(), 1);
        assert_eq!(
            shared.publishers[0].measured.get(),
            0,
            "warm-up messages are not measured"
        );
    }

    #[test]
    fn qos0_max_waits_for_deliveries_then_gives_up_on_lost_ones() {
        let (mut publisher, shared) = publisher(QoS::AtMostOnce, Rate::Max, 4);
        let codec = publisher.codec;
        let start = Instant::now();
        let mut out = BytesMut::new();
        assert_eq!(
            publisher.generate(start, Phase::Measure, &mut out).unwrap(),
            None
        );
        assert_eq!(
            decode_all(&codec, &mut out).len(),
            4,
            "the window bounds the burst"
        );
        let wake = publisher.generate(start, Phase::Measure, &mut out).unwrap();
        assert_eq!(
            wake,
            Some(start + STALL),
            "blocked until deliveries or the stall timer"
        );
        assert!(out.is_empty());
        shared.publishers[0].deliver(3);
        publisher.generate(start, Phase::Measure, &mut out).unwrap();
        assert_eq!(
            decode_all(&codec, &mut out).len(),
            3,
            "each delivery frees a slot"
        );
        publisher.generate(start, Phase::Measure, &mut out).unwrap();
        publisher
            .generate(start + STALL, Phase::Measure, &mut out)
            .unwrap();
        assert_eq!(
            decode_all(&codec, &mut out).len(),
            4,
            "a stalled window gives up on the rest"
        );
    }

    #[test]
    fn fixed_rate_follows_the_schedule() {
        let (mut publisher, _) = publisher(QoS::AtMostOnce, Rate::PerSecond(100.0), 1);
        let codec = publisher.codec;
        let start = Instant::now();
        let mut out = BytesMut::new();
        let next = publisher.generate(start, Phase::Measure, &mut out).unwrap();
        assert_eq!(decode_all(&codec, &mut out).len(), 1);
        assert_eq!(next, Some(start + Duration::from_millis(10)));
        publisher
            .generate(start + Duration::from_millis(55), Phase::Measure, &mut out)
            .unwrap();
        assert_eq!(
            decode_all(&codec, &mut out).len(),
            5,
            "catches up to the schedule"
        );
        assert_eq!(
            publisher.generate(start, Phase::Drain, &mut out).unwrap(),
            None
        );
        assert!(out.is_empty());
    }
}
