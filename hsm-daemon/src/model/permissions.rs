//! The permission table: the seed's "HSM user permissions table" as data.
//!
//! Every operation the HSM offers is one [`Operation`]; [`allowed`] says, in one
//! exhaustive `match`, which identities may perform it. The service layer
//! classifies each RPC as an operation (exhaustively, so a new RPC does not
//! compile until it is classified) and calls [`authorize`] before any handler
//! runs. Object rules (whose password, which user may be deleted) live with
//! the objects, in the model.

use std::fmt;

use crate::model::{Identity, ModelError};

/// An operation the permission table classifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// Seed row "Get basic cluster info".
    GetClusterInfo,
    /// Seed row "Get sync status".
    GetSyncStatus,
    /// Seed row "Extract, insert masked objects": how HSMs of a cluster copy
    /// keys (and, for cloning, users) to each other.
    ExtractMaskedObject,
    InsertMaskedObject,
    /// Activation: only the precrypto officer (the seed's PRECO section).
    ActivateCluster,
    /// Opening a session: open to anyone.
    Login,
    /// Ending one's own session.
    Logout,
    /// Checking one's own session (an extension: benchmarks, keep-alives).
    Ping,
    /// Seed row "Change own password".
    ChangeOwnPassword,
    /// Seed row "Change any user's password".
    ChangeAnyPassword,
    /// Seed row "Add, remove users".
    CreateUser,
    /// Seed row "Add, remove users".
    DeleteUser,
    /// Listing users: not in the seed; CloudHSM lets every logged-in user do
    /// it, and before activation it is one of the three things that work
    /// (cloudhsm-facts.md).
    ListUsers,
    /// Seed row "Key management functions" (create, delete, wrap, unwrap,
    /// modify): crypto users.
    GenerateSymmetricKey,
    GenerateKeyPair,
    ImportKey,
    ExportPublicKey,
    WrapKey,
    UnwrapKey,
    DeleteKey,
    ShareKey,
    UnshareKey,
    /// Key management, but admins may set `trusted` (the model allows them
    /// nothing else).
    SetKeyAttribute,
    /// Key management, but admins may list keys (CloudHSM's `key list`).
    ListKeys,
    /// Seed row "Encrypt, decrypt".
    Encrypt,
    Decrypt,
    /// Seed row "Sign, verify" (HMAC signing included).
    Sign,
    Verify,
    /// Seed row "Generate digests and HMACs".
    Digest,
    /// Random bytes from the HSM's generator (PKCS#11's C_GenerateRandom):
    /// not in the seed; CloudHSM's PKCS#11 library asks for it in a
    /// crypto user's session, so it is classed with the crypto operations.
    GenerateRandom,
    /// Reading the HSM's audit log: not in the seed (CloudHSM ships audit
    /// logs to CloudWatch); admins only, since the log shows every user's
    /// activity.
    ReadAuditLog,
    /// `cluster mtls register-trust-anchor` and `deregister-trust-anchor`:
    /// admins (CloudHSM's user type for both).
    RegisterTrustAnchor,
    DeregisterTrustAnchor,
    /// `cluster mtls list-trust-anchors`: CloudHSM lets anyone list them;
    /// as for users, the emulator follows the seed's table (see
    /// cloudhsm-facts.md), so logged-in users; the appliance user copies
    /// them to a new HSM (cloning).
    ListTrustAnchors,
    /// `cluster mtls set-enforcement`: admins, and the model narrows it to
    /// the user named `admin` over an mTLS connection.
    SetMtlsEnforcement,
    /// `cluster mtls get-enforcement`: admins and crypto users (CloudHSM),
    /// and the appliance user for cloning.
    GetMtlsEnforcement,
    /// `quorum token-sign generate`: admins for admin services, crypto
    /// users for key services (the model checks which).
    GenerateQuorumToken,
    /// `quorum token-sign list`.
    ListQuorumTokens,
    /// `quorum token-sign delete`: one's own, or (admins) everyone's.
    DeleteQuorumTokens,
    /// `quorum token-sign set-quorum-value`: admins (and itself gated by
    /// the quorum service's value).
    SetQuorumValue,
    /// `quorum token-sign list-quorum-values`; the appliance user reads
    /// them to clone a new HSM.
    ListQuorumValues,
    /// `user change-quorum token-sign register`: one's own key.
    RegisterQuorumKey,
    /// `user change-mfa token-sign`: one's own, or (admins) anyone's.
    ChangeMfa,
}

