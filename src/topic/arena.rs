//! Node storage for the trees of this module ([`FilterTrie`](super::FilterTrie) and
//! [`RetainedStore`](super::RetainedStore)): nodes live in a `Vec` and link to each other by
//! `u32` index.
//!
//! Why an arena rather than boxed children: the depth of a tree is chosen by clients (a filter
//! or topic may have 32,768 levels), and a tree of boxes is dropped, pruned and walked by
//! recursion one frame per level, which such a client could use to overflow a shard's stack.
//! Here dropping is flat, pruning climbs parent links in a loop, and the walks recurse only
//! where they must branch. Indices are also half the size of pointers and keep nodes together.
//!
//! Freed nodes go to a free list and are reused; when a tree is empty again the arena gives
//! all its memory back. It never hands out the root (index 0) as a child, which lets a link be
//! a `NonZeroU32` and an optional link cost four bytes.

use std::num::NonZeroU32;

/// A link from a node to a child: the child's index, never the root's.
pub(super) type Link = NonZeroU32;

/// Index of the root, which exists as long as the arena does.
pub(super) const ROOT: usize = 0;

/// The index a link points to.
#[inline]
pub(super) fn index(link: Link) -> usize {
    link.get() as usize
}

/// Nodes (`N`, what a walk reads) and their slots (`S`, the values stored at them), kept in two
/// vectors so that a walk over the nodes can hand out `&mut` to slots at the same time.
#[derive(Debug)]
pub(super) struct Arena<N, S> {
    nodes: Vec<N>,
    slots: Vec<S>,
    parents: Vec<u32>,
    free: Vec<Link>,
}

impl<N: Default, S: Default> Arena<N, S> {
    /// An arena holding only the root.
    pub(super) fn new() -> Self {
        Self {
            nodes: vec![N::default()],
            slots: vec![S::default()],
            parents: vec![0],
            free: Vec::new(),
        }
    }

    /// A new empty node under `parent`, reusing a freed index when there is one.
    pub(super) fn alloc(&mut self, parent: usize) -> Link {
        // A parent is an index into `nodes`, which is never longer than u32 can count (below).
        let parent = parent as u32;
        if let Some(link) = self.free.pop() {
            self.parents[index(link)] = parent;
            return link;
        }
        // Invariant: the root sits at index 0, so a pushed node's index is at least 1; and 2^32
        // nodes (over 200 GiB of arena) cannot be allocated, so the index fits in a u32.
        #[allow(clippy::expect_used)]
        let link = u32::try_from(self.nodes.len())
            .ok()
            .and_then(NonZeroU32::new)
            .expect("arena index is non-zero and fits in u32");
        self.nodes.push(N::default());
        self.slots.push(S::default());
        self.parents.push(parent);
        link
    }

    /// Frees a node that is no longer linked from its parent. Its node and slot are reset, which
    /// drops whatever they held; once only the root is left, the vectors are released too.
    pub(super) fn release(&mut self, link: Link) {
        let node = index(link);
        self.nodes[node] = N::default();
        self.slots[node] = S::default();
        self.free.push(link);
        if self.live_nodes() == 0 {
            self.nodes.truncate(1);
            self.slots.truncate(1);
            self.parents.truncate(1);
            self.nodes.shrink_to_fit();
            self.slots.shrink_to_fit();
            self.parents.shrink_to_fit();
            self.free = Vec::new();
        }
    }

    /// Nodes in use, not counting the root.
    pub(super) fn live_nodes(&self) -> usize {
        self.nodes.len() - 1 - self.free.len()
    }

    /// The parent of a node other than the root.
    pub(super) fn parent(&self, node: usize) -> usize {
        self.parents[node] as usize
    }

    pub(super) fn node(&self, node: usize) -> &N {
        &self.nodes[node]
    }

    pub(super) fn node_mut(&mut self, node: usize) -> &mut N {
        &mut self.nodes[node]
    }

    pub(super) fn slot(&self, node: usize) -> &S {
        &self.slots[node]
    }

    pub(super) fn slot_mut(&mut self, node: usize) -> &mut S {
        &mut self.slots[node]
    }

    /// All nodes, to walk them, with all slots shared or writable beside them.
    pub(super) fn nodes_and_slots(&self) -> (&[N], &[S]) {
        (&self.nodes, &self.slots)
    }

    pub(super) fn nodes_and_slots_mut(&mut self) -> (&[N], &mut [S]) {
        (&self.nodes, &mut self.slots)
    }
}
