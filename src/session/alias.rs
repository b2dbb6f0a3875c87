//! MQTT 5 topic aliases of one connection, both ways. They live and die with the connection
//! (never with the session), and both maps are bounded by the Topic Alias Maximum each side
//! announced.

use std::collections::HashMap;
use std::num::NonZeroU16;

use crate::protocol::TopicName;

/// Aliases the client set up in its PUBLISHes: alias → topic.
#[derive(Debug, Default)]
pub struct InboundAliases {
    maximum: u16,
    topics: HashMap<NonZeroU16, TopicName>,
}

/// Why an inbound alias cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasError {
    /// Above the maximum the broker announced (0x94 Topic Alias invalid).
    OutOfRange,
    /// An empty topic with an alias that was never set (0x82 Protocol Error).
    Unknown,
}

impl InboundAliases {
    /// Aliases 1 to `maximum` are accepted; 0 disables them.
    pub fn new(maximum: u16) -> Self {
        Self {
            maximum,
            topics: HashMap::new(),
        }
    }

    /// Resolves a PUBLISH's topic: sets the alias when the topic is given, looks it up when the
    /// topic is empty.
    pub fn resolve(
        &mut self,
        topic: &TopicName,
        alias: Option<NonZeroU16>,
    ) -> Result<TopicName, AliasError> {
        let Some(alias) = alias else {
            return Ok(topic.clone());
        };
        if alias.get() > self.maximum {
            return Err(AliasError::OutOfRange);
        }
        if topic.is_empty() {
            return self.topics.get(&alias).cloned().ok_or(AliasError::Unknown);
        }
        self.topics.insert(alias, topic.to_owned_copy());
        Ok(topic.clone())
    }
}

/// Aliases the broker assigns for topics it sends: topic → alias. Assigned first come, first
/// served until the client's maximum is used up; later topics go out by name. That keeps the
/// per-delivery cost to one hash lookup and never re-maps an alias under the client.
#[derive(Debug, Default)]
pub struct OutboundAliases {
    maximum: u16,
    aliases: HashMap<TopicName, NonZeroU16>,
}

impl OutboundAliases {
    /// Up to `maximum` aliases (the client's Topic Alias Maximum); 0 disables them.
    pub fn new(maximum: u16) -> Self {
        Self {
            maximum,
            aliases: HashMap::new(),
        }
    }

    /// The alias to send with `topic`, and whether the topic name must go with it (the first
    /// time). `None` when aliases are off or used up.
    pub fn alias_for(&mut self, topic: &TopicName) -> Option<(NonZeroU16, bool)> {
        if let Some(&alias) = self.aliases.get(topic) {
            return Some((alias, false));
        }
        let next = u16::try_from(self.aliases.len() + 1).ok()?;
        if next > self.maximum {
            return None;
        }
        let alias = NonZeroU16::new(next)?;
        self.aliases.insert(topic.to_owned_copy(), alias);
        Some((alias, true))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn topic(text: &str) -> TopicName {
        TopicName::new(text).unwrap()
    }

    #[test]
    fn inbound_alias_is_set_by_a_named_publish_and_used_by_an_empty_one() {
        let mut aliases = InboundAliases::new(10);
        let alias = NonZeroU16::new(3);
        assert_eq!(aliases.resolve(&topic("a/b"), alias), Ok(topic("a/b")));
        assert_eq!(
            aliases.resolve(&TopicName::empty(), alias),
            Ok(topic("a/b"))
        );
        // Re-pointing an alias is allowed.
        assert_eq!(aliases.resolve(&topic("c"), alias), Ok(topic("c")));
        assert_eq!(aliases.resolve(&TopicName::empty(), alias), Ok(topic("c")));
    }

    #[test]
    fn inbound_alias_above_the_maximum_or_unknown_is_refused() {
        let mut aliases = InboundAliases::new(2);
        assert_eq!(
            aliases.resolve(&topic("a"), NonZeroU16::new(3)),
            Err(AliasError::OutOfRange)
        );
        assert_eq!(
            aliases.resolve(&TopicName::empty(), NonZeroU16::new(1)),
            Err(AliasError::Unknown)
        );
        let mut off = InboundAliases::new(0);
        assert_eq!(
            off.resolve(&topic("a"), NonZeroU16::new(1)),
            Err(AliasError::OutOfRange)
        );
    }

    #[test]
    fn outbound_aliases_are_assigned_until_the_client_maximum() {
        let mut aliases = OutboundAliases::new(2);
        assert_eq!(
            aliases.alias_for(&topic("a")),
            Some((NonZeroU16::MIN, true))
        );
        assert_eq!(
            aliases.alias_for(&topic("a")),
            Some((NonZeroU16::MIN, false))
        );
        assert_eq!(
            aliases.alias_for(&topic("b")),
            Some((NonZeroU16::new(2).unwrap(), true))
        );
        assert_eq!(aliases.alias_for(&topic("c")), None);
        assert_eq!(OutboundAliases::new(0).alias_for(&topic("a")), None);
    }
}
