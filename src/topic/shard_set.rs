//! [`ShardId`] and [`ShardSet`]: which shards a message goes to, as a fixed 256-bit set.
//!
//! The set is what the interest table hands a publishing shard per message, so it is `Copy`,
//! allocation-free and unions in four word operations. It holds no shard state of its own and
//! knows nothing of executors.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// The most shards a broker runs: the width of a [`ShardSet`].
pub const MAX_SHARDS: usize = 256;

const WORDS: usize = MAX_SHARDS / 64;

/// The index of a shard, `0..MAX_SHARDS`. Made only by [`ShardId::new`], so every `ShardId`
/// fits a [`ShardSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(u8);

impl ShardId {
    /// The shard with this index; `None` at [`MAX_SHARDS`] or above.
    pub fn new(index: usize) -> Option<Self> {
        u8::try_from(index).ok().map(Self)
    }

    /// The shard's index, `0..MAX_SHARDS`.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard {}", self.0)
    }
}

/// A set of shards.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ShardSet {
    words: [u64; WORDS],
}

impl ShardSet {
    /// The empty set.
    pub const fn new() -> Self {
        Self { words: [0; WORDS] }
    }

    /// Adds a shard; true if it was not in the set.
    pub fn insert(&mut self, shard: ShardId) -> bool {
        let (word, bit) = Self::position(shard);
        let absent = self.words[word] & bit == 0;
        self.words[word] |= bit;
        absent
    }

    /// Removes a shard; true if it was in the set.
    pub fn remove(&mut self, shard: ShardId) -> bool {
        let (word, bit) = Self::position(shard);
        let present = self.words[word] & bit != 0;
        self.words[word] &= !bit;
        present
    }

    /// True when the shard is in the set.
    pub fn contains(&self, shard: ShardId) -> bool {
        let (word, bit) = Self::position(shard);
        self.words[word] & bit != 0
    }

    /// True when no shard is in the set.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&word| word == 0)
    }

    /// Number of shards in the set.
    pub fn len(&self) -> usize {
        self.words
            .iter()
            .map(|word| word.count_ones() as usize)
            .sum()
    }

    /// The shards in the set, lowest index first.
    pub fn iter(&self) -> ShardSetIter {
        ShardSetIter {
            words: self.words,
            word: 0,
        }
    }

    fn position(shard: ShardId) -> (usize, u64) {
        (shard.index() / 64, 1 << (shard.index() % 64))
    }
}

impl BitOr for ShardSet {
    type Output = Self;

    fn bitor(mut self, other: Self) -> Self {
        self |= other;
        self
    }
}

impl BitOrAssign for ShardSet {
    fn bitor_assign(&mut self, other: Self) {
        for (word, other) in self.words.iter_mut().zip(other.words) {
            *word |= other;
        }
    }
}

impl FromIterator<ShardId> for ShardSet {
    fn from_iter<I: IntoIterator<Item = ShardId>>(shards: I) -> Self {
        let mut set = Self::new();
        for shard in shards {
            set.insert(shard);
        }
        set
    }
}

impl IntoIterator for ShardSet {
    type Item = ShardId;
    type IntoIter = ShardSetIter;

    fn into_iter(self) -> ShardSetIter {
        self.iter()
    }
}

impl fmt::Debug for ShardSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(ShardId::index))
            .finish()
    }
}

/// Iterator over a [`ShardSet`], lowest index first; it owns a copy of the set.
#[derive(Debug, Clone)]
pub struct ShardSetIter {
    words: [u64; WORDS],
    word: usize,
}

impl Iterator for ShardSetIter {
    type Item = ShardId;

    fn next(&mut self) -> Option<ShardId> {
        while self.word < WORDS {
            let bits = self.words[self.word];
            if bits != 0 {
                // Clear the lowest set bit and yield its index.
                self.words[self.word] = bits & (bits - 1);
                let index = self.word * 64 + bits.trailing_zeros() as usize;
                return ShardId::new(index);
            }
            self.word += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use proptest::prelude::*;

    use super::*;

    fn shard(index: usize) -> ShardId {
        ShardId::new(index).unwrap()
    }

    #[test]
    fn shard_ids_fit_the_set() {
        assert_eq!(ShardId::new(255).map(ShardId::index), Some(255));
        assert_eq!(ShardId::new(MAX_SHARDS), None);
        assert_eq!(shard(3).to_string(), "shard 3");
    }

    #[test]
    fn insert_remove_contains() {
        let mut set = ShardSet::new();
        assert!(set.is_empty());
        assert!(set.insert(shard(0)));
        assert!(!set.insert(shard(0)));
        assert!(set.insert(shard(255)));
        assert!(set.insert(shard(64)));
        assert_eq!(set.len(), 3);
        assert!(set.contains(shard(64)));
        assert!(!set.contains(shard(63)));
        assert!(set.remove(shard(64)));
        assert!(!set.remove(shard(64)));
        assert_eq!(format!("{set:?}"), "{0, 255}");
        let other: ShardSet = [shard(1), shard(255)].into_iter().collect();
        let union = set | other;
        assert_eq!(
            union.iter().map(ShardId::index).collect::<Vec<_>>(),
            [0, 1, 255]
        );
    }

    proptest! {
        #[test]
        fn iteration_yields_exactly_the_inserted_shards(indices in proptest::collection::btree_set(0..MAX_SHARDS, 0..40)) {
            let set: ShardSet = indices.iter().map(|&i| shard(i)).collect();
            prop_assert_eq!(set.len(), indices.len());
            let listed: Vec<usize> = set.into_iter().map(ShardId::index).collect();
            prop_assert_eq!(listed, indices.into_iter().collect::<Vec<_>>());
        }
    }
}
