//! Transports and the per-connection I/O around the session engine: what is queued for a
//! client and how it reaches the socket. Only this module and `shard` know about the executor;
//! the queue itself is plain data so it is tested without sockets.

mod connection;
mod listener;
mod outbound;
mod read_scratch;

pub use connection::{serve_connection, ConnectionSettings};
pub use listener::bind_listener;
pub use outbound::{OutboundQueue, QueueError, SHARE_PAYLOAD_FROM_BYTES};
pub use read_scratch::{read_into, ReadScratch};
