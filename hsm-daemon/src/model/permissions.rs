//! The permission table: the seed's "HSM user permissions table" as data,
//! and every other rule about *who* may do something.
//!
//! Every operation the HSM offers is one [`Operation`]; [`allowed`] says, in
//! one exhaustive `match`, which identities may perform it. The service
//! layer classifies each RPC as an operation (exhaustively, so a new RPC does
//! not compile until it is classified) and calls [`authorize`] before any
//! handler runs.
//!
//! Inside some operations the model asks a narrower question of the caller
//! (may an admin set this attribute, copy users, see every key?) or of
//! another user (may they approve this service?): each is an [`Action`],
//! and [`Action::allowed`] answers it in one exhaustive `match` too. So this
//! file alone answers "who may do X"; the model keeps only the rules about
//! objects (whose key, which user, in which state).
//!
//! `docs/permissions.md` shows both tables; a test compares every cell of it
//! with [`allowed`] and [`Action::allowed`].

use std::fmt;

use crate::model::{Caller, Identity, ModelError, QuorumService, Username};

listed_enum! {
/// An operation the permission table classifies: one per RPC.
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
    const ANYONE: &[Identity] = Identity::ALL;
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

listed_enum! {
/// A question about the caller (or an approver) that the model asks inside an
/// operation, once the operation's own row let the caller in: the
/// sub-operations of the permission table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `key set-attribute` of `trusted`, on any key: CloudHSM lets admins
    /// mark wrapping keys trusted, and nobody else.
    SetTrustedAttribute,
    /// `key set-attribute` of any other attribute, on one's own keys.
    SetKeyAttribute,
    /// Seeing every user's keys (`key list` shows them all); everyone else
    /// sees their own keys, keys shared with them and public keys.
    SeeEveryKey,
    /// Using a key's material: encrypt, decrypt, sign, verify, wrap, unwrap
    /// with it, export its public key. The operations' rows already say so;
    /// the model asks again before it hands material out.
    UseKeys,
    /// Extracting or inserting a masked object of any user's key; everyone
    /// else may copy only keys they own.
    CopyAnyKey,
    /// Extracting or inserting a masked object of a user: cloning (the
    /// appliance user) and `user replicate` (admins).
    CopyUsers,
    /// Taking a peer's whole mTLS policy when a new HSM is cloned.
    ReplaceMtlsPolicy,
    /// Setting the mTLS enforcement level: the user named `admin` only (and
    /// the model also wants a connection anchored by a registered trust
    /// anchor, which is a rule about the connection, not the caller).
    SetMtlsEnforcement,
    /// A quorum token for an admin service (`user`, `quorum`, `cluster`).
    AdminServiceToken,
    /// A quorum token for a key service (`key-management`, `key-usage`).
    KeyServiceToken,
    /// A token to register one's own quorum key.
    RegistrationToken,
    /// Deleting every user's quorum tokens at once; everyone may delete
    /// their own.
    DeleteEveryonesQuorumTokens,
    /// Approving (signing the token of) an admin service. A key service is
    /// approved by the key's owner and the users it is shared with: an
    /// object rule.
    ApproveAdminServices,
    /// Changing another user's MFA; everyone may change their own.
    ChangeAnyonesMfa,
}
}

/// Who may perform an [`Action`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who {
    pub identities: &'static [Identity],
    /// Only the user of this name among them (the mTLS enforcement level is
    /// the cluster's first admin's to set).
    pub only_user: Option<&'static str>,
}

impl Who {
    const fn any(identities: &'static [Identity]) -> Self {
        Who { identities, only_user: None }
    }

    /// Whether a user of `identity` named `username` (`None`: no session)
    /// may.
    pub fn admits(self, identity: Identity, username: Option<&Username>) -> bool {
        self.identities.contains(&identity)
            && self.only_user.is_none_or(|only| username.is_some_and(|name| name.as_str() == only))
    }
}

impl fmt::Display for Who {
    /// The identities in words, for refusals: "admin (CO) or crypto-user
    /// (CU)"; "the user named 'admin' (admin (CO))".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = self.identities.iter().map(Identity::to_string).collect::<Vec<_>>().join(" or ");
        if names.is_empty() {
            names = "nobody".to_owned();
        }
        match self.only_user {
            None => f.write_str(&names),
            Some(user) => write!(f, "the user named '{user}' ({names})"),
        }
    }
}

impl Action {
    /// Who may: one exhaustive `match`, the sub-operation rows of the table.
    pub fn allowed(self) -> Who {
        use Identity::{ApplianceUser as AU, CryptoOfficer as CO, CryptoUser as CU};
        match self {
            Action::SetTrustedAttribute => Who::any(&[CO]),
            Action::SetKeyAttribute => Who::any(&[CU]),
            Action::SeeEveryKey => Who::any(&[CO]),
            Action::UseKeys => Who::any(&[CU]),
            Action::CopyAnyKey => Who::any(&[CO, AU]),
            Action::CopyUsers => Who::any(&[CO, AU]),
            Action::ReplaceMtlsPolicy => Who::any(&[AU]),
            Action::SetMtlsEnforcement => Who { identities: &[CO], only_user: Some(super::ADMIN_USERNAME) },
            Action::AdminServiceToken => Who::any(&[CO]),
            Action::KeyServiceToken => Who::any(&[CU]),
            Action::RegistrationToken => Who::any(&[CO, CU]),
            Action::DeleteEveryonesQuorumTokens => Who::any(&[CO]),
            Action::ApproveAdminServices => Who::any(&[CO]),
            Action::ChangeAnyonesMfa => Who::any(&[CO]),
        }
    }

    /// The action of asking for a quorum token for `service`.
    pub fn quorum_token(service: QuorumService) -> Action {
        match service {
            QuorumService::User | QuorumService::Quorum | QuorumService::Cluster => Action::AdminServiceToken,
            QuorumService::KeyManagement | QuorumService::KeyUsage => Action::KeyServiceToken,
            QuorumService::Registration => Action::RegistrationToken,
        }
    }
}

impl Caller {
    /// Whether the caller may perform `action`.
    pub fn may(&self, action: Action) -> bool {
        action.allowed().admits(self.identity, self.session.as_ref().map(|(_, name)| name))
    }
}

#[cfg(test)]
mod tests;
