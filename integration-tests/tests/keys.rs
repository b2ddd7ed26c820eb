//! Keys and cryptography over real TLS, through the typed client: the
//! issue's acceptance steps, the object rules for owner, shared user, other
//! crypto user and admin, and results cross-checked with independent
//! implementations (ring, and RustCrypto's k256 where ring has no curve).
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on the first unexpected error")]

use hsm_client::{
    ClientError, CreateUser, Decrypt, DeleteUser, Encrypt, KeyInfo, KeyOptions, KeyPairSpec, ListKeys, Role, Session,
    SetKeyAttribute, ShareKey, Sign, UnwrapKey, Verify, WrapKey, WrapParams,
    keys::{Cipher, HashAlgorithm, SignMechanism, SymmetricKeyType},
};
use integration_tests::{Options, TestHsm};
use ring::{aead, digest, hmac, signature};

fn opts(pairs: &[(&str, &str)]) -> KeyOptions {
    KeyOptions {
        attributes: pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        ..KeyOptions::default()
    }
}

fn hex_attr(key: &KeyInfo, name: &str) -> Vec<u8> {
    let value = key.attribute(name).unwrap_or_else(|| panic!("{name} missing: {key:?}"));
    hex::decode(value.trim_start_matches("0x")).unwrap()
}

/// An HSM with two logged-in crypto users, alice and bob, and the admin.
async fn two_users() -> (TestHsm, Session, Session, Session) {
    let hsm = TestHsm::start(Options::default()).await;
    let admin = hsm.admin().await;
    admin.create_user(CreateUser::new("alice", Role::CryptoUser, "alice-pass")).await.unwrap();
    admin.create_user(CreateUser::new("bob", Role::CryptoUser, "bob-pass1")).await.unwrap();
    let alice = hsm.login("alice", Role::CryptoUser, "alice-pass").await;
    let bob = hsm.login("bob", Role::CryptoUser, "bob-pass1").await;
    (hsm, alice, bob, admin)
}

async fn pair(s: &Session, spec: KeyPairSpec) -> (KeyInfo, KeyInfo) {
    s.generate_key_pair(&spec, &opts(&[("verify", "true")]), &opts(&[("sign", "true")])).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_from_every_curve_and_rsa_verify_independently() {
    let (_hsm, alice, ..) = two_users().await;
    let message = b"the quick brown fox";
    let mut tampered = message.to_vec();
    tampered[0] ^= 1;

    let cases: [(KeyPairSpec, SignMechanism, Option<HashAlgorithm>); 5] = [
        (KeyPairSpec::Ec { curve: "secp256r1".into() }, SignMechanism::Ecdsa, Some(HashAlgorithm::Sha256)),
        (KeyPairSpec::Ec { curve: "secp384r1".into() }, SignMechanism::Ecdsa, Some(HashAlgorithm::Sha384)),
        (KeyPairSpec::Ec { curve: "secp256k1".into() }, SignMechanism::Ecdsa, Some(HashAlgorithm::Sha256)),
        (KeyPairSpec::Ed25519, SignMechanism::Ed25519, None),
        (
            KeyPairSpec::Rsa { modulus_size_bits: 2048, public_exponent: 65537 },
            SignMechanism::RsaPkcs,
            Some(HashAlgorithm::Sha256),
        ),
    ];
    for (spec, mechanism, hash) in cases {
        let (public, private) = pair(&alice, spec.clone()).await;
        let sig = alice.sign(Sign { hash, ..Sign::new(&private.reference, mechanism, message) }).await.unwrap();
        assert!(
            alice.verify(Verify { hash, ..Verify::new(&public.reference, mechanism, message, &sig) }).await.unwrap(),
            "{spec:?}"
        );
        assert!(
            !alice.verify(Verify { hash, ..Verify::new(&public.reference, mechanism, &tampered, &sig) }).await.unwrap(),
            "{spec:?}"
        );

        // The exported PEM is the key the attributes describe.
        let pem = alice.export_public_key(&public.reference).await.unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
        assert_eq!(
            alice.export_public_key(&private.reference).await.unwrap(),
            pem,
            "private key exports its public half"
        );

        // An independent library accepts the signature.
        match spec {
            KeyPairSpec::Ec { curve } => {
                let point = hex_attr(&public, "ec-point");
                let ok = match curve.as_str() {
                    "secp256r1" => signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
                        .verify(message, &sig)
                        .is_ok(),
                    "secp384r1" => signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, &point)
                        .verify(message, &sig)
                        .is_ok(),
                    _ => {
                        use k256::ecdsa::signature::Verifier as _;
                        let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
                        let sig = k256::ecdsa::Signature::from_slice(&sig).unwrap();
                        key.verify(message, &sig).is_ok()
                    }
                };
                assert!(ok, "{curve}");
            }
            KeyPairSpec::Ed25519 => {
                let point = hex_attr(&public, "ec-point");
                signature::UnparsedPublicKey::new(&signature::ED25519, &point).verify(message, &sig).unwrap();
            }
            KeyPairSpec::Rsa { .. } => {
                let n = hex_attr(&public, "modulus");
                let e = hex_attr(&public, "public-exponent");
                signature::RsaPublicKeyComponents { n: &n, e: &e }
                    .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, &sig)
                    .unwrap();
            }
        }
    }
}

