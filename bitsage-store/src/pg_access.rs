//! [`AccountStore`] and [`AuditLog`] of the [`PgStore`], shared by every coordinator on the
//! database. Each method is one transaction. Rotation spends a token with one conditional
//! `UPDATE … RETURNING`: of concurrent presentations exactly one matches (the others wait on
//! its row lock, then find it spent). Audit appends take an advisory lock so ids follow
//! commit order.

use async_trait::async_trait;
use bitsage_core::access::{
    AccountStore, ApiKey, AuditEntry, AuditFilter, AuditLog, Enrolment, NewAuditEntry,
    Organisation, Redemption, RefreshToken, Role, Rotation, User, UserRecord, UserUpdate,
};
use bitsage_core::crypto::Hash32;
use bitsage_core::page::{Page, PageRequest};
use bitsage_core::{Error, NodeId, OrgId, Result, Timestamp, UserId, WalletAddress};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use crate::common::{
    actor_kind_str, apply_user_update, audit_filter_sql, parse_actor_kind, parse_outcome,
    parse_role, parse_scopes, scopes_json, token_state, AuditBind, Dialect, TokenState,
    KEY_TOUCH_INTERVAL,
};
use crate::pg::{db_err, finish, to_i64, PgStore, BACKEND};

/// The advisory lock every audit append takes before inserting, so ids are assigned in commit
/// order ("bsaudit" in ASCII).
const AUDIT_LOCK: i64 = 0x0062_7361_7564_6974;

fn get<'r, T>(row: &'r PgRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(col).map_err(db_err)
}

fn stored_uuid<T>(s: &str, parse: fn(&str) -> Result<T>) -> Result<T> {
    parse(s).map_err(|e| Error::backend(BACKEND, format!("stored id {s:?}: {e}")))
}

fn stored_family(s: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(s)
        .map_err(|_| Error::backend(BACKEND, format!("stored token family {s:?}")))
}

const ORG_COLUMNS: &str = "id::text AS id, name, created_at";

fn org_from_row(row: &PgRow) -> Result<Organisation> {
    Ok(Organisation {
        id: stored_uuid(&get::<String>(row, "id")?, OrgId::parse)?,
        name: get(row, "name")?,
        created_at: get(row, "created_at")?,
    })
}

const USER_COLUMNS: &str = "id::text AS id, username, role, org_id::text AS org_id, disabled, \
     password_hash, created_at, updated_at";

fn user_from_row(row: &PgRow) -> Result<UserRecord> {
    Ok(UserRecord {
        user: User {
            id: stored_uuid(&get::<String>(row, "id")?, UserId::parse)?,
            username: get(row, "username")?,
            role: parse_role(&get::<String>(row, "role")?, BACKEND)?,
            org: get::<Option<String>>(row, "org_id")?
                .map(|o| stored_uuid(&o, OrgId::parse))
                .transpose()?,
            disabled: get(row, "disabled")?,
            created_at: get(row, "created_at")?,
            updated_at: get(row, "updated_at")?,
        },
        password_hash: get(row, "password_hash")?,
    })
}

const KEY_COLUMNS: &str = "id, hash, name, created_by::text AS created_by, role, \
     org_id::text AS org_id, scopes::text AS scopes, created_at, expires_at, last_used_at, \
     revoked_at";

fn key_from_row(row: &PgRow) -> Result<ApiKey> {
    let hash: String = get(row, "hash")?;
    Ok(ApiKey {
        id: get(row, "id")?,
        hash: Hash32::from_hex(&hash)
            .map_err(|e| Error::backend(BACKEND, format!("stored key hash: {e}")))?,
        name: get(row, "name")?,
        created_by: stored_uuid(&get::<String>(row, "created_by")?, UserId::parse)?,
        role: parse_role(&get::<String>(row, "role")?, BACKEND)?,
        org: get::<Option<String>>(row, "org_id")?
            .map(|o| stored_uuid(&o, OrgId::parse))
            .transpose()?,
        scopes: parse_scopes(&get::<String>(row, "scopes")?, BACKEND)?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        last_used_at: get(row, "last_used_at")?,
        revoked_at: get(row, "revoked_at")?,
    })
}

