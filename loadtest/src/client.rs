//! One MQTT client connection during setup: TCP connect, CONNECT→CONNACK, SUBSCRIBE→SUBACK,
//! each bounded by a timeout and timed for the connect statistics.
//!
//! It owns the socket and its two buffers (one `BytesMut` each way) and hands them to the
//! driver when setup is done. It never retries and never reconnects: a refusal or a timeout is
//! an error naming the client, because a load test that quietly papers over failures measures
//! nothing.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use starling::protocol::{
    ClientId, Codec, Connect, ConnectProperties, DecodeError, MqttString, Packet, PacketId, QoS,
    ReasonCode, Subscribe, SubscribeProperties, Subscription, SubscriptionOptions, TopicFilter,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::MqttVersion;

/// Free room a read starts with at first: small, so ten thousand idle connections cost little.
pub const READ_MIN: usize = 4 * 1024;
/// Largest free room a read asks for, reached by doubling while reads fill the buffer.
pub const READ_MAX: usize = 64 * 1024;

/// What every connection of a run sends in CONNECT.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Protocol version.
    pub version: MqttVersion,
    /// Keep alive, seconds; 0 turns keep-alive off.
    pub keep_alive_s: u16,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<String>,
    /// Limit of each setup step.
    pub timeout: Duration,
}

/// How long each setup step took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Handshake {
    /// TCP connect.
    pub tcp: Duration,
    /// CONNECT written to CONNACK read.
    pub connack: Duration,
    /// SUBSCRIBE written to SUBACK read, for subscribers.
    pub suback: Option<Duration>,
}

/// Why a connection could not be set up.
#[derive(Debug)]
pub enum SetupError {
    /// TCP connect failed.
    Connect(std::io::Error),
    /// A step did not finish in time.
    Timeout(&'static str),
    /// CONNACK carried a failure code.
    Refused(ReasonCode),
    /// SUBACK refused a filter.
    SubscribeRefused(String, ReasonCode),
    /// The broker closed the connection or the socket failed.
    Closed(String),
    /// The broker sent something that breaks the protocol, or a value we cannot use.
    Protocol(String),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(error) => write!(f, "TCP connect failed: {error}"),
            Self::Timeout(step) => write!(f, "timed out waiting for {step}"),
            Self::Refused(code) => write!(f, "broker refused the connection: CONNACK {code}"),
            Self::SubscribeRefused(filter, code) => {
                write!(
                    f,
                    "broker refused the subscription to {filter:?}: SUBACK {code}"
                )
            }
            Self::Closed(why) => write!(f, "connection closed during setup: {why}"),
            Self::Protocol(why) => write!(f, "protocol error during setup: {why}"),
        }
    }
}

/// What the broker allows this connection, from CONNACK.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most unacknowledged QoS 1/2 publishes the broker takes from us.
    pub receive_maximum: u16,
    /// Keep alive in force (the broker's Server Keep Alive wins in 5.0).
    pub keep_alive: Option<Duration>,
    /// Highest QoS the broker supports.
    pub maximum_qos: QoS,
}

/// An open, accepted connection.
#[derive(Debug)]
pub struct Connection {
    /// The socket (TCP_NODELAY set: the harness coalesces writes itself).
    pub stream: TcpStream,
    /// The codec in the connection's version.
    pub codec: Codec,
    /// Bytes read and not yet decoded.
    pub rbuf: BytesMut,
    /// Bytes encoded and not yet written.
    pub wbuf: BytesMut,
    /// Packets that arrived during setup after the one awaited; the driver handles them first.
    pub pending: VecDeque<Packet>,
    /// Limits from CONNACK.
    pub limits: Limits,
}

impl Connection {
    /// Opens a TCP connection to `addr` and completes CONNECT→CONNACK.
    pub async fn open(
        addr: SocketAddr,
        options: &ClientOptions,
        client_id: &str,
    ) -> Result<(Self, Handshake), SetupError> {
        let started = Instant::now();
        let stream = tokio::time::timeout(options.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| SetupError::Timeout("TCP connect"))?
            .map_err(SetupError::Connect)?;
        let tcp = started.elapsed();
        stream
            .set_nodelay(true)
            .map_err(|e| SetupError::Closed(e.to_string()))?;
        let codec = Codec::new(options.version.protocol());
        let mut connection = Self {
            stream,
            codec,
            rbuf: BytesMut::with_capacity(READ_MIN),
            wbuf: BytesMut::with_capacity(4096),
            pending: VecDeque::new(),
            limits: Limits {
                receive_maximum: u16::MAX,
                keep_alive: None,
                maximum_qos: QoS::ExactlyOnce,
            },
        };
        let connect = connect_packet(options, client_id)?;
        let sent = Instant::now();
        connection.send(&connect).await?;
        let ack = tokio::time::timeout(options.timeout, connection.await_packet(is_connack))
            .await
            .map_err(|_| SetupError::Timeout("CONNACK"))??;
        let connack = sent.elapsed();
        let Packet::ConnAck(ack) = ack else {
            return Err(SetupError::Protocol("expected CONNACK".into()));
        };
        if !ack.reason_code.is_success() {
            return Err(SetupError::Refused(ack.reason_code));
        }
        let keep_alive_s = ack
            .properties
            .server_keep_alive
            .unwrap_or(options.keep_alive_s);
        connection.limits = Limits {
            receive_maximum: ack
                .properties
                .receive_maximum
                .map_or(u16::MAX, NonZeroU16::get),
            keep_alive: (keep_alive_s > 0).then(|| Duration::from_secs(keep_alive_s.into())),
            maximum_qos: ack.properties.maximum_qos.unwrap_or(QoS::ExactlyOnce),
        };
        Ok((
            connection,
            Handshake {
                tcp,
                connack,
                suback: None,
            },
        ))
    }

