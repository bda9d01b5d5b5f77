//! Conformance suite for [`AccountStore`] and [`AuditLog`] (every clause of their `# Contract`
//! sections).
//!
//! [`run_all`] takes a factory that returns a **fresh, empty** store for each check. Any type
//! that implements both ports will do: a concrete store (`Arc<SqliteStore>`) or a
//! [`DynCoordinatorStore`](crate::DynCoordinatorStore), which has both as supertraits. Times
//! are [`now`]-based with microseconds, so every round trip also checks that a store keeps
//! microsecond precision.

use std::future::Future;
use std::sync::Arc;

use chrono::TimeDelta;

use crate::access::{
    AccountStore, ActorKind, ApiKey, AuditEntry, AuditFilter, AuditLog, Enrolment, NewAuditEntry,
    Organisation, Outcome, Redemption, RefreshToken, Role, Rotation, Scope, User, UserRecord,
    UserUpdate,
};
use crate::crypto::Hash32;
use crate::page::PageRequest;
use crate::time::now;
use crate::{Error, NodeId, OrgId, TimeWindow, Timestamp, UserId, WalletAddress};

/// Runs every check, each on a fresh store from `fresh`.
pub async fn run_all<S, F, Fut>(fresh: F)
where
    S: AccountStore + AuditLog + ?Sized + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    run_accounts(&fresh).await;
    run_audit(&fresh).await;
}

/// The [`AccountStore`] checks.
pub async fn run_accounts<S, F, Fut>(fresh: &F)
where
    S: AccountStore + ?Sized + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    check_organisations(&*fresh().await).await;
    check_org_wallets(&*fresh().await).await;
    check_users(&*fresh().await).await;
    check_list_users(&*fresh().await).await;
    check_update_user(&*fresh().await).await;
    check_disabling_revokes_tokens_and_keys(&*fresh().await).await;
    check_count_users(&*fresh().await).await;
    check_refresh_rotation(&*fresh().await).await;
    check_dead_and_unknown_refresh_tokens(&*fresh().await).await;
    check_failed_rotation_changes_nothing(&*fresh().await).await;
    check_concurrent_rotation(fresh().await, 8).await;
    check_revoke_refresh_family(&*fresh().await).await;
    check_api_keys(&*fresh().await).await;
    check_touch_api_key(&*fresh().await).await;
    check_revoke_api_key(&*fresh().await).await;
    check_enrolments(&*fresh().await).await;
    check_concurrent_enrolment(fresh().await, 6).await;
}

/// The [`AuditLog`] checks.
pub async fn run_audit<S, F, Fut>(fresh: &F)
where
    S: AuditLog + ?Sized + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    check_audit_round_trip(&*fresh().await).await;
    check_audit_ids_increase(&*fresh().await).await;
    check_audit_filters(&*fresh().await).await;
    check_audit_pagination(&*fresh().await).await;
}

// ----------------------------------------------------------------------------------------
// Fixtures

/// `base + secs` seconds.
fn at(base: Timestamp, secs: i64) -> Timestamp {
    base + TimeDelta::seconds(secs)
}

fn wallet(n: u64) -> WalletAddress {
    WalletAddress::parse(&format!("{:#x}", 0x2000 + n)).expect("valid wallet")
}

fn org(name: &str, created_at: Timestamp) -> Organisation {
    Organisation {
        id: OrgId::new(),
        name: name.to_string(),
        created_at,
    }
}

/// A user record with a fake (but well-formed looking) PHC hash: hashing is not the store's
/// business, and real argon2 would slow the suite down.
fn user(name: &str, role: Role, org: Option<OrgId>, created_at: Timestamp) -> UserRecord {
    UserRecord {
        user: User {
            id: UserId::new(),
            username: name.to_string(),
            role,
            org,
            disabled: false,
            created_at,
            updated_at: created_at,
        },
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${name}"),
    }
}

fn hash(n: u8) -> Hash32 {
    Hash32([n; 32])
}

fn token(
    h: Hash32,
    family: uuid::Uuid,
    user: UserId,
    issued_at: Timestamp,
    ttl_secs: i64,
) -> RefreshToken {
    RefreshToken {
        hash: h,
        family,
        user,
        issued_at,
        expires_at: at(issued_at, ttl_secs),
    }
}

/// A successor token whose `family` and `user` are deliberately wrong: the store must replace
/// them with the presented token's.
fn next_token(h: Hash32, issued_at: Timestamp) -> RefreshToken {
    token(h, uuid::Uuid::new_v4(), UserId::new(), issued_at, 3600)
}

fn api_key(
    id: &str,
    creator: &User,
    org: Option<OrgId>,
    created_at: Timestamp,
    scopes: Vec<Scope>,
) -> ApiKey {
    ApiKey {
        id: id.to_string(),
        hash: crate::access::secret_hash(id),
        name: format!("key {id}"),
        created_by: creator.id,
        role: creator.role,
        org,
        scopes,
        created_at,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    }
}

