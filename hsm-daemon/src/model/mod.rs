//! The HSM itself: identity, users, sessions, keys and the permission table.
//!
//! Pure: no tokio, tonic or I/O. Time (`now`) and randomness (`rng`) are
//! passed in, and password hashing is a separate step the caller runs off the
//! async workers, so every rule here can be tested alone and deterministically.
//!
//! # Layout
//! - [`permissions`]: the permission table: who may call each operation, and
//!   who may do the narrower things the model asks about inside some.
//! - [`role`]: user roles and the identities the table speaks of.
//! - [`credentials`]: usernames, passwords, Argon2id hashes and their cost.
//! - [`session`]: bearer tokens, idle expiry.
//! - [`identity`]: cluster and HSM identity.
//! - [`keys`]: keys, their attributes, owners, shares, quotas and listing.
//! - [`mtls`]: client mTLS trust anchors and the enforcement level, and the
//!   HSM's mTLS operations.
//! - [`quorum`]: quorum values, registered approver and MFA keys, and the
//!   tokens approvers sign (quorum approvals, MFA logins).
//! - [`error`]: [`ModelError`], one variant per HSM outcome.
//! - This file: [`Hsm`], the aggregate whose methods are the HSM's
//!   operations, with its setup, cluster info and sync status. Its other
//!   operations live with their concern:
//!   - `login`: logins, sessions and [`Hsm::admit`], the gate every call
//!     passes.
//!   - `users`: creating, deleting and listing users, passwords, activation.
//!   - `key_operations`: the key rules applied to a caller.
//!   - `masked`: masked objects (copying keys and users between HSMs).
//!   - `approvals`: quorum tokens, approvals, MFA and approver keys.
//!   - `state`: what the store keeps: changes, snapshots, restoring.

mod approvals;
pub mod credentials;
pub mod error;
pub mod identity;
mod key_operations;
pub mod keys;
mod login;
mod masked;
pub mod mtls;
pub mod permissions;
pub mod quorum;
pub mod role;
pub mod session;
mod state;
mod users;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use self::{keys::Keys, quorum::Tokens, users::User};

pub use self::{
    credentials::{CreateToken, KdfParams, Password, PasswordHash, Username},
    error::ModelError,
    identity::{ClusterId, ClusterIdentity, ClusterMode, ClusterState, HsmId, HsmIdentity, HsmType},
    key_operations::KeyCreation,
    keys::{
        AttrName, Attributes, KeyDigest, KeyPage, KeyQuery, KeyQuorum, KeyQuotas, KeyRange, KeyRef, KeyView, NewKey,
        PersistedKey, PersistedTombstone, Replica, Stamp, Template, Usage,
    },
    login::{LoginAttempt, MAX_FAILED_LOGINS},
    masked::{MaskTarget, Masked},
    mtls::{AnchorCert, AnchorRef, Enforcement, Mtls, TrustAnchor},
    permissions::{Action, Operation, Who, authorize},
    quorum::{
        Approval, ApproverKey, IssuedToken, PendingApproval, QuorumService, QuorumValue, QuorumValues, TokenId,
        TokenView, VerifiedApproval,
    },
    role::{Identity, Role},
    session::{SessionId, SessionToken, Sessions},
    state::{Changes, PersistedMeta, PersistedState},
    users::{Deregister, PersistedUser, UserView},
};

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
