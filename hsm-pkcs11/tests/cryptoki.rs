//! `libhsm_pkcs11.so` loaded as an application loads it (through the Rust
//! `cryptoki` crate, with `dlopen`), against an in-process cluster of two
//! HSMs over real TLS. Signatures are checked with ring, independently of
//! the HSM.
//!
//! The library reads its configuration from the process environment, which
//! is global: everything runs in one test function.
#![expect(clippy::unwrap_used, reason = "a test fails loudly on the first unexpected error")]

mod common;

use common::{Rig, library_path};
use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    error::{Error, RvError},
    mechanism::{
        Mechanism, MechanismType,
        aead::GcmParams,
        eddsa::{EddsaParams, EddsaSignatureScheme},
        rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource, PkcsPssParams},
    },
    object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle},
    session::{Session, UserType},
    types::AuthPin,
};
use hsm_daemon::testing::Options;
use ring::{digest, hmac, rand::SystemRandom, signature};

/// CKA_EC_PARAMS of P-256: the named curve's OID.
const P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

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
    let rig = Rig::with_users(2, &[], Options::default());
    rig.point_the_library_here();

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
    assert!(token.rng(), "CKF_RNG: random numbers come from the HSMs");
    let mechanisms = pkcs11.get_mechanism_list(slot).unwrap();
    for m in [MechanismType::ECC_KEY_PAIR_GEN, MechanismType::ECDSA_SHA256, MechanismType::SHA256_RSA_PKCS] {
        assert!(mechanisms.contains(&m), "{m} missing from {mechanisms:?}");
    }
    for m in [MechanismType::AES_KEY_GEN, MechanismType::AES_GCM, MechanismType::EDDSA, MechanismType::SHA256_HMAC] {
        assert!(mechanisms.contains(&m), "{m} missing from {mechanisms:?}");
    }
    assert!(!mechanisms.contains(&MechanismType::DES3_KEY_GEN), "only what works is listed");
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
    // A read-only session makes no token keys. With no CKA_TOKEN in
    // either template a pair is of session keys (PKCS#11's default), which
    // a read-only session may make.
    let read_only = pkcs11.open_ro_session(slot).unwrap();
    let p256 = [Attribute::EcParams(P256.to_vec())];
    assert_eq!(
        rv(read_only.generate_key_pair(&Mechanism::EccKeyPairGen, &p256, &[Attribute::Token(true)])),
        RvError::SessionReadOnly
    );
    let (session_public, session_private) =
        read_only.generate_key_pair(&Mechanism::EccKeyPairGen, &p256, &[Attribute::Sign(true)]).unwrap();
    for key in [session_public, session_private] {
        assert_eq!(read_only.get_attributes(key, &[AttributeType::Token]).unwrap(), vec![Attribute::Token(false)]);
    }
    read_only.destroy_object(session_private).unwrap();
    read_only.destroy_object(session_public).unwrap();

    more_mechanisms(&session, (rsa_public, rsa_private), (&n, &e));

    // Destroy.
    session.destroy_object(rsa_private).unwrap();
    assert_eq!(session.find_objects(&[Attribute::Label(b"rsa".to_vec())]).unwrap(), vec![rsa_public]);
    assert_eq!(rv(session.get_attributes(rsa_private, &[AttributeType::Label])), RvError::ObjectHandleInvalid);

    // Multi-part signing and verifying: hashed here, so any length.
    let long = vec![b'x'; 40_000];
    session.sign_init(&Mechanism::EcdsaSha256, ec_private).unwrap();
    session.sign_update(&long[..25_000]).unwrap();
    session.sign_update(&long[25_000..]).unwrap();
    let signature = session.sign_final().unwrap();
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).verify(&long, &signature).unwrap();
    session.verify_init(&Mechanism::EcdsaSha256, ec_public).unwrap();
    session.verify_update(&long[..1]).unwrap();
    session.verify_update(&long[1..]).unwrap();
    session.verify_final(&signature).unwrap();

    // Random bytes from the HSMs.
    let (a, b) = (session.generate_random_vec(32).unwrap(), session.generate_random_vec(32).unwrap());
    assert_eq!((a.len(), b.len()), (32, 32));
    assert_ne!(a, b);
    assert_eq!(session.generate_random_vec(40_000).unwrap().len(), 40_000, "more than one HSM call's worth");

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
}