fn assert_already_exists<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("{what}: expected AlreadyExists, got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(r: crate::Result<T>, what: &str) {
    match r {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

async fn create_org<S: AccountStore + ?Sized>(s: &S, name: &str, created_at: Timestamp) -> OrgId {
    let o = org(name, created_at);
    s.create_org(&o).await.expect("create org");
    o.id
}

async fn create_user<S: AccountStore + ?Sized>(
    s: &S,
    name: &str,
    role: Role,
    org: Option<OrgId>,
    created_at: Timestamp,
) -> User {
    let u = user(name, role, org, created_at);
    s.create_user(&u).await.expect("create user");
    u.user
}

async fn rotate<S: AccountStore + ?Sized>(
    s: &S,
    presented: &Hash32,
    next: &RefreshToken,
    now: Timestamp,
) -> Rotation {
    s.rotate_refresh_token(presented, next, now)
        .await
        .expect("rotate refresh token")
}

// ----------------------------------------------------------------------------------------
// Organisations and wallets

/// Organisations round-trip; names and ids are unique (`AlreadyExists`, nothing stored);
/// absent ones are `None`; the list is in creation order, ties by id.
pub async fn check_organisations<S: AccountStore + ?Sized>(s: &S) {
    let base = now();
    assert!(
        s.list_orgs().await.expect("list orgs").is_empty(),
        "fresh store has orgs"
    );
    let late = org("Late Ltd", at(base, 2));
    s.create_org(&late).await.expect("create org");
    assert_eq!(
        s.org(&late.id).await.expect("org").as_ref(),
        Some(&late),
        "organisation round trip"
    );
    assert_eq!(
        s.org(&OrgId::new()).await.expect("org"),
        None,
        "unknown org"
    );

    let dup = org("Late Ltd", at(base, 3));
    assert_already_exists(s.create_org(&dup).await, "an organisation name taken");
    assert_eq!(
        s.org(&dup.id).await.expect("org"),
        None,
        "refused org was stored"
    );
    let same_id = Organisation {
        name: "Another name".into(),
        ..late.clone()
    };
    assert_already_exists(s.create_org(&same_id).await, "an organisation id taken");
    assert_eq!(
        s.org(&late.id).await.expect("org").map(|o| o.name),
        Some("Late Ltd".to_string()),
        "refused org changed the existing one"
    );

    let mut a = org("Early A", at(base, 1));
    let mut b = org("Early B", at(base, 1));
    if b.id < a.id {
        std::mem::swap(&mut a.id, &mut b.id);
    }
    // Insert the larger id first so insertion order and id order differ.
    s.create_org(&b).await.expect("create org");
    s.create_org(&a).await.expect("create org");
    assert_eq!(
        s.list_orgs().await.expect("list orgs"),
        vec![a, b, late],
        "organisations in creation order, ties by id"
    );
}

/// A wallet belongs to at most one organisation: adding it again to the same one is `Ok`,
/// to another `AlreadyExists`; unknown organisations and wallets an org lacks are `NotFound`;
/// wallets are listed in the order they were added.
pub async fn check_org_wallets<S: AccountStore + ?Sized>(s: &S) {
    let base = now();
    let a = create_org(s, "Org A", base).await;
    let b = create_org(s, "Org B", base).await;
    let (w1, w2, w3) = (wallet(1), wallet(2), wallet(3));

    assert_eq!(
        s.org_wallets(&a).await.expect("wallets"),
        Vec::<WalletAddress>::new(),
        "fresh org has wallets"
    );
    assert_eq!(
        s.wallet_org(&w1).await.expect("wallet org"),
        None,
        "unowned wallet"
    );
    // Added in an order that is not the addresses' order.
    s.add_org_wallet(&a, &w3, base).await.expect("add w3");
    s.add_org_wallet(&a, &w1, at(base, 1))
        .await
        .expect("add w1");
    s.add_org_wallet(&a, &w1, at(base, 2))
        .await
        .expect("adding a wallet again to the same org is Ok");
    assert_already_exists(
        s.add_org_wallet(&b, &w1, at(base, 3)).await,
        "a wallet another org has",
    );
    assert_not_found(
        s.add_org_wallet(&OrgId::new(), &w2, base).await,
        "adding a wallet to an unknown org",
    );
    assert_eq!(
        s.wallet_org(&w2).await.expect("wallet org"),
        None,
        "refused add stored"
    );
    assert_eq!(
        s.wallet_org(&w1).await.expect("wallet org"),
        Some(a),
        "owner of w1"
    );
    assert_eq!(
        s.org_wallets(&a).await.expect("wallets"),
        vec![w3, w1],
        "wallets in the order they were added (once)"
    );
    assert_eq!(
        s.org_wallets(&b).await.expect("wallets"),
        Vec::<WalletAddress>::new(),
        "org b's wallets"
    );

    assert_not_found(
        s.remove_org_wallet(&b, &w1).await,
        "removing a wallet the org does not have",
    );
    assert_eq!(
        s.wallet_org(&w1).await.expect("wallet org"),
        Some(a),
        "w1 stayed with a"
    );
    s.remove_org_wallet(&a, &w1).await.expect("remove w1");
    assert_eq!(
        s.wallet_org(&w1).await.expect("wallet org"),
        None,
        "removed wallet's org"
    );
    assert_not_found(
        s.remove_org_wallet(&a, &w1).await,
        "removing a wallet twice",
    );
    s.add_org_wallet(&b, &w1, at(base, 4))
        .await
        .expect("a released wallet can join another org");
    assert_eq!(
        s.org_wallets(&a).await.expect("wallets"),
        vec![w3],
        "a after removal"
    );
    assert_eq!(
        s.org_wallets(&b).await.expect("wallets"),
        vec![w1],
        "b after the move"
    );
    s.add_org_wallet(&a, &w2, at(base, 5))
        .await
        .expect("add w2");
    assert_eq!(
        s.org_wallets(&a).await.expect("wallets"),
        vec![w3, w2],
        "a wallet added later comes last"
    );
}

// ----------------------------------------------------------------------------------------
// Users

/// Users round-trip by id and by name; usernames and ids are unique (`AlreadyExists`,
/// nothing stored); an unknown organisation is `NotFound`; absent users are `None`.
pub async fn check_users<S: AccountStore + ?Sized>(s: &S) {
    let base = now();
    let o = create_org(s, "Users Org", base).await;
    let alice = user("alice", Role::Operator, Some(o), base);
    s.create_user(&alice).await.expect("create user");
    assert_eq!(
        s.user(&alice.user.id).await.expect("user").as_ref(),
        Some(&alice),
        "user round trip by id (with its password hash)"
    );
    assert_eq!(
        s.user_by_name("alice")
            .await
            .expect("user by name")
            .as_ref(),
        Some(&alice),
        "user round trip by name"
    );
    let admin = user("root@example", Role::Admin, None, at(base, 1));
    s.create_user(&admin).await.expect("a user without an org");
    assert_eq!(
        s.user(&admin.user.id).await.expect("user").as_ref(),
        Some(&admin),
        "user without an org round trip"
    );

    let dup = user("alice", Role::Viewer, None, at(base, 2));
    assert_already_exists(s.create_user(&dup).await, "a username taken");
    assert_eq!(
        s.user(&dup.user.id).await.expect("user"),
        None,
        "refused user stored"
    );
    let same_id = UserRecord {
        user: User {
            username: "bob".into(),
            ..alice.user.clone()
        },
        ..alice.clone()
    };
    assert_already_exists(s.create_user(&same_id).await, "a user id taken");
    assert_eq!(
        s.user_by_name("bob").await.expect("user by name"),
        None,
        "refused id stored"
    );

    let orphan = user("carol", Role::Operator, Some(OrgId::new()), at(base, 3));
    assert_not_found(s.create_user(&orphan).await, "a user of an unknown org");
    assert_eq!(
        s.user(&orphan.user.id).await.expect("user"),
        None,
        "orphan stored"
    );

    assert_eq!(
        s.user(&UserId::new()).await.expect("user"),
        None,
        "unknown user id"
    );
    assert_eq!(
        s.user_by_name("nobody").await.expect("user"),
        None,
        "unknown username"
    );
}

/// `list_users` pages through users in creation order, ties by id.
pub async fn check_list_users<S: AccountStore + ?Sized>(s: &S) {
    let base = now();
    let empty = s
        .list_users(PageRequest::default())
        .await
        .expect("list users");
    assert_eq!(
        (empty.items.len(), empty.total, empty.next_offset),
        (0, 0, None),
        "fresh"
    );
    let mut a = user("tie-a", Role::Viewer, None, at(base, 1));
    let mut b = user("tie-b", Role::Viewer, None, at(base, 1));
    if b.user.id < a.user.id {
        std::mem::swap(&mut a.user.id, &mut b.user.id);
    }
    let late = user("late", Role::Admin, None, at(base, 5));
    let early = user("early", Role::Operator, None, base);
    for u in [&late, &b, &a, &early] {
        s.create_user(u).await.expect("create user");
    }
    let want: Vec<User> = [&early, &a, &b, &late]
        .iter()
        .map(|u| u.user.clone())
        .collect();
    let all = s
        .list_users(PageRequest::default())
        .await
        .expect("list users");
    assert_eq!(all.items, want, "users in creation order, ties by id");
    assert_eq!((all.total, all.next_offset), (4, None), "one page of all");

    let p1 = s
        .list_users(PageRequest::first(3).expect("page"))
        .await
        .expect("page 1");
    assert_eq!(p1.items, want[..3], "first page");
    assert_eq!(
        (p1.total, p1.next_offset),
        (4, Some(3)),
        "first page's total and next"
    );
    let p2 = s
        .list_users(PageRequest::new(3, 3).expect("page"))
        .await
        .expect("page 2");
    assert_eq!(p2.items, want[3..], "last page");
    assert_eq!(
        (p2.total, p2.next_offset),
        (4, None),
        "last page's total and next"
    );
}

/// `update_user` changes each field it is given (`org: Some(None)` removes the org), stamps
/// `updated_at`, returns the user; unknown users and organisations are `NotFound` and
/// change nothing.
pub async fn check_update_user<S: AccountStore + ?Sized>(s: &S) {
    let base = now();
    let o1 = create_org(s, "Org One", base).await;
    let o2 = create_org(s, "Org Two", base).await;
    let rec = user("dave", Role::Viewer, None, base);
    s.create_user(&rec).await.expect("create user");
    let id = rec.user.id;

    // Nothing to change: only the stamp moves.
    let t1 = at(base, 1);
    let got = s
        .update_user(&id, &UserUpdate::default(), t1)
        .await
        .expect("empty update");
    let mut want = rec.clone();
    want.user.updated_at = t1;
    assert_eq!(got, want.user, "an empty update only stamps updated_at");

    let t2 = at(base, 2);
    let got = s
        .update_user(
            &id,
            &UserUpdate {
                role: Some(Role::Operator),
                org: Some(Some(o1)),
                disabled: None,
                password_hash: Some("$argon2id$v=19$new".into()),
            },
            t2,
        )
        .await
        .expect("update role, org and password");
    want.user.role = Role::Operator;
    want.user.org = Some(o1);
    want.user.updated_at = t2;
    want.password_hash = "$argon2id$v=19$new".into();
    assert_eq!(got, want.user, "returned user after an update");
    assert_eq!(
        s.user(&id).await.expect("user"),
        Some(want.clone()),
        "stored after update"
    );

    let t3 = at(base, 3);
    let got = s
        .update_user(
            &id,
            &UserUpdate {
                org: Some(Some(o2)),
                ..UserUpdate::default()
            },
            t3,
        )
        .await
        .expect("move org");
    want.user.org = Some(o2);
    want.user.updated_at = t3;
    assert_eq!(got, want.user, "moved to another org");

    let t4 = at(base, 4);
    let got = s
        .update_user(
            &id,
            &UserUpdate {
                org: Some(None),
                ..UserUpdate::default()
            },
            t4,
        )
        .await
        .expect("remove org");
    want.user.org = None;
    want.user.updated_at = t4;
    assert_eq!(got, want.user, "org: Some(None) removes the org");
    assert_eq!(
        s.user(&id).await.expect("user"),
        Some(want.clone()),
        "stored without org"
    );

    let t5 = at(base, 5);
    let got = s
        .update_user(
            &id,
            &UserUpdate {
                disabled: Some(true),
                ..UserUpdate::default()
            },
            t5,
        )
        .await
        .expect("disable");
    want.user.disabled = true;
    want.user.updated_at = t5;
    assert_eq!(got, want.user, "disabled");
    let t6 = at(base, 6);
    let got = s
        .update_user(
            &id,
            &UserUpdate {
                disabled: Some(false),
                ..UserUpdate::default()
            },
            t6,
        )
        .await
        .expect("enable");
    want.user.disabled = false;
    want.user.updated_at = t6;
    assert_eq!(got, want.user, "enabled again");

    assert_not_found(
        s.update_user(&UserId::new(), &UserUpdate::default(), t6)
            .await,
        "updating an unknown user",
    );
    assert_not_found(
        s.update_user(
            &id,
            &UserUpdate {
                role: Some(Role::Admin),
                org: Some(Some(OrgId::new())),
                ..UserUpdate::default()
            },
            at(base, 7),
        )
        .await,
        "moving a user to an unknown org",
    );
    assert_eq!(
        s.user(&id).await.expect("user"),
        Some(want),
        "a failed update changed the user"
    );
}

/// Disabling a user revokes its refresh tokens (a later rotation is `Dead`) and its API keys
/// (`revoked_at` set, an earlier revocation kept) in the same call; other users keep theirs.
pub async fn check_disabling_revokes_tokens_and_keys<S: AccountStore + ?Sized>(s: &S) {
    let base = now();
    let o = create_org(s, "Disable Org", base).await;
    let eve = create_user(s, "eve", Role::Operator, Some(o), base).await;
    let fred = create_user(s, "fred", Role::Operator, Some(o), base).await;

    let fam = uuid::Uuid::new_v4();
    s.insert_refresh_token(&token(hash(1), fam, eve.id, base, 3600))
        .await
        .expect("insert");
    // A second family (another login) of eve's, already rotated once.
    let fam2 = uuid::Uuid::new_v4();
    s.insert_refresh_token(&token(hash(2), fam2, eve.id, base, 3600))
        .await
        .expect("insert");
    assert!(matches!(
        rotate(s, &hash(2), &next_token(hash(3), at(base, 1)), at(base, 1)).await,
        Rotation::Rotated { .. }
    ));
    s.insert_refresh_token(&token(hash(10), uuid::Uuid::new_v4(), fred.id, base, 3600))
        .await
        .expect("insert");

    let k_eve = api_key(
        "bsa_eve000000001",
        &eve,
        Some(o),
        base,
        vec![Scope::JobsRead],
    );
    let k_eve_old = api_key(
        "bsa_eve000000002",
        &eve,
        Some(o),
        base,
        vec![Scope::JobsRead],
    );
    let k_fred = api_key(
        "bsa_fred00000001",
        &fred,
        Some(o),
        base,
        vec![Scope::JobsRead],
    );
    for k in [&k_eve, &k_eve_old, &k_fred] {
        s.create_api_key(k).await.expect("create key");
    }
    s.revoke_api_key(&k_eve_old.id, at(base, 2))
        .await
        .expect("revoke");

    let t = at(base, 10);
    let got = s
        .update_user(
            &eve.id,
            &UserUpdate {
                disabled: Some(true),
                ..UserUpdate::default()
            },
            t,
        )
        .await
        .expect("disable");
    assert!(got.disabled, "the returned user is disabled");

    let later = at(base, 11);
    assert_eq!(
        rotate(s, &hash(1), &next_token(hash(20), later), later).await,
        Rotation::Dead,
        "a disabled user's live refresh token"
    );
    assert_eq!(
        rotate(s, &hash(3), &next_token(hash(21), later), later).await,
        Rotation::Dead,
        "a disabled user's live token of another family"
    );
    let key = |id: &str| {
        let id = id.to_string();
        async move { s.api_key(&id).await.expect("api key").expect("key exists") }
    };
    assert_eq!(
        key(&k_eve.id).await.revoked_at,
        Some(t),
        "disabling revokes keys"
    );
    assert_eq!(
        key(&k_eve_old.id).await.revoked_at,
        Some(at(base, 2)),
        "disabling keeps an earlier revocation time"
    );
    assert_eq!(key(&k_fred.id).await.revoked_at, None, "another user's key");
    assert!(
        matches!(
            rotate(s, &hash(10), &next_token(hash(22), later), later).await,
            Rotation::Rotated { user, .. } if user == fred.id
        ),
        "another user's refresh token still rotates"
    );
}

/// `count_users` counts the enabled users of a role.
pub async fn check_count_users<S: AccountStore + ?Sized>(s: &S) {
    let base = now();
    for r in Role::ALL {
        assert_eq!(
            s.count_users(r).await.expect("count"),
            0,
            "fresh store: {r}"
        );
    }
    let a1 = create_user(s, "admin1", Role::Admin, None, base).await;
    create_user(s, "admin2", Role::Admin, None, base).await;
    create_user(s, "op1", Role::Operator, None, base).await;
    let counts = || async {
        let mut v = Vec::new();
        for r in Role::ALL {
            v.push(s.count_users(r).await.expect("count"));
        }
        v
    };
    assert_eq!(counts().await, vec![2, 1, 0], "(admin, operator, viewer)");
    let disable = |d: bool| UserUpdate {
        disabled: Some(d),
        ..UserUpdate::default()
    };
    s.update_user(&a1.id, &disable(true), at(base, 1))
        .await
        .expect("disable");
    assert_eq!(
        counts().await,
        vec![1, 1, 0],
        "a disabled admin is not counted"
    );
    s.update_user(
        &a1.id,
        &UserUpdate {
            role: Some(Role::Viewer),
            ..disable(false)
        },
        at(base, 2),
    )
    .await
    .expect("enable as viewer");
    assert_eq!(counts().await, vec![1, 1, 1], "after a role change");
}

// ----------------------------------------------------------------------------------------
// Refresh tokens

/// A live token rotates (its successor joins the family with the presented token's user and
/// family, whatever `next` said); presenting a spent token again is `Reused` and revokes the
/// family (the newer sibling is then `Dead`), not other families; a `Reused` call stores no
/// successor; a spent token of a revoked family is `Dead`.
pub async fn check_refresh_rotation<S: AccountStore + ?Sized>(s: &S) {
    let base = now();
    let u = create_user(s, "gina", Role::Viewer, None, base).await;
    let fam = uuid::Uuid::new_v4();
    s.insert_refresh_token(&token(hash(1), fam, u.id, base, 3600))
        .await
        .expect("insert");
    let other_fam = uuid::Uuid::new_v4();
    s.insert_refresh_token(&token(hash(50), other_fam, u.id, base, 3600))
        .await
        .expect("insert another login");
    assert_already_exists(
        s.insert_refresh_token(&token(hash(1), uuid::Uuid::new_v4(), u.id, base, 60))
            .await,
        "a refresh token hash already stored",
    );
    // Resolution of the contract: a token's user must exist.
    assert_not_found(
        s.insert_refresh_token(&token(
            hash(60),
            uuid::Uuid::new_v4(),
            UserId::new(),
            base,
            60,
        ))
        .await,
        "a refresh token of an unknown user",
    );
    assert_eq!(
        rotate(s, &hash(60), &next_token(hash(61), base), base).await,
        Rotation::Unknown,
        "a refused refresh token was stored"
    );

    let rotated = Rotation::Rotated {
        user: u.id,
        family: fam,
    };
    assert_eq!(
        rotate(s, &hash(1), &next_token(hash(2), at(base, 1)), at(base, 1)).await,
        rotated,
        "a live token rotates"
    );
    // The successor is stored in the family (with its user): it rotates too.
    assert_eq!(
        rotate(s, &hash(2), &next_token(hash(3), at(base, 2)), at(base, 2)).await,
        rotated,
        "the successor is live in the same family"
    );
    // hash(1) replayed: reuse, the family is revoked; its next is not stored.
    assert_eq!(
        rotate(s, &hash(1), &next_token(hash(4), at(base, 3)), at(base, 3)).await,
        Rotation::Reused {
            user: u.id,
            family: fam
        },
        "a spent token presented again"
    );
    let t = at(base, 4);
    assert_eq!(
        rotate(s, &hash(4), &next_token(hash(5), t), t).await,
        Rotation::Unknown,
        "a Reused call stored its successor"
    );
    assert_eq!(
        rotate(s, &hash(3), &next_token(hash(6), t), t).await,
        Rotation::Dead,
        "the newest token of a family revoked by reuse"
    );
    assert_eq!(
        rotate(s, &hash(2), &next_token(hash(7), t), t).await,
        Rotation::Dead,
        "a spent token of a revoked family"
    );
    assert_eq!(
        rotate(s, &hash(50), &next_token(hash(51), t), t).await,
        Rotation::Rotated {
            user: u.id,
            family: other_fam
        },
        "reuse revokes only its own family"
    );
}

/// Expired (at `now`, inclusive of `expires_at`), revoked and unknown tokens change nothing.
pub async fn check_dead_and_unknown_refresh_tokens<S: AccountStore + ?Sized>(s: &S) {
    let base = now();
    let u = create_user(s, "hank", Role::Viewer, None, base).await;
    let fam = uuid::Uuid::new_v4();
    let short = token(hash(1), fam, u.id, base, 10);
    s.insert_refresh_token(&short).await.expect("insert");
    assert_eq!(
        rotate(
            s,
            &hash(1),
            &next_token(hash(2), short.expires_at),
            short.expires_at
        )
        .await,
        Rotation::Dead,
        "a token at its expiry time"
    );
    assert_eq!(
        rotate(
            s,
            &hash(1),
            &next_token(hash(2), at(base, 60)),
            at(base, 60)
        )
        .await,
        Rotation::Dead,
        "an expired token"
    );
    assert_eq!(
        rotate(
            s,
            &hash(2),
            &next_token(hash(3), at(base, 61)),
            at(base, 61)
        )
        .await,
        Rotation::Unknown,
        "a Dead call stored its successor"
    );
    // Dead changed nothing: before its expiry the token is still live and unspent.
    assert_eq!(
        rotate(s, &hash(1), &next_token(hash(4), at(base, 5)), at(base, 5)).await,
        Rotation::Rotated {
            user: u.id,
            family: fam
        },
        "an expired presentation spent or revoked the token"
    );

    assert_eq!(
        rotate(s, &hash(99), &next_token(hash(98), base), base).await,
        Rotation::Unknown,
        "an unknown token"
    );
    assert_eq!(
        rotate(s, &hash(98), &next_token(hash(97), base), base).await,
        Rotation::Unknown,
        "an Unknown call stored its successor"
    );
}

/// A rotation whose successor cannot be stored (its hash is taken) fails and changes
/// nothing: the presented token is still live.
pub async fn check_failed_rotation_changes_nothing<S: AccountStore + ?Sized>(s: &S) {
    let base = now();
    let u = create_user(s, "ivan", Role::Viewer, None, base).await;
    let fam = uuid::Uuid::new_v4();
    s.insert_refresh_token(&token(hash(1), fam, u.id, base, 3600))
        .await
        .expect("insert");
    s.insert_refresh_token(&token(hash(2), uuid::Uuid::new_v4(), u.id, base, 3600))
        .await
        .expect("insert");
    let t = at(base, 1);
    assert!(
        s.rotate_refresh_token(&hash(1), &next_token(hash(2), t), t)
            .await
            .is_err(),
        "a successor whose hash is taken must fail the rotation"
    );
    assert_eq!(
        rotate(s, &hash(1), &next_token(hash(3), t), t).await,
        Rotation::Rotated {
            user: u.id,
            family: fam
        },
        "a failed rotation spent the presented token"
    );
}

/// `tasks` concurrent presentations of one live token: exactly one is `Rotated`, the others
/// `Reused` (or `Dead` once a reuse revoked the family); the family ends revoked.
pub async fn check_concurrent_rotation<S: AccountStore + ?Sized + 'static>(s: Arc<S>, tasks: u8) {
    let base = now();
    let u = create_user(&*s, "judy", Role::Viewer, None, base).await;
    let fam = uuid::Uuid::new_v4();
    s.insert_refresh_token(&token(hash(0), fam, u.id, base, 3600))
        .await
        .expect("insert");
    let t = at(base, 1);
    let handles: Vec<_> = (1..=tasks)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.rotate_refresh_token(&hash(0), &next_token(hash(i), t), t)
                    .await
            })
        })
        .collect();
    let mut rotated = Vec::new();
    for (i, h) in (1..=tasks).zip(handles) {
        match h.await.expect("task") {
            Ok(Rotation::Rotated { user, family }) => {
                assert_eq!((user, family), (u.id, fam), "rotated into the wrong family");
                rotated.push(i);
            }
            Ok(Rotation::Reused { user, family }) => {
                assert_eq!(
                    (user, family),
                    (u.id, fam),
                    "reuse reported the wrong family"
                );
            }
            Ok(Rotation::Dead) => {}
            other => panic!("concurrent rotation {i}: {other:?}"),
        }
    }
    assert_eq!(
        rotated.len(),
        1,
        "exactly one of {tasks} concurrent presentations may rotate: {rotated:?}"
    );
    if tasks > 1 {
        let winner = hash(rotated[0]);
        let later = at(base, 2);
        assert_eq!(
            rotate(&*s, &winner, &next_token(hash(200), later), later).await,
            Rotation::Dead,
            "the winner's successor after the losers' reuse"
        );
    }
}

