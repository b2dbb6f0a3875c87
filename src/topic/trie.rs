//! [`FilterTrie`]: a map from topic filters to values, and the walk that visits every value whose
//! filter matches a topic name (MQTT 3.1.1 and 5.0, §4.7).
//!
//! It runs inside one shard, on the path of every message: the subscription table and the
//! interest table are built on it. Matching must never allocate and never recurse once per
//! level (a client picks how many levels a topic has); it recurses only at nodes where both an
//! exact child and a `+` child match, which takes quadratically many filter bytes to make deep.
//!
//! Shape: each node has exact children keyed by level text, an optional `+` child, and two value
//! slots: the value of the filter that ends at the node (`a/b`) and the value of the filter
//! that is the node's path followed by `#` (`a/b/#`). `#` is always the last level, so it needs
//! no node of its own. Empty levels are levels like any other (`a//b`, `/a`).

use super::arena::{index, Arena, Link, ROOT};
use super::{next_level, shrink_after_removal, LevelMap};

/// A map from topic filters to `T`, matched against topic names.
///
/// Filters are given as text and should be valid (as [`TopicFilter`] checks); the text of a
/// shared filter's inner filter is what goes in here. An invalid filter is still handled
/// without a panic: a `#` that is not the last level is taken as an ordinary level, which no
/// topic name can match.
///
/// [`TopicFilter`]: crate::protocol::TopicFilter
#[derive(Debug)]
pub struct FilterTrie<T> {
    arena: Arena<FilterNode, FilterValues<T>>,
    len: usize,
}

/// What a match walk reads at each node. The `has_*` flags mirror whether the node's values
/// are set, so the walk only touches the values of nodes that match.
#[derive(Debug, Default)]
struct FilterNode {
    exact: LevelMap<Link>,
    plus: Option<Link>,
    has_value: bool,
    has_hash_value: bool,
}

impl FilterNode {
    /// True when the node holds nothing and leads nowhere: it can be pruned.
    fn is_unused(&self) -> bool {
        self.exact.is_empty() && self.plus.is_none() && !self.has_value && !self.has_hash_value
    }
}

/// The two values a node can hold.
#[derive(Debug)]
struct FilterValues<T> {
    /// Value of the filter ending at this node.
    value: Option<T>,
    /// Value of the filter that is this node's path followed by `/#` (or `#` at the root).
    hash_value: Option<T>,
}

impl<T> Default for FilterValues<T> {
    fn default() -> Self {
        Self {
            value: None,
            hash_value: None,
        }
    }
}

/// Which of a node's two values a filter names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterEnd {
    /// The filter ends at the node.
    AtNode,
    /// The filter is the node's path followed by `#`.
    Hash,
}

impl<T> FilterValues<T> {
    fn get(&self, end: FilterEnd) -> &Option<T> {
        match end {
            FilterEnd::AtNode => &self.value,
            FilterEnd::Hash => &self.hash_value,
        }
    }

    fn get_mut(&mut self, end: FilterEnd) -> &mut Option<T> {
        match end {
            FilterEnd::AtNode => &mut self.value,
            FilterEnd::Hash => &mut self.hash_value,
        }
    }
}

/// Splits a filter into the levels walked from the root (`None`: no level, the filter is `#`)
/// and which value of the last node it names.
fn split_filter(filter: &str) -> (Option<&str>, FilterEnd) {
    if filter == "#" {
        (None, FilterEnd::Hash)
    } else if let Some(path) = filter.strip_suffix("/#") {
        (Some(path), FilterEnd::Hash)
    } else {
        (Some(filter), FilterEnd::AtNode)
    }
}

impl<T> Default for FilterTrie<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> FilterTrie<T> {
    /// An empty trie.
    pub fn new() -> Self {
        Self {
            arena: Arena::new(),
            len: 0,
        }
    }

    /// Number of filters with a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no filter has a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Nodes in use, not counting the root: zero once every filter is removed, which is how the
    /// tests check that removal gives memory back.
    pub fn node_count(&self) -> usize {
        self.arena.live_nodes()
    }

