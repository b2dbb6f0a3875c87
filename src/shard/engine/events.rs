//! The shard's side of hooks and events: recording each fact into the shard's event sink and
//! turning the ones the in-broker exporter wants into system messages.
//!
//! Every recording point first tests one bitmask ([`ShardEngine::wants_event`]); an event kind
//! nobody wants costs that test and nothing else (no clock read, no `Arc` clone). System
//! messages are not routed where the event happens (that may be deep inside a delivery):
//! they queue in `system_pending` and go out at the end of the engine call that made them.

use std::sync::Arc;
use std::time::Instant;

use crate::hooks::builtin::{PendingVerification, Verified};
use crate::hooks::{
    ClientInfo, DisconnectReason, EventCounters, EventDetail, EventKind, EventKinds, EventSink,
    MessageFacts,
};
use crate::protocol::{ClientId, Connect, PacketId, QoS, ReasonCode, TopicFilter};

use super::super::{ConnectionHandle, ShardStats};
use crate::session::{Close, DropReason, Message};

use super::{SessionKey, ShardEngine};

/// System messages one engine call may leave for routing; more are dropped and counted (a
/// burst of events must not grow memory without a bound).
const MAX_PENDING_SYSTEM_MESSAGES: usize = 65_536;

impl ShardEngine {
    /// Whether anything (an exporter or the system topics) wants `kind`.
    #[inline]
    pub(super) fn wants_event(&self, kind: EventKind) -> bool {
        self.wanted_events.contains(kind)
    }

    /// Whether an event of `kind` needs building now: something wants it, and it is not
    /// shed because only the exporters want it and their ring is full (the sink counts a shed
    /// event as recorded and dropped).
    #[inline]
    fn builds_event(&mut self, kind: EventKind) -> bool {
        if !self.wants_event(kind) {
            return false;
        }
        self.system_topics.wanted().contains(kind) || !self.events.shed(kind)
    }

    /// [`Self::builds_event`] for a message event; the broker's own stats messages record
    /// nothing (see `stats`), checked first so that they are not counted as shed either.
    #[inline]
    fn builds_message_event(&mut self, kind: EventKind, message: &Message) -> bool {
        self.wants_event(kind)
            && !super::super::stats::is_broker_stats(message)
            && self.builds_event(kind)
    }

    /// Records an event about `client` now.
    pub(super) fn record(
        &mut self,
        now: Instant,
        kind: EventKind,
        client: &Arc<ClientInfo>,
        detail: impl FnOnce() -> EventDetail,
    ) {
        if self.wants_event(kind) {
            self.record_owned(now, kind, Arc::clone(client), detail);
        }
    }

    /// [`Self::record`] with a clone of the client's `Arc` the caller gives up. The message
    /// path records this way: the event keeps the clone the caller had to make anyway (to look
    /// the client up while `self` is borrowed mutably), so it costs no second atomic increment
    /// and decrement (on the message path, where the exporter thread drops events of the same
    /// clients, each is a cache line bouncing between cores).
    pub(super) fn record_owned(
        &mut self,
        now: Instant,
        kind: EventKind,
        client: Arc<ClientInfo>,
        detail: impl FnOnce() -> EventDetail,
    ) {
        if !self.wants_event(kind) {
            return;
        }
        let detail = detail();
        if let Some(system) = self.system_topics.message_for(kind, &client, &detail) {
            if self.system_pending.len() < MAX_PENDING_SYSTEM_MESSAGES {
                self.system_pending.push(Arc::new(system));
            } else {
                self.counters.dropped_system_messages += 1;
            }
        }
        if self.events.wants(kind) {
            let at_ns = self.clock.unix_ns(now);
            self.events.record_owned(kind, at_ns, client, || detail);
        }
    }

    /// Records a message event about its publisher (`message_publish`, and drops before any
    /// subscriber).
    #[inline]
    pub(super) fn record_publisher_message(
        &mut self,
        now: Instant,
        kind: EventKind,
        message: &Arc<Message>,
        dropped: Option<DropReason>,
    ) {
        if self.builds_message_event(kind, message) {
            let from = self.publisher_of(message);
            let delivery = (message.qos, None, false);
            self.record_message(now, kind, from, message, delivery, dropped);
        }
    }

    /// Records a message event: `client` is the subscriber for deliveries, acks and drops at a
    /// subscriber, the publisher otherwise. Its two callers have asked
    /// [`Self::builds_message_event`] already (before looking the client up).
    fn record_message(
        &mut self,
        now: Instant,
        kind: EventKind,
        client: Arc<ClientInfo>,
        message: &Arc<Message>,
        delivery: (QoS, Option<PacketId>, bool),
        dropped: Option<DropReason>,
    ) {
        let publisher = self.publisher_of(message);
        let (qos, packet_id, dup) = delivery;
        self.record_owned(now, kind, client, || {
            EventDetail::Message(MessageFacts {
                message: Arc::clone(message),
                publisher,
                published_at_ns: message.received_at_ns,
                qos,
                packet_id,
                dup,
                dropped,
            })
        });
    }

    /// Records a message event about the subscriber of session `key`, if it has an identity.
    pub(super) fn record_for_session(
        &mut self,
        now: Instant,
        kind: EventKind,
        key: SessionKey,
        message: &Arc<Message>,
        delivery: (QoS, Option<PacketId>, bool),
        dropped: Option<DropReason>,
    ) {
        if !self.builds_message_event(kind, message) {
            return;
        }
        if let Some(client) = self.client_info(key) {
            self.record_message(now, kind, client, message, delivery, dropped);
        }
    }

