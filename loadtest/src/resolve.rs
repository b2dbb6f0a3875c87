//! Resolution of a scenario's flags, a scenario file's settings and the defaults into one
//! validated [`RunConfig`]. Precedence is flag over file over default. Reads only the scenario
//! file it is given.

use std::time::Duration;

use anyhow::{bail, Result};

use crate::cli::{RunArgs, Scenario, TrafficArgs};
use crate::config::{BlockSpec, Kind, MqttVersion, RunConfig};
use crate::scenario::{self, FileDurations, FileSettings};

impl Scenario {
    /// The run-wide settings of this scenario.
    pub fn run_args(&self) -> &RunArgs {
        match self {
            Self::Fanout { run, .. }
            | Self::Fanin { run, .. }
            | Self::P2p { run, .. }
            | Self::Shared { run, .. }
            | Self::Conn { run, .. }
            | Self::Run { run, .. } => run,
        }
    }

    /// Resolves flags, file and defaults into a validated configuration.
    pub fn resolve(&self, threads: usize) -> Result<RunConfig> {
        let (settings, blocks) = match self {
            Self::Run { file, .. } => scenario::load(file)?,
            _ => (FileSettings::default(), vec![self.single_block()?]),
        };
        let durations = settings.durations()?;
        let config = merge(self.run_args(), &settings, &durations, blocks, threads);
        config.validate()?;
        Ok(config)
    }

    fn single_block(&self) -> Result<BlockSpec> {
        let (kind, traffic) = match self {
            Self::Fanout { traffic, .. } => (Kind::Fanout, Some(traffic)),
            Self::Fanin { traffic, .. } => (Kind::Fanin, Some(traffic)),
            Self::P2p { traffic, .. } => (Kind::P2p, Some(traffic)),
            Self::Shared { traffic, .. } => (Kind::Shared, Some(traffic)),
            Self::Conn { .. } => (Kind::Conn, None),
            Self::Run { .. } => bail!("a scenario file has its own blocks"),
        };
        let mut block = scenario::block_defaults(kind, kind.name());
        match self {
            Self::Fanout { subscribers, .. } => {
                block.subscribers = subscribers.unwrap_or(block.subscribers)
            }
            Self::Fanin {
                publishers,
                subscribers,
                filter,
                ..
            } => {
                block.publishers = publishers.unwrap_or(block.publishers);
                block.subscribers = subscribers.unwrap_or(block.subscribers);
                block.filter = filter.clone().unwrap_or(block.filter);
            }
            Self::P2p { pairs, .. } => {
                block.publishers = pairs.unwrap_or(block.publishers);
                block.subscribers = block.publishers;
            }
            Self::Shared {
                publishers,
                subscribers,
                group,
                filter,
                ..
            } => {
                block.publishers = publishers.unwrap_or(block.publishers);
                block.subscribers = subscribers.unwrap_or(block.subscribers);
                block.share_group = group.clone().or(block.share_group);
                block.filter = filter.clone().unwrap_or(block.filter);
            }
            Self::Conn {
                connections,
                connect_rate,
                ..
            } => {
                block.idle = connections.unwrap_or(block.idle);
                block.connect_rate = connect_rate.or(block.connect_rate);
            }
            Self::Run { .. } => {}
        }
        if let Some(traffic) = traffic {
            apply_traffic(&mut block, traffic);
        }
        Ok(block)
    }
}

fn apply_traffic(block: &mut BlockSpec, traffic: &TrafficArgs) {
    block.qos = traffic.qos.unwrap_or(block.qos);
    block.payload_bytes = traffic.payload.unwrap_or(block.payload_bytes);
    block.rate = traffic.rate.unwrap_or(block.rate);
    block.inflight = traffic.inflight.unwrap_or(block.inflight);
    block.connect_rate = traffic.connect_rate.or(block.connect_rate);
    if let Some(topic) = &traffic.topic {
        block.topic = topic.clone();
        // Where subscribers follow the publishers' topic, they follow a custom one too.
        if matches!(block.kind, Kind::Fanout | Kind::P2p) {
            block.filter = topic.clone();
        }
    }
}

fn merge(
    run: &RunArgs,
    file: &FileSettings,
    durations: &FileDurations,
    blocks: Vec<BlockSpec>,
    threads: usize,
) -> RunConfig {
    let only_conn = blocks.iter().all(|b| b.publishers == 0);
    let default_warmup = if only_conn {
        Duration::ZERO
    } else {
        Duration::from_secs(2)
    };
    RunConfig {
        host: run
            .host
            .clone()
            .or_else(|| file.host.clone())
            .unwrap_or_else(|| "127.0.0.1".into()),
        port: run.port.or(file.port).unwrap_or(1883),
        broker_pid: run.broker_pid,
        mqtt_version: run
            .mqtt_version
            .or(file.mqtt_version)
            .unwrap_or(MqttVersion::V311),
        keep_alive_s: run.keep_alive.or(file.keep_alive).unwrap_or(30),
        client_prefix: run
            .client_prefix
            .clone()
            .or_else(|| file.client_prefix.clone())
            .unwrap_or_else(|| "lt-".into()),
        username: run.username.clone(),
        password: run.password.clone(),
        warmup: run.warmup.or(durations.warmup).unwrap_or(default_warmup),
        duration: run
            .duration
            .or(durations.duration)
            .unwrap_or(Duration::from_secs(10)),
        drain: run
            .drain
            .or(durations.drain)
            .unwrap_or(Duration::from_secs(2)),
        connect_timeout: run
            .connect_timeout
            .or(durations.connect_timeout)
            .unwrap_or(Duration::from_secs(10)),
        connect_concurrency: run
            .connect_concurrency
            .or(file.connect_concurrency)
            .unwrap_or(64),
        threads,
        blocks,
    }
}
