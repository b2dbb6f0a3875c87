//! The shard engine: the sessions, subscription table and retained messages of one shard, and
//! the routing between them. It turns what the session state machines ask for into queue
//! writes, routes, subscriptions and closes.
//!
//! Executor-free: connection tasks call it with packets and the time; it writes into each
//! connection's [`ConnectionHandle`] and wakes the writer. So it is tested without sockets. It
//! never blocks and never awaits; everything it holds is bounded by the session limits and the
//! outbound budgets.
//!
//! This is the single-shard core. Forwarding to other shards (interest table, mesh) and the
//! client-id registry across shards build on it.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::protocol::{
    ClientId, ConnAck, Connect, Packet, PublishProperties, ReasonCode, RetainHandling, Will,
};
use crate::session::{
    Action, BrokerLimits, Close, Delivery, DropReason, Message, Outgoing, Session, SubscribeRequest,
};
use crate::topic::{RetainedStore, ShareStrategy, SubscriberOptions, SubscriptionTable};

use super::connection_handle::ConnectionHandle;
use super::counters::ShardCounters;

/// Spare action buffers kept per shard (routing nests a few deep).
const MAX_SPARE_ACTION_BUFFERS: usize = 8;

/// Index of a session on its shard.
pub type SessionKey = u32;

struct Slot {
    session: Session,
    connection: Option<Rc<ConnectionHandle>>,
    /// When a detached session ends, if no client resumes it first.
    expires_at: Option<Instant>,
    /// A will waiting for its delay (5.0 Will Delay Interval).
    pending_will: Option<(Instant, Will)>,
}

/// How a CONNECT was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// Accepted: the connection now serves this session.
    Accepted(SessionKey),
    /// Refused: the CONNACK carries the reason and the connection closes.
    Refused,
}

/// The shard's state.
pub struct ShardEngine {
    limits: Arc<BrokerLimits>,
    allow_empty_client_id: bool,
    slots: Vec<Option<Slot>>,
    free_slots: Vec<SessionKey>,
    by_client: HashMap<ClientId, SessionKey>,
    subscriptions: SubscriptionTable<SessionKey>,
    retained: RetainedStore<Arc<Message>>,
    counters: ShardCounters,
    assigned_ids: u64,
    shard_index: usize,
    recipients: Vec<crate::topic::Recipient<SessionKey>>,
    /// Emptied action buffers, reused by `handle_packet`, `deliver` and friends.
    spare_actions: Vec<Vec<Action>>,
}

impl std::fmt::Debug for ShardEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardEngine")
            .field("shard", &self.shard_index)
            .field("sessions", &self.by_client.len())
            .field("retained", &self.retained.len())
            .finish_non_exhaustive()
    }
}

impl ShardEngine {
    /// An empty shard.
    pub fn new(
        shard_index: usize,
        limits: Arc<BrokerLimits>,
        allow_empty_client_id: bool,
        strategy: ShareStrategy,
    ) -> Self {
        Self {
            limits,
            allow_empty_client_id,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_client: HashMap::new(),
            subscriptions: SubscriptionTable::new(strategy),
            retained: RetainedStore::new(),
            counters: ShardCounters::default(),
            assigned_ids: 0,
            shard_index,
            recipients: Vec::new(),
            spare_actions: Vec::new(),
        }
    }

    /// The shard's counters.
    pub fn counters(&self) -> &ShardCounters {
        &self.counters
    }

    /// Sessions on this shard, connected or not.
    pub fn session_count(&self) -> usize {
        self.by_client.len()
    }

