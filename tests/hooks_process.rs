//! The hooks and exporters of a real broker process, seen by real clients (rumqttc 3.1.1 and
//! 5.0): credentials and tokens on CONNECT, the topic table with its rejected-publish
//! feedback, the system topics, and the JSON-lines exporter's file checked field by field.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

// The interop tests' client wrappers; this file uses part of them.
#[allow(dead_code)]
#[path = "interop_rumqttc/clients.rs"]
mod clients;

use std::path::PathBuf;

use clients::{v3_options, v5_options, V3, V5, WAIT};
use common::Broker;
use rumqttc::v5;
use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::v5::mqttbytes::QoS as Qos5;
use serde_json::{json, Value};

fn data(file: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/hooks")
        .join(file)
        .display()
        .to_string()
}

fn hooks_config() -> String {
    format!(
        r#"
[mqtt]
allow_anonymous = false

[hooks]
password_file = "{passwords}"
token_file = "{tokens}"
unknown_topic = "close"

[[hooks.topics]]
pattern = "devices/(:id)/meta"
publish = true
subscribe = true
schema_file = "{schema}"
[[hooks.topics]]
pattern = "devices/(:id)/meta/rejected"
subscribe = true
[[hooks.topics]]
pattern = "buildings/(:id)/actions"
subscribe = true
"#,
        passwords = data("passwords.txt"),
        tokens = data("tokens.txt"),
        schema = data("meta.schema.json"),
    )
}

