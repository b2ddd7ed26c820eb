//! `hsm.v1.QuorumService`: quorum tokens, quorum values and approver keys;
//! and [`approve`], the check every quorum-gated call makes before its
//! change.

use std::sync::Arc;

use hsm_proto::v1::{
    self as pb, DeleteQuorumTokensRequest, DeleteQuorumTokensResponse, GenerateQuorumTokenRequest,
    GenerateQuorumTokenResponse, ListQuorumTokensRequest, ListQuorumTokensResponse, ListQuorumValuesRequest,
    ListQuorumValuesResponse, RegisterQuorumKeyRequest, RegisterQuorumKeyResponse, SetQuorumValueRequest,
    SetQuorumValueResponse, quorum_service_server::QuorumService as QuorumRpc,
};
use tonic::{Request, Response, Status};

use super::{HsmState, blocking, caller, convert};
use crate::model::{
    ApproverKey, Caller, Hsm, KeyRef, ModelError, QuorumService, QuorumValue, QuorumValues, TokenId, VerifiedApproval,
};

#[derive(Debug)]
pub(super) struct QuorumApi {
    state: Arc<HsmState>,
}

impl QuorumApi {
    pub(super) fn new(state: Arc<HsmState>) -> Self {
        QuorumApi { state }
    }
}

/// Checks a gated call's approval for `service`: `None` when the service
/// needs none, else the verified approval, which the call then spends with
/// its change ([`crate::model::Hsm::spend_approval`]). Signatures are
/// verified off the async workers and outside the model's lock.
async fn approve(
    state: &HsmState,
    caller: &Caller,
    service: QuorumService,
    approval: Option<&pb::Approval>,
) -> Result<Option<VerifiedApproval>, Status> {
    let approval = convert::approval(approval)?;
    let now = state.now();
    let pending = state.mutate(|hsm| hsm.quorum_check(caller, service, approval, now)).await?;
    match pending {
        None => Ok(None),
        Some(pending) => {
            let verified = blocking(move || pending.verify()).await;
            if let Err(err) = &verified {
                tracing::info!(%service, %err, "quorum approval refused");
            }
            Ok(Some(verified?))
        }
    }
}

/// Runs a quorum-gated change: checks the approval ([`approve`]), then
/// makes the change and spends the token under one lock.
pub(super) async fn gated<T>(
    state: &HsmState,
    caller: &Caller,
    service: QuorumService,
    approval: Option<&pb::Approval>,
    change: impl FnOnce(&mut Hsm) -> Result<T, ModelError>,
) -> Result<T, Status> {
    let approval = approve(state, caller, service, approval).await?;
    let now = state.now();
    state.mutate(|hsm| hsm.spend_approval(service, approval.as_ref(), now, change)).await
}

/// As [`gated`], for the key-management or key-usage service of one key:
/// its own quorum value, approved by its owner and shared users.
pub(super) async fn key_gated<T>(
    state: &HsmState,
    caller: &Caller,
    reference: KeyRef,
    service: QuorumService,
    approval: Option<&pb::Approval>,
    change: impl FnOnce(&mut Hsm) -> Result<T, ModelError>,
) -> Result<T, Status> {
    let approval = convert::approval(approval)?;
    let now = state.now();
    let pending = state.mutate(|hsm| hsm.key_quorum_check(caller, reference, service, approval, now)).await?;
    let verified = match pending {
        None => None,
        Some(pending) => Some(blocking(move || pending.verify()).await?),
    };
    state.mutate(|hsm| hsm.spend_key_approval(caller, reference, service, verified.as_ref(), now, change)).await
}

#[tonic::async_trait]
impl QuorumRpc for QuorumApi {
    async fn generate_quorum_token(
        &self,
        request: Request<GenerateQuorumTokenRequest>,
    ) -> Result<Response<GenerateQuorumTokenResponse>, Status> {
        let caller = caller(&request)?;
        let service = convert::quorum_service("service", request.get_ref().service)?;
        let mut rng = self.state.fork_rng();
        let now = self.state.now();
        let (issued, hsm_id) = self
            .state
            .mutate(|hsm| Ok((hsm.issue_quorum_token(&caller, service, now, &mut rng)?, hsm.hsm_id().to_string())))
            .await?;
        tracing::info!(%service, "quorum token issued");
        Ok(Response::new(GenerateQuorumTokenResponse {
            token: issued.token.to_vec(),
            approval_data: issued.approval_data,
            hsm_id,
            expires_in_seconds: issued.expires_in.as_secs(),
        }))
    }

    async fn list_quorum_tokens(
        &self,
        _request: Request<ListQuorumTokensRequest>,
    ) -> Result<Response<ListQuorumTokensResponse>, Status> {
        let now = self.state.now();
        let tokens = self.state.hsm().list_quorum_tokens(now);
        let tokens = tokens
            .into_iter()
            .map(|t| pb::QuorumToken {
                username: t.username.to_string(),
                service: convert::quorum_service_to_proto(t.service).into(),
                approvals_required: u32::from(t.approvals_required),
                expires_in_seconds: t.expires_in.as_secs(),
            })
            .collect();
        Ok(Response::new(ListQuorumTokensResponse { tokens }))
    }

