//! The topic table: which topics a client may publish and subscribe to, as the platform's API
//! document lists them ("any other topic you attempt to use will result in a dropped
//! connection from the broker").
//!
//! An ordered list of rules `pattern | publish | subscribe | schema`. The FIRST rule in table
//! order that matches decides, so a narrower rule meant to override a broader one goes above
//! it; [`TopicTable::shadowed_rules`] lists the rules an earlier one hides. The verdicts:
//! - a rule that allows the action: allow (a publish whose rule has a payload schema must also
//!   pass it, else 0x99 with feedback on `<topic>/rejected`, see [`super::payload_schema`]);
//! - a rule that forbids it: 0x87 Not authorized, the connection stays;
//! - no rule: 0x87, and the connection is closed under [`UnknownTopicPolicy::Close`].
//!
//! The `/rejected` topics are ordinary rows (publish No, subscribe Yes). The broker's own
//! feedback publishes are the engine's, not a client's, and do not pass through this table.
//!
//! Cost: a publish looks up the rules whose first level can match (a hash of the literal
//! first levels, built at load) and compares levels in place: an allowed publish to a rule
//! without a schema allocates nothing (denials format a reason; schemas parse the payload).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::hooks::decision::{
    AuthOnPublish, AuthOnSubscribe, Denial, PublishChanges, PublishRequest, SubscribeChanges,
    SubscribeRequest, Verdict,
};
use crate::protocol::{ReasonCode, TopicFilter};

use super::payload_schema::PayloadSchema;
use super::topic_pattern::{inner_filter, TopicPattern};
use super::BuiltinError;

/// What happens to a publish or subscribe whose topic no rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownTopicPolicy {
    /// Deny (0x87) and close the connection: what the platform document says.
    #[default]
    Close,
    /// Deny (0x87) and keep the connection.
    Deny,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct TopicRule {
    /// Which topics the row is about.
    pub pattern: TopicPattern,
    /// Whether clients may publish to them.
    pub publish: bool,
    /// Whether clients may subscribe to them.
    pub subscribe: bool,
    /// What their payloads must satisfy, if anything.
    pub schema: Option<PayloadSchema>,
}

/// One row as configured (the engine builds these from the TOML file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRuleConfig {
    /// The pattern, e.g. `devices/(:id)/meta/(:name)`.
    pub pattern: String,
    /// Whether clients may publish.
    pub publish: bool,
    /// Whether clients may subscribe.
    pub subscribe: bool,
    /// A JSON Schema file for the payloads, relative to the config's directory.
    pub schema_file: Option<PathBuf>,
}

/// The topic table hook: implements [`AuthOnPublish`] and [`AuthOnSubscribe`].
#[derive(Debug, Clone)]
pub struct TopicTable {
    rules: Vec<TopicRule>,
    unknown_topic: UnknownTopicPolicy,
    /// Per literal first level, the indexes (ascending) of the rules that can match a topic
    /// starting with it: those with that literal and those starting with a placeholder.
    by_first_level: HashMap<Box<str>, Vec<usize>, foldhash::fast::RandomState>,
    /// Indexes of the rules starting with a placeholder: all a topic whose first level no
    /// rule names literally can match.
    placeholder_first: Vec<usize>,
}

