//! `hsm.v1.UserService`: user management.

use std::sync::Arc;

use hsm_proto::v1::{
    ChangeMfaRequest, ChangeMfaResponse, ChangeOwnPasswordRequest, ChangeOwnPasswordResponse,
    ChangeUserPasswordRequest, ChangeUserPasswordResponse, CreateUserRequest, CreateUserResponse, DeleteUserRequest,
    DeleteUserResponse, ListUsersRequest, ListUsersResponse, user_service_server::UserService,
};
use tonic::{Request, Response, Status};

use super::{HsmState, audit, blocking, caller, convert, quorum::gated};
use crate::model::{ApproverKey, CreateToken, Deregister, ModelError, Password, QuorumService, Username};

#[derive(Debug)]
pub(super) struct UserApi {
    state: Arc<HsmState>,
}

impl UserApi {
    pub(super) fn new(state: Arc<HsmState>) -> Self {
        UserApi { state }
    }
}

#[tonic::async_trait]
impl UserService for UserApi {
    async fn create_user(&self, request: Request<CreateUserRequest>) -> Result<Response<CreateUserResponse>, Status> {
        let req = request.get_ref();
        let username = Username::parse("username", &req.username)?;
        audit::note_target(&request, &username);
        let role = convert::role("role", req.role)?;
        let password = Password::parse("password", &req.password)?;
        let token = CreateToken::parse("create_token", &req.create_token)?;
        let caller = caller(&request)?;
        let hash = self.state.hash(password).await?;
        let view = gated(&self.state, &caller, QuorumService::User, req.approval.as_ref(), |hsm| {
            hsm.create_user(username, role, hash, token)
        })
        .await?;
        tracing::info!(username = %view.username, role = %view.role, "user created");
        Ok(Response::new(CreateUserResponse { user: Some(convert::user(view)) }))
    }

    async fn delete_user(&self, request: Request<DeleteUserRequest>) -> Result<Response<DeleteUserResponse>, Status> {
        let req = request.get_ref();
        let username = Username::parse("username", &req.username)?;
        audit::note_target(&request, &username);
        let role = convert::role("role", req.role)?;
        let caller = caller(&request)?;
        let now = self.state.now();
        let view = gated(&self.state, &caller, QuorumService::User, req.approval.as_ref(), |hsm| {
            hsm.delete_user(&username, role, now)
        })
        .await?;
        tracing::info!(username = %view.username, role = %view.role, "user deleted");
        Ok(Response::new(DeleteUserResponse { user: Some(convert::user(view)) }))
    }

    async fn list_users(&self, _request: Request<ListUsersRequest>) -> Result<Response<ListUsersResponse>, Status> {
        let users = self.state.hsm().list_users();
        Ok(Response::new(ListUsersResponse { users: users.into_iter().map(convert::user).collect() }))
    }

    async fn change_own_password(
        &self,
        request: Request<ChangeOwnPasswordRequest>,
    ) -> Result<Response<ChangeOwnPasswordResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let password = Password::parse("new_password", &req.new_password)?;
        let deregister = Deregister { mfa: req.deregister_mfa, quorum: req.deregister_quorum };
        let hash = self.state.hash(password).await?;
        let change = |hsm: &mut crate::model::Hsm| hsm.change_own_password(&caller, hash, deregister);
        // Dropping a second factor is gated as `user change-mfa` is; a
        // password alone is one's own business.
        let view = if deregister.any() {
            gated(&self.state, &caller, QuorumService::User, req.approval.as_ref(), change).await?
        } else {
            self.state.mutate(change).await?
        };
        tracing::info!(username = %view.username, "password changed by its user");
        Ok(Response::new(ChangeOwnPasswordResponse { user: Some(convert::user(view)) }))
    }

    async fn change_user_password(
        &self,
        request: Request<ChangeUserPasswordRequest>,
    ) -> Result<Response<ChangeUserPasswordResponse>, Status> {
        let req = request.get_ref();
        let username = Username::parse("username", &req.username)?;
        audit::note_target(&request, &username);
        let role = convert::role("role", req.role)?;
        let password = Password::parse("new_password", &req.new_password)?;
        let deregister = Deregister { mfa: req.deregister_mfa, quorum: req.deregister_quorum };
        let caller = caller(&request)?;
        let hash = self.state.hash(password).await?;
        let view = gated(&self.state, &caller, QuorumService::User, req.approval.as_ref(), |hsm| {
            hsm.change_user_password(&username, role, hash, deregister)
        })
        .await?;
        tracing::info!(username = %view.username, "password changed by an admin");
        Ok(Response::new(ChangeUserPasswordResponse { user: Some(convert::user(view)) }))
    }

    /// Two calls turn MFA on (a token to sign, then the signed token and
    /// key); one turns it off. The change is gated by the user service.
    async fn change_mfa(&self, request: Request<ChangeMfaRequest>) -> Result<Response<ChangeMfaResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let username = Username::parse("username", &req.username)?;
        audit::note_target(&request, &username);
        let role = convert::role("role", req.role)?;
        let now = self.state.now();
        if !req.deregister && req.token.is_empty() {
            let mut rng = self.state.fork_rng();
            let issued =
                self.state.mutate(|hsm| hsm.mfa_registration_token(&caller, &username, role, now, &mut rng)).await?;
            return Ok(Response::new(ChangeMfaResponse { user: None, token: issued.token.to_vec() }));
        }
        let key = if req.deregister {
            None
        } else {
            let key = ApproverKey::from_spki("public_key", &req.public_key)?;
            let token = convert::token("token", &req.token)?;
            let preimage = self.state.hsm().mfa_registration_preimage(&caller, &username, role, &token, now)?;
            let (checked, signature) = (key.clone(), req.signature.clone());
            if !blocking(move || Ok(checked.verifies(&preimage, &signature))).await? {
                return Err(ModelError::QuorumSignature {
                    rule: "the signed token does not verify with the MFA public key being registered".into(),
                }
                .into());
            }
            Some((key, token))
        };
        let on = key.is_some();
        // The CloudHSM CLI's `--change-password`: the password changes with
        // the MFA key, under the same approval and lock, or not at all.
        let hash = match req.new_password.as_str() {
            "" => None,
            raw => Some(self.state.hash(Password::parse("new_password", raw)?).await?),
        };
        let password_changed = hash.is_some();
        let view = gated(&self.state, &caller, QuorumService::User, req.approval.as_ref(), |hsm| {
            let view = hsm.set_mfa_key(&caller, &username, role, key, now)?;
            match hash {
                Some(hash) => hsm.change_user_password(&username, role, hash, Deregister::default()),
                None => Ok(view),
            }
        })
        .await?;
        tracing::info!(username = %view.username, mfa = on, password_changed, "MFA changed");
        Ok(Response::new(ChangeMfaResponse { user: Some(convert::user(view)), token: Vec::new() }))
    }
}
