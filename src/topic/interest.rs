//! [`InterestTable`]: which shards have subscribers for which filters, as announced by every
//! shard, so that a publishing shard forwards a message only to shards that want it.
//!
//! Each shard keeps its own copy, fed by the announcements of all shards (its own included);
//! it is plain shard-local data, read on the path of every message. Direct filters map to the
//! [`ShardSet`] of shards with at least one subscriber. Shared filters are keyed by their inner
//! filter and hold, per group, each shard's member count: a publishing shard picks one shard
//! per group, in proportion to those counts, and that shard picks the member. It never sends,
//! waits or locks anything itself; the shard acts on its answers.

use super::owned_copy;
use super::shard_set::{ShardId, ShardSet};
use super::trie::FilterTrie;
use crate::protocol::{TopicFilter, TopicName};

/// The shards interested in each filter, for routing publishes between shards.
#[derive(Debug, Default)]
pub struct InterestTable {
    direct: FilterTrie<ShardSet>,
    shared: FilterTrie<Vec<GroupInterest>>,
    groups: usize,
}

/// One share group (`$share/{group}/{filter}`) across the shards.
#[derive(Debug)]
struct GroupInterest {
    /// The full shared filter, handed to the callback so the forward can name the group.
    filter: TopicFilter,
    /// Shards with members, each with its member count (never zero).
    members: Vec<(ShardId, u32)>,
    /// Sum of the member counts.
    total: u64,
    /// How many messages this shard has routed for the group: the ticket of the next one.
    turn: u64,
}

impl GroupInterest {
    /// The shard for the next message: a deterministic weighted round robin. Ticket
    /// `turn % total` falls in one shard's share of `0..total`, so over `total` consecutive
    /// messages each shard gets exactly its member count, with no randomness or clock needed.
    fn choose_shard(&mut self) -> Option<ShardId> {
        if self.total == 0 {
            return None;
        }
        let mut ticket = self.turn % self.total;
        self.turn = self.turn.wrapping_add(1);
        for &(shard, members) in &self.members {
            let members = u64::from(members);
            if ticket < members {
                return Some(shard);
            }
            ticket -= members;
        }
        None
    }

    /// Sets a shard's member count; zero takes the shard out.
    fn set_members(&mut self, shard: ShardId, count: u32) {
        let position = self.members.iter().position(|&(known, _)| known == shard);
        match (position, count) {
            (Some(position), 0) => {
                self.total -= u64::from(self.members.swap_remove(position).1);
            }
            (Some(position), _) => {
                let old = std::mem::replace(&mut self.members[position].1, count);
                self.total = self.total - u64::from(old) + u64::from(count);
            }
            (None, 0) => {}
            (None, _) => {
                self.members.push((shard, count));
                self.total += u64::from(count);
            }
        }
    }
}

