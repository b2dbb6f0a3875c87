//! The mesh: one bounded lock-free SPSC channel (glommio `shared_channel`) for every ordered
//! pair of shards, and the tasks on each shard that move batches through it.
//!
//! [`MeshEndpoints::build`] runs on `main`'s thread before the shards start and makes all
//! N×(N−1) channels; each shard takes its own ends and calls [`start_mesh`] on its executor.
//! Per peer a shard runs one sender task, which drains the engine's outbox for that peer into
//! the channel one batch per wake-up, and one inbox task, which hands every received batch to
//! the engine. The inbox task never sends and never waits on another shard: were both shards'
//! inbox tasks to await room in each other's full channel, neither would ever drain (DESIGN.md
//! §4). Only the sender task waits for room, and while it does the engine's outbox for that
//! peer grows; `ShardEngine::mesh_congested` tells connections to stop reading until it drains.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use glommio::task::JoinHandle;

use super::engine::ShardEngine;
use super::remote::RemoteBatch;

/// One shard's ends of the mesh: a sender to and a receiver from every other shard.
pub struct MeshEndpoints {
    senders: Vec<Option<SharedSender<RemoteBatch>>>,
    receivers: Vec<Option<SharedReceiver<RemoteBatch>>>,
}

impl std::fmt::Debug for MeshEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshEndpoints")
            .field("peers", &self.senders.iter().flatten().count())
            .finish()
    }
}

impl MeshEndpoints {
    /// The ends of every shard, in shard order; each channel holds `capacity` batches.
    pub fn build(shards: usize, capacity: usize) -> Vec<Self> {
        let mut endpoints: Vec<Self> = (0..shards)
            .map(|_| Self {
                senders: (0..shards).map(|_| None).collect(),
                receivers: (0..shards).map(|_| None).collect(),
            })
            .collect();
        for from in 0..shards {
            for to in 0..shards {
                if from != to {
                    let (sender, receiver) = shared_channel::new_bounded(capacity);
                    endpoints[from].senders[to] = Some(sender);
                    endpoints[to].receivers[from] = Some(receiver);
                }
            }
        }
        endpoints
    }
}

/// The running mesh tasks of one shard; dropping this stops them.
#[derive(Debug)]
pub struct MeshTasks {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for MeshTasks {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.cancel();
        }
    }
}

/// Connects this shard's ends (every shard must call it: a connect completes when both ends
/// have connected) and starts the sender and inbox tasks.
pub async fn start_mesh(endpoints: MeshEndpoints, engine: Rc<RefCell<ShardEngine>>) -> MeshTasks {
    let mut connecting = Vec::new();
    // All connects run at once: awaiting them in turn would deadlock, each shard waiting for a
    // peer that is itself waiting for another.
    for (peer, sender) in endpoints.senders.into_iter().enumerate() {
        if let Some(sender) = sender {
            let engine = Rc::clone(&engine);
            let task = glommio::spawn_local(async move {
                let sender = sender.connect().await;
                send_loop(peer, sender, engine).await;
            });
            connecting.push(task.detach());
        }
    }
    for (peer, receiver) in endpoints.receivers.into_iter().enumerate() {
        if let Some(receiver) = receiver {
            let engine = Rc::clone(&engine);
            let task = glommio::spawn_local(async move {
                let receiver = receiver.connect().await;
                while let Some(batch) = receiver.recv().await {
                    engine
                        .borrow_mut()
                        .handle_remote_batch(Instant::now(), peer, batch);
                }
            });
            connecting.push(task.detach());
        }
    }
    MeshTasks { tasks: connecting }
}

/// Moves the engine's outbox for `peer` into the channel, one batch per wake-up.
async fn send_loop(
    peer: usize,
    sender: shared_channel::ConnectedSender<RemoteBatch>,
    engine: Rc<RefCell<ShardEngine>>,
) {
    let wake = engine.borrow().outbox_wake(peer);
    loop {
        wake.notified().await;
        loop {
            let batch = engine.borrow_mut().take_outbox(peer);
            if batch.is_empty() {
                break;
            }
            // Waiting for room here is safe: this task is not the inbox, which keeps draining.
            if sender.send(batch).await.is_err() {
                // The peer is gone: the broker is stopping.
                return;
            }
        }
    }
}
