//! Proto fields into model types, and model views back into proto messages.
//! Every parse names the request field it read.

use hsm_proto::v1 as pb;

use crate::{
    crypto::{Cipher, GcmTagLen, HashAlg, KeyClass, KeyKind, SignMech, WrapMech},
    model::{
        Approval, ClusterInfo, ClusterState, HsmIdentity, KeyDigest, KeyView, ModelError, QuorumService, Role, TokenId,
        UserView, Username, keys::parse_curve,
    },
};

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
    pb::User {
        username: view.username.to_string(),
        role: role_to_proto(view.role).into(),
        locked: view.locked,
        quorum_registered: view.quorum,
        mfa_registered: view.mfa,
    }
}

pub(super) fn quorum_service(field: &'static str, raw: i32) -> Result<QuorumService, ModelError> {
    use pb::QuorumServiceName as N;
    match N::try_from(raw) {
        Ok(N::User) => Ok(QuorumService::User),
        Ok(N::Quorum) => Ok(QuorumService::Quorum),
        Ok(N::Cluster) => Ok(QuorumService::Cluster),
        Ok(N::KeyManagement) => Ok(QuorumService::KeyManagement),
        Ok(N::KeyUsage) => Ok(QuorumService::KeyUsage),
        Ok(N::Registration) => Ok(QuorumService::Registration),
        Ok(N::Unspecified) | Err(_) => {
            Err(invalid(field, "must be user, quorum, cluster, key-management, key-usage or registration"))
        }
    }
}

pub(super) fn quorum_service_to_proto(service: QuorumService) -> pb::QuorumServiceName {
    use pb::QuorumServiceName as N;
    match service {
        QuorumService::User => N::User,
        QuorumService::Quorum => N::Quorum,
        QuorumService::Cluster => N::Cluster,
        QuorumService::KeyManagement => N::KeyManagement,
        QuorumService::KeyUsage => N::KeyUsage,
        QuorumService::Registration => N::Registration,
    }
}

/// A 32-byte token.
pub(super) fn token(field: &'static str, raw: &[u8]) -> Result<TokenId, ModelError> {
    raw.try_into().map_err(|_| invalid(field, format!("must be a 32-byte token, not {} bytes", raw.len())))
}

/// An approval, if the request carries one.
pub(super) fn approval(raw: Option<&pb::Approval>) -> Result<Option<Approval>, ModelError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.signatures.len() > 64 {
        return Err(invalid("approval.signatures", "at most 64 signatures"));
    }
    let signatures = raw
        .signatures
        .iter()
        .map(|s| {
            if s.signature.len() > 1024 {
                return Err(invalid("approval.signatures.signature", "at most 1024 bytes (RSA-8192)"));
            }
            Ok((Username::parse("approval.signatures.username", &s.username)?, s.signature.clone()))
        })
        .collect::<Result<_, _>>()?;
    if raw.approval_data.len() > 64 * 1024 {
        return Err(invalid("approval.approval_data", "at most 64 KiB (the preimages of one token per HSM)"));
    }
    let approval_data = (!raw.approval_data.is_empty()).then(|| raw.approval_data.clone());
    Ok(Some(Approval { token: token("approval.token", &raw.token)?, signatures, approval_data }))
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

/// Attribute messages as name/value pairs.
pub(super) fn key_digest(d: KeyDigest) -> pb::KeyDigest {
    pb::KeyDigest {
        key_reference: d.reference.to_string(),
        version: d.stamp.version,
        digest: d.stamp.digest.map(|d| d.to_vec()).unwrap_or_default(),
        deleted: d.stamp.digest.is_none(),
    }
}

pub(super) fn pairs(attributes: &[pb::Attribute]) -> Vec<(String, String)> {
    attributes.iter().map(|a| (a.name.clone(), a.value.clone())).collect()
}

pub(super) fn key_info(view: KeyView) -> pb::KeyInfo {
    pb::KeyInfo {
        key_reference: view.reference.to_string(),
        attributes: view
            .attribute_values()
            .into_iter()
            .map(|(name, value)| pb::Attribute { name: name.as_str().to_owned(), value })
            .collect(),
        owner: view.owner.to_string(),
        shared_users: view.shared.iter().map(ToString::to_string).collect(),
        session: view.session,
        manage_key_quorum_value: u32::from(view.quorum.manage),
        use_key_quorum_value: u32::from(view.quorum.usage),
    }
}

