//! Validation of `[[exporters]]`: the settings every exporter has (queue, batch, overflow,
//! retry, rules) and the keys of its sink type. A key that belongs to another sink type is an
//! error naming the types it belongs to, not silently ignored.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use super::error::ConfigError;
use super::schema::{RawExporter, RawRule};
use super::validate::{one_of, ranged};
use crate::hooks::exporters::{
    JsonLinesConfig, KafkaConfig, NatsConfig, Overflow, RedisConfig, RetryPolicy, RuleConfig,
    TopicMode, WebhookConfig, WebhookSink,
};
use crate::hooks::EventKind;

/// One configured exporter.
#[derive(Debug, Clone, PartialEq)]
pub struct ExporterConfig {
    /// Label in logs and counters; unique.
    pub name: String,
    /// Events its queue holds while the sink is slow or down.
    pub queue_capacity: usize,
    /// Events per batch handed to the sink.
    pub batch_events: usize,
    /// Longest a partial batch waits for more events.
    pub flush_interval: Duration,
    /// Which event a full queue drops.
    pub overflow: Overflow,
    /// Backoff between attempts, and when to give a batch up.
    pub retry: RetryPolicy,
    /// Which events, renamed how, sent where; empty means every event.
    pub rules: Vec<RuleConfig>,
    /// The destination.
    pub sink: SinkConfig,
}

/// An exporter's destination and its own settings.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkConfig {
    /// HTTP POSTs (the web-hook document).
    Webhook(WebhookConfig),
    /// Redis Streams (SuperMQ's event format).
    Redis(RedisConfig),
    /// NATS JetStream (SuperMQ's event format).
    Nats(NatsConfig),
    /// Kafka (SuperMQ's event format, keyed by client id).
    Kafka(KafkaConfig),
    /// One JSON object per line in a file, for log shippers.
    JsonLines(JsonLinesConfig),
}

/// The sink types, and the keys only they accept.
const TYPES: &[(&str, &[&str])] = &[
    (
        "webhook",
        &["http_urls", "http_timeout", "concurrency_limit", "batch"],
    ),
    (
        "redis",
        &["url", "stream", "maxlen", "timeout", "disconnect_reason"],
    ),
    (
        "nats",
        &[
            "url",
            "subject",
            "stream_name",
            "create_stream",
            "timeout",
            "disconnect_reason",
        ],
    ),
    (
        "kafka",
        &[
            "bootstrap",
            "topic",
            "topic_prefix",
            "create_topics",
            "partitions",
            "timeout",
            "disconnect_reason",
        ],
    ),
    ("jsonl", &["path"]),
];

pub(super) fn exporters(
    raw: &[RawExporter],
    instance: &str,
) -> Result<Vec<ExporterConfig>, ConfigError> {
    let mut names = BTreeSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (index, exporter) in raw.iter().enumerate() {
        let config = exporter_config(index, exporter, instance)?;
        if !names.insert(config.name.clone()) {
            return Err(ConfigError::invalid(
                format!("exporters[{index}].name"),
                format!("names must be unique; \"{}\" is used twice", config.name),
            ));
        }
        out.push(config);
    }
    Ok(out)
}

