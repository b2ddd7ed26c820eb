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
            | ModelError::ObjectPermission { .. } => Code::PermissionDenied,
            ModelError::InvalidArgument { .. } | ModelError::Crypto(_) => Code::InvalidArgument,
            ModelError::UserNotFound { .. } | ModelError::KeyNotFound { .. } | ModelError::UnknownSnapshot { .. } => {
                Code::NotFound
            }
            ModelError::UserExists { .. } => Code::AlreadyExists,
            ModelError::TooManyUsers { .. } | ModelError::TooManySessions { .. } | ModelError::KeyQuota { .. } => {
                Code::ResourceExhausted
            }
            ModelError::UserLocked { .. }
            | ModelError::AlreadyActivated
            | ModelError::UserLoggedIn { .. }
            | ModelError::LastAdmin { .. }
            | ModelError::ApplianceUserFixed { .. }
            | ModelError::UserOwnsKeys { .. }
            | ModelError::KeyAttribute { .. }
            | ModelError::NoMaskingKey => Code::FailedPrecondition,
            ModelError::Internal(_) => Code::Internal,
        };
        Status::new(code, err.to_string())
    }
}
