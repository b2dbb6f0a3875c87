//! The Kafka sink: every event becomes one record whose value is the flat JSON object of
//! SuperMQ's format ([`render_supermq`](super::render_supermq)) and whose key is the client id
//! of the event's client (the subscriber's for deliveries and acks, the publisher's for
//! publishes), with the event's time as the record timestamp.
//!
//! Topics: one for everything ([`TopicMode::Single`]), or SuperMQ's layout
//! ([`TopicMode::PerEvent`]): connect and disconnect events in `<prefix>` (`supermq.mqtt`),
//! every other kind in `<prefix>.<event name>`.
//!
//! The partition of a record is Kafka's default for keyed records (murmur2 of the key, sign
//! bit cleared, modulo the topic's partition count), so one client's events stay in order in
//! one partition, and land where a Java producer would put them; a one-partition topic takes
//! everything in partition 0. A batch is split by topic and partition, keeping its order, and
//! each part is produced as one request.
//!
//! The client is pure Rust (`rskafka`, no librdkafka). It connects on the first `send`, so an
//! exporter can start while Kafka is down, and after a retryable failure it forgets its
//! connections and topic metadata and starts again from the bootstrap brokers. With
//! `create_topics` a topic missing from the cluster's metadata is created on first use with
//! `partitions` partitions; an existing topic's partition count is read from the metadata. A
//! failed part fails the batch as retryable; the parts already produced stay, so the
//! runtime's retry of the whole batch can duplicate them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use rskafka::BackoffConfig;

use super::render_supermq::{SupermqFormat, DEFAULT_STREAM};
use super::{ExportItem, Sink, SinkError, SinkFuture};

/// Which topic an event goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicMode {
    /// Every event in this topic.
    Single(String),
    /// Connect and disconnect events in `prefix`, every other kind in `prefix.<event name>`.
    PerEvent {
        /// The topic of connect and disconnect events (`supermq.mqtt`).
        prefix: String,
    },
}

/// Where and how the Kafka sink produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port` each.
    pub bootstrap: Vec<String>,
    /// Topic layout.
    pub topic_mode: TopicMode,
    /// Creates missing topics on first use.
    pub create_topics: bool,
    /// Partitions of the topics it creates (at least 1).
    pub partitions: i32,
    /// Replication factor of the topics it creates (at least 1).
    pub replication_factor: i16,
    /// The `instance` field.
    pub instance: String,
    /// Adds the `reason` field to disconnect events (not in SuperMQ's format).
    pub disconnect_reason: bool,
    /// How long one request (with the client's own retries) may take before the batch fails
    /// as retryable.
    pub timeout: Duration,
}

