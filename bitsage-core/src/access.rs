//! Who may do what: organisations, user accounts with roles, refresh-token families, API keys
//! and the append-only audit log — the types, the two store ports ([`AccountStore`],
//! [`AuditLog`]) and the pure rules (password policy and hashing, token formats). The use
//! cases over them are [`crate::service::accounts`].
//!
//! Roles: **admin** (everything), **operator** (their organisation's nodes, receipts,
//! earnings and wallets), **viewer** (aggregated network data only). An organisation owns
//! wallets; a node belongs to the organisation owning its (proven) wallet.

use std::fmt;

use async_trait::async_trait;
use blake2::{Blake2s256, Digest};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::crypto::Hash32;
use crate::ids::{OrgId, UserId};
use crate::page::{Page, PageRequest};
use crate::{Error, Result, TimeWindow, Timestamp, WalletAddress};

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including users, keys, the audit log and admin actions.
    Admin,
    /// Their organisation's nodes, receipts, earnings, wallets and onboarding.
    Operator,
    /// Aggregated network data; no per-node identities, no payouts.
    Viewer,
}

impl Role {
    /// Every role, most privileged first.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Operator, Role::Viewer];

    /// `admin`, `operator` or `viewer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "viewer" => Ok(Role::Viewer),
            _ => Err(Error::invalid("role", "must be admin, operator or viewer")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an API key may be used for (each route names the scope it needs; see the HTTP
/// crate's route table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Scope {
    /// Submit jobs (`POST /api/jobs`).
    #[serde(rename = "jobs:submit")]
    JobsSubmit,
    /// Read jobs, receipts and proofs.
    #[serde(rename = "jobs:read")]
    JobsRead,
    /// Read nodes, earnings and wallet views (within the key's role and organisation).
    #[serde(rename = "nodes:read")]
    NodesRead,
    /// Read aggregated network data and live events.
    #[serde(rename = "network:read")]
    NetworkRead,
    /// Scrape `/metrics`.
    #[serde(rename = "metrics:read")]
    MetricsRead,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 5] = [
        Scope::JobsSubmit,
        Scope::JobsRead,
        Scope::NodesRead,
        Scope::NetworkRead,
        Scope::MetricsRead,
    ];

    /// The wire name (`jobs:submit`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::JobsSubmit => "jobs:submit",
            Scope::JobsRead => "jobs:read",
            Scope::NodesRead => "nodes:read",
            Scope::NetworkRead => "network:read",
            Scope::MetricsRead => "metrics:read",
        }
    }

    /// Parses [`Scope::as_str`].
    pub fn parse(s: &str) -> Result<Self> {
        Scope::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "scope",
                    "must be one of jobs:submit, jobs:read, nodes:read, network:read, metrics:read",
                )
            })
    }
}

/// Longest organisation name, characters.
pub const MAX_ORG_NAME_LEN: usize = 100;
/// Username length bounds, characters.
pub const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=64;
/// Password length bounds, characters.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 12..=128;
/// Longest API key name, characters.
pub const MAX_KEY_NAME_LEN: usize = 100;

/// An organisation (a node operator's company or team).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Organisation {
    /// Its id.
    pub id: OrgId,
    /// Its display name (unique, 1 to [`MAX_ORG_NAME_LEN`] printable characters).
    pub name: String,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub created_at: Timestamp,
}

/// Checks an organisation name.
pub fn check_org_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if n == 0 || n > MAX_ORG_NAME_LEN || name.chars().any(char::is_control) || name.trim() != name {
        return Err(Error::invalid(
            "organisation name",
            format!(
                "must be 1 to {MAX_ORG_NAME_LEN} printable characters without surrounding spaces"
            ),
        ));
    }
    Ok(())
}

/// A user account as the API shows it (never its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// The login name (lowercase, unique).
    pub username: String,
    /// Its role.
    pub role: Role,
    /// Its organisation (operators have one; admins and viewers may).
    pub org: Option<OrgId>,
    /// A disabled user cannot log in, refresh or use its keys.
    pub disabled: bool,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub created_at: Timestamp,
    /// When it last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub updated_at: Timestamp,
}

/// A stored user: the account and its password hash (argon2id, PHC string).
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The account.
    pub user: User,
    /// The argon2id hash in PHC format.
    pub password_hash: String,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Checks and normalises a username: 3 to 64 of `a-z`, `0-9`, `.`, `_`, `-`, `@` (lowercased).
