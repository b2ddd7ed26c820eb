//! Client mTLS policy (`cluster mtls ...`): trust anchors that client
//! certificates must chain to, and the enforcement level. Each HSM keeps its
//! own copy, so the cluster layer writes changes to every HSM, as it does
//! users, and re-running a partly applied change repairs it.
//!
//! To present a client certificate, give [`crate::ClientConfig`] one with
//! `with_client_identity` (hsm-cli: `--client-cert-hsm-tls-file`,
//! `--client-key-hsm-tls-file`).

use std::fmt;

use hsm_proto::v1::{self as pb, mtls_service_client::MtlsServiceClient};

use crate::{Approval, ClientError, ClusterApproval, ClusterSession, FanOut, Session, cluster::quorum::approval_for};

/// A registered trust anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    /// `0x01` or `0x02`.
    pub reference: String,
    /// The CA certificate, PEM.
    pub certificate: String,
}

impl TrustAnchor {
    /// Whether this anchor is the certificate in `pem` (whatever its line
    /// breaks).
    pub fn is_certificate(&self, pem: &str) -> bool {
        pem_body(&self.certificate) == pem_body(pem)
    }
}

/// The base64 of a PEM block, without headers or whitespace.
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).flat_map(|l| l.chars().filter(|c| !c.is_whitespace())).collect()
}

impl From<pb::TrustAnchor> for TrustAnchor {
    fn from(a: pb::TrustAnchor) -> Self {
        TrustAnchor { reference: a.certificate_reference, certificate: a.certificate }
    }
}

/// The mTLS enforcement level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MtlsLevel {
    /// Client certificates are optional.
    None,
    /// Every connection must present a client certificate chained to a
    /// registered trust anchor.
    Cluster,
}

impl MtlsLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            MtlsLevel::None => "none",
            MtlsLevel::Cluster => "cluster",
        }
    }

    fn parse(raw: &str) -> Result<Self, ClientError> {
        match raw {
            "none" => Ok(MtlsLevel::None),
            "cluster" => Ok(MtlsLevel::Cluster),
            other => Err(ClientError::Protocol(format!("the HSM reported mTLS enforcement level {other:?}"))),
        }
    }
}

impl fmt::Display for MtlsLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `cluster mtls register-trust-anchor`: a CA certificate (PEM) that
/// client certificates may chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterTrustAnchor<'a, A> {
    pub certificate_pem: &'a str,
    /// A cluster-service approval, when that service's quorum value is
    /// above 1.
    pub approval: Option<&'a A>,
}

impl<'a, A> RegisterTrustAnchor<'a, A> {
    pub fn new(certificate_pem: &'a str) -> Self {
        RegisterTrustAnchor { certificate_pem, approval: None }
    }

    pub fn approval(self, approval: &'a A) -> Self {
        RegisterTrustAnchor { approval: Some(approval), ..self }
    }

    /// This request as one HSM takes it, with that HSM's approval.
    pub(crate) fn with_approval<'b>(&'b self, approval: Option<&'b Approval>) -> RegisterTrustAnchor<'b, Approval> {
        RegisterTrustAnchor { certificate_pem: self.certificate_pem, approval }
    }
}

/// `cluster mtls deregister-trust-anchor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeregisterTrustAnchor<'a, A> {
    /// The anchor's reference (`0x01`).
    pub reference: &'a str,
    /// A cluster-service approval, when that service's quorum value is
    /// above 1.
    pub approval: Option<&'a A>,
}

impl<'a, A> DeregisterTrustAnchor<'a, A> {
    pub fn new(reference: &'a str) -> Self {
        DeregisterTrustAnchor { reference, approval: None }
    }

    pub fn approval(self, approval: &'a A) -> Self {
        DeregisterTrustAnchor { approval: Some(approval), ..self }
    }

    /// This request as one HSM takes it, with that HSM's approval.
    pub(crate) fn with_approval<'b>(&'b self, approval: Option<&'b Approval>) -> DeregisterTrustAnchor<'b, Approval> {
        DeregisterTrustAnchor { reference: self.reference, approval }
    }
}

/// `cluster mtls set-enforcement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMtlsEnforcement<'a, A> {
    pub level: MtlsLevel,
    /// A cluster-service approval, when that service's quorum value is
    /// above 1.
    pub approval: Option<&'a A>,
}

impl<'a, A> SetMtlsEnforcement<'a, A> {
    pub fn new(level: MtlsLevel) -> Self {
        SetMtlsEnforcement { level, approval: None }
    }

    pub fn approval(self, approval: &'a A) -> Self {
        SetMtlsEnforcement { approval: Some(approval), ..self }
    }

    /// This request as one HSM takes it, with that HSM's approval.
    pub(crate) fn with_approval<'b>(&'b self, approval: Option<&'b Approval>) -> SetMtlsEnforcement<'b, Approval> {
        SetMtlsEnforcement { level: self.level, approval }
    }
}

impl Session {
    fn mtls(&self) -> MtlsServiceClient<tonic::transport::Channel> {
        MtlsServiceClient::new(self.client().channel())
    }

