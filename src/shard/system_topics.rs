//! The in-broker exporter: events turned into MQTT messages on the system topics, published by
//! the shard that saw the event (the system-topics document):
//!
//! | event | topic (default prefix `SYSTEM/`) | payload |
//! |---|---|---|
//! | `client_connected` | `SYSTEM/presence/connected` | `{"client_id"}` |
//! | `client_disconnected` | `SYSTEM/presence/disconnected` | `{"client_id","reason"}` |
//! | `session_subscribed` | `SYSTEM/subscription/subscribed` | `{"client_id","topic"}` |
//! | `session_unsubscribed` | `SYSTEM/subscription/unsubscribed` | `{"client_id","topic"}` |
//! | `message_publish` | `SYSTEM/message` | `{"pub_client_id","topic","payload","qos"}` |
//! | `message_acked` | `SYSTEM/msgack` | `{"pub_client_id","ack_client_id","product_id","message_id","topic"}` |
//!
//! `SYSTEM/msgack` is sent only for messages whose payload is a JSON object with `product_id`
//! and `message_id` (read with simd-json, and only when an ack arrives). The broker's own
//! messages (these, wills of unknown clients, rejected-publish feedback) and anything
//! published under the prefix produce no system messages, so the exporter never feeds itself.
//! The messages are published as the reserved client id `broker`.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use simd_json::prelude::ValueAsObject;

use crate::hooks::{ClientInfo, EventDetail, EventKind, EventKinds};
use crate::protocol::{ClientId, QoS, TopicName};
use crate::session::Message;

/// The client id the broker publishes system messages as.
pub const BROKER_CLIENT_ID: &str = "broker";

/// What the `[system_topics]` section configures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemTopicsConfig {
    /// Whether system messages are published at all.
    pub enabled: bool,
    /// Prepended to every topic (`SYSTEM/`); may be empty.
    pub prefix: String,
    /// QoS of the messages.
    pub qos: QoS,
}

impl Default for SystemTopicsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            prefix: "SYSTEM/".to_owned(),
            qos: QoS::AtMostOnce,
        }
    }
}

/// Builds the system messages of one shard.
#[derive(Debug)]
pub struct SystemTopics {
    wanted: EventKinds,
    prefix: String,
    qos: QoS,
    broker: ClientId,
    topics: Topics,
}

#[derive(Debug)]
struct Topics {
    connected: TopicName,
    disconnected: TopicName,
    subscribed: TopicName,
    unsubscribed: TopicName,
    message: TopicName,
    msgack: TopicName,
}

/// Why a prefix cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("`{prefix}` does not make valid topic names (no `+`, `#` or NUL; at most 65535 bytes)")]
pub struct InvalidPrefix {
    prefix: String,
}

impl SystemTopics {
    /// The exporter as configured (wanting nothing when disabled).
    pub fn new(config: &SystemTopicsConfig) -> Result<Self, InvalidPrefix> {
        let topic = |suffix: &str| {
            TopicName::new(&format!("{}{suffix}", config.prefix)).map_err(|_| InvalidPrefix {
                prefix: config.prefix.clone(),
            })
        };
        let topics = Topics {
            connected: topic("presence/connected")?,
            disconnected: topic("presence/disconnected")?,
            subscribed: topic("subscription/subscribed")?,
            unsubscribed: topic("subscription/unsubscribed")?,
            message: topic("message")?,
            msgack: topic("msgack")?,
        };
        let wanted = if config.enabled {
            [
                EventKind::ClientConnected,
                EventKind::ClientDisconnected,
                EventKind::SessionSubscribed,
                EventKind::SessionUnsubscribed,
                EventKind::MessagePublish,
                EventKind::MessageAcked,
            ]
            .into_iter()
            .collect()
        } else {
            EventKinds::NONE
        };
        Ok(Self {
            wanted,
            prefix: config.prefix.clone(),
            qos: config.qos,
            broker: ClientId::new(BROKER_CLIENT_ID).map_err(|_| InvalidPrefix {
                prefix: config.prefix.clone(),
            })?,
            topics,
        })
    }

