//! Checks every value of the raw schema and builds the typed [`Config`].
//!
//! Each check names the key path and says what is allowed and what was given ("must be a
//! power of two between 8 and 32768, got 3"). Checks are pure: nothing here reads the machine,
//! so a config that validates on a laptop validates the same in CI. Checks against the
//! machine's CPUs are in `tuning`.

use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU16, NonZeroU32, NonZeroUsize};
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use super::schema::{RawConfig, RawListener, RawLog, RawMqtt, RawTuning};
use super::tuning::{CpuId, MAX_SHARDS};
use super::{
    Config, ConfigError, ListenerConfig, LogConfig, LogFormat, MqttConfig,
    SharedSubscriptionStrategy, Transport, TuningConfig,
};
use crate::protocol::{QoS, MAX_PACKET_SIZE};

const KIB: i64 = 1024;
const MIB: i64 = 1024 * KIB;
const GIB: i64 = 1024 * MIB;

/// The fewest bytes the spec requires a server to accept in a client id ([MQTT-3.1.3-5]).
const SPEC_MIN_CLIENT_ID_BYTES: i64 = 23;
/// A topic is at most 65,535 bytes, so it has at most 32,768 levels (`/` alone has two).
const MAX_TOPIC_LEVELS: i64 = 32_768;
/// io_uring refuses more entries than this (IORING_MAX_ENTRIES).
const MAX_RING_DEPTH: i64 = 32_768;
/// glommio allocates at least 64 KiB of io memory whatever it is asked for.
const MIN_IO_MEMORY_BYTES: i64 = 64 * KIB;
/// Longest configured name of a listener.
const MAX_LISTENER_NAME_CHARS: usize = 64;

/// Validates a whole raw config.
pub(crate) fn config(raw: &RawConfig) -> Result<Config, ConfigError> {
    Ok(Config {
        listeners: listeners(&raw.listeners)?,
        mqtt: mqtt(&raw.mqtt)?,
        tuning: tuning(&raw.tuning)?,
        log: log(&raw.log)?,
        hooks: super::hooks::hooks(&raw.hooks)?,
        events: super::hooks::events(&raw.events)?,
        system_topics: super::hooks::system_topics(&raw.system_topics)?,
        exporters: super::exporters::exporters(&raw.exporters, &raw.events.instance)?,
    })
}

/// The config of an empty file.
pub(crate) fn defaults() -> Config {
    // Invariant: the built-in defaults are valid; `tests::defaults_are_valid` runs this very
    // call, so a default that breaks a rule fails the test suite, not a broker start.
    #[allow(clippy::expect_used)]
    config(&RawConfig::default()).expect("the built-in defaults are valid")
}

/// `value` as a `T` if it is within `min..=max`.
pub(super) fn ranged<T: TryFrom<i64>>(
    key: &str,
    value: i64,
    min: i64,
    max: i64,
) -> Result<T, ConfigError> {
    let out_of_range =
        || ConfigError::invalid(key, format!("must be between {min} and {max}, got {value}"));
    if !(min..=max).contains(&value) {
        return Err(out_of_range());
    }
    T::try_from(value).map_err(|_| out_of_range())
}

/// Like [`ranged`], for a type that cannot be zero (`NonZeroU16` through `u16`); `min` >= 1.
fn nonzero<T: TryFrom<i64>, N: TryFrom<T>>(
    key: &str,
    value: i64,
    min: i64,
    max: i64,
) -> Result<N, ConfigError> {
    let plain: T = ranged(key, value, min, max)?;
    N::try_from(plain).map_err(|_| {
        ConfigError::invalid(key, format!("must be between {min} and {max}, got {value}"))
    })
}

/// A count whose zero means "no limit".
fn zero_is_none(key: &str, value: i64, max: i64) -> Result<Option<NonZeroUsize>, ConfigError> {
    let plain: usize = ranged(key, value, 0, max)?;
    Ok(NonZeroUsize::new(plain))
}

pub(super) fn one_of<T: Copy>(
    key: &str,
    value: &str,
    allowed: &[(&str, T)],
) -> Result<T, ConfigError> {
    allowed
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<String> = allowed.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            ConfigError::invalid(
                key,
                format!("must be one of {}, got \"{value}\"", names.join(", ")),
            )
        })
}

