//! mosquitto_sub and mosquitto_pub (MQTT 3.1, 3.1.1 and 5.0) against a 2-shard broker, with
//! the clients of each test proven on different shards: QoS 0/1/2, retained messages, persistent
//! sessions resumed on the other shard, takeover, wills, shared subscriptions, and the 5.0
//! properties and subscription options.
//!
//! A client's shard is read from the broker's `client connected` log line; a client that must
//! be on a given shard is reconnected (with a fresh client id) until the kernel's SO_REUSEPORT
//! hash puts it there. A publisher that must be on a given shard is a `mosquitto_pub -l`, placed
//! the same way before it publishes anything. Where the session's client id is fixed (resume,
//! takeover), the whole scenario is repeated with a fresh id until the two connections were on
//! different shards. mosquitto_sub 2.0.11 has no option for no-local or retain handling: those
//! are checked with a hand-written MQTT client on a `TcpStream`, which also plays the 3.x
//! client that is taken over (mosquitto_sub 3.x would reconnect and take the session back) and
//! the 5.0 client that ends with DISCONNECT 0x04 (mosquitto_sub sends it on SIGTERM, but can
//! hang in its signal handler).
//!
//! Two habits of libmosquitto shape the assertions: it hands a QoS 2 message to the program
//! at PUBREL, so it prints it after QoS 1 messages that arrived later; and a client killed
//! right after `-E`'s SUBACK may not have sent its DISCONNECT, so clients with a will are never
//! placed by reconnecting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::{Broker, WAIT};

/// How many times a client is reconnected, or a scenario repeated, to get the wanted shard.
const PLACEMENT_ATTEMPTS: usize = 50;

/// mosquitto_sub's output format for messages: retain flag, QoS, topic, payload.
const MESSAGE_FORMAT: &str = "MSG|%r|%q|%t|%p";

/// The three protocol versions as mosquitto's `-V` takes them.
const VERSIONS: [&str; 3] = ["31", "311", "5"];

/// A mosquitto_sub or mosquitto_pub process; its output is read line by line.
struct Mosquitto {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
    /// How many of `seen` were `MSG|` lines already returned by [`Mosquitto::messages`].
    taken: usize,
}

impl Mosquitto {
    /// Runs `program` against the broker with debug output (`-d`: CONNACK, SUBACK, PUBACK and
    /// DISCONNECT lines) and `args`, a command line split at whitespace.
    fn spawn(program: &str, port: u16, args: &str) -> Self {
        let port = port.to_string();
        // Piped, mosquitto's stdio would hold its lines until exit: `stdbuf -oL` makes them
        // line-buffered.
        let mut child = Command::new("stdbuf")
            .args(["-oL", "-eL", program, "-h", "127.0.0.1", "-p", &port, "-d"])
            .args(args.split_whitespace())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let (tx, lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            taken: 0,
        }
    }

