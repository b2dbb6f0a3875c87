//! The broker's configuration: one TOML file, read into a typed [`Config`] that `main` hands to
//! every shard. There is no global: a shard reads the config it was given.
//!
//! Reading goes in two steps. serde reads the text into the raw schema (`schema`: unknown keys
//! are errors, every key has a default), then `validate` checks every value and builds the
//! typed structs below, with units in names or types and `Option`/`NonZero` where "none" or
//! "never zero" is part of the meaning. Every error names the key path and what is allowed
//! ([`ConfigError`]). Parsing is pure: it reads no environment, so [`Config::default`] is
//! exactly what an empty file gives. What depends on the machine (the CPU affinity mask,
//! locked-memory limits) is checked by [`TuningConfig::shard_cpus`] and `main` at start-up.
//!
//! `docs/configuration.md` is the reference for every key; `starling generate-config` prints a
//! commented file with every default. Both come from `reference` and the schema's defaults.

mod error;
mod exporters;
mod hooks;
mod reference;
mod schema;
mod template;
mod tuning;
mod validate;

use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32, NonZeroUsize};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::protocol::QoS;

pub use error::{ConfigError, Location};
pub use exporters::{ExporterConfig, SinkConfig};
pub use template::{default_config_toml, reference_markdown};
pub use tuning::{
    available_cpus, required_locked_memory_bytes, CpuId, GLOMMIO_MIN_MEMLOCK_BYTES, MAX_SHARDS,
};

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where clients connect; never empty. Each listener is bound once per shard with
    /// SO_REUSEPORT.
    pub listeners: Vec<ListenerConfig>,
    /// MQTT behaviour: limits and features announced in CONNACK, session limits.
    pub mqtt: MqttConfig,
    /// Shards, CPUs, executor knobs, per-connection buffers.
    pub tuning: TuningConfig,
    /// Logging.
    pub log: LogConfig,
    /// The built-in decision hooks.
    pub hooks: HooksConfig,
    /// Event rings and the exporter runtime.
    pub events: EventsConfig,
    /// The in-broker exporter (`SYSTEM/...` topics).
    pub system_topics: crate::shard::SystemTopicsConfig,
    /// Where events are exported (`[[exporters]]`).
    pub exporters: Vec<ExporterConfig>,
}

/// `[hooks]`: the built-in decision hooks, each off unless configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HooksConfig {
    /// The topic table (`[[hooks.topics]]`); empty means no table (every topic allowed).
    pub topics: Vec<crate::hooks::builtin::TopicRuleConfig>,
    /// What a topic outside the table gets.
    pub unknown_topic: crate::hooks::builtin::UnknownTopicPolicy,
    /// Password and token files; `None` when neither is set (no credential check).
    pub credentials: Option<crate::hooks::builtin::CredentialsConfig>,
}

/// `[events]`: the per-shard event rings and the exporter runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// Node id in every event (`node`, `from_node`).
    pub node: u32,
    /// Instance name in the stream exporters' events (`instance`).
    pub instance: String,
    /// Batches each shard's ring holds before events are dropped (and counted).
    pub ring_batches: NonZeroUsize,
    /// Events a shard gathers before handing a batch to its ring.
    pub batch_events: NonZeroUsize,
    /// Longest a quiet shard keeps a partial batch.
    pub flush_interval: Duration,
    /// Threads of the exporter runtime.
    pub worker_threads: NonZeroUsize,
    /// The exporter threads' nice value: how far below the shards they are scheduled.
    pub exporter_nice: i32,
    /// The CPUs of the exporter threads; empty: those no shard is pinned to.
    pub exporter_cpus: Vec<CpuId>,
    /// How often the shards publish the `$SYS/` stats topics; `None` publishes none.
    pub stats_interval: Option<Duration>,
}

/// One `[[listeners]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Label for logs and metrics: the configured name, or the bind address when unnamed.
    /// Unique among listeners.
    pub name: String,
    /// Address and port to bind; unique among listeners, port never 0.
    pub bind: SocketAddr,
    /// How clients speak to it.
    pub transport: Transport,
    /// Listen backlog of each shard's socket (the kernel caps it at `net.core.somaxconn`).
    pub backlog: NonZeroU32,
}

