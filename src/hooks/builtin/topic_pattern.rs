//! One row of the topic table: a pattern such as `devices/(:id)/meta/(:name)`, parsed once,
//! matched against topic names (per PUBLISH) and subscription filters (per SUBSCRIBE).
//!
//! A level is either literal text or a placeholder `(:name)` that stands for exactly one
//! non-empty level. Matching compares level by level while splitting the topic in place: it
//! allocates nothing, since it runs for every PUBLISH on the shard.
//!
//! Rules of the pattern language (all checked at parse time, with an error naming the pattern):
//! - the pattern is not empty;
//! - a placeholder is a whole level, `(:` + a name of ASCII letters, digits and `_` + `)`;
//! - literal levels contain none of `+ # ( )`: the wildcards belong to subscribers, and a
//!   parenthesis outside a placeholder is almost surely a mistyped one (`x(:id)`, `(:id`);
//! - a placeholder name appears once per pattern, so captured values are unambiguous;
//! - empty literal levels (`a//b`, a leading `/`) are allowed, as MQTT allows them in topics.

use crate::protocol::TopicFilter;

use super::BuiltinError;

/// A parsed topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    /// The text it was parsed from, for messages.
    source: Box<str>,
    /// Its levels, in order.
    levels: Box<[PatternLevel]>,
}

/// One level of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternLevel {
    /// Matches this exact text.
    Literal(Box<str>),
    /// Matches any one non-empty level; the name is what the captured value is called.
    Placeholder(Box<str>),
}

/// What the allowed forms are, appended to every parse error.
const ALLOWED: &str =
    "a level is literal text without + # ( ) or a whole-level placeholder (:name) whose name \
     has ASCII letters, digits and _";

