//! Every validation rule returns the right [`CryptoError`], naming the field.

use std::fmt::Debug;

use rand_chacha::rand_core::SeedableRng as _;

use super::{rsa_2048, test_rng};
use crate::crypto::{
    Cipher, CryptoError, Curve, GcmTagLen, HashAlg, Input, KeyClass, KeyKind, KeyMaterial, MAX_DATA_LEN, SignMech,
    WrapMech, decrypt, encrypt, sign, unwrap, verify, wrap,
};

const DATA: &[u8] = b"validation";
const AES_CIPHERS: [Cipher; 5] = [Cipher::AesGcm, Cipher::AesCbcPad, Cipher::AesCtr, Cipher::AesEcb, Cipher::AesCbc];

#[track_caller]
fn assert_invalid<T: Debug>(result: Result<T, CryptoError>, expected_field: &str) {
    match result {
        Err(CryptoError::InvalidArgument { field, rule }) => {
            assert_eq!(field, expected_field, "rule: {rule}");
            assert!(!rule.is_empty());
        }
        other => panic!("expected InvalidArgument on {expected_field}, got {other:?}"),
    }
}

#[track_caller]
fn assert_wrong_key<T: Debug>(result: Result<T, CryptoError>) {
    assert!(matches!(result, Err(CryptoError::WrongKeyType { .. })), "expected WrongKeyType, got {result:?}");
}

#[track_caller]
fn assert_authentication<T: Debug>(result: Result<T, CryptoError>) {
    assert!(matches!(result, Err(CryptoError::Authentication(_))), "expected Authentication, got {result:?}");
}

#[track_caller]
fn assert_invalid_key<T: Debug>(result: Result<T, CryptoError>) {
    assert!(matches!(result, Err(CryptoError::InvalidKey(_))), "expected InvalidKey, got {result:?}");
}

fn aes(len: usize) -> KeyMaterial {
    KeyMaterial::from_raw_secret(KeyKind::Aes, &vec![0x42; len]).unwrap()
}

fn generic() -> KeyMaterial {
    KeyMaterial::from_raw_secret(KeyKind::GenericSecret, &[0x24; 32]).unwrap()
}

fn ec(curve: Curve) -> (KeyMaterial, KeyMaterial) {
    KeyMaterial::generate_ec(curve, &mut test_rng(60)).unwrap()
}

fn ed25519() -> (KeyMaterial, KeyMaterial) {
    KeyMaterial::generate_ed25519(&mut test_rng(61)).unwrap()
}

// ---- generation and import parameters ----

#[test]
fn aes_and_generic_secret_sizes() {
    let mut rng = test_rng(0);
    for bits in [0, 64, 127, 129, 512] {
        assert_invalid(KeyMaterial::generate_aes(bits, &mut rng), "bits");
    }
    for bits in [128, 192, 256] {
        assert_eq!(KeyMaterial::generate_aes(bits, &mut rng).unwrap().secret_len(), Some(bits as usize / 8));
    }
    for len in [0, 801, 4096] {
        assert_invalid(KeyMaterial::generate_generic_secret(len, &mut rng), "len");
    }
    for len in [1, 800] {
        assert_eq!(KeyMaterial::generate_generic_secret(len, &mut rng).unwrap().secret_len(), Some(len));
    }
    for len in [0, 8, 15, 17, 31, 33, 64] {
        assert_invalid(KeyMaterial::from_raw_secret(KeyKind::Aes, &vec![1; len]), "key");
    }
    for len in [0, 801] {
        assert_invalid(KeyMaterial::from_raw_secret(KeyKind::GenericSecret, &vec![1; len]), "key");
    }
    for kind in [KeyKind::Rsa, KeyKind::Ec(Curve::P256), KeyKind::Ed25519] {
        assert_invalid(KeyMaterial::from_raw_secret(kind, &[1; 32]), "kind");
    }
}

#[test]
fn rsa_size_and_exponent() {
    // All refused before any generation starts.
    let mut rng = test_rng(0);
    for bits in [0, 1024, 2047, 2049, 2100, 3000, 4352, 8192] {
        assert_invalid(KeyMaterial::generate_rsa(bits, 65537, &mut rng), "modulus_bits");
    }
    for exponent in [0, 1, 3, 17, 65535, 65536, 65538, 1 << 20, (1 << 33) + 1, u64::MAX] {
        assert_invalid(KeyMaterial::generate_rsa(2048, exponent, &mut rng), "public_exponent");
    }
    // The size rule also holds for imported keys.
    let small = rsa::PrivateKey::new(&mut rand_chacha::ChaCha20Rng::from_seed([7; 32]), 1024).unwrap();
    let pem = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&small, rsa::pkcs8::LineEnding::LF).unwrap();
    assert_invalid_key(KeyMaterial::from_pem(&pem));
}

