//! Approvals: a quorum token and the approvers' signatures of it, for one
//! HSM or for a cluster, and the CloudHSM CLI's signed token file.

use hsm_proto::v1 as pb;

use crate::{ClientError, QuorumToken};

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
