//! [`SubscriptionTable`]: the subscriptions of the sessions living on one shard, and the match
//! that turns a published topic into the list of sessions to deliver to.
//!
//! It runs inside one shard, on the path of every message, and owns only routing data: a
//! session is a key `K` (a slab index, say) and the table never sees a session, a socket or a
//! clock. Direct filters live in one [`FilterTrie`]; shared ones (`$share/{group}/{filter}`) in
//! another, keyed by the inner filter, holding per group its members and a cursor. A reverse
//! index from session to its filters makes dropping a session cost its own subscriptions only.
//!
//! Matching must not allocate for the common case: recipients are appended to the caller's
//! reused `Vec` and one subscription identifier is stored inline. Merging a session's
//! overlapping subscriptions starts only when a second filter matches; it scans the few
//! recipients most publishes have, and indexes them in a map kept between calls when there are
//! many.

use std::collections::hash_map::Entry;
use std::hash::Hash;

use super::subscribers::{Subscriber, SubscriberOptions, Subscribers};
use super::trie::FilterTrie;
use super::{owned_copy, shrink_after_removal};
use crate::protocol::{QoS, SubscriptionId, TopicFilter, TopicName};

/// Subscription identifiers of the subscriptions a recipient matched (5.0): usually none or
/// one, so the common case does not allocate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionIds {
    first: Option<SubscriptionId>,
    more: Vec<SubscriptionId>,
}

impl SubscriptionIds {
    /// Adds an identifier unless it is already there: two overlapping subscriptions made by
    /// one SUBSCRIBE share an identifier, and the client needs it once.
    pub fn push(&mut self, id: SubscriptionId) {
        if self.iter().any(|known| known == id) {
            return;
        }
        if self.first.is_none() {
            self.first = Some(id);
        } else {
            self.more.push(id);
        }
    }

    /// The identifiers in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = SubscriptionId> + '_ {
        self.first.iter().copied().chain(self.more.iter().copied())
    }

    /// Number of identifiers.
    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.more.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }
}

/// One session that gets a published message, and how. The shard sends the message at the
/// lower of `qos` and the message's QoS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient<K> {
    /// The session.
    pub session: K,
    /// The highest QoS granted among the session's matching subscriptions.
    pub qos: QoS,
    /// Keep the message's retain flag: set if any matching subscription asked for it.
    pub retain_as_published: bool,
    /// Identifiers of all the matching subscriptions that have one.
    pub subscription_ids: SubscriptionIds,
}

impl<K: Copy> Recipient<K> {
    fn new(subscriber: &Subscriber<K>) -> Self {
        let options = &subscriber.options;
        let mut subscription_ids = SubscriptionIds::default();
        if let Some(id) = options.subscription_id {
            subscription_ids.push(id);
        }
        Self {
            session: subscriber.session,
            qos: options.qos,
            retain_as_published: options.retain_as_published,
            subscription_ids,
        }
    }

    /// Folds in another matching subscription of the same session ([MQTT-3.3.4-2], -3).
    fn merge(&mut self, options: &SubscriberOptions) {
        self.qos = self.qos.max(options.qos);
        self.retain_as_published |= options.retain_as_published;
        if let Some(id) = options.subscription_id {
            self.subscription_ids.push(id);
        }
    }
}

/// How a shard picks the member of a share group that gets a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShareStrategy {
    /// Each member in turn: over `n` messages each of `n` members gets one. The default.
    #[default]
    RoundRobin,
    /// A member drawn at random (splitmix64 from `seed`; the table reads no clock or OS
    /// randomness, so the shard chooses the seed).
    Random {
        /// Seed of the generator.
        seed: u64,
    },
}

/// What [`SubscriptionTable::subscribe`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOutcome {
    /// The session already had this exact filter; its options were replaced.
    pub replaced: bool,
    /// First subscription to this filter on this shard (for a shared filter: the group's first
    /// member here). The shard announces it to the other shards before sending SUBACK.
    pub filter_is_new_on_shard: bool,
    /// For a shared filter, the group's members on this shard after the change: the weight the
    /// shard announces so other shards spread the group's messages in proportion.
    pub shared_members_on_shard: Option<u32>,
}

/// What [`SubscriptionTable::unsubscribe`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsubscribeOutcome {
    /// The session had this filter.
    pub existed: bool,
    /// That was the last subscription to the filter on this shard (for a shared filter: the
    /// group's last member here). The shard announces that it lost interest.
    pub filter_now_unused_on_shard: bool,
    /// For a shared filter, the group's members left on this shard.
    pub shared_members_on_shard: Option<u32>,
}