/// The raw mechanisms TLS stacks use through PKCS#11 (raw PKCS#1 v1.5, raw
/// RSA, unpadded AES-CBC), over real TLS: checked by ring and SP 800-38A,
/// and held to the key's type and attributes as every mechanism is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_rsa_and_unpadded_aes_cbc_are_checked_independently_and_follow_the_attributes() {
    const SHA256_DIGEST_INFO: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04,
        0x20,
    ];
    let (_hsm, alice, ..) = two_users().await;
    let message = b"signed raw";
    let (public, private) = pair(&alice, KeyPairSpec::Rsa { modulus_size_bits: 2048, public_exponent: 65537 }).await;
    let (n, e) = (hex_attr(&public, "modulus"), hex_attr(&public, "public-exponent"));
    let ring_verifies = |sig: &[u8]| {
        signature::RsaPublicKeyComponents { n: &n, e: &e }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
            .is_ok()
    };

    // Raw PKCS#1 v1.5 over a DigestInfo, and raw RSA over the block it pads to.
    let digest_info = [&SHA256_DIGEST_INFO[..], digest::digest(&digest::SHA256, message).as_ref()].concat();
    let raw = alice.sign(Sign::new(&private.reference, SignMechanism::RsaPkcsRaw, &digest_info)).await.unwrap();
    assert!(ring_verifies(&raw));
    assert!(alice.verify(Verify::new(&public.reference, SignMechanism::RsaPkcsRaw, &digest_info, &raw)).await.unwrap());
    let block = [&[0, 1][..], &[0xff; 256 - 3 - 51], &[0], &digest_info].concat();
    let x509 = alice.sign(Sign::new(&private.reference, SignMechanism::RsaX509, &block)).await.unwrap();
    assert_eq!(x509, raw, "raw RSA over the padded block is the PKCS#1 v1.5 signature");
    assert!(alice.verify(Verify::new(&public.reference, SignMechanism::RsaX509, &block, &x509)).await.unwrap());
    let err = alice.sign(Sign::new(&private.reference, SignMechanism::RsaPkcsRaw, &[1; 246])).await.unwrap_err();
    assert!(matches!(&err, ClientError::InvalidArgument(m) if m.contains("data")), "{err:?}");

    // The pair signs and verifies only: raw RSA encryption is refused by attribute.
    let err = alice.encrypt(Encrypt::new(&public.reference, Cipher::RsaX509, &block)).await.unwrap_err();
    assert!(err.to_string().contains("encrypt attribute is false"), "{err:?}");
    let err = alice.decrypt(Decrypt::new(&private.reference, Cipher::RsaX509, &x509)).await.unwrap_err();
    assert!(err.to_string().contains("decrypt attribute is false"), "{err:?}");

    // Unpadded AES-CBC: SP 800-38A F.2.1 (CBC-AES128), first two blocks.
    let key = hex::decode("2b7e151628aed2a6abf7158809cf4f3c").unwrap();
    let iv = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
    let plaintext = hex::decode("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51").unwrap();
    let expected = hex::decode("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2").unwrap();
    let aes = alice
        .import_secret(SymmetricKeyType::Aes, &key, &opts(&[("encrypt", "true"), ("decrypt", "true")]))
        .await
        .unwrap();
    let (used_iv, ciphertext) =
        alice.encrypt(Encrypt::new(&aes.reference, Cipher::AesCbc, &plaintext).iv(&iv)).await.unwrap();
    assert_eq!((used_iv, &ciphertext), (iv.clone(), &expected));
    assert_eq!(
        alice.decrypt(Decrypt::new(&aes.reference, Cipher::AesCbc, &expected).iv(&iv)).await.unwrap(),
        plaintext
    );
    let err = alice.encrypt(Encrypt::new(&aes.reference, Cipher::AesCbc, &[0; 15]).iv(&iv)).await.unwrap_err();
    assert!(matches!(&err, ClientError::InvalidArgument(m) if m.contains("plaintext")), "{err:?}");
    // Raw RSA on an AES key is the wrong key type.
    let err = alice.encrypt(Encrypt::new(&aes.reference, Cipher::RsaX509, &[1; 16])).await.unwrap_err();
    assert!(err.to_string().contains("cannot be used with"), "{err:?}");
}