fn exporter_config(
    index: usize,
    raw: &RawExporter,
    instance: &str,
) -> Result<ExporterConfig, ConfigError> {
    let key = |name: &str| format!("exporters[{index}].{name}");
    let kinds: Vec<&str> = TYPES.iter().map(|(kind, _)| *kind).collect();
    let Some((kind, own_keys)) = TYPES.iter().find(|(kind, _)| *kind == raw.kind) else {
        return Err(ConfigError::invalid(
            key("type"),
            format!("must be one of {}, got \"{}\"", quoted(&kinds), raw.kind),
        ));
    };
    for present in present_sink_keys(raw) {
        if !own_keys.contains(&present) {
            let owners: Vec<&str> = TYPES
                .iter()
                .filter(|(_, keys)| keys.contains(&present))
                .map(|(kind, _)| *kind)
                .collect();
            return Err(ConfigError::invalid(
                key(present),
                format!(
                    "is a key of {} exporters, not of {kind} ones",
                    owners.join(" and ")
                ),
            ));
        }
    }
    let name = if raw.name.is_empty() {
        format!("{kind}-{index}")
    } else {
        raw.name.clone()
    };
    // The name is one level of the exporter's stats topic ($SYS/brokers/<node>/exporters/<name>).
    if name.contains(['/', '+', '#', '\0']) {
        return Err(ConfigError::invalid(
            key("name"),
            format!(
                "must not contain '/', '+', '#' or NUL (it names a topic level), got \"{name}\""
            ),
        ));
    }
    let retry_max_elapsed = duration(
        &key("retry_max_elapsed_time"),
        raw.retry_max_elapsed_time.as_deref().unwrap_or("60s"),
    )?;
    let multiplier = raw.retry_multiplier.unwrap_or(2.5);
    if !(1.0..=100.0).contains(&multiplier) {
        return Err(ConfigError::invalid(
            key("retry_multiplier"),
            format!("must be between 1.0 and 100.0, got {multiplier}"),
        ));
    }
    let retry = RetryPolicy {
        initial_interval: duration(
            &key("retry_initial_interval"),
            raw.retry_initial_interval.as_deref().unwrap_or("500ms"),
        )?,
        multiplier,
        max_interval: retry_max_elapsed,
        max_elapsed_time: retry_max_elapsed,
    };
    let overflow = one_of(
        &key("overflow"),
        raw.overflow.as_deref().unwrap_or("drop_newest"),
        &[
            ("drop_oldest", Overflow::DropOldest),
            ("drop_newest", Overflow::DropNewest),
        ],
    )?;
    Ok(ExporterConfig {
        name,
        queue_capacity: ranged(
            &key("queue_capacity"),
            raw.queue_capacity.unwrap_or(300_000),
            1,
            100_000_000,
        )?,
        batch_events: ranged(
            &key("batch_events"),
            raw.batch_events.unwrap_or(100),
            1,
            100_000,
        )?,
        flush_interval: duration(
            &key("flush_interval"),
            raw.flush_interval.as_deref().unwrap_or("100ms"),
        )?,
        overflow,
        retry,
        rules: rules(index, &raw.rule)?,
        sink: sink(index, kind, raw, instance)?,
    })
}

fn sink(
    index: usize,
    kind: &str,
    raw: &RawExporter,
    instance: &str,
) -> Result<SinkConfig, ConfigError> {
    let key = |name: &str| format!("exporters[{index}].{name}");
    let required = |name: &str, value: Option<&String>| -> Result<String, ConfigError> {
        match value {
            Some(value) if !value.is_empty() => Ok(value.clone()),
            _ => Err(ConfigError::invalid(
                key(name),
                format!("is required for {kind} exporters"),
            )),
        }
    };
    let timeout =
        |default: &str| duration(&key("timeout"), raw.timeout.as_deref().unwrap_or(default));
    let reason = raw.disconnect_reason.unwrap_or(false);
    Ok(match kind {
        "webhook" => {
            let urls = raw.http_urls.clone().unwrap_or_default();
            for (position, url) in urls.iter().enumerate() {
                WebhookSink::check_url(url).map_err(|problem| {
                    ConfigError::invalid(key(&format!("http_urls[{position}]")), problem)
                })?;
            }
            let has_rule_urls = raw.rule.values().flatten().any(|rule| rule.urls.is_some());
            if urls.is_empty() && !has_rule_urls {
                return Err(ConfigError::invalid(
                    key("http_urls"),
                    "at least one URL (\"http://host:port/path\") is required, here or in \
                     every rule's urls"
                        .to_owned(),
                ));
            }
            SinkConfig::Webhook(WebhookConfig {
                http_urls: urls,
                http_timeout: duration(
                    &key("http_timeout"),
                    raw.http_timeout.as_deref().unwrap_or("8s"),
                )?,
                concurrency_limit: ranged(
                    &key("concurrency_limit"),
                    raw.concurrency_limit.unwrap_or(128),
                    1,
                    65_536,
                )?,
                batch: raw.batch.unwrap_or(false),
            })
        }
        "redis" => {
            let mut config = RedisConfig::new(required("url", raw.url.as_ref())?);
            if let Some(stream) = &raw.stream {
                config.stream = stream.clone();
            }
            config.maxlen = ranged(&key("maxlen"), raw.maxlen.unwrap_or(0), 0, i64::MAX)?;
            config.instance = instance.to_owned();
            config.disconnect_reason = reason;
            config.timeout = timeout("5s")?;
            SinkConfig::Redis(config)
        }
        "nats" => {
            let mut config = NatsConfig::new(required("url", raw.url.as_ref())?);
            if let Some(subject) = &raw.subject {
                config.subject = subject.clone();
            }
            if let Some(stream_name) = &raw.stream_name {
                config.stream_name = stream_name.clone();
            }
            config.create_stream = raw.create_stream.unwrap_or(true);
            config.instance = instance.to_owned();
            config.disconnect_reason = reason;
            config.timeout = timeout("5s")?;
            SinkConfig::Nats(config)
        }
        "kafka" => {
            let bootstrap = raw.bootstrap.clone().unwrap_or_default();
            if bootstrap.is_empty() {
                return Err(ConfigError::invalid(
                    key("bootstrap"),
                    "at least one \"host:port\" broker is required".to_owned(),
                ));
            }
            let mut config = KafkaConfig::new(bootstrap);
            match (&raw.topic, &raw.topic_prefix) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::invalid(
                        key("topic"),
                        "give topic (every event in one topic) or topic_prefix (a topic per \
                         event kind), not both"
                            .to_owned(),
                    ))
                }
                (Some(topic), None) => config.topic_mode = TopicMode::Single(topic.clone()),
                (None, Some(prefix)) => {
                    config.topic_mode = TopicMode::PerEvent {
                        prefix: prefix.clone(),
                    }
                }
                (None, None) => {}
            }
            config.create_topics = raw.create_topics.unwrap_or(true);
            config.partitions = ranged(&key("partitions"), raw.partitions.unwrap_or(1), 1, 10_000)?;
            config.instance = instance.to_owned();
            config.disconnect_reason = reason;
            config.timeout = timeout("10s")?;
            SinkConfig::Kafka(config)
        }
        _ => SinkConfig::JsonLines(JsonLinesConfig {
            path: PathBuf::from(required("path", raw.path.as_ref())?),
        }),
    })
}

