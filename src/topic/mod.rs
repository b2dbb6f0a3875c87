//! Routing data, sans-IO: the structures a shard consults to decide who gets a message.
//!
//! - [`FilterTrie`]: topic filters stored level by level (`+`, `#`, the `$` rule), and the walk
//!   that finds every filter matching a topic name. The building block of the others.
//! - [`SubscriptionTable`]: this shard's sessions' subscriptions, direct and shared
//!   (`$share/{group}/{filter}`), and the per-publish match that merges overlapping ones.
//! - [`InterestTable`]: which shards have subscribers for which filters, so a publishing shard
//!   knows where to forward a message, and which shard serves each share group.
//! - [`RetainedStore`]: the retained messages, indexed by topic, queried with a filter.
//!
//! Everything here is plain data owned by one shard. It never touches a socket, a clock, an
//! executor or a lock, and it never panics on what clients send: filters and topics arrive
//! already validated as [`TopicFilter`] and [`TopicName`](crate::protocol::TopicName), and any
//! string a method is handed is still handled without a panic. Matching a topic, the
//! per-message path, allocates nothing beyond growing the caller's reused output vector.

mod arena;
mod interest;
mod retained;
mod shard_set;
mod subscribers;
mod subscriptions;
mod trie;

#[cfg(test)]
mod model;

pub use interest::InterestTable;
pub use retained::RetainedStore;
pub use shard_set::{ShardId, ShardSet, ShardSetIter, MAX_SHARDS};
pub use subscribers::SubscriberOptions;
pub use subscriptions::{
    Recipient, RemovedSubscription, ShareStrategy, SubscribeOutcome, SubscriptionIds,
    SubscriptionTable, UnsubscribeOutcome,
};
pub use trie::FilterTrie;

use crate::protocol::TopicFilter;

/// Children of a node keyed by the text of one level. foldhash is several times faster than
/// SipHash on the short strings topic levels are, and its per-map random seed still keeps a
/// client from choosing levels that all land in one bucket.
type LevelMap<V> = foldhash::HashMap<Box<str>, V>;

/// Splits the first level off `levels`: the level, and the rest after its `/` (`None` when it
/// was the last level). An empty string is one empty level, as `a//b` has an empty middle one.
#[inline]
fn next_level(levels: &str) -> (&str, Option<&str>) {
    match levels.split_once('/') {
        Some((level, rest)) => (level, Some(rest)),
        None => (levels, None),
    }
}

/// Gives memory back after a removal: a hash map never shrinks by itself, so a node that once
/// had many children (`devices/{id}` for a fleet that went away) would keep its table forever.
/// Shrinking only when the map is a quarter full keeps the cost amortised.
fn shrink_after_removal<K: Eq + std::hash::Hash, V>(map: &mut foldhash::HashMap<K, V>) {
    const SMALL: usize = 16;
    if map.capacity() > SMALL && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

/// A copy of `filter` in its own allocation. A filter decoded from a SUBSCRIBE is a slice of
/// the client's read buffer; what the routing tables keep for as long as a subscription lasts
/// must not hold that whole buffer alive.
fn owned_copy(filter: &TopicFilter) -> TopicFilter {
    filter.to_owned_copy()
}