/// `revoke_refresh_family` revokes every token of the presented token's family (found by a
/// live or spent member), says whether there was such a token, and leaves other families.
pub async fn check_revoke_refresh_family<S: AccountStore + ?Sized>(s: &S) {
    let base = now();
    let u = create_user(s, "kate", Role::Viewer, None, base).await;
    let fam = uuid::Uuid::new_v4();
    s.insert_refresh_token(&token(hash(1), fam, u.id, base, 3600))
        .await
        .expect("insert");
    s.insert_refresh_token(&token(hash(10), uuid::Uuid::new_v4(), u.id, base, 3600))
        .await
        .expect("insert");
    let t1 = at(base, 1);
    assert!(matches!(
        rotate(s, &hash(1), &next_token(hash(2), t1), t1).await,
        Rotation::Rotated { .. }
    ));
    assert!(
        !s.revoke_refresh_family(&hash(99), t1)
            .await
            .expect("revoke unknown"),
        "revoking by an unknown token"
    );
    // By the spent member: the live one dies.
    assert!(
        s.revoke_refresh_family(&hash(1), at(base, 2))
            .await
            .expect("revoke"),
        "revoking by a spent token of the family"
    );
    let t3 = at(base, 3);
    assert_eq!(
        rotate(s, &hash(2), &next_token(hash(3), t3), t3).await,
        Rotation::Dead,
        "a live token of a revoked family"
    );
    assert!(
        s.revoke_refresh_family(&hash(2), t3)
            .await
            .expect("revoke again"),
        "revoking an already revoked family still finds the token"
    );
    assert!(
        matches!(
            rotate(s, &hash(10), &next_token(hash(11), t3), t3).await,
            Rotation::Rotated { .. }
        ),
        "another family survives"
    );
}

