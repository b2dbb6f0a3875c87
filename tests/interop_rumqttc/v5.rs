//! MQTT 5.0 with rumqttc across two shards: QoS 0/1/2 flows, retained messages, overlapping
//! subscriptions and their identifiers, sessions resumed and taken over on the other shard,
//! wills and will delay, shared subscriptions with members on both shards, and the graceful
//! stop on SIGTERM.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::v5::{
    DisconnectReasonCode, Filter, LastWill, LastWillProperties, SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;

use crate::clients::{server_disconnect_reason, v3_options, v5_options, v5_persistent, V3, V5};
use crate::common::Broker;
use crate::{other, CROSS_SHARD_TRIES};

#[tokio::test]
async fn qos_0_1_2_flow_from_a_publisher_to_a_subscriber_on_the_other_shard() {
    let broker = Broker::start(2, "");
    let mut sub = V5::connect(v5_options(&broker, "v5-qos-sub")).await;
    let sub_shard = broker.shard_of("v5-qos-sub");
    let (mut publisher, pub_id) = V5::connect_on(&broker, other(sub_shard), "v5-qos-pub", |id| {
        v5_options(&broker, id)
    })
    .await;
    assert_ne!(broker.shard_of(&pub_id), sub_shard);

    let granted = sub.subscribe("v5/qos/#", QoS::ExactlyOnce).await;
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
            .publish(&format!("v5/qos/{n}"), qos, false, payload.as_bytes())
            .await;
        let got = sub.publish_in().await;
        assert_eq!(&got.topic[..], format!("v5/qos/{n}").as_bytes());
        assert_eq!(&got.payload[..], payload.as_bytes());
        assert_eq!(got.qos, qos);
        assert!(!got.retain);
    }
    for n in 0..20u8 {
        let qos = if n % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        publisher.publish("v5/qos/run", qos, false, &[n]).await;
    }
    for n in 0..20u8 {
        assert_eq!(&sub.publish_in().await.payload[..], &[n]);
    }
}

#[tokio::test]
async fn retained_messages_reach_subscribers_on_the_other_shard_and_empty_payload_deletes() {
    let broker = Broker::start(2, "");
    let mut publisher = V5::connect(v5_options(&broker, "v5-ret-pub")).await;
    let pub_shard = broker.shard_of("v5-ret-pub");
    publisher
        .publish("v5/ret/t", QoS::ExactlyOnce, true, b"kept")
        .await;

    let (mut sub, _) = V5::connect_on(&broker, other(pub_shard), "v5-ret-sub", |id| {
        v5_options(&broker, id)
    })
    .await;
    sub.subscribe("v5/ret/+", QoS::ExactlyOnce).await;
    let got = sub.publish_in().await;
    assert_eq!(&got.topic[..], b"v5/ret/t");
    assert_eq!(&got.payload[..], b"kept");
    assert!(got.retain);
    assert_eq!(got.qos, QoS::ExactlyOnce);

    publisher
        .publish("v5/ret/t", QoS::AtLeastOnce, true, b"")
        .await;
    assert!(sub.publish_in().await.payload.is_empty());

    let (mut late, _) = V5::connect_on(&broker, other(pub_shard), "v5-ret-late", |id| {
        v5_options(&broker, id)
    })
    .await;
    late.subscribe("v5/ret/+", QoS::AtLeastOnce).await;
    publisher
        .publish("v5/ret/t", QoS::AtLeastOnce, false, b"sentinel")
        .await;
    let got = late.publish_in().await;
    assert_eq!(
        &got.payload[..],
        b"sentinel",
        "the deleted retained message was sent"
    );
}

