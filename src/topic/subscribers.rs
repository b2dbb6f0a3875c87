//! [`Subscribers`]: the sessions subscribed to one filter (or one share group) on a shard, with
//! the options of each subscription. Shard-local plain data.
//!
//! Matching reads the list front to back, so it is a `Vec`. Subscribing and unsubscribing look
//! a session up in it; a list that grows long (thousands of sessions on `devices/#`) gets a
//! position index so those stay O(1) rather than a scan, and drops it again when it shrinks.

use std::hash::Hash;

use crate::protocol::{QoS, SubscriptionId, SubscriptionOptions};

/// What the router needs of one subscription. Retain Handling is not here: it matters only at
/// the moment of subscribing, which the session layer handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriberOptions {
    /// Maximum QoS granted.
    pub qos: QoS,
    /// Don't deliver the session's own publishes back to it (5.0).
    pub no_local: bool,
    /// Keep the retain flag as published (5.0).
    pub retain_as_published: bool,
    /// The subscription identifier of the SUBSCRIBE that made it (5.0).
    pub subscription_id: Option<SubscriptionId>,
}

impl SubscriberOptions {
    /// The routing part of a SUBSCRIBE's options and identifier.
    pub fn new(options: &SubscriptionOptions, subscription_id: Option<SubscriptionId>) -> Self {
        Self {
            qos: options.qos,
            no_local: options.no_local,
            retain_as_published: options.retain_as_published,
            subscription_id,
        }
    }
}

/// One session's subscription to a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Subscriber<K> {
    pub(super) session: K,
    pub(super) options: SubscriberOptions,
}

/// Lists longer than this get a position index: past a few dozen entries a hash lookup beats
/// comparing keys one by one.
const INDEX_FROM_LEN: usize = 32;

/// The subscribers of one filter or group, each session at most once. Never empty while stored
/// in a trie: the table removes it with its last member.
#[derive(Debug)]
pub(super) struct Subscribers<K> {
    entries: Vec<Subscriber<K>>,
    /// Position of each session in `entries`, kept only while the list is long.
    positions: Option<foldhash::HashMap<K, usize>>,
}

impl<K> Default for Subscribers<K> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            positions: None,
        }
    }
}

impl<K> Subscribers<K> {
    /// The subscribers, in no given order.
    pub(super) fn as_slice(&self) -> &[Subscriber<K>] {
        &self.entries
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K: Copy + Eq + Hash> Subscribers<K> {
    /// Adds the session, or replaces its options if it is already here (true then).
    pub(super) fn upsert(&mut self, session: K, options: SubscriberOptions) -> bool {
        if let Some(position) = self.position(session) {
            self.entries[position].options = options;
            return true;
        }
        self.entries.push(Subscriber { session, options });
        match &mut self.positions {
            Some(positions) => {
                positions.insert(session, self.entries.len() - 1);
            }
            None if self.entries.len() > INDEX_FROM_LEN => self.build_index(),
            None => {}
        }
        false
    }

    /// Removes the session; true if it was here.
    pub(super) fn remove(&mut self, session: K) -> bool {
        let Some(position) = self.position(session) else {
            return false;
        };
        self.entries.swap_remove(position);
        if let Some(positions) = &mut self.positions {
            positions.remove(&session);
            if let Some(moved) = self.entries.get(position) {
                positions.insert(moved.session, position);
            }
            // Hysteresis: drop the index at half the length that builds it, so a list hovering
            // around the threshold doesn't rebuild it on every change.
            if self.entries.len() < INDEX_FROM_LEN / 2 {
                self.positions = None;
            }
        }
        if self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
        }
        true
    }

    fn position(&self, session: K) -> Option<usize> {
        match &self.positions {
            Some(positions) => positions.get(&session).copied(),
            None => self
                .entries
                .iter()
                .position(|entry| entry.session == session),
        }
    }

    fn build_index(&mut self) {
        let positions = self
            .entries
            .iter()
            .enumerate()
            .map(|(position, entry)| (entry.session, position))
            .collect();
        self.positions = Some(positions);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn options(qos: u8) -> SubscriberOptions {
        SubscriberOptions {
            qos: QoS::from_bits(qos).unwrap(),
            ..SubscriberOptions::default()
        }
    }

    #[test]
    fn options_come_from_a_subscribe() {
        let subscribe = SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: crate::protocol::RetainHandling::DoNotSend,
        };
        let id = SubscriptionId::new(9);
        let options = SubscriberOptions::new(&subscribe, id);
        assert_eq!(options.qos, QoS::ExactlyOnce);
        assert!(options.no_local && options.retain_as_published);
        assert_eq!(options.subscription_id, id);
    }

    proptest! {
        /// Any sequence of upserts and removes leaves the same content as a map, across the
        /// size where the position index comes and goes.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0u32..80, 0u8..3), 0..400)) {
            let mut subscribers = Subscribers::default();
            let mut model = BTreeMap::new();
            for (insert, session, qos) in ops {
                if insert {
                    let replaced = subscribers.upsert(session, options(qos));
                    prop_assert_eq!(replaced, model.insert(session, qos).is_some());
                } else {
                    prop_assert_eq!(subscribers.remove(session), model.remove(&session).is_some());
                }
                prop_assert_eq!(subscribers.len(), model.len());
            }
            let mut listed: Vec<(u32, u8)> = subscribers
                .as_slice()
                .iter()
                .map(|entry| (entry.session, entry.options.qos.as_u8()))
                .collect();
            listed.sort_unstable();
            prop_assert_eq!(subscribers.is_empty(), model.is_empty());
            prop_assert_eq!(listed, model.into_iter().collect::<Vec<_>>());
        }
    }
}
