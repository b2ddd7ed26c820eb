//! Valid inputs for each target, from which the committed corpus started:
//! a fuzzer mutates what already gets far, so each seed is an input the
//! HSM accepts (or nearly).

use hsm_proto::v1::{self as pb, Rpc};
use prost::Message;

use super::{
    expect,
    quorum::{approvers, quorum_rig},
    requests::populated,
};
use crate::{
    crypto::{Curve, Generated, KeySpec},
    service::rig::{self, block_on},
    store::Masker,
};

/// A key alice makes in every populated rig.
pub(super) enum KeyRequest {
    Pair(pb::GenerateKeyPairRequest),
    Symmetric(pb::GenerateSymmetricKeyRequest),
}

fn attributes(pairs: &[(&str, &str)]) -> Vec<pb::Attribute> {
    pairs.iter().map(|(name, value)| pb::Attribute { name: (*name).into(), value: (*value).into() }).collect()
}

/// Alice's keys in a populated rig, in the order they get their references.
pub(super) fn alice_keys() -> Vec<KeyRequest> {
    vec![
        KeyRequest::Pair(pb::GenerateKeyPairRequest {
            parameters: Some(pb::generate_key_pair_request::Parameters::Ec(pb::EcParameters {
                curve: "prime256v1".into(),
            })),
            public_attributes: attributes(&[("label", "ec-pub"), ("verify", "true")]),
            private_attributes: attributes(&[("label", "ec"), ("sign", "true")]),
            share_with: vec!["bob".into()],
            ..Default::default()
        }),
        KeyRequest::Symmetric(pb::GenerateSymmetricKeyRequest {
            key_type: pb::SymmetricKeyType::Aes.into(),
            key_length_bytes: 32,
            attributes: attributes(&[
                ("label", "aes"),
                ("encrypt", "true"),
                ("decrypt", "true"),
                ("wrap", "true"),
                ("unwrap", "true"),
                ("extractable", "true"),
            ]),
            ..Default::default()
        }),
        KeyRequest::Symmetric(pb::GenerateSymmetricKeyRequest {
            key_type: pb::SymmetricKeyType::GenericSecret.into(),
            key_length_bytes: 32,
            attributes: attributes(&[("label", "hmac"), ("sign", "true"), ("verify", "true")]),
            ..Default::default()
        }),
    ]
}

