//! The outbound QoS 1/2 window of one session: which packet ids are in use, what each one is
//! waiting for, and the queue of messages waiting for a free slot.
//!
//! The window is bounded by the client's Receive Maximum; the queue behind it by the broker's
//! `max_queued_messages`. When the queue is full a new QoS 1/2 message is refused and counted
//! by the caller: nothing here grows without a bound.

use std::collections::{HashMap, VecDeque};

use crate::protocol::{PacketId, QoS};

use super::message::OutgoingPublish;

/// What an outbound packet id is waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InflightState {
    /// QoS 1 PUBLISH sent, waiting for PUBACK.
    AwaitingPubAck(OutgoingPublish),
    /// QoS 2 PUBLISH sent, waiting for PUBREC.
    AwaitingPubRec(OutgoingPublish),
    /// PUBREL sent, waiting for PUBCOMP; the message itself is no longer needed.
    AwaitingPubComp,
}

/// Outcome of an acknowledgement from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// The id was waiting for exactly this acknowledgement; the slot state moved on.
    Accepted,
    /// No id waited for it (a late duplicate, or a client bug).
    Unknown,
}

/// The outbound window and its overflow queue.
#[derive(Debug)]
pub struct Inflight {
    in_flight: HashMap<PacketId, InflightState>,
    /// Order the ids were sent in, for redelivery in order after a reconnect.
    send_order: VecDeque<PacketId>,
    waiting: VecDeque<OutgoingPublish>,
    next_id: PacketId,
    max_waiting: usize,
    /// Bytes (topic and payload) of the queued messages, and their bound.
    waiting_bytes: usize,
    max_waiting_bytes: usize,
}

impl Inflight {
    /// An empty window whose queue holds at most `max_waiting` messages and, of those, at
    /// most `max_waiting_bytes` of topics and payloads.
    pub fn new(max_waiting: usize, max_waiting_bytes: usize) -> Self {
        Self {
            in_flight: HashMap::new(),
            send_order: VecDeque::new(),
            waiting: VecDeque::new(),
            next_id: PacketId::from(std::num::NonZeroU16::MIN),
            max_waiting,
            waiting_bytes: 0,
            max_waiting_bytes,
        }
    }

    /// Packet ids currently in use.
    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    /// Messages queued behind the window.
    pub fn waiting_len(&self) -> usize {
        self.waiting.len()
    }

