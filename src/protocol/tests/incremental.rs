//! Incremental decoding: `Ok(None)` for every strict prefix of every golden packet, the
//! maximum packet size enforced from the fixed header before the body arrives, several packets
//! in one read, and PUBLISH topics and payloads that are slices of the read buffer.

use bytes::BytesMut;

use super::golden::all;
use super::{frame, hex};
use crate::protocol::{Codec, DecodeError, Packet, ProtocolVersion, MAX_PACKET_SIZE};

use ProtocolVersion::{V3_1_1, V5};

#[test]
fn every_golden_packet_fed_byte_by_byte_is_none_until_its_last_byte() {
    for case in all() {
        let codec = Codec::new(case.version);
        let mut buf = BytesMut::new();
        let (last, prefix) = case.bytes.split_last().unwrap();
        for (fed, &byte) in prefix.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            assert_eq!(
                codec.decode(&mut buf),
                Ok(None),
                "prefix of {} bytes of {:?}",
                fed + 1,
                case.packet
            );
            assert_eq!(
                buf.len(),
                fed + 1,
                "an incomplete packet leaves the buffer alone"
            );
        }
        buf.extend_from_slice(&[*last]);
        assert_eq!(codec.decode(&mut buf), Ok(Some(case.packet.clone())));
        assert!(buf.is_empty(), "the packet's bytes are consumed");
    }
}

#[test]
fn empty_buffer_decodes_to_none() {
    assert_eq!(Codec::default().decode(&mut BytesMut::new()), Ok(None));
}

#[test]
fn several_packets_in_one_buffer_decode_in_order_and_leave_the_rest() {
    for version in [ProtocolVersion::V3_1, V3_1_1, V5] {
        let cases: Vec<_> = all().into_iter().filter(|c| c.version == version).collect();
        let mut buf = BytesMut::new();
        for case in &cases {
            buf.extend_from_slice(&case.bytes);
        }
        // Half of the next packet's fixed header is already there.
        buf.extend_from_slice(&[0x30]);
        let codec = Codec::new(version);
        for case in &cases {
            assert_eq!(codec.decode(&mut buf), Ok(Some(case.packet.clone())));
        }
        assert_eq!(codec.decode(&mut buf), Ok(None));
        assert_eq!(&buf[..], &[0x30]);
    }
}

#[test]
fn packet_over_the_maximum_size_fails_from_its_fixed_header_alone() {
    let codec = Codec {
        version: V5,
        max_packet_size: 64,
    };
    // A PUBLISH announcing 63 bytes after a two-byte fixed header: 65 in all.
    let mut buf = BytesMut::from(&[0x30, 63][..]);
    assert_eq!(
        codec.decode(&mut buf),
        Err(DecodeError::PacketTooLarge { size: 65, max: 64 })
    );
    // Nothing was reserved for a body that will never be accepted.
    assert!(buf.capacity() < 64, "capacity {}", buf.capacity());
}

#[test]
fn huge_remaining_length_fails_before_the_body_is_buffered() {
    let codec = Codec {
        version: V3_1_1,
        max_packet_size: 1024,
    };
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    assert_eq!(
        codec.decode(&mut buf),
        Err(DecodeError::PacketTooLarge {
            size: MAX_PACKET_SIZE as usize,
            max: 1024
        })
    );
    assert!(buf.capacity() < 1024, "capacity {}", buf.capacity());
}

#[test]
fn packet_of_exactly_the_maximum_size_is_accepted() {
    let codec = Codec {
        version: V3_1_1,
        max_packet_size: 12,
    };
    let bytes = hex("30 0a 0003 612f62 68656c6c6f");
    assert_eq!(bytes.len(), 12);
    let mut buf = BytesMut::from(&bytes[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Ok(Some(Packet::Publish(_)))
    ));

    let smaller = Codec {
        max_packet_size: 11,
        ..codec
    };
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(
        smaller.decode(&mut buf),
        Err(DecodeError::PacketTooLarge { size: 12, max: 11 })
    );
}

