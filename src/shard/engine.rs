//! The shard engine: the sessions, subscription table and retained messages of one shard, and
//! the routing between them. It turns what the session state machines ask for into queue
//! writes, routes, subscriptions and closes.
//!
//! Executor-free: connection tasks call it with packets and the time; it writes into each
//! connection's [`ConnectionHandle`] and wakes the writer. So it is tested without sockets. It
//! never blocks and never awaits; everything it holds is bounded by the session limits and the
//! outbound budgets.
//!
//! With more than one shard, the engine also keeps the interest table and its part of the
//! client-id registry, and writes what other shards must know into per-shard outboxes that
//! the mesh tasks carry (`cluster.rs`); it still never waits for another shard.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::hooks::{
    ClientInfo, Decision, DecisionHooks, DeliverRequest, DisconnectReason, EventDetail, EventKind,
    EventKinds, EventSink, RegisterRequest, WallClock,
};
use crate::protocol::{
    ClientId, ConnAck, Connect, Packet, PublishProperties, QoS, ReasonCode, RetainHandling, Will,
};
use crate::session::{
    Action, Attach, BrokerLimits, Close, Delivery, DropReason, Message, Outgoing, Session,
    SessionContext, SubscribeRequest,
};
use crate::topic::{
    InterestTable, RetainedStore, ShardId, ShardSet, ShareStrategy, SubscriberOptions,
    SubscriptionTable,
};

use super::connection_handle::ConnectionHandle;
use super::counters::ShardCounters;
use super::notify::LocalNotify;
use super::remote::{RemoteBatch, RemoteMessage, RetainStamp};
use super::stats::ShardStats;
use super::system_topics::{SystemTopics, BROKER_CLIENT_ID};

mod cluster;
mod events;

use cluster::{PendingBarrier, PendingConnect};

/// Spare action buffers kept per shard (routing nests a few deep).
const MAX_SPARE_ACTION_BUFFERS: usize = 8;

/// Index of a session on its shard.
pub type SessionKey = u32;

struct Slot {
    /// Boxed so the slot table grows by small entries, not whole sessions.
    session: Box<Session>,
    connection: Option<Rc<ConnectionHandle>>,
    /// When a detached session ends, if no client resumes it first.
    expires_at: Option<Instant>,
    /// A will waiting for its delay (5.0 Will Delay Interval).
    pending_will: Option<(Instant, Will)>,
    /// Set on a stub: the session moved to this shard, and the routes left here forward to it.
    forward_to: Option<usize>,
    /// Who the client is, as of its last CONNECT here (for hooks and events).
    client: Option<Arc<ClientInfo>>,
}

/// How a CONNECT was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectOutcome {
    /// Accepted: the connection now serves this session.
    Accepted(SessionKey),
    /// Refused: the CONNACK carries the reason and the connection closes.
    Refused,
    /// Waiting for other shards (the client-id registry, a session moving here); the outcome
    /// arrives in the connection's [`ConnectionHandle::connect_outcome`].
    Pending,
}

/// A retained message and the stamp that orders concurrent writes of its topic.
#[derive(Debug, Clone)]
struct RetainedEntry {
    message: Arc<Message>,
    stamp: RetainStamp,
}

/// Where this shard sits in the broker, and its cross-shard state.
#[derive(Debug)]
struct Cluster {
    shard: usize,
    shard_count: usize,
    interest: InterestTable,
    /// What each peer shard is to be sent, and the wake-up of the task that sends it.
    outboxes: Vec<RemoteBatch>,
    outbox_wakes: Vec<Rc<LocalNotify>>,
    /// Messages an outbox may hold before connections stop reading (backpressure).
    outbox_limit: usize,
    /// This shard's part of the client-id registry: client id to the shard of its session.
    registry: HashMap<ClientId, usize>,
    pending_connects: HashMap<u64, PendingConnect>,
    /// Takes that arrived while this shard's own connect for the client id was pending.
    deferred_takes: HashMap<ClientId, (usize, u64, bool)>,
    next_token: u64,
    barriers: VecDeque<PendingBarrier>,
    next_barrier: u64,
    /// Scratch for share-group routing: each group's filter and the shard serving it.
    group_routes: Vec<(crate::protocol::TopicFilter, ShardId)>,
}

