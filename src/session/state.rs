//! The session state machine of one client: everything MQTT asks a broker to remember about a
//! client between packets, and across connections for a persistent session.
//!
//! Sans-IO: it takes packets, deliveries from the router and the time, and appends [`Action`]s;
//! it never touches a socket, a clock or an executor, so it is tested in virtual time. A
//! `Session` is `Send` so a shard can hand it to another shard on takeover.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::protocol::{
    AckProperties, ClientId, ConnAck, ConnAckProperties, Connect, Disconnect, Packet, PacketId,
    PayloadFormat, PubResponse, Publish, QoS, ReasonCode, SubscriptionId, SubscriptionOptions,
    TopicFilter, UnsubAck, Unsubscribe, Will,
};

use crate::hooks::{
    ClientInfo, Decision, DecisionHooks, PublishChanges, PublishRequest, SubscribeChanges,
};

use super::actions::{Acked, Action, Close, DropReason, Outgoing};
use super::alias::{AliasError, InboundAliases, OutboundAliases};
use super::context::SessionContext;
use super::inflight::{AckOutcome, Inflight, Redelivery};
use super::limits::{BrokerLimits, ClientLimits};
use super::message::{Delivery, Message, OutgoingPublish};
use super::subscribe::validate_subscribe;

/// A subscription as the session remembers it (the router holds the routing copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredSubscription {
    /// Options as granted.
    pub options: SubscriptionOptions,
    /// Subscription identifier (5.0).
    pub id: Option<SubscriptionId>,
}

/// The part of a session that exists only while a client is connected.
#[derive(Debug)]
struct Link {
    v5: bool,
    client: ClientLimits,
    keep_alive: Option<Duration>,
    last_received: Instant,
    inbound_aliases: InboundAliases,
    outbound_aliases: OutboundAliases,
    /// Spec 3.14.2.2.2: a DISCONNECT may not turn a zero session expiry into a non-zero one.
    connected_with_zero_expiry: bool,
    /// Who the client is, for the hooks and for the messages it publishes.
    info: Option<Arc<ClientInfo>>,
}

/// One client's session.
#[derive(Debug)]
pub struct Session {
    client_id: ClientId,
    limits: Arc<BrokerLimits>,
    subscriptions: HashMap<TopicFilter, StoredSubscription>,
    outbound: Inflight,
    /// QoS 2 packet ids received whose PUBREL has not come yet.
    inbound_qos2: HashSet<PacketId>,
    /// Boxed: most sessions have none, and a will with its properties is the biggest field.
    will: Option<Box<Will>>,
    expiry_secs: u32,
    link: Option<Link>,
}

/// What the driver does when the connection of a session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detached {
    /// The will to publish (after its delay), if the close calls for it.
    pub will: Option<Will>,
    /// How long the session outlives the connection; zero ends it now.
    pub expiry: Duration,
}

impl Session {
    /// A new, empty session.
    pub fn new(client_id: ClientId, limits: Arc<BrokerLimits>) -> Self {
        let (max_queued, max_queued_bytes) = (limits.max_queued_messages, limits.max_queued_bytes);
        Self {
            client_id,
            limits,
            subscriptions: HashMap::new(),
            outbound: Inflight::new(max_queued, max_queued_bytes),
            inbound_qos2: HashSet::new(),
            will: None,
            expiry_secs: 0,
            link: None,
        }
    }

