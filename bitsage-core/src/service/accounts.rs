//! Accounts as use cases: log in (a short-lived signed access token and a rotating refresh
//! token), refresh (rotation with reuse detection that revokes the whole login), log out,
//! authenticate a bearer (access token or API key) into a [`Principal`], and the admin's
//! management of organisations, users and keys. Every change here is audited by the caller
//! (the HTTP layer records each mutation with its request id); the use cases that have no
//! request (the first admin, created from the command line) record their own entry.
//!
//! Access tokens are HS256 JWTs signed with a secret derived from the deployment key
//! ([`crate::deployment::DeploymentKey::derive_secret`]), so every coordinator of a deployment
//! accepts every other's tokens and no extra secret has to be distributed. Each request
//! re-reads the user, so disabling a user or changing a role takes effect at once.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::access::{
    self, ActorKind, ApiKey, AuditLog, NewAuditEntry, Organisation, Outcome, RefreshToken, Role,
    Rotation, Scope, User, UserRecord, UserUpdate,
};
use crate::deployment::DeploymentKey;
use crate::ids::{OrgId, UserId};
use crate::service::{ServiceError, ServiceResult};
use crate::{Error, Timestamp, WalletAddress};

/// Lifetimes of what a login hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Access token lifetime (default 15 min).
    pub access_ttl: Duration,
    /// Refresh token lifetime (default 14 days); each refresh issues a new one.
    pub refresh_ttl: Duration,
    /// How long this coordinator believes a credential it has just authenticated without
    /// asking the store again (default 1 s, at most [`MAX_AUTH_CACHE_TTL`]; zero: never).
    /// A key revoked, a user disabled or demoted **through this coordinator** takes effect at
    /// once (the change empties the cache); through another coordinator of the deployment, at
    /// most this long after. Saves a busy client's every request the store reads (user, key)
    /// and the key's `last used` write.
    pub auth_cache_ttl: Duration,
}

/// The longest [`SessionPolicy::auth_cache_ttl`] honoured.
pub const MAX_AUTH_CACHE_TTL: Duration = Duration::from_secs(5);

/// The most credentials [`SessionPolicy::auth_cache_ttl`] keeps (then the cache is emptied and
/// starts again). Only credentials that authenticated enter it, so an outsider cannot fill it.
pub const MAX_AUTH_CACHE_ENTRIES: usize = 10_000;

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(14 * 24 * 3600),
            auth_cache_ttl: Duration::from_secs(1),
        }
    }
}

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user or key.
    pub actor: Actor,
    /// The role it acts with.
    pub role: Role,
    /// The organisation it acts for.
    pub org: Option<OrgId>,
    /// For an API key: what it may be used for (`None` for a user: whatever the role allows).
    pub scopes: Option<Vec<Scope>>,
}

/// The authenticated party behind a [`Principal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A logged-in user.
    User {
        /// Its id.
        id: UserId,
        /// Its username.
        username: String,
    },
    /// An API key.
    ApiKey {
        /// The key's id (`bsa_…`).
        id: String,
        /// The user who created it.
        created_by: UserId,
    },
}

impl Principal {
    /// The actor's id as the audit log records it (user id or key id).
    pub fn actor_id(&self) -> String {
        match &self.actor {
            Actor::User { id, .. } => id.to_string(),
            Actor::ApiKey { id, .. } => id.clone(),
        }
    }

    /// The actor's kind.
    pub fn actor_kind(&self) -> ActorKind {
        match self.actor {
            Actor::User { .. } => ActorKind::User,
            Actor::ApiKey { .. } => ActorKind::ApiKey,
        }
    }

    /// Whether this principal may use `scope` (users: always; keys: when granted).
    pub fn has_scope(&self, scope: Scope) -> bool {
        self.scopes.as_ref().is_none_or(|s| s.contains(&scope))
    }

    /// Whether this is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org: Option<String>,
    iss: String,
    aud: String,
    iat: i64,
    exp: i64,
    jti: String,
}

/// The audience every access token names.
const AUDIENCE: &str = "bitsage-api";

