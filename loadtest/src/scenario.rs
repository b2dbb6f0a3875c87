//! Scenario blocks: the defaults of each kind (`fanout`, `fanin`, `p2p`, `shared`, `conn`) and
//! the TOML scenario file that combines several blocks into one run.
//!
//! A file has optional run settings at the top (any command-line flag overrides them) and one
//! `[[block]]` table per block. Unknown keys are errors that name the key, so a typo never
//! silently runs a different test. This module reads the file it is given and nothing else.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::config::{BlockSpec, Kind, MqttVersion, Rate};
use crate::units::parse_duration;

/// The defaults of a block of `kind` named `name`.
pub fn block_defaults(kind: Kind, name: &str) -> BlockSpec {
    let mut block = BlockSpec {
        name: name.to_owned(),
        kind,
        publishers: 0,
        subscribers: 0,
        idle: 0,
        topic: format!("bench/{name}/{{id}}"),
        filter: format!("bench/{name}/+"),
        share_group: None,
        qos: 0,
        payload_bytes: 64,
        rate: Rate::PerSecond(1000.0),
        inflight: 64,
        connect_rate: None,
    };
    match kind {
        Kind::Fanout => {
            block.publishers = 1;
            block.subscribers = 10;
            block.topic = format!("bench/{name}");
            block.filter = block.topic.clone();
        }
        Kind::Fanin => {
            block.publishers = 10;
            block.subscribers = 1;
        }
        Kind::P2p => {
            block.publishers = 10;
            block.subscribers = 10;
            block.filter = block.topic.clone();
        }
        Kind::Shared => {
            block.publishers = 4;
            block.subscribers = 4;
            block.share_group = Some("bench".into());
        }
        Kind::Conn => {
            block.idle = 1000;
            block.connect_rate = Some(1000.0);
        }
    }
    block
}

/// A duration in a file: seconds as a number, or text such as `"500ms"`, `"30s"`, `"2m"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Seconds(f64),
    Text(String),
}

impl DurationValue {
    fn get(&self, key: &str) -> Result<Duration> {
        match self {
            Self::Seconds(s) if *s >= 0.0 && s.is_finite() => Ok(Duration::from_secs_f64(*s)),
            Self::Seconds(s) => bail!("{key}: {s} is not a duration"),
            Self::Text(text) => parse_duration(text).with_context(|| key.to_owned()),
        }
    }
}

/// A rate in a file: a number or `"max"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum RateValue {
    PerSecond(f64),
    Text(String),
}

/// Run settings a file may give; each is overridden by its command-line flag.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// Broker host.
    pub host: Option<String>,
    /// Broker port.
    pub port: Option<u16>,
    /// `"3.1.1"` or `"5.0"`.
    pub mqtt_version: Option<MqttVersion>,
    duration: Option<DurationValue>,
    warmup: Option<DurationValue>,
    drain: Option<DurationValue>,
    connect_timeout: Option<DurationValue>,
    /// Keep alive seconds.
    pub keep_alive: Option<u16>,
    /// Client id prefix.
    pub client_prefix: Option<String>,
    /// Handshakes in progress at once.
    pub connect_concurrency: Option<u32>,
    /// The blocks; taken out by [`parse`].
    #[serde(default)]
    block: Vec<FileBlock>,
}

/// Durations of a file's settings, parsed.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileDurations {
    /// Measured window.
    pub duration: Option<Duration>,
    /// Warm-up.
    pub warmup: Option<Duration>,
    /// Drain.
    pub drain: Option<Duration>,
    /// Setup step timeout.
    pub connect_timeout: Option<Duration>,
}

impl FileSettings {
    /// Parses the duration settings.
    pub fn durations(&self) -> Result<FileDurations> {
        let get =
            |value: &Option<DurationValue>, key| value.as_ref().map(|v| v.get(key)).transpose();
        Ok(FileDurations {
            duration: get(&self.duration, "duration")?,
            warmup: get(&self.warmup, "warmup")?,
            drain: get(&self.drain, "drain")?,
            connect_timeout: get(&self.connect_timeout, "connect_timeout")?,
        })
    }
}

/// One `[[block]]` of a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBlock {
    name: String,
    kind: Kind,
    publishers: Option<u32>,
    subscribers: Option<u32>,
    pairs: Option<u32>,
    connections: Option<u32>,
    topic: Option<String>,
    filter: Option<String>,
    group: Option<String>,
    qos: Option<u8>,
    payload: Option<usize>,
    rate: Option<RateValue>,
    inflight: Option<u16>,
    connect_rate: Option<f64>,
}

/// Reads the scenario file at `path`: its run settings and its blocks.
pub fn load(path: &Path) -> Result<(FileSettings, Vec<BlockSpec>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read scenario file {}", path.display()))?;
    parse(&text).with_context(|| format!("scenario file {}", path.display()))
}