const AUDIT_COLUMNS: &str =
    "id, at, actor, actor_kind, role, action, target, outcome, status, request_id, source";

fn audit_from_row(row: &PgRow) -> Result<AuditEntry> {
    let id: i64 = get(row, "id")?;
    Ok(AuditEntry {
        id: u64::try_from(id).map_err(|_| Error::backend(BACKEND, "negative audit id"))?,
        entry: NewAuditEntry {
            at: get(row, "at")?,
            actor: get(row, "actor")?,
            actor_kind: parse_actor_kind(&get::<String>(row, "actor_kind")?, BACKEND)?,
            role: get::<Option<String>>(row, "role")?
                .map(|r| parse_role(&r, BACKEND))
                .transpose()?,
            action: get(row, "action")?,
            target: get(row, "target")?,
            outcome: parse_outcome(&get::<String>(row, "outcome")?, BACKEND)?,
            status: get::<Option<i32>>(row, "status")?
                .map(|s| {
                    u16::try_from(s)
                        .map_err(|_| Error::backend(BACKEND, format!("stored status {s}")))
                })
                .transpose()?,
            request_id: get(row, "request_id")?,
            source: get(row, "source")?,
        },
    })
}

async fn require_org(tx: &mut Transaction<'_, Postgres>, org: Option<&OrgId>) -> Result<()> {
    let Some(org) = org else {
        return Ok(());
    };
    // Organisations are never deleted, so one that exists now still exists at commit.
    let found = sqlx::query("SELECT 1 FROM orgs WHERE id = $1::uuid")
        .bind(org.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        .is_some();
    if found {
        Ok(())
    } else {
        Err(Error::not_found("organisation", org))
    }
}

async fn require_user(tx: &mut Transaction<'_, Postgres>, user: &UserId) -> Result<()> {
    let found = sqlx::query("SELECT 1 FROM users WHERE id = $1::uuid")
        .bind(user.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        .is_some();
    if found {
        Ok(())
    } else {
        Err(Error::not_found("user", user))
    }
}

/// Stores a refresh token inside `tx` (`AlreadyExists` for a known hash).
async fn insert_token(tx: &mut Transaction<'_, Postgres>, t: &RefreshToken) -> Result<()> {
    let done = sqlx::query(
        "INSERT INTO refresh_tokens (hash, family, user_id, issued_at, expires_at) \
         VALUES ($1, $2::uuid, $3::uuid, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(t.hash.to_hex())
    .bind(t.family.to_string())
    .bind(t.user.to_string())
    .bind(t.issued_at)
    .bind(t.expires_at)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Err(Error::AlreadyExists {
            what: "refresh token",
            id: t.hash.to_hex(),
        });
    }
    Ok(())
}

/// Revokes the unrevoked tokens of `family` inside `tx`.
async fn revoke_family(
    tx: &mut Transaction<'_, Postgres>,
    family: &str,
    now: Timestamp,
) -> Result<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family = $2::uuid \
         AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(family)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Begins a read-only snapshot, so a page and its total agree.
async fn begin_snapshot(store: &PgStore) -> Result<Transaction<'_, Postgres>> {
    let mut tx = store.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    Ok(tx)
}

fn bind_audit<'q>(
    mut q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    binds: &'q [AuditBind],
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    for b in binds {
        q = match b {
            AuditBind::Text(s) => q.bind(s.as_str()),
            AuditBind::Time(t) => q.bind(*t),
        };
    }
    q
}

