//! The I/O loop of one connection after setup: batched reads, pipelined writes, keep-alive and
//! the phase signal, shared by every role (publisher, subscriber, idle).
//!
//! Each pass reads whatever the socket has into the connection's one read buffer and decodes
//! every complete packet from it, and writes everything the role has queued in one `write`.
//! Writing is polled before reading so acknowledgements never starve behind a flood of
//! deliveries. The loop never blocks on one direction while the other is ready, and it ends on
//! its own at the Stop or Abort phase. A closed socket, a DISCONNECT from the broker, a missing
//! PINGRESP or a protocol violation before Stop ends it with a [`Dropped`] reason.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use starling::protocol::{Codec, Disconnect, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, Notify};

use crate::client::{Connection, READ_MAX, READ_MIN};
use crate::stats::Phase;

/// Longest time spent flushing the final DISCONNECT.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a connection does with its traffic.
pub trait Role {
    /// Handles one packet the driver does not handle itself; may queue replies in `out`.
    /// An error is a protocol violation by the broker and ends the connection.
    fn on_packet(&mut self, packet: Packet, now: Instant, out: &mut BytesMut)
        -> Result<(), String>;

    /// Called after each read batch, to publish batched statistics.
    fn end_batch(&mut self, now: Instant);

    /// A signal that wakes the role without traffic on its own connection (the QoS 0
    /// window's deliveries); asked once.
    fn wake_signal(&self) -> Option<Arc<Notify>> {
        None
    }

    /// Queues whatever is due in `phase`; returns when it next wants to be called (it is also
    /// called after every read and write).
    fn generate(
        &mut self,
        now: Instant,
        phase: Phase,
        out: &mut BytesMut,
    ) -> Result<Option<Instant>, String>;
}

/// Why a connection ended before the run told it to.
#[derive(Debug, Clone)]
pub struct Dropped(pub String);

/// The role that only holds its connection open (the `conn` scenario).
#[derive(Debug)]
pub struct Idle;

impl Role for Idle {
    fn on_packet(&mut self, packet: Packet, _: Instant, _: &mut BytesMut) -> Result<(), String> {
        Err(format!(
            "unexpected {} on an idle connection",
            packet.packet_type()
        ))
    }

    fn end_batch(&mut self, _: Instant) {}

    fn generate(
        &mut self,
        _: Instant,
        _: Phase,
        _: &mut BytesMut,
    ) -> Result<Option<Instant>, String> {
        Ok(None)
    }
}

/// Keep-alive bookkeeping: a PINGREQ after half the keep-alive without a write, and the
/// connection is dead if its PINGRESP takes longer than a whole keep-alive.
#[derive(Debug)]
struct KeepAlive {
    period: Option<Duration>,
    last_write: Instant,
    ping_sent: Option<Instant>,
}

impl KeepAlive {
    fn next_deadline(&self) -> Option<Instant> {
        let period = self.period?;
        Some(match self.ping_sent {
            Some(sent) => sent + period,
            None => self.last_write + period / 2,
        })
    }

