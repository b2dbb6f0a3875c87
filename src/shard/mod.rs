//! Shards: one pinned glommio executor per core, each owning its connections, sessions, topic
//! trie and counters, with nothing behind a lock. This module and `net` are the only ones that
//! know about the executor; the engine itself is executor-free and tested without sockets.

mod connection_handle;
mod counters;
mod engine;
mod executors;
mod mesh;
mod notify;
mod remote;
mod shared_encoding;
mod stats;
mod system_topics;

pub use connection_handle::ConnectionHandle;
pub use counters::ShardCounters;
pub use engine::{ConnectOutcome, SessionKey, ShardEngine};
pub use executors::{spawn_shards, ShardHandles, ShardStartError, SHARD_START_TIMEOUT};
pub use mesh::{start_mesh, MeshEndpoints, MeshTasks};
pub use notify::{LocalNotify, Notified};
pub use remote::{registry_shard, MovedSession, RemoteBatch, RemoteMessage, RetainStamp};
pub use stats::{ShardStats, STATS_PREFIX};
pub use system_topics::{SystemTopics, SystemTopicsConfig, BROKER_CLIENT_ID};
