//! Turns a [`RunConfig`] into the concrete list of connections to open (client id, job, place
//! in its block's connect schedule) and the delivery expectations: which publishers each
//! tracker (a subscriber, or a `$share` group) should receive.
//!
//! Expectations come from matching every publisher's topic against every subscription filter
//! before the run, across blocks, so overlapping blocks are counted correctly. Pure
//! computation: nothing here connects or spawns.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use starling::protocol::TopicName;

use crate::config::{BlockSpec, Rate, RunConfig};
use crate::publisher::PublisherSpec;
use crate::topic;

/// What a connection does once set up.
#[derive(Debug, Clone)]
pub enum Job {
    /// Publishes.
    Publisher(PublisherSpec),
    /// Subscribes to `filter` and reports to tracker `tracker`.
    Subscriber {
        /// Tracker id.
        tracker: usize,
        /// Full filter, `$share/...` included.
        filter: String,
    },
    /// Only holds the connection.
    Idle,
}

/// One connection to open.
#[derive(Debug, Clone)]
pub struct ConnectionPlan {
    /// Block index.
    pub block: usize,
    /// Client id.
    pub client_id: String,
    /// Position in the block's connect schedule.
    pub slot: u32,
    /// Its job.
    pub job: Job,
}

/// One delivery tracker: who it is and which publishers it should hear.
#[derive(Debug, Clone)]
pub struct TrackerPlan {
    /// Block of its subscriber(s).
    pub block: usize,
    /// Publisher ids whose every measured message it should receive once.
    pub publishers: Vec<u32>,
}

/// One publisher, for per-publisher reporting.
#[derive(Debug, Clone)]
pub struct PublisherInfo {
    /// Block index.
    pub block: usize,
    /// Client id.
    pub client_id: String,
    /// Topic.
    pub topic: String,
}

/// Everything the runner opens and checks.
#[derive(Debug, Default)]
pub struct Plan {
    /// Connections, in block order; within a block subscribers first, so they are ready when
    /// the publishers are.
    pub connections: Vec<ConnectionPlan>,
    /// Trackers by id.
    pub trackers: Vec<TrackerPlan>,
    /// Publishers by id.
    pub publishers: Vec<PublisherInfo>,
}

impl Plan {
    /// Builds the plan for `config` (already validated).
    pub fn build(config: &RunConfig) -> Result<Self> {
        let mut plan = Self::default();
        let mut filters: Vec<(usize, String)> = Vec::new(); // tracker id, filter
        for (block_index, block) in config.blocks.iter().enumerate() {
            plan.add_block(config, block_index, block, &mut filters)?;
        }
        plan.match_publishers(&filters);
        plan.count_fans();
        Ok(plan)
    }

    fn add_block(
        &mut self,
        config: &RunConfig,
        block_index: usize,
        block: &BlockSpec,
        filters: &mut Vec<(usize, String)>,
    ) -> Result<()> {
        let prefix = format!("{}{}-", config.client_prefix, block.name);
        let mut slot = 0u32;
        let group_tracker = block.share_group.as_ref().map(|_| {
            self.trackers.push(TrackerPlan {
                block: block_index,
                publishers: Vec::new(),
            });
            self.trackers.len() - 1
        });
        for index in 0..block.subscribers {
            let client_id = format!("{prefix}s{index}");
            let tracker = group_tracker.unwrap_or_else(|| {
                self.trackers.push(TrackerPlan {
                    block: block_index,
                    publishers: Vec::new(),
                });
                self.trackers.len() - 1
            });
            let filter = topic::subscription_filter(block, index);
            filters.push((tracker, filter.clone()));
            self.push(
                block_index,
                client_id,
                &mut slot,
                Job::Subscriber { tracker, filter },
            );
        }
        let zero_payload = Bytes::from(vec![0u8; block.payload_bytes]);
        let per_publisher = match block.rate {
            Rate::PerSecond(rate) => Rate::PerSecond(rate / f64::from(block.publishers.max(1))),
            Rate::Max => Rate::Max,
        };
        for index in 0..block.publishers {
            let client_id = format!("{prefix}p{index}");
            let topic_text = topic::expand(&block.topic, index);
            let topic = TopicName::new(&topic_text)
                .with_context(|| format!("block {}: invalid topic {topic_text:?}", block.name))?;
            let id = u32::try_from(self.publishers.len()).context("too many publishers")?;
            self.publishers.push(PublisherInfo {
                block: block_index,
                client_id: client_id.clone(),
                topic: topic_text,
            });
            let spec = PublisherSpec {
                id,
                block: block_index,
                topic,
                qos: block.qos(),
                zero_payload: zero_payload.clone(),
                rate: per_publisher,
                offset: schedule_offset(per_publisher, index, block.publishers),
                window: block.inflight,
                fan: 0, // filled in once every subscription is known
            };
            self.push(block_index, client_id, &mut slot, Job::Publisher(spec));
        }
        for index in 0..block.idle {
            self.push(
                block_index,
                format!("{prefix}c{index}"),
                &mut slot,
                Job::Idle,
            );
        }
        Ok(())
    }

    fn push(&mut self, block: usize, client_id: String, slot: &mut u32, job: Job) {
        self.connections.push(ConnectionPlan {
            block,
            client_id,
            slot: *slot,
            job,
        });
        *slot += 1;
    }