#[test]
fn maximum_packet_size_counts_a_multi_byte_fixed_header() {
    // 200 bytes of body need a two-byte remaining length: 203 bytes in all.
    let body = [hex("0003 612f62"), vec![b'x'; 195]].concat();
    let bytes = frame(0x30, &body);
    assert_eq!(bytes.len(), 203);
    for (max, accepted) in [(203, true), (202, false)] {
        let codec = Codec {
            version: V3_1_1,
            max_packet_size: max,
        };
        // The fixed header only: first byte and a two-byte remaining length.
        let mut buf = BytesMut::from(&bytes[..3]);
        let result = codec.decode(&mut buf);
        if accepted {
            assert_eq!(result, Ok(None));
        } else {
            assert_eq!(result, Err(DecodeError::PacketTooLarge { size: 203, max }));
        }
    }
}

#[test]
fn incomplete_remaining_length_waits_for_more_bytes() {
    let codec = Codec::new(V5);
    for prefix in [
        &[0x30][..],
        &[0x30, 0x80],
        &[0x30, 0x80, 0x80],
        &[0x30, 0xFF, 0xFF, 0xFF],
    ] {
        let mut buf = BytesMut::from(prefix);
        assert_eq!(codec.decode(&mut buf), Ok(None), "prefix {prefix:02x?}");
        assert_eq!(&buf[..], prefix);
    }
}

#[test]
fn reserved_packet_type_fails_before_the_body_arrives() {
    // Remaining length 10, no body yet.
    let mut buf = BytesMut::from(&[0x00, 0x0A][..]);
    assert_eq!(
        Codec::new(V5).decode(&mut buf),
        Err(DecodeError::ReservedPacketType(0))
    );
}

/// Base address of `buf`'s bytes, to compare decoded slices against.
fn address_of(data: &[u8]) -> usize {
    data.as_ptr() as usize
}

#[test]
fn publish_topic_and_payload_are_slices_of_the_read_buffer() {
    for (version, bytes, topic_at, payload_at) in [
        // 3.1.1 QoS 0: fixed header 2, topic length 2, topic "a/b" 3, then the payload.
        (V3_1_1, hex("30 0a 0003 612f62 68656c6c6f"), 4, 7),
        // 5.0 QoS 1 with properties: ... packet id 2, properties 1 + 12, then the payload.
        (
            V5,
            hex("32 19 0003 612f62 0001 0c 02 0000001e 26 0001 61 0001 62 68656c6c6f"),
            4,
            22,
        ),
    ] {
        // Another packet after it, so the PUBLISH is not the whole buffer.
        let mut buf = BytesMut::from(&[&bytes[..], &[0xC0, 0x00]].concat()[..]);
        let base = address_of(&buf);
        let Ok(Some(Packet::Publish(publish))) = Codec::new(version).decode(&mut buf) else {
            panic!("expected a PUBLISH in {version}");
        };
        assert_eq!(publish.topic.as_str(), "a/b");
        assert_eq!(&publish.payload[..], b"hello");
        assert_eq!(
            address_of(publish.topic.as_mqtt_str().as_bytes()),
            base + topic_at
        );
        assert_eq!(address_of(&publish.payload), base + payload_at);
        for property in &publish.properties.user_properties {
            let name_at = address_of(property.name.as_bytes()) - base;
            assert!(name_at < payload_at, "user property name at {name_at}");
        }
    }
}

#[test]
fn an_announced_large_packet_reserves_at_most_64_kib_ahead() {
    // The protocol maximum is allowed, but a peer that only sends a header announcing it must
    // not make the decoder hold that much memory.
    let codec = Codec::new(V5);
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    assert_eq!(codec.decode(&mut buf), Ok(None));
    assert!(
        buf.capacity() <= 5 + 64 * 1024,
        "capacity {}",
        buf.capacity()
    );
    assert_eq!(buf.len(), 5);
}
