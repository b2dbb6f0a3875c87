//! Throughput of routing on a shard: matching a published topic against the subscriptions
//! (the per-message path), the interest lookup that decides which shards to forward to, and
//! the retained-message query a SUBSCRIBE runs.
//!
//! The subscriptions have an IoT fleet's shape. Of `n` subscriptions, 80% are a device's own
//! commands (`devices/{id}/commands`), 10% a device's configuration tree
//! (`devices/{id}/config/#`), ~10% site dashboards (`sites/{site}/+/temperature`, one per site),
//! and a few back-ends subscribe `devices/+/telemetry` (10 sessions) and `devices/#` (2). Each
//! publish matches a handful of these; the time is the trie walk and the merge, not fan-out.
//!
//! Every benchmark matches a batch of [`BATCH`] different topics (spread over the fleet, so
//! the walk does not run on a warm path) and counts them as elements; `trie_only` is the walk
//! alone on the same trie shape, the baseline the table's merging adds to.
//!
//! ```text
//! cargo bench --bench topic -- --warm-up-time 1 --measurement-time 3
//! ```

// The filters and topics are built here from formats that are valid by construction; an
// `expect` failing means the bench itself is wrong.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use starling::protocol::{QoS, TopicFilter, TopicName};
use starling::topic::{
    FilterTrie, InterestTable, RetainedStore, ShardId, SubscriberOptions, SubscriptionTable,
};

/// Topics matched per measured batch.
const BATCH: usize = 1000;

/// Subscription counts to measure.
const SIZES: [usize; 2] = [10_000, 100_000];

/// Shards in the interest-table benchmark.
const SHARDS: usize = 8;

fn filter(text: &str) -> TopicFilter {
    TopicFilter::new(text).expect("bench filter is valid")
}

fn topic(text: &str) -> TopicName {
    TopicName::new(text).expect("bench topic is valid")
}

/// The fleet's filters for `n` subscriptions, with the session that holds each.
fn fleet_filters(n: usize) -> Vec<(u64, String)> {
    let mut filters = Vec::with_capacity(n);
    let devices = n * 8 / 10;
    for id in 0..devices {
        filters.push((id as u64, format!("devices/{id}/commands")));
    }
    for id in 0..n / 10 {
        filters.push((id as u64, format!("devices/{id}/config/#")));
    }
    let backends = 12;
    for site in 0..n - filters.len() - backends {
        filters.push((
            (devices + site) as u64,
            format!("sites/{site}/+/temperature"),
        ));
    }
    for backend in 0..backends {
        let text = if backend < 10 {
            "devices/+/telemetry"
        } else {
            "devices/#"
        };
        filters.push(((n + backend) as u64, text.to_owned()));
    }
    filters
}

/// A batch of topics spread over the fleet: telemetry (matched by the back-ends), commands
/// (one device plus `devices/#`), and site temperatures (one dashboard).
fn fleet_topics(n: usize) -> Vec<TopicName> {
    let devices = n * 8 / 10;
    let sites = n / 10;
    (0..BATCH)
        .map(|i| {
            // A large odd stride visits ids in a scattered order.
            let id = (i * 7919) % devices;
            match i % 3 {
                0 => topic(&format!("devices/{id}/telemetry")),
                1 => topic(&format!("devices/{id}/commands")),
                _ => topic(&format!("sites/{}/{id}/temperature", id % sites)),
            }
        })
        .collect()
}

fn bench_match(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic_match");
    group.throughput(Throughput::Elements(BATCH as u64));
    for n in SIZES {
        let filters = fleet_filters(n);
        let topics = fleet_topics(n);

        let mut trie = FilterTrie::new();
        for (session, text) in &filters {
            trie.get_or_insert_with(text, Vec::new).push(*session);
        }
        group.bench_with_input(BenchmarkId::new("trie_only", n), &topics, |b, topics| {
            b.iter(|| {
                let mut visited = 0_usize;
                for topic in topics {
                    trie.for_each_match(topic.as_str(), |sessions| visited += sessions.len());
                }
                black_box(visited)
            });
        });

        let mut table = SubscriptionTable::default();
        let options = SubscriberOptions {
            qos: QoS::AtLeastOnce,
            ..SubscriberOptions::default()
        };
        for (session, text) in &filters {
            table.subscribe(*session, &filter(text), options);
        }
        let mut out = Vec::new();
        group.bench_with_input(BenchmarkId::new("table", n), &topics, |b, topics| {
            b.iter(|| {
                let mut recipients = 0_usize;
                for topic in topics {
                    out.clear();
                    table.match_topic(topic, Some(1), &mut out);
                    recipients += out.len();
                }
                black_box(recipients)
            });
        });

        let mut interest = InterestTable::new();
        for (session, text) in &filters {
            let shard = ShardId::new(*session as usize % SHARDS).expect("shard index below 256");
            interest.add(&filter(text), shard);
        }
        group.bench_with_input(BenchmarkId::new("interest", n), &topics, |b, topics| {
            b.iter(|| {
                let mut shards = 0_usize;
                for topic in topics {
                    shards += interest.shards_for(topic).len();
                }
                black_box(shards)
            });
        });
    }
    group.finish();
}

fn bench_retained(c: &mut Criterion) {
    const TOPICS: usize = 100_000;
    let devices = TOPICS / 2;
    let mut store = RetainedStore::new();
    for id in 0..devices {
        store.set(&topic(&format!("devices/{id}/status")), id as u64);
        store.set(&topic(&format!("devices/{id}/firmware")), id as u64);
    }

    let mut group = c.benchmark_group("retained_query");
    // One wildcard query that returns half the store: the cost per retained message found.
    let wide = filter("devices/+/status");
    group.throughput(Throughput::Elements(devices as u64));
    group.bench_function(BenchmarkId::new("devices/+/status", TOPICS), |b| {
        b.iter(|| {
            let mut found = 0_u64;
            store.for_each_matching(&wide, |id| found += id);
            black_box(found)
        });
    });
    // Narrow queries, a batch of different devices: the cost per SUBSCRIBE.
    let narrow: Vec<TopicFilter> = (0..BATCH)
        .map(|i| filter(&format!("devices/{}/#", (i * 7919) % devices)))
        .collect();
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(BenchmarkId::new("devices/{id}/#", TOPICS), |b| {
        b.iter(|| {
            let mut found = 0_u64;
            for query in &narrow {
                store.for_each_matching(query, |id| found += id);
            }
            black_box(found)
        });
    });
    group.finish();
}

criterion_group!(benches, bench_match, bench_retained);
criterion_main!(benches);