#[test]
fn bad_key_bytes() {
    assert_invalid_key(KeyMaterial::from_pem("not a PEM"));
    assert_invalid_key(KeyMaterial::from_pem("-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"));
    assert_invalid_key(KeyMaterial::from_pem("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n"));
    // X25519 (1.3.101.110) is not a signing key the HSM offers.
    let x25519 = hex::decode("302e020100300506032b656e04220420").unwrap();
    assert_invalid_key(KeyMaterial::from_der_private(&[x25519, vec![1; 32]].concat()));

    // A P-256 point off the curve.
    let (_, public) = ec(Curve::P256);
    let mut spki = public.to_wrappable().unwrap().to_vec();
    *spki.last_mut().unwrap() ^= 1;
    assert_invalid_key(KeyMaterial::from_der_public(&spki));

    // Ed25519 PKCS#8 v2 whose public key does not match the seed.
    let v2 = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let mut v2 = v2.as_ref().to_vec();
    *v2.last_mut().unwrap() ^= 1;
    assert_invalid_key(KeyMaterial::from_der_private(&v2));

    // from_wrappable: the class must fit the kind, and the bytes the kind.
    let (ec_private, _) = ec(Curve::P384);
    let bytes = ec_private.to_wrappable().unwrap();
    assert_invalid_key(KeyMaterial::from_wrappable(KeyKind::Rsa, KeyClass::Private, &bytes));
    assert_invalid_key(KeyMaterial::from_wrappable(KeyKind::Ec(Curve::P256), KeyClass::Private, &bytes));
    assert_invalid_key(KeyMaterial::from_wrappable(KeyKind::Ec(Curve::P384), KeyClass::Public, &bytes));
    assert!(KeyMaterial::from_wrappable(KeyKind::Ec(Curve::P384), KeyClass::Private, &bytes).is_ok());
    assert_invalid(KeyMaterial::from_wrappable(KeyKind::Rsa, KeyClass::Secret, &bytes), "class");
    assert_invalid(KeyMaterial::from_wrappable(KeyKind::Aes, KeyClass::Private, &[1; 16]), "class");
    assert_invalid(KeyMaterial::from_wrappable(KeyKind::Aes, KeyClass::Secret, &[1; 15]), "key");

    // Secret keys have no public half.
    assert_wrong_key(aes(16).public_pem());
    assert_wrong_key(generic().public_pem());
}

// ---- wrong key type for the mechanism ----

#[test]
fn wrong_key_types_for_encryption() {
    let mut rng = test_rng(0);
    let (rsa_private, rsa_public) = rsa_2048();
    let (ec_private, _) = ec(Curve::P256);
    for cipher in AES_CIPHERS {
        for key in [&generic(), rsa_public, &ec_private] {
            assert_wrong_key(encrypt(key, cipher, None, &[], &[0; 16], &mut rng));
            assert_wrong_key(decrypt(key, cipher, Some(&[0; 16]), &[], &[0; 32]));
        }
    }
    for cipher in [Cipher::RsaOaep(HashAlg::Sha256), Cipher::RsaPkcs1, Cipher::RsaX509] {
        for key in [&aes(32), &generic(), &ec_private] {
            assert_wrong_key(encrypt(key, cipher, None, &[], DATA, &mut rng));
        }
        // Decryption needs the private key.
        assert_wrong_key(decrypt(rsa_public, cipher, None, &[], &[0; 256]));
        assert_wrong_key(decrypt(&aes(16), cipher, None, &[], &[0; 256]));
        assert!(encrypt(rsa_private, cipher, None, &[], DATA, &mut rng).is_ok());
    }
    let err = encrypt(&ec_private, Cipher::AesGcm, None, &[], DATA, &mut rng).unwrap_err();
    assert_eq!(err.to_string(), "mechanism AesGcm cannot be used with a EC P-256 private key");
}

