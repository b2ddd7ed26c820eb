//! Wycheproof vectors (`hsm-daemon/tests/data/wycheproof/`) through the
//! public API: every `valid` case accepted with the expected output, every
//! `invalid` case rejected, `acceptable` either way. Each file's tally is
//! pinned, so a test that started skipping (or a file that lost cases)
//! fails.

use serde_json::Value;

use super::{FixedRng, hex};
use crate::crypto::{
    Cipher, CryptoError, HashAlg, Input, KeyKind, KeyMaterial, SignMech, WrapMech, decrypt, encrypt, sign, unwrap,
    verify, wrap,
};

/// What happened to one file's cases.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    /// `valid` cases accepted with the expected output.
    valid: usize,
    /// `invalid` cases rejected.
    invalid: usize,
    /// `acceptable` cases (either outcome passes).
    acceptable: usize,
    /// Cases outside what CloudHSM offers (IV/tag sizes, labels), not run.
    skipped: usize,
}

fn load(name: &str) -> Value {
    let path = format!("{}/tests/data/wycheproof/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn str_field<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or_else(|| panic!("field {field} missing in {value}"))
}

fn hex_field(value: &Value, field: &str) -> Vec<u8> {
    hex(str_field(value, field))
}

/// Runs `case` over every test of every group and checks its verdict against
/// the test's `result`. `case` returns `None` to skip, `Some(true)` when the
/// implementation accepted the case with the expected output, `Some(false)`
/// when it rejected it. Panics on any disagreement, naming the case.
fn run(name: &str, mut case: impl FnMut(&Value, &Value) -> Option<bool>) -> Tally {
    let file = load(name);
    let mut tally = Tally::default();
    let mut seen = 0;
    for group in file["testGroups"].as_array().expect("testGroups") {
        for test in group["tests"].as_array().expect("tests") {
            seen += 1;
            let id = &test["tcId"];
            let Some(accepted) = case(group, test) else {
                tally.skipped += 1;
                continue;
            };
            match str_field(test, "result") {
                "valid" => {
                    assert!(accepted, "{name} tcId {id} ({}): valid case rejected", test["comment"]);
                    tally.valid += 1;
                }
                "invalid" => {
                    assert!(!accepted, "{name} tcId {id} ({}): invalid case accepted", test["comment"]);
                    tally.invalid += 1;
                }
                "acceptable" => tally.acceptable += 1,
                other => panic!("{name} tcId {id}: unknown result {other}"),
            }
        }
    }
    assert_eq!(Some(seen as u64), file["numberOfTests"].as_u64(), "{name}: numberOfTests");
    eprintln!("{name}: {tally:?}");
    tally
}

fn tally(valid: usize, invalid: usize, acceptable: usize, skipped: usize) -> Tally {
    Tally { valid, invalid, acceptable, skipped }
}

/// A signature-verification file: the group's PEM key, `msg` and `sig`.
fn verify_file(name: &str, mech: SignMech) -> Tally {
    run(name, |group, test| {
        let key = KeyMaterial::from_pem(str_field(group, "publicKeyPem")).expect("the group's public key");
        let ok = verify(&key, mech, Input::Data(&hex_field(test, "msg")), &hex_field(test, "sig"))
            .unwrap_or_else(|e| panic!("tcId {}: verify is not misuse: {e}", test["tcId"]));
        Some(ok)
    })
}

fn check_hash(group: &Value, field: &str, expected: &str) {
    assert_eq!(str_field(group, field), expected, "group {field}");
}

#[test]
fn ecdsa_p256_sha256() {
    let t = verify_file("ecdsa_secp256r1_sha256_p1363_test.json", SignMech::Ecdsa(HashAlg::Sha256));
    assert_eq!(t, tally(173, 89, 0, 0));
}

#[test]
fn ecdsa_p384_sha384() {
    let t = verify_file("ecdsa_secp384r1_sha384_p1363_test.json", SignMech::Ecdsa(HashAlg::Sha384));
    assert_eq!(t, tally(193, 87, 0, 0));
}

#[test]
fn ecdsa_p521_sha512() {
    let t = verify_file("ecdsa_secp521r1_sha512_p1363_test.json", SignMech::Ecdsa(HashAlg::Sha512));
    assert_eq!(t, tally(231, 87, 0, 0));
}

#[test]
fn ecdsa_secp256k1_sha256() {
    let t = verify_file("ecdsa_secp256k1_sha256_p1363_test.json", SignMech::Ecdsa(HashAlg::Sha256));
    assert_eq!(t, tally(167, 85, 0, 0));
}

#[test]
fn ed25519() {
    let t = verify_file("ed25519_test.json", SignMech::Ed25519);
    assert_eq!(t, tally(88, 63, 0, 0));
}

#[test]
fn rsa_pkcs1_sha256_signatures() {
    let name = "rsa_signature_2048_sha256_test.json";
    load(name)["testGroups"].as_array().unwrap().iter().for_each(|g| check_hash(g, "sha", "SHA-256"));
    let t = verify_file(name, SignMech::RsaPkcs1(HashAlg::Sha256));
    assert_eq!(t, tally(9, 249, 1, 0));
}

#[test]
fn rsa_pss_sha256_signatures() {
    let name = "rsa_pss_2048_sha256_mgf1_32_test.json";
    for group in load(name)["testGroups"].as_array().unwrap() {
        check_hash(group, "sha", "SHA-256");
        check_hash(group, "mgfSha", "SHA-256");
        assert_eq!(group["sLen"], 32);
    }
    let t = verify_file(name, SignMech::RsaPss(HashAlg::Sha256));
    assert_eq!(t, tally(63, 45, 0, 0));
}

#[test]
fn rsa_oaep_sha256_decryption() {
    let name = "rsa_oaep_2048_sha256_mgf1sha256_test.json";
    let t = run(name, |group, test| {
        check_hash(group, "sha", "SHA-256");
        check_hash(group, "mgfSha", "SHA-256");
        if !str_field(test, "label").is_empty() {
            // The HSM's OAEP takes no label (CloudHSM: empty source data).
            return None;
        }
        let key = KeyMaterial::from_pem(str_field(group, "privateKeyPem")).expect("the group's private key");
        let result = decrypt(&key, Cipher::RsaOaep(HashAlg::Sha256), None, &[], &hex_field(test, "ct"));
        if test["tcId"] == FIRST_BYTE_ONE {
            // Known deviation: rsa 0.10 deliberately ignores the first octet
            // of the encoded message (its test `decrypt_ignores_first_octet`),
            // so this case decrypts. Pinned so a library change shows up.
            assert_eq!(*result.expect("rsa 0.10 ignores the first octet"), hex_field(test, "msg"));
            return None;
        }
        match result {
            Ok(plaintext) => {
                assert_eq!(*plaintext, hex_field(test, "msg"), "tcId {}", test["tcId"]);
                Some(true)
            }
            Err(CryptoError::Authentication(_) | CryptoError::InvalidArgument { .. }) => Some(false),
            Err(e) => panic!("tcId {}: unexpected error {e}", test["tcId"]),
        }
    });
    // Skipped: 8 cases with a label, and tcId 23 (above).
    assert_eq!(t, tally(10, 18, 0, 9));
}

/// The OAEP case whose encoded message starts with 1 instead of 0.
const FIRST_BYTE_ONE: u64 = 23;

/// PKCS#1 v1.5 decryption uses implicit rejection (see `Cipher::RsaPkcs1`):
/// a ciphertext with bad padding decrypts to a pseudo-random message. Such a
/// case counts as rejected when the output is not the encrypted message;
/// ciphertexts of the wrong length or out of range must fail outright.
#[test]
fn rsa_pkcs1_decryption() {
    let name = "rsa_pkcs1_2048_test.json";
    let mut implicit = Vec::new();
    let t = run(name, |group, test| {
        let key = KeyMaterial::from_pem(str_field(group, "privateKeyPem")).expect("the group's private key");
        let msg = hex_field(test, "msg");
        let flags: Vec<&str> = test["flags"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        match decrypt(&key, Cipher::RsaPkcs1, None, &[], &hex_field(test, "ct")) {
            Ok(plaintext) if *plaintext == msg => Some(true),
            Ok(plaintext) => {
                assert!(flags.contains(&"InvalidPkcs1Padding"), "tcId {}: wrong plaintext", test["tcId"]);
                implicit.push(plaintext.to_vec());
                Some(false)
            }
            Err(CryptoError::Authentication(_) | CryptoError::InvalidArgument { .. }) => {
                assert!(
                    !flags.contains(&"InvalidPkcs1Padding"),
                    "tcId {}: bad padding must not fail distinguishably",
                    test["tcId"]
                );
                Some(false)
            }
            Err(e) => panic!("tcId {}: unexpected error {e}", test["tcId"]),
        }
    });
    assert_eq!(t, tally(42, 25, 0, 0));
    // The 19 bad-padding cases decrypt to synthetic messages, all different;
    // the 6 malformed ciphertexts fail.
    assert_eq!(implicit.len(), 19);
    let mut distinct = implicit.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), implicit.len());
}

