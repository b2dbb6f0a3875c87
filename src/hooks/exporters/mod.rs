//! Exporters: what carries the shards' events to the rest of a company's systems.
//!
//! The exporter runtime (a thread of its own with a tokio runtime, off the shards) drains every
//! shard's [`EventRing`](super::EventRing), wraps each event in an `Arc` once, and offers it to
//! every exporter whose rules match it. Each exporter has its own bounded queue (with an
//! overflow policy and counters), batch size and retry with backoff, and hands batches to its
//! [`Sink`]: one implementation per destination, one file per sink.

pub mod counters;
pub mod jsonl;
pub mod queue;
pub mod render_webhook;
pub mod retry;
pub mod rules;
pub mod runtime;
pub mod thread_placement;
pub mod webhook;

pub use counters::{CountersSnapshot, ExporterCounters};
pub use jsonl::{JsonLinesConfig, JsonLinesSink};
pub use kafka::{KafkaConfig, KafkaSink, TopicMode};
pub use nats::{NatsConfig, NatsJetStreamSink};
pub use queue::{BoundedQueue, Overflow, PushOutcome};
pub use redis::{RedisConfig, RedisStreamsSink};
pub use retry::{Backoff, RetryPolicy};
pub use rules::{RuleConfig, RuleError, RuleSet};
pub use runtime::{ExporterRuntime, ExporterSettings, RuntimeOptions};
pub use webhook::{WebhookConfig, WebhookSink};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::event::Event;

pub mod kafka;
pub mod nats;
pub mod redis;
pub mod render_supermq;

/// One event as an exporter sends it: the shared event and what the matching rule adds.
#[derive(Debug, Clone)]
pub struct ExportItem {
    /// The fact.
    pub event: Arc<Event>,
    /// The action name the rule gives it (the event's name unless the rule renames it, as
    /// `client_connected_2` in the web-hook document).
    pub action: Arc<str>,
    /// Where the rule sends it instead of the exporter's default destinations (the web-hook
    /// rule's `urls`); `None` means the defaults.
    pub destinations: Option<Arc<[String]>>,
}

/// Why a sink could not take a batch.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Worth trying again later (the sink is down, timed out, or refused for now).
    #[error("{0}")]
    Retryable(String),
    /// Trying again would fail the same way (the sink rejected the data itself).
    #[error("{0}")]
    Permanent(String),
}

/// A future a sink returns.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// A destination for batches of events. Runs on the exporter runtime, never on a shard.
pub trait Sink: Send + 'static {
    /// A short name for logs and counters (`redis`, `webhook` …).
    fn kind(&self) -> &'static str;

    /// Delivers one batch, in order. An error means none of it is known delivered: the runtime
    /// retries the whole batch (sinks whose servers may store part of a batch say in their
    /// docs whether a retry can duplicate).
    fn send<'a>(&'a mut self, batch: &'a [ExportItem]) -> SinkFuture<'a>;
}