    /// Answers a CONNECT: takes over or resumes an existing session, or makes a new one, and
    /// queues the CONNACK (and any redeliveries) on `connection`.
    pub fn connect(
        &mut self,
        now: Instant,
        connect: &Connect,
        connection: Rc<ConnectionHandle>,
    ) -> ConnectOutcome {
        let v5 = connect.protocol.is_v5();
        let mut client_id = connect.client_id.clone();
        let mut assigned = false;
        if client_id.is_empty() {
            // 3.1.1 [MQTT-3.1.3-8]: an empty id needs clean session; 3.1 has no empty ids.
            let allowed = self.allow_empty_client_id
                && (v5
                    || (connect.clean_start
                        && connect.protocol != crate::protocol::ProtocolVersion::V3_1));
            if !allowed {
                return self.refuse(&connection, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
            }
            self.assigned_ids += 1;
            let text = format!("starling-{}-{}", self.shard_index, self.assigned_ids);
            client_id = match ClientId::new(&text) {
                Ok(id) => id,
                Err(_) => return self.refuse(&connection, ReasonCode::UNSPECIFIED_ERROR),
            };
            assigned = true;
        }

        let existing = self.by_client.get(&client_id).copied();
        if let Some(key) = existing {
            // Takeover: the old connection goes, with 0x8E for 5.0 clients, and its will is
            // published unless the new connection resumes the session (spec 3.1.4).
            let resume = !connect.clean_start;
            if let Some(old) = self.slot_mut(key).and_then(|slot| slot.connection.take()) {
                old.request_close(Close {
                    reason: ReasonCode::SESSION_TAKEN_OVER,
                    send_disconnect: true,
                    publish_will: !resume,
                });
                self.counters.takeovers += 1;
            }
            let detached = self.slot_mut(key).map(|slot| slot.session.detach(!resume));
            if let Some(will) = detached.and_then(|detached| detached.will) {
                self.publish_will(now, &client_id, will);
            }
            if !resume {
                self.remove_session(key);
            }
        }

        let (key, session_present) = match self.by_client.get(&client_id).copied() {
            Some(key) => (key, true),
            None => (self.insert_session(client_id.clone()), false),
        };
        let mut actions = self.spare_actions.pop().unwrap_or_default();
        let Some(slot) = self.slot_mut(key) else {
            return self.refuse(&connection, ReasonCode::UNSPECIFIED_ERROR);
        };
        slot.expires_at = None;
        slot.pending_will = None;
        slot.connection = Some(Rc::clone(&connection));
        let connack = slot
            .session
            .connect(now, connect, session_present, assigned, &mut actions);
        self.send_packet(&connection, &Packet::ConnAck(connack));
        self.counters.connections_accepted += 1;
        self.apply(now, key, actions);
        ConnectOutcome::Accepted(key)
    }

    fn refuse(&mut self, connection: &ConnectionHandle, reason: ReasonCode) -> ConnectOutcome {
        let connack = ConnAck {
            session_present: false,
            reason_code: reason,
            properties: Default::default(),
        };
        self.send_packet(connection, &Packet::ConnAck(connack));
        connection.request_close(Close {
            reason,
            send_disconnect: false,
            publish_will: false,
        });
        self.counters.connections_refused += 1;
        ConnectOutcome::Refused
    }

    fn insert_session(&mut self, client_id: ClientId) -> SessionKey {
        let session = Session::new(client_id.clone(), Arc::clone(&self.limits));
        let slot = Slot {
            session,
            connection: None,
            expires_at: None,
            pending_will: None,
        };
        let key = match self.free_slots.pop() {
            Some(key) => {
                self.slots[key as usize] = Some(slot);
                key
            }
            None => {
                self.slots.push(Some(slot));
                // A shard holds far fewer than 2^32 sessions: file descriptors run out first.
                (self.slots.len() - 1) as SessionKey
            }
        };
        self.by_client.insert(client_id, key);
        key
    }

    fn remove_session(&mut self, key: SessionKey) {
        if let Some(slot) = self.slots.get_mut(key as usize).and_then(Option::take) {
            self.by_client.remove(slot.session.client_id());
            self.subscriptions.remove_session(key);
            self.free_slots.push(key);
        }
    }

    fn slot_mut(&mut self, key: SessionKey) -> Option<&mut Slot> {
        self.slots.get_mut(key as usize).and_then(Option::as_mut)
    }

    /// A packet from the connection serving `key`.
    pub fn handle_packet(&mut self, now: Instant, key: SessionKey, packet: Packet) {
        let mut actions = self.spare_actions.pop().unwrap_or_default();
        if let Some(slot) = self.slot_mut(key) {
            slot.session.handle_packet(now, packet, &mut actions);
        }
        self.apply(now, key, actions);
    }

    /// When the connection serving `key` must next call [`Self::handle_timeout`].
    pub fn next_timeout(&self, key: SessionKey) -> Option<Instant> {
        self.slots
            .get(key as usize)?
            .as_ref()?
            .session
            .next_timeout()
    }

    /// Checks the keep-alive of the connection serving `key`.
    pub fn handle_timeout(&mut self, now: Instant, key: SessionKey) {
        let mut actions = self.spare_actions.pop().unwrap_or_default();
        if let Some(slot) = self.slot_mut(key) {
            slot.session.handle_timeout(now, &mut actions);
        }
        self.apply(now, key, actions);
    }

    /// The connection serving `key` has ended. `close` is how, when the session asked for it;
    /// `None` means the network dropped it (an unclean close: the will is published).
    pub fn connection_closed(
        &mut self,
        now: Instant,
        key: SessionKey,
        connection: &Rc<ConnectionHandle>,
        close: Option<Close>,
    ) {
        let Some(slot) = self.slot_mut(key) else {
            return;
        };
        // A connection already taken over no longer owns the session.
        if !slot
            .connection
            .as_ref()
            .is_some_and(|current| Rc::ptr_eq(current, connection))
        {
            return;
        }
        slot.connection = None;
        let publish_will = close.map_or(true, |close| close.publish_will);
        let detached = slot.session.detach(publish_will);
        let client_id = slot.session.client_id().clone();
        if let Some(will) = detached.will {
            let delay = will.properties.will_delay_interval.unwrap_or(0);
            let delay = Duration::from_secs(u64::from(delay)).min(detached.expiry);
            if delay.is_zero() {
                self.publish_will(now, &client_id, will);
            } else if let Some(slot) = self.slot_mut(key) {
                slot.pending_will = Some((now + delay, will));
            }
        }
        if detached.expiry.is_zero() {
            self.remove_session(key);
        } else if let Some(slot) = self.slot_mut(key) {
            slot.expires_at = now.checked_add(detached.expiry);
        }
    }

    /// Publishes wills whose delay has passed and ends sessions whose expiry has passed. The
    /// shard calls it about once a second.
    pub fn tick(&mut self, now: Instant) {
        let mut due_wills = Vec::new();
        let mut expired = Vec::new();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot else { continue };
            if slot.pending_will.as_ref().is_some_and(|(at, _)| *at <= now) {
                if let Some((_, will)) = slot.pending_will.take() {
                    due_wills.push((slot.session.client_id().clone(), will));
                }
            }
            if slot.expires_at.is_some_and(|at| at <= now) {
                // A session ending with its will still delayed publishes the will now.
                if let Some((_, will)) = slot.pending_will.take() {
                    due_wills.push((slot.session.client_id().clone(), will));
                }
                expired.push(index as SessionKey);
            }
        }
        for (client_id, will) in due_wills {
            self.publish_will(now, &client_id, will);
        }
        for key in expired {
            self.remove_session(key);
            self.counters.sessions_expired += 1;
        }
    }

