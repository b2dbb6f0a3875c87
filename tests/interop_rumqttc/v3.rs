//! MQTT 3.1.1 with rumqttc across two shards: QoS 0/1/2 flows, retained messages set and
//! deleted, overlapping subscriptions, persistent sessions resumed and taken over on the
//! other shard, and wills on abrupt close only.

use rumqttc::{LastWill, QoS, SubscribeReasonCode};

use crate::clients::{v3_options, V3};
use crate::common::Broker;
use crate::{other, CROSS_SHARD_TRIES};

#[tokio::test]
async fn qos_0_1_2_flow_from_a_publisher_to_a_subscriber_on_the_other_shard() {
    let broker = Broker::start(2, "");
    let mut sub = V3::connect(v3_options(&broker, "v3-qos-sub")).await;
    let sub_shard = broker.shard_of("v3-qos-sub");
    let (mut publisher, pub_id) = V3::connect_on(&broker, other(sub_shard), "v3-qos-pub", |id| {
        v3_options(&broker, id)
    })
    .await;
    assert_ne!(broker.shard_of(&pub_id), sub_shard);

    let granted = sub.subscribe("v3/qos/#", QoS::ExactlyOnce).await;
    assert!(matches!(
        granted,
        SubscribeReasonCode::Success(QoS::ExactlyOnce)
    ));
    for (n, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let payload = format!("payload at {qos:?}");
        publisher
            .publish(&format!("v3/qos/{n}"), qos, false, payload.as_bytes())
            .await;
        let got = sub.publish_in().await;
        assert_eq!(got.topic, format!("v3/qos/{n}"));
        assert_eq!(&got.payload[..], payload.as_bytes());
        assert_eq!(got.qos, qos);
        assert!(!got.retain);
    }

    // A run of QoS 1 and 2 messages keeps its order across the shards.
    for n in 0..20u8 {
        let qos = if n % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        publisher.publish("v3/qos/run", qos, false, &[n]).await;
    }
    for n in 0..20u8 {
        let got = sub.publish_in().await;
        assert_eq!(&got.payload[..], &[n]);
    }

    // A subscription granted QoS 1 gets a QoS 2 message at QoS 1.
    let mut low = V3::connect(v3_options(&broker, "v3-qos-low")).await;
    let granted = low.subscribe("v3/qos/low", QoS::AtLeastOnce).await;
    assert!(matches!(
        granted,
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    ));
    publisher
        .publish("v3/qos/low", QoS::ExactlyOnce, false, b"downgraded")
        .await;
    let got = low.publish_in().await;
    assert_eq!(&got.payload[..], b"downgraded");
    assert_eq!(got.qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn retained_messages_reach_subscribers_on_the_other_shard_and_empty_payload_deletes() {
    let broker = Broker::start(2, "");
    let mut publisher = V3::connect(v3_options(&broker, "v3-ret-pub")).await;
    let pub_shard = broker.shard_of("v3-ret-pub");
    publisher
        .publish("v3/ret/t", QoS::AtLeastOnce, true, b"kept")
        .await;

    let (mut sub, _) = V3::connect_on(&broker, other(pub_shard), "v3-ret-sub", |id| {
        v3_options(&broker, id)
    })
    .await;
    sub.subscribe("v3/ret/t", QoS::AtLeastOnce).await;
    let got = sub.publish_in().await;
    assert_eq!(&got.payload[..], b"kept");
    assert!(
        got.retain,
        "a retained message sent on subscribe has the retain flag"
    );
    assert_eq!(got.qos, QoS::AtLeastOnce);

    // To a subscription that already exists, a retained publish goes out with retain 0
    // [MQTT-3.3.1-9].
    publisher
        .publish("v3/ret/t", QoS::AtLeastOnce, true, b"replaced")
        .await;
    let got = sub.publish_in().await;
    assert_eq!(&got.payload[..], b"replaced");
    assert!(!got.retain);

    // An empty retained payload deletes, and is itself delivered like any message.
    publisher
        .publish("v3/ret/t", QoS::AtLeastOnce, true, b"")
        .await;
    let got = sub.publish_in().await;
    assert!(got.payload.is_empty());

    let (mut late, _) = V3::connect_on(&broker, other(pub_shard), "v3-ret-late", |id| {
        v3_options(&broker, id)
    })
    .await;
    late.subscribe("v3/ret/t", QoS::AtLeastOnce).await;
    publisher
        .publish("v3/ret/t", QoS::AtLeastOnce, false, b"sentinel")
        .await;
    let got = late.publish_in().await;
    assert_eq!(
        &got.payload[..],
        b"sentinel",
        "the deleted retained message was sent"
    );
    assert!(!got.retain);
}

#[tokio::test]
async fn overlapping_subscriptions_give_one_copy_at_the_highest_granted_qos() {
    let broker = Broker::start(2, "");
    let mut sub = V3::connect(v3_options(&broker, "v3-ov-sub")).await;
    let sub_shard = broker.shard_of("v3-ov-sub");
    let (mut publisher, _) = V3::connect_on(&broker, other(sub_shard), "v3-ov-pub", |id| {
        v3_options(&broker, id)
    })
    .await;
    sub.subscribe("v3/ov/#", QoS::AtLeastOnce).await;
    sub.subscribe("v3/ov/+/x", QoS::ExactlyOnce).await;
    sub.subscribe("v3/ov/a/x", QoS::AtMostOnce).await;

    publisher
        .publish("v3/ov/a/x", QoS::ExactlyOnce, false, b"three filters")
        .await;
    publisher
        .publish("v3/ov/b/x", QoS::AtLeastOnce, false, b"two filters")
        .await;
    publisher
        .publish("v3/ov/sentinel", QoS::ExactlyOnce, false, b"sentinel")
        .await;

    let got = sub.publish_in().await;
    assert_eq!(&got.payload[..], b"three filters");
    assert_eq!(got.qos, QoS::ExactlyOnce);
    let got = sub.publish_in().await;
    assert_eq!(&got.payload[..], b"two filters", "a second copy was sent");
    assert_eq!(got.qos, QoS::AtLeastOnce);
    let got = sub.publish_in().await;
    assert_eq!(&got.payload[..], b"sentinel", "a second copy was sent");
    assert_eq!(got.qos, QoS::AtLeastOnce);
}

/// One 3.1.1 publisher on each shard, to publish from the shard a session starts on.
async fn publisher_per_shard(broker: &Broker, prefix: &str) -> Vec<V3> {
    let mut publishers = Vec::new();
    for shard in 0..2 {
        let prefix = format!("{prefix}-{shard}");
        let (publisher, _) =
            V3::connect_on(broker, shard, &prefix, |id| v3_options(broker, id)).await;
        publishers.push(publisher);
    }
    publishers
}

#[tokio::test]
async fn a_persistent_session_is_resumed_on_the_other_shard_with_its_offline_messages() {
    let broker = Broker::start(2, "");
    let mut publishers = publisher_per_shard(&broker, "v3-persist-pub").await;
    let persistent = |id: &str| {
        let mut options = v3_options(&broker, id);
        options.set_clean_session(false);
        options
    };
    let mut crossed = false;
    for attempt in 0..CROSS_SHARD_TRIES {
        let id = format!("v3-persist-{attempt}");
        let topic = format!("v3/persist/{attempt}");
        let mut client = V3::connect(persistent(&id)).await;
        assert!(!client.connack.session_present);
        let first_shard = broker.shard_of_nth(&id, 1);
        client.subscribe(&topic, QoS::ExactlyOnce).await;
        client.disconnect().await;

        // Published on the session's shard while its client is away.
        let publisher = &mut publishers[first_shard];
        for n in 0..3u8 {
            let qos = [QoS::AtLeastOnce, QoS::ExactlyOnce][usize::from(n % 2)];
            publisher.publish(&topic, qos, false, &[n]).await;
        }

        let mut client = V3::connect(persistent(&id)).await;
        assert!(client.connack.session_present, "attempt {attempt}");
        // Published once the client holds its CONNACK, from the shard the session was on:
        // the session's subscription must be routed to wherever it now is.
        publisher
            .publish(&topic, QoS::AtLeastOnce, false, b"live")
            .await;
        let second_shard = broker.shard_of_nth(&id, 2);
        let crossing = format!("attempt {attempt}, shard {first_shard} to {second_shard}");
        for n in 0..3u8 {
            let got = client.publish_in().await;
            assert_eq!(got.topic, topic);
            assert_eq!(&got.payload[..], &[n], "{crossing}");
            assert_eq!(
                got.qos,
                [QoS::AtLeastOnce, QoS::ExactlyOnce][usize::from(n % 2)]
            );
        }
        let got = client
            .publish_within()
            .await
            .unwrap_or_else(|| panic!("{crossing}: the message published after CONNACK was lost"));
        assert_eq!(&got.payload[..], b"live", "{crossing}");
        client.disconnect().await;
        if first_shard != second_shard {
            crossed = true;
            break;
        }
    }
    assert!(
        crossed,
        "no resume landed on the other shard in {CROSS_SHARD_TRIES} tries"
    );
}

#[tokio::test]
async fn a_takeover_from_the_other_shard_closes_the_first_connection() {
    let broker = Broker::start(2, "");
    let mut publishers = publisher_per_shard(&broker, "v3-take-pub").await;
    let persistent = |id: &str| {
        let mut options = v3_options(&broker, id);
        options.set_clean_session(false);
        options
    };
    let mut crossed = false;
    for attempt in 0..CROSS_SHARD_TRIES {
        let id = format!("v3-take-{attempt}");
        let topic = format!("v3/take/{attempt}");
        let mut first = V3::connect(persistent(&id)).await;
        let first_shard = broker.shard_of_nth(&id, 1);
        first.subscribe(&topic, QoS::AtLeastOnce).await;

        let mut second = V3::connect(persistent(&id)).await;
        assert!(second.connack.session_present, "attempt {attempt}");
        publishers[first_shard]
            .publish(&topic, QoS::AtLeastOnce, false, b"to the new connection")
            .await;
        let second_shard = broker.shard_of_nth(&id, 2);
        let crossing = format!("attempt {attempt}, shard {first_shard} to {second_shard}");
        let error = first.closed().await;
        assert!(
            matches!(
                error,
                rumqttc::ConnectionError::Io(_) | rumqttc::ConnectionError::MqttState(_)
            ),
            "{error:?}"
        );
        let got = second
            .publish_within()
            .await
            .unwrap_or_else(|| panic!("{crossing}: the message published after CONNACK was lost"));
        assert_eq!(&got.payload[..], b"to the new connection", "{crossing}");
        second.disconnect().await;
        if first_shard != second_shard {
            crossed = true;
            break;
        }
    }
    assert!(
        crossed,
        "no takeover came from the other shard in {CROSS_SHARD_TRIES} tries"
    );
}

#[tokio::test]
async fn a_will_is_published_on_abrupt_close_and_not_after_disconnect() {
    let broker = Broker::start(2, "");
    let with_will = |id: &str, topic: &str| {
        let mut options = v3_options(&broker, id);
        options.set_last_will(LastWill::new(topic, "gone", QoS::AtLeastOnce, false));
        options
    };
    let crashing = V3::connect(with_will("v3-will-crash", "v3/will/crash")).await;
    let will_shard = broker.shard_of("v3-will-crash");
    let (mut sub, _) = V3::connect_on(&broker, other(will_shard), "v3-will-sub", |id| {
        v3_options(&broker, id)
    })
    .await;
    sub.subscribe("v3/will/#", QoS::AtLeastOnce).await;

    crashing.kill().await;
    let got = sub.publish_in().await;
    assert_eq!(got.topic, "v3/will/crash");
    assert_eq!(&got.payload[..], b"gone");
    assert_eq!(got.qos, QoS::AtLeastOnce);

    // A client that disconnects normally has its will discarded. The sentinel comes from the
    // same shard, after the close, so it would follow a wrongly published will.
    let (polite, _) = V3::connect_on(&broker, will_shard, "v3-will-polite", |id| {
        with_will(id, "v3/will/polite")
    })
    .await;
    let (mut neighbour, _) = V3::connect_on(&broker, will_shard, "v3-will-nb", |id| {
        v3_options(&broker, id)
    })
    .await;
    polite.disconnect().await;
    neighbour
        .publish("v3/will/sentinel", QoS::AtLeastOnce, false, b"sentinel")
        .await;
    let got = sub.publish_in().await;
    assert_eq!(
        got.topic, "v3/will/sentinel",
        "a will was published after DISCONNECT"
    );
}
