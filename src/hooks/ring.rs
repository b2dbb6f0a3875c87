//! A shard's event ring and the shard-side writer of it.
//!
//! The shard records events into a local batch ([`EventSink::record`]: a bit test, then a
//! `Vec` push) and hands full batches, or whatever it has at its next flush, to its
//! [`EventRing`]: a bounded lock-free queue of batches (crossbeam's `ArrayQueue`) that the
//! exporter runtime drains from another thread. Batching makes the cross-thread handoff one
//! atomic exchange per batch instead of per event; emptied batch vectors travel back through
//! a second queue, so a steady stream of events allocates nothing.
//!
//! The shard never waits: when the ring is full the batch is dropped and every event in it is
//! counted as dropped under its kind. Kinds that no exporter wants are never built (the
//! caller passes a closure that [`EventSink::record`] only runs for a wanted kind).
//!
//! **Shedding.** A full ring means the exporters are behind by a whole ring. Until the next
//! flush finds room again, the sink sheds: events are counted (recorded and dropped) but not
//! built, so an overloaded exporter costs the shard a counter increment per event instead of
//! building events only to drop them ([`EventSink::shed`] lets callers skip building their
//! details too). The shard flushes on a short timer, so shedding ends within one flush
//! interval of the exporters catching up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use super::event::{ClientInfo, Event, EventDetail, EventKind, EventKinds, EVENT_KINDS};

/// The queue of event batches between one shard and the exporter runtime.
#[derive(Debug)]
pub struct EventRing {
    batches: ArrayQueue<Vec<Event>>,
    spare: ArrayQueue<Vec<Event>>,
    /// The shard's running total of events dropped because this ring was full, as of its last
    /// flush: one writer (the shard), read by the broker's interval log.
    dropped_total: AtomicU64,
}

impl EventRing {
    /// A ring holding up to `batches` batches.
    pub fn new(batches: usize) -> Self {
        let batches = batches.max(1);
        Self {
            batches: ArrayQueue::new(batches),
            spare: ArrayQueue::new(batches),
            dropped_total: AtomicU64::new(0),
        }
    }

    /// The oldest batch, for the exporter runtime.
    pub fn pop(&self) -> Option<Vec<Event>> {
        self.batches.pop()
    }

    /// Gives an emptied batch back for the shard to fill again (dropped if enough are spare).
    pub fn recycle(&self, mut batch: Vec<Event>) {
        batch.clear();
        let _ = self.spare.push(batch);
    }

    /// Events the shard dropped (shed) because this ring was full, as of its last flush.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// Whether no further batch fits.
    pub fn is_full(&self) -> bool {
        self.batches.is_full()
    }

    /// Batches waiting for the exporter runtime.
    pub fn len(&self) -> usize {
        self.batches.len()
    }

    /// Whether no batch is waiting.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}

/// Per-kind counts of what a shard recorded and what its full ring made it drop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounters {
    /// Events recorded, by [`EventKind::index`] (those dropped below included).
    pub recorded: [u64; EVENT_KINDS],
    /// Events dropped because the ring was full, by [`EventKind::index`].
    pub dropped_ring_full: [u64; EVENT_KINDS],
}

/// The shard's writer: which kinds are wanted, the batch being filled, and the counters.
#[derive(Debug)]
pub struct EventSink {
    wanted: EventKinds,
    batch: Vec<Event>,
    batch_events: usize,
    ring: Option<Arc<EventRing>>,
    counters: EventCounters,
    /// Set when a batch did not fit the ring; cleared by the first flush that finds room.
    shedding: bool,
}

impl EventSink {
    /// A sink that records nothing (no exporter configured).
    pub fn disabled() -> Self {
        Self {
            wanted: EventKinds::NONE,
            batch: Vec::new(),
            batch_events: 1,
            ring: None,
            counters: EventCounters::default(),
            shedding: false,
        }
    }

    /// A sink recording the `wanted` kinds into `ring` in batches of `batch_events`.
    pub fn new(wanted: EventKinds, ring: Arc<EventRing>, batch_events: usize) -> Self {
        let batch_events = batch_events.max(1);
        Self {
            wanted,
            batch: Vec::with_capacity(batch_events),
            batch_events,
            ring: Some(ring),
            counters: EventCounters::default(),
            shedding: false,
        }
    }

    /// The kinds this sink records.
    pub fn wanted(&self) -> EventKinds {
        self.wanted
    }

    /// Whether any exporter wants `kind`: callers with costly details test this first.
    #[inline]
    pub fn wants(&self, kind: EventKind) -> bool {
        self.wanted.contains(kind)
    }

    /// While the ring is full: counts an event of `kind` as recorded and dropped, and says so;
    /// the caller then builds nothing for it. False (nothing counted) otherwise.
    #[inline]
    pub fn shed(&mut self, kind: EventKind) -> bool {
        if !self.shedding {
            return false;
        }
        if self.wanted.contains(kind) {
            self.counters.recorded[kind.index()] += 1;
            self.counters.dropped_ring_full[kind.index()] += 1;
        }
        true
    }

