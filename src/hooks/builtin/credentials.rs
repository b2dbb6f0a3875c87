//! The credentials hook: user names with passwords, and API tokens, checked on CONNECT.
//!
//! - Password file: one `username:hash` per line; blank lines and `#` comments are ignored.
//!   Hashes are PHC/modular strings: argon2 (`$argon2id$…`, also `$argon2i$`/`$argon2d$`) or
//!   bcrypt (`$2b$`, `$2a$`, `$2y$`). [`hash_password`] makes argon2id ones.
//! - Token file: one `<hash> <identity>` per line. As the platform document has it, a client
//!   sends the token user name (`authorization` by default) as its user name and its API
//!   token as the password; the connection then gets `identity` as its user name. The hash is
//!   argon2/bcrypt, or `sha256:<64 hex digits>` of the token.
//!
//! Verdicts: a known user with the right password is allowed; the token user name with a
//! known token is allowed as its identity; a wrong password, an unknown user or an unknown
//! token is refused with 0x86 (Bad user name or password). A CONNECT without a user name gets
//! `Next`: this hook only speaks for clients that claim an identity, so an anonymous client is
//! left to the next hook or, if none decides, to the chain's default deny.
//!
//! Cost: argon2 and bcrypt take milliseconds on purpose (about 25 ms for `starling passwd`'s
//! parameters), far too long for a shard thread: a storm of first logins after a restart
//! would stall every client of the shard. So the connection, before it hands the CONNECT to
//! the shard's engine, asks [`Credentials::pending_verification`] whether a slow hash must
//! run, runs it on glommio's blocking pool ([`PendingVerification::run`], on another thread)
//! and hands the answer back ([`Credentials::remember`]); the hook itself then decides from
//! the cache and never hashes on the shard in the broker. Successful verifications are
//! remembered in a bounded cache (10,000 entries, oldest forgotten first) so a reconnecting
//! client does not pay again; a refusal is kept only for the CONNECT that asked. Unknown
//! users are refused without a hash run: equalizing their timing would spend CPU on every bad
//! CONNECT, and user names are not treated as secrets here.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};

use crate::hooks::decision::{AuthOnRegister, Denial, RegisterChanges, RegisterRequest, Verdict};
use crate::protocol::{MqttString, ReasonCode};

use super::BuiltinError;

/// The user name a client sends to log in with a token, unless configured otherwise.
pub const DEFAULT_TOKEN_USERNAME: &str = "authorization";

/// How many successful verifications the cache keeps. Enough for every device of a large
/// shard to reconnect without an argon2 run, small enough (about 1 MB) to never matter; the
/// bound keeps a flood of distinct logins from growing it without end.
const VERIFIED_CACHE_CAPACITY: usize = 10_000;

/// What the reason string says for any refused password: the same words for an unknown user
/// and a wrong password, since 5.0 clients may see it.
const BAD_CREDENTIALS: &str = "user name or password not accepted";

/// Where the password and token files are, and the token user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsConfig {
    /// The `username:hash` file, if any.
    pub password_file: Option<PathBuf>,
    /// The `<hash> <identity>` token file, if any.
    pub token_file: Option<PathBuf>,
    /// The user name that means "the password is a token" (when a token file is configured).
    pub token_username: String,
}

impl Default for CredentialsConfig {
    fn default() -> Self {
        Self {
            password_file: None,
            token_file: None,
            token_username: DEFAULT_TOKEN_USERNAME.to_owned(),
        }
    }
}

/// Makes an argon2id PHC string for `password` (default parameters, random salt): what a
/// password file line holds after `username:`.
pub fn hash_password(password: &str) -> Result<String, BuiltinError> {
    let salt = SaltString::generate(&mut password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| BuiltinError::Hash(error.to_string()))
}

/// The credentials hook. Each shard holds its own (cloning shares the loaded files and starts
/// an empty cache), so the cache is a `RefCell`: hooks are not shared between threads.
pub struct Credentials {
    store: Arc<Store>,
    verified: RefCell<VerifiedCache>,
    /// The key of the credentials an off-shard verification just refused, for the CONNECT that
    /// asked (it reaches the hook right after, with no other CONNECT in between).
    refused: std::cell::Cell<Option<[u8; 32]>>,
    /// How many argon2/bcrypt verifications ran, so tests can see the cache work.
    #[cfg(test)]
    slow_verifications: std::cell::Cell<usize>,
}

