//! The raw schema: the TOML file exactly as serde reads it, before any value is checked.
//!
//! Every table denies unknown keys and every key has a default, so an empty file is a complete
//! config. Integers are read as `i64` (TOML's own integer type) and enumerations as strings on
//! purpose: range and spelling checks happen in `validate`, which can then say which values
//! are allowed instead of serde's "expected u16". Nothing outside `config` sees these types.
//!
//! The defaults live here and only here; `template` serializes `RawConfig::default()` to write
//! `generate-config`, so the generated file cannot drift from what the broker uses.

use serde::{Deserialize, Serialize};

/// One MiB, the unit most byte defaults are counted in.
const MIB: i64 = 1024 * 1024;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawConfig {
    pub listeners: Vec<RawListener>,
    pub mqtt: RawMqtt,
    pub tuning: RawTuning,
    pub log: RawLog,
    pub hooks: RawHooks,
    pub events: RawEvents,
    pub system_topics: RawSystemTopics,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exporters: Vec<RawExporter>,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            listeners: vec![RawListener {
                name: Some("default".to_owned()),
                ..RawListener::default()
            }],
            mqtt: RawMqtt::default(),
            tuning: RawTuning::default(),
            log: RawLog::default(),
            hooks: RawHooks::default(),
            events: RawEvents::default(),
            system_topics: RawSystemTopics::default(),
            exporters: Vec::new(),
        }
    }
}

/// One `[[listeners]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawListener {
    /// `None` here, not "default": two unnamed listeners must not share a name. The default
    /// listener list above names its one listener explicitly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub bind: String,
    pub transport: String,
    pub backlog: i64,
}

impl Default for RawListener {
    fn default() -> Self {
        Self {
            name: None,
            bind: "127.0.0.1:1883".to_owned(),
            transport: "tcp".to_owned(),
            // glommio's own `TcpListener::bind` fixes 1024; the same default means a listener
            // built with socket2 behaves like one built by glommio until an operator asks.
            backlog: 1024,
        }
    }
}

/// `[mqtt]`: what the broker announces to clients, accepts from them, and keeps per session.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawMqtt {
    pub max_packet_size_bytes: i64,
    pub receive_maximum: i64,
    pub max_inflight_messages: i64,
    pub max_queued_messages: i64,
    pub max_queued_bytes: i64,
    pub max_session_expiry_secs: i64,
    pub max_keep_alive_secs: i64,
    pub connect_timeout_secs: i64,
    pub topic_alias_maximum: i64,
    pub maximum_qos: i64,
    pub retain_available: bool,
    pub wildcard_subscription_available: bool,
    pub shared_subscription_available: bool,
    pub subscription_identifiers_available: bool,
    pub shared_subscription_strategy: String,
    pub max_client_id_bytes: i64,
    pub allow_empty_client_id: bool,
    pub allow_anonymous: bool,
    pub max_topic_levels: i64,
    pub reserved_client_ids: Vec<String>,
    pub disconnect_on_denied_publish_v3: bool,
}

impl Default for RawMqtt {
    fn default() -> Self {
        Self {
            max_packet_size_bytes: MIB,
            receive_maximum: 128,
            max_inflight_messages: 128,
            max_queued_messages: 1000,
            max_queued_bytes: 16 * MIB,
            max_session_expiry_secs: 7 * 24 * 3600,
            max_keep_alive_secs: 0,
            connect_timeout_secs: 10,
            topic_alias_maximum: 64,
            maximum_qos: 2,
            retain_available: true,
            wildcard_subscription_available: true,
            shared_subscription_available: true,
            subscription_identifiers_available: true,
            shared_subscription_strategy: "round_robin".to_owned(),
            max_client_id_bytes: 256,
            allow_empty_client_id: true,
            allow_anonymous: true,
            max_topic_levels: 128,
            // The system-topics document reserves `broker` for the broker's own messages.
            reserved_client_ids: vec!["broker".to_owned()],
            disconnect_on_denied_publish_v3: false,
        }
    }
}

/// `[tuning]`: shards, CPUs, executor knobs and per-connection buffer sizes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawTuning {
    pub shards: i64,
    pub cpus: Vec<i64>,
    pub max_connections_per_shard: i64,
    pub read_buffer_bytes: i64,
    pub outbound_budget_bytes: i64,
    pub cross_shard_queue_capacity: i64,
    pub ring_depth: i64,
    pub io_memory_bytes: i64,
    pub spin_before_park_us: i64,
    pub preempt_timer_us: i64,
    pub raise_memlock: bool,
}

