//! The built-in decision hooks: what an operator gets without writing a hook of their own.
//!
//! - [`Credentials`] ([`credentials`]) decides CONNECTs ([`AuthOnRegister`]): users with argon2
//!   or bcrypt password hashes from a password file, and API tokens (user name
//!   `authorization`, the token as password) that log a client in as the token's identity.
//!   Anonymous clients get `Next`.
//! - [`TopicTable`] ([`topic_table`], patterns in [`topic_pattern`]) decides PUBLISH and
//!   SUBSCRIBE ([`AuthOnPublish`], [`AuthOnSubscribe`]): an ordered table of topic patterns
//!   with publish and subscribe permissions; topics outside it are denied and, by default,
//!   close the connection.
//! - [`PayloadSchema`] ([`payload_schema`]) is a rule's optional JSON Schema: a publish whose
//!   payload breaks it is denied with 0x99 and explained on `<topic>/rejected`.
//!
//! They chain like any hooks, in the configured order ([`crate::hooks::HookChain`]): the
//! credentials usually come first on the register chain (a `Next` for anonymous clients lets a
//! later hook decide, or the chain's default deny), the topic table on the publish and
//! subscribe chains. The topic table never answers `Next`: it decides every topic, so hooks
//! after it on those chains are not reached.
//!
//! All of them are built from plain config structs ([`CredentialsConfig`],
//! [`TopicRuleConfig`]) that the config module fills from TOML, and fail with a
//! [`BuiltinError`] naming the file, line, rule or pattern at fault.
//!
//! [`AuthOnRegister`]: crate::hooks::AuthOnRegister
//! [`AuthOnPublish`]: crate::hooks::AuthOnPublish
//! [`AuthOnSubscribe`]: crate::hooks::AuthOnSubscribe

use std::path::PathBuf;

pub mod credentials;
pub mod payload_schema;
pub mod topic_pattern;
pub mod topic_table;

pub use credentials::{
    hash_password, Credentials, CredentialsConfig, PendingVerification, Verified,
    DEFAULT_TOKEN_USERNAME,
};
pub use payload_schema::{PayloadSchema, Rejection, REJECTED_SUFFIX};
pub use topic_pattern::TopicPattern;
pub use topic_table::{TopicRule, TopicRuleConfig, TopicTable, UnknownTopicPolicy};

/// Why a built-in hook could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    /// A topic pattern is malformed.
    #[error("topic pattern {pattern:?}: {problem}")]
    Pattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong, and what is allowed.
        problem: String,
    },
    /// A topic table rule could not be built.
    #[error("topic table rule {index} ({pattern:?}): {source}")]
    Rule {
        /// Its position in the table, from 0.
        index: usize,
        /// Its pattern as written.
        pattern: String,
        /// What is wrong with it.
        source: Box<BuiltinError>,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why not.
        source: std::io::Error,
    },
    /// A payload schema file is not JSON.
    #[error("payload schema {}: not JSON: {source}", path.display())]
    SchemaNotJson {
        /// The file.
        path: PathBuf,
        /// The parser's explanation.
        source: serde_json::Error,
    },
    /// A payload schema file is JSON but no valid JSON Schema.
    #[error("payload schema {}: not a valid JSON Schema: {message}", path.display())]
    SchemaInvalid {
        /// The file.
        path: PathBuf,
        /// The validator's explanation.
        message: String,
    },
    /// A password or token file says something wrong (never quoted: it may hold secrets).
    #[error("{}{}: {problem}", path.display(), line.map(|n| format!(" line {n}")).unwrap_or_default())]
    Credentials {
        /// The file.
        path: PathBuf,
        /// The line, from 1, when one line is at fault.
        line: Option<usize>,
        /// What is wrong.
        problem: String,
    },
    /// Hashing a password failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}