    /// The client id.
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }

    /// True while a connection is attached.
    pub fn is_connected(&self) -> bool {
        self.link.is_some()
    }

    /// The session's subscriptions, for restoring its routes after it moves.
    pub fn subscriptions(&self) -> impl Iterator<Item = (&TopicFilter, &StoredSubscription)> {
        self.subscriptions.iter()
    }

    /// QoS 1/2 messages in flight to the client and queued behind the window.
    pub fn pending_len(&self) -> usize {
        self.outbound.in_flight_len() + self.outbound.waiting_len()
    }

    /// Attaches an accepted CONNECT: records the will, negotiates expiry and keep-alive, and
    /// returns the CONNACK to send first. Unacknowledged messages are sent again (DUP) and the
    /// queue drained into the window, as actions after the CONNACK.
    pub fn connect(
        &mut self,
        now: Instant,
        connect: &Connect,
        attach: Attach,
        actions: &mut Vec<Action>,
    ) -> ConnAck {
        let Attach {
            session_present,
            assigned_client_id,
            info,
        } = attach;
        let v5 = connect.protocol.is_v5();
        let limits = Arc::clone(&self.limits);
        let requested_expiry = if v5 {
            connect.properties.session_expiry_interval.unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            // 3.x persistent sessions have no expiry of their own: the broker's maximum.
            limits.max_session_expiry_secs
        };
        self.expiry_secs = requested_expiry.min(limits.max_session_expiry_secs);
        self.will = connect.will.as_ref().map(|will| Box::new(owned_will(will)));

        let mut keep_alive = connect.keep_alive;
        let max_keep_alive = limits.max_keep_alive_secs;
        let server_keep_alive =
            max_keep_alive > 0 && (keep_alive == 0 || keep_alive > max_keep_alive);
        if server_keep_alive && v5 {
            keep_alive = max_keep_alive;
        }
        let client = ClientLimits::from_connect(&connect.properties);
        self.link = Some(Link {
            v5,
            client,
            keep_alive: (keep_alive > 0).then(|| Duration::from_secs(u64::from(keep_alive))),
            last_received: now,
            inbound_aliases: InboundAliases::new(limits.topic_alias_maximum),
            outbound_aliases: OutboundAliases::new(client.topic_alias_maximum),
            connected_with_zero_expiry: self.expiry_secs == 0,
            info,
        });

        let mut properties = ConnAckProperties::default();
        if v5 {
            properties.receive_maximum = Some(limits.receive_maximum);
            properties.maximum_packet_size = Some(limits.max_packet_size);
            properties.topic_alias_maximum = Some(limits.topic_alias_maximum);
            if limits.maximum_qos != QoS::ExactlyOnce {
                properties.maximum_qos = Some(limits.maximum_qos);
            }
            if !limits.retain_available {
                properties.retain_available = Some(false);
            }
            if !limits.wildcard_subscription_available {
                properties.wildcard_subscription_available = Some(false);
            }
            if !limits.shared_subscription_available {
                properties.shared_subscription_available = Some(false);
            }
            if !limits.subscription_identifiers_available {
                properties.subscription_identifiers_available = Some(false);
            }
            if self.expiry_secs != requested_expiry {
                properties.session_expiry_interval = Some(self.expiry_secs);
            }
            if server_keep_alive {
                properties.server_keep_alive = Some(keep_alive);
            }
            if assigned_client_id {
                properties.assigned_client_identifier = Some(self.client_id.clone());
            }
        }
        self.resend_unacknowledged(now, actions);
        ConnAck {
            session_present,
            reason_code: ReasonCode::SUCCESS,
            properties,
        }
    }

    /// The connection ended (any cause). Returns what the driver must do about the will and
    /// the session's lifetime; the session keeps its state for a later reconnect.
    pub fn detach(&mut self, publish_will: bool) -> Detached {
        self.link = None;
        let will = self.will.take().filter(|_| publish_will).map(|will| *will);
        Detached {
            will,
            expiry: Duration::from_secs(u64::from(self.expiry_secs)),
        }
    }

    /// When [`Self::handle_timeout`] must next run: the keep-alive deadline (1.5 times the
    /// keep-alive after the last packet received).
    pub fn next_timeout(&self) -> Option<Instant> {
        let link = self.link.as_ref()?;
        link.keep_alive
            .map(|keep_alive| link.last_received + keep_alive.mul_f32(1.5))
    }

    /// Closes the connection if the keep-alive deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant, actions: &mut Vec<Action>) {
        if self.next_timeout().is_some_and(|deadline| now >= deadline) {
            actions.push(Action::Close(Close {
                reason: ReasonCode::KEEP_ALIVE_TIMEOUT,
                send_disconnect: true,
                publish_will: true,
            }));
        }
    }

    /// Handles a packet from the client.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        packet: Packet,
        context: &SessionContext<'_>,
        actions: &mut Vec<Action>,
    ) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        link.last_received = now;
        match packet {
            Packet::Publish(publish) => self.on_publish(now, publish, context, actions),
            Packet::PubAck(ack) => {
                if let Some(publish) = self.outbound.on_puback(ack.packet_id) {
                    if context.report_acks {
                        actions.push(Action::Acked(Acked {
                            qos: publish.qos,
                            packet_id: ack.packet_id,
                            dup: publish.dup,
                            message: publish.message,
                        }));
                    }
                    self.fill_window(now, actions);
                }
            }
            Packet::PubRec(rec) => {
                let success = rec.reason_code.is_success();
                if context.report_acks && success {
                    self.report_ack(rec.packet_id, actions);
                }
                match self.outbound.on_pubrec(rec.packet_id, success) {
                    AckOutcome::Accepted if success => {
                        send(actions, Packet::PubRel(PubResponse::success(rec.packet_id)));
                    }
                    AckOutcome::Accepted => self.fill_window(now, actions),
                    AckOutcome::Unknown => send(actions, Packet::PubRel(not_found(rec.packet_id))),
                }
            }
            Packet::PubComp(comp) => {
                if self.outbound.on_pubcomp(comp.packet_id) == AckOutcome::Accepted {
                    self.fill_window(now, actions);
                }
            }
            Packet::PubRel(rel) => {
                let response = if self.inbound_qos2.remove(&rel.packet_id) {
                    PubResponse::success(rel.packet_id)
                } else {
                    not_found(rel.packet_id)
                };
                send(actions, Packet::PubComp(response));
            }
            Packet::Subscribe(subscribe) => {
                let authorize = SubscribeAuthorizer {
                    hooks: context.hooks,
                    client_id: &self.client_id,
                    username: link.info.as_ref().and_then(|info| info.username.as_ref()),
                };
                let (request, disconnect) =
                    validate_subscribe(&self.limits, &self.subscriptions, subscribe, authorize);
                if let Some(code) = disconnect {
                    // A filter outside the topic table, where the table says to close: no
                    // SUBACK, the client is disconnected (5.0: with the denial's code).
                    return protocol_violation(actions, code);
                }
                for entry in &request.entries {
                    let stored = StoredSubscription {
                        options: entry.options,
                        id: entry.id,
                    };
                    self.subscriptions
                        .insert(entry.filter.to_owned_copy(), stored);
                }
                actions.push(Action::Subscribe(request));
            }
            Packet::Unsubscribe(unsubscribe) => self.on_unsubscribe(unsubscribe, actions),
            Packet::PingReq => send(actions, Packet::PingResp),
            Packet::Disconnect(disconnect) => self.on_disconnect(disconnect, actions),
            // Extended authentication is not offered, so AUTH is never expected; nor are a
            // second CONNECT or packets only a server sends.
            Packet::Auth(_)
            | Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => protocol_violation(actions, ReasonCode::PROTOCOL_ERROR),
        }
    }

    fn on_publish(
        &mut self,
        now: Instant,
        publish: Publish,
        context: &SessionContext<'_>,
        actions: &mut Vec<Action>,
    ) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        let limits = &self.limits;
        if publish.qos > limits.maximum_qos {
            return protocol_violation(actions, ReasonCode::QOS_NOT_SUPPORTED);
        }
        if publish.retain && !limits.retain_available {
            return protocol_violation(actions, ReasonCode::RETAIN_NOT_SUPPORTED);
        }
        // [MQTT-3.3.4-6]: a client may not send subscription identifiers.
        if !publish.properties.subscription_identifiers.is_empty() {
            return protocol_violation(actions, ReasonCode::PROTOCOL_ERROR);
        }
        let topic = match link
            .inbound_aliases
            .resolve(&publish.topic, publish.properties.topic_alias)
        {
            Ok(topic) => topic,
            Err(AliasError::OutOfRange) => {
                return protocol_violation(actions, ReasonCode::TOPIC_ALIAS_INVALID)
            }
            Err(AliasError::Unknown) => {
                return protocol_violation(actions, ReasonCode::PROTOCOL_ERROR)
            }
        };
        if level_count(topic.as_str()) > usize::from(limits.max_topic_levels) {
            // Deeper than `mqtt.max_topic_levels`: refused as an invalid topic name.
            return protocol_violation(actions, ReasonCode::TOPIC_NAME_INVALID);
        }
        let declared_utf8 =
            publish.properties.payload_format_indicator == Some(PayloadFormat::Utf8);
        let valid_payload = !declared_utf8 || std::str::from_utf8(&publish.payload).is_ok();
        let v5 = link.v5;
        let info = link.info.clone();
        let (qos, packet_id) = (publish.qos, publish.packet_id);
        if qos == QoS::ExactlyOnce && packet_id.is_some_and(|id| self.inbound_qos2.contains(&id)) {
            // A repeated id is a retry of a message already routed: acknowledge only.
            if let Some(packet_id) = packet_id {
                send(actions, Packet::PubRec(PubResponse::success(packet_id)));
            }
            return;
        }
        if qos == QoS::ExactlyOnce
            && packet_id.is_some()
            && self.inbound_qos2.len() >= usize::from(self.limits.receive_maximum.get())
        {
            return protocol_violation(actions, ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
        }
        let acknowledge = if valid_payload {
            let message = Message::published_by(
                now,
                self.client_id.clone(),
                info,
                context.unix_ns,
                topic,
                publish,
            );
            self.authorize_and_route(message, context, actions)
        } else {
            Some(ReasonCode::PAYLOAD_FORMAT_INVALID)
        };
        // `None`: the connection is closing; nothing is acknowledged.
        let Some(code) = acknowledge else {
            return;
        };
        match (qos, packet_id) {
            (QoS::AtMostOnce, _) | (_, None) => {}
            (QoS::AtLeastOnce, Some(packet_id)) => {
                send(actions, Packet::PubAck(response(packet_id, code, v5)));
            }
            (QoS::ExactlyOnce, Some(packet_id)) => {
                if code.is_success() {
                    self.inbound_qos2.insert(packet_id);
                }
                send(actions, Packet::PubRec(response(packet_id, code, v5)));
            }
        }
    }

    /// Runs the publish hooks on `message` and routes what they allow (rewritten as they say).
    /// Returns the code for the PUBACK/PUBREC, or `None` when the connection closes
    /// instead. A 3.x client cannot be told of a denial ([MQTT-3.3.5-2]): it gets a positive
    /// acknowledgement, or is disconnected when `mqtt.disconnect_on_denied_publish_v3` says.
    fn authorize_and_route(
        &self,
        mut message: Message,
        context: &SessionContext<'_>,
        actions: &mut Vec<Action>,
    ) -> Option<ReasonCode> {
        if context.hooks.publish.is_empty() {
            actions.push(Action::Route(Arc::new(message)));
            return Some(ReasonCode::SUCCESS);
        }
        let v5 = self.link.as_ref().is_some_and(|link| link.v5);
        let request = PublishRequest {
            client_id: &self.client_id,
            username: message
                .publisher
                .as_ref()
                .and_then(|info| info.username.as_ref()),
            topic: &message.topic,
            payload: &message.payload,
            qos: message.qos,
            retain: message.retain,
        };
        match context.hooks.auth_on_publish(&request) {
            Decision::Allow(changes) => {
                if let Some(changes) = changes {
                    apply_publish_changes(&mut message, changes, self.limits.maximum_qos);
                }
                actions.push(Action::Route(Arc::new(message)));
                Some(ReasonCode::SUCCESS)
            }
            Decision::Deny(denial) => {
                let feedback = denial.feedback.map(|feedback| {
                    Arc::new(Message {
                        topic: feedback.topic,
                        payload: feedback.payload,
                        qos: message.qos,
                        retain: false,
                        properties: Default::default(),
                        expires_at: None,
                        origin: message.origin.clone(),
                        publisher: None,
                        received_at_ns: message.received_at_ns,
                    })
                });
                actions.push(Action::Denied {
                    message: Arc::new(message),
                    feedback,
                });
                let close =
                    denial.disconnect || (!v5 && self.limits.disconnect_on_denied_publish_v3);
                if close {
                    protocol_violation(actions, denial.code);
                    return None;
                }
                Some(if v5 { denial.code } else { ReasonCode::SUCCESS })
            }
        }
    }

    /// Reports the acknowledgement of the delivery in flight under `packet_id`, if any.
    fn report_ack(&self, packet_id: PacketId, actions: &mut Vec<Action>) {
        if let Some(publish) = self.outbound.awaiting_ack(packet_id) {
            actions.push(Action::Acked(Acked {
                message: Arc::clone(&publish.message),
                qos: publish.qos,
                packet_id,
                dup: publish.dup,
            }));
        }
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe, actions: &mut Vec<Action>) {
        let reason_codes = unsubscribe
            .filters
            .iter()
            .map(|filter| match self.subscriptions.remove(filter) {
                Some(_) => ReasonCode::SUCCESS,
                None => ReasonCode::NO_SUBSCRIPTION_EXISTED,
            })
            .collect();
        send(
            actions,
            Packet::UnsubAck(UnsubAck {
                packet_id: unsubscribe.packet_id,
                properties: AckProperties::default(),
                reason_codes,
            }),
        );
        actions.push(Action::Unsubscribe(unsubscribe.filters));
    }

    fn on_disconnect(&mut self, disconnect: Disconnect, actions: &mut Vec<Action>) {
        let zero_at_connect = self
            .link
            .as_ref()
            .is_some_and(|link| link.connected_with_zero_expiry);
        if let Some(expiry) = disconnect.properties.session_expiry_interval {
            if zero_at_connect && expiry != 0 {
                return protocol_violation(actions, ReasonCode::PROTOCOL_ERROR);
            }
            self.expiry_secs = expiry.min(self.limits.max_session_expiry_secs);
        }
        actions.push(Action::Close(Close {
            reason: disconnect.reason_code,
            send_disconnect: false,
            publish_will: disconnect.reason_code == ReasonCode::DISCONNECT_WITH_WILL,
        }));
    }

    /// Delivers a routed message to this client: at once for QoS 0 (dropped while offline),
    /// through the window for QoS 1/2 (queued while offline or while the window is full).
    pub fn deliver(&mut self, now: Instant, delivery: Delivery, actions: &mut Vec<Action>) {
        if delivery.message.is_expired(now) {
            return actions.push(Action::Dropped(DropReason::Expired, delivery.message));
        }
        let publish = OutgoingPublish {
            message_expiry_secs: delivery.message.remaining_expiry_secs(now),
            message: delivery.message,
            qos: delivery.qos,
            packet_id: None,
            dup: false,
            retain: delivery.retain,
            subscription_ids: delivery.subscription_ids,
            topic_alias: None,
        };
        if publish.qos == QoS::AtMostOnce {
            return match self.link.is_some() {
                true => self.send_publish(publish, actions),
                false => actions.push(Action::Dropped(DropReason::Offline, publish.message)),
            };
        }
        if let Err(refused) = self.outbound.enqueue(publish) {
            return actions.push(Action::Dropped(DropReason::QueueFull, refused.message));
        }
        self.fill_window(now, actions);
    }

    /// Moves queued QoS 1/2 messages into the window while it has room and a client is there.
    fn fill_window(&mut self, now: Instant, actions: &mut Vec<Action>) {
        let Some(link) = self.link.as_ref() else {
            return;
        };
        let window = usize::from(
            link.client
                .receive_maximum
                .min(self.limits.max_outbound_window.get()),
        );
        loop {
            // Only the messages about to be sent are checked: a scan of the whole queue on
            // every acknowledgement would cost O(queue) per ack.
            self.outbound.drop_expired_front(
                |publish| publish.message.is_expired(now),
                |publish| actions.push(Action::Dropped(DropReason::Expired, publish.message)),
            );
            let Some(mut publish) = self.outbound.send_next(window) else {
                break;
            };
            publish.message_expiry_secs = publish.message.remaining_expiry_secs(now);
            self.send_publish(publish, actions);
        }
    }

    /// Sends the window's unacknowledged packets again after a reconnect, then fills it.
    fn resend_unacknowledged(&mut self, now: Instant, actions: &mut Vec<Action>) {
        for redelivery in self.outbound.redeliver() {
            match redelivery {
                Redelivery::Publish(publish) => self.send_publish(publish, actions),
                Redelivery::PubRel(packet_id) => {
                    send(actions, Packet::PubRel(PubResponse::success(packet_id)));
                }
            }
        }
        self.fill_window(now, actions);
    }

    /// Applies the connection's topic alias and size limit, then queues the PUBLISH.
    fn send_publish(&mut self, mut publish: OutgoingPublish, actions: &mut Vec<Action>) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if link.v5 {
            publish.topic_alias = link.outbound_aliases.alias_for(&publish.message.topic);
        } else {
            publish.subscription_ids = Default::default();
            publish.message_expiry_secs = None;
        }
        if let Some(max) = link.client.maximum_packet_size {
            let version = if link.v5 {
                crate::protocol::ProtocolVersion::V5
            } else {
                crate::protocol::ProtocolVersion::V3_1_1
            };
            if publish.to_packet().encoded_len(version) > max.get() as usize {
                // [MQTT-3.1.2-25]: not sent, and treated as delivered.
                if let Some(packet_id) = publish.packet_id {
                    self.outbound.discard(packet_id);
                }
                return actions.push(Action::Dropped(DropReason::TooLarge, publish.message));
            }
        }
        actions.push(Action::Send(Outgoing::Publish(publish)));
    }
}

