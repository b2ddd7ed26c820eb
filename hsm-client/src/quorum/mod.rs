//! Quorum authentication (M of N, token-sign) and MFA on one HSM: tokens,
//! quorum values, approver keys and MFA keys. The cluster layer
//! (`cluster::quorum`) does the same on every HSM, each with its own token.
//!
//! Approvers sign a token offline: an RSA PKCS#1 v1.5 signature of the
//! 32-byte token taken as a SHA-256 digest, which is what
//! `openssl pkeyutl -sign -inkey key.pem -pkeyopt digest:sha256 -in token.bin`
//! makes.
//!
//! # Layout
//! - This file: quorum services, tokens and values, and approver keys.
//! - `approval`: [`Approval`] and [`ClusterApproval`], and the signed token
//!   file.
//! - `mfa`: registering and removing a user's MFA key.

mod approval;
mod mfa;

use std::fmt;

use hsm_proto::v1::{self as pb, quorum_service_client::QuorumServiceClient};
use tonic::transport::Channel;

pub use self::{
    approval::{Approval, ClusterApproval},
    mfa::{DeregisterMfa, RegisterMfa},
};
use crate::{ClientError, Role, Session};

/// The CloudHSM CLI's quorum services, and `registration` (proving
/// possession of a key being registered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuorumService {
    User,
    Quorum,
    Cluster,
    KeyManagement,
    KeyUsage,
    Registration,
}

impl QuorumService {
    fn to_proto(self) -> pb::QuorumServiceName {
        use pb::QuorumServiceName as N;
        match self {
            QuorumService::User => N::User,
            QuorumService::Quorum => N::Quorum,
            QuorumService::Cluster => N::Cluster,
            QuorumService::KeyManagement => N::KeyManagement,
            QuorumService::KeyUsage => N::KeyUsage,
            QuorumService::Registration => N::Registration,
        }
    }

    fn from_proto(raw: i32) -> Result<Self, ClientError> {
        use pb::QuorumServiceName as N;
        Ok(match N::try_from(raw) {
            Ok(N::User) => QuorumService::User,
            Ok(N::Quorum) => QuorumService::Quorum,
            Ok(N::Cluster) => QuorumService::Cluster,
            Ok(N::KeyManagement) => QuorumService::KeyManagement,
            Ok(N::KeyUsage) => QuorumService::KeyUsage,
            Ok(N::Registration) => QuorumService::Registration,
            _ => return Err(ClientError::Protocol(format!("unknown quorum service {raw}"))),
        })
    }
}

impl fmt::Display for QuorumService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuorumService::User => "user",
            QuorumService::Quorum => "quorum",
            QuorumService::Cluster => "cluster",
            QuorumService::KeyManagement => "key-management",
            QuorumService::KeyUsage => "key-usage",
            QuorumService::Registration => "registration",
        })
    }
}

/// A token one HSM issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumToken {
    /// The HSM that issued it; it is good only there.
    pub hsm_id: String,
    /// What approvers sign (32 bytes).
    pub token: Vec<u8>,
    /// What the token is the SHA-256 of.
    pub approval_data: Vec<u8>,
    pub expires_in_seconds: u64,
}

/// A token as `quorum token-sign list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumTokenInfo {
    pub username: String,
    pub service: QuorumService,
    pub approvals_required: u32,
    pub expires_in_seconds: u64,
}

/// `quorum token-sign set-quorum-value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetQuorumValue<'a, A> {
    pub service: QuorumService,
    /// Approvals the service will need (1: none).
    pub value: u32,
    /// A quorum-service approval, when that service's quorum value is
    /// above 1.
    pub approval: Option<&'a A>,
}

impl<'a, A> SetQuorumValue<'a, A> {
    pub fn new(service: QuorumService, value: u32) -> Self {
        SetQuorumValue { service, value, approval: None }
    }

    pub fn approval(self, approval: &'a A) -> Self {
        SetQuorumValue { approval: Some(approval), ..self }
    }

    /// This request as one HSM takes it, with that HSM's approval.
    pub(crate) fn with_approval<'b>(&'b self, approval: Option<&'b Approval>) -> SetQuorumValue<'b, Approval> {
        SetQuorumValue { service: self.service, value: self.value, approval }
    }
}

/// A token and a signature of it: one entry of a signed token file.
pub type SignedToken = (Vec<u8>, Vec<u8>);

/// What one login step gave.
#[derive(Debug)]
pub enum LoginStep {
    Session(Session),
    /// MFA is on: sign this token and log in again with the signature.
    MfaRequired(Vec<u8>),
}

