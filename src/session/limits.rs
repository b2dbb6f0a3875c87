//! The limits a session works within: what the broker offers (from the config) and what the
//! client asked for in its CONNECT.

use std::num::{NonZeroU16, NonZeroU32};

use crate::config::MqttConfig;
use crate::protocol::{ConnectProperties, QoS};

/// What the broker offers every client; built from the `[mqtt]` config section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerLimits {
    /// Inbound QoS 2 publishes a client may have unreleased at once (our Receive Maximum).
    pub receive_maximum: NonZeroU16,
    /// Outbound QoS 1/2 window: unacknowledged deliveries per client, lowered to the client's
    /// Receive Maximum when that is smaller. Bounds the inflight memory of every session.
    pub max_outbound_window: NonZeroU16,
    /// QoS 1/2 messages queued per session behind the outbound window or while offline.
    pub max_queued_messages: usize,
    /// Bytes of topics and payloads in that queue.
    pub max_queued_bytes: usize,
    /// Longest client id accepted, in bytes.
    pub max_client_id_bytes: u16,
    /// Most levels in a topic name or filter.
    pub max_topic_levels: u16,
    /// Whether a CONNECT without a user name is accepted.
    pub allow_anonymous: bool,
    /// Inbound topic aliases accepted (0 disables them).
    pub topic_alias_maximum: u16,
    /// Highest QoS accepted from clients.
    pub maximum_qos: QoS,
    /// Whether retained messages are accepted.
    pub retain_available: bool,
    /// Whether wildcard filters are accepted.
    pub wildcard_subscription_available: bool,
    /// Whether `$share/` filters are accepted.
    pub shared_subscription_available: bool,
    /// Whether subscription identifiers are accepted.
    pub subscription_identifiers_available: bool,
    /// Longest session expiry granted, in seconds.
    pub max_session_expiry_secs: u32,
    /// Longest keep-alive accepted, in seconds; 0 accepts any.
    pub max_keep_alive_secs: u16,
    /// Largest packet accepted from a client.
    pub max_packet_size: NonZeroU32,
    /// Client ids refused at CONNECT.
    pub reserved_client_ids: Vec<String>,
    /// Close a 3.x client's connection when the hooks deny its PUBLISH.
    pub disconnect_on_denied_publish_v3: bool,
}

impl From<&MqttConfig> for BrokerLimits {
    fn from(mqtt: &MqttConfig) -> Self {
        Self {
            receive_maximum: mqtt.receive_maximum,
            max_outbound_window: mqtt.max_inflight_messages,
            max_queued_messages: mqtt.max_queued_messages,
            max_queued_bytes: mqtt.max_queued_bytes,
            max_client_id_bytes: mqtt.max_client_id_bytes,
            max_topic_levels: mqtt.max_topic_levels.get(),
            allow_anonymous: mqtt.allow_anonymous,
            topic_alias_maximum: mqtt.topic_alias_maximum,
            maximum_qos: mqtt.maximum_qos,
            retain_available: mqtt.retain_available,
            wildcard_subscription_available: mqtt.wildcard_subscription_available,
            shared_subscription_available: mqtt.shared_subscription_available,
            subscription_identifiers_available: mqtt.subscription_identifiers_available,
            max_session_expiry_secs: mqtt.max_session_expiry_secs,
            max_keep_alive_secs: mqtt.max_keep_alive_secs,
            max_packet_size: mqtt.max_packet_size_bytes,
            reserved_client_ids: mqtt.reserved_client_ids.clone(),
            disconnect_on_denied_publish_v3: mqtt.disconnect_on_denied_publish_v3,
        }
    }
}

/// The defaults are the config file's defaults: one source for both.
impl Default for BrokerLimits {
    fn default() -> Self {
        Self::from(&crate::config::Config::default().mqtt)
    }
}

/// What the client asked for in CONNECT (5.0 properties; defaults for 3.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// How many QoS 1/2 publishes the client accepts at once.
    pub receive_maximum: u16,
    /// Largest packet the client accepts; `None` is MQTT's own limit.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// Topic aliases the client accepts from us.
    pub topic_alias_maximum: u16,
    /// Whether reason strings and user properties may be sent on failures.
    pub request_problem_information: bool,
}

impl ClientLimits {
    /// Limits from CONNECT properties (all absent for 3.x: no flow control, which the spec
    /// expresses as a Receive Maximum of 65,535).
    pub fn from_connect(properties: &ConnectProperties) -> Self {
        Self {
            receive_maximum: properties.receive_maximum.map_or(u16::MAX, NonZeroU16::get),
            maximum_packet_size: properties.maximum_packet_size,
            topic_alias_maximum: properties.topic_alias_maximum.unwrap_or(0),
            request_problem_information: properties.request_problem_information.unwrap_or(true),
        }
    }
}
