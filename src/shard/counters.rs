//! Counters of one shard: plain integers, written only by the shard, read by whoever asks it
//! (logs, `$SYS`, exporters). Every drop has a reason and a counter.

use crate::session::DropReason;

/// What one shard has counted since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardCounters {
    /// CONNECTs accepted.
    pub connections_accepted: u64,
    /// CONNECTs refused with a CONNACK failure code.
    pub connections_refused: u64,
    /// Connections closed because the same client id connected again.
    pub takeovers: u64,
    /// Messages routed (publishes and wills).
    pub messages_received: u64,
    /// Deliveries handed to sessions.
    pub deliveries: u64,
    /// Wills published.
    pub wills_published: u64,
    /// Sessions ended by their expiry interval.
    pub sessions_expired: u64,
    /// Messages dropped: the session queue or the outbound budget was full.
    pub dropped_queue_full: u64,
    /// Messages dropped: expired before delivery.
    pub dropped_expired: u64,
    /// Messages dropped: larger than the client's maximum packet size.
    pub dropped_too_large: u64,
    /// QoS 0 messages dropped for offline sessions.
    pub dropped_offline: u64,
    /// Messages published where nobody subscribed.
    pub dropped_no_subscribers: u64,
    /// Publishes the publish hooks denied.
    pub dropped_not_authorized: u64,
    /// System-topic messages dropped because one call made more than the pending bound.
    pub dropped_system_messages: u64,
    /// Messages forwarded to other shards (one per destination shard).
    pub messages_forwarded: u64,
    /// Times a peer's outbox reached its limit and connections paused reading.
    pub mesh_congestion: u64,
    /// Forwarded share-group messages whose group had no member left here.
    pub dropped_group_gone: u64,
    /// Connections closed at accept: the shard had `tuning.max_connections_per_shard`.
    pub connections_over_limit: u64,
    /// Packets the broker failed to encode (a bug; logged).
    pub encode_errors: u64,
}

impl ShardCounters {
    /// Counts a dropped message by its reason.
    pub fn count_drop(&mut self, reason: DropReason) {
        let counter = match reason {
            DropReason::QueueFull => &mut self.dropped_queue_full,
            DropReason::Expired => &mut self.dropped_expired,
            DropReason::TooLarge => &mut self.dropped_too_large,
            DropReason::Offline => &mut self.dropped_offline,
            DropReason::NoSubscribers => &mut self.dropped_no_subscribers,
            DropReason::NotAuthorized => &mut self.dropped_not_authorized,
        };
        *counter += 1;
    }
}