/// A listener's transport. Only plain TCP for now; TLS and WebSocket are refused with "not
/// supported yet" until `net` has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// MQTT over plain TCP.
    Tcp,
}

impl Transport {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
        }
    }
}

/// How a shard picks the member of a shared subscription group that gets a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedSubscriptionStrategy {
    /// Members in turn.
    RoundRobin,
    /// A member at random.
    Random,
}

/// `[mqtt]`: what the broker announces to clients, accepts from them, and keeps per session.
/// Field types match what goes on the wire (CONNACK properties are `u16`/`u32`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// Largest packet accepted from a client, fixed header included (announced as Maximum
    /// Packet Size in 5.0).
    pub max_packet_size_bytes: NonZeroU32,
    /// QoS 1/2 publishes a client may have unacknowledged towards the broker (Receive Maximum
    /// announced in CONNACK).
    pub receive_maximum: NonZeroU16,
    /// The broker's outbound window: unacknowledged QoS 1/2 deliveries per client. A 5.0
    /// client's smaller Receive Maximum lowers it; a larger one does not raise it.
    pub max_inflight_messages: NonZeroU16,
    /// QoS 1/2 messages queued per session behind the window or while it is offline; 0 keeps
    /// no queue.
    pub max_queued_messages: usize,
    /// Bytes of queued messages per session; at least `max_packet_size_bytes`.
    pub max_queued_bytes: usize,
    /// Longest session expiry granted, in seconds (also the expiry of 3.x persistent
    /// sessions); `u32::MAX` means sessions never expire.
    pub max_session_expiry_secs: u32,
    /// Longest keep-alive accepted, in seconds; 0 accepts what the client asks. A 5.0 client
    /// asking for more (or for 0) gets this as Server Keep Alive.
    pub max_keep_alive_secs: u16,
    /// How long a new connection may take to send CONNECT.
    pub connect_timeout: Duration,
    /// Topic aliases accepted from a client; 0 disables them.
    pub topic_alias_maximum: u16,
    /// Highest QoS granted and accepted.
    pub maximum_qos: QoS,
    /// Whether retained messages are kept.
    pub retain_available: bool,
    /// Whether filters may contain `+` and `#`.
    pub wildcard_subscription_available: bool,
    /// Whether `$share/group/filter` subscriptions are accepted.
    pub shared_subscription_available: bool,
    /// Whether 5.0 subscription identifiers are accepted.
    pub subscription_identifiers_available: bool,
    /// How a member of a shared subscription group is picked.
    pub shared_subscription_strategy: SharedSubscriptionStrategy,
    /// Longest client id accepted, in UTF-8 bytes; at least 23 (the spec's minimum).
    pub max_client_id_bytes: u16,
    /// Whether a client may connect with an empty client id (5.0: the broker assigns one;
    /// 3.1.1: only with clean session, as the spec says).
    pub allow_empty_client_id: bool,
    /// Whether clients may connect without a user name.
    pub allow_anonymous: bool,
    /// Most levels (`/`-separated parts) in a topic name or filter.
    pub max_topic_levels: NonZeroU16,
    /// Client ids refused at CONNECT (Client Identifier not valid).
    pub reserved_client_ids: Vec<String>,
    /// Whether a 3.x client whose PUBLISH the hooks deny is disconnected (3.x has no way to
    /// tell it otherwise); when false the message is dropped and acknowledged.
    pub disconnect_on_denied_publish_v3: bool,
}

