//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK bodies.

use bytes::{BufMut, BytesMut};

use super::codec::{expect_flags, expect_request_flags, DecodeBody, EncodeBody};
use super::error::{DecodeError, EncodeError};
use super::packet::{
    PacketType, SubAck, Subscribe, Subscription, SubscriptionOptions, UnsubAck, Unsubscribe,
};
use super::property::{AckProperties, SubscribeProperties, UnsubscribeProperties};
use super::publish::read_packet_id;
use super::reason::{allowed, ReasonCode};
use super::types::{ProtocolVersion, QoS, RetainHandling, TopicFilter};
use super::wire::{binary_len, put_binary, Reader};

/// SUBSCRIBE and UNSUBSCRIBE carry these fixed header flags in every version.
const REQUEST_FLAGS: u8 = 0b0010;

const OPTION_NO_LOCAL: u8 = 0x04;
const OPTION_RETAIN_AS_PUBLISHED: u8 = 0x08;
const RETAIN_HANDLING_SHIFT: u8 = 4;

impl SubscriptionOptions {
    fn decode(byte: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let reserved = if version.is_v5() { 0xC0 } else { 0xFC };
        // [MQTT-3.8.3-5]: reserved bits make the packet malformed; the values below that are
        // out of range are Protocol Errors instead (3.8.3.1).
        if byte & reserved != 0 {
            return Err(DecodeError::ReservedSubscriptionOptionBits(byte));
        }
        let retain_handling = match (byte >> RETAIN_HANDLING_SHIFT) & 0x03 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::InvalidSubscriptionOptions(byte)),
        };
        Ok(Self {
            qos: QoS::from_bits(byte & 0x03)
                .map_err(|_| DecodeError::InvalidSubscriptionOptions(byte))?,
            no_local: byte & OPTION_NO_LOCAL != 0,
            retain_as_published: byte & OPTION_RETAIN_AS_PUBLISHED != 0,
            retain_handling,
        })
    }

    fn encode(&self, version: ProtocolVersion) -> u8 {
        let mut byte = self.qos.as_u8();
        if version.is_v5() {
            if self.no_local {
                byte |= OPTION_NO_LOCAL;
            }
            if self.retain_as_published {
                byte |= OPTION_RETAIN_AS_PUBLISHED;
            }
            let handling = match self.retain_handling {
                RetainHandling::SendAtSubscribe => 0,
                RetainHandling::SendIfNew => 1,
                RetainHandling::DoNotSend => 2,
            };
            byte |= handling << RETAIN_HANDLING_SHIFT;
        }
        byte
    }
}

impl DecodeBody for Subscribe {
    fn decode(flags: u8, body: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        expect_request_flags(PacketType::Subscribe, flags, version)?;
        let packet_id = read_packet_id(body)?;
        let properties = if version.is_v5() {
            SubscribeProperties::decode(body)?
        } else {
            SubscribeProperties::default()
        };
        let mut filters = Vec::new();
        while !body.is_empty() {
            let filter = TopicFilter::from_mqtt_string(body.string("topic filter")?)?;
            let byte = body.u8("subscription options")?;
            let options = SubscriptionOptions::decode(byte, version)?;
            // [MQTT-3.8.3-4]: No Local on a shared subscription is a Protocol Error.
            if options.no_local && filter.shared().is_some() {
                return Err(DecodeError::InvalidSubscriptionOptions(byte));
            }
            filters.push(Subscription { filter, options });
        }
        if filters.is_empty() {
            return Err(DecodeError::EmptyPayload(PacketType::Subscribe));
        }
        Ok(Self {
            packet_id,
            properties,
            filters,
        })
    }
}

impl EncodeBody for Subscribe {
    fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::EmptyPayload(PacketType::Subscribe));
        }
        if version.is_v5() {
            self.properties.check()?;
        }
        Ok(())
    }

    fn body_len(&self, version: ProtocolVersion) -> usize {
        let properties = if version.is_v5() {
            self.properties.wire_len()
        } else {
            0
        };
        let filters: usize = self
            .filters
            .iter()
            .map(|sub| binary_len(sub.filter.as_mqtt_str().as_bytes()) + 1)
            .sum();
        2 + properties + filters
    }

    fn write_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.write(buf);
        }
        for sub in &self.filters {
            put_binary(buf, sub.filter.as_mqtt_str().as_bytes());
            buf.put_u8(sub.options.encode(version));
        }
    }

    fn flags(&self) -> u8 {
        REQUEST_FLAGS
    }
}

