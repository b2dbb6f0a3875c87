//! Decision hooks: the operator's say in what the broker allows.
//!
//! One trait per decision point, as VerneMQ has them: [`AuthOnRegister`] (a CONNECT),
//! [`AuthOnSubscribe`] (each filter of a SUBSCRIBE), [`AuthOnPublish`] (each PUBLISH) and
//! [`OnDeliver`] (each delivery to each subscriber). A shard runs the hooks of a point
//! synchronously, as a chain in the configured order ([`HookChain`]): the first hook that
//! answers anything but [`Verdict::Next`] decides; when every hook says next, the request is
//! denied. A point with no hook configured allows everything, so a broker without hooks
//! behaves as one without this module.
//!
//! Hooks run on the shard, per message for the publish and deliver points: they must not block
//! or wait on the network (a decision that needs a remote service belongs on connect or
//! subscribe, with a timeout and a cache).

use std::net::SocketAddr;

use bytes::Bytes;

use crate::protocol::{
    ClientId, MqttString, ProtocolVersion, QoS, ReasonCode, TopicFilter, TopicName,
};

/// What one hook answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<C> {
    /// Allowed as asked.
    Allow,
    /// Allowed with these changes.
    AllowWith(C),
    /// Refused.
    Deny(Denial),
    /// This hook has no opinion: ask the next one.
    Next,
}

/// A refusal: the reason code the client sees (5.0; 3.x maps it to its own codes) and a
/// reason string for the log and, where the client allows, the Reason String property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// CONNACK, SUBACK or PUBACK/PUBREC reason code.
    pub code: ReasonCode,
    /// Why, in words.
    pub reason: String,
    /// Close the client's connection as well (a topic outside the topic table, where the
    /// table says so): 5.0 clients get a DISCONNECT with `code`.
    pub disconnect: bool,
    /// A message the broker publishes in place of the denied one (the rejected-publish
    /// feedback on `<topic>/rejected`). Publish denials only.
    pub feedback: Option<Feedback>,
}

/// A message published by the broker itself about a denied publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    /// Where it goes.
    pub topic: TopicName,
    /// What it says.
    pub payload: Bytes,
}

impl Denial {
    /// A denial with `code` and `reason` that leaves the connection open.
    pub fn new(code: ReasonCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
            disconnect: false,
            feedback: None,
        }
    }

    /// The same denial, closing the connection too.
    #[must_use]
    pub fn and_disconnect(mut self) -> Self {
        self.disconnect = true;
        self
    }

    /// The same denial, publishing `feedback` in place of the denied message.
    #[must_use]
    pub fn with_feedback(mut self, feedback: Feedback) -> Self {
        self.feedback = Some(feedback);
        self
    }
}

/// What a whole chain decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<C> {
    /// Allowed, with the deciding hook's changes if it made any.
    Allow(Option<C>),
    /// Refused.
    Deny(Denial),
}

/// The CONNECT being decided.
#[derive(Debug, Clone, Copy)]
pub struct RegisterRequest<'a> {
    /// Client id (as sent; empty when a 5.0 client asks the broker to assign one).
    pub client_id: &'a ClientId,
    /// User name, if sent.
    pub username: Option<&'a MqttString>,
    /// Password (or token), if sent.
    pub password: Option<&'a Bytes>,
    /// The peer's address.
    pub address: Option<SocketAddr>,
    /// Protocol version of the CONNECT.
    pub protocol: ProtocolVersion,
}

/// Changes a register hook may make.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegisterChanges {
    /// Replace the user name the broker records for this client (for example the identity a
    /// token stands for).
    pub username: Option<MqttString>,
}

/// The subscription filter being decided.
#[derive(Debug, Clone, Copy)]
pub struct SubscribeRequest<'a> {
    /// Who subscribes.
    pub client_id: &'a ClientId,
    /// Their user name.
    pub username: Option<&'a MqttString>,
    /// The filter.
    pub filter: &'a TopicFilter,
    /// The QoS asked for.
    pub qos: QoS,
}

/// Changes a subscribe hook may make.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeChanges {
    /// Subscribe to this filter instead.
    pub filter: Option<TopicFilter>,
    /// Grant this QoS instead (never above what was asked).
    pub qos: Option<QoS>,
}

/// The PUBLISH being decided.
#[derive(Debug, Clone, Copy)]
pub struct PublishRequest<'a> {
    /// Who publishes.
    pub client_id: &'a ClientId,
    /// Their user name.
    pub username: Option<&'a MqttString>,
    /// Topic (aliases resolved).
    pub topic: &'a TopicName,
    /// Payload.
    pub payload: &'a Bytes,
    /// QoS.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
}

/// Changes a publish hook may make.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishChanges {
    /// Route to this topic instead.
    pub topic: Option<TopicName>,
    /// Route this payload instead.
    pub payload: Option<Bytes>,
    /// Route with this QoS instead.
    pub qos: Option<QoS>,
    /// Route with this retain flag instead.
    pub retain: Option<bool>,
}

