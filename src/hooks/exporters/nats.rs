//! The NATS JetStream sink: every event becomes one JetStream message whose body is the flat
//! JSON object of SuperMQ's format ([`render_supermq`](super::render_supermq)). Connect and
//! disconnect events go to the subject `events.supermq.mqtt`, as SuperMQ's MQTT adapter
//! publishes them; every other kind to `events.supermq.mqtt.<event name>`.
//!
//! A batch is published as a pipeline: every message is sent, then every acknowledgement is
//! awaited, so a batch costs about one round trip instead of one per event. A missing or
//! negative acknowledgement fails the batch as retryable; the messages that were acknowledged
//! stay stored, so a retry of the whole batch can duplicate them (JetStream's `Nats-Msg-Id`
//! deduplication is not used: the events carry no id of their own).
//!
//! The connection is made on the first `send`, so an exporter can start while NATS is down.
//! The client reconnects by itself after that; while it is away, acknowledgements time out
//! and batches fail as retryable. With `create_stream` the stream is created, when absent, on
//! connecting, with subjects `events.supermq.mqtt` and `events.supermq.mqtt.>`; an existing
//! stream is used as it is, and must cover those subjects (or JetStream answers "no
//! responders", a retryable failure).

use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;

use super::render_supermq::SupermqFormat;
use super::{ExportItem, Sink, SinkError, SinkFuture};

/// SuperMQ's subject for MQTT connect and disconnect events.
pub const DEFAULT_SUBJECT: &str = "events.supermq.mqtt";

/// The stream name used when the config gives none.
pub const DEFAULT_STREAM_NAME: &str = "SUPERMQ_EVENTS";

/// Where and how the NATS sink publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// `nats://[user:password@]host:port`.
    pub url: String,
    /// The subject of connect and disconnect events and the prefix of the others
    /// (`events.supermq.mqtt`).
    pub subject: String,
    /// The JetStream stream that stores the subjects (`SUPERMQ_EVENTS`).
    pub stream_name: String,
    /// Creates the stream when it does not exist.
    pub create_stream: bool,
    /// The `instance` field.
    pub instance: String,
    /// Adds the `reason` field to disconnect events (not in SuperMQ's format).
    pub disconnect_reason: bool,
    /// How long connecting, and each batch (publishing and every acknowledgement), may take
    /// before the batch fails as retryable.
    pub timeout: Duration,
}

impl NatsConfig {
    /// The defaults for a NATS server at `url`: subject `events.supermq.mqtt`, stream
    /// `SUPERMQ_EVENTS` created when absent, empty instance, SuperMQ's four fields for
    /// disconnects, 5 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            subject: DEFAULT_SUBJECT.to_owned(),
            stream_name: DEFAULT_STREAM_NAME.to_owned(),
            create_stream: true,
            instance: String::new(),
            disconnect_reason: false,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Publishes batches of events to NATS JetStream.
pub struct NatsJetStreamSink {
    config: NatsConfig,
    format: SupermqFormat,
    /// `None` until the first send that reaches the server.
    jetstream: Option<jetstream::Context>,
}

impl std::fmt::Debug for NatsJetStreamSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsJetStreamSink")
            .field("config", &self.config)
            .field("connected", &self.jetstream.is_some())
            .finish()
    }
}

impl NatsJetStreamSink {
    /// A sink for `config`. Does not connect yet.
    pub fn new(config: NatsConfig) -> Self {
        let format = SupermqFormat {
            stream: config.subject.clone(),
            instance: config.instance.clone(),
            disconnect_reason: config.disconnect_reason,
        };
        Self {
            config,
            format,
            jetstream: None,
        }
    }

    /// The subjects the stream must cover.
    pub fn stream_subjects(&self) -> Vec<String> {
        vec![
            self.config.subject.clone(),
            format!("{}.>", self.config.subject),
        ]
    }

    async fn context(&mut self) -> Result<jetstream::Context, SinkError> {
        if let Some(context) = &self.jetstream {
            return Ok(context.clone());
        }
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(self.config.timeout)
            .connect(self.config.url.as_str())
            .await
            .map_err(|err| SinkError::Retryable(format!("nats connect: {err}")))?;
        let mut context = jetstream::new(client);
        context.set_timeout(self.config.timeout);
        if self.config.create_stream {
            context
                .get_or_create_stream(stream::Config {
                    name: self.config.stream_name.clone(),
                    subjects: self.stream_subjects(),
                    ..stream::Config::default()
                })
                .await
                .map_err(|err| {
                    SinkError::Retryable(format!(
                        "nats stream {:?}: {err}",
                        self.config.stream_name
                    ))
                })?;
        }
        self.jetstream = Some(context.clone());
        Ok(context)
    }

    async fn send_batch(&mut self, batch: &[ExportItem]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let context = self.context().await?;
        // One bound for the whole batch: each acknowledgement's own timeout starts only when
        // it is awaited, so awaiting them one after another could otherwise take the timeout
        // once per message.
        tokio::time::timeout(self.config.timeout, self.publish_all(&context, batch))
            .await
            .map_err(|_| SinkError::Retryable("nats publish: batch timed out".to_owned()))?
    }

    async fn publish_all(
        &self,
        context: &jetstream::Context,
        batch: &[ExportItem],
    ) -> Result<(), SinkError> {
        let mut acks = Vec::with_capacity(batch.len());
        for item in batch {
            let rendered = self.format.render(item);
            let subject = rendered.destination(&self.config.subject);
            let ack = context
                .publish(subject, Bytes::from(rendered.to_json()))
                .await
                .map_err(publish_error)?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(publish_error)?;
        }
        Ok(())
    }
}

fn publish_error(err: jetstream::context::PublishError) -> SinkError {
    match err.kind() {
        // The server refuses a message this big; so it will next time.
        PublishErrorKind::MaxPayloadExceeded => {
            SinkError::Permanent(format!("nats publish: {err}"))
        }
        _ => SinkError::Retryable(format!("nats publish: {err}")),
    }
}

impl Sink for NatsJetStreamSink {
    fn kind(&self) -> &'static str {
        "nats"
    }

    fn send<'a>(&'a mut self, batch: &'a [ExportItem]) -> SinkFuture<'a> {
        Box::pin(self.send_batch(batch))
    }
}
