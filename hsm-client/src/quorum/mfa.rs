//! MFA (token-sign) on one HSM: registering a user's MFA key and removing it.

use std::fmt;

use hsm_proto::v1::{self as pb, user_service_client::UserServiceClient};

use super::SignedToken;
use crate::{Approval, ClientError, Role, Session, User};

/// `user change-mfa token-sign` with a key: turns MFA on with the key.
/// `S` is what the new key signed, as `A` is the approval: one HSM's
/// [`SignedToken`] for a [`Session`], every HSM's [`crate::SignedTokens`]
/// for a [`crate::ClusterSession`].
#[derive(Clone, PartialEq, Eq)]
pub struct RegisterMfa<'a, S, A> {
    pub username: &'a str,
    pub role: Role,
    /// The key MFA logins will be signed with, SubjectPublicKeyInfo DER.
    pub public_key: &'a [u8],
    /// The key's signature of the HSM's registration token, which proves
    /// the caller holds it.
    pub signed: &'a S,
    /// A password to set in the same step (the CloudHSM CLI's
    /// `--change-password`); never shown by `Debug`.
    pub new_password: Option<&'a str>,
    /// A user-service approval, when that service's quorum value is above 1.
    pub approval: Option<&'a A>,
}

impl<'a, S, A> RegisterMfa<'a, S, A> {
    pub fn new(username: &'a str, role: Role, public_key: &'a [u8], signed: &'a S) -> Self {
        RegisterMfa { username, role, public_key, signed, new_password: None, approval: None }
    }

    pub fn new_password(self, password: &'a str) -> Self {
        RegisterMfa { new_password: Some(password), ..self }
    }

    pub fn approval(self, approval: &'a A) -> Self {
        RegisterMfa { approval: Some(approval), ..self }
    }

    /// This request as one HSM takes it, with that HSM's signed token and
    /// approval.
    pub(crate) fn for_hsm<'b>(
        &'b self,
        signed: &'b SignedToken,
        approval: Option<&'b Approval>,
    ) -> RegisterMfa<'b, SignedToken, Approval> {
        let RegisterMfa { username, role, public_key, new_password, .. } = *self;
        RegisterMfa { username, role, public_key, signed, new_password, approval }
    }
}

impl<S: fmt::Debug, A: fmt::Debug> fmt::Debug for RegisterMfa<'_, S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterMfa")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("public_key", &self.public_key)
            .field("signed", &self.signed)
            .field("new_password", &self.new_password.map(|_| "<redacted>"))
            .field("approval", &self.approval)
            .finish()
    }
}

/// `user change-mfa token-sign --deregister`: turns MFA off.
#[derive(Clone, PartialEq, Eq)]
pub struct DeregisterMfa<'a, A> {
    pub username: &'a str,
    pub role: Role,
    /// A password to set in the same step; never shown by `Debug`.
    pub new_password: Option<&'a str>,
    /// A user-service approval, when that service's quorum value is above 1.
    pub approval: Option<&'a A>,
}

impl<'a, A> DeregisterMfa<'a, A> {
    pub fn new(username: &'a str, role: Role) -> Self {
        DeregisterMfa { username, role, new_password: None, approval: None }
    }

    pub fn new_password(self, password: &'a str) -> Self {
        DeregisterMfa { new_password: Some(password), ..self }
    }

    pub fn approval(self, approval: &'a A) -> Self {
        DeregisterMfa { approval: Some(approval), ..self }
    }

    /// This request as one HSM takes it, with that HSM's approval.
    pub(crate) fn with_approval<'b>(&'b self, approval: Option<&'b Approval>) -> DeregisterMfa<'b, Approval> {
        DeregisterMfa { username: self.username, role: self.role, new_password: self.new_password, approval }
    }
}

impl<A: fmt::Debug> fmt::Debug for DeregisterMfa<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeregisterMfa")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("new_password", &self.new_password.map(|_| "<redacted>"))
            .field("approval", &self.approval)
            .finish()
    }
}

impl Session {
    /// The token a new MFA key for `username` must sign.
    pub async fn mfa_registration_token(&self, username: &str, role: Role) -> Result<Vec<u8>, ClientError> {
        let reply = self.change_mfa(pb::ChangeMfaRequest { ..mfa_request(username, role) }).await?;
        if reply.token.is_empty() {
            return Err(ClientError::Protocol("no MFA registration token in the answer".into()));
        }
        Ok(reply.token)
    }

    /// Turns MFA on, given the new key's signature of a token from
    /// [`Session::mfa_registration_token`].
    pub async fn register_mfa(&self, request: RegisterMfa<'_, SignedToken, Approval>) -> Result<User, ClientError> {
        let (token, signature) = request.signed;
        let reply = self
            .change_mfa(pb::ChangeMfaRequest {
                public_key: request.public_key.to_vec(),
                token: token.clone(),
                signature: signature.clone(),
                new_password: request.new_password.unwrap_or_default().to_owned(),
                approval: request.approval.map(Approval::to_proto),
                ..mfa_request(request.username, request.role)
            })
            .await?;
        User::try_from(reply.user)
    }

    /// Turns MFA off.
    pub async fn deregister_mfa(&self, request: DeregisterMfa<'_, Approval>) -> Result<User, ClientError> {
        let reply = self
            .change_mfa(pb::ChangeMfaRequest {
                deregister: true,
                new_password: request.new_password.unwrap_or_default().to_owned(),
                approval: request.approval.map(Approval::to_proto),
                ..mfa_request(request.username, request.role)
            })
            .await?;
        User::try_from(reply.user)
    }

    async fn change_mfa(&self, message: pb::ChangeMfaRequest) -> Result<pb::ChangeMfaResponse, ClientError> {
        let request = self.request(message)?;
        Ok(UserServiceClient::new(self.client().channel()).change_mfa(request).await?.into_inner())
    }
}

fn mfa_request(username: &str, role: Role) -> pb::ChangeMfaRequest {
    pb::ChangeMfaRequest { username: username.to_owned(), role: pb::Role::from(role).into(), ..Default::default() }
}
