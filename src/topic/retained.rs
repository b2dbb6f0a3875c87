//! [`RetainedStore`]: the retained messages, indexed by topic name, and the query that finds
//! those a new subscription's filter matches.
//!
//! Every shard keeps one, fed by broadcast writes; the messages themselves are shared (an
//! `Arc` or `Bytes` in `M`), so each shard pays only for its index. It runs on the subscribe
//! path, not per message: a query may allocate its walk stack, but it must never recurse once
//! per level, because a client chooses how deep a retained topic is. The store keeps nothing but
//! `M`: the broker's retained message carries its own topic, and a second copy here would only
//! cost memory.

use super::arena::{index, Arena, Link, ROOT};
use super::{next_level, shrink_after_removal, LevelMap};
use crate::protocol::{TopicFilter, TopicName};

/// Retained messages by topic name. `set` replaces, `remove` deletes (the caller removes when
/// a retained PUBLISH has an empty payload).
#[derive(Debug)]
pub struct RetainedStore<M> {
    arena: Arena<TopicNode, Option<M>>,
    len: usize,
}

/// A topic level: its children by level text. Its message, if any, is its arena slot.
#[derive(Debug, Default)]
struct TopicNode {
    children: LevelMap<Link>,
}

/// Work left in a query: match the rest of the filter below a node, or take a node's whole
/// subtree (what a `#` matches).
#[derive(Debug)]
enum Step<'f> {
    Filter { node: usize, rest: Option<&'f str> },
    Subtree(usize),
}