impl TopicTable {
    /// A table of `rules`, in the order given (the first match decides).
    pub fn new(rules: Vec<TopicRule>, unknown_topic: UnknownTopicPolicy) -> Self {
        let placeholder_first: Vec<usize> = rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.pattern.first_literal().is_none())
            .map(|(index, _)| index)
            .collect();
        let mut by_first_level: HashMap<Box<str>, Vec<usize>, _> = HashMap::default();
        for (index, rule) in rules.iter().enumerate() {
            if let Some(first) = rule.pattern.first_literal() {
                by_first_level
                    .entry(first.into())
                    .or_insert_with(Vec::new)
                    .push(index);
            }
        }
        // Each literal's list also holds the placeholder-first rules, kept in table order so
        // the index never changes which rule wins.
        for indexes in by_first_level.values_mut() {
            indexes.extend_from_slice(&placeholder_first);
            indexes.sort_unstable();
        }
        Self {
            rules,
            unknown_topic,
            by_first_level,
            placeholder_first,
        }
    }

    /// Builds the table from its configuration; schema files are read relative to
    /// `base_dir`. The error names the rule (index from 0 and pattern) and what is wrong.
    pub fn from_config(
        rules: &[TopicRuleConfig],
        unknown_topic: UnknownTopicPolicy,
        base_dir: &Path,
    ) -> Result<Self, BuiltinError> {
        let built = rules
            .iter()
            .enumerate()
            .map(|(index, config)| {
                build_rule(config, base_dir).map_err(|source| BuiltinError::Rule {
                    index,
                    pattern: config.pattern.clone(),
                    source: Box::new(source),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(built, unknown_topic))
    }

    /// The rules, in table order.
    pub fn rules(&self) -> &[TopicRule] {
        &self.rules
    }

    /// What happens to topics no rule matches.
    pub fn unknown_topic(&self) -> UnknownTopicPolicy {
        self.unknown_topic
    }

    /// Rules that can never decide because an earlier rule matches every topic they match,
    /// as `(shadowed, by)` index pairs (each shadowed rule once, with the first rule shadowing
    /// it). Harmless when both say the same (the platform table's `devices/(:id)/meta/rejected`
    /// under `devices/(:id)/meta/(:name)`), a mistake otherwise: worth a warning at load.
    pub fn shadowed_rules(&self) -> Vec<(usize, usize)> {
        (0..self.rules.len())
            .filter_map(|later| {
                let by = (0..later).find(|&earlier| {
                    self.rules[earlier]
                        .pattern
                        .covers_pattern(&self.rules[later].pattern)
                })?;
                Some((later, by))
            })
            .collect()
    }

    /// The first rule whose pattern matches the topic name `topic`.
    pub fn rule_for_topic(&self, topic: &str) -> Option<&TopicRule> {
        let first = topic.split('/').next().unwrap_or_default();
        self.candidates(first)
            .map(|index| &self.rules[*index])
            .find(|rule| rule.pattern.matches_topic(topic))
    }

    /// The first rule whose pattern covers every topic of the subscription `filter` (for a
    /// shared subscription, of its inner filter).
    pub fn rule_for_filter(&self, filter: &TopicFilter) -> Option<&TopicRule> {
        let inner = inner_filter(filter);
        let first = inner.split('/').next().unwrap_or_default();
        // A `+` or `#` first level is no literal: only placeholder-first rules can cover `+`,
        // and nothing covers `#` (the pattern says no).
        self.candidates(first)
            .map(|index| &self.rules[*index])
            .find(|rule| rule.pattern.covers_filter_str(inner))
    }

    /// The rules that can match a topic or filter starting with `first`, in table order.
    fn candidates(&self, first: &str) -> std::slice::Iter<'_, usize> {
        self.by_first_level
            .get(first)
            .unwrap_or(&self.placeholder_first)
            .iter()
    }

    /// The denial of a topic no rule matches.
    fn unknown(&self, what: String) -> Denial {
        let denial = Denial::new(ReasonCode::NOT_AUTHORIZED, what);
        match self.unknown_topic {
            UnknownTopicPolicy::Close => denial.and_disconnect(),
            UnknownTopicPolicy::Deny => denial,
        }
    }
}

impl AuthOnPublish for TopicTable {
    fn auth_on_publish(&self, request: &PublishRequest<'_>) -> Verdict<PublishChanges> {
        let topic = request.topic.as_str();
        let Some(rule) = self.rule_for_topic(topic) else {
            return Verdict::Deny(self.unknown(format!("topic {topic} is not in the topic table")));
        };
        if !rule.publish {
            return Verdict::Deny(Denial::new(
                ReasonCode::NOT_AUTHORIZED,
                format!(
                    "publishing to {topic} is not allowed (topic table rule {})",
                    rule.pattern
                ),
            ));
        }
        match &rule.schema {
            Some(schema) => match schema.check(request.payload) {
                Ok(()) => Verdict::Allow,
                Err(rejection) => Verdict::Deny(rejection.into_denial(request.topic)),
            },
            None => Verdict::Allow,
        }
    }
}

impl AuthOnSubscribe for TopicTable {
    fn auth_on_subscribe(&self, request: &SubscribeRequest<'_>) -> Verdict<SubscribeChanges> {
        let filter = request.filter.as_str();
        let Some(rule) = self.rule_for_filter(request.filter) else {
            return Verdict::Deny(self.unknown(format!(
                "filter {filter} is not covered by the topic table (a filter may use + only \
                 where a pattern has a placeholder, and never #)"
            )));
        };
        if rule.subscribe {
            Verdict::Allow
        } else {
            Verdict::Deny(Denial::new(
                ReasonCode::NOT_AUTHORIZED,
                format!(
                    "subscribing to {filter} is not allowed (topic table rule {})",
                    rule.pattern
                ),
            ))
        }
    }
}

fn build_rule(config: &TopicRuleConfig, base_dir: &Path) -> Result<TopicRule, BuiltinError> {
    let pattern = TopicPattern::parse(&config.pattern)?;
    let schema = config
        .schema_file
        .as_ref()
        .map(|file| PayloadSchema::from_file(&base_dir.join(file)))
        .transpose()?;
    Ok(TopicRule {
        pattern,
        publish: config.publish,
        subscribe: config.subscribe,
        schema,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;

    use super::*;
    use crate::protocol::{ClientId, QoS, TopicName};

    /// The platform document's table: (pattern, publish, subscribe).
    const PLATFORM_TABLE: &[(&str, bool, bool)] = &[
        ("devices/(:id)/meta", true, true),
        ("devices/(:id)/meta/(:name)", false, true),
        ("devices/(:id)/actions", true, true),
        ("devices/(:id)/actions/(:type)", false, true),
        ("devices/(:id)/fault_alarms", true, true),
        ("areas/(:id)/meta/head_count", true, true),
        ("areas/(:id)/meta/headcount_in", true, true),
        ("areas/(:id)/meta/headcount_out", true, true),
        ("spaces/(:id)/actions", true, true),
        ("spaces/(:id)/actions/(:type)", false, true),
        ("spaces/(:id)/meta/head_count", true, true),
        ("spaces/(:id)/meta/headcount_in", true, true),
        ("spaces/(:id)/meta/headcount_out", true, true),
        ("buildings/(:id)/actions", false, true),
        ("buildings/(:id)/actions/(:type)", false, true),
        ("buildings/(:id)/fault_alarms", true, true),
        ("buildings/(:id)/meta/head_count", true, true),
        ("buildings/(:id)/meta/headcount_in", true, true),
        ("buildings/(:id)/meta/headcount_out", true, true),
        ("devices/(:id)/meta/rejected", false, true),
        ("devices/(:id)/fault_alarms/rejected", false, true),
        ("buildings/(:id)/fault_alarms/rejected", false, true),
    ];

    fn platform_config() -> Vec<TopicRuleConfig> {
        PLATFORM_TABLE
            .iter()
            .map(|&(pattern, publish, subscribe)| TopicRuleConfig {
                pattern: pattern.to_owned(),
                publish,
                subscribe,
                schema_file: None,
            })
            .collect()
    }

    fn platform_table(unknown: UnknownTopicPolicy) -> TopicTable {
        TopicTable::from_config(&platform_config(), unknown, Path::new(".")).unwrap()
    }

    /// A concrete topic for a pattern: each placeholder filled with `x1`.
    fn example_topic(pattern: &str) -> String {
        pattern
            .split('/')
            .map(|level| if level.starts_with("(:") { "x1" } else { level })
            .collect::<Vec<_>>()
            .join("/")
    }

    fn publish(table: &TopicTable, topic: &str, payload: &[u8]) -> Verdict<PublishChanges> {
        let client = ClientId::new("device-1").unwrap();
        let topic = TopicName::new(topic).unwrap();
        let payload = Bytes::copy_from_slice(payload);
        table.auth_on_publish(&PublishRequest {
            client_id: &client,
            username: None,
            topic: &topic,
            payload: &payload,
            qos: QoS::AtLeastOnce,
            retain: false,
        })
    }

    fn subscribe(table: &TopicTable, filter: &str) -> Verdict<SubscribeChanges> {
        let client = ClientId::new("app-1").unwrap();
        let filter = TopicFilter::new(filter).unwrap();
        table.auth_on_subscribe(&SubscribeRequest {
            client_id: &client,
            username: None,
            filter: &filter,
            qos: QoS::AtLeastOnce,
        })
    }

    fn denial<C: std::fmt::Debug>(verdict: Verdict<C>) -> Denial {
        match verdict {
            Verdict::Deny(denial) => denial,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn every_row_of_the_platform_table_allows_what_it_says() {
        let table = platform_table(UnknownTopicPolicy::Close);
        for &(pattern, may_publish, may_subscribe) in PLATFORM_TABLE {
            let topic = example_topic(pattern);
            match publish(&table, &topic, b"{}") {
                Verdict::Allow => assert!(may_publish, "publish to {topic} should be denied"),
                Verdict::Deny(denial) => {
                    assert!(!may_publish, "publish to {topic} should be allowed");
                    assert_eq!(denial.code, ReasonCode::NOT_AUTHORIZED);
                    assert!(
                        !denial.disconnect,
                        "{topic}: a known topic keeps the connection"
                    );
                    // The reason names the deciding rule: the first match, which for
                    // `devices/(:id)/meta/rejected` is the broader `devices/(:id)/meta/(:name)`
                    // above it (same permissions, so the order does not change the answer).
                    let decider = table.rule_for_topic(&topic).unwrap().pattern.as_str();
                    assert!(denial.reason.contains(decider), "{}", denial.reason);
                }
                other => panic!("{topic}: unexpected {other:?}"),
            }
            // Every row allows subscribing, by name and with + for each placeholder.
            assert!(may_subscribe);
            assert_eq!(subscribe(&table, &topic), Verdict::Allow, "{topic}");
            let wildcard = pattern
                .split('/')
                .map(|level| if level.starts_with("(:") { "+" } else { level })
                .collect::<Vec<_>>()
                .join("/");
            assert_eq!(subscribe(&table, &wildcard), Verdict::Allow, "{wildcard}");
        }
    }

    #[test]
    fn a_rule_that_forbids_subscribing_denies_without_closing() {
        let rules = [TopicRuleConfig {
            pattern: "devices/(:id)/commands".to_owned(),
            publish: true,
            subscribe: false,
            schema_file: None,
        }];
        let table =
            TopicTable::from_config(&rules, UnknownTopicPolicy::Close, Path::new(".")).unwrap();
        let denied = denial(subscribe(&table, "devices/+/commands"));
        assert_eq!(denied.code, ReasonCode::NOT_AUTHORIZED);
        assert!(!denied.disconnect);
        assert_eq!(
            publish(&table, "devices/d1/commands", b"go"),
            Verdict::Allow
        );
    }

    #[test]
    fn unknown_topics_are_denied_and_close_the_connection_under_close() {
        let table = platform_table(UnknownTopicPolicy::Close);
        for topic in [
            "devices/d1",
            "devices/d1/meta/name/extra",
            "devices//meta",
            "floors/f1/meta",
            "areas/a1/meta",
            "buildings/b1/meta/head_count/rejected",
        ] {
            let denied = denial(publish(&table, topic, b"{}"));
            assert_eq!(denied.code, ReasonCode::NOT_AUTHORIZED, "{topic}");
            assert!(denied.disconnect, "{topic} should close the connection");
            assert!(denied.reason.contains("not in the topic table"));
        }
        for filter in [
            "#",
            "devices/#",
            "devices/+/#",
            "+/d1/meta",
            "devices/d1/+",
            "floors/+/meta",
            "$share/group/devices/#",
        ] {
            let denied = denial(subscribe(&table, filter));
            assert_eq!(denied.code, ReasonCode::NOT_AUTHORIZED, "{filter}");
            assert!(denied.disconnect, "{filter} should close the connection");
        }
    }

    #[test]
    fn unknown_topics_keep_the_connection_under_deny() {
        let table = platform_table(UnknownTopicPolicy::Deny);
        let denied = denial(publish(&table, "floors/f1/meta", b"{}"));
        assert_eq!(denied.code, ReasonCode::NOT_AUTHORIZED);
        assert!(!denied.disconnect);
        assert!(!denial(subscribe(&table, "devices/#")).disconnect);
    }

    #[test]
    fn shared_subscriptions_are_checked_by_their_inner_filter() {
        let table = platform_table(UnknownTopicPolicy::Close);
        assert_eq!(
            subscribe(&table, "$share/workers/devices/+/fault_alarms"),
            Verdict::Allow
        );
        assert!(denial(subscribe(&table, "$share/workers/devices/+")).disconnect);
    }

    #[test]
    fn the_first_matching_rule_in_table_order_wins() {
        let rule = |pattern: &str, publish: bool| TopicRuleConfig {
            pattern: pattern.to_owned(),
            publish,
            subscribe: true,
            schema_file: None,
        };
        // A placeholder-first rule listed before a literal one still wins: the index by first
        // level keeps table order.
        let rules = [
            rule("(:site)/status", false),
            rule("gateway/status", true),
            rule("gateway/(:id)", true),
        ];
        let table =
            TopicTable::from_config(&rules, UnknownTopicPolicy::Close, Path::new(".")).unwrap();
        assert!(!denial(publish(&table, "gateway/status", b"")).disconnect);
        assert_eq!(publish(&table, "gateway/g1", b""), Verdict::Allow);
        assert_eq!(
            table
                .rule_for_topic("other/status")
                .map(|r| r.pattern.as_str()),
            Some("(:site)/status")
        );
        assert!(denial(publish(&table, "other/thing", b"")).disconnect);
    }

    #[test]
    fn shadowed_rules_are_reported_with_the_rule_that_shadows_them() {
        let table = platform_table(UnknownTopicPolicy::Close);
        let index = |pattern: &str| {
            table
                .rules()
                .iter()
                .position(|rule| rule.pattern.as_str() == pattern)
                .unwrap()
        };
        assert_eq!(
            table.shadowed_rules(),
            vec![(
                index("devices/(:id)/meta/rejected"),
                index("devices/(:id)/meta/(:name)")
            )]
        );
    }

    #[test]
    fn a_rule_with_a_schema_rejects_bad_payloads_with_feedback() {
        let rules = [TopicRuleConfig {
            pattern: "devices/(:id)/meta".to_owned(),
            publish: true,
            subscribe: true,
            schema_file: Some(PathBuf::from("meta.schema.json")),
        }];
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hooks");
        let table = TopicTable::from_config(&rules, UnknownTopicPolicy::Close, &base).unwrap();
        assert_eq!(
            publish(&table, "devices/d1/meta", br#"[{"name": "temperature"}]"#),
            Verdict::Allow
        );
        let denied = denial(publish(
            &table,
            "devices/d1/meta",
            br#"[{"name": "Meta_New"}]"#,
        ));
        assert_eq!(denied.code, ReasonCode::PAYLOAD_FORMAT_INVALID);
        assert!(!denied.disconnect);
        let feedback = denied.feedback.unwrap();
        assert_eq!(feedback.topic.as_str(), "devices/d1/meta/rejected");
    }

    #[test]
    fn configuration_errors_name_the_rule_and_what_is_wrong() {
        let rules = [
            TopicRuleConfig {
                pattern: "devices/(:id)/meta".to_owned(),
                publish: true,
                subscribe: true,
                schema_file: None,
            },
            TopicRuleConfig {
                pattern: "devices/+/actions".to_owned(),
                publish: true,
                subscribe: true,
                schema_file: None,
            },
        ];
        let message = TopicTable::from_config(&rules, UnknownTopicPolicy::Close, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(message.contains("rule 1"), "{message}");
        assert!(message.contains("devices/+/actions"), "{message}");
        assert!(message.contains("wildcard"), "{message}");

        let missing_schema = [TopicRuleConfig {
            pattern: "devices/(:id)/meta".to_owned(),
            publish: true,
            subscribe: true,
            schema_file: Some(PathBuf::from("no-such.schema.json")),
        }];
        let message = TopicTable::from_config(
            &missing_schema,
            UnknownTopicPolicy::Close,
            Path::new("/etc/starling"),
        )
        .unwrap_err()
        .to_string();
        assert!(message.contains("rule 0"), "{message}");
        assert!(
            message.contains("/etc/starling/no-such.schema.json"),
            "{message}"
        );
    }
}