fn listeners(raw: &[RawListener]) -> Result<Vec<ListenerConfig>, ConfigError> {
    if raw.is_empty() {
        return Err(ConfigError::invalid(
            "listeners",
            "must list at least one listener, e.g. [[listeners]] with bind = \"0.0.0.0:1883\"",
        ));
    }
    let mut done: Vec<ListenerConfig> = Vec::with_capacity(raw.len());
    for (index, listener) in raw.iter().enumerate() {
        let checked = self::listener(index, listener)?;
        // Addresses first: an unnamed listener is named by its address, so a repeated address
        // would otherwise be reported as a repeated name.
        for (earlier, other) in done.iter().enumerate() {
            if overlaps(other.bind, checked.bind) {
                return Err(ConfigError::invalid(
                    format!("listeners[{index}].bind"),
                    format!(
                        "{} overlaps listeners[{earlier}] ({}): both would take connections for \
                         the same address and port; give each listener its own",
                        checked.bind, other.bind
                    ),
                ));
            }
            if other.name == checked.name {
                return Err(ConfigError::invalid(
                    format!("listeners[{index}].name"),
                    format!(
                        "\"{}\" is already the name of listeners[{earlier}]; names must be unique",
                        checked.name
                    ),
                ));
            }
        }
        done.push(checked);
    }
    Ok(done)
}

fn listener(index: usize, raw: &RawListener) -> Result<ListenerConfig, ConfigError> {
    let key = |field: &str| format!("listeners[{index}].{field}");
    let bind = bind_address(&key("bind"), &raw.bind)?;
    let transport = match raw.transport.as_str() {
        "tcp" => Transport::Tcp,
        "tls" | "ws" | "wss" => {
            return Err(ConfigError::invalid(
                key("transport"),
                format!(
                    "\"{}\" is not supported yet; allowed: \"tcp\"",
                    raw.transport
                ),
            ))
        }
        other => {
            return Err(ConfigError::invalid(
                key("transport"),
                format!(
                    "must be \"tcp\" (\"tls\", \"ws\" and \"wss\" are not supported yet), \
                     got \"{other}\""
                ),
            ))
        }
    };
    let name = match &raw.name {
        Some(name) => listener_name(&key("name"), name)?,
        None => bind.to_string(),
    };
    Ok(ListenerConfig {
        name,
        bind,
        transport,
        backlog: nonzero::<u32, _>(&key("backlog"), raw.backlog, 1, 65_535)?,
    })
}

fn listener_name(key: &str, name: &str) -> Result<String, ConfigError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty()
        || name.chars().count() > MAX_LISTENER_NAME_CHARS
        || !name.chars().all(allowed)
    {
        return Err(ConfigError::invalid(
            key,
            format!(
                "must be 1 to {MAX_LISTENER_NAME_CHARS} letters, digits, '-', '_' or '.', \
                 got \"{name}\""
            ),
        ));
    }
    Ok(name.to_owned())
}

/// Parses `IP:PORT`. Host names are refused rather than resolved: resolving is a blocking
/// call whose answer can change between a check and a start.
pub(crate) fn bind_address(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    let addr: SocketAddr = text.parse().map_err(|_| {
        ConfigError::invalid(
            key,
            format!(
                "must be IP:PORT such as \"0.0.0.0:1883\" or \"[::]:1883\" (host names are not \
                 resolved), got \"{text}\""
            ),
        )
    })?;
    if addr.port() == 0 {
        return Err(ConfigError::invalid(
            key,
            format!(
                "port 0 is not allowed (got \"{text}\"): every shard binds the same port with \
                 SO_REUSEPORT, so the port must be fixed"
            ),
        ));
    }
    Ok(addr)
}

/// Whether two listeners would receive connections for the same address and port.
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() {
        return false;
    }
    // An IPv6 wildcard is dual-stack by default on Linux, so it covers IPv4 addresses too.
    let covers = |wide: IpAddr, other: IpAddr| {
        wide.is_unspecified() && (wide.is_ipv6() || wide.is_ipv4() == other.is_ipv4())
    };
    a.ip() == b.ip() || covers(a.ip(), b.ip()) || covers(b.ip(), a.ip())
}