    /// True when nothing is in flight or queued.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty() && self.waiting.is_empty()
    }

    /// Queues a QoS 1/2 message behind the window. Returns it back when the queue is full,
    /// by count or by bytes.
    pub fn enqueue(&mut self, publish: OutgoingPublish) -> Result<(), OutgoingPublish> {
        let size = queued_size(&publish);
        if self.waiting.len() >= self.max_waiting
            || self.waiting_bytes.saturating_add(size) > self.max_waiting_bytes
        {
            return Err(publish);
        }
        self.waiting_bytes += size;
        self.waiting.push_back(publish);
        Ok(())
    }

    /// Bytes of topics and payloads queued behind the window.
    pub fn waiting_bytes(&self) -> usize {
        self.waiting_bytes
    }

    fn pop_waiting(&mut self) -> Option<OutgoingPublish> {
        let publish = self.waiting.pop_front()?;
        self.waiting_bytes -= queued_size(&publish);
        Some(publish)
    }

    /// Takes the next queued message if the window (of `window` ids) has room, gives it a
    /// packet id and records it as in flight. Returns the PUBLISH to send.
    pub fn send_next(&mut self, window: usize) -> Option<OutgoingPublish> {
        if self.in_flight.len() >= window || self.in_flight.len() >= usize::from(u16::MAX) {
            return None;
        }
        let mut publish = self.pop_waiting()?;
        let packet_id = self.allocate_id();
        publish.packet_id = Some(packet_id);
        let state = match publish.qos {
            QoS::ExactlyOnce => InflightState::AwaitingPubRec(publish.clone()),
            // QoS 0 never enters the window; treat anything else as QoS 1.
            _ => InflightState::AwaitingPubAck(publish.clone()),
        };
        self.in_flight.insert(packet_id, state);
        self.send_order.push_back(packet_id);
        Some(publish)
    }

    /// Drops queued messages from the front while `is_expired` says so, handing each to
    /// `dropped`. Messages further back are checked when they reach the front.
    pub fn drop_expired_front(
        &mut self,
        mut is_expired: impl FnMut(&OutgoingPublish) -> bool,
        mut dropped: impl FnMut(OutgoingPublish),
    ) {
        while self.waiting.front().is_some_and(&mut is_expired) {
            if let Some(publish) = self.pop_waiting() {
                dropped(publish);
            }
        }
    }

    /// The message in flight under `packet_id` while it still waits for its PUBACK or PUBREC
    /// (for reporting the acknowledgement before [`Self::on_puback`]/[`Self::on_pubrec`]).
    pub fn awaiting_ack(&self, packet_id: PacketId) -> Option<&OutgoingPublish> {
        match self.in_flight.get(&packet_id) {
            Some(
                InflightState::AwaitingPubAck(publish) | InflightState::AwaitingPubRec(publish),
            ) => Some(publish),
            _ => None,
        }
    }

    fn allocate_id(&mut self) -> PacketId {
        // The caller checked that fewer than 65,535 ids are in use, so a free one exists.
        let mut id = self.next_id;
        while self.in_flight.contains_key(&id) {
            id = id.next();
        }
        self.next_id = id.next();
        id
    }

    /// PUBACK for `packet_id`: the publish it acknowledges, now out of the window, or `None`
    /// when no publish waited for a PUBACK under that id. One map lookup: with hundreds of
    /// sessions' windows the entry is rarely in cache, and the caller reports the ack from the
    /// returned publish instead of looking it up again.
    pub fn on_puback(&mut self, packet_id: PacketId) -> Option<OutgoingPublish> {
        match self.in_flight.remove(&packet_id)? {
            InflightState::AwaitingPubAck(publish) => {
                self.forget_send_order(packet_id);
                Some(publish)
            }
            // A PUBACK for a QoS 2 id: the client's bug; the exchange stays as it was.
            other => {
                self.in_flight.insert(packet_id, other);
                None
            }
        }
    }

    /// PUBREC for `packet_id`. A failure reason code ends the exchange (no PUBREL follows).
    pub fn on_pubrec(&mut self, packet_id: PacketId, success: bool) -> AckOutcome {
        match self.in_flight.get_mut(&packet_id) {
            Some(state @ InflightState::AwaitingPubRec(_)) => {
                if success {
                    *state = InflightState::AwaitingPubComp;
                } else {
                    self.release(packet_id);
                }
                AckOutcome::Accepted
            }
            // A PUBREC repeated after our PUBREL: answer with PUBREL again.
            Some(InflightState::AwaitingPubComp) => AckOutcome::Accepted,
            _ => AckOutcome::Unknown,
        }
    }

    /// PUBCOMP for `packet_id`.
    pub fn on_pubcomp(&mut self, packet_id: PacketId) -> AckOutcome {
        match self.in_flight.get(&packet_id) {
            Some(InflightState::AwaitingPubComp) => {
                self.release(packet_id);
                AckOutcome::Accepted
            }
            _ => AckOutcome::Unknown,
        }
    }

    /// Forgets an in-flight id without an acknowledgement: the message could not be sent to
    /// this client (too large) and counts as delivered.
    pub fn discard(&mut self, packet_id: PacketId) {
        self.release(packet_id);
    }

    fn release(&mut self, packet_id: PacketId) {
        self.in_flight.remove(&packet_id);
        self.forget_send_order(packet_id);
    }

    fn forget_send_order(&mut self, packet_id: PacketId) {
        // Acknowledgements mostly arrive in send order, so the id is usually at the front.
        if let Some(position) = self.send_order.iter().position(|&id| id == packet_id) {
            self.send_order.remove(position);
        }
    }

    /// Everything still in flight, in the order it was sent, for redelivery after the client
    /// reconnects: PUBLISHes with DUP set, and the ids that need their PUBREL again.
    pub fn redeliver(&mut self) -> Vec<Redelivery> {
        self.send_order
            .iter()
            .filter_map(|id| match self.in_flight.get_mut(id)? {
                InflightState::AwaitingPubAck(publish) | InflightState::AwaitingPubRec(publish) => {
                    publish.dup = true;
                    Some(Redelivery::Publish(publish.clone()))
                }
                InflightState::AwaitingPubComp => Some(Redelivery::PubRel(*id)),
            })
            .collect()
    }
}

/// One packet to send again after a reconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redelivery {
    /// An unacknowledged PUBLISH, DUP set.
    Publish(OutgoingPublish),
    /// A PUBREL whose PUBCOMP never came.
    PubRel(PacketId),
}

/// What a queued message counts against `mqtt.max_queued_bytes`: its topic and payload, the
/// parts that grow with what clients send (the rest is a small fixed size per message).
fn queued_size(publish: &OutgoingPublish) -> usize {
    publish.message.topic.as_str().len() + publish.message.payload.len()
}
