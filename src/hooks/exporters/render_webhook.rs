//! An event as the web-hook document's JSON body, shared by the web-hook and JSON-lines sinks.
//!
//! The keys per action are exactly the document's (RMQTT's web-hook), plus VerneMQ's
//! `offline_message`. Conventions:
//!
//! - `node` and `from_node` are integers; every time (`created_at`, `connected_at`,
//!   `disconnected_at`, `ts`, `pts`) is Unix milliseconds.
//! - `username` is the string `"undefined"` when the client sent none; `ipaddress` is
//!   `"ip:port"` (`"[v6]:port"` for IPv6), or `"undefined"` when unknown.
//! - `payload` is the message payload in standard base64 (with padding).
//! - `packet_id` is a string (as RMQTT sends it), `""` for QoS 0 where there is none.
//! - `message_publish`'s `ts` is when the broker received the message.
//! - `message_dropped` carries the subscriber's fields (`node`, `ipaddress`, `clientid`,
//!   `username`) only when the drop concerned a subscriber. A message dropped before it
//!   reached any (`no_subscribers`, `not_authorized`) omits them: that event's client is the
//!   publisher. The reason decides, not whether the client is the publisher, because a client
//!   subscribed to its own topic is a real subscriber.
//! - An event whose detail does not fit its kind (which the shards never record) renders the
//!   client fields and `action` only, rather than failing the batch.
//!
//! Rendering runs on the exporter runtime, never on a shard.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::ExportItem;
use crate::hooks::event::{ClientInfo, Event, EventDetail, EventKind, MessageFacts};
use crate::protocol::ReasonCode;
use crate::session::DropReason;

/// What `username` and `ipaddress` say when there is none.
pub const UNDEFINED: &str = "undefined";

/// The body of one item: its event under its rule's action name.
pub fn render(item: &ExportItem) -> Value {
    render_event(&item.event, &item.action)
}

/// The body of `event` sent as `action`.
pub fn render_event(event: &Event, action: &str) -> Value {
    let mut body = Map::new();
    body.insert("action".into(), action.into());
    let at_ms = millis(event.at_ns);
    match (event.kind, &event.detail) {
        (EventKind::SessionCreated, _) => {
            client_fields(&mut body, &event.client);
            body.insert("created_at".into(), at_ms.into());
        }
        (EventKind::SessionTerminated | EventKind::ClientDisconnected, detail) => {
            client_fields(&mut body, &event.client);
            if event.kind == EventKind::ClientDisconnected {
                body.insert("disconnected_at".into(), at_ms.into());
            }
            let reason = match detail {
                EventDetail::Disconnected(reason) => reason.as_str(),
                _ => UNDEFINED,
            };
            body.insert("reason".into(), reason.into());
        }
        (
            EventKind::SessionSubscribed
            | EventKind::ClientSubscribe
            | EventKind::SessionUnsubscribed
            | EventKind::ClientUnsubscribe,
            EventDetail::Subscription { filter, qos },
        ) => {
            client_fields(&mut body, &event.client);
            body.insert("topic".into(), filter.as_str().into());
            if matches!(
                event.kind,
                EventKind::SessionSubscribed | EventKind::ClientSubscribe
            ) {
                body.insert("opts".into(), json!({ "qos": qos.as_u8() }));
            }
        }
        (EventKind::ClientConnect | EventKind::ClientConnack | EventKind::ClientConnected, _) => {
            client_fields(&mut body, &event.client);
            connect_fields(&mut body, &event.client);
            let (code, session_present) = match event.detail {
                EventDetail::Connack {
                    code,
                    session_present,
                } => (Some(code), session_present),
                _ => (None, false),
            };
            if event.kind == EventKind::ClientConnack {
                let text = code.map_or("Connection Accepted", connack_text);
                body.insert("conn_ack".into(), text.into());
            }
            if event.kind == EventKind::ClientConnected {
                body.insert("connected_at".into(), at_ms.into());
                body.insert("session_present".into(), session_present.into());
            }
        }
        (EventKind::MessagePublish, EventDetail::Message(facts)) => {
            publisher_fields(&mut body, facts);
            message_fields(&mut body, facts);
            body.insert("ts".into(), millis(facts.published_at_ns).into());
        }
        (
            EventKind::MessageDelivered | EventKind::MessageAcked | EventKind::MessageDropped,
            EventDetail::Message(facts),
        ) => {
            publisher_fields(&mut body, facts);
            let before_any_subscriber = matches!(
                facts.dropped,
                Some(DropReason::NoSubscribers | DropReason::NotAuthorized)
            );
            if !before_any_subscriber {
                client_fields(&mut body, &event.client);
            }
            message_fields(&mut body, facts);
            body.insert("pts".into(), millis(facts.published_at_ns).into());
            body.insert("ts".into(), at_ms.into());
            if event.kind == EventKind::MessageDropped {
                let reason = facts.dropped.map_or(UNDEFINED, DropReason::as_str);
                body.insert("reason".into(), reason.into());
            }
        }
        (EventKind::OfflineMessage, EventDetail::Message(facts)) => {
            body.insert("clientid".into(), event.client.client_id.as_str().into());
            body.insert("username".into(), username(&event.client).into());
            body.insert("qos".into(), facts.qos.as_u8().into());
            body.insert("topic".into(), facts.message.topic.as_str().into());
            body.insert("payload".into(), base64(&facts.message.payload).into());
            body.insert("retain".into(), facts.message.retain.into());
            body.insert("ts".into(), at_ms.into());
            body.insert(
                "from_clientid".into(),
                facts.publisher.client_id.as_str().into(),
            );
        }
        // A detail that does not fit its kind: say who, at least.
        _ => client_fields(&mut body, &event.client),
    }
    Value::Object(body)
}

