//! The HSM itself: identity, users, sessions and the permission table.
//!
//! Pure: no tokio, tonic or I/O. Time (`now`) and randomness (`rng`) are
//! passed in, and password hashing is a separate step the caller runs off the
//! async workers, so every rule here can be tested alone and deterministically.
//!
//! # Layout
//! - [`permissions`]: the seed's permission table as one exhaustive `match`.
//! - [`role`]: user roles and the identities the table speaks of.
//! - [`credentials`]: usernames, passwords, Argon2id hashes and their cost.
//! - [`session`]: bearer tokens, idle expiry.
//! - [`identity`]: cluster and HSM identity.
//! - [`keys`]: keys, their attributes, owners, shares, quotas and listing.
//! - [`mtls`]: client mTLS trust anchors and the enforcement level.
//! - [`quorum`]: quorum values, registered approver and MFA keys, and the
//!   tokens approvers sign (quorum approvals, MFA logins).
//! - [`error`]: [`ModelError`], one variant per HSM outcome.
//! - This file: [`Hsm`], the aggregate whose methods are the HSM's operations.

#[macro_use]
mod listed;

mod approvals;
pub mod credentials;
pub mod error;
pub mod identity;
pub mod keys;
pub mod mtls;
pub mod permissions;
pub mod quorum;
pub mod role;
pub mod session;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, Instant},
};

use rand::CryptoRng;

use self::{
    keys::{Actor, Keys},
    quorum::{Purpose, Tokens},
};
use crate::crypto::{Cipher, KeyKind, KeyMaterial};

pub use self::{
    credentials::{CreateToken, KdfParams, Password, PasswordHash, Username},
    error::ModelError,
    identity::{ClusterId, ClusterIdentity, ClusterMode, ClusterState, HsmId, HsmIdentity, HsmType},
    keys::{
        AttrName, Attributes, KeyDigest, KeyPage, KeyQuery, KeyQuorum, KeyQuotas, KeyRange, KeyRef, KeyView, NewKey,
        PersistedKey, PersistedTombstone, Replica, Stamp, Template, Usage,
    },
    mtls::{AnchorCert, AnchorRef, Enforcement, Mtls, TrustAnchor},
    permissions::{Action, Operation, Who, authorize},
    quorum::{
        Approval, ApproverKey, IssuedToken, PendingApproval, QuorumService, QuorumValue, QuorumValues, TokenId,
        TokenView, VerifiedApproval,
    },
    role::{Identity, Role},
    session::{SessionId, SessionToken, Sessions},
};

/// Failed logins in a row that a user survives; one more locks the user.
pub const MAX_FAILED_LOGINS: u32 = 5;

/// The name of the precrypto officer / first admin.
pub const ADMIN_USERNAME: &str = "admin";
/// The name of the appliance user.
pub const APPLIANCE_USERNAME: &str = "app_user";

/// Limits that operators may tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Users per HSM, including `admin` and `app_user`.
    pub max_users: usize,
    /// Open sessions per HSM: bounds what a client that never logs out costs.
    pub max_sessions: usize,
    /// A session idle this long is closed.
    pub session_idle_timeout: Duration,
    pub keys: KeyQuotas,
}

impl Limits {
    pub fn for_type(hsm_type: HsmType) -> Self {
        Limits {
            max_users: hsm_type.max_users(),
            max_sessions: 4_096,
            session_idle_timeout: Duration::from_secs(30 * 60),
            keys: match hsm_type {
                HsmType::Hsm1Medium => KeyQuotas::HSM1,
                HsmType::Hsm2mMedium => KeyQuotas::HSM2M,
            },
        }
    }
}

/// How a new HSM starts out.
#[derive(Debug, Clone)]
pub struct HsmSetup {
    pub cluster: ClusterIdentity,
    pub hsm: HsmIdentity,
    pub limits: Limits,
    /// The key references this HSM hands out (from its index in the cluster).
    pub key_range: KeyRange,
    /// `None`: a new, unactivated cluster whose precrypto officer `admin` has
    /// the hash of `password`; `Some`: an activated cluster whose admin has this
    /// password hash.
    pub admin: AdminSetup,
    /// The appliance user's password hash; its password comes from the
    /// cluster's configuration.
    pub appliance: PasswordHash,
    /// A hash of a random password, verified against when a login names an
    /// unknown user, so that such a login costs the same time as a real one.
    pub decoy: PasswordHash,
}

/// The admin a new HSM starts with.
#[derive(Debug, Clone)]
pub enum AdminSetup {
    /// The precrypto officer, with the hash of the default password.
    Unactivated(PasswordHash),
    /// An admin (the cluster is active), with this password hash.
    Activated(PasswordHash),
}

/// One user as others see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub username: Username,
    pub role: Role,
    pub locked: bool,
    /// Whether the user registered a quorum (approver) key.
    pub quorum: bool,
    /// Whether the user has MFA (token-sign) on.
    pub mfa: bool,
}

/// The caller of an operation, established from its session token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub identity: Identity,
    /// The session and its user; `None` for an unauthenticated caller.
    pub session: Option<(SessionId, Username)>,
}

impl Caller {
    /// The HSM's own background sync, which acts with the appliance user's
    /// rights and no session.
    pub fn this_hsm() -> Self {
        Caller { identity: Identity::ApplianceUser, session: None }
    }
}