/// One delivery being decided.
#[derive(Debug, Clone, Copy)]
pub struct DeliverRequest<'a> {
    /// The subscriber.
    pub client_id: &'a ClientId,
    /// Its user name.
    pub username: Option<&'a MqttString>,
    /// Topic of the message.
    pub topic: &'a TopicName,
    /// Payload of the message.
    pub payload: &'a Bytes,
}

/// Changes a deliver hook may make (for this subscriber only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliverChanges {
    /// Send this topic instead.
    pub topic: Option<TopicName>,
    /// Send this payload instead.
    pub payload: Option<Bytes>,
}

/// Decides CONNECTs.
pub trait AuthOnRegister {
    /// The verdict on `request`.
    fn auth_on_register(&self, request: &RegisterRequest<'_>) -> Verdict<RegisterChanges>;
}

/// Decides each filter of a SUBSCRIBE.
pub trait AuthOnSubscribe {
    /// The verdict on `request`.
    fn auth_on_subscribe(&self, request: &SubscribeRequest<'_>) -> Verdict<SubscribeChanges>;
}

/// Decides each PUBLISH.
pub trait AuthOnPublish {
    /// The verdict on `request`.
    fn auth_on_publish(&self, request: &PublishRequest<'_>) -> Verdict<PublishChanges>;
}

/// Sees, and may rewrite, each delivery. A deny here means "not to this subscriber".
pub trait OnDeliver {
    /// The verdict on `request`.
    fn on_deliver(&self, request: &DeliverRequest<'_>) -> Verdict<DeliverChanges>;
}

/// The hooks of one decision point, in the configured order.
pub struct HookChain<H: ?Sized> {
    hooks: Vec<Box<H>>,
}

impl<H: ?Sized> Default for HookChain<H> {
    fn default() -> Self {
        Self { hooks: Vec::new() }
    }
}

impl<H: ?Sized> std::fmt::Debug for HookChain<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookChain")
            .field("hooks", &self.hooks.len())
            .finish()
    }
}

impl<H: ?Sized> HookChain<H> {
    /// Appends a hook: it is asked after those already in the chain.
    pub fn push(&mut self, hook: Box<H>) {
        self.hooks.push(hook);
    }

    /// Whether no hook is configured (the point allows everything, at no cost).
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Asks the hooks in order until one decides: `None` when every hook said next (an empty
    /// chain allows).
    pub fn decide<C>(&self, ask: impl Fn(&H) -> Verdict<C>) -> Option<Decision<C>> {
        if self.hooks.is_empty() {
            return Some(Decision::Allow(None));
        }
        self.hooks.iter().find_map(|hook| match ask(hook) {
            Verdict::Allow => Some(Decision::Allow(None)),
            Verdict::AllowWith(changes) => Some(Decision::Allow(Some(changes))),
            Verdict::Deny(denial) => Some(Decision::Deny(denial)),
            Verdict::Next => None,
        })
    }
}

/// Every decision point's chain: what a shard consults.
#[derive(Debug, Default)]
pub struct DecisionHooks {
    /// `auth_on_register`.
    pub register: HookChain<dyn AuthOnRegister>,
    /// `auth_on_subscribe`.
    pub subscribe: HookChain<dyn AuthOnSubscribe>,
    /// `auth_on_publish`.
    pub publish: HookChain<dyn AuthOnPublish>,
    /// `on_deliver`.
    pub deliver: HookChain<dyn OnDeliver>,
    /// The built-in credentials hook, also in `register`: connections ask it which first
    /// logins need a slow hash and run those off the shard before the CONNECT reaches the
    /// chain.
    pub credentials: Option<std::rc::Rc<crate::hooks::builtin::Credentials>>,
}

impl DecisionHooks {
    /// The verdict of the register chain (nobody decided: 0x87 Not authorized).
    pub fn auth_on_register(&self, request: &RegisterRequest<'_>) -> Decision<RegisterChanges> {
        self.register
            .decide(|hook| hook.auth_on_register(request))
            .unwrap_or_else(|| not_authorized("no hook allowed the connection"))
    }

    /// The verdict of the subscribe chain (nobody decided: 0x87 Not authorized).
    pub fn auth_on_subscribe(&self, request: &SubscribeRequest<'_>) -> Decision<SubscribeChanges> {
        self.subscribe
            .decide(|hook| hook.auth_on_subscribe(request))
            .unwrap_or_else(|| not_authorized("no hook allowed the subscription"))
    }

    /// The verdict of the publish chain (nobody decided: 0x87 Not authorized).
    pub fn auth_on_publish(&self, request: &PublishRequest<'_>) -> Decision<PublishChanges> {
        self.publish
            .decide(|hook| hook.auth_on_publish(request))
            .unwrap_or_else(|| not_authorized("no hook allowed the publish"))
    }