impl<M> Default for RetainedStore<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> RetainedStore<M> {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            arena: Arena::new(),
            len: 0,
        }
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is retained.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Nodes in use, not counting the root; zero once everything is removed.
    pub fn node_count(&self) -> usize {
        self.arena.live_nodes()
    }

    /// The message retained on exactly `topic`.
    pub fn get(&self, topic: &TopicName) -> Option<&M> {
        self.arena.slot(self.locate(topic.as_str())?).as_ref()
    }

    /// Retains `message` on `topic`, returning the message it replaces.
    pub fn set(&mut self, topic: &TopicName, message: M) -> Option<M> {
        let mut node = ROOT;
        for level in topic.levels() {
            let child = match self.arena.node(node).children.get(level) {
                Some(&child) => child,
                None => {
                    let child = self.arena.alloc(node);
                    self.arena
                        .node_mut(node)
                        .children
                        .insert(level.into(), child);
                    child
                }
            };
            node = index(child);
        }
        let previous = self.arena.slot_mut(node).replace(message);
        if previous.is_none() {
            self.len += 1;
        }
        previous
    }

    /// Deletes the message retained on `topic`, pruning the levels left empty.
    pub fn remove(&mut self, topic: &TopicName) -> Option<M> {
        let mut node = self.locate(topic.as_str())?;
        let removed = self.arena.slot_mut(node).take()?;
        self.len -= 1;
        // Read backwards, the topic's levels are the keys of the links from `node` up.
        let mut levels = topic.as_str().rsplit('/');
        while node != ROOT
            && self.arena.slot(node).is_none()
            && self.arena.node(node).children.is_empty()
        {
            let Some(level) = levels.next() else { break };
            let parent = self.arena.parent(node);
            let children = &mut self.arena.node_mut(parent).children;
            let link = children.remove(level);
            shrink_after_removal(children);
            if let Some(link) = link {
                self.arena.release(link);
            }
            node = parent;
        }
        Some(removed)
    }

    /// Calls `visit` with every retained message whose topic `filter` matches, in no given
    /// order. A shared filter is matched by its inner filter; whether a shared subscription gets
    /// retained messages is the caller's decision (MQTT 5 sends none). Topics starting
    /// with `$` are not matched by a `+` or `#` first level.
    pub fn for_each_matching(&self, filter: &TopicFilter, mut visit: impl FnMut(&M)) {
        let text = filter.shared().map_or(filter.as_str(), |(_, inner)| inner);
        let (nodes, messages) = self.arena.nodes_and_slots();
        let mut visit_node = |node: usize| {
            if let Some(message) = &messages[node] {
                visit(message);
            }
        };
        let mut stack = vec![Step::Filter {
            node: ROOT,
            rest: Some(text),
        }];
        while let Some(step) = stack.pop() {
            let (node, levels) = match step {
                Step::Subtree(node) => {
                    visit_node(node);
                    let children = nodes[node].children.values();
                    stack.extend(children.map(|&child| Step::Subtree(index(child))));
                    continue;
                }
                Step::Filter { node, rest: None } => {
                    visit_node(node);
                    continue;
                }
                Step::Filter {
                    node,
                    rest: Some(levels),
                } => (node, levels),
            };
            let children = &nodes[node].children;
            // [MQTT-4.7.2-1]: wildcards at the first level skip `$` topics.
            let wildcard_may_take = |level: &str| node != ROOT || !level.starts_with('$');
            match next_level(levels) {
                // `#` matches the parent level too: `sport/#` returns `sport`.
                ("#", None) => {
                    visit_node(node);
                    let matching = children
                        .iter()
                        .filter(|(level, _)| wildcard_may_take(level));
                    stack.extend(matching.map(|(_, &child)| Step::Subtree(index(child))));
                }
                ("+", rest) => {
                    let matching = children
                        .iter()
                        .filter(|(level, _)| wildcard_may_take(level));
                    stack.extend(matching.map(|(_, &child)| Step::Filter {
                        node: index(child),
                        rest,
                    }));
                }
                (level, rest) => {
                    if let Some(&child) = children.get(level) {
                        stack.push(Step::Filter {
                            node: index(child),
                            rest,
                        });
                    }
                }
            }
        }
    }

    /// The node of exactly `topic`, if it exists.
    fn locate(&self, topic: &str) -> Option<usize> {
        let mut node = ROOT;
        for level in topic.split('/') {
            node = index(*self.arena.node(node).children.get(level)?);
        }
        Some(node)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;
    use crate::topic::model::{filter_matches, filter_strategy, topic_strategy};

    fn topic(text: &str) -> TopicName {
        TopicName::new(text).unwrap()
    }

    /// Stores each topic with itself as the message.
    fn store_of(topics: &[&str]) -> RetainedStore<String> {
        let mut store = RetainedStore::new();
        for text in topics {
            store.set(&topic(text), (*text).to_owned());
        }
        store
    }

    fn query(store: &RetainedStore<String>, filter: &str) -> Vec<String> {
        let mut found = Vec::new();
        store.for_each_matching(&TopicFilter::new(filter).unwrap(), |m| {
            found.push(m.clone())
        });
        found.sort();
        found
    }

    #[test]
    fn wildcard_queries_follow_the_spec() {
        let store = store_of(&[
            "sport",
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player2",
            "sport/",
            "$SYS/uptime",
            "/finance",
        ]);
        assert_eq!(
            query(&store, "sport/#"),
            [
                "sport",
                "sport/",
                "sport/tennis/player1",
                "sport/tennis/player1/ranking",
                "sport/tennis/player2"
            ]
        );
        assert_eq!(
            query(&store, "sport/tennis/+"),
            ["sport/tennis/player1", "sport/tennis/player2"]
        );
        assert_eq!(query(&store, "sport/+"), ["sport/"]);
        assert_eq!(query(&store, "+/+"), ["/finance", "sport/"]);
        assert_eq!(query(&store, "+"), ["sport"]);
        assert_eq!(query(&store, "#").len(), 6, "everything but $SYS");
        assert_eq!(query(&store, "$SYS/#"), ["$SYS/uptime"]);
        assert_eq!(query(&store, "+/uptime"), Vec::<String>::new());
        assert_eq!(
            query(&store, "sport/tennis/player1"),
            ["sport/tennis/player1"]
        );
        assert_eq!(query(&store, "$share/g/sport/+"), ["sport/"]);
    }

    #[test]
    fn set_replaces_and_remove_prunes() {
        let mut store = store_of(&["a/b/c", "a/b"]);
        assert_eq!(
            store.set(&topic("a/b"), "new".to_owned()).as_deref(),
            Some("a/b")
        );
        assert_eq!(store.get(&topic("a/b")).map(String::as_str), Some("new"));
        assert_eq!(store.len(), 2);
        assert_eq!(store.node_count(), 3);
        assert_eq!(store.remove(&topic("a/b")).as_deref(), Some("new"));
        assert_eq!(store.node_count(), 3, "a/b still leads to a/b/c");
        assert_eq!(store.remove(&topic("a/b")), None);
        assert_eq!(store.remove(&topic("a/x")), None);
        assert_eq!(store.remove(&topic("a/b/c")).as_deref(), Some("a/b/c"));
        assert!(store.is_empty());
        assert_eq!(store.node_count(), 0);
        assert_eq!(store.get(&topic("a/b/c")), None);
    }

    #[test]
    fn deep_topics_do_not_overflow_the_stack() {
        let deep = vec!["x"; 30_000].join("/");
        let mut store = RetainedStore::new();
        store.set(&topic(&deep), 1);
        let mut found = 0;
        store.for_each_matching(&TopicFilter::new("#").unwrap(), |_| found += 1);
        store.for_each_matching(&TopicFilter::new(&deep).unwrap(), |_| found += 1);
        assert_eq!(found, 2);
        assert_eq!(store.remove(&topic(&deep)), Some(1));
        assert_eq!(store.node_count(), 0);
    }

    proptest! {
        /// A query returns exactly the stored topics the naive matcher accepts, also after
        /// random removals; removing everything frees every node.
        #[test]
        fn queries_equal_the_naive_matcher(
            topics in proptest::collection::btree_set(topic_strategy(), 0..24),
            filters in proptest::collection::vec(filter_strategy(), 1..10),
            removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let mut kept: Vec<String> = topics.into_iter().collect();
            let mut store = RetainedStore::new();
            for text in &kept {
                prop_assert!(store.set(&topic(text), text.clone()).is_none());
            }
            let check = |store: &RetainedStore<String>, kept: &[String]| {
                prop_assert_eq!(store.len(), kept.len());
                for filter in &filters {
                    let mut expected: Vec<String> =
                        kept.iter().filter(|t| filter_matches(filter, t)).cloned().collect();
                    expected.sort();
                    prop_assert_eq!(query(store, filter), expected, "filter {:?}", filter);
                }
                Ok(())
            };
            check(&store, &kept)?;
            for removal in removals {
                if kept.is_empty() {
                    break;
                }
                let text = kept.swap_remove(removal.index(kept.len()));
                prop_assert_eq!(store.remove(&topic(&text)), Some(text));
                check(&store, &kept)?;
            }
            for text in kept {
                prop_assert!(store.remove(&topic(&text)).is_some());
            }
            prop_assert!(store.is_empty());
            prop_assert_eq!(store.node_count(), 0);
        }
    }
}
