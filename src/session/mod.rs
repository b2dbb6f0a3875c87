//! The session layer: the sans-IO state machine of one client's MQTT session.
//!
//! It owns what MQTT asks a broker to remember per client: subscriptions, the outbound QoS 1/2
//! window and its bounded queue, inbound QoS 2 ids, the will, session expiry, keep-alive and
//! topic aliases. It runs on the shard that owns the client, but knows nothing of shards,
//! sockets or clocks: the driver feeds it packets, routed deliveries and the time, and carries
//! out the [`Action`]s it returns. It must never block, allocate without a bound, or panic on
//! anything a client sends.

mod actions;
mod alias;
mod context;
mod inflight;
mod limits;
mod message;
mod state;
mod subscribe;

pub use actions::{Acked, Action, Close, DropReason, Outgoing, SubscribeEntry, SubscribeRequest};
pub use alias::{AliasError, InboundAliases, OutboundAliases};
pub use context::SessionContext;
pub use inflight::{AckOutcome, Inflight, InflightState, Redelivery};
pub use limits::{BrokerLimits, ClientLimits};
pub use message::{Delivery, Message, OutgoingPublish, SubscriptionIds};
pub use state::{Attach, Detached, Session, StoredSubscription};

#[cfg(test)]
mod tests;