    async fn delete_quorum_tokens(
        &self,
        request: Request<DeleteQuorumTokensRequest>,
    ) -> Result<Response<DeleteQuorumTokensResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let all = req.all;
        let deleted = if !req.approval_data.is_empty() {
            self.state.mutate(|hsm| hsm.delete_quorum_tokens_among(&caller, &req.approval_data)).await?
        } else if req.token.is_empty() {
            self.state.mutate(|hsm| hsm.delete_quorum_tokens(&caller, all)).await?
        } else {
            let token = convert::token("token", &req.token)?;
            usize::from(self.state.mutate(|hsm| hsm.delete_quorum_token(&caller, &token)).await?)
        };
        tracing::info!(all, deleted, "quorum tokens deleted");
        Ok(Response::new(DeleteQuorumTokensResponse { deleted: u32::try_from(deleted).unwrap_or(u32::MAX) }))
    }

    async fn set_quorum_value(
        &self,
        request: Request<SetQuorumValueRequest>,
    ) -> Result<Response<SetQuorumValueResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let service = convert::quorum_service("service", req.service)?;
        let value = QuorumValue::parse("value", req.value)?;
        let values = gated(&self.state, &caller, QuorumService::Quorum, req.approval.as_ref(), |hsm| {
            hsm.set_quorum_value(service, value)
        })
        .await?;
        tracing::info!(%service, value = value.get(), "quorum value set");
        Ok(Response::new(SetQuorumValueResponse { values: values_to_proto(values) }))
    }

    async fn list_quorum_values(
        &self,
        _request: Request<ListQuorumValuesRequest>,
    ) -> Result<Response<ListQuorumValuesResponse>, Status> {
        let values = self.state.hsm().quorum_values();
        Ok(Response::new(ListQuorumValuesResponse { values: values_to_proto(values) }))
    }

    async fn register_quorum_key(
        &self,
        request: Request<RegisterQuorumKeyRequest>,
    ) -> Result<Response<RegisterQuorumKeyResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let key = ApproverKey::from_spki("public_key", &req.public_key)?;
        let signed = signed_tokens(req)?;
        let ids: Vec<TokenId> = signed.iter().map(|(id, _)| *id).collect();
        let now = self.state.now();
        let (token, preimage) = self.state.hsm().registration_preimage(&caller, &ids, now)?;
        let signature = signed.into_iter().find(|(id, _)| *id == token).map(|(_, s)| s).unwrap_or_default();
        let checked = key.clone();
        if !blocking(move || Ok(checked.verifies(&preimage, &signature))).await? {
            return Err(ModelError::QuorumSignature {
                rule: "the signed token does not verify with the public key being registered".into(),
            }
            .into());
        }
        let view = self.state.mutate(|hsm| hsm.register_quorum_key(&caller, key, &token, now)).await?;
        tracing::info!(username = %view.username, "quorum key registered");
        Ok(Response::new(RegisterQuorumKeyResponse {
            username: view.username.to_string(),
            role: convert::role_to_proto(view.role).into(),
        }))
    }
}

/// The (token, signature) pairs of a registration: the signed token file's
/// entries, or the one pair of `token` and `signature`.
fn signed_tokens(req: &RegisterQuorumKeyRequest) -> Result<Vec<(TokenId, Vec<u8>)>, ModelError> {
    if req.signed_tokens.is_empty() {
        return Ok(vec![(convert::token("token", &req.token)?, req.signature.clone())]);
    }
    if req.signed_tokens.len() > 64 {
        return Err(ModelError::InvalidArgument {
            field: "signed_tokens",
            rule: "at most 64 entries (one per HSM)".into(),
        });
    }
    req.signed_tokens
        .iter()
        .map(|t| Ok((convert::token("signed_tokens.token", &t.token)?, t.signature.clone())))
        .collect()
}

fn values_to_proto(values: QuorumValues) -> Vec<pb::QuorumValue> {
    QuorumService::WITH_VALUES
        .into_iter()
        .map(|service| pb::QuorumValue {
            service: convert::quorum_service_to_proto(service).into(),
            value: u32::from(values.of(service).map_or(1, QuorumValue::get)),
        })
        .collect()
}

/// Quorum values from a peer's answer (cloning).
pub(super) fn values_from_proto(values: &[pb::QuorumValue]) -> Result<QuorumValues, ModelError> {
    let mut parsed = QuorumValues::default();
    for v in values {
        let service = convert::quorum_service("values.service", v.service)?;
        let value = QuorumValue::parse("values.value", v.value)?;
        match service {
            QuorumService::User => parsed.user = value,
            QuorumService::Quorum => parsed.quorum = value,
            QuorumService::Cluster => parsed.cluster = value,
            // A peer lists only the services with HSM-wide values.
            QuorumService::KeyManagement | QuorumService::KeyUsage | QuorumService::Registration => {}
        }
    }
    Ok(parsed)
}
