//! Quorum authentication (M of N) and the token-sign strategy behind it and
//! behind MFA: registered RSA keys, quorum values, and the HSM's table of
//! tokens that approvers sign offline.
//!
//! A token is the SHA-256 of a preimage the HSM keeps (`approval_data`: a
//! format byte, the service, this HSM's id, the requester and 32 random
//! bytes). Approvers sign the token as a SHA-256 digest with RSA PKCS#1 v1.5
//! (`openssl pkeyutl -sign -pkeyopt digest:sha256 -in token.bin`), so the
//! HSM checks each signature over the preimage with ring's
//! `RSA_PKCS1_2048_8192_SHA256`. Tokens live [`TOKEN_LIFETIME`], at most
//! [`MAX_TOKENS`] per HSM, are bound to the user who asked for them, and are
//! removed when a call uses them, so an approval cannot be replayed.
//! Signature checks are RSA operations: [`PendingApproval::verify`] runs
//! outside the model's lock, and [`Hsm::spend_approval`](super::Hsm) then
//! re-checks that the token is still there before the gated change.
//!
//! # Layout
//! - This file: the services ([`QuorumService`]) and their values.
//! - `approver_key`: [`ApproverKey`], a registered RSA public key.
//! - `tokens`: the token table and the preimage format.
//! - `approval`: an [`Approval`] as presented, and the two steps that check
//!   it.

mod approval;
mod approver_key;
#[cfg(test)]
pub(crate) mod fixtures;
mod tokens;

use std::{fmt, time::Duration};

use crate::model::ModelError;

pub(super) use self::tokens::{Purpose, Tokens, preimages, sha256};
pub use self::{
    approval::{Approval, PendingApproval, VerifiedApproval},
    approver_key::ApproverKey,
    tokens::{IssuedToken, TokenId, TokenView},
};

/// How long a token can be used after it was issued.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Tokens an HSM holds at most (CloudHSM's published limit).
pub const MAX_TOKENS: usize = 1_024;
/// The largest quorum value (CloudHSM: M is 2 to 8; 1 turns quorum off).
pub const MAX_QUORUM: u8 = 8;

/// What a token is for: a quorum service (CloudHSM CLI's `--service`
/// names), or proving possession of a key being registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuorumService {
    /// `user create|delete|change-password|change-mfa` (admins).
    User,
    /// `quorum token-sign set-quorum-value` (admins).
    Quorum,
    /// Cluster-wide settings such as mTLS (admins).
    Cluster,
    /// Key management of a key with a manage quorum value (crypto users).
    KeyManagement,
    /// Key usage of a key with a use quorum value (crypto users).
    KeyUsage,
    /// Registering one's own quorum key (`user change-quorum token-sign
    /// register`): the signed token proves the private key is held.
    Registration,
}

impl QuorumService {
    /// The services with an HSM-wide quorum value, in listing order.
    pub const WITH_VALUES: [QuorumService; 3] = [QuorumService::User, QuorumService::Quorum, QuorumService::Cluster];

    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ModelError> {
        Ok(match raw {
            "user" => QuorumService::User,
            "quorum" => QuorumService::Quorum,
            "cluster" => QuorumService::Cluster,
            "key-management" => QuorumService::KeyManagement,
            "key-usage" => QuorumService::KeyUsage,
            "registration" => QuorumService::Registration,
            _ => {
                return Err(ModelError::InvalidArgument {
                    field,
                    rule: "must be user, quorum, cluster, key-management, key-usage or registration".into(),
                });
            }
        })
    }

    fn code(self) -> u8 {
        match self {
            QuorumService::User => 1,
            QuorumService::Quorum => 2,
            QuorumService::Cluster => 3,
            QuorumService::KeyManagement => 4,
            QuorumService::KeyUsage => 5,
            QuorumService::Registration => 6,
        }
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

/// A quorum value M: 1 (no approval needed) to [`MAX_QUORUM`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QuorumValue(u8);

impl QuorumValue {
    pub const OFF: QuorumValue = QuorumValue(1);

    pub fn parse(field: &'static str, raw: u32) -> Result<Self, ModelError> {
        match u8::try_from(raw) {
            Ok(v @ 1..=MAX_QUORUM) => Ok(QuorumValue(v)),
            _ => Err(ModelError::InvalidArgument {
                field,
                rule: format!("must be 1 to {MAX_QUORUM} (1 turns quorum off)"),
            }),
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// The HSM-wide quorum values (the `user`, `quorum` and `cluster` services).
/// The same on every HSM of a cluster: the client writes them to all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumValues {
    pub user: QuorumValue,
    pub quorum: QuorumValue,
    pub cluster: QuorumValue,
}

impl Default for QuorumValues {
    fn default() -> Self {
        QuorumValues { user: QuorumValue::OFF, quorum: QuorumValue::OFF, cluster: QuorumValue::OFF }
    }
}

impl QuorumValues {
    /// The value of an admin service; `None` for services whose values are
    /// per key (or that have none).
    pub fn of(&self, service: QuorumService) -> Option<QuorumValue> {
        match service {
            QuorumService::User => Some(self.user),
            QuorumService::Quorum => Some(self.quorum),
            QuorumService::Cluster => Some(self.cluster),
            QuorumService::KeyManagement | QuorumService::KeyUsage | QuorumService::Registration => None,
        }
    }

    pub(super) fn set(&mut self, service: QuorumService, value: QuorumValue) -> Result<(), ModelError> {
        let slot = match service {
            QuorumService::User => &mut self.user,
            QuorumService::Quorum => &mut self.quorum,
            QuorumService::Cluster => &mut self.cluster,
            QuorumService::KeyManagement | QuorumService::KeyUsage | QuorumService::Registration => {
                return Err(ModelError::InvalidArgument {
                    field: "service",
                    rule: format!("{service} has no HSM-wide quorum value; use user, quorum or cluster"),
                });
            }
        };
        *slot = value;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