/// What a login or refresh hands out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    /// The access token (a JWT) for `Authorization: Bearer`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// When the access token expires.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub access_expires_at: Timestamp,
    /// Seconds until then.
    pub expires_in: u64,
    /// The refresh token (single use: each refresh returns the next).
    pub refresh_token: String,
    /// When the refresh token expires.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::TimestampSchema))]
    pub refresh_expires_at: Timestamp,
    /// The user.
    pub user: User,
}

/// A new API key, with its secret (shown once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedKey {
    /// The full secret to present as `Authorization: Bearer <secret>`; not stored, not shown
    /// again.
    pub secret: String,
    /// The stored key.
    pub key: ApiKey,
}

/// A new enrolment token, with its secret (shown once; only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedEnrolment {
    /// The token to put in the new node's `agent.yaml` (`enrolment_token`); not shown again.
    pub token: String,
    /// The stored enrolment.
    pub enrolment: access::Enrolment,
}

/// An enrolment token to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnrolmentInput {
    /// The wallet the new node will register with (one of the organisation's).
    pub wallet: WalletAddress,
    /// For an admin: the organisation (default: the wallet's). Others: their own.
    pub org: Option<OrgId>,
    /// How long it may be used, seconds (default 24 h, at most 7 days).
    pub ttl_secs: Option<u64>,
}

/// Where a request came from, for the audit entries a use case writes itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditContext {
    /// The request's id.
    pub request_id: Option<String>,
    /// The client's address.
    pub source: Option<String>,
}

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUserInput {
    /// The login name (normalised to lowercase).
    pub username: String,
    /// The password (checked against the policy, stored as an argon2id hash).
    pub password: String,
    /// The role.
    pub role: Role,
    /// The organisation (required for operators).
    pub org: Option<OrgId>,
}

/// Changes an admin makes to a user; `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    /// A new role.
    pub role: Option<Role>,
    /// A new organisation (`Some(None)` removes it).
    pub org: Option<Option<OrgId>>,
    /// Disable (true) or enable (false).
    pub disabled: Option<bool>,
    /// A new password (checked against the policy).
    pub password: Option<String>,
}

/// A key to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKeyInput {
    /// Its name.
    pub name: String,
    /// Its role (at most the creator's; default the creator's).
    pub role: Option<Role>,
    /// Its scopes (at least one).
    pub scopes: Vec<Scope>,
    /// When it expires, if ever.
    pub expires_at: Option<Timestamp>,
    /// For an admin: the organisation it acts for (others: their own).
    pub org: Option<OrgId>,
}

const WRONG_LOGIN: &str = "wrong username or password";
const BAD_TOKEN: &str = "the access token is invalid or expired; log in or refresh";
const BAD_KEY: &str = "the API key is invalid, revoked or expired";
const BAD_REFRESH: &str = "the refresh token is invalid, expired or revoked; log in again";

/// The account use cases over a store.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn access::AccountStore>,
    audit: Arc<dyn AuditLog>,
    secret: [u8; 32],
    issuer: String,
    policy: SessionPolicy,
    /// Shared by every clone: credentials authenticated a moment ago.
    recent: Arc<AuthCache>,
}

/// Credentials authenticated a moment ago ([`SessionPolicy::auth_cache_ttl`]), by the hash of
/// the bearer string (the secret itself is not kept), with the principal and until when it is
/// believed (the caller's clock, never past the credential's own expiry).
#[derive(Debug, Default)]
struct AuthCache {
    entries: std::sync::Mutex<std::collections::HashMap<[u8; 32], (Principal, Timestamp)>>,
}

impl AuthCache {
    fn get(&self, id: &[u8; 32], now: Timestamp) -> Option<Principal> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(id)
            .filter(|(_, until)| now < *until)
            .map(|(p, _)| p.clone())
    }

    fn put(&self, id: [u8; 32], principal: Principal, until: Timestamp, now: Timestamp) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_AUTH_CACHE_ENTRIES {
            entries.retain(|_, (_, u)| now < *u);
            if entries.len() >= MAX_AUTH_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(id, (principal, until));
    }

    fn remove(&self, id: &[u8; 32]) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("store", &self.store)
            .field("audit", &self.audit)
            .field("issuer", &self.issuer)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

fn ts_after(now: Timestamp, d: Duration) -> ServiceResult<Timestamp> {
    crate::time::after(now, d).ok_or_else(|| Error::invalid("token lifetime", "too long").into())
}

