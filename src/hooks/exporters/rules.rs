//! An exporter's rules: which events it sends, under which action name, to where.
//!
//! From the web-hook document:
//!
//! ```text
//! rule.client_connected = [{action = "client_connected"},
//!                          {action = "client_connected_2", urls = ["http://127.0.0.1:5657/mqtt/webhook"]}]
//! rule.message_delivered = [{action = "message_delivered", topics = ["x/y/z", "foo/#"]}]
//! ```
//!
//! - Every rule of an event's kind that matches produces one [`ExportItem`]: above, each
//!   `client_connected` is sent twice, to the defaults as `client_connected` and to 5657 as
//!   `client_connected_2`.
//! - `action` defaults to the event's name.
//! - `destinations` (the document's `urls`) replace the exporter's defaults when given.
//! - `topics` (filters with `+` and `#`) narrow a rule to events whose topic matches any of
//!   them. For message events the topic is the message's. For subscription events
//!   (`session_subscribed`, `client_subscribe` …) it is the subscription's filter, which
//!   matches when it is equal to a rule filter as a string, or when, read as a topic name
//!   (its `+` and `#` taken as plain level text), a rule filter matches it: `foo/#` covers a
//!   subscription to `foo/+/bar`. A shared subscription (`$share/g/foo/bar`) is matched by its
//!   inner filter (`foo/bar`), or by its whole text for equality. Events without a topic
//!   (connects, disconnects, sessions) ignore `topics`, so a rule copied with them still sends.
//!
//! Filters follow MQTT's `$` rule: a filter starting with `+` or `#` does not match a topic
//! starting with `$`.

use std::sync::Arc;

use crate::hooks::event::{Event, EventDetail, EventKind, EventKinds, EVENT_KINDS};
use crate::protocol::TopicFilter;

use super::ExportItem;

/// One rule as configured (the config maps `rule.<event> = [{…}]` to these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleConfig {
    /// The event kind the rule is for.
    pub event: EventKind,
    /// The action name sent; the event's name when `None`.
    pub action: Option<String>,
    /// Where to send instead of the exporter's defaults (the web-hook rule's `urls`).
    pub destinations: Option<Vec<String>>,
    /// Topic filters; empty means every topic.
    pub topics: Vec<String>,
}

impl RuleConfig {
    /// A rule sending every event of `kind` under its own name to the defaults.
    pub fn for_event(kind: EventKind) -> Self {
        Self {
            event: kind,
            action: None,
            destinations: None,
            topics: Vec::new(),
        }
    }
}