impl InterestTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of direct filters and share groups some shard is interested in.
    pub fn len(&self) -> usize {
        self.direct.len() + self.groups
    }

    /// True when no shard is interested in anything.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Trie nodes in use; zero once all interest is gone.
    pub fn node_count(&self) -> usize {
        self.direct.node_count() + self.shared.node_count()
    }

    /// `shard` has subscribers to `filter`: same as `set_subscribers(filter, shard, 1)`.
    pub fn add(&mut self, filter: &TopicFilter, shard: ShardId) {
        self.set_subscribers(filter, shard, 1);
    }

    /// `shard` has no subscriber to `filter` any more: same as `set_subscribers(filter, shard, 0)`.
    pub fn remove(&mut self, filter: &TopicFilter, shard: ShardId) {
        self.set_subscribers(filter, shard, 0);
    }

    /// Applies a shard's announcement: it has `count` subscribers to `filter`. For a direct
    /// filter only zero or not matters; for a shared filter `count` is the group's member count
    /// there, the shard's weight. Setting is idempotent, so an announcement may be repeated.
    pub fn set_subscribers(&mut self, filter: &TopicFilter, shard: ShardId, count: u32) {
        match filter.shared() {
            None if count > 0 => {
                self.direct
                    .get_or_insert_with(filter.as_str(), ShardSet::new)
                    .insert(shard);
            }
            None => {
                self.direct.remove_if(filter.as_str(), |shards| {
                    shards.remove(shard);
                    shards.is_empty()
                });
            }
            Some((_, inner)) if count > 0 => {
                let groups = self.shared.get_or_insert_with(inner, Vec::new);
                let position = groups.iter().position(|group| group.filter == *filter);
                let group = match position {
                    Some(position) => &mut groups[position],
                    None => {
                        self.groups += 1;
                        groups.push(GroupInterest {
                            filter: owned_copy(filter),
                            members: Vec::new(),
                            total: 0,
                            turn: 0,
                        });
                        let last = groups.len() - 1;
                        &mut groups[last]
                    }
                };
                group.set_members(shard, count);
            }
            Some((_, inner)) => {
                let groups_left = &mut self.groups;
                self.shared.remove_if(inner, |groups| {
                    if let Some(position) = groups.iter().position(|g| g.filter == *filter) {
                        groups[position].set_members(shard, 0);
                        if groups[position].members.is_empty() {
                            groups.swap_remove(position);
                            *groups_left -= 1;
                        }
                    }
                    groups.is_empty()
                });
            }
        }
    }

    /// The shards with a direct subscription matching `topic` (the caller leaves itself out).
    /// Allocates nothing.
    pub fn shards_for(&self, topic: &TopicName) -> ShardSet {
        let mut shards = ShardSet::new();
        self.direct
            .for_each_match(topic.as_str(), |interested| shards |= *interested);
        shards
    }

    /// For each share group whose filter matches `topic`, picks the shard that delivers this
    /// message to the group, weighted by the groups' member counts, and calls `route` with the
    /// group's full filter and that shard. The chosen shard then picks the member.
    pub fn choose_group_shards(
        &mut self,
        topic: &TopicName,
        mut route: impl FnMut(&TopicFilter, ShardId),
    ) {
        self.shared.for_each_match_mut(topic.as_str(), |groups| {
            for group in groups {
                if let Some(shard) = group.choose_shard() {
                    route(&group.filter, shard);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;
    use crate::topic::model::{filter_matches, filter_strategy, topic_strategy};

    fn filter(text: &str) -> TopicFilter {
        TopicFilter::new(text).unwrap()
    }

    fn topic(text: &str) -> TopicName {
        TopicName::new(text).unwrap()
    }

    fn shard(index: usize) -> ShardId {
        ShardId::new(index).unwrap()
    }

    fn indices(shards: ShardSet) -> Vec<usize> {
        shards.iter().map(ShardId::index).collect()
    }

    /// Group filter and chosen shard index for each of `messages` publishes to `text`.
    fn route_counts(
        table: &mut InterestTable,
        text: &str,
        messages: usize,
    ) -> BTreeMap<(String, usize), usize> {
        let mut counts = BTreeMap::new();
        for _ in 0..messages {
            table.choose_group_shards(&topic(text), |group, chosen| {
                *counts
                    .entry((group.to_string(), chosen.index()))
                    .or_insert(0) += 1;
            });
        }
        counts
    }

    #[test]
    fn direct_interest_unions_the_matching_filters() {
        let mut table = InterestTable::new();
        table.add(&filter("devices/+/telemetry"), shard(1));
        table.add(&filter("devices/#"), shard(2));
        table.add(&filter("devices/7/telemetry"), shard(3));
        table.add(&filter("#"), shard(4));
        table.add(&filter("$SYS/#"), shard(5));
        assert_eq!(
            indices(table.shards_for(&topic("devices/7/telemetry"))),
            [1, 2, 3, 4]
        );
        assert_eq!(
            indices(table.shards_for(&topic("devices/8/telemetry"))),
            [1, 2, 4]
        );
        assert_eq!(indices(table.shards_for(&topic("$SYS/uptime"))), [5]);
        table.remove(&filter("#"), shard(4));
        table.remove(&filter("devices/#"), shard(2));
        assert_eq!(
            indices(table.shards_for(&topic("devices/8/telemetry"))),
            [1]
        );
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn groups_are_routed_in_proportion_to_members() {
        let mut table = InterestTable::new();
        table.set_subscribers(&filter("$share/g/jobs/+"), shard(0), 3);
        table.set_subscribers(&filter("$share/g/jobs/+"), shard(1), 1);
        table.add(&filter("$share/h/jobs/+"), shard(2));
        // Shared interest is not direct interest.
        assert!(table.shards_for(&topic("jobs/1")).is_empty());
        let counts = route_counts(&mut table, "jobs/1", 400);
        let expected = BTreeMap::from([
            (("$share/g/jobs/+".to_owned(), 0), 300),
            (("$share/g/jobs/+".to_owned(), 1), 100),
            (("$share/h/jobs/+".to_owned(), 2), 400),
        ]);
        assert_eq!(counts, expected);
        // Repeating an announcement changes nothing; a new count re-weights.
        table.set_subscribers(&filter("$share/g/jobs/+"), shard(1), 1);
        table.set_subscribers(&filter("$share/g/jobs/+"), shard(0), 1);
        let counts = route_counts(&mut table, "jobs/2", 200);
        assert_eq!(counts[&("$share/g/jobs/+".to_owned(), 0)], 100);
        assert_eq!(counts[&("$share/g/jobs/+".to_owned(), 1)], 100);
        table.remove(&filter("$share/g/jobs/+"), shard(0));
        let counts = route_counts(&mut table, "jobs/3", 10);
        assert_eq!(counts[&("$share/g/jobs/+".to_owned(), 1)], 10);
        assert_eq!(table.len(), 2);
        table.remove(&filter("$share/g/jobs/+"), shard(1));
        table.remove(&filter("$share/h/jobs/+"), shard(2));
        table.remove(&filter("$share/h/jobs/+"), shard(2));
        assert!(route_counts(&mut table, "jobs/4", 1).is_empty());
        assert!(table.is_empty());
        assert_eq!(table.node_count(), 0);
    }

    #[test]
    fn the_dollar_rule_applies_to_shared_filters() {
        let mut table = InterestTable::new();
        table.add(&filter("$share/g/#"), shard(0));
        table.add(&filter("$share/g/$SYS/#"), shard(1));
        let counts = route_counts(&mut table, "$SYS/x", 1);
        assert_eq!(
            counts.into_keys().collect::<Vec<_>>(),
            [("$share/g/$SYS/#".to_owned(), 1)]
        );
    }

    /// One announcement of the model test: filter, shard, subscriber count.
    fn announcement() -> impl Strategy<Value = (String, usize, u32)> {
        (
            filter_strategy(),
            0..4_usize,
            prop_oneof![Just(0_u32), Just(1), Just(2)],
        )
    }

    proptest! {
        /// `shards_for` equals scanning a list of (filter, shard) announcements naively.
        #[test]
        fn shards_for_equals_a_naive_scan(
            announcements in proptest::collection::vec(announcement(), 0..40),
            topics in proptest::collection::vec(topic_strategy(), 1..8),
        ) {
            let mut table = InterestTable::new();
            let mut model: BTreeSet<(String, usize)> = BTreeSet::new();
            for (text, index, count) in announcements {
                table.set_subscribers(&filter(&text), shard(index), count);
                if count > 0 {
                    model.insert((text, index));
                } else {
                    model.remove(&(text, index));
                }
                for topic_text in &topics {
                    let expected: BTreeSet<usize> = model
                        .iter()
                        .filter(|(f, _)| filter_matches(f, topic_text))
                        .map(|&(_, index)| index)
                        .collect();
                    let found = table.shards_for(&topic(topic_text));
                    prop_assert_eq!(indices(found), expected.into_iter().collect::<Vec<_>>());
                }
            }
            for (text, index) in std::mem::take(&mut model) {
                table.remove(&filter(&text), shard(index));
            }
            prop_assert!(table.is_empty());
            prop_assert_eq!(table.node_count(), 0);
        }
    }
}