impl Operation {
    /// Every operation, for tests that walk the table.
    pub const ALL: [Operation; 43] = [
        Operation::GetClusterInfo,
        Operation::GetSyncStatus,
        Operation::ExtractMaskedObject,
        Operation::InsertMaskedObject,
        Operation::ActivateCluster,
        Operation::Login,
        Operation::Logout,
        Operation::Ping,
        Operation::ChangeOwnPassword,
        Operation::ChangeAnyPassword,
        Operation::CreateUser,
        Operation::DeleteUser,
        Operation::ListUsers,
        Operation::GenerateSymmetricKey,
        Operation::GenerateKeyPair,
        Operation::ImportKey,
        Operation::ExportPublicKey,
        Operation::WrapKey,
        Operation::UnwrapKey,
        Operation::DeleteKey,
        Operation::ShareKey,
        Operation::UnshareKey,
        Operation::SetKeyAttribute,
        Operation::ListKeys,
        Operation::Encrypt,
        Operation::Decrypt,
        Operation::Sign,
        Operation::Verify,
        Operation::Digest,
        Operation::GenerateRandom,
        Operation::ReadAuditLog,
        Operation::RegisterTrustAnchor,
        Operation::DeregisterTrustAnchor,
        Operation::ListTrustAnchors,
        Operation::SetMtlsEnforcement,
        Operation::GetMtlsEnforcement,
        Operation::GenerateQuorumToken,
        Operation::ListQuorumTokens,
        Operation::DeleteQuorumTokens,
        Operation::SetQuorumValue,
        Operation::ListQuorumValues,
        Operation::RegisterQuorumKey,
        Operation::ChangeMfa,
    ];
}

impl fmt::Display for Operation {
    /// The CloudHSM CLI command that performs the operation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::GetClusterInfo => "cluster hsm-info",
            Operation::GetSyncStatus => "cluster sync-status",
            Operation::ExtractMaskedObject => "extract masked object",
            Operation::InsertMaskedObject => "insert masked object",
            Operation::ActivateCluster => "cluster activate",
            Operation::Login => "login",
            Operation::Logout => "logout",
            Operation::Ping => "session ping",
            Operation::ChangeOwnPassword => "user change-password (own password)",
            Operation::ChangeAnyPassword => "user change-password (another user's password)",
            Operation::CreateUser => "user create",
            Operation::DeleteUser => "user delete",
            Operation::ListUsers => "user list",
            Operation::GenerateSymmetricKey => "key generate-symmetric",
            Operation::GenerateKeyPair => "key generate-asymmetric-pair",
            Operation::ImportKey => "key import",
            Operation::ExportPublicKey => "key generate-file",
            Operation::WrapKey => "key wrap",
            Operation::UnwrapKey => "key unwrap",
            Operation::DeleteKey => "key delete",
            Operation::ShareKey => "key share",
            Operation::UnshareKey => "key unshare",
            Operation::SetKeyAttribute => "key set-attribute",
            Operation::ListKeys => "key list",
            Operation::Encrypt => "crypto encrypt",
            Operation::Decrypt => "crypto decrypt",
            Operation::Sign => "crypto sign",
            Operation::Verify => "crypto verify",
            Operation::Digest => "crypto digest",
            Operation::GenerateRandom => "generate random",
            Operation::ReadAuditLog => "audit list",
            Operation::RegisterTrustAnchor => "cluster mtls register-trust-anchor",
            Operation::DeregisterTrustAnchor => "cluster mtls deregister-trust-anchor",
            Operation::ListTrustAnchors => "cluster mtls list-trust-anchors",
            Operation::SetMtlsEnforcement => "cluster mtls set-enforcement",
            Operation::GetMtlsEnforcement => "cluster mtls get-enforcement",
            Operation::GenerateQuorumToken => "quorum token-sign generate",
            Operation::ListQuorumTokens => "quorum token-sign list",
            Operation::DeleteQuorumTokens => "quorum token-sign delete",
            Operation::SetQuorumValue => "quorum token-sign set-quorum-value",
            Operation::ListQuorumValues => "quorum token-sign list-quorum-values",
            Operation::RegisterQuorumKey => "user change-quorum token-sign register",
            Operation::ChangeMfa => "user change-mfa token-sign",
        })
    }
}

