//! CONNECT and CONNACK bodies. CONNECT is decoded and encoded in the version it announces
//! (its protocol name and level), whatever the codec's version; CONNACK in the codec's version.

use bytes::{BufMut, BytesMut};

use super::codec::{expect_flags, DecodeBody, EncodeBody};
use super::error::{DecodeError, EncodeError};
use super::packet::{ConnAck, Connect, PacketType, Will};
use super::property::{check_authentication, ConnAckProperties, ConnectProperties, WillProperties};
use super::reason::{allowed, ReasonCode};
use super::types::{ClientId, ProtocolVersion, QoS, TopicName};
use super::wire::{binary_len, check_field_len, put_binary, Reader};

const FLAG_RESERVED: u8 = 0x01;
const FLAG_CLEAN_START: u8 = 0x02;
const FLAG_WILL: u8 = 0x04;
const FLAG_WILL_RETAIN: u8 = 0x20;
const FLAG_PASSWORD: u8 = 0x40;
const FLAG_USERNAME: u8 = 0x80;
const WILL_QOS_SHIFT: u8 = 3;

/// Maps the protocol name and level to a version.
fn protocol_version(name: &[u8], level: u8) -> Result<ProtocolVersion, DecodeError> {
    match (name, level) {
        (b"MQIsdp", 3) => Ok(ProtocolVersion::V3_1),
        (b"MQTT", 4) => Ok(ProtocolVersion::V3_1_1),
        (b"MQTT", 5) => Ok(ProtocolVersion::V5),
        (b"MQTT", level) => Err(DecodeError::UnsupportedProtocolVersion {
            name: "MQTT",
            level,
        }),
        (b"MQIsdp", level) => Err(DecodeError::UnsupportedProtocolVersion {
            name: "MQIsdp",
            level,
        }),
        _ => Err(DecodeError::InvalidProtocolName),
    }
}

