//! Approvals as a gated call presents them: the token, each approver's
//! signature, and the two steps of checking them around the model's lock.

use super::{ApproverKey, QuorumService, TokenId, preimages, sha256};
use crate::model::{ModelError, Username};

/// A quorum approval as presented with a gated call: the token and each
/// approver's signature of it.
#[derive(Debug, Clone)]
pub struct Approval {
    pub token: TokenId,
    pub signatures: Vec<(Username, Vec<u8>)>,
    /// `None`: `token` is this HSM's own. `Some`: the CloudHSM CLI's one
    /// token for a cluster, the SHA-256 of every HSM's preimage joined;
    /// this HSM's token is among them, and the signatures cover the whole.
    pub approval_data: Option<Vec<u8>>,
}

impl Approval {
    /// The token ids the approval may stand for on this HSM, and the bytes
    /// its signatures cover if the token is found (`None`: the token's own
    /// preimage).
    pub(in crate::model) fn candidates(&self) -> Result<(Vec<TokenId>, Option<&[u8]>), ModelError> {
        match &self.approval_data {
            None => Ok((vec![self.token], None)),
            Some(data) => {
                if sha256(data) != self.token {
                    return Err(ModelError::InvalidArgument {
                        field: "approval.token",
                        rule: "must be the SHA-256 of approval.approval_data".into(),
                    });
                }
                let ids = preimages("approval.approval_data", data)?.into_iter().map(sha256).collect();
                Ok((ids, Some(data)))
            }
        }
    }
}

/// An approval whose token and approvers the model found; its signatures
/// are checked next, outside the model's lock.
#[derive(Debug)]
pub struct PendingApproval {
    pub(in crate::model) token: TokenId,
    pub(in crate::model) service: QuorumService,
    pub(in crate::model) preimage: Vec<u8>,
    pub(in crate::model) required: u8,
    /// Each distinct approver's registered key and signature.
    pub(in crate::model) signers: Vec<(Username, ApproverKey, Vec<u8>)>,
}

/// An approval with at least the required number of distinct registered
/// approvers' valid signatures.
#[derive(Debug)]
pub struct VerifiedApproval {
    pub(in crate::model) token: TokenId,
    pub(in crate::model) service: QuorumService,
    pub(in crate::model) approvers: u8,
}

impl PendingApproval {
    /// Checks every signature: one that does not verify refuses the
    /// approval (it names the approver, never the signature).
    pub fn verify(self) -> Result<VerifiedApproval, ModelError> {
        for (username, key, signature) in &self.signers {
            if !key.verifies(&self.preimage, signature) {
                return Err(ModelError::QuorumSignature {
                    rule: format!("the signature by '{username}' does not verify with their registered quorum key"),
                });
            }
        }
        let approvers = u8::try_from(self.signers.len()).unwrap_or(u8::MAX);
        if approvers < self.required {
            return Err(ModelError::QuorumNotMet { approvers, required: self.required });
        }
        Ok(VerifiedApproval { token: self.token, service: self.service, approvers })
    }
}
