//! The facts a shard records: what happened, to which client, when. An event holds shared
//! handles (`Arc`, `Bytes`-backed strings) and numbers, never JSON; exporters render it in
//! their sink's format off the shard.
//!
//! The names are the web-hook document's actions (`session_created` … `message_dropped`) plus
//! VerneMQ's `offline_message`; [`EventKind::name`] is the string every exporter and every
//! config key uses.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::protocol::{ClientId, MqttString, PacketId, QoS, ReasonCode, TopicFilter};
use crate::session::{DropReason, Message};

/// Every kind of event, in the order of [`EventKind::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventKind {
    /// A session was created (a client connected without one to resume).
    SessionCreated,
    /// A session ended: clean disconnect of a clean session, expiry, or takeover with clean start.
    SessionTerminated,
    /// A subscription was added to a session.
    SessionSubscribed,
    /// A subscription was removed from a session.
    SessionUnsubscribed,
    /// A CONNECT arrived.
    ClientConnect,
    /// A CONNACK is being sent, with its code.
    ClientConnack,
    /// A client was accepted and is connected.
    ClientConnected,
    /// A connection closed, with the reason.
    ClientDisconnected,
    /// A SUBSCRIBE arrived (one event per filter), before authorisation.
    ClientSubscribe,
    /// An UNSUBSCRIBE arrived (one event per filter).
    ClientUnsubscribe,
    /// A message was received from a client and is about to be routed.
    MessagePublish,
    /// A message is being sent to a subscriber.
    MessageDelivered,
    /// A subscriber acknowledged a QoS 1/2 message (PUBACK or PUBCOMP).
    MessageAcked,
    /// A message was not delivered to a subscriber (or to anyone), with the reason.
    MessageDropped,
    /// A message was queued for a subscriber that is offline.
    OfflineMessage,
}

/// How many kinds there are.
pub const EVENT_KINDS: usize = 15;

impl EventKind {
    /// Every kind, in `repr` order.
    pub const ALL: [EventKind; EVENT_KINDS] = [
        EventKind::SessionCreated,
        EventKind::SessionTerminated,
        EventKind::SessionSubscribed,
        EventKind::SessionUnsubscribed,
        EventKind::ClientConnect,
        EventKind::ClientConnack,
        EventKind::ClientConnected,
        EventKind::ClientDisconnected,
        EventKind::ClientSubscribe,
        EventKind::ClientUnsubscribe,
        EventKind::MessagePublish,
        EventKind::MessageDelivered,
        EventKind::MessageAcked,
        EventKind::MessageDropped,
        EventKind::OfflineMessage,
    ];

    /// The event's name, as configs and exporters spell it.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::SessionCreated => "session_created",
            EventKind::SessionTerminated => "session_terminated",
            EventKind::SessionSubscribed => "session_subscribed",
            EventKind::SessionUnsubscribed => "session_unsubscribed",
            EventKind::ClientConnect => "client_connect",
            EventKind::ClientConnack => "client_connack",
            EventKind::ClientConnected => "client_connected",
            EventKind::ClientDisconnected => "client_disconnected",
            EventKind::ClientSubscribe => "client_subscribe",
            EventKind::ClientUnsubscribe => "client_unsubscribe",
            EventKind::MessagePublish => "message_publish",
            EventKind::MessageDelivered => "message_delivered",
            EventKind::MessageAcked => "message_acked",
            EventKind::MessageDropped => "message_dropped",
            EventKind::OfflineMessage => "offline_message",
        }
    }

    /// The kind named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Position in [`EventKind::ALL`], for per-kind counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A set of event kinds: what some exporter wants. Testing membership is one AND, so a shard
/// pays nothing else for an event nobody wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventKinds(u16);

impl EventKinds {
    /// No kind.
    pub const NONE: EventKinds = EventKinds(0);
    /// Every kind.
    pub const ALL: EventKinds = EventKinds((1 << EVENT_KINDS) - 1);

