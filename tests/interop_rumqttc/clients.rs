//! rumqttc clients driven the way the interop tests need them: each connection's event loop is
//! pumped by a task of its own into a channel, so a test reads incoming packets in order with a
//! timeout on every wait, and stops a client either politely (DISCONNECT) or abruptly (the task
//! is aborted and the socket dropped without a DISCONNECT, as when a process dies).
//!
//! Publishes that arrive while a test waits for an acknowledgement are kept, never dropped.
//! [`V3::connect_on`] and [`V5::connect_on`] reconnect under fresh client ids until the kernel
//! puts the connection on the wanted shard.

use std::collections::VecDeque;
use std::time::Duration;

use rumqttc::v5;
use rumqttc::v5::mqttbytes::v5 as p5;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::common::Broker;

/// The longest any single wait of a test lasts.
pub const WAIT: Duration = Duration::from_secs(10);

/// Attempts to land a connection on a given shard; each succeeds with probability about 1/2.
const PLACEMENT_ATTEMPTS: usize = 50;

/// Pumps an event loop into a channel until the connection fails or closes; never reconnects.
macro_rules! spawn_pump {
    ($eventloop:expr) => {{
        let mut eventloop = $eventloop;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                let event = eventloop.poll().await;
                let failed = event.is_err();
                if tx.send(event).is_err() || failed {
                    break;
                }
            }
        });
        (rx, task)
    }};
}

/// Waits for the next event of a pump's channel; `None` once the pump has ended.
async fn next<T>(events: &mut mpsc::UnboundedReceiver<T>, what: &str) -> Option<T> {
    timeout(WAIT, events.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
}

/// An MQTT 3.1.1 client.
pub struct V3 {
    pub client: rumqttc::AsyncClient,
    pub connack: rumqttc::ConnAck,
    events: mpsc::UnboundedReceiver<Result<rumqttc::Event, rumqttc::ConnectionError>>,
    task: JoinHandle<()>,
    stash: VecDeque<rumqttc::Publish>,
}

/// 3.1.1 options for `id` against the broker, clean session.
pub fn v3_options(broker: &Broker, id: &str) -> rumqttc::MqttOptions {
    let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(60));
    options
}

impl V3 {
    /// Connects and waits for a successful CONNACK; panics otherwise.
    pub async fn connect(options: rumqttc::MqttOptions) -> Self {
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 64);
        let first = timeout(WAIT, eventloop.poll())
            .await
            .expect("no CONNACK in time");
        let connack = match first {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(connack))) => connack,
            other => panic!("expected a CONNACK, got {other:?}"),
        };
        let (events, task) = spawn_pump!(eventloop);
        Self {
            client,
            connack,
            events,
            task,
            stash: VecDeque::new(),
        }
    }

    /// Connects clients named `{prefix}-{attempt}` until one lands on `shard`; returns it and
    /// its id. Clients on the wrong shard disconnect politely.
    pub async fn connect_on(
        broker: &Broker,
        shard: usize,
        prefix: &str,
        options: impl Fn(&str) -> rumqttc::MqttOptions,
    ) -> (Self, String) {
        for attempt in 0..PLACEMENT_ATTEMPTS {
            let id = format!("{prefix}-{attempt}");
            let client = Self::connect(options(&id)).await;
            if broker.shard_of(&id) == shard {
                return (client, id);
            }
            client.disconnect().await;
        }
        panic!(
            "no connection of {prefix} landed on shard {shard} in {PLACEMENT_ATTEMPTS} attempts"
        );
    }

    /// The next event, or the error that ended the connection.
    async fn event(&mut self) -> Result<rumqttc::Event, rumqttc::ConnectionError> {
        next(&mut self.events, "event")
            .await
            .expect("the connection already ended")
    }

    /// The next incoming packet other than a PUBLISH (those are kept for [`V3::publish_in`]).
    async fn packet(&mut self) -> rumqttc::Packet {
        loop {
            match self.event().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish))) => {
                    self.stash.push_back(publish);
                }
                Ok(rumqttc::Event::Incoming(packet)) => return packet,
                Ok(rumqttc::Event::Outgoing(_)) => {}
                Err(error) => panic!("the connection ended: {error:?}"),
            }
        }
    }

    /// The next PUBLISH that arrives.
    pub async fn publish_in(&mut self) -> rumqttc::Publish {
        self.publish_within()
            .await
            .unwrap_or_else(|| panic!("no PUBLISH within {WAIT:?}"))
    }

    /// The next PUBLISH that arrives, or `None` when none comes within [`WAIT`].
    pub async fn publish_within(&mut self) -> Option<rumqttc::Publish> {
        if let Some(publish) = self.stash.pop_front() {
            return Some(publish);
        }
        loop {
            let event = timeout(WAIT, self.events.recv()).await.ok()?;
            match event.expect("the connection already ended") {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(publish))) => {
                    return Some(publish)
                }
                Ok(_) => {}
                Err(error) => panic!("the connection ended waiting for a PUBLISH: {error:?}"),
            }
        }
    }

    /// Subscribes and returns the granted QoS (or failure) from the SUBACK.
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: rumqttc::QoS,
    ) -> rumqttc::SubscribeReasonCode {
        self.client.subscribe(filter, qos).await.unwrap();
        loop {
            if let rumqttc::Packet::SubAck(suback) = self.packet().await {
                assert_eq!(suback.return_codes.len(), 1);
                return suback.return_codes[0];
            }
        }
    }

    /// Publishes, and for QoS 1 and 2 waits until the broker has acknowledged it (PUBACK,
    /// PUBCOMP). Publishes are made one at a time, so the next acknowledgement is this one's.
    pub async fn publish(&mut self, topic: &str, qos: rumqttc::QoS, retain: bool, payload: &[u8]) {
        self.client
            .publish(topic, qos, retain, payload.to_vec())
            .await
            .unwrap();
        match qos {
            rumqttc::QoS::AtMostOnce => {}
            rumqttc::QoS::AtLeastOnce => loop {
                if let rumqttc::Packet::PubAck(_) = self.packet().await {
                    break;
                }
            },
            rumqttc::QoS::ExactlyOnce => loop {
                if let rumqttc::Packet::PubComp(_) = self.packet().await {
                    break;
                }
            },
        }
    }

    /// Waits until the connection ends and returns why.
    pub async fn closed(&mut self) -> rumqttc::ConnectionError {
        loop {
            match next(&mut self.events, "close of the connection").await {
                Some(Ok(_)) => {}
                Some(Err(error)) => return error,
                None => panic!("the connection's pump ended without an error"),
            }
        }
    }

    /// Sends DISCONNECT and waits until the broker has closed the connection.
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.unwrap();
        self.closed().await;
    }

    /// Drops the connection without a DISCONNECT, as a crashed client would.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// An MQTT 5.0 client.