    /// The exporter switched off.
    pub fn disabled() -> Self {
        match Self::new(&SystemTopicsConfig::default()) {
            Ok(topics) => topics,
            // The default prefix is a constant that makes valid topics (a test builds it).
            Err(error) => unreachable!("the default system topics: {error}"),
        }
    }

    /// The kinds this exporter turns into messages.
    pub fn wanted(&self) -> EventKinds {
        self.wanted
    }

    /// The system message for an event, if it makes one.
    pub fn message_for(
        &self,
        kind: EventKind,
        client: &ClientInfo,
        detail: &EventDetail,
    ) -> Option<Message> {
        if !self.wanted.contains(kind) {
            return None;
        }
        let client_id = client.client_id.as_str();
        let (topic, payload) = match (kind, detail) {
            (EventKind::ClientConnected, _) => {
                (&self.topics.connected, json!({ "client_id": client_id }))
            }
            (EventKind::ClientDisconnected, EventDetail::Disconnected(reason)) => (
                &self.topics.disconnected,
                json!({ "client_id": client_id, "reason": reason.as_str() }),
            ),
            (EventKind::SessionSubscribed, EventDetail::Subscription { filter, .. }) => (
                &self.topics.subscribed,
                json!({ "client_id": client_id, "topic": filter.as_str() }),
            ),
            (EventKind::SessionUnsubscribed, EventDetail::Subscription { filter, .. }) => (
                &self.topics.unsubscribed,
                json!({ "client_id": client_id, "topic": filter.as_str() }),
            ),
            (EventKind::MessagePublish, EventDetail::Message(facts)) => {
                let message = &facts.message;
                if !self.is_client_message(message) {
                    return None;
                }
                (
                    &self.topics.message,
                    json!({
                        "pub_client_id": message.origin.as_str(),
                        "topic": message.topic.as_str(),
                        "payload": String::from_utf8_lossy(&message.payload),
                        "qos": message.qos as u8,
                    }),
                )
            }
            (EventKind::MessageAcked, EventDetail::Message(facts)) => {
                let message = &facts.message;
                if !self.is_client_message(message) {
                    return None;
                }
                let (product_id, message_id) = product_and_message_id(&message.payload)?;
                (
                    &self.topics.msgack,
                    json!({
                        "pub_client_id": message.origin.as_str(),
                        "ack_client_id": client_id,
                        "product_id": product_id,
                        "message_id": message_id,
                        "topic": message.topic.as_str(),
                    }),
                )
            }
            _ => return None,
        };
        Some(Message {
            topic: topic.clone(),
            payload: Bytes::from(payload.to_string()),
            qos: self.qos,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            origin: self.broker.clone(),
            publisher: None,
            received_at_ns: 0,
        })
    }

    /// A message a client published, outside the system topics.
    fn is_client_message(&self, message: &Arc<Message>) -> bool {
        let under_prefix =
            !self.prefix.is_empty() && message.topic.as_str().starts_with(&self.prefix);
        message.publisher.is_some() && !under_prefix
    }
}

/// `product_id` and `message_id` of a payload that is a JSON object holding both, as JSON
/// values (a string stays a string, a number a number).
fn product_and_message_id(payload: &[u8]) -> Option<(Value, Value)> {
    // Cheap refusal before the copy simd-json parses in place.
    if payload
        .first()
        .is_none_or(|&byte| byte != b'{' && !byte.is_ascii_whitespace())
    {
        return None;
    }
    let mut text = payload.to_vec();
    let value = simd_json::to_borrowed_value(&mut text).ok()?;
    let object = value.as_object()?;
    let product_id = serde_json::to_value(object.get("product_id")?).ok()?;
    let message_id = serde_json::to_value(object.get("message_id")?).ok()?;
    Some((product_id, message_id))
}