#[test]
fn wrong_key_types_for_signatures() {
    let mut rng = test_rng(0);
    let (rsa_private, rsa_public) = rsa_2048();
    let (ec_private, ec_public) = ec(Curve::P256);
    let (ed_private, ed_public) = ed25519();
    let (aes, generic) = (aes(16), generic());
    let input = Input::Data(DATA);
    let cases: [(SignMech, Vec<&KeyMaterial>); 8] = [
        (SignMech::Ecdsa(HashAlg::Sha256), vec![rsa_private, &ed_private, &ec_public, &aes]),
        (SignMech::Ed25519, vec![&ec_private, &ed_public, rsa_private, &generic]),
        (SignMech::Ed25519ph, vec![&ec_private, &ed_public, rsa_private, &aes]),
        (SignMech::RsaPkcs1(HashAlg::Sha256), vec![rsa_public, &ec_private, &generic]),
        (SignMech::RsaPss(HashAlg::Sha256), vec![rsa_public, &ed_private, &aes]),
        (SignMech::Hmac(HashAlg::Sha256), vec![rsa_private, &ec_private, &ed_private]),
        (SignMech::RsaPkcs1Raw, vec![rsa_public, &ec_private, &aes]),
        (SignMech::RsaX509, vec![rsa_public, &ed_private, &generic]),
    ];
    for (mech, keys) in cases {
        for key in keys {
            assert_wrong_key(sign(key, mech, input, &mut rng));
        }
    }
    // Verification takes public or private keys of the right kind only.
    assert_wrong_key(verify(rsa_public, SignMech::Ecdsa(HashAlg::Sha256), input, &[0; 64]));
    assert_wrong_key(verify(&ec_public, SignMech::Ed25519, input, &[0; 64]));
    assert_wrong_key(verify(&ec_private, SignMech::Ed25519ph, input, &[0; 64]));
    assert_wrong_key(verify(&ed_public, SignMech::RsaPss(HashAlg::Sha256), input, &[0; 256]));
    assert_wrong_key(verify(rsa_public, SignMech::Hmac(HashAlg::Sha256), input, &[0; 32]));
    assert_wrong_key(verify(&generic, SignMech::RsaPkcs1(HashAlg::Sha256), input, &[0; 256]));
    assert_wrong_key(verify(&ec_public, SignMech::RsaPkcs1Raw, input, &[0; 256]));
    assert_wrong_key(verify(&aes, SignMech::RsaX509, input, &[0; 256]));
    assert_eq!(verify(&ec_private, SignMech::Ecdsa(HashAlg::Sha256), input, &[0; 64]), Ok(false));
}

#[test]
fn wrong_key_types_for_wrapping() {
    let mut rng = test_rng(0);
    let (rsa_private, rsa_public) = rsa_2048();
    let (ec_private, _) = ec(Curve::P384);
    for mech in [WrapMech::AesGcm(GcmTagLen::FULL), WrapMech::AesKeyWrap, WrapMech::AesKeyWrapPad] {
        for key in [&generic(), rsa_public, &ec_private] {
            assert_wrong_key(wrap(key, mech, &[], &[0; 16], &mut rng));
            assert_wrong_key(unwrap(key, mech, &[], &[0; 40]));
        }
    }
    for mech in [WrapMech::RsaOaep(HashAlg::Sha256), WrapMech::RsaAes(HashAlg::Sha256)] {
        for key in [&aes(32), &generic(), &ec_private] {
            assert_wrong_key(wrap(key, mech, &[], &[0; 16], &mut rng));
        }
        assert_wrong_key(unwrap(rsa_public, mech, &[], &[0; 300]));
        assert!(wrap(rsa_private, mech, &[], &[0; 16], &mut rng).is_ok(), "a private key wraps with its public half");
    }
}

// ---- IVs, lengths, digests ----

