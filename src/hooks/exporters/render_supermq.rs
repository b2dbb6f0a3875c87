//! Events in SuperMQ's event format, shared by the Redis Streams, NATS JetStream and Kafka
//! sinks: flat named fields, `occurred_at` in Unix nanoseconds, one stream per kind of fact.
//!
//! SuperMQ's MQTT adapter publishes `client_connected` and `client_disconnected` to the stream
//! `supermq.mqtt` with exactly four fields, in this order: `client_id`, `event_type`
//! (`connect` or `disconnect`), `instance` and `occurred_at`. Those two kinds are rendered
//! exactly so, because SuperMQ's consumers decode them field by field; the disconnect `reason`
//! is added as a fifth field only when [`SupermqFormat::disconnect_reason`] asks for it.
//!
//! Every other kind goes to a stream of its own, `<stream>.<event name>` (for instance
//! `supermq.mqtt.message_publish`), the way SuperMQ's other services give each service a
//! stream and name the event in an `operation` field. Its fields, in order:
//!
//! - always: `operation` (the rule's action, which is the event name unless the rule renames
//!   it), `client_id`, `instance`, `occurred_at`, `username` (empty when none) and `ipaddress`
//!   (`ip:port`, as the web-hook payloads give it; empty when unknown);
//! - `client_connect`: `proto_ver`, `keepalive`, `clean_start`;
//! - `client_connack`: `code` (the reason code), `session_present`;
//! - `session_terminated`: `reason`;
//! - subscribe and unsubscribe kinds: `topic` (the filter), `qos`;
//! - message kinds: `topic`, `qos` (of this event's packet), `retain`, `dup`, `packet_id` (only
//!   when the packet has one), `payload` (base64, standard alphabet with padding),
//!   `from_client_id`, `from_username`, `published_at` (Unix ns), and for `message_dropped`
//!   `reason`.
//!
//! The stream suffix is always the event's own name, never a renamed action: stream, subject
//! and topic names then come from a fixed set of fifteen safe words, whatever a rule says.
//!
//! The payload is base64 in every sink, Redis included, although Redis could store raw bytes:
//! one consumer can then read the same field from any of the three, and a consumer that reads
//! fields as text (SuperMQ's Go code decodes into `map[string]interface{}`) never meets bytes
//! that are not UTF-8.
//!
//! Values are typed ([`FieldValue`]) so that JSON gets numbers and booleans
//! (`"occurred_at":1696852656381976408`, as in SuperMQ's NATS example) while Redis gets their
//! decimal text (`"1693312937469719069"`, as in its Redis example).

use std::borrow::Cow;
use std::net::SocketAddr;

use base64::Engine as _;

use super::ExportItem;
use crate::hooks::event::{ClientInfo, EventDetail, EventKind};

/// SuperMQ's stream for MQTT connect and disconnect events.
pub const DEFAULT_STREAM: &str = "supermq.mqtt";

/// How events are named and labelled; shared by the three sinks' configs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupermqFormat {
    /// The stream of connect and disconnect events, and the prefix of every other kind's
    /// stream (`supermq.mqtt`). Sinks that address differently put their own prefix before
    /// it (NATS subjects are `events.supermq.mqtt…`).
    pub stream: String,
    /// The `instance` field: which broker instance speaks (empty in SuperMQ's examples).
    pub instance: String,
    /// Adds `reason` to `disconnect` events: a fifth field SuperMQ's format does not have, so
    /// off unless a consumer wants it.
    pub disconnect_reason: bool,
}

impl Default for SupermqFormat {
    fn default() -> Self {
        Self {
            stream: DEFAULT_STREAM.to_owned(),
            instance: String::new(),
            disconnect_reason: false,
        }
    }
}

/// One field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// Text.
    Text(Cow<'a, str>),
    /// A number: a JSON number, decimal text in Redis.
    Int(u64),
    /// A flag: a JSON boolean, `true`/`false` in Redis.
    Bool(bool),
}

