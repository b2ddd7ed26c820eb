//! `libhsm_pkcs11.so` loaded as an application loads it (through the Rust
//! `cryptoki` crate, with `dlopen`), against an in-process cluster of two
//! HSMs over real TLS. Signatures are checked with ring, independently of
//! the HSM.
//!
//! The library reads its configuration from the process environment, which
//! is global: everything runs in one test function.
#![expect(clippy::unwrap_used, reason = "a test fails loudly on the first unexpected error")]

use std::path::PathBuf;

use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    error::{Error, RvError},
    mechanism::{Mechanism, MechanismType},
    object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle},
    session::{Session, UserType},
    types::AuthPin,
};
use hsm_client::Role;
use hsm_daemon::testing::{Options, TestCluster};
use ring::{digest, signature};

/// CKA_EC_PARAMS of P-256: the named curve's OID.
const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// The library built with this test: cargo puts the cdylib beside the test
/// binary, in `target/<profile>/deps`.
fn library_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().join("libhsm_pkcs11.so");
    assert!(path.exists(), "{} not built", path.display());
    path
}

/// Sets `HSM_PKCS11_CONFIG` (the file is written once the cluster is up).
#[expect(unsafe_code, reason = "setting the environment the library reads")]
fn point_the_library_at(client_env: &std::path::Path) {
    // SAFETY: called first in the only test of this binary, before the test
    // starts any thread; nothing else reads or writes the environment now.
    unsafe { std::env::set_var(hsm_pkcs11::CONFIG_ENV, client_env) };
}

fn pin(text: &str) -> AuthPin {
    AuthPin::new(text.into())
}

fn rv<T: std::fmt::Debug>(result: Result<T, Error>) -> RvError {
    match result {
        Err(Error::Pkcs11(rv, _)) => rv,
        other => panic!("expected a PKCS#11 error, got {other:?}"),
    }
}

fn attribute(attributes: &[Attribute], kind: AttributeType) -> &Attribute {
    attributes.iter().find(|a| a.attribute_type() == kind).unwrap_or_else(|| panic!("{kind:?} missing"))
}

fn bytes(attributes: &[Attribute], kind: AttributeType) -> Vec<u8> {
    match attribute(attributes, kind) {
        Attribute::EcPoint(v) | Attribute::EcParams(v) | Attribute::Label(v) | Attribute::Id(v) => v.clone(),
        Attribute::Modulus(v) | Attribute::PublicExponent(v) => v.clone(),
        other => panic!("not bytes: {other:?}"),
    }
}

fn ec_pair(session: &Session, label: &str) -> (ObjectHandle, ObjectHandle) {
    let public = [
        Attribute::Token(true),
        Attribute::Verify(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(vec![0xec, 1]),
        Attribute::EcParams(P256.to_vec()),
    ];
    let private = [
        Attribute::Token(true),
        Attribute::Sign(true),
        Attribute::Sensitive(true),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(vec![0xec, 1]),
    ];
    session.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private).unwrap()
}