    /// The value stored for exactly this filter (no wildcard matching).
    pub fn get(&self, filter: &str) -> Option<&T> {
        let (node, end) = self.locate(filter)?;
        self.arena.slot(node).get(end).as_ref()
    }

    /// The value stored for exactly this filter, writable.
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut T> {
        let (node, end) = self.locate(filter)?;
        self.arena.slot_mut(node).get_mut(end).as_mut()
    }

    /// Stores `value` for `filter`, returning the value it replaces.
    pub fn insert(&mut self, filter: &str, value: T) -> Option<T> {
        let (node, end) = self.create_path(filter);
        let previous = self.arena.slot_mut(node).get_mut(end).replace(value);
        if previous.is_none() {
            self.mark(node, end, true);
        }
        previous
    }

    /// The value for `filter`, stored from `make` first if there is none.
    pub fn get_or_insert_with(&mut self, filter: &str, make: impl FnOnce() -> T) -> &mut T {
        let (node, end) = self.create_path(filter);
        if self.arena.slot(node).get(end).is_none() {
            self.mark(node, end, true);
        }
        self.arena
            .slot_mut(node)
            .get_mut(end)
            .get_or_insert_with(make)
    }

    /// Removes the value for `filter` and prunes the nodes left empty.
    pub fn remove(&mut self, filter: &str) -> Option<T> {
        self.remove_if(filter, |_| true)
    }

    /// Lets `should_remove` change the value for `filter`, then removes it (pruning empty
    /// nodes) if it returned true. Returns the removed value. This is how a list of subscribers
    /// loses one member and the filter goes away with the last.
    pub fn remove_if(
        &mut self,
        filter: &str,
        should_remove: impl FnOnce(&mut T) -> bool,
    ) -> Option<T> {
        let (node, end) = self.locate(filter)?;
        let slot = self.arena.slot_mut(node).get_mut(end);
        if !should_remove(slot.as_mut()?) {
            return None;
        }
        let removed = slot.take();
        self.mark(node, end, false);
        self.prune(node, split_filter(filter).0);
        removed
    }

    /// Calls `visit` with the value of every filter matching `topic`, each once, in no given
    /// order. Allocates nothing.
    pub fn for_each_match(&self, topic: &str, mut visit: impl FnMut(&T)) {
        let (nodes, slots) = self.arena.nodes_and_slots();
        walk_matches(nodes, topic, &mut |node, end| {
            if let Some(value) = slots[node].get(end) {
                visit(value);
            }
        });
    }

    /// Like [`Self::for_each_match`], with the values writable (a round-robin cursor moves).
    pub fn for_each_match_mut(&mut self, topic: &str, mut visit: impl FnMut(&mut T)) {
        let (nodes, slots) = self.arena.nodes_and_slots_mut();
        walk_matches(nodes, topic, &mut |node, end| {
            if let Some(value) = slots[node].get_mut(end) {
                visit(value);
            }
        });
    }

    /// The node and value a filter names, if its path exists.
    fn locate(&self, filter: &str) -> Option<(usize, FilterEnd)> {
        let (path, end) = split_filter(filter);
        let mut node = ROOT;
        for level in path.into_iter().flat_map(|path| path.split('/')) {
            let here = self.arena.node(node);
            let child = if level == "+" {
                here.plus
            } else {
                here.exact.get(level).copied()
            };
            node = index(child?);
        }
        Some((node, end))
    }

    /// The node and value a filter names, creating the nodes on its path that are missing.
    fn create_path(&mut self, filter: &str) -> (usize, FilterEnd) {
        let (path, end) = split_filter(filter);
        let mut node = ROOT;
        for level in path.into_iter().flat_map(|path| path.split('/')) {
            let here = self.arena.node(node);
            let existing = if level == "+" {
                here.plus
            } else {
                here.exact.get(level).copied()
            };
            let child = match existing {
                Some(child) => child,
                None => {
                    let child = self.arena.alloc(node);
                    let here = self.arena.node_mut(node);
                    if level == "+" {
                        here.plus = Some(child);
                    } else {
                        here.exact.insert(level.into(), child);
                    }
                    child
                }
            };
            node = index(child);
        }
        (node, end)
    }

