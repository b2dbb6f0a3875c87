//! Starling: a thread-per-core MQTT broker.
//!
//! The map of the crate, following `docs/architecture.md`:
//! - [`protocol`]: the sans-IO MQTT codec for 3.1, 3.1.1 and 5.0. It decodes from a `BytesMut`
//!   and encodes into one; it never touches sockets, clocks or an executor.
//! - [`session`]: the sans-IO session state machine of one client (QoS flows, inflight window,
//!   bounded queue, will, expiry, keep-alive, topic aliases), driven by packets and time.
//! - [`net`]: per-connection I/O: the outbound queue with its byte budget.
//!
//! Shards (executors, mesh, registry, router), listeners and hooks build on these and live in
//! their own modules.

pub mod net;
pub mod protocol;
pub mod session;