#[tokio::test]
async fn overlapping_subscriptions_give_one_copy_with_every_subscription_identifier() {
    let broker = Broker::start(2, "");
    let mut sub = V5::connect(v5_options(&broker, "v5-ov-sub")).await;
    let sub_shard = broker.shard_of("v5-ov-sub");
    let (mut publisher, _) = V5::connect_on(&broker, other(sub_shard), "v5-ov-pub", |id| {
        v5_options(&broker, id)
    })
    .await;
    // Two identifiers at most: rumqttc 0.24 counts each Subscription Identifier property one
    // byte too long when decoding a PUBLISH, so with three it leaves the last one in the
    // payload (the broker's bytes are right).
    sub.subscribe_filters(vec![Filter::new("v5/ov/#", QoS::AtLeastOnce)], Some(1))
        .await;
    sub.subscribe_filters(vec![Filter::new("v5/ov/+/x", QoS::AtMostOnce)], Some(300))
        .await;
    sub.subscribe_filters(vec![Filter::new("v5/ov/a/+", QoS::ExactlyOnce)], None)
        .await;
    sub.subscribe_filters(vec![Filter::new("v5/ov/+/+", QoS::AtMostOnce)], None)
        .await;

    publisher
        .publish("v5/ov/a/x", QoS::ExactlyOnce, false, b"four filters")
        .await;
    publisher
        .publish("v5/ov/sentinel", QoS::ExactlyOnce, false, b"sentinel")
        .await;

    let got = sub.publish_in().await;
    assert_eq!(&got.payload[..], b"four filters");
    assert_eq!(got.qos, QoS::ExactlyOnce);
    let ids: BTreeSet<usize> = got
        .properties
        .expect("properties with the subscription identifiers")
        .subscription_identifiers
        .into_iter()
        .collect();
    assert_eq!(ids, BTreeSet::from([1, 300]));

    let got = sub.publish_in().await;
    assert_eq!(&got.payload[..], b"sentinel", "a second copy was sent");
    assert_eq!(got.qos, QoS::AtLeastOnce);
    let ids = got.properties.expect("properties").subscription_identifiers;
    assert_eq!(ids, [1]);
}

/// One 5.0 publisher on each shard, to publish from the shard a session starts on.
async fn publisher_per_shard(broker: &Broker, prefix: &str) -> Vec<V5> {
    let mut publishers = Vec::new();
    for shard in 0..2 {
        let prefix = format!("{prefix}-{shard}");
        let (publisher, _) =
            V5::connect_on(broker, shard, &prefix, |id| v5_options(broker, id)).await;
        publishers.push(publisher);
    }
    publishers
}

