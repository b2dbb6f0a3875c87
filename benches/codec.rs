//! Throughput of the MQTT codec on the broker's hot paths: decoding what clients send (PUBLISH,
//! CONNECT, SUBSCRIBE) and encoding what it sends back out, in MQTT 3.1.1 and 5.0.
//!
//! Every benchmark handles a batch of [`BATCH`] packets, because that is the real shape of the
//! work: one socket read fills the read buffer with many packets and the connection decodes them
//! in a loop, and a write buffer collects many packets before one write. Decoding refills a
//! reused read buffer before each batch, untimed (in the broker that copy is the socket read's,
//! not the codec's), then times the decode loop, dropping each packet as the broker does once it
//! is routed. Encoding appends the batch to a write buffer cleared and reused between batches.
//!
//! Each case is measured twice, in bytes (`*_bytes` groups, GiB/s) and in packets (`*_packets`
//! groups, elements/s), since criterion allows one `Throughput` per benchmark. PUBLISH comes with
//! 64 B and 4 KiB payloads; a 5.0 PUBLISH carries no properties, as most do, so the two versions
//! differ only by the property length byte, while 5.0 CONNECT and SUBSCRIBE carry the properties
//! clients commonly set.
//!
//! The encode groups also hold the fan-out path as a counterpart to the full encode of the 4 KiB
//! PUBLISH: `Publish::encode_header` into the write buffer plus a clone of the shared payload
//! `Bytes` per subscriber, which is what a writer that sends the header and the payload with one
//! vectored write pays. Its byte throughput counts the same wire bytes as the full encode, so
//! the two compare directly.
//!
//! ```text
//! cargo bench --bench codec -- --warm-up-time 1 --measurement-time 3
//! ```

// The packets are constructed here from literals that are valid by inspection; an `expect`
// failing means the bench itself is wrong, not the codec.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::num::{NonZeroU16, NonZeroU32};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use starling::protocol::{
    ClientId, Codec, Connect, ConnectProperties, MqttString, Packet, PacketId, ProtocolVersion,
    Publish, PublishProperties, QoS, RetainHandling, Subscribe, SubscribeProperties, Subscription,
    SubscriptionId, SubscriptionOptions, TopicFilter, TopicName, Will, WillProperties,
};

/// Packets per batch: roughly what one 64 KiB read holds of small PUBLISHes.
const BATCH: usize = 1000;

/// The versions the broker mostly speaks; 3.1 decodes like 3.1.1 past CONNECT.
const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V3_1_1, ProtocolVersion::V5];

/// One benchmarked packet in one version, with its batch encoded once up front.
struct Case {
    name: &'static str,
    codec: Codec,
    packet: Packet,
    /// `BATCH` copies of the packet, back to back, as a read buffer would hold them.
    wire: Bytes,
}

impl Case {
    fn new(name: &'static str, version: ProtocolVersion, packet: Packet) -> Self {
        let codec = Codec::new(version);
        let mut wire = BytesMut::new();
        for _ in 0..BATCH {
            codec
                .encode(&packet, &mut wire)
                .expect("bench packets are encodable");
        }
        let wire = wire.freeze();
        let mut check = BytesMut::from(&wire[..]);
        assert_eq!(
            decode_all(codec, &mut check),
            BATCH,
            "{name} in {version} does not decode back"
        );
        Self {
            name,
            codec,
            packet,
            wire,
        }
    }

    fn id(&self, name: &str) -> BenchmarkId {
        BenchmarkId::new(name, format!("v{}", self.codec.version))
    }
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for version in VERSIONS {
        cases.push(Case::new(
            "publish_64B",
            version,
            Packet::Publish(publish(64)),
        ));
        cases.push(Case::new(
            "publish_4KiB",
            version,
            Packet::Publish(publish(4096)),
        ));
        cases.push(Case::new(
            "connect",
            version,
            Packet::Connect(Box::new(connect(version))),
        ));
        cases.push(Case::new(
            "subscribe",
            version,
            Packet::Subscribe(subscribe()),
        ));
    }
    cases
}

/// A QoS 1 PUBLISH to a typical telemetry topic.
fn publish(payload_len: usize) -> Publish {
    Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: TopicName::new("sensors/building-7/floor-3/room-12/temperature")
            .expect("valid topic"),
        packet_id: PacketId::new(0x1234),
        properties: PublishProperties::default(),
        payload: Bytes::from(vec![0xA5; payload_len]),
    }
}