/// One subscription dropped by [`SubscriptionTable::remove_session`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedSubscription {
    /// The filter as subscribed (with its `$share/{group}/` prefix if shared).
    pub filter: TopicFilter,
    /// What its removal changed.
    pub outcome: UnsubscribeOutcome,
}

/// A share group of one inner filter: its members on this shard and where the turn is.
#[derive(Debug)]
struct ShareGroup<K> {
    name: Box<str>,
    members: Subscribers<K>,
    /// Position of the member whose turn is next (round robin).
    next: usize,
}

/// Picks share-group members by the configured [`ShareStrategy`].
#[derive(Debug)]
struct MemberChooser {
    strategy: ShareStrategy,
    random_state: u64,
}

impl MemberChooser {
    fn new(strategy: ShareStrategy) -> Self {
        let random_state = match strategy {
            ShareStrategy::RoundRobin => 0,
            ShareStrategy::Random { seed } => seed,
        };
        Self {
            strategy,
            random_state,
        }
    }

    /// The member that gets the next message, skipping the publisher's own No Local
    /// subscription; `None` if no member may have it.
    fn choose<'g, K: Copy + Eq>(
        &mut self,
        group: &'g mut ShareGroup<K>,
        publisher: Option<K>,
    ) -> Option<&'g Subscriber<K>> {
        let members = group.members.as_slice();
        let count = members.len();
        if count == 0 {
            return None;
        }
        let start = match self.strategy {
            ShareStrategy::RoundRobin => group.next % count,
            ShareStrategy::Random { .. } => self.random_below(count),
        };
        let position = (start..start + count)
            .map(|position| position % count)
            .find(|&position| {
                let member = &members[position];
                !(member.options.no_local && Some(member.session) == publisher)
            })?;
        group.next = position + 1;
        Some(&members[position])
    }

    /// A uniform draw in `0..bound` (Lemire's multiply-shift, bias below 2^-32 for any bound a
    /// group can have).
    fn random_below(&mut self, bound: usize) -> usize {
        // splitmix64.
        self.random_state = self.random_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.random_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((u128::from(z) * bound as u128) >> 64) as usize
    }
}

/// The subscriptions of one shard's sessions, keyed by session `K`.
#[derive(Debug)]
pub struct SubscriptionTable<K> {
    direct: FilterTrie<Subscribers<K>>,
    shared: FilterTrie<Vec<ShareGroup<K>>>,
    /// Each session's filters as subscribed, copied out of the SUBSCRIBE's read buffer.
    sessions: foldhash::HashMap<K, Vec<TopicFilter>>,
    chooser: MemberChooser,
    /// Scratch for merging: where each session's recipient sits in the output. Empty between
    /// calls; kept so its table is allocated once.
    merge_positions: foldhash::HashMap<K, usize>,
    len: usize,
}

impl<K: Copy + Eq + Hash> Default for SubscriptionTable<K> {
    fn default() -> Self {
        Self::new(ShareStrategy::default())
    }
}

impl<K: Copy + Eq + Hash> SubscriptionTable<K> {
    /// An empty table that picks share-group members by `strategy`.
    pub fn new(strategy: ShareStrategy) -> Self {
        Self {
            direct: FilterTrie::new(),
            shared: FilterTrie::new(),
            sessions: foldhash::HashMap::default(),
            chooser: MemberChooser::new(strategy),
            merge_positions: foldhash::HashMap::default(),
            len: 0,
        }
    }

    /// Number of subscriptions (session, filter) on this shard.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no session here subscribes to anything.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Trie nodes in use; zero once every subscription is gone.
    pub fn node_count(&self) -> usize {
        self.direct.node_count() + self.shared.node_count()
    }

    /// Sessions on this shard subscribed directly (not shared) to exactly `filter`.
    pub fn direct_subscribers(&self, filter: &TopicFilter) -> usize {
        self.direct.get(filter.as_str()).map_or(0, Subscribers::len)
    }

    /// The filters `session` subscribes to, as subscribed.
    pub fn filters_of(&self, session: K) -> &[TopicFilter] {
        self.sessions.get(&session).map_or(&[], Vec::as_slice)
    }