/// The `conn_ack` text of a CONNACK code: "Connection Accepted", or the MQTT 5 name of the
/// refusal (3.x return codes arrive mapped to their 5.0 equivalents).
pub fn connack_text(code: ReasonCode) -> &'static str {
    match code.0 {
        0x00 => "Connection Accepted",
        0x80 => "Unspecified error",
        0x81 => "Malformed Packet",
        0x82 => "Protocol Error",
        0x83 => "Implementation specific error",
        0x84 => "Unsupported Protocol Version",
        0x85 => "Client Identifier not valid",
        0x86 => "Bad User Name or Password",
        0x87 => "Not authorized",
        0x88 => "Server unavailable",
        0x89 => "Server busy",
        0x8A => "Banned",
        0x8C => "Bad authentication method",
        0x90 => "Topic Name invalid",
        0x95 => "Packet too large",
        0x97 => "Quota exceeded",
        0x99 => "Payload format invalid",
        0x9A => "Retain not supported",
        0x9B => "QoS not supported",
        0x9C => "Use another server",
        0x9D => "Server moved",
        0x9F => "Connection rate exceeded",
        _ => code.name(),
    }
}

fn millis(ns: u64) -> u64 {
    ns / 1_000_000
}

fn username(client: &ClientInfo) -> &str {
    client
        .username
        .as_ref()
        .map_or(UNDEFINED, |name| name.as_str())
}

fn ipaddress(client: &ClientInfo) -> String {
    client
        .address
        .map_or_else(|| UNDEFINED.to_string(), |address| address.to_string())
}

fn base64(payload: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(payload)
}

/// `node`, `ipaddress`, `clientid`, `username` of the event's client.
fn client_fields(body: &mut Map<String, Value>, client: &ClientInfo) {
    body.insert("node".into(), client.node.into());
    body.insert("ipaddress".into(), ipaddress(client).into());
    body.insert("clientid".into(), client.client_id.as_str().into());
    body.insert("username".into(), username(client).into());
}

/// What a CONNECT said: `keepalive`, `proto_ver`, and `clean_session` (3.x) or `clean_start`
/// (5.0).
fn connect_fields(body: &mut Map<String, Value>, client: &ClientInfo) {
    body.insert("keepalive".into(), client.keep_alive_secs.into());
    body.insert("proto_ver".into(), client.protocol.into());
    let clean_key = if client.protocol >= 5 {
        "clean_start"
    } else {
        "clean_session"
    };
    body.insert(clean_key.into(), client.clean_start.into());
}

/// `from_node`, `from_ipaddress`, `from_clientid`, `from_username` of the publisher.
fn publisher_fields(body: &mut Map<String, Value>, facts: &MessageFacts) {
    let publisher = &facts.publisher;
    body.insert("from_node".into(), publisher.node.into());
    body.insert("from_ipaddress".into(), ipaddress(publisher).into());
    body.insert("from_clientid".into(), publisher.client_id.as_str().into());
    body.insert("from_username".into(), username(publisher).into());
}