/// What the files say, read once.
struct Store {
    users: HashMap<String, SlowHash>,
    /// SHA-256 tokens by digest. A fast hash is acceptable for tokens, unlike passwords: they
    /// are long random strings, so there is nothing to guess from a digest. Looking them up by
    /// digest also leaks no timing worth having, since a client cannot steer the digest.
    fast_tokens: HashMap<[u8; 32], MqttString>,
    /// Argon2/bcrypt tokens: they cannot be indexed, each is tried in turn (prefer sha256 for
    /// many tokens).
    slow_tokens: Vec<(SlowHash, MqttString)>,
    /// The token user name, when a token file is configured.
    token_username: Option<String>,
}

/// A deliberately slow password hash, validated at load.
enum SlowHash {
    /// A PHC string, `$argon2id$v=19$m=…`.
    Argon2(String),
    /// A modular crypt string, `$2b$12$…`.
    Bcrypt(String),
}

/// Successful verifications, keyed by SHA-256(user name, 0x00, password): a user name never
/// holds U+0000, so the key is unambiguous, and no password is kept in clear. Entries are
/// added only after a real verification succeeded, so the cache never accepts a password
/// that was not verified. Full, it forgets its oldest entry.
#[derive(Default)]
struct VerifiedCache {
    /// The key and what the login granted (the identity, for tokens).
    entries: HashMap<[u8; 32], Option<MqttString>>,
    /// Keys in insertion order, to forget the oldest.
    order: VecDeque<[u8; 32]>,
}

impl VerifiedCache {
    fn get(&self, key: &[u8; 32]) -> Option<&Option<MqttString>> {
        self.entries.get(key)
    }

    fn insert(&mut self, key: [u8; 32], grant: Option<MqttString>) {
        if self.entries.insert(key, grant).is_some() {
            return;
        }
        self.order.push_back(key);
        if self.order.len() > VERIFIED_CACHE_CAPACITY {
            if let Some(oldest) = self.order.pop_front() {
                self.entries.remove(&oldest);
            }
        }
    }
}

impl Credentials {
    /// Reads the configured files. Errors name the file, the line and what is wrong, never a
    /// password or hash.
    pub fn load(config: &CredentialsConfig) -> Result<Self, BuiltinError> {
        let users = match &config.password_file {
            Some(path) => parse_password_file(&read(path)?, path)?,
            None => HashMap::new(),
        };
        let (fast_tokens, slow_tokens, token_username) = match &config.token_file {
            Some(path) => {
                let (fast, slow) = parse_token_file(&read(path)?, path)?;
                (fast, slow, Some(config.token_username.clone()))
            }
            None => (HashMap::new(), Vec::new(), None),
        };
        if let (Some(token_username), Some(path)) = (&token_username, &config.password_file) {
            // The token user name takes precedence; a password for it would never be checked.
            if users.contains_key(token_username) {
                return Err(BuiltinError::Credentials {
                    path: path.clone(),
                    line: None,
                    problem: format!(
                        "user {token_username:?} is the token user name: its password would \
                         never be checked (configure another token_username or remove the line)"
                    ),
                });
            }
        }
        Ok(Self::from_store(Store {
            users,
            fast_tokens,
            slow_tokens,
            token_username,
        }))
    }

    fn from_store(store: Store) -> Self {
        Self {
            store: Arc::new(store),
            verified: RefCell::default(),
            refused: std::cell::Cell::new(None),
            #[cfg(test)]
            slow_verifications: std::cell::Cell::new(0),
        }
    }

