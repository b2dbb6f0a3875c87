//! Interoperability with rumqttc, a widely used Rust MQTT client, in MQTT 3.1.1 and 5.0,
//! against the real `starling` binary with two shards. Publishers and subscribers are put on
//! different shards (and sessions moved between them) wherever a behaviour crosses shards:
//! QoS 0/1/2 flows, retained messages, overlapping subscriptions, persistent sessions,
//! takeover, wills and will delay, shared subscriptions, the 5.0 properties and options, and
//! the graceful stop on SIGTERM.
//!
//! Every wait has a timeout ([`clients::WAIT`]); each test starts its own broker, which is
//! killed when the test ends, pass or fail. "Not delivered" is shown by a sentinel message
//! sent after the one that must not arrive, on a path that keeps order, arriving first.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "interop_rumqttc/clients.rs"]
mod clients;
#[path = "interop_rumqttc/v3.rs"]
mod v3;
#[path = "interop_rumqttc/v5.rs"]
mod v5;
#[path = "interop_rumqttc/v5_properties.rs"]
mod v5_properties;

/// The shard that is not `shard`, with two shards.
fn other(shard: usize) -> usize {
    assert!(shard < 2, "shard {shard} with two shards");
    1 - shard
}

/// Tries before a test gives up arranging a cross-shard case that each try gets with
/// probability about 1/2.
const CROSS_SHARD_TRIES: usize = 20;
