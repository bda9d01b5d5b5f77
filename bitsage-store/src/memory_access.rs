//! [`AccountStore`] and [`AuditLog`] of the [`InMemoryStore`]: one mutex over all account
//! state, and every method checks everything before it changes anything, so a failed call
//! changes nothing.

use std::collections::HashMap;

use async_trait::async_trait;
use bitsage_core::access::{
    AccountStore, ApiKey, AuditEntry, AuditFilter, AuditLog, Enrolment, NewAuditEntry,
    Organisation, Redemption, RefreshToken, Role, Rotation, User, UserRecord, UserUpdate,
};
use bitsage_core::crypto::Hash32;
use bitsage_core::page::{Page, PageRequest};
use bitsage_core::{Error, NodeId, OrgId, Result, Timestamp, UserId, WalletAddress};

use crate::common::{apply_user_update, paginate, token_state, touch_due, TokenState};
use crate::memory::InMemoryStore;

/// A stored refresh token and what happened to it.
#[derive(Debug, Clone)]
struct TokenRow {
    token: RefreshToken,
    used_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
}

/// Every account record of an [`InMemoryStore`].
#[derive(Debug, Default)]
pub(crate) struct AccessState {
    orgs: Vec<Organisation>,
    /// Wallets and their organisations, in the order they were added.
    wallets: Vec<(WalletAddress, OrgId)>,
    users: Vec<UserRecord>,
    tokens: HashMap<Hash32, TokenRow>,
    keys: Vec<ApiKey>,
    enrolments: Vec<Enrolment>,
    audit: Vec<AuditEntry>,
}

impl AccessState {
    fn has_org(&self, id: &OrgId) -> bool {
        self.orgs.iter().any(|o| o.id == *id)
    }

    fn check_org(&self, id: Option<&OrgId>) -> Result<()> {
        match id {
            Some(id) if !self.has_org(id) => Err(Error::not_found("organisation", id)),
            _ => Ok(()),
        }
    }

    fn user_mut(&mut self, id: &UserId) -> Result<&mut UserRecord> {
        self.users
            .iter_mut()
            .find(|u| u.user.id == *id)
            .ok_or_else(|| Error::not_found("user", id))
    }

    fn key_mut(&mut self, id: &str) -> Result<&mut ApiKey> {
        self.keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or_else(|| Error::not_found("API key", id))
    }

    /// Revokes the live tokens of the family (now).
    fn revoke_family(&mut self, family: uuid::Uuid, now: Timestamp) {
        for row in self.tokens.values_mut() {
            if row.token.family == family && row.revoked_at.is_none() {
                row.revoked_at = Some(now);
            }
        }
    }
}

impl InMemoryStore {
    fn access<T>(&self, f: impl FnOnce(&mut AccessState) -> Result<T>) -> Result<T> {
        // A poisoned lock means a panic mid-update in this process; the state may be torn.
        let mut guard = self
            .access
            .lock()
            .map_err(|_| Error::backend("memory", "account lock poisoned by an earlier panic"))?;
        f(&mut guard)
    }
}

/// Sorts by creation time, ties by id (the contract's list order).
fn by_creation<T, K: Ord>(items: &mut [T], key: impl Fn(&T) -> (Timestamp, K)) {
    items.sort_by_key(key);
}

#[async_trait]
impl AccountStore for InMemoryStore {
    async fn create_org(&self, org: &Organisation) -> Result<()> {
        self.access(|s| {
            if s.orgs.iter().any(|o| o.id == org.id || o.name == org.name) {
                return Err(Error::AlreadyExists {
                    what: "organisation",
                    id: org.name.clone(),
                });
            }
            s.orgs.push(org.clone());
            Ok(())
        })
    }

    async fn org(&self, id: &OrgId) -> Result<Option<Organisation>> {
        self.access(|s| Ok(s.orgs.iter().find(|o| o.id == *id).cloned()))
    }

    async fn list_orgs(&self) -> Result<Vec<Organisation>> {
        self.access(|s| {
            let mut all = s.orgs.clone();
            by_creation(&mut all, |o| (o.created_at, o.id));
            Ok(all)
        })
    }

    async fn add_org_wallet(
        &self,
        org: &OrgId,
        wallet: &WalletAddress,
        _now: Timestamp,
    ) -> Result<()> {
        self.access(|s| {
            s.check_org(Some(org))?;
            match s.wallets.iter().find(|(w, _)| w == wallet) {
                Some((_, owner)) if owner == org => Ok(()),
                Some(_) => Err(Error::AlreadyExists {
                    what: "organisation wallet",
                    id: wallet.to_string(),
                }),
                None => {
                    s.wallets.push((*wallet, *org));
                    Ok(())
                }
            }
        })
    }