/// The identities that may perform `operation`.
pub fn allowed(operation: Operation) -> &'static [Identity] {
    use Identity::{
        ApplianceUser as AU, CryptoOfficer as CO, CryptoUser as CU, PrecryptoOfficer as PRECO,
        UnactivatedAppliance as AU0,
    };
    const ANYONE: &[Identity] = &Identity::ALL;
    match operation {
        Operation::GetClusterInfo => ANYONE,
        Operation::GetSyncStatus | Operation::ExtractMaskedObject | Operation::InsertMaskedObject => &[CO, CU, AU],
        Operation::ActivateCluster => &[PRECO],
        Operation::Login => ANYONE,
        Operation::Logout | Operation::Ping => &[PRECO, CO, CU, AU, AU0],
        Operation::ChangeOwnPassword => &[CO, CU, AU],
        Operation::ChangeAnyPassword => &[CO],
        Operation::CreateUser => &[CO],
        Operation::DeleteUser => &[CO],
        Operation::ListUsers => &[PRECO, CO, CU, AU, AU0],
        Operation::GenerateSymmetricKey
        | Operation::GenerateKeyPair
        | Operation::ImportKey
        | Operation::ExportPublicKey
        | Operation::WrapKey
        | Operation::UnwrapKey
        | Operation::DeleteKey
        | Operation::ShareKey
        | Operation::UnshareKey => &[CU],
        Operation::SetKeyAttribute | Operation::ListKeys => &[CO, CU],
        Operation::Encrypt | Operation::Decrypt | Operation::Sign | Operation::Verify | Operation::Digest => &[CU],
        Operation::GenerateRandom => &[CU],
        Operation::ReadAuditLog => &[CO],
        Operation::RegisterTrustAnchor | Operation::DeregisterTrustAnchor | Operation::SetMtlsEnforcement => &[CO],
        Operation::ListTrustAnchors | Operation::GetMtlsEnforcement => &[CO, CU, AU],
        Operation::GenerateQuorumToken
        | Operation::ListQuorumTokens
        | Operation::DeleteQuorumTokens
        | Operation::RegisterQuorumKey
        | Operation::ChangeMfa => &[CO, CU],
        Operation::SetQuorumValue => &[CO],
        Operation::ListQuorumValues => &[CO, CU, AU],
    }
}