fn invalid(field: &'static str, rule: impl Into<String>) -> ModelError {
    ModelError::InvalidArgument { field, rule: rule.into() }
}

pub(super) fn symmetric_kind(field: &'static str, raw: i32) -> Result<KeyKind, ModelError> {
    match pb::SymmetricKeyType::try_from(raw) {
        Ok(pb::SymmetricKeyType::Aes) => Ok(KeyKind::Aes),
        Ok(pb::SymmetricKeyType::GenericSecret) => Ok(KeyKind::GenericSecret),
        Ok(pb::SymmetricKeyType::Des3) => Ok(KeyKind::Des3),
        _ => Err(invalid(field, "must be aes, generic-secret or des3")),
    }
}

/// The kind of key an unwrap makes. `None` for an EC key given no curve:
/// it takes the curve the wrapped key's encoding names.
pub(super) fn unwrapped_kind(raw: i32, curve: &str) -> Result<Option<KeyKind>, ModelError> {
    match pb::KeyType::try_from(raw) {
        Ok(pb::KeyType::Aes) => Ok(Some(KeyKind::Aes)),
        Ok(pb::KeyType::GenericSecret) => Ok(Some(KeyKind::GenericSecret)),
        Ok(pb::KeyType::Rsa) => Ok(Some(KeyKind::Rsa)),
        Ok(pb::KeyType::Ec) if curve.is_empty() => Ok(None),
        Ok(pb::KeyType::Ec) => Ok(Some(KeyKind::Ec(parse_curve("curve", curve)?))),
        Ok(pb::KeyType::Ed25519) => Ok(Some(KeyKind::Ed25519)),
        Ok(pb::KeyType::Des3) => Ok(Some(KeyKind::Des3)),
        _ => Err(invalid("key_type", "must be aes, generic-secret, des3, rsa, ec or ed25519")),
    }
}

pub(super) fn key_class(raw: i32) -> Result<KeyClass, ModelError> {
    match pb::KeyClass::try_from(raw) {
        Ok(pb::KeyClass::Secret) => Ok(KeyClass::Secret),
        Ok(pb::KeyClass::Public) => Ok(KeyClass::Public),
        Ok(pb::KeyClass::Private) => Ok(KeyClass::Private),
        _ => Err(invalid("key_class", "must be secret, public or private")),
    }
}

/// A required hash algorithm.
pub(super) fn hash(field: &'static str, raw: i32) -> Result<HashAlg, ModelError> {
    match pb::HashAlgorithm::try_from(raw) {
        Ok(pb::HashAlgorithm::Sha1) => Ok(HashAlg::Sha1),
        Ok(pb::HashAlgorithm::Sha224) => Ok(HashAlg::Sha224),
        Ok(pb::HashAlgorithm::Sha256) => Ok(HashAlg::Sha256),
        Ok(pb::HashAlgorithm::Sha384) => Ok(HashAlg::Sha384),
        Ok(pb::HashAlgorithm::Sha512) => Ok(HashAlg::Sha512),
        _ => Err(invalid(field, "must be one of sha1, sha224, sha256, sha384, sha512 for this mechanism")),
    }
}

pub(super) fn cipher(raw: i32, hash_raw: i32) -> Result<Cipher, ModelError> {
    match pb::Cipher::try_from(raw) {
        Ok(pb::Cipher::AesGcm) => Ok(Cipher::AesGcm),
        Ok(pb::Cipher::AesCbcPad) => Ok(Cipher::AesCbcPad),
        Ok(pb::Cipher::AesCtr) => Ok(Cipher::AesCtr),
        Ok(pb::Cipher::AesEcb) => Ok(Cipher::AesEcb),
        Ok(pb::Cipher::RsaOaep) => Ok(Cipher::RsaOaep(hash("hash", hash_raw)?)),
        Ok(pb::Cipher::RsaPkcs) => Ok(Cipher::RsaPkcs1),
        Ok(pb::Cipher::AesCbc) => Ok(Cipher::AesCbc),
        Ok(pb::Cipher::RsaX509) => Ok(Cipher::RsaX509),
        Ok(pb::Cipher::Des3Ecb) => Ok(Cipher::Des3Ecb),
        Ok(pb::Cipher::Des3Cbc) => Ok(Cipher::Des3Cbc),
        Ok(pb::Cipher::Des3CbcPad) => Ok(Cipher::Des3CbcPad),
        _ => Err(invalid(
            "cipher",
            "must be aes-gcm, aes-cbc-pad, aes-ctr, aes-ecb, rsa-oaep, rsa-pkcs, aes-cbc, rsa-x509, des3-ecb, des3-cbc or \
             des3-cbc-pad",
        )),
    }
}