#[test]
fn iv_lengths() {
    let mut rng = test_rng(0);
    let key = aes(16);
    for cipher in [Cipher::AesCbcPad, Cipher::AesCtr, Cipher::AesCbc] {
        for len in [0, 8, 12, 15, 17, 32] {
            assert_invalid(encrypt(&key, cipher, Some(&vec![0; len]), &[], DATA, &mut rng), "iv");
            assert_invalid(decrypt(&key, cipher, Some(&vec![0; len]), &[], &[0; 16]), "iv");
        }
        assert_invalid(decrypt(&key, cipher, None, &[], &[0; 16]), "iv");
    }
    for len in [0, 8, 11, 13, 16] {
        assert_invalid(decrypt(&key, Cipher::AesGcm, Some(&vec![0; len]), &[], &[0; 32]), "iv");
    }
    assert_invalid(decrypt(&key, Cipher::AesGcm, None, &[], &[0; 32]), "iv");
    // ECB and RSA take no IV.
    assert_invalid(encrypt(&key, Cipher::AesEcb, Some(&[0; 16]), &[], &[0; 16], &mut rng), "iv");
    assert_invalid(decrypt(&key, Cipher::AesEcb, Some(&[0; 16]), &[], &[0; 16]), "iv");
    let (private, public) = rsa_2048();
    assert_invalid(encrypt(public, Cipher::RsaPkcs1, Some(&[0; 16]), &[], DATA, &mut rng), "iv");
    assert_invalid(decrypt(private, Cipher::RsaOaep(HashAlg::Sha1), Some(&[0; 16]), &[], &[0; 256]), "iv");
    assert_invalid(encrypt(public, Cipher::RsaX509, Some(&[0; 16]), &[], DATA, &mut rng), "iv");
    assert_invalid(decrypt(private, Cipher::RsaX509, Some(&[0; 16]), &[], &[0; 256]), "iv");
}

#[test]
fn data_length_limits() {
    let mut rng = test_rng(0);
    let key = aes(32);
    let max = vec![0u8; MAX_DATA_LEN];
    let over = vec![0u8; MAX_DATA_LEN + 1];
    for cipher in AES_CIPHERS {
        let out = encrypt(&key, cipher, None, &[], &max, &mut rng).unwrap();
        assert_eq!(*decrypt(&key, cipher, out.iv.as_deref(), &[], &out.ciphertext).unwrap(), max, "{cipher:?}");
        assert_invalid(encrypt(&key, cipher, None, &[], &over, &mut rng), "plaintext");
    }
    // Ciphertexts may exceed the limit by the padding block or the tag.
    assert_invalid(decrypt(&key, Cipher::AesCbcPad, Some(&[0; 16]), &[], &vec![0; MAX_DATA_LEN + 32]), "ciphertext");
    assert_invalid(decrypt(&key, Cipher::AesCtr, Some(&[0; 16]), &[], &over), "ciphertext");
    assert_invalid(decrypt(&key, Cipher::AesGcm, Some(&[0; 12]), &[], &vec![0; MAX_DATA_LEN + 17]), "ciphertext");
    assert_invalid(encrypt(&key, Cipher::AesGcm, None, &over, DATA, &mut rng), "aad");
    assert_invalid(decrypt(&key, Cipher::AesGcm, Some(&[0; 12]), &over, &[0; 32]), "aad");

    // Signing and verifying data.
    let (ec_private, ec_public) = ec(Curve::P256);
    let (rsa_private, _) = rsa_2048();
    for (key, mech) in [
        (&ec_private, SignMech::Ecdsa(HashAlg::Sha256)),
        (rsa_private, SignMech::RsaPss(HashAlg::Sha512)),
        (&generic(), SignMech::Hmac(HashAlg::Sha224)),
        (&ed25519().0, SignMech::Ed25519),
        (&ed25519().0, SignMech::Ed25519ph),
    ] {
        assert!(sign(key, mech, Input::Data(&max), &mut rng).is_ok(), "{mech:?}");
        assert_invalid(sign(key, mech, Input::Data(&over), &mut rng), "data");
        assert_invalid(verify(key, mech, Input::Data(&over), &[0; 64]), "data");
    }
    assert_invalid(verify(&ec_public, SignMech::Ecdsa(HashAlg::Sha256), Input::Data(&over), &[0; 64]), "data");

    // Wrapping.
    assert_invalid(wrap(&key, WrapMech::AesKeyWrapPad, &[], &over, &mut rng), "key_bytes");
    assert_invalid(wrap(&key, WrapMech::AesGcm(GcmTagLen::FULL), &[], &[], &mut rng), "key_bytes");
    assert_invalid(unwrap(&key, WrapMech::AesGcm(GcmTagLen::FULL), &[], &vec![0; MAX_DATA_LEN + 1025]), "wrapped");
}

