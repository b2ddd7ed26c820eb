//! The one mapping from model errors to gRPC statuses.

use tonic::{Code, Status};

use crate::model::ModelError;

impl From<ModelError> for Status {
    fn from(err: ModelError) -> Self {
        let code = match &err {
            ModelError::NotLoggedIn { .. } | ModelError::InvalidSession { .. } | ModelError::LoginFailed => {
                Code::Unauthenticated
            }
            ModelError::PermissionDenied { .. }
            | ModelError::KeyPermission { .. }
            | ModelError::ObjectPermission { .. }
            | ModelError::QuorumSignature { .. } => Code::PermissionDenied,
            ModelError::InvalidArgument { .. } | ModelError::Crypto(_) => Code::InvalidArgument,
            ModelError::UserNotFound { .. }
            | ModelError::KeyNotFound { .. }
            | ModelError::TrustAnchorNotFound { .. }
            | ModelError::UnknownSnapshot { .. } => Code::NotFound,
            ModelError::UserExists { .. } | ModelError::TrustAnchorExists { .. } => Code::AlreadyExists,
            ModelError::TooManyUsers { .. }
            | ModelError::TooManySessions { .. }
            | ModelError::KeyQuota { .. }
            | ModelError::TooManyQuorumTokens { .. } => Code::ResourceExhausted,
            ModelError::UserLocked { .. }
            | ModelError::NotActivated { .. }
            | ModelError::AlreadyActivated
            | ModelError::UserLoggedIn { .. }
            | ModelError::LastAdmin { .. }
            | ModelError::ApplianceUserFixed { .. }
            | ModelError::UserOwnsKeys { .. }
            | ModelError::KeyAttribute { .. }
            | ModelError::MtlsPolicy { .. }
            | ModelError::NoMaskingKey
            // The cluster's mode, fixed when it was made.
            | ModelError::FipsMode { .. }
            // The caller may make the call; the cluster's policy wants
            // approvals first (a state of the system, not of the role).
            | ModelError::QuorumRequired
            | ModelError::QuorumNotMet { .. }
            | ModelError::QuorumTokenUnknown
            | ModelError::QuorumTokenMismatch { .. } => Code::FailedPrecondition,
            ModelError::Internal(_) => Code::Internal,
        };
        Status::new(code, err.to_string())
    }
}