pub fn normalise_username(name: &str) -> Result<String> {
    let lower = name.to_ascii_lowercase();
    let ok = USERNAME_LEN.contains(&lower.len())
        && lower
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(&b));
    if ok {
        Ok(lower)
    } else {
        Err(Error::invalid(
            "username",
            "must be 3 to 64 characters of a-z, 0-9, '.', '_', '-' or '@'",
        ))
    }
}

/// Checks a new password against the policy (12 to 128 characters, not all the same).
pub fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if !PASSWORD_LEN.contains(&n) {
        return Err(Error::invalid(
            "password",
            "must be 12 to 128 characters long",
        ));
    }
    let mut chars = password.chars();
    let first = chars.next();
    if chars.all(|c| Some(c) == first) {
        return Err(Error::invalid("password", "must not repeat one character"));
    }
    Ok(())
}

/// Hashes `password` with argon2id (the crate's default parameters, a random salt).
pub fn hash_password(password: &str) -> Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let salt =
        SaltString::encode_b64(&bytes).map_err(|e| Error::invalid("password", e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::invalid("password", e.to_string()))
}

/// Whether `password` matches the PHC `hash` (false for a malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to spend the same time on when the username is unknown (so timing does not tell
/// which usernames exist).
pub fn dummy_password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default())
}

/// Domain tag of secret hashes (refresh tokens, API keys).
const SECRET_DOMAIN: &[u8] = b"bitsage/access-secret/v1";

/// The stored form of a bearer secret: BLAKE2s-256(domain ‖ secret). Secrets are 32 random
/// bytes, so a fast hash is enough (no dictionary to guess from).
pub fn secret_hash(secret: &str) -> Hash32 {
    let mut h = Blake2s256::new();
    h.update(SECRET_DOMAIN);
    h.update(secret.as_bytes());
    Hash32(h.finalize().into())
}

/// Prefix of refresh tokens.
pub const REFRESH_TOKEN_PREFIX: &str = "bsr_";
/// Prefix of API keys.
pub const API_KEY_PREFIX: &str = "bsa_";

fn random_hex<const N: usize>() -> String {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A fresh refresh token (`bsr_` and 64 hex digits).
pub fn new_refresh_token() -> String {
    format!("{REFRESH_TOKEN_PREFIX}{}", random_hex::<32>())
}

/// A fresh API key: its public id (`bsa_` and 12 hex digits) and the full secret to show
/// once (`<id>.<64 hex digits>`).
pub fn new_api_key() -> (String, String) {
    let id = format!("{API_KEY_PREFIX}{}", random_hex::<6>());
    let secret = format!("{id}.{}", random_hex::<32>());
    (id, secret)
}

/// The id part of an API key secret (`None` when it does not have the key format).
pub fn api_key_id(secret: &str) -> Option<&str> {
    let (id, rest) = secret.split_once('.')?;
    let ok = id.len() == API_KEY_PREFIX.len() + 12
        && id.starts_with(API_KEY_PREFIX)
        && id[API_KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
        && rest.len() == 64
        && rest.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(id)
}

/// One refresh token of a login's family. Only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshToken {
    /// [`secret_hash`] of the token.
    pub hash: Hash32,
    /// The login this token descends from; reuse of a spent token revokes the whole family.
    pub family: uuid::Uuid,
    /// Whose it is.
    pub user: UserId,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
}

/// The prefix of enrolment tokens.
pub const ENROLMENT_PREFIX: &str = "bse_";
/// How long an enrolment token lives unless asked otherwise (24 h).
pub const DEFAULT_ENROLMENT_TTL_SECS: u64 = 24 * 3600;
/// The longest an enrolment token may live (7 days).
pub const MAX_ENROLMENT_TTL_SECS: u64 = 7 * 24 * 3600;

/// A new enrolment token: its id (`bse_` + 12 hex digits, safe to show and log) and the
/// secret the agent presents (`<id>_` + 64 hex digits; only its hash is stored).
pub fn new_enrolment_token() -> (String, String) {
    let id = format!("{ENROLMENT_PREFIX}{}", random_hex::<6>());
    let secret = format!("{id}_{}", random_hex::<32>());
    (id, secret)
}

/// Checks an enrolment token's shape (1–128 of `A-Z a-z 0-9 _ -`) before it is hashed.
pub fn check_enrolment_token(token: &str) -> Result<()> {
    let ok = !token.is_empty()
        && token.len() <= 128
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "enrolment_token",
            "1 to 128 letters, digits, `_` or `-`",
        ))
    }
}