impl Accounts {
    /// Accounts over `store`, auditing to `audit`, signing access tokens with a secret
    /// derived from `deployment`.
    pub fn new(
        store: Arc<dyn access::AccountStore>,
        audit: Arc<dyn AuditLog>,
        deployment: &DeploymentKey,
    ) -> Self {
        Self {
            store,
            audit,
            secret: deployment.derive_secret("access-token-hs256"),
            issuer: format!("bitsage/{}/{}", deployment.network(), deployment.key_id()),
            policy: SessionPolicy::default(),
            recent: Arc::default(),
        }
    }

    /// The same accounts with other token lifetimes.
    pub fn with_policy(mut self, policy: SessionPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The token lifetimes.
    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// The audit log.
    pub fn audit(&self) -> &dyn AuditLog {
        self.audit.as_ref()
    }

    /// The account store.
    pub fn store(&self) -> &dyn access::AccountStore {
        self.store.as_ref()
    }

    fn access_token(&self, user: &User, now: Timestamp) -> ServiceResult<(String, Timestamp)> {
        let exp = ts_after(now, self.policy.access_ttl)?;
        let claims = Claims {
            sub: user.id.to_string(),
            role: user.role,
            org: user.org.map(|o| o.to_string()),
            iss: self.issuer.clone(),
            aud: AUDIENCE.into(),
            iat: now.timestamp(),
            exp: exp.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&self.secret),
        )
        .map_err(|e| Error::backend("jwt", e.to_string()))?;
        Ok((token, exp))
    }

    async fn session(
        &self,
        user: User,
        refresh_token: String,
        refresh_expires_at: Timestamp,
        now: Timestamp,
    ) -> ServiceResult<Session> {
        let (access_token, access_expires_at) = self.access_token(&user, now)?;
        Ok(Session {
            access_token,
            token_type: "Bearer",
            access_expires_at,
            expires_in: self.policy.access_ttl.as_secs(),
            refresh_token,
            refresh_expires_at,
            user,
        })
    }