    /// Whether `kind` is in the set.
    #[inline]
    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & (1 << kind as u16) != 0
    }

    /// The set with `kind` added.
    #[must_use]
    pub fn with(self, kind: EventKind) -> Self {
        EventKinds(self.0 | 1 << kind as u16)
    }

    /// Both sets together.
    #[must_use]
    pub fn union(self, other: EventKinds) -> Self {
        EventKinds(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds in the set, in [`EventKind::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = EventKind> {
        EventKind::ALL
            .into_iter()
            .filter(move |kind| self.contains(*kind))
    }
}

impl FromIterator<EventKind> for EventKinds {
    fn from_iter<I: IntoIterator<Item = EventKind>>(kinds: I) -> Self {
        kinds
            .into_iter()
            .fold(EventKinds::NONE, |set, kind| set.with(kind))
    }
}

/// Who a client is, made once when its CONNECT is handled and shared by every event about it
/// (and about the messages it publishes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The broker's node id (`node` in the web-hook payloads).
    pub node: u32,
    /// The shard serving the connection.
    pub shard: u16,
    /// Client id (assigned by the broker when a 5.0 client sent none).
    pub client_id: ClientId,
    /// User name from the CONNECT.
    pub username: Option<MqttString>,
    /// The peer's address and port.
    pub address: Option<SocketAddr>,
    /// Protocol level: 3 (3.1), 4 (3.1.1) or 5.
    pub protocol: u8,
    /// Keep-alive the client asked for, in seconds.
    pub keep_alive_secs: u16,
    /// Clean session (3.x) or clean start (5.0).
    pub clean_start: bool,
}

/// Why a connection closed, as `client_disconnected` and the presence topic report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client sent DISCONNECT (with this reason code in 5.0; 0x00 in 3.x).
    ClientDisconnect(ReasonCode),
    /// The client closed the socket without DISCONNECT.
    ConnectionLost,
    /// No packet within 1.5 times the keep-alive.
    KeepAliveTimeout,
    /// The same client id connected again.
    TakenOver,
    /// The client broke the protocol; the broker closed with this reason code.
    ProtocolError(ReasonCode),
    /// The broker is shutting down.
    ServerShutdown,
    /// The session outlived its connection by its expiry interval (`session_terminated`).
    SessionExpired,
}

impl DisconnectReason {
    /// The reason as a short snake_case word (the `reason` field of the payloads).
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ClientDisconnect(code) if code.0 == 0 => "normal",
            DisconnectReason::ClientDisconnect(_) => "client_disconnect_with_reason",
            DisconnectReason::ConnectionLost => "connection_lost",
            DisconnectReason::KeepAliveTimeout => "keepalive_timeout",
            DisconnectReason::TakenOver => "takenover",
            DisconnectReason::ProtocolError(_) => "protocol_error",
            DisconnectReason::ServerShutdown => "server_shutdown",
            DisconnectReason::SessionExpired => "expired",
        }
    }
}

/// A message as one event sees it: the shared message plus what this event adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFacts {
    /// The routed message (topic, payload, published QoS and retain flag).
    pub message: Arc<Message>,
    /// Who published it (`from_*` fields).
    pub publisher: Arc<ClientInfo>,
    /// When the broker received it, Unix nanoseconds (`pts` is this in milliseconds).
    pub published_at_ns: u64,
    /// QoS of this event's packet (the delivery's, for deliveries).
    pub qos: QoS,
    /// Packet id of this event's packet, for QoS 1/2.
    pub packet_id: Option<PacketId>,
    /// DUP flag of this event's packet.
    pub dup: bool,
    /// Why it was dropped (`message_dropped` only).
    pub dropped: Option<DropReason>,
}

/// What an event says beyond its kind and client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventDetail {
    /// Nothing more (`session_created`, `client_connect`, `client_connected`).
    None,
    /// `client_connack`: the code sent and whether a session was resumed.
    Connack {
        /// CONNACK reason code (3.x return codes map to their 5.0 equivalents).
        code: ReasonCode,
        /// Session Present.
        session_present: bool,
    },
    /// `client_disconnected`, `session_terminated`.
    Disconnected(DisconnectReason),
    /// Subscribe and unsubscribe events: the filter and (for subscribes) its QoS.
    Subscription {
        /// The topic filter as the client sent it.
        filter: TopicFilter,
        /// Requested or granted QoS (0 for unsubscribes).
        qos: QoS,
    },
    /// Message events.
    Message(MessageFacts),
}

/// One fact, as a shard recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// When, Unix nanoseconds (`occurred_at`; `ts` is this in milliseconds).
    pub at_ns: u64,
    /// The client it happened to (the subscriber, for deliveries and acks).
    pub client: Arc<ClientInfo>,
    /// The rest.
    pub detail: EventDetail,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_the_documented_actions() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.name()), Some(kind));
            assert_eq!(EventKind::ALL[kind.index()], kind);
        }
        assert_eq!(EventKind::MessageDropped.name(), "message_dropped");
        assert_eq!(EventKind::OfflineMessage.name(), "offline_message");
        assert_eq!(EventKind::from_name("client_connected_2"), None);
    }

    #[test]
    fn kind_sets_hold_exactly_what_was_added() {
        let set: EventKinds = [EventKind::ClientConnected, EventKind::MessageAcked]
            .into_iter()
            .collect();
        for kind in EventKind::ALL {
            let expected = matches!(kind, EventKind::ClientConnected | EventKind::MessageAcked);
            assert_eq!(set.contains(kind), expected, "{kind:?}");
        }
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![EventKind::ClientConnected, EventKind::MessageAcked]
        );
        assert!(EventKind::ALL
            .iter()
            .all(|kind| EventKinds::ALL.contains(*kind)));
        assert!(EventKinds::NONE.is_empty());
        assert_eq!(
            set.union(EventKinds::NONE.with(EventKind::OfflineMessage))
                .iter()
                .count(),
            3
        );
    }
}
