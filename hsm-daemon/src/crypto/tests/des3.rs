//! Triple DES: the SP 800-67 known answer, OpenSSL-computed CBC vectors, the
//! key rules (parity at generation, distinct parts on import) and the
//! ciphers' validation.

use super::{hex, test_rng};
use crate::crypto::{Cipher, CryptoError, KeyClass, KeyKind, KeyMaterial, decrypt, encrypt};

/// NIST SP 800-67 Rev. 1's example: K1, K2, K3 and the 24-byte message
/// "The qufck brown fox jump".
const KEY: &str = "0123456789abcdef23456789abcdef01456789abcdef0123";
const PLAINTEXT: &[u8] = b"The qufck brown fox jump";
/// SP 800-67's ECB ciphertext of `PLAINTEXT` (OpenSSL agrees:
/// `openssl enc -des-ede3 -K <KEY> -nopad`).
const ECB_CIPHERTEXT: &str = "a826fd8ce53b855fcce21c8112256fe668d5c05dd9b6b900";
const IV: &str = "f69f2445df4f9b17";
/// `printf 'The qufck brown fox jump' | openssl enc -des-ede3-cbc -K <KEY> -iv <IV> -nopad | xxd -p`
const CBC_CIPHERTEXT: &str = "a5c282bad0de3774becd2e04386b589fb5057d8552fc4336";
/// The same without `-nopad` (PKCS#7 adds a whole block of 0x08).
const CBC_PAD_CIPHERTEXT: &str = "a5c282bad0de3774becd2e04386b589fb5057d8552fc4336af45148b1b044b00";

fn key() -> KeyMaterial {
    KeyMaterial::from_raw_secret(KeyKind::Des3, &hex(KEY)).unwrap()
}

#[test]
fn known_answers_encrypt_and_decrypt() {
    let key = key();
    let iv = hex(IV);
    let mut rng = test_rng(1);
    for (cipher, iv, expected) in [
        (Cipher::Des3Ecb, None, ECB_CIPHERTEXT),
        (Cipher::Des3Cbc, Some(iv.as_slice()), CBC_CIPHERTEXT),
        (Cipher::Des3CbcPad, Some(iv.as_slice()), CBC_PAD_CIPHERTEXT),
    ] {
        let out = encrypt(&key, cipher, iv, &[], PLAINTEXT, &mut rng).unwrap();
        assert_eq!(hex::encode(&out.ciphertext), expected, "{cipher:?}");
        assert_eq!(out.iv.as_deref(), iv, "{cipher:?}");
        let back = decrypt(&key, cipher, iv, &[], &hex(expected)).unwrap();
        assert_eq!(back.as_slice(), PLAINTEXT, "{cipher:?}");
    }
}

#[test]
fn the_check_value_is_the_encrypted_zero_block() {
    // `printf '\0\0\0\0\0\0\0\0' | openssl enc -des-ede3 -K <KEY> -nopad | xxd -p` gives 4eba739c998bcb60.
    assert_eq!(key().check_value(), [0x4e, 0xba, 0x73]);
}

#[test]
fn generated_keys_have_odd_parity_distinct_parts_and_round_trip() {
    let mut rng = test_rng(3);
    for _ in 0..32 {
        let key = KeyMaterial::generate_des3(&mut rng).unwrap();
        assert_eq!((key.kind(), key.class(), key.secret_len()), (KeyKind::Des3, KeyClass::Secret, Some(24)));
        let bytes = key.to_wrappable().unwrap();
        assert!(bytes.iter().all(|b| b.count_ones() % 2 == 1), "every byte has odd parity: {}", hex::encode(&*bytes));
        assert!(bytes[..8] != bytes[8..16] && bytes[8..16] != bytes[16..] && bytes[..8] != bytes[16..]);
        // What a generated key encrypts, OpenSSL's implementation (here
        // the same vectors) and ours agree on; round trips cover the modes.
        for cipher in [Cipher::Des3Ecb, Cipher::Des3Cbc, Cipher::Des3CbcPad] {
            let data = [0x5a; 32];
            let out = encrypt(&key, cipher, None, &[], &data, &mut rng).unwrap();
            assert_eq!(out.iv.as_ref().map(Vec::len), (cipher != Cipher::Des3Ecb).then_some(8), "{cipher:?}");
            assert_ne!(out.ciphertext[..32], data);
            let back = decrypt(&key, cipher, out.iv.as_deref(), &[], &out.ciphertext).unwrap();
            assert_eq!(back.as_slice(), data, "{cipher:?}");
        }
    }
}

