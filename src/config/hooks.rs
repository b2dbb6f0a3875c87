//! Validation of `[hooks]`, `[events]` and `[system_topics]`: the built-in hooks' files and
//! table, the event rings, and the in-broker exporter.
//!
//! Files named here are only checked for a non-empty name; they are read (and their contents
//! checked, with file and line in the error) when the broker starts, so `check-config` can run
//! on a machine without them.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use super::error::ConfigError;
use super::schema::{RawEvents, RawHooks, RawSystemTopics};
use super::validate::{cpu_list, one_of, ranged};
use super::{EventsConfig, HooksConfig};
use crate::hooks::builtin::{CredentialsConfig, TopicRuleConfig, UnknownTopicPolicy};
use crate::protocol::{QoS, TopicName};
use crate::shard::SystemTopicsConfig;

pub(super) fn hooks(raw: &RawHooks) -> Result<HooksConfig, ConfigError> {
    let unknown_topic = one_of(
        "hooks.unknown_topic",
        &raw.unknown_topic,
        &[
            ("close", UnknownTopicPolicy::Close),
            ("deny", UnknownTopicPolicy::Deny),
        ],
    )?;
    let mut topics = Vec::with_capacity(raw.topics.len());
    for (index, rule) in raw.topics.iter().enumerate() {
        if rule.pattern.is_empty() {
            return Err(ConfigError::invalid(
                format!("hooks.topics[{index}].pattern"),
                "a topic pattern such as \"devices/(:id)/meta\" is required".to_owned(),
            ));
        }
        topics.push(TopicRuleConfig {
            pattern: rule.pattern.clone(),
            publish: rule.publish,
            subscribe: rule.subscribe,
            schema_file: optional_path(&rule.schema_file),
        });
    }
    let password_file = optional_path(&raw.password_file);
    let token_file = optional_path(&raw.token_file);
    if raw.token_username.is_empty() {
        return Err(ConfigError::invalid(
            "hooks.token_username",
            "the user name that marks a token login must not be empty".to_owned(),
        ));
    }
    let credentials =
        (password_file.is_some() || token_file.is_some()).then(|| CredentialsConfig {
            password_file,
            token_file,
            token_username: raw.token_username.clone(),
        });
    Ok(HooksConfig {
        topics,
        unknown_topic,
        credentials,
    })
}

pub(super) fn events(raw: &RawEvents) -> Result<EventsConfig, ConfigError> {
    let nonzero = |key: &str, value: i64, max: i64| -> Result<NonZeroUsize, ConfigError> {
        let plain: usize = ranged(key, value, 1, max)?;
        NonZeroUsize::new(plain)
            .ok_or_else(|| ConfigError::invalid(key, format!("must be at least 1, got {value}")))
    };
    let flush_ms: u64 = ranged("events.flush_interval_ms", raw.flush_interval_ms, 1, 60_000)?;
    let stats_ms: u64 = ranged(
        "events.stats_interval_ms",
        raw.stats_interval_ms,
        0,
        3_600_000,
    )?;
    Ok(EventsConfig {
        node: ranged("events.node", raw.node, 0, i64::from(u32::MAX))?,
        instance: raw.instance.clone(),
        ring_batches: nonzero("events.ring_batches", raw.ring_batches, 1 << 20)?,
        batch_events: nonzero("events.batch_events", raw.batch_events, 65_536)?,
        flush_interval: Duration::from_millis(flush_ms),
        worker_threads: nonzero("events.worker_threads", raw.worker_threads, 64)?,
        exporter_nice: ranged("events.exporter_nice", raw.exporter_nice, -20, 19)?,
        exporter_cpus: cpu_list("events.exporter_cpus", &raw.exporter_cpus)?,
        stats_interval: (stats_ms > 0).then(|| Duration::from_millis(stats_ms)),
    })
}

pub(super) fn system_topics(raw: &RawSystemTopics) -> Result<SystemTopicsConfig, ConfigError> {
    let qos = one_of(
        "system_topics.qos",
        &raw.qos.to_string(),
        &[
            ("0", QoS::AtMostOnce),
            ("1", QoS::AtLeastOnce),
            ("2", QoS::ExactlyOnce),
        ],
    )?;
    // The longest suffix is "subscription/unsubscribed"; checking it checks them all.
    if TopicName::new(&format!("{}subscription/unsubscribed", raw.prefix)).is_err() {
        return Err(ConfigError::invalid(
            "system_topics.prefix",
            format!(
                "must make valid topic names (no '+', '#' or NUL), got \"{}\"",
                raw.prefix
            ),
        ));
    }
    Ok(SystemTopicsConfig {
        enabled: raw.enabled,
        prefix: raw.prefix.clone(),
        qos,
    })
}

fn optional_path(text: &str) -> Option<PathBuf> {
    (!text.is_empty()).then(|| PathBuf::from(text))
}
