//! One exporter's bounded queue: where events wait for their sink, and the only place they
//! can pile up while a sink is slow or down.
//!
//! The limit is in events. A full queue never makes the producer (the drain loop) wait: the
//! overflow policy decides which event is lost, and the caller counts it. Memory is bounded by
//! the capacity: an item is an `Arc<Event>` plus the rule's shared action and destinations,
//! and an event's payload is the message's shared `Bytes`, so a queued event costs a few
//! dozen bytes of its own however many exporters hold it; what the payloads themselves
//! occupy is bounded by the same count. The `VecDeque` grows as events arrive (up to the
//! capacity) rather than reserving the whole capacity up front.

use std::collections::VecDeque;

use super::ExportItem;

/// What to lose when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Evict the oldest queued event to make room: the sink, when back, sees recent events.
    /// The exporter thread keeps handling every event to do so.
    DropOldest,
    /// Refuse the new event: the sink, when back, sees the events from when it went away.
    /// The default: once every exporter refuses, the shards shed new events at a counter
    /// increment each, the cheapest overload there is.
    #[default]
    DropNewest,
}

/// What [`BoundedQueue::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued, nothing lost.
    Queued,
    /// Queued, and the oldest event was evicted to make room.
    EvictedOldest,
    /// Not queued: the queue is full and the policy keeps the old events.
    Refused,
}

/// A FIFO of at most `capacity` items.
#[derive(Debug)]
pub struct BoundedQueue {
    items: VecDeque<ExportItem>,
    capacity: usize,
    overflow: Overflow,
}

impl BoundedQueue {
    /// An empty queue of `capacity` events (at least one).
    pub fn new(capacity: usize, overflow: Overflow) -> Self {
        Self {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            overflow,
        }
    }

    /// Adds `item` at the back, applying the overflow policy when full. Never blocks.
    pub fn push(&mut self, item: ExportItem) -> PushOutcome {
        if self.items.len() < self.capacity {
            self.items.push_back(item);
            return PushOutcome::Queued;
        }
        match self.overflow {
            Overflow::DropNewest => PushOutcome::Refused,
            Overflow::DropOldest => {
                self.items.pop_front();
                self.items.push_back(item);
                PushOutcome::EvictedOldest
            }
        }
    }

    /// Whether a push now would keep the new item: there is room, or the policy evicts.
    pub fn takes_more(&self) -> bool {
        self.overflow == Overflow::DropOldest || self.items.len() < self.capacity
    }

    /// Moves up to `max` items from the front into `batch`, oldest first.
    pub fn take_batch(&mut self, max: usize, batch: &mut Vec<ExportItem>) {
        let count = max.min(self.items.len());
        batch.extend(self.items.drain(..count));
    }

    /// The time (`at_ns`) of the oldest queued event.
    pub fn oldest_at_ns(&self) -> Option<u64> {
        self.items.front().map(|item| item.event.at_ns)
    }

    /// Removes everything, returning how many items there were.
    pub fn clear(&mut self) -> usize {
        let count = self.items.len();
        self.items.clear();
        count
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The most items it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use crate::hooks::event::{ClientInfo, Event, EventDetail, EventKind};
    use crate::protocol::ClientId;

    /// An item whose event time is `at_ns` (for telling items apart).
    pub(crate) fn item(at_ns: u64) -> ExportItem {
        let client = Arc::new(ClientInfo {
            node: 1,
            shard: 0,
            client_id: ClientId::new("c").unwrap(),
            username: None,
            address: None,
            protocol: 4,
            keep_alive_secs: 30,
            clean_start: true,
        });
        ExportItem {
            event: Arc::new(Event {
                kind: EventKind::ClientConnected,
                at_ns,
                client,
                detail: EventDetail::None,
            }),
            action: Arc::from("client_connected"),
            destinations: None,
        }
    }

    fn times(queue: &mut BoundedQueue) -> Vec<u64> {
        let mut batch = Vec::new();
        queue.take_batch(usize::MAX, &mut batch);
        batch.iter().map(|item| item.event.at_ns).collect()
    }

    #[test]
    fn drop_oldest_keeps_the_newest_events_and_never_exceeds_capacity() {
        let mut queue = BoundedQueue::new(3, Overflow::DropOldest);
        let outcomes: Vec<_> = (1..=5).map(|at| queue.push(item(at))).collect();
        assert_eq!(
            outcomes,
            vec![
                PushOutcome::Queued,
                PushOutcome::Queued,
                PushOutcome::Queued,
                PushOutcome::EvictedOldest,
                PushOutcome::EvictedOldest,
            ]
        );
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.oldest_at_ns(), Some(3));
        assert_eq!(times(&mut queue), vec![3, 4, 5]);
        assert!(queue.is_empty());
    }

    #[test]
    fn drop_newest_keeps_the_oldest_events_and_refuses_the_rest() {
        let mut queue = BoundedQueue::new(3, Overflow::DropNewest);
        let refused = (1..=5)
            .map(|at| queue.push(item(at)))
            .filter(|outcome| *outcome == PushOutcome::Refused)
            .count();
        assert_eq!(refused, 2);
        assert_eq!(queue.len(), queue.capacity());
        assert_eq!(times(&mut queue), vec![1, 2, 3]);
    }

    #[test]
    fn batches_come_out_in_order_and_no_larger_than_asked() {
        let mut queue = BoundedQueue::new(10, Overflow::DropNewest);
        for at in 1..=5 {
            queue.push(item(at));
        }
        let mut batch = Vec::new();
        queue.take_batch(2, &mut batch);
        assert_eq!(
            batch.iter().map(|i| i.event.at_ns).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.clear(), 3);
        assert_eq!(queue.oldest_at_ns(), None);
    }

    #[test]
    fn a_zero_capacity_still_holds_one_event() {
        let mut queue = BoundedQueue::new(0, Overflow::DropOldest);
        assert_eq!(queue.push(item(1)), PushOutcome::Queued);
        assert_eq!(queue.push(item(2)), PushOutcome::EvictedOldest);
        assert_eq!(times(&mut queue), vec![2]);
    }
}