#[tokio::test]
async fn a_session_is_resumed_on_the_other_shard_with_its_offline_messages() {
    let broker = Broker::start(2, "");
    let mut publishers = publisher_per_shard(&broker, "v5-persist-pub").await;
    let mut crossed = false;
    for attempt in 0..CROSS_SHARD_TRIES {
        let id = format!("v5-persist-{attempt}");
        let topic = format!("v5/persist/{attempt}");
        let mut client = V5::connect(v5_persistent(&broker, &id, true, 60)).await;
        assert!(!client.connack.session_present);
        let first_shard = broker.shard_of_nth(&id, 1);
        client.subscribe(&topic, QoS::ExactlyOnce).await;
        client.disconnect().await;

        let publisher = &mut publishers[first_shard];
        for n in 0..3u8 {
            let qos = [QoS::AtLeastOnce, QoS::ExactlyOnce][usize::from(n % 2)];
            publisher.publish(&topic, qos, false, &[n]).await;
        }

        let mut client = V5::connect(v5_persistent(&broker, &id, false, 60)).await;
        assert!(client.connack.session_present, "attempt {attempt}");
        // Published once the client holds its CONNACK, from the shard the session was on.
        publisher
            .publish(&topic, QoS::AtLeastOnce, false, b"live")
            .await;
        let second_shard = broker.shard_of_nth(&id, 2);
        let crossing = format!("attempt {attempt}, shard {first_shard} to {second_shard}");
        for n in 0..3u8 {
            let got = client.publish_in().await;
            assert_eq!(&got.topic[..], topic.as_bytes());
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
async fn a_takeover_from_the_other_shard_disconnects_the_first_with_session_taken_over() {
    let broker = Broker::start(2, "");
    let mut publishers = publisher_per_shard(&broker, "v5-take-pub").await;
    let mut crossed = false;
    for attempt in 0..CROSS_SHARD_TRIES {
        let id = format!("v5-take-{attempt}");
        let topic = format!("v5/take/{attempt}");
        let mut first = V5::connect(v5_persistent(&broker, &id, true, 60)).await;
        let first_shard = broker.shard_of_nth(&id, 1);
        first.subscribe(&topic, QoS::AtLeastOnce).await;

        let mut second = V5::connect(v5_persistent(&broker, &id, false, 60)).await;
        assert!(second.connack.session_present, "attempt {attempt}");
        publishers[first_shard]
            .publish(&topic, QoS::AtLeastOnce, false, b"to the new connection")
            .await;
        let second_shard = broker.shard_of_nth(&id, 2);
        let crossing = format!("attempt {attempt}, shard {first_shard} to {second_shard}");
        let got = second
            .publish_within()
            .await
            .unwrap_or_else(|| panic!("{crossing}: the message published after CONNACK was lost"));
        assert_eq!(&got.payload[..], b"to the new connection", "{crossing}");
        let error = first.closed().await;
        assert_eq!(
            server_disconnect_reason(&error),
            Some(DisconnectReasonCode::SessionTakenOver),
            "{crossing}: {error:?}"
        );
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

/// A will on `topic` with the given delay and message properties left out.
fn will(topic: &str, delay_secs: Option<u32>) -> LastWill {
    let properties = LastWillProperties {
        delay_interval: delay_secs,
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
    };
    LastWill::new(topic, "gone", QoS::AtLeastOnce, false, Some(properties))
}

#[tokio::test]
async fn a_will_is_published_on_abrupt_close_and_not_after_disconnect() {
    let broker = Broker::start(2, "");
    let with_will = |id: &str, topic: &str| {
        let mut options = v5_options(&broker, id);
        options.set_last_will(will(topic, None));
        options
    };
    let crashing = V5::connect(with_will("v5-will-crash", "v5/will/crash")).await;
    let will_shard = broker.shard_of("v5-will-crash");
    let (mut sub, _) = V5::connect_on(&broker, other(will_shard), "v5-will-sub", |id| {
        v5_options(&broker, id)
    })
    .await;
    sub.subscribe("v5/will/#", QoS::AtLeastOnce).await;

    crashing.kill().await;
    let got = sub.publish_in().await;
    assert_eq!(&got.topic[..], b"v5/will/crash");
    assert_eq!(&got.payload[..], b"gone");
    assert_eq!(got.qos, QoS::AtLeastOnce);

    let (polite, _) = V5::connect_on(&broker, will_shard, "v5-will-polite", |id| {
        with_will(id, "v5/will/polite")
    })
    .await;
    let (mut neighbour, _) = V5::connect_on(&broker, will_shard, "v5-will-nb", |id| {
        v5_options(&broker, id)
    })
    .await;
    polite.disconnect().await;
    neighbour
        .publish("v5/will/sentinel", QoS::AtLeastOnce, false, b"sentinel")
        .await;
    let got = sub.publish_in().await;
    assert_eq!(
        &got.topic[..],
        b"v5/will/sentinel",
        "a will was published after DISCONNECT"
    );
}

#[tokio::test]
async fn a_delayed_will_waits_for_its_delay_and_is_dropped_when_the_client_returns() {
    let broker = Broker::start(2, "");
    let mut sub = V5::connect(v5_options(&broker, "v5-delay-sub")).await;
    sub.subscribe("v5/delay/#", QoS::AtLeastOnce).await;

    // Back within the delay (3 s, so a busy machine still reconnects in time): no will.
    let mut options = v5_persistent(&broker, "v5-delay-back", true, 60);
    options.set_last_will(will("v5/delay/back", Some(3)));
    let returning = V5::connect(options).await;
    returning.kill().await;
    let mut options = v5_persistent(&broker, "v5-delay-back", false, 60);
    options.set_last_will(will("v5/delay/back", Some(3)));
    let mut returned = V5::connect(options).await;
    assert!(returned.connack.session_present);

    // Not back: the will is published once its delay (2 s) has passed, not before.
    let mut options = v5_persistent(&broker, "v5-delay-away", true, 60);
    options.set_last_will(will("v5/delay/away", Some(2)));
    let away = V5::connect(options).await;
    away.kill().await;
    let closed_at = Instant::now();
    let got = sub.publish_in().await;
    assert_eq!(
        &got.topic[..],
        b"v5/delay/away",
        "the first will is the absent client's"
    );
    // A lower bound only: the broker saw the close no earlier than `closed_at` minus the
    // moment it took this task to note the time.
    assert!(
        closed_at.elapsed() >= Duration::from_millis(1500),
        "published before its delay"
    );

    // By now the returned client's delay (3 s) has passed too, since it reconnected before
    // the other client was killed. Wait past it with margin, then send a sentinel.
    tokio::time::sleep(Duration::from_secs(2)).await;
    returned
        .publish("v5/delay/sentinel", QoS::AtLeastOnce, false, b"sentinel")
        .await;
    let got = sub.publish_in().await;
    assert_eq!(
        &got.topic[..],
        b"v5/delay/sentinel",
        "the will of a client that came back in time was published"
    );
}

#[tokio::test]
async fn a_shared_subscription_with_members_on_both_shards_delivers_each_message_once() {
    const MESSAGES: u8 = 40;
    let broker = Broker::start(2, "");
    let mut members = Vec::new();
    for shard in 0..2 {
        let (mut member, _) = V5::connect_on(&broker, shard, &format!("v5-share-{shard}"), |id| {
            v5_options(&broker, id)
        })
        .await;
        member
            .subscribe("$share/g/v5/share/t", QoS::AtLeastOnce)
            .await;
        member.subscribe("v5/share/done", QoS::AtLeastOnce).await;
        members.push(member);
    }
    let mut publisher = V5::connect(v5_options(&broker, "v5-share-pub")).await;
    for n in 0..MESSAGES {
        publisher
            .publish("v5/share/t", QoS::AtLeastOnce, false, &[n])
            .await;
    }
    // Every member gets the plain "done" after its share of the group's messages: each
    // shard's deliveries to a connection keep the order they were published in.
    publisher
        .publish("v5/share/done", QoS::AtLeastOnce, false, b"done")
        .await;

    let mut seen = Vec::new();
    let mut per_member = Vec::new();
    for member in &mut members {
        let mut count = 0;
        loop {
            let got = member.publish_in().await;
            if &got.topic[..] == b"v5/share/done" {
                break;
            }
            assert_eq!(&got.topic[..], b"v5/share/t");
            assert_eq!(got.qos, QoS::AtLeastOnce);
            seen.push(got.payload[0]);
            count += 1;
        }
        per_member.push(count);
    }
    seen.sort_unstable();
    let expected: Vec<u8> = (0..MESSAGES).collect();
    assert_eq!(
        seen, expected,
        "each message exactly once to the group: {per_member:?}"
    );
    assert!(per_member.iter().all(|&n| n > 0), "{per_member:?}");
}

#[tokio::test]
async fn sigterm_sends_server_shutting_down_to_5_0_clients_closes_3_1_1_and_exits_0() {
    let broker = Broker::start(2, "");
    let mut clients5 = Vec::new();
    for shard in 0..2 {
        let (client, _) = V5::connect_on(&broker, shard, &format!("v5-stop-{shard}"), |id| {
            v5_options(&broker, id)
        })
        .await;
        clients5.push(client);
    }
    let mut client3 = V3::connect(v3_options(&broker, "v3-stop")).await;
    broker.shard_of("v3-stop");

    let status = tokio::task::spawn_blocking(move || broker.stop());
    let mut reasons = Vec::new();
    for client in &mut clients5 {
        let error = client.closed().await;
        reasons.push((server_disconnect_reason(&error), error));
    }
    client3.closed().await;
    // `stop` gives up (and panics) if the broker takes longer than the harness's wait.
    let status = status.await.expect("the broker stops");
    assert!(status.success(), "{status:?}");
    for (reason, error) in reasons {
        assert_eq!(
            reason,
            Some(DisconnectReasonCode::ServerShuttingDown),
            "{error:?}"
        );
    }
}
