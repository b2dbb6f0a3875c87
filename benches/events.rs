//! The shard's cost to record one event (issue target: under 100 ns).
//!
//! `unwanted` is an event kind no exporter asked for (the common case for most kinds);
//! `subscription` and `message_delivered` are wanted kinds with their details built, the
//! batch handed to the ring every 256 events. The ring is drained in the same thread at the
//! end of each iteration and that time is included (popping, dropping the events, recycling
//! the batch vectors), although the exporter runtime does it on its own thread in the broker:
//! the figure is an upper bound of the shard's share.
//!
//! Measured 2026-11-22 (2-vCPU KVM guest): `unwanted` 0.29 ns, `subscription` 33 ns,
//! `message_delivered` 37 ns per event.
//!
//! ```text
//! cargo bench --bench events -- --warm-up-time 1 --measurement-time 3
//! ```

// The fixtures are valid by construction; an `expect` failing means the bench itself is wrong.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use starling::hooks::{
    ClientInfo, EventDetail, EventKind, EventKinds, EventRing, EventSink, MessageFacts,
};
use starling::protocol::{ClientId, Publish, PublishProperties, QoS, TopicFilter, TopicName};
use starling::session::Message;

/// Events recorded per measured iteration.
const EVENTS: u64 = 1024;

fn client(id: &str) -> Arc<ClientInfo> {
    Arc::new(ClientInfo {
        node: 1,
        shard: 0,
        client_id: ClientId::new(id).expect("client id"),
        username: None,
        address: Some("127.0.0.1:50000".parse().expect("address")),
        protocol: 5,
        keep_alive_secs: 60,
        clean_start: true,
    })
}

fn message(publisher: &ClientInfo) -> Arc<Message> {
    let publish = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: TopicName::new("devices/42/telemetry").expect("topic"),
        packet_id: None,
        properties: PublishProperties::default(),
        payload: Bytes::from_static(&[7; 64]),
    };
    Arc::new(Message::from_publish(
        Instant::now(),
        publisher.client_id.clone(),
        publish.topic.clone(),
        publish,
    ))
}

fn record(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_event");
    group.throughput(Throughput::Elements(EVENTS));
    let subscriber = client("subscriber-1");
    let publisher = client("publisher-1");
    let message = message(&publisher);
    let filter = TopicFilter::new("devices/+/telemetry").expect("filter");

    let ring = Arc::new(EventRing::new(64));
    let mut sink = EventSink::new(
        EventKinds::NONE.with(EventKind::SessionSubscribed),
        Arc::clone(&ring),
        256,
    );
    group.bench_function("unwanted", |b| {
        b.iter(|| {
            for at in 0..EVENTS {
                sink.record(EventKind::MessageDelivered, at, &subscriber, || {
                    EventDetail::None
                });
            }
            black_box(sink.pending())
        })
    });

    let drain = |ring: &EventRing| {
        while let Some(batch) = ring.pop() {
            black_box(batch.len());
            ring.recycle(batch);
        }
    };
    group.bench_function("subscription", |b| {
        b.iter(|| {
            for at in 0..EVENTS {
                sink.record(EventKind::SessionSubscribed, at, &subscriber, || {
                    EventDetail::Subscription {
                        filter: filter.clone(),
                        qos: QoS::AtLeastOnce,
                    }
                });
            }
            drain(&ring);
        })
    });

    let mut sink = EventSink::new(EventKinds::ALL, Arc::clone(&ring), 256);
    group.bench_function("message_delivered", |b| {
        b.iter(|| {
            for at in 0..EVENTS {
                sink.record(EventKind::MessageDelivered, at, &subscriber, || {
                    EventDetail::Message(MessageFacts {
                        message: Arc::clone(&message),
                        publisher: Arc::clone(&publisher),
                        published_at_ns: at,
                        qos: QoS::AtLeastOnce,
                        packet_id: None,
                        dup: false,
                        dropped: None,
                    })
                });
            }
            drain(&ring);
        })
    });
    group.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