/// An enrolment token: lets one node register for one of an organisation's wallets, once,
/// before it expires — the operator's proof that a new node is theirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Enrolment {
    /// Its id (`bse_…`, not the secret).
    pub id: String,
    /// BLAKE2s of the secret (never sent).
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub hash: Hash32,
    /// The organisation the node joins.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub org: OrgId,
    /// The wallet the node must register with (one of the organisation's).
    pub wallet: WalletAddress,
    /// Who created it (username).
    pub created_by: String,
    /// When.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub created_at: Timestamp,
    /// Until when it may be used.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub expires_at: Timestamp,
    /// When a node used it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::TimestampSchema>))]
    pub used_at: Option<Timestamp>,
    /// The node that used it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub node: Option<crate::NodeId>,
}

/// Why a stored enrolment `e` was not spent by `node` with `wallet` at `now` (for backends
/// that try an atomic spend first and read the token only when it did not happen): the
/// same node again is `Redeemed`, another `Spent`, then `Expired`, then `WrongWallet`.
pub fn redemption_of(
    e: Enrolment,
    node: &crate::NodeId,
    wallet: &WalletAddress,
    now: Timestamp,
) -> Redemption {
    match &e.node {
        Some(n) if n == node => Redemption::Redeemed(e),
        Some(_) => Redemption::Spent,
        None if e.expires_at <= now => Redemption::Expired,
        None if e.wallet != *wallet => Redemption::WrongWallet,
        // A live token that the spend did not take: another caller took it in between.
        None => Redemption::Spent,
    }
}

/// What presenting an enrolment token did ([`AccountStore::redeem_enrolment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// The token is (now, or already) this node's.
    Redeemed(Enrolment),
    /// No such token.
    Unknown,
    /// It expired before it was used.
    Expired,
    /// Another node used it.
    Spent,
    /// The node registers with another wallet than the token's.
    WrongWallet,
}

/// What presenting a refresh token did ([`AccountStore::rotate_refresh_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is now spent and the new one (same family) is stored.
    Rotated {
        /// Whose family it is.
        user: UserId,
        /// The family.
        family: uuid::Uuid,
    },
    /// The token was already spent: someone replayed it, so the family is now revoked.
    Reused {
        /// Whose family it was.
        user: UserId,
        /// The revoked family.
        family: uuid::Uuid,
    },
    /// The token was revoked (logout, disabled user, earlier reuse) or expired.
    Dead,
    /// No such token.
    Unknown,
}

/// A stored API key (its secret's hash, never the secret; the hash is not serialized).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    /// Its public id (`bsa_…`), the part of the secret before the dot.
    pub id: String,
    /// [`secret_hash`] of the whole secret.
    #[serde(skip)]
    pub hash: Hash32,
    /// A name to recognise it by.
    pub name: String,
    /// The user who created it; the key acts with `role` within that user's organisation.
    pub created_by: UserId,
    /// The role it acts with (at most its creator's).
    pub role: Role,
    /// The organisation it acts for.
    pub org: Option<OrgId>,
    /// What it may be used for.
    pub scopes: Vec<Scope>,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub created_at: Timestamp,
    /// When it stops being accepted, if ever.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::TimestampSchema>))]
    pub expires_at: Option<Timestamp>,
    /// When it was last used (updated at most once a minute).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::TimestampSchema>))]
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::TimestampSchema>))]
    pub revoked_at: Option<Timestamp>,
}

impl ApiKey {
    /// Whether the key is accepted at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// Checks an API key name.
pub fn check_key_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if n == 0 || n > MAX_KEY_NAME_LEN || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "key name",
            format!("must be 1 to {MAX_KEY_NAME_LEN} printable characters"),
        ));
    }
    Ok(())
}

/// Changes to a user ([`AccountStore::update_user`]); `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// A new role.
    pub role: Option<Role>,
    /// A new organisation (`Some(None)` removes it).
    pub org: Option<Option<OrgId>>,
    /// Disable (true) or enable (false).
    pub disabled: Option<bool>,
    /// A new password hash.
    pub password_hash: Option<String>,
}

