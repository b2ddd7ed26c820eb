//! `hsm.v1.MtlsService`: client trust anchors and the enforcement level.
//! The rules are the model's; the listener applies the policy (`trust`).

use std::sync::Arc;

use hsm_proto::v1::{
    self as pb, DeregisterTrustAnchorRequest, DeregisterTrustAnchorResponse, GetMtlsEnforcementRequest,
    GetMtlsEnforcementResponse, ListTrustAnchorsRequest, ListTrustAnchorsResponse, RegisterTrustAnchorRequest,
    RegisterTrustAnchorResponse, SetMtlsEnforcementRequest, SetMtlsEnforcementResponse,
    mtls_service_server::MtlsService,
};
use tonic::{Request, Response, Status};

use super::{HsmState, caller, listener::ConnInfo, quorum::gated};
use crate::model::{AnchorCert, AnchorRef, Enforcement, QuorumService, TrustAnchor};

#[derive(Debug)]
pub(super) struct MtlsApi {
    state: Arc<HsmState>,
}

impl MtlsApi {
    pub(super) fn new(state: Arc<HsmState>) -> Self {
        MtlsApi { state }
    }
}

#[tonic::async_trait]
impl MtlsService for MtlsApi {
    async fn register_trust_anchor(
        &self,
        request: Request<RegisterTrustAnchorRequest>,
    ) -> Result<Response<RegisterTrustAnchorResponse>, Status> {
        let req = request.get_ref();
        let cert = AnchorCert::from_pem("certificate", &req.certificate)?;
        let caller = caller(&request)?;
        let change = |hsm: &mut crate::model::Hsm| hsm.register_trust_anchor(cert);
        let anchor = gated(&self.state, &caller, QuorumService::Cluster, req.approval.as_ref(), change).await?;
        tracing::info!(reference = %anchor.reference, "mTLS trust anchor registered");
        Ok(Response::new(RegisterTrustAnchorResponse { trust_anchor: Some(to_proto(&anchor)) }))
    }

    async fn deregister_trust_anchor(
        &self,
        request: Request<DeregisterTrustAnchorRequest>,
    ) -> Result<Response<DeregisterTrustAnchorResponse>, Status> {
        let req = request.get_ref();
        let reference = AnchorRef::parse("certificate_reference", &req.certificate_reference)?;
        let caller = caller(&request)?;
        let change = |hsm: &mut crate::model::Hsm| hsm.deregister_trust_anchor(reference);
        let anchor = gated(&self.state, &caller, QuorumService::Cluster, req.approval.as_ref(), change).await?;
        tracing::info!(%reference, "mTLS trust anchor deregistered");
        Ok(Response::new(DeregisterTrustAnchorResponse { trust_anchor: Some(to_proto(&anchor)) }))
    }

    async fn list_trust_anchors(
        &self,
        _request: Request<ListTrustAnchorsRequest>,
    ) -> Result<Response<ListTrustAnchorsResponse>, Status> {
        let anchors = self.state.hsm().mtls().anchors().to_vec();
        Ok(Response::new(ListTrustAnchorsResponse { trust_anchors: anchors.iter().map(to_proto).collect() }))
    }

    async fn set_mtls_enforcement(
        &self,
        request: Request<SetMtlsEnforcementRequest>,
    ) -> Result<Response<SetMtlsEnforcementResponse>, Status> {
        let caller = caller(&request)?;
        let level = Enforcement::parse("level", &request.get_ref().level)?;
        // The chain this connection presented, checked against the anchors
        // registered now (one deregistered since the handshake no longer
        // counts).
        let chain = request.extensions().get::<ConnInfo>().and_then(|info| info.chain.clone());
        let anchored = self.state.trust.is_anchored(chain.as_ref());
        let change = |hsm: &mut crate::model::Hsm| hsm.set_mtls_enforcement(&caller, level, anchored);
        gated(&self.state, &caller, QuorumService::Cluster, request.get_ref().approval.as_ref(), change).await?;
        tracing::info!(%level, "mTLS enforcement level set");
        Ok(Response::new(SetMtlsEnforcementResponse { level: level.to_string() }))
    }

    async fn get_mtls_enforcement(
        &self,
        _request: Request<GetMtlsEnforcementRequest>,
    ) -> Result<Response<GetMtlsEnforcementResponse>, Status> {
        let level = self.state.hsm().mtls().enforcement();
        Ok(Response::new(GetMtlsEnforcementResponse { level: level.to_string() }))
    }
}

fn to_proto(anchor: &TrustAnchor) -> pb::TrustAnchor {
    pb::TrustAnchor { certificate_reference: anchor.reference.to_string(), certificate: anchor.cert.pem() }
}
