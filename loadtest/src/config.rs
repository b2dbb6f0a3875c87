//! The resolved, validated description of one run: where the broker is, how clients connect,
//! how long each phase lasts, and the scenario blocks that run concurrently.
//!
//! Everything the CLI and the scenario file say ends up here, so the runner and the report
//! read one source of truth. This module only holds and checks values; it never opens a socket
//! or reads a file. `Serialize` is derived so the JSON report carries the exact configuration.

use std::time::Duration;

use anyhow::{bail, Result};
use serde::{Serialize, Serializer};
use starling::protocol::{ProtocolVersion, QoS, TopicFilter, TopicName};

use crate::payload::HEADER_LEN;

/// The MQTT version the clients speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum MqttVersion {
    /// MQTT 3.1.1.
    #[serde(rename = "3.1.1")]
    V311,
    /// MQTT 5.0.
    #[serde(rename = "5.0")]
    V5,
}

impl MqttVersion {
    /// Parses `3.1.1`/`3`/`4`/`311` or `5`/`5.0`.
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim() {
            "3.1.1" | "3" | "4" | "311" => Ok(Self::V311),
            "5" | "5.0" => Ok(Self::V5),
            other => bail!("unknown MQTT version {other:?}: use 3.1.1 or 5.0"),
        }
    }

    /// The codec's version.
    pub fn protocol(self) -> ProtocolVersion {
        match self {
            Self::V311 => ProtocolVersion::V3_1_1,
            Self::V5 => ProtocolVersion::V5,
        }
    }
}

/// Offered publish rate of a block, in messages per second over all its publishers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    /// A fixed total rate; each publisher sends its share on a fixed schedule.
    PerSecond(f64),
    /// As fast as the broker takes them: QoS 0 is held back only by TCP, QoS 1/2 by the
    /// inflight window.
    Max,
}

impl Rate {
    /// Parses a positive number or `max`.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("max") {
            return Ok(Self::Max);
        }
        match text.parse::<f64>() {
            Ok(rate) if rate > 0.0 && rate.is_finite() => Ok(Self::PerSecond(rate)),
            _ => bail!(
                "invalid rate {text:?}: use a positive number of messages per second or `max`"
            ),
        }
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::PerSecond(rate) => serializer.serialize_f64(*rate),
            Self::Max => serializer.serialize_str("max"),
        }
    }
}

/// What a block is, which decides its defaults and how the report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// One publisher, many subscribers on one topic.
    Fanout,
    /// Many publishers, subscribers on a wildcard.
    Fanin,
    /// Publisher/subscriber pairs, a topic each.
    P2p,
    /// Many publishers, a `$share` group of subscribers.
    Shared,
    /// Connections only: open them at a rate and hold them.
    Conn,
}

impl Kind {
    /// The lowercase name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fanout => "fanout",
            Self::Fanin => "fanin",
            Self::P2p => "p2p",
            Self::Shared => "shared",
            Self::Conn => "conn",
        }
    }
}

/// One scenario block: a set of connections with one job, run concurrently with the others.
#[derive(Debug, Clone, Serialize)]
pub struct BlockSpec {
    /// Unique name, used in client ids, default topics and the report.
    pub name: String,
    /// The scenario kind.
    pub kind: Kind,
    /// Publishing connections.
    pub publishers: u32,
    /// Subscribing connections.
    pub subscribers: u32,
    /// Connections that only connect and hold (the `conn` scenario).
    pub idle: u32,
    /// Publish topic pattern; `{id}` becomes the publisher's index in the block.
    pub topic: String,
    /// Subscription filter pattern; `{id}` becomes the subscriber's index in the block.
    pub filter: String,
    /// `$share` group name: all subscribers of the block join it.
    pub share_group: Option<String>,
    /// QoS of publishes and of subscriptions.
    pub qos: u8,
    /// Payload size in bytes, at least [`HEADER_LEN`].
    pub payload_bytes: usize,
    /// Offered rate over all publishers of the block.
    pub rate: Rate,
    /// Most unacknowledged QoS 1/2 publishes per publisher (also capped by the broker's
    /// Receive Maximum in MQTT 5).
    pub inflight: u16,
    /// New connections per second while setting up; `None` opens them as fast as the
    /// handshake concurrency allows.
    pub connect_rate: Option<f64>,
}

impl BlockSpec {
    /// The QoS as the codec's type (validated by [`RunConfig::validate`]).
    pub fn qos(&self) -> QoS {
        match self.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        }
    }

    /// All connections of the block.
    pub fn connections(&self) -> u64 {
        u64::from(self.publishers) + u64::from(self.subscribers) + u64::from(self.idle)
    }
}

