//! [`AccountStore`] and [`AuditLog`] of the [`SqliteStore`]. Writes go through the one-writer
//! pool, each in one transaction; reads through the reader pool. Rotation spends the token
//! with one conditional `UPDATE` (which takes SQLite's write lock at once), so even another
//! process writing the same file cannot spend it twice.

use async_trait::async_trait;
use bitsage_core::access::{
    AccountStore, ApiKey, AuditEntry, AuditFilter, AuditLog, Enrolment, NewAuditEntry,
    Organisation, Redemption, RefreshToken, Role, Rotation, User, UserRecord, UserUpdate,
};
use bitsage_core::crypto::Hash32;
use bitsage_core::page::{Page, PageRequest};
use bitsage_core::time::to_micros;
use bitsage_core::{Error, NodeId, OrgId, Result, Timestamp, UserId, WalletAddress};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use crate::common::{
    actor_kind_str, apply_user_update, audit_filter_sql, parse_actor_kind, parse_outcome,
    parse_role, parse_scopes, scopes_json, token_state, AuditBind, Dialect, TokenState,
    KEY_TOUCH_INTERVAL,
};
use crate::sqlite::{db_err, finish, time_of, to_i64, SqliteStore, BACKEND};

fn get<'r, T>(row: &'r SqliteRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(col).map_err(db_err)
}

fn opt_time(us: Option<i64>) -> Result<Option<Timestamp>> {
    us.map(time_of).transpose()
}

fn stored_uuid<T>(s: &str, parse: fn(&str) -> Result<T>) -> Result<T> {
    parse(s).map_err(|e| Error::backend(BACKEND, format!("stored id {s:?}: {e}")))
}

fn stored_family(s: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(s)
        .map_err(|_| Error::backend(BACKEND, format!("stored token family {s:?}")))
}

fn org_from_row(row: &SqliteRow) -> Result<Organisation> {
    Ok(Organisation {
        id: stored_uuid(&get::<String>(row, "id")?, OrgId::parse)?,
        name: get(row, "name")?,
        created_at: time_of(get(row, "created_at")?)?,
    })
}

const USER_COLUMNS: &str =
    "id, username, role, org_id, disabled, password_hash, created_at, updated_at";

fn user_from_row(row: &SqliteRow) -> Result<UserRecord> {
    Ok(UserRecord {
        user: User {
            id: stored_uuid(&get::<String>(row, "id")?, UserId::parse)?,
            username: get(row, "username")?,
            role: parse_role(&get::<String>(row, "role")?, BACKEND)?,
            org: get::<Option<String>>(row, "org_id")?
                .map(|o| stored_uuid(&o, OrgId::parse))
                .transpose()?,
            disabled: get::<i64>(row, "disabled")? != 0,
            created_at: time_of(get(row, "created_at")?)?,
            updated_at: time_of(get(row, "updated_at")?)?,
        },
        password_hash: get(row, "password_hash")?,
    })
}

const KEY_COLUMNS: &str = "id, hash, name, created_by, role, org_id, scopes, created_at, \
     expires_at, last_used_at, revoked_at";

fn key_from_row(row: &SqliteRow) -> Result<ApiKey> {
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
        created_at: time_of(get(row, "created_at")?)?,
        expires_at: opt_time(get(row, "expires_at")?)?,
        last_used_at: opt_time(get(row, "last_used_at")?)?,
        revoked_at: opt_time(get(row, "revoked_at")?)?,
    })
}

const AUDIT_COLUMNS: &str =
    "id, at, actor, actor_kind, role, action, target, outcome, status, request_id, source";

