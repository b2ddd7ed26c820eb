//! The HSM's quorum and MFA operations: issuing tokens, checking and
//! spending approvals, quorum values, and registering approver and MFA keys.
//! (The token table and key types are in [`super::quorum`].)
//!
//! Every check that needs an RSA signature is split in two around the
//! model's lock: a first step here finds the token's preimage and the keys,
//! the caller verifies outside the lock, and a second step here re-checks
//! that the token is still live and spends it with the change it approves.

use std::{collections::BTreeMap, time::Instant};

use rand::CryptoRng;

use super::{
    Action, Caller, Hsm, KeyRef, ModelError, Role, UserView, Username, caller_username, internal,
    key_operations::actor,
    quorum::{
        Approval, ApproverKey, IssuedToken, PendingApproval, Purpose, QuorumService, QuorumValue, QuorumValues,
        TokenId, TokenView, VerifiedApproval, preimages, sha256,
    },
    users::view,
};

impl Hsm {
    /// Issues a quorum token for `service` to the caller: who may ask for
    /// which is [`Action::quorum_token`]'s row.
    pub fn issue_quorum_token(
        &mut self,
        caller: &Caller,
        service: QuorumService,
        now: Instant,
        rng: &mut impl CryptoRng,
    ) -> Result<IssuedToken, ModelError> {
        let username = caller_username(caller)?.clone();
        let action = Action::quorum_token(service);
        if !caller.may(action) {
            return Err(ModelError::ObjectPermission {
                rule: format!("quorum tokens for the {service} service are for {}", action.allowed()),
            });
        }
        self.tokens.issue(Purpose::Quorum(service), &username, self.hsm.id.as_str(), now, rng)
    }

    /// Every live quorum token, oldest first.
    pub fn list_quorum_tokens(&mut self, now: Instant) -> Vec<TokenView> {
        let values = self.quorum;
        self.tokens.list(now, |service| values.of(service).map_or(1, QuorumValue::get))
    }

    /// Deletes the caller's quorum tokens, or (`all`:
    /// [`Action::DeleteEveryonesQuorumTokens`]) every user's. Returns how
    /// many.
    pub fn delete_quorum_tokens(&mut self, caller: &Caller, all: bool) -> Result<usize, ModelError> {
        if all && !caller.may(Action::DeleteEveryonesQuorumTokens) {
            return Err(ModelError::ObjectPermission { rule: "only admins delete every user's tokens".into() });
        }
        let username = caller_username(caller)?;
        Ok(self.tokens.delete((!all).then_some(username)))
    }

    /// Deletes one of the caller's quorum tokens; whether it was there.
    pub fn delete_quorum_token(&mut self, caller: &Caller, token: &TokenId) -> Result<bool, ModelError> {
        let username = caller_username(caller)?;
        Ok(self.tokens.delete_one(token, username))
    }

    /// Deletes the caller's tokens among `approval_data`'s preimages (what
    /// a client does with the other HSMs' tokens of a cluster approval that
    /// one HSM used). Returns how many.
    pub fn delete_quorum_tokens_among(&mut self, caller: &Caller, approval_data: &[u8]) -> Result<usize, ModelError> {
        let username = caller_username(caller)?;
        let ids: Vec<TokenId> = preimages("approval_data", approval_data)?.into_iter().map(sha256).collect();
        Ok(ids.iter().filter(|id| self.tokens.delete_one(id, username)).count())
    }

    pub fn quorum_values(&self) -> QuorumValues {
        self.quorum
    }

    /// Sets a service's quorum value (the call is itself approved through
    /// the `quorum` service). A value above 1 needs that many admins with a
    /// registered quorum key, so that the admins cannot lock themselves out.
    pub fn set_quorum_value(&mut self, service: QuorumService, value: QuorumValue) -> Result<QuorumValues, ModelError> {
        let approvers = self.admin_approvers();
        if usize::from(value.get()) > approvers.max(1) {
            return Err(ModelError::InvalidArgument {
                field: "value",
                rule: format!(
                    "{} approvals would need {} admins with a registered quorum key, and {approvers} have one \
                     (user change-quorum token-sign register)",
                    value.get(),
                    value.get()
                ),
            });
        }
        let mut values = self.quorum;
        values.set(service, value)?;
        if values != self.quorum {
            self.quorum = values;
            self.dirty_quorum = true;
        }
        Ok(values)
    }

    /// Takes a cluster peer's quorum values (cloning a new HSM).
    pub fn adopt_quorum_values(&mut self, values: QuorumValues) {
        if values != self.quorum {
            self.quorum = values;
            self.dirty_quorum = true;
        }
    }

    /// First step of a quorum-gated call: `None` when `service` needs no
    /// approval; otherwise the approval's token and approvers, whose
    /// signatures the caller verifies next ([`PendingApproval::verify`]).
    /// Each approver counts once; approvers of admin services are admins.
    pub fn quorum_check(
        &mut self,
        caller: &Caller,
        service: QuorumService,
        approval: Option<Approval>,
        now: Instant,
    ) -> Result<Option<PendingApproval>, ModelError> {
        let required = self.required(service);
        self.check_approval(caller, service, required, None, approval, now)
    }