/// Parses scenario file text.
pub fn parse(text: &str) -> Result<(FileSettings, Vec<BlockSpec>)> {
    let mut settings: FileSettings = toml::from_str(text)?;
    let file_blocks = std::mem::take(&mut settings.block);
    if file_blocks.is_empty() {
        bail!("no [[block]] tables: a scenario needs at least one block");
    }
    let blocks = file_blocks
        .iter()
        .map(resolve_block)
        .collect::<Result<Vec<_>>>()?;
    Ok((settings, blocks))
}

fn resolve_block(file: &FileBlock) -> Result<BlockSpec> {
    let name = &file.name;
    let mut block = block_defaults(file.kind, name);
    let only = |present: bool, key: &str, kinds: &str| -> Result<()> {
        if present {
            bail!("block {name}: `{key}` applies only to {kinds} blocks");
        }
        Ok(())
    };
    only(
        file.pairs.is_some() && file.kind != Kind::P2p,
        "pairs",
        "p2p",
    )?;
    only(
        file.connections.is_some() && file.kind != Kind::Conn,
        "connections",
        "conn",
    )?;
    only(
        file.group.is_some() && file.kind != Kind::Shared,
        "group",
        "shared",
    )?;
    if let Some(pairs) = file.pairs {
        block.publishers = pairs;
        block.subscribers = pairs;
    }
    if let Some(connections) = file.connections {
        block.idle = connections;
    }
    if file.kind == Kind::P2p && (file.publishers.is_some() || file.subscribers.is_some()) {
        bail!("block {name}: a p2p block is sized with `pairs`");
    }
    block.publishers = file.publishers.unwrap_or(block.publishers);
    block.subscribers = file.subscribers.unwrap_or(block.subscribers);
    if let Some(topic) = &file.topic {
        block.topic = topic.clone();
        if matches!(file.kind, Kind::Fanout | Kind::P2p) && file.filter.is_none() {
            block.filter = topic.clone();
        }
    }
    block.filter = file.filter.clone().unwrap_or(block.filter);
    if file.group.is_some() {
        block.share_group = file.group.clone();
    }
    block.qos = file.qos.unwrap_or(block.qos);
    block.payload_bytes = file.payload.unwrap_or(block.payload_bytes);
    block.inflight = file.inflight.unwrap_or(block.inflight);
    if let Some(rate) = &file.rate {
        block.rate = match rate {
            RateValue::PerSecond(rate) => Rate::parse(&rate.to_string()),
            RateValue::Text(text) => Rate::parse(text),
        }
        .with_context(|| format!("block {name}: rate"))?;
    }
    if file.connect_rate.is_some() {
        block.connect_rate = file.connect_rate;
    }
    Ok(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_mixed_file() {
        let text = r#"
            port = 1884
            duration = "3s"
            warmup = 0.5
            mqtt_version = "5.0"

            [[block]]
            name = "devices"
            kind = "fanin"
            publishers = 20
            subscribers = 2
            topic = "site/{id}/telemetry"
            filter = "site/+/telemetry"
            qos = 1
            rate = 200

            [[block]]
            name = "pairs"
            kind = "p2p"
            pairs = 3
            rate = "max"

            [[block]]
            name = "idle"
            kind = "conn"
            connections = 50
        "#;
        let (settings, blocks) = parse(text).unwrap();
        assert_eq!(settings.port, Some(1884));
        assert_eq!(settings.mqtt_version, Some(MqttVersion::V5));
        let durations = settings.durations().unwrap();
        assert_eq!(durations.duration, Some(Duration::from_secs(3)));
        assert_eq!(durations.warmup, Some(Duration::from_millis(500)));
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0].publishers, 20);
        assert_eq!(blocks[0].filter, "site/+/telemetry");
        assert_eq!(blocks[1].publishers, 3);
        assert_eq!(blocks[1].subscribers, 3);
        assert_eq!(blocks[1].rate, Rate::Max);
        assert_eq!(blocks[2].idle, 50);
    }

    #[test]
    fn unknown_keys_and_misplaced_keys_are_errors() {
        let typo = "[[block]]\nname = \"a\"\nkind = \"fanout\"\nsubscriber = 3\n";
        let error = format!("{:#}", parse(typo).unwrap_err());
        assert!(error.contains("subscriber"), "{error}");
        let misplaced = "[[block]]\nname = \"a\"\nkind = \"fanout\"\npairs = 3\n";
        let error = format!("{:#}", parse(misplaced).unwrap_err());
        assert!(error.contains("pairs"), "{error}");
        assert!(parse("port = 1\n").is_err());
    }

    #[test]
    fn shipped_example_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/iot-mixed.toml");
        let (_, blocks) = load(&path).unwrap();
        assert!(blocks.len() >= 3);
        assert!(blocks.iter().any(|b| b.kind == Kind::Conn));
        assert!(blocks
            .iter()
            .any(|b| b.filter.contains('+') || b.filter.contains('#')));
    }
}
