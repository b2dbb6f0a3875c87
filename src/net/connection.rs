//! One client connection on a shard: the reader, which decodes packets and hands them to the
//! shard engine, and the writer, which drains the connection's outbound queue.
//!
//! Runs on the shard's glommio executor. The writer wakes once per notification, so everything
//! routed to this client within one executor tick goes out in as few writes as the queue has
//! chunks. Peer faults end in the spec's DISCONNECT reason code (5.0) or a close (3.x), never a
//! panic; the engine is told how the connection ended so it can handle the will.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::io::{AsyncWriteExt, ReadHalf};
use glommio::net::TcpStream;

use super::read_scratch::{read_into, ReadScratch};
use crate::protocol::{
    Codec, ConnAck, Disconnect, DisconnectProperties, Packet, ProtocolVersion, ReasonCode,
};
use crate::session::Close;
use crate::shard::{ConnectOutcome, ConnectionHandle, SessionKey, ShardEngine};

/// The per-connection settings taken from the config.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    /// Largest packet accepted from the client.
    pub max_packet_size: u32,
    /// Outbound byte budget.
    pub outbound_budget_bytes: usize,
    /// Time allowed between accept and CONNECT.
    pub connect_timeout: Duration,
}

/// How long a reader pauses before looking again whether the mesh has caught up.
const MESH_CONGESTION_PAUSE: Duration = Duration::from_millis(1);

/// How long the writer may take to flush a closing connection.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves one accepted connection until it ends.
pub async fn serve_connection(
    stream: TcpStream,
    engine: Rc<RefCell<ShardEngine>>,
    scratch: Rc<RefCell<ReadScratch>>,
    settings: ConnectionSettings,
) {
    // Small packets must not wait for Nagle; failure only costs latency.
    let _ = stream.set_nodelay(true);
    // IPv4 clients of a dual-stack listener show as ::ffff:a.b.c.d; log them as a.b.c.d.
    let peer = stream
        .peer_addr()
        .ok()
        .map(|peer| SocketAddr::new(peer.ip().to_canonical(), peer.port()));
    let (mut reader, writer) = futures_lite::io::split(stream);
    // Empty until a packet is half read: idle connections read through the shard's scratch.
    let mut buf = BytesMut::new();
    let codec = Codec {
        version: ProtocolVersion::V5,
        max_packet_size: settings.max_packet_size,
    };
    let connect = match first_packet(
        &mut reader,
        &mut buf,
        &scratch,
        codec,
        settings.connect_timeout,
    )
    .await
    {
        Ok(connect) => connect,
        Err(refusal) => {
            if let Some((version, code)) = refusal {
                refuse_early(writer, version, code).await;
            }
            return;
        }
    };
    let pending = engine.borrow().pending_verification(&connect);
    if let Some(pending) = pending {
        // A first login's argon2/bcrypt check takes milliseconds: run it on glommio's blocking
        // pool, off the shard, and hand the answer over before the CONNECT (no other CONNECT
        // runs between this and `connect` below: nothing awaits there).
        let verified = glommio::executor()
            .spawn_blocking(move || pending.run())
            .await;
        engine.borrow().remember_verification(verified);
    }
    let version = connect.protocol;
    let handle =
        Rc::new(ConnectionHandle::new(version, settings.outbound_budget_bytes).with_peer(peer));
    let writer_task = glommio::spawn_local(write_loop(writer, Rc::clone(&handle), version));
    let outcome = engine
        .borrow_mut()
        .connect(Instant::now(), &connect, Rc::clone(&handle));
    let outcome = match outcome {
        ConnectOutcome::Pending => connect_answered(&handle).await,
        answered => Some(answered),
    };
    if let Some(ConnectOutcome::Accepted(key)) = outcome {
        log_connected(&engine, key, peer, version);
        let codec = Codec {
            version,
            max_packet_size: settings.max_packet_size,
        };
        let reading = Reading {
            reader: &mut reader,
            buf: &mut buf,
            scratch: &scratch,
        };
        read_loop(reading, codec, &engine, key, &handle).await;
        let close = handle.close_requested();
        engine
            .borrow_mut()
            .connection_closed(Instant::now(), key, &handle, close);
    }
    if handle.close_requested().is_none() {
        // The network dropped the connection: stop the writer without a DISCONNECT.
        handle.request_close(Close {
            reason: ReasonCode::UNSPECIFIED_ERROR,
            send_disconnect: false,
            publish_will: true,
        });
    }
    writer_task.await;
}