impl FieldValue<'_> {
    /// The value as Redis stores it: text.
    pub fn to_text(&self) -> Cow<'_, str> {
        match self {
            FieldValue::Text(text) => Cow::Borrowed(text.as_ref()),
            FieldValue::Int(number) => Cow::Owned(number.to_string()),
            FieldValue::Bool(flag) => Cow::Borrowed(if *flag { "true" } else { "false" }),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            FieldValue::Text(text) => serde_json::Value::String(text.as_ref().to_owned()),
            FieldValue::Int(number) => serde_json::Value::from(*number),
            FieldValue::Bool(flag) => serde_json::Value::Bool(*flag),
        }
    }
}

/// One event, rendered: where it goes and its fields in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered<'a> {
    /// `None` for the main stream (connect and disconnect); otherwise the event name that
    /// follows the main stream's name after a dot.
    pub suffix: Option<&'static str>,
    /// The fields, in the order they are written.
    pub fields: Vec<(&'static str, FieldValue<'a>)>,
}

impl Rendered<'_> {
    /// The full name under `base` (`base` itself, or `base.<event name>`).
    pub fn destination(&self, base: &str) -> String {
        match self.suffix {
            None => base.to_owned(),
            Some(suffix) => format!("{base}.{suffix}"),
        }
    }

    /// The fields as one flat JSON object, keys in field order.
    pub fn to_json(&self) -> Vec<u8> {
        let mut object = serde_json::Map::with_capacity(self.fields.len());
        for (name, value) in &self.fields {
            object.insert((*name).to_owned(), value.to_json());
        }
        // Serialising a map of strings, numbers and booleans cannot fail; an empty body is
        // the harmless answer if it ever did.
        serde_json::to_vec(&serde_json::Value::Object(object)).unwrap_or_default()
    }
}

fn text(value: &str) -> FieldValue<'_> {
    FieldValue::Text(Cow::Borrowed(value))
}

fn address(address: Option<SocketAddr>) -> FieldValue<'static> {
    FieldValue::Text(Cow::Owned(
        address
            .map(|address| address.to_string())
            .unwrap_or_default(),
    ))
}

fn username(client: &ClientInfo) -> FieldValue<'_> {
    text(client.username.as_ref().map_or("", |name| name.as_str()))
}

