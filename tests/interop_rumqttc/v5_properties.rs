//! MQTT 5.0 properties and subscription options with rumqttc across two shards: message
//! properties passed through, message expiry of queued messages, No Local, Retain As
//! Published, Retain Handling, topic aliases set by the client, the subscriber's Maximum
//! Packet Size, and the properties of the broker's CONNACK.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Filter, PublishProperties, RetainForwardRule};
use rumqttc::v5::mqttbytes::QoS;

use crate::clients::{v5_options, v5_persistent, V5};
use crate::common::Broker;
use crate::other;

/// Connects a plain 5.0 client as `{prefix}-N` on the shard that is not `shard`.
async fn on_other_shard(broker: &Broker, shard: usize, prefix: &str) -> V5 {
    V5::connect_on(broker, other(shard), prefix, |id| v5_options(broker, id))
        .await
        .0
}

#[tokio::test]
async fn message_properties_pass_through_to_a_subscriber_on_the_other_shard() {
    let broker = Broker::start(2, "");
    let mut sub = V5::connect(v5_options(&broker, "props-sub")).await;
    let mut publisher = on_other_shard(&broker, broker.shard_of("props-sub"), "props-pub").await;
    sub.subscribe("props/#", QoS::AtLeastOnce).await;

    let user_properties = vec![
        ("b".to_owned(), "2".to_owned()),
        ("a".to_owned(), "1".to_owned()),
        ("a".to_owned(), "3".to_owned()),
    ];
    let sent = PublishProperties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json".to_owned()),
        response_topic: Some("props/reply".to_owned()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
        user_properties: user_properties.clone(),
        ..PublishProperties::default()
    };
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        publisher
            .publish_with("props/t", qos, false, b"{}", sent.clone())
            .await;
        let got = sub.publish_in().await;
        assert_eq!(&got.payload[..], b"{}");
        let properties = got.properties.expect("the message's properties");
        assert_eq!(properties.payload_format_indicator, Some(1));
        assert_eq!(properties.content_type.as_deref(), Some("application/json"));
        assert_eq!(properties.response_topic.as_deref(), Some("props/reply"));
        assert_eq!(
            properties.correlation_data.as_deref(),
            Some(&b"\x00\x01corr"[..])
        );
        assert_eq!(
            properties.user_properties, user_properties,
            "in their order"
        );
        assert_eq!(properties.message_expiry_interval, None);
        assert_eq!(
            properties.topic_alias, None,
            "the subscriber allows no aliases"
        );
        assert!(properties.subscription_identifiers.is_empty());
    }
}

#[tokio::test]
async fn queued_messages_expire_and_carry_their_remaining_expiry() {
    let broker = Broker::start(2, "");
    let mut sub = V5::connect(v5_persistent(&broker, "expiry-sub", true, 60)).await;
    sub.subscribe("expiry/#", QoS::AtLeastOnce).await;
    sub.disconnect().await;

    let mut publisher = V5::connect(v5_options(&broker, "expiry-pub")).await;
    let expiring = |secs| PublishProperties {
        message_expiry_interval: Some(secs),
        ..PublishProperties::default()
    };
    publisher
        .publish_with(
            "expiry/short",
            QoS::AtLeastOnce,
            false,
            b"short",
            expiring(1),
        )
        .await;
    publisher
        .publish_with(
            "expiry/long",
            QoS::AtLeastOnce,
            false,
            b"long",
            expiring(100),
        )
        .await;
    publisher
        .publish("expiry/none", QoS::AtLeastOnce, false, b"none")
        .await;
    // Past the short message's expiry (1 s) with margin.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let mut sub = V5::connect(v5_persistent(&broker, "expiry-sub", false, 60)).await;
    assert!(sub.connack.session_present);
    let got = sub.publish_in().await;
    assert_eq!(
        &got.topic[..],
        b"expiry/long",
        "the expired message was sent"
    );
    let remaining = got
        .properties
        .expect("properties")
        .message_expiry_interval
        .expect("the remaining expiry");
    // At least 2.5 s of the 100 have passed while it waited in the queue.
    assert!(
        (1..=98).contains(&remaining),
        "remaining expiry {remaining}"
    );
    let got = sub.publish_in().await;
    assert_eq!(&got.topic[..], b"expiry/none");
    assert_eq!(got.properties.and_then(|p| p.message_expiry_interval), None);
}

#[tokio::test]
async fn no_local_keeps_a_clients_own_messages_from_it() {
    let broker = Broker::start(2, "");
    let mut local = V5::connect(v5_options(&broker, "nl-local")).await;
    let mut remote = on_other_shard(&broker, broker.shard_of("nl-local"), "nl-remote").await;
    let no_local = Filter {
        nolocal: true,
        ..Filter::new("nl/t", QoS::AtLeastOnce)
    };
    local.subscribe_filters(vec![no_local], None).await;
    remote.subscribe("nl/t", QoS::AtLeastOnce).await;

    local
        .publish("nl/t", QoS::AtLeastOnce, false, b"from local")
        .await;
    assert_eq!(&remote.publish_in().await.payload[..], b"from local");
    remote
        .publish("nl/t", QoS::AtLeastOnce, false, b"from remote")
        .await;
    // Without No Local a client gets its own messages.
    assert_eq!(&remote.publish_in().await.payload[..], b"from remote");
    let got = local.publish_in().await;
    assert_eq!(
        &got.payload[..],
        b"from remote",
        "No Local sent a client its own message"
    );
}