// ----------------------------------------------------------------------------------------
// API keys

/// API keys round-trip (every field, `None`s included); ids are unique; lists are by org (or
/// all) in creation order, ties by id.
pub async fn check_api_keys<S: AccountStore + ?Sized>(s: &S) {
    let base = now();
    let o1 = create_org(s, "Key Org 1", base).await;
    let o2 = create_org(s, "Key Org 2", base).await;
    let admin = create_user(s, "admin", Role::Admin, None, base).await;
    let op = create_user(s, "op", Role::Operator, Some(o1), base).await;

    assert_eq!(
        s.api_key("bsa_000000000000").await.expect("key"),
        None,
        "unknown key"
    );
    assert!(
        s.list_api_keys(None).await.expect("list").is_empty(),
        "fresh store"
    );

    let full = ApiKey {
        id: "bsa_aaaaaaaaaaa1".into(),
        hash: Hash32([7; 32]),
        name: "ci deploys ✓".into(),
        created_by: op.id,
        role: Role::Operator,
        org: Some(o1),
        scopes: vec![Scope::NodesRead, Scope::JobsSubmit, Scope::MetricsRead],
        created_at: at(base, 2),
        expires_at: Some(at(base, 86_400)),
        last_used_at: Some(at(base, 3)),
        revoked_at: Some(at(base, 4)),
    };
    let bare = ApiKey {
        id: "bsa_aaaaaaaaaaa2".into(),
        hash: Hash32([8; 32]),
        name: "read".into(),
        created_by: admin.id,
        role: Role::Viewer,
        org: None,
        scopes: vec![],
        created_at: at(base, 1),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    };
    s.create_api_key(&full).await.expect("create full key");
    s.create_api_key(&bare).await.expect("create bare key");
    assert_eq!(
        s.api_key(&full.id).await.expect("key"),
        Some(full.clone()),
        "full round trip"
    );
    assert_eq!(
        s.api_key(&bare.id).await.expect("key"),
        Some(bare.clone()),
        "bare round trip"
    );
    assert_already_exists(
        s.create_api_key(&ApiKey {
            name: "other".into(),
            hash: Hash32([9; 32]),
            ..full.clone()
        })
        .await,
        "an API key id taken",
    );
    assert_eq!(
        s.api_key(&full.id).await.expect("key"),
        Some(full.clone()),
        "after refusal"
    );
    // Resolution of the contract: a key's creator and organisation must exist.
    let orphan = ApiKey {
        id: "bsa_aaaaaaaaaaa3".into(),
        created_by: UserId::new(),
        ..bare.clone()
    };
    assert_not_found(s.create_api_key(&orphan).await, "a key of an unknown user");
    let orphan = ApiKey {
        id: "bsa_aaaaaaaaaaa4".into(),
        org: Some(OrgId::new()),
        ..bare.clone()
    };
    assert_not_found(s.create_api_key(&orphan).await, "a key of an unknown org");
    assert_eq!(
        s.api_key("bsa_aaaaaaaaaaa3").await.expect("key"),
        None,
        "refused key stored"
    );
    assert_eq!(
        s.api_key("bsa_aaaaaaaaaaa4").await.expect("key"),
        None,
        "refused key stored"
    );

    // Two keys created at the same time, inserted larger id first.
    let tie_b = api_key(
        "bsa_bbbbbbbbbbb2",
        &op,
        Some(o1),
        at(base, 3),
        vec![Scope::JobsRead],
    );
    let tie_a = api_key(
        "bsa_bbbbbbbbbbb1",
        &op,
        Some(o1),
        at(base, 3),
        vec![Scope::JobsRead],
    );
    let other = api_key(
        "bsa_ccccccccccc1",
        &admin,
        Some(o2),
        base,
        Scope::ALL.to_vec(),
    );
    for k in [&tie_b, &tie_a, &other] {
        s.create_api_key(k).await.expect("create key");
    }
    assert_eq!(
        s.list_api_keys(None).await.expect("list all"),
        vec![
            other.clone(),
            bare,
            full.clone(),
            tie_a.clone(),
            tie_b.clone()
        ],
        "all keys in creation order, ties by id"
    );
    assert_eq!(
        s.list_api_keys(Some(&o1)).await.expect("list o1"),
        vec![full, tie_a, tie_b],
        "org 1's keys"
    );
    assert_eq!(
        s.list_api_keys(Some(&o2)).await.expect("list o2"),
        vec![other],
        "org 2's keys"
    );
    assert!(
        s.list_api_keys(Some(&OrgId::new()))
            .await
            .expect("list unknown org")
            .is_empty(),
        "an unknown org has no keys"
    );
}