/// Who acted, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A logged-in user.
    User,
    /// An API key.
    ApiKey,
    /// A node, by its signature.
    Node,
    /// Nobody authenticated (a failed login, say).
    Anonymous,
    /// The coordinator itself or its command line.
    System,
}

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It was done.
    Success,
    /// The actor was not allowed (401/403).
    Denied,
    /// It was allowed but failed (bad input, conflict, an outage).
    Failed,
}

impl Outcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// An audit entry to append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewAuditEntry {
    /// When it happened.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub at: Timestamp,
    /// Who: a user id, key id, node id, `anonymous` or `system`.
    pub actor: String,
    /// What kind of actor.
    pub actor_kind: ActorKind,
    /// The role it acted with, if any.
    pub role: Option<Role>,
    /// What was done: `METHOD /route/template` for HTTP, or a named action (`user.create`).
    pub action: String,
    /// What it was done to (a path, user, key, node id), if anything.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The HTTP status, where there was one.
    pub status: Option<u16>,
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
    /// The client's address.
    pub source: Option<String>,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// Its position in the log (increasing).
    pub id: u64,
    /// The entry.
    #[serde(flatten)]
    pub entry: NewAuditEntry,
}

/// A filter over the audit log; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// This actor.
    pub actor: Option<String>,
    /// Actions starting with this text.
    pub action_prefix: Option<String>,
    /// This outcome.
    pub outcome: Option<Outcome>,
    /// Within this window.
    pub window: Option<TimeWindow>,
}

/// Organisations, users, refresh-token families and API keys.
///
/// # Contract
/// - Every method is one transaction; a failed call changes nothing.
/// - Organisation names and usernames are unique (`AlreadyExists`); usernames are stored as
///   given to `create_user` (already normalised, lowercase). A wallet belongs to at most one
///   organisation (`AlreadyExists` when another has it; adding it again to the same one is
///   `Ok`).
/// - `update_user` with `disabled: Some(true)` also revokes the user's refresh tokens and API
///   keys in the same transaction; `NotFound` for an unknown user.
/// - `rotate_refresh_token` is atomic under concurrent callers across coordinators: of two
///   presentations of one live token exactly one gets `Rotated` (spending it and storing
///   `next` in its family, with its user); a later presentation of a spent token gets `Reused`
///   and revokes every token of the family; a revoked or expired token (at `now`) is `Dead`
///   and an unknown one `Unknown`, changing nothing.
/// - API keys: `create_api_key` stores the record (`AlreadyExists` for a known id);
///   `touch_api_key` sets `last_used_at` only when it is unset or older than 60 s before `now`;
///   `revoke_api_key` sets `revoked_at` once (`NotFound` for an unknown id; revoking again
///   keeps the first time).
/// - Enrolments: `redeem_enrolment` is atomic under concurrent callers across coordinators:
///   of several nodes presenting one live token exactly one gets `Redeemed` (the token then
///   records that node and `used_at`); the same node presenting it again later gets
///   `Redeemed` again (an agent restarts with the same file), any other `Spent`. An unused
///   token past `expires_at` is `Expired`; a wallet other than the token's is `WrongWallet`
///   and spends nothing; an unknown hash is `Unknown`.
/// - Lists are in creation order (ties by id); absent records are `Ok(None)`.
#[async_trait]
pub trait AccountStore: Send + Sync + fmt::Debug {
    /// Creates an organisation.
    async fn create_org(&self, org: &Organisation) -> Result<()>;
    /// One organisation.
    async fn org(&self, id: &OrgId) -> Result<Option<Organisation>>;
    /// Every organisation.
    async fn list_orgs(&self) -> Result<Vec<Organisation>>;
    /// Gives `wallet` to `org` (`NotFound` for an unknown organisation).
    async fn add_org_wallet(
        &self,
        org: &OrgId,
        wallet: &WalletAddress,
        now: Timestamp,
    ) -> Result<()>;
    /// Takes `wallet` from `org` (`NotFound` when it does not have it).
    async fn remove_org_wallet(&self, org: &OrgId, wallet: &WalletAddress) -> Result<()>;
    /// The wallets of `org`, in the order they were added.
    async fn org_wallets(&self, org: &OrgId) -> Result<Vec<WalletAddress>>;
    /// The organisation owning `wallet`.
    async fn wallet_org(&self, wallet: &WalletAddress) -> Result<Option<OrgId>>;