    /// A subscription event about the client of session `key`.
    pub(super) fn record_subscription(
        &mut self,
        now: Instant,
        key: SessionKey,
        kind: EventKind,
        filter: &TopicFilter,
        qos: QoS,
    ) {
        if !self.wants_event(kind) {
            return;
        }
        if let Some(client) = self.client_info(key) {
            let filter = filter.to_owned_copy();
            self.record_owned(now, kind, client, || EventDetail::Subscription {
                filter,
                qos,
            });
        }
    }

    /// The identity of the client behind `connect`, known as `client_id`.
    pub(super) fn client_info_of(
        &self,
        connect: &Connect,
        connection: &ConnectionHandle,
        client_id: ClientId,
    ) -> Arc<ClientInfo> {
        Arc::new(ClientInfo {
            node: self.node,
            shard: u16::try_from(self.cluster.shard).unwrap_or(u16::MAX),
            // Kept as long as the client is known: copied out of the CONNECT's read buffer.
            client_id: client_id.to_owned_copy(),
            username: connect.username.as_ref().map(|name| name.to_owned_copy()),
            address: connection.peer,
            protocol: connect.protocol.level(),
            keep_alive_secs: connect.keep_alive,
            clean_start: connect.clean_start,
        })
    }

    /// Who published `message`: the client, or the broker itself.
    pub(super) fn publisher_of(&self, message: &Message) -> Arc<ClientInfo> {
        message
            .publisher
            .clone()
            .unwrap_or_else(|| Arc::clone(&self.broker_info))
    }

    /// The identity of the client of session `key`, as of its last CONNECT.
    pub(super) fn client_info(&self, key: SessionKey) -> Option<Arc<ClientInfo>> {
        self.slots
            .get(key as usize)?
            .as_ref()?
            .client
            .as_ref()
            .map(Arc::clone)
    }

    /// Routes the system messages the last call queued.
    pub(super) fn publish_system_messages(&mut self, now: Instant) {
        while !self.system_pending.is_empty() {
            let pending = std::mem::take(&mut self.system_pending);
            for message in pending {
                self.route(now, None, message);
            }
        }
    }

    /// Hands the batch being filled to the exporter runtime (the shard calls this on a short
    /// timer, so a quiet shard's events do not wait for a full batch).
    pub fn flush_events(&mut self) {
        self.events.flush();
    }

    /// Per-kind counts of recorded events and of those a full ring dropped.
    pub fn event_counters(&self) -> &EventCounters {
        self.events.counters()
    }

    /// Installs the event sink and the in-broker exporter.
    pub fn with_events(mut self, events: EventSink, system_topics: super::SystemTopics) -> Self {
        self.wanted_events = events.wanted().union(system_topics.wanted());
        self.events = events;
        self.system_topics = system_topics;
        self
    }

    /// Installs the `$SYS/` stats topics this shard publishes.
    pub fn with_stats(mut self, stats: ShardStats) -> Self {
        self.stats = stats;
        self
    }

    /// Whether [`Self::publish_stats`] has anything to do (otherwise the shard runs no timer
    /// for it).
    pub fn has_stats(&self) -> bool {
        !self.stats.is_empty()
    }

    /// Publishes, retained and as the broker, every stats topic whose numbers changed since
    /// the last call (the shard calls this every `events.stats_interval_ms`).
    pub fn publish_stats(&mut self, now: Instant) {
        let mut messages = Vec::new();
        let origin = self.broker_info.client_id.clone();
        self.stats
            .changed_messages(self.events.counters(), &origin, &mut messages);
        for message in messages {
            self.route(now, None, Arc::new(message));
        }
        self.publish_system_messages(now);
    }

    /// The slow password or token hash `connect`'s login needs, if any: the connection runs it
    /// off the shard and hands the answer to [`Self::remember_verification`] before the
    /// CONNECT, so the shard never hashes.
    pub fn pending_verification(&self, connect: &Connect) -> Option<PendingVerification> {
        let credentials = self.hooks.credentials.as_ref()?;
        let username = connect.username.as_ref().map(|name| name.as_str());
        credentials.pending_verification(username, connect.password.as_deref())
    }

    /// Takes in the answer of a [`PendingVerification`].
    pub fn remember_verification(&self, verified: Verified) {
        if let Some(credentials) = &self.hooks.credentials {
            credentials.remember(verified);
        }
    }

    /// Installs the decision hooks.
    pub fn with_hooks(mut self, hooks: std::rc::Rc<crate::hooks::DecisionHooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// The kinds recorded on this shard.
    pub fn wanted_events(&self) -> EventKinds {
        self.wanted_events
    }
}

/// Why a connection ended, in the words of `client_disconnected`: `close` is what the session
/// or the broker asked for, `None` a connection the network dropped.
pub(super) fn disconnect_reason(close: Option<Close>) -> DisconnectReason {
    let Some(close) = close else {
        return DisconnectReason::ConnectionLost;
    };
    match close.reason {
        ReasonCode::KEEP_ALIVE_TIMEOUT => DisconnectReason::KeepAliveTimeout,
        ReasonCode::SESSION_TAKEN_OVER => DisconnectReason::TakenOver,
        ReasonCode::SERVER_SHUTTING_DOWN => DisconnectReason::ServerShutdown,
        // The client's own DISCONNECT is the only close that sends none back.
        code if !close.send_disconnect => DisconnectReason::ClientDisconnect(code),
        code => DisconnectReason::ProtocolError(code),
    }
}