    /// The slow hash the login `username`/`password` needs before this hook can answer it
    /// from memory, if any: `None` when there is nothing to run (no such user, a cached login,
    /// a SHA-256 token, no slow tokens, or a CONNECT this hook leaves to others).
    pub fn pending_verification(
        &self,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Option<PendingVerification> {
        let (username, password) = (username?, password?);
        let token = self.store.token_username.as_deref() == Some(username);
        if token {
            let digest: [u8; 32] = Sha256::digest(password).into();
            if self.store.fast_tokens.contains_key(&digest) || self.store.slow_tokens.is_empty() {
                return None;
            }
        } else if !self.store.users.contains_key(username) {
            return None;
        }
        let key = cache_key(username, password);
        if self.verified.borrow().get(&key).is_some() {
            return None;
        }
        Some(PendingVerification {
            store: Arc::clone(&self.store),
            key,
            username: username.to_owned(),
            secret: password.to_vec(),
            token,
        })
    }

    /// Takes in what a [`PendingVerification`] found: a success joins the cache, a refusal is
    /// kept for the next check of the same credentials only.
    pub fn remember(&self, verified: Verified) {
        match verified.grant {
            Some(grant) => self.verified.borrow_mut().insert(verified.key, grant),
            None => self.refused.set(Some(verified.key)),
        }
    }

    /// Whether an off-shard verification has just refused the credentials of `key` (consumed).
    fn just_refused(&self, key: &[u8; 32]) -> bool {
        let refused = self.refused.take();
        refused.as_ref() == Some(key)
    }

    /// Checks `password` for `username` against `hash`, through the cache.
    fn password_matches(&self, username: &str, password: &[u8], hash: &SlowHash) -> bool {
        let key = cache_key(username, password);
        if self.verified.borrow().get(&key).is_some() {
            return true;
        }
        if self.just_refused(&key) {
            return false;
        }
        if !self.slow_verify(hash, password) {
            return false;
        }
        self.verified.borrow_mut().insert(key, None);
        true
    }

    /// The identity `token` stands for, if it is a known one.
    fn token_identity(&self, token_username: &str, token: &[u8]) -> Option<MqttString> {
        let digest: [u8; 32] = Sha256::digest(token).into();
        if let Some(identity) = self.store.fast_tokens.get(&digest) {
            return Some(identity.clone());
        }
        if self.store.slow_tokens.is_empty() {
            return None;
        }
        let key = cache_key(token_username, token);
        if let Some(Some(identity)) = self.verified.borrow().get(&key) {
            return Some(identity.clone());
        }
        if self.just_refused(&key) {
            return None;
        }
        let identity = self
            .store
            .slow_tokens
            .iter()
            .find(|(hash, _)| self.slow_verify(hash, token))
            .map(|(_, identity)| identity.clone())?;
        self.verified
            .borrow_mut()
            .insert(key, Some(identity.clone()));
        Some(identity)
    }

    fn slow_verify(&self, hash: &SlowHash, secret: &[u8]) -> bool {
        #[cfg(test)]
        self.slow_verifications
            .set(self.slow_verifications.get() + 1);
        hash.verify(secret)
    }
}

/// A slow password or token check to run off the shard; `Send`, holding the loaded files.
pub struct PendingVerification {
    store: Arc<Store>,
    key: [u8; 32],
    username: String,
    secret: Vec<u8>,
    token: bool,
}

/// What a [`PendingVerification`] found, for [`Credentials::remember`].
#[derive(Debug)]
pub struct Verified {
    key: [u8; 32],
    /// `None`: refused. Otherwise accepted, with the identity a token stands for.
    grant: Option<Option<MqttString>>,
}

impl PendingVerification {
    /// Runs the hash (milliseconds: call it on a blocking pool, not on a shard).
    pub fn run(self) -> Verified {
        let grant = if self.token {
            self.store
                .slow_tokens
                .iter()
                .find(|(hash, _)| hash.verify(&self.secret))
                .map(|(_, identity)| Some(identity.clone()))
        } else {
            self.store
                .users
                .get(&self.username)
                .filter(|hash| hash.verify(&self.secret))
                .map(|_| None)
        };
        Verified {
            key: self.key,
            grant,
        }
    }
}

impl std::fmt::Debug for PendingVerification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("PendingVerification")
            .field("username", &self.username)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Clone for Credentials {
    /// Shares the loaded files; the copy starts with an empty cache of its own.
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            verified: RefCell::default(),
            refused: std::cell::Cell::new(None),
            #[cfg(test)]
            slow_verifications: std::cell::Cell::new(0),
        }
    }
}

impl std::fmt::Debug for Credentials {
    // Counts only: hashes stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("users", &self.store.users.len())
            .field(
                "tokens",
                &(self.store.fast_tokens.len() + self.store.slow_tokens.len()),
            )
            .field("token_username", &self.store.token_username)
            .field(
                "cached_verifications",
                &self.verified.borrow().entries.len(),
            )
            .finish()
    }
}