    /// As [`Hsm::quorum_check`], for the key-management or key-usage
    /// service of one key: its own quorum value, approved by its owner and
    /// the users it is shared with.
    pub fn key_quorum_check(
        &mut self,
        caller: &Caller,
        reference: KeyRef,
        service: QuorumService,
        approval: Option<Approval>,
        now: Instant,
    ) -> Result<Option<PendingApproval>, ModelError> {
        let (quorum, associated) = self.keys.approvers(actor(caller)?, reference)?;
        self.check_approval(caller, service, quorum.required(service), Some(&associated), approval, now)
    }

    /// The approval check: admins approve admin services (`associated`
    /// `None`), a key's owner and shared users its services.
    fn check_approval(
        &mut self,
        caller: &Caller,
        service: QuorumService,
        required: u8,
        associated: Option<&[Username]>,
        approval: Option<Approval>,
        now: Instant,
    ) -> Result<Option<PendingApproval>, ModelError> {
        if required <= 1 {
            return Ok(None);
        }
        let approval = approval.ok_or(ModelError::QuorumRequired)?;
        let requester = caller_username(caller)?;
        let (ids, signed_over) = approval.candidates()?;
        let (token, own) = self.tokens.find_among(&ids, &Purpose::Quorum(service), requester, now)?;
        let preimage = signed_over.map_or(own, <[u8]>::to_vec);
        let mut distinct: BTreeMap<Username, Vec<u8>> = BTreeMap::new();
        for (username, signature) in approval.signatures {
            distinct.entry(username).or_insert(signature);
        }
        let mut signers = Vec::with_capacity(distinct.len());
        for (username, signature) in distinct {
            let refuse = |why: &str| ModelError::QuorumSignature { rule: format!("'{username}' {why}") };
            let user = self.users.get(&username).ok_or_else(|| refuse("is not a user of this HSM"))?;
            match associated {
                None => {
                    let approver = user.role.identity(self.is_activated());
                    if !Action::ApproveAdminServices.allowed().admits(approver, Some(&username)) {
                        return Err(refuse("is not an admin; admins approve admin services"));
                    }
                }
                Some(associated) => {
                    if !associated.contains(&username) {
                        return Err(refuse("neither owns the key nor shares it; they cannot approve its use"));
                    }
                }
            }
            let key = user
                .quorum_key
                .clone()
                .ok_or_else(|| refuse("has no registered quorum key (user change-quorum token-sign register)"))?;
            signers.push((username, key, signature));
        }
        Ok(Some(PendingApproval { token, service, preimage, required, signers }))
    }

    /// Second step of a quorum-gated call, under the same lock as the
    /// change: re-checks the approval against the current quorum value and
    /// token table, runs `change`, and spends the token if it succeeded.
    pub fn spend_approval<T>(
        &mut self,
        service: QuorumService,
        approval: Option<&VerifiedApproval>,
        now: Instant,
        change: impl FnOnce(&mut Hsm) -> Result<T, ModelError>,
    ) -> Result<T, ModelError> {
        let required = self.required(service);
        self.spend(service, required, approval, now, change)
    }

    /// As [`Hsm::spend_approval`], for a service of one key.
    pub fn spend_key_approval<T>(
        &mut self,
        caller: &Caller,
        reference: KeyRef,
        service: QuorumService,
        approval: Option<&VerifiedApproval>,
        now: Instant,
        change: impl FnOnce(&mut Hsm) -> Result<T, ModelError>,
    ) -> Result<T, ModelError> {
        let (quorum, _) = self.keys.approvers(actor(caller)?, reference)?;
        self.spend(service, quorum.required(service), approval, now, change)
    }

    fn spend<T>(
        &mut self,
        service: QuorumService,
        required: u8,
        approval: Option<&VerifiedApproval>,
        now: Instant,
        change: impl FnOnce(&mut Hsm) -> Result<T, ModelError>,
    ) -> Result<T, ModelError> {
        if required > 1 {
            let approval = approval.ok_or(ModelError::QuorumRequired)?;
            if approval.service != service {
                return Err(internal("an approval was verified for another service"));
            }
            if approval.approvers < required {
                return Err(ModelError::QuorumNotMet { approvers: approval.approvers, required });
            }
            if !self.tokens.is_live(&approval.token, now) {
                return Err(ModelError::QuorumTokenUnknown);
            }
        }
        let result = change(self)?;
        if let Some(approval) = approval {
            self.tokens.remove(&approval.token);
        }
        Ok(result)
    }

    /// First step of registering the caller's quorum key: which of
    /// `tokens` (a signed token file holds one per HSM) is this HSM's live
    /// registration token for the caller, and its preimage, which the key
    /// must have signed.
    pub fn registration_preimage(
        &mut self,
        caller: &Caller,
        tokens: &[TokenId],
        now: Instant,
    ) -> Result<(TokenId, Vec<u8>), ModelError> {
        let username = caller_username(caller)?;
        self.tokens.find_among(tokens, &Purpose::Quorum(QuorumService::Registration), username, now)
    }