/// What `login_attempt` hands back for the password check, which the caller
/// runs outside any lock.
#[derive(Debug)]
pub struct LoginAttempt {
    /// `None` when no user of that name and role exists.
    username: Option<Username>,
    hash: PasswordHash,
    /// The user's MFA key: the login also needs a signed token.
    mfa_key: Option<ApproverKey>,
    /// The MFA token whose signature the caller checked and found valid.
    mfa_passed: Option<TokenId>,
}

impl LoginAttempt {
    /// The hash the presented password must match.
    pub fn hash(&self) -> &PasswordHash {
        &self.hash
    }

    /// The key an MFA token's signature must verify with, if the user has
    /// MFA on.
    pub fn mfa_key(&self) -> Option<&ApproverKey> {
        self.mfa_key.as_ref()
    }

    /// Records that the signature of MFA token `token` verified.
    pub fn mfa_passed(&mut self, token: TokenId) {
        self.mfa_passed = Some(token);
    }
}

/// An HSM's sync status: HSMs in step have equal digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    pub digest: [u8; 32],
    pub users: usize,
    pub keys: usize,
}

/// Everything `cluster hsm-info` shows.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    pub cluster: ClusterIdentity,
    pub state: ClusterState,
    pub hsms: Vec<HsmIdentity>,
}

#[derive(Debug)]
struct User {
    role: Role,
    hash: PasswordHash,
    failed_logins: u32,
    locked: bool,
    quorum_key: Option<ApproverKey>,
    mfa_key: Option<ApproverKey>,
    /// The token of the create that made this user, until its password
    /// changes: only a retry of that create is answered as done. Kept in
    /// memory only; after a restart a retry is refused, the safe direction.
    created_by: Option<CreateToken>,
}

/// What a password change also removes: `user change-password
/// --deregister-mfa` and `--deregister-quorum`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deregister {
    pub mfa: bool,
    pub quorum: bool,
}

impl Deregister {
    pub fn any(self) -> bool {
        self.mfa || self.quorum
    }
}

/// One HSM.
#[derive(Debug)]
pub struct Hsm {
    cluster: ClusterIdentity,
    hsm: HsmIdentity,
    limits: Limits,
    state: ClusterState,
    users: BTreeMap<Username, User>,
    sessions: Sessions,
    keys: Keys,
    decoy: PasswordHash,
    /// The HSM-wide quorum values.
    quorum: QuorumValues,
    /// Quorum and MFA tokens (memory only).
    tokens: Tokens,
    /// Quorum values changed since the last `take_changes`.
    dirty_quorum: bool,
    /// Users changed since the last `take_changes`.
    dirty_users: BTreeSet<Username>,
    /// Cluster state changed.
    dirty_meta: bool,
    /// Client mTLS trust anchors and enforcement level.
    mtls: Mtls,
    /// `mtls` changed.
    dirty_mtls: bool,
    /// The key-reference counter as last handed to the store: it moves for
    /// session keys too, which are not stored, and must still be saved so
    /// that no reference is handed out twice.
    stored_next_key_ref: u64,
}

/// A user as the store keeps it.
#[derive(Debug, Clone)]
pub struct PersistedUser {
    pub username: Username,
    pub role: Role,
    pub hash: PasswordHash,
    pub failed_logins: u32,
    pub locked: bool,
    pub quorum_key: Option<ApproverKey>,
    pub mfa_key: Option<ApproverKey>,
}

/// HSM-wide state the store keeps beside users and keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistedMeta {
    pub state: ClusterState,
    pub next_key_ref: u64,
}

/// What changed in an HSM since the last `take_changes`: the store writes it
/// in one transaction before the change is acknowledged.
#[derive(Debug, Default)]
pub struct Changes {
    /// `Some` to store, `None` to delete.
    pub users: Vec<(Username, Option<PersistedUser>)>,
    pub keys: Vec<(KeyRef, Option<PersistedKey>)>,
    /// `Some` to store, `None` to delete.
    pub tombstones: Vec<(KeyRef, Option<PersistedTombstone>)>,
    pub meta: Option<PersistedMeta>,
    /// The whole mTLS policy, when it changed.
    pub mtls: Option<Mtls>,
    pub quorum: Option<QuorumValues>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.keys.is_empty()
            && self.tombstones.is_empty()
            && self.meta.is_none()
            && self.mtls.is_none()
            && self.quorum.is_none()
    }
}

/// What a masked object names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskTarget {
    Key(KeyRef),
    User(Username),
}

/// What travels inside a masked object.
#[derive(Debug, Clone)]
pub enum Masked {
    Key(Replica),
    User(PersistedUser),
}

impl Masked {
    pub fn target(&self) -> MaskTarget {
        match self {
            Masked::Key(r) => MaskTarget::Key(r.reference()),
            Masked::User(u) => MaskTarget::User(u.username.clone()),
        }
    }
}

/// Everything the store holds about an HSM's users and keys. Cloning is
/// cheap for keys (their parsed material is shared), so that a snapshot can
/// be kept and reset to more than once.
#[derive(Debug, Clone)]
pub struct PersistedState {
    pub meta: PersistedMeta,
    pub users: Vec<PersistedUser>,
    pub keys: Vec<PersistedKey>,
    pub tombstones: Vec<PersistedTombstone>,
    pub mtls: Mtls,
    pub quorum: QuorumValues,
}

