//! The codec's test suite, beside the code it checks: golden bytes for every packet in every
//! version (captured from mosquitto clients, or written from the spec), round-trip property
//! tests over all packets, one test per validation rule, the reason code every error maps to,
//! and incremental decoding (byte-by-byte feeding, the maximum packet size, zero-copy slices).
//!
//! Tests only: nothing here is reachable from the broker, and nothing here opens a socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod errors;
mod golden;
mod incremental;
mod roundtrip;
mod validation;

use bytes::{Bytes, BytesMut};

use super::{
    Codec, DecodeError, MqttString, Packet, PacketId, ProtocolVersion, TopicFilter, TopicName,
    UserProperty,
};

/// Parses hex, ignoring whitespace, so golden bytes can be laid out by field.
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {text:?}"
    );
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).unwrap();
            u8::from_str_radix(pair, 16).unwrap()
        })
        .collect()
}

/// Decodes `bytes` as exactly one complete packet in `version`.
fn decode(version: ProtocolVersion, bytes: &[u8]) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = Codec::new(version).decode(&mut buf)?;
    let packet = packet.expect("the bytes hold a complete packet");
    assert!(buf.is_empty(), "{} bytes left after the packet", buf.len());
    Ok(packet)
}

/// Encodes `packet` in `version`, checking that `Codec::encoded_len` agrees with what was
/// written.
fn encode(version: ProtocolVersion, packet: &Packet) -> Vec<u8> {
    let codec = Codec::new(version);
    let mut buf = BytesMut::new();
    codec.encode(packet, &mut buf).unwrap();
    assert_eq!(
        buf.len(),
        codec.encoded_len(packet),
        "encoded_len of {packet:?}"
    );
    buf.to_vec()
}

/// A fixed header (first byte and remaining length) followed by `body`.
fn frame(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    out.extend(variable_integer(body.len()));
    out.extend_from_slice(body);
    out
}

/// A two-byte length and the bytes: an MQTT string or binary field.
fn field(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).unwrap();
    [&len.to_be_bytes()[..], data].concat()
}

/// A property length and the properties.
fn props(data: &[u8]) -> Vec<u8> {
    [variable_integer(data.len()), data.to_vec()].concat()
}

/// A variable byte integer, written independently of the codec's own encoder.
fn variable_integer(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value % 128) as u8;
        value /= 128;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn string(text: &str) -> MqttString {
    MqttString::new(text).unwrap()
}

fn topic(text: &str) -> TopicName {
    TopicName::new(text).unwrap()
}

fn filter(text: &str) -> TopicFilter {
    TopicFilter::new(text).unwrap()
}

fn pid(value: u16) -> PacketId {
    PacketId::new(value).unwrap()
}

fn user(name: &str, value: &str) -> UserProperty {
    UserProperty {
        name: string(name),
        value: string(value),
    }
}

fn bytes(data: &[u8]) -> Bytes {
    Bytes::copy_from_slice(data)
}
