//! The command line: subcommands for each scenario, `run FILE` for a scenario file and
//! `compare` for several brokers. Only the shape of the flags lives here; `resolve` turns them
//! into a validated configuration.
//!
//! Flags that describe a block's traffic (QoS, payload, rate...) exist only on the
//! single-scenario subcommands; a file says them per block.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::{MqttVersion, Rate};
use crate::units::parse_duration;

/// Reproducible load tests for any MQTT broker.
#[derive(Debug, Parser)]
#[command(name = "starling-loadtest", version, about, long_about = None)]
pub struct Cli {
    /// Tokio worker threads. 1 (the default) keeps the harness on one core when pinned with
    /// `taskset -c N`.
    #[arg(long, global = true, default_value_t = 1)]
    pub threads: usize,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one scenario against one broker.
    #[command(flatten)]
    Scenario(Scenario),
    /// Run the same scenario against several brokers, one after another, and print them side
    /// by side with ratios against the first.
    Compare(CompareArgs),
}

/// The scenarios.
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// One publisher, S subscribers on one topic.
    Fanout {
        /// Subscribers [default: 10].
        #[arg(long)]
        subscribers: Option<u32>,
        #[command(flatten)]
        traffic: TrafficArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// N publishers (a topic each), subscribers on a wildcard.
    Fanin {
        /// Publishers [default: 10].
        #[arg(long)]
        publishers: Option<u32>,
        /// Subscribers, each on the wildcard [default: 1].
        #[arg(long)]
        subscribers: Option<u32>,
        /// Subscription filter [default: bench/fanin/+].
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        traffic: TrafficArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// N publisher/subscriber pairs, a topic each.
    P2p {
        /// Pairs [default: 10].
        #[arg(long)]
        pairs: Option<u32>,
        #[command(flatten)]
        traffic: TrafficArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// N publishers, a `$share` group of M subscribers.
    Shared {
        /// Publishers [default: 4].
        #[arg(long)]
        publishers: Option<u32>,
        /// Subscribers in the group [default: 4].
        #[arg(long)]
        subscribers: Option<u32>,
        /// Share group name [default: bench].
        #[arg(long)]
        group: Option<String>,
        /// Filter inside the group [default: bench/shared/+].
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        traffic: TrafficArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Open C connections at a rate and hold them: connect rate, handshake latency, broker
    /// memory per connection.
    Conn {
        /// Connections [default: 1000].
        #[arg(long)]
        connections: Option<u32>,
        /// New connections per second [default: 1000].
        #[arg(long)]
        connect_rate: Option<f64>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Run a TOML scenario file: several blocks at once against one broker.
    Run {
        /// The scenario file (see loadtest/scenarios/iot-mixed.toml).
        file: PathBuf,
        #[command(flatten)]
        run: RunArgs,
    },
}

/// Traffic of a single-scenario block.
#[derive(Debug, Clone, Args)]
pub struct TrafficArgs {
    /// QoS of publishes and subscriptions: 0, 1 or 2 [default: 0].
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: Option<u8>,
    /// Payload bytes, at least 24 [default: 64].
    #[arg(long)]
    pub payload: Option<usize>,
    /// Offered messages per second over all publishers, or `max` [default: 1000].
    #[arg(long, value_parser = Rate::parse)]
    pub rate: Option<Rate>,
    /// Unacknowledged QoS 1/2 publishes per publisher [default: 64].
    #[arg(long)]
    pub inflight: Option<u16>,
    /// Topic pattern; `{id}` is the publisher's index [default: per scenario].
    #[arg(long)]
    pub topic: Option<String>,
    /// New connections per second during setup [default: as fast as --connect-concurrency
    /// allows].
    #[arg(long)]
    pub connect_rate: Option<f64>,
}

/// Settings of the whole run.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Broker host [default: 127.0.0.1].
    #[arg(long)]
    pub host: Option<String>,
    /// Broker port [default: 1883].
    #[arg(long)]
    pub port: Option<u16>,
    /// Broker process id: sample its CPU time and RSS from /proc.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// MQTT version: 3.1.1 or 5.0 [default: 3.1.1].
    #[arg(long = "mqtt-version", value_parser = MqttVersion::parse)]
    pub mqtt_version: Option<MqttVersion>,
    /// Measured time, e.g. 10s [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Publishing time before measuring [default: 2s; 0 for conn].
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Longest wait after publishing for outstanding deliveries and acks [default: 2s].
    #[arg(long, value_parser = parse_duration)]
    pub drain: Option<Duration>,
    /// Keep alive seconds [default: 30].
    #[arg(long)]
    pub keep_alive: Option<u16>,
    /// Client id prefix [default: lt-].
    #[arg(long)]
    pub client_prefix: Option<String>,
    /// User name for CONNECT.
    #[arg(long)]
    pub username: Option<String>,
    /// Password for CONNECT.
    #[arg(long)]
    pub password: Option<String>,
    /// Timeout of each setup step: TCP connect, CONNACK, SUBACK [default: 10s].
    #[arg(long, value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,
    /// Handshakes in progress at once during setup [default: 64].
    #[arg(long)]
    pub connect_concurrency: Option<u32>,
    /// Write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report with plots to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

/// `compare` arguments.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// A broker: NAME=HOST:PORT[,PID]. Give it once per broker; ratios are against the first.
    #[arg(long = "broker", required = true, value_parser = BrokerTarget::parse)]
    pub brokers: Vec<BrokerTarget>,
    /// The scenario to run against each.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// One broker of compare mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerTarget {
    /// Name in the output.
    pub name: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Process id for CPU and memory.
    pub pid: Option<u32>,
}

impl BrokerTarget {
    /// Parses `NAME=HOST:PORT[,PID]`.
    pub fn parse(text: &str) -> Result<Self> {
        let usage = || format!("invalid broker {text:?}: use NAME=HOST:PORT[,PID]");
        let (name, rest) = text.split_once('=').with_context(usage)?;
        let (address, pid) = match rest.split_once(',') {
            Some((address, pid)) => (address, Some(pid.trim().parse().with_context(usage)?)),
            None => (rest, None),
        };
        let (host, port) = address.rsplit_once(':').with_context(usage)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if name.is_empty() || host.is_empty() {
            bail!(usage());
        }
        Ok(Self {
            name: name.to_owned(),
            host: host.to_owned(),
            port: port.parse().with_context(usage)?,
            pid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("starling-loadtest").chain(args.iter().copied()))
            .unwrap()
    }

    fn config(args: &[&str]) -> RunConfig {
        let cli = parse(args);
        match cli.command {
            Command::Scenario(scenario) => scenario.resolve(cli.threads).unwrap(),
            Command::Compare(_) => panic!("not a scenario"),
        }
    }

    #[test]
    fn fanout_flags_resolve() {
        let config = config(&[
            "fanout",
            "--subscribers",
            "5",
            "--qos",
            "1",
            "--rate",
            "max",
            "--port",
            "1884",
            "--duration",
            "3s",
        ]);
        let block = &config.blocks[0];
        assert_eq!((block.publishers, block.subscribers, block.qos), (1, 5, 1));
        assert_eq!(block.rate, Rate::Max);
        assert_eq!(config.port, 1884);
        assert_eq!(config.duration, Duration::from_secs(3));
        assert_eq!(config.threads, 1);
    }

    #[test]
    fn p2p_topic_applies_to_both_sides() {
        let config = config(&["--threads", "2", "p2p", "--pairs", "4", "--topic", "x/{id}"]);
        let block = &config.blocks[0];
        assert_eq!((block.publishers, block.subscribers), (4, 4));
        assert_eq!(block.filter, "x/{id}");
        assert_eq!(config.threads, 2);
    }

    #[test]
    fn conn_has_no_warmup_by_default() {
        let config = config(&["conn", "--connections", "100"]);
        assert_eq!(config.blocks[0].idle, 100);
        assert_eq!(config.warmup, Duration::ZERO);
    }

    #[test]
    fn shipped_scenario_resolves_with_overrides() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/iot-mixed.toml");
        let config = config(&["run", file, "--port", "1999", "--duration", "1s"]);
        assert_eq!(config.port, 1999);
        assert_eq!(config.duration, Duration::from_secs(1));
        assert_eq!(config.warmup, Duration::from_secs(5), "from the file");
        assert_eq!(config.client_prefix, "iot-");
        assert!(config.blocks.len() >= 5);
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert!(Cli::try_parse_from(["x", "fanout", "--qos", "3"]).is_err());
        assert!(Cli::try_parse_from(["x", "fanout", "--rate", "fast"]).is_err());
        let cli = parse(&["fanout", "--payload", "8"]);
        let Command::Scenario(scenario) = cli.command else {
            panic!()
        };
        let error = scenario.resolve(1).unwrap_err().to_string();
        assert!(error.contains("payload"), "{error}");
    }

    #[test]
    fn compare_parses_brokers_and_scenario() {
        let cli = parse(&[
            "compare",
            "--broker",
            "a=127.0.0.1:1883,42",
            "--broker",
            "b=localhost:1884",
            "fanin",
            "--publishers",
            "3",
        ]);
        let Command::Compare(compare) = cli.command else {
            panic!()
        };
        assert_eq!(
            compare.brokers[0],
            BrokerTarget {
                name: "a".into(),
                host: "127.0.0.1".into(),
                port: 1883,
                pid: Some(42)
            }
        );
        assert_eq!(compare.brokers[1].pid, None);
        assert!(matches!(
            compare.scenario,
            Scenario::Fanin {
                publishers: Some(3),
                ..
            }
        ));
        assert!(BrokerTarget::parse("nameless:1883").is_err());
    }
}