    /// Logs in: a fresh login family. Wrong username and wrong password get the same answer
    /// (and take the same time); a disabled account is refused after its password checks.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        now: Timestamp,
    ) -> ServiceResult<Session> {
        let record = match access::normalise_username(username) {
            Ok(name) => self.store.user_by_name(&name).await?,
            Err(_) => None,
        };
        let hash = record
            .as_ref()
            .map_or(access::dummy_password_hash(), |r| r.password_hash.as_str());
        let ok = access::verify_password(password, hash);
        let Some(record) = record.filter(|_| ok) else {
            return Err(ServiceError::Unauthorized(WRONG_LOGIN.into()));
        };
        if record.user.disabled {
            return Err(ServiceError::Forbidden("this account is disabled".into()));
        }
        let secret = access::new_refresh_token();
        let expires_at = ts_after(now, self.policy.refresh_ttl)?;
        self.store
            .insert_refresh_token(&RefreshToken {
                hash: access::secret_hash(&secret),
                family: uuid::Uuid::new_v4(),
                user: record.user.id,
                issued_at: now,
                expires_at,
            })
            .await?;
        self.session(record.user, secret, expires_at, now).await
    }

    /// Exchanges a refresh token for a new session. A token presented twice revokes every
    /// token of its login (someone else holds a copy) and is refused.
    pub async fn refresh(
        &self,
        token: &str,
        ctx: &AuditContext,
        now: Timestamp,
    ) -> ServiceResult<Session> {
        let secret = access::new_refresh_token();
        let expires_at = ts_after(now, self.policy.refresh_ttl)?;
        let next = RefreshToken {
            hash: access::secret_hash(&secret),
            family: uuid::Uuid::nil(),
            user: UserId(uuid::Uuid::nil()),
            issued_at: now,
            expires_at,
        };
        match self
            .store
            .rotate_refresh_token(&access::secret_hash(token), &next, now)
            .await?
        {
            Rotation::Rotated { user, .. } => {
                let record = self.store.user(&user).await?;
                match record {
                    Some(r) if !r.user.disabled => {
                        self.session(r.user, secret, expires_at, now).await
                    }
                    _ => Err(ServiceError::Unauthorized(BAD_REFRESH.into())),
                }
            }
            Rotation::Reused { user, family } => {
                self.audit
                    .append_audit(&NewAuditEntry {
                        at: now,
                        actor: user.to_string(),
                        actor_kind: ActorKind::User,
                        role: None,
                        action: "session.refresh_reused".into(),
                        target: Some(family.to_string()),
                        outcome: Outcome::Denied,
                        status: Some(401),
                        request_id: ctx.request_id.clone(),
                        source: ctx.source.clone(),
                    })
                    .await?;
                Err(ServiceError::Unauthorized(
                    "this refresh token was already used: every session of this login is now \
                     revoked; log in again"
                        .into(),
                ))
            }
            Rotation::Dead | Rotation::Unknown => {
                Err(ServiceError::Unauthorized(BAD_REFRESH.into()))
            }
        }
    }

    /// Logs out: revokes the refresh token's whole login. Unknown tokens are not an error.
    pub async fn logout(&self, token: &str, now: Timestamp) -> ServiceResult<()> {
        self.store
            .revoke_refresh_family(&access::secret_hash(token), now)
            .await?;
        self.recent.clear();
        Ok(())
    }

    /// Authenticates a bearer credential: an API key (`bsa_…`) or an access token. A credential
    /// authenticated less than [`SessionPolicy::auth_cache_ttl`] ago (by this `Accounts` or a
    /// clone) is believed without the store; a refused one is never remembered.
    pub async fn authenticate(&self, bearer: &str, now: Timestamp) -> ServiceResult<Principal> {
        let ttl = self.policy.auth_cache_ttl.min(MAX_AUTH_CACHE_TTL);
        if ttl.is_zero() {
            return Ok(self.authenticate_uncached(bearer, now).await?.0);
        }
        let id = access::secret_hash(bearer).0;
        if let Some(principal) = self.recent.get(&id, now) {
            return Ok(principal);
        }
        let (principal, expires) = match self.authenticate_uncached(bearer, now).await {
            Ok(found) => found,
            Err(e) => {
                // The freshest answer wins: a credential refused now is not believed later
                // from an earlier, still unexpired entry.
                self.recent.remove(&id);
                return Err(e);
            }
        };
        let until = ts_after(now, ttl)?;
        let until = expires.map_or(until, |e| e.min(until));
        self.recent.put(id, principal.clone(), until, now);
        Ok(principal)
    }

    /// The principal behind `bearer` and when the credential expires (`None`: never), read
    /// from the store.
    async fn authenticate_uncached(
        &self,
        bearer: &str,
        now: Timestamp,
    ) -> ServiceResult<(Principal, Option<Timestamp>)> {
        if bearer.starts_with(access::API_KEY_PREFIX) {
            self.authenticate_key(bearer, now).await
        } else {
            self.authenticate_access(bearer, now).await
        }
    }

    async fn authenticate_access(
        &self,
        token: &str,
        now: Timestamp,
    ) -> ServiceResult<(Principal, Option<Timestamp>)> {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.leeway = 0;
        validation.validate_exp = false;
        let data = jsonwebtoken::decode::<Claims>(
            token,
            &jsonwebtoken::DecodingKey::from_secret(&self.secret),
            &validation,
        )
        .map_err(|_| ServiceError::Unauthorized(BAD_TOKEN.into()))?;
        // Expiry against the caller's clock (tests and every coordinator agree on `now`).
        if data.claims.exp <= now.timestamp() {
            return Err(ServiceError::Unauthorized(BAD_TOKEN.into()));
        }
        let id = UserId::parse(&data.claims.sub)
            .map_err(|_| ServiceError::Unauthorized(BAD_TOKEN.into()))?;
        let user = self
            .store
            .user(&id)
            .await?
            .map(|r| r.user)
            .filter(|u| !u.disabled)
            .ok_or_else(|| ServiceError::Unauthorized(BAD_TOKEN.into()))?;
        let principal = Principal {
            actor: Actor::User {
                id: user.id,
                username: user.username,
            },
            role: user.role,
            org: user.org,
            scopes: None,
        };
        Ok((principal, Timestamp::from_timestamp(data.claims.exp, 0)))
    }

    async fn authenticate_key(
        &self,
        secret: &str,
        now: Timestamp,
    ) -> ServiceResult<(Principal, Option<Timestamp>)> {
        let id = access::api_key_id(secret).ok_or(ServiceError::Unauthorized(BAD_KEY.into()))?;
        let key = self
            .store
            .api_key(id)
            .await?
            .ok_or_else(|| ServiceError::Unauthorized(BAD_KEY.into()))?;
        let presented = access::secret_hash(secret);
        if !crate::crypto::constant_time_eq(&presented.0, &key.hash.0) || !key.is_live(now) {
            return Err(ServiceError::Unauthorized(BAD_KEY.into()));
        }
        // A key acts with at most its creator's role *now* (a demoted creator's keys follow).
        let creator = self
            .store
            .user(&key.created_by)
            .await?
            .map(|r| r.user)
            .filter(|u| !u.disabled)
            .ok_or_else(|| ServiceError::Unauthorized(BAD_KEY.into()))?;
        self.store.touch_api_key(&key.id, now).await?;
        let expires = key.expires_at;
        let principal = Principal {
            actor: Actor::ApiKey {
                id: key.id,
                created_by: key.created_by,
            },
            // Roles order most privileged first: the larger is the lesser.
            role: key.role.max(creator.role),
            org: key.org,
            scopes: Some(key.scopes),
        };
        Ok((principal, expires))
    }

    /// Creates the first admin (see [`bootstrap_admin`]).
    pub async fn bootstrap_admin(
        &self,
        username: &str,
        password: &str,
        now: Timestamp,
    ) -> ServiceResult<User> {
        bootstrap_admin(
            self.store.as_ref(),
            self.audit.as_ref(),
            username,
            password,
            now,
        )
        .await
    }

    async fn insert_user(&self, input: NewUserInput, now: Timestamp) -> ServiceResult<User> {
        insert_user(self.store.as_ref(), input, now).await
    }

    /// Admin: creates a user.
    pub async fn create_user(
        &self,
        by: &Principal,
        input: NewUserInput,
        now: Timestamp,
    ) -> ServiceResult<User> {
        require_admin(by)?;
        self.insert_user(input, now).await
    }

    /// Admin: changes a user (role, organisation, disabled, password). An admin cannot
    /// disable or demote themself (so the deployment keeps an admin).
    pub async fn update_user(
        &self,
        by: &Principal,
        id: &UserId,
        changes: UserChanges,
        now: Timestamp,
    ) -> ServiceResult<User> {
        let UserChanges {
            role,
            org,
            disabled,
            password,
        } = changes;
        require_admin(by)?;
        if matches!(&by.actor, Actor::User { id: me, .. } if me == id)
            && (disabled == Some(true) || role.is_some_and(|r| r != Role::Admin))
        {
            return Err(
                Error::Conflict("an admin cannot disable or demote themself".into()).into(),
            );
        }
        let password_hash = match password.as_deref() {
            Some(p) => {
                access::check_password(p)?;
                Some(access::hash_password(p)?)
            }
            None => None,
        };
        let current = self.store.user(id).await?.ok_or_else(|| Error::NotFound {
            what: "user",
            id: id.to_string(),
        })?;
        let next_role = role.unwrap_or(current.user.role);
        let next_org = org.unwrap_or(current.user.org);
        if next_role == Role::Operator && next_org.is_none() {
            return Err(Error::invalid("org", "an operator belongs to an organisation").into());
        }
        let user = self
            .store
            .update_user(
                id,
                &UserUpdate {
                    role,
                    org,
                    disabled,
                    password_hash,
                },
                now,
            )
            .await?;
        // A disabled or demoted user (and their keys) is refused or lessened at once here.
        self.recent.clear();
        Ok(user)
    }

    /// Admin: creates an organisation.
    pub async fn create_org(
        &self,
        by: &Principal,
        name: &str,
        now: Timestamp,
    ) -> ServiceResult<Organisation> {
        require_admin(by)?;
        access::check_org_name(name)?;
        let org = Organisation {
            id: OrgId::new(),
            name: name.into(),
            created_at: now,
        };
        self.store.create_org(&org).await?;
        Ok(org)
    }

    /// Admin: gives a wallet to an organisation (its nodes become the organisation's).
    pub async fn add_org_wallet(
        &self,
        by: &Principal,
        org: &OrgId,
        wallet: &WalletAddress,
        now: Timestamp,
    ) -> ServiceResult<()> {
        require_admin(by)?;
        Ok(self.store.add_org_wallet(org, wallet, now).await?)
    }

    /// Creates an API key for the caller's organisation (an admin may name another), acting
    /// with at most the caller's role.
    pub async fn create_key(
        &self,
        by: &Principal,
        input: NewKeyInput,
        now: Timestamp,
    ) -> ServiceResult<CreatedKey> {
        let Actor::User { id: creator, .. } = &by.actor else {
            return Err(ServiceError::Forbidden(
                "API keys are created by a logged-in user, not by another key".into(),
            ));
        };
        access::check_key_name(&input.name)?;
        if input.scopes.is_empty() {
            return Err(Error::invalid("scopes", "name at least one scope").into());
        }
        let role = input.role.unwrap_or(by.role);
        if role < by.role {
            return Err(ServiceError::Forbidden(format!(
                "a {} cannot create a key with role {role}",
                by.role
            )));
        }
        let org = if by.is_admin() {
            input.org.or(by.org)
        } else {
            by.org
        };
        if role == Role::Operator && org.is_none() {
            return Err(Error::invalid("org", "an operator key belongs to an organisation").into());
        }
        if input.expires_at.is_some_and(|e| e <= now) {
            return Err(Error::invalid("expires_at", "must be in the future").into());
        }
        let (id, secret) = access::new_api_key();
        let key = ApiKey {
            id,
            hash: access::secret_hash(&secret),
            name: input.name,
            created_by: *creator,
            role,
            org,
            scopes: input.scopes,
            created_at: now,
            expires_at: input.expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        self.store.create_api_key(&key).await?;
        Ok(CreatedKey { secret, key })
    }

    /// The keys the caller may see: all for an admin, their organisation's otherwise.
    pub async fn list_keys(&self, by: &Principal) -> ServiceResult<Vec<ApiKey>> {
        if by.is_admin() {
            return Ok(self.store.list_api_keys(None).await?);
        }
        match &by.org {
            Some(org) => Ok(self.store.list_api_keys(Some(org)).await?),
            None => Ok(Vec::new()),
        }
    }

    /// Revokes a key: an admin any, others their organisation's.
    pub async fn revoke_key(&self, by: &Principal, id: &str, now: Timestamp) -> ServiceResult<()> {
        let key = self
            .store
            .api_key(id)
            .await?
            .ok_or_else(|| Error::NotFound {
                what: "API key",
                id: id.into(),
            })?;
        if !by.is_admin() && (by.org.is_none() || key.org != by.org) {
            return Err(Error::NotFound {
                what: "API key",
                id: id.into(),
            }
            .into());
        }
        self.store.revoke_api_key(id, now).await?;
        self.recent.clear();
        Ok(())
    }

    /// Whether `by` may see data of `wallet`: admins and viewers-with-aggregates aside, an
    /// operator sees only wallets of their organisation.
    pub async fn may_see_wallet(
        &self,
        by: &Principal,
        wallet: &WalletAddress,
    ) -> ServiceResult<bool> {
        if by.is_admin() {
            return Ok(true);
        }
        if by.role != Role::Operator {
            return Ok(false);
        }
        let Some(org) = &by.org else {
            return Ok(false);
        };
        Ok(self.store.wallet_org(wallet).await?.as_ref() == Some(org))
    }

    /// Creates an enrolment token for a new node of `input.wallet`: an operator for a wallet
    /// of their organisation, an admin for any organisation's wallet. Users only (not keys).
    pub async fn create_enrolment(
        &self,
        by: &Principal,
        input: NewEnrolmentInput,
        now: Timestamp,
    ) -> ServiceResult<CreatedEnrolment> {
        let Actor::User { username, .. } = &by.actor else {
            return Err(ServiceError::Forbidden(
                "enrolment tokens are created by a logged-in user, not by an API key".into(),
            ));
        };
        let ttl = input.ttl_secs.unwrap_or(access::DEFAULT_ENROLMENT_TTL_SECS);
        if !(60..=access::MAX_ENROLMENT_TTL_SECS).contains(&ttl) {
            return Err(Error::invalid(
                "ttl_secs",
                format!("must be 60 ..= {}", access::MAX_ENROLMENT_TTL_SECS),
            )
            .into());
        }
        let owner = self.store.wallet_org(&input.wallet).await?;
        let org = match (by.role, by.org) {
            (Role::Admin, _) => input.org.or(owner),
            (Role::Operator, Some(own)) => Some(own),
            _ => {
                return Err(ServiceError::Forbidden(
                    "only operators and admins enrol nodes".into(),
                ))
            }
        };
        let Some(org) = org else {
            return Err(Error::invalid(
                "wallet",
                "belongs to no organisation: add it to one first (POST /api/orgs/{id}/wallets)",
            )
            .into());
        };
        if owner != Some(org) {
            return Err(
                Error::invalid("wallet", "is not one of the organisation's wallets").into(),
            );
        }
        let (id, secret) = access::new_enrolment_token();
        let enrolment = access::Enrolment {
            id,
            hash: access::secret_hash(&secret),
            org,
            wallet: input.wallet,
            created_by: username.clone(),
            created_at: now,
            expires_at: now + chrono::TimeDelta::seconds(ttl as i64),
            used_at: None,
            node: None,
        };
        self.store.create_enrolment(&enrolment).await?;
        Ok(CreatedEnrolment {
            token: secret,
            enrolment,
        })
    }

    /// The wallets of the caller's own organisation, whatever its role (empty without one):
    /// the console's "own nodes" filter.
    pub async fn own_wallets(&self, by: &Principal) -> ServiceResult<Vec<WalletAddress>> {
        match &by.org {
            Some(org) => Ok(self.store.org_wallets(org).await?),
            None => Ok(Vec::new()),
        }
    }

    /// The wallets of the caller's organisation (`None`: every wallet, for an admin).
    pub async fn visible_wallets(
        &self,
        by: &Principal,
    ) -> ServiceResult<Option<Vec<WalletAddress>>> {
        if by.is_admin() {
            return Ok(None);
        }
        match (&by.org, by.role) {
            (Some(org), Role::Operator) => Ok(Some(self.store.org_wallets(org).await?)),
            _ => Ok(Some(Vec::new())),
        }
    }
}