/// One call of a `requests` input.
fn call(rpc: Rpc, who: u8, message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let index = Rpc::ALL.iter().position(|r| *r == rpc).unwrap_or(0);
    let mut out = vec![u8::try_from(index).unwrap_or(0), who];
    out.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

const NOBODY: u8 = 0;
const ADMIN: u8 = 1;
const ALICE: u8 = 2;
const BOB: u8 = 3;

pub(super) fn requests() -> Vec<Vec<u8>> {
    let references = block_on(async {
        let (mut rig, sessions) = populated().await;
        let request = pb::ListKeysRequest::default();
        let list: pb::ListKeysResponse =
            expect(rig.typed(Rpc::ListKeys, Some(&sessions.alice), &request).await, "listing alice's keys");
        list.keys.into_iter().map(|k| k.key_reference).collect::<Vec<_>>()
    });
    // Public, private, AES, HMAC (see `alice_keys`).
    let [public, private, aes, hmac] = references.as_slice() else { panic!("alice holds {references:?}") };
    let public_pem = {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
        let Ok(Generated::Pair { public, .. }) = KeySpec::Ec(Curve::P256).generate(&mut rng) else {
            panic!("generating an EC key")
        };
        expect(public.public_pem(), "an EC public key's PEM")
    };
    let key = |r: &String| pb::ExportPublicKeyRequest { key_reference: r.clone() };
    let sign = pb::SignRequest {
        key_reference: private.clone(),
        mechanism: pb::SignMechanism::Ecdsa.into(),
        hash: pb::HashAlgorithm::Sha256.into(),
        data: b"fuzz".to_vec(),
        ..Default::default()
    };
    let hmac_sign = pb::SignRequest {
        key_reference: hmac.clone(),
        mechanism: pb::SignMechanism::Hmac.into(),
        hash: pb::HashAlgorithm::Sha256.into(),
        data: b"fuzz".to_vec(),
        ..Default::default()
    };
    let encrypt = pb::EncryptRequest {
        key_reference: aes.clone(),
        cipher: pb::Cipher::AesGcm.into(),
        data: b"sixty-four bytes of plaintext, more or less".to_vec(),
        aad: b"aad".to_vec(),
        ..Default::default()
    };
    let user = |name: &str, role: pb::Role| pb::CreateUserRequest {
        username: name.into(),
        role: role.into(),
        password: "carol-pass".into(),
        approval: None,
        create_token: vec![7; 16],
    };
    vec![
        [
            call(
                Rpc::Login,
                NOBODY,
                &pb::LoginRequest {
                    username: "alice".into(),
                    role: pb::Role::CryptoUser.into(),
                    password: rig::USER_PASSWORD.into(),
                    ..Default::default()
                },
            ),
            call(Rpc::GetClusterInfo, NOBODY, &pb::GetClusterInfoRequest {}),
        ]
        .concat(),
        [
            call(Rpc::CreateUser, ADMIN, &user("carol", pb::Role::CryptoUser)),
            call(Rpc::ListUsers, ADMIN, &pb::ListUsersRequest::default()),
            call(
                Rpc::ChangeUserPassword,
                ADMIN,
                &pb::ChangeUserPasswordRequest {
                    username: "carol".into(),
                    new_password: "carol-pass-2".into(),
                    ..Default::default()
                },
            ),
            call(Rpc::DeleteUser, ADMIN, &pb::DeleteUserRequest { username: "carol".into(), ..Default::default() }),
        ]
        .concat(),
        [
            call(
                Rpc::GenerateKeyPair,
                ALICE,
                &pb::GenerateKeyPairRequest {
                    parameters: Some(pb::generate_key_pair_request::Parameters::Ed25519(pb::Ed25519Parameters {})),
                    public_attributes: attributes(&[("label", "ed-pub")]),
                    private_attributes: attributes(&[("label", "ed"), ("sign", "true")]),
                    ..Default::default()
                },
            ),
            call(
                Rpc::GenerateKeyPair,
                ALICE,
                &pb::GenerateKeyPairRequest {
                    parameters: Some(pb::generate_key_pair_request::Parameters::Rsa(pb::RsaParameters {
                        modulus_size_bits: 2048,
                        public_exponent: 65537,
                    })),
                    public_attributes: attributes(&[("label", "rsa-pub")]),
                    private_attributes: attributes(&[("label", "rsa"), ("sign", "true")]),
                    ..Default::default()
                },
            ),
        ]
        .concat(),
        call(
            Rpc::ImportKey,
            ALICE,
            &pb::ImportKeyRequest {
                material: Some(pb::import_key_request::Material::Pem(public_pem)),
                attributes: attributes(&[("label", "imported"), ("verify", "true")]),
                ..Default::default()
            },
        ),
        [call(Rpc::ExportPublicKey, BOB, &key(public)), call(Rpc::Sign, BOB, &sign)].concat(),
        [call(Rpc::Sign, ALICE, &sign), call(Rpc::Sign, ALICE, &hmac_sign)].concat(),
        call(
            Rpc::Verify,
            ALICE,
            &pb::VerifyRequest {
                key_reference: public.clone(),
                mechanism: pb::SignMechanism::Ecdsa.into(),
                hash: pb::HashAlgorithm::Sha256.into(),
                data: b"fuzz".to_vec(),
                signature: vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
                ..Default::default()
            },
        ),
        [
            call(Rpc::Encrypt, ALICE, &encrypt),
            call(
                Rpc::Decrypt,
                ALICE,
                &pb::DecryptRequest {
                    key_reference: aes.clone(),
                    cipher: pb::Cipher::AesCbcPad.into(),
                    iv: vec![0; 16],
                    ciphertext: vec![0; 32],
                    ..Default::default()
                },
            ),
        ]
        .concat(),
        call(Rpc::Digest, ALICE, &pb::DigestRequest { hash: pb::HashAlgorithm::Sha384.into(), data: vec![7; 100] }),
        call(Rpc::GenerateRandom, ALICE, &pb::GenerateRandomRequest { length: 48 }),
        call(
            Rpc::ListKeys,
            ALICE,
            &pb::ListKeysRequest {
                filters: attributes(&[("attr.label", "aes"), ("attr.key-type", "aes")]),
                max_items: 1,
                ..Default::default()
            },
        ),
        [
            call(
                Rpc::ShareKey,
                ALICE,
                &pb::ShareKeyRequest { key_reference: aes.clone(), username: "bob".into(), ..Default::default() },
            ),
            call(
                Rpc::UnshareKey,
                ALICE,
                &pb::ShareKeyRequest { key_reference: aes.clone(), username: "bob".into(), ..Default::default() },
            ),
            call(
                Rpc::SetKeyAttribute,
                ALICE,
                &pb::SetKeyAttributeRequest {
                    key_reference: aes.clone(),
                    name: "label".into(),
                    value: "renamed".into(),
                    ..Default::default()
                },
            ),
            call(Rpc::DeleteKey, BOB, &pb::DeleteKeyRequest { key_reference: public.clone() }),
            call(Rpc::DeleteKey, ALICE, &pb::DeleteKeyRequest { key_reference: hmac.clone() }),
        ]
        .concat(),
        [
            call(
                Rpc::WrapKey,
                ALICE,
                &pb::WrapKeyRequest {
                    wrapping_key_reference: aes.clone(),
                    key_reference: hmac.clone(),
                    mechanism: pb::WrapMechanism::AesKeyWrapPad.into(),
                    ..Default::default()
                },
            ),
            call(
                Rpc::UnwrapKey,
                ALICE,
                &pb::UnwrapKeyRequest {
                    unwrapping_key_reference: aes.clone(),
                    wrapped_key: vec![0xa6; 40],
                    mechanism: pb::WrapMechanism::AesKeyWrapPad.into(),
                    key_type: pb::KeyType::GenericSecret.into(),
                    key_class: pb::KeyClass::Secret.into(),
                    attributes: attributes(&[("label", "unwrapped")]),
                    ..Default::default()
                },
            ),
        ]
        .concat(),
        [
            call(
                Rpc::ExtractMaskedObject,
                ALICE,
                &pb::ExtractMaskedObjectRequest {
                    object: Some(pb::extract_masked_object_request::Object::KeyReference(aes.clone())),
                },
            ),
            call(Rpc::InsertMaskedObject, ALICE, &pb::InsertMaskedObjectRequest { masked_object: vec![1, 2, 3] }),
        ]
        .concat(),
        [
            call(
                Rpc::GenerateQuorumToken,
                ADMIN,
                &pb::GenerateQuorumTokenRequest { service: pb::QuorumServiceName::User.into() },
            ),
            call(Rpc::ListQuorumTokens, ALICE, &pb::ListQuorumTokensRequest {}),
            call(Rpc::ListQuorumValues, ADMIN, &pb::ListQuorumValuesRequest {}),
            call(
                Rpc::SetQuorumValue,
                ADMIN,
                &pb::SetQuorumValueRequest { service: pb::QuorumServiceName::Cluster.into(), value: 2, approval: None },
            ),
            call(Rpc::DeleteQuorumTokens, ADMIN, &pb::DeleteQuorumTokensRequest::default()),
        ]
        .concat(),
        [
            call(
                Rpc::RegisterTrustAnchor,
                ADMIN,
                &pb::RegisterTrustAnchorRequest { certificate: anchor_pem(), approval: None },
            ),
            call(Rpc::ListTrustAnchors, ADMIN, &pb::ListTrustAnchorsRequest {}),
            call(Rpc::GetMtlsEnforcement, ADMIN, &pb::GetMtlsEnforcementRequest {}),
        ]
        .concat(),
        [
            call(Rpc::Ping, ALICE, &pb::PingRequest {}),
            call(Rpc::ReadAuditLog, ADMIN, &pb::ReadAuditLogRequest::default()),
            call(
                Rpc::ChangeOwnPassword,
                BOB,
                &pb::ChangeOwnPasswordRequest { new_password: "bob-pass-2".into(), ..Default::default() },
            ),
            call(Rpc::Logout, ALICE, &pb::LogoutRequest {}),
            call(Rpc::Ping, ALICE | 0x80, &pb::PingRequest {}),
        ]
        .concat(),
    ]
}

/// A CA certificate that can anchor client certificates.
fn anchor_pem() -> String {
    expect(crate::pki::generate_ca("cluster-anchor"), "a CA certificate").cert_pem
}

pub(super) fn key_filters() -> Vec<Vec<u8>> {
    [
        (0, "attr.label=aes"),
        (1, ""),
        (2, "attr.key-type=ec\nattr.class=private-key"),
        (0, "attr.sign=true"),
        (1, "key-reference=0x0000000000000001"),
    ]
    .into_iter()
    .map(|(max, text)| [&[max][..], text.as_bytes()].concat())
    .collect()
}

pub(super) fn key_import() -> Vec<Vec<u8>> {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(4);
    let mut seeds = Vec::new();
    // With each kind's index in `KINDS`.
    for (spec, kind) in [(KeySpec::Ec(Curve::P256), 4), (KeySpec::Ec(Curve::Secp256k1), 7), (KeySpec::Ed25519, 8)] {
        let Ok(Generated::Pair { private, public }) = spec.generate(&mut rng) else { panic!("a key pair") };
        let private_der = expect(private.to_wrappable(), "a private key's PKCS#8");
        let public_der = expect(public.to_wrappable(), "a public key's SPKI");
        seeds.push([&[0][..], expect(public.public_pem(), "a public PEM").as_bytes()].concat());
        seeds.push([&[1][..], &private_der].concat());
        seeds.push([&[2][..], &public_der].concat());
        seeds.push([&[4, kind, 2][..], &private_der].concat());
    }
    let approver = &approvers()[0];
    seeds.push([&[2][..], &approver.spki].concat());
    seeds.push([&[5][..], &approver.spki].concat());
    seeds.push([&[3, 0][..], &[0x11; 32]].concat());
    seeds.push([&[3, 1][..], &[0x22; 20]].concat());
    seeds
}

pub(super) fn masked_object() -> Vec<Vec<u8>> {
    block_on(async {
        let (mut rig, sessions) = populated().await;
        let list: pb::ListKeysResponse = expect(
            rig.typed(Rpc::ListKeys, Some(&sessions.alice), &pb::ListKeysRequest::default()).await,
            "listing alice's keys",
        );
        let mut seeds = Vec::new();
        let objects = list
            .keys
            .iter()
            .map(|k| pb::extract_masked_object_request::Object::KeyReference(k.key_reference.clone()))
            .chain([pb::extract_masked_object_request::Object::Username("bob".into())]);
        // Users are extracted by the appliance user (cloning).
        let appliance = expect(
            rig.login(crate::model::APPLIANCE_USERNAME, pb::Role::Appliance, "appliance-pass").await,
            "the appliance user logs in",
        );
        for object in objects {
            let session = match object {
                pb::extract_masked_object_request::Object::Username(_) => &appliance,
                pb::extract_masked_object_request::Object::KeyReference(_) => &sessions.alice,
            };
            let request = pb::ExtractMaskedObjectRequest { object: Some(object) };
            let extracted: pb::ExtractMaskedObjectResponse =
                expect(rig.typed(Rpc::ExtractMaskedObject, Some(session), &request).await, "extracting");
            seeds.push([&[0][..], &extracted.masked_object].concat());
        }
        // The same objects' payloads, for the sealed form of the input.
        let masker = Masker::new(&rig::cluster_key(), &rig::cluster().id);
        let payloads: Vec<Vec<u8>> =
            seeds.iter().filter_map(|s| masker.open_payload(&s[1..]).ok()).map(|p| [&[1][..], &p].concat()).collect();
        seeds.extend(payloads);
        seeds
    })
}

pub(super) fn backup() -> Vec<Vec<u8>> {
    block_on(async {
        let (rig, _) = populated().await;
        let file = expect(rig.backup_bytes(), "backing up a populated HSM");
        let opened = crate::store::open_backup_payload(&file, &rig::cluster_key(), &rig::cluster());
        let Ok((version, payload)) = opened else { panic!("the rig's backup does not open") };
        let form = u8::try_from(version).unwrap_or(3);
        vec![[&[0][..], &file].concat(), [&[form][..], &payload].concat()]
    })
}

pub(super) fn quorum_approval() -> Vec<Vec<u8>> {
    block_on(async {
        let (_rig, gated) = quorum_rig().await;
        let file = |signers: &[(&str, usize)]| {
            use base64::{Engine as _, engine::general_purpose::STANDARD};
            let signatures: Vec<serde_json::Value> = signers
                .iter()
                .map(|(name, approver)| {
                    serde_json::json!({
                        "username": name,
                        "signature": STANDARD.encode(approvers()[*approver].sign(&gated.approval_data)),
                    })
                })
                .collect();
            // AWS's approval file: one token over the (here single) HSM's
            // approval data, signed once by each approver.
            let file = serde_json::json!({
                "version": "2.0",
                "approval_data": STANDARD.encode(&gated.approval_data),
                "token": STANDARD.encode(&gated.token),
                "signatures": signatures,
            });
            file.to_string().into_bytes()
        };
        vec![
            file(&[("admin", 0), ("admin2", 1)]),
            file(&[("admin", 0), ("admin", 0)]),
            file(&[("admin", 0), ("admin2", 0)]),
            file(&[("admin", 0)]),
        ]
    })
}

pub(super) fn seed() -> Vec<Vec<u8>> {
    let counted = r#"
[cluster]
hsms = 1
admin_password = "admin-pass"

[[users]]
username = "alice"
role = "crypto-user"
password = "alice-pass"

[[keys]]
label = "aes-{n}"
owner = "alice"
type = "aes"
key_length_bytes = 16
count = 3
attributes = { encrypt = true }
"#;
    // The example, less the key it reads from a file beside it.
    let example = include_str!("../../examples/seed.toml")
        .split("[[keys]]")
        .enumerate()
        .filter(|(i, entry)| *i == 0 || !entry.contains("\npem_file"))
        .map(|(_, entry)| entry)
        .collect::<Vec<_>>()
        .join("[[keys]]");
    vec![example.into_bytes(), counted.as_bytes().to_vec()]
}

pub(super) fn settings() -> Vec<Vec<u8>> {
    let text = r#"
cluster_id = "cluster-2nrqcvbdpta"
hsm_id = "hsm-2nrqcvbdptb"
listen = "127.0.0.1:2223"
tls_cert = "cert.pem"
tls_key = "key.pem"
appliance_password_file = "appliance"
master_key_file = "master.key"
hsm_index = 2
peers = ["127.0.0.1:2224", "hsm-3:2225"]
hsm_type = "hsm2m.medium"
session_idle_timeout_secs = 600
max_sessions = 100
key_quota = "off"
kdf_memory_kib = 8
kdf_iterations = 1
kdf_parallelism = 1
metrics_addr = "127.0.0.1:9100"
max_connections = 100
handshake_timeout_ms = 1000
idle_timeout_secs = 60
max_message_bytes = 65536
"#;
    vec![text.as_bytes().to_vec()]
}

pub(super) fn trust_anchor() -> Vec<Vec<u8>> {
    let pem = anchor_pem();
    let der = {
        use rustls::pki_types::{CertificateDer, pem::PemObject as _};
        expect(CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| e.to_string()), "a certificate's DER")
    };
    vec![[&[0][..], pem.as_bytes()].concat(), [&[1][..], der.as_ref()].concat()]
}