impl SupermqFormat {
    /// Renders one item. Never fails: every event has a rendering.
    pub fn render<'a>(&'a self, item: &'a ExportItem) -> Rendered<'a> {
        let event = &*item.event;
        let client = &*event.client;
        let event_type = match event.kind {
            EventKind::ClientConnected => Some("connect"),
            EventKind::ClientDisconnected => Some("disconnect"),
            _ => None,
        };
        if let Some(event_type) = event_type {
            let mut fields = vec![
                ("client_id", text(client.client_id.as_str())),
                ("event_type", text(event_type)),
                ("instance", text(&self.instance)),
                ("occurred_at", FieldValue::Int(event.at_ns)),
            ];
            if let (true, EventDetail::Disconnected(reason)) =
                (self.disconnect_reason, &event.detail)
            {
                fields.push(("reason", text(reason.as_str())));
            }
            return Rendered {
                suffix: None,
                fields,
            };
        }

        let mut fields = vec![
            ("operation", text(&item.action)),
            ("client_id", text(client.client_id.as_str())),
            ("instance", text(&self.instance)),
            ("occurred_at", FieldValue::Int(event.at_ns)),
            ("username", username(client)),
            ("ipaddress", address(client.address)),
        ];
        if event.kind == EventKind::ClientConnect {
            fields.push(("proto_ver", FieldValue::Int(u64::from(client.protocol))));
            fields.push((
                "keepalive",
                FieldValue::Int(u64::from(client.keep_alive_secs)),
            ));
            fields.push(("clean_start", FieldValue::Bool(client.clean_start)));
        }
        match &event.detail {
            EventDetail::None => {}
            EventDetail::Connack {
                code,
                session_present,
            } => {
                fields.push(("code", FieldValue::Int(u64::from(code.0))));
                fields.push(("session_present", FieldValue::Bool(*session_present)));
            }
            EventDetail::Disconnected(reason) => fields.push(("reason", text(reason.as_str()))),
            EventDetail::Subscription { filter, qos } => {
                fields.push(("topic", text(filter.as_str())));
                fields.push(("qos", FieldValue::Int(u64::from(qos.as_u8()))));
            }
            EventDetail::Message(facts) => {
                let message = &*facts.message;
                fields.push(("topic", text(message.topic.as_str())));
                fields.push(("qos", FieldValue::Int(u64::from(facts.qos.as_u8()))));
                fields.push(("retain", FieldValue::Bool(message.retain)));
                fields.push(("dup", FieldValue::Bool(facts.dup)));
                if let Some(packet_id) = facts.packet_id {
                    fields.push(("packet_id", FieldValue::Int(u64::from(packet_id.get()))));
                }
                fields.push((
                    "payload",
                    FieldValue::Text(Cow::Owned(
                        base64::engine::general_purpose::STANDARD.encode(&message.payload),
                    )),
                ));
                fields.push(("from_client_id", text(facts.publisher.client_id.as_str())));
                fields.push(("from_username", username(&facts.publisher)));
                fields.push(("published_at", FieldValue::Int(facts.published_at_ns)));
                if let Some(reason) = facts.dropped {
                    fields.push(("reason", text(reason.as_str())));
                }
            }
        }
        Rendered {
            suffix: Some(event.kind.name()),
            fields,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::hooks::event::{DisconnectReason, Event, MessageFacts};
    use crate::protocol::{
        ClientId, MqttString, PacketId, PublishProperties, QoS, ReasonCode, TopicFilter, TopicName,
    };
    use crate::session::{DropReason, Message};

    fn client(id: &str) -> Arc<ClientInfo> {
        Arc::new(ClientInfo {
            node: 1,
            shard: 0,
            client_id: ClientId::new(id).unwrap(),
            username: Some(MqttString::new("alice").unwrap()),
            address: Some("10.0.0.7:51234".parse().unwrap()),
            protocol: 5,
            keep_alive_secs: 30,
            clean_start: true,
        })
    }

    fn item(kind: EventKind, detail: EventDetail) -> ExportItem {
        ExportItem {
            event: Arc::new(Event {
                kind,
                at_ns: 1_693_312_937_469_719_069,
                client: client("76a58221"),
                detail,
            }),
            action: Arc::from(kind.name()),
            destinations: None,
        }
    }

    fn message_facts(dropped: Option<DropReason>) -> EventDetail {
        let publisher = Arc::new(ClientInfo {
            username: None,
            ..(*client("pub-1")).clone()
        });
        EventDetail::Message(MessageFacts {
            message: Arc::new(Message {
                topic: TopicName::new("a/b").unwrap(),
                payload: Bytes::from_static(b"\x00hi\xff"),
                qos: QoS::ExactlyOnce,
                retain: true,
                properties: PublishProperties::default(),
                expires_at: None,
                origin: publisher.client_id.clone(),
                publisher: None,
                received_at_ns: 0,
            }),
            publisher,
            published_at_ns: 1_693_312_937_000_000_001,
            qos: QoS::AtLeastOnce,
            packet_id: PacketId::new(7),
            dup: true,
            dropped,
        })
    }

    fn texts(rendered: &Rendered<'_>) -> Vec<(&'static str, String)> {
        rendered
            .fields
            .iter()
            .map(|(name, value)| (*name, value.to_text().into_owned()))
            .collect()
    }

    fn json(rendered: &Rendered<'_>) -> serde_json::Value {
        serde_json::from_slice(&rendered.to_json()).unwrap()
    }

    const AT: &str = "1693312937469719069";

    #[test]
    fn connected_is_exactly_the_four_supermq_fields_on_the_main_stream() {
        let format = SupermqFormat::default();
        let item = item(EventKind::ClientConnected, EventDetail::None);
        let rendered = format.render(&item);
        assert_eq!(rendered.suffix, None);
        assert_eq!(rendered.destination("supermq.mqtt"), "supermq.mqtt");
        assert_eq!(
            texts(&rendered),
            vec![
                ("client_id", "76a58221".to_owned()),
                ("event_type", "connect".to_owned()),
                ("instance", String::new()),
                ("occurred_at", AT.to_owned()),
            ]
        );
        assert_eq!(
            json(&rendered),
            serde_json::json!({
                "client_id": "76a58221",
                "event_type": "connect",
                "instance": "",
                "occurred_at": 1_693_312_937_469_719_069_u64,
            })
        );
    }

    #[test]
    fn disconnected_has_the_reason_only_when_asked() {
        let detail = EventDetail::Disconnected(DisconnectReason::KeepAliveTimeout);
        let item = item(EventKind::ClientDisconnected, detail);
        let mut format = SupermqFormat {
            instance: "node-a".to_owned(),
            ..SupermqFormat::default()
        };
        let rendered = format.render(&item);
        assert_eq!(rendered.suffix, None);
        assert_eq!(
            texts(&rendered),
            vec![
                ("client_id", "76a58221".to_owned()),
                ("event_type", "disconnect".to_owned()),
                ("instance", "node-a".to_owned()),
                ("occurred_at", AT.to_owned()),
            ]
        );
        format.disconnect_reason = true;
        let rendered = format.render(&item);
        assert_eq!(rendered.fields.len(), 5);
        assert_eq!(
            rendered.fields[4],
            ("reason", FieldValue::Text("keepalive_timeout".into()))
        );
    }

    fn common(operation: &str) -> Vec<(&'static str, String)> {
        vec![
            ("operation", operation.to_owned()),
            ("client_id", "76a58221".to_owned()),
            ("instance", String::new()),
            ("occurred_at", AT.to_owned()),
            ("username", "alice".to_owned()),
            ("ipaddress", "10.0.0.7:51234".to_owned()),
        ]
    }

    #[test]
    fn kinds_without_detail_carry_the_common_fields_on_their_own_stream() {
        let format = SupermqFormat::default();
        for kind in [EventKind::SessionCreated, EventKind::OfflineMessage] {
            let event = item(kind, EventDetail::None);
            let rendered = format.render(&event);
            assert_eq!(rendered.suffix, Some(kind.name()));
            assert_eq!(
                rendered.destination("supermq.mqtt"),
                format!("supermq.mqtt.{}", kind.name())
            );
            assert_eq!(texts(&rendered), common(kind.name()));
        }
    }

    #[test]
    fn client_connect_adds_the_connect_facts() {
        let format = SupermqFormat::default();
        let event = item(EventKind::ClientConnect, EventDetail::None);
        let rendered = format.render(&event);
        let mut expected = common("client_connect");
        expected.push(("proto_ver", "5".to_owned()));
        expected.push(("keepalive", "30".to_owned()));
        expected.push(("clean_start", "true".to_owned()));
        assert_eq!(texts(&rendered), expected);
        assert_eq!(json(&rendered)["keepalive"], serde_json::json!(30));
        assert_eq!(json(&rendered)["clean_start"], serde_json::json!(true));
    }

    #[test]
    fn connack_has_code_and_session_present() {
        let format = SupermqFormat::default();
        let detail = EventDetail::Connack {
            code: ReasonCode(0x87),
            session_present: false,
        };
        let event = item(EventKind::ClientConnack, detail);
        let rendered = format.render(&event);
        let mut expected = common("client_connack");
        expected.push(("code", "135".to_owned()));
        expected.push(("session_present", "false".to_owned()));
        assert_eq!(texts(&rendered), expected);
    }

    #[test]
    fn session_terminated_has_the_reason() {
        let format = SupermqFormat::default();
        let detail = EventDetail::Disconnected(DisconnectReason::TakenOver);
        let event = item(EventKind::SessionTerminated, detail);
        let rendered = format.render(&event);
        let mut expected = common("session_terminated");
        expected.push(("reason", "takenover".to_owned()));
        assert_eq!(texts(&rendered), expected);
    }

    #[test]
    fn subscriptions_have_topic_and_qos() {
        let format = SupermqFormat::default();
        for kind in [
            EventKind::SessionSubscribed,
            EventKind::SessionUnsubscribed,
            EventKind::ClientSubscribe,
            EventKind::ClientUnsubscribe,
        ] {
            let detail = EventDetail::Subscription {
                filter: TopicFilter::new("a/+/#").unwrap(),
                qos: QoS::AtLeastOnce,
            };
            let event = item(kind, detail);
            let rendered = format.render(&event);
            let mut expected = common(kind.name());
            expected.push(("topic", "a/+/#".to_owned()));
            expected.push(("qos", "1".to_owned()));
            assert_eq!(texts(&rendered), expected, "{kind:?}");
            assert_eq!(json(&rendered)["qos"], serde_json::json!(1));
        }
    }

    fn message_fields(operation: &str) -> Vec<(&'static str, String)> {
        let mut expected = common(operation);
        expected.extend([
            ("topic", "a/b".to_owned()),
            ("qos", "1".to_owned()),
            ("retain", "true".to_owned()),
            ("dup", "true".to_owned()),
            ("packet_id", "7".to_owned()),
            ("payload", "AGhp/w==".to_owned()),
            ("from_client_id", "pub-1".to_owned()),
            ("from_username", String::new()),
            ("published_at", "1693312937000000001".to_owned()),
        ]);
        expected
    }

    #[test]
    fn message_kinds_have_the_message_facts_and_a_base64_payload() {
        let format = SupermqFormat::default();
        for kind in [
            EventKind::MessagePublish,
            EventKind::MessageDelivered,
            EventKind::MessageAcked,
        ] {
            let event = item(kind, message_facts(None));
            let rendered = format.render(&event);
            assert_eq!(rendered.suffix, Some(kind.name()));
            assert_eq!(texts(&rendered), message_fields(kind.name()), "{kind:?}");
        }
        let event = item(EventKind::MessagePublish, message_facts(None));
        let body = json(&format.render(&event));
        assert_eq!(body["payload"], serde_json::json!("AGhp/w=="));
        assert_eq!(
            body["published_at"],
            serde_json::json!(1_693_312_937_000_000_001_u64)
        );
        assert_eq!(body["retain"], serde_json::json!(true));
    }

    #[test]
    fn dropped_messages_have_the_reason_and_qos0_has_no_packet_id() {
        let format = SupermqFormat::default();
        let event = item(
            EventKind::MessageDropped,
            message_facts(Some(DropReason::QueueFull)),
        );
        let rendered = format.render(&event);
        let mut expected = message_fields("message_dropped");
        expected.push(("reason", "queue_full".to_owned()));
        assert_eq!(texts(&rendered), expected);

        let EventDetail::Message(mut facts) = message_facts(None) else {
            unreachable!()
        };
        facts.qos = QoS::AtMostOnce;
        facts.packet_id = None;
        let event = item(EventKind::MessageDelivered, EventDetail::Message(facts));
        let rendered = format.render(&event);
        assert!(rendered.fields.iter().all(|(name, _)| *name != "packet_id"));
    }

    #[test]
    fn a_renamed_action_names_the_operation_but_not_the_stream() {
        let format = SupermqFormat::default();
        let mut item = item(EventKind::SessionCreated, EventDetail::None);
        item.action = Arc::from("session_created_2");
        let rendered = format.render(&item);
        assert_eq!(rendered.suffix, Some("session_created"));
        assert_eq!(
            rendered.fields[0],
            ("operation", FieldValue::Text("session_created_2".into()))
        );
    }

    #[test]
    fn a_client_without_username_or_address_gets_empty_fields() {
        let format = SupermqFormat::default();
        let mut item = item(EventKind::SessionCreated, EventDetail::None);
        let mut event = (*item.event).clone();
        event.client = Arc::new(ClientInfo {
            username: None,
            address: None,
            ..(*event.client).clone()
        });
        item.event = Arc::new(event);
        let fields = texts(&format.render(&item));
        assert_eq!(fields[4], ("username", String::new()));
        assert_eq!(fields[5], ("ipaddress", String::new()));
    }
}