impl AuthOnRegister for Credentials {
    fn auth_on_register(&self, request: &RegisterRequest<'_>) -> Verdict<RegisterChanges> {
        let Some(username) = request.username else {
            return Verdict::Next;
        };
        let username = username.as_str();
        let Some(password) = request.password else {
            return Verdict::Deny(bad_credentials("no password given"));
        };
        if self.store.token_username.as_deref() == Some(username) {
            return match self.token_identity(username, password) {
                Some(identity) => Verdict::AllowWith(RegisterChanges {
                    username: Some(identity),
                }),
                None => Verdict::Deny(bad_credentials("token not accepted")),
            };
        }
        match self.store.users.get(username) {
            Some(hash) if self.password_matches(username, password, hash) => Verdict::Allow,
            _ => Verdict::Deny(bad_credentials(BAD_CREDENTIALS)),
        }
    }
}

/// The shard keeps its `Credentials` shared between the register chain and the connections
/// that verify first logins off the shard ([`DecisionHooks::credentials`]).
///
/// [`DecisionHooks::credentials`]: crate::hooks::DecisionHooks::credentials
impl AuthOnRegister for std::rc::Rc<Credentials> {
    fn auth_on_register(&self, request: &RegisterRequest<'_>) -> Verdict<RegisterChanges> {
        Credentials::auth_on_register(self, request)
    }
}

fn bad_credentials(reason: &str) -> Denial {
    Denial::new(ReasonCode::BAD_USER_NAME_OR_PASSWORD, reason)
}

fn cache_key(username: &str, secret: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(username.as_bytes())
        .chain_update([0u8])
        .chain_update(secret)
        .finalize()
        .into()
}

impl SlowHash {
    /// Recognizes and validates a hash string; the error says what is wrong without quoting it.
    fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("$argon2") {
            let parsed = PasswordHash::new(text)
                .map_err(|error| format!("malformed argon2 hash ({error})"))?;
            argon2::Algorithm::try_from(parsed.algorithm)
                .map_err(|error| format!("unknown argon2 variant ({error})"))?;
            argon2::Params::try_from(&parsed)
                .map_err(|error| format!("unusable argon2 parameters ({error})"))?;
            if parsed.hash.is_none() || parsed.salt.is_none() {
                return Err("argon2 hash without salt or hash value".to_owned());
            }
            Ok(Self::Argon2(text.to_owned()))
        } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| text.starts_with(p)) {
            bcrypt::HashParts::from_str(text)
                .map_err(|error| format!("malformed bcrypt hash ({error})"))?;
            Ok(Self::Bcrypt(text.to_owned()))
        } else {
            Err(
                "unsupported hash: expected argon2 ($argon2id$…) or bcrypt ($2b$, $2a$, $2y$)"
                    .to_owned(),
            )
        }
    }

    fn verify(&self, secret: &[u8]) -> bool {
        match self {
            Self::Argon2(text) => PasswordHash::new(text)
                .is_ok_and(|hash| Argon2::default().verify_password(secret, &hash).is_ok()),
            Self::Bcrypt(text) => bcrypt::verify(secret, text).unwrap_or(false),
        }
    }
}

