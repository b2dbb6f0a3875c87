//! Interop with paho-mqtt, the Eclipse Python client (2.1, installed by
//! scripts/install-test-deps.sh), in MQTT 3.1.1 and 5.0 against the real `starling` binary
//! with two shards.
//!
//! Each test starts a broker (tests/common) and `tests/paho/agent.py`, a paho agent that runs
//! one command per line and answers each with a line of JSON. The test decides where clients
//! are: the broker logs the shard of every connection with its peer address, and a client that
//! must be on another shard than some other client reconnects until the kernel puts it there.
//! `tests/paho/raw_mqtt.py` speaks raw MQTT for what paho will not send or does not report.
//!
//! Every wait is bounded (the agent's at 10 s, a reply at 30 s); absence is checked by a
//! short quiet period after what must come has come, never by asserting timings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::Broker;
use json::Json;

/// How long the test waits for one reply of the agent (whose own waits end after 10 s).
const REPLY_WAIT: Duration = Duration::from_secs(30);
/// Connections tried to put a client on the shard a test wants.
const PLACEMENT_ATTEMPTS: usize = 50;
/// How long a client listens to show that nothing more arrives.
const QUIET_SECS: f64 = 0.3;

/// The protocol version a client speaks.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mqtt {
    V311,
    V5,
}

impl Mqtt {
    fn arg(self) -> &'static str {
        match self {
            Mqtt::V311 => "311",
            Mqtt::V5 => "5",
        }
    }
}