    /// Creates a user (`NotFound` for an unknown organisation).
    async fn create_user(&self, user: &UserRecord) -> Result<()>;
    /// One user by id.
    async fn user(&self, id: &UserId) -> Result<Option<UserRecord>>;
    /// One user by (normalised) username.
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>>;
    /// A page of users.
    async fn list_users(&self, page: PageRequest) -> Result<Page<User>>;
    /// Changes a user at `now` and returns it.
    async fn update_user(&self, id: &UserId, update: &UserUpdate, now: Timestamp) -> Result<User>;
    /// How many users have this role (and are enabled).
    async fn count_users(&self, role: Role) -> Result<u64>;

    /// Stores a new refresh token (a login starts a family).
    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<()>;
    /// Spends the token hashed `presented` and stores `next` in its family (see the contract).
    /// `next.family` and `next.user` are replaced by the presented token's.
    async fn rotate_refresh_token(
        &self,
        presented: &Hash32,
        next: &RefreshToken,
        now: Timestamp,
    ) -> Result<Rotation>;
    /// Revokes every token of the family the token hashed `presented` belongs to; whether
    /// there was such a token.
    async fn revoke_refresh_family(&self, presented: &Hash32, now: Timestamp) -> Result<bool>;

    /// Stores an API key.
    async fn create_api_key(&self, key: &ApiKey) -> Result<()>;
    /// One API key by id.
    async fn api_key(&self, id: &str) -> Result<Option<ApiKey>>;
    /// The keys of `org` (all keys when `None`).
    async fn list_api_keys(&self, org: Option<&OrgId>) -> Result<Vec<ApiKey>>;
    /// Records a use of the key.
    async fn touch_api_key(&self, id: &str, now: Timestamp) -> Result<()>;
    /// Revokes the key.
    async fn revoke_api_key(&self, id: &str, now: Timestamp) -> Result<()>;

    /// Stores an enrolment token (`AlreadyExists` for a known id; `NotFound` for an unknown
    /// organisation).
    async fn create_enrolment(&self, enrolment: &Enrolment) -> Result<()>;
    /// Presents the token hashed `token` for `node` registering with `wallet` at `now` (see
    /// the contract).
    async fn redeem_enrolment(
        &self,
        token: &Hash32,
        node: &crate::NodeId,
        wallet: &WalletAddress,
        now: Timestamp,
    ) -> Result<Redemption>;
    /// The enrolment `node` registered with.
    async fn node_enrolment(&self, node: &crate::NodeId) -> Result<Option<Enrolment>>;
}

/// The append-only audit log.
///
/// # Contract
/// - `append_audit` stores the entry durably and returns it with an id greater than every
///   earlier entry's; nothing updates or deletes an entry (backends refuse it where they can,
///   e.g. with triggers).
/// - `list_audit` returns matching entries newest first (by id) and paginates.
#[async_trait]
pub trait AuditLog: Send + Sync + fmt::Debug {
    /// Appends an entry.
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry>;
    /// A page of entries matching `filter`, newest first.
    async fn list_audit(&self, filter: &AuditFilter, page: PageRequest)
        -> Result<Page<AuditEntry>>;
}

/// A shared account store.
pub type DynAccountStore = std::sync::Arc<dyn AccountStore>;
/// A shared audit log.
pub type DynAuditLog = std::sync::Arc<dyn AuditLog>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterx", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn password_policy() {
        assert!(check_password("short").is_err());
        assert!(check_password(&"a".repeat(20)).is_err());
        assert!(check_password(&"ab".repeat(65)).is_err());
        assert!(check_password("a fine long password").is_ok());
    }

    #[test]
    fn usernames_are_normalised() {
        assert_eq!(
            normalise_username("Alice@Example").unwrap(),
            "alice@example"
        );
        assert!(normalise_username("al").is_err());
        assert!(normalise_username("al ice").is_err());
    }

    #[test]
    fn api_key_format() {
        let (id, secret) = new_api_key();
        assert_eq!(api_key_id(&secret), Some(id.as_str()));
        assert_eq!(api_key_id("bsa_123.456"), None);
        assert_eq!(api_key_id(&new_refresh_token()), None);
        assert_ne!(secret_hash(&secret), secret_hash(&new_api_key().1));
    }
}