    fn publish_will(&mut self, now: Instant, client_id: &ClientId, will: Will) {
        let props = will.properties;
        let properties = PublishProperties {
            payload_format_indicator: props.payload_format_indicator,
            message_expiry_interval: props.message_expiry_interval,
            content_type: props.content_type,
            response_topic: props.response_topic,
            correlation_data: props.correlation_data,
            user_properties: props.user_properties,
            ..PublishProperties::default()
        };
        let message = Message {
            expires_at: properties
                .message_expiry_interval
                .map(|secs| now + Duration::from_secs(u64::from(secs))),
            topic: will.topic,
            payload: will.payload,
            qos: will.qos,
            retain: will.retain,
            properties,
            origin: client_id.clone(),
        };
        self.counters.wills_published += 1;
        self.route(now, None, Arc::new(message));
    }

    /// Carries out a session's actions.
    fn apply(&mut self, now: Instant, key: SessionKey, mut actions: Vec<Action>) {
        for action in actions.drain(..) {
            match action {
                Action::Send(outgoing) => self.send_to(key, &outgoing),
                Action::Route(message) => self.route(now, Some(key), message),
                Action::Subscribe(request) => self.subscribe(now, key, request),
                Action::Unsubscribe(filters) => {
                    for filter in &filters {
                        self.subscriptions.unsubscribe(key, filter);
                    }
                }
                Action::Close(close) => {
                    if let Some(connection) =
                        self.slot_mut(key).and_then(|slot| slot.connection.clone())
                    {
                        connection.request_close(close);
                    }
                }
                Action::Dropped(reason) => self.counters.count_drop(reason),
            }
        }
        // Kept for the next packet or delivery: no allocation per message once warm. Routing
        // re-enters `apply`, so a few buffers are in use at once; the pool stays that small.
        if self.spare_actions.len() < MAX_SPARE_ACTION_BUFFERS {
            self.spare_actions.push(actions);
        }
    }