fn audit_from_row(row: &SqliteRow) -> Result<AuditEntry> {
    let id: i64 = get(row, "id")?;
    Ok(AuditEntry {
        id: u64::try_from(id).map_err(|_| Error::backend(BACKEND, "negative audit id"))?,
        entry: NewAuditEntry {
            at: time_of(get(row, "at")?)?,
            actor: get(row, "actor")?,
            actor_kind: parse_actor_kind(&get::<String>(row, "actor_kind")?, BACKEND)?,
            role: get::<Option<String>>(row, "role")?
                .map(|r| parse_role(&r, BACKEND))
                .transpose()?,
            action: get(row, "action")?,
            target: get(row, "target")?,
            outcome: parse_outcome(&get::<String>(row, "outcome")?, BACKEND)?,
            status: get::<Option<i64>>(row, "status")?
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

async fn org_exists(tx: &mut Transaction<'_, Sqlite>, org: &OrgId) -> Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM orgs WHERE id = ?")
        .bind(org.to_string())
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        .is_some())
}

async fn require_org(tx: &mut Transaction<'_, Sqlite>, org: Option<&OrgId>) -> Result<()> {
    match org {
        Some(org) if !org_exists(tx, org).await? => Err(Error::not_found("organisation", org)),
        _ => Ok(()),
    }
}

async fn require_user(tx: &mut Transaction<'_, Sqlite>, user: &UserId) -> Result<()> {
    let found = sqlx::query("SELECT 1 FROM users WHERE id = ?")
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

async fn key_exists(tx: &mut Transaction<'_, Sqlite>, id: &str) -> Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM api_keys WHERE id = ?")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?
        .is_some())
}

/// Stores a refresh token inside `tx` (`AlreadyExists` for a known hash).
async fn insert_token(tx: &mut Transaction<'_, Sqlite>, t: &RefreshToken) -> Result<()> {
    let done = sqlx::query(
        "INSERT INTO refresh_tokens (hash, family, user_id, issued_at, expires_at) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(t.hash.to_hex())
    .bind(t.family.to_string())
    .bind(t.user.to_string())
    .bind(to_micros(t.issued_at))
    .bind(to_micros(t.expires_at))
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
    tx: &mut Transaction<'_, Sqlite>,
    family: &str,
    now: Timestamp,
) -> Result<()> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL")
        .bind(to_micros(now))
        .bind(family)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

fn bind_audit<'q>(
    mut q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    binds: &'q [AuditBind],
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for b in binds {
        q = match b {
            AuditBind::Text(s) => q.bind(s.as_str()),
            AuditBind::Time(t) => q.bind(to_micros(*t)),
        };
    }
    q
}

#[async_trait]
impl AccountStore for SqliteStore {
    #[tracing::instrument(name = "store.create_org", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn create_org(&self, org: &Organisation) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(org.id.to_string())
        .bind(&org.name)
        .bind(to_micros(org.created_at))
        .execute(&self.writer)
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

    #[tracing::instrument(name = "store.org", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn org(&self, id: &OrgId) -> Result<Option<Organisation>> {
        sqlx::query("SELECT id, name, created_at FROM orgs WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(org_from_row)
            .transpose()
    }

    #[tracing::instrument(name = "store.list_orgs", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn list_orgs(&self) -> Result<Vec<Organisation>> {
        sqlx::query("SELECT id, name, created_at FROM orgs ORDER BY created_at, id")
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?
            .iter()
            .map(org_from_row)
            .collect()
    }

    #[tracing::instrument(name = "store.add_org_wallet", level = "debug", skip_all, fields(db.system = "sqlite"))]
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
                "INSERT INTO org_wallets (wallet, org_id, added_at) VALUES (?, ?, ?) \
                 ON CONFLICT (wallet) DO NOTHING",
            )
            .bind(wallet.to_string())
            .bind(org.to_string())
            .bind(to_micros(now))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 1 {
                return Ok(());
            }
            let owner: String =
                sqlx::query_scalar("SELECT org_id FROM org_wallets WHERE wallet = ?")
                    .bind(wallet.to_string())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if owner == org.to_string() {
                Ok(())
            } else {
                Err(Error::AlreadyExists {
                    what: "organisation wallet",
                    id: wallet.to_string(),
                })
            }
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.remove_org_wallet", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn remove_org_wallet(&self, org: &OrgId, wallet: &WalletAddress) -> Result<()> {
        let done = sqlx::query("DELETE FROM org_wallets WHERE wallet = ? AND org_id = ?")
            .bind(wallet.to_string())
            .bind(org.to_string())
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found("organisation wallet", wallet));
        }
        Ok(())
    }

    #[tracing::instrument(name = "store.org_wallets", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn org_wallets(&self, org: &OrgId) -> Result<Vec<WalletAddress>> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT wallet FROM org_wallets WHERE org_id = ? ORDER BY seq")
                .bind(org.to_string())
                .fetch_all(&self.reader)
                .await
                .map_err(db_err)?;
        rows.iter().map(|w| WalletAddress::parse(w)).collect()
    }

    #[tracing::instrument(name = "store.wallet_org", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn wallet_org(&self, wallet: &WalletAddress) -> Result<Option<OrgId>> {
        let org: Option<String> =
            sqlx::query_scalar("SELECT org_id FROM org_wallets WHERE wallet = ?")
                .bind(wallet.to_string())
                .fetch_optional(&self.reader)
                .await
                .map_err(db_err)?;
        org.map(|o| stored_uuid(&o, OrgId::parse)).transpose()
    }

    #[tracing::instrument(name = "store.create_user", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn create_user(&self, user: &UserRecord) -> Result<()> {
        let u = &user.user;
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            require_org(&mut tx, u.org.as_ref()).await?;
            let done = sqlx::query(&format!(
                "INSERT INTO users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING"
            ))
            .bind(u.id.to_string())
            .bind(&u.username)
            .bind(u.role.as_str())
            .bind(u.org.map(|o| o.to_string()))
            .bind(i64::from(u.disabled))
            .bind(&user.password_hash)
            .bind(to_micros(u.created_at))
            .bind(to_micros(u.updated_at))
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

    #[tracing::instrument(name = "store.user", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn user(&self, id: &UserId) -> Result<Option<UserRecord>> {
        sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(user_from_row)
            .transpose()
    }

    #[tracing::instrument(name = "store.user_by_name", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>> {
        sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = ?"
        ))
        .bind(username)
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(user_from_row)
        .transpose()
    }

    #[tracing::instrument(name = "store.list_users", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn list_users(&self, page: PageRequest) -> Result<Page<User>> {
        // One read transaction, so the total and the page agree.
        let mut tx = self.reader.begin().await.map_err(db_err)?;
        let result: Result<Page<User>> = async {
            let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            let rows = sqlx::query(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id LIMIT ? OFFSET ?"
            ))
            .bind(i64::from(page.limit))
            .bind(to_i64(page.offset, "page offset")?)
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

    #[tracing::instrument(name = "store.update_user", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn update_user(&self, id: &UserId, update: &UserUpdate, now: Timestamp) -> Result<User> {
        let mut tx = self.begin().await?;
        let result: Result<User> = async {
            let mut rec = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
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
                "UPDATE users SET role = ?, org_id = ?, disabled = ?, password_hash = ?, \
                 updated_at = ? WHERE id = ?",
            )
            .bind(u.role.as_str())
            .bind(u.org.map(|o| o.to_string()))
            .bind(i64::from(u.disabled))
            .bind(&rec.password_hash)
            .bind(to_micros(u.updated_at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if update.disabled == Some(true) {
                for sql in [
                    "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? \
                     AND revoked_at IS NULL",
                    "UPDATE api_keys SET revoked_at = ? WHERE created_by = ? \
                     AND revoked_at IS NULL",
                ] {
                    sqlx::query(sql)
                        .bind(to_micros(now))
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

    #[tracing::instrument(name = "store.count_users", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn count_users(&self, role: Role) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = ? AND disabled = 0")
                .bind(role.as_str())
                .fetch_one(&self.reader)
                .await
                .map_err(db_err)?;
        Ok(n as u64)
    }

    #[tracing::instrument(name = "store.insert_refresh_token", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn insert_refresh_token(&self, token: &RefreshToken) -> Result<()> {
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            require_user(&mut tx, &token.user).await?;
            insert_token(&mut tx, token).await
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.rotate_refresh_token", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn rotate_refresh_token(
        &self,
        presented: &Hash32,
        next: &RefreshToken,
        now: Timestamp,
    ) -> Result<Rotation> {
        let mut tx = self.begin().await?;
        let result: Result<Rotation> = async {
            // Spend it if it is live: the UPDATE takes the write lock before anything is read.
            let spent: Option<(String, String)> = sqlx::query_as(
                "UPDATE refresh_tokens SET used_at = ?1 WHERE hash = ?2 AND used_at IS NULL \
                 AND revoked_at IS NULL AND expires_at > ?1 RETURNING family, user_id",
            )
            .bind(to_micros(now))
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
            let row: Option<(String, String, i64, Option<i64>, Option<i64>)> = sqlx::query_as(
                "SELECT family, user_id, expires_at, used_at, revoked_at FROM refresh_tokens \
                 WHERE hash = ?",
            )
            .bind(presented.to_hex())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
            let Some((family, user, expires_at, used_at, revoked_at)) = row else {
                return Ok(Rotation::Unknown);
            };
            let state = token_state(
                opt_time(used_at)?,
                opt_time(revoked_at)?,
                time_of(expires_at)?,
                now,
            );
            match state {
                TokenState::Dead => Ok(Rotation::Dead),
                // The UPDATE above found it not live, so this cannot be; refuse rather than
                // guess.
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

    #[tracing::instrument(name = "store.revoke_refresh_family", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn revoke_refresh_family(&self, presented: &Hash32, now: Timestamp) -> Result<bool> {
        let mut tx = self.begin().await?;
        let result: Result<bool> = async {
            let family: Option<String> =
                sqlx::query_scalar("SELECT family FROM refresh_tokens WHERE hash = ?")
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

    #[tracing::instrument(name = "store.create_api_key", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn create_api_key(&self, key: &ApiKey) -> Result<()> {
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            require_user(&mut tx, &key.created_by).await?;
            require_org(&mut tx, key.org.as_ref()).await?;
            let done = sqlx::query(&format!(
                "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING"
            ))
            .bind(&key.id)
            .bind(key.hash.to_hex())
            .bind(&key.name)
            .bind(key.created_by.to_string())
            .bind(key.role.as_str())
            .bind(key.org.map(|o| o.to_string()))
            .bind(scopes_json(&key.scopes, BACKEND)?)
            .bind(to_micros(key.created_at))
            .bind(key.expires_at.map(to_micros))
            .bind(key.last_used_at.map(to_micros))
            .bind(key.revoked_at.map(to_micros))
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

    #[tracing::instrument(name = "store.api_key", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn api_key(&self, id: &str) -> Result<Option<ApiKey>> {
        sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(key_from_row)
            .transpose()
    }

    #[tracing::instrument(name = "store.list_api_keys", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn list_api_keys(&self, org: Option<&OrgId>) -> Result<Vec<ApiKey>> {
        let rows = match org {
            Some(org) => {
                sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = ? ORDER BY created_at, id"
                ))
                .bind(org.to_string())
                .fetch_all(&self.reader)
                .await
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
                ))
                .fetch_all(&self.reader)
                .await
            }
        }
        .map_err(db_err)?;
        rows.iter().map(key_from_row).collect()
    }

    #[tracing::instrument(name = "store.touch_api_key", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn touch_api_key(&self, id: &str, now: Timestamp) -> Result<()> {
        // Conditional, so most uses of a busy key write nothing.
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            let done = sqlx::query(
                "UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2 \
                 AND (last_used_at IS NULL OR last_used_at < ?3)",
            )
            .bind(to_micros(now))
            .bind(id)
            .bind(to_micros(now - KEY_TOUCH_INTERVAL))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            if done.rows_affected() == 0 && !key_exists(&mut tx, id).await? {
                return Err(Error::not_found("API key", id));
            }
            Ok(())
        }
        .await;
        finish(tx, result).await
    }

    #[tracing::instrument(name = "store.revoke_api_key", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn revoke_api_key(&self, id: &str, now: Timestamp) -> Result<()> {
        let found: Option<i64> = sqlx::query_scalar(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING 1",
        )
        .bind(to_micros(now))
        .bind(id)
        .fetch_optional(&self.writer)
        .await
        .map_err(db_err)?;
        match found {
            Some(_) => Ok(()),
            None => Err(Error::not_found("API key", id)),
        }
    }

    #[tracing::instrument(name = "store.create_enrolment", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn create_enrolment(&self, e: &Enrolment) -> Result<()> {
        let mut tx = self.begin().await?;
        let result: Result<()> = async {
            require_org(&mut tx, Some(&e.org)).await?;
            let done = sqlx::query(&format!(
                "INSERT INTO enrolments ({ENROLMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING"
            ))
            .bind(&e.id)
            .bind(e.hash.to_hex())
            .bind(e.org.to_string())
            .bind(e.wallet.to_string())
            .bind(&e.created_by)
            .bind(to_micros(e.created_at))
            .bind(to_micros(e.expires_at))
            .bind(e.used_at.map(to_micros))
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

    #[tracing::instrument(name = "store.redeem_enrolment", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn redeem_enrolment(
        &self,
        token: &Hash32,
        node: &NodeId,
        wallet: &WalletAddress,
        now: Timestamp,
    ) -> Result<Redemption> {
        // One statement spends a live token (SQLite serialises writers); otherwise read why.
        let spent = sqlx::query(&format!(
            "UPDATE enrolments SET node_id = ?1, used_at = ?2 WHERE hash = ?3 AND node_id IS NULL \
             AND expires_at > ?2 AND wallet = ?4 RETURNING {ENROLMENT_COLUMNS}"
        ))
        .bind(node.to_string())
        .bind(to_micros(now))
        .bind(token.to_hex())
        .bind(wallet.to_string())
        .fetch_optional(&self.writer)
        .await
        .map_err(db_err)?;
        if let Some(row) = spent {
            return Ok(Redemption::Redeemed(enrolment_from_row(&row)?));
        }
        let row = sqlx::query(&format!(
            "SELECT {ENROLMENT_COLUMNS} FROM enrolments WHERE hash = ?"
        ))
        .bind(token.to_hex())
        .fetch_optional(&self.writer)
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

    #[tracing::instrument(name = "store.node_enrolment", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn node_enrolment(&self, node: &NodeId) -> Result<Option<Enrolment>> {
        sqlx::query(&format!(
            "SELECT {ENROLMENT_COLUMNS} FROM enrolments WHERE node_id = ?"
        ))
        .bind(node.to_string())
        .fetch_optional(&self.reader)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(enrolment_from_row)
        .transpose()
    }
}