fn mqtt(raw: &RawMqtt) -> Result<MqttConfig, ConfigError> {
    let max_packet_size_bytes: NonZeroU32 = nonzero::<u32, _>(
        "mqtt.max_packet_size_bytes",
        raw.max_packet_size_bytes,
        16,
        i64::from(MAX_PACKET_SIZE),
    )?;
    let packet = i64::from(max_packet_size_bytes.get());
    if raw.max_queued_bytes < packet {
        return Err(ConfigError::invalid(
            "mqtt.max_queued_bytes",
            format!(
                "must be at least mqtt.max_packet_size_bytes ({packet}) so that the largest \
                 message fits in a queue, got {}",
                raw.max_queued_bytes
            ),
        ));
    }
    if raw.max_client_id_bytes < SPEC_MIN_CLIENT_ID_BYTES {
        return Err(ConfigError::invalid(
            "mqtt.max_client_id_bytes",
            format!(
                "must be at least {SPEC_MIN_CLIENT_ID_BYTES} (MQTT requires servers to accept \
                 client ids of 1 to 23 bytes), got {}",
                raw.max_client_id_bytes
            ),
        ));
    }
    Ok(MqttConfig {
        max_packet_size_bytes,
        receive_maximum: nonzero::<u16, _>("mqtt.receive_maximum", raw.receive_maximum, 1, 65_535)?,
        max_inflight_messages: nonzero::<u16, _>(
            "mqtt.max_inflight_messages",
            raw.max_inflight_messages,
            1,
            65_535,
        )?,
        max_queued_messages: ranged(
            "mqtt.max_queued_messages",
            raw.max_queued_messages,
            0,
            i64::from(u32::MAX),
        )?,
        max_queued_bytes: ranged(
            "mqtt.max_queued_bytes",
            raw.max_queued_bytes,
            packet,
            1024 * GIB,
        )?,
        max_session_expiry_secs: ranged(
            "mqtt.max_session_expiry_secs",
            raw.max_session_expiry_secs,
            0,
            i64::from(u32::MAX),
        )?,
        max_keep_alive_secs: ranged(
            "mqtt.max_keep_alive_secs",
            raw.max_keep_alive_secs,
            0,
            65_535,
        )?,
        connect_timeout: Duration::from_secs(ranged(
            "mqtt.connect_timeout_secs",
            raw.connect_timeout_secs,
            1,
            3600,
        )?),
        topic_alias_maximum: ranged(
            "mqtt.topic_alias_maximum",
            raw.topic_alias_maximum,
            0,
            65_535,
        )?,
        maximum_qos: match raw.maximum_qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            2 => QoS::ExactlyOnce,
            other => {
                return Err(ConfigError::invalid(
                    "mqtt.maximum_qos",
                    format!("must be 0, 1 or 2, got {other}"),
                ))
            }
        },
        retain_available: raw.retain_available,
        wildcard_subscription_available: raw.wildcard_subscription_available,
        shared_subscription_available: raw.shared_subscription_available,
        subscription_identifiers_available: raw.subscription_identifiers_available,
        shared_subscription_strategy: one_of(
            "mqtt.shared_subscription_strategy",
            &raw.shared_subscription_strategy,
            &[
                ("round_robin", SharedSubscriptionStrategy::RoundRobin),
                ("random", SharedSubscriptionStrategy::Random),
            ],
        )?,
        max_client_id_bytes: ranged(
            "mqtt.max_client_id_bytes",
            raw.max_client_id_bytes,
            SPEC_MIN_CLIENT_ID_BYTES,
            65_535,
        )?,
        allow_empty_client_id: raw.allow_empty_client_id,
        allow_anonymous: raw.allow_anonymous,
        max_topic_levels: nonzero::<u16, NonZeroU16>(
            "mqtt.max_topic_levels",
            raw.max_topic_levels,
            1,
            MAX_TOPIC_LEVELS,
        )?,
        reserved_client_ids: reserved_client_ids(&raw.reserved_client_ids)?,
        disconnect_on_denied_publish_v3: raw.disconnect_on_denied_publish_v3,
    })
}

fn reserved_client_ids(raw: &[String]) -> Result<Vec<String>, ConfigError> {
    for (index, id) in raw.iter().enumerate() {
        if id.is_empty() || id.len() > 65_535 {
            return Err(ConfigError::Invalid {
                key: format!("mqtt.reserved_client_ids[{index}]"),
                message: format!(
                    "a client id of 1 to 65535 bytes is allowed, got {} bytes",
                    id.len()
                ),
            });
        }
    }
    Ok(raw.to_vec())
}

