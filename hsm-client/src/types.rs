//! Roles, users and cluster information as plain Rust types.

use std::{fmt, str::FromStr};

use hsm_proto::v1 as pb;

use crate::ClientError;

/// A user's role, named as the CloudHSM CLI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// `admin`: a crypto officer.
    Admin,
    /// `crypto-user`.
    CryptoUser,
    /// `internal(APPLIANCE_USER)`: the appliance user.
    Appliance,
    /// `unactivated-admin`: the precrypto officer of a new cluster (log in to
    /// it as [`Role::Admin`]).
    UnactivatedAdmin,
}

impl Role {
    /// Whether a login as `self` reaches a user whose role is `actual`.
    pub(crate) fn same_login_role(self, actual: Role) -> bool {
        self == actual || (self == Role::Admin && actual == Role::UnactivatedAdmin)
    }
}

/// Keys a password change also removes (`user change-password
/// --deregister-mfa`, `--deregister-quorum`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deregister {
    pub mfa: bool,
    pub quorum: bool,
}

/// Names one user creation in every attempt of it (see the HSM's
/// `CreateUserRequest.create_token`): 16 bytes from the operating system's
/// CSPRNG, so that no other create can present it.
#[derive(Clone, Copy)]
pub(crate) struct CreateToken(pub(crate) [u8; 16]);

impl CreateToken {
    pub(crate) fn random() -> Result<Self, ClientError> {
        let mut bytes = [0; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| ClientError::Config("the operating system's random number generator failed".into()))?;
        Ok(CreateToken(bytes))
    }
}

impl fmt::Debug for CreateToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CreateToken(..)")
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::CryptoUser => "crypto-user",
            Role::Appliance => "internal(APPLIANCE_USER)",
            Role::UnactivatedAdmin => "unactivated-admin",
        })
    }
}

impl FromStr for Role {
    type Err = ClientError;

    /// The CloudHSM CLI's `--role` values: `admin` and `crypto-user`
    /// (`appliance` too, for the appliance user).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "crypto-user" => Ok(Role::CryptoUser),
            "appliance" => Ok(Role::Appliance),
            other => Err(ClientError::InvalidArgument(format!("invalid role '{other}': must be admin or crypto-user"))),
        }
    }
}

impl From<Role> for pb::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => pb::Role::Admin,
            Role::CryptoUser => pb::Role::CryptoUser,
            Role::Appliance => pb::Role::Appliance,
            Role::UnactivatedAdmin => pb::Role::UnactivatedAdmin,
        }
    }
}

impl TryFrom<i32> for Role {
    type Error = ClientError;

    fn try_from(raw: i32) -> Result<Self, Self::Error> {
        match pb::Role::try_from(raw) {
            Ok(pb::Role::Admin) => Ok(Role::Admin),
            Ok(pb::Role::CryptoUser) => Ok(Role::CryptoUser),
            Ok(pb::Role::Appliance) => Ok(Role::Appliance),
            Ok(pb::Role::UnactivatedAdmin) => Ok(Role::UnactivatedAdmin),
            _ => Err(ClientError::Protocol(format!("unknown role value {raw}"))),
        }
    }
}

/// A user as `user list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
    pub role: Role,
    pub locked: bool,
    /// A quorum (approver) key is registered.
    pub quorum: bool,
    /// MFA (token-sign) is on.
    pub mfa: bool,
}

impl TryFrom<Option<pb::User>> for User {
    type Error = ClientError;

    fn try_from(user: Option<pb::User>) -> Result<Self, Self::Error> {
        let user = user.ok_or_else(|| ClientError::Protocol("response without a user".into()))?;
        Ok(User {
            username: user.username,
            role: Role::try_from(user.role)?,
            locked: user.locked,
            quorum: user.quorum_registered,
            mfa: user.mfa_registered,
        })
    }
}

/// Whether the cluster has been activated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterState {
    Uninitialized,
    Active,
    /// A state this client version does not know.
    Unknown,
}

/// Basic cluster information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub cluster_id: String,
    pub state: ClusterState,
    pub hsm_type: String,
    pub mode: String,
    pub hsms: Vec<HsmInfo>,
}

/// One HSM's identity.
pub type HsmInfo = pb::HsmInfo;

impl From<pb::GetClusterInfoResponse> for ClusterInfo {
    fn from(r: pb::GetClusterInfoResponse) -> Self {
        let state = match pb::ClusterState::try_from(r.state) {
            Ok(pb::ClusterState::Uninitialized) => ClusterState::Uninitialized,
            Ok(pb::ClusterState::Active) => ClusterState::Active,
            _ => ClusterState::Unknown,
        };
        ClusterInfo { cluster_id: r.cluster_id, state, hsm_type: r.hsm_type, mode: r.mode, hsms: r.hsms }
    }
}

/// One HSM's sync status: HSMs in step report equal digests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    pub hsm_id: String,
    /// SHA-256 over the HSM's users and token keys.
    pub digest: Vec<u8>,
    pub users: u64,
    pub keys: u64,
}