#[tokio::test]
async fn aes_gcm_and_hmac_and_digests_match_ring_both_ways() {
    let (_hsm, alice, ..) = two_users().await;
    let secret = [0x42u8; 32];
    let key = alice
        .import_secret(SymmetricKeyType::Aes, &secret, &opts(&[("encrypt", "true"), ("decrypt", "true")]))
        .await
        .unwrap();
    let ring_key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &secret).unwrap());

    // HSM encrypts, ring decrypts.
    let (iv, mut ct) =
        alice.encrypt(Encrypt::new(&key.reference, Cipher::AesGcm, b"attack at dawn").aad(b"aad")).await.unwrap();
    assert_eq!(iv.len(), 12, "the HSM makes a 12-byte IV");
    let nonce = aead::Nonce::try_assume_unique_for_key(&iv).unwrap();
    let plain = ring_key.open_in_place(nonce, aead::Aad::from(b"aad"), &mut ct).unwrap();
    assert_eq!(plain, b"attack at dawn");

    // ring encrypts, the HSM decrypts.
    let iv = [7u8; 12];
    let mut buf = b"retreat at noon".to_vec();
    ring_key.seal_in_place_append_tag(aead::Nonce::assume_unique_for_key(iv), aead::Aad::from(b""), &mut buf).unwrap();
    let plain = alice.decrypt(Decrypt::new(&key.reference, Cipher::AesGcm, &buf).iv(&iv)).await.unwrap();
    assert_eq!(plain, b"retreat at noon");
    buf[0] ^= 1;
    let err = alice.decrypt(Decrypt::new(&key.reference, Cipher::AesGcm, &buf).iv(&iv)).await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err:?}");

    // HMAC-SHA256 on a generic secret, against ring.
    let mac_key = [9u8; 40];
    let k = alice
        .import_secret(SymmetricKeyType::GenericSecret, &mac_key, &opts(&[("sign", "true"), ("verify", "true")]))
        .await
        .unwrap();
    let tag =
        alice.sign(Sign::new(&k.reference, SignMechanism::Hmac, b"msg").hash(HashAlgorithm::Sha256)).await.unwrap();
    assert_eq!(tag, hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &mac_key), b"msg").as_ref());
    assert!(
        alice
            .verify(Verify::new(&k.reference, SignMechanism::Hmac, b"msg", &tag).hash(HashAlgorithm::Sha256))
            .await
            .unwrap()
    );

    // Digests.
    let d = alice.digest(HashAlgorithm::Sha384, b"abc").await.unwrap();
    assert_eq!(d, digest::digest(&digest::SHA384, b"abc").as_ref());
}