fn tuning(raw: &RawTuning) -> Result<TuningConfig, ConfigError> {
    let shards = zero_is_none("tuning.shards", raw.shards, MAX_SHARDS as i64)?;
    let cpus = cpu_list("tuning.cpus", &raw.cpus)?;
    if let Some(shards) = shards {
        if !cpus.is_empty() && shards.get() > cpus.len() {
            return Err(ConfigError::invalid(
                "tuning.shards",
                format!(
                    "{shards} shards need {shards} CPUs, but tuning.cpus lists {} ({})",
                    cpus.len(),
                    CpuId::list(&cpus)
                ),
            ));
        }
    }
    let ring_depth = raw.ring_depth;
    if !(8..=MAX_RING_DEPTH).contains(&ring_depth) || ring_depth.count_ones() != 1 {
        return Err(ConfigError::invalid(
            "tuning.ring_depth",
            format!("must be a power of two between 8 and {MAX_RING_DEPTH}, got {ring_depth}"),
        ));
    }
    let io_memory = raw.io_memory_bytes;
    if !(MIN_IO_MEMORY_BYTES..=GIB).contains(&io_memory) || io_memory % (4 * KIB) != 0 {
        return Err(ConfigError::invalid(
            "tuning.io_memory_bytes",
            format!(
                "must be a multiple of 4096 between {MIN_IO_MEMORY_BYTES} and {GIB}, \
                 got {io_memory}"
            ),
        ));
    }
    Ok(TuningConfig {
        shards,
        cpus,
        max_connections_per_shard: zero_is_none(
            "tuning.max_connections_per_shard",
            raw.max_connections_per_shard,
            i64::from(u32::MAX),
        )?,
        read_buffer_bytes: ranged(
            "tuning.read_buffer_bytes",
            raw.read_buffer_bytes,
            512,
            16 * MIB,
        )?,
        outbound_budget_bytes: ranged(
            "tuning.outbound_budget_bytes",
            raw.outbound_budget_bytes,
            4 * KIB,
            GIB,
        )?,
        cross_shard_queue_capacity: nonzero::<usize, _>(
            "tuning.cross_shard_queue_capacity",
            raw.cross_shard_queue_capacity,
            16,
            1 << 20,
        )?,
        ring_depth: ranged("tuning.ring_depth", ring_depth, 8, MAX_RING_DEPTH)?,
        io_memory_bytes: ranged(
            "tuning.io_memory_bytes",
            io_memory,
            MIN_IO_MEMORY_BYTES,
            GIB,
        )?,
        spin_before_park: zero_is_none(
            "tuning.spin_before_park_us",
            raw.spin_before_park_us,
            1_000_000,
        )?
        .map(|us| Duration::from_micros(us.get() as u64)),
        preempt_timer: Duration::from_micros(ranged(
            "tuning.preempt_timer_us",
            raw.preempt_timer_us,
            100,
            1_000_000,
        )?),
        raise_memlock: raw.raise_memlock,
    })
}

/// A list of distinct CPU ids under `key`.
pub(super) fn cpu_list(key: &str, raw: &[i64]) -> Result<Vec<CpuId>, ConfigError> {
    let mut cpus: Vec<CpuId> = Vec::with_capacity(raw.len());
    for &id in raw {
        let cpu = usize::try_from(id)
            .ok()
            .and_then(CpuId::new)
            .ok_or_else(|| {
                ConfigError::invalid(
                    key,
                    format!(
                        "CPU ids must be between 0 and {}, got {id}",
                        CpuId::MAX_EXCLUSIVE - 1
                    ),
                )
            })?;
        if cpus.contains(&cpu) {
            return Err(ConfigError::invalid(
                key,
                format!("CPU {cpu} is listed twice"),
            ));
        }
        cpus.push(cpu);
    }
    Ok(cpus)
}

fn log(raw: &RawLog) -> Result<LogConfig, ConfigError> {
    let format = one_of(
        "log.format",
        &raw.format,
        &[("human", LogFormat::Human), ("json", LogFormat::Json)],
    )?;
    let level = raw.level.trim();
    let parsed = if level.is_empty() {
        Err("it is empty".to_owned())
    } else {
        EnvFilter::builder()
            .parse(level)
            .map(drop)
            .map_err(|e| e.to_string())
    };
    if let Err(why) = parsed {
        return Err(ConfigError::invalid(
            "log.level",
            format!(
                "must be a level (error, warn, info, debug, trace) or a tracing filter such as \
                 \"starling=debug,info\"; \"{}\" is not: {why}",
                raw.level
            ),
        ));
    }
    Ok(LogConfig {
        format,
        level: level.to_owned(),
    })
}