impl TopicPattern {
    /// Parses `pattern`.
    pub fn parse(pattern: &str) -> Result<Self, BuiltinError> {
        let invalid = |problem: String| BuiltinError::Pattern {
            pattern: pattern.to_owned(),
            problem: format!("{problem}; {ALLOWED}"),
        };
        if pattern.is_empty() {
            return Err(invalid("the pattern is empty".to_owned()));
        }
        let mut levels: Vec<PatternLevel> = Vec::new();
        for (position, level) in pattern.split('/').enumerate() {
            let number = position + 1;
            let parsed = match placeholder_name(level) {
                Some(name) => {
                    if name.is_empty() {
                        return Err(invalid(format!("level {number} `{level}` has no name")));
                    }
                    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                        return Err(invalid(format!(
                            "level {number} `{level}`: placeholder name `{name}` has other \
                             characters than ASCII letters, digits and _"
                        )));
                    }
                    let duplicate = levels
                        .iter()
                        .any(|seen| matches!(seen, PatternLevel::Placeholder(n) if &**n == name));
                    if duplicate {
                        return Err(invalid(format!(
                            "placeholder (:{name}) appears more than once"
                        )));
                    }
                    PatternLevel::Placeholder(name.into())
                }
                None => {
                    if level.contains(['+', '#']) {
                        return Err(invalid(format!(
                            "level {number} `{level}` has a wildcard: patterns match topics \
                             with placeholders, not + or #"
                        )));
                    }
                    if level.contains(['(', ')']) {
                        return Err(invalid(format!(
                            "level {number} `{level}` is a malformed placeholder"
                        )));
                    }
                    PatternLevel::Literal(level.into())
                }
            };
            levels.push(parsed);
        }
        Ok(Self {
            source: pattern.into(),
            levels: levels.into_boxed_slice(),
        })
    }

    /// The text the pattern was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The literal first level, if the pattern starts with one (the topic table indexes rules
    /// by it).
    pub(super) fn first_literal(&self) -> Option<&str> {
        match self.levels.first() {
            Some(PatternLevel::Literal(text)) => Some(text),
            _ => None,
        }
    }

    /// Whether the topic name `topic` matches, level by level.
    pub fn matches_topic(&self, topic: &str) -> bool {
        let mut topic_levels = topic.split('/');
        let all_match = self.levels.iter().all(|pattern_level| {
            topic_levels
                .next()
                .is_some_and(|level| pattern_level.matches_topic_level(level))
        });
        // The topic must have no levels beyond the pattern's.
        all_match && topic_levels.next().is_none()
    }

    /// Whether every topic the subscription `filter` can match is a topic this pattern
    /// matches. For `$share/{group}/{filter}` the inner filter is checked. Levels correspond
    /// one to one: a filter level is the same literal, or, where the pattern has a placeholder,
    /// any non-empty literal or `+`. A filter with `#` is never covered, since it reaches
    /// topics of any depth.
    pub fn covers_filter(&self, filter: &TopicFilter) -> bool {
        self.covers_filter_str(inner_filter(filter))
    }

    /// [`Self::covers_filter`] on the text of an (inner, unshared) filter.
    pub(super) fn covers_filter_str(&self, filter: &str) -> bool {
        let mut filter_levels = filter.split('/');
        let all_covered = self.levels.iter().all(|pattern_level| {
            filter_levels
                .next()
                .is_some_and(|level| pattern_level.covers_filter_level(level))
        });
        all_covered && filter_levels.next().is_none()
    }

    /// Whether every topic `other` matches is also matched by this pattern (so a rule with
    /// `other` listed after one with this pattern would never decide anything).
    pub fn covers_pattern(&self, other: &TopicPattern) -> bool {
        self.levels.len() == other.levels.len()
            && self
                .levels
                .iter()
                .zip(other.levels.iter())
                .all(|(mine, theirs)| match (mine, theirs) {
                    (PatternLevel::Literal(a), PatternLevel::Literal(b)) => a == b,
                    (PatternLevel::Placeholder(_), PatternLevel::Literal(b)) => !b.is_empty(),
                    (PatternLevel::Placeholder(_), PatternLevel::Placeholder(_)) => true,
                    (PatternLevel::Literal(_), PatternLevel::Placeholder(_)) => false,
                })
    }

    /// The placeholder values of `topic`, as `(name, value)` pairs in pattern order, or `None`
    /// when the topic does not match. (For messages and logs: this one allocates.)
    pub fn captures<'p, 't>(&'p self, topic: &'t str) -> Option<Vec<(&'p str, &'t str)>> {
        if !self.matches_topic(topic) {
            return None;
        }
        let captured = self
            .levels
            .iter()
            .zip(topic.split('/'))
            .filter_map(|(pattern_level, value)| match pattern_level {
                PatternLevel::Placeholder(name) => Some((&**name, value)),
                PatternLevel::Literal(_) => None,
            })
            .collect();
        Some(captured)
    }
}

impl std::fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

impl PatternLevel {
    fn matches_topic_level(&self, level: &str) -> bool {
        match self {
            Self::Literal(text) => **text == *level,
            Self::Placeholder(_) => !level.is_empty(),
        }
    }

    fn covers_filter_level(&self, level: &str) -> bool {
        match self {
            // A `+` in the filter would reach every value of this level, more than the literal.
            Self::Literal(text) => **text == *level,
            // `#` never: it also reaches deeper levels. `+` and any non-empty text stay within
            // one level, which is what a placeholder stands for.
            Self::Placeholder(_) => level != "#" && !level.is_empty(),
        }
    }
}

/// The name inside a level shaped like a placeholder, `(:name)`; `None` for a literal.
fn placeholder_name(level: &str) -> Option<&str> {
    level.strip_prefix("(:")?.strip_suffix(')')
}