/// `[tuning]`: shards, CPUs, executor knobs and per-connection buffer sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuningConfig {
    /// Number of shards; `None` is one per CPU in `cpus` (or in the affinity mask).
    pub shards: Option<NonZeroUsize>,
    /// CPUs the shards are pinned to, in shard order, without duplicates; empty is the
    /// process's affinity mask. Resolve with [`TuningConfig::shard_cpus`].
    pub cpus: Vec<CpuId>,
    /// Connections a shard accepts at once; `None` is no limit but the open-file limit.
    pub max_connections_per_shard: Option<NonZeroUsize>,
    /// Initial capacity of a connection's read buffer (it grows for larger packets).
    pub read_buffer_bytes: usize,
    /// Bytes waiting for a connection's socket beyond which QoS 0 messages to it are dropped.
    pub outbound_budget_bytes: usize,
    /// Messages each one-way shard-to-shard queue holds.
    pub cross_shard_queue_capacity: NonZeroUsize,
    /// Entries of each of a shard's three io_uring rings; a power of two.
    pub ring_depth: usize,
    /// Memory each shard registers with io_uring for DMA file I/O; a multiple of 4 KiB.
    pub io_memory_bytes: usize,
    /// How long an idle shard spins before parking; `None` parks at once.
    pub spin_before_park: Option<Duration>,
    /// How long a shard runs tasks before it polls for I/O again.
    pub preempt_timer: Duration,
    /// Whether `main` raises the RLIMIT_MEMLOCK soft limit to the hard limit at start-up.
    pub raise_memlock: bool,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Human-readable lines or JSON objects.
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive (`info`, `starling=debug,info`); `RUST_LOG`, when set,
    /// wins. Already checked to parse.
    pub level: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Command-line values that replace the file's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--listen`: when not empty, replaces every `[[listeners]]` with plain TCP listeners on
    /// these addresses.
    pub listen: Vec<SocketAddr>,
    /// `--shards`: replaces `tuning.shards` (0 = one per CPU).
    pub shards: Option<u64>,
}

impl Config {
    /// Parses and validates TOML text, then applies `overrides`.
    pub fn from_toml_str(text: &str, overrides: &Overrides) -> Result<Self, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let mut raw: schema::RawConfig = serde_path_to_error::deserialize(deserializer)
            .map_err(|error| ConfigError::from_toml(text, error))?;
        apply(&mut raw, overrides);
        validate::config(&raw)
    }

    /// Reads, parses and validates the file at `path`, then applies `overrides`.
    pub fn load_file(path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Self::from_toml_str(&text, overrides)?;
        if let Some(dir) = path.parent() {
            config.resolve_paths(dir);
        }
        Ok(config)
    }

    /// Makes the relative file names in the config (schemas, password and token files,
    /// exporter files) relative to `dir`, the config file's directory, as an operator reads
    /// them.
    pub fn resolve_paths(&mut self, dir: &Path) {
        let resolve = |path: &mut std::path::PathBuf| {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        };
        for rule in &mut self.hooks.topics {
            if let Some(schema) = &mut rule.schema_file {
                resolve(schema);
            }
        }
        if let Some(credentials) = &mut self.hooks.credentials {
            let files = [&mut credentials.password_file, &mut credentials.token_file];
            files.into_iter().flatten().for_each(resolve);
        }
        for exporter in &mut self.exporters {
            if let SinkConfig::JsonLines(jsonl) = &mut exporter.sink {
                if jsonl.path.as_os_str() != "-" {
                    resolve(&mut jsonl.path);
                }
            }
        }
    }
}

impl FromStr for Config {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_toml_str(text, &Overrides::default())
    }
}

impl Default for Config {
    /// The config of an empty file.
    fn default() -> Self {
        validate::defaults()
    }
}

/// Parses a listener address the way `listeners.bind` accepts it (`IP:PORT`, port not 0), for
/// `--listen`. The error is the explanation alone, without a key path.
pub fn parse_bind_address(text: &str) -> Result<SocketAddr, String> {
    validate::bind_address("--listen", text).map_err(|error| match error {
        ConfigError::Invalid { message, .. } => message,
        other => other.to_string(),
    })
}

fn apply(raw: &mut schema::RawConfig, overrides: &Overrides) {
    if !overrides.listen.is_empty() {
        raw.listeners = overrides
            .listen
            .iter()
            .map(|addr| schema::RawListener {
                bind: addr.to_string(),
                ..schema::RawListener::default()
            })
            .collect();
    }
    if let Some(shards) = overrides.shards {
        // Out-of-range values saturate and are then refused by validation with the range.
        raw.tuning.shards = i64::try_from(shards).unwrap_or(i64::MAX);
    }
}

#[cfg(test)]
mod tests;