#[tokio::test]
async fn random_bytes_come_in_the_length_asked_for_and_differ() {
    let (_hsm, alice, ..) = two_users().await;
    let a = alice.generate_random(32).await.unwrap();
    let b = alice.generate_random(32).await.unwrap();
    assert_eq!((a.len(), b.len()), (32, 32));
    assert_ne!(a, b, "two draws of 256 bits");
    assert_eq!(alice.generate_random(16_384).await.unwrap().len(), 16_384);
    for length in [0, 16_385, u32::MAX] {
        let refused = alice.generate_random(length).await.unwrap_err();
        assert!(
            matches!(&refused, ClientError::InvalidArgument(m) if m.contains("length") && m.contains("16384")),
            "{length}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn symmetric_keys_are_listed_with_filters_and_pages() {
    let (_hsm, alice, ..) = two_users().await;
    alice.generate_symmetric_key(SymmetricKeyType::Aes, 32, &opts(&[("label", "aes-key")])).await.unwrap();
    for i in 0..4 {
        let label = format!("secret-{i}");
        alice.generate_symmetric_key(SymmetricKeyType::GenericSecret, 48, &opts(&[("label", &label)])).await.unwrap();
    }
    let filter = |n: &str, v: &str| vec![(n.to_owned(), v.to_owned())];
    let aes = alice.list_keys(ListKeys::default().filters(&filter("attr.key-type", "aes"))).await.unwrap();
    assert_eq!(aes.total, 1);
    assert_eq!(aes.keys[0].attribute("key-length-bytes"), Some("32"));
    assert_eq!(aes.keys[0].attribute("label"), Some("aes-key"));
    let generic =
        alice.list_keys(ListKeys::default().filters(&filter("attr.key-type", "generic-secret"))).await.unwrap();
    assert_eq!(generic.total, 4);

    let mut labels = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = alice
            .list_keys(ListKeys { starting_token: token.as_deref(), ..ListKeys::default().max_items(2) })
            .await
            .unwrap();
        pages += 1;
        labels.extend(page.keys.iter().map(|k| k.attribute("label").unwrap().to_owned()));
        match page.next_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(labels, ["aes-key", "secret-0", "secret-1", "secret-2", "secret-3"]);
}

#[tokio::test]
async fn a_shared_user_signs_but_cannot_manage_and_loses_access_on_unshare() {
    let (_hsm, alice, bob, _admin) = two_users().await;
    let (public, private) = pair(&alice, KeyPairSpec::Ec { curve: "secp256r1".into() }).await;
    let sha = Some(HashAlgorithm::Sha256);
    let err =
        bob.sign(Sign { hash: sha, ..Sign::new(&private.reference, SignMechanism::Ecdsa, b"m") }).await.unwrap_err();
    assert!(matches!(err, ClientError::NotFound(_)), "bob cannot see it yet: {err:?}");

    let shared = alice.share_key(ShareKey::new(&private.reference, "bob")).await.unwrap();
    assert_eq!(shared.shared_users, ["bob"]);
    let sig = bob.sign(Sign { hash: sha, ..Sign::new(&private.reference, SignMechanism::Ecdsa, b"m") }).await.unwrap();
    assert!(
        bob.verify(Verify { hash: sha, ..Verify::new(&public.reference, SignMechanism::Ecdsa, b"m", &sig) })
            .await
            .unwrap()
    );
    for refused in [
        bob.delete_key(&private.reference).await,
        bob.share_key(ShareKey::new(&private.reference, "alice")).await,
        bob.set_key_attribute(SetKeyAttribute::new(&private.reference, "label", "mine")).await,
    ] {
        assert!(matches!(&refused, Err(ClientError::PermissionDenied(m)) if m.contains("owner")), "{refused:?}");
    }

    alice.unshare_key(ShareKey::new(&private.reference, "bob")).await.unwrap();
    let err =
        bob.sign(Sign { hash: sha, ..Sign::new(&private.reference, SignMechanism::Ecdsa, b"m") }).await.unwrap_err();
    assert!(matches!(err, ClientError::NotFound(_)), "{err:?}");
}

#[tokio::test]
async fn admins_neither_generate_nor_sign_and_cannot_delete_a_key_owner() {
    let (hsm, alice, _bob, admin) = two_users().await;
    let err = admin.generate_symmetric_key(SymmetricKeyType::Aes, 32, &KeyOptions::default()).await.unwrap_err();
    assert_eq!(
        err,
        ClientError::PermissionDenied("key generate-symmetric is not permitted for role admin (CO)".into())
    );
    let (_, private) = pair(&alice, KeyPairSpec::Ed25519).await;
    let err = admin.sign(Sign::new(&private.reference, SignMechanism::Ed25519, b"m")).await.unwrap_err();
    assert_eq!(err, ClientError::PermissionDenied("crypto sign is not permitted for role admin (CO)".into()));

    alice.logout().await.unwrap();
    let err = admin.delete_user(DeleteUser::new("alice", Role::CryptoUser)).await.unwrap_err();
    assert!(matches!(&err, ClientError::FailedPrecondition(m) if m.contains("owns 2 key(s)")), "{err:?}");
    // Admins may list keys and mark one trusted.
    let keys = admin.list_keys(ListKeys::default()).await.unwrap();
    assert_eq!(keys.total, 2);
    let trusted = admin.set_key_attribute(SetKeyAttribute::new(&private.reference, "trusted", "true")).await.unwrap();
    assert_eq!(trusted.attribute("trusted"), Some("true"));
    drop(hsm);
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let (_hsm, alice, ..) = two_users().await;
    let aes = alice
        .generate_symmetric_key(SymmetricKeyType::Aes, 16, &opts(&[("encrypt", "true"), ("sign", "true")]))
        .await
        .unwrap();
    let big = vec![0u8; 16 * 1024 + 1];
    let err = alice.encrypt(Encrypt::new(&aes.reference, Cipher::AesCbcPad, &big)).await.unwrap_err();
    assert!(matches!(&err, ClientError::InvalidArgument(m) if m.contains("16384")), "{err:?}");
    let err = alice.encrypt(Encrypt::new(&aes.reference, Cipher::AesCbcPad, b"x").iv(&[1; 5])).await.unwrap_err();
    assert!(matches!(&err, ClientError::InvalidArgument(m) if m.contains("iv")), "{err:?}");
    let err = alice
        .sign(Sign::new(&aes.reference, SignMechanism::Ecdsa, b"x").hash(HashAlgorithm::Sha256))
        .await
        .unwrap_err();
    assert!(matches!(&err, ClientError::InvalidArgument(_)), "{err:?}");
    let err = alice.encrypt(Encrypt::new("0x00000000deadbeef", Cipher::AesGcm, b"x")).await.unwrap_err();
    assert_eq!(err, ClientError::NotFound("key 0x00000000deadbeef not found".into()));
    let err = alice.encrypt(Encrypt::new("deadbeef", Cipher::AesGcm, b"x")).await.unwrap_err();
    assert!(matches!(&err, ClientError::InvalidArgument(m) if m.starts_with("invalid key_reference")), "{err:?}");
    let err = alice.generate_symmetric_key(SymmetricKeyType::Aes, 20, &KeyOptions::default()).await.unwrap_err();
    assert!(matches!(&err, ClientError::InvalidArgument(_)), "{err:?}");
    let err = alice
        .generate_key_pair(
            &KeyPairSpec::Rsa { modulus_size_bits: 2000, public_exponent: 65537 },
            &KeyOptions::default(),
            &KeyOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(&err, ClientError::InvalidArgument(_)), "{err:?}");
    let err = alice
        .generate_key_pair(
            &KeyPairSpec::Ec { curve: "curve25519x".into() },
            &KeyOptions::default(),
            &KeyOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(&err, ClientError::InvalidArgument(m) if m.contains("unknown curve")), "{err:?}");
    let err = alice.encrypt(Encrypt::new(&aes.reference, Cipher::AesGcm, b"x")).await;
    assert!(err.is_ok());
    let err = alice
        .import_pem("-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----\n", &KeyOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(&err, ClientError::InvalidArgument(m) if m.contains("invalid key")), "{err:?}");
}

#[tokio::test]
async fn session_keys_vanish_at_logout() {
    let (hsm, alice, ..) = two_users().await;
    let kept = alice.generate_symmetric_key(SymmetricKeyType::Aes, 32, &KeyOptions::default()).await.unwrap();
    let gone = alice
        .generate_symmetric_key(SymmetricKeyType::Aes, 32, &KeyOptions { session: true, ..KeyOptions::default() })
        .await
        .unwrap();
    assert!(gone.session);
    assert_eq!(gone.attribute("token"), Some("false"));
    alice.logout().await.unwrap();
    let alice = hsm.login("alice", Role::CryptoUser, "alice-pass").await;
    let refs: Vec<String> =
        alice.list_keys(ListKeys::default()).await.unwrap().keys.into_iter().map(|k| k.reference).collect();
    assert_eq!(refs, [kept.reference]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapped_keys_unwrap_into_working_keys_and_trust_is_enforced() {
    use hsm_client::keys::{KeyClass, KeyType, WrapMechanism};
    let (_hsm, alice, _bob, admin) = two_users().await;
    let wrapper = alice
        .generate_symmetric_key(SymmetricKeyType::Aes, 32, &opts(&[("wrap", "true"), ("unwrap", "true")]))
        .await
        .unwrap();
    let (public, private) = pair(&alice, KeyPairSpec::Ec { curve: "secp384r1".into() }).await;
    for mechanism in [WrapMechanism::AesGcm, WrapMechanism::AesKeyWrapPad] {
        let wrapped = alice.wrap_key(WrapKey::new(&wrapper.reference, &private.reference, mechanism)).await.unwrap();
        let unwrapped = alice
            .unwrap_key(
                UnwrapKey::new(&wrapper.reference, &wrapped, mechanism, KeyType::Ec, KeyClass::Private)
                    .curve("secp384r1")
                    .options(&opts(&[("sign", "true")])),
            )
            .await
            .unwrap();
        assert_eq!(unwrapped.attribute("local"), Some("false"), "unwrapped keys are not local");
        let sha = Some(HashAlgorithm::Sha384);
        let sig = alice
            .sign(Sign { hash: sha, ..Sign::new(&unwrapped.reference, SignMechanism::Ecdsa, b"m") })
            .await
            .unwrap();
        assert!(
            alice
                .verify(Verify { hash: sha, ..Verify::new(&public.reference, SignMechanism::Ecdsa, b"m", &sig) })
                .await
                .unwrap()
        );
    }

    // RSA-AES: wrap an AES key under an RSA public key, unwrap with the private key.
    let (rsa_public, rsa_private) = alice
        .generate_key_pair(
            &KeyPairSpec::Rsa { modulus_size_bits: 2048, public_exponent: 65537 },
            &opts(&[("wrap", "true")]),
            &opts(&[("unwrap", "true")]),
        )
        .await
        .unwrap();
    let secret = alice.import_secret(SymmetricKeyType::Aes, &[5u8; 16], &opts(&[("encrypt", "true")])).await.unwrap();
    let sha = WrapParams::hashed(HashAlgorithm::Sha256);
    let wrap = WrapKey::new(&rsa_public.reference, &secret.reference, WrapMechanism::RsaAes);
    let wrapped = alice.wrap_key(wrap.params(sha)).await.unwrap();
    let unwrap =
        UnwrapKey::new(&rsa_private.reference, &wrapped, WrapMechanism::RsaAes, KeyType::Aes, KeyClass::Secret);
    let back = alice.unwrap_key(unwrap.params(sha)).await.unwrap();
    assert_eq!(back.attribute("check-value"), secret.attribute("check-value"), "same key material");

    // A key marked wrap-with-trusted needs a wrapping key an admin trusts.
    let guarded =
        alice.generate_symmetric_key(SymmetricKeyType::Aes, 16, &opts(&[("wrap-with-trusted", "true")])).await.unwrap();
    let err = alice
        .wrap_key(WrapKey::new(&wrapper.reference, &guarded.reference, WrapMechanism::AesKeyWrap))
        .await
        .unwrap_err();
    assert!(matches!(&err, ClientError::PermissionDenied(m) if m.contains("trusted")), "{err:?}");
    admin.set_key_attribute(SetKeyAttribute::new(&wrapper.reference, "trusted", "true")).await.unwrap();
    alice.wrap_key(WrapKey::new(&wrapper.reference, &guarded.reference, WrapMechanism::AesKeyWrap)).await.unwrap();

    // A non-extractable key cannot be wrapped at all.
    let fixed =
        alice.generate_symmetric_key(SymmetricKeyType::Aes, 16, &opts(&[("extractable", "false")])).await.unwrap();
    let err = alice
        .wrap_key(WrapKey::new(&wrapper.reference, &fixed.reference, WrapMechanism::AesKeyWrap))
        .await
        .unwrap_err();
    assert!(matches!(&err, ClientError::FailedPrecondition(m) if m.contains("extractable")), "{err:?}");
}