/// `touch_api_key` sets `last_used_at` when unset or older than 60 s before `now`, and
/// otherwise leaves it.
pub async fn check_touch_api_key<S: AccountStore + ?Sized>(s: &S) {
    let base = now();
    let u = create_user(s, "lena", Role::Admin, None, base).await;
    let k = api_key("bsa_ddddddddddd1", &u, None, base, vec![Scope::JobsRead]);
    s.create_api_key(&k).await.expect("create key");
    let last = || async {
        s.api_key(&k.id)
            .await
            .expect("key")
            .expect("exists")
            .last_used_at
    };
    let t1 = at(base, 10);
    s.touch_api_key(&k.id, t1).await.expect("touch");
    assert_eq!(last().await, Some(t1), "first use");
    s.touch_api_key(&k.id, at(base, 40)).await.expect("touch");
    assert_eq!(last().await, Some(t1), "a use 30 s later is not recorded");
    s.touch_api_key(&k.id, at(base, 69)).await.expect("touch");
    assert_eq!(last().await, Some(t1), "a use 59 s later is not recorded");
    let t2 = at(base, 71);
    s.touch_api_key(&k.id, t2).await.expect("touch");
    assert_eq!(last().await, Some(t2), "a use 61 s later is recorded");
    // Resolution of the contract: touching an unknown key is NotFound, like revoking one.
    assert_not_found(
        s.touch_api_key("bsa_ffffffffffff", t2).await,
        "touching an unknown key",
    );
    let key = s.api_key(&k.id).await.expect("key").expect("exists");
    assert_eq!(
        key,
        ApiKey {
            last_used_at: Some(t2),
            ..k
        },
        "touching changed only last_used_at"
    );
}

