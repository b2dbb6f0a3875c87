//! The documentation of every section and key: type, unit, allowed values and meaning.
//!
//! One table feeds both `starling generate-config` (as TOML comments) and the reference part
//! of `docs/configuration.md`, so the two say the same thing. Defaults are not written here:
//! `template` takes them from the schema itself. Tests check that every key of the schema has
//! an entry and every entry a key.

/// A table of the file.
#[derive(Debug)]
pub(crate) struct SectionDoc {
    /// The name used in key paths: `mqtt`, `listeners`.
    pub name: &'static str,
    /// The TOML header: `[mqtt]`, `[[listeners]]`.
    pub header: &'static str,
    /// What the section is for.
    pub doc: &'static str,
}

/// One key.
#[derive(Debug)]
pub(crate) struct KeyDoc {
    /// `section.key`, e.g. `tuning.ring_depth`; `listeners.bind` for every listener.
    pub path: &'static str,
    /// TOML type and unit: "integer, bytes".
    pub kind: &'static str,
    /// What validation accepts.
    pub allowed: &'static str,
    /// What it does, when to change it.
    pub doc: &'static str,
}

impl KeyDoc {
    /// The section part of the path.
    pub fn section(&self) -> &'static str {
        self.path.split_once('.').map_or(self.path, |(s, _)| s)
    }

    /// The key part of the path.
    pub fn key(&self) -> &'static str {
        self.path.split_once('.').map_or(self.path, |(_, k)| k)
    }
}

/// The sections, in file order.
pub(crate) const SECTIONS: &[SectionDoc] = &[
    SectionDoc {
        name: "listeners",
        header: "[[listeners]]",
        doc: "Where clients connect: one [[listeners]] table per address. Listing any replaces \
              the built-in listener (127.0.0.1:1883, named \"default\"), and `starling --listen \
              IP:PORT` (repeatable) replaces them all. Every shard binds every listener with \
              SO_REUSEPORT, and the kernel spreads new connections over the shards.",
    },
    SectionDoc {
        name: "mqtt",
        header: "[mqtt]",
        doc: "MQTT behaviour: what the broker announces to clients in CONNACK, what it accepts \
              from them, and what it keeps per session.",
    },
    SectionDoc {
        name: "tuning",
        header: "[tuning]",
        doc: "Shards, CPUs, executor knobs and buffer sizes. tuning/README.md explains when to \
              change each and how to measure the effect; tuning/*.toml are ready-made profiles.",
    },
    SectionDoc {
        name: "log",
        header: "[log]",
        doc: "Logging. Log lines go to standard error.",
    },
    SectionDoc {
        name: "hooks",
        header: "[hooks]",
        doc: "The built-in decision hooks: a password and token file checked on CONNECT, and a \
              topic table saying which topics may be published and subscribed to, with JSON \
              Schemas for payloads. Each is off until configured. docs/hooks.md explains \
              them, and how to write a hook of your own.",
    },
    SectionDoc {
        name: "events",
        header: "[events]",
        doc: "Events (connects, subscriptions, messages, acks, drops...) recorded by each shard \
              into its own bounded ring and carried off the shards by the exporter runtime to \
              the [[exporters]] below (docs/exporters.md). An event kind no exporter wants \
              costs nothing.",
    },
    SectionDoc {
        name: "system_topics",
        header: "[system_topics]",
        doc: "The in-broker exporter: events published as MQTT messages on SYSTEM/ topics \
              (presence/connected, presence/disconnected, subscription/subscribed, \
              subscription/unsubscribed, message, msgack) by the shard that saw them.",
    },
];

