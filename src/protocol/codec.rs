//! The fixed header and the dispatch to each packet's body codec: the one place that knows how
//! a packet is framed, where the maximum packet size is enforced, and how a body is prefixed
//! with its remaining length.

use bytes::{Buf, BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::packet::{Packet, PacketType};
use super::publish::ResponseBody;
use super::types::ProtocolVersion;
use super::wire::{put_variable_integer, variable_integer_len, Reader, MAX_VARIABLE_INTEGER};

/// The largest packet MQTT can frame: a five-byte fixed header plus the largest remaining length.
pub const MAX_PACKET_SIZE: u32 = 1 + 4 + MAX_VARIABLE_INTEGER;

/// The most `decode` reserves ahead for an incomplete packet; beyond it the buffer grows only
/// as bytes arrive.
const MAX_DECODE_RESERVE: usize = 64 * 1024;

/// Codec settings for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    /// The version packets are encoded and decoded in. CONNECT is decoded in whatever version
    /// it announces; a server starts with any value and switches to `Connect::protocol`.
    pub version: ProtocolVersion,
    /// Largest packet accepted, fixed header included; bigger ones fail as soon as their fixed
    /// header is read, before the body is buffered.
    pub max_packet_size: u32,
}

impl Default for Codec {
    fn default() -> Self {
        Self {
            version: ProtocolVersion::V5,
            max_packet_size: MAX_PACKET_SIZE,
        }
    }
}

/// Decoding of a packet body, implemented by each packet struct.
pub(crate) trait DecodeBody: Sized {
    /// Decodes the body; `flags` are the low four bits of the first byte.
    fn decode(flags: u8, body: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError>;
}

/// Encoding of a packet body, implemented by each packet struct.
pub(crate) trait EncodeBody {
    /// Fails if the packet cannot be encoded in `version`; runs before anything is written.
    fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError>;
    /// The remaining length: bytes after the fixed header.
    fn body_len(&self, version: ProtocolVersion) -> usize;
    /// Writes the body.
    fn write_body(&self, version: ProtocolVersion, buf: &mut BytesMut);
    /// The low four bits of the first byte.
    fn flags(&self) -> u8;
}

/// Parsed fixed header.
struct FixedHeader {
    first_byte: u8,
    remaining_len: usize,
    header_len: usize,
}

/// Reads the fixed header; `Ok(None)` when its bytes have not all arrived.
fn peek_fixed_header(buf: &[u8]) -> Result<Option<FixedHeader>, DecodeError> {
    let Some(&first_byte) = buf.first() else {
        return Ok(None);
    };
    let mut remaining_len = 0usize;
    for (index, shift) in [0usize, 7, 14, 21].into_iter().enumerate() {
        let Some(&byte) = buf.get(1 + index) else {
            return Ok(None);
        };
        remaining_len |= usize::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Ok(Some(FixedHeader {
                first_byte,
                remaining_len,
                header_len: 2 + index,
            }));
        }
    }
    Err(DecodeError::MalformedRemainingLength)
}

fn packet_type(first_byte: u8, version: ProtocolVersion) -> Result<PacketType, DecodeError> {
    Ok(match first_byte >> 4 {
        1 => PacketType::Connect,
        2 => PacketType::ConnAck,
        3 => PacketType::Publish,
        4 => PacketType::PubAck,
        5 => PacketType::PubRec,
        6 => PacketType::PubRel,
        7 => PacketType::PubComp,
        8 => PacketType::Subscribe,
        9 => PacketType::SubAck,
        10 => PacketType::Unsubscribe,
        11 => PacketType::UnsubAck,
        12 => PacketType::PingReq,
        13 => PacketType::PingResp,
        14 => PacketType::Disconnect,
        15 if version.is_v5() => PacketType::Auth,
        other => return Err(DecodeError::ReservedPacketType(other)),
    })
}

/// Checks flags that are fixed for a packet type (everything but PUBLISH).
pub(crate) fn expect_flags(packet: PacketType, flags: u8, expected: u8) -> Result<(), DecodeError> {
    if flags == expected {
        Ok(())
    } else {
        Err(DecodeError::InvalidHeaderFlags { packet, flags })
    }
}