    /// Fills each tracker's publisher list. Literal filters are looked up by topic; each
    /// distinct wildcard filter scans the publishers once.
    fn match_publishers(&mut self, filters: &[(usize, String)]) {
        let mut by_topic: HashMap<&str, Vec<u32>> = HashMap::new();
        for (id, publisher) in self.publishers.iter().enumerate() {
            // Ids fit in u32: `add_block` checked while assigning them.
            by_topic
                .entry(publisher.topic.as_str())
                .or_default()
                .push(id as u32);
        }
        let mut cache: HashMap<&str, Vec<u32>> = HashMap::new();
        let mut matched: Vec<Vec<u32>> = vec![Vec::new(); self.trackers.len()];
        for (tracker, filter) in filters {
            let publishers = cache.entry(filter.as_str()).or_insert_with(|| {
                let inner = filter
                    .strip_prefix("$share/")
                    .and_then(|rest| rest.split_once('/'))
                    .map_or(filter.as_str(), |(_, inner)| inner);
                if inner.contains(['+', '#']) {
                    (0..self.publishers.len())
                        .filter(|&id| topic::matches(inner, &self.publishers[id].topic))
                        .map(|id| id as u32)
                        .collect()
                } else {
                    by_topic.get(inner).cloned().unwrap_or_default()
                }
            });
            matched[*tracker].extend_from_slice(publishers);
        }
        for (tracker, mut publishers) in self.trackers.iter_mut().zip(matched) {
            // A group whose members share a filter hears each publisher once, not once per
            // member.
            publishers.sort_unstable();
            publishers.dedup();
            tracker.publishers = publishers;
        }
    }
}

impl Plan {
    /// Tells each publisher how many trackers expect its messages.
    fn count_fans(&mut self) {
        let mut fans = vec![0u32; self.publishers.len()];
        for tracker in &self.trackers {
            for &publisher in &tracker.publishers {
                fans[publisher as usize] += 1;
            }
        }
        for connection in &mut self.connections {
            if let Job::Publisher(spec) = &mut connection.job {
                spec.fan = fans[spec.id as usize];
            }
        }
    }
}

/// Spreads the publishers of a block over one period of their schedule, so a fixed rate
/// arrives evenly instead of in bursts of one message per publisher.
fn schedule_offset(rate: Rate, index: u32, publishers: u32) -> Duration {
    match rate {
        Rate::PerSecond(rate) => {
            let period = 1.0 / rate;
            Duration::from_secs_f64(period * f64::from(index) / f64::from(publishers.max(1)))
        }
        Rate::Max => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Kind, MqttVersion};

    fn block(name: &str, kind: Kind) -> BlockSpec {
        BlockSpec {
            name: name.into(),
            kind,
            publishers: 0,
            subscribers: 0,
            idle: 0,
            topic: format!("bench/{name}/{{id}}"),
            filter: format!("bench/{name}/+"),
            share_group: None,
            qos: 1,
            payload_bytes: 64,
            rate: Rate::PerSecond(100.0),
            inflight: 16,
            connect_rate: None,
        }
    }

    fn config(blocks: Vec<BlockSpec>) -> RunConfig {
        RunConfig {
            host: "127.0.0.1".into(),
            port: 1883,
            broker_pid: None,
            mqtt_version: MqttVersion::V311,
            keep_alive_s: 30,
            client_prefix: "t-".into(),
            username: None,
            password: None,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            drain: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            connect_concurrency: 8,
            threads: 1,
            blocks,
        }
    }

    #[test]
    fn p2p_pairs_match_one_publisher_each() {
        let mut p2p = block("p2p", Kind::P2p);
        p2p.publishers = 3;
        p2p.subscribers = 3;
        p2p.filter = p2p.topic.clone();
        let plan = Plan::build(&config(vec![p2p])).unwrap();
        assert_eq!(plan.connections.len(), 6);
        let lists: Vec<_> = plan.trackers.iter().map(|t| t.publishers.clone()).collect();
        assert_eq!(lists, vec![vec![0], vec![1], vec![2]]);
        let fans: Vec<u32> = plan
            .connections
            .iter()
            .filter_map(|c| match &c.job {
                Job::Publisher(spec) => Some(spec.fan),
                _ => None,
            })
            .collect();
        assert_eq!(fans, vec![1, 1, 1]);
    }

    #[test]
    fn shared_group_is_one_tracker_and_overlaps_count() {
        let mut shared = block("shared", Kind::Shared);
        shared.publishers = 2;
        shared.subscribers = 3;
        shared.share_group = Some("g".into());
        let mut watcher = block("watch", Kind::Fanin);
        watcher.subscribers = 1;
        watcher.filter = "bench/#".into();
        let plan = Plan::build(&config(vec![shared, watcher])).unwrap();
        assert_eq!(plan.trackers.len(), 2);
        assert_eq!(plan.trackers[0].publishers, vec![0, 1]);
        assert_eq!(plan.trackers[1].publishers, vec![0, 1]);
        assert!(
            matches!(&plan.connections[0].job, Job::Subscriber { filter, .. } if filter == "$share/g/bench/shared/+")
        );
    }

    #[test]
    fn offsets_spread_within_a_period() {
        let offset = schedule_offset(Rate::PerSecond(10.0), 5, 10);
        assert_eq!(offset, Duration::from_millis(50));
        assert_eq!(schedule_offset(Rate::Max, 5, 10), Duration::ZERO);
    }
}