/// What the shard knows of a connection it attaches to a session.
#[derive(Debug, Clone, Default)]
pub struct Attach {
    /// Whether the session existed before (CONNACK Session Present).
    pub session_present: bool,
    /// Whether the broker assigned the client id (5.0: returned in CONNACK).
    pub assigned_client_id: bool,
    /// Who the client is, for the hooks and the events about its messages.
    pub info: Option<Arc<ClientInfo>>,
}

/// Applies a publish hook's rewrite. The QoS may only go down to what the broker offers.
fn apply_publish_changes(message: &mut Message, changes: PublishChanges, maximum_qos: QoS) {
    if let Some(topic) = changes.topic {
        message.topic = topic;
    }
    if let Some(payload) = changes.payload {
        message.payload = payload;
    }
    if let Some(qos) = changes.qos {
        message.qos = qos.min(maximum_qos);
    }
    if let Some(retain) = changes.retain {
        message.retain = retain;
    }
}

/// Runs `auth_on_subscribe` for each filter validation accepted.
pub(crate) struct SubscribeAuthorizer<'a> {
    pub hooks: &'a DecisionHooks,
    pub client_id: &'a ClientId,
    pub username: Option<&'a crate::protocol::MqttString>,
}

impl SubscribeAuthorizer<'_> {
    /// The chain's decision on `filter` at `qos` (allowed unchanged when no hook is set).
    pub fn decide(&self, filter: &TopicFilter, qos: QoS) -> Decision<SubscribeChanges> {
        if self.hooks.subscribe.is_empty() {
            return Decision::Allow(None);
        }
        self.hooks
            .auth_on_subscribe(&crate::hooks::SubscribeRequest {
                client_id: self.client_id,
                username: self.username,
                filter,
                qos,
            })
    }
}