    /// Records that a node's value was set or taken, keeping the flag and the count in step.
    fn mark(&mut self, node: usize, end: FilterEnd, present: bool) {
        let here = self.arena.node_mut(node);
        match end {
            FilterEnd::AtNode => here.has_value = present,
            FilterEnd::Hash => here.has_hash_value = present,
        }
        if present {
            self.len += 1;
        } else {
            self.len -= 1;
        }
    }

    /// Frees `node` and its ancestors while they are unused. `path` is the filter path that led
    /// to `node`; read backwards, its levels are the keys of the links being cut, so nodes need
    /// not store their own key.
    fn prune(&mut self, mut node: usize, path: Option<&str>) {
        let mut levels = path.into_iter().flat_map(|path| path.rsplit('/'));
        while node != ROOT && self.arena.node(node).is_unused() {
            // Each node below the root was reached through one level of `path`.
            let Some(level) = levels.next() else { break };
            let parent = self.arena.parent(node);
            let up = self.arena.node_mut(parent);
            let link = if level == "+" {
                up.plus.take()
            } else {
                let link = up.exact.remove(level);
                shrink_after_removal(&mut up.exact);
                link
            };
            if let Some(link) = link {
                self.arena.release(link);
            }
            node = parent;
        }
    }
}

/// Calls `on_match` with every (node, value) whose filter matches `topic`. The root is walked
/// apart because only there do wildcards skip `$` topics ([MQTT-4.7.2-1]).
fn walk_matches(nodes: &[FilterNode], topic: &str, on_match: &mut impl FnMut(usize, FilterEnd)) {
    let root = &nodes[ROOT];
    let wildcards_apply = !topic.starts_with('$');
    if wildcards_apply && root.has_hash_value {
        on_match(ROOT, FilterEnd::Hash);
    }
    let (level, rest) = next_level(topic);
    if let Some(&child) = root.exact.get(level) {
        walk_below(nodes, index(child), rest, on_match);
    }
    if let (true, Some(plus)) = (wildcards_apply, root.plus) {
        walk_below(nodes, index(plus), rest, on_match);
    }
}