#[async_trait]
impl AccountStore for PgStore {
    #[tracing::instrument(name = "store.create_org", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn create_org(&self, org: &Organisation) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO orgs (id, name, created_at) VALUES ($1::uuid, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(org.id.to_string())
        .bind(&org.name)
        .bind(org.created_at)
        .execute(self.pool())
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::AlreadyExists {
                what: "organisation",
                id: org.name.clone(),
            });
        }
        Ok(())
    }

    #[tracing::instrument(name = "store.org", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn org(&self, id: &OrgId) -> Result<Option<Organisation>> {
        sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1::uuid"
        ))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(db_err)?
        .as_ref()
        .map(org_from_row)
        .transpose()
    }

    #[tracing::instrument(name = "store.list_orgs", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn list_orgs(&self) -> Result<Vec<Organisation>> {
        sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM orgs ORDER BY created_at, id"
        ))
        .fetch_all(self.pool())
        .await
        .map_err(db_err)?
        .iter()
        .map(org_from_row)
        .collect()
    }

    #[tracing::instrument(name = "store.add_org_wallet", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn add_org_wallet(
        &self,
        org: &OrgId,
        wallet: &WalletAddress,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            require_org(&mut tx, Some(org)).await?;
            let done = sqlx::query(
                "INSERT INTO org_wallets (wallet, org_id, added_at) VALUES ($1, $2::uuid, $3) \
                 ON CONFLICT (wallet) DO NOTHING",
            )
            .bind(wallet.to_string())
            .bind(org.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 1 {
                return Ok(());
            }
            let owner: Option<String> = sqlx::query_scalar(
                "SELECT org_id::text FROM org_wallets WHERE wallet = $1 FOR SHARE",
            )
            .bind(wallet.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            match owner {
                Some(owner) if owner == org.to_string() => Ok(()),
                Some(_) => Err(Error::AlreadyExists {
                    what: "organisation wallet",
                    id: wallet.to_string(),
                }),
                // Removed between the two statements.
                None => Err(Error::Conflict(format!(
                    "wallet {wallet} changed organisation concurrently; retry"
                ))),
            }
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.remove_org_wallet", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn remove_org_wallet(&self, org: &OrgId, wallet: &WalletAddress) -> Result<()> {
        let done = sqlx::query("DELETE FROM org_wallets WHERE wallet = $1 AND org_id = $2::uuid")
            .bind(wallet.to_string())
            .bind(org.to_string())
            .execute(self.pool())
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("organisation wallet", wallet));
        }
        Ok(())
    }

    #[tracing::instrument(name = "store.org_wallets", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn org_wallets(&self, org: &OrgId) -> Result<Vec<WalletAddress>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT wallet FROM org_wallets WHERE org_id = $1::uuid ORDER BY seq",
        )
        .bind(org.to_string())
        .fetch_all(self.pool())
        .await
        .map_err(db_err)?;
        rows.iter().map(|w| WalletAddress::parse(w)).collect()
    }

    #[tracing::instrument(name = "store.wallet_org", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn wallet_org(&self, wallet: &WalletAddress) -> Result<Option<OrgId>> {
        let org: Option<String> =
            sqlx::query_scalar("SELECT org_id::text FROM org_wallets WHERE wallet = $1")
                .bind(wallet.to_string())
                .fetch_optional(self.pool())
                .await
                .map_err(db_err)?;
        org.map(|o| stored_uuid(&o, OrgId::parse)).transpose()
    }

    #[tracing::instrument(name = "store.create_user", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        let u = &user.user;
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            require_org(&mut tx, u.org.as_ref()).await?;
            let done = sqlx::query(
                "INSERT INTO users (id, username, role, org_id, disabled, password_hash, \
                 created_at, updated_at) VALUES ($1::uuid, $2, $3, $4::uuid, $5, $6, $7, $8) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(u.id.to_string())
            .bind(&u.username)
            .bind(u.role.as_str())
            .bind(u.org.map(|o| o.to_string()))
            .bind(u.disabled)
            .bind(&user.password_hash)
            .bind(u.created_at)
            .bind(u.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Err(Error::AlreadyExists {
                    what: "user",
                    id: u.username.clone(),
                });
            }
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.user", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn user(&self, id: &UserId) -> Result<Option<UserRecord>> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1::uuid"
        ))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(db_err)?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    #[tracing::instrument(name = "store.user_by_name", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(self.pool())
        .await
        .map_err(db_err)?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    #[tracing::instrument(name = "store.list_users", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn list_users(&self, page: PageRequest) -> Result<Page<User>> {
        let offset = to_i64(page.offset, "page offset")?;
        let mut tx = begin_snapshot(self).await?;
        let result: Result<Page<User>> = async {
            let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            let rows = sqlx::query(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id LIMIT $1 OFFSET $2"
            ))
            .bind(i64::from(page.limit))
            .bind(offset)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            let items = rows
                .iter()
                .map(|r| user_from_row(r).map(|u| u.user))
                .collect::<Result<_>>()?;
            Ok(Page::new(items, page, total as u64))
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.update_user", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn update_user(&self, id: &UserId, update: &UserUpdate, now: Timestamp) -> Result<User> {
        let mut tx = self.begin().await?;
        let result: Result<User> = async {
            let mut rec = sqlx::query(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE id = $1::uuid FOR UPDATE"
            ))
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(user_from_row)
            .transpose()?
            .ok_or_else(|| Error::not_found("user", id))?;
            if let Some(org) = update.org {
                require_org(&mut tx, org.as_ref()).await?;
            }
            apply_user_update(&mut rec, update, now);
            let u = &rec.user;
            sqlx::query(
                "UPDATE users SET role = $1, org_id = $2::uuid, disabled = $3, \
                 password_hash = $4, updated_at = $5 WHERE id = $6::uuid",
            )
            .bind(u.role.as_str())
            .bind(u.org.map(|o| o.to_string()))
            .bind(u.disabled)
            .bind(&rec.password_hash)
            .bind(u.updated_at)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if update.disabled == Some(true) {
                for sql in [
                    "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2::uuid \
                     AND revoked_at IS NULL",
                    "UPDATE api_keys SET revoked_at = $1 WHERE created_by = $2::uuid \
                     AND revoked_at IS NULL",
                ] {
                    sqlx::query(sql)
                        .bind(now)
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                }
            }
            Ok(rec.user)
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.count_users", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn count_users(&self, role: Role) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = $1 AND NOT disabled")
                .bind(role.as_str())
                .fetch_one(self.pool())
                .await
                .map_err(db_err)?;
        Ok(n as u64)
    }

    #[tracing::instrument(name = "store.insert_refresh_token", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<()> {
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            require_user(&mut tx, &token.user).await?;
            insert_token(&mut tx, token).await
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.rotate_refresh_token", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn rotate_refresh_token(
        &self,
        presented: &Hash32,
        next: &RefreshToken,
        now: Timestamp,
    ) -> Result<Rotation> {
        let mut tx = self.begin().await?;
        let result: Result<Rotation> = async {
            // Spend it if it is live. A concurrent spender holds the row lock until it
            // commits; this UPDATE then re-checks the row and finds it spent.
            let spent: Option<(String, String)> = sqlx::query_as(
                "UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL \
                 AND revoked_at IS NULL AND expires_at > $1 \
                 RETURNING family::text, user_id::text",
            )
            .bind(now)
            .bind(presented.to_hex())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            if let Some((family, user)) = spent {
                let family = stored_family(&family)?;
                let user = stored_uuid(&user, UserId::parse)?;
                insert_token(
                    &mut tx,
                    &RefreshToken {
                        family,
                        user,
                        ..next.clone()
                    },
                )
                .await?;
                return Ok(Rotation::Rotated { user, family });
            }
            let row: Option<(
                String,
                String,
                Timestamp,
                Option<Timestamp>,
                Option<Timestamp>,
            )> = sqlx::query_as(
                "SELECT family::text, user_id::text, expires_at, used_at, revoked_at \
                     FROM refresh_tokens WHERE hash = $1 FOR UPDATE",
            )
            .bind(presented.to_hex())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            let Some((family, user, expires_at, used_at, revoked_at)) = row else {
                return Ok(Rotation::Unknown);
            };
            match token_state(used_at, revoked_at, expires_at, now) {
                TokenState::Dead => Ok(Rotation::Dead),
                // Only a token stored after the UPDATE's snapshot can look live here.
                TokenState::Live => Err(Error::Conflict(
                    "refresh token changed during rotation; retry".into(),
                )),
                TokenState::Spent => {
                    revoke_family(&mut tx, &family, now).await?;
                    Ok(Rotation::Reused {
                        user: stored_uuid(&user, UserId::parse)?,
                        family: stored_family(&family)?,
                    })
                }
            }
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.revoke_refresh_family", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn revoke_refresh_family(&self, presented: &Hash32, now: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let result: Result<bool> = async {
            let family: Option<String> =
                sqlx::query_scalar("SELECT family::text FROM refresh_tokens WHERE hash = $1")
                    .bind(presented.to_hex())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
            let Some(family) = family else {
                return Ok(false);
            };
            revoke_family(&mut tx, &family, now).await?;
            Ok(true)
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.create_api_key", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn create_api_key(&self, key: &ApiKey) -> Result<()> {
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            require_user(&mut tx, &key.created_by).await?;
            require_org(&mut tx, key.org.as_ref()).await?;
            let done = sqlx::query(
                "INSERT INTO api_keys (id, hash, name, created_by, role, org_id, scopes, \
                 created_at, expires_at, last_used_at, revoked_at) VALUES ($1, $2, $3, \
                 $4::uuid, $5, $6::uuid, $7::jsonb, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
            )
            .bind(&key.id)
            .bind(key.hash.to_hex())
            .bind(&key.name)
            .bind(key.created_by.to_string())
            .bind(key.role.as_str())
            .bind(key.org.map(|o| o.to_string()))
            .bind(scopes_json(&key.scopes, BACKEND)?)
            .bind(key.created_at)
            .bind(key.expires_at)
            .bind(key.last_used_at)
            .bind(key.revoked_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Err(Error::AlreadyExists {
                    what: "API key",
                    id: key.id.clone(),
                });
            }
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.api_key", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn api_key(&self, id: &str) -> Result<Option<ApiKey>> {
        sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(db_err)?
            .as_ref()
            .map(key_from_row)
            .transpose()
    }

    #[tracing::instrument(name = "store.list_api_keys", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn list_api_keys(&self, org: Option<&OrgId>) -> Result<Vec<ApiKey>> {
        let rows = match org {
            Some(org) => {
                sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = $1::uuid \
                     ORDER BY created_at, id"
                ))
                .bind(org.to_string())
                .fetch_all(self.pool())
                .await
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
                ))
                .fetch_all(self.pool())
                .await
            }
        }
        .map_err(db_err)?;
        rows.iter().map(key_from_row).collect()
    }

    #[tracing::instrument(name = "store.touch_api_key", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn touch_api_key(&self, id: &str, now: Timestamp) -> Result<()> {
        // Conditional, so most uses of a busy key write nothing.
        let done = sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 WHERE id = $2 \
             AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(now)
        .bind(id)
        .bind(now - KEY_TOUCH_INTERVAL)
        .execute(self.pool())
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            // Keys are never deleted: absent now means it never existed.
            let found = sqlx::query("SELECT 1 FROM api_keys WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await
                .map_err(db_err)?
                .is_some();
            if !found {
                return Err(Error::not_found("API key", id));
            }
        }
        Ok(())
    }

    #[tracing::instrument(name = "store.revoke_api_key", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn revoke_api_key(&self, id: &str, now: Timestamp) -> Result<()> {
        let found: Option<i32> = sqlx::query_scalar(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 RETURNING 1",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(db_err)?;
        match found {
            Some(_) => Ok(()),
            None => Err(Error::not_found("API key", id)),
        }
    }

    #[tracing::instrument(name = "store.create_enrolment", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn create_enrolment(&self, e: &Enrolment) -> Result<()> {
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            require_org(&mut tx, Some(&e.org)).await?;
            let done = sqlx::query(
                "INSERT INTO enrolments (id, hash, org_id, wallet, created_by, created_at, \
                 expires_at, used_at, node_id) VALUES ($1, $2, $3::uuid, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&e.id)
            .bind(e.hash.to_hex())
            .bind(e.org.to_string())
            .bind(e.wallet.to_string())
            .bind(&e.created_by)
            .bind(e.created_at)
            .bind(e.expires_at)
            .bind(e.used_at)
            .bind(e.node.as_ref().map(|n| n.to_string()))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 0 {
                return Err(Error::AlreadyExists {
                    what: "enrolment",
                    id: e.id.clone(),
                });
            }
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.redeem_enrolment", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn redeem_enrolment(
        &self,
        token: &Hash32,
        node: &NodeId,
        wallet: &WalletAddress,
        now: Timestamp,
    ) -> Result<Redemption> {
        // The row lock of the UPDATE makes one of several concurrent spends win; a loser
        // re-evaluates the WHERE against the winner's row and updates nothing.
        let spent = sqlx::query(&format!(
            "UPDATE enrolments SET node_id = $1, used_at = $2 WHERE hash = $3 AND node_id IS NULL \
             AND expires_at > $2 AND wallet = $4 RETURNING {ENROLMENT_COLUMNS}"
        ))
        .bind(node.to_string())
        .bind(now)
        .bind(token.to_hex())
        .bind(wallet.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(db_err)?;
        if let Some(row) = spent {
            return Ok(Redemption::Redeemed(enrolment_from_row(&row)?));
        }
        let row = sqlx::query(&format!(
            "SELECT {ENROLMENT_COLUMNS} FROM enrolments WHERE hash = $1"
        ))
        .bind(token.to_hex())
        .fetch_optional(self.pool())
        .await
        .map_err(db_err)?;
        let Some(row) = row else {
            return Ok(Redemption::Unknown);
        };
        Ok(bitsage_core::access::redemption_of(
            enrolment_from_row(&row)?,
            node,
            wallet,
            now,
        ))
    }

    #[tracing::instrument(name = "store.node_enrolment", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn node_enrolment(&self, node: &NodeId) -> Result<Option<Enrolment>> {
        sqlx::query(&format!(
            "SELECT {ENROLMENT_COLUMNS} FROM enrolments WHERE node_id = $1"
        ))
        .bind(node.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(db_err)?
        .as_ref()
        .map(enrolment_from_row)
        .transpose()
    }
}