/// `revoke_api_key` sets `revoked_at` once (a second revocation keeps the first time);
/// unknown ids are `NotFound`.
pub async fn check_revoke_api_key<S: AccountStore + ?Sized>(s: &S) {
    let base = now();
    let u = create_user(s, "mia", Role::Admin, None, base).await;
    let k = api_key("bsa_eeeeeeeeeee1", &u, None, base, vec![Scope::JobsRead]);
    let other = api_key("bsa_eeeeeeeeeee2", &u, None, base, vec![Scope::JobsRead]);
    s.create_api_key(&k).await.expect("create key");
    s.create_api_key(&other).await.expect("create key");
    let t1 = at(base, 5);
    s.revoke_api_key(&k.id, t1).await.expect("revoke");
    let got = s.api_key(&k.id).await.expect("key").expect("exists");
    assert_eq!(got.revoked_at, Some(t1), "revoked_at after revoking");
    assert!(!got.is_live(at(base, 6)), "a revoked key is not live");
    s.revoke_api_key(&k.id, at(base, 9))
        .await
        .expect("revoke again");
    assert_eq!(
        s.api_key(&k.id)
            .await
            .expect("key")
            .expect("exists")
            .revoked_at,
        Some(t1),
        "revoking again keeps the first time"
    );
    assert_eq!(
        s.api_key(&other.id).await.expect("key"),
        Some(other),
        "revoking one key changed another"
    );
    assert_not_found(
        s.revoke_api_key("bsa_ffffffffffff", t1).await,
        "revoking an unknown key",
    );
}

// ----------------------------------------------------------------------------------------
// Audit log

fn entry(actor: &str, action: &str, outcome: Outcome, at: Timestamp) -> NewAuditEntry {
    NewAuditEntry {
        at,
        actor: actor.to_string(),
        actor_kind: ActorKind::User,
        role: Some(Role::Operator),
        action: action.to_string(),
        target: None,
        outcome,
        status: None,
        request_id: None,
        source: None,
    }
}

