//! Quorum authentication (M of N, token-sign) and MFA on one HSM: tokens,
//! quorum values, approver keys and MFA keys. The cluster layer
//! (`cluster::quorum`) does the same on every HSM, each with its own token.
//!
//! Approvers sign a token offline: an RSA PKCS#1 v1.5 signature of the
//! 32-byte token taken as a SHA-256 digest, which is what
//! `openssl pkeyutl -sign -inkey key.pem -pkeyopt digest:sha256 -in token.bin`
//! makes.

use std::fmt;

use hsm_proto::v1::{self as pb, quorum_service_client::QuorumServiceClient, user_service_client::UserServiceClient};
use tonic::transport::Channel;

use crate::{ClientError, Role, Session, User};

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

/// A token and the approvers' signatures of it: one HSM's own token, or the
/// CloudHSM CLI's one token for a whole cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The HSM whose token this is; empty for a cluster's token.
    pub hsm_id: String,
    /// What approvers sign (32 bytes).
    pub token: Vec<u8>,
    /// Empty for one HSM's token; for a cluster's, every HSM's
    /// `approval_data` joined, whose SHA-256 is `token`: each HSM finds its
    /// own token in it.
    pub approval_data: Vec<u8>,
    /// (approver's username, signature).
    pub signatures: Vec<(String, Vec<u8>)>,
}

impl Approval {
    /// One token for the whole cluster from every HSM's token: their
    /// `approval_data` joined (in the order given) and its SHA-256, which
    /// each approver then signs once. This is what the CloudHSM CLI's
    /// token file holds.
    pub fn joined<'a>(tokens: impl IntoIterator<Item = &'a QuorumToken>) -> Approval {
        let approval_data: Vec<u8> = tokens.into_iter().flat_map(|t| t.approval_data.iter().copied()).collect();
        let token = ring::digest::digest(&ring::digest::SHA256, &approval_data).as_ref().to_vec();
        Approval { hsm_id: String::new(), token, approval_data, signatures: Vec::new() }
    }

    /// The approval as a gated request carries it.
    pub fn to_proto(&self) -> pb::Approval {
        pb::Approval {
            token: self.token.clone(),
            approval_data: self.approval_data.clone(),
            signatures: self
                .signatures
                .iter()
                .map(|(username, signature)| pb::ApprovalSignature {
                    username: username.clone(),
                    signature: signature.clone(),
                })
                .collect(),
        }
    }
}

/// An approval for a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterApproval {
    /// One token for every HSM ([`Approval::joined`]), as the CloudHSM
    /// CLI's token file carries it: every HSM gets the same approval and
    /// spends its own token out of it.
    Joined(Approval),
    /// One approval per HSM, each of that HSM's own token.
    PerHsm(Vec<Approval>),
}

impl ClusterApproval {
    /// Reads a signed quorum token file as `quorum token-sign generate`
    /// writes it and approvers complete it (the CloudHSM CLI's shape):
    /// `{"version": "2.0", "approval_data": BASE64, "token": BASE64,
    /// "signatures": [{"username": NAME, "signature": BASE64}]}`. Errors
    /// name the field and the rule.
    pub fn from_json(text: &str) -> Result<Self, ClientError> {
        use base64::{Engine as _, engine::general_purpose::STANDARD};
        let bad = |rule: String| ClientError::InvalidArgument(format!("token file: {rule}"));
        let file: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        match &file["version"] {
            serde_json::Value::String(v) if v == "2.0" => {}
            other => return Err(bad(format!("\"version\" must be \"2.0\", not {other}"))),
        }
        let base64 = |at: &str, value: &serde_json::Value| {
            let text = value.as_str().ok_or_else(|| bad(format!("\"{at}\" must be a base64 string")))?;
            STANDARD.decode(text.trim()).map_err(|e| bad(format!("\"{at}\" is not base64: {e}")))
        };
        if file["approval_data"].is_null() && file["tokens"].is_array() {
            return Err(bad("this is a registration or MFA token file (\"tokens\"); an approval is a quorum \
                            token file of the service it approves (quorum token-sign generate --service ...)"
                .into()));
        }
        let approval_data = base64("approval_data", &file["approval_data"])?;
        let token = base64("token", &file["token"])?;
        if ring::digest::digest(&ring::digest::SHA256, &approval_data).as_ref() != token.as_slice() {
            return Err(bad("\"token\" must be the SHA-256 of \"approval_data\"".into()));
        }
        let listed = match &file["signatures"] {
            serde_json::Value::Null => &[][..],
            value => value.as_array().ok_or_else(|| bad("\"signatures\" must be an array".into()))?,
        };
        let mut signatures = Vec::with_capacity(listed.len());
        for (j, s) in listed.iter().enumerate() {
            let at = format!("signatures[{j}]");
            let username =
                s["username"].as_str().ok_or_else(|| bad(format!("{at}: \"username\" must be the approver's name")))?;
            signatures.push((username.to_owned(), base64(&format!("{at}.signature"), &s["signature"])?));
        }
        Ok(ClusterApproval::Joined(Approval { hsm_id: String::new(), token, approval_data, signatures }))
    }