    /// Queues a PINGREQ when one is due; an error when the last one went unanswered.
    fn poll(&mut self, now: Instant, codec: &Codec, out: &mut BytesMut) -> Result<(), Dropped> {
        let Some(period) = self.period else {
            return Ok(());
        };
        match self.ping_sent {
            Some(sent) if now >= sent + period => Err(Dropped(format!(
                "no PINGRESP within the keep-alive of {} s",
                period.as_secs()
            ))),
            Some(_) => Ok(()),
            None if now >= self.last_write + period / 2 => {
                codec
                    .encode(&Packet::PingReq, out)
                    .map_err(|e| Dropped(format!("cannot encode PINGREQ: {e}")))?;
                self.ping_sent = Some(now);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// Runs `role` on `connection` until the phase reaches Stop (then disconnects cleanly) or
/// Abort (then just closes). Errors report why the broker side ended it first.
pub async fn drive<R: Role>(
    connection: Connection,
    role: &mut R,
    phase_rx: watch::Receiver<Phase>,
) -> Result<(), Dropped> {
    let Connection {
        mut stream,
        codec,
        mut rbuf,
        mut wbuf,
        mut pending,
        limits,
        ..
    } = connection;
    let mut keep_alive = KeepAlive {
        period: limits.keep_alive,
        last_write: Instant::now(),
        ping_sent: None,
    };
    let (mut reader, mut writer) = stream.split();
    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    let mut read_room = READ_MIN;
    // One long-lived wait for the next phase change: creating a `changed()` future per pass
    // would register and unregister a waiter on every packet.
    let mut phase_change = Box::pin(next_change(phase_rx.clone()));
    let signal = role.wake_signal();

    let now = Instant::now();
    while let Some(packet) = pending.pop_front() {
        handle(packet, now, &codec, role, &mut wbuf, &mut keep_alive)?;
    }
    role.end_batch(now);

    loop {
        let phase = *phase_rx.borrow();
        if phase >= Phase::Stop {
            break;
        }
        let now = Instant::now();
        keep_alive.poll(now, &codec, &mut wbuf)?;
        let wake = role.generate(now, phase, &mut wbuf).map_err(Dropped)?;
        let deadline = match (wake, keep_alive.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Resetting a timer costs a trip through the timer wheel, and the keep-alive deadline
        // moves with every write. Re-arm only for an earlier deadline: a timer that fires too
        // early just costs one spurious pass, after which it is armed for the real deadline.
        if let Some(at) = deadline {
            if armed.is_none_or(|current| at < current) {
                sleep.as_mut().reset(at.into());
                armed = Some(at);
            }
        }
        if rbuf.capacity() - rbuf.len() < read_room / 2 {
            rbuf.reserve(read_room);
        }
        let room = rbuf.capacity() - rbuf.len();
        tokio::select! {
            biased;
            written = writer.write_buf(&mut wbuf), if !wbuf.is_empty() => {
                written.map_err(|e| Dropped(format!("write failed: {e}")))?;
                keep_alive.last_write = Instant::now();
            }
            read = reader.read_buf(&mut rbuf) => {
                match read {
                    Ok(0) => return Err(Dropped("connection closed by the broker".into())),
                    // A read that filled the room says more was waiting: read more at once.
                    Ok(n) if n >= room => read_room = (read_room * 2).min(READ_MAX),
                    Ok(_) => {}
                    Err(error) => return Err(Dropped(format!("read failed: {error}"))),
                }
                let now = Instant::now();
                loop {
                    match codec.decode(&mut rbuf) {
                        Ok(Some(packet)) => handle(packet, now, &codec, role, &mut wbuf, &mut keep_alive)?,
                        Ok(None) => break,
                        Err(error) => return Err(Dropped(format!("undecodable packet from the broker: {error}"))),
                    }
                }
                role.end_batch(now);
            }
            (receiver, changed) = &mut phase_change => {
                if changed.is_err() {
                    // The runner is gone; nothing will ever read our results.
                    return Ok(());
                }
                phase_change = Box::pin(next_change(receiver));
            }
            () = notified(signal.as_deref()) => {}
            () = &mut sleep, if armed.is_some() => {
                armed = None;
            }
        }
    }

    if *phase_rx.borrow() == Phase::Stop {
        // Best effort: the counts are already recorded, so a slow close only costs time.
        let _ = codec.encode(&Packet::Disconnect(Disconnect::default()), &mut wbuf);
        let close = async {
            writer.write_all(&wbuf).await?;
            writer.shutdown().await
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, close).await;
    }
    Ok(())
}

/// Completes when `signal` is notified; never without one.
async fn notified(signal: Option<&Notify>) {
    match signal {
        Some(signal) => signal.notified().await,
        None => std::future::pending().await,
    }
}

/// Waits for the next phase change on `receiver`, handing it back for the next wait.
async fn next_change(
    mut receiver: watch::Receiver<Phase>,
) -> (watch::Receiver<Phase>, Result<(), watch::error::RecvError>) {
    let changed = receiver.changed().await;
    (receiver, changed)
}

/// Handles the packets every role treats alike, and passes the rest to the role.
fn handle<R: Role>(
    packet: Packet,
    now: Instant,
    codec: &Codec,
    role: &mut R,
    out: &mut BytesMut,
    keep_alive: &mut KeepAlive,
) -> Result<(), Dropped> {
    match packet {
        Packet::PingResp => {
            keep_alive.ping_sent = None;
            Ok(())
        }
        Packet::PingReq => codec
            .encode(&Packet::PingResp, out)
            .map_err(|e| Dropped(format!("cannot encode PINGRESP: {e}"))),
        Packet::Disconnect(disconnect) => Err(Dropped(format!(
            "broker sent DISCONNECT {}",
            disconnect.reason_code
        ))),
        other => role
            .on_packet(other, now, out)
            .map_err(|e| Dropped(format!("protocol error: {e}"))),
    }
}
