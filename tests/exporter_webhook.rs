//! The web-hook exporter end to end: events recorded into a shard's ring as a shard would,
//! drained by the exporter runtime, POSTed to a real HTTP server on 127.0.0.1, and checked
//! field by field as the server received them. Also: a server that is down at first (retries,
//! a bounded queue that overflows, then delivery once it is up), batch mode, and a receiver
//! that rejects.
//!
//! Every wait has a deadline, so a broken exporter fails these tests instead of hanging them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use starling::hooks::exporters::{
    CountersSnapshot, ExporterCounters, ExporterRuntime, ExporterSettings, Overflow, RetryPolicy,
    RuleConfig, RuleSet, RuntimeOptions, Sink, WebhookConfig, WebhookSink,
};
use starling::hooks::{
    ClientInfo, EventDetail, EventKind, EventKinds, EventRing, EventSink, MessageFacts,
};
use starling::protocol::{ClientId, MqttString, PacketId, Publish, QoS, ReasonCode, TopicName};
use starling::session::Message;

/// Longest any test waits for anything.
const DEADLINE: Duration = Duration::from_secs(30);

/// One request the server received.
#[derive(Debug)]
struct Received {
    path: String,
    body: Value,
}

/// Serves HTTP/1.1 on `listener` until the test ends: every POST body is parsed and passed
/// on; `/reject` answers 400, everything else 200.
fn serve(listener: TcpListener) -> mpsc::UnboundedReceiver<Received> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let path = request.uri().path().to_string();
                        let bytes = request.into_body().collect().await?.to_bytes();
                        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let status = if path == "/reject" {
                            StatusCode::BAD_REQUEST
                        } else {
                            StatusCode::OK
                        };
                        let _ = tx.send(Received { path, body });
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = status;
                        Ok::<_, hyper::Error>(response)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    rx
}

async fn start_server() -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    (address, serve(listener))
}

/// Receives until `count` requests arrived (panics at the deadline).
async fn receive(rx: &mut mpsc::UnboundedReceiver<Received>, count: usize) -> Vec<Received> {
    let give_up = tokio::time::Instant::now() + DEADLINE;
    let mut received = Vec::new();
    while received.len() < count {
        match tokio::time::timeout_at(give_up, rx.recv()).await {
            Ok(Some(request)) => received.push(request),
            _ => panic!("received {} of {count}: {received:?}", received.len()),
        }
    }
    received
}

/// Polls `counters` until `done` (panics at the deadline).
async fn wait_for(
    counters: &ExporterCounters,
    mut done: impl FnMut(&CountersSnapshot) -> bool,
) -> CountersSnapshot {
    let give_up = Instant::now() + DEADLINE;
    loop {
        let snapshot = counters.snapshot();
        if done(&snapshot) {
            return snapshot;
        }
        assert!(Instant::now() < give_up, "gave up waiting: {snapshot:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn subscriber() -> Arc<ClientInfo> {
    Arc::new(ClientInfo {
        node: 1,
        shard: 0,
        client_id: ClientId::new("sub-1").unwrap(),
        username: Some(MqttString::new("alice").unwrap()),
        address: Some("10.1.2.3:5000".parse().unwrap()),
        protocol: 5,
        keep_alive_secs: 60,
        clean_start: true,
    })
}

fn publisher() -> Arc<ClientInfo> {
    Arc::new(ClientInfo {
        node: 2,
        shard: 1,
        client_id: ClientId::new("pub-1").unwrap(),
        username: None,
        address: Some("10.9.9.9:6000".parse().unwrap()),
        protocol: 4,
        keep_alive_secs: 30,
        clean_start: false,
    })
}

fn message_facts(published_at_ns: u64) -> MessageFacts {
    let publish = Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: TopicName::new("sensors/1/temp").unwrap(),
        packet_id: PacketId::new(42),
        properties: Default::default(),
        payload: Bytes::from_static(b"hello world"),
    };
    let message = Message::from_publish(
        std::time::Instant::now(),
        ClientId::new("pub-1").unwrap(),
        publish.topic.clone(),
        publish,
    );
    MessageFacts {
        message: Arc::new(message),
        publisher: publisher(),
        published_at_ns,
        qos: QoS::AtLeastOnce,
        packet_id: PacketId::new(42),
        dup: false,
        dropped: None,
    }
}

/// Rules: every kind under its own name to the defaults, plus the document's second
/// `client_connected` rule, renamed, to `second_url`.
fn rules_with_second(second_url: String) -> RuleSet {
    let mut rules: Vec<RuleConfig> = EventKind::ALL
        .into_iter()
        .map(RuleConfig::for_event)
        .collect();
    rules.push(RuleConfig {
        action: Some("client_connected_2".into()),
        destinations: Some(vec![second_url]),
        ..RuleConfig::for_event(EventKind::ClientConnected)
    });
    RuleSet::new(&rules).unwrap()
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        initial_interval: Duration::from_millis(10),
        multiplier: 2.0,
        max_interval: Duration::from_millis(50),
        max_elapsed_time: Duration::from_secs(600),
    }
}

