//! Fuzz target `decode`: arbitrary bytes from the network into [`Codec::decode`].
//!
//! The first input byte picks the codec (bits 0-1: protocol version, bits 2-3: maximum packet
//! size, see [`codec_for`]); the rest is one read buffer, decoded packet after packet until the
//! decoder asks for more bytes or rejects them, as a connection's read loop does. The decoder
//! must never panic, and whatever it accepts must agree with the encoder, because the broker
//! re-encodes what it decodes (forwarded PUBLISHes, stored wills):
//!
//! - every strict prefix of an accepted packet's bytes is `Ok(None)` (incomplete), never an
//!   error or another packet, so a packet split across reads decodes the same;
//! - `Ok(None)` leaves the buffer untouched;
//! - an accepted packet encodes with the same codec, into exactly `Codec::encoded_len` bytes
//!   (and for PUBLISH, into `Publish::encode_header` followed by the payload), and those bytes
//!   decode back to an equal packet with nothing left over. CONNECT is encoded in the version it
//!   announces, whatever the codec's, which is also how it is decoded, so the same codec
//!   round-trips it.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use starling::protocol::{Codec, Packet, ProtocolVersion, MAX_PACKET_SIZE};

/// Maximum packet sizes to pick from: MQTT's own limit, and small ones so that short inputs
/// reach `PacketTooLarge` and the boundary around it.
const MAX_PACKET_SIZES: [u32; 4] = [MAX_PACKET_SIZE, 1024, 64, 3];

/// The longest prefix of an accepted packet checked byte by byte: the decoder only looks at the
/// fixed header (at most five bytes) before it has the whole packet, so longer prefixes take
/// the same path; the one-byte-short prefix is checked as well.
const PREFIXES_CHECKED: usize = 8;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let codec = codec_for(selector);
    let mut buf = BytesMut::from(stream);
    let mut offset = 0;
    loop {
        let before = buf.len();
        match codec.decode(&mut buf) {
            Ok(Some(packet)) => {
                let consumed = before - buf.len();
                // The smallest packet (PINGREQ) is two bytes; consuming none would loop forever.
                assert!(consumed >= 2, "{packet:?} decoded from {consumed} bytes");
                let wire = &stream[offset..offset + consumed];
                offset += consumed;
                check_prefixes_incomplete(codec, wire);
                check_round_trip(codec, &packet);
            }
            Ok(None) => {
                assert!(
                    buf[..] == stream[offset..],
                    "Ok(None) changed the buffer: {:02x?} became {:02x?}",
                    &stream[offset..],
                    &buf[..]
                );
                return;
            }
            Err(_) => return,
        }
    }
});

/// The codec the selector byte asks for.
fn codec_for(selector: u8) -> Codec {
    let version = match selector & 0x03 {
        0 => ProtocolVersion::V3_1,
        1 => ProtocolVersion::V3_1_1,
        _ => ProtocolVersion::V5,
    };
    Codec {
        version,
        max_packet_size: MAX_PACKET_SIZES[usize::from((selector >> 2) & 0x03)],
    }
}

/// Checks that the prefixes of an accepted packet's bytes are all incomplete.
fn check_prefixes_incomplete(codec: Codec, wire: &[u8]) {
    let short = wire.len() - 1;
    for len in (0..short.min(PREFIXES_CHECKED)).chain([short]) {
        let mut buf = BytesMut::from(&wire[..len]);
        let result = codec.decode(&mut buf);
        assert!(
            matches!(result, Ok(None)),
            "prefix of {len} bytes of the accepted packet {wire:02x?} gave {result:?}"
        );
        assert!(buf[..] == wire[..len], "Ok(None) changed the prefix buffer");
    }
}

/// Encodes an accepted packet and decodes it again.
fn check_round_trip(codec: Codec, packet: &Packet) {
    let mut encoded = BytesMut::new();
    if let Err(error) = codec.encode(packet, &mut encoded) {
        panic!("accepted packet does not encode: {error}\n{packet:#?}");
    }
    assert_eq!(
        encoded.len(),
        codec.encoded_len(packet),
        "encoded_len disagrees with encode for {packet:#?}"
    );
    if let Packet::Publish(publish) = packet {
        let mut shared = BytesMut::new();
        if let Err(error) = publish.encode_header(codec.version, &mut shared) {
            panic!("encode_header fails where encode succeeds: {error}\n{publish:#?}");
        }
        shared.extend_from_slice(&publish.payload);
        assert_eq!(
            shared, encoded,
            "encode_header + payload differs from encode"
        );
    }
    let wire = encoded.clone();
    match codec.decode(&mut encoded) {
        Ok(Some(again)) => {
            assert_eq!(
                &again, packet,
                "round trip through {wire:02x?} changed the packet"
            );
            assert!(
                encoded.is_empty(),
                "{} bytes left after decoding the re-encoded {wire:02x?}",
                encoded.len()
            );
        }
        other => panic!("re-encoded {wire:02x?} gave {other:?}\noriginal: {packet:#?}"),
    }
}
