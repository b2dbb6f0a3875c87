//! What shards tell each other over the mesh. Every message is `Send` and carries payloads as
//! `Bytes` inside `Arc<Message>`: forwarding a publish to another shard moves a pointer, never
//! the payload.
//!
//! A shard sends these in batches (one `Vec` per destination per executor tick); the channel
//! between two shards is FIFO, which the barrier and registry protocols rely on.

use std::sync::Arc;
use std::time::Instant;

use crate::protocol::{ClientId, TopicFilter, Will};
use crate::session::{Delivery, Message, Session};
use crate::topic::ShardSet;

/// One batch: what a shard sends another in one channel slot.
pub type RemoteBatch = Vec<RemoteMessage>;

/// Orders concurrent writes of one retained topic so every shard keeps the same last one: the
/// time of the write, then the writing shard's index.
pub type RetainStamp = (Instant, usize);

/// A message between two shards.
#[derive(Debug)]
pub enum RemoteMessage {
    /// A publish for the receiver's sessions: its direct subscribers, plus one member of each
    /// listed share group (`$share/g/f`), which the sender chose this shard to serve.
    Publish {
        /// The message, shared.
        message: Arc<Message>,
        /// Share groups this shard serves for this message.
        groups: Vec<TopicFilter>,
        /// Every shard the publisher's shard forwarded this message to. A session that moved
        /// away still has routes here until its new shard's are known everywhere; it gets the
        /// message through here only if its new shard was not sent it directly.
        forwarded_to: ShardSet,
    },
    /// A delivery for a session that moved to the receiver, forwarded by the shard it left
    /// (see [`MovedSession::stub`]).
    Deliver {
        /// The session's client id.
        client_id: ClientId,
        /// The delivery as routed on the sender.
        delivery: Delivery,
    },
    /// The receiver's moved session has its routes announced everywhere: drop the stub that
    /// was forwarding for it.
    Unroute {
        /// The stub's session key on the receiver.
        stub: u32,
    },
    /// A retained message was set (or, with an empty payload, deleted) on the sender.
    Retain {
        /// The message as published.
        message: Arc<Message>,
        /// When and where it was written.
        stamp: RetainStamp,
    },
    /// The sender now has `count` subscribers to `filter` (for a shared filter, members of the
    /// group); zero means none.
    Interest {
        /// The filter as subscribed.
        filter: TopicFilter,
        /// Subscribers on the sender.
        count: u32,
    },
    /// Answer with [`RemoteMessage::BarrierDone`] once everything sent before it is applied.
    Barrier {
        /// The sender's barrier number.
        id: u64,
    },
    /// Everything the receiver sent before the barrier has been applied here.
    BarrierDone {
        /// The barrier number.
        id: u64,
    },
    /// To the registry shard of `client_id`: the sender is taking the client id.
    Claim {
        /// The client id.
        client_id: ClientId,
        /// The sender's number for this connect.
        token: u64,
    },
    /// The registry's answer: who held the client id before.
    Claimed {
        /// The connect this answers.
        token: u64,
        /// The shard that held it, if any.
        previous: Option<usize>,
    },
    /// To the registry shard: the sender's session for `client_id` has ended.
    Release {
        /// The client id.
        client_id: ClientId,
    },
    /// To the shard holding `client_id`'s session: close its connection (0x8E in 5.0) and hand
    /// the session over when `resume`, or end it.
    Take {
        /// The client id.
        client_id: ClientId,
        /// The taking shard's connect.
        token: u64,
        /// The new connection resumes the session (clean start off).
        resume: bool,
    },
    /// The answer to [`RemoteMessage::Take`].
    Moved {
        /// The connect this answers.
        token: u64,
        /// The session, when it existed and is resumed.
        session: Option<Box<MovedSession>>,
    },
}

/// A session on its way to another shard: the state machine itself (subscriptions, inflight
/// window, queue, QoS 2 state), and a will still waiting for its delay.
#[derive(Debug)]
pub struct MovedSession {
    /// The session.
    pub session: Box<Session>,
    /// A delayed will that had not been published yet.
    pub pending_will: Option<(Instant, Will)>,
    /// The key of the stub the sender keeps in the session's place: its routes stay there and
    /// forward what matches them to the new shard (as [`RemoteMessage::Deliver`]) until the
    /// new shard's own routes are known to every shard, so nothing published during the move
    /// is lost. The new shard sends [`RemoteMessage::Unroute`] then.
    pub stub: u32,
}

/// The shard whose registry holds `client_id`: FNV-1a of its bytes, modulo the shard count.
/// Every shard must compute the same answer, so this hash is fixed, not seeded per process.
pub fn registry_shard(client_id: &ClientId, shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in client_id.as_str().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // The remainder is below `shards`, a usize.
    (hash % shards.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_registry_shard_is_stable_and_spread() {
        let ids: Vec<ClientId> = (0..1000)
            .map(|i| ClientId::new(&format!("device-{i}")).unwrap())
            .collect();
        let mut per_shard = [0_usize; 4];
        for id in &ids {
            let shard = registry_shard(id, 4);
            assert_eq!(shard, registry_shard(id, 4));
            per_shard[shard] += 1;
        }
        assert!(per_shard.iter().all(|&n| n > 150), "{per_shard:?}");
        assert_eq!(registry_shard(&ids[0], 1), 0);
    }

    #[test]
    fn mesh_messages_can_cross_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<RemoteBatch>();
    }
}
