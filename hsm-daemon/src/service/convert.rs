//! Proto fields into model types, and model views back into proto messages.
//! Every parse names the request field it read.

use hsm_proto::v1 as pb;

use crate::model::{ClusterInfo, ClusterState, HsmIdentity, ModelError, Role, UserView};

/// Parses a role field. `field` is the proto field name.
pub(super) fn role(field: &'static str, raw: i32) -> Result<Role, ModelError> {
    let invalid = |rule: String| ModelError::InvalidArgument { field, rule };
    match pb::Role::try_from(raw) {
        Ok(pb::Role::Admin) => Ok(Role::Admin),
        Ok(pb::Role::CryptoUser) => Ok(Role::CryptoUser),
        Ok(pb::Role::Appliance) => Ok(Role::Appliance),
        Ok(pb::Role::UnactivatedAdmin) => Ok(Role::UnactivatedAdmin),
        Ok(pb::Role::Unspecified) => Err(invalid("must be set (admin or crypto-user)".into())),
        Err(_) => Err(invalid(format!("unknown role value {raw}"))),
    }
}

pub(super) fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::UnactivatedAdmin => pb::Role::UnactivatedAdmin,
        Role::Admin => pb::Role::Admin,
        Role::CryptoUser => pb::Role::CryptoUser,
        Role::Appliance => pb::Role::Appliance,
    }
}

pub(super) fn user(view: UserView) -> pb::User {
    pb::User { username: view.username.to_string(), role: role_to_proto(view.role).into(), locked: view.locked }
}

pub(super) fn cluster_info(info: ClusterInfo) -> pb::GetClusterInfoResponse {
    let state = match info.state {
        ClusterState::Uninitialized => pb::ClusterState::Uninitialized,
        ClusterState::Active => pb::ClusterState::Active,
    };
    pb::GetClusterInfoResponse {
        cluster_id: info.cluster.id.to_string(),
        state: state.into(),
        hsm_type: info.cluster.hsm_type.to_string(),
        mode: info.cluster.mode.to_string(),
        hsms: info.hsms.into_iter().map(hsm).collect(),
    }
}

fn hsm(h: HsmIdentity) -> pb::HsmInfo {
    pb::HsmInfo {
        hsm_id: h.id.to_string(),
        vendor: h.vendor,
        model: h.model,
        serial_number: h.serial_number,
        hardware_version_major: h.hardware_version.0,
        hardware_version_minor: h.hardware_version.1,
        firmware_version_major: h.firmware_version.0,
        firmware_version_minor: h.firmware_version.1,
        firmware_build_number: h.firmware_version.2,
        firmware_id: h.firmware_id,
        fips_state: h.fips_state,
        address: h.address,
        availability_zone: h.availability_zone,
        state: "ACTIVE".into(),
        label: h.label,
        device_id: h.device_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_bad_values_name_the_field() {
        assert_eq!(role("role", pb::Role::CryptoUser.into()).unwrap(), Role::CryptoUser);
        assert_eq!(role("role", 0).unwrap_err().to_string(), "invalid role: must be set (admin or crypto-user)");
        assert_eq!(role("role", 99).unwrap_err().to_string(), "invalid role: unknown role value 99");
        for r in [Role::UnactivatedAdmin, Role::Admin, Role::CryptoUser, Role::Appliance] {
            assert_eq!(role("role", role_to_proto(r).into()).unwrap(), r);
        }
    }
}
