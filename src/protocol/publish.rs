//! PUBLISH and its acknowledgements (PUBACK, PUBREC, PUBREL, PUBCOMP).
//!
//! PUBLISH is the hot path: decoding slices the topic and payload out of the read buffer, and
//! [`Publish::encode_header`] writes everything before the payload so the broker can send one
//! shared payload `Bytes` after a small per-subscriber header.

use bytes::{BufMut, BytesMut};

use super::codec::{
    expect_flags, expect_request_flags, write_fixed_header, DecodeBody, EncodeBody,
};
use super::control::optional_reason_len;
use super::error::{DecodeError, EncodeError};
use super::packet::{PacketType, PubResponse, Publish};
use super::property::{AckProperties, PublishProperties};
use super::reason::{allowed, ReasonCode};
use super::types::{PacketId, ProtocolVersion, QoS, TopicName};
use super::wire::{binary_len, put_binary, Reader};

const FLAG_RETAIN: u8 = 0x01;
const FLAG_DUP: u8 = 0x08;

/// Reads a packet id, rejecting zero.
pub(crate) fn read_packet_id(body: &mut Reader) -> Result<PacketId, DecodeError> {
    PacketId::new(body.u16("packet identifier")?).ok_or(DecodeError::ZeroPacketId)
}

impl DecodeBody for Publish {
    fn decode(flags: u8, body: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let qos = QoS::from_bits((flags >> 1) & 0x03)?;
        let dup = flags & FLAG_DUP != 0;
        if dup && qos == QoS::AtMostOnce {
            return Err(DecodeError::DupWithQoS0);
        }
        let topic = body.string("topic name")?;
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce | QoS::ExactlyOnce => Some(read_packet_id(body)?),
        };
        let properties = if version.is_v5() {
            PublishProperties::decode(body)?
        } else {
            PublishProperties::default()
        };
        // Only a 5.0 PUBLISH that carries a topic alias may leave its topic empty.
        let topic = if properties.topic_alias.is_some() {
            TopicName::from_mqtt_string_allow_empty(topic)?
        } else {
            TopicName::from_mqtt_string(topic)?
        };
        Ok(Self {
            dup,
            qos,
            retain: flags & FLAG_RETAIN != 0,
            topic,
            packet_id,
            properties,
            payload: body.rest(),
        })
    }
}

impl Publish {
    /// Bytes of the variable header (topic, packet id, properties), without the payload.
    fn variable_header_len(&self, version: ProtocolVersion) -> usize {
        let mut len = binary_len(self.topic.as_mqtt_str().as_bytes());
        if self.packet_id.is_some() {
            len += 2;
        }
        if version.is_v5() {
            len += self.properties.wire_len();
        }
        len
    }

    fn write_variable_header(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        put_binary(buf, self.topic.as_mqtt_str().as_bytes());
        if let Some(packet_id) = self.packet_id {
            buf.put_u16(packet_id.get());
        }
        if version.is_v5() {
            self.properties.write(buf);
        }
    }

    /// Writes the fixed and variable header, sized for the payload that the caller sends right
    /// after it. Nothing is written when it fails.
    pub fn encode_header(
        &self,
        version: ProtocolVersion,
        buf: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        self.check(version)?;
        let header_len = self.variable_header_len(version);
        let remaining_len = header_len + self.payload.len();
        write_fixed_header(PacketType::Publish, self.flags(), remaining_len, buf)?;
        self.write_variable_header(version, buf);
        Ok(())
    }

    /// Bytes of the whole packet, fixed header and payload included: what a subscriber's
    /// maximum packet size is compared with.
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        let body = self.body_len(version);
        1 + super::wire::variable_integer_len(body) + body
    }
}

impl EncodeBody for Publish {
    fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        let has_id = self.packet_id.is_some();
        if has_id == (self.qos == QoS::AtMostOnce) {
            return Err(EncodeError::PacketIdMismatch {
                qos: self.qos.as_u8(),
                has_id,
            });
        }
        let has_alias = version.is_v5() && self.properties.topic_alias.is_some();
        if self.topic.is_empty() && !has_alias {
            return Err(EncodeError::EmptyTopicWithoutAlias);
        }
        if version.is_v5() {
            self.properties.check()?;
        }
        Ok(())
    }

    fn body_len(&self, version: ProtocolVersion) -> usize {
        self.variable_header_len(version) + self.payload.len()
    }

    fn write_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        self.write_variable_header(version, buf);
        buf.put_slice(&self.payload);
    }

    fn flags(&self) -> u8 {
        let mut flags = self.qos.as_u8() << 1;
        if self.dup {
            flags |= FLAG_DUP;
        }
        if self.retain {
            flags |= FLAG_RETAIN;
        }
        flags
    }
}

/// The fixed flags and allowed reason codes of each acknowledgement type.
fn response_rules(packet: PacketType) -> (u8, &'static [u8]) {
    match packet {
        PacketType::PubRel => (0b0010, allowed::PUBREL_PUBCOMP),
        PacketType::PubComp => (0, allowed::PUBREL_PUBCOMP),
        _ => (0, allowed::PUBACK_PUBREC),
    }
}

/// Decodes PUBACK, PUBREC, PUBREL or PUBCOMP. In 5.0 the reason code may be left out (Success)
/// and so may the properties.
pub(crate) fn decode_response(
    packet: PacketType,
    flags: u8,
    body: &mut Reader,
    version: ProtocolVersion,
) -> Result<PubResponse, DecodeError> {
    let (expected_flags, allowed_codes) = response_rules(packet);
    if packet == PacketType::PubRel {
        expect_request_flags(packet, flags, version)?;
    } else {
        expect_flags(packet, flags, expected_flags)?;
    }
    let packet_id = read_packet_id(body)?;
    let mut response = PubResponse::success(packet_id);
    if version.is_v5() && !body.is_empty() {
        let code = body.u8("reason code")?;
        if !allowed_codes.contains(&code) {
            return Err(DecodeError::InvalidReasonCode { packet, code });
        }
        response.reason_code = ReasonCode(code);
        if !body.is_empty() {
            response.properties = AckProperties::decode(body)?;
        }
    }
    Ok(response)
}

/// A [`PubResponse`] with the packet type it is sent as.
#[derive(Debug)]
pub(crate) struct ResponseBody<'a> {
    packet: PacketType,
    response: &'a PubResponse,
}

impl<'a> ResponseBody<'a> {
    pub(crate) fn new(packet: PacketType, response: &'a PubResponse) -> Self {
        Self { packet, response }
    }

    /// 5.0 leaves out what it can: the properties when empty, and the reason code too when it
    /// is Success.
    fn v5_tail_len(&self) -> usize {
        optional_reason_len(
            self.response.reason_code,
            self.response.properties.wire_len(),
        )
    }
}

impl EncodeBody for ResponseBody<'_> {
    fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        if version.is_v5() {
            self.response.properties.check()?;
        }
        Ok(())
    }

    fn body_len(&self, version: ProtocolVersion) -> usize {
        2 + if version.is_v5() {
            self.v5_tail_len()
        } else {
            0
        }
    }

    fn write_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        buf.put_u16(self.response.packet_id.get());
        if !version.is_v5() {
            return;
        }
        match self.v5_tail_len() {
            0 => {}
            1 => buf.put_u8(self.response.reason_code.0),
            _ => {
                buf.put_u8(self.response.reason_code.0);
                self.response.properties.write(buf);
            }
        }
    }

    fn flags(&self) -> u8 {
        response_rules(self.packet).0
    }
}