#[tokio::test]
async fn retain_as_published_keeps_the_retain_flag_on_live_messages() {
    let broker = Broker::start(2, "");
    let mut publisher = V5::connect(v5_options(&broker, "rap-pub")).await;
    let pub_shard = broker.shard_of("rap-pub");
    let mut keeps = on_other_shard(&broker, pub_shard, "rap-keeps").await;
    let mut clears = on_other_shard(&broker, pub_shard, "rap-clears").await;
    let preserve = Filter {
        preserve_retain: true,
        ..Filter::new("rap/t", QoS::AtLeastOnce)
    };
    keeps.subscribe_filters(vec![preserve], None).await;
    clears.subscribe("rap/t", QoS::AtLeastOnce).await;

    publisher
        .publish("rap/t", QoS::AtLeastOnce, true, b"retained")
        .await;
    publisher
        .publish("rap/t", QoS::AtLeastOnce, false, b"plain")
        .await;
    let got = keeps.publish_in().await;
    assert_eq!(&got.payload[..], b"retained");
    assert!(got.retain, "Retain As Published cleared the flag");
    assert!(!keeps.publish_in().await.retain);
    let got = clears.publish_in().await;
    assert_eq!(&got.payload[..], b"retained");
    assert!(!got.retain, "the flag was kept without Retain As Published");
    assert!(!clears.publish_in().await.retain);
}

#[tokio::test]
async fn retain_handling_0_1_and_2_send_retained_messages_as_asked() {
    let broker = Broker::start(2, "");
    let mut publisher = V5::connect(v5_options(&broker, "rh-pub")).await;
    let pub_shard = broker.shard_of("rh-pub");
    publisher
        .publish("rh/t", QoS::AtLeastOnce, true, b"kept")
        .await;
    let filter = |rule| Filter {
        retain_forward_rule: rule,
        ..Filter::new("rh/+", QoS::AtLeastOnce)
    };

    // 0: on every subscribe, new or repeated.
    let mut every = on_other_shard(&broker, pub_shard, "rh-every").await;
    for _ in 0..2 {
        every
            .subscribe_filters(vec![filter(RetainForwardRule::OnEverySubscribe)], None)
            .await;
        let got = every.publish_in().await;
        assert_eq!(&got.payload[..], b"kept");
        assert!(got.retain);
    }

    // 1: on a new subscription only.
    let mut new_only = on_other_shard(&broker, pub_shard, "rh-new").await;
    new_only
        .subscribe_filters(vec![filter(RetainForwardRule::OnNewSubscribe)], None)
        .await;
    let got = new_only.publish_in().await;
    assert_eq!(&got.payload[..], b"kept");
    assert!(got.retain);
    new_only
        .subscribe_filters(vec![filter(RetainForwardRule::OnNewSubscribe)], None)
        .await;

    // 2: never.
    let mut never = on_other_shard(&broker, pub_shard, "rh-never").await;
    never
        .subscribe_filters(vec![filter(RetainForwardRule::Never)], None)
        .await;

    publisher
        .publish("rh/t", QoS::AtLeastOnce, false, b"sentinel")
        .await;
    for (name, client) in [("0", &mut every), ("1", &mut new_only), ("2", &mut never)] {
        let got = client.publish_in().await;
        assert_eq!(
            &got.payload[..],
            b"sentinel",
            "retain handling {name} sent a retained message it should not have"
        );
        assert!(!got.retain);
    }
}