impl KafkaConfig {
    /// The defaults for these brokers: SuperMQ's per-event topics under `supermq.mqtt`,
    /// created when missing with one partition and one replica, empty instance, SuperMQ's four
    /// fields for disconnects, 10 s timeout.
    pub fn new(bootstrap: Vec<String>) -> Self {
        Self {
            bootstrap,
            topic_mode: TopicMode::PerEvent {
                prefix: DEFAULT_STREAM.to_owned(),
            },
            create_topics: true,
            partitions: 1,
            replication_factor: 1,
            instance: String::new(),
            disconnect_reason: false,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Produces batches of events to Kafka.
pub struct KafkaSink {
    config: KafkaConfig,
    format: SupermqFormat,
    /// `None` until the first send that reaches a broker.
    client: Option<Arc<Client>>,
    /// Partition count of every topic used so far.
    partitions: HashMap<String, i32>,
    /// One client per topic and partition used so far.
    producers: HashMap<(String, i32), PartitionClient>,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("config", &self.config)
            .field("connected", &self.client.is_some())
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

/// Kafka's murmur2 (as `org.apache.kafka.common.utils.Utils.murmur2`), the hash of its
/// default partitioner.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Kafka takes the length as a Java int; a key over 2 GiB cannot reach here.
    let mut h = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if let Some(first) = rest.first() {
        h ^= u32::from(*first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives `key` among `partitions`.
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 1 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % partitions
}

impl KafkaSink {
    /// A sink for `config`. Does not connect yet.
    pub fn new(config: KafkaConfig) -> Self {
        let prefix = match &config.topic_mode {
            TopicMode::Single(topic) | TopicMode::PerEvent { prefix: topic } => topic.clone(),
        };
        let format = SupermqFormat {
            stream: prefix,
            instance: config.instance.clone(),
            disconnect_reason: config.disconnect_reason,
        };
        Self {
            config,
            format,
            client: None,
            partitions: HashMap::new(),
            producers: HashMap::new(),
        }
    }

    /// The topic of one rendered event.
    fn topic(&self, rendered: &super::render_supermq::Rendered<'_>) -> String {
        match &self.config.topic_mode {
            TopicMode::Single(topic) => topic.clone(),
            TopicMode::PerEvent { prefix } => rendered.destination(prefix),
        }
    }

    async fn client(&mut self) -> Result<Arc<Client>, SinkError> {
        if let Some(client) = &self.client {
            return Ok(Arc::clone(client));
        }
        // rskafka retries forever unless given a deadline; the runtime does the retrying.
        let backoff = BackoffConfig {
            deadline: Some(self.config.timeout),
            ..BackoffConfig::default()
        };
        let build = ClientBuilder::new(self.config.bootstrap.clone())
            .client_id("starling")
            .backoff_config(backoff)
            .build();
        let client = tokio::time::timeout(self.config.timeout, build)
            .await
            .map_err(|_| SinkError::Retryable("kafka connect: timed out".to_owned()))?
            .map_err(|err| SinkError::Retryable(format!("kafka connect: {err}")))?;
        let client = Arc::new(client);
        self.client = Some(Arc::clone(&client));
        Ok(client)
    }

    /// The partition count of `topic`, creating the topic when it is missing and allowed.
    async fn partition_count(&mut self, topic: &str) -> Result<i32, SinkError> {
        if let Some(count) = self.partitions.get(topic) {
            return Ok(*count);
        }
        let client = self.client().await?;
        let timeout = self.config.timeout;
        let topics = tokio::time::timeout(timeout, client.list_topics())
            .await
            .map_err(|_| SinkError::Retryable("kafka metadata: timed out".to_owned()))?
            .map_err(|err| classify("kafka metadata", err))?;
        let known = topics
            .iter()
            .find(|known| known.name == topic)
            .map(|known| known.partitions.len());
        let count = match known {
            Some(count) => i32::try_from(count).unwrap_or(i32::MAX),
            None if self.config.create_topics => {
                let partitions = self.config.partitions.max(1);
                let replication = self.config.replication_factor.max(1);
                let controller = client
                    .controller_client()
                    .map_err(|err| classify("kafka controller", err))?;
                let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
                let created = tokio::time::timeout(
                    timeout,
                    controller.create_topic(topic, partitions, replication, timeout_ms),
                )
                .await
                .map_err(|_| SinkError::Retryable("kafka create topic: timed out".to_owned()))?;
                match created {
                    Ok(()) => {}
                    // Another producer made it first: just as good.
                    Err(KafkaError::ServerError {
                        protocol_error: ProtocolError::TopicAlreadyExists,
                        ..
                    }) => {}
                    Err(err) => return Err(classify(&format!("kafka create topic {topic}"), err)),
                }
                partitions
            }
            None => {
                return Err(SinkError::Retryable(format!(
                    "kafka topic {topic} does not exist and create_topics is off"
                )))
            }
        };
        let count = count.max(1);
        self.partitions.insert(topic.to_owned(), count);
        Ok(count)
    }

    async fn producer(&mut self, topic: &str, partition: i32) -> Result<(), SinkError> {
        let key = (topic.to_owned(), partition);
        if self.producers.contains_key(&key) {
            return Ok(());
        }
        let client = self.client().await?;
        let producer = tokio::time::timeout(
            self.config.timeout,
            client.partition_client(topic, partition, UnknownTopicHandling::Retry),
        )
        .await
        .map_err(|_| SinkError::Retryable(format!("kafka {topic}/{partition}: timed out")))?
        .map_err(|err| classify(&format!("kafka {topic}/{partition}"), err))?;
        self.producers.insert(key, producer);
        Ok(())
    }

    /// The batch split by topic and partition, in order of first appearance, each part in
    /// batch order.
    async fn partition_batch(
        &mut self,
        batch: &[ExportItem],
    ) -> Result<Vec<((String, i32), Vec<Record>)>, SinkError> {
        let mut parts: Vec<((String, i32), Vec<Record>)> = Vec::new();
        for item in batch {
            let (topic, value) = {
                let rendered = self.format.render(item);
                (self.topic(&rendered), rendered.to_json())
            };
            let key = item.event.client.client_id.as_str().as_bytes().to_vec();
            let partition = partition_for(&key, self.partition_count(&topic).await?);
            let record = Record {
                key: Some(key),
                value: Some(value),
                headers: Default::default(),
                timestamp: chrono::DateTime::from_timestamp_nanos(
                    i64::try_from(item.event.at_ns).unwrap_or(i64::MAX),
                ),
            };
            let destination = (topic, partition);
            match parts.iter_mut().find(|(known, _)| *known == destination) {
                Some((_, records)) => records.push(record),
                None => parts.push((destination, vec![record])),
            }
        }
        Ok(parts)
    }

    async fn send_batch(&mut self, batch: &[ExportItem]) -> Result<(), SinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let result = self.produce(batch).await;
        if matches!(result, Err(SinkError::Retryable(_))) {
            // Partition counts may have changed and brokers may have gone or moved: start
            // again from the bootstrap brokers on the next send.
            self.partitions.clear();
            self.producers.clear();
            self.client = None;
        }
        result
    }

    async fn produce(&mut self, batch: &[ExportItem]) -> Result<(), SinkError> {
        for ((topic, partition), records) in self.partition_batch(batch).await? {
            self.producer(&topic, partition).await?;
            let Some(producer) = self.producers.get(&(topic.clone(), partition)) else {
                return Err(SinkError::Retryable(format!(
                    "kafka {topic}/{partition}: no producer"
                )));
            };
            tokio::time::timeout(
                self.config.timeout,
                producer.produce(records, Compression::NoCompression),
            )
            .await
            .map_err(|_| SinkError::Retryable(format!("kafka {topic}/{partition}: timed out")))?
            .map_err(|err| classify(&format!("kafka produce {topic}/{partition}"), err))?;
        }
        Ok(())
    }
}

/// What a client error means for the batch.
fn classify(context: &str, err: KafkaError) -> SinkError {
    match &err {
        // The broker refuses records this big (or a name this bad); it will next time too.
        KafkaError::ServerError {
            protocol_error:
                ProtocolError::MessageTooLarge
                | ProtocolError::RecordListTooLarge
                | ProtocolError::InvalidTopicException,
            ..
        } => SinkError::Permanent(format!("{context}: {err}")),
        _ => SinkError::Retryable(format!("{context}: {err}")),
    }
}

impl Sink for KafkaSink {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    fn send<'a>(&'a mut self, batch: &'a [ExportItem]) -> SinkFuture<'a> {
        Box::pin(self.send_batch(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // The vectors of Kafka's own UtilsTest.
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), expected, "{input}");
        }
    }

    #[test]
    fn partitions_are_stable_and_in_range() {
        assert_eq!(partition_for(b"anything", 1), 0);
        assert_eq!(partition_for(b"anything", 0), 0);
        for key in [
            &b"a"[..],
            b"client-1",
            b"76a58221-e319-492a-be3e-b3d15631e92a",
        ] {
            let partition = partition_for(key, 7);
            assert!((0..7).contains(&partition));
            assert_eq!(partition, partition_for(key, 7));
        }
        // "foobar" hashes to -790332482; cleared of its sign bit that is 1357151166.
        assert_eq!(partition_for(b"foobar", 10), 1_357_151_166 % 10);
    }
}
