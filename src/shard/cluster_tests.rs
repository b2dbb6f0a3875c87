//! Several shard engines joined by an in-memory mesh: the outboxes are carried by hand, so
//! the cross-shard protocols (registry, session moves, interest with SUBACK barriers,
//! forwarding, share groups, retained broadcast) are tested without executors or sockets.

use super::*;

/// Engines whose outboxes `pump` carries until nothing is left in flight.
struct Mesh {
    shards: Vec<ShardEngine>,
}

impl Mesh {
    fn new(count: usize) -> Self {
        let shards = (0..count)
            .map(|index| {
                ShardEngine::new(
                    index,
                    Arc::new(BrokerLimits::default()),
                    true,
                    ShareStrategy::RoundRobin,
                )
                .with_mesh(count, 1024)
            })
            .collect();
        Self { shards }
    }

    /// Carries every batch to its shard, in order, until all outboxes are empty.
    fn pump(&mut self, now: Instant) {
        loop {
            let mut moved = false;
            for from in 0..self.shards.len() {
                for to in 0..self.shards.len() {
                    let batch = self.shards[from].take_outbox(to);
                    if !batch.is_empty() {
                        moved = true;
                        self.shards[to].handle_remote_batch(now, from, batch);
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Connects on `shard` and carries the registry traffic until the CONNECT is answered.
    fn connect(&mut self, shard: usize, now: Instant, connect: Connect) -> Client {
        let version = connect.protocol;
        let handle = Rc::new(ConnectionHandle::new(version, 1 << 20));
        let outcome = self.shards[shard].connect(now, &connect, Rc::clone(&handle));
        assert_eq!(
            outcome,
            ConnectOutcome::Pending,
            "more shards ask the registry"
        );
        self.pump(now);
        let Some(ConnectOutcome::Accepted(key)) = handle.connect_outcome() else {
            panic!("not accepted: {:?}", handle.connect_outcome())
        };
        let mut client = Client {
            handle,
            key,
            version,
            after_connack: Vec::new(),
        };
        let packets = received(&client);
        assert!(matches!(packets.first(), Some(Packet::ConnAck(_))));
        client.after_connack = packets;
        client
    }
}

fn connack(client: &Client) -> &crate::protocol::ConnAck {
    match client.after_connack.first() {
        Some(Packet::ConnAck(ack)) => ack,
        other => panic!("no CONNACK: {other:?}"),
    }
}

#[test]
fn a_publish_crosses_to_the_shard_of_its_subscriber_once() {
    let mut mesh = Mesh::new(3);
    let now = Instant::now();
    let sub = mesh.connect(1, now, connect_packet(ProtocolVersion::V5, "sub", true));
    let publisher = mesh.connect(0, now, connect_packet(ProtocolVersion::V3_1_1, "pub", true));
    subscribe(&mut mesh.shards[1], now, &sub, "a/+", QoS::AtLeastOnce);
    // Overlapping filters on one shard: still one forward, one copy.
    subscribe(&mut mesh.shards[1], now, &sub, "a/#", QoS::AtLeastOnce);
    mesh.pump(now);
    let _ = received(&sub);

    mesh.shards[0].handle_packet(
        now,
        publisher.key,
        publish_packet("a/b", QoS::AtLeastOnce, false, b"x"),
    );
    mesh.pump(now);
    let packets = received(&sub);
    let delivered = publishes(&packets);
    assert_eq!(delivered.len(), 1);
    assert_eq!(&delivered[0].payload[..], b"x");
    assert_eq!(mesh.shards[0].counters().messages_forwarded, 1);
    assert_eq!(
        mesh.shards[2].counters().deliveries,
        0,
        "shard 2 has no interest and gets nothing"
    );
}

#[test]
fn a_suback_for_a_new_filter_waits_until_every_shard_has_applied_it() {
    let mut mesh = Mesh::new(3);
    let now = Instant::now();
    let sub = mesh.connect(2, now, connect_packet(ProtocolVersion::V5, "sub", true));
    subscribe(&mut mesh.shards[2], now, &sub, "t", QoS::AtMostOnce);
    assert!(received(&sub).is_empty(), "no SUBACK before the barrier");
    // Shard 0 answers the barrier, shard 1 not yet.
    let batch = mesh.shards[2].take_outbox(0);
    mesh.shards[0].handle_remote_batch(now, 2, batch);
    let answer = mesh.shards[0].take_outbox(2);
    mesh.shards[2].handle_remote_batch(now, 0, answer);
    assert!(received(&sub).is_empty(), "one shard has not answered");
    mesh.pump(now);
    assert!(matches!(received(&sub)[..], [Packet::SubAck(_)]));

    // A second subscriber to the same filter on the same shard announces nothing new, and
    // one that wants no retained messages needs no barrier: SUBACK at once.
    let other = mesh.connect(2, now, connect_packet(ProtocolVersion::V5, "other", true));
    let packet = Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(1).unwrap(),
        properties: SubscribeProperties::default(),
        filters: vec![Subscription {
            filter: TopicFilter::new("t").unwrap(),
            options: SubscriptionOptions {
                retain_handling: crate::protocol::RetainHandling::DoNotSend,
                ..Default::default()
            },
        }],
    });
    mesh.shards[2].handle_packet(now, other.key, packet);
    assert!(matches!(received(&other)[..], [Packet::SubAck(_)]));
}

#[test]
fn a_retained_message_published_before_a_subscribe_comes_once_as_retained() {
    let mut mesh = Mesh::new(2);
    let now = Instant::now();
    let early = mesh.connect(
        1,
        now,
        connect_packet(ProtocolVersion::V3_1_1, "early", true),
    );
    subscribe(&mut mesh.shards[1], now, &early, "r/#", QoS::AtMostOnce);
    mesh.pump(now);
    let publisher = mesh.connect(0, now, connect_packet(ProtocolVersion::V3_1_1, "p", true));
    mesh.shards[0].handle_packet(
        now,
        publisher.key,
        publish_packet("r/x", QoS::AtLeastOnce, true, b"kept"),
    );
    // The PUBACK is out, but the retained write and the forward are still in the mesh when a
    // second client on shard 1 subscribes.
    let late = mesh.connect(
        1,
        now,
        connect_packet(ProtocolVersion::V3_1_1, "late", true),
    );
    subscribe(&mut mesh.shards[1], now, &late, "r/#", QoS::AtMostOnce);
    mesh.pump(now);
    let packets = received(&late);
    assert!(matches!(packets.first(), Some(Packet::SubAck(_))));
    let copies = publishes(&packets);
    assert_eq!(copies.len(), 1, "{packets:?}");
    assert!(copies[0].retain, "as retained, not as a live message");
    let live = received(&early);
    assert_eq!(publishes(&live).len(), 1);
    assert!(!publishes(&live)[0].retain);
}

#[test]
fn a_takeover_on_another_shard_moves_the_session_with_its_queue() {
    let mut mesh = Mesh::new(2);
    let now = Instant::now();
    let mut persistent = connect_packet(ProtocolVersion::V5, "dev", false);
    persistent.properties.session_expiry_interval = Some(600);
    let first = mesh.connect(0, now, persistent.clone());
    subscribe(&mut mesh.shards[0], now, &first, "cmd", QoS::AtLeastOnce);
    mesh.pump(now);
    let _ = received(&first);
    mesh.shards[0].connection_closed(now, first.key, &first.handle, None);
    mesh.pump(now);

    // Offline: a QoS 1 message is queued for the session on shard 0.
    let publisher = mesh.connect(1, now, connect_packet(ProtocolVersion::V5, "pub", true));
    mesh.shards[1].handle_packet(
        now,
        publisher.key,
        publish_packet("cmd", QoS::AtLeastOnce, false, b"queued"),
    );
    mesh.pump(now);

    let second = mesh.connect(1, now, persistent);
    assert!(connack(&second).session_present);
    let delivered = publishes(&second.after_connack);
    assert_eq!(delivered.len(), 1, "{:?}", second.after_connack);
    assert_eq!(&delivered[0].payload[..], b"queued");
    assert_eq!(
        mesh.shards[0].session_count(),
        0,
        "the session left shard 0"
    );
    assert_eq!(mesh.shards[1].session_count(), 2);

    // Its subscription moved too: the next publish on shard 0 reaches it on shard 1.
    let late = mesh.connect(0, now, connect_packet(ProtocolVersion::V5, "late", true));
    mesh.shards[0].handle_packet(
        now,
        late.key,
        publish_packet("cmd", QoS::AtMostOnce, false, b"later"),
    );
    mesh.pump(now);
    let packets = received(&second);
    assert_eq!(&publishes(&packets)[0].payload[..], b"later");
}

#[test]
fn a_live_connection_is_taken_over_from_another_shard_with_0x8e() {
    let mut mesh = Mesh::new(2);
    let now = Instant::now();
    let first = mesh.connect(0, now, connect_packet(ProtocolVersion::V5, "same", true));
    let second = mesh.connect(1, now, connect_packet(ProtocolVersion::V5, "same", true));
    assert!(!connack(&second).session_present, "clean start");
    let close = first
        .handle
        .close_requested()
        .expect("the old connection closes");
    assert_eq!(close.reason, ReasonCode::SESSION_TAKEN_OVER);
    assert_eq!(mesh.shards[0].counters().takeovers, 1);
    assert_eq!(mesh.shards[0].session_count(), 0);

    // The registry now names shard 1: a third connect on shard 0 takes it back.
    let third = mesh.connect(0, now, connect_packet(ProtocolVersion::V5, "same", true));
    assert!(second.handle.close_requested().is_some());
    assert_eq!(mesh.shards[1].session_count(), 0);
    assert!(third.handle.close_requested().is_none());
}

#[test]
fn a_share_group_with_members_on_two_shards_gets_each_message_once() {
    let mut mesh = Mesh::new(2);
    let now = Instant::now();
    let a = mesh.connect(0, now, connect_packet(ProtocolVersion::V5, "a", true));
    let b = mesh.connect(1, now, connect_packet(ProtocolVersion::V5, "b", true));
    subscribe(
        &mut mesh.shards[0],
        now,
        &a,
        "$share/g/jobs",
        QoS::AtMostOnce,
    );
    subscribe(
        &mut mesh.shards[1],
        now,
        &b,
        "$share/g/jobs",
        QoS::AtMostOnce,
    );
    mesh.pump(now);
    let _ = (received(&a), received(&b));
    let publisher = mesh.connect(1, now, connect_packet(ProtocolVersion::V5, "p", true));
    for _ in 0..10 {
        mesh.shards[1].handle_packet(
            now,
            publisher.key,
            publish_packet("jobs", QoS::AtMostOnce, false, b"j"),
        );
        mesh.pump(now);
    }
    let to_a = publishes(&received(&a)).len();
    let to_b = publishes(&received(&b)).len();
    assert_eq!(to_a + to_b, 10, "each message once to the group");
    assert_eq!((to_a, to_b), (5, 5), "one member per shard: half each");
}

#[test]
fn retained_messages_are_readable_on_every_shard_and_deleted_everywhere() {
    let mut mesh = Mesh::new(2);
    let now = Instant::now();
    let publisher = mesh.connect(0, now, connect_packet(ProtocolVersion::V3_1_1, "p", true));
    mesh.shards[0].handle_packet(
        now,
        publisher.key,
        publish_packet("state", QoS::AtMostOnce, true, b"on"),
    );
    mesh.pump(now);
    let sub = mesh.connect(1, now, connect_packet(ProtocolVersion::V3_1_1, "s", true));
    subscribe(&mut mesh.shards[1], now, &sub, "state", QoS::AtMostOnce);
    mesh.pump(now);
    let packets = received(&sub);
    let retained = publishes(&packets);
    assert_eq!(retained.len(), 1);
    assert!(retained[0].retain);
    assert_eq!(&retained[0].payload[..], b"on");

    mesh.shards[0].handle_packet(
        now + Duration::from_millis(1),
        publisher.key,
        publish_packet("state", QoS::AtMostOnce, true, b""),
    );
    mesh.pump(now);
    let _ = received(&sub);
    let later = mesh.connect(1, now, connect_packet(ProtocolVersion::V3_1_1, "l", true));
    subscribe(&mut mesh.shards[1], now, &later, "state", QoS::AtMostOnce);
    mesh.pump(now);
    assert!(
        publishes(&received(&later)).is_empty(),
        "deleted on shard 1 too"
    );
}

#[test]
fn an_older_retained_write_does_not_replace_a_newer_one() {
    let mut mesh = Mesh::new(2);
    let now = Instant::now();
    let p0 = mesh.connect(0, now, connect_packet(ProtocolVersion::V3_1_1, "p0", true));
    let p1 = mesh.connect(1, now, connect_packet(ProtocolVersion::V3_1_1, "p1", true));
    // Both write before either hears of the other; the later stamp wins on both shards.
    mesh.shards[1].handle_packet(
        now + Duration::from_millis(5),
        p1.key,
        publish_packet("k", QoS::AtMostOnce, true, b"new"),
    );
    mesh.shards[0].handle_packet(
        now,
        p0.key,
        publish_packet("k", QoS::AtMostOnce, true, b"old"),
    );
    mesh.pump(now);
    for shard in 0..2 {
        let id = format!("s{shard}");
        let sub = mesh.connect(
            shard,
            now,
            connect_packet(ProtocolVersion::V3_1_1, &id, true),
        );
        subscribe(&mut mesh.shards[shard], now, &sub, "k", QoS::AtMostOnce);
        mesh.pump(now);
        let packets = received(&sub);
        assert_eq!(&publishes(&packets)[0].payload[..], b"new", "shard {shard}");
    }
}

#[test]
fn an_ended_session_releases_its_client_id() {
    let mut mesh = Mesh::new(2);
    let now = Instant::now();
    let client = mesh.connect(
        0,
        now,
        connect_packet(ProtocolVersion::V3_1_1, "gone", true),
    );
    mesh.shards[0].connection_closed(now, client.key, &client.handle, None);
    mesh.pump(now);
    // Connecting again from shard 1 finds no holder: no take, no session present.
    let again = mesh.connect(
        1,
        now,
        connect_packet(ProtocolVersion::V3_1_1, "gone", false),
    );
    assert!(!connack(&again).session_present);
    assert_eq!(mesh.shards[0].counters().takeovers, 0);
}

#[test]
fn two_simultaneous_connects_of_one_client_id_leave_exactly_one_connected() {
    let mut mesh = Mesh::new(2);
    let now = Instant::now();
    let handles: Vec<Rc<ConnectionHandle>> = (0..2)
        .map(|shard| {
            let handle = Rc::new(ConnectionHandle::new(ProtocolVersion::V5, 1 << 20));
            let connect = connect_packet(ProtocolVersion::V5, "twin", false);
            let outcome = mesh.shards[shard].connect(now, &connect, Rc::clone(&handle));
            assert_eq!(outcome, ConnectOutcome::Pending);
            handle
        })
        .collect();
    mesh.pump(now);
    for handle in &handles {
        assert!(matches!(
            handle.connect_outcome(),
            Some(ConnectOutcome::Accepted(_))
        ));
    }
    let open: Vec<usize> = (0..2)
        .filter(|&shard| handles[shard].close_requested().is_none())
        .collect();
    assert_eq!(open.len(), 1, "one wins, the other is taken over");
    let closed = 1 - open[0];
    assert_eq!(
        handles[closed].close_requested().map(|close| close.reason),
        Some(ReasonCode::SESSION_TAKEN_OVER)
    );
    let sessions: usize = mesh.shards.iter().map(ShardEngine::session_count).sum();
    assert_eq!(sessions, 1, "one session, on the winner's shard");
    assert_eq!(mesh.shards[open[0]].session_count(), 1);
}

impl Mesh {
    /// Carries one batch, chosen by `seed`, from the outboxes that have one; false if none.
    fn step(&mut self, now: Instant, seed: &mut u64) -> bool {
        let count = self.shards.len();
        let mut waiting = Vec::new();
        for from in 0..count {
            for to in 0..count {
                if from != to && !self.shards[from].cluster.outboxes[to].is_empty() {
                    waiting.push((from, to));
                }
            }
        }
        if waiting.is_empty() {
            return false;
        }
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let (from, to) = waiting[(*seed >> 33) as usize % waiting.len()];
        let batch = self.shards[from].take_outbox(to);
        self.shards[to].handle_remote_batch(now, from, batch);
        true
    }
}

#[test]
fn nothing_published_during_a_session_move_is_lost_or_doubled() {
    for seed in 0..300_u64 {
        let mut seed_state = seed;
        let mut mesh = Mesh::new(3);
        let now = Instant::now();
        let mut persistent = connect_packet(ProtocolVersion::V5, "mover", false);
        persistent.properties.session_expiry_interval = Some(600);
        let first = mesh.connect(0, now, persistent.clone());
        subscribe(&mut mesh.shards[0], now, &first, "cmd/#", QoS::AtLeastOnce);
        mesh.pump(now);
        let _ = received(&first);
        let publisher = mesh.connect(2, now, connect_packet(ProtocolVersion::V5, "p", true));
        let other = mesh.connect(0, now, connect_packet(ProtocolVersion::V5, "o", true));

        // The client comes back on shard 1 while shards 2 and 0 keep publishing; the mesh
        // carries one batch at a time in an order drawn from the seed.
        let handle = Rc::new(ConnectionHandle::new(ProtocolVersion::V5, 1 << 20));
        let outcome = mesh.shards[1].connect(now, &persistent, Rc::clone(&handle));
        assert_eq!(outcome, ConnectOutcome::Pending);
        let mut published = 0_u16;
        loop {
            let progressed = mesh.step(now, &mut seed_state);
            if published < 30 {
                let (shard, key) = if published.is_multiple_of(3) {
                    (0, other.key)
                } else {
                    (2, publisher.key)
                };
                let mut packet = publish_packet("cmd/x", QoS::AtLeastOnce, false, b"m");
                if let Packet::Publish(publish) = &mut packet {
                    publish.packet_id = PacketId::new(published + 1);
                    publish.payload = Bytes::from(published.to_string());
                }
                mesh.shards[shard].handle_packet(now, key, packet);
                published += 1;
            } else if !progressed {
                break;
            }
        }
        let Some(ConnectOutcome::Accepted(key)) = handle.connect_outcome() else {
            panic!("seed {seed}: not accepted");
        };
        let client = Client {
            handle,
            key,
            version: ProtocolVersion::V5,
            after_connack: Vec::new(),
        };
        // Whatever the first connection got before it was taken over, plus what the second
        // got: every message exactly once (QoS 1 unacknowledged ones come again with DUP).
        let mut got: Vec<String> = Vec::new();
        for packets in [received(&first), received(&client)] {
            for publish in publishes(&packets) {
                if !publish.dup {
                    got.push(String::from_utf8(publish.payload.to_vec()).unwrap());
                }
            }
        }
        got.sort();
        let mut want: Vec<String> = (0..30).map(|i: u16| i.to_string()).collect();
        want.sort();
        assert_eq!(got, want, "seed {seed}");
        let stubs = mesh.shards[0]
            .slots
            .iter()
            .flatten()
            .filter(|slot| slot.forward_to.is_some())
            .count();
        assert_eq!(
            stubs, 0,
            "seed {seed}: the stub is gone once routes are everywhere"
        );
    }
}