/// Refuses `operation` unless `identity` may perform it.
pub fn authorize(operation: Operation, identity: Identity) -> Result<(), ModelError> {
    if allowed(operation).contains(&identity) {
        Ok(())
    } else if identity == Identity::Unauthenticated {
        Err(ModelError::NotLoggedIn { operation })
    } else if identity.before_activation() {
        Err(ModelError::NotActivated { operation, identity })
    } else {
        Err(ModelError::PermissionDenied { operation, identity })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's table written out independently of `allowed`, row by row,
    /// in the column order CO, CU, AU, unauthenticated, PRECO, and AU before
    /// activation (cluster info, user list and session upkeep only).
    const EXPECTED: &[(Operation, [bool; 6])] = &[
        (Operation::GetClusterInfo, [true, true, true, true, true, true]),
        (Operation::GetSyncStatus, [true, true, true, false, false, false]),
        (Operation::ExtractMaskedObject, [true, true, true, false, false, false]),
        (Operation::InsertMaskedObject, [true, true, true, false, false, false]),
        (Operation::ChangeOwnPassword, [true, true, true, false, false, false]),
        (Operation::ChangeAnyPassword, [true, false, false, false, false, false]),
        (Operation::CreateUser, [true, false, false, false, false, false]),
        (Operation::DeleteUser, [true, false, false, false, false, false]),
        (Operation::ActivateCluster, [false, false, false, false, true, false]),
        (Operation::Login, [true, true, true, true, true, true]),
        (Operation::Logout, [true, true, true, false, true, true]),
        (Operation::Ping, [true, true, true, false, true, true]),
        (Operation::ListUsers, [true, true, true, false, true, true]),
        (Operation::GenerateSymmetricKey, [false, true, false, false, false, false]),
        (Operation::GenerateKeyPair, [false, true, false, false, false, false]),
        (Operation::ImportKey, [false, true, false, false, false, false]),
        (Operation::ExportPublicKey, [false, true, false, false, false, false]),
        (Operation::WrapKey, [false, true, false, false, false, false]),
        (Operation::UnwrapKey, [false, true, false, false, false, false]),
        (Operation::DeleteKey, [false, true, false, false, false, false]),
        (Operation::ShareKey, [false, true, false, false, false, false]),
        (Operation::UnshareKey, [false, true, false, false, false, false]),
        (Operation::SetKeyAttribute, [true, true, false, false, false, false]),
        (Operation::ListKeys, [true, true, false, false, false, false]),
        (Operation::Encrypt, [false, true, false, false, false, false]),
        (Operation::Decrypt, [false, true, false, false, false, false]),
        (Operation::Sign, [false, true, false, false, false, false]),
        (Operation::Verify, [false, true, false, false, false, false]),
        (Operation::Digest, [false, true, false, false, false, false]),
        (Operation::GenerateRandom, [false, true, false, false, false, false]),
        (Operation::ReadAuditLog, [true, false, false, false, false, false]),
        (Operation::RegisterTrustAnchor, [true, false, false, false, false, false]),
        (Operation::DeregisterTrustAnchor, [true, false, false, false, false, false]),
        (Operation::ListTrustAnchors, [true, true, true, false, false, false]),
        (Operation::SetMtlsEnforcement, [true, false, false, false, false, false]),
        (Operation::GetMtlsEnforcement, [true, true, true, false, false, false]),
        (Operation::GenerateQuorumToken, [true, true, false, false, false, false]),
        (Operation::ListQuorumTokens, [true, true, false, false, false, false]),
        (Operation::DeleteQuorumTokens, [true, true, false, false, false, false]),
        (Operation::SetQuorumValue, [true, false, false, false, false, false]),
        (Operation::ListQuorumValues, [true, true, true, false, false, false]),
        (Operation::RegisterQuorumKey, [true, true, false, false, false, false]),
        (Operation::ChangeMfa, [true, true, false, false, false, false]),
    ];
    const COLUMNS: [Identity; 6] = [
        Identity::CryptoOfficer,
        Identity::CryptoUser,
        Identity::ApplianceUser,
        Identity::Unauthenticated,
        Identity::PrecryptoOfficer,
        Identity::UnactivatedAppliance,
    ];

    #[test]
    fn table_matches_the_seed_for_every_operation_and_identity() {
        assert_eq!(EXPECTED.len(), Operation::ALL.len(), "every operation has an expected row");
        for (operation, row) in EXPECTED {
            for (identity, want) in COLUMNS.iter().zip(row) {
                let got = authorize(*operation, *identity).is_ok();
                assert_eq!(got, *want, "{operation} as {identity}");
            }
        }
    }

    #[test]
    fn refusals_name_the_operation_and_the_role() {
        let err = authorize(Operation::CreateUser, Identity::CryptoUser).unwrap_err();
        assert_eq!(err.to_string(), "user create is not permitted for role crypto-user (CU)");
        let err = authorize(Operation::ListUsers, Identity::Unauthenticated).unwrap_err();
        assert!(matches!(err, ModelError::NotLoggedIn { .. }));
        assert!(err.to_string().contains("user list"), "{err}");
        assert!(err.to_string().contains("unauthenticated"), "{err}");
        for before in [Identity::PrecryptoOfficer, Identity::UnactivatedAppliance] {
            let err = authorize(Operation::GetSyncStatus, before).unwrap_err();
            assert_eq!(err, ModelError::NotActivated { operation: Operation::GetSyncStatus, identity: before });
            assert!(err.to_string().contains("cluster sync-status"), "{err}");
            assert!(err.to_string().contains("while the cluster is not activated"), "{err}");
        }
    }
}
