//! Masked objects: token keys (or their tombstones) and users as they are
//! copied between the HSMs of a cluster and to clones of it. Sealing them is
//! the store's (`store::Masker`); here are the rules for taking them out and
//! letting them in.

use super::{
    Action, Caller, ClusterState, Hsm, KeyRef, ModelError, Replica, Role, Username, caller_username,
    users::{PersistedUser, User},
};

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

impl Hsm {
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
