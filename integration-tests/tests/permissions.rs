//! The seed's permission table, walked over real TLS: every RPC, called as
//! each of the five identities (and the appliance user before activation), is allowed or refused exactly as the table
//! says, and every refusal names the operation and the role.

use hsm_client::{
    CreateUser, Encrypt, KeyOptions, KeyPairSpec, Role, Session, ShareKey, Sign, WrapKey,
    keys::{Cipher, HashAlgorithm, SignMechanism, SymmetricKeyType, WrapMechanism},
};
use hsm_daemon::pki::{self, CertifiedKey};
use hsm_proto::v1::{
    self as pb, Rpc, audit_service_client::AuditServiceClient, cluster_service_client::ClusterServiceClient,
    crypto_service_client::CryptoServiceClient, key_service_client::KeyServiceClient,
    masked_object_service_client::MaskedObjectServiceClient, mtls_service_client::MtlsServiceClient,
    quorum_service_client::QuorumServiceClient, session_service_client::SessionServiceClient,
    user_service_client::UserServiceClient,
};
use integration_tests::{APPLIANCE_PASSWORD, Options, TestHsm, TestRsaKey};
use tonic::{Code, Status};

/// The five identities of the seed (plus PRECO from its PRECO section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Unauthenticated,
    Preco,
    Co,
    Cu,
    Au,
    /// The appliance user of a cluster not yet activated.
    AuBefore,
}

const EVERYONE: [Who; 6] = [Who::Unauthenticated, Who::Preco, Who::Co, Who::Cu, Who::Au, Who::AuBefore];

/// Written from the seed's table (and the issue for PRECO), independently of
/// the daemon's table.
fn allowed(rpc: Rpc) -> &'static [Who] {
    match rpc {
        // "Get basic cluster info": everyone, logged in or not.
        Rpc::GetClusterInfo => &EVERYONE,
        // "Get sync status", "Extract, insert masked objects": CO, CU, AU.
        Rpc::GetSyncStatus | Rpc::ExtractMaskedObject | Rpc::InsertMaskedObject => &[Who::Co, Who::Cu, Who::Au],
        // The PRECO's one job.
        Rpc::Activate => &[Who::Preco],
        // Anyone may open a session.
        Rpc::Login => &EVERYONE,
        Rpc::Logout | Rpc::Ping => &[Who::Preco, Who::Co, Who::Cu, Who::Au, Who::AuBefore],
        // "Add, remove users": CO only.
        Rpc::CreateUser | Rpc::DeleteUser => &[Who::Co],
        // Not in the seed; every logged-in user, and before activation one
        // of the three things that work (cloudhsm-facts.md).
        Rpc::ListUsers => &[Who::Preco, Who::Co, Who::Cu, Who::Au, Who::AuBefore],
        // "Change own password": CO, CU, AU.
        Rpc::ChangeOwnPassword => &[Who::Co, Who::Cu, Who::Au],
        // "Change any user's password": CO only.
        Rpc::ChangeUserPassword => &[Who::Co],
        // "Key management functions": CU only...
        Rpc::GenerateSymmetricKey
        | Rpc::GenerateKeyPair
        | Rpc::ImportKey
        | Rpc::ExportPublicKey
        | Rpc::WrapKey
        | Rpc::UnwrapKey
        | Rpc::DeleteKey
        | Rpc::ShareKey
        | Rpc::UnshareKey => &[Who::Cu],
        // ...except that CloudHSM lets admins list keys and set `trusted`.
        Rpc::SetKeyAttribute | Rpc::ListKeys => &[Who::Co, Who::Cu],
        // "Encrypt, decrypt", "Sign, verify", "Generate digests and HMACs": CU.
        Rpc::Encrypt | Rpc::Decrypt | Rpc::Sign | Rpc::Verify | Rpc::Digest => &[Who::Cu],
        // Random numbers (an extension, for PKCS#11): a crypto operation.
        Rpc::GenerateRandom => &[Who::Cu],
        // The audit log (an extension): admins only.
        Rpc::ReadAuditLog => &[Who::Co],
        // mTLS: admins change the policy (CloudHSM); reading it is for
        // logged-in users (the seed's table, not CloudHSM's "anyone"), the
        // appliance user included, which copies it when cloning.
        Rpc::RegisterTrustAnchor | Rpc::DeregisterTrustAnchor | Rpc::SetMtlsEnforcement => &[Who::Co],
        Rpc::ListTrustAnchors | Rpc::GetMtlsEnforcement => &[Who::Co, Who::Cu, Who::Au],
        // Quorum and MFA: admins and crypto users (the service decides
        // which tokens each may have); quorum values are set by admins and
        // read by the appliance user too, to clone a new HSM.
        Rpc::GenerateQuorumToken
        | Rpc::ListQuorumTokens
        | Rpc::DeleteQuorumTokens
        | Rpc::RegisterQuorumKey
        | Rpc::ChangeMfa => &[Who::Co, Who::Cu],
        Rpc::SetQuorumValue => &[Who::Co],
        Rpc::ListQuorumValues => &[Who::Co, Who::Cu, Who::Au],
    }
}