const ENROLMENT_COLUMNS: &str =
    "id, hash, org_id, wallet, created_by, created_at, expires_at, used_at, node_id";

fn enrolment_from_row(row: &SqliteRow) -> Result<Enrolment> {
    let hash: String = get(row, "hash")?;
    Ok(Enrolment {
        id: get(row, "id")?,
        hash: Hash32::from_hex(&hash)
            .map_err(|e| Error::backend(BACKEND, format!("stored enrolment hash: {e}")))?,
        org: stored_uuid(&get::<String>(row, "org_id")?, OrgId::parse)?,
        wallet: WalletAddress::parse(&get::<String>(row, "wallet")?)?,
        created_by: get(row, "created_by")?,
        created_at: time_of(get(row, "created_at")?)?,
        expires_at: time_of(get(row, "expires_at")?)?,
        used_at: opt_time(get(row, "used_at")?)?,
        node: get::<Option<String>>(row, "node_id")?
            .map(|n| NodeId::parse(&n))
            .transpose()?,
    })
}

#[async_trait]
impl AuditLog for SqliteStore {
    #[tracing::instrument(name = "store.append_audit", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log (at, actor, actor_kind, role, action, target, outcome, status, \
             request_id, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(to_micros(entry.at))
        .bind(&entry.actor)
        .bind(actor_kind_str(entry.actor_kind))
        .bind(entry.role.map(Role::as_str))
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(entry.outcome.as_str())
        .bind(entry.status.map(i64::from))
        .bind(&entry.request_id)
        .bind(&entry.source)
        .fetch_one(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(AuditEntry {
            id: u64::try_from(id).map_err(|_| Error::backend(BACKEND, "negative audit id"))?,
            entry: entry.clone(),
        })
    }

    #[tracing::instrument(name = "store.list_audit", level = "debug", skip_all, fields(db.system = "sqlite"))]
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>> {
        let (where_sql, binds) = audit_filter_sql(filter, Dialect::Sqlite);
        let n = binds.len();
        let count_sql = format!("SELECT COUNT(*) FROM audit_log {where_sql}");
        let list_sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log {where_sql} ORDER BY id DESC \
             LIMIT ?{} OFFSET ?{}",
            n + 1,
            n + 2
        );
        let offset = to_i64(page.offset, "page offset")?;
        // One read transaction, so the total and the page agree.
        let mut tx = self.reader.begin().await.map_err(db_err)?;
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