/// Every key, in file order within its section.
pub(crate) const KEYS: &[KeyDoc] = &[
    // [[listeners]]
    KeyDoc {
        path: "listeners.name",
        kind: "string",
        allowed: "1 to 64 letters, digits, '-', '_' or '.'; unique among listeners",
        doc: "A label for this listener in logs and metrics. A listener without a name is \
              called by its bind address.",
    },
    KeyDoc {
        path: "listeners.bind",
        kind: "string, IP:PORT",
        allowed: "an IPv4 or IPv6 address and a port other than 0, such as \"0.0.0.0:1883\" or \
                  \"[::]:1883\"; host names are not resolved; no two listeners may overlap",
        doc: "Address and port clients connect to. 0.0.0.0 accepts on every IPv4 address, [::] \
              on every IPv6 and (dual-stack) IPv4 address.",
    },
    KeyDoc {
        path: "listeners.transport",
        kind: "string",
        allowed: "\"tcp\" (\"tls\", \"ws\" and \"wss\" are not supported yet)",
        doc: "How clients speak to this listener: tcp is MQTT over plain TCP.",
    },
    KeyDoc {
        path: "listeners.backlog",
        kind: "integer, connections",
        allowed: "1 to 65535",
        doc: "Connections the kernel queues on each shard's socket before the broker accepts \
              them; the kernel caps it at net.core.somaxconn. Raise it (and somaxconn) when \
              thousands of clients reconnect at once and connects time out.",
    },
    // [mqtt]
    KeyDoc {
        path: "mqtt.max_packet_size_bytes",
        kind: "integer, bytes",
        allowed: "16 to 268435460 (the largest packet MQTT can encode)",
        doc: "Largest packet a client may send, fixed header included. A larger one closes the \
              connection (5.0: reason 0x95, Packet too large) as soon as its header is read, \
              before the body is buffered. Announced to 5.0 clients as Maximum Packet Size.",
    },
    KeyDoc {
        path: "mqtt.receive_maximum",
        kind: "integer, messages",
        allowed: "1 to 65535",
        doc: "QoS 1 and 2 publishes a 5.0 client may have unacknowledged towards the broker \
              (Receive Maximum in CONNACK); a client that sends more is disconnected (0x93). \
              MQTT 3.x has no such window.",
    },
    KeyDoc {
        path: "mqtt.max_inflight_messages",
        kind: "integer, messages",
        allowed: "1 to 65535",
        doc: "QoS 1 and 2 messages the broker sends to one client before it waits for their \
              acknowledgements. A 5.0 client's smaller Receive Maximum lowers it; a larger one \
              does not raise it, so every session's window stays bounded. 3.x clients, which \
              cannot say, get this window.",
    },
    KeyDoc {
        path: "mqtt.max_queued_messages",
        kind: "integer, messages",
        allowed: "0 to 4294967295",
        doc: "QoS 1 and 2 messages kept per session behind the inflight window, and while a \
              persistent session's client is offline. When the queue is full, further \
              messages for the session are dropped and counted. 0 keeps no queue.",
    },
    KeyDoc {
        path: "mqtt.max_queued_bytes",
        kind: "integer, bytes",
        allowed: "mqtt.max_packet_size_bytes to 1099511627776",
        doc: "Bytes of messages kept in one session's queue; whichever of this and \
              max_queued_messages is reached first applies. Together they bound the memory of \
              a session whose client is slow or away.",
    },
    KeyDoc {
        path: "mqtt.max_session_expiry_secs",
        kind: "integer, seconds",
        allowed: "0 to 4294967295",
        doc: "Longest a session outlives its connection. A 5.0 client asking for more gets this \
              value (in CONNACK); 3.x persistent sessions (clean session 0), which the spec \
              keeps forever, expire after it too. 0 ends every session with its connection; \
              4294967295 lets a session that asks for it live forever.",
    },
    KeyDoc {
        path: "mqtt.max_keep_alive_secs",
        kind: "integer, seconds",
        allowed: "0 to 65535",
        doc: "Longest keep-alive accepted. 0 accepts what each client asks. Otherwise a 5.0 \
              client asking for more, or for none, is given this value as Server Keep Alive; \
              3.x clients cannot be told another value and keep their own. A connection \
              silent for 1.5 times its keep-alive is closed.",
    },
    KeyDoc {
        path: "mqtt.connect_timeout_secs",
        kind: "integer, seconds",
        allowed: "1 to 3600",
        doc: "How long a new connection may take to send its CONNECT packet before it is \
              closed. Keeps idle sockets (port scanners, stalled clients) from holding \
              connection slots.",
    },
    KeyDoc {
        path: "mqtt.topic_alias_maximum",
        kind: "integer, aliases",
        allowed: "0 to 65535",
        doc: "Topic aliases a 5.0 client may set on its publishes (Topic Alias Maximum in \
              CONNACK). Each costs the session one stored topic. 0 disables them.",
    },
    KeyDoc {
        path: "mqtt.maximum_qos",
        kind: "integer, QoS level",
        allowed: "0, 1 or 2",
        doc: "Highest QoS the broker grants to subscriptions and accepts on publishes \
              (Maximum QoS in CONNACK): a subscription asking for more is granted this, a \
              publish above it closes the connection (5.0: reason 0x9B, QoS not supported).",
    },
    KeyDoc {
        path: "mqtt.retain_available",
        kind: "boolean",
        allowed: "true or false",
        doc: "Whether retained messages are kept and sent to new subscribers. When false, a \
              publish with the retain flag closes the connection (5.0: reason 0x9A, Retain \
              not supported).",
    },
    KeyDoc {
        path: "mqtt.wildcard_subscription_available",
        kind: "boolean",
        allowed: "true or false",
        doc: "Whether subscriptions may use the + and # wildcards.",
    },
    KeyDoc {
        path: "mqtt.shared_subscription_available",
        kind: "boolean",
        allowed: "true or false",
        doc: "Whether $share/group/filter subscriptions are accepted.",
    },
    KeyDoc {
        path: "mqtt.subscription_identifiers_available",
        kind: "boolean",
        allowed: "true or false",
        doc: "Whether 5.0 clients may tag subscriptions with Subscription Identifiers.",
    },
    KeyDoc {
        path: "mqtt.shared_subscription_strategy",
        kind: "string",
        allowed: "\"round_robin\" or \"random\"",
        doc: "How a shard picks the member of a shared subscription group that gets a message: \
              round_robin takes the members in turn, random picks one at random. Which shard \
              handles a message is always weighted by the members each shard has.",
    },
    KeyDoc {
        path: "mqtt.max_client_id_bytes",
        kind: "integer, bytes",
        allowed: "23 to 65535",
        doc: "Longest client id accepted, in UTF-8 bytes; longer ones are refused with Client \
              Identifier not valid. The spec requires at least 23. The default, 256, fits \
              every common scheme (UUIDs, MAC addresses, cloud device names) while bounding \
              what the session registry, logs and events store per client.",
    },
    KeyDoc {
        path: "mqtt.allow_empty_client_id",
        kind: "boolean",
        allowed: "true or false",
        doc: "Whether a client may connect with an empty client id. 5.0 clients get an id \
              assigned by the broker; 3.1.1 clients are accepted only with clean session, as \
              the spec requires. 3.1 clients always need an id.",
    },
    KeyDoc {
        path: "mqtt.allow_anonymous",
        kind: "boolean",
        allowed: "true or false",
        doc: "Whether clients may connect without a user name. When false, such a CONNECT is \
              refused with Not authorized.",
    },
    KeyDoc {
        path: "mqtt.reserved_client_ids",
        kind: "array of strings",
        allowed: "client ids of 1 to 65535 bytes",
        doc: "Client ids no client may use: a CONNECT with one is refused with Client \
              Identifier not valid (3.1.1: identifier rejected). `broker` is reserved for the \
              broker's own messages on the system topics.",
    },
    KeyDoc {
        path: "mqtt.disconnect_on_denied_publish_v3",
        kind: "boolean",
        allowed: "true or false",
        doc: "What happens to a 3.1 or 3.1.1 client whose PUBLISH a hook denies. 3.x has no \
              way to say no: by default the message is dropped and acknowledged as usual \
              ([MQTT-3.3.5-2]); true closes the connection instead. 5.0 clients always get \
              the denial's reason code in PUBACK or PUBREC.",
    },
    KeyDoc {
        path: "mqtt.max_topic_levels",
        kind: "integer, levels",
        allowed: "1 to 32768",
        doc: "Most levels (parts between /) in a topic name or filter. A deeper filter gets \
              SUBACK Topic Filter invalid (0x8F; 0x80 in 3.x); a PUBLISH to a deeper topic \
              closes the connection with Topic Name invalid (0x90). It bounds the depth of \
              every trie walk. Real hierarchies rarely pass 10 levels.",
    },
    // [tuning]
    KeyDoc {
        path: "tuning.shards",
        kind: "integer, shards",
        allowed: "0 to 256; at most the CPUs in cpus, or in the affinity mask",
        doc: "Number of shards: threads pinned to a CPU of their own, each running one glommio \
              executor with its own connections, sessions and topic trie. 0 starts one per CPU \
              in cpus or, when that is empty, in the process's CPU affinity mask (what \
              taskset, cgroup cpusets or systemd's CPUAffinity= allow). --shards N replaces it.",
    },
    KeyDoc {
        path: "tuning.cpus",
        kind: "array of integers, CPU ids",
        allowed: "ids 0 to 1023, no duplicates, each in the process's CPU affinity mask",
        doc: "CPUs to pin the shards to, shard 0 first. Empty takes the affinity mask in \
              increasing order. With shards set, the first shards CPUs of the list are used. \
              Leave CPUs out to keep them for network interrupts or other processes.",
    },
    KeyDoc {
        path: "tuning.max_connections_per_shard",
        kind: "integer, connections",
        allowed: "0 to 4294967295",
        doc: "Connections one shard holds at once; a shard at its limit closes new ones as it \
              accepts them. 0 is no limit but the open-file limit (RLIMIT_NOFILE). The kernel \
              spreads connections evenly, so the broker holds about shards times this.",
    },
    KeyDoc {
        path: "tuning.read_buffer_bytes",
        kind: "integer, bytes",
        allowed: "512 to 16777216",
        doc: "Size of the read memory chunks a shard shares between its connections. A \
              connection with nothing half read reads into the shard's current chunk and \
              decodes its packets in place there, so an idle connection holds no read buffer; \
              only a connection in the middle of a packet keeps a buffer of its own. A chunk \
              is freed when the last packet read into it is; larger chunks mean bigger reads \
              from fast publishers, smaller ones less memory pinned by long-queued messages.",
    },
    KeyDoc {
        path: "tuning.outbound_budget_bytes",
        kind: "integer, bytes",
        allowed: "4096 to 1073741824",
        doc: "Bytes that may wait for one connection's socket. Beyond it QoS 0 messages to the \
              connection are dropped (counted, with a message_dropped event) and QoS 1 and 2 \
              messages wait in the session's queue. It bounds what a slow subscriber costs: \
              smaller drops sooner, larger absorbs longer bursts.",
    },
    KeyDoc {
        path: "tuning.cross_shard_queue_capacity",
        kind: "integer, messages",
        allowed: "16 to 1048576",
        doc: "Bound on the traffic from one shard to another (there are shards × (shards − 1) \
              such ways): the channel holds this many batches (one per executor tick), and the \
              sending shard's outbox holds this many messages before that shard's connections \
              stop reading until it drains, so a slow shard slows publishers instead of growing \
              memory. A shard's inbox never waits on a full channel, so shards cannot deadlock. \
              Payloads are shared, not copied.",
    },
    KeyDoc {
        path: "tuning.ring_depth",
        kind: "integer, entries",
        allowed: "a power of two from 8 to 32768",
        doc: "Entries in each of a shard's three io_uring rings: how many operations a shard \
              hands the kernel in one system call. Socket reads and writes are plain system \
              calls; the rings carry readiness polls, accepts and timers, so 256 is plenty \
              unless thousands of connections become ready in one tick. Each entry locks about \
              100 bytes per ring.",
    },
    KeyDoc {
        path: "tuning.io_memory_bytes",
        kind: "integer, bytes",
        allowed: "a multiple of 4096 from 65536 to 1073741824",
        doc: "Memory each shard registers with io_uring for DMA file I/O. Sockets never use it, \
              so the smallest value is right for a broker; it is locked memory, counted once \
              per ring (three times per shard). glommio's own default is 10 MiB.",
    },
    KeyDoc {
        path: "tuning.spin_before_park_us",
        kind: "integer, microseconds",
        allowed: "0 to 1000000",
        doc: "How long an idle shard keeps polling for work before it parks its thread in the \
              kernel. Waking a parked shard costs about 45 µs, which spinning saves at the \
              price of a CPU kept busy. 0 parks at once, right when CPUs are shared; 50 to 200 \
              on dedicated CPUs lowers latency at low load.",
    },
    KeyDoc {
        path: "tuning.preempt_timer_us",
        kind: "integer, microseconds",
        allowed: "100 to 1000000",
        doc: "How long a busy shard runs tasks before it stops to collect I/O completions and \
              timers (glommio's preempt timer): the longest a saturated shard takes to notice \
              new readiness. glommio's default, 100 ms, is far too coarse for a broker; 2 ms \
              costs one extra system call per 2 ms of continuous work. Lower it for latency \
              under saturation, raise it for a little throughput.",
    },
    KeyDoc {
        path: "tuning.raise_memlock",
        kind: "boolean",
        allowed: "true or false",
        doc: "Raise the RLIMIT_MEMLOCK soft limit to the hard limit at start-up, and refuse to \
              start when the hard limit is below what the shards' rings need (check-config \
              prints the estimate). Without CAP_IPC_LOCK the rings and their registered memory \
              count against a per-user limit. false leaves the limit alone.",
    },
    // [log]
    KeyDoc {
        path: "log.format",
        kind: "string",
        allowed: "\"human\" or \"json\"",
        doc: "human writes one readable line per event; json one JSON object per line, for log \
              shippers.",
    },
    KeyDoc {
        path: "log.level",
        kind: "string, tracing filter",
        allowed: "a level (error, warn, info, debug, trace) or a filter such as \
                  \"starling=debug,info\"",
        doc: "Which events are logged. The RUST_LOG environment variable, when set, replaces \
              it.",
    },
    KeyDoc {
        path: "hooks.password_file",
        kind: "string, file path",
        allowed: "a file of `username:hash` lines (argon2 or bcrypt hashes; `starling passwd` \
                  makes them), relative to this file's directory; \"\" for none",
        doc: "Clients must give a user name and password from this file, or are refused with \
              Bad user name or password. A client without a user name is left to the other \
              rules (mqtt.allow_anonymous).",
    },
    KeyDoc {
        path: "hooks.token_file",
        kind: "string, file path",
        allowed: "a file of `<hash> <identity>` lines (argon2, bcrypt or sha256:<hex> of the \
                  token), relative to this file's directory; \"\" for none",
        doc: "Token login: a client connecting with user name hooks.token_username and a token \
              as its password is accepted as the token's identity.",
    },
    KeyDoc {
        path: "hooks.token_username",
        kind: "string",
        allowed: "a non-empty user name",
        doc: "The user name that marks a token login.",
    },
    KeyDoc {
        path: "hooks.unknown_topic",
        kind: "string",
        allowed: "\"close\" or \"deny\"",
        doc: "With a topic table, what a publish or subscribe to a topic outside it gets: close \
              drops the connection (as the table's document says), deny refuses only that \
              publish or filter (Not authorized).",
    },
    KeyDoc {
        path: "hooks.topics",
        kind: "array of tables",
        allowed: "[[hooks.topics]] tables with pattern (\"devices/(:id)/meta\": (:name) \
                  matches one level), publish and subscribe (booleans, default false) and \
                  schema_file (a JSON Schema for payloads, optional)",
        doc: "The topic table. The first row whose pattern matches decides; a publish failing \
              its row's schema is not delivered and a message saying why goes to \
              <topic>/rejected. Empty: no table.",
    },
    KeyDoc {
        path: "events.node",
        kind: "integer",
        allowed: "0 to 4294967295",
        doc: "This broker's node id, in every event (node, from_node).",
    },
    KeyDoc {
        path: "events.instance",
        kind: "string",
        allowed: "any string",
        doc: "This broker's instance name, in the stream exporters' events (instance).",
    },
    KeyDoc {
        path: "events.ring_batches",
        kind: "integer, batches",
        allowed: "1 to 1048576",
        doc: "Batches each shard's event ring holds for the exporter runtime. When it is full \
              the shard drops the batch and counts the drop per event kind; it never waits.",
    },
    KeyDoc {
        path: "events.batch_events",
        kind: "integer, events",
        allowed: "1 to 65536",
        doc: "Events a shard gathers before handing a batch to its ring.",
    },
    KeyDoc {
        path: "events.flush_interval_ms",
        kind: "integer, milliseconds",
        allowed: "1 to 60000",
        doc: "Longest a shard keeps a partial batch: the delay of events on a quiet broker.",
    },
    KeyDoc {
        path: "events.worker_threads",
        kind: "integer, threads",
        allowed: "1 to 64",
        doc: "Threads of the exporter runtime (the web-hook document's worker_threads). They \
              are not pinned: leave a CPU outside tuning.cpus for them on a busy broker.",
    },
    KeyDoc {
        path: "events.exporter_nice",
        kind: "integer, nice value",
        allowed: "-20 to 19",
        doc: "Scheduling priority of the exporter threads (setpriority; higher is lower \
              priority). At 10 they take about a tenth of a CPU a shard wants, and all of an \
              idle one: exporters never slow the shards, their queues overflow instead.",
    },
    KeyDoc {
        path: "events.exporter_cpus",
        kind: "array of integers, CPU ids",
        allowed: "ids 0 to 1023, no duplicates, each in the process's CPU affinity mask",
        doc: "CPUs the exporter threads run on. Empty: the CPUs of the affinity mask that no \
              shard is pinned to, or any CPU when the shards have them all. List shard CPUs \
              with a high exporter_nice to let exporters use only what the shards leave idle.",
    },
    KeyDoc {
        path: "events.stats_interval_ms",
        kind: "integer, milliseconds",
        allowed: "0 (off) to 3600000",
        doc: "How often the shards publish the event and exporter counters as retained \
              messages on $SYS/brokers/NODE/exporters/NAME and \
              $SYS/brokers/NODE/shards/SHARD/events (NODE is events.node; a topic only when \
              its numbers changed, see docs/exporters.md), and the broker logs exporters that \
              dropped or failed events. 0: off.",
    },
    KeyDoc {
        path: "system_topics.enabled",
        kind: "boolean",
        allowed: "true or false",
        doc: "Whether the broker publishes the system topics.",
    },
    KeyDoc {
        path: "system_topics.prefix",
        kind: "string",
        allowed: "a prefix that makes valid topic names (no + # or NUL); may be empty",
        doc: "Put before every system topic: SYSTEM/presence/connected by default.",
    },
    KeyDoc {
        path: "system_topics.qos",
        kind: "integer",
        allowed: "0, 1 or 2",
        doc: "QoS the system messages are published with.",
    },
];