impl Session {
    /// This HSM's id (from its cluster information).
    pub async fn hsm_id(&self) -> Result<String, ClientError> {
        let info = self.cluster_info().await?;
        info.hsms
            .into_iter()
            .next()
            .map(|h| h.hsm_id)
            .ok_or_else(|| ClientError::Protocol("cluster information without the HSM".into()))
    }

    pub async fn generate_quorum_token(&self, service: QuorumService) -> Result<QuorumToken, ClientError> {
        let request = self.request(pb::GenerateQuorumTokenRequest { service: service.to_proto().into() })?;
        let reply = self.quorum().generate_quorum_token(request).await?.into_inner();
        Ok(QuorumToken {
            hsm_id: reply.hsm_id,
            token: reply.token,
            approval_data: reply.approval_data,
            expires_in_seconds: reply.expires_in_seconds,
        })
    }

    pub async fn list_quorum_tokens(&self) -> Result<Vec<QuorumTokenInfo>, ClientError> {
        let reply = self.quorum().list_quorum_tokens(self.request(pb::ListQuorumTokensRequest {})?).await?;
        reply
            .into_inner()
            .tokens
            .into_iter()
            .map(|t| {
                Ok(QuorumTokenInfo {
                    username: t.username,
                    service: QuorumService::from_proto(t.service)?,
                    approvals_required: t.approvals_required,
                    expires_in_seconds: t.expires_in_seconds,
                })
            })
            .collect()
    }

    /// Deletes the caller's tokens, or every user's (`all`, admins).
    pub async fn delete_quorum_tokens(&self, all: bool) -> Result<u32, ClientError> {
        let request = pb::DeleteQuorumTokensRequest { all, ..Default::default() };
        let reply = self.quorum().delete_quorum_tokens(self.request(request)?).await?;
        Ok(reply.into_inner().deleted)
    }

    /// Deletes the caller's token of `approval` on this HSM (one HSM's
    /// token, or this HSM's among a cluster token's); whether it was there.
    pub async fn delete_quorum_token(&self, approval: &Approval) -> Result<bool, ClientError> {
        let request = pb::DeleteQuorumTokensRequest {
            token: if approval.approval_data.is_empty() { approval.token.clone() } else { Vec::new() },
            approval_data: approval.approval_data.clone(),
            ..Default::default()
        };
        let reply = self.quorum().delete_quorum_tokens(self.request(request)?).await?;
        Ok(reply.into_inner().deleted > 0)
    }

    /// The quorum values of the user, quorum and cluster services.
    pub async fn list_quorum_values(&self) -> Result<Vec<(QuorumService, u32)>, ClientError> {
        let reply = self.quorum().list_quorum_values(self.request(pb::ListQuorumValuesRequest {})?).await?;
        values(reply.into_inner().values)
    }

    pub async fn set_quorum_value(
        &self,
        request: SetQuorumValue<'_, Approval>,
    ) -> Result<Vec<(QuorumService, u32)>, ClientError> {
        let request = self.request(pb::SetQuorumValueRequest {
            service: request.service.to_proto().into(),
            value: request.value,
            approval: request.approval.map(Approval::to_proto),
        })?;
        values(self.quorum().set_quorum_value(request).await?.into_inner().values)
    }

    /// Registers the caller's quorum key (`public_key`: SPKI DER) with its
    /// signature of a registration token of this HSM: `signed` holds
    /// (token, signature) pairs, such as every entry of a signed token file
    /// (one per HSM), and the HSM uses its own.
    pub async fn register_quorum_key(
        &self,
        public_key: &[u8],
        signed: &[SignedToken],
    ) -> Result<(String, Role), ClientError> {
        let request = self.request(pb::RegisterQuorumKeyRequest {
            public_key: public_key.to_vec(),
            signed_tokens: signed
                .iter()
                .map(|(token, signature)| pb::SignedToken { token: token.clone(), signature: signature.clone() })
                .collect(),
            ..Default::default()
        })?;
        let reply = self.quorum().register_quorum_key(request).await?.into_inner();
        Ok((reply.username, Role::try_from(reply.role)?))
    }

    fn quorum(&self) -> QuorumServiceClient<Channel> {
        QuorumServiceClient::new(self.client().channel())
    }
}

fn values(raw: Vec<pb::QuorumValue>) -> Result<Vec<(QuorumService, u32)>, ClientError> {
    raw.into_iter().map(|v| Ok((QuorumService::from_proto(v.service)?, v.value))).collect()
}