#[test]
fn block_and_message_lengths() {
    let mut rng = test_rng(0);
    let key = aes(24);
    for len in [1, 15, 17, 31] {
        assert_invalid(encrypt(&key, Cipher::AesEcb, None, &[], &vec![0; len], &mut rng), "plaintext");
        assert_invalid(decrypt(&key, Cipher::AesEcb, None, &[], &vec![0; len]), "ciphertext");
        assert_invalid(encrypt(&key, Cipher::AesCbc, Some(&[0; 16]), &[], &vec![0; len], &mut rng), "plaintext");
        assert_invalid(decrypt(&key, Cipher::AesCbc, Some(&[0; 16]), &[], &vec![0; len]), "ciphertext");
    }
    for len in [0, 1, 15, 17, 33] {
        assert_invalid(decrypt(&key, Cipher::AesCbcPad, Some(&[0; 16]), &[], &vec![0; len]), "ciphertext");
    }
    for len in [0, 15] {
        assert_invalid(decrypt(&key, Cipher::AesGcm, Some(&[0; 12]), &[], &vec![0; len]), "ciphertext");
    }
    // Only GCM takes AAD.
    for cipher in [Cipher::AesCbcPad, Cipher::AesCtr, Cipher::AesEcb, Cipher::AesCbc] {
        assert_invalid(encrypt(&key, cipher, None, b"aad", &[0; 16], &mut rng), "aad");
    }

    // RSA message and ciphertext lengths (2048-bit key: k = 256).
    let (private, public) = rsa_2048();
    for (cipher, max) in [
        (Cipher::RsaPkcs1, 245),
        (Cipher::RsaOaep(HashAlg::Sha1), 214),
        (Cipher::RsaOaep(HashAlg::Sha256), 190),
        (Cipher::RsaOaep(HashAlg::Sha512), 126),
    ] {
        assert!(encrypt(public, cipher, None, &[], &vec![1; max], &mut rng).is_ok(), "{cipher:?}");
        assert_invalid(encrypt(public, cipher, None, &[], &vec![1; max + 1], &mut rng), "plaintext");
        for len in [0, 255, 257] {
            assert_invalid(decrypt(private, cipher, None, &[], &vec![1; len]), "ciphertext");
        }
    }
    assert_invalid(wrap(public, WrapMech::RsaOaep(HashAlg::Sha256), &[], &[1; 191], &mut rng), "plaintext");

    // Key wrap lengths.
    for len in [1, 8, 12, 17, 23] {
        assert_invalid(wrap(&key, WrapMech::AesKeyWrap, &[], &vec![1; len], &mut rng), "key_bytes");
    }
    for len in [0, 8, 16, 23, 25] {
        assert_invalid(unwrap(&key, WrapMech::AesKeyWrap, &[], &vec![1; len]), "wrapped");
    }
    for len in [0, 8, 15, 17] {
        assert_invalid(unwrap(&key, WrapMech::AesKeyWrapPad, &[], &vec![1; len]), "wrapped");
    }
    assert_invalid(unwrap(&key, WrapMech::AesGcm(GcmTagLen::FULL), &[], &[1; 27]), "wrapped");
    assert_invalid(unwrap(private, WrapMech::RsaAes(HashAlg::Sha256), &[], &[1; 256]), "wrapped");
}

#[test]
fn digest_inputs() {
    let mut rng = test_rng(0);
    let (ec_private, ec_public) = ec(Curve::P521);
    let (rsa_private, rsa_public) = rsa_2048();
    for hash in [HashAlg::Sha1, HashAlg::Sha224, HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
        for len in [0, 16, hash.output_len() - 1, hash.output_len() + 1, 100] {
            let input = Input::Digest(&vec![1; len][..]);
            for (private, public, mech) in [
                (&ec_private, &ec_public, SignMech::Ecdsa(hash)),
                (rsa_private, rsa_public, SignMech::RsaPkcs1(hash)),
                (rsa_private, rsa_public, SignMech::RsaPss(hash)),
            ] {
                assert_invalid(sign(private, mech, input, &mut rng), "digest");
                assert_invalid(verify(public, mech, input, &[0; 64]), "digest");
            }
        }
    }
    // Ed25519ph takes a SHA-512 digest, 64 bytes.
    let (ed_private, ed_public) = ed25519();
    for len in [0, 32, 48, 63, 65] {
        let input = Input::Digest(&vec![1; len][..]);
        assert_invalid(sign(&ed_private, SignMech::Ed25519ph, input, &mut rng), "digest");
        assert_invalid(verify(&ed_public, SignMech::Ed25519ph, input, &[0; 64]), "digest");
    }
    assert!(sign(&ed_private, SignMech::Ed25519ph, Input::Digest(&[1; 64]), &mut rng).is_ok());
    // Ed25519 and HMAC sign the data itself.
    assert_invalid(sign(&ed_private, SignMech::Ed25519, Input::Digest(&[0; 64]), &mut rng), "input");
    assert_invalid(verify(&ed_public, SignMech::Ed25519, Input::Digest(&[0; 64]), &[0; 64]), "input");
    let mech = SignMech::Hmac(HashAlg::Sha256);
    assert_invalid(sign(&generic(), mech, Input::Digest(&[0; 32]), &mut rng), "input");
    assert_invalid(verify(&generic(), mech, Input::Digest(&[0; 32]), &[0; 32]), "input");
    // So do the raw RSA mechanisms, which have no hash.
    for mech in [SignMech::RsaPkcs1Raw, SignMech::RsaX509] {
        assert_invalid(sign(rsa_private, mech, Input::Digest(&[0; 32]), &mut rng), "input");
        assert_invalid(verify(rsa_public, mech, Input::Digest(&[0; 32]), &[0; 256]), "input");
    }
}

