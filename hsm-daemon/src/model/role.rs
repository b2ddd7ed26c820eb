//! User roles and the identities the permission table speaks of.

use std::fmt;

/// A user's role, named as the CloudHSM CLI shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The precrypto officer of a cluster that was never activated (PRECO).
    UnactivatedAdmin,
    /// A crypto officer (CO): manages users, never keys.
    Admin,
    /// A crypto user (CU): manages and uses keys.
    CryptoUser,
    /// The appliance user (AU): cloning and synchronisation only.
    Appliance,
}

impl Role {
    /// The identity a session of a user with this role acts as. Before
    /// activation the appliance user is a column of its own: until the
    /// cluster is activated nothing but cluster info, the user list and
    /// activation works (cloudhsm-facts.md), for it as for the precrypto
    /// officer.
    pub fn identity(self, activated: bool) -> Identity {
        match self {
            Role::UnactivatedAdmin => Identity::PrecryptoOfficer,
            Role::Admin => Identity::CryptoOfficer,
            Role::CryptoUser => Identity::CryptoUser,
            Role::Appliance if activated => Identity::ApplianceUser,
            Role::Appliance => Identity::UnactivatedAppliance,
        }
    }

    /// Whether a login that names `requested` may log in to a user with this
    /// role. The precrypto officer logs in as `admin`, as on CloudHSM.
    pub fn accepts_login_as(self, requested: Role) -> bool {
        match self {
            Role::UnactivatedAdmin => matches!(requested, Role::Admin | Role::UnactivatedAdmin),
            Role::Admin | Role::CryptoUser | Role::Appliance => self == requested,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::UnactivatedAdmin => "unactivated-admin",
            Role::Admin => "admin",
            Role::CryptoUser => "crypto-user",
            Role::Appliance => "internal(APPLIANCE_USER)",
        })
    }
}

listed_enum! {
/// Who is calling: the columns of the permission table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// A session that has not logged in.
    Unauthenticated,
    /// PRECO: the temporary admin of an unactivated cluster.
    PrecryptoOfficer,
    /// CO.
    CryptoOfficer,
    /// CU.
    CryptoUser,
    /// AU.
    ApplianceUser,
    /// AU of a cluster not yet activated (see [`Role::identity`]).
    UnactivatedAppliance,
}
}

impl Identity {
    /// Identities that exist only until the cluster is activated: what they
    /// may not do is refused as "not activated", not as a matter of role.
    pub fn before_activation(self) -> bool {
        match self {
            Identity::PrecryptoOfficer | Identity::UnactivatedAppliance => true,
            Identity::Unauthenticated | Identity::CryptoOfficer | Identity::CryptoUser | Identity::ApplianceUser => {
                false
            }
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Identity::Unauthenticated => "unauthenticated",
            Identity::PrecryptoOfficer => "unactivated-admin (PRECO)",
            Identity::CryptoOfficer => "admin (CO)",
            Identity::CryptoUser => "crypto-user (CU)",
            Identity::ApplianceUser => "appliance (AU)",
            Identity::UnactivatedAppliance => "appliance (AU) of an unactivated cluster",
        })
    }
}
