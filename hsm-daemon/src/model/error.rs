//! What can go wrong in the model, one variant per HSM outcome. The service
//! layer maps each variant to one gRPC status (`service::status`).
//!
//! Messages name fields, rules, operations and roles; they never carry a
//! password, a token or key material.

use crate::{
    crypto::CryptoError,
    model::{AttrName, Identity, KeyRef, Operation, Role, Username, mtls::AnchorRef},
};

/// An HSM operation's failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The caller has no session and the operation needs one.
    #[error("{operation} is not permitted for an unauthenticated session (role: unauthenticated); log in first")]
    NotLoggedIn { operation: Operation },

    /// The caller's identity may not perform the operation (the permission table).
    #[error("{operation} is not permitted for role {identity}")]
    PermissionDenied { operation: Operation, identity: Identity },

    /// A pre-activation identity asked for more than the cluster allows
    /// before activation.
    #[error(
        "{operation} is not permitted for role {identity} while the cluster is not activated; until then only \
         cluster info, the user list and activation (by the precrypto officer) work"
    )]
    NotActivated { operation: Operation, identity: Identity },

    /// The presented session token is malformed, unknown, logged out or expired.
    #[error("{operation} refused (role: unauthenticated): the session token is {reason}; log in again")]
    InvalidSession { operation: Operation, reason: &'static str },

    /// Wrong username, role or password. One message for all three, so that a
    /// caller cannot probe which usernames exist.
    #[error("login failed: invalid username, role or password")]
    LoginFailed,

    /// A field of the request breaks a rule.
    #[error("invalid {field}: {rule}")]
    InvalidArgument { field: &'static str, rule: String },

    #[error("no user named '{username}' with role {role}")]
    UserNotFound { username: Username, role: Role },

    #[error("a user named '{username}' already exists")]
    UserExists { username: Username },

    #[error("the HSM holds the maximum of {max} users")]
    TooManyUsers { max: usize },

    #[error("the HSM holds the maximum of {max} open sessions; log out unused sessions")]
    TooManySessions { max: usize },

    #[error("user '{username}' is locked after too many failed logins; an admin must set a new password")]
    UserLocked { username: Username },

    #[error("the cluster is already activated")]
    AlreadyActivated,

    #[error("user '{username}' is logged in and cannot be deleted")]
    UserLoggedIn { username: Username },

    #[error("'{username}' is the last admin and cannot be deleted")]
    LastAdmin { username: Username },

    #[error("the appliance user '{username}' belongs to the cluster and cannot be deleted")]
    ApplianceUserFixed { username: Username },

    #[error("user '{username}' owns {count} key(s) and cannot be deleted; delete the keys first")]
    UserOwnsKeys { username: Username, count: usize },

    /// No key with this reference that the caller can see.
    #[error("key {reference} not found")]
    KeyNotFound { reference: KeyRef },

    /// An object rule refuses the caller (owner, shared user, admin).
    #[error("key {reference}: permission denied: {rule}")]
    KeyPermission { reference: KeyRef, rule: String },

    /// The key's attributes do not allow the operation.
    #[error("key {reference} does not allow this operation: its {attribute} attribute is false")]
    KeyAttribute { reference: KeyRef, attribute: AttrName },

    /// The HSM was started without the cluster's masking key.
    #[error("this HSM has no masking key (masking_key_file), so it cannot extract or insert masked objects")]
    NoMaskingKey,
    /// A masked-object rule refuses the caller.
    #[error("permission denied: {rule}")]
    ObjectPermission { rule: String },
    #[error("the HSM holds the maximum of {max} {what}")]
    KeyQuota { what: &'static str, max: usize },

    /// `cluster mtls register-trust-anchor` with a certificate already registered.
    #[error("this certificate is already registered as trust anchor {reference}")]
    TrustAnchorExists { reference: AnchorRef },

    #[error("no trust anchor with reference {reference}")]
    TrustAnchorNotFound { reference: AnchorRef },

    /// An mTLS policy rule refuses the change in this state.
    #[error("{rule}")]
    MtlsPolicy { rule: String },

    /// Fault injection: a reset names a snapshot this HSM does not hold.
    #[error("no snapshot named '{name}' on this HSM; `hsm-cli faults snapshots` lists them")]
    UnknownSnapshot { name: String },

    /// Triple DES on a cluster in FIPS mode: NIST disallowed it after 2023,
    /// and CloudHSM offers it on non-FIPS clusters only.
    #[error(
        "{what} is not available: the cluster is in FIPS mode; triple DES (DES3) works only on a cluster created in \
         non-FIPS mode"
    )]
    FipsMode { what: &'static str },

    /// A call gated by quorum came without an approval. The text is
    /// CloudHSM's own.
    #[error("Quorum approval is required for this operation")]
    QuorumRequired,

    /// The approval has too few distinct registered approvers.
    #[error(
        "Quorum approval is required for this operation: {approvers} distinct registered approver(s) signed the \
         token, {required} needed"
    )]
    QuorumNotMet { approvers: u8, required: u8 },

    /// No live token of that value: never issued here, used already, deleted
    /// or expired.
    #[error(
        "the quorum token is unknown to this HSM: it was used already, deleted or expired (tokens live 10 minutes); \
         generate a new one"
    )]
    QuorumTokenUnknown,

    /// The token is for another service or was issued to another user.
    #[error("the quorum token does not fit this call: {rule}")]
    QuorumTokenMismatch { rule: String },

    /// A signature does not verify, or its signer has no registered key.
    #[error("quorum approval refused: {rule}")]
    QuorumSignature { rule: String },

    #[error("the HSM holds the maximum of {max} quorum tokens; use or delete some (quorum token-sign delete)")]
    TooManyQuorumTokens { max: usize },

    /// A mechanism refused its input (sizes, lengths, authentication).
    #[error(transparent)]
    Crypto(#[from] CryptoError),

    /// A failure inside the HSM that the caller cannot fix.
    #[error("internal HSM error: {0}")]
    Internal(String),
}