#[test]
fn raw_rsa_lengths_and_range() {
    let mut rng = test_rng(0);
    let (private, public) = rsa_2048();
    let (n, _) = public.modulus().unwrap();
    assert_eq!(n.len(), 256);

    // Raw PKCS#1 v1.5: at most k - 11 = 245 bytes, signing and verifying.
    let mech = SignMech::RsaPkcs1Raw;
    assert!(sign(private, mech, Input::Data(&[1; 245]), &mut rng).is_ok());
    assert_invalid(sign(private, mech, Input::Data(&[1; 246]), &mut rng), "data");
    assert_invalid(verify(public, mech, Input::Data(&[1; 246]), &[0; 256]), "data");

    // Raw RSA: at most k bytes, and less than n as an integer.
    let mech = SignMech::RsaX509;
    let mut below_n = n.clone();
    *below_n.last_mut().unwrap() -= 1;
    assert!(sign(private, mech, Input::Data(&below_n), &mut rng).is_ok());
    for too_big in [&n[..], &[0xff; 256][..]] {
        assert_invalid(sign(private, mech, Input::Data(too_big), &mut rng), "data");
        assert_invalid(encrypt(public, Cipher::RsaX509, None, &[], too_big, &mut rng), "plaintext");
        assert_invalid(decrypt(private, Cipher::RsaX509, None, &[], too_big), "ciphertext");
    }
    let too_long = [&[0][..], &below_n].concat();
    assert_invalid(sign(private, mech, Input::Data(&too_long), &mut rng), "data");
    assert_invalid(verify(public, mech, Input::Data(&too_long), &[0; 256]), "data");
    assert_invalid(encrypt(public, Cipher::RsaX509, None, &[], &too_long, &mut rng), "plaintext");
    // Ciphertexts are exactly k bytes.
    for len in [0, 1, 255, 257] {
        assert_invalid(decrypt(private, Cipher::RsaX509, None, &[], &vec![1; len]), "ciphertext");
    }
}

// ---- authentication failures ----