impl Default for RawTuning {
    fn default() -> Self {
        Self {
            shards: 0,
            cpus: Vec::new(),
            max_connections_per_shard: 0,
            read_buffer_bytes: 16 * 1024,
            outbound_budget_bytes: MIB,
            cross_shard_queue_capacity: 4096,
            ring_depth: 256,
            // Sockets never use io_memory (only DMA files do; DESIGN.md §4), so glommio's
            // 10 MiB default would only cost locked memory.
            io_memory_bytes: 128 * 1024,
            spin_before_park_us: 0,
            // glommio's default is 100 ms; see `docs/configuration.md` for why 2 ms.
            preempt_timer_us: 2_000,
            raise_memlock: true,
        }
    }
}

/// `[hooks]`: the built-in decision hooks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawHooks {
    pub password_file: String,
    pub token_file: String,
    pub token_username: String,
    pub unknown_topic: String,
    pub topics: Vec<RawTopicRule>,
}

impl Default for RawHooks {
    fn default() -> Self {
        Self {
            password_file: String::new(),
            token_file: String::new(),
            token_username: "authorization".to_owned(),
            unknown_topic: "close".to_owned(),
            topics: Vec::new(),
        }
    }
}

/// One `[[hooks.topics]]` row of the topic table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTopicRule {
    pub pattern: String,
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub subscribe: bool,
    #[serde(default)]
    pub schema_file: String,
}

/// `[events]`: the per-shard event rings and the exporter runtime.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawEvents {
    pub node: i64,
    pub instance: String,
    pub ring_batches: i64,
    pub batch_events: i64,
    pub flush_interval_ms: i64,
    pub worker_threads: i64,
    pub exporter_nice: i64,
    pub exporter_cpus: Vec<i64>,
    pub stats_interval_ms: i64,
}

impl Default for RawEvents {
    fn default() -> Self {
        Self {
            node: 1,
            instance: String::new(),
            ring_batches: 1024,
            batch_events: 256,
            flush_interval_ms: 10,
            worker_threads: 1,
            exporter_nice: 10,
            exporter_cpus: Vec::new(),
            stats_interval_ms: 10_000,
        }
    }
}

/// `[system_topics]`: the in-broker exporter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawSystemTopics {
    pub enabled: bool,
    pub prefix: String,
    pub qos: i64,
}

impl Default for RawSystemTopics {
    fn default() -> Self {
        Self {
            enabled: false,
            prefix: "SYSTEM/".to_owned(),
            qos: 0,
        }
    }
}

/// One `[[exporters]]` table. Keys of one sink type are `Option`s so that validation can say
/// "`maxlen` is a key of redis exporters" instead of ignoring it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExporter {
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub queue_capacity: Option<i64>,
    pub batch_events: Option<i64>,
    pub flush_interval: Option<String>,
    pub overflow: Option<String>,
    pub retry_initial_interval: Option<String>,
    pub retry_multiplier: Option<f64>,
    pub retry_max_elapsed_time: Option<String>,
    #[serde(default)]
    pub rule: std::collections::BTreeMap<String, Vec<RawRule>>,
    // webhook
    pub http_urls: Option<Vec<String>>,
    pub http_timeout: Option<String>,
    pub concurrency_limit: Option<i64>,
    pub batch: Option<bool>,
    // redis, nats
    pub url: Option<String>,
    pub timeout: Option<String>,
    pub disconnect_reason: Option<bool>,
    // redis
    pub stream: Option<String>,
    pub maxlen: Option<i64>,
    // nats
    pub subject: Option<String>,
    pub stream_name: Option<String>,
    pub create_stream: Option<bool>,
    // kafka
    pub bootstrap: Option<Vec<String>>,
    pub topic: Option<String>,
    pub topic_prefix: Option<String>,
    pub create_topics: Option<bool>,
    pub partitions: Option<i64>,
    // jsonl
    pub path: Option<String>,
}

/// One rule of `rule.<event> = [...]` (the web-hook document's trigger rules).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub action: Option<String>,
    pub urls: Option<Vec<String>>,
    #[serde(default)]
    pub topics: Vec<String>,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLog {
    pub format: String,
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "human".to_owned(),
            level: "info".to_owned(),
        }
    }
}
