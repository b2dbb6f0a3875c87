//! The cross-shard half of the engine: the client-id registry and session moves, interest
//! announcements with the barrier that holds a SUBACK until every shard has applied them, and
//! forwarding publishes to the shards that want them.
//!
//! Plain code on the engine's state, like the rest of the engine: it writes what a peer must
//! know into that peer's outbox (the mesh tasks carry it) and handles what peers sent, in the
//! order each peer sent it. It never waits for a peer; what waits (a CONNECT for the registry,
//! a SUBACK for a barrier) is kept here as pending state and finished when the answer comes.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::hooks::{DisconnectReason, EventDetail, EventKind};
use crate::protocol::{ClientId, Connect, ReasonCode, TopicFilter};
use crate::session::{Close, Message, Session, SubscribeRequest};
use crate::topic::{
    Recipient, ShardId, ShardSet, SubscribeOutcome, SubscriberOptions, UnsubscribeOutcome,
};

use super::{ShardEngine, Slot};
use crate::shard::connection_handle::ConnectionHandle;
use crate::shard::notify::LocalNotify;
use crate::shard::remote::{registry_shard, MovedSession, RemoteBatch, RemoteMessage};

/// A CONNECT waiting for the registry, or for its session to arrive from another shard.
#[derive(Debug)]
pub(super) struct PendingConnect {
    connect: Box<Connect>,
    client_id: ClientId,
    assigned: bool,
    pub(super) connection: Rc<ConnectionHandle>,
}

/// A barrier sent to every peer, and the subscribes whose SUBACK waits for it.
#[derive(Debug)]
pub(super) struct PendingBarrier {
    id: u64,
    peers_left: usize,
    waiting: Vec<WaitingSubscribe>,
    /// Stubs to drop once every shard knows the routes announced before this barrier: the
    /// shard that keeps each, and its key there.
    unroutes: Vec<(usize, u32)>,
    /// Stubs of this shard to drop once every peer has answered: by then nothing any peer
    /// routed here before it knew the session's new routes is still on its way.
    drop_stubs: Vec<u32>,
}

#[derive(Debug)]
struct WaitingSubscribe {
    key: super::SessionKey,
    connection: Option<Rc<ConnectionHandle>>,
    request: SubscribeRequest,
}

impl ShardEngine {
    /// The wake-up of the task sending this shard's outbox for `peer`.
    pub fn outbox_wake(&self, peer: usize) -> Rc<LocalNotify> {
        self.cluster
            .outbox_wakes
            .get(peer)
            .cloned()
            .unwrap_or_default()
    }