impl Hsm {
    pub fn new(setup: HsmSetup) -> Self {
        let (state, admin_role, admin_hash) = match setup.admin {
            AdminSetup::Unactivated(hash) => (ClusterState::Uninitialized, Role::UnactivatedAdmin, hash),
            AdminSetup::Activated(hash) => (ClusterState::Active, Role::Admin, hash),
        };
        let mut users = BTreeMap::new();
        users.insert(fixed_username(ADMIN_USERNAME), User::new(admin_role, admin_hash));
        users.insert(fixed_username(APPLIANCE_USERNAME), User::new(Role::Appliance, setup.appliance));
        let dirty_users = users.keys().cloned().collect();
        Hsm {
            cluster: setup.cluster,
            hsm: setup.hsm,
            limits: setup.limits,
            state,
            users,
            sessions: Sessions::new(setup.limits.session_idle_timeout, setup.limits.max_sessions),
            keys: Keys::new(setup.limits.keys, setup.key_range),
            decoy: setup.decoy,
            quorum: QuorumValues::default(),
            tokens: Tokens::default(),
            dirty_quorum: false,
            dirty_users,
            dirty_meta: true,
            mtls: Mtls::default(),
            dirty_mtls: true,
            stored_next_key_ref: 0,
        }
    }

    /// An HSM as its store kept it. `setup.admin` and `setup.appliance` are
    /// not used: the stored users are.
    pub fn restore(setup: HsmSetup, stored: PersistedState) -> Self {
        let users = stored.users.into_iter().map(User::from_persisted).collect();
        Hsm {
            cluster: setup.cluster,
            hsm: setup.hsm,
            limits: setup.limits,
            state: stored.meta.state,
            users,
            sessions: Sessions::new(setup.limits.session_idle_timeout, setup.limits.max_sessions),
            keys: Keys::restore(
                setup.limits.keys,
                setup.key_range,
                stored.meta.next_key_ref,
                stored.keys,
                stored.tombstones,
            ),
            decoy: setup.decoy,
            quorum: stored.quorum,
            tokens: Tokens::default(),
            dirty_quorum: false,
            dirty_users: BTreeSet::new(),
            dirty_meta: false,
            mtls: stored.mtls,
            dirty_mtls: false,
            stored_next_key_ref: stored.meta.next_key_ref,
        }
    }

    /// What changed since the last call, for the store.
    pub fn take_changes(&mut self) -> Changes {
        let users = std::mem::take(&mut self.dirty_users)
            .into_iter()
            .map(|name| {
                let stored = self.users.get(&name).map(|u| u.persisted(&name));
                (name, stored)
            })
            .collect();
        let (keys, tombstones) = self.keys.take_dirty();
        let next_key_ref = self.keys.next_ref();
        let meta = (std::mem::take(&mut self.dirty_meta) || next_key_ref != self.stored_next_key_ref)
            .then_some(PersistedMeta { state: self.state, next_key_ref });
        self.stored_next_key_ref = next_key_ref;
        let mtls = std::mem::take(&mut self.dirty_mtls).then(|| self.mtls.clone());
        let quorum = std::mem::take(&mut self.dirty_quorum).then_some(self.quorum);
        Changes { users, keys, tombstones, meta, mtls, quorum }
    }

    /// The users, token keys, tombstones and cluster state as the store
    /// keeps them: a snapshot to [`Hsm::reset`] to later (fault injection's
    /// snapshots and seeds). Sessions and session keys are not part of it.
    pub fn snapshot(&self) -> PersistedState {
        let (keys, tombstones) = self.keys.persisted();
        PersistedState {
            meta: PersistedMeta { state: self.state, next_key_ref: self.keys.next_ref() },
            users: self.users.iter().map(|(name, user)| user.persisted(name)).collect(),
            keys,
            tombstones,
            mtls: self.mtls.clone(),
            quorum: self.quorum,
        }
    }

    /// Replaces the users, keys, tombstones and cluster state with `state`
    /// (a [`Hsm::snapshot`]), closing every session as a reboot would;
    /// returns how many were open. Every user, key and tombstone held before
    /// or after counts as changed, so the next [`Hsm::take_changes`] makes
    /// the store hold exactly `state`, in one transaction.
    pub fn reset(&mut self, state: PersistedState) -> usize {
        let closed = self.end_all_sessions();
        self.dirty_users.extend(self.users.keys().cloned());
        self.users = state.users.into_iter().map(User::from_persisted).collect();
        self.dirty_users.extend(self.users.keys().cloned());
        self.state = state.meta.state;
        self.dirty_meta = true;
        self.quorum = state.quorum;
        self.dirty_quorum = true;
        self.tokens = Tokens::default();
        self.keys.reset(state.meta.next_key_ref, state.keys, state.tombstones);
        self.mtls = state.mtls;
        self.dirty_mtls = true;
        closed
    }

    /// Closes every session, as a reboot does: everyone must log in again
    /// and session keys are gone. Returns how many sessions were open.
    pub fn end_all_sessions(&mut self) -> usize {
        let closed = self.sessions.close_all();
        self.reap();
        closed
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Where clients reach this HSM, known once its listener is bound.
    pub fn set_address(&mut self, address: String) {
        self.hsm.address = address;
    }

    /// Whether the cluster was activated on this HSM: the permission
    /// table's pre-activation identities depend on it.
    pub fn is_activated(&self) -> bool {
        self.state == ClusterState::Active
    }

    pub fn hsm_id(&self) -> &HsmId {
        &self.hsm.id
    }

    pub fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo { cluster: self.cluster.clone(), state: self.state, hsms: vec![self.hsm.clone()] }
    }

