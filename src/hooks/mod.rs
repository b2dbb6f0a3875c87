//! Hooks and events: what the broker tells the rest of a company's systems.
//!
//! - [`builtin`]: the hooks configured in the config file (topic table, payload schemas with
//!   rejected-publish feedback, password and token file).
//! - [`clock`]: Unix time for event stamps without a system call per event.
//! - [`exporters`]: the runtime off the shards that carries events to the sinks.
//! - [`decision`]: the decision hooks (`auth_on_register`, `auth_on_subscribe`,
//!   `auth_on_publish`, `on_deliver`) and the chain that runs them in the configured order.
//! - [`event`]: the facts a shard records (the web-hook document's `session_created` …
//!   `message_dropped`, and `offline_message`), holding shared handles and numbers, never JSON.
//! - [`ring`]: the per-shard writer and the bounded lock-free ring of event batches the
//!   exporter runtime drains; a full ring drops and counts, it never blocks the shard.

pub mod builtin;
pub mod clock;
pub mod decision;
pub mod event;
pub mod exporters;
pub mod ring;

pub use clock::WallClock;
pub use decision::{
    AuthOnPublish, AuthOnRegister, AuthOnSubscribe, Decision, DecisionHooks, DeliverChanges,
    DeliverRequest, Denial, Feedback, HookChain, OnDeliver, PublishChanges, PublishRequest,
    RegisterChanges, RegisterRequest, SubscribeChanges, SubscribeRequest, Verdict,
};
pub use event::{
    ClientInfo, DisconnectReason, Event, EventDetail, EventKind, EventKinds, MessageFacts,
    EVENT_KINDS,
};
pub use ring::{EventCounters, EventRing, EventSink};