#[test]
fn imports_refuse_repeated_parts_and_wrong_lengths() {
    let (k1, k2, k3) = ("0123456789abcdef", "23456789abcdef01", "456789abcdef0123");
    for (parts, why) in [
        ([k1, k1, k3], "K1 = K2"),
        ([k1, k2, k2], "K2 = K3"),
        ([k1, k2, k1], "K1 = K3 (two-key triple DES)"),
        // Keys that differ only in their parity bits are the same DES key.
        ([k1, "0022446688aaccee", k3], "K1 = K2 but for parity"),
    ] {
        let err = KeyMaterial::from_raw_secret(KeyKind::Des3, &hex(&parts.concat())).unwrap_err();
        assert!(err.to_string().contains("K1, K2, K3) must be distinct"), "{why}: {err}");
    }
    for len in [8, 16, 23, 25, 32] {
        let err = KeyMaterial::from_raw_secret(KeyKind::Des3, &vec![0x13; len]).unwrap_err();
        assert_eq!(err, CryptoError::invalid("key", format!("triple DES keys are 24 bytes, not {len}")));
    }
    // Parity is not checked on import: DES ignores those bits.
    assert!(
        KeyMaterial::from_raw_secret(KeyKind::Des3, &hex("0022446688aaccee23456789abcdef01456789abcdef0123")).is_ok()
    );
}

#[test]
fn ciphers_check_blocks_ivs_and_key_types() {
    let (key, mut rng) = (key(), test_rng(4));
    let invalid = |r: Result<_, CryptoError>, field: &str| match r {
        Err(CryptoError::InvalidArgument { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected invalid {field}, got {other:?}"),
    };
    invalid(encrypt(&key, Cipher::Des3Ecb, None, &[], &[1; 7], &mut rng).map(|_| ()), "plaintext");
    invalid(encrypt(&key, Cipher::Des3Cbc, None, &[], &[1; 12], &mut rng).map(|_| ()), "plaintext");
    invalid(encrypt(&key, Cipher::Des3Cbc, Some(&[0; 16]), &[], &[1; 8], &mut rng).map(|_| ()), "iv");
    invalid(encrypt(&key, Cipher::Des3Ecb, Some(&[0; 8]), &[], &[1; 8], &mut rng).map(|_| ()), "iv");
    invalid(decrypt(&key, Cipher::Des3CbcPad, None, &[], &[1; 8]).map(|_| ()), "iv");
    invalid(decrypt(&key, Cipher::Des3CbcPad, Some(&[0; 8]), &[], &[1; 12]).map(|_| ()), "ciphertext");
    // Any length pads, the empty message to one block.
    let empty = encrypt(&key, Cipher::Des3CbcPad, None, &[], &[], &mut rng).unwrap();
    assert_eq!(empty.ciphertext.len(), 8);
    // A wrong key (the last byte of the padded vector flipped) fails the padding
    // check, or yields other bytes; it never yields the plaintext.
    let mut tampered = hex(CBC_PAD_CIPHERTEXT);
    *tampered.last_mut().unwrap() ^= 1;
    assert!(decrypt(&key, Cipher::Des3CbcPad, Some(&hex(IV)), &[], &tampered).is_err());
    // DES3 ciphers take DES3 keys only, and AES ciphers refuse DES3 keys.
    let aes = KeyMaterial::from_raw_secret(KeyKind::Aes, &[7; 24]).unwrap();
    assert!(matches!(
        encrypt(&aes, Cipher::Des3Ecb, None, &[], &[1; 8], &mut rng),
        Err(CryptoError::WrongKeyType { .. })
    ));
    assert!(matches!(
        encrypt(&key, Cipher::AesEcb, None, &[], &[1; 16], &mut rng),
        Err(CryptoError::WrongKeyType { .. })
    ));
}