#[tokio::test]
async fn topic_aliases_set_by_a_publisher_resolve_for_a_subscriber_on_the_other_shard() {
    let broker = Broker::start(2, "");
    let mut sub = V5::connect(v5_options(&broker, "alias-sub")).await;
    let sub_shard = broker.shard_of("alias-sub");
    let mut publisher = on_other_shard(&broker, sub_shard, "alias-pub").await;
    // A subscriber that takes two aliases from the broker: rumqttc resolves them.
    let mut aware = V5::connect_on(&broker, sub_shard, "alias-aware", |id| {
        let mut options = v5_options(&broker, id);
        options.set_topic_alias_max(Some(2));
        options
    })
    .await
    .0;
    sub.subscribe("alias/#", QoS::AtLeastOnce).await;
    aware.subscribe("alias/#", QoS::AtLeastOnce).await;
    let alias = |n| PublishProperties {
        topic_alias: Some(n),
        ..PublishProperties::default()
    };

    publisher
        .publish_with("alias/one", QoS::AtLeastOnce, false, b"set 1", alias(1))
        .await;
    publisher
        .publish_with("", QoS::AtLeastOnce, false, b"use 1", alias(1))
        .await;
    publisher
        .publish_with("alias/two", QoS::AtMostOnce, false, b"set 2", alias(2))
        .await;
    publisher
        .publish_with("", QoS::AtLeastOnce, false, b"use 2", alias(2))
        .await;
    // An alias may be pointed at another topic.
    publisher
        .publish_with(
            "alias/three",
            QoS::AtLeastOnce,
            false,
            b"repoint 1",
            alias(1),
        )
        .await;
    publisher
        .publish_with("", QoS::ExactlyOnce, false, b"use 1 again", alias(1))
        .await;

    for (topic, payload) in [
        ("alias/one", "set 1"),
        ("alias/one", "use 1"),
        ("alias/two", "set 2"),
        ("alias/two", "use 2"),
        ("alias/three", "repoint 1"),
        ("alias/three", "use 1 again"),
    ] {
        let got = sub.publish_in().await;
        assert_eq!(&got.payload[..], payload.as_bytes());
        assert_eq!(&got.topic[..], topic.as_bytes(), "{payload}");
        let alias = got.properties.and_then(|p| p.topic_alias);
        assert_eq!(alias, None, "an alias to a subscriber that allows none");

        let got = aware.publish_in().await;
        assert_eq!(&got.payload[..], payload.as_bytes());
        assert_eq!(&got.topic[..], topic.as_bytes(), "{payload}");
        let alias = got.properties.and_then(|p| p.topic_alias);
        assert!(matches!(alias, None | Some(1..=2)), "{alias:?}");
    }
}

#[tokio::test]
async fn messages_larger_than_the_subscribers_maximum_packet_size_are_not_sent_to_it() {
    let broker = Broker::start(2, "");
    let mut options = v5_options(&broker, "size-small");
    options.set_max_packet_size(Some(256));
    let mut small = V5::connect(options).await;
    let sub_shard = broker.shard_of("size-small");
    let mut large = V5::connect(v5_options(&broker, "size-large")).await;
    let mut publisher = on_other_shard(&broker, sub_shard, "size-pub").await;
    small.subscribe("size/#", QoS::AtLeastOnce).await;
    large.subscribe("size/#", QoS::AtLeastOnce).await;

    let big = vec![b'x'; 1000];
    publisher
        .publish("size/t", QoS::AtLeastOnce, false, &big)
        .await;
    publisher
        .publish("size/t", QoS::AtMostOnce, false, &big)
        .await;
    publisher
        .publish("size/t", QoS::AtLeastOnce, false, b"fits")
        .await;

    // rumqttc closes the connection on a packet over its maximum, so the small subscriber
    // would fail here rather than see the big messages.
    let got = small.publish_in().await;
    assert_eq!(
        &got.payload[..],
        b"fits",
        "a message over the maximum was sent"
    );
    assert_eq!(large.publish_in().await.payload.len(), 1000);
    assert_eq!(large.publish_in().await.payload.len(), 1000);
    assert_eq!(&large.publish_in().await.payload[..], b"fits");
    // The small subscriber's session goes on after the skipped messages.
    publisher
        .publish("size/t", QoS::AtLeastOnce, false, b"more")
        .await;
    assert_eq!(&small.publish_in().await.payload[..], b"more");
}

#[tokio::test]
async fn connack_carries_the_configured_limits_and_an_assigned_client_id() {
    let broker = Broker::start(
        2,
        "[mqtt]\nreceive_maximum = 50\ntopic_alias_maximum = 7\nmax_session_expiry_secs = 100\nmax_packet_size_bytes = 65536\n",
    );
    let options = v5_persistent(&broker, "", true, 1000);
    let mut anonymous = V5::connect(options).await;
    let properties = anonymous
        .connack
        .properties
        .clone()
        .expect("CONNACK properties");
    let assigned = properties
        .assigned_client_identifier
        .clone()
        .expect("an assigned client id for an empty one");
    assert!(!assigned.is_empty());
    assert_eq!(properties.receive_max, Some(50));
    assert_eq!(properties.topic_alias_max, Some(7));
    assert_eq!(properties.max_packet_size, Some(65536));
    assert_eq!(
        properties.session_expiry_interval,
        Some(100),
        "a session expiry above the maximum is lowered and announced"
    );
    // The assigned id is the session's name: the broker logs it, and the client works.
    let shard = broker.shard_of(&assigned);
    let mut publisher = on_other_shard(&broker, shard, "connack-pub").await;
    let not_assigned = publisher.connack.properties.as_ref();
    assert!(not_assigned
        .and_then(|p| p.assigned_client_identifier.as_ref())
        .is_none());
    anonymous.subscribe("connack/t", QoS::AtLeastOnce).await;
    publisher
        .publish("connack/t", QoS::AtLeastOnce, false, b"hello")
        .await;
    assert_eq!(&anonymous.publish_in().await.payload[..], b"hello");

    // Two anonymous clients get different ids.
    let other_anonymous = V5::connect(v5_options(&broker, "")).await;
    let other_assigned = other_anonymous
        .connack
        .properties
        .and_then(|p| p.assigned_client_identifier)
        .expect("an assigned client id");
    assert_ne!(other_assigned, assigned);
}