/// `dup`, `retain`, `qos`, `topic`, `packet_id`, `payload`.
fn message_fields(body: &mut Map<String, Value>, facts: &MessageFacts) {
    let message = &facts.message;
    body.insert("dup".into(), facts.dup.into());
    body.insert("retain".into(), message.retain.into());
    body.insert("qos".into(), facts.qos.as_u8().into());
    body.insert("topic".into(), message.topic.as_str().into());
    let packet_id = facts
        .packet_id
        .map_or_else(String::new, |id| id.get().to_string());
    body.insert("packet_id".into(), packet_id.into());
    body.insert("payload".into(), base64(&message.payload).into());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::hooks::event::DisconnectReason;
    use crate::protocol::{ClientId, MqttString, PacketId, QoS, TopicFilter, TopicName};
    use crate::session::Message;

    const AT_NS: u64 = 1_700_000_000_123_456_789;
    const AT_MS: u64 = 1_700_000_000_123;
    const PUBLISHED_NS: u64 = 1_700_000_000_100_000_000;
    const PUBLISHED_MS: u64 = 1_700_000_000_100;

    fn subscriber() -> Arc<ClientInfo> {
        Arc::new(ClientInfo {
            node: 1,
            shard: 2,
            client_id: ClientId::new("sub-1").unwrap(),
            username: Some(MqttString::new("alice").unwrap()),
            address: Some("10.0.0.5:51000".parse().unwrap()),
            protocol: 5,
            keep_alive_secs: 60,
            clean_start: true,
        })
    }

    fn publisher() -> Arc<ClientInfo> {
        Arc::new(ClientInfo {
            node: 3,
            shard: 0,
            client_id: ClientId::new("pub-1").unwrap(),
            username: None,
            address: None,
            protocol: 4,
            keep_alive_secs: 30,
            clean_start: false,
        })
    }

    fn facts(dropped: Option<DropReason>) -> MessageFacts {
        MessageFacts {
            message: Arc::new(Message {
                topic: TopicName::new("foo/bar").unwrap(),
                payload: Bytes::from_static(b"hello"),
                qos: QoS::ExactlyOnce,
                retain: true,
                properties: Default::default(),
                expires_at: None,
                origin: ClientId::new("pub-1").unwrap(),
                publisher: None,
                received_at_ns: 0,
            }),
            publisher: publisher(),
            published_at_ns: PUBLISHED_NS,
            qos: QoS::AtLeastOnce,
            packet_id: PacketId::new(7),
            dup: false,
            dropped,
        }
    }

    fn render_kind(kind: EventKind, client: Arc<ClientInfo>, detail: EventDetail) -> Value {
        let event = Event {
            kind,
            at_ns: AT_NS,
            client,
            detail,
        };
        render_event(&event, kind.name())
    }

    fn keys(body: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        keys
    }

    fn sorted(mut expected: Vec<&str>) -> Vec<&str> {
        expected.sort_unstable();
        expected
    }

    const CLIENT: [&str; 5] = ["action", "node", "ipaddress", "clientid", "username"];

    fn with_client(extra: &[&'static str]) -> Vec<&'static str> {
        sorted(CLIENT.iter().chain(extra).copied().collect())
    }

    fn subscription(filter: &str) -> EventDetail {
        EventDetail::Subscription {
            filter: TopicFilter::new(filter).unwrap(),
            qos: QoS::AtLeastOnce,
        }
    }

    #[test]
    fn session_events() {
        let body = render_kind(EventKind::SessionCreated, subscriber(), EventDetail::None);
        assert_eq!(keys(&body), with_client(&["created_at"]));
        assert_eq!(
            body,
            json!({"action": "session_created", "node": 1, "ipaddress": "10.0.0.5:51000",
                   "clientid": "sub-1", "username": "alice", "created_at": AT_MS})
        );

        let body = render_kind(
            EventKind::SessionTerminated,
            subscriber(),
            EventDetail::Disconnected(DisconnectReason::TakenOver),
        );
        assert_eq!(keys(&body), with_client(&["reason"]));
        assert_eq!(body["reason"], "takenover");

        let body = render_kind(
            EventKind::SessionSubscribed,
            subscriber(),
            subscription("x/+/z"),
        );
        assert_eq!(keys(&body), with_client(&["topic", "opts"]));
        assert_eq!(body["topic"], "x/+/z");
        assert_eq!(body["opts"], json!({"qos": 1}));

        let body = render_kind(
            EventKind::SessionUnsubscribed,
            subscriber(),
            subscription("x/y"),
        );
        assert_eq!(keys(&body), with_client(&["topic"]));
        assert_eq!(body["topic"], "x/y");
    }

    #[test]
    fn client_subscribe_and_unsubscribe() {
        let body = render_kind(
            EventKind::ClientSubscribe,
            subscriber(),
            subscription("a/#"),
        );
        assert_eq!(keys(&body), with_client(&["topic", "opts"]));
        assert_eq!(body["action"], "client_subscribe");
        let body = render_kind(
            EventKind::ClientUnsubscribe,
            subscriber(),
            subscription("a/#"),
        );
        assert_eq!(keys(&body), with_client(&["topic"]));
    }

    #[test]
    fn connect_connack_connected_disconnected() {
        let body = render_kind(EventKind::ClientConnect, subscriber(), EventDetail::None);
        assert_eq!(
            keys(&body),
            with_client(&["keepalive", "proto_ver", "clean_start"])
        );
        assert_eq!(body["keepalive"], 60);
        assert_eq!(body["proto_ver"], 5);
        assert_eq!(body["clean_start"], true);

        // MQTT 3.1.1, no user name, no address.
        let body = render_kind(EventKind::ClientConnect, publisher(), EventDetail::None);
        assert_eq!(
            keys(&body),
            with_client(&["keepalive", "proto_ver", "clean_session"])
        );
        assert_eq!(body["username"], "undefined");
        assert_eq!(body["ipaddress"], "undefined");
        assert_eq!(body["clean_session"], false);
        assert_eq!(body["node"], 3);

        let accepted = EventDetail::Connack {
            code: ReasonCode::SUCCESS,
            session_present: true,
        };
        let body = render_kind(EventKind::ClientConnack, subscriber(), accepted.clone());
        assert_eq!(
            keys(&body),
            with_client(&["keepalive", "proto_ver", "clean_start", "conn_ack"])
        );
        assert_eq!(body["conn_ack"], "Connection Accepted");
        let refused = EventDetail::Connack {
            code: ReasonCode(0x86),
            session_present: false,
        };
        let body = render_kind(EventKind::ClientConnack, subscriber(), refused);
        assert_eq!(body["conn_ack"], "Bad User Name or Password");

        let body = render_kind(EventKind::ClientConnected, subscriber(), accepted);
        assert_eq!(
            keys(&body),
            with_client(&[
                "keepalive",
                "proto_ver",
                "clean_start",
                "connected_at",
                "session_present"
            ])
        );
        assert_eq!(body["connected_at"], AT_MS);
        assert_eq!(body["session_present"], true);
        let body = render_kind(EventKind::ClientConnected, subscriber(), EventDetail::None);
        assert_eq!(body["session_present"], false);

        let body = render_kind(
            EventKind::ClientDisconnected,
            subscriber(),
            EventDetail::Disconnected(DisconnectReason::KeepAliveTimeout),
        );
        assert_eq!(keys(&body), with_client(&["disconnected_at", "reason"]));
        assert_eq!(body["disconnected_at"], AT_MS);
        assert_eq!(body["reason"], "keepalive_timeout");
    }

    #[test]
    fn connack_codes_have_their_names() {
        for (code, text) in [
            (0x80, "Unspecified error"),
            (0x84, "Unsupported Protocol Version"),
            (0x85, "Client Identifier not valid"),
            (0x87, "Not authorized"),
            (0x88, "Server unavailable"),
            (0x8A, "Banned"),
            (0x97, "Quota exceeded"),
            (0x9F, "Connection rate exceeded"),
        ] {
            assert_eq!(connack_text(ReasonCode(code)), text);
        }
    }

    const PUBLISHER: [&str; 4] = [
        "from_node",
        "from_ipaddress",
        "from_clientid",
        "from_username",
    ];
    const MESSAGE: [&str; 6] = ["dup", "retain", "qos", "topic", "packet_id", "payload"];

    #[test]
    fn message_publish() {
        let mut facts = facts(None);
        facts.publisher = publisher();
        let body = render_kind(
            EventKind::MessagePublish,
            publisher(),
            EventDetail::Message(facts),
        );
        let expected: Vec<&str> = ["action", "ts"]
            .iter()
            .chain(&PUBLISHER)
            .chain(&MESSAGE)
            .copied()
            .collect();
        assert_eq!(keys(&body), sorted(expected));
        assert_eq!(
            body,
            json!({"action": "message_publish", "from_node": 3, "from_ipaddress": "undefined",
                   "from_clientid": "pub-1", "from_username": "undefined", "dup": false,
                   "retain": true, "qos": 1, "topic": "foo/bar", "packet_id": "7",
                   "payload": "aGVsbG8=", "ts": PUBLISHED_MS})
        );
    }

    fn delivered_keys(extra: &[&'static str]) -> Vec<&'static str> {
        sorted(
            CLIENT
                .iter()
                .chain(&PUBLISHER)
                .chain(&MESSAGE)
                .chain(&["pts", "ts"])
                .chain(extra)
                .copied()
                .collect(),
        )
    }

    #[test]
    fn message_delivered_and_acked() {
        for kind in [EventKind::MessageDelivered, EventKind::MessageAcked] {
            let body = render_kind(kind, subscriber(), EventDetail::Message(facts(None)));
            assert_eq!(keys(&body), delivered_keys(&[]), "{kind:?}");
            assert_eq!(body["action"], kind.name());
            assert_eq!(body["clientid"], "sub-1");
            assert_eq!(body["username"], "alice");
            assert_eq!(body["from_clientid"], "pub-1");
            assert_eq!(body["pts"], PUBLISHED_MS);
            assert_eq!(body["ts"], AT_MS);
            assert_eq!(body["payload"], "aGVsbG8=");
        }
        let mut qos0 = facts(None);
        qos0.packet_id = None;
        qos0.qos = QoS::AtMostOnce;
        let body = render_kind(
            EventKind::MessageDelivered,
            subscriber(),
            EventDetail::Message(qos0),
        );
        assert_eq!(body["packet_id"], "");
        assert_eq!(body["qos"], 0);
    }

    #[test]
    fn message_dropped_names_the_subscriber_only_when_there_was_one() {
        let body = render_kind(
            EventKind::MessageDropped,
            subscriber(),
            EventDetail::Message(facts(Some(DropReason::QueueFull))),
        );
        assert_eq!(keys(&body), delivered_keys(&["reason"]));
        assert_eq!(body["reason"], "queue_full");
        assert_eq!(body["clientid"], "sub-1");

        let body = render_kind(
            EventKind::MessageDropped,
            publisher(),
            EventDetail::Message(facts(Some(DropReason::NoSubscribers))),
        );
        let expected: Vec<&str> = ["action", "pts", "ts", "reason"]
            .iter()
            .chain(&PUBLISHER)
            .chain(&MESSAGE)
            .copied()
            .collect();
        assert_eq!(keys(&body), sorted(expected));
        assert_eq!(body["reason"], "no_subscribers");
    }

    #[test]
    fn offline_message() {
        let body = render_kind(
            EventKind::OfflineMessage,
            subscriber(),
            EventDetail::Message(facts(None)),
        );
        assert_eq!(
            body,
            json!({"action": "offline_message", "clientid": "sub-1", "username": "alice",
                   "qos": 1, "topic": "foo/bar", "payload": "aGVsbG8=", "retain": true,
                   "ts": AT_MS, "from_clientid": "pub-1"})
        );
    }

    #[test]
    fn the_rules_action_name_is_the_one_sent() {
        let event = Event {
            kind: EventKind::ClientConnected,
            at_ns: AT_NS,
            client: subscriber(),
            detail: EventDetail::None,
        };
        let item = ExportItem {
            event: Arc::new(event),
            action: Arc::from("client_connected_2"),
            destinations: None,
        };
        assert_eq!(render(&item)["action"], "client_connected_2");
    }

    #[test]
    fn a_detail_that_does_not_fit_renders_who_at_least() {
        let body = render_kind(EventKind::MessagePublish, subscriber(), EventDetail::None);
        assert_eq!(keys(&body), with_client(&[]));
    }
}