/// A CONNECT as IoT clients send it: credentials, a will, and in 5.0 session and flow control.
fn connect(version: ProtocolVersion) -> Connect {
    let text = |value: &'static str| MqttString::from_static(value).expect("valid string");
    Connect {
        protocol: version,
        clean_start: false,
        keep_alive: 60,
        client_id: ClientId::new("sensor-0042-a1b2c3d4").expect("valid client id"),
        will: Some(Will {
            topic: TopicName::new("sensors/0042/status").expect("valid topic"),
            payload: Bytes::from_static(b"offline"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties::default(),
        }),
        username: Some(text("sensor-0042")),
        password: Some(Bytes::from_static(b"0123456789abcdef0123456789abcdef")),
        properties: ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: NonZeroU16::new(32),
            maximum_packet_size: NonZeroU32::new(1 << 20),
            topic_alias_maximum: Some(16),
            ..ConnectProperties::default()
        },
    }
}

/// A SUBSCRIBE with three filters; in 5.0 with a subscription identifier.
fn subscribe() -> Subscribe {
    let subscription = |filter: &str, qos| Subscription {
        filter: TopicFilter::new(filter).expect("valid filter"),
        options: SubscriptionOptions {
            qos,
            retain_handling: RetainHandling::SendIfNew,
            ..SubscriptionOptions::default()
        },
    };
    Subscribe {
        packet_id: PacketId::new(7).expect("non-zero packet id"),
        properties: SubscribeProperties {
            subscription_identifier: SubscriptionId::new(42),
            user_properties: Vec::new(),
        },
        filters: vec![
            subscription("sensors/+/temperature", QoS::AtLeastOnce),
            subscription("alerts/#", QoS::ExactlyOnce),
            subscription("devices/0042/commands", QoS::AtLeastOnce),
        ],
    }
}

/// Decodes packets until the buffer runs dry, dropping each; returns how many there were.
fn decode_all(codec: Codec, buf: &mut BytesMut) -> usize {
    let mut count = 0;
    while let Ok(Some(packet)) = codec.decode(buf) {
        black_box(packet);
        count += 1;
    }
    count
}

/// Times decoding one batch per iteration; the refill of the reused read buffer is not timed.
fn bench_decode(c: &mut Criterion, group_name: &str, throughput: fn(&Case) -> Throughput) {
    let mut group = c.benchmark_group(group_name);
    for case in cases() {
        group.throughput(throughput(&case));
        let mut buf = BytesMut::with_capacity(case.wire.len());
        group.bench_function(case.id(case.name), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    buf.extend_from_slice(&case.wire);
                    let start = Instant::now();
                    black_box(decode_all(case.codec, &mut buf));
                    timed += start.elapsed();
                }
                timed
            });
        });
    }
    group.finish();
}

/// Times encoding one batch per iteration into a reused write buffer; for the 4 KiB PUBLISH
/// also the header-plus-shared-payload fan-out path.
fn bench_encode(c: &mut Criterion, group_name: &str, throughput: fn(&Case) -> Throughput) {
    let mut group = c.benchmark_group(group_name);
    for case in cases() {
        group.throughput(throughput(&case));
        let mut buf = BytesMut::with_capacity(case.wire.len());
        group.bench_function(case.id(case.name), |b| {
            b.iter(|| {
                buf.clear();
                for _ in 0..BATCH {
                    case.codec
                        .encode(black_box(&case.packet), &mut buf)
                        .expect("bench packets are encodable");
                }
                black_box(&buf);
            });
        });
        if let ("publish_4KiB", Packet::Publish(publish)) = (case.name, &case.packet) {
            let version = case.codec.version;
            let mut headers = BytesMut::new();
            let mut payloads: Vec<Bytes> = Vec::with_capacity(BATCH);
            group.bench_function(case.id("publish_4KiB_shared_payload"), |b| {
                b.iter(|| {
                    headers.clear();
                    payloads.clear();
                    for _ in 0..BATCH {
                        black_box(publish)
                            .encode_header(version, &mut headers)
                            .expect("bench packets are encodable");
                        payloads.push(publish.payload.clone());
                    }
                    black_box((&headers, &payloads));
                });
            });
        }
    }
    group.finish();
}

fn bytes(case: &Case) -> Throughput {
    Throughput::Bytes(case.wire.len() as u64)
}

fn packets(_: &Case) -> Throughput {
    Throughput::Elements(BATCH as u64)
}

fn codec_benches(c: &mut Criterion) {
    bench_decode(c, "decode_bytes", bytes);
    bench_decode(c, "decode_packets", packets);
    bench_encode(c, "encode_bytes", bytes);
    bench_encode(c, "encode_packets", packets);
}

criterion_group!(benches, codec_benches);
criterion_main!(benches);