/// The walk from a node reached by the topic's levels so far, with `rest` the levels left.
/// It loops down one child and recurses only when two children (exact and `+`) both match.
fn walk_below(
    nodes: &[FilterNode],
    mut node: usize,
    mut rest: Option<&str>,
    on_match: &mut impl FnMut(usize, FilterEnd),
) {
    loop {
        let here = &nodes[node];
        // `#` matches the parent level too: `a/#` matches `a` as well as `a/b/c`.
        if here.has_hash_value {
            on_match(node, FilterEnd::Hash);
        }
        let Some(levels) = rest else {
            if here.has_value {
                on_match(node, FilterEnd::AtNode);
            }
            return;
        };
        let (level, tail) = next_level(levels);
        let exact = if here.exact.is_empty() {
            None
        } else {
            here.exact.get(level).copied()
        };
        node = match (exact, here.plus) {
            (Some(exact), Some(plus)) => {
                walk_below(nodes, index(plus), tail, on_match);
                index(exact)
            }
            (Some(child), None) | (None, Some(child)) => index(child),
            (None, None) => return,
        };
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;
    use crate::topic::model::{filter_matches, filter_strategy, topic_strategy};

    /// The filters of `trie` (values are the filter text) matching `topic`, sorted.
    fn matches(trie: &FilterTrie<String>, topic: &str) -> Vec<String> {
        let mut found = Vec::new();
        trie.for_each_match(topic, |filter| found.push(filter.clone()));
        found.sort();
        found
    }

    fn trie_of(filters: &[&str]) -> FilterTrie<String> {
        let mut trie = FilterTrie::new();
        for filter in filters {
            trie.insert(filter, (*filter).to_owned());
        }
        trie
    }

    #[test]
    fn spec_multi_level_wildcard_examples() {
        // §4.7.1.2: "sport/tennis/player1/#" matches these three.
        let trie = trie_of(&["sport/tennis/player1/#"]);
        for topic in [
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player1/score/wimbledon",
        ] {
            assert_eq!(matches(&trie, topic), ["sport/tennis/player1/#"], "{topic}");
        }
        assert!(matches(&trie, "sport/tennis/player2").is_empty());
        // "sport/#" also matches the singular "sport", since # includes the parent level.
        let trie = trie_of(&["sport/#"]);
        assert_eq!(matches(&trie, "sport"), ["sport/#"]);
        assert_eq!(matches(&trie, "sport/"), ["sport/#"]);
        assert!(matches(&trie, "sports").is_empty());
        // "#" alone matches every topic not starting with $.
        let trie = trie_of(&["#"]);
        assert_eq!(matches(&trie, "a/b/c"), ["#"]);
        assert_eq!(matches(&trie, "/"), ["#"]);
    }

    #[test]
    fn spec_single_level_wildcard_examples() {
        // §4.7.1.3.
        let trie = trie_of(&["sport/tennis/+"]);
        assert_eq!(matches(&trie, "sport/tennis/player1"), ["sport/tennis/+"]);
        assert_eq!(matches(&trie, "sport/tennis/player2"), ["sport/tennis/+"]);
        assert!(matches(&trie, "sport/tennis/player1/ranking").is_empty());
        let trie = trie_of(&["sport/+"]);
        assert!(matches(&trie, "sport").is_empty());
        assert_eq!(matches(&trie, "sport/"), ["sport/+"]);
        // "+/+" and "/+" match "/finance"; "+" does not.
        let trie = trie_of(&["+/+", "/+", "+"]);
        assert_eq!(matches(&trie, "/finance"), ["+/+", "/+"]);
        assert_eq!(matches(&trie, "finance"), ["+"]);
        // "sport/+/player1" with an exact sibling: both branches are walked.
        let trie = trie_of(&["sport/+/player1", "sport/tennis/player1", "sport/tennis/#"]);
        assert_eq!(
            matches(&trie, "sport/tennis/player1"),
            ["sport/+/player1", "sport/tennis/#", "sport/tennis/player1"]
        );
    }

    #[test]
    fn wildcards_at_the_first_level_skip_dollar_topics() {
        // §4.7.2: [MQTT-4.7.2-1].
        let trie = trie_of(&["#", "+/monitor/Clients", "$SYS/#", "$SYS/monitor/+", "+"]);
        assert_eq!(
            matches(&trie, "$SYS/monitor/Clients"),
            ["$SYS/#", "$SYS/monitor/+"]
        );
        assert_eq!(matches(&trie, "$SYS"), ["$SYS/#"]);
        assert!(matches(&trie, "$other").is_empty());
        // A `$` further down is an ordinary character.
        assert_eq!(matches(&trie, "a/$b"), ["#"]);
        assert_eq!(
            matches(&trie, "x/monitor/Clients"),
            ["#", "+/monitor/Clients"]
        );
    }

    #[test]
    fn empty_levels_are_levels() {
        let trie = trie_of(&["a//b", "a/+/b", "/a", "+/a", "a/", "a/+"]);
        assert_eq!(matches(&trie, "a//b"), ["a/+/b", "a//b"]);
        assert_eq!(matches(&trie, "/a"), ["+/a", "/a"]);
        assert_eq!(matches(&trie, "a/"), ["a/", "a/+"]);
        assert!(matches(&trie, "a").is_empty());
        assert!(matches(&trie, "a/b").contains(&"a/+".to_owned()));
    }

    #[test]
    fn get_insert_and_replace() {
        let mut trie = FilterTrie::new();
        assert_eq!(trie.insert("a/+/#", 1), None);
        assert_eq!(trie.insert("a/+/#", 2), Some(1));
        assert_eq!(trie.insert("a/+", 3), None);
        assert_eq!(trie.len(), 2);
        assert_eq!(trie.get("a/+/#"), Some(&2));
        assert_eq!(trie.get("a/+"), Some(&3));
        assert_eq!(trie.get("a"), None);
        assert_eq!(trie.get("a/b"), None);
        *trie.get_mut("a/+").unwrap() += 10;
        assert_eq!(*trie.get_or_insert_with("a/+", || 0), 13);
        assert_eq!(*trie.get_or_insert_with("#", || 7), 7);
        assert_eq!(trie.len(), 3);
    }

    #[test]
    fn remove_if_keeps_the_value_when_told_to() {
        let mut trie = FilterTrie::new();
        trie.insert("a/b", vec![1, 2]);
        let removed = trie.remove_if("a/b", |list| {
            list.retain(|&x| x != 1);
            list.is_empty()
        });
        assert_eq!(removed, None);
        assert_eq!(trie.get("a/b"), Some(&vec![2]));
        assert_eq!(trie.remove_if("a/b", |list| list.len() == 1), Some(vec![2]));
        assert!(trie.is_empty());
        assert_eq!(trie.node_count(), 0);
        assert_eq!(trie.remove_if("a/b", |_| true), None);
    }

    #[test]
    fn removal_prunes_only_unused_nodes() {
        let mut trie = trie_of(&["a/b/c", "a/b", "a/+/c/#", "#"]);
        assert_eq!(trie.node_count(), 5); // a, a/b, a/b/c, a/+, a/+/c
        assert_eq!(trie.remove("a/b/c").as_deref(), Some("a/b/c"));
        assert_eq!(trie.node_count(), 4);
        assert_eq!(trie.remove("a/+/c/#").as_deref(), Some("a/+/c/#"));
        assert_eq!(trie.node_count(), 2);
        assert_eq!(trie.remove("a/+/c/#"), None);
        assert_eq!(matches(&trie, "a/b"), ["#", "a/b"]);
        trie.remove("a/b");
        trie.remove("#");
        assert!(trie.is_empty());
        assert_eq!(trie.node_count(), 0);
    }

    #[test]
    fn deep_filters_and_topics_do_not_overflow_the_stack() {
        // 30,000 levels: the most a 65,535-byte filter of one-character levels holds is 32,768.
        let deep = vec!["a"; 30_000].join("/");
        let mut trie = FilterTrie::new();
        trie.insert(&deep, 1);
        trie.insert(&vec!["+"; 30_000].join("/"), 2);
        trie.insert(&format!("{deep}/#"), 3);
        let mut found = Vec::new();
        trie.for_each_match(&deep, |v| found.push(*v));
        found.sort_unstable();
        assert_eq!(found, [1, 2, 3]);
        assert_eq!(trie.remove(&deep), Some(1));
        drop(trie);
    }

    #[test]
    fn invalid_filters_are_handled_without_panicking() {
        let trie = trie_of(&["a/#/b", "a+/b", ""]);
        assert!(matches(&trie, "a/x/b").is_empty());
        assert_eq!(matches(&trie, ""), [""]);
    }

    proptest! {
        #[test]
        fn matches_equal_the_naive_matcher(
            filters in proptest::collection::vec(filter_strategy(), 0..24),
            topics in proptest::collection::vec(topic_strategy(), 1..12),
            removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..24),
        ) {
            let mut trie = FilterTrie::new();
            let mut model: Vec<String> = Vec::new();
            for filter in &filters {
                let replaced = trie.insert(filter, filter.clone()).is_some();
                prop_assert_eq!(replaced, model.contains(filter));
                if !replaced {
                    model.push(filter.clone());
                }
            }
            let check = |trie: &FilterTrie<String>, model: &[String]| {
                prop_assert_eq!(trie.len(), model.len());
                for topic in &topics {
                    let mut expected: Vec<String> =
                        model.iter().filter(|f| filter_matches(f, topic)).cloned().collect();
                    expected.sort();
                    prop_assert_eq!(matches(trie, topic), expected, "topic {:?}", topic);
                }
                Ok(())
            };
            check(&trie, &model)?;
            for removal in removals {
                if model.is_empty() {
                    break;
                }
                let filter = model.swap_remove(removal.index(model.len()));
                prop_assert_eq!(trie.remove(&filter), Some(filter.clone()));
                prop_assert_eq!(trie.remove(&filter), None);
                check(&trie, &model)?;
            }
            for filter in model.drain(..) {
                prop_assert!(trie.remove(&filter).is_some());
            }
            prop_assert!(trie.is_empty());
            prop_assert_eq!(trie.node_count(), 0);
        }
    }
}