/// AES, HMAC, digests, Ed25519, RSA OAEP and PSS, wrapping, importing and
/// changing attributes, each checked against ring where ring can.
fn more_mechanisms(session: &Session, rsa: (ObjectHandle, ObjectHandle), (n, e): (&[u8], &[u8])) {
    let data = b"sixteen byte blk and then some more";

    // AES-256, a session key.
    let aes = session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::ValueLen(32.into()),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Wrap(true),
                Attribute::Unwrap(true),
                Attribute::Label(b"aes".to_vec()),
            ],
        )
        .unwrap();
    let attributes = session.get_attributes(aes, &[AttributeType::KeyType, AttributeType::Token]).unwrap();
    assert_eq!(attributes, vec![Attribute::KeyType(KeyType::AES), Attribute::Token(false)]);
    assert_eq!(
        rv(session.generate_key(&Mechanism::AesKeyGen, &[Attribute::ValueLen(20.into())])),
        RvError::TemplateInconsistent,
        "the HSM refuses a 20-byte AES key"
    );

    // CBC with padding, single and multi-part, which agree.
    let iv = [7u8; 16];
    let ciphertext = session.encrypt(&Mechanism::AesCbcPad(iv), aes, data).unwrap();
    assert_eq!(ciphertext.len(), 48);
    session.encrypt_init(&Mechanism::AesCbcPad(iv), aes).unwrap();
    let mut parts = session.encrypt_update(&data[..10]).unwrap();
    parts.extend(session.encrypt_update(&data[10..]).unwrap());
    parts.extend(session.encrypt_final().unwrap());
    assert_eq!(parts, ciphertext);
    assert_eq!(session.decrypt(&Mechanism::AesCbcPad(iv), aes, &ciphertext).unwrap(), data);

    // GCM: the HSM makes the IV and hands it back through the parameter.
    let mut gcm_iv = [0u8; 12];
    let ciphertext = session
        .encrypt(&Mechanism::AesGcm(GcmParams::new(&mut gcm_iv, b"aad", 128.into()).unwrap()), aes, data)
        .unwrap();
    assert_eq!(ciphertext.len(), data.len() + 16);
    assert_ne!(gcm_iv, [0; 12], "the HSM's IV came back");
    let mechanism = Mechanism::AesGcm(GcmParams::new(&mut gcm_iv, b"aad", 128.into()).unwrap());
    assert_eq!(session.decrypt(&mechanism, aes, &ciphertext).unwrap(), data);
    let mut tampered = ciphertext.clone();
    tampered[0] ^= 1;
    assert_eq!(rv(session.decrypt(&mechanism, aes, &tampered)), RvError::EncryptedDataInvalid);

    // ECB takes whole blocks.
    let ciphertext = session.encrypt(&Mechanism::AesEcb, aes, &data[..32]).unwrap();
    assert_eq!(session.decrypt(&Mechanism::AesEcb, aes, &ciphertext).unwrap(), &data[..32]);

    // HMAC with an imported key, checked with ring; and digests.
    let mac_key = [0x5au8; 32];
    let mac = session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Value(mac_key.to_vec()),
            Attribute::Sign(true),
            Attribute::Verify(true),
            Attribute::Extractable(true),
        ])
        .unwrap();
    let tag = session.sign(&Mechanism::Sha256Hmac, mac, data).unwrap();
    assert_eq!(tag, hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &mac_key), data).as_ref());
    session.verify(&Mechanism::Sha256Hmac, mac, data, &tag).unwrap();
    assert_eq!(rv(session.verify(&Mechanism::Sha256Hmac, mac, b"other", &tag)), RvError::SignatureInvalid);
    assert_eq!(session.digest(&Mechanism::Sha256, data).unwrap(), digest::digest(&digest::SHA256, data).as_ref());
    session.digest_init(&Mechanism::Sha384).unwrap();
    session.digest_update(&data[..3]).unwrap();
    session.digest_update(&data[3..]).unwrap();
    assert_eq!(session.digest_final().unwrap(), digest::digest(&digest::SHA384, data).as_ref());

    // Wrap the HMAC key with AES, unwrap it as a new key: the same tags.
    let wrapped = session.wrap_key(&Mechanism::AesKeyWrapPad, aes, mac).unwrap();
    let unwrapped = session
        .unwrap_key(
            &Mechanism::AesKeyWrapPad,
            aes,
            &wrapped,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::GENERIC_SECRET),
                Attribute::Sign(true),
                Attribute::Label(b"unwrapped".to_vec()),
            ],
        )
        .unwrap();
    assert_eq!(session.sign(&Mechanism::Sha256Hmac, unwrapped, data).unwrap(), tag);
    assert_eq!(rv(session.wrap_key(&Mechanism::AesKeyWrapPad, mac, aes)), RvError::WrappingKeyTypeInconsistent);

    // Ed25519, checked with ring.
    let (ed_public, ed_private) = session
        .generate_key_pair(
            &Mechanism::EccEdwardsKeyPairGen,
            &[Attribute::Verify(true), Attribute::EcParams(vec![0x06, 0x03, 0x2b, 0x65, 0x70])],
            &[Attribute::Sign(true)],
        )
        .unwrap();
    let eddsa = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Ed25519));
    let signature = session.sign(&eddsa, ed_private, data).unwrap();
    let attributes = session.get_attributes(ed_public, &[AttributeType::EcPoint]).unwrap();
    let point = bytes(&attributes, AttributeType::EcPoint);
    assert_eq!(&point[..2], &[0x04, 32]);
    signature::UnparsedPublicKey::new(&signature::ED25519, &point[2..]).verify(data, &signature).unwrap();
    session.verify(&eddsa, ed_public, data, &signature).unwrap();

    // RSA: let the pair encrypt and decrypt (C_SetAttributeValue), then
    // OAEP both ways, and PSS checked with ring.
    let (rsa_public, rsa_private) = rsa;
    session.update_attributes(rsa_public, &[Attribute::Encrypt(true)]).unwrap();
    session.update_attributes(rsa_private, &[Attribute::Decrypt(true)]).unwrap();
    let oaep = Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA256,
        PkcsMgfType::MGF1_SHA256,
        PkcsOaepSource::empty(),
    ));
    let ciphertext = session.encrypt(&oaep, rsa_public, data).unwrap();
    assert_eq!(ciphertext.len(), 256);
    assert_eq!(session.decrypt(&oaep, rsa_private, &ciphertext).unwrap(), data);
    let pss = Mechanism::Sha256RsaPkcsPss(PkcsPssParams {
        hash_alg: MechanismType::SHA256,
        mgf: PkcsMgfType::MGF1_SHA256,
        s_len: 32.into(),
    });
    let signature = session.sign(&pss, rsa_private, data).unwrap();
    signature::RsaPublicKeyComponents { n, e }.verify(&signature::RSA_PSS_2048_8192_SHA256, data, &signature).unwrap();

    // An EC public key made elsewhere, imported, verifies its signatures.
    let rng = SystemRandom::new();
    let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let ring_key =
        signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    use signature::KeyPair as _;
    let mut ec_point = vec![0x04, 65];
    ec_point.extend_from_slice(ring_key.public_key().as_ref());
    let imported = session
        .create_object(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::EcParams(P256.to_vec()),
            Attribute::EcPoint(ec_point),
            Attribute::Verify(true),
            Attribute::Label(b"imported".to_vec()),
        ])
        .unwrap();
    let ring_signature = ring_key.sign(&rng, data).unwrap();
    session.verify(&Mechanism::EcdsaSha256, imported, data, ring_signature.as_ref()).unwrap();

    // Attributes change where the HSM allows, and copying is not offered.
    session.update_attributes(imported, &[Attribute::Label(b"renamed".to_vec())]).unwrap();
    assert_eq!(
        bytes(&session.get_attributes(imported, &[AttributeType::Label]).unwrap(), AttributeType::Label),
        b"renamed"
    );
    assert_eq!(
        rv(session.update_attributes(imported, &[Attribute::KeyType(KeyType::RSA)])),
        RvError::AttributeReadOnly
    );
    assert_eq!(rv(session.copy_object(imported, &[])), RvError::FunctionNotSupported);
    session.destroy_object(imported).unwrap();
}