    /// Subscribes `session` to `filter`, or replaces the options of its existing subscription
    /// to that exact filter ([MQTT-3.8.4-3]).
    pub fn subscribe(
        &mut self,
        session: K,
        filter: &TopicFilter,
        options: SubscriberOptions,
    ) -> SubscribeOutcome {
        let outcome = match filter.shared() {
            None => {
                let mut filter_is_new_on_shard = false;
                let subscribers = self.direct.get_or_insert_with(filter.as_str(), || {
                    filter_is_new_on_shard = true;
                    Subscribers::default()
                });
                SubscribeOutcome {
                    replaced: subscribers.upsert(session, options),
                    filter_is_new_on_shard,
                    shared_members_on_shard: None,
                }
            }
            Some((group_name, inner)) => {
                let groups = self.shared.get_or_insert_with(inner, Vec::new);
                let group = match groups.iter().position(|group| *group.name == *group_name) {
                    Some(position) => &mut groups[position],
                    None => {
                        groups.push(ShareGroup {
                            name: group_name.into(),
                            members: Subscribers::default(),
                            next: 0,
                        });
                        let last = groups.len() - 1;
                        &mut groups[last]
                    }
                };
                let filter_is_new_on_shard = group.members.is_empty();
                SubscribeOutcome {
                    replaced: group.members.upsert(session, options),
                    filter_is_new_on_shard,
                    shared_members_on_shard: Some(count_u32(group.members.len())),
                }
            }
        };
        if !outcome.replaced {
            self.len += 1;
            self.sessions
                .entry(session)
                .or_default()
                .push(owned_copy(filter));
        }
        outcome
    }

    /// Removes `session`'s subscription to `filter`.
    pub fn unsubscribe(&mut self, session: K, filter: &TopicFilter) -> UnsubscribeOutcome {
        let outcome = self.remove_from_tries(session, filter);
        if outcome.existed {
            self.len -= 1;
            if let Some(filters) = self.sessions.get_mut(&session) {
                filters.retain(|known| known != filter);
                if filters.is_empty() {
                    self.sessions.remove(&session);
                    shrink_after_removal(&mut self.sessions);
                }
            }
        }
        outcome
    }

    /// Removes every subscription of `session` (its session ended or moved to another shard).
    /// Costs the session's own subscriptions, not the table's size.
    pub fn remove_session(&mut self, session: K) -> Vec<RemovedSubscription> {
        let Some(filters) = self.sessions.remove(&session) else {
            return Vec::new();
        };
        shrink_after_removal(&mut self.sessions);
        self.len -= filters.len();
        filters
            .into_iter()
            .map(|filter| RemovedSubscription {
                outcome: self.remove_from_tries(session, &filter),
                filter,
            })
            .collect()
    }

    /// Appends to `out` everyone on this shard who gets a message published to `topic` by
    /// `publisher` (a session here, or `None`): one recipient per session with direct
    /// subscriptions (see [`Self::match_direct`]) and one per matching share group (see
    /// [`Self::match_shared`]). Right when this shard serves every share group, as with one
    /// shard; with several, the shard routes groups by the interest table instead.
    pub fn match_topic(
        &mut self,
        topic: &TopicName,
        publisher: Option<K>,
        out: &mut Vec<Recipient<K>>,
    ) {
        self.match_direct(topic, publisher, out);
        self.match_shared(topic, publisher, out);
    }

    /// Appends one recipient per session whose direct (not shared) subscriptions match
    /// `topic`. A session's overlapping subscriptions become one recipient: the highest QoS,
    /// every subscription identifier, retain-as-published if any asks for it. A subscription
    /// with No Local set does not match its own session's publishes.
    pub fn match_direct(
        &mut self,
        topic: &TopicName,
        publisher: Option<K>,
        out: &mut Vec<Recipient<K>>,
    ) {
        let start = out.len();
        let positions = &mut self.merge_positions;
        let mut filters_matched = 0_usize;
        self.direct.for_each_match(topic.as_str(), |subscribers| {
            filters_matched += 1;
            for subscriber in subscribers.as_slice() {
                if subscriber.options.no_local && Some(subscriber.session) == publisher {
                    continue;
                }
                if filters_matched == 1 {
                    // Within one filter each session appears once: nothing to merge yet.
                    out.push(Recipient::new(subscriber));
                } else {
                    merge_recipient(out, start, positions, subscriber);
                }
            }
        });
        if !positions.is_empty() {
            positions.clear();
        }
    }

    /// Appends one recipient per share group on this shard whose filter matches `topic`: the
    /// member the strategy picks. Shared recipients are never merged with direct ones; a
    /// session in two matching groups gets the message twice, as the spec has it.
    pub fn match_shared(
        &mut self,
        topic: &TopicName,
        publisher: Option<K>,
        out: &mut Vec<Recipient<K>>,
    ) {
        let Self {
            shared, chooser, ..
        } = self;
        shared.for_each_match_mut(topic.as_str(), |groups| {
            for group in groups {
                if let Some(member) = chooser.choose(group, publisher) {
                    out.push(Recipient::new(member));
                }
            }
        });
    }