fn read(path: &Path) -> Result<String, BuiltinError> {
    std::fs::read_to_string(path).map_err(|source| BuiltinError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The lines that say something: (line number from 1, trimmed text).
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}

fn line_error(path: &Path, line: usize, problem: impl Into<String>) -> BuiltinError {
    BuiltinError::Credentials {
        path: path.to_owned(),
        line: Some(line),
        problem: problem.into(),
    }
}

fn parse_password_file(text: &str, path: &Path) -> Result<HashMap<String, SlowHash>, BuiltinError> {
    let mut users = HashMap::new();
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (number, line) in content_lines(text) {
        let (username, hash) = line
            .split_once(':')
            .ok_or_else(|| line_error(path, number, "expected `username:hash`"))?;
        if username.is_empty() {
            return Err(line_error(path, number, "empty user name before `:`"));
        }
        if MqttString::new(username).is_err() {
            return Err(line_error(path, number, "the user name is no MQTT string"));
        }
        if let Some(first) = first_seen.insert(username, number) {
            return Err(line_error(
                path,
                number,
                format!("user {username:?} is already listed on line {first}"),
            ));
        }
        let hash = SlowHash::parse(hash).map_err(|problem| line_error(path, number, problem))?;
        users.insert(username.to_owned(), hash);
    }
    Ok(users)
}

type TokenTables = (HashMap<[u8; 32], MqttString>, Vec<(SlowHash, MqttString)>);

fn parse_token_file(text: &str, path: &Path) -> Result<TokenTables, BuiltinError> {
    let mut fast = HashMap::new();
    let mut first_seen: HashMap<[u8; 32], usize> = HashMap::new();
    let mut slow = Vec::new();
    for (number, line) in content_lines(text) {
        let (hash, identity) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| line_error(path, number, "expected `<hash> <identity>`"))?;
        let identity = identity.trim();
        if identity.is_empty() {
            return Err(line_error(path, number, "empty identity after the hash"));
        }
        let identity = MqttString::new(identity)
            .map_err(|_| line_error(path, number, "the identity is no MQTT string"))?;
        match hash.strip_prefix("sha256:") {
            Some(hex) => {
                let digest = decode_sha256_hex(hex).ok_or_else(|| {
                    line_error(path, number, "sha256: must be followed by 64 hex digits")
                })?;
                if let Some(first) = first_seen.insert(digest, number) {
                    return Err(line_error(
                        path,
                        number,
                        format!("the same token is already listed on line {first}"),
                    ));
                }
                fast.insert(digest, identity);
            }
            None => {
                let hash = SlowHash::parse(hash).map_err(|problem| {
                    line_error(path, number, format!("{problem}, or sha256:<hex>"))
                })?;
                slow.push((hash, identity));
            }
        }
    }
    Ok((fast, slow))
}