/// Appended entries come back whole: every field, with and without its optional parts.
pub async fn check_audit_round_trip<S: AuditLog + ?Sized>(s: &S) {
    let base = now();
    let full = NewAuditEntry {
        at: base,
        actor: UserId::new().to_string(),
        actor_kind: ActorKind::ApiKey,
        role: Some(Role::Admin),
        action: "POST /api/admin/users/{id}".into(),
        target: Some("/api/admin/users/42 ✓".into()),
        outcome: Outcome::Denied,
        status: Some(403),
        request_id: Some("req-0001".into()),
        source: Some("203.0.113.7".into()),
    };
    let bare = NewAuditEntry {
        at: at(base, 1),
        actor: "anonymous".into(),
        actor_kind: ActorKind::Anonymous,
        role: None,
        action: "user.login".into(),
        target: None,
        outcome: Outcome::Failed,
        status: None,
        request_id: None,
        source: None,
    };
    let mut stored = Vec::new();
    for e in [&full, &bare] {
        let got = s.append_audit(e).await.expect("append");
        assert_eq!(&got.entry, e, "append_audit returns the entry");
        stored.push(got);
    }
    for (kind, outcome) in [
        (ActorKind::User, Outcome::Success),
        (ActorKind::Node, Outcome::Success),
        (ActorKind::System, Outcome::Success),
    ] {
        let e = NewAuditEntry {
            actor_kind: kind,
            outcome,
            status: Some(200),
            ..bare.clone()
        };
        stored.push(s.append_audit(&e).await.expect("append"));
    }
    let page = s
        .list_audit(&AuditFilter::default(), PageRequest::default())
        .await
        .expect("list");
    stored.reverse();
    assert_eq!(page.items, stored, "stored entries, newest first");
}

/// Every appended entry gets an id greater than every earlier one's.
pub async fn check_audit_ids_increase<S: AuditLog + ?Sized>(s: &S) {
    let base = now();
    let mut last = 0;
    for i in 0..20 {
        let got = s
            .append_audit(&entry("system", "tick", Outcome::Success, at(base, i)))
            .await
            .expect("append");
        assert!(got.id > last, "entry {i}: id {} not above {last}", got.id);
        last = got.id;
    }
}

/// Each filter field (actor, action prefix, outcome, window) and their combination select
/// exactly the matching entries, newest first, with their total.
pub async fn check_audit_filters<S: AuditLog + ?Sized>(s: &S) {
    let base = now();
    let rows = [
        ("alice", "POST /api/jobs", Outcome::Success, 0),
        ("bob", "POST /api/jobs", Outcome::Denied, 1),
        ("alice", "GET /api/jobs/{id}", Outcome::Success, 2),
        ("alice", "user.create", Outcome::Failed, 3),
        ("bob", "user.disable", Outcome::Success, 4),
        // Characters that are wildcards in LIKE or GLOB patterns.
        ("carol", "user%_*?[x].op", Outcome::Success, 5),
        ("alice", "POST /api/keys", Outcome::Success, 6),
    ];
    let mut all: Vec<AuditEntry> = Vec::new();
    for (actor, action, outcome, secs) in rows {
        all.push(
            s.append_audit(&entry(actor, action, outcome, at(base, secs)))
                .await
                .expect("append"),
        );
    }
    let expect = |f: AuditFilter, pick: &dyn Fn(&NewAuditEntry) -> bool, what: &'static str| {
        let want: Vec<AuditEntry> = all
            .iter()
            .rev()
            .filter(|e| pick(&e.entry))
            .cloned()
            .collect();
        async move {
            let page = s
                .list_audit(&f, PageRequest::default())
                .await
                .expect("list audit");
            assert_eq!(page.items, want, "{what}: entries");
            assert_eq!(page.total, want.len() as u64, "{what}: total");
            assert_eq!(page.next_offset, None, "{what}: next offset");
        }
    };
    expect(AuditFilter::default(), &|_| true, "no filter").await;
    expect(
        AuditFilter {
            actor: Some("alice".into()),
            ..AuditFilter::default()
        },
        &|e| e.actor == "alice",
        "actor",
    )
    .await;
    expect(
        AuditFilter {
            actor: Some("ALICE".into()),
            ..AuditFilter::default()
        },
        &|_| false,
        "actor is matched exactly",
    )
    .await;
    expect(
        AuditFilter {
            action_prefix: Some("POST /api/".into()),
            ..AuditFilter::default()
        },
        &|e| e.action.starts_with("POST /api/"),
        "action prefix",
    )
    .await;
    expect(
        AuditFilter {
            action_prefix: Some("post".into()),
            ..AuditFilter::default()
        },
        &|_| false,
        "action prefix is case-sensitive",
    )
    .await;
    expect(
        AuditFilter {
            action_prefix: Some("user.".into()),
            ..AuditFilter::default()
        },
        &|e| e.action.starts_with("user."),
        "action prefix with a dot",
    )
    .await;
    expect(
        AuditFilter {
            action_prefix: Some("user%_*?[".into()),
            ..AuditFilter::default()
        },
        &|e| e.action.starts_with("user%_*?["),
        "action prefix with pattern characters is literal",
    )
    .await;
    expect(
        AuditFilter {
            action_prefix: Some("user_".into()),
            ..AuditFilter::default()
        },
        &|_| false,
        "an underscore in a prefix is no wildcard",
    )
    .await;
    expect(
        AuditFilter {
            action_prefix: Some("POST /api/jobs/extra".into()),
            ..AuditFilter::default()
        },
        &|_| false,
        "a prefix longer than the action",
    )
    .await;
    expect(
        AuditFilter {
            outcome: Some(Outcome::Success),
            ..AuditFilter::default()
        },
        &|e| e.outcome == Outcome::Success,
        "outcome",
    )
    .await;
    let window = TimeWindow::new(at(base, 2), at(base, 5)).expect("window");
    expect(
        AuditFilter {
            window: Some(window),
            ..AuditFilter::default()
        },
        &|e| window.contains(e.at),
        "window (start inclusive, end exclusive)",
    )
    .await;
    expect(
        AuditFilter {
            actor: Some("alice".into()),
            action_prefix: Some("POST".into()),
            outcome: Some(Outcome::Success),
            window: Some(TimeWindow::new(at(base, 0), at(base, 6)).expect("window")),
        },
        &|e| {
            e.actor == "alice"
                && e.action.starts_with("POST")
                && e.outcome == Outcome::Success
                && e.at < at(base, 6)
        },
        "every filter at once",
    )
    .await;
}