#[test]
fn an_application_makes_keys_signs_and_verifies_through_pkcs11() {
    let dir = tempfile::tempdir().unwrap();
    let client_env = dir.path().join("client.env");
    point_the_library_at(&client_env);

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let options =
        Options { users: vec![("alice".into(), Role::CryptoUser, "alice-pass".into())], ..Options::default() };
    let cluster = runtime.block_on(TestCluster::start(2, options));
    // client.env as `hsm-daemon dev` writes it; the CA path is relative to it.
    std::fs::write(dir.path().join("ca.pem"), cluster.ca_pem()).unwrap();
    std::fs::write(&client_env, format!("HSM_ENDPOINTS={}\nHSM_CA_CERT=ca.pem\n", cluster.endpoints().join(",")))
        .unwrap();

    let pkcs11 = Pkcs11::new(library_path()).unwrap();
    pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)).unwrap();
    assert_eq!(
        rv(pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))),
        RvError::CryptokiAlreadyInitialized
    );

    // Library, slot and token.
    let info = pkcs11.get_library_info().unwrap();
    assert_eq!((info.cryptoki_version().major(), info.cryptoki_version().minor()), (2, 40));
    assert_eq!(info.manufacturer_id(), "hsm-emulator");
    let slots = pkcs11.get_slots_with_token().unwrap();
    assert_eq!(slots.len(), 1, "one slot for the cluster");
    let slot = slots[0];
    let token = pkcs11.get_token_info(slot).unwrap();
    assert_eq!(token.label(), "hsm-emulator");
    assert!(!token.serial_number().is_empty());
    assert!(token.login_required());
    let mechanisms = pkcs11.get_mechanism_list(slot).unwrap();
    for m in [MechanismType::ECC_KEY_PAIR_GEN, MechanismType::ECDSA_SHA256, MechanismType::SHA256_RSA_PKCS] {
        assert!(mechanisms.contains(&m), "{m} missing from {mechanisms:?}");
    }
    assert!(!mechanisms.contains(&MechanismType::AES_KEY_GEN), "only what works is listed");
    let ecdsa = pkcs11.get_mechanism_info(slot, MechanismType::ECDSA).unwrap();
    assert!(ecdsa.sign() && ecdsa.verify());

    // Login: a crypto user's `username:password`.
    let session = pkcs11.open_rw_session(slot).unwrap();
    assert_eq!(rv(session.login(UserType::User, Some(&pin("alice:wrong-pass")))), RvError::PinIncorrect);
    assert_eq!(rv(session.login(UserType::User, Some(&pin("no-colon")))), RvError::PinIncorrect);
    session.login(UserType::User, Some(&pin("alice:alice-pass"))).unwrap();
    assert_eq!(rv(session.login(UserType::User, Some(&pin("alice:alice-pass")))), RvError::UserAlreadyLoggedIn);

    // EC P-256: generate, read, sign, verify, and check independently.
    let (ec_public, ec_private) = ec_pair(&session, "p256");
    let attributes = session
        .get_attributes(
            ec_public,
            &[
                AttributeType::Class,
                AttributeType::KeyType,
                AttributeType::Label,
                AttributeType::Id,
                AttributeType::EcParams,
                AttributeType::EcPoint,
                AttributeType::Verify,
                AttributeType::Token,
            ],
        )
        .unwrap();
    assert_eq!(attribute(&attributes, AttributeType::Class), &Attribute::Class(ObjectClass::PUBLIC_KEY));
    assert_eq!(attribute(&attributes, AttributeType::KeyType), &Attribute::KeyType(KeyType::EC));
    assert_eq!(bytes(&attributes, AttributeType::Label), b"p256");
    assert_eq!(bytes(&attributes, AttributeType::Id), [0xec, 1]);
    assert_eq!(bytes(&attributes, AttributeType::EcParams), P256);
    assert_eq!(attribute(&attributes, AttributeType::Verify), &Attribute::Verify(true));
    assert_eq!(attribute(&attributes, AttributeType::Token), &Attribute::Token(true));
    let point = bytes(&attributes, AttributeType::EcPoint);
    assert_eq!(&point[..2], &[0x04, 65], "a DER OCTET STRING around the point");
    let point = &point[2..];
    // The private key's secret never leaves; asking for it is answered
    // (cryptoki drops unavailable attributes) without failing the call.
    let private = session.get_attributes(ec_private, &[AttributeType::Value, AttributeType::Sign]).unwrap();
    assert_eq!(private, vec![Attribute::Sign(true)]);

    let message = b"signed through PKCS#11";
    let signature = session.sign(&Mechanism::EcdsaSha256, ec_private, message).unwrap();
    assert_eq!(signature.len(), 64, "raw r || s");
    session.verify(&Mechanism::EcdsaSha256, ec_public, message, &signature).unwrap();
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(message, &signature).unwrap();
    let mut tampered = message.to_vec();
    tampered[0] ^= 1;
    assert_eq!(
        rv(session.verify(&Mechanism::EcdsaSha256, ec_public, &tampered, &signature)),
        RvError::SignatureInvalid
    );
    // CKM_ECDSA signs a digest the caller made.
    let prehashed = digest::digest(&digest::SHA256, message);
    let signature = session.sign(&Mechanism::Ecdsa, ec_private, prehashed.as_ref()).unwrap();
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(message, &signature).unwrap();
    session.verify(&Mechanism::Ecdsa, ec_public, prehashed.as_ref(), &signature).unwrap();
    assert_eq!(rv(session.sign(&Mechanism::Ecdsa, ec_private, b"not a digest")), RvError::DataLenRange);

    // RSA-2048 with PKCS#1 v1.5 and SHA-256.
    let (rsa_public, rsa_private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::Verify(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Label(b"rsa".to_vec()),
            ],
            &[Attribute::Token(true), Attribute::Sign(true), Attribute::Label(b"rsa".to_vec())],
        )
        .unwrap();
    let attributes = session
        .get_attributes(
            rsa_public,
            &[AttributeType::Modulus, AttributeType::PublicExponent, AttributeType::ModulusBits],
        )
        .unwrap();
    assert_eq!(attribute(&attributes, AttributeType::ModulusBits), &Attribute::ModulusBits(2048.into()));
    let (n, e) = (bytes(&attributes, AttributeType::Modulus), bytes(&attributes, AttributeType::PublicExponent));
    assert_eq!((n.len(), e.as_slice()), (256, &[1u8, 0, 1][..]));
    let signature = session.sign(&Mechanism::Sha256RsaPkcs, rsa_private, message).unwrap();
    session.verify(&Mechanism::Sha256RsaPkcs, rsa_public, message, &signature).unwrap();
    signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, &signature)
        .unwrap();
    assert_eq!(
        rv(session.sign(&Mechanism::Sha256RsaPkcs, ec_private, message)),
        RvError::KeyTypeInconsistent,
        "an RSA mechanism with an EC key"
    );

    // Bad templates are refused, not guessed at.
    let junk_curve = [Attribute::EcParams(b"junk".to_vec())];
    assert_eq!(
        rv(session.generate_key_pair(&Mechanism::EccKeyPairGen, &junk_curve, &[])),
        RvError::AttributeValueInvalid
    );
    assert_eq!(
        rv(session.generate_key_pair(&Mechanism::EccKeyPairGen, &[Attribute::Sign(true)], &[])),
        RvError::TemplateInconsistent
    );

    // Search by label and class, exactly.
    assert_eq!(session.find_objects(&[Attribute::Label(b"p256".to_vec())]).unwrap().len(), 2);
    let found = session
        .find_objects(&[Attribute::Label(b"p256".to_vec()), Attribute::Class(ObjectClass::PRIVATE_KEY)])
        .unwrap();
    assert_eq!(found, vec![ec_private]);
    assert_eq!(session.find_objects(&[Attribute::Id(vec![0xec, 1])]).unwrap().len(), 2);
    assert!(session.find_objects(&[Attribute::Label(b"P256".to_vec())]).unwrap().is_empty(), "labels match exactly");
    assert_eq!(session.find_objects(&[Attribute::KeyType(KeyType::RSA)]).unwrap().len(), 2);

    // Several threads at once, each with its own (read-only) session under
    // the application's one login.
    std::thread::scope(|scope| {
        for i in 0..4u8 {
            let (pkcs11, point) = (&pkcs11, point);
            scope.spawn(move || {
                let session = pkcs11.open_ro_session(slot).unwrap();
                let message = [b'm', i];
                let signature = session.sign(&Mechanism::EcdsaSha256, ec_private, &message).unwrap();
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(&message, &signature)
                    .unwrap();
            });
        }
    });
    // A read-only session makes no token keys.
    let read_only = pkcs11.open_ro_session(slot).unwrap();
    assert_eq!(
        rv(read_only.generate_key_pair(&Mechanism::EccKeyPairGen, &[Attribute::EcParams(P256.to_vec())], &[])),
        RvError::SessionReadOnly
    );

    // Destroy.
    session.destroy_object(rsa_private).unwrap();
    assert_eq!(session.find_objects(&[Attribute::Label(b"rsa".to_vec())]).unwrap(), vec![rsa_public]);
    assert_eq!(rv(session.get_attributes(rsa_private, &[AttributeType::Label])), RvError::ObjectHandleInvalid);

    // Multi-part signing is not offered yet; refusing it ends the operation,
    // so a single-part one can start after it.
    session.sign_init(&Mechanism::EcdsaSha256, ec_private).unwrap();
    assert_eq!(rv(session.sign_update(message)), RvError::FunctionNotSupported);
    assert_eq!(session.sign(&Mechanism::EcdsaSha256, ec_private, message).unwrap().len(), 64);

    // No random-number RPC on the HSM.
    assert_eq!(rv(session.generate_random_vec(16)), RvError::FunctionNotSupported);

    // An admin may log in but not use or make keys: the HSM's permission
    // table refuses.
    session.logout().unwrap();
    assert_eq!(rv(session.sign(&Mechanism::EcdsaSha256, ec_private, message)), RvError::UserNotLoggedIn);
    session.login(UserType::User, Some(&pin("admin:admin-pass"))).unwrap();
    assert!(!session.find_objects(&[Attribute::Label(b"p256".to_vec())]).unwrap().is_empty(), "admins list keys");
    assert_eq!(rv(session.sign(&Mechanism::EcdsaSha256, ec_private, message)), RvError::UserNotLoggedIn);
    assert_eq!(
        rv(session.generate_key_pair(&Mechanism::EccKeyPairGen, &[Attribute::EcParams(P256.to_vec())], &[])),
        RvError::UserNotLoggedIn
    );
    session.logout().unwrap();
    assert_eq!(rv(session.login(UserType::So, Some(&pin("admin:admin-pass")))), RvError::SessionReadOnlyExists);
    drop(read_only);
    session.login(UserType::So, Some(&pin("admin:admin-pass"))).unwrap();
    assert_eq!(rv(session.sign(&Mechanism::EcdsaSha256, ec_private, message)), RvError::UserNotLoggedIn);
    session.logout().unwrap();

    drop(session);
    pkcs11.finalize().unwrap();
    drop(cluster);
}