    async fn remove_org_wallet(&self, org: &OrgId, wallet: &WalletAddress) -> Result<()> {
        self.access(|s| {
            let i = s
                .wallets
                .iter()
                .position(|(w, o)| w == wallet && o == org)
                .ok_or_else(|| Error::not_found("organisation wallet", wallet))?;
            s.wallets.remove(i);
            Ok(())
        })
    }

    async fn org_wallets(&self, org: &OrgId) -> Result<Vec<WalletAddress>> {
        self.access(|s| {
            Ok(s.wallets
                .iter()
                .filter(|(_, o)| o == org)
                .map(|(w, _)| *w)
                .collect())
        })
    }

    async fn wallet_org(&self, wallet: &WalletAddress) -> Result<Option<OrgId>> {
        self.access(|s| Ok(s.wallets.iter().find(|(w, _)| w == wallet).map(|(_, o)| *o)))
    }

    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        self.access(|s| {
            s.check_org(user.user.org.as_ref())?;
            if s.users
                .iter()
                .any(|u| u.user.id == user.user.id || u.user.username == user.user.username)
            {
                return Err(Error::AlreadyExists {
                    what: "user",
                    id: user.user.username.clone(),
                });
            }
            s.users.push(user.clone());
            Ok(())
        })
    }

    async fn user(&self, id: &UserId) -> Result<Option<UserRecord>> {
        self.access(|s| Ok(s.users.iter().find(|u| u.user.id == *id).cloned()))
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        self.access(|s| {
            Ok(s.users
                .iter()
                .find(|u| u.user.username == username)
                .cloned())
        })
    }

    async fn list_users(&self, page: PageRequest) -> Result<Page<User>> {
        self.access(|s| {
            let mut all: Vec<User> = s.users.iter().map(|u| u.user.clone()).collect();
            by_creation(&mut all, |u| (u.created_at, u.id));
            Ok(paginate(all, page))
        })
    }

    async fn update_user(&self, id: &UserId, update: &UserUpdate, now: Timestamp) -> Result<User> {
        self.access(|s| {
            s.user_mut(id)?;
            if let Some(org) = update.org {
                s.check_org(org.as_ref())?;
            }
            let rec = s.user_mut(id)?;
            apply_user_update(rec, update, now);
            let user = rec.user.clone();
            if update.disabled == Some(true) {
                for row in s.tokens.values_mut() {
                    if row.token.user == *id && row.revoked_at.is_none() {
                        row.revoked_at = Some(now);
                    }
                }
                for k in s.keys.iter_mut() {
                    if k.created_by == *id && k.revoked_at.is_none() {
                        k.revoked_at = Some(now);
                    }
                }
            }
            Ok(user)
        })
    }

    async fn count_users(&self, role: Role) -> Result<u64> {
        self.access(|s| {
            Ok(s.users
                .iter()
                .filter(|u| u.user.role == role && !u.user.disabled)
                .count() as u64)
        })
    }

    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<()> {
        self.access(|s| {
            if !s.users.iter().any(|u| u.user.id == token.user) {
                return Err(Error::not_found("user", token.user));
            }
            if s.tokens.contains_key(&token.hash) {
                return Err(Error::AlreadyExists {
                    what: "refresh token",
                    id: token.hash.to_hex(),
                });
            }
            s.tokens.insert(
                token.hash,
                TokenRow {
                    token: token.clone(),
                    used_at: None,
                    revoked_at: None,
                },
            );
            Ok(())
        })
    }

    async fn rotate_refresh_token(
        &self,
        presented: &Hash32,
        next: &RefreshToken,
        now: Timestamp,
    ) -> Result<Rotation> {
        self.access(|s| {
            let Some(row) = s.tokens.get(presented) else {
                return Ok(Rotation::Unknown);
            };
            let (user, family) = (row.token.user, row.token.family);
            match token_state(row.used_at, row.revoked_at, row.token.expires_at, now) {
                TokenState::Dead => Ok(Rotation::Dead),
                TokenState::Spent => {
                    s.revoke_family(family, now);
                    Ok(Rotation::Reused { user, family })
                }
                TokenState::Live => {
                    if s.tokens.contains_key(&next.hash) {
                        return Err(Error::AlreadyExists {
                            what: "refresh token",
                            id: next.hash.to_hex(),
                        });
                    }
                    if let Some(row) = s.tokens.get_mut(presented) {
                        row.used_at = Some(now);
                    }
                    s.tokens.insert(
                        next.hash,
                        TokenRow {
                            token: RefreshToken {
                                family,
                                user,
                                ..next.clone()
                            },
                            used_at: None,
                            revoked_at: None,
                        },
                    );
                    Ok(Rotation::Rotated { user, family })
                }
            }
        })
    }

    async fn revoke_refresh_family(&self, presented: &Hash32, now: Timestamp) -> Result<bool> {
        self.access(|s| {
            let Some(family) = s.tokens.get(presented).map(|r| r.token.family) else {
                return Ok(false);
            };
            s.revoke_family(family, now);
            Ok(true)
        })
    }

    async fn create_api_key(&self, key: &ApiKey) -> Result<()> {
        self.access(|s| {
            if !s.users.iter().any(|u| u.user.id == key.created_by) {
                return Err(Error::not_found("user", key.created_by));
            }
            s.check_org(key.org.as_ref())?;
            if s.keys.iter().any(|k| k.id == key.id) {
                return Err(Error::AlreadyExists {
                    what: "API key",
                    id: key.id.clone(),
                });
            }
            s.keys.push(key.clone());
            Ok(())
        })
    }

    async fn api_key(&self, id: &str) -> Result<Option<ApiKey>> {
        self.access(|s| Ok(s.keys.iter().find(|k| k.id == id).cloned()))
    }

    async fn list_api_keys(&self, org: Option<&OrgId>) -> Result<Vec<ApiKey>> {
        self.access(|s| {
            let mut keys: Vec<ApiKey> = s
                .keys
                .iter()
                .filter(|k| org.is_none() || k.org.as_ref() == org)
                .cloned()
                .collect();
            by_creation(&mut keys, |k| (k.created_at, k.id.clone()));
            Ok(keys)
        })
    }

    async fn touch_api_key(&self, id: &str, now: Timestamp) -> Result<()> {
        self.access(|s| {
            let k = s.key_mut(id)?;
            if touch_due(k.last_used_at, now) {
                k.last_used_at = Some(now);
            }
            Ok(())
        })
    }

    async fn revoke_api_key(&self, id: &str, now: Timestamp) -> Result<()> {
        self.access(|s| {
            let k = s.key_mut(id)?;
            k.revoked_at.get_or_insert(now);
            Ok(())
        })
    }

    async fn create_enrolment(&self, enrolment: &Enrolment) -> Result<()> {
        self.access(|s| {
            s.check_org(Some(&enrolment.org))?;
            if s.enrolments.iter().any(|e| e.id == enrolment.id) {
                return Err(Error::AlreadyExists {
                    what: "enrolment",
                    id: enrolment.id.clone(),
                });
            }
            s.enrolments.push(enrolment.clone());
            Ok(())
        })
    }

    async fn redeem_enrolment(
        &self,
        token: &Hash32,
        node: &NodeId,
        wallet: &WalletAddress,
        now: Timestamp,
    ) -> Result<Redemption> {
        self.access(|s| {
            let Some(e) = s.enrolments.iter_mut().find(|e| e.hash == *token) else {
                return Ok(Redemption::Unknown);
            };
            if e.node.is_none() && e.expires_at > now && e.wallet == *wallet {
                e.node = Some(node.clone());
                e.used_at = Some(now);
                return Ok(Redemption::Redeemed(e.clone()));
            }
            Ok(bitsage_core::access::redemption_of(
                e.clone(),
                node,
                wallet,
                now,
            ))
        })
    }

    async fn node_enrolment(&self, node: &NodeId) -> Result<Option<Enrolment>> {
        self.access(|s| {
            Ok(s.enrolments
                .iter()
                .find(|e| e.node.as_ref() == Some(node))
                .cloned())
        })
    }
}

#[async_trait]
impl AuditLog for InMemoryStore {
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry> {
        self.access(|s| {
            let stored = AuditEntry {
                id: s.audit.len() as u64 + 1,
                entry: entry.clone(),
            };
            s.audit.push(stored.clone());
            Ok(stored)
        })
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        self.access(|s| {
            let matching = s
                .audit
                .iter()
                .rev()
                .filter(|e| matches(filter, &e.entry))
                .cloned()
                .collect();
            Ok(paginate(matching, page))
        })
    }
}

fn matches(f: &AuditFilter, e: &NewAuditEntry) -> bool {
    f.actor.as_ref().is_none_or(|a| *a == e.actor)
        && f.action_prefix
            .as_ref()
            .is_none_or(|p| e.action.starts_with(p.as_str()))
        && f.outcome.is_none_or(|o| o == e.outcome)
        && f.window.is_none_or(|w| w.contains(e.at))
}