/// The CONNACK code a 5.0 client gets with these credentials.
async fn connack_code(broker: &Broker, user: &str, password: &str) -> p5::ConnectReturnCode {
    let mut options = v5_options(broker, "login");
    options.set_credentials(user, password);
    let (_client, mut eventloop) = v5::AsyncClient::new(options, 8);
    match tokio::time::timeout(WAIT, eventloop.poll()).await.unwrap() {
        Ok(v5::Event::Incoming(p5::Packet::ConnAck(ack))) => ack.code,
        Err(v5::ConnectionError::ConnectionRefused(code)) => code,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn credentials_tokens_and_the_topic_table_with_rejected_feedback() {
    let broker = Broker::start(1, &hooks_config());
    use p5::ConnectReturnCode as Code;
    assert_eq!(
        connack_code(&broker, "alice", "alice-secret").await,
        Code::Success
    );
    assert_eq!(
        connack_code(&broker, "bob", "bob-secret").await,
        Code::Success
    );
    assert_eq!(
        connack_code(&broker, "alice", "wrong").await,
        Code::BadUserNamePassword
    );
    assert_eq!(
        connack_code(&broker, "authorization", "tok-sha256-0123456789abcdef").await,
        Code::Success
    );
    assert_eq!(
        connack_code(&broker, "authorization", "not-a-token").await,
        Code::BadUserNamePassword
    );

    let mut options = v5_options(&broker, "device-1");
    options.set_credentials("authorization", "tok-sha256-0123456789abcdef");
    let mut device = V5::connect(options).await;
    device
        .subscribe("devices/1/meta/rejected", Qos5::AtLeastOnce)
        .await;
    device.subscribe("devices/1/meta", Qos5::AtLeastOnce).await;
    // Outside the table: the connection closes instead of a SUBACK.
    device
        .client
        .subscribe("buildings/1/actions/extra", Qos5::AtMostOnce)
        .await
        .unwrap();
    let closed = device.closed().await;
    assert_eq!(
        clients::server_disconnect_reason(&closed),
        Some(p5::DisconnectReasonCode::NotAuthorized)
    );

    let mut options = v5_options(&broker, "device-1");
    options.set_credentials("alice", "alice-secret");
    let mut device = V5::connect(options).await;
    device
        .subscribe("devices/1/meta/rejected", Qos5::AtLeastOnce)
        .await;
    device.subscribe("devices/1/meta", Qos5::AtLeastOnce).await;
    let valid = br#"[{"name":"temperature","value":87.4}]"#;
    device
        .publish_with(
            "devices/1/meta",
            Qos5::AtLeastOnce,
            false,
            valid,
            Default::default(),
        )
        .await;
    let echoed = device.publish_in().await;
    assert_eq!(
        (&echoed.topic[..], &echoed.payload[..]),
        (&b"devices/1/meta"[..], &valid[..])
    );
    let invalid =
        br#"[{"name":"Meta_New","display_name":"Meta New","unit_of_measure":"Meters","value":10}]"#;
    device
        .publish_with(
            "devices/1/meta",
            Qos5::AtMostOnce,
            false,
            invalid,
            Default::default(),
        )
        .await;
    let rejected = device.publish_in().await;
    assert_eq!(
        &rejected.topic[..],
        b"devices/1/meta/rejected",
        "not delivered; feedback instead"
    );
    let body: Value = serde_json::from_slice(&rejected.payload).unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Invalid payload due to regex pattern not matching."),
        "{message}"
    );
    assert!(
        message.contains("[0]/name") && message.contains("\"Meta_New\""),
        "{message}"
    );
    assert_eq!(body["error"]["context"]["title"], "Name");
    assert_eq!(
        body["error"]["context"]["pattern"],
        "^(~?)(?!.*__.*)[a-z][a-z0-9_]+$"
    );
    assert_eq!(
        body["data"],
        serde_json::from_slice::<Value>(invalid).unwrap()
    );
    assert!(
        device.publish_within().await.is_none(),
        "the invalid message never arrives"
    );

    // At QoS 1 the publisher is told: PUBACK 0x99 (rumqttc ends its connection on any
    // failed PUBACK, which is how the code shows here).
    let mut options = v5_options(&broker, "device-2");
    options.set_credentials("alice", "alice-secret");
    let mut strict = V5::connect(options).await;
    strict
        .client
        .publish("devices/2/meta", Qos5::AtLeastOnce, false, invalid.to_vec())
        .await
        .unwrap();
    match strict.closed().await {
        v5::ConnectionError::MqttState(v5::StateError::PubAckFail { reason }) => {
            assert_eq!(reason, p5::PubAckReason::PayloadFormatInvalid);
        }
        other => panic!("{other:?}"),
    }

    // 3.1.1: a publish outside the table closes the connection.
    let mut options = v3_options(&broker, "legacy");
    options.set_credentials("bob", "bob-secret");
    let mut legacy = V3::connect(options).await;
    legacy
        .client
        .publish(
            "somewhere/else",
            rumqttc::QoS::AtLeastOnce,
            false,
            b"x".to_vec(),
        )
        .await
        .unwrap();
    legacy.closed().await;
    drop(broker);
}

#[tokio::test(flavor = "current_thread")]
async fn events_reach_the_system_topics_and_the_json_lines_file() {
    let events_file = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("events-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&events_file);
    let config = format!(
        r#"
[events]
node = 3
flush_interval_ms = 5

[system_topics]
enabled = true

[[exporters]]
name = "file"
type = "jsonl"
path = "{}"
batch_events = 10
flush_interval = "10ms"
"#,
        events_file.display()
    );
    let broker = Broker::start(2, &config);
    let mut watcher = V5::connect(v5_options(&broker, "watcher")).await;
    watcher.subscribe("SYSTEM/#", Qos5::AtMostOnce).await;
    let mut device = V3::connect(v3_options(&broker, "device")).await;
    device
        .subscribe("orders/#", rumqttc::QoS::AtLeastOnce)
        .await;
    let order = br#"{"product_id":"shop","message_id":"m-1","payload":"data"}"#;
    let mut shop = V5::connect(v5_options(&broker, "shop")).await;
    shop.publish_with(
        "orders/1",
        Qos5::AtLeastOnce,
        false,
        order,
        Default::default(),
    )
    .await;
    let delivered = device.publish_in().await;
    assert_eq!(&delivered.payload[..], &order[..]);
    device.disconnect().await;

    let order_text = std::str::from_utf8(order).unwrap();
    let expected = [
        ("SYSTEM/presence/connected", json!({"client_id": "device"})),
        (
            "SYSTEM/subscription/subscribed",
            json!({"client_id": "device", "topic": "orders/#"}),
        ),
        (
            "SYSTEM/message",
            json!({"pub_client_id": "shop", "topic": "orders/1", "payload": order_text, "qos": 1}),
        ),
        (
            "SYSTEM/msgack",
            json!({"pub_client_id": "shop", "ack_client_id": "device", "product_id": "shop", "message_id": "m-1", "topic": "orders/1"}),
        ),
        (
            "SYSTEM/presence/disconnected",
            json!({"client_id": "device", "reason": "normal"}),
        ),
    ];
    // The shards publish independently: collect until every expected message has come (the
    // watcher also sees system messages about itself and the publisher).
    let mut seen: Vec<(String, Value)> = Vec::new();
    let found = |seen: &[(String, Value)]| {
        expected
            .iter()
            .all(|(topic, body)| seen.iter().any(|(t, b)| t == topic && b == body))
    };
    while !found(&seen) {
        let Some(publish) = watcher.publish_within().await else {
            panic!("missing system messages; expected {expected:#?}, got {seen:#?}");
        };
        let topic = String::from_utf8(publish.topic.to_vec()).unwrap();
        seen.push((topic, serde_json::from_slice(&publish.payload).unwrap()));
    }
    watcher.disconnect().await;
    shop.disconnect().await;
    broker.stop();

    let lines: Vec<Value> = std::fs::read_to_string(&events_file)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let of = |action: &str, client: &str| {
        lines
            .iter()
            .find(|line| {
                line["action"] == action
                    && (line["clientid"] == client || line["from_clientid"] == client)
            })
            .unwrap_or_else(|| panic!("no {action} of {client} in {lines:#?}"))
            .clone()
    };
    let connected = of("client_connected", "device");
    assert_eq!(
        (connected["node"].clone(), connected["proto_ver"].clone()),
        (json!(3), json!(4))
    );
    assert_eq!(connected["username"], "undefined");
    assert!(connected["ipaddress"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(connected["clean_session"], true);
    let publish = of("message_publish", "shop");
    assert_eq!(publish["topic"], "orders/1");
    use base64::Engine as _;
    let payload = base64::engine::general_purpose::STANDARD
        .decode(publish["payload"].as_str().unwrap())
        .unwrap();
    assert_eq!(payload, order);
    let acked = lines
        .iter()
        .find(|line| line["action"] == "message_acked")
        .unwrap();
    assert_eq!(
        (acked["clientid"].clone(), acked["from_clientid"].clone()),
        (json!("device"), json!("shop"))
    );
    assert_eq!(acked["qos"], 1);
    let disconnected = of("client_disconnected", "device");
    assert_eq!(disconnected["reason"], "normal");
    for action in [
        "session_created",
        "client_connect",
        "client_connack",
        "client_subscribe",
        "session_subscribed",
        "message_delivered",
        "session_terminated",
    ] {
        assert!(
            lines.iter().any(|line| line["action"] == action),
            "no {action}"
        );
    }
}