fn webhook(urls: Vec<String>, batch: bool) -> Box<dyn Sink> {
    Box::new(
        WebhookSink::new(WebhookConfig {
            http_urls: urls,
            http_timeout: Duration::from_secs(5),
            concurrency_limit: 8,
            batch,
        })
        .unwrap(),
    )
}

fn start(
    ring: &Arc<EventRing>,
    settings: ExporterSettings,
    sink: Box<dyn Sink>,
) -> (ExporterRuntime, Arc<ExporterCounters>) {
    let runtime = ExporterRuntime::start_with(
        vec![Arc::clone(ring)],
        vec![(settings, sink)],
        RuntimeOptions {
            shutdown_deadline: Duration::from_millis(500),
            ..RuntimeOptions::default()
        },
    )
    .unwrap();
    let counters = Arc::clone(&runtime.counters()[0].1);
    (runtime, counters)
}

fn by_action<'a>(received: &'a [Received], action: &str) -> &'a Received {
    received
        .iter()
        .find(|request| request.body["action"] == action)
        .unwrap_or_else(|| panic!("no {action} in {received:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_arrives_as_the_document_says() {
    let (address, mut rx) = start_server().await;
    let default_url = format!("http://{address}/mqtt/webhook");
    let second_url = format!("http://{address}/second");
    let ring = Arc::new(EventRing::new(64));
    let settings = ExporterSettings {
        rules: rules_with_second(second_url),
        retry: quick_retry(),
        flush_interval: Duration::from_millis(10),
        ..ExporterSettings::new("webhook")
    };
    let (runtime, counters) = start(&ring, settings, webhook(vec![default_url], false));
    assert_eq!(runtime.wanted(), EventKinds::ALL);

    // As a shard records them.
    let at_ns = now_ns();
    let at_ms = at_ns / 1_000_000;
    let published_ns = at_ns - 3_000_000;
    let mut shard = EventSink::new(EventKinds::ALL, Arc::clone(&ring), 4);
    let (sub, publ) = (subscriber(), publisher());
    shard.record(EventKind::ClientConnected, at_ns, &sub, || {
        EventDetail::Connack {
            code: ReasonCode::SUCCESS,
            session_present: true,
        }
    });
    shard.record(EventKind::ClientConnect, at_ns, &publ, || EventDetail::None);
    shard.record(EventKind::ClientConnack, at_ns, &publ, || {
        EventDetail::Connack {
            code: ReasonCode(0x87),
            session_present: false,
        }
    });
    shard.record(EventKind::MessagePublish, published_ns, &publ, || {
        EventDetail::Message(message_facts(published_ns))
    });
    shard.record(EventKind::MessageDelivered, at_ns, &sub, || {
        EventDetail::Message(message_facts(published_ns))
    });
    shard.record(EventKind::SessionSubscribed, at_ns, &sub, || {
        EventDetail::Subscription {
            filter: starling::protocol::TopicFilter::new("sensors/+/temp").unwrap(),
            qos: QoS::ExactlyOnce,
        }
    });
    shard.flush();

    let received = receive(&mut rx, 7).await;
    let connected = by_action(&received, "client_connected");
    assert_eq!(connected.path, "/mqtt/webhook");
    assert_eq!(
        connected.body,
        json!({"action": "client_connected", "node": 1, "ipaddress": "10.1.2.3:5000",
               "clientid": "sub-1", "username": "alice", "keepalive": 60, "proto_ver": 5,
               "clean_start": true, "connected_at": at_ms, "session_present": true})
    );
    let renamed = by_action(&received, "client_connected_2");
    assert_eq!(renamed.path, "/second");
    assert_eq!(renamed.body["clientid"], "sub-1");

    assert_eq!(
        by_action(&received, "client_connect").body,
        json!({"action": "client_connect", "node": 2, "ipaddress": "10.9.9.9:6000",
               "clientid": "pub-1", "username": "undefined", "keepalive": 30,
               "proto_ver": 4, "clean_session": false})
    );
    assert_eq!(
        by_action(&received, "client_connack").body["conn_ack"],
        "Not authorized"
    );
    assert_eq!(
        by_action(&received, "message_publish").body,
        json!({"action": "message_publish", "from_node": 2, "from_ipaddress": "10.9.9.9:6000",
               "from_clientid": "pub-1", "from_username": "undefined", "dup": false,
               "retain": false, "qos": 1, "topic": "sensors/1/temp", "packet_id": "42",
               "payload": "aGVsbG8gd29ybGQ=", "ts": published_ns / 1_000_000})
    );
    assert_eq!(
        by_action(&received, "message_delivered").body,
        json!({"action": "message_delivered", "from_node": 2,
               "from_ipaddress": "10.9.9.9:6000", "from_clientid": "pub-1",
               "from_username": "undefined", "node": 1, "ipaddress": "10.1.2.3:5000",
               "clientid": "sub-1", "username": "alice", "dup": false, "retain": false,
               "qos": 1, "topic": "sensors/1/temp", "packet_id": "42",
               "payload": "aGVsbG8gd29ybGQ=", "pts": published_ns / 1_000_000, "ts": at_ms})
    );
    assert_eq!(
        by_action(&received, "session_subscribed").body,
        json!({"action": "session_subscribed", "node": 1, "ipaddress": "10.1.2.3:5000",
               "clientid": "sub-1", "username": "alice", "topic": "sensors/+/temp",
               "opts": {"qos": 2}})
    );

    let done = wait_for(&counters, |c| c.sent == 7).await;
    assert_eq!((done.queued, done.retried, done.failed), (7, 0, 0));
    runtime.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_at_start_costs_the_queue_only_and_delivery_resumes_when_it_is_up() {
    // Take a free port, then leave it closed: connections are refused until the server binds.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/mqtt/webhook");
    let ring = Arc::new(EventRing::new(256));
    let capacity = 10;
    let settings = ExporterSettings {
        queue_capacity: capacity,
        batch_events: 5,
        overflow: Overflow::DropOldest,
        retry: quick_retry(),
        flush_interval: Duration::from_millis(10),
        ..ExporterSettings::new("webhook")
    };
    let (runtime, counters) = start(&ring, settings, webhook(vec![url], false));

    let mut shard = EventSink::new(EventKinds::ALL, Arc::clone(&ring), 16);
    let client = subscriber();
    for n in 0..200 {
        shard.record(EventKind::ClientConnected, now_ns() + n, &client, || {
            EventDetail::None
        });
    }
    shard.flush();
    assert_eq!(shard.counters().dropped_ring_full.iter().sum::<u64>(), 0);

    let down = wait_for(&counters, |c| {
        assert!(c.queue_len <= capacity as u64, "queue over capacity: {c:?}");
        c.retried > 0 && c.queued + c.dropped_queue_full >= 200 && c.dropped_queue_full > 0
    })
    .await;
    assert_eq!(down.sent, 0, "{down:?}");

    // The server comes up on the same port: the batch being retried and the queue go out.
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let mut rx = serve(listener);
    let up = wait_for(&counters, |c| {
        assert!(c.queue_len <= capacity as u64, "queue over capacity: {c:?}");
        c.sent > 0 && c.queue_len == 0
    })
    .await;
    let first = receive(&mut rx, up.sent as usize).await;
    assert!(first
        .iter()
        .all(|request| request.body["action"] == "client_connected"));

    // And new events keep flowing.
    for n in 0..3 {
        shard.record(EventKind::SessionCreated, now_ns() + n, &client, || {
            EventDetail::None
        });
    }
    shard.flush();
    wait_for(&counters, |c| c.sent >= up.sent + 3).await;
    // Delivery is at-least-once, so a repeat of the earlier batch may come first.
    let mut created = 0;
    while created < 3 {
        let request = receive(&mut rx, 1).await.remove(0);
        created += usize::from(request.body["action"] == "session_created");
    }
    runtime.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_mode_posts_one_json_array_per_url() {
    let (address, mut rx) = start_server().await;
    let ring = Arc::new(EventRing::new(64));
    let settings = ExporterSettings {
        batch_events: 100,
        flush_interval: Duration::from_millis(20),
        retry: quick_retry(),
        ..ExporterSettings::new("webhook-batch")
    };
    let urls = vec![
        format!("http://{address}/one"),
        format!("http://{address}/two"),
    ];
    let (runtime, counters) = start(&ring, settings, webhook(urls, true));
    let mut shard = EventSink::new(EventKinds::ALL, Arc::clone(&ring), 100);
    let client = subscriber();
    for n in 0..6 {
        shard.record(EventKind::ClientDisconnected, now_ns() + n, &client, || {
            EventDetail::Disconnected(starling::hooks::DisconnectReason::ConnectionLost)
        });
    }
    shard.flush();
    wait_for(&counters, |c| c.sent == 6).await;
    let received = receive(&mut rx, 2).await;
    for path in ["/one", "/two"] {
        let bodies: Vec<&Value> = received
            .iter()
            .filter(|request| request.path == path)
            .flat_map(|request| request.body.as_array().expect("a JSON array body"))
            .collect();
        assert_eq!(bodies.len(), 6, "{path}");
        assert!(bodies
            .iter()
            .all(|body| body["action"] == "client_disconnected"
                && body["reason"] == "connection_lost"));
    }
    runtime.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_rejects_the_data_is_not_retried() {
    let (address, mut rx) = start_server().await;
    let ring = Arc::new(EventRing::new(64));
    let settings = ExporterSettings {
        batch_events: 10,
        flush_interval: Duration::from_millis(10),
        retry: quick_retry(),
        ..ExporterSettings::new("webhook")
    };
    let url = format!("http://{address}/reject");
    let (runtime, counters) = start(&ring, settings, webhook(vec![url], false));
    let mut shard = EventSink::new(EventKinds::ALL, Arc::clone(&ring), 10);
    let client = subscriber();
    for n in 0..3 {
        shard.record(EventKind::SessionCreated, now_ns() + n, &client, || {
            EventDetail::None
        });
    }
    shard.flush();
    let done = wait_for(&counters, |c| c.dropped_rejected == 3).await;
    assert_eq!((done.failed, done.retried, done.sent), (1, 0, 0));
    assert_eq!(receive(&mut rx, 3).await.len(), 3);
    runtime.shutdown();
}
