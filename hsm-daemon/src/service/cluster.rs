//! `hsm.v1.ClusterService`: cluster info and activation.

use std::sync::Arc;

use hsm_proto::v1::{
    ActivateRequest, ActivateResponse, GetClusterInfoRequest, GetClusterInfoResponse, GetSyncStatusRequest,
    GetSyncStatusResponse, cluster_service_server::ClusterService,
};
use tonic::{Request, Response, Status};

use super::{HsmState, caller, convert};
use crate::model::Password;

#[derive(Debug)]
pub(super) struct ClusterApi {
    state: Arc<HsmState>,
}

impl ClusterApi {
    pub(super) fn new(state: Arc<HsmState>) -> Self {
        ClusterApi { state }
    }
}

#[tonic::async_trait]
impl ClusterService for ClusterApi {
    async fn get_cluster_info(
        &self,
        _request: Request<GetClusterInfoRequest>,
    ) -> Result<Response<GetClusterInfoResponse>, Status> {
        let info = self.state.hsm().cluster_info();
        Ok(Response::new(convert::cluster_info(info)))
    }

    async fn get_sync_status(
        &self,
        request: Request<GetSyncStatusRequest>,
    ) -> Result<Response<GetSyncStatusResponse>, Status> {
        let include_keys = request.get_ref().include_keys;
        let (status, hsm_id, keys) = {
            let hsm = self.state.hsm();
            (hsm.sync_status(), hsm.hsm_id().to_string(), if include_keys { hsm.key_digests() } else { Vec::new() })
        };
        Ok(Response::new(GetSyncStatusResponse {
            hsm_id,
            digest: status.digest.to_vec(),
            user_count: status.users as u64,
            key_count: status.keys as u64,
            keys: keys.into_iter().map(convert::key_digest).collect(),
        }))
    }

    async fn activate(&self, request: Request<ActivateRequest>) -> Result<Response<ActivateResponse>, Status> {
        let caller = caller(&request)?;
        let password = Password::parse("new_password", &request.get_ref().new_password)?;
        let hash = self.state.hash(password).await?;
        let view = self.state.mutate(|hsm| hsm.activate(&caller, hash)).await?;
        tracing::info!(username = %view.username, "cluster activated");
        Ok(Response::new(ActivateResponse {
            username: view.username.to_string(),
            role: convert::role_to_proto(view.role).into(),
        }))
    }
}