/// Waits until the shard has answered a CONNECT that needed other shards; `None` when the
/// connection is closed first (the broker is stopping).
async fn connect_answered(handle: &ConnectionHandle) -> Option<ConnectOutcome> {
    loop {
        if let Some(outcome) = handle.connect_outcome() {
            return Some(outcome);
        }
        if handle.close_requested().is_some() {
            return None;
        }
        handle.reader_wake.notified().await;
    }
}

fn log_connected(
    engine: &RefCell<ShardEngine>,
    key: SessionKey,
    peer: Option<SocketAddr>,
    version: ProtocolVersion,
) {
    let engine = engine.borrow();
    if let Some(client_id) = engine.client_id(key) {
        tracing::info!(
            shard = engine.shard_index(),
            client_id = client_id.as_str(),
            peer = peer.map(|peer| peer.to_string()),
            protocol = version.level(),
            "client connected"
        );
    }
}

/// `Err(Some(..))`: refuse with a CONNACK; `Err(None)`: just close.
type Refusal = Option<(ProtocolVersion, ReasonCode)>;

/// Reads until a CONNECT arrives; anything else first is a protocol violation.
async fn first_packet(
    reader: &mut ReadHalf<TcpStream>,
    buf: &mut BytesMut,
    scratch: &RefCell<ReadScratch>,
    codec: Codec,
    timeout: Duration,
) -> Result<Box<crate::protocol::Connect>, Refusal> {
    let deadline = Instant::now() + timeout;
    loop {
        match codec.decode(buf) {
            Ok(Some(Packet::Connect(connect))) => return Ok(connect),
            Ok(Some(_)) => return Err(None),
            Ok(None) => {}
            Err(error) => {
                // Only an unacceptable protocol level gets a CONNACK (3.1.1 and 5.0 alike).
                return Err(error.v3_connack_return_code().map(|_| {
                    (
                        ProtocolVersion::V3_1_1,
                        ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
                    )
                }));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match read_some(reader, buf, scratch, left).await {
            ReadResult::Data => {}
            ReadResult::Closed | ReadResult::TimedOut => return Err(None),
        }
    }
}

enum ReadResult {
    Data,
    Closed,
    TimedOut,
}

/// Reads whatever the socket has (see [`read_into`]), or times out.
async fn read_some(
    reader: &mut ReadHalf<TcpStream>,
    buf: &mut BytesMut,
    scratch: &RefCell<ReadScratch>,
    timeout: Duration,
) -> ReadResult {
    let read = futures_lite::future::or(
        async { Some(read_into(reader, buf, scratch).await) },
        async {
            glommio::timer::sleep(timeout).await;
            None
        },
    )
    .await;
    match read {
        Some(Ok(0)) | Some(Err(_)) => ReadResult::Closed,
        Some(Ok(_)) => ReadResult::Data,
        None => ReadResult::TimedOut,
    }
}

/// What the read loop reads from and into.
struct Reading<'a> {
    reader: &'a mut ReadHalf<TcpStream>,
    buf: &'a mut BytesMut,
    scratch: &'a RefCell<ReadScratch>,
}

async fn read_loop(
    reading: Reading<'_>,
    codec: Codec,
    engine: &Rc<RefCell<ShardEngine>>,
    key: SessionKey,
    handle: &Rc<ConnectionHandle>,
) {
    let Reading {
        reader,
        buf,
        scratch,
    } = reading;
    loop {
        loop {
            match codec.decode(buf) {
                Ok(Some(packet)) => engine
                    .borrow_mut()
                    .handle_packet(Instant::now(), key, packet),
                Ok(None) => break,
                Err(error) => {
                    handle.request_close(Close {
                        reason: error.reason_code(),
                        send_disconnect: true,
                        publish_will: true,
                    });
                    return;
                }
            }
            if handle.close_requested().is_some() {
                return;
            }
        }
        if handle.close_requested().is_some() {
            return;
        }
        // A peer shard is behind: stop reading (TCP pushes back on the publisher) rather than
        // queue more for it.
        while engine.borrow().mesh_congested() && handle.close_requested().is_none() {
            glommio::timer::sleep(MESH_CONGESTION_PAUSE).await;
        }
        let now = Instant::now();
        let wait = match engine.borrow().next_timeout(key) {
            Some(deadline) => deadline.saturating_duration_since(now),
            // No keep-alive: wake up now and then only to notice a close request.
            None => Duration::from_secs(3600),
        };
        if buf.is_empty() {
            // Let go of the scratch chunk the last read shared, so an idle connection pins none.
            *buf = BytesMut::new();
        }
        // A close asked for by the broker (takeover, shutdown, a protocol error found while
        // routing) must not wait for the client to send something or hang up.
        let read = futures_lite::future::or(
            async { Some(read_some(reader, buf, scratch, wait).await) },
            async {
                loop {
                    handle.reader_wake.notified().await;
                    if handle.close_requested().is_some() {
                        return None;
                    }
                }
            },
        )
        .await;
        let Some(read) = read else {
            return;
        };
        match read {
            ReadResult::Data => {}
            ReadResult::Closed => return,
            ReadResult::TimedOut => engine.borrow_mut().handle_timeout(Instant::now(), key),
        }
        if handle.close_requested().is_some() {
            return;
        }
    }
}

/// Drains the outbound queue after every wake-up; on a close request, flushes, sends the 5.0
/// DISCONNECT if asked for, and shuts the socket.
async fn write_loop(
    mut writer: futures_lite::io::WriteHalf<TcpStream>,
    handle: Rc<ConnectionHandle>,
    version: ProtocolVersion,
) {
    loop {
        handle.writer_wake.notified().await;
        if let Some(close) = handle.close_requested() {
            if close.send_disconnect && version.is_v5() {
                let disconnect = Disconnect {
                    reason_code: close.reason,
                    properties: DisconnectProperties::default(),
                };
                // Encoding a plain DISCONNECT cannot fail.
                let _ = handle
                    .outbound
                    .borrow_mut()
                    .push_packet(&Packet::Disconnect(disconnect));
            }
            let flushed = futures_lite::future::or(
                async { flush(&mut writer, &handle).await.is_ok() },
                async {
                    glommio::timer::sleep(CLOSE_FLUSH_TIMEOUT).await;
                    false
                },
            );
            let _ = flushed.await;
            let _ = writer.close().await;
            return;
        }
        if flush(&mut writer, &handle).await.is_err() {
            // The reader sees the same broken socket and ends the connection.
            return;
        }
    }
}

async fn flush(
    writer: &mut futures_lite::io::WriteHalf<TcpStream>,
    handle: &ConnectionHandle,
) -> std::io::Result<()> {
    loop {
        // The borrow ends before the write is awaited: routing may queue more meanwhile.
        let Some(chunk) = handle.outbound.borrow_mut().next_chunk() else {
            return Ok(());
        };
        writer.write_all(&chunk).await?;
    }
}

/// Sends a refusing CONNACK before any session exists, then closes.
async fn refuse_early(
    mut writer: futures_lite::io::WriteHalf<TcpStream>,
    version: ProtocolVersion,
    code: ReasonCode,
) {
    let mut out = BytesMut::new();
    let connack = ConnAck {
        session_present: false,
        reason_code: code,
        properties: Default::default(),
    };
    if Codec::new(version)
        .encode(&Packet::ConnAck(connack), &mut out)
        .is_ok()
    {
        let _ = writer.write_all(&out).await;
    }
    let _ = writer.close().await;
}
