//! Logins and sessions: the two-step password check, failed-login lockout,
//! the MFA second factor, and [`Hsm::admit`], the gate that names the caller
//! of every call and asks the permission table.

use std::time::Instant;

use rand::CryptoRng;

use super::{
    ApproverKey, Caller, Hsm, Identity, ModelError, Operation, PasswordHash, Role, SessionId, SessionToken, TokenId,
    UserView, Username, authorize, internal, quorum::Purpose, users::view,
};

/// Failed logins in a row that a user survives; one more locks the user.
pub const MAX_FAILED_LOGINS: u32 = 5;

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

impl Hsm {
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

    /// Closes idle sessions; returns how many.
    pub fn expire_sessions(&mut self, now: Instant) -> usize {
        let closed = self.sessions.expire(now);
        self.reap();
        closed
    }

    /// Closes every session, as a reboot does: everyone must log in again
    /// and session keys are gone. Returns how many sessions were open.
    pub fn end_all_sessions(&mut self) -> usize {
        let closed = self.sessions.close_all();
        self.reap();
        closed
    }

    /// Drops what lived with sessions that have ended: their session keys.
    pub(super) fn reap(&mut self) {
        let ended = self.sessions.drain_ended();
        if !ended.is_empty() {
            self.keys.end_sessions(&ended);
        }
    }
}