const ENROLMENT_COLUMNS: &str = "id, hash, org_id::text AS org_id, wallet, created_by, \
     created_at, expires_at, used_at, node_id";

fn enrolment_from_row(row: &PgRow) -> Result<Enrolment> {
    let hash: String = get(row, "hash")?;
    Ok(Enrolment {
        id: get(row, "id")?,
        hash: Hash32::from_hex(&hash)
            .map_err(|e| Error::backend(BACKEND, format!("stored enrolment hash: {e}")))?,
        org: stored_uuid(&get::<String>(row, "org_id")?, OrgId::parse)?,
        wallet: WalletAddress::parse(&get::<String>(row, "wallet")?)?,
        created_by: get(row, "created_by")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        used_at: get(row, "used_at")?,
        node: get::<Option<String>>(row, "node_id")?
            .map(|n| NodeId::parse(&n))
            .transpose()?,
    })
}

#[async_trait]
impl AuditLog for PgStore {
    #[tracing::instrument(name = "store.append_audit", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry> {
        let mut tx = self.begin().await?;
        let result: Result<i64> = async {
            // Held until commit: the next appender draws its id after this one is visible.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(AUDIT_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query_scalar(
                "INSERT INTO audit_log (at, actor, actor_kind, role, action, target, outcome, \
                 status, request_id, source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 RETURNING id",
            )
            .bind(entry.at)
            .bind(&entry.actor)
            .bind(actor_kind_str(entry.actor_kind))
            .bind(entry.role.map(Role::as_str))
            .bind(&entry.action)
            .bind(&entry.target)
            .bind(entry.outcome.as_str())
            .bind(entry.status.map(i32::from))
            .bind(&entry.request_id)
            .bind(&entry.source)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)
        }
        .await;
        let id = finish(tx, result).await?;
        Ok(AuditEntry {
            id: u64::try_from(id).map_err(|_| Error::backend(BACKEND, "negative audit id"))?,
            entry: entry.clone(),
        })
    }

    #[tracing::instrument(name = "store.list_audit", level = "debug", skip_all, fields(db.system = "postgresql"))]
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        let (where_sql, binds) = audit_filter_sql(filter, Dialect::Postgres);
        let n = binds.len();
        let count_sql = format!("SELECT COUNT(*) FROM audit_log {where_sql}");
        let list_sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log {where_sql} ORDER BY id DESC \
             LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        let offset = to_i64(page.offset, "page offset")?;
        let mut tx = begin_snapshot(self).await?;
        let result: Result<Page<AuditEntry>> = async {
            let total: i64 = bind_audit(sqlx::query(&count_sql), &binds)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?
                .try_get(0)
                .map_err(db_err)?;
            let rows = bind_audit(sqlx::query(&list_sql), &binds)
                .bind(i64::from(page.limit))
                .bind(offset)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
            let items = rows.iter().map(audit_from_row).collect::<Result<_>>()?;
            Ok(Page::new(items, page, total as u64))
        }
        .await;
        finish(tx, result).await
    }
}
