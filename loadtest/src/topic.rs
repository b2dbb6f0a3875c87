//! Topic patterns and the harness's own filter matching.
//!
//! Patterns like `bench/{id}` become one topic per publisher or one filter per subscriber.
//! Matching decides, before the run, which publishers each subscriber should hear from, so
//! loss is counted against what the broker ought to deliver even when blocks overlap. This
//! module never talks to a broker; it is a plain implementation of the MQTT matching rules.

use crate::config::BlockSpec;

/// Replaces every `{id}` in `pattern` with `id`.
pub fn expand(pattern: &str, id: u32) -> String {
    pattern.replace("{id}", &id.to_string())
}

/// The filter subscriber `index` of `block` subscribes to, `$share/{group}/` included.
pub fn subscription_filter(block: &BlockSpec, index: u32) -> String {
    let filter = expand(&block.filter, index);
    match &block.share_group {
        Some(group) => format!("$share/{group}/{filter}"),
        None => filter,
    }
}

/// True when `topic` matches `filter` by the MQTT rules: `+` matches one level, `#` the rest
/// (including the parent level), and wildcards at the first level do not match `$` topics.
/// A `$share/{group}/` prefix is ignored.
pub fn matches(filter: &str, topic: &str) -> bool {
    let filter = strip_share(filter);
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        match level {
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            literal => {
                if topic_levels.next() != Some(literal) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

fn strip_share(filter: &str) -> &str {
    filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_, inner)| inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_every_placeholder() {
        assert_eq!(expand("bench/{id}/x/{id}", 7), "bench/7/x/7");
        assert_eq!(expand("bench/all", 7), "bench/all");
    }

    #[test]
    fn matching_follows_mqtt_rules() {
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(matches("a/+", "a/b"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("a/#", "a"));
        assert!(matches("#", "a/b"));
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(matches("+/+/telemetry", "site/3/telemetry"));
        assert!(matches("$share/g/a/+", "a/b"));
        assert!(!matches("a/b/c", "a/b"));
    }
}