fn send(actions: &mut Vec<Action>, packet: Packet) {
    actions.push(Action::Send(Outgoing::Packet(packet)));
}

fn response(packet_id: PacketId, reason_code: ReasonCode, v5: bool) -> PubResponse {
    let mut response = PubResponse::success(packet_id);
    if v5 {
        response.reason_code = reason_code;
    }
    response
}

fn not_found(packet_id: PacketId) -> PubResponse {
    PubResponse {
        packet_id,
        reason_code: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
        properties: AckProperties::default(),
    }
}

/// The client broke a rule: DISCONNECT with `reason` (5.0) and close, publishing the will.
fn protocol_violation(actions: &mut Vec<Action>, reason: ReasonCode) {
    actions.push(Action::Close(Close {
        reason,
        send_disconnect: true,
        publish_will: true,
    }));
}

/// Number of levels in a topic name or filter (`a/b` has two, `a//b` three).
pub(crate) fn level_count(topic: &str) -> usize {
    topic.bytes().filter(|&byte| byte == b'/').count() + 1
}

/// A copy of `will` that holds nothing of the CONNECT's read buffer: it is kept for as long as
/// the connection, or the session, lasts.
fn owned_will(will: &Will) -> Will {
    let properties = &will.properties;
    Will {
        topic: will.topic.to_owned_copy(),
        payload: bytes::Bytes::copy_from_slice(&will.payload),
        qos: will.qos,
        retain: will.retain,
        properties: crate::protocol::WillProperties {
            content_type: properties
                .content_type
                .as_ref()
                .map(|text| text.to_owned_copy()),
            response_topic: properties
                .response_topic
                .as_ref()
                .map(|topic| topic.to_owned_copy()),
            correlation_data: properties
                .correlation_data
                .as_ref()
                .map(|data| bytes::Bytes::copy_from_slice(data)),
            user_properties: properties
                .user_properties
                .iter()
                .map(|property| property.to_owned_copy())
                .collect(),
            ..properties.clone()
        },
    }
}
