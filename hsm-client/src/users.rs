//! Users on one HSM: creating, deleting and listing them, and passwords:
//! methods on [`Session`], and the requests that [`crate::ClusterSession`]
//! takes too.

use std::fmt;

use hsm_proto::v1::{self as pb, user_service_client::UserServiceClient};
use tonic::transport::Channel;

use crate::{Approval, ClientError, Deregister, Role, Session, User, types::CreateToken};

/// `user create`.
#[derive(Clone, PartialEq, Eq)]
pub struct CreateUser<'a, A> {
    pub username: &'a str,
    pub role: Role,
    /// Never shown by `Debug`.
    pub password: &'a str,
    /// A user-service approval, when that service's quorum value is above 1.
    pub approval: Option<&'a A>,
}

impl<'a, A> CreateUser<'a, A> {
    pub fn new(username: &'a str, role: Role, password: &'a str) -> Self {
        CreateUser { username, role, password, approval: None }
    }

    pub fn approval(self, approval: &'a A) -> Self {
        CreateUser { approval: Some(approval), ..self }
    }

    /// This request as one HSM takes it, with that HSM's approval.
    pub(crate) fn with_approval<'b>(&'b self, approval: Option<&'b Approval>) -> CreateUser<'b, Approval> {
        CreateUser { username: self.username, role: self.role, password: self.password, approval }
    }
}

impl<A: fmt::Debug> fmt::Debug for CreateUser<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateUser")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("password", &"<redacted>")
            .field("approval", &self.approval)
            .finish()
    }
}

/// `user delete`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteUser<'a, A> {
    pub username: &'a str,
    pub role: Role,
    /// A user-service approval, when that service's quorum value is above 1.
    pub approval: Option<&'a A>,
}

impl<'a, A> DeleteUser<'a, A> {
    pub fn new(username: &'a str, role: Role) -> Self {
        DeleteUser { username, role, approval: None }
    }

    pub fn approval(self, approval: &'a A) -> Self {
        DeleteUser { approval: Some(approval), ..self }
    }

    /// This request as one HSM takes it, with that HSM's approval.
    pub(crate) fn with_approval<'b>(&'b self, approval: Option<&'b Approval>) -> DeleteUser<'b, Approval> {
        DeleteUser { username: self.username, role: self.role, approval }
    }
}

/// `user change-password`: the session's own password when `username` and
/// `role` are the session's, otherwise another user's (an admin's
/// privilege).
#[derive(Clone, PartialEq, Eq)]
pub struct ChangePassword<'a, A> {
    pub username: &'a str,
    pub role: Role,
    /// Never shown by `Debug`.
    pub new_password: &'a str,
    /// A user-service approval (changing one's own password needs none
    /// unless it also deregisters a key).
    pub approval: Option<&'a A>,
    /// Keys the change also removes.
    pub deregister: Deregister,
}

impl<'a, A> ChangePassword<'a, A> {
    pub fn new(username: &'a str, role: Role, new_password: &'a str) -> Self {
        ChangePassword { username, role, new_password, approval: None, deregister: Deregister::default() }
    }

    pub fn approval(self, approval: &'a A) -> Self {
        ChangePassword { approval: Some(approval), ..self }
    }

    pub fn deregister(self, deregister: Deregister) -> Self {
        ChangePassword { deregister, ..self }
    }

    /// This request as one HSM takes it, with that HSM's approval.
    pub(crate) fn with_approval<'b>(&'b self, approval: Option<&'b Approval>) -> ChangePassword<'b, Approval> {
        let ChangePassword { username, role, new_password, approval: _, deregister } = *self;
        ChangePassword { username, role, new_password, approval, deregister }
    }
}

impl<A: fmt::Debug> fmt::Debug for ChangePassword<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangePassword")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("new_password", &"<redacted>")
            .field("approval", &self.approval)
            .field("deregister", &self.deregister)
            .finish()
    }
}

impl Session {
    pub async fn create_user(&self, request: CreateUser<'_, Approval>) -> Result<User, ClientError> {
        self.create_user_attempt(request, None).await
    }

    /// One attempt of a create; every attempt of one create carries the same
    /// `token`, so that the HSM answers a retry of a create it already made
    /// as done, and refuses every other create of an existing user.
    pub(crate) async fn create_user_attempt(
        &self,
        request: CreateUser<'_, Approval>,
        token: Option<&CreateToken>,
    ) -> Result<User, ClientError> {
        let request = self.request(pb::CreateUserRequest {
            username: request.username.to_owned(),
            role: pb::Role::from(request.role).into(),
            password: request.password.to_owned(),
            approval: request.approval.map(Approval::to_proto),
            create_token: token.map(|t| t.0.to_vec()).unwrap_or_default(),
        })?;
        let reply = self.users().create_user(request).await?.into_inner();
        User::try_from(reply.user)
    }

    pub async fn delete_user(&self, request: DeleteUser<'_, Approval>) -> Result<User, ClientError> {
        let request = self.request(pb::DeleteUserRequest {
            username: request.username.to_owned(),
            role: pb::Role::from(request.role).into(),
            approval: request.approval.map(Approval::to_proto),
        })?;
        let reply = self.users().delete_user(request).await?.into_inner();
        User::try_from(reply.user)
    }

    pub async fn list_users(&self) -> Result<Vec<User>, ClientError> {
        let reply = self.users().list_users(self.request(pb::ListUsersRequest {})?).await?.into_inner();
        reply.users.into_iter().map(|u| User::try_from(Some(u))).collect()
    }

    /// Changes a password as `user change-password` does; see
    /// [`ChangePassword`] for whose.
    pub async fn change_password(&self, request: ChangePassword<'_, Approval>) -> Result<User, ClientError> {
        let ChangePassword { username, role, new_password, approval, deregister } = request;
        let own = self
            .user
            .as_ref()
            .is_some_and(|(name, actual)| username.eq_ignore_ascii_case(name) && role.same_login_role(*actual));
        let reply = if own {
            let request = self.request(pb::ChangeOwnPasswordRequest {
                new_password: new_password.to_owned(),
                deregister_mfa: deregister.mfa,
                deregister_quorum: deregister.quorum,
                approval: approval.map(Approval::to_proto),
            })?;
            self.users().change_own_password(request).await?.into_inner().user
        } else {
            let request = self.request(pb::ChangeUserPasswordRequest {
                username: username.to_owned(),
                role: pb::Role::from(role).into(),
                new_password: new_password.to_owned(),
                approval: approval.map(Approval::to_proto),
                deregister_mfa: deregister.mfa,
                deregister_quorum: deregister.quorum,
            })?;
            self.users().change_user_password(request).await?.into_inner().user
        };
        User::try_from(reply)
    }

    fn users(&self) -> UserServiceClient<Channel> {
        UserServiceClient::new(self.client.channel())
    }
}