    /// Appends the member of the share group `$share/{group}/{filter}` that gets the next
    /// message, when another shard chose this one to serve the group. False if the group has
    /// no member here (any more), or `filter` is not shared.
    pub fn deliver_to_group(
        &mut self,
        filter: &TopicFilter,
        publisher: Option<K>,
        out: &mut Vec<Recipient<K>>,
    ) -> bool {
        let Some((group_name, inner)) = filter.shared() else {
            return false;
        };
        let Some(groups) = self.shared.get_mut(inner) else {
            return false;
        };
        let Some(group) = groups.iter_mut().find(|group| *group.name == *group_name) else {
            return false;
        };
        match self.chooser.choose(group, publisher) {
            Some(member) => {
                out.push(Recipient::new(member));
                true
            }
            None => false,
        }
    }

    /// Takes `session` out of the trie entry for `filter`, pruning what empties. Leaves the
    /// reverse index and the count to the caller.
    fn remove_from_tries(&mut self, session: K, filter: &TopicFilter) -> UnsubscribeOutcome {
        let mut existed = false;
        match filter.shared() {
            None => {
                let removed = self.direct.remove_if(filter.as_str(), |subscribers| {
                    existed = subscribers.remove(session);
                    subscribers.is_empty()
                });
                UnsubscribeOutcome {
                    existed,
                    filter_now_unused_on_shard: removed.is_some(),
                    shared_members_on_shard: None,
                }
            }
            Some((group_name, inner)) => {
                let mut members_left = 0;
                self.shared.remove_if(inner, |groups| {
                    let Some(position) = groups.iter().position(|g| *g.name == *group_name) else {
                        return false;
                    };
                    let group = &mut groups[position];
                    existed = group.members.remove(session);
                    members_left = group.members.len();
                    if members_left == 0 {
                        groups.swap_remove(position);
                    }
                    groups.is_empty()
                });
                UnsubscribeOutcome {
                    existed,
                    filter_now_unused_on_shard: existed && members_left == 0,
                    shared_members_on_shard: Some(count_u32(members_left)),
                }
            }
        }
    }
}

/// Up to this many recipients, a session's earlier recipient is found by scanning them: for the
/// few recipients most publishes have, that beats hashing every session into a map.
const MERGE_BY_SCAN_UP_TO: usize = 16;

/// Adds `subscriber` to the recipients `out[start..]`, merging it into the session's recipient
/// if it has one. `positions` indexes `out[start..]` by session once there are too many to scan;
/// it is empty until then.
fn merge_recipient<K: Copy + Eq + Hash>(
    out: &mut Vec<Recipient<K>>,
    start: usize,
    positions: &mut foldhash::HashMap<K, usize>,
    subscriber: &Subscriber<K>,
) {
    let session = subscriber.session;
    if positions.is_empty() {
        if out.len() - start <= MERGE_BY_SCAN_UP_TO {
            match out[start..]
                .iter_mut()
                .find(|known| known.session == session)
            {
                Some(known) => known.merge(&subscriber.options),
                None => out.push(Recipient::new(subscriber)),
            }
            return;
        }
        for (position, recipient) in out.iter().enumerate().skip(start) {
            positions.insert(recipient.session, position);
        }
    }
    match positions.entry(session) {
        Entry::Occupied(entry) => out[*entry.get()].merge(&subscriber.options),
        Entry::Vacant(entry) => {
            entry.insert(out.len());
            out.push(Recipient::new(subscriber));
        }
    }
}