    /// Subscribes to `filter` and waits for a SUBACK that grants it.
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: QoS,
        timeout: Duration,
    ) -> Result<Duration, SetupError> {
        let filter_value = TopicFilter::new(filter)
            .map_err(|e| SetupError::Protocol(format!("invalid filter {filter:?}: {e}")))?;
        let packet_id = PacketId::from(NonZeroU16::MIN);
        let subscribe = Packet::Subscribe(Subscribe {
            packet_id,
            properties: SubscribeProperties::default(),
            filters: vec![Subscription {
                filter: filter_value,
                options: SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            }],
        });
        let sent = Instant::now();
        self.send(&subscribe).await?;
        let ack = tokio::time::timeout(timeout, self.await_packet(is_suback))
            .await
            .map_err(|_| SetupError::Timeout("SUBACK"))??;
        let elapsed = sent.elapsed();
        let Packet::SubAck(ack) = ack else {
            return Err(SetupError::Protocol("expected SUBACK".into()));
        };
        if ack.packet_id != packet_id {
            return Err(SetupError::Protocol(format!(
                "SUBACK for packet id {} instead of {}",
                ack.packet_id.get(),
                packet_id.get()
            )));
        }
        match ack.reason_codes.first() {
            Some(code) if code.is_success() => Ok(elapsed),
            Some(&code) => Err(SetupError::SubscribeRefused(filter.to_owned(), code)),
            None => Err(SetupError::Protocol("SUBACK without a reason code".into())),
        }
    }

    /// Encodes `packet` and writes everything buffered.
    async fn send(&mut self, packet: &Packet) -> Result<(), SetupError> {
        self.codec.encode(packet, &mut self.wbuf).map_err(|e| {
            SetupError::Protocol(format!("cannot encode {:?}: {e}", packet.packet_type()))
        })?;
        let result = self.stream.write_all(&self.wbuf).await;
        self.wbuf.clear();
        result.map_err(|e| SetupError::Closed(e.to_string()))
    }

    /// Reads until a packet that `wanted` accepts arrives; keeps the others in `pending`.
    async fn await_packet(&mut self, wanted: fn(&Packet) -> bool) -> Result<Packet, SetupError> {
        loop {
            while let Some(packet) = self
                .codec
                .decode(&mut self.rbuf)
                .map_err(|e| SetupError::Protocol(format!("undecodable packet: {e}")))?
            {
                if wanted(&packet) {
                    return Ok(packet);
                }
                if let Packet::Disconnect(disconnect) = &packet {
                    return Err(SetupError::Closed(format!(
                        "broker sent DISCONNECT {}",
                        disconnect.reason_code
                    )));
                }
                self.pending.push_back(packet);
            }
            self.rbuf.reserve(READ_MIN);
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) => return Err(SetupError::Closed("closed by the broker".into())),
                Ok(_) => {}
                Err(error) => return Err(SetupError::Closed(error.to_string())),
            }
        }
    }
}

fn is_connack(packet: &Packet) -> bool {
    matches!(packet, Packet::ConnAck(_))
}

fn is_suback(packet: &Packet) -> bool {
    matches!(packet, Packet::SubAck(_))
}

fn invalid(what: &'static str) -> impl Fn(DecodeError) -> SetupError {
    move |error| SetupError::Protocol(format!("invalid {what}: {error}"))
}

fn connect_packet(options: &ClientOptions, client_id: &str) -> Result<Packet, SetupError> {
    let username = options
        .username
        .as_deref()
        .map(MqttString::new)
        .transpose()
        .map_err(invalid("user name"))?;
    Ok(Packet::Connect(Box::new(Connect {
        protocol: options.version.protocol(),
        clean_start: true,
        keep_alive: options.keep_alive_s,
        client_id: ClientId::new(client_id).map_err(invalid("client id"))?,
        will: None,
        username,
        password: options
            .password
            .as_ref()
            .map(|p| Bytes::copy_from_slice(p.as_bytes())),
        properties: ConnectProperties::default(),
    })))
}
