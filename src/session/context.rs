//! What a shard lends a session for the length of one call: the decision hooks, the Unix
//! time, and which optional reports the shard's exporters want.
//!
//! The session stays sans-IO: hooks are pure decisions it consults synchronously, and the
//! time is given, not read.

use crate::hooks::DecisionHooks;

/// The shard's side of one session call.
#[derive(Debug, Clone, Copy)]
pub struct SessionContext<'a> {
    /// The chains of `auth_on_subscribe` and `auth_on_publish` (CONNECT and delivery hooks are
    /// run by the shard itself).
    pub hooks: &'a DecisionHooks,
    /// Now, as Unix nanoseconds: the receive time of a published message.
    pub unix_ns: u64,
    /// Whether to report acknowledged deliveries ([`Action::Acked`](super::Action::Acked)):
    /// only when an exporter wants `message_acked`, since it costs a lookup per ack.
    pub report_acks: bool,
}