/// The shard's state.
pub struct ShardEngine {
    limits: Arc<BrokerLimits>,
    allow_empty_client_id: bool,
    slots: Vec<Option<Slot>>,
    free_slots: Vec<SessionKey>,
    by_client: HashMap<ClientId, SessionKey>,
    subscriptions: SubscriptionTable<SessionKey>,
    retained: RetainedStore<RetainedEntry>,
    counters: ShardCounters,
    assigned_ids: u64,
    cluster: Cluster,
    recipients: Vec<crate::topic::Recipient<SessionKey>>,
    /// Emptied action buffers, reused by `handle_packet`, `deliver` and friends.
    spare_actions: Vec<Vec<Action>>,
    /// The last QoS 0 packet encoded per protocol version, shared by identical deliveries.
    shared_encoding: super::shared_encoding::SharedEncoding,
    /// The decision hooks (empty chains allow everything at the cost of a length test).
    hooks: Rc<DecisionHooks>,
    /// Where events go, and the kinds anything (exporters, system topics) wants.
    events: EventSink,
    wanted_events: EventKinds,
    system_topics: SystemTopics,
    /// System messages made during the current call, routed at its end.
    system_pending: Vec<Arc<Message>>,
    /// The `$SYS/` stats topics this shard publishes (none unless installed).
    stats: ShardStats,
    clock: WallClock,
    /// The broker's node id, in every client's identity.
    node: u32,
    /// The broker as a client: the publisher of its own messages.
    broker_info: Arc<ClientInfo>,
}

impl std::fmt::Debug for ShardEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardEngine")
            .field("shard", &self.cluster.shard)
            .field("sessions", &self.by_client.len())
            .field("retained", &self.retained.len())
            .finish_non_exhaustive()
    }
}