fn rules(
    index: usize,
    raw: &std::collections::BTreeMap<String, Vec<RawRule>>,
) -> Result<Vec<RuleConfig>, ConfigError> {
    let mut out = Vec::new();
    for (event, rules) in raw {
        let Some(kind) = EventKind::from_name(event) else {
            let names: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.name()).collect();
            return Err(ConfigError::invalid(
                format!("exporters[{index}].rule.{event}"),
                format!("is not an event; the events are {}", names.join(", ")),
            ));
        };
        for (position, rule) in rules.iter().enumerate() {
            let key = format!("exporters[{index}].rule.{event}[{position}]");
            if let Some(urls) = &rule.urls {
                for url in urls {
                    WebhookSink::check_url(url)
                        .map_err(|problem| ConfigError::invalid(format!("{key}.urls"), problem))?;
                }
            }
            if rule.action.as_deref() == Some("") {
                return Err(ConfigError::invalid(
                    format!("{key}.action"),
                    "must not be empty (leave it out for the event's name)".to_owned(),
                ));
            }
            out.push(RuleConfig {
                event: kind,
                action: rule.action.clone(),
                destinations: rule.urls.clone(),
                topics: rule.topics.clone(),
            });
        }
    }
    // Filters are checked where the rule set is built, with the same names.
    crate::hooks::exporters::RuleSet::new(&out).map_err(|error| {
        ConfigError::invalid(
            format!("exporters[{index}].rule.{}", error.event),
            format!("bad topic filter \"{}\": {}", error.filter, error.reason),
        )
    })?;
    Ok(out)
}

/// The sink keys `raw` sets: the keys of its serialized form (unset `Option`s are left out)
/// that some sink type owns, so the list of keys lives in `TYPES` only.
fn present_sink_keys(raw: &RawExporter) -> Vec<&'static str> {
    let set = toml::Table::try_from(raw).unwrap_or_default();
    let mut present: Vec<&'static str> = TYPES
        .iter()
        .flat_map(|(_, keys)| keys.iter().copied())
        .filter(|key| set.contains_key(*key))
        .collect();
    present.sort_unstable();
    present.dedup();
    present
}

/// A duration written as the web-hook document writes them: `8s`, `500ms`, `2m`, `1h`.
pub(super) fn duration(key: &str, text: &str) -> Result<Duration, ConfigError> {
    let invalid = || {
        ConfigError::invalid(
            key,
            format!(
                "must be a number and a unit (ms, s, m or h), such as \"8s\" or \"500ms\", got \
                 \"{text}\""
            ),
        )
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1_000),
        "m" => number.checked_mul(60_000),
        "h" => number.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(invalid)?;
    Ok(Duration::from_millis(millis))
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("\"{name}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
