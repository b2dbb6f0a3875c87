//! What the shards share of the hooks and events, made once at start-up: the loaded built-in
//! hooks (each shard builds its own chains from them), and one event ring per shard.
//!
//! Loading happens before any shard starts, so a bad password file or schema stops the broker
//! with the file and line, instead of failing on the first CONNECT.

use std::sync::{Arc, Mutex};

use crate::config::{available_cpus, Config, CpuId, SinkConfig};
use crate::hooks::builtin::{BuiltinError, Credentials, TopicTable};
use crate::hooks::exporters::thread_placement::{cpus_left_by_shards, ThreadPlacement};
use crate::hooks::exporters::{
    ExporterCounters, ExporterRuntime, ExporterSettings, JsonLinesSink, KafkaSink,
    NatsJetStreamSink, RedisStreamsSink, RuleSet, RuntimeOptions, Sink, WebhookSink,
};
use crate::hooks::{DecisionHooks, EventKinds, EventRing, EventSink};
use crate::shard::{ShardStats, SystemTopics};

/// The built-in hooks as loaded; [`HookSources::chains`] gives each shard its own.
#[derive(Debug, Default)]
pub(super) struct HookSources {
    credentials: Option<Mutex<Credentials>>,
    topic_table: Option<TopicTable>,
}

impl HookSources {
    /// Reads the files the `[hooks]` section names.
    pub fn load(config: &Config) -> Result<Self, BuiltinError> {
        let hooks = &config.hooks;
        let credentials = match &hooks.credentials {
            Some(files) => Some(Mutex::new(Credentials::load(files)?)),
            None => None,
        };
        let topic_table = if hooks.topics.is_empty() {
            None
        } else {
            // Paths were made absolute (or left relative to the working directory) by the
            // config loader.
            let table = TopicTable::from_config(
                &hooks.topics,
                hooks.unknown_topic,
                std::path::Path::new(""),
            )?;
            for (shadowed, by) in table.shadowed_rules() {
                tracing::warn!(
                    rule = shadowed,
                    by,
                    "hooks.topics[{shadowed}] is never consulted: hooks.topics[{by}] matches \
                     every topic it does and comes first"
                );
            }
            Some(table)
        };
        Ok(Self {
            credentials,
            topic_table,
        })
    }

    /// One shard's hook chains. Each shard gets its own copies: hooks run on the shard
    /// without locks, and the credential cache is per shard.
    pub fn chains(&self) -> DecisionHooks {
        let mut hooks = DecisionHooks::default();
        if let Some(credentials) = &self.credentials {
            let credentials = std::rc::Rc::new(match credentials.lock() {
                Ok(credentials) => credentials.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            });
            hooks
                .register
                .push(Box::new(std::rc::Rc::clone(&credentials)));
            hooks.credentials = Some(credentials);
        }
        if let Some(table) = &self.topic_table {
            hooks.publish.push(Box::new(table.clone()));
            hooks.subscribe.push(Box::new(table.clone()));
        }
        hooks
    }
}

/// Starts the exporter runtime with every configured exporter, draining `rings`; `None` when
/// no exporter is configured. Its threads run on `shard_cpus`' complement in the process's
/// CPU mask when there is one.
pub(super) fn start_exporters(
    config: &Config,
    rings: &[Arc<EventRing>],
    shard_cpus: &[CpuId],
) -> Result<Option<ExporterRuntime>, ExporterSetupError> {
    if config.exporters.is_empty() {
        return Ok(None);
    }
    let mut exporters = Vec::with_capacity(config.exporters.len());
    for exporter in &config.exporters {
        let failed = |problem: String| ExporterSetupError {
            name: exporter.name.clone(),
            problem,
        };
        let sink: Box<dyn Sink> = match &exporter.sink {
            SinkConfig::Webhook(webhook) => {
                Box::new(WebhookSink::new(webhook.clone()).map_err(failed)?)
            }
            SinkConfig::Redis(redis) => Box::new(
                RedisStreamsSink::new(redis.clone()).map_err(|error| failed(error.to_string()))?,
            ),
            SinkConfig::Nats(nats) => Box::new(NatsJetStreamSink::new(nats.clone())),
            SinkConfig::Kafka(kafka) => Box::new(KafkaSink::new(kafka.clone())),
            SinkConfig::JsonLines(jsonl) => Box::new(
                JsonLinesSink::open(jsonl)
                    .map_err(|error| failed(format!("{}: {error}", jsonl.path.display())))?,
            ),
        };
        let rules = if exporter.rules.is_empty() {
            RuleSet::all()
        } else {
            RuleSet::new(&exporter.rules).map_err(|error| failed(error.to_string()))?
        };
        let settings = ExporterSettings {
            name: exporter.name.clone(),
            queue_capacity: exporter.queue_capacity,
            batch_events: exporter.batch_events,
            overflow: exporter.overflow,
            retry: exporter.retry,
            rules,
            flush_interval: exporter.flush_interval,
        };
        exporters.push((settings, sink));
    }
    let placement = ThreadPlacement {
        nice: config.events.exporter_nice,
        cpus: exporter_cpus(&config.events.exporter_cpus, shard_cpus)?,
    };
    let cpus = CpuId::list(&placement.cpus);
    tracing::info!(nice = placement.nice, %cpus, "exporter threads placed");
    let options = RuntimeOptions {
        worker_threads: config.events.worker_threads.get(),
        placement,
        ..RuntimeOptions::default()
    };
    let runtime =
        ExporterRuntime::start_with(rings.to_vec(), exporters, options).map_err(|error| {
            ExporterSetupError {
                name: "runtime".to_owned(),
                problem: format!("cannot start the exporter thread: {error}"),
            }
        })?;
    Ok(Some(runtime))
}

