//! Writes a seed corpus for the `decode` fuzz target: one file per packet type and protocol
//! version, plus one read buffer holding every packet of a version back to back.
//!
//! Seeds are well-formed packets with most optional fields set (properties, will, user name,
//! reason codes), so the fuzzer starts inside every body decoder instead of having to discover
//! the protocol name and the property identifiers byte by byte. Each file starts with the
//! selector byte the target reads first (the version; maximum packet size left at MQTT's own).
//! The corpus is generated, not kept in git:
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds -- fuzz/corpus/decode
//! ```

use std::num::{NonZeroU16, NonZeroU32};
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::{Bytes, BytesMut};
use starling::protocol::{
    AckProperties, Auth, AuthProperties, ClientId, Codec, ConnAck, ConnAckProperties, Connect,
    ConnectProperties, DecodeError, Disconnect, DisconnectProperties, MqttString, Packet, PacketId,
    PayloadFormat, ProtocolVersion, PubResponse, Publish, PublishProperties, QoS, ReasonCode,
    RetainHandling, SubAck, Subscribe, SubscribeProperties, Subscription, SubscriptionId,
    SubscriptionOptions, TopicFilter, TopicName, UnsubAck, Unsubscribe, UnsubscribeProperties,
    UserProperty, Will, WillProperties,
};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: seeds <corpus directory>");
        return ExitCode::FAILURE;
    };
    match write_seeds(&dir) {
        Ok(count) => {
            println!("wrote {count} seeds to {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("seeds: {error}");
            ExitCode::FAILURE
        }
    }
}

fn write_seeds(dir: &std::path::Path) -> Result<usize, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let mut count = 0;
    // The selector byte's low two bits are the version, as `codec_for` in the target reads it.
    for (selector, version) in [
        (0u8, ProtocolVersion::V3_1),
        (1, ProtocolVersion::V3_1_1),
        (2, ProtocolVersion::V5),
    ] {
        let codec = Codec::new(version);
        let packets = packets(version)?;
        let mut stream = BytesMut::from(&[selector][..]);
        for (name, packet) in &packets {
            let mut seed = BytesMut::from(&[selector][..]);
            // AUTH and an aliased PUBLISH exist only in 5.0: not seeds for 3.x.
            let v5_only = matches!(packet, Packet::Auth(_))
                || matches!(packet, Packet::Publish(publish) if publish.topic.is_empty());
            if (v5_only && !version.is_v5()) || codec.encode(packet, &mut seed).is_err() {
                continue;
            }
            stream.extend_from_slice(&seed[1..]);
            std::fs::write(dir.join(format!("v{version}-{name}")), &seed)?;
            count += 1;
        }
        std::fs::write(dir.join(format!("v{version}-stream")), &stream)?;
        count += 1;
    }
    Ok(count)
}

fn text(value: &'static str) -> Result<MqttString, DecodeError> {
    MqttString::from_static(value)
}

fn user_property() -> Result<UserProperty, DecodeError> {
    Ok(UserProperty {
        name: text("region")?,
        value: text("eu-west")?,
    })
}

fn id(value: u16) -> Result<PacketId, DecodeError> {
    PacketId::new(value).ok_or(DecodeError::ZeroPacketId)
}

fn ack(packet_id: PacketId, reason_code: ReasonCode) -> Result<PubResponse, DecodeError> {
    Ok(PubResponse {
        packet_id,
        reason_code,
        properties: AckProperties {
            reason_string: Some(text("seed")?),
            user_properties: vec![user_property()?],
        },
    })
}

