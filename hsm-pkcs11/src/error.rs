//! The one mapping from the HSM's refusals ([`ClientError`]) to PKCS#11
//! return values.
//!
//! The same refusal means different things to different calls (an
//! unauthenticated login is a wrong PIN; an unauthenticated sign is a
//! missing login), so the mapping takes what was being done. The HSM's
//! message, which names the rule and never a secret, goes to the log.

use cryptoki_sys::{
    CK_RV, CKR_ACTION_PROHIBITED, CKR_ARGUMENTS_BAD, CKR_ATTRIBUTE_READ_ONLY, CKR_DATA_INVALID, CKR_DEVICE_ERROR,
    CKR_DEVICE_MEMORY, CKR_FUNCTION_FAILED, CKR_GENERAL_ERROR, CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_HANDLE_INVALID,
    CKR_OBJECT_HANDLE_INVALID, CKR_PIN_INCORRECT, CKR_PIN_LOCKED, CKR_TEMPLATE_INCONSISTENT, CKR_USER_NOT_LOGGED_IN,
    CKR_WRAPPED_KEY_INVALID,
};
use hsm_client::ClientError;

/// What the library was doing when the HSM refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Doing {
    Login,
    /// Listing keys or reading their attributes.
    Reading,
    /// Making keys.
    Creating,
    /// Changing a key's attributes.
    Modifying,
    /// Making a key from a wrapped one.
    Unwrapping,
    Destroying,
    /// Signing or verifying.
    Using,
}

/// The return value for `err`. `admin`: the logged-in user is an admin,
/// whom CloudHSM's permission table refuses every key use and creation, so
/// a role refusal means no crypto user is logged in.
pub(crate) fn rv(err: &ClientError, doing: Doing, admin: bool) -> CK_RV {
    tracing::debug!(?doing, error = %err, "the HSM refused");
    match (err, doing) {
        (ClientError::Config(_), _) => CKR_GENERAL_ERROR,
        (ClientError::Unavailable(_) | ClientError::Protocol(_), _) => CKR_DEVICE_ERROR,
        (
            ClientError::Unauthenticated(_) | ClientError::NotFound(_) | ClientError::InvalidArgument(_),
            Doing::Login,
        ) => CKR_PIN_INCORRECT,
        (ClientError::FailedPrecondition(_), Doing::Login) => CKR_PIN_LOCKED,
        (ClientError::Unauthenticated(_), _) => CKR_USER_NOT_LOGGED_IN,
        (ClientError::PermissionDenied(_), _) if admin => CKR_USER_NOT_LOGGED_IN,
        (ClientError::PermissionDenied(_) | ClientError::FailedPrecondition(_), Doing::Using) => {
            CKR_KEY_FUNCTION_NOT_PERMITTED
        }
        (ClientError::PermissionDenied(_) | ClientError::FailedPrecondition(_), Doing::Destroying) => {
            CKR_ACTION_PROHIBITED
        }
        // A key whose `modifiable` is false.
        (ClientError::PermissionDenied(_) | ClientError::FailedPrecondition(_), Doing::Modifying) => {
            CKR_ACTION_PROHIBITED
        }
        (ClientError::PermissionDenied(_) | ClientError::FailedPrecondition(_), Doing::Unwrapping) => {
            CKR_KEY_FUNCTION_NOT_PERMITTED
        }
        (ClientError::PermissionDenied(_), _) => CKR_ACTION_PROHIBITED,
        (ClientError::NotFound(_), Doing::Using) => CKR_KEY_HANDLE_INVALID,
        (ClientError::NotFound(_), _) => CKR_OBJECT_HANDLE_INVALID,
        (ClientError::InvalidArgument(_), Doing::Using) => CKR_DATA_INVALID,
        (ClientError::InvalidArgument(_), Doing::Creating) => CKR_TEMPLATE_INCONSISTENT,
        // The template was read before the HSM was asked: what it refuses
        // is the wrapped bytes (they do not open, or are not a key).
        (ClientError::InvalidArgument(_), Doing::Unwrapping) => CKR_WRAPPED_KEY_INVALID,
        (ClientError::InvalidArgument(_), Doing::Modifying) => CKR_ATTRIBUTE_READ_ONLY,
        (ClientError::InvalidArgument(_), _) => CKR_ARGUMENTS_BAD,
        (ClientError::ResourceExhausted(_), _) => CKR_DEVICE_MEMORY,
        (ClientError::FailedPrecondition(_) | ClientError::AlreadyExists(_) | ClientError::Other { .. }, _) => {
            CKR_FUNCTION_FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_mean_what_the_call_was() {
        let unauth = ClientError::Unauthenticated("login failed".into());
        assert_eq!(rv(&unauth, Doing::Login, false), CKR_PIN_INCORRECT);
        assert_eq!(rv(&unauth, Doing::Using, false), CKR_USER_NOT_LOGGED_IN);
        let denied = ClientError::PermissionDenied("sign is not permitted for role admin (CO)".into());
        assert_eq!(rv(&denied, Doing::Using, true), CKR_USER_NOT_LOGGED_IN);
        assert_eq!(rv(&denied, Doing::Using, false), CKR_KEY_FUNCTION_NOT_PERMITTED);
        assert_eq!(rv(&denied, Doing::Destroying, false), CKR_ACTION_PROHIBITED);
        let locked = ClientError::FailedPrecondition("user alice is locked".into());
        assert_eq!(rv(&locked, Doing::Login, false), CKR_PIN_LOCKED);
        assert_eq!(rv(&ClientError::Unavailable("refused".into()), Doing::Reading, false), CKR_DEVICE_ERROR);
        let fixed = ClientError::FailedPrecondition("the key is not modifiable".into());
        assert_eq!(rv(&fixed, Doing::Modifying, false), CKR_ACTION_PROHIBITED);
        let junk = ClientError::InvalidArgument("wrapped: the integrity check failed".into());
        assert_eq!(rv(&junk, Doing::Unwrapping, false), CKR_WRAPPED_KEY_INVALID);
    }
}