/// The words a refusal must contain: the operation (as the CLI names it).
fn operation_words(rpc: Rpc) -> &'static str {
    match rpc {
        Rpc::GetClusterInfo => "cluster hsm-info",
        Rpc::GetSyncStatus => "cluster sync-status",
        Rpc::ExtractMaskedObject => "extract masked object",
        Rpc::InsertMaskedObject => "insert masked object",
        Rpc::Activate => "cluster activate",
        Rpc::Login => "login",
        Rpc::Logout => "logout",
        Rpc::Ping => "session ping",
        Rpc::CreateUser => "user create",
        Rpc::DeleteUser => "user delete",
        Rpc::ListUsers => "user list",
        Rpc::ChangeOwnPassword => "user change-password (own password)",
        Rpc::ChangeUserPassword => "user change-password (another user's password)",
        Rpc::GenerateSymmetricKey => "key generate-symmetric",
        Rpc::GenerateKeyPair => "key generate-asymmetric-pair",
        Rpc::ImportKey => "key import",
        Rpc::ExportPublicKey => "key generate-file",
        Rpc::WrapKey => "key wrap",
        Rpc::UnwrapKey => "key unwrap",
        Rpc::DeleteKey => "key delete",
        Rpc::ShareKey => "key share",
        Rpc::UnshareKey => "key unshare",
        Rpc::SetKeyAttribute => "key set-attribute",
        Rpc::ListKeys => "key list",
        Rpc::Encrypt => "crypto encrypt",
        Rpc::Decrypt => "crypto decrypt",
        Rpc::Sign => "crypto sign",
        Rpc::Verify => "crypto verify",
        Rpc::Digest => "crypto digest",
        Rpc::GenerateRandom => "generate random",
        Rpc::ReadAuditLog => "audit list",
        Rpc::RegisterTrustAnchor => "cluster mtls register-trust-anchor",
        Rpc::DeregisterTrustAnchor => "cluster mtls deregister-trust-anchor",
        Rpc::ListTrustAnchors => "cluster mtls list-trust-anchors",
        Rpc::SetMtlsEnforcement => "cluster mtls set-enforcement",
        Rpc::GetMtlsEnforcement => "cluster mtls get-enforcement",
        Rpc::GenerateQuorumToken => "quorum token-sign generate",
        Rpc::ListQuorumTokens => "quorum token-sign list",
        Rpc::DeleteQuorumTokens => "quorum token-sign delete",
        Rpc::SetQuorumValue => "quorum token-sign set-quorum-value",
        Rpc::ListQuorumValues => "quorum token-sign list-quorum-values",
        Rpc::RegisterQuorumKey => "user change-quorum token-sign register",
        Rpc::ChangeMfa => "user change-mfa token-sign",
    }
}

fn role_words(who: Who) -> &'static str {
    match who {
        Who::Unauthenticated => "unauthenticated",
        Who::Preco => "unactivated-admin",
        Who::Co => "admin",
        Who::Cu => "crypto-user",
        Who::Au | Who::AuBefore => "appliance",
    }
}