#[test]
fn tampering_fails_authentication() {
    let mut rng = test_rng(0);
    for len in [16, 24, 32] {
        let key = aes(len);
        let out = encrypt(&key, Cipher::AesGcm, None, b"aad", DATA, &mut rng).unwrap();
        let iv = out.iv.unwrap();
        let mut tag = out.ciphertext.clone();
        *tag.last_mut().unwrap() ^= 1;
        assert_authentication(decrypt(&key, Cipher::AesGcm, Some(&iv), b"aad", &tag));
        let mut body = out.ciphertext.clone();
        body[0] ^= 1;
        assert_authentication(decrypt(&key, Cipher::AesGcm, Some(&iv), b"aad", &body));
        assert_authentication(decrypt(&key, Cipher::AesGcm, Some(&iv), b"other", &out.ciphertext));
        assert_authentication(decrypt(&key, Cipher::AesGcm, Some(&[0; 12]), b"aad", &out.ciphertext));
        let other = KeyMaterial::from_raw_secret(KeyKind::Aes, &vec![0x43; len]).unwrap();
        assert_authentication(decrypt(&other, Cipher::AesGcm, Some(&iv), b"aad", &out.ciphertext));
    }

    // CBC: a last block that decrypts to ...00 has no valid PKCS#7 padding.
    let key = aes(16);
    let block = encrypt(&key, Cipher::AesEcb, None, &[], &[0; 16], &mut rng).unwrap().ciphertext;
    assert_authentication(decrypt(&key, Cipher::AesCbcPad, Some(&[0; 16]), &[], &block));

    // Key wrap.
    let kek = aes(32);
    for mech in [WrapMech::AesGcm(GcmTagLen::FULL), WrapMech::AesKeyWrap, WrapMech::AesKeyWrapPad] {
        let mut wrapped = wrap(&kek, mech, &[], &[7; 32], &mut rng).unwrap();
        *wrapped.last_mut().unwrap() ^= 1;
        assert_authentication(unwrap(&kek, mech, &[], &wrapped));
        let good = wrap(&kek, mech, &[], &[7; 32], &mut rng).unwrap();
        assert_authentication(unwrap(&aes(16), mech, &[], &good));
    }

    // RSA-OAEP and RSA-AES.
    let (private, public) = rsa_2048();
    let mut ciphertext =
        encrypt(public, Cipher::RsaOaep(HashAlg::Sha256), None, &[], DATA, &mut rng).unwrap().ciphertext;
    ciphertext[100] ^= 1;
    assert_authentication(decrypt(private, Cipher::RsaOaep(HashAlg::Sha256), None, &[], &ciphertext));
    let good = encrypt(public, Cipher::RsaOaep(HashAlg::Sha256), None, &[], DATA, &mut rng).unwrap().ciphertext;
    assert_authentication(decrypt(private, Cipher::RsaOaep(HashAlg::Sha1), None, &[], &good));
    let mut wrapped = wrap(public, WrapMech::RsaAes(HashAlg::Sha256), &[], &[9; 40], &mut rng).unwrap();
    *wrapped.last_mut().unwrap() ^= 1;
    assert_authentication(unwrap(private, WrapMech::RsaAes(HashAlg::Sha256), &[], &wrapped));

    // PKCS#1 v1.5: implicit rejection, so a tampered ciphertext "decrypts" to
    // a different message rather than failing.
    let mut ciphertext = encrypt(public, Cipher::RsaPkcs1, None, &[], DATA, &mut rng).unwrap().ciphertext;
    ciphertext[100] ^= 1;
    assert_ne!(*decrypt(private, Cipher::RsaPkcs1, None, &[], &ciphertext).unwrap(), DATA);
}

#[test]
fn malformed_signatures_verify_false() {
    let mut rng = test_rng(0);
    let (rsa_private, _) = rsa_2048();
    let cases: Vec<(KeyMaterial, SignMech)> = vec![
        (ec(Curve::P224).0, SignMech::Ecdsa(HashAlg::Sha224)),
        (ec(Curve::P256).0, SignMech::Ecdsa(HashAlg::Sha256)),
        (ec(Curve::P384).0, SignMech::Ecdsa(HashAlg::Sha1)),
        (ec(Curve::Secp256k1).0, SignMech::Ecdsa(HashAlg::Sha256)),
        (ed25519().0, SignMech::Ed25519),
        (ed25519().0, SignMech::Ed25519ph),
        (generic(), SignMech::Hmac(HashAlg::Sha512)),
    ];
    let rsa_cases = [
        SignMech::RsaPkcs1(HashAlg::Sha256),
        SignMech::RsaPss(HashAlg::Sha1),
        SignMech::RsaPkcs1Raw,
        SignMech::RsaX509,
    ];
    let all = cases.iter().map(|(k, m)| (k, *m)).chain(rsa_cases.iter().map(|m| (rsa_private, *m)));
    for (key, mech) in all {
        let good = sign(key, mech, Input::Data(DATA), &mut rng).unwrap();
        assert_eq!(verify(key, mech, Input::Data(DATA), &good), Ok(true), "{mech:?}");
        let longer = [good.clone(), vec![0]].concat();
        let zeros = vec![0; good.len()];
        let ones = vec![0xff; good.len()];
        for bad in [&[][..], &good[..good.len() - 1], &longer, &zeros, &ones] {
            assert_eq!(verify(key, mech, Input::Data(DATA), bad), Ok(false), "{mech:?} {} bytes", bad.len());
        }
    }
}