    /// Whether the sink is shedding (its ring was full at the last flush).
    pub fn is_shedding(&self) -> bool {
        self.shedding
    }

    /// Records one event if its kind is wanted; `detail` runs only then.
    #[inline]
    pub fn record(
        &mut self,
        kind: EventKind,
        at_ns: u64,
        client: &Arc<ClientInfo>,
        detail: impl FnOnce() -> EventDetail,
    ) {
        if self.wanted.contains(kind) && !self.shed(kind) {
            self.push(kind, at_ns, Arc::clone(client), detail());
        }
    }

    /// [`Self::record`] for a caller that already holds its own clone of the client's `Arc`
    /// and gives it up: the event keeps that clone, which saves an atomic increment and
    /// decrement per event on the message path.
    #[inline]
    pub fn record_owned(
        &mut self,
        kind: EventKind,
        at_ns: u64,
        client: Arc<ClientInfo>,
        detail: impl FnOnce() -> EventDetail,
    ) {
        if self.wanted.contains(kind) && !self.shed(kind) {
            self.push(kind, at_ns, client, detail());
        }
    }

    fn push(&mut self, kind: EventKind, at_ns: u64, client: Arc<ClientInfo>, detail: EventDetail) {
        self.counters.recorded[kind.index()] += 1;
        self.batch.push(Event {
            kind,
            at_ns,
            client,
            detail,
        });
        if self.batch.len() >= self.batch_events {
            self.flush();
        }
    }