pub struct V5 {
    pub client: v5::AsyncClient,
    pub connack: p5::ConnAck,
    events: mpsc::UnboundedReceiver<Result<v5::Event, v5::ConnectionError>>,
    task: JoinHandle<()>,
    stash: VecDeque<p5::Publish>,
}

/// 5.0 options for `id` against the broker, clean start, no session expiry.
pub fn v5_options(broker: &Broker, id: &str) -> v5::MqttOptions {
    let mut options = v5::MqttOptions::new(id, "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(60));
    options
}

/// 5.0 options for a session that outlives its connection by `expiry_secs`, resumed when
/// `clean_start` is false.
pub fn v5_persistent(
    broker: &Broker,
    id: &str,
    clean_start: bool,
    expiry_secs: u32,
) -> v5::MqttOptions {
    let mut options = v5_options(broker, id);
    options.set_clean_start(clean_start);
    options.set_connect_properties(p5::ConnectProperties {
        session_expiry_interval: Some(expiry_secs),
        ..p5::ConnectProperties::new()
    });
    options
}

/// The reason code of a server DISCONNECT, if that is what ended a connection.
///
/// rumqttc 0.24 reads a DISCONNECT only when it carries the Property Length byte: the short
/// form `E0 01 <reason>`, valid by [MQTT 3.14.2.2.1] and sent by mosquitto too, makes it wait
/// for one more byte, so the close shows up as an I/O error and this returns `None`.
pub fn server_disconnect_reason(error: &v5::ConnectionError) -> Option<p5::DisconnectReasonCode> {
    match error {
        v5::ConnectionError::MqttState(v5::StateError::ServerDisconnect {
            reason_code, ..
        }) => Some(*reason_code),
        _ => None,
    }
}

impl V5 {
    /// Connects and waits for a successful CONNACK; panics otherwise.
    pub async fn connect(options: v5::MqttOptions) -> Self {
        let (client, mut eventloop) = v5::AsyncClient::new(options, 64);
        let first = timeout(WAIT, eventloop.poll())
            .await
            .expect("no CONNACK in time");
        let connack = match first {
            Ok(v5::Event::Incoming(p5::Packet::ConnAck(connack))) => connack,
            other => panic!("expected a CONNACK, got {other:?}"),
        };
        let (events, task) = spawn_pump!(eventloop);
        Self {
            client,
            connack,
            events,
            task,
            stash: VecDeque::new(),
        }
    }

    /// Connects clients named `{prefix}-{attempt}` until one lands on `shard`; returns it and
    /// its id. Clients on the wrong shard disconnect politely.
    pub async fn connect_on(
        broker: &Broker,
        shard: usize,
        prefix: &str,
        options: impl Fn(&str) -> v5::MqttOptions,
    ) -> (Self, String) {
        for attempt in 0..PLACEMENT_ATTEMPTS {
            let id = format!("{prefix}-{attempt}");
            let client = Self::connect(options(&id)).await;
            if broker.shard_of(&id) == shard {
                return (client, id);
            }
            client.disconnect().await;
        }
        panic!(
            "no connection of {prefix} landed on shard {shard} in {PLACEMENT_ATTEMPTS} attempts"
        );
    }

    /// The next event, or the error that ended the connection.
    async fn event(&mut self) -> Result<v5::Event, v5::ConnectionError> {
        next(&mut self.events, "event")
            .await
            .expect("the connection already ended")
    }

    /// The next incoming packet other than a PUBLISH (those are kept for [`V5::publish_in`]).
    async fn packet(&mut self) -> p5::Packet {
        loop {
            match self.event().await {
                Ok(v5::Event::Incoming(p5::Packet::Publish(publish))) => {
                    self.stash.push_back(publish);
                }
                Ok(v5::Event::Incoming(packet)) => return packet,
                Ok(v5::Event::Outgoing(_)) => {}
                Err(error) => panic!("the connection ended: {error:?}"),
            }
        }
    }

    /// The next PUBLISH that arrives.
    pub async fn publish_in(&mut self) -> p5::Publish {
        self.publish_within()
            .await
            .unwrap_or_else(|| panic!("no PUBLISH within {WAIT:?}"))
    }

    /// The next PUBLISH that arrives, or `None` when none comes within [`WAIT`].
    pub async fn publish_within(&mut self) -> Option<p5::Publish> {
        if let Some(publish) = self.stash.pop_front() {
            return Some(publish);
        }
        loop {
            let event = timeout(WAIT, self.events.recv()).await.ok()?;
            match event.expect("the connection already ended") {
                Ok(v5::Event::Incoming(p5::Packet::Publish(publish))) => return Some(publish),
                Ok(_) => {}
                Err(error) => panic!("the connection ended waiting for a PUBLISH: {error:?}"),
            }
        }
    }

    /// Subscribes with filters of its own options and an optional subscription identifier;
    /// returns the SUBACK's reason codes.
    pub async fn subscribe_filters(
        &mut self,
        filters: Vec<p5::Filter>,
        id: Option<usize>,
    ) -> Vec<p5::SubscribeReasonCode> {
        match id {
            Some(id) => {
                let properties = p5::SubscribeProperties {
                    id: Some(id),
                    user_properties: Vec::new(),
                };
                self.client
                    .subscribe_many_with_properties(filters, properties)
                    .await
                    .unwrap();
            }
            None => self.client.subscribe_many(filters).await.unwrap(),
        }
        loop {
            if let p5::Packet::SubAck(suback) = self.packet().await {
                return suback.return_codes;
            }
        }
    }

    /// Subscribes to one filter with default options; returns its reason code.
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: v5::mqttbytes::QoS,
    ) -> p5::SubscribeReasonCode {
        let codes = self
            .subscribe_filters(vec![p5::Filter::new(filter, qos)], None)
            .await;
        assert_eq!(codes.len(), 1);
        codes[0]
    }

    /// Publishes with properties, and for QoS 1 and 2 waits until the broker has acknowledged
    /// it (PUBACK, PUBCOMP). Publishes are made one at a time, so the next acknowledgement is
    /// this one's.
    pub async fn publish_with(
        &mut self,
        topic: &str,
        qos: v5::mqttbytes::QoS,
        retain: bool,
        payload: &[u8],
        properties: p5::PublishProperties,
    ) {
        self.client
            .publish_with_properties(topic, qos, retain, payload.to_vec(), properties)
            .await
            .unwrap();
        match qos {
            v5::mqttbytes::QoS::AtMostOnce => {}
            v5::mqttbytes::QoS::AtLeastOnce => loop {
                if let p5::Packet::PubAck(_) = self.packet().await {
                    break;
                }
            },
            v5::mqttbytes::QoS::ExactlyOnce => loop {
                if let p5::Packet::PubComp(_) = self.packet().await {
                    break;
                }
            },
        }
    }

    /// Publishes without properties; see [`V5::publish_with`].
    pub async fn publish(
        &mut self,
        topic: &str,
        qos: v5::mqttbytes::QoS,
        retain: bool,
        payload: &[u8],
    ) {
        self.publish_with(
            topic,
            qos,
            retain,
            payload,
            p5::PublishProperties::default(),
        )
        .await;
    }

    /// Waits until the connection ends and returns why.
    pub async fn closed(&mut self) -> v5::ConnectionError {
        loop {
            match next(&mut self.events, "close of the connection").await {
                Some(Ok(_)) => {}
                Some(Err(error)) => return error,
                None => panic!("the connection's pump ended without an error"),
            }
        }
    }

    /// Sends DISCONNECT (Normal disconnection) and waits until the broker has closed the
    /// connection.
    pub async fn disconnect(mut self) {
        self.client.disconnect().await.unwrap();
        self.closed().await;
    }

    /// Drops the connection without a DISCONNECT, as a crashed client would.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}