/// Keys (owned by the crypto user `alice`) and outputs that the key and
/// crypto calls refer to.
#[derive(Debug, Clone)]
struct Fixture {
    /// AES-256 allowed to encrypt, decrypt, wrap and unwrap.
    aes: String,
    /// An extractable AES key to wrap and to delete.
    target: String,
    ec_private: String,
    ec_public: String,
    wrapped: Vec<u8>,
    /// `aes`, extracted by its owner as a masked object.
    masked: Vec<u8>,
    iv: Vec<u8>,
    ciphertext: Vec<u8>,
    signature: Vec<u8>,
}

impl Fixture {
    /// For an unactivated HSM, where every key call is refused before any
    /// key is looked up.
    fn dummy() -> Self {
        let r = "0x0000000000000001".to_owned();
        Fixture {
            aes: r.clone(),
            target: r.clone(),
            ec_private: r.clone(),
            ec_public: r,
            wrapped: vec![0; 40],
            iv: vec![0; 12],
            ciphertext: vec![0; 32],
            signature: vec![0; 64],
            masked: vec![0; 16],
        }
    }

    async fn make(alice: &Session) -> Self {
        let all = |label: &str| KeyOptions {
            attributes: [
                ("label", label),
                ("encrypt", "true"),
                ("decrypt", "true"),
                ("wrap", "true"),
                ("unwrap", "true"),
            ]
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
            ..KeyOptions::default()
        };
        let aes = alice.generate_symmetric_key(SymmetricKeyType::Aes, 32, &all("aes")).await.expect("aes").reference;
        let target =
            alice.generate_symmetric_key(SymmetricKeyType::Aes, 16, &all("target")).await.expect("target").reference;
        let sign = KeyOptions { attributes: vec![("sign".into(), "true".into())], ..KeyOptions::default() };
        let verify = KeyOptions { attributes: vec![("verify".into(), "true".into())], ..KeyOptions::default() };
        let (ec_public, ec_private) = alice
            .generate_key_pair(&KeyPairSpec::Ec { curve: "secp256r1".into() }, &verify, &sign)
            .await
            .expect("ec pair");
        let wrapped = alice.wrap_key(WrapKey::new(&aes, &target, WrapMechanism::AesKeyWrapPad)).await.expect("wrap");
        let (iv, ciphertext) = alice.encrypt(Encrypt::new(&aes, Cipher::AesGcm, b"hello")).await.expect("encrypt");
        let signature = alice
            .sign(Sign::new(&ec_private.reference, SignMechanism::Ecdsa, b"hello").hash(HashAlgorithm::Sha256))
            .await
            .expect("sign");
        let masked = MaskedObjectServiceClient::new(alice.client().channel())
            .extract_masked_object(r(alice, extract_key(&aes)))
            .await
            .expect("extract")
            .into_inner()
            .masked_object;
        Fixture {
            aes,
            target,
            ec_private: ec_private.reference,
            ec_public: ec_public.reference,
            wrapped,
            iv,
            ciphertext,
            signature,
            masked,
        }
    }
}

/// A fresh HSM and a session of `who` on it. Active HSMs also hold a crypto
/// user `victim` who is not logged in, for delete and password calls, and
/// keys of the crypto user `alice`.
async fn session_as(who: Who) -> (TestHsm, Session, Fixture) {
    let before = matches!(who, Who::Preco | Who::AuBefore);
    let base = if before { Options::unactivated() } else { Options::default() };
    let client_identity = Some(pki::issue_client(operators(), "operator").expect("client certificate"));
    let hsm = TestHsm::start(Options { client_identity, ..base }).await;
    let mut fixture = Fixture::dummy();
    if !before {
        let admin = hsm.admin().await;
        admin.create_user(CreateUser::new("victim", Role::CryptoUser, "victim-pass")).await.expect("victim");
        admin.create_user(CreateUser::new("alice", Role::CryptoUser, "alice-pass")).await.expect("alice");
        admin.logout().await.expect("logout");
        let alice = hsm.login("alice", Role::CryptoUser, "alice-pass").await;
        fixture = Fixture::make(&alice).await;
        alice.share_key(ShareKey::new(&fixture.aes, "victim")).await.expect("share");
        alice.logout().await.expect("logout");
    }
    let session = match who {
        Who::Unauthenticated => hsm.client.anonymous(),
        Who::Preco => hsm.login("admin", Role::Admin, "password").await,
        Who::Co => hsm.admin().await,
        Who::Cu => hsm.login("alice", Role::CryptoUser, "alice-pass").await,
        Who::Au | Who::AuBefore => hsm.login("app_user", Role::Appliance, APPLIANCE_PASSWORD).await,
    };
    (hsm, session, fixture)
}