    /// A digest over the users (name and role: password hashes are salted per
    /// HSM and lockouts are counted per HSM, so neither is compared) and the
    /// token keys (reference, every attribute including the check value,
    /// owner, shared users), in a length-prefixed canonical order.
    pub fn sync_status(&self) -> SyncStatus {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut put = |bytes: &[u8]| {
            ctx.update(&(bytes.len() as u64).to_be_bytes());
            ctx.update(bytes);
        };
        put(b"hsm-emulator sync status v1");
        put(&(self.users.len() as u64).to_be_bytes());
        for (name, user) in &self.users {
            put(name.as_str().as_bytes());
            put(user.role.to_string().as_bytes());
            // Registered keys must agree across the cluster too (added only
            // when present, so digests of HSMs without them are unchanged).
            for (label, key) in [(&b"quorum key"[..], &user.quorum_key), (b"mfa key", &user.mfa_key)] {
                if let Some(key) = key {
                    put(label);
                    put(key.spki());
                }
            }
        }
        if self.quorum != QuorumValues::default() {
            put(b"quorum values");
            for service in QuorumService::WITH_VALUES {
                put(&[self.quorum.of(service).map_or(1, QuorumValue::get)]);
            }
        }
        let mut keys = 0;
        for (reference, digest) in self.keys.token_digests() {
            keys += 1;
            put(reference.to_string().as_bytes());
            put(&digest);
        }
        put(&(keys as u64).to_be_bytes());
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ctx.finish().as_ref());
        SyncStatus { digest, users: self.users.len(), keys }
    }

    /// Open sessions (idle ones count until they are next swept).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Users locked by failed logins.
    pub fn locked_user_count(&self) -> usize {
        self.users.values().filter(|u| u.locked).count()
    }

    /// Keys by (type, class), as `key list` names them.
    pub fn key_census(&self) -> BTreeMap<(&'static str, &'static str), usize> {
        self.keys.census()
    }

    /// The set of per-key digests behind the sync status: every token key
    /// and every tombstone, with the stamps that say which copy is newer.
    pub fn key_digests(&self) -> Vec<KeyDigest> {
        self.keys.digests()
    }

    /// A token key (or its tombstone) or, for the appliance user (cloning)
    /// and admins (`user replicate`), a user, to be masked and copied to
    /// another HSM of the cluster or of a clone of it. Crypto users take only
    /// keys they own.
    pub fn extract_masked(&self, caller: &Caller, target: &MaskTarget) -> Result<Masked, ModelError> {
        match target {
            MaskTarget::Key(reference) => {
                let owner = if caller.may(Action::CopyAnyKey) { None } else { Some(caller_username(caller)?) };
                Ok(Masked::Key(self.keys.extract(*reference, owner)?))
            }
            MaskTarget::User(name) => {
                copies_users(caller)?;
                let user = self
                    .users
                    .get(name)
                    .ok_or(ModelError::UserNotFound { username: name.clone(), role: Role::CryptoUser })?;
                Ok(Masked::User(PersistedUser { failed_logins: 0, ..user.persisted(name) }))
            }
        }
    }

    /// Takes a masked object's content (already opened and checked to come
    /// from this cluster) if it is new here; returns whether anything
    /// changed. Keys: only when newer than this HSM's copy, owned by the
    /// caller if it is a crypto user, and owned and shared by crypto users
    /// this HSM knows. Users (appliance user and admins): only where no user
    /// of that name exists, never over one, except that a new, unactivated
    /// HSM takes the cluster's admin in place of its precrypto officer and
    /// becomes active.
    pub fn insert_masked(&mut self, caller: &Caller, object: Masked) -> Result<bool, ModelError> {
        match object {
            Masked::Key(replica) => {
                let reference = replica.reference();
                if !caller.may(Action::CopyAnyKey) && replica.owner() != caller_username(caller)? {
                    return Err(ModelError::KeyPermission {
                        reference,
                        rule: "a crypto user inserts only keys it owns".into(),
                    });
                }
                if let Replica::Key(key) = &replica {
                    // `key replicate` from a non-FIPS cluster to a FIPS clone.
                    self.permit_kind(key.material.kind())?;
                    for user in std::iter::once(&key.owner).chain(&key.shared) {
                        if !self.is_crypto_user(user) {
                            return Err(ModelError::InvalidArgument {
                                field: "masked_object",
                                rule: format!(
                                    "{reference} belongs to or is shared with '{user}', who is not a crypto user \
                                     on this HSM; create the user here first (user list shows it as inconsistent)"
                                ),
                            });
                        }
                    }
                }
                self.keys.insert_replica(replica)
            }
            Masked::User(user) => {
                copies_users(caller)?;
                let activating = user.role == Role::Admin
                    && self.state == ClusterState::Uninitialized
                    && self.users.get(&user.username).is_some_and(|u| u.role == Role::UnactivatedAdmin);
                if self.users.contains_key(&user.username) && !activating {
                    return Ok(false);
                }
                if !matches!(user.role, Role::Admin | Role::CryptoUser) {
                    return Err(ModelError::InvalidArgument {
                        field: "masked_object",
                        rule: format!(
                            "user '{}' has role {}; only admins and crypto users are copied",
                            user.username, user.role
                        ),
                    });
                }
                if !activating && self.users.len() >= self.limits.max_users {
                    return Err(ModelError::TooManyUsers { max: self.limits.max_users });
                }
                if activating {
                    // The precrypto officer's sessions end with it.
                    self.sessions.close_user(&user.username);
                    self.reap();
                    self.state = ClusterState::Active;
                    self.dirty_meta = true;
                }
                let mut copied = User::new(user.role, user.hash);
                copied.locked = user.locked;
                copied.quorum_key = user.quorum_key;
                copied.mfa_key = user.mfa_key;
                self.dirty_users.insert(user.username.clone());
                self.users.insert(user.username, copied);
                Ok(true)
            }
        }
    }

    /// Establishes who presents `token` and checks the permission table for
    /// `operation`: the single gate every call passes before its handler.
    pub fn admit(&mut self, operation: Operation, token: Option<&str>, now: Instant) -> Result<Caller, ModelError> {
        let caller = match token {
            None => Caller { identity: Identity::Unauthenticated, session: None },
            Some(token) => {
                let touched = self.sessions.touch(token, now).map(|(id, user)| (id, user.clone()));
                self.reap();
                let (id, username) = touched
                    .map_err(|rejection| ModelError::InvalidSession { operation, reason: rejection.reason() })?;
                let Some(user) = self.users.get(&username) else {
                    // Users with sessions are never deleted; close it to be safe.
                    self.sessions.close(id);
                    self.reap();
                    return Err(ModelError::InvalidSession { operation, reason: "for a deleted user" });
                };
                Caller { identity: user.role.identity(self.is_activated()), session: Some((id, username)) }
            }
        };
        authorize(operation, caller.identity)?;
        Ok(caller)
    }

    /// The caller a token names, without asking the permission table: what
    /// the audit log records about a refused call. `None` when the token
    /// opens no session.
    pub fn identify(&mut self, token: &str, now: Instant) -> Option<Caller> {
        let (id, username) = self.sessions.touch(token, now).ok()?;
        let username = username.clone();
        let identity = self.users.get(&username)?.role.identity(self.is_activated());
        Some(Caller { identity, session: Some((id, username)) })
    }

    /// A session's audit number (see [`Sessions::number`]).
    pub fn session_number(&self, id: SessionId) -> Option<u64> {
        self.sessions.number(id)
    }

    /// Sets the precrypto officer's password and makes it the cluster's first
    /// admin; the caller's session continues as that admin.
    pub fn activate(&mut self, caller: &Caller, new_hash: PasswordHash) -> Result<UserView, ModelError> {
        if self.state == ClusterState::Active {
            return Err(ModelError::AlreadyActivated);
        }
        let username = caller_username(caller)?;
        let user = self.users.get_mut(username).ok_or_else(|| internal("caller has no user"))?;
        if user.role != Role::UnactivatedAdmin {
            return Err(ModelError::AlreadyActivated);
        }
        user.role = Role::Admin;
        user.set_password(new_hash);
        self.state = ClusterState::Active;
        let shown = view(username, user);
        self.dirty_users.insert(username.clone());
        self.dirty_meta = true;
        Ok(shown)
    }

    /// First step of a login: the hash to verify the password against. Unknown
    /// users and wrong roles get the decoy hash, so the check costs the same.
    pub fn login_attempt(&self, username: &Username, role: Role) -> Result<LoginAttempt, ModelError> {
        match self.users.get(username) {
            Some(user) if user.role.accepts_login_as(role) => {
                if user.locked {
                    return Err(ModelError::UserLocked { username: username.clone() });
                }
                Ok(LoginAttempt {
                    username: Some(username.clone()),
                    hash: user.hash.clone(),
                    mfa_key: user.mfa_key.clone(),
                    mfa_passed: None,
                })
            }
            _ => Ok(LoginAttempt { username: None, hash: self.decoy.clone(), mfa_key: None, mfa_passed: None }),
        }
    }

    /// Second step of a login: records the outcome of the password check and,
    /// if it passed, opens a session. More than [`MAX_FAILED_LOGINS`] failures
    /// in a row lock the user.
    pub fn finish_login(
        &mut self,
        attempt: LoginAttempt,
        password_ok: bool,
        now: Instant,
        rng: &mut impl CryptoRng,
    ) -> Result<(SessionToken, UserView), ModelError> {
        let Some(username) = attempt.username else {
            return Err(ModelError::LoginFailed);
        };
        let user = self.users.get_mut(&username).ok_or(ModelError::LoginFailed)?;
        if user.hash != attempt.hash {
            // The password changed while this attempt was being checked.
            return Err(ModelError::LoginFailed);
        }
        if user.locked {
            return Err(ModelError::UserLocked { username });
        }
        // With MFA on, the second factor must have passed on a token this
        // HSM still holds for this user's login; using it spends it.
        let second_factor_ok = match (&user.mfa_key, attempt.mfa_passed) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(_), Some(token)) => {
                self.tokens.find(&token, &Purpose::MfaLogin, &username, now).is_ok() && self.tokens.remove(&token)
            }
        };
        let user = self.users.get_mut(&username).ok_or(ModelError::LoginFailed)?;
        if !password_ok || !second_factor_ok {
            user.failed_logins = user.failed_logins.saturating_add(1);
            if user.failed_logins > MAX_FAILED_LOGINS {
                user.locked = true;
            }
            self.dirty_users.insert(username);
            return Err(ModelError::LoginFailed);
        }
        if user.failed_logins != 0 {
            user.failed_logins = 0;
            self.dirty_users.insert(username.clone());
        }
        let shown = view(&username, user);
        let (_, token) =
            self.sessions.open(username, now, rng).ok_or(ModelError::TooManySessions { max: self.sessions.max() })?;
        Ok((token, shown))
    }

    pub fn logout(&mut self, caller: &Caller) -> Result<(), ModelError> {
        let (id, _) = caller.session.as_ref().ok_or_else(|| internal("logout without a session"))?;
        self.sessions.close(*id);
        self.reap();
        Ok(())
    }

    /// Creates a user. A user of that name (in any case) is refused and left
    /// as it is, unless `token` is the one it was created with and the role
    /// is the same: then this is a retry of that create, answered as done
    /// with nothing written.
    pub fn create_user(
        &mut self,
        username: Username,
        role: Role,
        hash: PasswordHash,
        token: Option<CreateToken>,
    ) -> Result<UserView, ModelError> {
        if !matches!(role, Role::Admin | Role::CryptoUser) {
            return Err(ModelError::InvalidArgument { field: "role", rule: "must be admin or crypto-user".into() });
        }
        if let Some(existing) = self.users.get(&username) {
            let same_create = match (&existing.created_by, &token) {
                (Some(made_by), Some(token)) => made_by.matches(token) && existing.role == role,
                _ => false,
            };
            return if same_create { Ok(view(&username, existing)) } else { Err(ModelError::UserExists { username }) };
        }
        if self.users.len() >= self.limits.max_users {
            return Err(ModelError::TooManyUsers { max: self.limits.max_users });
        }
        let mut user = User::new(role, hash);
        user.created_by = token;
        let shown = view(&username, &user);
        self.dirty_users.insert(username.clone());
        self.users.insert(username, user);
        Ok(shown)
    }

    pub fn delete_user(&mut self, username: &Username, role: Role, now: Instant) -> Result<UserView, ModelError> {
        let user = self.user_with_role(username, role)?;
        if user.role == Role::Appliance {
            return Err(ModelError::ApplianceUserFixed { username: username.clone() });
        }
        if user.role == Role::Admin && self.users.values().filter(|u| u.role == Role::Admin).count() == 1 {
            return Err(ModelError::LastAdmin { username: username.clone() });
        }
        if self.sessions.is_logged_in(username, now) {
            return Err(ModelError::UserLoggedIn { username: username.clone() });
        }
        self.approver_may_go("username", username, user)?;
        let count = self.keys.owned_by(username);
        if count > 0 {
            return Err(ModelError::UserOwnsKeys { username: username.clone(), count });
        }
        let shown = view(username, user);
        self.users.remove(username);
        self.keys.forget_user(username);
        self.dirty_users.insert(username.clone());
        Ok(shown)
    }

    /// Every user, sorted by name.
    pub fn list_users(&self) -> Vec<UserView> {
        self.users.iter().map(|(name, user)| view(name, user)).collect()
    }

    /// A user sets their own password, and may drop their own MFA or
    /// quorum key with it.
    pub fn change_own_password(
        &mut self,
        caller: &Caller,
        hash: PasswordHash,
        deregister: Deregister,
    ) -> Result<UserView, ModelError> {
        let username = caller_username(caller)?.clone();
        self.set_password(&username, hash, deregister, false)
    }

    /// An admin sets anyone's password; this also unlocks the user.
    pub fn change_user_password(
        &mut self,
        username: &Username,
        role: Role,
        hash: PasswordHash,
        deregister: Deregister,
    ) -> Result<UserView, ModelError> {
        self.user_with_role(username, role)?;
        self.set_password(username, hash, deregister, true)
    }

    fn set_password(
        &mut self,
        username: &Username,
        hash: PasswordHash,
        deregister: Deregister,
        unlock: bool,
    ) -> Result<UserView, ModelError> {
        let user = self.users.get(username).ok_or_else(|| internal("user vanished"))?;
        if deregister.quorum {
            self.approver_may_go("deregister_quorum", username, user)?;
        }
        let user = self.users.get_mut(username).ok_or_else(|| internal("user vanished"))?;
        user.set_password(hash);
        if unlock {
            user.locked = false;
            user.failed_logins = 0;
        }
        if deregister.mfa {
            user.mfa_key = None;
        }
        if deregister.quorum {
            user.quorum_key = None;
        }
        let shown = view(username, user);
        self.dirty_users.insert(username.clone());
        Ok(shown)
    }

    /// Quorum values above 1 need that many admins with registered keys:
    /// deleting one of them, or dropping their key, must not lock user
    /// management for good.
    fn approver_may_go(&self, field: &'static str, username: &Username, user: &User) -> Result<(), ModelError> {
        let approver =
            Action::ApproveAdminServices.allowed().admits(user.role.identity(self.is_activated()), Some(username));
        if !approver || user.quorum_key.is_none() {
            return Ok(());
        }
        let approvers = self.admin_approvers();
        let needed = QuorumService::WITH_VALUES.iter().filter_map(|s| self.quorum.of(*s)).map(QuorumValue::get).max();
        match needed.filter(|n| *n > 1 && usize::from(*n) > approvers - 1) {
            Some(needed) => Err(ModelError::InvalidArgument {
                field,
                rule: format!(
                    "'{username}' is one of the {approvers} admins with a quorum key, and a quorum value of {needed} \
                     needs them; lower the quorum value first"
                ),
            }),
            None => Ok(()),
        }
    }

    /// Closes idle sessions; returns how many.
    pub fn expire_sessions(&mut self, now: Instant) -> usize {
        let closed = self.sessions.expire(now);
        self.reap();
        closed
    }

    /// Drops what lived with sessions that have ended: their session keys.
    fn reap(&mut self) {
        let ended = self.sessions.drain_ended();
        if !ended.is_empty() {
            self.keys.end_sessions(&ended);
        }
    }

    /// Refuses to make or use a key of `kind` that the cluster's mode does
    /// not allow (triple DES on a FIPS cluster).
    pub fn permit_kind(&self, kind: KeyKind) -> Result<(), ModelError> {
        self.permit_des3(kind == KeyKind::Des3, "a triple DES (DES3) key")
    }

    /// Refuses a cipher that the cluster's mode does not allow.
    pub fn permit_cipher(&self, cipher: Cipher) -> Result<(), ModelError> {
        let des3 = matches!(cipher, Cipher::Des3Ecb | Cipher::Des3Cbc | Cipher::Des3CbcPad);
        self.permit_des3(des3, "a triple DES (DES3) mechanism")
    }

    fn permit_des3(&self, des3: bool, what: &'static str) -> Result<(), ModelError> {
        if des3 && !self.cluster.mode.permits_des3() {
            return Err(ModelError::FipsMode { what });
        }
        Ok(())
    }

    /// Stores new keys for the caller: one key, or a pair (public first,
    /// then private). `session` keys live only as long as the caller's
    /// session. `share_with` names crypto users who may use the secret or
    /// private key.
    pub fn store_keys(
        &mut self,
        caller: &Caller,
        session: bool,
        new: Vec<NewKey>,
        share_with: &[Username],
    ) -> Result<Vec<KeyView>, ModelError> {
        let (session_id, owner) = caller.session.as_ref().ok_or_else(|| internal("key creation without a session"))?;
        for user in share_with {
            if !self.is_crypto_user(user) {
                return Err(ModelError::InvalidArgument {
                    field: "share_with",
                    rule: format!("'{user}' is not a crypto user; keys are shared only with crypto users"),
                });
            }
        }
        for key in &new {
            self.permit_kind(key.material.kind())?;
        }
        let owner = owner.clone();
        let mut views = self.keys.insert(&owner, session.then_some(*session_id), new)?;
        if !share_with.is_empty() {
            let actor = Actor { user: &owner, identity: caller.identity };
            for view in views.iter_mut().filter(|v| v.facts.class != crate::crypto::KeyClass::Public) {
                for user in share_with {
                    *view = self.keys.share(actor, view.reference, user.clone(), true)?;
                }
            }
        }
        Ok(views)
    }

    /// A key's material for `usage`. Signing with a key that has a use
    /// quorum value needs an approval: see [`Hsm::key_for_approved_use`].
    pub fn key_for_use(
        &self,
        caller: &Caller,
        reference: KeyRef,
        usage: Usage,
    ) -> Result<Arc<KeyMaterial>, ModelError> {
        let material = self.keys.for_use(actor(caller)?, reference, usage)?;
        self.permit_kind(material.kind())?;
        let quorum = self.keys.quorum(reference);
        if (usage == Usage::Sign && quorum.usage > 1) || (usage == Usage::Unwrap && quorum.manage > 1) {
            return Err(ModelError::QuorumRequired);
        }
        Ok(material)
    }

    /// As [`Hsm::key_for_use`], inside [`Hsm::spend_key_approval`], which
    /// checked the approval.
    pub fn key_for_approved_use(
        &self,
        caller: &Caller,
        reference: KeyRef,
        usage: Usage,
    ) -> Result<Arc<KeyMaterial>, ModelError> {
        let material = self.keys.for_use(actor(caller)?, reference, usage)?;
        self.permit_kind(material.kind())?;
        Ok(material)
    }

    /// The wrapping key and the key it wraps. Wrapping a key with a manage
    /// quorum value needs an approval: see [`Hsm::keys_for_approved_wrap`].
    pub fn keys_for_wrap(
        &self,
        caller: &Caller,
        wrapping: KeyRef,
        target: KeyRef,
    ) -> Result<(Arc<KeyMaterial>, Arc<KeyMaterial>), ModelError> {
        let keys = self.keys.for_wrap(actor(caller)?, wrapping, target)?;
        if self.keys.quorum(target).manage > 1 {
            return Err(ModelError::QuorumRequired);
        }
        Ok(keys)
    }

    /// As [`Hsm::keys_for_wrap`], inside [`Hsm::spend_key_approval`].
    pub fn keys_for_approved_wrap(
        &self,
        caller: &Caller,
        wrapping: KeyRef,
        target: KeyRef,
    ) -> Result<(Arc<KeyMaterial>, Arc<KeyMaterial>), ModelError> {
        self.keys.for_wrap(actor(caller)?, wrapping, target)
    }

    pub fn public_key(&self, caller: &Caller, reference: KeyRef) -> Result<Arc<KeyMaterial>, ModelError> {
        self.keys.for_public_export(actor(caller)?, reference)
    }

    pub fn delete_key(&mut self, caller: &Caller, reference: KeyRef) -> Result<KeyView, ModelError> {
        self.keys.delete(actor(caller)?, reference)
    }

    pub fn share_key(&mut self, caller: &Caller, reference: KeyRef, with: Username) -> Result<KeyView, ModelError> {
        let is_cu = self.is_crypto_user(&with);
        self.keys.share(actor(caller)?, reference, with, is_cu)
    }

    pub fn unshare_key(&mut self, caller: &Caller, reference: KeyRef, with: &Username) -> Result<KeyView, ModelError> {
        self.keys.unshare(actor(caller)?, reference, with)
    }

    pub fn set_key_attribute(
        &mut self,
        caller: &Caller,
        reference: KeyRef,
        name: AttrName,
        value: &str,
    ) -> Result<KeyView, ModelError> {
        self.keys.set_attribute(actor(caller)?, reference, name, value)
    }

    pub fn list_keys(&self, caller: &Caller, query: &KeyQuery) -> Result<KeyPage, ModelError> {
        self.keys.list(actor(caller)?, query)
    }

    /// The client mTLS policy (trust anchors, enforcement level).
    pub fn mtls(&self) -> &Mtls {
        &self.mtls
    }

    /// Registers a client trust anchor (`cluster mtls register-trust-anchor`).
    pub fn register_trust_anchor(&mut self, cert: AnchorCert) -> Result<TrustAnchor, ModelError> {
        let anchor = self.mtls.register(cert)?;
        self.dirty_mtls = true;
        Ok(anchor)
    }

    /// `cluster mtls deregister-trust-anchor`.
    pub fn deregister_trust_anchor(&mut self, reference: AnchorRef) -> Result<TrustAnchor, ModelError> {
        let anchor = self.mtls.deregister(reference)?;
        self.dirty_mtls = true;
        Ok(anchor)
    }

    /// `cluster mtls set-enforcement`: [`Action::SetMtlsEnforcement`] (the
    /// user named `admin`), and only over a connection whose client
    /// certificate chains to a registered trust anchor (`over_anchored_mtls`,
    /// which the service layer verified), so that whoever turns enforcement
    /// on has shown that a client can still get in.
    pub fn set_mtls_enforcement(
        &mut self,
        caller: &Caller,
        level: Enforcement,
        over_anchored_mtls: bool,
    ) -> Result<(), ModelError> {
        if !caller.may(Action::SetMtlsEnforcement) {
            return Err(ModelError::ObjectPermission {
                rule: format!("only the user named '{ADMIN_USERNAME}' may set the mTLS enforcement level"),
            });
        }
        if !over_anchored_mtls {
            return Err(ModelError::ObjectPermission {
                rule: "the mTLS enforcement level can be set only over a connection that presented a client \
                       certificate chained to a registered trust anchor (hsm-cli --client-cert-hsm-tls-file, \
                       --client-key-hsm-tls-file)"
                    .into(),
            });
        }
        if self.mtls.enforcement() != level {
            self.mtls.set_enforcement(level);
            self.dirty_mtls = true;
        }
        Ok(())
    }

    /// Takes a peer's mTLS policy whole (cloning a new HSM, as CloudHSM
    /// clones an HSM's policies): [`Action::ReplaceMtlsPolicy`].
    pub fn replace_mtls(&mut self, caller: &Caller, mtls: Mtls) -> Result<bool, ModelError> {
        if !caller.may(Action::ReplaceMtlsPolicy) {
            return Err(ModelError::ObjectPermission {
                rule: "an HSM's mTLS policy is copied whole only by the appliance user (cloning)".into(),
            });
        }
        if self.mtls == mtls {
            return Ok(false);
        }
        self.mtls = mtls;
        self.dirty_mtls = true;
        Ok(true)
    }

    fn is_crypto_user(&self, user: &Username) -> bool {
        self.users.get(user).is_some_and(|u| u.role == Role::CryptoUser)
    }

    fn user_with_role(&self, username: &Username, role: Role) -> Result<&User, ModelError> {
        match self.users.get(username) {
            Some(user) if user.role.accepts_login_as(role) => Ok(user),
            _ => Err(ModelError::UserNotFound { username: username.clone(), role }),
        }
    }
}