    /// Reads one more line into `seen`, waiting until `deadline`; false when none came.
    fn read_line(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line);
                true
            }
            Err(_) => false,
        }
    }

    /// Waits for an output line containing `text`.
    fn wait_line(&mut self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.seen.iter().any(|line| line.contains(text)) {
            assert!(
                self.read_line(deadline),
                "no line with {text:?}; output:\n{}",
                self.seen.join("\n")
            );
        }
    }

    /// The next `count` messages (printed with [`MESSAGE_FORMAT`]), without the `MSG|`.
    fn messages(&mut self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let messages: Vec<String> = self
                .seen
                .iter()
                .filter_map(|line| line.strip_prefix("MSG|"))
                .skip(self.taken)
                .take(count)
                .map(str::to_owned)
                .collect();
            if messages.len() == count {
                self.taken += count;
                return messages;
            }
            assert!(
                self.read_line(deadline),
                "{} of {count} messages; output:\n{}",
                messages.len(),
                self.seen.join("\n")
            );
        }
    }

    /// The next message.
    fn message(&mut self) -> String {
        self.messages(1).remove(0)
    }

    /// Writes a line to a `mosquitto_pub -l`: one message.
    fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes standard input (a `mosquitto_pub -l` then disconnects once its messages are
    /// acknowledged) and waits for the exit.
    fn finish(&mut self) -> ExitStatus {
        self.stdin = None;
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the client did not exit; output:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client's own port, from its `client connected` line (`"peer":"127.0.0.1:PORT"`).
fn peer_port_of(broker: &Broker, client_id: &str) -> u16 {
    broker.shard_of(client_id);
    let needle = format!("\"client_id\":\"{client_id}\"");
    let line = broker
        .log()
        .into_iter()
        .rev()
        .find(|line| line.contains("client connected") && line.contains(&needle))
        .unwrap();
    let peer = line.split("\"peer\":\"").nth(1).unwrap();
    let peer = peer.split('"').next().unwrap();
    peer.rsplit(':').next().unwrap().parse().unwrap()
}

/// Waits until the broker has closed its side of the connection from `peer_port`: the
/// socket is gone or past ESTABLISHED and CLOSE_WAIT (the broker closes it only after its
/// engine has handled the end of the connection, will included).
fn wait_broker_closed(broker_port: u16, peer_port: u16) {
    let deadline = Instant::now() + WAIT;
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let open = table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port = |address: &str| {
                u16::from_str_radix(address.rsplit(':').next().unwrap(), 16).unwrap()
            };
            port(fields[1]) == broker_port
                && port(fields[2]) == peer_port
                && matches!(fields[3], "01" | "08")
        });
        if !open {
            return;
        }
        assert!(Instant::now() < deadline, "the broker kept the connection");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts a client with ids `{prefix}{n}` until one is on `shard` (any shard when `None`);
/// `ready` is the debug line that says it is connected (and subscribed). Returns the client,
/// its id and its shard.
fn place(
    broker: &Broker,
    program: &str,
    shard: Option<usize>,
    prefix: &str,
    args: &str,
    ready: &str,
) -> (Mosquitto, String, usize) {
    for attempt in 0..PLACEMENT_ATTEMPTS {
        let id = format!("{prefix}{attempt}");
        let mut client = Mosquitto::spawn(program, broker.port, &format!("-i {id} {args}"));
        client.wait_line(ready);
        let landed = broker.shard_of(&id);
        if shard.is_none_or(|wanted| wanted == landed) {
            return (client, id, landed);
        }
    }
    panic!("{prefix}: no connection landed on shard {shard:?}");
}

/// A subscriber (mosquitto_sub printing [`MESSAGE_FORMAT`]) on `shard`, subscribed.
fn sub_on(broker: &Broker, shard: Option<usize>, prefix: &str, args: &str) -> (Mosquitto, usize) {
    let args = format!("-F {MESSAGE_FORMAT} {args}");
    let (sub, _, shard) = place(
        broker,
        "mosquitto_sub",
        shard,
        prefix,
        &args,
        "received SUBACK",
    );
    (sub, shard)
}

/// A `mosquitto_pub -l` on `shard`, connected: each line written to it is a message.
fn pub_on(broker: &Broker, shard: Option<usize>, prefix: &str, args: &str) -> (Mosquitto, usize) {
    let args = format!("-l {args}");
    let (publisher, _, shard) = place(
        broker,
        "mosquitto_pub",
        shard,
        prefix,
        &args,
        "received CONNACK",
    );
    (publisher, shard)
}

/// Publishes one message with a one-shot mosquitto_pub and checks that it exits 0 (after the
/// PUBACK or PUBCOMP at QoS 1 or 2).
fn publish(broker: &Broker, args: &str) {
    let mut publisher = Mosquitto::spawn("mosquitto_pub", broker.port, args);
    let status = publisher.wait_exit();
    assert!(status.success(), "mosquitto_pub {args:?}: {status}");
}

/// The shard that is not `shard` (of two).
fn other(shard: usize) -> usize {
    1 - shard
}

#[test]
fn qos_0_1_and_2_cross_shards_between_every_protocol_version() {
    let broker = Broker::start(2, "");
    // Each subscriber version hears a publisher of another version.
    for (sub_version, pub_version) in [("31", "5"), ("311", "31"), ("5", "311")] {
        let topic = format!("qos/{sub_version}");
        let (mut sub2, shard) = sub_on(
            &broker,
            None,
            &format!("q2s{sub_version}-"),
            &format!("-V {sub_version} -q 2 -t {topic}"),
        );
        let (mut sub1, _) = sub_on(
            &broker,
            Some(shard),
            &format!("q1s{sub_version}-"),
            &format!("-V {sub_version} -q 1 -t {topic}"),
        );
        let mut expected2 = Vec::new();
        let mut expected1 = Vec::new();
        for qos in 0..=2 {
            let (mut publisher, _) = pub_on(
                &broker,
                Some(other(shard)),
                &format!("p{qos}v{pub_version}-"),
                &format!("-V {pub_version} -q {qos} -t {topic}"),
            );
            for n in 0..5 {
                let payload = format!("q{qos}-{n}");
                publisher.send_line(&payload);
                expected2.push(format!("0|{qos}|{topic}|{payload}"));
                expected1.push(format!("0|{}|{topic}|{payload}", qos.min(1)));
            }
            assert!(publisher.finish().success());
        }
        // Messages of one publisher keep their order; publishers are compared as sets.
        for (sub, mut expected) in [(&mut sub2, expected2), (&mut sub1, expected1)] {
            let mut got = sub.messages(expected.len());
            for received in [&got, &expected] {
                for qos in 0..=2 {
                    let mark = format!("|q{qos}-");
                    let order: Vec<&String> =
                        received.iter().filter(|m| m.contains(&mark)).collect();
                    assert!(order.windows(2).all(|w| w[0] < w[1]), "{received:?}");
                }
            }
            got.sort();
            expected.sort();
            assert_eq!(
                got, expected,
                "subscriber {sub_version}, publisher {pub_version}"
            );
        }
    }
}

#[test]
fn retained_messages_reach_new_subscribers_on_both_shards_until_cleared() {
    let broker = Broker::start(2, "");
    let topic = "ret/t";
    let (mut publisher, shard) = pub_on(&broker, None, "rp-", &format!("-q 1 -r -t {topic}"));
    publisher.send_line("kept");
    publisher.wait_line("received PUBACK");

    let mut subs = Vec::new();
    for version in VERSIONS {
        for on in [shard, other(shard)] {
            let (mut sub, _) = sub_on(
                &broker,
                Some(on),
                &format!("rs{version}s{on}-"),
                &format!("-V {version} -q 2 -t {topic}"),
            );
            // Retained, at the QoS it was published with.
            assert_eq!(
                sub.message(),
                format!("1|1|{topic}|kept"),
                "{version} on {on}"
            );
            subs.push(sub);
        }
    }
    // A message to subscribers that were there already is not flagged retained, and a
    // retained message with an empty payload (which clears) is delivered like any other.
    publish(&broker, &format!("-q 1 -t {topic} -m live"));
    publish(&broker, &format!("-q 1 -r -t {topic} -n"));
    for sub in &mut subs {
        assert_eq!(
            sub.messages(2),
            [format!("0|1|{topic}|live"), format!("0|1|{topic}|")]
        );
    }
    assert!(publisher.finish().success());

    // Cleared on both shards: new subscribers get the next live message first.
    let mut fresh = Vec::new();
    for on in [shard, other(shard)] {
        let (sub, _) = sub_on(
            &broker,
            Some(on),
            &format!("rn{on}-"),
            &format!("-V 5 -q 1 -t {topic}"),
        );
        fresh.push(sub);
    }
    publish(&broker, &format!("-q 1 -t {topic} -m after"));
    for sub in &mut fresh {
        assert_eq!(sub.message(), format!("0|1|{topic}|after"));
    }
}

#[test]
fn a_persistent_session_gets_its_offline_messages_after_resuming_on_the_other_shard() {
    let broker = Broker::start(2, "");
    for version in VERSIONS {
        let mut proven = false;
        for attempt in 0..PLACEMENT_ATTEMPTS {
            let id = format!("off{version}-{attempt}");
            let topic = format!("off/{id}");
            let session = format!("-V {version} -c -i {id} -q 2 -t {topic}");
            // Subscribe and go away cleanly (-E: exit once subscribed); the session stays.
            let mut first =
                Mosquitto::spawn("mosquitto_sub", broker.port, &format!("{session} -E"));
            assert!(first.wait_exit().success());
            let before = broker.shard_of_nth(&id, 1);
            // Two QoS 1 messages from one publisher (their order is kept) and a QoS 2 one.
            let mut publisher = Mosquitto::spawn(
                "mosquitto_pub",
                broker.port,
                &format!("-V {version} -q 1 -t {topic} -l"),
            );
            publisher.send_line("one");
            publisher.send_line("two");
            assert!(publisher.finish().success());
            publish(&broker, &format!("-q 2 -t {topic} -m three"));

            let mut resumed = Mosquitto::spawn(
                "mosquitto_sub",
                broker.port,
                &format!("{session} -F {MESSAGE_FORMAT}"),
            );
            let after = broker.shard_of_nth(&id, 2);
            // libmosquitto hands a QoS 2 message over at PUBREL, after later QoS 1 ones.
            let mut got = resumed.messages(3);
            let position = |payload: &str| got.iter().position(|m| m.ends_with(payload));
            assert!(position("|one") < position("|two"), "{got:?}");
            got.sort();
            assert_eq!(
                got,
                [
                    format!("0|1|{topic}|one"),
                    format!("0|1|{topic}|two"),
                    format!("0|2|{topic}|three"),
                ],
                "{version}: from shard {before} to shard {after}"
            );
            if before != after {
                proven = true;
                break;
            }
        }
        assert!(proven, "{version}: never resumed on the other shard");
    }
}

#[test]
fn an_mqtt5_takeover_on_the_other_shard_moves_the_session() {
    let broker = Broker::start(2, "");
    for attempt in 0..PLACEMENT_ATTEMPTS {
        let id = format!("tk5-{attempt}");
        let topic = format!("tk/{id}");
        let mut old = Mosquitto::spawn(
            "mosquitto_sub",
            broker.port,
            &format!("-V 5 -c -i {id} -q 1 -t {topic}"),
        );
        old.wait_line("received SUBACK");
        let before = broker.shard_of_nth(&id, 1);
        // The new connection subscribes to something else: what it gets on `topic` comes
        // from the session it took over.
        let mut new = Mosquitto::spawn(
            "mosquitto_sub",
            broker.port,
            &format!("-V 5 -c -i {id} -q 1 -t tk/none -F {MESSAGE_FORMAT}"),
        );
        new.wait_line("received SUBACK");
        let after = broker.shard_of_nth(&id, 2);
        // 0x8E: Session taken over.
        old.wait_line("Received DISCONNECT (142)");
        old.wait_exit();
        publish(&broker, &format!("-q 1 -t {topic} -m moved"));
        assert_eq!(
            new.message(),
            format!("0|1|{topic}|moved"),
            "{before} -> {after}"
        );
        if before != after {
            return;
        }
    }
    panic!("the takeover never happened across shards");
}

#[test]
fn a_3x_takeover_on_the_other_shard_closes_the_old_connection_and_moves_the_session() {
    let broker = Broker::start(2, "");
    for (version, level) in [("31", 3), ("311", 4)] {
        let mut proven = false;
        for attempt in 0..PLACEMENT_ATTEMPTS {
            let id = format!("tk{version}-{attempt}");
            let topic = format!("tk/{id}");
            let mut old = RawClient::connect(broker.port, level, &id, false, None);
            old.subscribe(&topic, 1);
            let before = broker.shard_of_nth(&id, 1);
            let mut new = Mosquitto::spawn(
                "mosquitto_sub",
                broker.port,
                &format!("-V {version} -c -i {id} -q 1 -t tk/none -F {MESSAGE_FORMAT}"),
            );
            new.wait_line("received SUBACK");
            let after = broker.shard_of_nth(&id, 2);
            assert!(old.next_packet().is_none(), "the old connection is closed");
            publish(&broker, &format!("-q 1 -t {topic} -m moved"));
            assert_eq!(new.message(), format!("0|1|{topic}|moved"), "{version}");
            if before != after {
                proven = true;
                break;
            }
        }
        assert!(
            proven,
            "{version}: the takeover never happened across shards"
        );
    }
}

#[test]
fn a_will_is_published_on_a_lost_connection_and_not_after_disconnect() {
    let broker = Broker::start(2, "");
    for version in VERSIONS {
        let base = format!("will/{version}");
        // The client with the will connects first, wherever it lands: a client with a will
        // cannot be dismissed from the wrong shard without ending in its will or a DISCONNECT.
        let abrupt_topic = format!("{base}/abrupt");
        let id = format!("wa{version}");
        let mut args = format!(
            "-V {version} -i {id} -t none --will-topic {abrupt_topic} --will-payload gone \
             --will-qos 1 --will-retain"
        );
        if version == "5" {
            // A delayed will (the session outlives the delay) is published by the shard's tick.
            args.push_str(" -x 60 -D will will-delay-interval 1");
        }
        let mut abrupt = Mosquitto::spawn("mosquitto_sub", broker.port, &args);
        abrupt.wait_line("received SUBACK");
        let shard = broker.shard_of(&id);
        let (mut watcher, _) = sub_on(
            &broker,
            Some(other(shard)),
            &format!("ww{version}-"),
            &format!("-V 5 -q 1 -t {base}/#"),
        );
        abrupt.child.kill().unwrap();
        assert_eq!(
            watcher.message(),
            format!("0|1|{abrupt_topic}|gone"),
            "{version}"
        );
        // --will-retain: new subscribers on either shard find it.
        for on in [shard, other(shard)] {
            let (mut late, _) = sub_on(
                &broker,
                Some(on),
                &format!("wl{version}s{on}-"),
                &format!("-V 5 -q 1 -t {abrupt_topic}"),
            );
            assert_eq!(
                late.message(),
                format!("1|1|{abrupt_topic}|gone"),
                "{version}"
            );
        }

        if version == "5" {
            // A 5.0 DISCONNECT with 0x04 (Disconnect with Will Message) publishes the will.
            // (mosquitto_sub sends it on SIGTERM, but may hang in its signal handler.)
            let asked_topic = format!("{base}/asked");
            let mut asked =
                RawClient::connect(broker.port, 5, "wd5", true, Some((&asked_topic, b"asked")));
            asked.send(0xe0, &[0x04, 0]);
            assert!(asked.next_packet().is_none(), "the broker closes");
            assert_eq!(watcher.message(), format!("0|1|{asked_topic}|asked"));
        }

        // A client that disconnects normally (-E: once subscribed) has no will published.
        // It is not placed: a client killed for landing on the wrong shard might not have
        // sent its DISCONNECT yet.
        let clean_topic = format!("{base}/clean");
        let clean_id = format!("wc{version}");
        let mut clean = Mosquitto::spawn(
            "mosquitto_sub",
            broker.port,
            &format!(
                "-V {version} -i {clean_id} -t none -E --will-topic {clean_topic} \
                 --will-payload wrong --will-qos 1"
            ),
        );
        assert!(clean.wait_exit().success());
        let clean_shard = broker.shard_of(&clean_id);
        wait_broker_closed(broker.port, peer_port_of(&broker, &clean_id));
        // Sent after the end of that connection from the same shard: a will would be first.
        let (mut sentinel, _) = pub_on(
            &broker,
            Some(clean_shard),
            &format!("wp{version}-"),
            &format!("-q 1 -t {clean_topic}"),
        );
        sentinel.send_line("sentinel");
        assert!(sentinel.finish().success());
        assert_eq!(
            watcher.message(),
            format!("0|1|{clean_topic}|sentinel"),
            "{version}"
        );
    }
}

#[test]
fn shared_subscription_members_on_both_shards_get_each_message_exactly_once() {
    const PER_PUBLISHER: usize = 20;
    let broker = Broker::start(2, "");
    let filter = "$share/g/sh/#";
    let (mut member5, shard) = sub_on(&broker, None, "m5-", &format!("-V 5 -q 1 -t {filter}"));
    let (mut member311, _) = sub_on(
        &broker,
        Some(other(shard)),
        "m311-",
        &format!("-V 311 -q 1 -t {filter}"),
    );
    let (mut everything, _) = sub_on(&broker, None, "all-", "-V 5 -q 1 -t sh/#");
    let mut expected = HashSet::new();
    for on in [shard, other(shard)] {
        let (mut publisher, _) =
            pub_on(&broker, Some(on), &format!("sp{on}-"), "-V 5 -q 1 -t sh/t");
        for n in 0..PER_PUBLISHER {
            let payload = format!("s{on}-{n}");
            publisher.send_line(&payload);
            expected.insert(format!("0|1|sh/t|{payload}"));
        }
        assert!(publisher.finish().success());
    }
    // A plain subscriber gets all of them; once it has, the group's share is in flight too.
    let all: HashSet<String> = everything.messages(expected.len()).into_iter().collect();
    assert_eq!(all, expected);

    let deadline = Instant::now() + WAIT;
    let received = |m: &Mosquitto| m.seen.iter().filter(|l| l.starts_with("MSG|")).count();
    while received(&member5) + received(&member311) < expected.len() {
        for member in [&mut member5, &mut member311] {
            member.read_line(Instant::now() + Duration::from_millis(50));
        }
        assert!(
            Instant::now() < deadline,
            "the group got fewer than {}",
            expected.len()
        );
    }
    let (n5, n311) = (received(&member5), received(&member311));
    let mut delivered: Vec<String> = member5.messages(n5);
    delivered.extend(member311.messages(n311));
    let unique: HashSet<String> = delivered.iter().cloned().collect();
    assert_eq!(unique.len(), delivered.len(), "duplicates: {delivered:?}");
    assert_eq!(unique, expected);
    assert!(
        n5 > 0 && n311 > 0,
        "one member got nothing: {n5} and {n311}"
    );
}

#[test]
fn mqtt5_properties_and_subscription_identifiers_cross_shards() {
    let broker = Broker::start(2, "");
    let (mut sub, shard) = sub_on(
        &broker,
        None,
        "ps-",
        "-V 5 -q 1 -t prop/t -D subscribe subscription-identifier 7 \
         -F MSG|%P|%E|%C|%R|%D|%F|%S|%p",
    );
    let (mut publisher, _) = pub_on(
        &broker,
        Some(other(shard)),
        "pp-",
        "-V 5 -q 1 -t prop/t -D publish user-property k v -D publish user-property k2 v2 \
         -D publish message-expiry-interval 3600 -D publish content-type text/plain \
         -D publish response-topic re/t -D publish correlation-data cd \
         -D publish payload-format-indicator 1",
    );
    publisher.send_line("x");
    assert!(publisher.finish().success());
    let message = sub.message();
    let fields: Vec<&str> = message.split('|').collect();
    assert!(
        matches!(
            fields[..],
            ["k:v k2:v2", _, "text/plain", "re/t", "cd", "1", "7", "x"]
        ),
        "{message}"
    );
    let expiry: u32 = fields[1].parse().unwrap();
    assert!((1..=3600).contains(&expiry), "{message}");
}

#[test]
fn mqtt5_retained_messages_expire_and_keep_their_flag_when_retain_as_published() {
    let broker = Broker::start(2, "");
    let (mut publisher, shard) = pub_on(
        &broker,
        None,
        "ep-",
        "-V 5 -q 1 -r -t exp/short -D publish message-expiry-interval 1",
    );
    publisher.send_line("short");
    assert!(publisher.finish().success());
    publish(
        &broker,
        "-V 5 -q 1 -r -t exp/long -m long -D publish message-expiry-interval 3600",
    );
    // Long enough for a 1 s expiry interval to pass whatever the rounding.
    std::thread::sleep(Duration::from_millis(2500));
    let (mut sub, _) = sub_on(
        &broker,
        Some(other(shard)),
        "es-",
        "-V 5 -q 1 -t exp/# -F MSG|%r|%t|%E|%p",
    );
    publish(&broker, "-V 5 -q 1 -t exp/live -m live");
    let got = sub.messages(2);
    assert!(
        got[0].starts_with("1|exp/long|"),
        "only the live one expired: {got:?}"
    );
    assert_eq!(got[1], "0|exp/live||live", "{got:?}");
    let expiry: u32 = got[0].split('|').nth(2).unwrap().parse().unwrap();
    assert!(expiry < 3600, "the time waiting is subtracted: {got:?}");

    // Retain as published: a live retained message keeps its flag for such subscriptions.
    let (mut rap, on) = sub_on(
        &broker,
        None,
        "ra-",
        "-V 5 -q 1 -t rap/t --retain-as-published",
    );
    let (mut plain, _) = sub_on(&broker, Some(on), "rb-", "-V 5 -q 1 -t rap/t");
    let (mut publisher, _) = pub_on(&broker, Some(other(on)), "rp-", "-V 5 -q 1 -r -t rap/t");
    publisher.send_line("flagged");
    assert!(publisher.finish().success());
    assert_eq!(rap.message(), "1|1|rap/t|flagged");
    assert_eq!(plain.message(), "0|1|rap/t|flagged");
}

#[test]
fn mqtt5_no_local_and_retain_handling() {
    let broker = Broker::start(2, "");
    let (mut watcher, shard) = sub_on(&broker, None, "nw-", "-V 5 -t nl/t");
    let mut raw = None;
    for attempt in 0..PLACEMENT_ATTEMPTS {
        let id = format!("raw-{attempt}");
        let client = RawClient::connect(broker.port, 5, &id, true, None);
        if broker.shard_of(&id) != shard {
            raw = Some(client);
            break;
        }
    }
    let mut raw = raw.expect("the raw client never landed on the other shard");

    // No local: its own message goes to the other shard's subscriber, not back to it.
    raw.subscribe("nl/t", 0x04);
    raw.subscribe("nl/o", 0);
    raw.publish("nl/t", b"own", false);
    raw.publish("nl/o", b"other", false);
    assert_eq!(
        raw.next_publish(),
        ("nl/o".to_owned(), b"other".to_vec(), false)
    );
    assert_eq!(watcher.message(), "0|0|nl/t|own");

    // Retain handling, with a marker published after each SUBACK: whatever retained message
    // the subscription brings comes before it.
    publish(&broker, "-q 1 -r -t rh/t -m kept");
    publish(&broker, "-q 1 -r -t rh/n -m new");
    raw.subscribe("rh/marker", 0);
    let mut marker = 0;
    let mut after_subscribe = |raw: &mut RawClient, filter: &str, options: u8| {
        raw.subscribe(filter, options);
        marker += 1;
        let payload = format!("m{marker}");
        raw.publish("rh/marker", payload.as_bytes(), false);
        let mut got = Vec::new();
        loop {
            let publish = raw.next_publish();
            if publish.0 == "rh/marker" {
                assert_eq!(publish.1, payload.as_bytes());
                return got;
            }
            got.push(publish);
        }
    };
    let retained = |topic: &str, payload: &[u8]| (topic.to_owned(), payload.to_vec(), true);
    // 2: never.
    assert_eq!(after_subscribe(&mut raw, "rh/t", 0x20), []);
    // 1: only for a new subscription; this one exists.
    assert_eq!(after_subscribe(&mut raw, "rh/t", 0x10), []);
    // 0: on every subscribe.
    assert_eq!(
        after_subscribe(&mut raw, "rh/t", 0),
        [retained("rh/t", b"kept")]
    );
    // 1 on a new subscription.
    assert_eq!(
        after_subscribe(&mut raw, "rh/n", 0x10),
        [retained("rh/n", b"new")]
    );
}

/// A hand-written MQTT client on a `TcpStream`, for what mosquitto's tools cannot send.
/// QoS 0 only, apart from SUBSCRIBE's requested QoS.
struct RawClient {
    stream: TcpStream,
    version: u8,
    next_id: u16,
}

impl RawClient {
    /// Connects with protocol level `version` (3, 4 or 5) and checks the CONNACK; `will` is
    /// a QoS 1 will's topic and payload.
    fn connect(
        port: u16,
        version: u8,
        client_id: &str,
        clean: bool,
        will: Option<(&str, &[u8])>,
    ) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut client = Self {
            stream,
            version,
            next_id: 1,
        };
        let mut body = Vec::new();
        put_str(&mut body, if version == 3 { "MQIsdp" } else { "MQTT" });
        body.push(version);
        let will_flags = if will.is_some() { 0x04 | 0x08 } else { 0 };
        body.push(if clean { 0x02 } else { 0 } | will_flags);
        body.extend_from_slice(&60_u16.to_be_bytes());
        if version == 5 {
            // No properties: a 3.x-like session (expiry 0 unless clean is false).
            if clean {
                body.push(0);
            } else {
                body.extend_from_slice(&[5, 0x11, 0, 0, 0x0e, 0x10]);
            }
        }
        put_str(&mut body, client_id);
        if let Some((topic, payload)) = will {
            if version == 5 {
                body.push(0);
            }
            put_str(&mut body, topic);
            body.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            body.extend_from_slice(payload);
        }
        client.send(0x10, &body);
        let (header, connack) = client.next_packet().expect("a CONNACK");
        assert_eq!(header, 0x20);
        assert_eq!(connack[1], 0, "CONNACK accepted: {connack:?}");
        client
    }

    fn send(&mut self, header: u8, body: &[u8]) {
        let mut packet = vec![header];
        let mut len = body.len();
        loop {
            let byte = (len % 128) as u8;
            len /= 128;
            packet.push(if len > 0 { byte | 0x80 } else { byte });
            if len == 0 {
                break;
            }
        }
        packet.extend_from_slice(body);
        self.stream.write_all(&packet).unwrap();
    }

    /// The next packet's first byte and body; `None` when the broker closed the connection.
    fn next_packet(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut header = [0_u8; 1];
        match self.stream.read(&mut header) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("reading from the broker: {e}"),
        }
        let (mut len, mut shift) = (0_usize, 0);
        loop {
            let mut byte = [0_u8; 1];
            self.stream.read_exact(&mut byte).unwrap();
            len |= usize::from(byte[0] & 0x7f) << shift;
            shift += 7;
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).unwrap();
        Some((header[0], body))
    }

    /// Subscribes to `filter` with the subscription options byte `options` and checks the
    /// SUBACK grants it.
    fn subscribe(&mut self, filter: &str, options: u8) {
        let id = self.next_id;
        self.next_id += 1;
        let mut body = id.to_be_bytes().to_vec();
        if self.version == 5 {
            body.push(0);
        }
        put_str(&mut body, filter);
        body.push(options);
        self.send(0x82, &body);
        let (header, suback) = self.next_packet().expect("a SUBACK");
        assert_eq!(header, 0x90, "{suback:?}");
        assert_eq!(suback[..2], id.to_be_bytes());
        let granted = *suback.last().unwrap();
        assert_eq!(granted, options & 0x03, "SUBACK for {filter}: {suback:?}");
    }

    fn publish(&mut self, topic: &str, payload: &[u8], retain: bool) {
        let mut body = Vec::new();
        put_str(&mut body, topic);
        if self.version == 5 {
            body.push(0);
        }
        body.extend_from_slice(payload);
        self.send(0x30 | u8::from(retain), &body);
    }

    /// The next PUBLISH (QoS 0): topic, payload and retain flag.
    fn next_publish(&mut self) -> (String, Vec<u8>, bool) {
        let (header, body) = self.next_packet().expect("a PUBLISH");
        assert_eq!(header & 0xf6, 0x30, "a QoS 0 PUBLISH: {header:#x} {body:?}");
        let topic_len = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let topic = String::from_utf8(body[2..2 + topic_len].to_vec()).unwrap();
        let mut at = 2 + topic_len;
        if self.version == 5 {
            let (mut properties, mut shift) = (0_usize, 0);
            loop {
                let byte = body[at];
                at += 1;
                properties |= usize::from(byte & 0x7f) << shift;
                shift += 7;
                if byte & 0x80 == 0 {
                    break;
                }
            }
            at += properties;
        }
        (topic, body[at..].to_vec(), header & 0x01 == 1)
    }
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}
