//! Users: creating, deleting and listing them, their passwords, and the
//! cluster's activation, which makes the precrypto officer its first admin.

use std::time::Instant;

use super::{
    Action, ApproverKey, Caller, ClusterState, CreateToken, Hsm, ModelError, PasswordHash, QuorumService, QuorumValue,
    Role, Username, caller_username, internal,
};

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

#[derive(Debug)]
pub(super) struct User {
    pub(super) role: Role,
    pub(super) hash: PasswordHash,
    pub(super) failed_logins: u32,
    pub(super) locked: bool,
    pub(super) quorum_key: Option<ApproverKey>,
    pub(super) mfa_key: Option<ApproverKey>,
    /// The token of the create that made this user, until its password
    /// changes: only a retry of that create is answered as done. Kept in
    /// memory only; after a restart a retry is refused, the safe direction.
    pub(super) created_by: Option<CreateToken>,
}

impl User {
    pub(super) fn new(role: Role, hash: PasswordHash) -> Self {
        User { role, hash, failed_logins: 0, locked: false, quorum_key: None, mfa_key: None, created_by: None }
    }

    pub(super) fn from_persisted(u: PersistedUser) -> (Username, Self) {
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

    pub(super) fn persisted(&self, name: &Username) -> PersistedUser {
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

pub(super) fn view(username: &Username, user: &User) -> UserView {
    UserView {
        username: username.clone(),
        role: user.role,
        locked: user.locked,
        quorum: user.quorum_key.is_some(),
        mfa: user.mfa_key.is_some(),
    }
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

impl Hsm {
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

    pub(super) fn is_crypto_user(&self, user: &Username) -> bool {
        self.users.get(user).is_some_and(|u| u.role == Role::CryptoUser)
    }

    pub(super) fn user_with_role(&self, username: &Username, role: Role) -> Result<&User, ModelError> {
        match self.users.get(username) {
            Some(user) if user.role.accepts_login_as(role) => Ok(user),
            _ => Err(ModelError::UserNotFound { username: username.clone(), role }),
        }
    }
}