    /// Second step: registers `key` (whose signature of the token the
    /// caller verified) as the caller's quorum key, spending the token.
    pub fn register_quorum_key(
        &mut self,
        caller: &Caller,
        key: ApproverKey,
        token: &TokenId,
        now: Instant,
    ) -> Result<UserView, ModelError> {
        let username = caller_username(caller)?.clone();
        if !self.tokens.is_live(token, now) {
            return Err(ModelError::QuorumTokenUnknown);
        }
        self.tokens.remove(token);
        let user = self.users.get_mut(&username).ok_or_else(|| internal("caller has no user"))?;
        user.quorum_key = Some(key);
        self.dirty_users.insert(username.clone());
        Ok(view(&username, self.users.get(&username).ok_or_else(|| internal("user vanished"))?))
    }

    /// Issues the token of an MFA login: only after the password was right.
    pub fn mfa_login_token(
        &mut self,
        username: &Username,
        now: Instant,
        rng: &mut impl CryptoRng,
    ) -> Result<IssuedToken, ModelError> {
        self.tokens.issue(Purpose::MfaLogin, username, self.hsm.id.as_str(), now, rng)
    }

    /// The preimage of `username`'s MFA login token `token`; an unknown
    /// one fails the login.
    pub fn mfa_login_preimage(
        &mut self,
        username: &Username,
        token: &TokenId,
        now: Instant,
    ) -> Result<Vec<u8>, ModelError> {
        self.tokens.find(token, &Purpose::MfaLogin, username, now).map_err(|_| ModelError::LoginFailed)
    }

    /// Issues the token that a new MFA key for `username` must sign. Any
    /// user changes their own MFA; admins anyone's.
    pub fn mfa_registration_token(
        &mut self,
        caller: &Caller,
        username: &Username,
        role: Role,
        now: Instant,
        rng: &mut impl CryptoRng,
    ) -> Result<IssuedToken, ModelError> {
        self.mfa_target(caller, username, role)?;
        self.tokens.issue(Purpose::MfaRegistration, username, self.hsm.id.as_str(), now, rng)
    }

    /// The preimage a new MFA key for `username` must have signed.
    pub fn mfa_registration_preimage(
        &mut self,
        caller: &Caller,
        username: &Username,
        role: Role,
        token: &TokenId,
        now: Instant,
    ) -> Result<Vec<u8>, ModelError> {
        self.mfa_target(caller, username, role)?;
        self.tokens.find(token, &Purpose::MfaRegistration, username, now)
    }

    /// Turns MFA on with `key` (whose signature of registration token
    /// `token` the caller verified), or off with `None`.
    pub fn set_mfa_key(
        &mut self,
        caller: &Caller,
        username: &Username,
        role: Role,
        key: Option<(ApproverKey, TokenId)>,
        now: Instant,
    ) -> Result<UserView, ModelError> {
        self.mfa_target(caller, username, role)?;
        let key = match key {
            Some((key, token)) => {
                if !self.tokens.is_live(&token, now) {
                    return Err(ModelError::QuorumTokenUnknown);
                }
                self.tokens.remove(&token);
                Some(key)
            }
            None => None,
        };
        let user = self.users.get_mut(username).ok_or_else(|| internal("user vanished"))?;
        user.mfa_key = key;
        self.dirty_users.insert(username.clone());
        Ok(view(username, self.users.get(username).ok_or_else(|| internal("user vanished"))?))
    }

    /// Whose MFA the caller may change: their own, or anyone's
    /// ([`Action::ChangeAnyonesMfa`]); and only users who can have MFA.
    fn mfa_target(&self, caller: &Caller, username: &Username, role: Role) -> Result<(), ModelError> {
        let own = caller_username(caller)? == username;
        if !own && !caller.may(Action::ChangeAnyonesMfa) {
            return Err(ModelError::ObjectPermission { rule: "only admins change another user's MFA".into() });
        }
        let user = self.user_with_role(username, role)?;
        if !matches!(user.role, Role::Admin | Role::CryptoUser) {
            return Err(ModelError::ObjectPermission { rule: format!("'{username}' cannot use MFA") });
        }
        Ok(())
    }

    fn required(&self, service: QuorumService) -> u8 {
        self.quorum.of(service).map_or(1, QuorumValue::get)
    }

    /// How many users could approve an admin service: those the table lets
    /// ([`Action::ApproveAdminServices`]) with a registered quorum key.
    pub(super) fn admin_approvers(&self) -> usize {
        let activated = self.is_activated();
        self.users
            .iter()
            .filter(|(name, u)| {
                u.quorum_key.is_some()
                    && Action::ApproveAdminServices.allowed().admits(u.role.identity(activated), Some(name))
            })
            .count()
    }
}
