//! The `hsm.v1` wire protocol of the CloudHSM emulator: prost messages, tonic
//! clients and servers, generated at build time from `proto/hsm/v1/*.proto`
//! without a system `protoc` (protox compiles the files).
//!
//! # Layout
//! - [`v1`]: the generated messages, `*_client` and `*_server` modules.
//! - [`v1::Rpc`]: one variant per RPC method, with its HTTP/2 path; the daemon's
//!   permission table matches on it exhaustively, so a new RPC must be
//!   classified before the daemon compiles.
//! - [`testing::v1`]: `hsm.testing.v1`, the test-control plane (fault
//!   injection, snapshots, resets) that an HSM serves only when started with
//!   `--faults`. It is not CloudHSM's API: its RPCs are not in [`v1::Rpc`]
//!   and the permission table does not cover them.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for server reflection.
//! - Messages that carry passwords or tokens have a hand-written `Debug` that
//!   redacts them.

/// The metadata key that carries the session token, as `Bearer <token>`.
pub const SESSION_METADATA_KEY: &str = "authorization";

/// The encoded `FileDescriptorSet` of every `hsm.v1` file (the test-control
/// plane is not in it).
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hsm_v1_descriptor.bin"));

/// A module of code generated into `OUT_DIR`, exempt from the lints that
/// generated code cannot meet.
macro_rules! generated {
    ($(#[$doc:meta])* $name:ident: $($file:literal),+) => {
        $(#[$doc])*
        #[allow(
            missing_docs,
            unreachable_pub,
            missing_debug_implementations,
            clippy::all,
            clippy::unwrap_used,
            reason = "generated code"
        )]
        pub mod $name {
            $(include!(concat!(env!("OUT_DIR"), "/", $file));)+
        }
    };
}

generated!(
    /// Version 1 of the protocol.
    v1: "hsm.v1.rs", "rpc.rs"
);

/// The test-control plane, outside CloudHSM's API (see the crate docs).
pub mod testing {
    generated!(
        /// Version 1 of the test-control plane.
        v1: "hsm.testing.v1.rs"
    );
}

mod redacted {
    use std::fmt;

    use crate::v1::{
        ActivateRequest, ChangeOwnPasswordRequest, ChangeUserPasswordRequest, CreateUserRequest, DecryptResponse,
        ImportKeyRequest, LoginRequest, LoginResponse,
    };

    const HIDDEN: &str = "<redacted>";

    impl fmt::Debug for LoginRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("LoginRequest")
                .field("username", &self.username)
                .field("role", &self.role)
                .field("password", &HIDDEN)
                .finish()
        }
    }

    impl fmt::Debug for LoginResponse {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("LoginResponse")
                .field("session_token", &HIDDEN)
                .field("username", &self.username)
                .field("role", &self.role)
                .field("idle_timeout_seconds", &self.idle_timeout_seconds)
                .finish()
        }
    }

    impl fmt::Debug for ActivateRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ActivateRequest").field("new_password", &HIDDEN).finish()
        }
    }

    impl fmt::Debug for CreateUserRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("CreateUserRequest")
                .field("username", &self.username)
                .field("role", &self.role)
                .field("password", &HIDDEN)
                .finish()
        }
    }

    impl fmt::Debug for ChangeOwnPasswordRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ChangeOwnPasswordRequest").field("new_password", &HIDDEN).finish()
        }
    }

    impl fmt::Debug for ChangeUserPasswordRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ChangeUserPasswordRequest")
                .field("username", &self.username)
                .field("role", &self.role)
                .field("new_password", &HIDDEN)
                .finish()
        }
    }

    impl fmt::Debug for ImportKeyRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("ImportKeyRequest")
                .field("material", &HIDDEN)
                .field("secret_key_type", &self.secret_key_type)
                .field("attributes", &self.attributes)
                .field("session", &self.session)
                .finish()
        }
    }

    impl fmt::Debug for DecryptResponse {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("DecryptResponse").field("plaintext", &HIDDEN).finish()
        }
    }

    #[cfg(test)]
    mod tests {
        use crate::v1::LoginRequest;

        #[test]
        fn debug_hides_the_password() {
            let req =
                LoginRequest { username: "alice".into(), role: 2, password: "hunter22".into(), ..Default::default() };
            let shown = format!("{req:?}");
            assert!(shown.contains("alice"));
            assert!(!shown.contains("hunter22"), "{shown}");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::v1::Rpc;

    #[test]
    fn every_rpc_round_trips_through_its_path() {
        assert!(!Rpc::ALL.is_empty());
        for rpc in Rpc::ALL {
            assert_eq!(Rpc::from_path(rpc.path()), Some(*rpc));
        }
        assert_eq!(Rpc::from_path("/hsm.v1.UserService/Nope"), None);
    }

    #[test]
    fn the_test_control_plane_is_not_in_the_catalogue() {
        use crate::testing::v1::fault_service_server::SERVICE_NAME;
        assert_eq!(SERVICE_NAME, "hsm.testing.v1.FaultService");
        assert!(Rpc::ALL.iter().all(|rpc| rpc.path().starts_with("/hsm.v1.")));
        assert_eq!(Rpc::from_path("/hsm.testing.v1.FaultService/SetFault"), None);
    }
}