/// Reads the reason codes that fill the rest of a SUBACK or UNSUBACK.
fn decode_reason_codes(
    packet: PacketType,
    body: &mut Reader,
    allowed_codes: &[u8],
) -> Result<Vec<ReasonCode>, DecodeError> {
    let codes = body.rest();
    if codes.is_empty() {
        return Err(DecodeError::EmptyPayload(packet));
    }
    codes
        .iter()
        .map(|&code| {
            if allowed_codes.contains(&code) {
                Ok(ReasonCode(code))
            } else {
                Err(DecodeError::InvalidReasonCode { packet, code })
            }
        })
        .collect()
}

/// The return codes a 3.1.1 SUBACK may carry.
const V3_SUBACK: &[u8] = &[0x00, 0x01, 0x02, 0x80];

impl DecodeBody for SubAck {
    fn decode(flags: u8, body: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        expect_flags(PacketType::SubAck, flags, 0)?;
        let packet_id = read_packet_id(body)?;
        let (properties, allowed_codes) = if version.is_v5() {
            (AckProperties::decode(body)?, allowed::SUBACK)
        } else {
            (AckProperties::default(), V3_SUBACK)
        };
        let reason_codes = decode_reason_codes(PacketType::SubAck, body, allowed_codes)?;
        Ok(Self {
            packet_id,
            properties,
            reason_codes,
        })
    }
}

impl EncodeBody for SubAck {
    fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        if self.reason_codes.is_empty() {
            return Err(EncodeError::EmptyPayload(PacketType::SubAck));
        }
        if version.is_v5() {
            self.properties.check()?;
        }
        Ok(())
    }

    fn body_len(&self, version: ProtocolVersion) -> usize {
        let properties = if version.is_v5() {
            self.properties.wire_len()
        } else {
            0
        };
        2 + properties + self.reason_codes.len()
    }

    fn write_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.write(buf);
            buf.extend(self.reason_codes.iter().map(|code| code.0));
        } else {
            buf.extend(self.reason_codes.iter().map(|code| code.to_v3_suback()));
        }
    }

    fn flags(&self) -> u8 {
        0
    }
}

impl DecodeBody for Unsubscribe {
    fn decode(flags: u8, body: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        expect_request_flags(PacketType::Unsubscribe, flags, version)?;
        let packet_id = read_packet_id(body)?;
        let properties = if version.is_v5() {
            UnsubscribeProperties::decode(body)?
        } else {
            UnsubscribeProperties::default()
        };
        let mut filters = Vec::new();
        while !body.is_empty() {
            filters.push(TopicFilter::from_mqtt_string(body.string("topic filter")?)?);
        }
        if filters.is_empty() {
            return Err(DecodeError::EmptyPayload(PacketType::Unsubscribe));
        }
        Ok(Self {
            packet_id,
            properties,
            filters,
        })
    }
}

impl EncodeBody for Unsubscribe {
    fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        if self.filters.is_empty() {
            return Err(EncodeError::EmptyPayload(PacketType::Unsubscribe));
        }
        if version.is_v5() {
            self.properties.check()?;
        }
        Ok(())
    }

    fn body_len(&self, version: ProtocolVersion) -> usize {
        let properties = if version.is_v5() {
            self.properties.wire_len()
        } else {
            0
        };
        let filters: usize = self
            .filters
            .iter()
            .map(|filter| binary_len(filter.as_mqtt_str().as_bytes()))
            .sum();
        2 + properties + filters
    }

    fn write_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.write(buf);
        }
        for filter in &self.filters {
            put_binary(buf, filter.as_mqtt_str().as_bytes());
        }
    }

    fn flags(&self) -> u8 {
        REQUEST_FLAGS
    }
}

impl DecodeBody for UnsubAck {
    fn decode(flags: u8, body: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        expect_flags(PacketType::UnsubAck, flags, 0)?;
        let packet_id = read_packet_id(body)?;
        if !version.is_v5() {
            return Ok(Self {
                packet_id,
                properties: AckProperties::default(),
                reason_codes: Vec::new(),
            });
        }
        let properties = AckProperties::decode(body)?;
        let reason_codes = decode_reason_codes(PacketType::UnsubAck, body, allowed::UNSUBACK)?;
        Ok(Self {
            packet_id,
            properties,
            reason_codes,
        })
    }
}

impl EncodeBody for UnsubAck {
    fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        if version.is_v5() {
            if self.reason_codes.is_empty() {
                return Err(EncodeError::EmptyPayload(PacketType::UnsubAck));
            }
            self.properties.check()?;
        }
        Ok(())
    }

    fn body_len(&self, version: ProtocolVersion) -> usize {
        if version.is_v5() {
            2 + self.properties.wire_len() + self.reason_codes.len()
        } else {
            2
        }
    }

    fn write_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.write(buf);
            buf.extend(self.reason_codes.iter().map(|code| code.0));
        }
    }

    fn flags(&self) -> u8 {
        0
    }
}