/// A Python script of tests/paho, killed when dropped. Its stdout is read one line at a time,
/// each line a JSON object, with a deadline on each.
struct Script {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl Script {
    fn spawn(name: &str, args: &[&str]) -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/paho")
            .join(name);
        let mut child = Command::new("python3")
            .arg(path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 (with paho-mqtt: run scripts/install-test-deps.sh)");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        Self {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next line the script prints, as JSON; panics with its stderr when none comes.
    fn next_json(&mut self, waiting_for: &str) -> Json {
        match self.lines.recv_timeout(REPLY_WAIT) {
            Ok(line) => Json::parse(&line)
                .unwrap_or_else(|error| panic!("{} printed {line:?}: {error}", self.name)),
            Err(error) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = self
                    .stderr
                    .take()
                    .map(|t| t.join().unwrap())
                    .unwrap_or_default();
                panic!(
                    "{}: nothing while waiting for {waiting_for} ({error}); stderr:\n{stderr}",
                    self.name
                );
            }
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `agent.py`: paho clients driven one command at a time.
struct Paho(Script);

/// A client connected on a known shard.
#[derive(Debug)]
struct Connected {
    /// The client id the broker logged (the assigned one for an empty id).
    id: String,
    shard: usize,
    connack: Json,
}

impl Paho {
    fn start(broker: &Broker) -> Self {
        Self(Script::spawn(
            "agent.py",
            &["--port", &broker.port.to_string()],
        ))
    }

    /// Runs one command and returns the agent's reply, whatever it says.
    fn try_cmd(&mut self, command: &str) -> Json {
        let stdin = self.0.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").expect("write to the agent");
        stdin.flush().unwrap();
        self.0.next_json(&format!("the reply to `{command}`"))
    }

    /// Runs one command and asserts that it succeeded.
    fn cmd(&mut self, command: &str) -> Json {
        let reply = self.try_cmd(command);
        assert!(reply["ok"].bool(), "`{command}` failed: {reply:?}");
        reply
    }

    /// Connects client `name` as `id` and reads its shard from the broker's log.
    fn connect(
        &mut self,
        broker: &Broker,
        name: &str,
        id: &str,
        mqtt: Mqtt,
        extra: &str,
    ) -> Connected {
        let connack = self.cmd(&format!("connect {name} id={id} v={} {extra}", mqtt.arg()));
        assert_eq!(connack["reason"].int(), 0, "CONNACK of {id}: {connack:?}");
        let port = connack["local_port"].int();
        let (shard, id) = connection_in_log(broker, port);
        Connected { id, shard, connack }
    }

    /// Connects client `name` as `{base}-0`, `{base}-1`, ... until it is on a shard `wanted`
    /// accepts: the kernel picks the shard from the connection's addresses, so each new
    /// connection may land elsewhere. The misplaced ones end with DISCONNECT (no will).
    fn connect_where(
        &mut self,
        broker: &Broker,
        name: &str,
        base: &str,
        mqtt: Mqtt,
        extra: &str,
        wanted: impl Fn(usize) -> bool,
    ) -> Connected {
        for attempt in 0..PLACEMENT_ATTEMPTS {
            let connected = self.connect(broker, name, &format!("{base}-{attempt}"), mqtt, extra);
            if wanted(connected.shard) {
                return connected;
            }
            self.cmd(&format!("disconnect {name}"));
        }
        panic!("{name} never landed on the wanted shard in {PLACEMENT_ATTEMPTS} connections");
    }

    fn connect_anywhere(
        &mut self,
        broker: &Broker,
        name: &str,
        mqtt: Mqtt,
        extra: &str,
    ) -> Connected {
        self.connect_where(broker, name, name, mqtt, extra, |_| true)
    }

    fn connect_on(
        &mut self,
        broker: &Broker,
        name: &str,
        mqtt: Mqtt,
        extra: &str,
        shard: usize,
    ) -> Connected {
        self.connect_where(broker, name, name, mqtt, extra, |s| s == shard)
    }

    fn connect_off(
        &mut self,
        broker: &Broker,
        name: &str,
        mqtt: Mqtt,
        extra: &str,
        shard: usize,
    ) -> Connected {
        let connected = self.connect_where(broker, name, name, mqtt, extra, |s| s != shard);
        assert_ne!(connected.shard, shard);
        connected
    }

    /// Subscribes and returns the SUBACK's reason codes.
    fn subscribe(&mut self, name: &str, args: &str) -> Vec<i64> {
        let reply = self.cmd(&format!("subscribe {name} {args}"));
        reply["reasons"].arr().iter().map(Json::int).collect()
    }

    /// Publishes and asserts the broker acknowledged it with Success.
    fn publish(&mut self, name: &str, args: &str) {
        let reply = self.cmd(&format!("publish {name} {args}"));
        assert_eq!(reply["reason"].int(), 0, "publish {args}: {reply:?}");
    }

    /// Waits for `count` messages to `name`.
    fn expect(&mut self, name: &str, count: usize) -> Vec<Json> {
        self.cmd(&format!("expect {name} count={count}"))["messages"]
            .arr()
            .to_vec()
    }

    /// What reaches `name` in a short quiet period.
    fn quiet(&mut self, name: &str) -> Vec<Json> {
        self.cmd(&format!("collect {name} wait={QUIET_SECS}"))["messages"]
            .arr()
            .to_vec()
    }
}

/// The shard and client id of the connection from loopback port `port`, from the broker's
/// `client connected` log line (which names the peer, so a reconnection is never mistaken for
/// an earlier connection of the same client).
fn connection_in_log(broker: &Broker, port: i64) -> (usize, String) {
    let peer = format!("\"peer\":\"127.0.0.1:{port}\"");
    let line =
        broker.wait_for_log(|line| line.contains("client connected") && line.contains(&peer));
    let fields = &Json::parse(&line).unwrap()["fields"];
    (
        usize::try_from(fields["shard"].int()).unwrap(),
        fields["client_id"].str().to_owned(),
    )
}

/// A received message's (topic, payload).
fn topic_payload(message: &Json) -> (String, String) {
    (
        message["topic"].str().to_owned(),
        message["payload"].str().to_owned(),
    )
}

fn stop(broker: Broker) {
    let status = broker.stop();
    assert!(status.success(), "the broker exited with {status}");
}

// ---------------------------------------------------------------------------------------------
// 1. QoS 0, 1 and 2 across shards.

fn qos_across_shards(mqtt: Mqtt) {
    let broker = Broker::start(2, "");
    let mut paho = Paho::start(&broker);
    let sub = paho.connect_anywhere(&broker, "sub", mqtt, "");
    assert_eq!(paho.subscribe("sub", "filter=q/# qos=2"), [2]);
    paho.connect_on(&broker, "low", mqtt, "", sub.shard);
    assert_eq!(paho.subscribe("low", "filter=q/# qos=1"), [1]);
    paho.connect_off(&broker, "pub", mqtt, "", sub.shard);

    for qos in 0..=2 {
        for n in 0..5 {
            paho.publish(
                "pub",
                &format!("topic=q/{qos} payload=m{qos}-{n} qos={qos}"),
            );
        }
    }

    for (name, max_qos) in [("sub", 2), ("low", 1)] {
        let got = paho.expect(name, 15);
        for qos in 0..=2 {
            let topic = format!("q/{qos}");
            let on_topic: Vec<&Json> = got.iter().filter(|m| m["topic"].str() == topic).collect();
            let payloads: Vec<&str> = on_topic.iter().map(|m| m["payload"].str()).collect();
            let sent: Vec<String> = (0..5).map(|n| format!("m{qos}-{n}")).collect();
            assert_eq!(
                payloads, sent,
                "{name}: {topic} in order, once each: {got:?}"
            );
            for message in on_topic {
                assert_eq!(
                    message["qos"].int(),
                    qos.min(max_qos),
                    "{name}: {message:?}"
                );
                assert!(!message["retain"].bool(), "{name}: {message:?}");
            }
        }
        assert_eq!(paho.quiet(name), [], "{name}: nothing more");
    }
    stop(broker);
}

#[test]
fn qos_0_1_2_cross_shards_mqtt311() {
    qos_across_shards(Mqtt::V311);
}

#[test]
fn qos_0_1_2_cross_shards_mqtt5() {
    qos_across_shards(Mqtt::V5);
}

// ---------------------------------------------------------------------------------------------
// 2. Retained messages across shards.

fn retained_across_shards(mqtt: Mqtt) {
    let broker = Broker::start(2, "");
    let mut paho = Paho::start(&broker);
    let publisher = paho.connect_anywhere(&broker, "pub", mqtt, "");
    paho.connect_off(&broker, "live", mqtt, "", publisher.shard);
    assert_eq!(paho.subscribe("live", "filter=r/# qos=1"), [1]);
    if mqtt == Mqtt::V5 {
        paho.connect_off(&broker, "asis", mqtt, "", publisher.shard);
        assert_eq!(paho.subscribe("asis", "filter=r/# qos=1 rap=1"), [1]);
    }
    // Connected before the publish, subscribed right after its PUBACK.
    paho.connect_off(&broker, "late", mqtt, "", publisher.shard);

    paho.publish("pub", "topic=r/x payload=keep qos=1 retain=1");
    assert_eq!(paho.subscribe("late", "filter=r/# qos=1"), [1]);
    let mut got = paho.expect("late", 1);
    got.extend(paho.quiet("late"));
    assert_eq!(got.len(), 1, "once, as the retained message: {got:?}");
    assert_eq!(topic_payload(&got[0]), ("r/x".into(), "keep".into()));
    assert!(
        got[0]["retain"].bool(),
        "sent because of the subscribe, so retain=1 [MQTT-3.3.1-9]; retain=0 means it came \
         as a live forward from the publisher's shard, which the new subscription caught: {got:?}"
    );
    assert_eq!(got[0]["qos"].int(), 1);

    let got = paho.expect("live", 1);
    assert_eq!(topic_payload(&got[0]), ("r/x".into(), "keep".into()));
    assert!(
        !got[0]["retain"].bool(),
        "live delivery clears retain: {got:?}"
    );
    if mqtt == Mqtt::V5 {
        let got = paho.expect("asis", 1);
        assert!(
            got[0]["retain"].bool(),
            "Retain As Published keeps it: {got:?}"
        );
    }

    // An empty retained payload deletes r/x (and still reaches live subscribers).
    paho.publish("pub", "topic=r/x payload= qos=1 retain=1");
    paho.publish("pub", "topic=r/y payload=marker qos=1 retain=1");
    let got: Vec<_> = paho.expect("live", 2).iter().map(topic_payload).collect();
    assert_eq!(
        got,
        [
            ("r/x".into(), String::new()),
            ("r/y".into(), "marker".into())
        ]
    );

    paho.connect_off(&broker, "fresh", mqtt, "", publisher.shard);
    assert_eq!(paho.subscribe("fresh", "filter=r/# qos=1"), [1]);
    let mut got = paho.expect("fresh", 1);
    got.extend(paho.quiet("fresh"));
    let got: Vec<_> = got.iter().map(topic_payload).collect();
    assert_eq!(got, [("r/y".into(), "marker".into())], "r/x was deleted");
    stop(broker);
}

#[test]
fn retained_message_reaches_another_shard_and_empty_payload_deletes_it_mqtt311() {
    retained_across_shards(Mqtt::V311);
}

#[test]
fn retained_message_reaches_another_shard_and_empty_payload_deletes_it_mqtt5() {
    retained_across_shards(Mqtt::V5);
}

// ---------------------------------------------------------------------------------------------
// 3. Persistent sessions, resumed on the same shard or another.

fn persistent_session(mqtt: Mqtt) {
    let keep = match mqtt {
        Mqtt::V311 => "clean=0",
        Mqtt::V5 => "clean=0 expiry=300",
    };
    let broker = Broker::start(2, "");
    let mut paho = Paho::start(&broker);
    let first = paho.connect_anywhere(&broker, "sub", mqtt, keep);
    assert!(
        !first.connack["session_present"].bool(),
        "{:?}",
        first.connack
    );
    assert_eq!(paho.subscribe("sub", "filter=p/# qos=2"), [2]);
    paho.cmd("disconnect sub");
    paho.connect_anywhere(&broker, "pub", mqtt, "");

    // Round after round, messages published while the client is away come when it resumes,
    // until one resume lands on another shard than the one holding the session.
    let mut home = first.shard;
    let mut moved = false;
    for round in 0..PLACEMENT_ATTEMPTS {
        paho.publish("pub", &format!("topic=p/{round} payload=r{round}-1 qos=1"));
        paho.publish("pub", &format!("topic=p/{round} payload=r{round}-2 qos=2"));
        let again = paho.connect(&broker, "sub", &first.id, mqtt, keep);
        assert!(
            again.connack["session_present"].bool(),
            "round {round}: {:?}",
            again.connack
        );
        let got = paho.expect("sub", 2);
        let payloads: Vec<(&str, i64)> = got
            .iter()
            .map(|m| (m["payload"].str(), m["qos"].int()))
            .collect();
        assert_eq!(
            payloads,
            [
                (format!("r{round}-1").as_str(), 1),
                (format!("r{round}-2").as_str(), 2)
            ],
            "round {round} (session on shard {home}, resumed on {})",
            again.shard
        );
        assert_eq!(paho.quiet("sub"), [], "round {round}: nothing more");
        paho.cmd("disconnect sub");
        if again.shard != home {
            moved = true;
            break;
        }
        home = again.shard;
    }
    assert!(
        moved,
        "no resume landed on another shard in {PLACEMENT_ATTEMPTS} rounds"
    );

    // A clean session/start discards it.
    let clean = paho.connect(&broker, "sub", &first.id, mqtt, "clean=1");
    assert!(
        !clean.connack["session_present"].bool(),
        "{:?}",
        clean.connack
    );
    paho.cmd("disconnect sub");
    let after = paho.connect(&broker, "sub", &first.id, mqtt, keep);
    assert!(
        !after.connack["session_present"].bool(),
        "{:?}",
        after.connack
    );
    paho.publish("pub", "topic=p/gone payload=x qos=1");
    assert_eq!(
        paho.quiet("sub"),
        [],
        "the discarded session's subscription is gone"
    );
    stop(broker);
}

#[test]
fn persistent_session_gets_offline_messages_across_shards_mqtt311() {
    persistent_session(Mqtt::V311);
}

#[test]
fn persistent_session_gets_offline_messages_across_shards_mqtt5() {
    persistent_session(Mqtt::V5);
}

// ---------------------------------------------------------------------------------------------
// 4. Wills.

fn will_args(topic: &str) -> String {
    format!("will_topic=will/{topic} will_payload={topic}-gone will_qos=1")
}

fn wills(mqtt: Mqtt) {
    let broker = Broker::start(2, "");
    let mut paho = Paho::start(&broker);
    let watch = paho.connect_anywhere(&broker, "watch", mqtt, "");
    assert_eq!(paho.subscribe("watch", "filter=will/# qos=1"), [1]);

    paho.connect_off(&broker, "polite", mqtt, &will_args("polite"), watch.shard);
    paho.cmd("disconnect polite");
    paho.connect_off(&broker, "rude", mqtt, &will_args("rude"), watch.shard);
    paho.cmd("drop rude");
    let mut got = paho.expect("watch", 1);
    assert_eq!(
        topic_payload(&got[0]),
        ("will/rude".into(), "rude-gone".into())
    );
    assert_eq!(got[0]["qos"].int(), 1);

    if mqtt == Mqtt::V5 {
        paho.connect_off(&broker, "asked", mqtt, &will_args("asked"), watch.shard);
        paho.cmd("disconnect asked reason=4");
        let asked = paho.expect("watch", 1);
        assert_eq!(
            topic_payload(&asked[0]),
            ("will/asked".into(), "asked-gone".into())
        );
        got.extend(asked);
    }
    got.extend(paho.quiet("watch"));
    assert!(
        got.iter().all(|m| m["topic"].str() != "will/polite"),
        "a normal DISCONNECT must not publish the will: {got:?}"
    );
    stop(broker);
}

#[test]
fn will_on_abrupt_close_not_on_disconnect_mqtt311() {
    wills(Mqtt::V311);
}

#[test]
fn will_on_abrupt_close_or_reason_4_not_on_normal_disconnect_mqtt5() {
    wills(Mqtt::V5);
}

// ---------------------------------------------------------------------------------------------
// 5. Keep-alive.

fn keep_alive(mqtt: Mqtt) {
    let broker = Broker::start(2, "");
    let mut paho = Paho::start(&broker);
    let watch = paho.connect_anywhere(&broker, "watch", mqtt, "");
    assert_eq!(paho.subscribe("watch", "filter=will/# qos=1"), [1]);
    let extra = format!("keepalive=1 {}", will_args("sleepy"));
    paho.connect_off(&broker, "sleepy", mqtt, &extra, watch.shard);
    paho.cmd("stall sleepy");

    let got = paho.expect("watch", 1);
    assert_eq!(
        topic_payload(&got[0]),
        ("will/sleepy".into(), "sleepy-gone".into())
    );
    let closed = paho.cmd("wait_closed sleepy");
    let bytes = closed["bytes"].str();
    match mqtt {
        Mqtt::V311 => assert_eq!(bytes, "", "3.1.1 has no server DISCONNECT"),
        // A 5.0 server may say why before closing: DISCONNECT, Keep Alive timeout.
        Mqtt::V5 => assert!(
            bytes.is_empty() || (bytes.starts_with("e0") && bytes[4..].starts_with("8d")),
            "expected nothing or DISCONNECT 0x8D, got {bytes}"
        ),
    }
    stop(broker);
}

#[test]
fn keep_alive_timeout_closes_and_publishes_the_will_mqtt311() {
    keep_alive(Mqtt::V311);
}

#[test]
fn keep_alive_timeout_closes_and_publishes_the_will_mqtt5() {
    keep_alive(Mqtt::V5);
}

// ---------------------------------------------------------------------------------------------
// 6. Shared subscriptions across shards.

fn shared_subscription(mqtt: Mqtt) {
    const COUNT: usize = 20;
    let broker = Broker::start(2, "");
    let mut paho = Paho::start(&broker);
    paho.connect_anywhere(&broker, "pub", mqtt, "");
    paho.publish("pub", "topic=sh/old payload=old qos=1 retain=1");
    let one = paho.connect_anywhere(&broker, "one", mqtt, "");
    paho.connect_off(&broker, "two", mqtt, "", one.shard);
    for member in ["one", "two"] {
        assert_eq!(paho.subscribe(member, "filter=$share/g/sh/# qos=1"), [1]);
    }
    paho.connect_anywhere(&broker, "plain", mqtt, "");
    assert_eq!(paho.subscribe("plain", "filter=sh/# qos=1"), [1]);
    let old = paho.expect("plain", 1);
    assert!(old[0]["retain"].bool(), "{old:?}");

    for n in 0..COUNT {
        paho.publish("pub", &format!("topic=sh/{n} payload=s{n} qos=1"));
    }
    let sent: BTreeSet<String> = (0..COUNT).map(|n| format!("s{n}")).collect();
    let plain: BTreeSet<String> = paho
        .expect("plain", COUNT)
        .iter()
        .map(|m| m["payload"].str().to_owned())
        .collect();
    assert_eq!(plain, sent);

    // The group's messages come to one member or the other: gather until all have come.
    let mut per_member = [Vec::new(), Vec::new()];
    let deadline = Instant::now() + REPLY_WAIT;
    while per_member.iter().map(Vec::len).sum::<usize>() < COUNT && Instant::now() < deadline {
        for (slot, member) in per_member.iter_mut().zip(["one", "two"]) {
            slot.extend(
                paho.quiet(member)
                    .iter()
                    .map(|m| m["payload"].str().to_owned()),
            );
        }
    }
    for (slot, member) in per_member.iter_mut().zip(["one", "two"]) {
        slot.extend(
            paho.quiet(member)
                .iter()
                .map(|m| m["payload"].str().to_owned()),
        );
    }
    let mut all: Vec<&String> = per_member.iter().flatten().collect();
    all.sort();
    let expected: Vec<&String> = sent.iter().collect();
    assert_eq!(
        all, expected,
        "each message exactly once to the group (no retained one): {per_member:?}"
    );
    assert!(
        per_member.iter().all(|slot| !slot.is_empty()),
        "round robin serves both shards' members: {per_member:?}"
    );
    stop(broker);
}

#[test]
fn shared_subscription_spreads_over_members_on_both_shards_mqtt311() {
    shared_subscription(Mqtt::V311);
}

#[test]
fn shared_subscription_spreads_over_members_on_both_shards_mqtt5() {
    shared_subscription(Mqtt::V5);
}

// ---------------------------------------------------------------------------------------------
// 7. MQTT 5.0 features.

#[test]
fn mqtt5_request_response_passes_response_topic_correlation_and_user_properties() {
    let broker = Broker::start(2, "");
    let mut paho = Paho::start(&broker);
    let requester = paho.connect_anywhere(&broker, "req", Mqtt::V5, "");
    assert_eq!(paho.subscribe("req", "filter=resp/req qos=1"), [1]);
    paho.connect_off(&broker, "svc", Mqtt::V5, "", requester.shard);
    assert_eq!(paho.subscribe("svc", "filter=svc/# qos=2"), [2]);

    paho.publish(
        "req",
        "topic=svc/time payload=what qos=2 response_topic=resp/req correlation=c-42 \
         user=trace:abc user=trace:def user=lang:fr",
    );
    let request = paho.expect("svc", 1);
    let props = &request[0]["props"];
    assert_eq!(props["ResponseTopic"].str(), "resp/req", "{request:?}");
    assert_eq!(props["CorrelationData"].str(), "c-42", "{request:?}");
    assert_eq!(
        user_properties(props),
        [("trace", "abc"), ("trace", "def"), ("lang", "fr")],
        "user properties in order, repeats kept"
    );

    let reply_to = props["ResponseTopic"].str().to_owned();
    paho.publish(
        "svc",
        &format!("topic={reply_to} payload=noon qos=1 correlation=c-42 user=served-by:svc"),
    );
    let response = paho.expect("req", 1);
    assert_eq!(response[0]["payload"].str(), "noon");
    assert_eq!(response[0]["props"]["CorrelationData"].str(), "c-42");
    assert_eq!(
        user_properties(&response[0]["props"]),
        [("served-by", "svc")]
    );
    stop(broker);
}

fn user_properties(props: &Json) -> Vec<(&str, &str)> {
    props["UserProperty"]
        .arr()
        .iter()
        .map(|pair| (pair[0].str(), pair[1].str()))
        .collect()
}

/// The subscription identifiers the copies of one publish carried, sorted.
fn subscription_ids(copies: &[Json]) -> Vec<i64> {
    let mut ids: Vec<i64> = copies
        .iter()
        .flat_map(|m| {
            m["props"]["SubscriptionIdentifier"]
                .arr()
                .iter()
                .map(Json::int)
        })
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn mqtt5_subscription_identifiers_come_with_matching_messages() {
    let broker = Broker::start(2, "");
    let mut paho = Paho::start(&broker);
    let sub = paho.connect_anywhere(&broker, "sub", Mqtt::V5, "");
    assert_eq!(paho.subscribe("sub", "filter=sid/a/+ qos=1 subid=7"), [1]);
    assert_eq!(paho.subscribe("sub", "filter=sid/# qos=1 subid=9"), [1]);
    assert_eq!(paho.subscribe("sub", "filter=sid/plain/# qos=1"), [1]);
    paho.connect_off(&broker, "pub", Mqtt::V5, "", sub.shard);

    // Two matching subscriptions: one copy with both ids, or one copy each [MQTT-3.3.4-4/5].
    paho.publish("pub", "topic=sid/a/b payload=both qos=1");
    let mut copies = paho.expect("sub", 1);
    if subscription_ids(&copies) != [7, 9] {
        copies.extend(paho.expect("sub", 1));
    }
    assert_eq!(subscription_ids(&copies), [7, 9], "{copies:?}");

    paho.publish("pub", "topic=sid/x payload=one qos=1");
    paho.publish("pub", "topic=sid/plain/z payload=plain qos=1");
    let mut got = paho.expect("sub", 2);
    got.extend(paho.quiet("sub"));
    assert_eq!(got.len(), 2, "{got:?}");
    for message in &got {
        assert_eq!(
            subscription_ids(std::slice::from_ref(message)),
            [9],
            "{message:?}"
        );
    }
    assert!(
        copies.iter().all(|m| m["payload"].str() == "both"),
        "{copies:?}"
    );
    stop(broker);
}

/// SUBACK codes when the broker offers less: 5.0 says why, 3.1.1 says 0x80.
fn suback_refusals(mqtt: Mqtt) {
    let broker = Broker::start(
        2,
        "[mqtt]\nshared_subscription_available = false\nwildcard_subscription_available = false\n\
         subscription_identifiers_available = false\nmaximum_qos = 1\nmax_topic_levels = 4\n",
    );
    let mut paho = Paho::start(&broker);
    let client = paho.connect_anywhere(&broker, "c", mqtt, "");
    let reasons = paho.subscribe(
        "c",
        "filter=ok/topic filter=$share/g/ok filter=ok/+ filter=a/b/c/d/e qos=2",
    );
    match mqtt {
        Mqtt::V311 => assert_eq!(reasons, [1, 0x80, 0x80, 0x80]),
        Mqtt::V5 => {
            // QoS capped; shared, wildcard unsupported; too many levels: filter invalid.
            assert_eq!(reasons, [1, 0x9E, 0xA2, 0x8F]);
            let props = &client.connack["props"];
            assert_eq!(props["MaximumQoS"].int(), 1, "{props:?}");
            assert_eq!(props["SharedSubscriptionAvailable"].int(), 0, "{props:?}");
            assert_eq!(props["WildcardSubscriptionAvailable"].int(), 0, "{props:?}");
            assert_eq!(
                props["SubscriptionIdentifierAvailable"].int(),
                0,
                "{props:?}"
            );
            assert_eq!(paho.subscribe("c", "filter=ok/id qos=1 subid=5"), [0xA1]);
        }
    }
    stop(broker);
}

#[test]
fn suback_refuses_what_the_broker_does_not_offer_mqtt311() {
    suback_refusals(Mqtt::V311);
}

#[test]
fn suback_says_why_it_refuses_mqtt5() {
    suback_refusals(Mqtt::V5);
}

/// A filter that breaks the wildcard rules makes the SUBSCRIBE malformed: no SUBACK, the
/// connection ends (paho will not send such a filter, so this is raw MQTT).
fn malformed_filter(mqtt: Mqtt) {
    let broker = Broker::start(2, "");
    let end = raw_session(&broker, mqtt, "bad", &["subscribe", "bad/#/x"]);
    assert!(end["closed"].bool(), "the broker must close: {end:?}");
    let after = end["after"].arr();
    match mqtt {
        Mqtt::V311 => assert_eq!(after, [], "3.1.1: just close"),
        Mqtt::V5 => {
            assert_eq!(after.len(), 1, "one DISCONNECT: {end:?}");
            assert_eq!(after[0]["type"].int(), 14, "a DISCONNECT: {end:?}");
            let reason = u8::from_str_radix(&after[0]["body"].str()[..2], 16).unwrap();
            assert!(reason >= 0x80, "an error reason code: {end:?}");
        }
    }
    stop(broker);
}

#[test]
fn malformed_filter_closes_the_connection_mqtt311() {
    malformed_filter(Mqtt::V311);
}

#[test]
fn malformed_filter_closes_the_connection_with_a_reason_mqtt5() {
    malformed_filter(Mqtt::V5);
}

#[test]
fn empty_client_id_is_assigned_one() {
    let broker = Broker::start(2, "");
    let mut paho = Paho::start(&broker);
    let first = paho.connect(&broker, "a", "", Mqtt::V5, "");
    let assigned = first.connack["props"]["AssignedClientIdentifier"]
        .str()
        .to_owned();
    assert!(!assigned.is_empty(), "{:?}", first.connack);
    assert_eq!(first.id, assigned, "the broker uses the id it assigned");
    let second = paho.connect(&broker, "b", "", Mqtt::V5, "");
    assert_ne!(second.id, first.id, "two clients, two ids");

    // 3.1.1 has no way to tell the id, but accepts an empty one with a clean session.
    let old = paho.connect(&broker, "c", "", Mqtt::V311, "clean=1");
    assert!(!old.id.is_empty());
    assert_ne!(old.id, first.id);

    // The assigned ids work: a message goes from one to the other across the shards.
    assert_eq!(paho.subscribe("a", "filter=hello qos=1"), [1]);
    paho.publish("c", "topic=hello payload=hi qos=1");
    assert_eq!(
        topic_payload(&paho.expect("a", 1)[0]),
        ("hello".into(), "hi".into())
    );
    stop(broker);
}

// ---------------------------------------------------------------------------------------------
// 8. Protocol errors and shutdown.

/// Runs `raw_mqtt.py ACTION...` as client `id` until the broker closes; returns its last
/// report ({"after": the packets after the CONNACK, "closed"}).
fn raw_session(broker: &Broker, mqtt: Mqtt, id: &str, action: &[&str]) -> Json {
    let mut raw = raw_client(broker, mqtt, id, action);
    raw.next_json("the end")
}

/// Starts `raw_mqtt.py` and waits for its CONNACK, which must be a success.
fn raw_client(broker: &Broker, mqtt: Mqtt, id: &str, action: &[&str]) -> Script {
    let port = broker.port.to_string();
    let mut args = vec!["--port", &port, "--version", mqtt.arg(), "--client-id", id];
    args.extend_from_slice(action);
    let mut raw = Script::spawn("raw_mqtt.py", &args);
    let connack = raw.next_json("the CONNACK");
    // Flags 0, reason (return) code 0.
    assert!(
        connack["connack"]["body"].str().starts_with("0000"),
        "{connack:?}"
    );
    raw
}

fn second_connect(mqtt: Mqtt) {
    let broker = Broker::start(2, "");
    let end = raw_session(&broker, mqtt, "twice", &["second-connect"]);
    assert!(end["closed"].bool(), "the broker must close: {end:?}");
    let after = end["after"].arr();
    match mqtt {
        Mqtt::V311 => assert_eq!(after, [], "3.1.1: just close"),
        Mqtt::V5 => {
            assert_eq!(after.len(), 1, "one DISCONNECT: {end:?}");
            assert_eq!(after[0]["type"].int(), 14, "a DISCONNECT: {end:?}");
            assert!(
                after[0]["body"].str().starts_with("82"),
                "Protocol Error: {end:?}"
            );
        }
    }
    stop(broker);
}

#[test]
fn second_connect_is_a_protocol_error_mqtt311() {
    second_connect(Mqtt::V311);
}

#[test]
fn second_connect_is_a_protocol_error_mqtt5() {
    second_connect(Mqtt::V5);
}

#[test]
fn sigterm_sends_server_shutting_down_to_mqtt5_clients() {
    let broker = Broker::start(2, "");
    let mut paho = Paho::start(&broker);
    let five = paho.connect_anywhere(&broker, "five", Mqtt::V5, "");
    paho.connect_off(&broker, "three", Mqtt::V311, "", five.shard);
    let mut raw = raw_client(&broker, Mqtt::V5, "raw", &["listen"]);
    stop(broker);

    let end = raw.next_json("the end");
    let after = end["after"].arr();
    assert_eq!(after.len(), 1, "one DISCONNECT: {end:?}");
    assert_eq!(after[0]["type"].int(), 14, "a DISCONNECT: {end:?}");
    assert!(
        after[0]["body"].str().starts_with("8b"),
        "Server shutting down: {end:?}"
    );
    assert!(end["closed"].bool(), "{end:?}");

    let gone = paho.cmd("wait_disconnect five");
    assert!(
        gone["from_server"].bool(),
        "paho saw a DISCONNECT: {gone:?}"
    );
    // paho 2.1 reads the reason code only when properties follow it and reports Success
    // otherwise (eclipse-paho/paho.mqtt.python#860); the raw client above checks the code.
    assert!([0, 0x8B].contains(&gone["reason"].int()), "{gone:?}");
    let gone = paho.cmd("wait_disconnect three");
    assert!(
        !gone["from_server"].bool(),
        "3.1.1 has no server DISCONNECT: {gone:?}"
    );
}

/// Just enough JSON for what the agent and the broker's log print.
mod json {
    use std::iter::Peekable;
    use std::ops::Index;
    use std::str::Chars;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Json {
        Null,
        Bool(bool),
        Num(f64),
        Str(String),
        Arr(Vec<Json>),
        Obj(Vec<(String, Json)>),
    }

    static NULL: Json = Json::Null;

    impl Index<&str> for Json {
        type Output = Json;
        /// The field `key`, or null when there is none.
        fn index(&self, key: &str) -> &Json {
            match self {
                Json::Obj(fields) => fields
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or(&NULL, |(_, v)| v),
                _ => &NULL,
            }
        }
    }

    impl Index<usize> for Json {
        type Output = Json;
        fn index(&self, at: usize) -> &Json {
            self.arr().get(at).unwrap_or(&NULL)
        }
    }

    impl Json {
        pub fn parse(text: &str) -> Result<Json, String> {
            let mut chars = text.chars().peekable();
            let value = parse_value(&mut chars)?;
            skip_space(&mut chars);
            match chars.next() {
                None => Ok(value),
                Some(c) => Err(format!("trailing {c:?}")),
            }
        }

        pub fn bool(&self) -> bool {
            match self {
                Json::Bool(b) => *b,
                other => panic!("not a bool: {other:?}"),
            }
        }

        pub fn int(&self) -> i64 {
            match self {
                // The agent's numbers are integers well inside f64's exact range.
                Json::Num(n) if n.fract() == 0.0 => *n as i64,
                other => panic!("not an integer: {other:?}"),
            }
        }

        pub fn str(&self) -> &str {
            match self {
                Json::Str(s) => s,
                other => panic!("not a string: {other:?}"),
            }
        }

        /// The items of an array; none for null (a field that is absent).
        pub fn arr(&self) -> &[Json] {
            match self {
                Json::Arr(items) => items,
                Json::Null => &[],
                other => panic!("not an array: {other:?}"),
            }
        }
    }

    type Input<'a> = Peekable<Chars<'a>>;

    fn skip_space(chars: &mut Input) {
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
    }

    fn parse_value(chars: &mut Input) -> Result<Json, String> {
        skip_space(chars);
        match chars.peek().copied() {
            Some('{') => parse_object(chars),
            Some('[') => {
                chars.next();
                let mut items = Vec::new();
                skip_space(chars);
                if chars.next_if_eq(&']').is_some() {
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(parse_value(chars)?);
                    skip_space(chars);
                    match chars.next() {
                        Some(',') => {}
                        Some(']') => return Ok(Json::Arr(items)),
                        other => return Err(format!("expected , or ] in an array, got {other:?}")),
                    }
                }
            }
            Some('"') => parse_string(chars).map(Json::Str),
            Some(c) if c == '-' || c.is_ascii_digit() => {
                let mut number = String::new();
                while let Some(c) = chars.next_if(|c| "+-.eE".contains(*c) || c.is_ascii_digit()) {
                    number.push(c);
                }
                number
                    .parse()
                    .map(Json::Num)
                    .map_err(|e| format!("{number:?}: {e}"))
            }
            Some(_) => {
                let word: String =
                    std::iter::from_fn(|| chars.next_if(char::is_ascii_alphabetic)).collect();
                match word.as_str() {
                    "true" => Ok(Json::Bool(true)),
                    "false" => Ok(Json::Bool(false)),
                    "null" => Ok(Json::Null),
                    _ => Err(format!("unexpected {word:?}")),
                }
            }
            None => Err("unexpected end".to_owned()),
        }
    }

    fn parse_object(chars: &mut Input) -> Result<Json, String> {
        chars.next();
        let mut fields = Vec::new();
        skip_space(chars);
        if chars.next_if_eq(&'}').is_some() {
            return Ok(Json::Obj(fields));
        }
        loop {
            skip_space(chars);
            let key = parse_string(chars)?;
            skip_space(chars);
            if chars.next() != Some(':') {
                return Err(format!("expected : after {key:?}"));
            }
            fields.push((key, parse_value(chars)?));
            skip_space(chars);
            match chars.next() {
                Some(',') => {}
                Some('}') => return Ok(Json::Obj(fields)),
                other => return Err(format!("expected , or }} in an object, got {other:?}")),
            }
        }
    }

    fn parse_string(chars: &mut Input) -> Result<String, String> {
        if chars.next() != Some('"') {
            return Err("expected a string".to_owned());
        }
        let mut units: Vec<u16> = Vec::new();
        loop {
            match chars.next().ok_or("unterminated string")? {
                '"' => return String::from_utf16(&units).map_err(|e| e.to_string()),
                '\\' => {
                    let escaped = match chars.next().ok_or("unterminated escape")? {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        'b' => '\u{8}',
                        'f' => '\u{c}',
                        'u' => {
                            let hex: String = chars.by_ref().take(4).collect();
                            let unit = u16::from_str_radix(&hex, 16)
                                .map_err(|e| format!("\\u{hex}: {e}"))?;
                            units.push(unit);
                            continue;
                        }
                        other => other,
                    };
                    units.extend(escaped.encode_utf16(&mut [0; 2]).iter());
                }
                c => units.extend(c.encode_utf16(&mut [0; 2]).iter()),
            }
        }
    }

    #[test]
    fn parses_what_the_agent_prints() {
        let value = Json::parse(
            r#"{"ok": true, "n": [1, -2.5e1], "s": "a\"\u00e9\ud83d\ude00", "z": null, "o": {}}"#,
        )
        .unwrap();
        assert!(value["ok"].bool());
        assert_eq!(value["n"][0].int(), 1);
        assert_eq!(value["n"][1], Json::Num(-25.0));
        assert_eq!(value["s"].str(), "a\"é😀");
        assert_eq!(value["z"], Json::Null);
        assert_eq!(value["missing"].arr(), []);
        assert_eq!(value["o"], Json::Obj(Vec::new()));
        assert!(Json::parse("{\"a\" 1}").is_err());
    }
}