    /// The verdict of the deliver chain. As in VerneMQ a delivery needs no verdict: when every
    /// hook says next, it goes out unchanged.
    pub fn on_deliver(&self, request: &DeliverRequest<'_>) -> Decision<DeliverChanges> {
        self.deliver
            .decide(|hook| hook.on_deliver(request))
            .unwrap_or(Decision::Allow(None))
    }
}

/// What an undecided register, subscribe or publish chain answers: 0x87 Not authorized.
fn not_authorized<C>(reason: &str) -> Decision<C> {
    Decision::Deny(Denial::new(ReasonCode::NOT_AUTHORIZED, reason))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Answers a fixed verdict and counts how often it was asked.
    struct Fixed<C: Clone> {
        verdict: Verdict<C>,
        asked: std::cell::Cell<u32>,
    }

    impl<C: Clone> Fixed<C> {
        fn new(verdict: Verdict<C>) -> Self {
            Self {
                verdict,
                asked: std::cell::Cell::new(0),
            }
        }
        fn answer(&self) -> Verdict<C> {
            self.asked.set(self.asked.get() + 1);
            self.verdict.clone()
        }
    }

    impl AuthOnPublish for std::rc::Rc<Fixed<PublishChanges>> {
        fn auth_on_publish(&self, _: &PublishRequest<'_>) -> Verdict<PublishChanges> {
            self.answer()
        }
    }

    impl OnDeliver for Fixed<DeliverChanges> {
        fn on_deliver(&self, _: &DeliverRequest<'_>) -> Verdict<DeliverChanges> {
            self.answer()
        }
    }

    fn publish_request<'a>(
        client_id: &'a ClientId,
        topic: &'a TopicName,
        payload: &'a Bytes,
    ) -> PublishRequest<'a> {
        PublishRequest {
            client_id,
            username: None,
            topic,
            payload,
            qos: QoS::AtLeastOnce,
            retain: false,
        }
    }

    #[test]
    fn the_first_hook_that_decides_wins_and_later_ones_are_not_asked() {
        let (client, topic, payload) = (
            ClientId::new("c").unwrap(),
            TopicName::new("a/b").unwrap(),
            Bytes::from_static(b"x"),
        );
        let request = publish_request(&client, &topic, &payload);
        let first = std::rc::Rc::new(Fixed::new(Verdict::Next));
        let rewrite = PublishChanges {
            topic: Some(TopicName::new("a/rewritten").unwrap()),
            ..PublishChanges::default()
        };
        let second = std::rc::Rc::new(Fixed::new(Verdict::AllowWith(rewrite.clone())));
        let third = std::rc::Rc::new(Fixed::new(Verdict::Deny(Denial::new(
            ReasonCode::NOT_AUTHORIZED,
            "never asked",
        ))));
        let mut hooks = DecisionHooks::default();
        for hook in [&first, &second, &third] {
            hooks.publish.push(Box::new(std::rc::Rc::clone(hook)));
        }
        assert_eq!(
            hooks.auth_on_publish(&request),
            Decision::Allow(Some(rewrite))
        );
        assert_eq!(
            (first.asked.get(), second.asked.get(), third.asked.get()),
            (1, 1, 0)
        );
    }

    #[test]
    fn a_chain_where_everyone_says_next_denies_and_an_empty_chain_allows() {
        let (client, topic, payload) = (
            ClientId::new("c").unwrap(),
            TopicName::new("a/b").unwrap(),
            Bytes::from_static(b"x"),
        );
        let request = publish_request(&client, &topic, &payload);
        let mut hooks = DecisionHooks::default();
        assert_eq!(hooks.auth_on_publish(&request), Decision::Allow(None));
        hooks
            .publish
            .push(Box::new(std::rc::Rc::new(Fixed::new(Verdict::Next))));
        match hooks.auth_on_publish(&request) {
            Decision::Deny(denial) => assert_eq!(denial.code, ReasonCode::NOT_AUTHORIZED),
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn deliveries_go_out_unchanged_when_every_deliver_hook_says_next() {
        let (client, topic, payload) = (
            ClientId::new("c").unwrap(),
            TopicName::new("a/b").unwrap(),
            Bytes::from_static(b"x"),
        );
        let request = DeliverRequest {
            client_id: &client,
            username: None,
            topic: &topic,
            payload: &payload,
        };
        let mut hooks = DecisionHooks::default();
        hooks.deliver.push(Box::new(Fixed::new(Verdict::Next)));
        assert_eq!(hooks.on_deliver(&request), Decision::Allow(None));
        let mut hooks = DecisionHooks::default();
        let denial = Denial::new(ReasonCode::NOT_AUTHORIZED, "not for this subscriber");
        hooks
            .deliver
            .push(Box::new(Fixed::new(Verdict::Deny(denial.clone()))));
        assert_eq!(hooks.on_deliver(&request), Decision::Deny(denial));
    }
}