/// The filter a subscription matches topics with: for a shared one, the part after the group.
pub(super) fn inner_filter(filter: &TopicFilter) -> &str {
    filter
        .shared()
        .map_or(filter.as_str(), |(_group, inner)| inner)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn pattern(text: &str) -> TopicPattern {
        TopicPattern::parse(text).unwrap()
    }

    fn filter(text: &str) -> TopicFilter {
        TopicFilter::new(text).unwrap()
    }

    fn parse_error(text: &str) -> String {
        TopicPattern::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_topic_matches_when_every_level_corresponds() {
        let meta_name = pattern("devices/(:id)/meta/(:name)");
        assert!(meta_name.matches_topic("devices/d1/meta/temperature"));
        assert!(!meta_name.matches_topic("devices/d1/meta"));
        assert!(!meta_name.matches_topic("devices/d1/meta/temperature/extra"));
        assert!(!meta_name.matches_topic("devices//meta/temperature"));
        assert!(!meta_name.matches_topic("devices/d1/meta/"));
        assert!(!meta_name.matches_topic("areas/d1/meta/temperature"));
        let literal = pattern("status");
        assert!(literal.matches_topic("status"));
        assert!(!literal.matches_topic("status/"));
        assert!(!literal.matches_topic("Status"));
    }

    #[test]
    fn captures_name_the_placeholder_values() {
        let meta_name = pattern("devices/(:id)/meta/(:name)");
        assert_eq!(
            meta_name.captures("devices/d1/meta/temperature"),
            Some(vec![("id", "d1"), ("name", "temperature")])
        );
        assert_eq!(meta_name.captures("devices/d1/actions/x"), None);
    }

    #[test]
    fn a_filter_is_covered_only_within_the_pattern() {
        let meta = pattern("devices/(:id)/meta");
        assert!(meta.covers_filter(&filter("devices/d1/meta")));
        assert!(meta.covers_filter(&filter("devices/+/meta")));
        assert!(
            !meta.covers_filter(&filter("+/d1/meta")),
            "+ over a literal"
        );
        assert!(!meta.covers_filter(&filter("devices/#")));
        assert!(!meta.covers_filter(&filter("devices/d1/#")));
        assert!(!meta.covers_filter(&filter("devices/d1/meta/#")));
        assert!(!meta.covers_filter(&filter("devices/d1/meta/x")));
        assert!(!meta.covers_filter(&filter("devices/d1")));
        assert!(!meta.covers_filter(&filter("devices//meta")));
        assert!(!meta.covers_filter(&filter("#")));
    }

    #[test]
    fn a_shared_subscription_is_checked_by_its_inner_filter() {
        let meta = pattern("devices/(:id)/meta");
        assert!(meta.covers_filter(&filter("$share/workers/devices/+/meta")));
        assert!(!meta.covers_filter(&filter("$share/workers/devices/#")));
        assert!(!meta.covers_filter(&filter("$share/devices/+/meta")));
    }

    #[test]
    fn a_pattern_covers_another_when_it_matches_all_its_topics() {
        let any_name = pattern("devices/(:id)/meta/(:name)");
        assert!(any_name.covers_pattern(&pattern("devices/(:id)/meta/rejected")));
        assert!(any_name.covers_pattern(&pattern("devices/(:device)/meta/(:key)")));
        assert!(!pattern("devices/(:id)/meta/rejected").covers_pattern(&any_name));
        assert!(!any_name.covers_pattern(&pattern("devices/(:id)/meta")));
        assert!(!any_name.covers_pattern(&pattern("devices/(:id)/meta/")));
    }

    #[test]
    fn bad_patterns_are_refused_with_the_pattern_and_what_is_allowed() {
        let empty = parse_error("");
        assert!(empty.contains("is empty"), "{empty}");
        for (bad, expected) in [
            ("devices/+/meta", "wildcard"),
            ("devices/#", "wildcard"),
            ("devices/(:)/meta", "has no name"),
            ("devices/(:id/meta", "malformed placeholder"),
            ("devices/x(:id)/meta", "malformed placeholder"),
            ("devices/(id)/meta", "malformed placeholder"),
            ("devices/(:i d)/meta", "placeholder name"),
            ("devices/(:id)/meta/(:id)", "more than once"),
        ] {
            let message = parse_error(bad);
            assert!(message.contains(bad), "{message} should name {bad}");
            assert!(
                message.contains(expected),
                "{message} should say {expected}"
            );
            assert!(
                message.contains("(:name)"),
                "{message} should say what is allowed"
            );
        }
    }

    #[test]
    fn empty_literal_levels_are_allowed_as_in_mqtt_topics() {
        let leading = pattern("/devices/(:id)");
        assert!(leading.matches_topic("/devices/d1"));
        assert!(!leading.matches_topic("devices/d1"));
        assert_eq!(leading.first_literal(), Some(""));
        assert_eq!(pattern("(:id)/x").first_literal(), None);
    }
}