    fn send_to(&mut self, key: SessionKey, outgoing: &Outgoing) {
        let Some(connection) = self.slot_mut(key).and_then(|slot| slot.connection.clone()) else {
            return;
        };
        let result = match outgoing {
            Outgoing::Packet(packet) => connection.outbound.borrow_mut().push_packet(packet),
            Outgoing::Publish(publish) => connection.outbound.borrow_mut().push_publish(publish),
        };
        match result {
            Ok(()) => connection.writer_wake.notify(),
            Err(crate::net::QueueError::OverBudget) => {
                self.counters.count_drop(DropReason::QueueFull)
            }
            Err(crate::net::QueueError::Encode(_)) => self.counters.encode_errors += 1,
        }
    }

    fn send_packet(&mut self, connection: &ConnectionHandle, packet: &Packet) {
        if connection
            .outbound
            .borrow_mut()
            .push_packet(packet)
            .is_err()
        {
            self.counters.encode_errors += 1;
        }
        connection.writer_wake.notify();
    }

    /// Routes a message to every matching session on this shard and keeps it if retained.
    fn route(&mut self, now: Instant, publisher: Option<SessionKey>, message: Arc<Message>) {
        self.counters.messages_received += 1;
        if message.retain {
            self.store_retained(&message);
        }
        let mut recipients = std::mem::take(&mut self.recipients);
        recipients.clear();
        self.subscriptions
            .match_topic(&message.topic, publisher, &mut recipients);
        for recipient in recipients.drain(..) {
            let delivery = Delivery {
                message: Arc::clone(&message),
                qos: recipient.qos.min(message.qos),
                retain: recipient.retain_as_published && message.retain,
                subscription_ids: recipient.subscription_ids,
            };
            self.deliver(now, recipient.session, delivery);
        }
        self.recipients = recipients;
    }

    fn store_retained(&mut self, message: &Message) {
        if message.payload.is_empty() {
            self.retained.remove(&message.topic);
            return;
        }
        // Kept for long: copied once so it does not pin the publisher's read buffer.
        let owned = Message {
            payload: Bytes::copy_from_slice(&message.payload),
            ..message.clone()
        };
        self.retained.set(&message.topic, Arc::new(owned));
    }

    fn deliver(&mut self, now: Instant, key: SessionKey, delivery: Delivery) {
        let mut actions = self.spare_actions.pop().unwrap_or_default();
        if let Some(slot) = self.slot_mut(key) {
            slot.session.deliver(now, delivery, &mut actions);
        }
        self.counters.deliveries += 1;
        self.apply(now, key, actions);
    }

    /// Adds the subscriptions, sends the SUBACK (on one shard the route is in force at once),
    /// then the retained messages the options ask for.
    fn subscribe(&mut self, now: Instant, key: SessionKey, request: SubscribeRequest) {
        for entry in &request.entries {
            let options = SubscriberOptions::new(&entry.options, entry.id);
            self.subscriptions.subscribe(key, &entry.filter, options);
        }
        self.send_to(key, &Outgoing::Packet(request.suback()));
        for entry in &request.entries {
            let wanted = match entry.options.retain_handling {
                RetainHandling::SendAtSubscribe => true,
                RetainHandling::SendIfNew => !entry.existed,
                RetainHandling::DoNotSend => false,
            };
            // Spec 4.8.2: retained messages are not sent for shared subscriptions.
            if !wanted || entry.filter.shared().is_some() {
                continue;
            }
            let mut matching = Vec::new();
            self.retained
                .for_each_matching(&entry.filter, |message| matching.push(Arc::clone(message)));
            for message in matching {
                let mut subscription_ids = crate::session::SubscriptionIds::default();
                if let Some(id) = entry.id {
                    subscription_ids.push(id);
                }
                let delivery = Delivery {
                    qos: entry.options.qos.min(message.qos),
                    message,
                    retain: true,
                    subscription_ids,
                };
                self.deliver(now, key, delivery);
            }
        }
    }

    /// Closes every connection for shutdown (5.0 clients get 0x8B); wills are published as the
    /// connections end.
    pub fn shutdown(&mut self) {
        for slot in self.slots.iter().flatten() {
            if let Some(connection) = &slot.connection {
                connection.request_close(Close {
                    reason: ReasonCode::SERVER_SHUTTING_DOWN,
                    send_disconnect: true,
                    publish_will: true,
                });
            }
        }
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