impl DecodeBody for Connect {
    fn decode(flags: u8, body: &mut Reader, _: ProtocolVersion) -> Result<Self, DecodeError> {
        expect_flags(PacketType::Connect, flags, 0)?;
        let name = body.binary("protocol name")?;
        let level = body.u8("protocol level")?;
        let protocol = protocol_version(&name, level)?;
        let connect_flags = body.u8("connect flags")?;
        if connect_flags & FLAG_RESERVED != 0 {
            return Err(DecodeError::ReservedConnectFlag);
        }
        let has_will = connect_flags & FLAG_WILL != 0;
        let will_qos = QoS::from_bits((connect_flags >> WILL_QOS_SHIFT) & 0x03)?;
        let will_retain = connect_flags & FLAG_WILL_RETAIN != 0;
        if !has_will && (will_qos != QoS::AtMostOnce || will_retain) {
            return Err(DecodeError::InconsistentWillFlags);
        }
        let has_username = connect_flags & FLAG_USERNAME != 0;
        let has_password = connect_flags & FLAG_PASSWORD != 0;
        if has_password && !has_username && !protocol.is_v5() {
            return Err(DecodeError::PasswordWithoutUsername);
        }
        let keep_alive = body.u16("keep alive")?;
        let properties = if protocol.is_v5() {
            ConnectProperties::decode(body)?
        } else {
            ConnectProperties::default()
        };
        check_authentication(
            &properties.authentication_method,
            &properties.authentication_data,
        )?;
        let client_id = ClientId::from_mqtt_string(body.string("client identifier")?);
        let will = if has_will {
            let properties = if protocol.is_v5() {
                WillProperties::decode(body)?
            } else {
                WillProperties::default()
            };
            let topic = TopicName::from_mqtt_string(body.string("will topic")?)?;
            let payload = body.binary("will payload")?;
            Some(Will {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = if has_username {
            Some(body.string("user name")?)
        } else {
            None
        };
        let password = if has_password {
            Some(body.binary("password")?)
        } else {
            None
        };
        Ok(Self {
            protocol,
            clean_start: connect_flags & FLAG_CLEAN_START != 0,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
        })
    }
}

impl Connect {
    fn connect_flags(&self) -> u8 {
        let mut flags = 0;
        if self.clean_start {
            flags |= FLAG_CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= FLAG_WILL | will.qos.as_u8() << WILL_QOS_SHIFT;
            if will.retain {
                flags |= FLAG_WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= FLAG_USERNAME;
        }
        if self.password.is_some() {
            flags |= FLAG_PASSWORD;
        }
        flags
    }
}

impl EncodeBody for Connect {
    fn check(&self, _: ProtocolVersion) -> Result<(), EncodeError> {
        if self.password.is_some() && self.username.is_none() && !self.protocol.is_v5() {
            return Err(EncodeError::PasswordWithoutUsername);
        }
        if let Some(will) = &self.will {
            check_field_len(&will.payload, "will payload")?;
            will.properties.check()?;
        }
        if let Some(password) = &self.password {
            check_field_len(password, "password")?;
        }
        self.properties.check()
    }

    fn body_len(&self, _: ProtocolVersion) -> usize {
        let v5 = self.protocol.is_v5();
        let mut len = binary_len(self.protocol.protocol_name().as_bytes()) + 1 + 1 + 2;
        if v5 {
            len += self.properties.wire_len();
        }
        len += binary_len(self.client_id.as_mqtt_str().as_bytes());
        if let Some(will) = &self.will {
            if v5 {
                len += will.properties.wire_len();
            }
            len += binary_len(will.topic.as_mqtt_str().as_bytes()) + binary_len(&will.payload);
        }
        len += self
            .username
            .as_ref()
            .map_or(0, |name| binary_len(name.as_bytes()));
        len + self
            .password
            .as_ref()
            .map_or(0, |password| binary_len(password))
    }

    fn write_body(&self, _: ProtocolVersion, buf: &mut BytesMut) {
        let v5 = self.protocol.is_v5();
        put_binary(buf, self.protocol.protocol_name().as_bytes());
        buf.put_u8(self.protocol.level());
        buf.put_u8(self.connect_flags());
        buf.put_u16(self.keep_alive);
        if v5 {
            self.properties.write(buf);
        }
        put_binary(buf, self.client_id.as_mqtt_str().as_bytes());
        if let Some(will) = &self.will {
            if v5 {
                will.properties.write(buf);
            }
            put_binary(buf, will.topic.as_mqtt_str().as_bytes());
            put_binary(buf, &will.payload);
        }
        if let Some(username) = &self.username {
            put_binary(buf, username.as_bytes());
        }
        if let Some(password) = &self.password {
            put_binary(buf, password);
        }
    }

    fn flags(&self) -> u8 {
        0
    }
}

const CONNACK_SESSION_PRESENT: u8 = 0x01;

impl DecodeBody for ConnAck {
    fn decode(flags: u8, body: &mut Reader, version: ProtocolVersion) -> Result<Self, DecodeError> {
        expect_flags(PacketType::ConnAck, flags, 0)?;
        let ack_flags = body.u8("connect acknowledge flags")?;
        // 3.1 has no acknowledge flags (and so no Session Present): the byte is unused.
        let ack_flags = if version == ProtocolVersion::V3_1 {
            0
        } else {
            ack_flags
        };
        if ack_flags & !CONNACK_SESSION_PRESENT != 0 {
            return Err(DecodeError::ReservedConnAckFlags);
        }
        let code = body.u8("connect reason code")?;
        let invalid = DecodeError::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code,
        };
        let (reason_code, properties) = if version.is_v5() {
            if !allowed::CONNACK.contains(&code) {
                return Err(invalid);
            }
            (ReasonCode(code), ConnAckProperties::decode(body)?)
        } else {
            (
                ReasonCode::from_v3_connack(code).ok_or(invalid)?,
                ConnAckProperties::default(),
            )
        };
        let session_present = ack_flags & CONNACK_SESSION_PRESENT != 0;
        // [MQTT-3.2.2-6] / [MQTT-3.2.2-4]: a refused connection has no session.
        if session_present && reason_code != ReasonCode::SUCCESS {
            return Err(DecodeError::SessionPresentOnFailure);
        }
        check_authentication(
            &properties.authentication_method,
            &properties.authentication_data,
        )?;
        Ok(Self {
            session_present,
            reason_code,
            properties,
        })
    }
}

impl EncodeBody for ConnAck {
    fn check(&self, version: ProtocolVersion) -> Result<(), EncodeError> {
        if version.is_v5() {
            self.properties.check()?;
        }
        Ok(())
    }

    fn body_len(&self, version: ProtocolVersion) -> usize {
        2 + if version.is_v5() {
            self.properties.wire_len()
        } else {
            0
        }
    }

    fn write_body(&self, version: ProtocolVersion, buf: &mut BytesMut) {
        buf.put_u8(u8::from(
            self.session_present && version != ProtocolVersion::V3_1,
        ));
        if version.is_v5() {
            buf.put_u8(self.reason_code.0);
            self.properties.write(buf);
        } else {
            buf.put_u8(self.reason_code.to_v3_connack());
        }
    }

    fn flags(&self) -> u8 {
        0
    }
}