    /// Hands the current batch to the ring (the shard calls this at least once per tick, so
    /// events never wait long for a batch to fill). A full ring drops the batch, counted.
    pub fn flush(&mut self) {
        let Some(ring) = &self.ring else {
            return;
        };
        if self.shedding && !ring.is_full() {
            self.shedding = false;
        }
        // Published here, where the shard passes on its short timer anyway: one relaxed store.
        let dropped: u64 = self.counters.dropped_ring_full.iter().sum();
        ring.dropped_total.store(dropped, Ordering::Relaxed);
        if self.batch.is_empty() {
            return;
        }
        let next = ring
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.batch_events));
        let batch = std::mem::replace(&mut self.batch, next);
        if let Err(mut rejected) = ring.batches.push(batch) {
            self.shedding = true;
            for event in &rejected {
                self.counters.dropped_ring_full[event.kind.index()] += 1;
            }
            rejected.clear();
            let _ = ring.spare.push(rejected);
        }
    }

    /// Events waiting in the current batch.
    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    /// What has been recorded and dropped so far.
    pub fn counters(&self) -> &EventCounters {
        &self.counters
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::protocol::{ClientId, QoS, TopicFilter};

    fn client() -> Arc<ClientInfo> {
        Arc::new(ClientInfo {
            node: 1,
            shard: 0,
            client_id: ClientId::new("sensor-1").unwrap(),
            username: None,
            address: None,
            protocol: 5,
            keep_alive_secs: 60,
            clean_start: true,
        })
    }

    fn subscription(filter: &str) -> EventDetail {
        EventDetail::Subscription {
            filter: TopicFilter::new(filter).unwrap(),
            qos: QoS::AtLeastOnce,
        }
    }

    #[test]
    fn unwanted_kinds_are_never_built_and_wanted_ones_arrive_in_order() {
        let ring = Arc::new(EventRing::new(4));
        let wanted = EventKinds::NONE.with(EventKind::SessionSubscribed);
        let mut sink = EventSink::new(wanted, Arc::clone(&ring), 2);
        let client = client();
        sink.record(EventKind::ClientConnected, 1, &client, || {
            panic!("the detail of an unwanted kind must not be built")
        });
        sink.record(EventKind::SessionSubscribed, 2, &client, || {
            subscription("a/#")
        });
        assert!(
            ring.is_empty(),
            "a batch is handed over when full or flushed"
        );
        sink.record(EventKind::SessionSubscribed, 3, &client, || {
            subscription("b/+")
        });
        let batch = ring.pop().unwrap();
        assert_eq!(
            batch.iter().map(|event| event.at_ns).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(batch[1].detail, subscription("b/+"));
        assert!(
            Arc::ptr_eq(&batch[0].client, &client),
            "the client is shared"
        );
        ring.recycle(batch);
        sink.record(EventKind::SessionSubscribed, 4, &client, || {
            subscription("c")
        });
        assert_eq!(sink.pending(), 1);
        sink.flush();
        assert_eq!(ring.pop().unwrap().len(), 1);
        let index = EventKind::SessionSubscribed.index();
        assert_eq!(sink.counters().recorded[index], 3);
        assert_eq!(sink.counters().recorded.iter().sum::<u64>(), 3);
        assert_eq!(sink.counters().dropped_ring_full, [0; EVENT_KINDS]);
    }

    #[test]
    fn a_full_ring_drops_whole_batches_and_counts_them_per_kind() {
        let ring = Arc::new(EventRing::new(1));
        let wanted = EventKinds::ALL;
        let mut sink = EventSink::new(wanted, Arc::clone(&ring), 10);
        let client = client();
        sink.record(EventKind::ClientConnected, 1, &client, || EventDetail::None);
        sink.flush();
        // The exporter runtime is not draining: the next batches have nowhere to go.
        sink.record(EventKind::ClientConnected, 2, &client, || EventDetail::None);
        sink.record(EventKind::SessionSubscribed, 3, &client, || {
            subscription("x")
        });
        sink.record(EventKind::SessionSubscribed, 4, &client, || {
            subscription("y")
        });
        sink.flush();
        let counters = sink.counters();
        assert_eq!(
            counters.dropped_ring_full[EventKind::ClientConnected.index()],
            1
        );
        assert_eq!(
            counters.dropped_ring_full[EventKind::SessionSubscribed.index()],
            2
        );
        assert_eq!(counters.recorded[EventKind::ClientConnected.index()], 2);
        assert_eq!(sink.pending(), 0, "the dropped batch is gone, not retried");
        // Shedding: until a flush finds room, events are counted, never built.
        assert!(sink.is_shedding());
        sink.record(EventKind::SessionSubscribed, 5, &client, || {
            panic!("a shed event must not be built")
        });
        assert!(sink.shed(EventKind::MessagePublish));
        let counters = sink.counters();
        assert_eq!(sink.pending(), 0);
        assert_eq!(
            counters.dropped_ring_full[EventKind::SessionSubscribed.index()],
            3
        );
        assert_eq!(counters.recorded[EventKind::SessionSubscribed.index()], 3);
        assert_eq!(
            counters.dropped_ring_full[EventKind::MessagePublish.index()],
            1
        );
        sink.flush();
        assert!(sink.is_shedding(), "still full: still shedding");
        assert_eq!(
            ring.dropped_total(),
            3 + 2,
            "published for the broker's log"
        );
        // Once drained, the next flush ends shedding and the ring takes batches again.
        assert_eq!(ring.pop().unwrap()[0].at_ns, 1);
        sink.flush();
        assert!(!sink.is_shedding());
        assert!(!sink.shed(EventKind::ClientConnected));
        sink.record(EventKind::ClientConnected, 6, &client, || EventDetail::None);
        sink.flush();
        assert_eq!(ring.pop().unwrap()[0].at_ns, 6);
    }

    #[test]
    fn record_owned_keeps_the_given_clone_and_drops_it_for_an_unwanted_kind() {
        let ring = Arc::new(EventRing::new(4));
        let wanted = EventKinds::NONE.with(EventKind::MessageAcked);
        let mut sink = EventSink::new(wanted, Arc::clone(&ring), 8);
        let client = client();
        sink.record_owned(EventKind::MessageAcked, 1, Arc::clone(&client), || {
            EventDetail::None
        });
        sink.record_owned(EventKind::ClientConnected, 2, Arc::clone(&client), || {
            panic!("the detail of an unwanted kind must not be built")
        });
        assert_eq!(
            Arc::strong_count(&client),
            2,
            "one clone, held by the event"
        );
        sink.flush();
        let batch = ring.pop().unwrap();
        assert_eq!(batch.len(), 1);
        assert!(Arc::ptr_eq(&batch[0].client, &client));
        assert_eq!(sink.counters().recorded[EventKind::MessageAcked.index()], 1);
    }

    #[test]
    fn a_disabled_sink_records_nothing() {
        let mut sink = EventSink::disabled();
        let client = client();
        for kind in EventKind::ALL {
            assert!(!sink.wants(kind));
            sink.record(kind, 1, &client, || EventDetail::None);
        }
        sink.flush();
        assert_eq!(sink.pending(), 0);
        assert_eq!(*sink.counters(), EventCounters::default());
    }

    #[test]
    fn batches_cross_threads_and_come_back_for_reuse() {
        let ring = Arc::new(EventRing::new(8));
        let mut sink = EventSink::new(EventKinds::ALL, Arc::clone(&ring), 16);
        let consumer = {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while seen.len() < 1000 {
                    match ring.pop() {
                        Some(batch) => {
                            seen.extend(batch.iter().map(|event| event.at_ns));
                            ring.recycle(batch);
                        }
                        None => std::thread::yield_now(),
                    }
                }
                seen
            })
        };
        let client = client();
        let mut sent = 0;
        while sent < 1000 {
            // Retry a dropped batch's numbers so the consumer sees every one exactly once.
            let dropped_before = sink.counters().dropped_ring_full.iter().sum::<u64>();
            let start = sent;
            for at in start..(start + 16).min(1000) {
                sink.record(EventKind::MessageAcked, at, &client, || EventDetail::None);
            }
            sink.flush();
            if sink.counters().dropped_ring_full.iter().sum::<u64>() == dropped_before {
                sent = (start + 16).min(1000);
            } else {
                std::thread::yield_now();
            }
        }
        let seen = consumer.join().unwrap();
        assert_eq!(seen, (0..1000).collect::<Vec<u64>>());
    }
}