/// The DUP bit, which MQTT 3.1 also sets on a re-delivered PUBREL, SUBSCRIBE or UNSUBSCRIBE
/// (3.1 section 2.1); 3.1.1 made it reserved in those packets.
const V3_1_DUP: u8 = 0x08;

/// Checks the flags of PUBREL, SUBSCRIBE and UNSUBSCRIBE: `0b0010`, and in 3.1 maybe DUP.
pub(crate) fn expect_request_flags(
    packet: PacketType,
    flags: u8,
    version: ProtocolVersion,
) -> Result<(), DecodeError> {
    let ignored = if version == ProtocolVersion::V3_1 {
        V3_1_DUP
    } else {
        0
    };
    if flags & !ignored == 0b0010 {
        Ok(())
    } else {
        Err(DecodeError::InvalidHeaderFlags { packet, flags })
    }
}

fn decode_body<T: DecodeBody>(
    flags: u8,
    body: &mut Reader,
    version: ProtocolVersion,
) -> Result<T, DecodeError> {
    T::decode(flags, body, version)
}

impl Codec {
    /// A codec for `version` with no packet size limit beyond MQTT's own.
    pub fn new(version: ProtocolVersion) -> Self {
        Self {
            version,
            ..Self::default()
        }
    }

    /// Decodes one packet from the front of `buf`, removing its bytes. Returns `Ok(None)` and
    /// leaves `buf` untouched while the packet is incomplete (having reserved room for up to
    /// 64 KiB of the rest).
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(header) = peek_fixed_header(buf)? else {
            return Ok(None);
        };
        let total = header.header_len + header.remaining_len;
        if total > self.max_packet_size as usize {
            return Err(DecodeError::PacketTooLarge {
                size: total,
                max: self.max_packet_size,
            });
        }
        // Checked before waiting for the body so that a bad first byte fails at once.
        let packet_type = packet_type(header.first_byte, self.version)?;
        if buf.len() < total {
            // Room for the rest, up to a cap: a peer that announces a large packet and sends
            // nothing more must not make us hold its announced size in memory.
            buf.reserve((total - buf.len()).min(MAX_DECODE_RESERVE));
            return Ok(None);
        }
        buf.advance(header.header_len);
        let mut body = Reader::new(buf.split_to(header.remaining_len).freeze());
        let flags = header.first_byte & 0x0F;
        let version = self.version;
        let packet = match packet_type {
            PacketType::Connect => {
                Packet::Connect(Box::new(decode_body(flags, &mut body, version)?))
            }
            PacketType::ConnAck => Packet::ConnAck(decode_body(flags, &mut body, version)?),
            PacketType::Publish => Packet::Publish(decode_body(flags, &mut body, version)?),
            PacketType::PubAck => Packet::PubAck(super::publish::decode_response(
                PacketType::PubAck,
                flags,
                &mut body,
                version,
            )?),
            PacketType::PubRec => Packet::PubRec(super::publish::decode_response(
                PacketType::PubRec,
                flags,
                &mut body,
                version,
            )?),
            PacketType::PubRel => Packet::PubRel(super::publish::decode_response(
                PacketType::PubRel,
                flags,
                &mut body,
                version,
            )?),
            PacketType::PubComp => Packet::PubComp(super::publish::decode_response(
                PacketType::PubComp,
                flags,
                &mut body,
                version,
            )?),
            PacketType::Subscribe => Packet::Subscribe(decode_body(flags, &mut body, version)?),
            PacketType::SubAck => Packet::SubAck(decode_body(flags, &mut body, version)?),
            PacketType::Unsubscribe => Packet::Unsubscribe(decode_body(flags, &mut body, version)?),
            PacketType::UnsubAck => Packet::UnsubAck(decode_body(flags, &mut body, version)?),
            PacketType::PingReq => {
                expect_flags(PacketType::PingReq, flags, 0)?;
                Packet::PingReq
            }
            PacketType::PingResp => {
                expect_flags(PacketType::PingResp, flags, 0)?;
                Packet::PingResp
            }
            PacketType::Disconnect => Packet::Disconnect(decode_body(flags, &mut body, version)?),
            PacketType::Auth => Packet::Auth(decode_body(flags, &mut body, version)?),
        };
        body.finish()?;
        Ok(Some(packet))
    }

    /// Appends `packet` to `buf`. Nothing is written when it fails.
    pub fn encode(&self, packet: &Packet, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let version = self.version;
        match packet {
            Packet::Connect(connect) => encode_body(PacketType::Connect, &**connect, version, buf),
            Packet::ConnAck(ack) => encode_body(PacketType::ConnAck, ack, version, buf),
            Packet::Publish(publish) => encode_body(PacketType::Publish, publish, version, buf),
            Packet::PubAck(ack) => encode_body(
                PacketType::PubAck,
                &ResponseBody::new(PacketType::PubAck, ack),
                version,
                buf,
            ),
            Packet::PubRec(ack) => encode_body(
                PacketType::PubRec,
                &ResponseBody::new(PacketType::PubRec, ack),
                version,
                buf,
            ),
            Packet::PubRel(ack) => encode_body(
                PacketType::PubRel,
                &ResponseBody::new(PacketType::PubRel, ack),
                version,
                buf,
            ),
            Packet::PubComp(ack) => encode_body(
                PacketType::PubComp,
                &ResponseBody::new(PacketType::PubComp, ack),
                version,
                buf,
            ),
            Packet::Subscribe(sub) => encode_body(PacketType::Subscribe, sub, version, buf),
            Packet::SubAck(ack) => encode_body(PacketType::SubAck, ack, version, buf),
            Packet::Unsubscribe(unsub) => encode_body(PacketType::Unsubscribe, unsub, version, buf),
            Packet::UnsubAck(ack) => encode_body(PacketType::UnsubAck, ack, version, buf),
            Packet::PingReq => {
                buf.put_slice(&[0xC0, 0x00]);
                Ok(())
            }
            Packet::PingResp => {
                buf.put_slice(&[0xD0, 0x00]);
                Ok(())
            }
            Packet::Disconnect(disconnect) => {
                encode_body(PacketType::Disconnect, disconnect, version, buf)
            }
            Packet::Auth(auth) => encode_body(PacketType::Auth, auth, version, buf),
        }
    }

    /// The number of bytes `packet` takes when encoded, fixed header included.
    pub fn encoded_len(&self, packet: &Packet) -> usize {
        let version = self.version;
        let body = match packet {
            Packet::Connect(connect) => connect.body_len(version),
            Packet::ConnAck(ack) => ack.body_len(version),
            Packet::Publish(publish) => publish.body_len(version),
            Packet::PubAck(ack)
            | Packet::PubRec(ack)
            | Packet::PubRel(ack)
            | Packet::PubComp(ack) => ResponseBody::new(PacketType::PubAck, ack).body_len(version),
            Packet::Subscribe(sub) => sub.body_len(version),
            Packet::SubAck(ack) => ack.body_len(version),
            Packet::Unsubscribe(unsub) => unsub.body_len(version),
            Packet::UnsubAck(ack) => ack.body_len(version),
            Packet::PingReq | Packet::PingResp => 0,
            Packet::Disconnect(disconnect) => disconnect.body_len(version),
            Packet::Auth(auth) => auth.body_len(version),
        };
        1 + variable_integer_len(body) + body
    }
}

/// Checks, then writes the fixed header and the body.
fn encode_body<T: EncodeBody>(
    packet: PacketType,
    body: &T,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    body.check(version)?;
    let body_len = body.body_len(version);
    write_fixed_header(packet, body.flags(), body_len, buf)?;
    let start = buf.len();
    body.write_body(version, buf);
    debug_assert_eq!(
        buf.len() - start,
        body_len,
        "body_len disagrees with write_body for {packet:?}"
    );
    Ok(())
}

/// Writes the first byte and the remaining length, after checking the length fits.
pub(crate) fn write_fixed_header(
    packet: PacketType,
    flags: u8,
    remaining_len: usize,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    if remaining_len > MAX_VARIABLE_INTEGER as usize {
        return Err(EncodeError::PacketTooLarge {
            size: remaining_len,
            max: MAX_VARIABLE_INTEGER as usize,
        });
    }
    buf.reserve(1 + variable_integer_len(remaining_len) + remaining_len);
    buf.put_u8((packet as u8) << 4 | flags);
    put_variable_integer(buf, remaining_len);
    Ok(())
}