/// A rule that could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule for {event}: topic filter {filter:?} is not valid: {reason}")]
pub struct RuleError {
    /// The event name of the rule.
    pub event: &'static str,
    /// The bad filter.
    pub filter: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One rule, ready to route.
#[derive(Debug, Clone)]
struct Rule {
    action: Arc<str>,
    destinations: Option<Arc<[String]>>,
    topics: Vec<TopicFilter>,
}

/// The rules of one exporter, indexed by event kind.
#[derive(Debug, Clone)]
pub struct RuleSet {
    by_kind: [Vec<Rule>; EVENT_KINDS],
    wanted: EventKinds,
}

impl RuleSet {
    /// Builds the rules, checking every topic filter.
    pub fn new(configs: &[RuleConfig]) -> Result<Self, RuleError> {
        let mut by_kind: [Vec<Rule>; EVENT_KINDS] = Default::default();
        let mut wanted = EventKinds::NONE;
        for config in configs {
            let topics = config
                .topics
                .iter()
                .map(|filter| {
                    TopicFilter::new(filter).map_err(|error| RuleError {
                        event: config.event.name(),
                        filter: filter.clone(),
                        reason: error.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            by_kind[config.event.index()].push(Rule {
                action: Arc::from(config.action.as_deref().unwrap_or(config.event.name())),
                destinations: config.destinations.as_deref().map(Arc::from),
                topics,
            });
            wanted = wanted.with(config.event);
        }
        Ok(Self { by_kind, wanted })
    }

    /// Every event kind, under its own name, to the defaults: an exporter with no rules.
    pub fn all() -> Self {
        let by_kind = EventKind::ALL.map(|kind| {
            vec![Rule {
                action: Arc::from(kind.name()),
                destinations: None,
                topics: Vec::new(),
            }]
        });
        Self {
            by_kind,
            wanted: EventKinds::ALL,
        }
    }

    /// The kinds some rule wants: what the shards must record for this exporter.
    pub fn wanted(&self) -> EventKinds {
        self.wanted
    }

    /// Appends one item to `out` for every rule that matches `event`.
    pub fn route(&self, event: &Arc<Event>, out: &mut Vec<ExportItem>) {
        let rules = &self.by_kind[event.kind.index()];
        if rules.is_empty() {
            return;
        }
        let topic = event_topic(event);
        for rule in rules {
            if !rule.topics.is_empty() {
                if let Some(topic) = &topic {
                    if !rule.topics.iter().any(|filter| topic.matches(filter)) {
                        continue;
                    }
                }
            }
            out.push(ExportItem {
                event: Arc::clone(event),
                action: Arc::clone(&rule.action),
                destinations: rule.destinations.clone(),
            });
        }
    }
}

/// What a rule's `topics` are matched against.
enum EventTopic<'a> {
    /// A message's topic name.
    Name(&'a str),
    /// A subscription's filter.
    Filter(&'a TopicFilter),
}

impl EventTopic<'_> {
    fn matches(&self, rule_filter: &TopicFilter) -> bool {
        match self {
            EventTopic::Name(name) => filter_matches(rule_filter.as_str(), name),
            EventTopic::Filter(subscribed) => {
                let inner = subscribed.shared().map_or(subscribed.as_str(), |(_, f)| f);
                subscribed.as_str() == rule_filter.as_str()
                    || filter_matches(rule_filter.as_str(), inner)
            }
        }
    }
}

fn event_topic(event: &Event) -> Option<EventTopic<'_>> {
    match &event.detail {
        EventDetail::Message(facts) => Some(EventTopic::Name(facts.message.topic.as_str())),
        EventDetail::Subscription { filter, .. } => Some(EventTopic::Filter(filter)),
        _ => None,
    }
}

/// Whether `filter` (`+` one level, `#` the rest) matches the topic name `topic` (MQTT §4.7).
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    // The `$` rule: `#` and `+/…` do not reach `$SYS/…` and other server topics.
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for filter_level in filter.split('/') {
        if filter_level == "#" {
            return true;
        }
        match topic_levels.next() {
            Some(level) if filter_level == "+" || filter_level == level => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::hooks::event::{ClientInfo, MessageFacts};
    use crate::protocol::{ClientId, QoS, TopicName};
    use crate::session::Message;

    fn client() -> Arc<ClientInfo> {
        Arc::new(ClientInfo {
            node: 1,
            shard: 0,
            client_id: ClientId::new("c").unwrap(),
            username: None,
            address: None,
            protocol: 5,
            keep_alive_secs: 30,
            clean_start: true,
        })
    }

    fn event(kind: EventKind, detail: EventDetail) -> Arc<Event> {
        Arc::new(Event {
            kind,
            at_ns: 1,
            client: client(),
            detail,
        })
    }

    fn message_event(kind: EventKind, topic: &str) -> Arc<Event> {
        let message = Arc::new(Message {
            topic: TopicName::new(topic).unwrap(),
            payload: bytes::Bytes::from_static(b"x"),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            origin: ClientId::new("c").unwrap(),
            publisher: None,
            received_at_ns: 0,
        });
        event(
            kind,
            EventDetail::Message(MessageFacts {
                message,
                publisher: client(),
                published_at_ns: 1,
                qos: QoS::AtMostOnce,
                packet_id: None,
                dup: false,
                dropped: None,
            }),
        )
    }

    fn subscription_event(filter: &str) -> Arc<Event> {
        event(
            EventKind::SessionSubscribed,
            EventDetail::Subscription {
                filter: TopicFilter::new(filter).unwrap(),
                qos: QoS::AtLeastOnce,
            },
        )
    }

    fn routed(rules: &RuleSet, event: &Arc<Event>) -> Vec<(String, Option<Vec<String>>)> {
        let mut out = Vec::new();
        rules.route(event, &mut out);
        out.iter()
            .map(|item| {
                (
                    item.action.to_string(),
                    item.destinations.as_ref().map(|d| d.to_vec()),
                )
            })
            .collect()
    }

    fn with_topics(kind: EventKind, topics: &[&str]) -> RuleConfig {
        RuleConfig {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            ..RuleConfig::for_event(kind)
        }
    }

    #[test]
    fn the_documents_client_connected_example_sends_twice() {
        let second = "http://127.0.0.1:5657/mqtt/webhook".to_string();
        let rules = RuleSet::new(&[
            RuleConfig::for_event(EventKind::ClientConnected),
            RuleConfig {
                action: Some("client_connected_2".into()),
                destinations: Some(vec![second.clone()]),
                ..RuleConfig::for_event(EventKind::ClientConnected)
            },
        ])
        .unwrap();
        let connected = event(EventKind::ClientConnected, EventDetail::None);
        assert_eq!(
            routed(&rules, &connected),
            vec![
                ("client_connected".into(), None),
                ("client_connected_2".into(), Some(vec![second])),
            ]
        );
        assert_eq!(
            rules.wanted(),
            EventKinds::NONE.with(EventKind::ClientConnected)
        );
        let other = event(EventKind::ClientConnect, EventDetail::None);
        assert!(routed(&rules, &other).is_empty());
    }

    #[test]
    fn message_rules_send_only_matching_topics() {
        let rules = RuleSet::new(&[with_topics(
            EventKind::MessageDelivered,
            &["x/y/z", "foo/#"],
        )])
        .unwrap();
        for (topic, expected) in [
            ("x/y/z", true),
            ("foo", true),
            ("foo/bar/baz", true),
            ("x/y", false),
            ("bar/foo", false),
        ] {
            let sent = routed(&rules, &message_event(EventKind::MessageDelivered, topic));
            assert_eq!(sent.len(), usize::from(expected), "{topic}");
        }
    }

    #[test]
    fn subscription_rules_match_the_filter_as_a_topic_or_as_equal_text() {
        let rules = RuleSet::new(&[with_topics(
            EventKind::SessionSubscribed,
            &["x/y/z", "foo/#"],
        )])
        .unwrap();
        for (filter, expected) in [
            ("x/y/z", true),
            ("foo/+/bar", true),
            ("foo/#", true),
            ("$share/group/foo/bar", true),
            ("x/+/z", false),
            ("#", false),
        ] {
            let sent = routed(&rules, &subscription_event(filter));
            assert_eq!(sent.len(), usize::from(expected), "{filter}");
        }
        let equal = RuleSet::new(&[with_topics(EventKind::SessionSubscribed, &["a/+"])]).unwrap();
        assert_eq!(routed(&equal, &subscription_event("a/+")).len(), 1);
        assert_eq!(routed(&equal, &subscription_event("a/b")).len(), 1);
        assert_eq!(routed(&equal, &subscription_event("a/b/c")).len(), 0);
    }

    #[test]
    fn topics_on_an_event_without_a_topic_are_ignored() {
        let rules = RuleSet::new(&[with_topics(EventKind::ClientConnected, &["a/b"])]).unwrap();
        let connected = event(EventKind::ClientConnected, EventDetail::None);
        assert_eq!(routed(&rules, &connected).len(), 1);
    }

    #[test]
    fn a_bad_filter_is_named_in_the_error() {
        let error = RuleSet::new(&[with_topics(EventKind::MessagePublish, &["ok/#", "bad/#/x"])])
            .unwrap_err();
        assert_eq!(error.filter, "bad/#/x");
        assert_eq!(error.event, "message_publish");
        assert!(error.to_string().contains("bad/#/x"));
    }

    #[test]
    fn all_sends_every_kind_under_its_own_name() {
        let rules = RuleSet::all();
        assert_eq!(rules.wanted(), EventKinds::ALL);
        for kind in EventKind::ALL {
            let sent = routed(&rules, &event(kind, EventDetail::None));
            assert_eq!(sent, vec![(kind.name().to_string(), None)]);
        }
    }

    #[test]
    fn the_matcher_follows_mqtt() {
        for (filter, topic, expected) in [
            ("a/b", "a/b", true),
            ("a/+", "a/b", true),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("+/+", "a/b", true),
            ("+", "/a", false),
            ("+/a", "/a", true),
            ("a//b", "a//b", true),
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            ("a/b/c", "a/b", false),
        ] {
            assert_eq!(
                filter_matches(filter, topic),
                expected,
                "{filter} vs {topic}"
            );
        }
    }
}