/// Pages of the audit log: newest first, totals, next offsets, and filtered pages.
pub async fn check_audit_pagination<S: AuditLog + ?Sized>(s: &S) {
    let base = now();
    let empty = s
        .list_audit(&AuditFilter::default(), PageRequest::default())
        .await
        .expect("list");
    assert_eq!(
        (empty.items.len(), empty.total, empty.next_offset),
        (0, 0, None),
        "fresh"
    );
    let mut all = Vec::new();
    for i in 0..7 {
        let outcome = if i % 2 == 0 {
            Outcome::Success
        } else {
            Outcome::Failed
        };
        all.push(
            s.append_audit(&entry("nina", &format!("act.{i}"), outcome, at(base, i)))
                .await
                .expect("append"),
        );
    }
    all.reverse();
    let page = |limit, offset| PageRequest::new(limit, offset).expect("page");
    let p = s
        .list_audit(&AuditFilter::default(), page(3, 0))
        .await
        .expect("list");
    assert_eq!(
        (p.items.as_slice(), p.total, p.next_offset),
        (&all[0..3], 7, Some(3)),
        "page 1"
    );
    let p = s
        .list_audit(&AuditFilter::default(), page(3, 3))
        .await
        .expect("list");
    assert_eq!(
        (p.items.as_slice(), p.total, p.next_offset),
        (&all[3..6], 7, Some(6)),
        "page 2"
    );
    let p = s
        .list_audit(&AuditFilter::default(), page(3, 6))
        .await
        .expect("list");
    assert_eq!(
        (p.items.as_slice(), p.total, p.next_offset),
        (&all[6..], 7, None),
        "page 3"
    );
    let p = s
        .list_audit(&AuditFilter::default(), page(3, 10))
        .await
        .expect("list");
    assert_eq!(
        (p.items.len(), p.total, p.next_offset),
        (0, 7, None),
        "past the end"
    );

    let failed = AuditFilter {
        outcome: Some(Outcome::Failed),
        ..AuditFilter::default()
    };
    let want: Vec<AuditEntry> = all
        .iter()
        .filter(|e| e.entry.outcome == Outcome::Failed)
        .cloned()
        .collect();
    let p = s.list_audit(&failed, page(2, 0)).await.expect("list");
    assert_eq!(
        (p.items.as_slice(), p.total, p.next_offset),
        (&want[0..2], 3, Some(2)),
        "filtered page 1"
    );
    let p = s.list_audit(&failed, page(2, 2)).await.expect("list");
    assert_eq!(
        (p.items.as_slice(), p.total, p.next_offset),
        (&want[2..], 3, None),
        "filtered page 2"
    );
}

fn enrolment(
    id: &str,
    secret: u8,
    org: OrgId,
    w: WalletAddress,
    base: Timestamp,
    ttl: i64,
) -> Enrolment {
    Enrolment {
        id: id.to_string(),
        hash: Hash32([secret; 32]),
        org,
        wallet: w,
        created_by: "op".into(),
        created_at: base,
        expires_at: at(base, ttl),
        used_at: None,
        node: None,
    }
}

fn node(n: u8) -> NodeId {
    NodeId::parse(&format!("node-enrol-{n}")).expect("node id")
}

/// Enrolment tokens: stored by hash (`AlreadyExists` for a known id, `NotFound` for an
/// unknown organisation); a wrong wallet spends nothing; the first node spends a live token
/// and may present it again; another node finds it spent; an unused token past its expiry
/// is expired; an unknown hash is unknown; `node_enrolment` finds the spent token.
pub async fn check_enrolments<S: AccountStore + ?Sized>(s: &S) {
    let base = now();
    let o = org("Enrolling", base);
    s.create_org(&o).await.expect("org");
    let live = enrolment("bse_live", 1, o.id, wallet(1), base, 3600);
    s.create_enrolment(&live).await.expect("create");
    assert_already_exists(s.create_enrolment(&live).await, "a known enrolment id");
    match s
        .create_enrolment(&enrolment(
            "bse_orphan",
            9,
            OrgId::new(),
            wallet(1),
            base,
            60,
        ))
        .await
    {
        Err(Error::NotFound { .. }) => {}
        other => panic!("enrolment for an unknown organisation: {other:?}"),
    }
    let t = at(base, 10);
    assert_eq!(
        s.redeem_enrolment(&live.hash, &node(1), &wallet(2), t)
            .await
            .expect("redeem"),
        Redemption::WrongWallet,
        "another wallet"
    );
    let first = s
        .redeem_enrolment(&live.hash, &node(1), &wallet(1), t)
        .await
        .expect("redeem");
    let Redemption::Redeemed(spent) = first else {
        panic!("a live token with its wallet: {first:?}");
    };
    assert_eq!(spent.node, Some(node(1)));
    assert_eq!(spent.used_at, Some(t));
    assert_eq!(spent.org, o.id);
    assert_eq!(
        s.redeem_enrolment(&live.hash, &node(1), &wallet(1), at(base, 20))
            .await
            .expect("redeem"),
        Redemption::Redeemed(spent.clone()),
        "the same node again"
    );
    assert_eq!(
        s.redeem_enrolment(&live.hash, &node(2), &wallet(1), at(base, 20))
            .await
            .expect("redeem"),
        Redemption::Spent,
        "another node"
    );
    let short = enrolment("bse_short", 2, o.id, wallet(1), base, 5);
    s.create_enrolment(&short).await.expect("create");
    assert_eq!(
        s.redeem_enrolment(&short.hash, &node(3), &wallet(1), at(base, 5))
            .await
            .expect("redeem"),
        Redemption::Expired,
        "at its expiry"
    );
    assert_eq!(
        s.redeem_enrolment(&Hash32([7; 32]), &node(3), &wallet(1), t)
            .await
            .expect("redeem"),
        Redemption::Unknown
    );
    assert_eq!(s.node_enrolment(&node(1)).await.expect("get"), Some(spent));
    assert_eq!(s.node_enrolment(&node(3)).await.expect("get"), None);
}

/// Of `tasks` nodes presenting one live token at once, exactly one gets it.
pub async fn check_concurrent_enrolment<S: AccountStore + ?Sized + 'static>(s: Arc<S>, tasks: u8) {
    let base = now();
    let o = org("Racing", base);
    s.create_org(&o).await.expect("org");
    let e = enrolment("bse_race", 3, o.id, wallet(1), base, 3600);
    s.create_enrolment(&e).await.expect("create");
    let mut handles = Vec::new();
    for i in 0..tasks {
        let s = s.clone();
        let hash = e.hash;
        handles.push(tokio::spawn(async move {
            s.redeem_enrolment(&hash, &node(10 + i), &wallet(1), at(base, 1))
                .await
                .expect("redeem")
        }));
    }
    let mut won = 0;
    for h in handles {
        match h.await.expect("task") {
            Redemption::Redeemed(_) => won += 1,
            Redemption::Spent => {}
            other => panic!("a concurrent presentation: {other:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one node spends the token");
}
