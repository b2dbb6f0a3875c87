//! `ConfigError`: everything that can be wrong with a config file, said so that an operator can
//! fix it without reading the source.
//!
//! Every error names the key it is about as a path (`tuning.ring_depth`, `listeners[1].bind`)
//! and, where it can, what is allowed. Errors found while reading the TOML (syntax, unknown
//! keys, wrong types) also carry the line and column.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A line and column in the config file, both counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` of `text`.
    pub(crate) fn of_offset(text: &str, offset: usize) -> Self {
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self { line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why not.
        source: io::Error,
    },
    /// The text is not TOML.
    #[error("TOML syntax error at {location}: {message}")]
    Syntax {
        /// Where the parser stopped.
        location: Location,
        /// The parser's explanation.
        message: String,
    },
    /// A key the schema does not have, or a value of the wrong type.
    #[error("{key}: {message}{}", at(location))]
    Schema {
        /// Path of the key, e.g. `tuning.ring_depth`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
        /// Where in the file, when known.
        location: Option<Location>,
    },
    /// A value of the right type outside what is allowed.
    #[error("{key}: {message}")]
    Invalid {
        /// Path of the key, e.g. `tuning.ring_depth`.
        key: String,
        /// What is allowed, and the value given.
        message: String,
    },
    /// The process's CPU affinity mask could not be read, so `tuning.cpus` and
    /// `tuning.shards` cannot be checked against it.
    #[error("cannot read the CPU affinity mask of this process: {0}")]
    Affinity(#[source] io::Error),
}

impl ConfigError {
    /// The key path the error is about, if it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Schema { key, .. } | Self::Invalid { key, .. } => Some(key),
            Self::Read { .. } | Self::Syntax { .. } | Self::Affinity(_) => None,
        }
    }

    /// An `Invalid` error for `key`.
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// Turns a serde error (with the path of the key it happened at) into a `ConfigError`.
    pub(crate) fn from_toml(
        text: &str,
        error: serde_path_to_error::Error<toml::de::Error>,
    ) -> Self {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let location = inner
            .span()
            .map(|span| Location::of_offset(text, span.start));
        // The parser's messages may span lines ("invalid table header\nexpected `.`, `]`");
        // an error is printed as one line.
        let message = inner.message().trim().replace('\n', "; ");
        // serde_path_to_error prints an empty path as ".": the error came from the parser,
        // before any key was read.
        if path == "." {
            return match location {
                Some(location) => Self::Syntax { location, message },
                None => Self::Schema {
                    key: "(file)".to_owned(),
                    message,
                    location: None,
                },
            };
        }
        Self::Schema {
            key: path,
            message: operator_wording(&message),
            location,
        }
    }
}

fn at(location: &Option<Location>) -> String {
    location.map_or_else(String::new, |l| format!(" (at {l})"))
}

/// Rewords serde's messages, which speak Rust ("expected i64", "unknown field", "expected
/// struct RawTuning"), into the TOML an operator wrote.
fn operator_wording(message: &str) -> String {
    let mut text = message
        .replace("unknown field", "unknown key")
        .replace("expected i64", "expected an integer")
        .replace("expected a sequence", "expected an array");
    if let Some(start) = text.find("expected struct ") {
        text.truncate(start);
        text.push_str("expected a table");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_counts_lines_and_characters_from_one() {
        let text = "a = 1\n[tuning]\nkéy = 2\n";
        assert_eq!(
            Location::of_offset(text, 0),
            Location { line: 1, column: 1 }
        );
        let offset = text.find("= 2").unwrap_or(0);
        assert_eq!(
            Location::of_offset(text, offset),
            Location { line: 3, column: 5 }
        );
    }

    #[test]
    fn serde_wording_becomes_toml_wording() {
        assert_eq!(
            operator_wording("invalid type: string \"x\", expected i64"),
            "invalid type: string \"x\", expected an integer"
        );
        assert_eq!(
            operator_wording("invalid type: integer `3`, expected struct RawTuning"),
            "invalid type: integer `3`, expected a table"
        );
        assert_eq!(
            operator_wording("unknown field `x`, expected `a` or `b`"),
            "unknown key `x`, expected `a` or `b`"
        );
    }
}
