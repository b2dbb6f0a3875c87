//! DISCONNECT and AUTH bodies, and the 5.0 rule they share with the publish acknowledgements:
//! a trailing reason code and properties may be left out, meaning Success and none.

use bytes::{BufMut, BytesMut};

use super::codec::{expect_flags, DecodeBody, EncodeBody};
use super::error::{DecodeError, EncodeError};
use super::packet::{Auth, Disconnect, PacketType};
use super::property::{check_authentication, AuthProperties, DisconnectProperties};
use super::reason::{allowed, ReasonCode};
use super::types::ProtocolVersion;
use super::wire::Reader;

/// Bytes of an optional reason code followed by optional properties: nothing when the code is
/// Success and there are no properties, the code alone when there are no properties.
pub(crate) fn optional_reason_len(code: ReasonCode, properties_wire_len: usize) -> usize {
    // An empty property block is one byte: the zero property length.
    if properties_wire_len == 1 {
        usize::from(code != ReasonCode::SUCCESS)
    } else {
        1 + properties_wire_len
    }
}

/// Reads an optional reason code (checked against `allowed_codes`), then optional properties.
fn decode_optional_reason<P: Default>(
    packet: PacketType,
    body: &mut Reader,
    allowed_codes: &[u8],
    decode_properties: fn(&mut Reader) -> Result<P, DecodeError>,
) -> Result<(ReasonCode, P), DecodeError> {
    if body.is_empty() {
        return Ok((ReasonCode::SUCCESS, P::default()));
    }
    let code = body.u8("reason code")?;
    if !allowed_codes.contains(&code) {
        return Err(DecodeError::InvalidReasonCode { packet, code });
    }
    let properties = if body.is_empty() {
        P::default()
    } else {
        decode_properties(body)?
    };
    Ok((ReasonCode(code), properties))
}

impl DecodeBody for Disconnect {
    fn decode(flags: u8, body: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        expect_flags(PacketType::Disconnect, flags, 0)?;
        if !version.is_v5() {
            return Ok(Self::default());
        }
        let (reason_code, properties) = decode_optional_reason(
            PacketType::Disconnect,
            body,
            allowed::DISCONNECT,
            DisconnectProperties::decode,
        )?;
        Ok(Self {
            reason_code,
            properties,
        })
    }
}

impl EncodeBody for Disconnect {
    fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        if version.is_v5() {
            self.properties.check()?;
        }
        Ok(())
    }

    fn body_len(&self, version: ProtocolVersion) -> usize {
        if !version.is_v5() {
            return 0;
        }
        match optional_reason_len(self.reason_code, self.properties.wire_len()) {
            0 => 0,
            // A reason code alone may end the packet ([MQTT-3.14.2.2.1]), but rumqttc 0.24,
            // paho.golang before 0.22 and others then wait for a property length that never
            // comes and never see why they were disconnected: always write it.
            _ => 1 + self.properties.wire_len(),
        }
    }

    fn write_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        let len = self.body_len(version);
        if len > 0 {
            buf.put_u8(self.reason_code.0);
        }
        if len > 1 {
            self.properties.write(buf);
        }
    }

    fn flags(&self) -> u8 {
        0
    }
}

impl DecodeBody for Auth {
    fn decode(flags: u8, body: &mut Reader, _: ProtocolVersion) -> Result<Self, DecodeError> {
        // AUTH only reaches here in 5.0: the packet type is reserved in 3.x.
        expect_flags(PacketType::Auth, flags, 0)?;
        let (reason_code, properties) = decode_optional_reason(
            PacketType::Auth,
            body,
            allowed::AUTH,
            AuthProperties::decode,
        )?;
        check_authentication(
            &properties.authentication_method,
            &properties.authentication_data,
        )?;
        Ok(Self {
            reason_code,
            properties,
        })
    }
}

impl EncodeBody for Auth {
    fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        if !version.is_v5() {
            return Err(EncodeError::NotInVersion {
                packet: PacketType::Auth,
                version,
            });
        }
        self.properties.check()
    }

    fn body_len(&self, _: ProtocolVersion) -> usize {
        optional_reason_len(self.reason_code, self.properties.wire_len())
    }

    fn write_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        let len = self.body_len(version);
        if len > 0 {
            buf.put_u8(self.reason_code.0);
        }
        if len > 1 {
            self.properties.write(buf);
        }
    }

    fn flags(&self) -> u8 {
        0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::protocol::{Codec, Packet, ReasonCode};

    #[test]
    fn a_disconnect_with_a_reason_always_carries_a_property_length() {
        let encode = |reason_code| {
            let mut buf = BytesMut::new();
            let packet = Packet::Disconnect(Disconnect {
                reason_code,
                properties: DisconnectProperties::default(),
            });
            Codec::new(ProtocolVersion::V5)
                .encode(&packet, &mut buf)
                .unwrap();
            buf.to_vec()
        };
        assert_eq!(encode(ReasonCode::SUCCESS), [0xE0, 0x00]);
        assert_eq!(
            encode(ReasonCode::SERVER_SHUTTING_DOWN),
            [0xE0, 0x02, 0x8B, 0x00]
        );
    }
}