#[test]
fn aes_gcm() {
    let t = run("aes_gcm_test.json", |group, test| {
        if group["ivSize"] != 96 || group["tagSize"] != 128 {
            // CloudHSM's GCM: 12-byte IVs (generated) and 16-byte tags.
            return None;
        }
        let key = KeyMaterial::from_raw_secret(KeyKind::Aes, &hex_field(test, "key")).expect("AES key");
        let (iv, aad, msg) = (hex_field(test, "iv"), hex_field(test, "aad"), hex_field(test, "msg"));
        let sealed = [hex_field(test, "ct"), hex_field(test, "tag")].concat();
        match decrypt(&key, Cipher::AesGcm, Some(&iv), &aad, &sealed) {
            Ok(plaintext) => {
                assert_eq!(*plaintext, msg, "tcId {}", test["tcId"]);
                // Encryption with the same IV (fed through the generator) gives the same bytes.
                let encrypted = encrypt(&key, Cipher::AesGcm, None, &aad, &msg, &mut FixedRng::new(&iv)).unwrap();
                assert_eq!(encrypted.iv.as_deref(), Some(iv.as_slice()));
                assert_eq!(encrypted.ciphertext, sealed, "tcId {}", test["tcId"]);
                Some(true)
            }
            Err(CryptoError::Authentication(_)) => Some(false),
            Err(e) => panic!("tcId {}: unexpected error {e}", test["tcId"]),
        }
    });
    assert_eq!(t, tally(116, 81, 0, 119));
}

