//! `hsm.v1.UserService`: user management.

use std::sync::Arc;

use hsm_proto::v1::{
    ChangeOwnPasswordRequest, ChangeOwnPasswordResponse, ChangeUserPasswordRequest, ChangeUserPasswordResponse,
    CreateUserRequest, CreateUserResponse, DeleteUserRequest, DeleteUserResponse, ListUsersRequest, ListUsersResponse,
    user_service_server::UserService,
};
use tonic::{Request, Response, Status};

use super::{HsmState, audit, caller, convert};
use crate::model::{Password, Username};

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
        let hash = self.state.hash(password).await?;
        let view = self.state.mutate(|hsm| hsm.create_user(username, role, hash)).await?;
        tracing::info!(username = %view.username, role = %view.role, "user created");
        Ok(Response::new(CreateUserResponse { user: Some(convert::user(view)) }))
    }

    async fn delete_user(&self, request: Request<DeleteUserRequest>) -> Result<Response<DeleteUserResponse>, Status> {
        let req = request.get_ref();
        let username = Username::parse("username", &req.username)?;
        audit::note_target(&request, &username);
        let role = convert::role("role", req.role)?;
        let view = self.state.mutate(|hsm| hsm.delete_user(&username, role, self.state.now())).await?;
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
        let password = Password::parse("new_password", &request.get_ref().new_password)?;
        let hash = self.state.hash(password).await?;
        let view = self.state.mutate(|hsm| hsm.change_own_password(&caller, hash)).await?;
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
        let hash = self.state.hash(password).await?;
        let view = self.state.mutate(|hsm| hsm.change_user_password(&username, role, hash)).await?;
        tracing::info!(username = %view.username, "password changed by an admin");
        Ok(Response::new(ChangeUserPasswordResponse { user: Some(convert::user(view)) }))
    }
}