/// The exporter threads' CPUs: the configured ones (each must be in the process's mask), or
/// the mask's CPUs that no shard has.
fn exporter_cpus(
    configured: &[CpuId],
    shard_cpus: &[CpuId],
) -> Result<Vec<CpuId>, ExporterSetupError> {
    // Without a mask to read, nothing can be checked or chosen: the threads are not pinned
    // (the nice value still applies).
    let Ok(available) = available_cpus() else {
        return Ok(Vec::new());
    };
    if let Some(cpu) = configured.iter().find(|cpu| !available.contains(cpu)) {
        return Err(ExporterSetupError {
            name: "runtime".to_owned(),
            problem: format!(
                "events.exporter_cpus: CPU {cpu} is not in this process's CPU affinity mask ({})",
                CpuId::list(&available)
            ),
        });
    }
    if !configured.is_empty() {
        return Ok(configured.to_vec());
    }
    Ok(cpus_left_by_shards(&available, shard_cpus))
}

/// An exporter that cannot start.
#[derive(Debug, thiserror::Error)]
#[error("exporter {name}: {problem}")]
pub struct ExporterSetupError {
    name: String,
    problem: String,
}

/// Logs every exporter's counters (at shutdown).
pub(super) fn log_exporter_counters(counters: &[(String, Arc<ExporterCounters>)]) {
    for (name, counters) in counters {
        let counters = counters.snapshot();
        tracing::info!(exporter = name, ?counters, "exporter counters");
    }
}

/// The event rings, one per shard, what the exporters want recorded, and the exporters'
/// live counters (for the stats topics).
#[derive(Debug, Clone)]
pub(super) struct EventPlumbing {
    pub rings: Vec<Arc<EventRing>>,
    pub wanted: EventKinds,
    pub exporters: Vec<(String, Arc<ExporterCounters>)>,
}

impl EventPlumbing {
    /// One shard's sink (disabled when nothing is wanted) and system-topics exporter.
    pub fn sink_for(&self, shard: usize, config: &Config) -> (EventSink, SystemTopics) {
        let sink = match self.rings.get(shard) {
            Some(ring) if !self.wanted.is_empty() => EventSink::new(
                self.wanted,
                Arc::clone(ring),
                config.events.batch_events.get(),
            ),
            _ => EventSink::disabled(),
        };
        let system = SystemTopics::new(&config.system_topics).unwrap_or_else(|error| {
            // Validation checked the prefix; should it still fail, run without.
            tracing::error!(%error, "system topics disabled");
            SystemTopics::disabled()
        });
        (sink, system)
    }

    /// One shard's `$SYS/` stats topics: its own event counters when its sink records any
    /// kind, and on shard 0 only, the exporters' counters (shared atomics: one publisher is
    /// enough). Nothing when `events.stats_interval_ms` is 0.
    pub fn stats_for(&self, shard: usize, config: &Config, sink: &EventSink) -> ShardStats {
        if config.events.stats_interval.is_none() {
            return ShardStats::disabled();
        }
        let exporters = if shard == 0 { &self.exporters[..] } else { &[] };
        ShardStats::new(config.events.node, shard, sink.wanted(), exporters)
    }
}