/// Creates a user in `store` (validated, password hashed).
async fn insert_user(
    store: &dyn access::AccountStore,
    input: NewUserInput,
    now: Timestamp,
) -> ServiceResult<User> {
    let username = access::normalise_username(&input.username)?;
    access::check_password(&input.password)?;
    if input.role == Role::Operator && input.org.is_none() {
        return Err(Error::invalid("org", "an operator belongs to an organisation").into());
    }
    let user = User {
        id: UserId::new(),
        username,
        role: input.role,
        org: input.org,
        disabled: false,
        created_at: now,
        updated_at: now,
    };
    store
        .create_user(&UserRecord {
            user: user.clone(),
            password_hash: access::hash_password(&input.password)?,
        })
        .await?;
    Ok(user)
}

/// Creates the deployment's first admin (the coordinator's `admin create` command): refused
/// when an enabled admin exists; audited as done by `system` from the command line.
pub async fn bootstrap_admin(
    store: &dyn access::AccountStore,
    audit: &dyn AuditLog,
    username: &str,
    password: &str,
    now: Timestamp,
) -> ServiceResult<User> {
    if store.count_users(Role::Admin).await? > 0 {
        return Err(Error::Conflict(
            "an admin already exists; create more users through the API as that admin".into(),
        )
        .into());
    }
    let user = insert_user(
        store,
        NewUserInput {
            username: username.into(),
            password: password.into(),
            role: Role::Admin,
            org: None,
        },
        now,
    )
    .await?;
    audit
        .append_audit(&NewAuditEntry {
            at: now,
            actor: "system".into(),
            actor_kind: ActorKind::System,
            role: None,
            action: "user.bootstrap_admin".into(),
            target: Some(user.id.to_string()),
            outcome: Outcome::Success,
            status: None,
            request_id: None,
            source: Some("command line".into()),
        })
        .await?;
    Ok(user)
}

/// Refuses anyone but an admin.
pub fn require_admin(by: &Principal) -> ServiceResult<()> {
    if by.is_admin() {
        Ok(())
    } else {
        Err(ServiceError::Forbidden("only an admin may do this".into()))
    }
}
