//! Starling: a thread-per-core MQTT broker.
//!
//! The map of the crate, following `docs/architecture.md`:
//! - [`protocol`]: the sans-IO MQTT codec for 3.1, 3.1.1 and 5.0. It decodes from a `BytesMut`
//!   and encodes into one; it never touches sockets, clocks or an executor.
//! - [`session`]: the sans-IO session state machine of one client (QoS flows, inflight window,
//!   bounded queue, will, expiry, keep-alive, topic aliases), driven by packets and time.
//! - [`topic`]: the sans-IO routing data of a shard: the filter trie, the subscription table
//!   with shared groups, the interest table of which shards want what, and the retained index.
//! - [`shard`]: the shard engine (sessions, routing, retained messages of one shard) and, with
//!   `net`, the only code that knows the executor.
//! - [`net`]: per-connection I/O: the outbound queue with its byte budget.
//! - [`hooks`]: the events a shard records and the per-shard ring exporters drain.
//! - [`config`]: the TOML config file read into a typed `Config` that `main` passes to every
//!   shard (no global), its validation, the default template and the tuning section.
//!
//! Shards (executors, mesh, registry, router), listeners and hooks build on these and live in
//! their own modules.

pub mod broker;
pub mod config;
pub mod hooks;
pub mod net;
pub mod protocol;
pub mod session;
pub mod shard;
pub mod topic;