pub(super) fn sign_mechanism(raw: i32, hash_raw: i32) -> Result<SignMech, ModelError> {
    match pb::SignMechanism::try_from(raw) {
        Ok(pb::SignMechanism::Ecdsa) => Ok(SignMech::Ecdsa(hash("hash", hash_raw)?)),
        Ok(pb::SignMechanism::Ed25519) => Ok(SignMech::Ed25519),
        Ok(pb::SignMechanism::RsaPkcs) => Ok(SignMech::RsaPkcs1(hash("hash", hash_raw)?)),
        Ok(pb::SignMechanism::RsaPss) => Ok(SignMech::RsaPss(hash("hash", hash_raw)?)),
        Ok(pb::SignMechanism::Hmac) => Ok(SignMech::Hmac(hash("hash", hash_raw)?)),
        Ok(pb::SignMechanism::Ed25519ph) => match pb::HashAlgorithm::try_from(hash_raw) {
            Ok(pb::HashAlgorithm::Sha512) => Ok(SignMech::Ed25519ph),
            _ => Err(invalid("hash", "must be sha512 for ed25519ph (RFC 8032 prehashes with SHA-512)")),
        },
        Ok(pb::SignMechanism::RsaPkcsRaw) => Ok(SignMech::RsaPkcs1Raw),
        Ok(pb::SignMechanism::RsaX509) => Ok(SignMech::RsaX509),
        _ => Err(invalid(
            "mechanism",
            "must be ecdsa, ed25519, ed25519ph, rsa-pkcs, rsa-pss, hmac, rsa-pkcs-raw or rsa-x509",
        )),
    }
}

/// A wrap mechanism with its parameters: the RSA mechanisms' hash, and
/// AES-GCM's tag length (0 for the default 128 bits; other mechanisms take
/// none).
pub(super) fn wrap_mechanism(raw: i32, hash_raw: i32, tag_length_bits: u32) -> Result<WrapMech, ModelError> {
    let mechanism = pb::WrapMechanism::try_from(raw);
    if tag_length_bits != 0 && mechanism != Ok(pb::WrapMechanism::AesGcm) {
        return Err(invalid("tag_length_bits", "only AES-GCM key wrapping has a tag length"));
    }
    match mechanism {
        Ok(pb::WrapMechanism::AesGcm) => {
            let tag = if tag_length_bits == 0 { GcmTagLen::FULL } else { GcmTagLen::from_bits(tag_length_bits)? };
            Ok(WrapMech::AesGcm(tag))
        }
        Ok(pb::WrapMechanism::AesKeyWrap) => Ok(WrapMech::AesKeyWrap),
        Ok(pb::WrapMechanism::AesKeyWrapPad) => Ok(WrapMech::AesKeyWrapPad),
        Ok(pb::WrapMechanism::AesKeyWrapPkcs5Pad) => Ok(WrapMech::AesKeyWrapPkcs5),
        Ok(pb::WrapMechanism::RsaOaep) => Ok(WrapMech::RsaOaep(hash("hash", hash_raw)?)),
        Ok(pb::WrapMechanism::RsaAes) => Ok(WrapMech::RsaAes(hash("hash", hash_raw)?)),
        Ok(pb::WrapMechanism::RsaPkcs) => Ok(WrapMech::RsaPkcs1),
        _ => Err(invalid(
            "mechanism",
            "must be aes-gcm, aes-key-wrap, aes-key-wrap-pad, aes-key-wrap-pkcs5-pad, rsa-oaep, rsa-aes or rsa-pkcs",
        )),
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

    #[test]
    fn ed25519ph_takes_sha512_only() {
        let ph = pb::SignMechanism::Ed25519ph.into();
        assert_eq!(sign_mechanism(ph, pb::HashAlgorithm::Sha512.into()).unwrap(), SignMech::Ed25519ph);
        for other in [pb::HashAlgorithm::Unspecified, pb::HashAlgorithm::Sha256, pb::HashAlgorithm::Sha384] {
            assert_eq!(
                sign_mechanism(ph, other.into()).unwrap_err().to_string(),
                "invalid hash: must be sha512 for ed25519ph (RFC 8032 prehashes with SHA-512)"
            );
        }
    }
}