fn decode_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(digest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;

    use super::*;
    use crate::protocol::{ClientId, ProtocolVersion};

    fn data_file(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/hooks")
            .join(name)
    }

    /// The fixtures: alice (argon2id) and bob (bcrypt) in the password file; one sha256 and
    /// one argon2 token.
    fn fixture() -> Credentials {
        Credentials::load(&CredentialsConfig {
            password_file: Some(data_file("passwords.txt")),
            token_file: Some(data_file("tokens.txt")),
            token_username: DEFAULT_TOKEN_USERNAME.to_owned(),
        })
        .unwrap()
    }

    fn connect(
        credentials: &Credentials,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Verdict<RegisterChanges> {
        let client = ClientId::new("c1").unwrap();
        let username = username.map(|name| MqttString::new(name).unwrap());
        let password = password.map(|text| Bytes::copy_from_slice(text.as_bytes()));
        credentials.auth_on_register(&RegisterRequest {
            client_id: &client,
            username: username.as_ref(),
            password: password.as_ref(),
            address: None,
            protocol: ProtocolVersion::V5,
        })
    }

    fn denial_code(verdict: Verdict<RegisterChanges>) -> ReasonCode {
        match verdict {
            Verdict::Deny(denial) => denial.code,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    fn identity(name: &str) -> Verdict<RegisterChanges> {
        Verdict::AllowWith(RegisterChanges {
            username: Some(MqttString::new(name).unwrap()),
        })
    }

    #[test]
    fn argon2_and_bcrypt_passwords_verify() {
        let credentials = fixture();
        assert_eq!(
            connect(&credentials, Some("alice"), Some("alice-secret")),
            Verdict::Allow
        );
        assert_eq!(
            connect(&credentials, Some("bob"), Some("bob-secret")),
            Verdict::Allow
        );
    }

    #[test]
    fn wrong_passwords_and_unknown_users_are_refused_with_0x86() {
        let credentials = fixture();
        let bad = ReasonCode::BAD_USER_NAME_OR_PASSWORD;
        assert_eq!(
            denial_code(connect(&credentials, Some("alice"), Some("bob-secret"))),
            bad
        );
        assert_eq!(
            denial_code(connect(&credentials, Some("bob"), Some("alice-secret"))),
            bad
        );
        assert_eq!(denial_code(connect(&credentials, Some("alice"), None)), bad);
        assert_eq!(
            denial_code(connect(&credentials, Some("mallory"), Some("x"))),
            bad
        );
    }

    #[test]
    fn no_user_name_is_left_to_the_next_hook() {
        assert_eq!(
            connect(&fixture(), None, Some("alice-secret")),
            Verdict::Next
        );
    }

    #[test]
    fn tokens_map_to_their_identity() {
        let credentials = fixture();
        assert_eq!(
            connect(
                &credentials,
                Some("authorization"),
                Some("tok-sha256-0123456789abcdef")
            ),
            identity("building-service")
        );
        assert_eq!(
            connect(
                &credentials,
                Some("authorization"),
                Some("tok-argon2-fedcba9876543210")
            ),
            identity("dashboard")
        );
        assert_eq!(
            denial_code(connect(
                &credentials,
                Some("authorization"),
                Some("tok-unknown")
            )),
            ReasonCode::BAD_USER_NAME_OR_PASSWORD
        );
    }

    #[test]
    fn the_token_user_name_is_configurable_and_plain_without_a_token_file() {
        let custom = Credentials::load(&CredentialsConfig {
            password_file: None,
            token_file: Some(data_file("tokens.txt")),
            token_username: "api-token".to_owned(),
        })
        .unwrap();
        assert_eq!(
            connect(
                &custom,
                Some("api-token"),
                Some("tok-sha256-0123456789abcdef")
            ),
            identity("building-service")
        );
        assert_eq!(
            denial_code(connect(
                &custom,
                Some("authorization"),
                Some("tok-sha256-0123456789abcdef")
            )),
            ReasonCode::BAD_USER_NAME_OR_PASSWORD
        );
    }

    #[test]
    fn first_logins_are_verified_off_the_shard_and_the_hook_never_hashes() {
        let credentials = fixture();
        let pending = |user: &str, secret: &str| {
            credentials.pending_verification(Some(user), Some(secret.as_bytes()))
        };
        // Nothing to run: no user name, no such user, a SHA-256 token.
        assert!(credentials
            .pending_verification(None, Some(b"x".as_slice()))
            .is_none());
        assert!(pending("mallory", "x").is_none());
        assert!(pending("authorization", "tok-sha256-0123456789abcdef").is_none());
        // A right password: verified elsewhere (here another thread), then allowed from the
        // cache, with no hash run by the hook; and nothing left to run after that.
        let job = pending("alice", "alice-secret")
            .unwrap_or_else(|| panic!("a first login needs a hash"));
        let verified = std::thread::spawn(move || job.run()).join().unwrap();
        credentials.remember(verified);
        assert_eq!(
            connect(&credentials, Some("alice"), Some("alice-secret")),
            Verdict::Allow
        );
        assert!(pending("alice", "alice-secret").is_none());
        // A wrong password: refused from the answer, once.
        let job = pending("alice", "guess")
            .unwrap_or_else(|| panic!("an unverified password needs a hash"));
        credentials.remember(job.run());
        assert!(matches!(
            connect(&credentials, Some("alice"), Some("guess")),
            Verdict::Deny(_)
        ));
        // A slow token: its identity comes back with the answer.
        let token = "tok-argon2-fedcba9876543210";
        credentials.remember(pending("authorization", token).unwrap().run());
        assert_eq!(
            connect(&credentials, Some("authorization"), Some(token)),
            identity("dashboard")
        );
        assert_eq!(
            credentials.slow_verifications.get(),
            0,
            "the hook itself ran no hash"
        );
        // The refusal was for that CONNECT only: the same wrong password is checked again.
        assert!(matches!(
            connect(&credentials, Some("alice"), Some("guess")),
            Verdict::Deny(_)
        ));
        assert_eq!(credentials.slow_verifications.get(), 1);
    }

    #[test]
    fn a_second_login_is_answered_from_the_cache_without_rehashing() {
        let credentials = fixture();
        let runs = || credentials.slow_verifications.get();
        assert_eq!(
            connect(&credentials, Some("alice"), Some("alice-secret")),
            Verdict::Allow
        );
        assert_eq!(runs(), 1);
        assert_eq!(
            connect(&credentials, Some("alice"), Some("alice-secret")),
            Verdict::Allow
        );
        assert_eq!(runs(), 1, "the second login must come from the cache");
        // A wrong password is never cached as good, and is hashed every time.
        assert!(matches!(
            connect(&credentials, Some("alice"), Some("guess")),
            Verdict::Deny(_)
        ));
        assert!(matches!(
            connect(&credentials, Some("alice"), Some("guess")),
            Verdict::Deny(_)
        ));
        assert_eq!(runs(), 3);
        // A slow token is cached with its identity.
        let token = Some("tok-argon2-fedcba9876543210");
        assert_eq!(
            connect(&credentials, Some("authorization"), token),
            identity("dashboard")
        );
        let after_first_token = runs();
        assert_eq!(
            connect(&credentials, Some("authorization"), token),
            identity("dashboard")
        );
        assert_eq!(runs(), after_first_token);
        // A clone shares the files but not the cache.
        let clone = credentials.clone();
        assert_eq!(
            connect(&clone, Some("alice"), Some("alice-secret")),
            Verdict::Allow
        );
        assert_eq!(clone.slow_verifications.get(), 1);
    }

    #[test]
    fn the_cache_is_bounded_and_forgets_the_oldest() {
        let mut cache = VerifiedCache::default();
        for n in 0..=VERIFIED_CACHE_CAPACITY {
            cache.insert(cache_key(&format!("user{n}"), b"pw"), None);
        }
        assert_eq!(cache.entries.len(), VERIFIED_CACHE_CAPACITY);
        assert!(cache.get(&cache_key("user0", b"pw")).is_none());
        assert!(cache.get(&cache_key("user1", b"pw")).is_some());
        // The key separates user name from password.
        assert_ne!(cache_key("ab", b"c"), cache_key("a", b"bc"));
    }

    #[test]
    fn hash_password_makes_an_argon2id_hash_that_verifies() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let parsed = SlowHash::parse(&hash).unwrap();
        assert!(parsed.verify(b"correct horse"));
        assert!(!parsed.verify(b"wrong horse"));
    }

    #[test]
    fn malformed_password_lines_name_the_file_and_line_and_never_the_hash() {
        let path = Path::new("/etc/starling/passwords");
        let bcrypt_hash = "$2b$04$C0cqoOtUGGt7E6i2F0mQ2uqy7TtaKn2m1CyOeV5pXc8mD0y5zVi2y";
        for (text, line, expected) in [
            ("# users\n\nalice\n", 3, "expected `username:hash`"),
            (
                ":$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA\n",
                1,
                "empty user name",
            ),
            ("alice:secret-in-clear\n", 1, "unsupported hash"),
            ("alice:$argon2id$v=19$m=8,t=1\n", 1, "argon2"),
            ("alice:$2b$04$tooshort\n", 1, "malformed bcrypt"),
            (
                &format!("bob:{bcrypt_hash}\n# again\nbob:{bcrypt_hash}\n"),
                3,
                "already listed on line 1",
            ),
        ] {
            let message = match parse_password_file(text, path) {
                Err(error) => error.to_string(),
                Ok(_) => panic!("{text:?} should be refused"),
            };
            assert!(message.contains("/etc/starling/passwords"), "{message}");
            assert!(message.contains(&format!("line {line}")), "{message}");
            assert!(message.contains(expected), "{message}");
            assert!(!message.contains("secret-in-clear"), "{message}");
            assert!(!message.contains("tooshort"), "{message}");
        }
    }

    #[test]
    fn malformed_token_lines_name_the_file_and_line() {
        let path = Path::new("tokens.txt");
        let digest = "0".repeat(64);
        for (text, line, expected) in [
            ("sha256:abcd\n", 1, "expected `<hash> <identity>`"),
            ("sha256:abcd service\n", 1, "64 hex digits"),
            (
                &format!("sha256:{} service\n", "g".repeat(64)),
                1,
                "64 hex digits",
            ),
            ("plaintext service\n", 1, "sha256:<hex>"),
            (
                &format!("sha256:{digest} a\nsha256:{digest} b\n"),
                2,
                "already listed on line 1",
            ),
        ] {
            let message = match parse_token_file(text, path) {
                Err(error) => error.to_string(),
                Ok(_) => panic!("{text:?} should be refused"),
            };
            assert!(message.contains(&format!("line {line}")), "{message}");
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn a_password_line_for_the_token_user_name_is_refused() {
        let error = Credentials::load(&CredentialsConfig {
            password_file: Some(data_file("passwords.txt")),
            token_file: Some(data_file("tokens.txt")),
            token_username: "alice".to_owned(),
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("token user name"), "{error}");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let error = Credentials::load(&CredentialsConfig {
            password_file: Some(PathBuf::from("/nonexistent/passwords")),
            ..CredentialsConfig::default()
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("/nonexistent/passwords"), "{error}");
    }
}