#[test]
fn aes_cbc_pkcs5() {
    let t = run("aes_cbc_pkcs5_test.json", |_, test| {
        let key = KeyMaterial::from_raw_secret(KeyKind::Aes, &hex_field(test, "key")).expect("AES key");
        let (iv, msg, ct) = (hex_field(test, "iv"), hex_field(test, "msg"), hex_field(test, "ct"));
        match decrypt(&key, Cipher::AesCbcPad, Some(&iv), &[], &ct) {
            Ok(plaintext) => {
                assert_eq!(*plaintext, msg, "tcId {}", test["tcId"]);
                let encrypted =
                    encrypt(&key, Cipher::AesCbcPad, Some(&iv), &[], &msg, &mut super::test_rng(0)).unwrap();
                assert_eq!(encrypted.ciphertext, ct, "tcId {}", test["tcId"]);
                Some(true)
            }
            Err(CryptoError::Authentication(_) | CryptoError::InvalidArgument { .. }) => Some(false),
            Err(e) => panic!("tcId {}: unexpected error {e}", test["tcId"]),
        }
    });
    assert_eq!(t, tally(72, 144, 0, 0));
}

/// A key-wrap file: unwrap `ct`, and for valid cases wrap `msg` back (both
/// mechanisms are deterministic).
fn wrap_file(name: &str, mech: WrapMech) -> Tally {
    run(name, |_, test| {
        let key = KeyMaterial::from_raw_secret(KeyKind::Aes, &hex_field(test, "key")).expect("AES key");
        let (msg, ct) = (hex_field(test, "msg"), hex_field(test, "ct"));
        match unwrap(&key, mech, &[], &ct) {
            Ok(unwrapped) => {
                assert_eq!(*unwrapped, msg, "tcId {}", test["tcId"]);
                if str_field(test, "result") == "valid" {
                    assert_eq!(
                        wrap(&key, mech, &[], &msg, &mut super::test_rng(0)).unwrap(),
                        ct,
                        "tcId {}",
                        test["tcId"]
                    );
                }
                Some(true)
            }
            Err(CryptoError::Authentication(_) | CryptoError::InvalidArgument { .. }) => Some(false),
            Err(e) => panic!("tcId {}: unexpected error {e}", test["tcId"]),
        }
    })
}

#[test]
fn aes_key_wrap() {
    let t = wrap_file("aes_wrap_test.json", WrapMech::AesKeyWrap);
    assert_eq!(t, tally(36, 126, 3, 0));
}

#[test]
fn aes_key_wrap_pad() {
    let t = wrap_file("aes_kwp_test.json", WrapMech::AesKeyWrapPad);
    assert_eq!(t, tally(77, 177, 0, 0));
}

#[test]
fn hmac_sha256() {
    let t = run("hmac_sha256_test.json", |group, test| {
        if group["tagSize"] != 256 {
            // CloudHSM's HMAC returns the full tag; truncated tags are not offered.
            return None;
        }
        let key = KeyMaterial::from_raw_secret(KeyKind::GenericSecret, &hex_field(test, "key")).expect("HMAC key");
        let (msg, tag) = (hex_field(test, "msg"), hex_field(test, "tag"));
        let mech = SignMech::Hmac(HashAlg::Sha256);
        let ok = verify(&key, mech, Input::Data(&msg), &tag).unwrap();
        let computed = sign(&key, mech, Input::Data(&msg), &mut super::test_rng(0)).unwrap();
        assert_eq!(ok, computed == tag, "tcId {}: sign and verify disagree", test["tcId"]);
        Some(ok)
    });
    assert_eq!(t, tally(33, 54, 0, 87));
}