impl User {
    fn new(role: Role, hash: PasswordHash) -> Self {
        User { role, hash, failed_logins: 0, locked: false, quorum_key: None, mfa_key: None, created_by: None }
    }

    fn from_persisted(u: PersistedUser) -> (Username, Self) {
        let user = User {
            role: u.role,
            hash: u.hash,
            failed_logins: u.failed_logins,
            locked: u.locked,
            quorum_key: u.quorum_key,
            mfa_key: u.mfa_key,
            created_by: None,
        };
        (u.username, user)
    }

    fn persisted(&self, name: &Username) -> PersistedUser {
        PersistedUser {
            username: name.clone(),
            role: self.role,
            hash: self.hash.clone(),
            failed_logins: self.failed_logins,
            locked: self.locked,
            quorum_key: self.quorum_key.clone(),
            mfa_key: self.mfa_key.clone(),
        }
    }

    fn set_password(&mut self, hash: PasswordHash) {
        self.hash = hash;
        self.failed_logins = 0;
        // A later retry of the create must not pass for the current state.
        self.created_by = None;
    }
}

fn view(username: &Username, user: &User) -> UserView {
    UserView {
        username: username.clone(),
        role: user.role,
        locked: user.locked,
        quorum: user.quorum_key.is_some(),
        mfa: user.mfa_key.is_some(),
    }
}

/// The caller as the key rules see it.
fn actor(caller: &Caller) -> Result<Actor<'_>, ModelError> {
    let user = caller_username(caller)?;
    Ok(Actor { user, identity: caller.identity })
}

/// Users travel as masked objects when the appliance user clones an HSM and
/// when an admin replicates a user to a cloned cluster (`user replicate`).
fn copies_users(caller: &Caller) -> Result<(), ModelError> {
    if caller.may(Action::CopyUsers) {
        return Ok(());
    }
    Err(ModelError::ObjectPermission {
        rule: "users are copied only by the appliance user (cloning) and admins (user replicate); use user create"
            .into(),
    })
}

fn caller_username(caller: &Caller) -> Result<&Username, ModelError> {
    caller.session.as_ref().map(|(_, name)| name).ok_or_else(|| internal("operation needs a logged-in caller"))
}

fn internal(what: &str) -> ModelError {
    ModelError::Internal(what.to_owned())
}

/// `admin` and `app_user` are valid usernames by construction.
fn fixed_username(name: &'static str) -> Username {
    match Username::parse("username", name) {
        Ok(u) => u,
        Err(_) => unreachable!("{name} is a valid username"),
    }
}

#[cfg(test)]
mod tests;