/// Serializes a `Duration` as fractional seconds.
fn secs<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(value.as_secs_f64())
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunConfig {
    /// Broker host name or address; resolved once, and only that address is used.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Broker process to sample CPU time and RSS from.
    pub broker_pid: Option<u32>,
    /// Protocol version of every client.
    pub mqtt_version: MqttVersion,
    /// Keep alive in seconds sent in CONNECT.
    pub keep_alive_s: u16,
    /// Prefix of every client id.
    pub client_prefix: String,
    /// User name sent in CONNECT.
    pub username: Option<String>,
    /// Password sent in CONNECT (never written to reports).
    #[serde(skip)]
    pub password: Option<String>,
    /// Publishing time before measuring starts.
    #[serde(serialize_with = "secs")]
    pub warmup: Duration,
    /// Measured publishing time.
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    /// Longest wait after publishing stops for outstanding deliveries and acks.
    #[serde(serialize_with = "secs")]
    pub drain: Duration,
    /// Limit for each of TCP connect, CONNECT→CONNACK and SUBSCRIBE→SUBACK.
    #[serde(serialize_with = "secs")]
    pub connect_timeout: Duration,
    /// Handshakes in progress at once during setup.
    pub connect_concurrency: u32,
    /// Tokio worker threads.
    pub threads: usize,
    /// The blocks, run concurrently.
    pub blocks: Vec<BlockSpec>,
}

/// The most connections one run may open; more would exhaust ephemeral ports to one address.
pub const MAX_CONNECTIONS: u64 = 60_000;

impl RunConfig {
    /// Checks every value and names the one that is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.blocks.is_empty() {
            bail!("the run has no scenario blocks");
        }
        if self.duration.is_zero() {
            bail!("duration must be greater than zero");
        }
        if self.connect_timeout.is_zero() {
            bail!("connect-timeout must be greater than zero");
        }
        if self.connect_concurrency == 0 {
            bail!("connect-concurrency must be at least 1");
        }
        if self.threads == 0 {
            bail!("threads must be at least 1");
        }
        if self.client_prefix.is_empty() {
            bail!("client-prefix must not be empty");
        }
        let total: u64 = self.blocks.iter().map(BlockSpec::connections).sum();
        if total == 0 {
            bail!("the run opens no connections");
        }
        if total > MAX_CONNECTIONS {
            bail!("the run opens {total} connections; at most {MAX_CONNECTIONS} are supported");
        }
        let mut names = std::collections::HashSet::new();
        for block in &self.blocks {
            if !names.insert(block.name.as_str()) {
                bail!("two scenario blocks are named {:?}", block.name);
            }
            validate_block(block)?;
        }
        Ok(())
    }

    /// Total connections of all blocks.
    pub fn connections(&self) -> u64 {
        self.blocks.iter().map(BlockSpec::connections).sum()
    }
}

fn validate_block(block: &BlockSpec) -> Result<()> {
    let name = &block.name;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("block name {name:?} must be non-empty ASCII letters, digits, '-' or '_'");
    }
    if block.qos > 2 {
        bail!("block {name}: qos {} is not 0, 1 or 2", block.qos);
    }
    if block.payload_bytes < HEADER_LEN {
        bail!(
            "block {name}: payload of {} bytes is too small; at least {HEADER_LEN} bytes carry \
             the publisher id, sequence number and timestamp",
            block.payload_bytes
        );
    }
    if block.payload_bytes > 16 * 1024 * 1024 {
        bail!(
            "block {name}: payload of {} bytes exceeds 16 MiB",
            block.payload_bytes
        );
    }
    if block.inflight == 0 {
        bail!("block {name}: inflight must be at least 1");
    }
    if let Some(rate) = block.connect_rate {
        if !(rate > 0.0 && rate.is_finite()) {
            bail!("block {name}: connect-rate must be a positive number");
        }
    }
    if block.publishers > 0 {
        // A sample expansion catches wildcards and malformed patterns before connecting.
        let topic = crate::topic::expand(&block.topic, 0);
        if let Err(error) = TopicName::new(&topic) {
            bail!(
                "block {name}: topic {:?} is not a valid topic name: {error}",
                block.topic
            );
        }
    }
    if block.subscribers > 0 {
        let filter = crate::topic::subscription_filter(block, 0);
        if let Err(error) = TopicFilter::new(&filter) {
            bail!("block {name}: filter {filter:?} is not a valid topic filter: {error}");
        }
    }
    if block.share_group.is_some() && block.subscribers == 0 {
        bail!("block {name}: a share group needs subscribers");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_parses_numbers_and_max() {
        assert_eq!(Rate::parse("max").unwrap(), Rate::Max);
        assert_eq!(Rate::parse("2500").unwrap(), Rate::PerSecond(2500.0));
        assert!(Rate::parse("0").is_err());
        assert!(Rate::parse("-3").is_err());
        assert!(Rate::parse("fast").is_err());
    }

    #[test]
    fn versions_parse() {
        assert_eq!(MqttVersion::parse("3.1.1").unwrap(), MqttVersion::V311);
        assert_eq!(MqttVersion::parse("5").unwrap(), MqttVersion::V5);
        assert!(MqttVersion::parse("6").is_err());
    }
}