    /// The approval for the HSM `hsm_id`.
    pub fn for_hsm(&self, hsm_id: &str) -> Result<&Approval, ClientError> {
        match self {
            ClusterApproval::Joined(approval) => Ok(approval),
            ClusterApproval::PerHsm(approvals) => approvals.iter().find(|a| a.hsm_id == hsm_id).ok_or_else(|| {
                ClientError::InvalidArgument(format!(
                    "the approval has no token for HSM {hsm_id}; generate the token again (one per HSM of the \
                     cluster)"
                ))
            }),
        }
    }
}

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
        service: QuorumService,
        value: u32,
        approval: Option<&Approval>,
    ) -> Result<Vec<(QuorumService, u32)>, ClientError> {
        let request = self.request(pb::SetQuorumValueRequest {
            service: service.to_proto().into(),
            value,
            approval: approval.map(Approval::to_proto),
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
        signed: &[crate::SignedToken],
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

    /// The token a new MFA key for `username` must sign.
    pub async fn mfa_registration_token(&self, username: &str, role: Role) -> Result<Vec<u8>, ClientError> {
        let reply = self.change_mfa(pb::ChangeMfaRequest { ..mfa_request(username, role) }).await?;
        if reply.token.is_empty() {
            return Err(ClientError::Protocol("no MFA registration token in the answer".into()));
        }
        Ok(reply.token)
    }

    /// Turns MFA on with `public_key` (SPKI DER), given its signature of
    /// `token` from [`Session::mfa_registration_token`]; with
    /// `new_password`, the password changes in the same step (the CloudHSM
    /// CLI's `--change-password`).
    #[expect(clippy::too_many_arguments, reason = "one call of the HSM's, field by field")]
    pub async fn register_mfa(
        &self,
        username: &str,
        role: Role,
        public_key: &[u8],
        token: &[u8],
        signature: &[u8],
        new_password: Option<&str>,
        approval: Option<&Approval>,
    ) -> Result<User, ClientError> {
        let reply = self
            .change_mfa(pb::ChangeMfaRequest {
                public_key: public_key.to_vec(),
                token: token.to_vec(),
                signature: signature.to_vec(),
                new_password: new_password.unwrap_or_default().to_owned(),
                approval: approval.map(Approval::to_proto),
                ..mfa_request(username, role)
            })
            .await?;
        User::try_from(reply.user)
    }

    /// Turns MFA off; with `new_password`, the password changes with it.
    pub async fn deregister_mfa(
        &self,
        username: &str,
        role: Role,
        new_password: Option<&str>,
        approval: Option<&Approval>,
    ) -> Result<User, ClientError> {
        let reply = self
            .change_mfa(pb::ChangeMfaRequest {
                deregister: true,
                new_password: new_password.unwrap_or_default().to_owned(),
                approval: approval.map(Approval::to_proto),
                ..mfa_request(username, role)
            })
            .await?;
        User::try_from(reply.user)
    }

    async fn change_mfa(&self, message: pb::ChangeMfaRequest) -> Result<pb::ChangeMfaResponse, ClientError> {
        let request = self.request(message)?;
        Ok(UserServiceClient::new(self.client().channel()).change_mfa(request).await?.into_inner())
    }

    fn quorum(&self) -> QuorumServiceClient<Channel> {
        QuorumServiceClient::new(self.client().channel())
    }
}

fn mfa_request(username: &str, role: Role) -> pb::ChangeMfaRequest {
    pb::ChangeMfaRequest { username: username.to_owned(), role: pb::Role::from(role).into(), ..Default::default() }
}

fn values(raw: Vec<pb::QuorumValue>) -> Result<Vec<(QuorumService, u32)>, ClientError> {
    raw.into_iter().map(|v| Ok((QuorumService::from_proto(v.service)?, v.value))).collect()
}
