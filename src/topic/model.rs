//! The naive reference the model tests of this module compare against: a filter is matched
//! against a topic by splitting both into levels and comparing them one by one, exactly as
//! §4.7 reads, with no trie and nothing shared with the code under test. Test-only.

use proptest::prelude::*;

/// True when `filter` (not shared) matches `topic`, by the rules of MQTT §4.7.
pub(super) fn filter_matches(filter: &str, topic: &str) -> bool {
    let filter: Vec<&str> = filter.split('/').collect();
    let topic: Vec<&str> = topic.split('/').collect();
    // [MQTT-4.7.2-1]: a wildcard first level does not match a topic starting with `$`.
    if topic[0].starts_with('$') && (filter[0] == "+" || filter[0] == "#") {
        return false;
    }
    let mut position = 0;
    loop {
        match (filter.get(position), topic.get(position)) {
            // `#` matches what is left, including nothing (the parent level).
            (Some(&"#"), _) => return true,
            (Some(&"+"), Some(_)) => {}
            (Some(filter_level), Some(topic_level)) if filter_level == topic_level => {}
            (None, None) => return true,
            _ => return false,
        }
        position += 1;
    }
}

/// Topic levels from a small alphabet, so random filters and topics often overlap: two plain
/// levels, a `$` level and the empty level.
fn topic_level() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("a"), Just("b"), Just("$s"), Just("")]
}

/// A topic name of one to four levels (not the empty string, which is no topic name).
pub(super) fn topic_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec(topic_level(), 1..=4)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("a topic name is not empty", |topic| !topic.is_empty())
}

/// A valid filter of one to four levels over the topic alphabet plus `+`, possibly ending in `#`.
pub(super) fn filter_strategy() -> impl Strategy<Value = String> {
    let level = prop_oneof![3 => topic_level(), 1 => Just("+")];
    (proptest::collection::vec(level, 0..=3), any::<bool>())
        .prop_map(|(levels, hash)| {
            let mut levels = levels;
            if hash || levels.is_empty() {
                levels.push("#");
            }
            levels.join("/")
        })
        .prop_filter("a filter is not empty", |filter| !filter.is_empty())
}

#[cfg(test)]
mod tests {
    use super::filter_matches;

    #[test]
    fn the_reference_agrees_with_the_spec_examples() {
        assert!(filter_matches("sport/#", "sport"));
        assert!(filter_matches("sport/tennis/+", "sport/tennis/p1"));
        assert!(!filter_matches("sport/+", "sport"));
        assert!(filter_matches("+/+", "/finance"));
        assert!(!filter_matches("+", "/finance"));
        assert!(!filter_matches("#", "$SYS/x"));
        assert!(filter_matches("$SYS/#", "$SYS/x"));
        assert!(filter_matches("a//b", "a//b"));
    }
}