/// A request carrying the session's token.
fn r<T>(session: &Session, message: T) -> tonic::Request<T> {
    session.request(message).expect("request")
}

/// Calls `rpc` with a request that succeeds when the caller is allowed.
async fn call(rpc: Rpc, who: Who, session: &Session, f: &Fixture) -> Result<(), Status> {
    let channel = session.client().channel();
    let keys = || KeyServiceClient::new(session.client().channel());
    let crypto = || CryptoServiceClient::new(session.client().channel());
    let quorum = || QuorumServiceClient::new(session.client().channel());
    let role = |r: pb::Role| i32::from(r);
    match rpc {
        Rpc::GetClusterInfo => ClusterServiceClient::new(channel)
            .get_cluster_info(r(session, pb::GetClusterInfoRequest {}))
            .await
            .map(drop),
        Rpc::GetSyncStatus => {
            let request = pb::GetSyncStatusRequest { include_keys: true };
            ClusterServiceClient::new(channel).get_sync_status(r(session, request)).await.map(drop)
        }
        // Every identity the table allows may take alice's key: admins and
        // the appliance user any key, alice her own.
        Rpc::ExtractMaskedObject => MaskedObjectServiceClient::new(channel)
            .extract_masked_object(r(session, extract_key(&f.aes)))
            .await
            .map(drop),
        // Putting the same version back changes nothing, and succeeds.
        Rpc::InsertMaskedObject => MaskedObjectServiceClient::new(channel)
            .insert_masked_object(r(session, pb::InsertMaskedObjectRequest { masked_object: f.masked.clone() }))
            .await
            .map(drop),
        Rpc::Activate => ClusterServiceClient::new(channel)
            .activate(session.request(pb::ActivateRequest { new_password: "activated-pass".into() }).expect("request"))
            .await
            .map(drop),
        Rpc::Login => SessionServiceClient::new(channel)
            .login(
                session
                    .request(pb::LoginRequest {
                        username: "app_user".into(),
                        role: role(pb::Role::Appliance),
                        password: APPLIANCE_PASSWORD.into(),
                        ..Default::default()
                    })
                    .expect("request"),
            )
            .await
            .map(drop),
        Rpc::Ping => {
            SessionServiceClient::new(channel).ping(session.request(pb::PingRequest {}).expect("r")).await.map(drop)
        }
        Rpc::Logout => {
            SessionServiceClient::new(channel).logout(session.request(pb::LogoutRequest {}).expect("r")).await.map(drop)
        }
        Rpc::CreateUser => UserServiceClient::new(channel)
            .create_user(
                session
                    .request(pb::CreateUserRequest {
                        username: "walker".into(),
                        role: role(pb::Role::CryptoUser),
                        password: "walker-pass".into(),
                        ..Default::default()
                    })
                    .expect("request"),
            )
            .await
            .map(drop),
        Rpc::DeleteUser => UserServiceClient::new(channel)
            .delete_user(
                session
                    .request(pb::DeleteUserRequest {
                        username: "victim".into(),
                        role: role(pb::Role::CryptoUser),
                        ..Default::default()
                    })
                    .expect("request"),
            )
            .await
            .map(drop),
        Rpc::ListUsers => UserServiceClient::new(channel)
            .list_users(session.request(pb::ListUsersRequest {}).expect("r"))
            .await
            .map(drop),
        Rpc::ChangeOwnPassword => UserServiceClient::new(channel)
            .change_own_password(
                session
                    .request(pb::ChangeOwnPasswordRequest { new_password: "changed-pass".into(), ..Default::default() })
                    .expect("r"),
            )
            .await
            .map(drop),
        Rpc::ChangeUserPassword => UserServiceClient::new(channel)
            .change_user_password(
                session
                    .request(pb::ChangeUserPasswordRequest {
                        username: "victim".into(),
                        role: role(pb::Role::CryptoUser),
                        new_password: "changed-pass".into(),
                        ..Default::default()
                    })
                    .expect("request"),
            )
            .await
            .map(drop),
        Rpc::GenerateSymmetricKey => keys()
            .generate_symmetric_key(r(
                session,
                pb::GenerateSymmetricKeyRequest {
                    key_type: pb::SymmetricKeyType::Aes.into(),
                    key_length_bytes: 32,
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Rpc::GenerateKeyPair => keys()
            .generate_key_pair(r(
                session,
                pb::GenerateKeyPairRequest {
                    parameters: Some(pb::generate_key_pair_request::Parameters::Ec(pb::EcParameters {
                        curve: "secp256r1".into(),
                    })),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Rpc::ImportKey => keys()
            .import_key(r(
                session,
                pb::ImportKeyRequest {
                    material: Some(pb::import_key_request::Material::Secret(vec![7; 16])),
                    secret_key_type: pb::SymmetricKeyType::Aes.into(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Rpc::ExportPublicKey => keys()
            .export_public_key(r(session, pb::ExportPublicKeyRequest { key_reference: f.ec_public.clone() }))
            .await
            .map(drop),
        Rpc::WrapKey => keys()
            .wrap_key(r(
                session,
                pb::WrapKeyRequest {
                    wrapping_key_reference: f.aes.clone(),
                    key_reference: f.target.clone(),
                    mechanism: pb::WrapMechanism::AesKeyWrapPad.into(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Rpc::UnwrapKey => keys()
            .unwrap_key(r(
                session,
                pb::UnwrapKeyRequest {
                    unwrapping_key_reference: f.aes.clone(),
                    wrapped_key: f.wrapped.clone(),
                    mechanism: pb::WrapMechanism::AesKeyWrapPad.into(),
                    key_type: pb::KeyType::Aes.into(),
                    key_class: pb::KeyClass::Secret.into(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Rpc::DeleteKey => {
            keys().delete_key(r(session, pb::DeleteKeyRequest { key_reference: f.target.clone() })).await.map(drop)
        }
        Rpc::ShareKey => keys()
            .share_key(r(
                session,
                pb::ShareKeyRequest { key_reference: f.ec_private.clone(), username: "victim".into(), approval: None },
            ))
            .await
            .map(drop),
        Rpc::UnshareKey => keys()
            .unshare_key(r(
                session,
                pb::ShareKeyRequest { key_reference: f.aes.clone(), username: "victim".into(), approval: None },
            ))
            .await
            .map(drop),
        Rpc::SetKeyAttribute => {
            // Admins may set only `trusted`; crypto users anything but it.
            let (name, value) = if who == Who::Co { ("trusted", "true") } else { ("label", "renamed") };
            keys()
                .set_key_attribute(r(
                    session,
                    pb::SetKeyAttributeRequest {
                        key_reference: f.aes.clone(),
                        name: name.into(),
                        value: value.into(),
                        approval: None,
                    },
                ))
                .await
                .map(drop)
        }
        Rpc::ListKeys => keys().list_keys(r(session, pb::ListKeysRequest::default())).await.map(drop),
        Rpc::Encrypt => crypto()
            .encrypt(r(
                session,
                pb::EncryptRequest {
                    key_reference: f.aes.clone(),
                    cipher: pb::Cipher::AesGcm.into(),
                    data: b"data".to_vec(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Rpc::Decrypt => crypto()
            .decrypt(r(
                session,
                pb::DecryptRequest {
                    key_reference: f.aes.clone(),
                    cipher: pb::Cipher::AesGcm.into(),
                    iv: f.iv.clone(),
                    ciphertext: f.ciphertext.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Rpc::Sign => crypto()
            .sign(r(
                session,
                pb::SignRequest {
                    key_reference: f.ec_private.clone(),
                    mechanism: pb::SignMechanism::Ecdsa.into(),
                    hash: pb::HashAlgorithm::Sha256.into(),
                    data: b"hello".to_vec(),
                    data_is_digest: false,
                    approval: None,
                },
            ))
            .await
            .map(drop),
        Rpc::Verify => crypto()
            .verify(r(
                session,
                pb::VerifyRequest {
                    key_reference: f.ec_public.clone(),
                    mechanism: pb::SignMechanism::Ecdsa.into(),
                    hash: pb::HashAlgorithm::Sha256.into(),
                    data: b"hello".to_vec(),
                    data_is_digest: false,
                    signature: f.signature.clone(),
                },
            ))
            .await
            .map(drop),
        Rpc::Digest => crypto()
            .digest(r(session, pb::DigestRequest { hash: pb::HashAlgorithm::Sha256.into(), data: b"hello".to_vec() }))
            .await
            .map(drop),
        Rpc::GenerateRandom => {
            crypto().generate_random(r(session, pb::GenerateRandomRequest { length: 32 })).await.map(drop)
        }
        Rpc::ReadAuditLog => AuditServiceClient::new(channel)
            .read_audit_log(r(session, pb::ReadAuditLogRequest { from_seq: 1, limit: 10 }))
            .await
            .map(drop),
        Rpc::RegisterTrustAnchor => {
            let certificate = pki::generate_ca("cluster-anchor").expect("CA").cert_pem;
            MtlsServiceClient::new(channel)
                .register_trust_anchor(r(session, pb::RegisterTrustAnchorRequest { certificate, approval: None }))
                .await
                .map(drop)
        }
        Rpc::DeregisterTrustAnchor => {
            // An anchor to remove, where the caller may add one.
            if who == Who::Co {
                let certificate = pki::generate_ca("cluster-anchor").expect("CA").cert_pem;
                MtlsServiceClient::new(channel.clone())
                    .register_trust_anchor(r(session, pb::RegisterTrustAnchorRequest { certificate, approval: None }))
                    .await?;
            }
            let request = pb::DeregisterTrustAnchorRequest { certificate_reference: "0x01".into(), approval: None };
            MtlsServiceClient::new(channel).deregister_trust_anchor(r(session, request)).await.map(drop)
        }
        Rpc::ListTrustAnchors => MtlsServiceClient::new(channel)
            .list_trust_anchors(r(session, pb::ListTrustAnchorsRequest {}))
            .await
            .map(drop),
        Rpc::SetMtlsEnforcement => {
            // The session's connection presents a certificate of the
            // operators' CA (see `session_as`): registered, it lets the
            // admin set the level.
            if who == Who::Co {
                let certificate = operators().cert_pem.clone();
                MtlsServiceClient::new(channel.clone())
                    .register_trust_anchor(r(session, pb::RegisterTrustAnchorRequest { certificate, approval: None }))
                    .await?;
            }
            MtlsServiceClient::new(channel)
                .set_mtls_enforcement(r(
                    session,
                    pb::SetMtlsEnforcementRequest { level: "none".into(), approval: None },
                ))
                .await
                .map(drop)
        }
        Rpc::GetMtlsEnforcement => MtlsServiceClient::new(channel)
            .get_mtls_enforcement(r(session, pb::GetMtlsEnforcementRequest {}))
            .await
            .map(drop),
        Rpc::GenerateQuorumToken => quorum().generate_quorum_token(r(session, registration())).await.map(drop),
        Rpc::ListQuorumTokens => {
            quorum().list_quorum_tokens(r(session, pb::ListQuorumTokensRequest {})).await.map(drop)
        }
        Rpc::DeleteQuorumTokens => quorum()
            .delete_quorum_tokens(r(session, pb::DeleteQuorumTokensRequest { all: false, ..Default::default() }))
            .await
            .map(drop),
        Rpc::SetQuorumValue => quorum()
            .set_quorum_value(r(
                session,
                pb::SetQuorumValueRequest { service: pb::QuorumServiceName::User.into(), value: 1, approval: None },
            ))
            .await
            .map(drop),
        Rpc::ListQuorumValues => {
            quorum().list_quorum_values(r(session, pb::ListQuorumValuesRequest {})).await.map(drop)
        }
        Rpc::RegisterQuorumKey => {
            // A registration token to sign, where the caller may have one.
            let issued = quorum().generate_quorum_token(r(session, registration())).await.ok().map(|t| t.into_inner());
            let key = TestRsaKey::fixed();
            let (token, signature) =
                issued.map(|t| (t.token, key.sign(&t.approval_data))).unwrap_or_else(|| (vec![0; 32], vec![0; 256]));
            quorum()
                .register_quorum_key(r(
                    session,
                    pb::RegisterQuorumKeyRequest { public_key: key.spki(), token, signature, ..Default::default() },
                ))
                .await
                .map(drop)
        }
        // Turning one's own MFA off (it is off: nothing changes).
        Rpc::ChangeMfa => {
            let (username, role) = match who {
                Who::Cu => ("alice", pb::Role::CryptoUser),
                Who::Au | Who::AuBefore => ("app_user", pb::Role::Appliance),
                _ => ("admin", pb::Role::Admin),
            };
            UserServiceClient::new(channel)
                .change_mfa(r(
                    session,
                    pb::ChangeMfaRequest {
                        username: username.into(),
                        role: role.into(),
                        deregister: true,
                        ..Default::default()
                    },
                ))
                .await
                .map(drop)
        }
    }
}

/// The CA of the client certificate every session here presents.
fn operators() -> &'static CertifiedKey {
    static CA: std::sync::OnceLock<CertifiedKey> = std::sync::OnceLock::new();
    CA.get_or_init(|| pki::generate_ca("cluster-operators").expect("CA"))
}

fn registration() -> pb::GenerateQuorumTokenRequest {
    pb::GenerateQuorumTokenRequest { service: pb::QuorumServiceName::Registration.into() }
}

fn extract_key(reference: &str) -> pb::ExtractMaskedObjectRequest {
    pb::ExtractMaskedObjectRequest {
        object: Some(pb::extract_masked_object_request::Object::KeyReference(reference.to_owned())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_as_every_identity_follows_the_seed_table() {
    let mut checked = 0;
    for rpc in Rpc::ALL.iter().copied() {
        for who in EVERYONE {
            let (hsm, session, fixture) = session_as(who).await;
            let result = call(rpc, who, &session, &fixture).await;
            let want_allowed = allowed(rpc).contains(&who);
            match (&result, want_allowed) {
                (Ok(()), true) => {}
                (Err(status), false) => {
                    let want_code = match who {
                        Who::Unauthenticated => Code::Unauthenticated,
                        // Before activation nothing but cluster info, the
                        // user list and activation works: not a matter of role.
                        Who::Preco | Who::AuBefore => Code::FailedPrecondition,
                        Who::Co | Who::Cu | Who::Au => Code::PermissionDenied,
                    };
                    assert_eq!(status.code(), want_code, "{rpc:?} as {who:?}: {status:?}");
                    let msg = status.message();
                    assert!(
                        msg.contains(operation_words(rpc)),
                        "{rpc:?} as {who:?}: message lacks the operation: {msg}"
                    );
                    assert!(msg.contains(role_words(who)), "{rpc:?} as {who:?}: message lacks the role: {msg}");
                }
                (Ok(()), false) => panic!("{rpc:?} as {who:?} was allowed; the seed table refuses it"),
                (Err(status), true) => panic!("{rpc:?} as {who:?} failed; the seed table allows it: {status:?}"),
            }
            checked += 1;
            hsm.shutdown().await;
        }
    }
    assert_eq!(checked, Rpc::ALL.len() * EVERYONE.len());
}

#[tokio::test]
async fn a_garbage_or_stale_token_is_refused_naming_the_operation() {
    let hsm = TestHsm::start(Options::default()).await;
    for header in ["Bearer nonsense", "Bearer 00.00", "Basic abc", "Bearer "] {
        let mut request = tonic::Request::new(pb::ListUsersRequest {});
        request.metadata_mut().insert("authorization", header.parse().expect("ascii"));
        let status = UserServiceClient::new(hsm.client.channel()).list_users(request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{header}");
        assert!(status.message().contains("user list"), "{}", status.message());
        assert!(status.message().contains("session token is malformed"), "{}", status.message());
    }
    // A well-formed token of a session that has ended.
    let admin = hsm.admin().await;
    let stale = admin.request(pb::ListUsersRequest {}).expect("request");
    admin.logout().await.expect("logout");
    let status = UserServiceClient::new(hsm.client.channel()).list_users(stale).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("unknown, logged out or expired"), "{}", status.message());
}