/// A member count as announced between shards; no shard holds 2^32 sessions.
fn count_u32(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::topic::model::{filter_matches, filter_strategy, topic_strategy};

    fn filter(text: &str) -> TopicFilter {
        TopicFilter::new(text).unwrap()
    }

    fn topic(text: &str) -> TopicName {
        TopicName::new(text).unwrap()
    }

    fn id(value: u32) -> Option<SubscriptionId> {
        SubscriptionId::new(value)
    }

    fn qos(bits: u8) -> QoS {
        QoS::from_bits(bits).unwrap()
    }

    fn options(qos_bits: u8) -> SubscriberOptions {
        SubscriberOptions {
            qos: qos(qos_bits),
            ..SubscriberOptions::default()
        }
    }

    /// Recipients of `topic` published by `publisher`, sorted by session.
    fn recipients(
        table: &mut SubscriptionTable<u32>,
        text: &str,
        publisher: Option<u32>,
    ) -> Vec<Recipient<u32>> {
        let mut out = Vec::new();
        table.match_topic(&topic(text), publisher, &mut out);
        out.sort_by_key(|recipient| recipient.session);
        out
    }

    fn ids(recipient: &Recipient<u32>) -> Vec<u32> {
        recipient
            .subscription_ids
            .iter()
            .map(SubscriptionId::get)
            .collect()
    }

    #[test]
    fn overlapping_subscriptions_of_a_session_merge() {
        let mut table = SubscriptionTable::default();
        table.subscribe(
            1,
            &filter("a/+"),
            SubscriberOptions {
                subscription_id: id(1),
                ..options(0)
            },
        );
        table.subscribe(
            1,
            &filter("a/b"),
            SubscriberOptions {
                subscription_id: id(2),
                retain_as_published: true,
                ..options(2)
            },
        );
        table.subscribe(1, &filter("#"), options(1));
        table.subscribe(
            1,
            &filter("a/#"),
            SubscriberOptions {
                subscription_id: id(1),
                ..options(0)
            },
        );
        table.subscribe(2, &filter("a/+"), options(1));
        let found = recipients(&mut table, "a/b", None);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].session, 1);
        assert_eq!(found[0].qos, QoS::ExactlyOnce);
        assert!(found[0].retain_as_published);
        let mut first_ids = ids(&found[0]);
        first_ids.sort_unstable();
        assert_eq!(first_ids, [1, 2], "each identifier once");
        assert_eq!(found[1].session, 2);
        assert_eq!(found[1].qos, QoS::AtLeastOnce);
        assert!(!found[1].retain_as_published);
        assert!(found[1].subscription_ids.is_empty());
        // Only "#" and "a/#" match "a": QoS 1 from "#".
        let found = recipients(&mut table, "a", None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].qos, QoS::AtLeastOnce);
        assert_eq!(ids(&found[0]), [1]);
    }

    #[test]
    fn merging_many_recipients_uses_the_index_and_stays_exact() {
        let mut table = SubscriptionTable::default();
        for session in 0..40 {
            table.subscribe(
                session,
                &filter("a/+"),
                SubscriberOptions {
                    subscription_id: id(1),
                    ..options(0)
                },
            );
        }
        for session in 20..60 {
            table.subscribe(
                session,
                &filter("a/#"),
                SubscriberOptions {
                    subscription_id: id(2),
                    ..options(2)
                },
            );
        }
        for session in 30..50 {
            table.subscribe(session, &filter("a/b"), options(1));
        }
        for _ in 0..2 {
            let found = recipients(&mut table, "a/b", Some(0));
            assert_eq!(found.len(), 60);
            for (session, recipient) in (0..60).zip(&found) {
                assert_eq!(recipient.session, session);
                let expected_qos = if session < 20 { 0 } else { 2 };
                assert_eq!(recipient.qos.as_u8(), expected_qos);
                let expected_ids: &[u32] = match session {
                    0..=19 => &[1],
                    20..=39 => &[1, 2],
                    _ => &[2],
                };
                let mut found_ids = ids(recipient);
                found_ids.sort_unstable();
                assert_eq!(found_ids, expected_ids);
            }
        }
    }

    #[test]
    fn no_local_skips_only_the_publishers_own_no_local_subscriptions() {
        let no_local = SubscriberOptions {
            no_local: true,
            subscription_id: id(7),
            ..options(2)
        };
        let mut table = SubscriptionTable::default();
        table.subscribe(1, &filter("a/+"), no_local);
        table.subscribe(
            1,
            &filter("a/b"),
            SubscriberOptions {
                subscription_id: id(8),
                ..options(0)
            },
        );
        table.subscribe(2, &filter("a/+"), no_local);
        table.subscribe(3, &filter("x"), no_local);
        // Session 1 publishes: its "a/+" is skipped, its "a/b" still delivers.
        let found = recipients(&mut table, "a/b", Some(1));
        assert_eq!(found.iter().map(|r| r.session).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(found[0].qos, QoS::AtMostOnce);
        assert_eq!(ids(&found[0]), [8]);
        assert!(recipients(&mut table, "x", Some(3)).is_empty());
        assert_eq!(recipients(&mut table, "x", Some(1)).len(), 1);
    }

    #[test]
    fn outcomes_say_when_a_filter_comes_and_goes_on_the_shard() {
        let mut table = SubscriptionTable::default();
        let first = table.subscribe(1, &filter("a/#"), options(0));
        assert!(first.filter_is_new_on_shard && !first.replaced);
        assert_eq!(first.shared_members_on_shard, None);
        let again = table.subscribe(1, &filter("a/#"), options(1));
        assert!(again.replaced && !again.filter_is_new_on_shard);
        let second = table.subscribe(2, &filter("a/#"), options(0));
        assert!(!second.replaced && !second.filter_is_new_on_shard);
        assert_eq!(table.len(), 2);
        assert_eq!(recipients(&mut table, "a", None)[0].qos, QoS::AtLeastOnce);

        let gone = table.unsubscribe(1, &filter("a/#"));
        assert!(gone.existed && !gone.filter_now_unused_on_shard);
        let missing = table.unsubscribe(1, &filter("a/#"));
        assert!(!missing.existed && !missing.filter_now_unused_on_shard);
        let last = table.unsubscribe(2, &filter("a/#"));
        assert!(last.existed && last.filter_now_unused_on_shard);
        assert!(table.is_empty());
        assert_eq!(table.node_count(), 0);
    }

    #[test]
    fn shared_outcomes_count_members_per_group() {
        let mut table = SubscriptionTable::default();
        let first = table.subscribe(1, &filter("$share/g/a/+"), options(0));
        assert!(first.filter_is_new_on_shard);
        assert_eq!(first.shared_members_on_shard, Some(1));
        let second = table.subscribe(2, &filter("$share/g/a/+"), options(0));
        assert!(!second.filter_is_new_on_shard);
        assert_eq!(second.shared_members_on_shard, Some(2));
        let other_group = table.subscribe(1, &filter("$share/h/a/+"), options(0));
        assert!(other_group.filter_is_new_on_shard);
        let replaced = table.subscribe(2, &filter("$share/g/a/+"), options(1));
        assert!(replaced.replaced);
        assert_eq!(replaced.shared_members_on_shard, Some(2));
        let left = table.unsubscribe(1, &filter("$share/g/a/+"));
        assert!(left.existed && !left.filter_now_unused_on_shard);
        assert_eq!(left.shared_members_on_shard, Some(1));
        let missing = table.unsubscribe(1, &filter("$share/g/a/+"));
        assert!(!missing.existed && !missing.filter_now_unused_on_shard);
        let last = table.unsubscribe(2, &filter("$share/g/a/+"));
        assert!(last.filter_now_unused_on_shard);
        assert_eq!(last.shared_members_on_shard, Some(0));
        assert_eq!(table.len(), 1);
        assert!(
            table
                .unsubscribe(1, &filter("$share/h/a/+"))
                .filter_now_unused_on_shard
        );
        assert_eq!(table.node_count(), 0);
    }

    #[test]
    fn round_robin_is_fair_and_stays_fair_when_members_leave() {
        let mut table = SubscriptionTable::new(ShareStrategy::RoundRobin);
        for session in 1..=3 {
            table.subscribe(session, &filter("$share/g/sensors/+"), options(1));
        }
        table.subscribe(9, &filter("sensors/#"), options(0));
        let mut counts = BTreeMap::new();
        for _ in 0..300 {
            let found = recipients(&mut table, "sensors/t", None);
            // The direct subscriber plus exactly one group member.
            assert_eq!(found.len(), 2);
            assert_eq!(found.iter().filter(|r| r.session == 9).count(), 1);
            for recipient in found.iter().filter(|r| r.session != 9) {
                *counts.entry(recipient.session).or_insert(0) += 1;
            }
        }
        assert_eq!(
            counts.values().copied().collect::<Vec<_>>(),
            [100, 100, 100]
        );
        table.unsubscribe(2, &filter("$share/g/sensors/+"));
        counts.clear();
        for _ in 0..200 {
            for recipient in recipients(&mut table, "sensors/t", None) {
                *counts.entry(recipient.session).or_insert(0) += 1;
            }
        }
        assert_eq!(counts, BTreeMap::from([(1, 100), (3, 100), (9, 200)]));
    }

    #[test]
    fn random_strategy_reaches_every_member() {
        let mut table = SubscriptionTable::new(ShareStrategy::Random { seed: 42 });
        for session in 0..4 {
            table.subscribe(session, &filter("$share/g/t"), options(0));
        }
        let mut counts = [0_u32; 4];
        for _ in 0..4000 {
            let found = recipients(&mut table, "t", None);
            assert_eq!(found.len(), 1);
            counts[found[0].session as usize] += 1;
        }
        assert!(
            counts.iter().all(|&count| (800..1200).contains(&count)),
            "{counts:?}"
        );
    }

    #[test]
    fn share_groups_skip_a_no_local_publisher_and_do_not_merge() {
        let mut table = SubscriptionTable::default();
        let no_local = SubscriberOptions {
            no_local: true,
            ..options(0)
        };
        table.subscribe(1, &filter("$share/g/t"), no_local);
        table.subscribe(1, &filter("$share/h/t"), options(1));
        table.subscribe(1, &filter("t"), options(2));
        for _ in 0..3 {
            // Group g has only the publisher: nobody from it; h and the direct one both go to 1.
            let found = recipients(&mut table, "t", Some(1));
            assert_eq!(
                found.iter().map(|r| r.qos.as_u8()).collect::<Vec<_>>(),
                [2, 1]
            );
        }
        table.subscribe(2, &filter("$share/g/t"), no_local);
        for _ in 0..3 {
            let found = recipients(&mut table, "t", Some(1));
            assert_eq!(
                found.iter().map(|r| r.session).collect::<Vec<_>>(),
                [1, 1, 2]
            );
        }
    }

    #[test]
    fn deliver_to_group_serves_one_named_group() {
        let mut table = SubscriptionTable::default();
        table.subscribe(1, &filter("$share/g/a/#"), options(1));
        table.subscribe(2, &filter("$share/g/a/#"), options(1));
        table.subscribe(3, &filter("$share/h/a/#"), options(1));
        let mut out = Vec::new();
        assert!(table.deliver_to_group(&filter("$share/g/a/#"), None, &mut out));
        assert!(table.deliver_to_group(&filter("$share/g/a/#"), None, &mut out));
        let mut sessions: Vec<u32> = out.iter().map(|r| r.session).collect();
        sessions.sort_unstable();
        assert_eq!(sessions, [1, 2]);
        assert!(!table.deliver_to_group(&filter("$share/x/a/#"), None, &mut out));
        assert!(!table.deliver_to_group(&filter("$share/g/b"), None, &mut out));
        assert!(!table.deliver_to_group(&filter("a/#"), None, &mut out));
        // Direct matching ignores share groups.
        out.clear();
        table.match_direct(&topic("a/b"), None, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn removing_a_session_reports_each_filter_and_frees_everything() {
        let mut table = SubscriptionTable::default();
        table.subscribe(1, &filter("a/b"), options(0));
        table.subscribe(1, &filter("a/+"), options(0));
        table.subscribe(1, &filter("$share/g/a/b"), options(0));
        table.subscribe(2, &filter("a/+"), options(0));
        assert_eq!(table.filters_of(1).len(), 3);
        let mut removed = table.remove_session(1);
        removed.sort_by(|x, y| x.filter.cmp(&y.filter));
        let summary: Vec<(&str, bool, Option<u32>)> = removed
            .iter()
            .map(|r| {
                assert!(r.outcome.existed);
                (
                    r.filter.as_str(),
                    r.outcome.filter_now_unused_on_shard,
                    r.outcome.shared_members_on_shard,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("$share/g/a/b", true, Some(0)),
                ("a/+", false, None),
                ("a/b", true, None)
            ]
        );
        assert!(table.filters_of(1).is_empty());
        assert!(table.remove_session(1).is_empty());
        assert_eq!(table.len(), 1);
        assert_eq!(recipients(&mut table, "a/b", None).len(), 1);
        table.remove_session(2);
        assert!(table.is_empty());
        assert_eq!(table.node_count(), 0);
    }

    #[test]
    fn kept_filters_do_not_share_the_subscribe_buffer() {
        let buffer = bytes::Bytes::from_static(b"a/bc");
        let text = crate::protocol::MqttString::from_bytes(buffer.slice(0..3)).unwrap();
        let borrowed = TopicFilter::from_mqtt_string(text).unwrap();
        let mut table = SubscriptionTable::default();
        table.subscribe(1_u32, &borrowed, options(0));
        let kept = &table.filters_of(1)[0];
        assert_eq!(kept, &borrowed);
        assert_ne!(kept.as_str().as_ptr(), borrowed.as_str().as_ptr());
    }

    /// One step of the model test.
    #[derive(Debug, Clone)]
    enum Op {
        Subscribe(u32, String, u8, Option<u32>, bool),
        Unsubscribe(u32, String),
        RemoveSession(u32),
    }

    /// A direct filter, or a shared one in one of two groups.
    fn any_filter() -> impl Strategy<Value = String> {
        let prefix = prop_oneof![2 => Just(""), 1 => Just("$share/g/"), 1 => Just("$share/h/")];
        (prefix, filter_strategy()).prop_map(|(prefix, inner)| format!("{prefix}{inner}"))
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..4_u32, any_filter(), 0..3_u8, proptest::option::of(1..4_u32), any::<bool>())
                .prop_map(|(s, f, q, i, n)| Op::Subscribe(s, f, q, i, n)),
            2 => (0..4_u32, any_filter()).prop_map(|(s, f)| Op::Unsubscribe(s, f)),
            1 => (0..4_u32).prop_map(Op::RemoveSession),
        ]
    }

    /// (session, qos, identifier, no local) of each subscription in the model.
    type Model = BTreeMap<(u32, String), (u8, Option<u32>, bool)>;

    /// Checks direct matching of `text` against the model: per session, fold every matching
    /// direct subscription (highest QoS, identifiers, No Local).
    fn check_direct(
        table: &mut SubscriptionTable<u32>,
        model: &Model,
        text: &str,
        publisher: Option<u32>,
    ) -> Result<(), TestCaseError> {
        let mut expected: BTreeMap<u32, (u8, Vec<u32>)> = BTreeMap::new();
        for ((session, f), (qos_bits, sub_id, no_local)) in model {
            if f.starts_with("$share/")
                || !filter_matches(f, text)
                || (*no_local && Some(*session) == publisher)
            {
                continue;
            }
            let entry = expected.entry(*session).or_insert((0, Vec::new()));
            entry.0 = entry.0.max(*qos_bits);
            entry.1.extend(sub_id);
        }
        for value in expected.values_mut() {
            value.1.sort_unstable();
            value.1.dedup();
        }
        let mut out = Vec::new();
        table.match_direct(&topic(text), publisher, &mut out);
        let mut found: BTreeMap<u32, (u8, Vec<u32>)> = BTreeMap::new();
        for recipient in &out {
            let mut sub_ids = ids(recipient);
            sub_ids.sort_unstable();
            let previous = found.insert(recipient.session, (recipient.qos.as_u8(), sub_ids));
            prop_assert!(previous.is_none(), "one recipient per session");
        }
        prop_assert_eq!(found, expected, "topic {:?}", text);
        Ok(())
    }

    /// Checks shared matching of `text`: one recipient per matching group that has a member
    /// the publisher's No Local leaves eligible, and that recipient is such a member.
    fn check_shared(
        table: &mut SubscriptionTable<u32>,
        model: &Model,
        text: &str,
        publisher: Option<u32>,
    ) -> Result<(), TestCaseError> {
        let mut eligible: BTreeMap<&str, BTreeMap<u32, u8>> = BTreeMap::new();
        for ((session, f), (qos_bits, _, no_local)) in model {
            let shared = f
                .strip_prefix("$share/")
                .and_then(|rest| rest.split_once('/'));
            let Some((_, inner)) = shared else {
                continue;
            };
            if !filter_matches(inner, text) {
                continue;
            }
            let members = eligible.entry(f.as_str()).or_default();
            if !(*no_local && Some(*session) == publisher) {
                members.insert(*session, *qos_bits);
            }
        }
        let mut out = Vec::new();
        table.match_shared(&topic(text), publisher, &mut out);
        let serving = eligible
            .values()
            .filter(|members| !members.is_empty())
            .count();
        prop_assert_eq!(out.len(), serving, "topic {:?}", text);
        for (group, members) in &eligible {
            out.clear();
            let delivered = table.deliver_to_group(&filter(group), publisher, &mut out);
            prop_assert_eq!(delivered, !members.is_empty());
            for recipient in &out {
                prop_assert_eq!(
                    members.get(&recipient.session),
                    Some(&recipient.qos.as_u8())
                );
            }
        }
        Ok(())
    }

    proptest! {
        /// Matching equals a naive model after every operation, and the outcomes say exactly
        /// when a filter (or a group) appears on and leaves the shard.
        #[test]
        fn matching_equals_a_naive_model(
            ops in proptest::collection::vec(op_strategy(), 1..40),
            topics in proptest::collection::vec(topic_strategy(), 1..6),
            publisher in proptest::option::of(0..4_u32),
        ) {
            let mut table = SubscriptionTable::default();
            let mut model = Model::new();
            for op in ops {
                match op {
                    Op::Subscribe(session, text, qos_bits, sub_id, no_local) => {
                        let outcome = table.subscribe(session, &filter(&text), SubscriberOptions {
                            no_local,
                            subscription_id: sub_id.and_then(SubscriptionId::new),
                            ..options(qos_bits)
                        });
                        let is_new = !model.keys().any(|(_, f)| *f == text);
                        prop_assert_eq!(outcome.filter_is_new_on_shard, is_new);
                        let replaced = model.insert((session, text), (qos_bits, sub_id, no_local));
                        prop_assert_eq!(outcome.replaced, replaced.is_some());
                    }
                    Op::Unsubscribe(session, text) => {
                        let outcome = table.unsubscribe(session, &filter(&text));
                        let existed = model.remove(&(session, text.clone())).is_some();
                        prop_assert_eq!(outcome.existed, existed);
                        let unused = existed && !model.keys().any(|(_, f)| *f == text);
                        prop_assert_eq!(outcome.filter_now_unused_on_shard, unused);
                    }
                    Op::RemoveSession(session) => {
                        let removed = table.remove_session(session);
                        let before = model.len();
                        model.retain(|(s, _), _| *s != session);
                        prop_assert_eq!(removed.len(), before - model.len());
                    }
                }
                prop_assert_eq!(table.len(), model.len());
                for text in &topics {
                    check_direct(&mut table, &model, text, publisher)?;
                    check_shared(&mut table, &model, text, publisher)?;
                }
            }
            for session in 0..4 {
                table.remove_session(session);
            }
            prop_assert!(table.is_empty());
            prop_assert_eq!(table.node_count(), 0);
        }
    }
}
