//! The Redis Streams sink: every event becomes one `XADD` entry in SuperMQ's format
//! ([`render_supermq`](super::render_supermq)): connect and disconnect events in the stream
//! `supermq.mqtt`, every other kind in `supermq.mqtt.<event name>`.
//!
//! A batch is one pipelined round trip (`XADD <stream> [MAXLEN ~ n] * field value …` per item)
//! over one multiplexed connection. The connection is made on the first `send`, not in
//! [`RedisStreamsSink::new`], so an exporter can start while Redis is down; after a connection
//! error it is dropped and the next `send` connects again.
//!
//! Retries can duplicate: Redis runs each `XADD` of a pipeline on its own, so when the round
//! trip fails part-way (the connection drops after some entries were stored) the runtime's
//! retry of the whole batch adds those entries again, with new ids. For the same reason a
//! permanent failure (a key that holds something other than a stream, `WRONGTYPE`) leaves the
//! batch's other entries stored.

use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, RedisError};

use super::render_supermq::{FieldValue, SupermqFormat, DEFAULT_STREAM};
use super::{ExportItem, Sink, SinkError, SinkFuture};
use crate::hooks::event::EventKind;

/// Where and how the Redis sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// The stream of connect and disconnect events and the prefix of the others
    /// (`supermq.mqtt`).
    pub stream: String,
    /// Trims every stream to about this many entries (`MAXLEN ~`); 0 never trims.
    pub maxlen: usize,
    /// The `instance` field.
    pub instance: String,
    /// Adds the `reason` field to disconnect events (not in SuperMQ's format).
    pub disconnect_reason: bool,
    /// How long connecting, and each batch's round trip, may take before the batch fails as
    /// retryable.
    pub timeout: Duration,
}

impl RedisConfig {
    /// The defaults for a Redis at `url`: stream `supermq.mqtt`, no trimming, empty instance,
    /// SuperMQ's four fields for disconnects, 5 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: DEFAULT_STREAM.to_owned(),
            maxlen: 0,
            instance: String::new(),
            disconnect_reason: false,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Writes batches of events to Redis Streams.
pub struct RedisStreamsSink {
    client: Client,
    maxlen: usize,
    timeout: Duration,
    format: SupermqFormat,
    /// `<stream>.<event name>` for every kind, by [`EventKind::index`], made once.
    streams: Vec<String>,
    /// `None` until the first send, and again after a connection error.
    connection: Option<MultiplexedConnection>,
}

impl std::fmt::Debug for RedisStreamsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStreamsSink")
            .field("format", &self.format)
            .field("maxlen", &self.maxlen)
            .field("connected", &self.connection.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStreamsSink {
    /// A sink for `config`. Does not connect yet; fails only on a URL Redis cannot use.
    pub fn new(config: RedisConfig) -> Result<Self, SinkError> {
        let client = Client::open(config.url.as_str())
            .map_err(|err| SinkError::Permanent(format!("redis url {:?}: {err}", config.url)))?;
        let streams = EventKind::ALL
            .iter()
            .map(|kind| format!("{}.{}", config.stream, kind.name()))
            .collect();
        Ok(Self {
            client,
            streams,
            maxlen: config.maxlen,
            timeout: config.timeout,
            format: SupermqFormat {
                stream: config.stream,
                instance: config.instance,
                disconnect_reason: config.disconnect_reason,
            },
            connection: None,
        })
    }

    /// The pipeline for one batch: one `XADD` per item, in order.
    fn pipeline(&self, batch: &[ExportItem]) -> ::redis::Pipeline {
        let mut pipeline = ::redis::pipe();
        for item in batch {
            let rendered = self.format.render(item);
            let stream = match rendered.suffix {
                None => self.format.stream.as_str(),
                Some(_) => self.streams[item.event.kind.index()].as_str(),
            };
            let command = pipeline.cmd("XADD").arg(stream);
            if self.maxlen > 0 {
                command.arg("MAXLEN").arg("~").arg(self.maxlen);
            }
            command.arg("*");
            for (name, value) in &rendered.fields {
                command.arg(*name);
                // Numbers are written as decimal text straight into the command's buffer.
                match value {
                    FieldValue::Int(number) => command.arg(*number),
                    other => command.arg(other.to_text().as_ref()),
                };
            }
        }
        pipeline
    }

    async fn connection(&mut self) -> Result<MultiplexedConnection, SinkError> {
        if let Some(connection) = &self.connection {
            // A clone shares the one socket; it is how the crate hands a connection out.
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|err| SinkError::Retryable(format!("redis connect: {err}")))?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    async fn send_batch(&mut self, batch: &[ExportItem]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let pipeline = self.pipeline(batch);
        let mut connection = self.connection().await?;
        match pipeline
            .query_async::<Vec<::redis::Value>>(&mut connection)
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => Err(self.classify(err)),
        }
    }

    /// What a failed round trip means for the batch, and for the connection.
    fn classify(&mut self, err: RedisError) -> SinkError {
        let message = format!("redis XADD: {err}");
        match err.into_server_errors() {
            // Some key holds something that is not a stream: no retry can fix that (the
            // batch's other entries were stored all the same).
            Some(errors) if errors.iter().any(|(_, error)| error.code() == "WRONGTYPE") => {
                SinkError::Permanent(message)
            }
            // Any other server reply (OOM, LOADING, READONLY, …) may pass; the connection is
            // still good.
            Some(_) => SinkError::Retryable(message),
            // No server reply at all: the connection is broken or timed out, and a multiplexed
            // connection does not come back by itself.
            None => {
                self.connection = None;
                SinkError::Retryable(message)
            }
        }
    }
}

impl Sink for RedisStreamsSink {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn send<'a>(&'a mut self, batch: &'a [ExportItem]) -> SinkFuture<'a> {
        Box::pin(self.send_batch(batch))
    }
}