impl ShardEngine {
    /// An empty shard that is the broker's only one; see [`Self::with_mesh`] for more.
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
            cluster: Cluster {
                shard: shard_index,
                shard_count: 1,
                interest: InterestTable::new(),
                outboxes: Vec::new(),
                outbox_wakes: Vec::new(),
                outbox_limit: usize::MAX,
                registry: HashMap::new(),
                pending_connects: HashMap::new(),
                deferred_takes: HashMap::new(),
                next_token: 0,
                barriers: VecDeque::new(),
                next_barrier: 0,
                group_routes: Vec::new(),
            },
            recipients: Vec::new(),
            spare_actions: Vec::new(),
            shared_encoding: Default::default(),
            hooks: Rc::default(),
            events: EventSink::disabled(),
            wanted_events: EventKinds::NONE,
            system_topics: SystemTopics::disabled(),
            system_pending: Vec::new(),
            stats: ShardStats::disabled(),
            clock: WallClock::start(),
            node: 0,
            broker_info: broker_info(0, shard_index),
        }
    }

    /// Sets the node id the events carry.
    pub fn with_node(mut self, node: u32) -> Self {
        self.node = node;
        self.broker_info = broker_info(node, self.cluster.shard);
        self
    }

    /// Makes this shard one of `shard_count`: routing consults the interest table, client ids
    /// go through the registry, and what peers must know is queued in per-peer outboxes (at
    /// most `outbox_limit` messages each before [`Self::mesh_congested`] says so).
    pub fn with_mesh(mut self, shard_count: usize, outbox_limit: usize) -> Self {
        let cluster = &mut self.cluster;
        cluster.shard_count = shard_count.max(1);
        cluster.outboxes = (0..shard_count).map(|_| Vec::new()).collect();
        cluster.outbox_wakes = (0..shard_count).map(|_| Rc::default()).collect();
        cluster.outbox_limit = outbox_limit.max(1);
        self
    }

    /// Counts a connection closed at accept for the per-shard connection limit.
    pub fn count_connection_over_limit(&mut self) {
        self.counters.connections_over_limit += 1;
    }

    /// This shard's index.
    pub fn shard_index(&self) -> usize {
        self.cluster.shard
    }

    /// The client id of the session `key`, if it exists.
    pub fn client_id(&self, key: SessionKey) -> Option<&ClientId> {
        Some(self.slots.get(key as usize)?.as_ref()?.session.client_id())
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
        let outcome = self.answer_connect(now, connect, connection);
        self.publish_system_messages(now);
        outcome
    }

    fn answer_connect(
        &mut self,
        now: Instant,
        connect: &Connect,
        connection: Rc<ConnectionHandle>,
    ) -> ConnectOutcome {
        let v5 = connect.protocol.is_v5();
        let mut info = self.client_info_of(connect, &connection, connect.client_id.clone());
        connection.set_client(Arc::clone(&info));
        self.record(now, EventKind::ClientConnect, &info, || EventDetail::None);
        if connect.client_id.as_str().len() > usize::from(self.limits.max_client_id_bytes) {
            return self.refuse(now, &connection, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
        }
        if !self.limits.allow_anonymous && connect.username.is_none() {
            return self.refuse(now, &connection, ReasonCode::NOT_AUTHORIZED);
        }
        let reserved = &self.limits.reserved_client_ids;
        if reserved.iter().any(|id| id == connect.client_id.as_str()) {
            return self.refuse(now, &connection, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
        }
        if !self.hooks.register.is_empty() {
            let request = RegisterRequest {
                client_id: &connect.client_id,
                username: connect.username.as_ref(),
                password: connect.password.as_ref(),
                address: connection.peer,
                protocol: connect.protocol,
            };
            match self.hooks.auth_on_register(&request) {
                Decision::Allow(None) => {}
                Decision::Allow(Some(changes)) => {
                    if let Some(username) = changes.username {
                        let mut changed = ClientInfo::clone(&info);
                        changed.username = Some(username.to_owned_copy());
                        info = Arc::new(changed);
                        connection.set_client(Arc::clone(&info));
                    }
                }
                Decision::Deny(denial) => {
                    tracing::debug!(
                        client_id = connect.client_id.as_str(),
                        reason = denial.reason,
                        "connect denied by a hook"
                    );
                    return self.refuse(now, &connection, denial.code);
                }
            }
        }
        let mut client_id = connect.client_id.clone();
        let mut assigned = false;
        if client_id.is_empty() {
            // 3.1.1 [MQTT-3.1.3-8]: an empty id needs clean session; 3.1 has no empty ids.
            let allowed = self.allow_empty_client_id
                && (v5
                    || (connect.clean_start
                        && connect.protocol != crate::protocol::ProtocolVersion::V3_1));
            if !allowed {
                return self.refuse(now, &connection, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID);
            }
            self.assigned_ids += 1;
            let text = format!("starling-{}-{}", self.cluster.shard, self.assigned_ids);
            client_id = match ClientId::new(&text) {
                Ok(id) => id,
                Err(_) => return self.refuse(now, &connection, ReasonCode::UNSPECIFIED_ERROR),
            };
            assigned = true;
            let mut named = ClientInfo::clone(&info);
            named.client_id = client_id.clone();
            connection.set_client(Arc::new(named));
        }
        if self.cluster.shard_count > 1 {
            self.claim_client_id(now, connect, client_id, assigned, connection);
            return ConnectOutcome::Pending;
        }
        self.attach(now, connect, client_id, assigned, connection, None)
    }

    /// Connects `connection` to `client_id`'s session: one moved here from another shard, the
    /// one already on this shard (taken over or resumed), or a new one.
    fn attach(
        &mut self,
        now: Instant,
        connect: &Connect,
        client_id: ClientId,
        assigned: bool,
        connection: Rc<ConnectionHandle>,
        moved: Option<(usize, super::remote::MovedSession)>,
    ) -> ConnectOutcome {
        if let Some((from, moved)) = moved {
            // A will still waiting for its delay is not published: its client is back.
            self.install_moved_session(now, from, moved);
        }
        let existing = self.by_client.get(&client_id).copied();
        if let Some(key) = existing {
            // Takeover: the old connection goes, with 0x8E for 5.0 clients, and its will is
            // published unless the new connection resumes the session (spec 3.1.4).
            let resume = !connect.clean_start;
            let old_client = self.client_info(key);
            if let Some(old) = self.slot_mut(key).and_then(|slot| slot.connection.take()) {
                old.request_close(Close {
                    reason: ReasonCode::SESSION_TAKEN_OVER,
                    send_disconnect: true,
                    publish_will: !resume,
                });
                self.counters.takeovers += 1;
                if let Some(old_client) = &old_client {
                    let reason = DisconnectReason::TakenOver;
                    self.record(now, EventKind::ClientDisconnected, old_client, || {
                        EventDetail::Disconnected(reason)
                    });
                }
            }
            let detached = self.slot_mut(key).map(|slot| slot.session.detach(!resume));
            if let Some(will) = detached.and_then(|detached| detached.will) {
                self.publish_will(now, &client_id, old_client.clone(), will);
            }
            if !resume {
                // The registry keeps pointing here: the new session is on this shard too.
                self.remove_session(key, false);
                if let Some(old_client) = &old_client {
                    self.record(now, EventKind::SessionTerminated, old_client, || {
                        EventDetail::Disconnected(DisconnectReason::TakenOver)
                    });
                }
            }
        }

        let (key, session_present) = match self.by_client.get(&client_id).copied() {
            Some(key) => (key, true),
            None => (self.insert_session(client_id.clone()), false),
        };
        let info = connection
            .client()
            .unwrap_or_else(|| self.client_info_of(connect, &connection, client_id.clone()));
        let mut actions = self.spare_actions.pop().unwrap_or_default();
        let Some(slot) = self.slot_mut(key) else {
            return self.refuse(now, &connection, ReasonCode::UNSPECIFIED_ERROR);
        };
        slot.expires_at = None;
        slot.pending_will = None;
        slot.connection = Some(Rc::clone(&connection));
        slot.client = Some(Arc::clone(&info));
        let attach = Attach {
            session_present,
            assigned_client_id: assigned,
            info: Some(Arc::clone(&info)),
        };
        let connack = slot.session.connect(now, connect, attach, &mut actions);
        self.send_packet(&connection, &Packet::ConnAck(connack));
        self.counters.connections_accepted += 1;
        if !session_present {
            self.record(now, EventKind::SessionCreated, &info, || EventDetail::None);
        }
        let connack = EventDetail::Connack {
            code: ReasonCode::SUCCESS,
            session_present,
        };
        self.record(now, EventKind::ClientConnack, &info, || connack.clone());
        self.record(now, EventKind::ClientConnected, &info, || connack);
        connection.set_connect_outcome(ConnectOutcome::Accepted(key));
        self.apply(now, key, actions);
        self.run_deferred_take(now, &client_id);
        ConnectOutcome::Accepted(key)
    }

    fn refuse(
        &mut self,
        now: Instant,
        connection: &ConnectionHandle,
        reason: ReasonCode,
    ) -> ConnectOutcome {
        if let Some(client) = connection.client() {
            self.record(now, EventKind::ClientConnack, &client, || {
                EventDetail::Connack {
                    code: reason,
                    session_present: false,
                }
            });
        }
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
        connection.set_connect_outcome(ConnectOutcome::Refused);
        ConnectOutcome::Refused
    }

    fn insert_session(&mut self, client_id: ClientId) -> SessionKey {
        // Kept as long as the session: copied out of the CONNECT's read buffer.
        let client_id = client_id.to_owned_copy();
        let session = Session::new(client_id.clone(), Arc::clone(&self.limits));
        let slot = Slot {
            session: Box::new(session),
            connection: None,
            expires_at: None,
            pending_will: None,
            forward_to: None,
            client: None,
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

    /// Ends the session `key`: its routes go (announced to the other shards) and, when
    /// `release`, the registry forgets that this shard holds its client id. Returns the slot.
    fn remove_session(&mut self, key: SessionKey, release: bool) -> Option<Slot> {
        let slot = self.slots.get_mut(key as usize).and_then(Option::take)?;
        // A stub's client id may belong to a newer session here by now.
        if self.by_client.get(slot.session.client_id()) == Some(&key) {
            self.by_client.remove(slot.session.client_id());
        }
        for removed in self.subscriptions.remove_session(key) {
            self.announce_unsubscribe(&removed.filter, removed.outcome);
        }
        self.free_slots.push(key);
        if release {
            self.release_client_id(slot.session.client_id());
        }
        Some(slot)
    }

    fn slot_mut(&mut self, key: SessionKey) -> Option<&mut Slot> {
        self.slots.get_mut(key as usize).and_then(Option::as_mut)
    }

    /// A packet from the connection serving `key`.
    pub fn handle_packet(&mut self, now: Instant, key: SessionKey, packet: Packet) {
        self.record_request(now, key, &packet);
        let mut actions = self.spare_actions.pop().unwrap_or_default();
        let context = SessionContext {
            hooks: &self.hooks,
            unix_ns: self.clock.unix_ns(now),
            report_acks: self.wanted_events.contains(EventKind::MessageAcked),
        };
        if let Some(slot) = self.slots.get_mut(key as usize).and_then(Option::as_mut) {
            slot.session
                .handle_packet(now, packet, &context, &mut actions);
        }
        self.apply(now, key, actions);
        if !self.system_pending.is_empty() {
            self.publish_system_messages(now);
        }
    }

    /// `client_subscribe` and `client_unsubscribe`: a filter asked for, before any decision.
    /// The client is looked up only for those two packets: every PUBLISH and ack passes here.
    fn record_request(&mut self, now: Instant, key: SessionKey, packet: &Packet) {
        let (subscribe, unsubscribe) = (EventKind::ClientSubscribe, EventKind::ClientUnsubscribe);
        match packet {
            Packet::Subscribe(packet) if self.wants_event(subscribe) => {
                let Some(client) = self.client_info(key) else {
                    return;
                };
                for subscription in &packet.filters {
                    let filter = subscription.filter.to_owned_copy();
                    let qos = subscription.options.qos;
                    self.record(now, subscribe, &client, || EventDetail::Subscription {
                        filter,
                        qos,
                    });
                }
            }
            Packet::Unsubscribe(packet) if self.wants_event(unsubscribe) => {
                let Some(client) = self.client_info(key) else {
                    return;
                };
                for filter in &packet.filters {
                    let filter = filter.to_owned_copy();
                    self.record(now, unsubscribe, &client, || EventDetail::Subscription {
                        filter,
                        qos: QoS::AtMostOnce,
                    });
                }
            }
            _ => {}
        }
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
        self.publish_system_messages(now);
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
        let publish_will = close.is_none_or(|close| close.publish_will);
        let detached = slot.session.detach(publish_will);
        let client_id = slot.session.client_id().clone();
        let client = slot.client.clone();
        let reason = events::disconnect_reason(close);
        if let Some(client) = &client {
            self.record(now, EventKind::ClientDisconnected, client, || {
                EventDetail::Disconnected(reason)
            });
        }
        if let Some(will) = detached.will {
            let delay = will.properties.will_delay_interval.unwrap_or(0);
            let delay = Duration::from_secs(u64::from(delay)).min(detached.expiry);
            if delay.is_zero() {
                self.publish_will(now, &client_id, client.clone(), will);
            } else if let Some(slot) = self.slot_mut(key) {
                slot.pending_will = Some((now + delay, will));
            }
        }
        if detached.expiry.is_zero() {
            self.remove_session(key, true);
            if let Some(client) = &client {
                self.record(now, EventKind::SessionTerminated, client, || {
                    EventDetail::Disconnected(reason)
                });
            }
        } else if let Some(slot) = self.slot_mut(key) {
            slot.expires_at = now.checked_add(detached.expiry);
        }
        self.publish_system_messages(now);
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
                    due_wills.push((slot.session.client_id().clone(), slot.client.clone(), will));
                }
            }
            if slot.expires_at.is_some_and(|at| at <= now) {
                // A session ending with its will still delayed publishes the will now.
                if let Some((_, will)) = slot.pending_will.take() {
                    due_wills.push((slot.session.client_id().clone(), slot.client.clone(), will));
                }
                expired.push(index as SessionKey);
            }
        }
        for (client_id, client, will) in due_wills {
            self.publish_will(now, &client_id, client, will);
        }
        for key in expired {
            let client = self.client_info(key);
            self.remove_session(key, true);
            self.counters.sessions_expired += 1;
            if let Some(client) = &client {
                self.record(now, EventKind::SessionTerminated, client, || {
                    EventDetail::Disconnected(DisconnectReason::SessionExpired)
                });
            }
        }
        self.events.flush();
        self.publish_system_messages(now);
    }

    /// Publishes `client_id`'s will; `publisher` is who the client was, for the events.
    fn publish_will(
        &mut self,
        now: Instant,
        client_id: &ClientId,
        publisher: Option<Arc<ClientInfo>>,
        will: Will,
    ) {
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
            publisher,
            received_at_ns: self.clock.unix_ns(now),
        };
        self.counters.wills_published += 1;
        self.route(now, None, Arc::new(message));
    }

    /// Carries out a session's actions.
    fn apply(&mut self, now: Instant, key: SessionKey, mut actions: Vec<Action>) {
        for action in actions.drain(..) {
            match action {
                Action::Send(outgoing) => self.send_to(now, key, &outgoing),
                Action::Route(message) => self.route(now, Some(key), message),
                Action::Subscribe(request) => self.subscribe(now, key, request),
                Action::Unsubscribe(filters) => {
                    for filter in &filters {
                        let outcome = self.subscriptions.unsubscribe(key, filter);
                        let existed = outcome.existed;
                        self.announce_unsubscribe(filter, outcome);
                        if existed && self.wants_event(EventKind::SessionUnsubscribed) {
                            self.record_subscription(
                                now,
                                key,
                                EventKind::SessionUnsubscribed,
                                filter,
                                QoS::AtMostOnce,
                            );
                        }
                    }
                }
                Action::Close(close) => {
                    if let Some(connection) =
                        self.slot_mut(key).and_then(|slot| slot.connection.clone())
                    {
                        connection.request_close(close);
                    }
                }
                Action::Dropped(reason, message) => {
                    self.counters.count_drop(reason);
                    let delivery = (message.qos, None, false);
                    let kind = EventKind::MessageDropped;
                    self.record_for_session(now, kind, key, &message, delivery, Some(reason));
                }
                Action::Acked(acked) => {
                    let delivery = (acked.qos, Some(acked.packet_id), acked.dup);
                    let kind = EventKind::MessageAcked;
                    self.record_for_session(now, kind, key, &acked.message, delivery, None);
                }
                Action::Denied { message, feedback } => {
                    let reason = DropReason::NotAuthorized;
                    self.counters.count_drop(reason);
                    let kind = EventKind::MessageDropped;
                    self.record_publisher_message(now, kind, &message, Some(reason));
                    if let Some(feedback) = feedback {
                        // Routed as the broker's: the publisher gets its own rejections even
                        // when it subscribed with No Local.
                        self.route(now, None, feedback);
                    }
                }
            }
        }
        // Kept for the next packet or delivery: no allocation per message once warm. Routing
        // re-enters `apply`, so a few buffers are in use at once; the pool stays that small.
        if self.spare_actions.len() < MAX_SPARE_ACTION_BUFFERS {
            self.spare_actions.push(actions);
        }
    }

    fn send_to(&mut self, now: Instant, key: SessionKey, outgoing: &Outgoing) {
        let Some(connection) = self.slot_mut(key).and_then(|slot| slot.connection.clone()) else {
            return;
        };
        if let Outgoing::Publish(publish) = outgoing {
            if self.wants_event(EventKind::MessageDelivered) {
                let delivery = (publish.qos, publish.packet_id, publish.dup);
                let kind = EventKind::MessageDelivered;
                self.record_for_session(now, kind, key, &publish.message, delivery, None);
            }
        }
        let result = match outgoing {
            Outgoing::Packet(packet) => connection.outbound.borrow_mut().push_packet(packet),
            Outgoing::Publish(publish) => {
                let version = connection.outbound.borrow().version();
                match self.shared_encoding.get(publish, version) {
                    Some(Ok(encoded)) => connection.outbound.borrow_mut().push_encoded(&encoded),
                    Some(Err(error)) => Err(crate::net::QueueError::Encode(error)),
                    None => connection.outbound.borrow_mut().push_publish(publish),
                }
            }
        };
        match result {
            Ok(()) => connection.writer_wake.notify(),
            Err(crate::net::QueueError::OverBudget) => {
                self.counters.count_drop(DropReason::QueueFull);
                if let Outgoing::Publish(publish) = outgoing {
                    let delivery = (publish.qos, publish.packet_id, publish.dup);
                    let (kind, reason) = (EventKind::MessageDropped, DropReason::QueueFull);
                    self.record_for_session(
                        now,
                        kind,
                        key,
                        &publish.message,
                        delivery,
                        Some(reason),
                    );
                }
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

    /// Routes a message published on this shard: to every matching session here, to the other
    /// shards with matching subscriptions (one forward each, batched by the mesh), and to one
    /// member of every matching share group wherever it is. Keeps it if retained.
    fn route(&mut self, now: Instant, publisher: Option<SessionKey>, message: Arc<Message>) {
        self.counters.messages_received += 1;
        self.record_publisher_message(now, EventKind::MessagePublish, &message, None);
        if message.retain {
            self.store_retained(now, &message);
        }
        let mut recipients = std::mem::take(&mut self.recipients);
        recipients.clear();
        let mut forwarded_to = ShardSet::new();
        let mut direct = 0;
        if self.cluster.shard_count == 1 {
            self.subscriptions
                .match_topic(&message.topic, publisher, &mut recipients);
        } else {
            self.subscriptions
                .match_direct(&message.topic, publisher, &mut recipients);
            direct = recipients.len();
            forwarded_to = self.forward(now, &message, publisher, &mut recipients);
        }
        if recipients.is_empty() && forwarded_to.is_empty() {
            let reason = DropReason::NoSubscribers;
            self.counters.count_drop(reason);
            let kind = EventKind::MessageDropped;
            self.record_publisher_message(now, kind, &message, Some(reason));
        }
        self.deliver_all(now, &message, &mut recipients, direct, forwarded_to);
        self.recipients = recipients;
    }

    /// Hands `message` to each recipient, at the lower of its granted and the message's QoS.
    /// The first `direct` recipients came from direct subscriptions; a stub among them (a
    /// session that moved to another shard) is skipped when that shard is in `forwarded_to`,
    /// which means it got the message itself.
    fn deliver_all(
        &mut self,
        now: Instant,
        message: &Arc<Message>,
        recipients: &mut Vec<crate::topic::Recipient<SessionKey>>,
        direct: usize,
        forwarded_to: ShardSet,
    ) {
        for (index, recipient) in recipients.drain(..).enumerate() {
            if index < direct
                && !forwarded_to.is_empty()
                && self.moved_to_any_of(recipient.session, forwarded_to)
            {
                continue;
            }
            let delivery = Delivery {
                message: Arc::clone(message),
                qos: recipient.qos.min(message.qos),
                retain: recipient.retain_as_published && message.retain,
                subscription_ids: recipient.subscription_ids,
            };
            self.deliver(now, recipient.session, delivery);
        }
    }

    /// Keeps a retained message (an empty payload deletes) and tells the other shards.
    fn store_retained(&mut self, now: Instant, message: &Arc<Message>) {
        let stamp = (now, self.cluster.shard);
        let kept = if message.payload.is_empty() {
            self.retained.remove(&message.topic);
            Arc::clone(message)
        } else {
            // Kept for long: copied once so it does not pin the publisher's read buffer. Every
            // shard's index then shares this one copy.
            let owned = Arc::new(Message {
                payload: Bytes::copy_from_slice(&message.payload),
                ..Message::clone(message)
            });
            let entry = RetainedEntry {
                message: Arc::clone(&owned),
                stamp,
            };
            self.retained.set(&message.topic, entry);
            owned
        };
        for peer in 0..self.cluster.shard_count {
            if peer != self.cluster.shard {
                let message = Arc::clone(&kept);
                self.push_remote(now, peer, RemoteMessage::Retain { message, stamp });
            }
        }
    }

    /// Applies another shard's retained write unless this shard holds a later one.
    fn apply_remote_retained(&mut self, message: Arc<Message>, stamp: RetainStamp) {
        let newer = self
            .retained
            .get(&message.topic)
            .is_none_or(|known| known.stamp < stamp);
        if !newer {
            return;
        }
        if message.payload.is_empty() {
            self.retained.remove(&message.topic);
        } else {
            let topic = message.topic.clone();
            self.retained.set(&topic, RetainedEntry { message, stamp });
        }
    }

    fn deliver(&mut self, now: Instant, key: SessionKey, delivery: Delivery) {
        if let Some(slot) = self.slots.get(key as usize).and_then(Option::as_ref) {
            if let Some(peer) = slot.forward_to {
                let client_id = slot.session.client_id().clone();
                self.push_remote(
                    now,
                    peer,
                    RemoteMessage::Deliver {
                        client_id,
                        delivery,
                    },
                );
                return;
            }
        }
        let Some(delivery) = self.run_deliver_hooks(now, key, delivery) else {
            return;
        };
        let mut actions = self.spare_actions.pop().unwrap_or_default();
        let mut offline = None;
        if let Some(slot) = self.slot_mut(key) {
            if slot.connection.is_none() && delivery.qos != QoS::AtMostOnce {
                offline = Some(Arc::clone(&delivery.message));
            }
            slot.session.deliver(now, delivery, &mut actions);
        }
        if let Some(message) = offline {
            let queued = !actions
                .iter()
                .any(|action| matches!(action, Action::Dropped(..)));
            if queued && self.wants_event(EventKind::OfflineMessage) {
                let delivery = (message.qos, None, false);
                let kind = EventKind::OfflineMessage;
                self.record_for_session(now, kind, key, &message, delivery, None);
            }
        }
        self.counters.deliveries += 1;
        self.apply(now, key, actions);
    }

    /// Runs the `on_deliver` chain for the subscriber of `key`: the delivery as it goes out
    /// (rewritten for this subscriber only), or `None` when a hook keeps it from them.
    fn run_deliver_hooks(
        &mut self,
        now: Instant,
        key: SessionKey,
        mut delivery: Delivery,
    ) -> Option<Delivery> {
        if self.hooks.deliver.is_empty() {
            return Some(delivery);
        }
        let slot = self.slots.get(key as usize)?.as_ref()?;
        let request = DeliverRequest {
            client_id: slot.session.client_id(),
            username: slot.client.as_ref().and_then(|info| info.username.as_ref()),
            topic: &delivery.message.topic,
            payload: &delivery.message.payload,
        };
        match self.hooks.on_deliver(&request) {
            Decision::Allow(None) => Some(delivery),
            Decision::Allow(Some(changes)) => {
                // A copy for this subscriber: every other one still shares the original.
                let mut rewritten = Message::clone(&delivery.message);
                if let Some(topic) = changes.topic {
                    rewritten.topic = topic;
                }
                if let Some(payload) = changes.payload {
                    rewritten.payload = payload;
                }
                delivery.message = Arc::new(rewritten);
                Some(delivery)
            }
            Decision::Deny(_) => {
                let reason = DropReason::NotAuthorized;
                self.counters.count_drop(reason);
                let message = delivery.message;
                let kind = EventKind::MessageDropped;
                let details = (delivery.qos, None, false);
                self.record_for_session(now, kind, key, &message, details, Some(reason));
                None
            }
        }
    }

    /// Adds the subscriptions. A filter new to this shard is announced to the others, and the
    /// SUBACK waits until every shard has applied the announcement (a barrier), so a message
    /// published anywhere after the SUBACK reaches the subscriber; otherwise it goes at once.
    ///
    /// With several shards, a subscription that asks for retained messages joins the routes
    /// only when a barrier completes: every retained write and forward a peer sent before then
    /// is applied first, so a message published before the SUBSCRIBE comes once, as retained,
    /// never as a live copy (or both).
    fn subscribe(&mut self, now: Instant, key: SessionKey, request: SubscribeRequest) {
        let several = self.cluster.shard_count > 1;
        let mut announced = false;
        let mut deferred = false;
        for entry in &request.entries {
            if several && wants_retained(entry) {
                if self.subscriptions.direct_subscribers(&entry.filter) == 0 {
                    self.announce(now, &entry.filter, 1);
                    announced = true;
                }
                deferred = true;
                continue;
            }
            let options = SubscriberOptions::new(&entry.options, entry.id);
            let outcome = self.subscriptions.subscribe(key, &entry.filter, options);
            announced |= self.announce_subscribe(now, &entry.filter, outcome);
        }
        if several && (announced || deferred || !self.cluster.barriers.is_empty()) {
            self.wait_for_barrier(now, key, request, announced || deferred);
        } else {
            self.complete_subscribe(now, key, request);
        }
    }

    /// Adds the routes [`Self::subscribe`] held back for a barrier.
    fn add_deferred_routes(&mut self, now: Instant, key: SessionKey, request: &SubscribeRequest) {
        if self.cluster.shard_count == 1 {
            return;
        }
        for entry in request.entries.iter().filter(|entry| wants_retained(entry)) {
            let options = SubscriberOptions::new(&entry.options, entry.id);
            let outcome = self.subscriptions.subscribe(key, &entry.filter, options);
            self.announce_subscribe(now, &entry.filter, outcome);
        }
    }

    /// Sends the SUBACK of a subscribe now in force everywhere, then the retained messages its
    /// options ask for.
    fn complete_subscribe(&mut self, now: Instant, key: SessionKey, request: SubscribeRequest) {
        self.add_deferred_routes(now, key, &request);
        self.send_to(now, key, &Outgoing::Packet(request.suback()));
        if self.wants_event(EventKind::SessionSubscribed) {
            for entry in &request.entries {
                let kind = EventKind::SessionSubscribed;
                self.record_subscription(now, key, kind, &entry.filter, entry.options.qos);
            }
        }
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
            self.retained.for_each_matching(&entry.filter, |entry| {
                matching.push(Arc::clone(&entry.message));
            });
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
        let close = Close {
            reason: ReasonCode::SERVER_SHUTTING_DOWN,
            send_disconnect: true,
            publish_will: true,
        };
        for slot in self.slots.iter().flatten() {
            if let Some(connection) = &slot.connection {
                connection.request_close(close);
            }
        }
        for pending in self.cluster.pending_connects.values() {
            pending.connection.request_close(close);
        }
    }
}

/// The broker's identity as the publisher of its own messages.
fn broker_info(node: u32, shard: usize) -> Arc<ClientInfo> {
    Arc::new(ClientInfo {
        node,
        shard: u16::try_from(shard).unwrap_or(u16::MAX),
        client_id: ClientId::new(BROKER_CLIENT_ID).unwrap_or_default(),
        username: None,
        address: None,
        protocol: 5,
        keep_alive_secs: 0,
        clean_start: true,
    })
}

/// Whether a subscription gets retained messages when it is made ([MQTT-3.3.1-9] to -11):
/// never for a shared one (spec 4.8.2).
fn wants_retained(entry: &crate::session::SubscribeEntry) -> bool {
    let wanted = match entry.options.retain_handling {
        RetainHandling::SendAtSubscribe => true,
        RetainHandling::SendIfNew => !entry.existed,
        RetainHandling::DoNotSend => false,
    };
    wanted && entry.filter.shared().is_none()
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