    /// Registers a trust anchor (admins; at most 2 per HSM).
    pub async fn register_trust_anchor(
        &self,
        request: RegisterTrustAnchor<'_, Approval>,
    ) -> Result<TrustAnchor, ClientError> {
        let request = self.request(pb::RegisterTrustAnchorRequest {
            certificate: request.certificate_pem.to_owned(),
            approval: request.approval.map(Approval::to_proto),
        })?;
        let reply = self.mtls().register_trust_anchor(request).await?.into_inner();
        anchor(reply.trust_anchor)
    }

    pub async fn deregister_trust_anchor(
        &self,
        request: DeregisterTrustAnchor<'_, Approval>,
    ) -> Result<TrustAnchor, ClientError> {
        let request = self.request(pb::DeregisterTrustAnchorRequest {
            certificate_reference: request.reference.to_owned(),
            approval: request.approval.map(Approval::to_proto),
        })?;
        let reply = self.mtls().deregister_trust_anchor(request).await?.into_inner();
        anchor(reply.trust_anchor)
    }

    pub async fn list_trust_anchors(&self) -> Result<Vec<TrustAnchor>, ClientError> {
        let reply = self.mtls().list_trust_anchors(self.request(pb::ListTrustAnchorsRequest {})?).await?;
        Ok(reply.into_inner().trust_anchors.into_iter().map(TrustAnchor::from).collect())
    }

    /// Sets the enforcement level: only the user named `admin`, over a
    /// connection that presented a client certificate chained to a
    /// registered trust anchor.
    pub async fn set_mtls_enforcement(
        &self,
        request: SetMtlsEnforcement<'_, Approval>,
    ) -> Result<MtlsLevel, ClientError> {
        let request = self.request(pb::SetMtlsEnforcementRequest {
            level: request.level.as_str().to_owned(),
            approval: request.approval.map(Approval::to_proto),
        })?;
        MtlsLevel::parse(&self.mtls().set_mtls_enforcement(request).await?.into_inner().level)
    }

    pub async fn mtls_enforcement(&self) -> Result<MtlsLevel, ClientError> {
        let reply = self.mtls().get_mtls_enforcement(self.request(pb::GetMtlsEnforcementRequest {})?).await?;
        MtlsLevel::parse(&reply.into_inner().level)
    }
}

fn anchor(sent: Option<pb::TrustAnchor>) -> Result<TrustAnchor, ClientError> {
    sent.map(TrustAnchor::from).ok_or_else(|| ClientError::Protocol("the HSM sent no trust anchor".into()))
}

impl ClusterSession {
    /// Registers a trust anchor on every HSM, each with the approval of its
    /// own token; where it is already registered, that HSM counts as done.
    /// `Err` only when no HSM has it.
    pub async fn register_trust_anchor(
        &self,
        request: RegisterTrustAnchor<'_, ClusterApproval>,
    ) -> Result<FanOut<TrustAnchor>, ClientError> {
        let request = &request;
        self.on_all(|s| async move {
            let approval = approval_for(s, request.approval).await?;
            match s.register_trust_anchor(request.with_approval(approval.as_ref())).await {
                Err(ClientError::AlreadyExists(why)) => s
                    .list_trust_anchors()
                    .await?
                    .into_iter()
                    .find(|a| a.is_certificate(request.certificate_pem))
                    .ok_or(ClientError::AlreadyExists(why)),
                other => other,
            }
        })
        .await
        .into_result()
    }

    /// Removes a trust anchor on every HSM; where it is already gone, that
    /// HSM counts as done.
    pub async fn deregister_trust_anchor(
        &self,
        request: DeregisterTrustAnchor<'_, ClusterApproval>,
    ) -> Result<FanOut<Option<TrustAnchor>>, ClientError> {
        let request = &request;
        self.on_all(|s| async move {
            let approval = approval_for(s, request.approval).await?;
            match s.deregister_trust_anchor(request.with_approval(approval.as_ref())).await {
                Ok(anchor) => Ok(Some(anchor)),
                Err(ClientError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
        .into_result()
    }

    /// Every HSM's trust anchors.
    pub async fn list_trust_anchors_all(&self) -> FanOut<Vec<TrustAnchor>> {
        self.on_all(Session::list_trust_anchors).await
    }

    /// Sets the enforcement level on every HSM.
    pub async fn set_mtls_enforcement(
        &self,
        request: SetMtlsEnforcement<'_, ClusterApproval>,
    ) -> Result<FanOut<MtlsLevel>, ClientError> {
        let request = &request;
        self.on_all(|s| async move {
            let approval = approval_for(s, request.approval).await?;
            s.set_mtls_enforcement(request.with_approval(approval.as_ref())).await
        })
        .await
        .into_result()
    }

    /// Every HSM's enforcement level.
    pub async fn mtls_enforcement_all(&self) -> FanOut<MtlsLevel> {
        self.on_all(Session::mtls_enforcement).await
    }
}
