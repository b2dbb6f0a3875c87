//! Per-publisher sequence tracking on the receiving side: which measured sequence numbers a
//! subscriber (or a `$share` group) has seen, so it can count unique deliveries, duplicates
//! and out-of-order arrivals. Loss is what the publisher sent minus the unique deliveries.
//!
//! Memory is bounded: a stream keeps a bitmap of at most [`WINDOW_BITS`] numbers above the
//! lowest one not yet seen; everything below was seen. A gap older than the window (a message
//! lost for good while later ones keep arriving) is given up on, and should it still arrive it
//! is counted as a duplicate. This module never blocks or allocates per message beyond the
//! window's growth.

use std::collections::{HashMap, VecDeque};

/// Widest span of sequence numbers a stream tracks above its first gap.
pub const WINDOW_BITS: u64 = 1 << 16;

/// What one subscriber or group saw from one publisher.
#[derive(Debug, Default, Clone)]
pub struct StreamTracker {
    /// Lowest sequence number not known to be seen; all below were seen (or given up on).
    base: u64,
    /// Bit `i` of the window is sequence `base + i`.
    window: VecDeque<u64>,
    /// Highest sequence seen, if any.
    highest: Option<u64>,
    /// First deliveries of a sequence number.
    pub unique: u64,
    /// Deliveries of a number already seen.
    pub duplicates: u64,
    /// First deliveries that arrived after a higher number.
    pub out_of_order: u64,
}

impl StreamTracker {
    /// Records one delivery of `seq`; returns true when it is the first.
    pub fn observe(&mut self, seq: u64) -> bool {
        if seq < self.base {
            self.duplicates += 1;
            return false;
        }
        let mut offset = seq - self.base;
        if offset >= WINDOW_BITS {
            // Give up on the oldest gaps so the window never grows past its bound.
            let shift_words = (offset - WINDOW_BITS) / 64 + 1;
            for _ in 0..shift_words {
                self.window.pop_front();
            }
            self.base += shift_words * 64;
            offset = seq - self.base;
        }
        let word = (offset / 64) as usize;
        let bit = 1u64 << (offset % 64);
        if self.window.len() <= word {
            self.window.resize(word + 1, 0);
        }
        if self.window[word] & bit != 0 {
            self.duplicates += 1;
            return false;
        }
        self.window[word] |= bit;
        self.unique += 1;
        match self.highest {
            Some(highest) if seq < highest => self.out_of_order += 1,
            _ => self.highest = Some(seq),
        }
        while self.window.front() == Some(&u64::MAX) {
            self.window.pop_front();
            self.base += 64;
        }
        true
    }
}

/// All streams one subscriber (or one `$share` group) receives.
#[derive(Debug, Default)]
pub struct Tracker {
    streams: HashMap<u32, StreamTracker>,
    /// Unique measured deliveries over all streams, kept so the runner can poll progress
    /// during the drain without walking the map.
    pub unique: u64,
}

impl Tracker {
    /// Records a measured delivery from `publisher`; true when it is the first of `seq`.
    pub fn observe(&mut self, publisher: u32, seq: u64) -> bool {
        let first = self.streams.entry(publisher).or_default().observe(seq);
        if first {
            self.unique += 1;
        }
        first
    }

    /// The stream from `publisher`, if anything arrived from it.
    pub fn stream(&self, publisher: u32) -> Option<&StreamTracker> {
        self.streams.get(&publisher)
    }

    /// Every stream, by publisher id.
    pub fn streams(&self) -> impl Iterator<Item = (u32, &StreamTracker)> {
        self.streams.iter().map(|(&id, stream)| (id, stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_stays_small() {
        let mut stream = StreamTracker::default();
        for seq in 0..10_000 {
            assert!(stream.observe(seq));
        }
        assert_eq!(stream.unique, 10_000);
        assert_eq!(stream.duplicates, 0);
        assert_eq!(stream.out_of_order, 0);
        assert!(stream.window.len() <= 1);
    }

    #[test]
    fn counts_duplicates_and_reordering() {
        let mut stream = StreamTracker::default();
        for seq in [0, 1, 3, 2, 2, 0, 5, 4, 5] {
            stream.observe(seq);
        }
        assert_eq!(stream.unique, 6);
        assert_eq!(stream.duplicates, 3);
        assert_eq!(stream.out_of_order, 2);
    }

    #[test]
    fn gaps_are_bounded_by_the_window() {
        let mut stream = StreamTracker::default();
        // Sequence 0 never arrives; the window must not grow without bound.
        for seq in 1..(3 * WINDOW_BITS) {
            stream.observe(seq);
        }
        assert!(stream.window.len() as u64 <= WINDOW_BITS / 64 + 1);
        assert_eq!(stream.unique, 3 * WINDOW_BITS - 1);
        // Given up on: counted as a duplicate when it finally shows up.
        assert!(!stream.observe(0));
    }

    #[test]
    fn tracker_counts_unique_over_publishers() {
        let mut tracker = Tracker::default();
        tracker.observe(1, 0);
        tracker.observe(2, 0);
        tracker.observe(1, 0);
        assert_eq!(tracker.unique, 2);
        assert_eq!(tracker.stream(1).map(|s| s.duplicates), Some(1));
        assert!(tracker.stream(3).is_none());
    }
}