/// One packet of every type, named for its file; CONNECT announces `version`.
fn packets(version: ProtocolVersion) -> Result<Vec<(&'static str, Packet)>, DecodeError> {
    let packet_id = id(0x1234)?;
    Ok(vec![
        ("connect", Packet::Connect(Box::new(connect(version)?))),
        (
            "connect-minimal",
            Packet::Connect(Box::new(Connect {
                protocol: version,
                clean_start: true,
                keep_alive: 0,
                client_id: ClientId::default(),
                will: None,
                username: None,
                password: None,
                properties: ConnectProperties::default(),
            })),
        ),
        (
            "connack",
            Packet::ConnAck(ConnAck {
                session_present: true,
                reason_code: ReasonCode::SUCCESS,
                properties: ConnAckProperties {
                    receive_maximum: NonZeroU16::new(100),
                    maximum_qos: Some(QoS::AtLeastOnce),
                    assigned_client_identifier: Some(ClientId::new("auto-1")?),
                    topic_alias_maximum: Some(10),
                    server_keep_alive: Some(30),
                    ..ConnAckProperties::default()
                },
            }),
        ),
        (
            "publish-qos0",
            Packet::Publish(publish(QoS::AtMostOnce, None)?),
        ),
        (
            "publish-qos1",
            Packet::Publish(publish(QoS::AtLeastOnce, Some(packet_id))?),
        ),
        (
            "publish-qos2",
            Packet::Publish(publish(QoS::ExactlyOnce, Some(packet_id))?),
        ),
        (
            "publish-alias",
            Packet::Publish(Publish {
                topic: TopicName::empty(),
                properties: PublishProperties {
                    topic_alias: NonZeroU16::new(3),
                    ..PublishProperties::default()
                },
                ..publish(QoS::AtMostOnce, None)?
            }),
        ),
        ("puback", Packet::PubAck(PubResponse::success(packet_id))),
        (
            "puback-reason",
            Packet::PubAck(ack(packet_id, ReasonCode::NO_MATCHING_SUBSCRIBERS)?),
        ),
        (
            "pubrec",
            Packet::PubRec(ack(packet_id, ReasonCode::QUOTA_EXCEEDED)?),
        ),
        (
            "pubrel",
            Packet::PubRel(ack(packet_id, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND)?),
        ),
        ("pubcomp", Packet::PubComp(PubResponse::success(packet_id))),
        ("subscribe", Packet::Subscribe(subscribe(packet_id)?)),
        (
            "suback",
            Packet::SubAck(SubAck {
                packet_id,
                properties: AckProperties::default(),
                reason_codes: vec![
                    ReasonCode::GRANTED_QOS_1,
                    ReasonCode::GRANTED_QOS_2,
                    ReasonCode::NOT_AUTHORIZED,
                ],
            }),
        ),
        (
            "unsubscribe",
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties: UnsubscribeProperties {
                    user_properties: vec![user_property()?],
                },
                filters: vec![TopicFilter::new("sensors/+/temperature")?],
            }),
        ),
        (
            "unsuback",
            Packet::UnsubAck(UnsubAck {
                packet_id,
                properties: AckProperties::default(),
                reason_codes: vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED],
            }),
        ),
        ("pingreq", Packet::PingReq),
        ("pingresp", Packet::PingResp),
        ("disconnect", Packet::Disconnect(Disconnect::default())),
        (
            "disconnect-reason",
            Packet::Disconnect(Disconnect {
                reason_code: ReasonCode::DISCONNECT_WITH_WILL,
                properties: DisconnectProperties {
                    session_expiry_interval: Some(60),
                    reason_string: Some(text("bye")?),
                    ..DisconnectProperties::default()
                },
            }),
        ),
        (
            "auth",
            Packet::Auth(Auth {
                reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
                properties: AuthProperties {
                    authentication_method: Some(text("SCRAM-SHA-256")?),
                    authentication_data: Some(Bytes::from_static(b"n,,n=user,r=nonce")),
                    ..AuthProperties::default()
                },
            }),
        ),
    ])
}

fn connect(version: ProtocolVersion) -> Result<Connect, DecodeError> {
    Ok(Connect {
        protocol: version,
        clean_start: false,
        keep_alive: 60,
        client_id: ClientId::new("sensor-0042")?,
        will: Some(Will {
            topic: TopicName::new("sensors/0042/status")?,
            payload: Bytes::from_static(b"offline"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties {
                will_delay_interval: Some(5),
                payload_format_indicator: Some(PayloadFormat::Utf8),
                content_type: Some(text("text/plain")?),
                ..WillProperties::default()
            },
        }),
        username: Some(text("sensor")?),
        password: Some(Bytes::from_static(b"hunter2")),
        properties: ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: NonZeroU16::new(32),
            maximum_packet_size: NonZeroU32::new(1 << 20),
            topic_alias_maximum: Some(16),
            request_problem_information: Some(true),
            user_properties: vec![user_property()?],
            ..ConnectProperties::default()
        },
    })
}

fn publish(qos: QoS, packet_id: Option<PacketId>) -> Result<Publish, DecodeError> {
    Ok(Publish {
        dup: false,
        qos,
        retain: qos == QoS::AtLeastOnce,
        topic: TopicName::new("sensors/0042/temperature")?,
        packet_id,
        properties: PublishProperties {
            payload_format_indicator: Some(PayloadFormat::Utf8),
            message_expiry_interval: Some(300),
            response_topic: Some(TopicName::new("replies/0042")?),
            correlation_data: Some(Bytes::from_static(b"req-7")),
            user_properties: vec![user_property()?],
            subscription_identifiers: SubscriptionId::new(7).into_iter().collect(),
            content_type: Some(text("application/json")?),
            ..PublishProperties::default()
        },
        payload: Bytes::from_static(br#"{"celsius":21.5}"#),
    })
}

fn subscribe(packet_id: PacketId) -> Result<Subscribe, DecodeError> {
    Ok(Subscribe {
        packet_id,
        properties: SubscribeProperties {
            subscription_identifier: SubscriptionId::new(7),
            user_properties: vec![user_property()?],
        },
        filters: vec![
            Subscription {
                filter: TopicFilter::new("sensors/+/temperature")?,
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: true,
                    retain_as_published: true,
                    retain_handling: RetainHandling::SendIfNew,
                },
            },
            Subscription {
                filter: TopicFilter::new("$share/workers/jobs/#")?,
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    retain_handling: RetainHandling::DoNotSend,
                    ..SubscriptionOptions::default()
                },
            },
        ],
    })
}