    /// Everything queued for `peer` since the last call, as one batch.
    pub fn take_outbox(&mut self, peer: usize) -> RemoteBatch {
        self.cluster
            .outboxes
            .get_mut(peer)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// True while some peer's outbox is over its limit: connections should stop reading until
    /// the mesh catches up, so a slow shard slows its publishers instead of growing memory.
    pub fn mesh_congested(&self) -> bool {
        let limit = self.cluster.outbox_limit;
        self.cluster
            .outboxes
            .iter()
            .any(|outbox| outbox.len() >= limit)
    }

    /// Queues `message` for `peer`; a message to this shard itself is handled at once.
    pub(super) fn push_remote(&mut self, now: Instant, peer: usize, message: RemoteMessage) {
        let shard = self.cluster.shard;
        if peer == shard {
            self.handle_remote(now, shard, message);
            return;
        }
        let Some(outbox) = self.cluster.outboxes.get_mut(peer) else {
            return;
        };
        outbox.push(message);
        if outbox.len() == 1 {
            self.cluster.outbox_wakes[peer].notify();
        }
        if outbox.len() == self.cluster.outbox_limit {
            self.counters.mesh_congestion += 1;
        }
    }

    /// Everything one peer sent in one batch, in order.
    pub fn handle_remote_batch(&mut self, now: Instant, from: usize, batch: RemoteBatch) {
        for message in batch {
            self.handle_remote(now, from, message);
        }
        self.publish_system_messages(now);
    }

    fn handle_remote(&mut self, now: Instant, from: usize, message: RemoteMessage) {
        match message {
            RemoteMessage::Publish {
                message,
                groups,
                forwarded_to,
            } => self.deliver_forwarded(now, message, groups, forwarded_to),
            RemoteMessage::Deliver {
                client_id,
                delivery,
            } => {
                if let Some(key) = self.by_client.get(&client_id).copied() {
                    self.deliver(now, key, delivery);
                }
            }
            RemoteMessage::Unroute { stub } => {
                let is_stub = self
                    .slots
                    .get(stub as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|slot| slot.forward_to == Some(from));
                if is_stub {
                    // Not yet: a peer may have forwarded a message here before it learnt the
                    // new routes, still in its channel to this shard. Once every peer has
                    // answered a barrier sent now, none can be.
                    self.start_barrier(now).drop_stubs.push(stub);
                }
            }
            RemoteMessage::Retain { message, stamp } => self.apply_remote_retained(message, stamp),
            RemoteMessage::Interest { filter, count } => {
                if let Some(shard) = ShardId::new(from) {
                    self.cluster.interest.set_subscribers(&filter, shard, count);
                }
            }
            RemoteMessage::Barrier { id } => {
                self.push_remote(now, from, RemoteMessage::BarrierDone { id })
            }
            RemoteMessage::BarrierDone { id } => self.barrier_done(now, id),
            RemoteMessage::Claim { client_id, token } => {
                let client_id = client_id.to_owned_copy();
                let previous = self.cluster.registry.insert(client_id, from);
                self.push_remote(now, from, RemoteMessage::Claimed { token, previous });
            }
            RemoteMessage::Claimed { token, previous } => self.claimed(now, token, previous),
            RemoteMessage::Release { client_id } => {
                if self.cluster.registry.get(&client_id) == Some(&from) {
                    self.cluster.registry.remove(&client_id);
                }
            }
            RemoteMessage::Take {
                client_id,
                token,
                resume,
            } => self.take(now, from, client_id, token, resume),
            RemoteMessage::Moved { token, session } => {
                let moved = session.map(|moved| (from, *moved));
                match self.cluster.pending_connects.remove(&token) {
                    Some(pending) => self.finish_connect(now, pending, moved),
                    // Cannot happen (a pending connect ends only here); keep the session.
                    None => {
                        if let Some((from, moved)) = moved {
                            self.install_moved_session(now, from, moved);
                        }
                    }
                }
            }
        }
    }

    // ---- client ids ------------------------------------------------------------------------

    /// Starts a CONNECT on a multi-shard broker: asks the registry shard of the client id who
    /// holds it, and records this shard as the new holder.
    pub(super) fn claim_client_id(
        &mut self,
        now: Instant,
        connect: &Connect,
        client_id: ClientId,
        assigned: bool,
        connection: Rc<ConnectionHandle>,
    ) {
        self.cluster.next_token += 1;
        let token = self.cluster.next_token;
        let registry = registry_shard(&client_id, self.cluster.shard_count);
        self.cluster.pending_connects.insert(
            token,
            PendingConnect {
                connect: Box::new(connect.clone()),
                client_id: client_id.clone(),
                assigned,
                connection,
            },
        );
        self.push_remote(now, registry, RemoteMessage::Claim { client_id, token });
    }

    /// The registry answered: the session is here or nowhere (attach now), or on another shard
    /// (take it from there first).
    fn claimed(&mut self, now: Instant, token: u64, previous: Option<usize>) {
        let shard = self.cluster.shard;
        match previous {
            Some(owner) if owner != shard => {
                let Some(pending) = self.cluster.pending_connects.get(&token) else {
                    return;
                };
                let take = RemoteMessage::Take {
                    client_id: pending.client_id.clone(),
                    token,
                    resume: !pending.connect.clean_start,
                };
                self.push_remote(now, owner, take);
            }
            _ => {
                if let Some(pending) = self.cluster.pending_connects.remove(&token) {
                    self.finish_connect(now, pending, None);
                }
            }
        }
    }

    fn finish_connect(
        &mut self,
        now: Instant,
        pending: PendingConnect,
        moved: Option<(usize, MovedSession)>,
    ) {
        let PendingConnect {
            connect,
            client_id,
            assigned,
            connection,
        } = pending;
        if connection.close_requested().is_some() {
            // Shut down meanwhile: keep a moved session, answer nothing.
            if let Some((from, moved)) = moved {
                self.install_moved_session(now, from, moved);
            }
            return;
        }
        self.attach(now, &connect, client_id, assigned, connection, moved);
    }

    /// Another shard takes `client_id`: close the connection here (0x8E in 5.0) and hand the
    /// session over when it is resumed, or end it (its will goes out now).
    fn take(&mut self, now: Instant, from: usize, client_id: ClientId, token: u64, resume: bool) {
        let connecting_here = self
            .cluster
            .pending_connects
            .values()
            .any(|pending| pending.client_id == client_id);
        if connecting_here {
            // This shard's connect for the id came first; the take runs once it is attached.
            self.cluster
                .deferred_takes
                .insert(client_id, (from, token, resume));
            return;
        }
        let mut session = None;
        if let Some(key) = self.by_client.get(&client_id).copied() {
            let client = self.client_info(key);
            if let Some(old) = self.slot_mut(key).and_then(|slot| slot.connection.take()) {
                old.request_close(Close {
                    reason: ReasonCode::SESSION_TAKEN_OVER,
                    send_disconnect: true,
                    publish_will: !resume,
                });
                self.counters.takeovers += 1;
                if let Some(client) = &client {
                    self.record(now, EventKind::ClientDisconnected, client, || {
                        EventDetail::Disconnected(DisconnectReason::TakenOver)
                    });
                }
            }
            let detached = self.slot_mut(key).map(|slot| slot.session.detach(!resume));
            if let Some(will) = detached.and_then(|detached| detached.will) {
                self.publish_will(now, &client_id, client.clone(), will);
            }
            if resume {
                session = self.leave_stub(key, from).map(Box::new);
            } else {
                let removed = self.remove_session(key, false);
                if let Some(client) = &client {
                    self.record(now, EventKind::SessionTerminated, client, || {
                        EventDetail::Disconnected(DisconnectReason::TakenOver)
                    });
                }
                if let Some(Slot {
                    pending_will: Some((_, will)),
                    ..
                }) = removed
                {
                    // The registry already names the taking shard: no release. The session
                    // ends here, so its delayed will is due.
                    self.publish_will(now, &client_id, client, will);
                }
            }
        }
        self.push_remote(now, from, RemoteMessage::Moved { token, session });
    }

    /// Runs a take that waited for this shard's own connect of `client_id`.
    pub(super) fn run_deferred_take(&mut self, now: Instant, client_id: &ClientId) {
        if let Some((from, token, resume)) = self.cluster.deferred_takes.remove(client_id) {
            self.take(now, from, client_id.clone(), token, resume);
        }
    }

    /// Tells the registry that this shard's session of `client_id` has ended.
    pub(super) fn release_client_id(&mut self, client_id: &ClientId) {
        if self.cluster.shard_count > 1 {
            let registry = registry_shard(client_id, self.cluster.shard_count);
            let release = RemoteMessage::Release {
                client_id: client_id.clone(),
            };
            // `now` only matters to publishes; a release to this shard carries none.
            self.push_remote(Instant::now(), registry, release);
        }
    }

    /// Takes the session `key` out for a move to `to`, leaving a stub in its place: the stub
    /// keeps the session's routes and forwards what they match until `to` sends `Unroute`.
    fn leave_stub(&mut self, key: super::SessionKey, to: usize) -> Option<MovedSession> {
        let limits = Arc::clone(&self.limits);
        let slot = self.slot_mut(key)?;
        let client_id = slot.session.client_id().clone();
        let placeholder = Box::new(Session::new(client_id.clone(), limits));
        let session = std::mem::replace(&mut slot.session, placeholder);
        let pending_will = slot.pending_will.take();
        slot.connection = None;
        slot.expires_at = None;
        slot.forward_to = Some(to);
        self.by_client.remove(&client_id);
        Some(MovedSession {
            session,
            pending_will,
            stub: key,
        })
    }

    /// True when `key` is a stub forwarding to a shard in `shards`.
    pub(super) fn moved_to_any_of(&self, key: super::SessionKey, shards: ShardSet) -> bool {
        self.slots
            .get(key as usize)
            .and_then(Option::as_ref)
            .and_then(|slot| slot.forward_to)
            .and_then(ShardId::new)
            .is_some_and(|peer| shards.contains(peer))
    }

    /// Puts a session that moved here from `from` into this shard's tables and announces its
    /// routes; once every shard has them, `from` is told to drop its stub.
    pub(super) fn install_moved_session(&mut self, now: Instant, from: usize, moved: MovedSession) {
        let session = moved.session;
        let client_id = session.client_id().clone();
        let routes: Vec<(TopicFilter, SubscriberOptions)> = session
            .subscriptions()
            .map(|(filter, stored)| {
                (
                    filter.clone(),
                    SubscriberOptions::new(&stored.options, stored.id),
                )
            })
            .collect();
        let key = self.insert_session(client_id);
        if let Some(slot) = self.slot_mut(key) {
            slot.session = session;
        }
        for (filter, options) in routes {
            let outcome = self.subscriptions.subscribe(key, &filter, options);
            self.announce_subscribe(now, &filter, outcome);
        }
        let barrier = self.start_barrier(now);
        barrier.unroutes.push((from, moved.stub));
    }

    // ---- interest ----------------------------------------------------------------------------

    /// Announces a subscription that changed what this shard wants; true if it did.
    pub(super) fn announce_subscribe(
        &mut self,
        now: Instant,
        filter: &TopicFilter,
        outcome: SubscribeOutcome,
    ) -> bool {
        let count = match outcome.shared_members_on_shard {
            Some(members) if !outcome.replaced => members,
            Some(_) => return false,
            None if outcome.filter_is_new_on_shard => 1,
            None => return false,
        };
        self.announce(now, filter, count);
        true
    }

    /// Announces an unsubscribe that changed what this shard wants.
    pub(super) fn announce_unsubscribe(
        &mut self,
        filter: &TopicFilter,
        outcome: UnsubscribeOutcome,
    ) {
        let count = match outcome.shared_members_on_shard {
            Some(members) if outcome.existed => members,
            Some(_) => return,
            None if outcome.filter_now_unused_on_shard => 0,
            None => return,
        };
        self.announce(Instant::now(), filter, count);
    }

    pub(super) fn announce(&mut self, now: Instant, filter: &TopicFilter, count: u32) {
        if self.cluster.shard_count == 1 {
            return;
        }
        if let Some(shard) = ShardId::new(self.cluster.shard) {
            self.cluster.interest.set_subscribers(filter, shard, count);
        }
        for peer in 0..self.cluster.shard_count {
            if peer != self.cluster.shard {
                let filter = filter.clone();
                self.push_remote(now, peer, RemoteMessage::Interest { filter, count });
            }
        }
    }

    /// Holds a SUBACK until every peer has applied what this shard announced so far: behind a
    /// new barrier when this subscribe announced something, else behind the latest one.
    pub(super) fn wait_for_barrier(
        &mut self,
        now: Instant,
        key: super::SessionKey,
        request: SubscribeRequest,
        announced: bool,
    ) {
        if announced || self.cluster.barriers.is_empty() {
            self.start_barrier(now);
        }
        let connection = self.slot_mut(key).and_then(|slot| slot.connection.clone());
        if let Some(barrier) = self.cluster.barriers.back_mut() {
            barrier.waiting.push(WaitingSubscribe {
                key,
                connection,
                request,
            });
        }
    }

    /// Sends a new barrier to every peer and returns it, to attach what waits for it.
    fn start_barrier(&mut self, now: Instant) -> &mut PendingBarrier {
        self.cluster.next_barrier += 1;
        let id = self.cluster.next_barrier;
        for peer in 0..self.cluster.shard_count {
            if peer != self.cluster.shard {
                self.push_remote(now, peer, RemoteMessage::Barrier { id });
            }
        }
        let barriers = &mut self.cluster.barriers;
        barriers.push_back(PendingBarrier {
            id,
            peers_left: self.cluster.shard_count - 1,
            waiting: Vec::new(),
            unroutes: Vec::new(),
            drop_stubs: Vec::new(),
        });
        let last = barriers.len() - 1;
        &mut barriers[last]
    }

    /// A peer has applied everything before barrier `id`. Barriers complete in order (each
    /// peer answers them in order), so finished ones are taken from the front.
    fn barrier_done(&mut self, now: Instant, id: u64) {
        if let Some(barrier) = self.cluster.barriers.iter_mut().find(|b| b.id == id) {
            barrier.peers_left = barrier.peers_left.saturating_sub(1);
        }
        while self
            .cluster
            .barriers
            .front()
            .is_some_and(|barrier| barrier.peers_left == 0)
        {
            let Some(barrier) = self.cluster.barriers.pop_front() else {
                break;
            };
            for (peer, stub) in barrier.unroutes {
                self.push_remote(now, peer, RemoteMessage::Unroute { stub });
            }
            for stub in barrier.drop_stubs {
                self.remove_session(stub, false);
            }
            for waiting in barrier.waiting {
                // Only the connection that asked gets the SUBACK; the routes stay regardless.
                let same_connection = self
                    .slots
                    .get(waiting.key as usize)
                    .and_then(Option::as_ref)
                    .and_then(|slot| slot.connection.as_ref())
                    .zip(waiting.connection.as_ref())
                    .is_some_and(|(now_serving, asked)| Rc::ptr_eq(now_serving, asked));
                if same_connection {
                    self.complete_subscribe(now, waiting.key, waiting.request);
                } else if self
                    .slots
                    .get(waiting.key as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|slot| slot.forward_to.is_none())
                {
                    // A new connection resumed the session meanwhile: no SUBACK for it, but
                    // the session has the subscription, so its routes go in.
                    self.add_deferred_routes(now, waiting.key, &waiting.request);
                }
            }
        }
    }

    // ---- publishes ---------------------------------------------------------------------------

    /// Forwards `message` to the other shards with matching direct subscriptions and to the
    /// shard chosen for each matching share group; groups served here go into `recipients`.
    pub(super) fn forward(
        &mut self,
        now: Instant,
        message: &Arc<Message>,
        publisher: Option<super::SessionKey>,
        recipients: &mut Vec<Recipient<super::SessionKey>>,
    ) -> ShardSet {
        let Some(this_shard) = ShardId::new(self.cluster.shard) else {
            return ShardSet::new();
        };
        let mut shards: ShardSet = self.cluster.interest.shards_for(&message.topic);
        shards.remove(this_shard);
        let mut routes = std::mem::take(&mut self.cluster.group_routes);
        self.cluster
            .interest
            .choose_group_shards(&message.topic, |filter, shard| {
                routes.push((filter.clone(), shard));
            });
        for (filter, shard) in &routes {
            if *shard == this_shard {
                self.subscriptions
                    .deliver_to_group(filter, publisher, recipients);
            } else {
                shards.insert(*shard);
            }
        }
        for shard in shards.iter() {
            let groups: Vec<TopicFilter> = routes
                .iter()
                .filter(|(_, chosen)| *chosen == shard)
                .map(|(filter, _)| filter.clone())
                .collect();
            let forward = RemoteMessage::Publish {
                message: Arc::clone(message),
                groups,
                forwarded_to: shards,
            };
            self.counters.messages_forwarded += 1;
            self.push_remote(now, shard.index(), forward);
        }
        routes.clear();
        self.cluster.group_routes = routes;
        shards
    }

    /// A publish another shard forwarded: its direct subscribers here, plus one member of each
    /// share group this shard was chosen to serve.
    fn deliver_forwarded(
        &mut self,
        now: Instant,
        message: Arc<Message>,
        groups: Vec<TopicFilter>,
        forwarded_to: ShardSet,
    ) {
        let mut recipients = std::mem::take(&mut self.recipients);
        recipients.clear();
        self.subscriptions
            .match_direct(&message.topic, None, &mut recipients);
        let direct = recipients.len();
        for filter in &groups {
            if !self
                .subscriptions
                .deliver_to_group(filter, None, &mut recipients)
            {
                // The group's last member here left while the message was on its way.
                self.counters.dropped_group_gone += 1;
            }
        }
        self.deliver_all(now, &message, &mut recipients, direct, forwarded_to);
        self.recipients = recipients;
    }
}
