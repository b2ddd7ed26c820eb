//! Cross-checks in both directions against an independent implementation:
//! for ring-backed paths RustCrypto (or ed25519-dalek), for RustCrypto-backed
//! paths ring where it has the mechanism, another RustCrypto entry point, or
//! known answers (FIPS 180, FIPS 197, SP 800-38A, RFC 2202/4231/3394/5649/8032).

use aes_gcm::aead::{Aead, Payload};
use ed25519_dalek::Signer as _;
use hmac::{KeyInit as _, Mac as _};
use rand::RngCore as _;
use rand_chacha::rand_core::SeedableRng as _;
use rsa::pkcs1::{EncodeRsaPrivateKey as _, EncodeRsaPublicKey as _};
use rsa::pkcs8::{AssociatedOid, DecodePrivateKey as _, DecodePublicKey as _};
use rsa::traits::PublicKeyParts as _;
use sha2::Digest as _;
use sha2::digest::FixedOutputReset;

use super::{FixedRng, hex, rsa_2048, test_rng};
use crate::crypto::{
    Cipher, CryptoError, Curve, GcmTagLen, HashAlg, Input, KeyClass, KeyKind, KeyMaterial, SignMech, WrapMech, decrypt,
    digest, encrypt, sign, unwrap, verify, wrap,
};

const DATA: &[u8] = b"The quick brown fox jumps over the lazy dog";
const HASHES: [HashAlg; 5] = [HashAlg::Sha1, HashAlg::Sha224, HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512];
const CURVES: [Curve; 5] = [Curve::P224, Curve::P256, Curve::P384, Curve::P521, Curve::Secp256k1];

/// The digest computed by RustCrypto directly (ring computes four of them in
/// the module).
fn rustcrypto_digest(hash: HashAlg, data: &[u8]) -> Vec<u8> {
    match hash {
        HashAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
        HashAlg::Sha224 => sha2::Sha224::digest(data).to_vec(),
        HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
        HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
        HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
    }
}

fn aes(bytes: &[u8]) -> KeyMaterial {
    KeyMaterial::from_raw_secret(KeyKind::Aes, bytes).unwrap()
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    test_rng(seed).fill_bytes(&mut bytes);
    bytes
}

// ---- digests and HMAC ----

#[test]
fn digests_match_fips_180_and_the_other_library() {
    let abc = [
        (HashAlg::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (HashAlg::Sha224, "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"),
        (HashAlg::Sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            HashAlg::Sha384,
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            HashAlg::Sha512,
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
    ];
    for (hash, expected) in abc {
        assert_eq!(digest(hash, b"abc"), hex(expected), "{hash:?}");
        assert_eq!(digest(hash, b"abc").len(), hash.output_len());
    }
    // The two-block FIPS 180 message for SHA-224 (the one digest ring lacks).
    assert_eq!(
        digest(HashAlg::Sha224, b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
        hex("75388b16512776cc5dba5da1fd890150b0c6455cb4f58b1952522525")
    );
    for len in [0, 1, 55, 56, 64, 1000] {
        let data = random(len, len as u64);
        for hash in HASHES {
            assert_eq!(digest(hash, &data), rustcrypto_digest(hash, &data), "{hash:?} over {len} bytes");
        }
    }
}

#[test]
fn hmac_matches_rfc_2202_and_4231() {
    // (key, data, [SHA-1, SHA-224, SHA-256, SHA-384, SHA-512])
    let cases = [
        (
            vec![0x0b; 20],
            b"Hi There".to_vec(),
            [
                "b617318655057264e28bc0b6fb378c8ef146be00",
                "896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
                 faea9ea9076ede7f4af152e8b2fa9cb6",
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                 daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            ],
        ),
        (
            b"Jefe".to_vec(),
            b"what do ya want for nothing?".to_vec(),
            [
                "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
                "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                 8e2240ca5e69e2c78b3239ecfab21649",
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ],
        ),
    ];
    for (key, data, tags) in cases {
        let key = KeyMaterial::from_raw_secret(KeyKind::GenericSecret, &key).unwrap();
        for (hash, tag) in HASHES.into_iter().zip(tags) {
            let mech = SignMech::Hmac(hash);
            assert_eq!(sign(&key, mech, Input::Data(&data), &mut test_rng(0)).unwrap(), hex(tag), "{hash:?}");
            assert!(verify(&key, mech, Input::Data(&data), &hex(tag)).unwrap());
        }
    }
}

/// HMAC with the `hmac` crate directly, for the four hashes ring computes here.
fn rustcrypto_hmac(hash: HashAlg, key: &[u8], data: &[u8]) -> Vec<u8> {
    fn tag<M: hmac::Mac + hmac::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = <M as hmac::KeyInit>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
    match hash {
        HashAlg::Sha1 => tag::<hmac::Hmac<sha1::Sha1>>(key, data),
        HashAlg::Sha224 => tag::<hmac::Hmac<sha2::Sha224>>(key, data),
        HashAlg::Sha256 => tag::<hmac::Hmac<sha2::Sha256>>(key, data),
        HashAlg::Sha384 => tag::<hmac::Hmac<sha2::Sha384>>(key, data),
        HashAlg::Sha512 => tag::<hmac::Hmac<sha2::Sha512>>(key, data),
    }
}

#[test]
fn hmac_matches_the_hmac_crate_both_ways() {
    let mut rng = test_rng(1);
    for (kind, len) in [(KeyKind::GenericSecret, 1), (KeyKind::GenericSecret, 200), (KeyKind::Aes, 32)] {
        let bytes = random(len, 7);
        let key = KeyMaterial::from_raw_secret(kind, &bytes).unwrap();
        for hash in HASHES {
            let mech = SignMech::Hmac(hash);
            let ours = sign(&key, mech, Input::Data(DATA), &mut rng).unwrap();
            let theirs = rustcrypto_hmac(hash, &bytes, DATA);
            assert_eq!(ours, theirs, "{hash:?}");
            assert!(verify(&key, mech, Input::Data(DATA), &theirs).unwrap());
            assert!(!verify(&key, mech, Input::Data(b"other data"), &theirs).unwrap());
            // A truncated tag does not verify.
            assert!(!verify(&key, mech, Input::Data(DATA), &theirs[..16]).unwrap());
        }
    }
    // The `hmac` crate checks our SHA-224 tag (the path that is RustCrypto here).
    let mut mac = hmac::Hmac::<sha2::Sha224>::new_from_slice(b"key").unwrap();
    mac.update(DATA);
    let key = KeyMaterial::from_raw_secret(KeyKind::GenericSecret, b"key").unwrap();
    mac.verify_slice(&sign(&key, SignMech::Hmac(HashAlg::Sha224), Input::Data(DATA), &mut rng).unwrap()).unwrap();
}

// ---- key check values ----

#[test]
fn check_values() {
    // AES-ECB(zero key, zero block) (FIPS 197): 66e94bd4... and dc95c078...
    assert_eq!(aes(&[0; 16]).check_value(), [0x66, 0xe9, 0x4b]);
    assert_eq!(aes(&[0; 32]).check_value(), [0xdc, 0x95, 0xc0]);
    // FIPS 197 C.1: AES-128(000102..0f) of 00112233..ff is 69c4e0d8...; KCV
    // uses the zero block, so check it against the aes crate instead.
    let key = hex("000102030405060708090a0b0c0d0e0f");
    let block = encrypt(&aes(&key), Cipher::AesEcb, None, &[], &[0; 16], &mut test_rng(0)).unwrap();
    assert_eq!(aes(&key).check_value(), block.ciphertext[..3]);
    let fips =
        encrypt(&aes(&key), Cipher::AesEcb, None, &[], &hex("00112233445566778899aabbccddeeff"), &mut test_rng(0));
    assert_eq!(fips.unwrap().ciphertext, hex("69c4e0d86a7b0430d8cdb78070b4c55a"));

    let secret = KeyMaterial::from_raw_secret(KeyKind::GenericSecret, b"secret").unwrap();
    assert_eq!(secret.check_value(), sha1::Sha1::digest(b"secret")[..3]);

    // Asymmetric: SHA-1 over the SPKI DER as RustCrypto encodes it.
    let (private, public) = KeyMaterial::generate_ec(Curve::P256, &mut test_rng(3)).unwrap();
    let spki = p256::PublicKey::from_public_key_pem(&public.public_pem().unwrap()).unwrap();
    let spki = rsa::pkcs8::EncodePublicKey::to_public_key_der(&spki).unwrap();
    assert_eq!(private.check_value(), sha1::Sha1::digest(spki.as_bytes())[..3]);
    assert_eq!(public.check_value(), private.check_value());
}

// ---- AES modes ----

/// SP 800-38A's AES-128 key and four-block plaintext.
const SP800_38A_KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
const SP800_38A_PLAINTEXT: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                                   30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";

#[test]
fn aes_ecb_cbc_ctr_match_sp_800_38a() {
    let key = aes(&hex(SP800_38A_KEY));
    let plaintext = hex(SP800_38A_PLAINTEXT);
    let mut rng = test_rng(0);

    // F.1.1 ECB-AES128.
    let ecb = hex("3ad77bb40d7a3660a89ecaf32466ef97f5d3d58503b9699de785895a96fdbaaf\
         43b1cd7f598ece23881b00e3ed0306887b0c785e27e8ad3f8223207104725dd4");
    let out = encrypt(&key, Cipher::AesEcb, None, &[], &plaintext, &mut rng).unwrap();
    assert_eq!((out.iv, &out.ciphertext), (None, &ecb));
    assert_eq!(*decrypt(&key, Cipher::AesEcb, None, &[], &ecb).unwrap(), plaintext);

    // F.2.1 CBC-AES128: the first four blocks; PKCS#7 then adds a full block.
    let iv = hex("000102030405060708090a0b0c0d0e0f");
    let cbc = hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2\
         73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7");
    let out = encrypt(&key, Cipher::AesCbcPad, Some(&iv), &[], &plaintext, &mut rng).unwrap();
    assert_eq!(out.iv.as_deref(), Some(iv.as_slice()));
    assert_eq!(out.ciphertext.len(), 80);
    assert_eq!(out.ciphertext[..64], cbc[..]);
    assert_eq!(*decrypt(&key, Cipher::AesCbcPad, Some(&iv), &[], &out.ciphertext).unwrap(), plaintext);

    // F.5.1 CTR-AES128.
    let counter = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
    let ctr = hex("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff\
         5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee");
    let out = encrypt(&key, Cipher::AesCtr, Some(&counter), &[], &plaintext, &mut rng).unwrap();
    assert_eq!(out.ciphertext, ctr);
    assert_eq!(*decrypt(&key, Cipher::AesCtr, Some(&counter), &[], &ctr).unwrap(), plaintext);
    // The counter is the whole 128-bit block: it carries out of the low 64 bits.
    let wrap_counter = hex("00000000000000000000000000000000ffffffffffffffff").split_off(8);
    let out = encrypt(&key, Cipher::AesCtr, Some(&wrap_counter), &[], &[0; 32], &mut rng).unwrap();
    let mut next = wrap_counter.clone();
    next[7] = 1;
    next[8..].fill(0);
    let second = encrypt(&key, Cipher::AesEcb, None, &[], &next, &mut rng).unwrap();
    assert_eq!(out.ciphertext[16..], second.ciphertext[..]);
}

#[test]
fn aes_cbc_and_ctr_generate_an_iv_when_none_is_given() {
    let key = aes(&random(24, 5));
    for cipher in [Cipher::AesCbcPad, Cipher::AesCtr] {
        let out = encrypt(&key, cipher, None, &[], DATA, &mut test_rng(9)).unwrap();
        let iv = out.iv.clone().unwrap();
        assert_eq!(iv.len(), 16);
        assert_eq!(*decrypt(&key, cipher, Some(&iv), &[], &out.ciphertext).unwrap(), DATA);
        // A different generator gives a different IV.
        assert_ne!(encrypt(&key, cipher, None, &[], DATA, &mut test_rng(10)).unwrap().iv, Some(iv));
    }
}

#[test]
fn aes_gcm_against_the_aes_gcm_crate() {
    let aad = b"header";
    for len in [16, 24, 32] {
        let bytes = random(len, len as u64);
        let key = aes(&bytes);
        let out = encrypt(&key, Cipher::AesGcm, Some(&[9; 12]), aad, DATA, &mut test_rng(4)).unwrap();
        let iv = out.iv.clone().unwrap();
        assert_eq!(iv.len(), 12);
        assert_ne!(iv, [9; 12], "the HSM generates GCM IVs");
        assert_eq!(out.ciphertext.len(), DATA.len() + 16);
        let theirs = gcm_crate(&bytes, &iv, aad, &out.ciphertext, false);
        assert_eq!(theirs, DATA, "AES-{} ours -> aes-gcm", len * 8);

        let nonce = random(12, 77);
        let sealed = gcm_crate(&bytes, &nonce, aad, DATA, true);
        assert_eq!(*decrypt(&key, Cipher::AesGcm, Some(&nonce), aad, &sealed).unwrap(), DATA);
    }
}

/// AES-GCM through the `aes-gcm` crate (the independent side for ring's
/// 128/256-bit GCM).
fn gcm_crate(key: &[u8], nonce: &[u8], aad: &[u8], data: &[u8], seal: bool) -> Vec<u8> {
    fn run<C: Aead + aes_gcm::KeyInit>(key: &[u8], nonce: &[u8], payload: Payload<'_, '_>, seal: bool) -> Vec<u8> {
        let cipher = C::new_from_slice(key).unwrap();
        let nonce = nonce.try_into().unwrap();
        if seal { cipher.encrypt(nonce, payload).unwrap() } else { cipher.decrypt(nonce, payload).unwrap() }
    }
    let payload = Payload { msg: data, aad };
    match key.len() {
        16 => run::<aes_gcm::Aes128Gcm>(key, nonce, payload, seal),
        24 => run::<aes_gcm::AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>>(key, nonce, payload, seal),
        _ => run::<aes_gcm::Aes256Gcm>(key, nonce, payload, seal),
    }
}

// ---- RSA signatures ----

/// The test key as the `rsa` crate and ring see it, parsed from our exports.
struct RsaOther {
    private: rsa::PrivateKey,
    public: rsa::PublicKey,
    ring: ring::signature::RsaKeyPair,
    ring_public: Vec<u8>,
}

fn rsa_other() -> RsaOther {
    let (private, public) = rsa_2048();
    let pkcs8 = private.to_wrappable().unwrap();
    let rsa_private = rsa::PrivateKey::from_pkcs8_der(&pkcs8).unwrap();
    let rsa_public = rsa::PublicKey::from_public_key_pem(&public.public_pem().unwrap()).unwrap();
    assert_eq!(rsa_private.to_public_key(), rsa_public);
    RsaOther {
        ring: ring::signature::RsaKeyPair::from_pkcs8(&pkcs8).unwrap(),
        ring_public: rsa_public.to_pkcs1_der().unwrap().into_vec(),
        private: rsa_private,
        public: rsa_public,
    }
}

fn ring_rsa_pkcs1(
    hash: HashAlg,
) -> Option<(&'static ring::signature::RsaParameters, &'static dyn ring::signature::RsaEncoding)> {
    use ring::signature as s;
    match hash {
        HashAlg::Sha256 => Some((&s::RSA_PKCS1_2048_8192_SHA256, &s::RSA_PKCS1_SHA256)),
        HashAlg::Sha384 => Some((&s::RSA_PKCS1_2048_8192_SHA384, &s::RSA_PKCS1_SHA384)),
        HashAlg::Sha512 => Some((&s::RSA_PKCS1_2048_8192_SHA512, &s::RSA_PKCS1_SHA512)),
        HashAlg::Sha1 | HashAlg::Sha224 => None,
    }
}

fn ring_rsa_pss(
    hash: HashAlg,
) -> Option<(&'static ring::signature::RsaParameters, &'static dyn ring::signature::RsaEncoding)> {
    use ring::signature as s;
    match hash {
        HashAlg::Sha256 => Some((&s::RSA_PSS_2048_8192_SHA256, &s::RSA_PSS_SHA256)),
        HashAlg::Sha384 => Some((&s::RSA_PSS_2048_8192_SHA384, &s::RSA_PSS_SHA384)),
        HashAlg::Sha512 => Some((&s::RSA_PSS_2048_8192_SHA512, &s::RSA_PSS_SHA512)),
        HashAlg::Sha1 | HashAlg::Sha224 => None,
    }
}

/// The `rsa` crate's own (non-prehash) entry points for one hash.
fn rsa_crate_checks<D>(hash: HashAlg, other: &RsaOther)
where
    D: sha2::Digest + AssociatedOid + FixedOutputReset,
{
    let (private, public) = rsa_2048();
    let mut rng = test_rng(11);
    let digest = rustcrypto_digest(hash, DATA);

    // PKCS#1 v1.5 is deterministic: ours (ring or rsa, data or digest) equals the rsa crate's.
    let theirs = other.private.pkcs1v15_sign::<D>(DATA).unwrap();
    let mech = SignMech::RsaPkcs1(hash);
    assert_eq!(sign(private, mech, Input::Data(DATA), &mut rng).unwrap(), theirs, "{mech:?} data");
    assert_eq!(sign(private, mech, Input::Digest(&digest), &mut rng).unwrap(), theirs, "{mech:?} digest");
    assert!(verify(public, mech, Input::Data(DATA), &theirs).unwrap());
    assert!(verify(public, mech, Input::Digest(&digest), &theirs).unwrap());
    assert!(!verify(public, mech, Input::Data(b"other"), &theirs).unwrap());
    other.public.pkcs1v15_verify::<D>(DATA, &sign(private, mech, Input::Data(DATA), &mut rng).unwrap()).unwrap();

    // PSS is randomised: each side verifies the other's.
    let mech = SignMech::RsaPss(hash);
    for input in [Input::Data(DATA), Input::Digest(&digest)] {
        let ours = sign(private, mech, input, &mut rng).unwrap();
        other.public.pss_verify::<D>(DATA, &ours).unwrap_or_else(|e| panic!("{mech:?} {input:?}: {e}"));
    }
    let theirs =
        other.private.pss_sign_with_rng::<D, _>(&mut rand_chacha::ChaCha20Rng::from_seed([1; 32]), DATA).unwrap();
    assert!(verify(public, mech, Input::Data(DATA), &theirs).unwrap());
    assert!(verify(public, mech, Input::Digest(&digest), &theirs).unwrap());
    assert!(!verify(public, mech, Input::Data(b"other"), &theirs).unwrap());
}

#[test]
fn rsa_signatures_against_the_rsa_crate() {
    let other = rsa_other();
    rsa_crate_checks::<sha1::Sha1>(HashAlg::Sha1, &other);
    rsa_crate_checks::<sha2::Sha224>(HashAlg::Sha224, &other);
    rsa_crate_checks::<sha2::Sha256>(HashAlg::Sha256, &other);
    rsa_crate_checks::<sha2::Sha384>(HashAlg::Sha384, &other);
    rsa_crate_checks::<sha2::Sha512>(HashAlg::Sha512, &other);
}

#[test]
fn rsa_signatures_against_ring() {
    let (private, public) = rsa_2048();
    let other = rsa_other();
    let system = ring::rand::SystemRandom::new();
    let mut rng = test_rng(12);
    for hash in HASHES {
        let digest = rustcrypto_digest(hash, DATA);
        for (mech, ring_algs) in
            [(SignMech::RsaPkcs1(hash), ring_rsa_pkcs1(hash)), (SignMech::RsaPss(hash), ring_rsa_pss(hash))]
        {
            let Some((verify_alg, sign_alg)) = ring_algs else { continue };
            // The rsa-crate path (a digest) checked by ring, and ring's signature checked by that path.
            let ours = sign(private, mech, Input::Digest(&digest), &mut rng).unwrap();
            ring::signature::UnparsedPublicKey::new(verify_alg, &other.ring_public).verify(DATA, &ours).unwrap();
            let mut theirs = vec![0; other.ring.public().modulus_len()];
            other.ring.sign(sign_alg, &system, DATA, &mut theirs).unwrap();
            assert!(verify(public, mech, Input::Digest(&digest), &theirs).unwrap(), "{mech:?}");
        }
    }
    // SHA-1 PKCS#1 v1.5 (the rsa crate here) against ring's legacy verifier.
    let ours = sign(private, SignMech::RsaPkcs1(HashAlg::Sha1), Input::Data(DATA), &mut rng).unwrap();
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        &other.ring_public,
    )
    .verify(DATA, &ours)
    .unwrap();
}

// ---- RSA encryption ----

fn rsa_crate_oaep<D>(hash: HashAlg, other: &RsaOther)
where
    D: sha2::Digest + FixedOutputReset + Send + Sync,
{
    let (private, public) = rsa_2048();
    let mut rng = test_rng(13);
    for plaintext in [&b""[..], b"k", DATA] {
        let ours = encrypt(public, Cipher::RsaOaep(hash), None, &[], plaintext, &mut rng).unwrap();
        assert_eq!((ours.iv, ours.ciphertext.len()), (None, 256));
        assert_eq!(other.private.oaep_decrypt::<D>(&ours.ciphertext).unwrap(), plaintext, "{hash:?}");
        let theirs = other
            .public
            .oaep_encrypt_with_rng::<D, _>(&mut rand_chacha::ChaCha20Rng::from_seed([2; 32]), plaintext)
            .unwrap();
        assert_eq!(*decrypt(private, Cipher::RsaOaep(hash), None, &[], &theirs).unwrap(), plaintext, "{hash:?}");

        // Wrapping is the same OAEP.
        let wrapped = wrap(public, WrapMech::RsaOaep(hash), &[], DATA, &mut rng).unwrap();
        assert_eq!(other.private.oaep_decrypt::<D>(&wrapped).unwrap(), DATA);
        let theirs = other
            .public
            .oaep_encrypt_with_rng::<D, _>(&mut rand_chacha::ChaCha20Rng::from_seed([3; 32]), DATA)
            .unwrap();
        assert_eq!(*unwrap(private, WrapMech::RsaOaep(hash), &[], &theirs).unwrap(), DATA);
    }
}

#[test]
fn rsa_encryption_against_the_rsa_crate() {
    let other = rsa_other();
    rsa_crate_oaep::<sha1::Sha1>(HashAlg::Sha1, &other);
    rsa_crate_oaep::<sha2::Sha224>(HashAlg::Sha224, &other);
    rsa_crate_oaep::<sha2::Sha256>(HashAlg::Sha256, &other);
    rsa_crate_oaep::<sha2::Sha384>(HashAlg::Sha384, &other);
    rsa_crate_oaep::<sha2::Sha512>(HashAlg::Sha512, &other);

    let (private, public) = rsa_2048();
    let mut rng = test_rng(14);
    let ours = encrypt(public, Cipher::RsaPkcs1, None, &[], DATA, &mut rng).unwrap();
    assert_eq!(other.private.pkcs1v15_decrypt(&ours.ciphertext).unwrap(), DATA);
    let theirs =
        other.public.pkcs1v15_encrypt_with_rng(&mut rand_chacha::ChaCha20Rng::from_seed([4; 32]), DATA).unwrap();
    assert_eq!(*decrypt(private, Cipher::RsaPkcs1, None, &[], &theirs).unwrap(), DATA);
    // A private key encrypts with its public half.
    let ours = encrypt(private, Cipher::RsaPkcs1, None, &[], DATA, &mut rng).unwrap();
    assert_eq!(other.private.pkcs1v15_decrypt(&ours.ciphertext).unwrap(), DATA);
}

// ---- raw RSA ----

/// RFC 8017 section 9.2, note 1: the DER DigestInfo prefix of a SHA-256 digest.
const SHA256_DIGEST_INFO: &str = "3031300d060960864801650304020105000420";

/// The test key's modulus and public exponent as `num-bigint` integers, which
/// share no code with the `rsa` crate.
fn rsa_numbers(public: &KeyMaterial) -> (num_bigint::BigUint, num_bigint::BigUint) {
    let (n, _) = public.modulus().unwrap();
    let e = public.public_exponent().unwrap();
    (num_bigint::BigUint::from_bytes_be(&n), num_bigint::BigUint::from(e))
}

/// `x^e mod n`, `k` bytes big-endian.
fn pow_public(x: &[u8], e: &num_bigint::BigUint, n: &num_bigint::BigUint, k: usize) -> Vec<u8> {
    let y = num_bigint::BigUint::from_bytes_be(x).modpow(e, n).to_bytes_be();
    [vec![0; k - y.len()], y].concat()
}

/// EMSA-PKCS1-v1_5 type 1: `00 01 FF.. 00 data`, `k` bytes.
fn type1_padded(data: &[u8], k: usize) -> Vec<u8> {
    [&[0, 1][..], &vec![0xff; k - 3 - data.len()], &[0], data].concat()
}

#[test]
fn raw_pkcs1_of_a_digest_info_verifies_with_ring() {
    let (private, public) = rsa_2048();
    let other = rsa_other();
    let mut rng = test_rng(30);
    let digest_info = [hex(SHA256_DIGEST_INFO), rustcrypto_digest(HashAlg::Sha256, DATA)].concat();

    let ours = sign(private, SignMech::RsaPkcs1Raw, Input::Data(&digest_info), &mut rng).unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &other.ring_public)
        .verify(DATA, &ours)
        .unwrap();
    // The hashed mechanism's signature, byte for byte.
    assert_eq!(ours, sign(private, SignMech::RsaPkcs1(HashAlg::Sha256), Input::Data(DATA), &mut rng).unwrap());
    // ring's signature verifies raw over the DigestInfo, and not over other data.
    let mut theirs = vec![0; other.ring.public().modulus_len()];
    other.ring.sign(&ring::signature::RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), DATA, &mut theirs).unwrap();
    assert!(verify(public, SignMech::RsaPkcs1Raw, Input::Data(&digest_info), &theirs).unwrap());
    assert!(!verify(public, SignMech::RsaPkcs1Raw, Input::Data(&digest_info[1..]), &theirs).unwrap());
}

#[test]
fn raw_pkcs1_pads_the_data_as_given() {
    let (private, public) = rsa_2048();
    let (n, e) = rsa_numbers(public);
    let mut rng = test_rng(31);
    // TLS 1.2's MD5 || SHA-1 (36 bytes), and the longest data, k - 11.
    for data in [random(36, 32), random(245, 33), Vec::new()] {
        let signature = sign(private, SignMech::RsaPkcs1Raw, Input::Data(&data), &mut rng).unwrap();
        assert_eq!(signature.len(), 256);
        assert_eq!(pow_public(&signature, &e, &n, 256), type1_padded(&data, 256), "{} bytes", data.len());
        assert!(verify(public, SignMech::RsaPkcs1Raw, Input::Data(&data), &signature).unwrap());
        assert!(!verify(public, SignMech::RsaPkcs1Raw, Input::Data(&random(36, 34)), &signature).unwrap());
    }
}

#[test]
fn raw_rsa_is_the_modular_exponentiation() {
    let (private, public) = rsa_2048();
    let (n, e) = rsa_numbers(public);
    let mut rng = test_rng(35);
    let (n_bytes, _) = public.modulus().unwrap();
    // Full length just below n, shorter data, a single byte, and zero.
    let mut below_n = n_bytes.clone();
    below_n[255] -= 1;
    for data in [below_n, random(255, 36), vec![1], vec![0; 256]] {
        let padded = [vec![0; 256 - data.len()], data.clone()].concat();

        // Sign: the public operation gives the data back.
        let signature = sign(private, SignMech::RsaX509, Input::Data(&data), &mut rng).unwrap();
        assert_eq!(signature.len(), 256);
        assert_eq!(pow_public(&signature, &e, &n, 256), padded, "{} bytes", data.len());
        assert!(verify(public, SignMech::RsaX509, Input::Data(&data), &signature).unwrap());
        assert!(verify(public, SignMech::RsaX509, Input::Data(&padded), &signature).unwrap());

        // Encrypt is `m^e mod n`; decrypt undoes it, k bytes with leading zeros kept.
        let ours = encrypt(public, Cipher::RsaX509, None, &[], &data, &mut rng).unwrap();
        assert_eq!((ours.iv, &ours.ciphertext), (None, &pow_public(&data, &e, &n, 256)));
        assert_eq!(*decrypt(private, Cipher::RsaX509, None, &[], &ours.ciphertext).unwrap(), padded);
    }
    let other_data = [&[1][..], &random(200, 37)].concat();
    let signature = sign(private, SignMech::RsaX509, Input::Data(&other_data), &mut rng).unwrap();
    assert!(!verify(public, SignMech::RsaX509, Input::Data(&other_data[1..]), &signature).unwrap());
}

#[test]
fn raw_rsa_against_the_rsa_crate_and_ring() {
    let (private, public) = rsa_2048();
    let other = rsa_other();
    let mut rng = test_rng(38);
    // Raw decryption of a PKCS#1 v1.5 ciphertext shows its type-2 block.
    let theirs =
        other.public.pkcs1v15_encrypt_with_rng(&mut rand_chacha::ChaCha20Rng::from_seed([5; 32]), DATA).unwrap();
    let block = decrypt(private, Cipher::RsaX509, None, &[], &theirs).unwrap();
    assert_eq!((block.len(), &block[..2]), (256, &[0, 2][..]));
    assert!(block.ends_with(&[&[0][..], DATA].concat()));
    // A type-2 block encrypted raw is a PKCS#1 v1.5 ciphertext.
    let ours = encrypt(public, Cipher::RsaX509, None, &[], &block, &mut rng).unwrap();
    assert_eq!(other.private.pkcs1v15_decrypt(&ours.ciphertext).unwrap(), DATA);
    // A signature block signed raw is a PKCS#1 v1.5 signature.
    let digest_info = [hex(SHA256_DIGEST_INFO), rustcrypto_digest(HashAlg::Sha256, DATA)].concat();
    let ours = sign(private, SignMech::RsaX509, Input::Data(&type1_padded(&digest_info, 256)), &mut rng).unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &other.ring_public)
        .verify(DATA, &ours)
        .unwrap();
}

// ---- unpadded AES-CBC ----

#[test]
fn aes_cbc_matches_sp_800_38a_and_the_aes_crate() {
    use aes::cipher::{BlockCipherEncrypt as _, KeyInit as _};
    let mut rng = test_rng(40);
    // F.2.1 CBC-AES128.
    let key = aes(&hex(SP800_38A_KEY));
    let plaintext = hex(SP800_38A_PLAINTEXT);
    let iv = hex("000102030405060708090a0b0c0d0e0f");
    let cbc = hex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2\
         73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7");
    let out = encrypt(&key, Cipher::AesCbc, Some(&iv), &[], &plaintext, &mut rng).unwrap();
    assert_eq!((out.iv.as_deref(), &out.ciphertext), (Some(iv.as_slice()), &cbc));
    assert_eq!(*decrypt(&key, Cipher::AesCbc, Some(&iv), &[], &cbc).unwrap(), plaintext);

    // AES-192 and AES-256, chained block by block with the `aes` crate.
    for (len, seed) in [(24, 41), (32, 42)] {
        let key_bytes = random(len, seed);
        let plaintext = random(80, seed + 10);
        let out = encrypt(&aes(&key_bytes), Cipher::AesCbc, None, &[], &plaintext, &mut rng).unwrap();
        let iv = out.iv.clone().unwrap();
        let mut previous: [u8; 16] = iv.clone().try_into().unwrap();
        let mut expected = Vec::new();
        for chunk in plaintext.chunks(16) {
            let mut block = aes::Block::default();
            for (b, (p, c)) in block.iter_mut().zip(chunk.iter().zip(previous)) {
                *b = p ^ c;
            }
            match len {
                24 => aes::Aes192::new_from_slice(&key_bytes).unwrap().encrypt_block(&mut block),
                _ => aes::Aes256::new_from_slice(&key_bytes).unwrap().encrypt_block(&mut block),
            }
            previous = block.into();
            expected.extend_from_slice(&previous);
        }
        assert_eq!(out.ciphertext, expected, "AES-{}", len * 8);
        assert_eq!(*decrypt(&aes(&key_bytes), Cipher::AesCbc, Some(&iv), &[], &expected).unwrap(), plaintext);
    }
    // No padding: no data, no ciphertext.
    assert!(encrypt(&key, Cipher::AesCbc, Some(&iv), &[], &[], &mut rng).unwrap().ciphertext.is_empty());
}

// ---- ECDSA ----

/// ECDSA on one curve against its RustCrypto crate used directly: our
/// signatures (data and digest) verify there, its signatures verify here,
/// and where we sign through RustCrypto the RFC 6979 signatures are equal.
macro_rules! ecdsa_against_rustcrypto {
    ($name:ident, $m:ident, $curve:expr) => {
        #[test]
        fn $name() {
            use $m::ecdsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
            use $m::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _};

            let curve = $curve;
            let (private, public) = KeyMaterial::generate_ec(curve, &mut test_rng(20)).unwrap();
            let sk = $m::ecdsa::SigningKey::from_pkcs8_der(&private.to_wrappable().unwrap()).unwrap();
            let vk = $m::ecdsa::VerifyingKey::from_public_key_pem(&public.public_pem().unwrap()).unwrap();
            assert_eq!(&vk, sk.verifying_key());
            let mut rng = test_rng(21);
            for hash in HASHES {
                let mech = SignMech::Ecdsa(hash);
                let digest = rustcrypto_digest(hash, DATA);
                let ring_path = matches!((curve, hash), (Curve::P256, HashAlg::Sha256) | (Curve::P384, HashAlg::Sha384));
                for input in [Input::Data(DATA), Input::Digest(&digest)] {
                    let ours = sign(&private, mech, input, &mut rng).unwrap();
                    assert_eq!(ours.len(), 2 * sk.to_bytes().len(), "{curve:?} {mech:?}: r || s");
                    let signature = $m::ecdsa::Signature::from_slice(&ours).unwrap();
                    vk.verify_prehash(&digest, &signature).unwrap_or_else(|e| panic!("{curve:?} {mech:?} {input:?}: {e}"));
                    let theirs: $m::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
                    if !(ring_path && matches!(input, Input::Data(_))) {
                        assert_eq!(ours, theirs.to_bytes().to_vec(), "{curve:?} {mech:?} {input:?}: RFC 6979");
                    }
                }
                let theirs: $m::ecdsa::Signature = sk.sign_prehash(&digest).unwrap();
                let theirs = theirs.to_bytes().to_vec();
                for key in [&public, &private] {
                    assert!(verify(key, mech, Input::Data(DATA), &theirs).unwrap(), "{curve:?} {mech:?}");
                    assert!(verify(key, mech, Input::Digest(&digest), &theirs).unwrap(), "{curve:?} {mech:?}");
                    assert!(!verify(key, mech, Input::Data(b"other"), &theirs).unwrap());
                    assert!(!verify(key, mech, Input::Data(DATA), &theirs[1..]).unwrap(), "malformed is false");
                }
            }
        }
    };
}

ecdsa_against_rustcrypto!(ecdsa_p224_against_rustcrypto, p224, Curve::P224);
ecdsa_against_rustcrypto!(ecdsa_p256_against_rustcrypto, p256, Curve::P256);
ecdsa_against_rustcrypto!(ecdsa_p384_against_rustcrypto, p384, Curve::P384);
ecdsa_against_rustcrypto!(ecdsa_p521_against_rustcrypto, p521, Curve::P521);
ecdsa_against_rustcrypto!(ecdsa_secp256k1_against_rustcrypto, k256, Curve::Secp256k1);

/// P-256 and P-384 against ring for every hash ring verifies: the fixed
/// `r || s` forms for the hash ring pairs with each curve, and the ASN.1
/// forms for the crossed pairs.
#[test]
fn ecdsa_p256_p384_against_ring() {
    use ring::signature as s;
    let system = ring::rand::SystemRandom::new();
    let cases: [(Curve, HashAlg, &'static s::EcdsaVerificationAlgorithm, bool); 4] = [
        (Curve::P256, HashAlg::Sha256, &s::ECDSA_P256_SHA256_FIXED, true),
        (Curve::P256, HashAlg::Sha384, &s::ECDSA_P256_SHA384_ASN1, false),
        (Curve::P384, HashAlg::Sha384, &s::ECDSA_P384_SHA384_FIXED, true),
        (Curve::P384, HashAlg::Sha256, &s::ECDSA_P384_SHA256_ASN1, false),
    ];
    let mut rng = test_rng(22);
    for (curve, hash, ring_verify, fixed) in cases {
        let (private, public) = KeyMaterial::generate_ec(curve, &mut test_rng(23)).unwrap();
        let point = public.ec_point().unwrap();
        let digest = rustcrypto_digest(hash, DATA);
        let mech = SignMech::Ecdsa(hash);
        for input in [Input::Data(DATA), Input::Digest(&digest)] {
            let ours = sign(&private, mech, input, &mut rng).unwrap();
            let encoded = if fixed { ours } else { to_asn1(curve, &ours) };
            s::UnparsedPublicKey::new(ring_verify, &point)
                .verify(DATA, &encoded)
                .unwrap_or_else(|_| panic!("{curve:?} {mech:?} {input:?}"));
        }
        if fixed {
            // ring signs; our RustCrypto path (a digest) verifies.
            let signing = if curve == Curve::P256 {
                &s::ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &s::ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let pair = s::EcdsaKeyPair::from_pkcs8(signing, &private.to_wrappable().unwrap(), &system).unwrap();
            let theirs = pair.sign(&system, DATA).unwrap();
            assert!(verify(&public, mech, Input::Digest(&digest), theirs.as_ref()).unwrap());
            assert!(verify(&public, mech, Input::Data(DATA), theirs.as_ref()).unwrap());
        }
    }
}

fn to_asn1(curve: Curve, fixed: &[u8]) -> Vec<u8> {
    match curve {
        Curve::P256 => p256::ecdsa::Signature::from_slice(fixed).unwrap().to_der().as_bytes().to_vec(),
        Curve::P384 => p384::ecdsa::Signature::from_slice(fixed).unwrap().to_der().as_bytes().to_vec(),
        Curve::P224 | Curve::P521 | Curve::Secp256k1 => unreachable!("ring verifies P-256 and P-384 only"),
    }
}

#[test]
fn secp256k1_accepts_high_s() {
    // k256 signs low-S; ECDSA also accepts (r, n - s), as Wycheproof and CloudHSM do.
    let (private, public) = KeyMaterial::generate_ec(Curve::Secp256k1, &mut test_rng(24)).unwrap();
    let mech = SignMech::Ecdsa(HashAlg::Sha256);
    let low = sign(&private, mech, Input::Data(DATA), &mut test_rng(0)).unwrap();
    let low = k256::ecdsa::Signature::from_slice(&low).unwrap();
    let (r, s) = low.split_scalars();
    let high = k256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
    assert!(high.normalize_s() == low && high != low);
    assert!(verify(&public, mech, Input::Data(DATA), &high.to_bytes()).unwrap());
}

// ---- Ed25519 ----

#[test]
fn ed25519_matches_rfc_8032_and_dalek() {
    // RFC 8032 §7.1 TEST 1 (the seed is the first 32 bytes the generator gives).
    let seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    let (private, public) = KeyMaterial::generate_ed25519(&mut FixedRng::new(&seed)).unwrap();
    let pk = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    assert_eq!(public.ec_point().unwrap(), pk);
    let expected = hex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    );
    assert_eq!(sign(&private, SignMech::Ed25519, Input::Data(b""), &mut test_rng(0)).unwrap(), expected);
    assert!(verify(&public, SignMech::Ed25519, Input::Data(b""), &expected).unwrap());

    // RFC 8410 encodings: PKCS#8 v1 around the seed, SPKI around the key.
    let pkcs8 = private.to_wrappable().unwrap();
    assert_eq!(*pkcs8, [hex("302e020100300506032b657004220420"), seed.clone()].concat());
    assert_eq!(*public.to_wrappable().unwrap(), [hex("302a300506032b6570032100"), pk.clone()].concat());
    ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).unwrap();

    // ed25519-dalek both ways.
    let dalek = ed25519_dalek::SigningKey::from_bytes(&seed.clone().try_into().unwrap());
    let ours = sign(&private, SignMech::Ed25519, Input::Data(DATA), &mut test_rng(0)).unwrap();
    let signature = ed25519_dalek::Signature::from_slice(&ours).unwrap();
    dalek.verifying_key().verify_strict(DATA, &signature).unwrap();
    let theirs = dalek.sign(DATA).to_bytes();
    assert_eq!(ours, theirs);
    let (other, _) = KeyMaterial::generate_ed25519(&mut test_rng(25)).unwrap();
    let dalek_public = ed25519_dalek::VerifyingKey::from_bytes(&other.ec_point().unwrap().try_into().unwrap()).unwrap();
    let ours = sign(&other, SignMech::Ed25519, Input::Data(DATA), &mut test_rng(0)).unwrap();
    dalek_public.verify_strict(DATA, &ed25519_dalek::Signature::from_slice(&ours).unwrap()).unwrap();
    assert!(!verify(&other, SignMech::Ed25519, Input::Data(DATA), &theirs).unwrap());
}

#[test]
fn ed25519ph_matches_rfc_8032() {
    // RFC 8032 §7.3 TEST abc: Ed25519ph, empty context.
    let seed = hex("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42");
    let (private, public) = KeyMaterial::generate_ed25519(&mut FixedRng::new(&seed)).unwrap();
    assert_eq!(public.ec_point().unwrap(), hex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf"));
    let expected = hex(
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae4131f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406",
    );
    let mech = SignMech::Ed25519ph;
    assert_eq!(sign(&private, mech, Input::Data(b"abc"), &mut test_rng(0)).unwrap(), expected);
    // The same signature from the SHA-512 digest (computed by RustCrypto, not ring).
    let prehash = sha2::Sha512::digest(b"abc").to_vec();
    assert_eq!(sign(&private, mech, Input::Digest(&prehash), &mut test_rng(0)).unwrap(), expected);
    for (key, input) in
        [(&public, Input::Data(b"abc")), (&private, Input::Data(b"abc")), (&public, Input::Digest(&prehash))]
    {
        assert!(verify(key, mech, input, &expected).unwrap());
    }
    let mut tampered = expected.clone();
    tampered[10] ^= 1;
    assert!(!verify(&public, mech, Input::Data(b"abc"), &tampered).unwrap());
    assert!(!verify(&public, mech, Input::Data(b"abd"), &expected).unwrap());

    // RFC 8032's domain separation: pure and prehashed signatures never cross.
    let pure = sign(&private, SignMech::Ed25519, Input::Data(b"abc"), &mut test_rng(0)).unwrap();
    assert!(!verify(&public, mech, Input::Data(b"abc"), &pure).unwrap());
    assert!(!verify(&public, SignMech::Ed25519, Input::Data(b"abc"), &expected).unwrap());
    // Nor is Ed25519ph pure Ed25519 over the digest.
    assert!(!verify(&public, SignMech::Ed25519, Input::Data(&prehash), &expected).unwrap());
}

// ---- AES key wrap ----

#[test]
fn aes_key_wrap_matches_rfc_3394_and_5649() {
    let mut rng = test_rng(0);
    // RFC 3394 §4.1 and §4.6.
    let cases = [
        (
            "000102030405060708090a0b0c0d0e0f",
            "00112233445566778899aabbccddeeff",
            "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5",
        ),
        (
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
            "00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f",
            "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21",
        ),
    ];
    for (kek, key, wrapped) in cases {
        let kek = aes(&hex(kek));
        assert_eq!(wrap(&kek, WrapMech::AesKeyWrap, &[], &hex(key), &mut rng).unwrap(), hex(wrapped));
        assert_eq!(*unwrap(&kek, WrapMech::AesKeyWrap, &[], &hex(wrapped)).unwrap(), hex(key));
    }
    // RFC 5649 §6.
    let kek = aes(&hex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8"));
    let cases = [
        (
            "c37b7e6492584340bed12207808941155068f738",
            "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
        ),
        ("466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"),
    ];
    for (key, wrapped) in cases {
        assert_eq!(wrap(&kek, WrapMech::AesKeyWrapPad, &[], &hex(key), &mut rng).unwrap(), hex(wrapped));
        assert_eq!(*unwrap(&kek, WrapMech::AesKeyWrapPad, &[], &hex(wrapped)).unwrap(), hex(key));
    }
}

#[test]
fn aes_key_wrap_against_the_aes_kw_crate() {
    use aes_kw::KeyInit as _;
    let mut rng = test_rng(30);
    let kek_bytes = random(32, 31);
    let kek = aes(&kek_bytes);
    let kw = aes_kw::KwAes256::new_from_slice(&kek_bytes).unwrap();
    let kwp = aes_kw::KwpAes256::new_from_slice(&kek_bytes).unwrap();
    for len in [16, 24, 32, 40] {
        let key = random(len, len as u64);
        let ours = wrap(&kek, WrapMech::AesKeyWrap, &[], &key, &mut rng).unwrap();
        let mut buf = vec![0; len];
        assert_eq!(kw.unwrap_key(&ours, &mut buf).unwrap(), key);
        let mut theirs = vec![0; len + 8];
        kw.wrap_key(&key, &mut theirs).unwrap();
        assert_eq!(*unwrap(&kek, WrapMech::AesKeyWrap, &[], &theirs).unwrap(), key);
    }
    for len in [1, 7, 8, 9, 20, 1000] {
        let key = random(len, len as u64);
        let ours = wrap(&kek, WrapMech::AesKeyWrapPad, &[], &key, &mut rng).unwrap();
        let mut buf = vec![0; ours.len() - 8];
        assert_eq!(kwp.unwrap_key(&ours, &mut buf).unwrap(), key);
        let mut theirs = vec![0; len.div_ceil(8) * 8 + 8];
        let theirs = kwp.wrap_key(&key, &mut theirs).unwrap();
        assert_eq!(*unwrap(&kek, WrapMech::AesKeyWrapPad, &[], theirs).unwrap(), key);
    }
}

#[test]
fn aes_gcm_wrap_against_the_aes_gcm_crate() {
    let mut rng = test_rng(32);
    for len in [16, 24, 32] {
        let kek_bytes = random(len, 33);
        let kek = aes(&kek_bytes);
        let key = random(48, 34);
        let ours = wrap(&kek, WrapMech::AesGcm(GcmTagLen::FULL), &[], &key, &mut rng).unwrap();
        assert_eq!(ours.len(), 12 + 48 + 16);
        assert_eq!(gcm_crate(&kek_bytes, &ours[..12], &[], &ours[12..], false), key);
        let nonce = random(12, 35);
        let theirs = [nonce.clone(), gcm_crate(&kek_bytes, &nonce, &[], &key, true)].concat();
        assert_eq!(*unwrap(&kek, WrapMech::AesGcm(GcmTagLen::FULL), &[], &theirs).unwrap(), key);
    }
}

#[test]
fn aes_gcm_wrap_with_short_tags_and_aad_is_rings_gcm_cut_short() {
    let mut rng = test_rng(36);
    let (kek_bytes, key, aad) = (random(32, 37), random(32, 38), b"header".to_vec());
    let kek = aes(&kek_bytes);
    for bits in GcmTagLen::ALLOWED_BITS {
        let tag = GcmTagLen::from_bits(bits).unwrap();
        let ours = wrap(&kek, WrapMech::AesGcm(tag), &aad, &key, &mut rng).unwrap();
        assert_eq!(ours.len(), 12 + 32 + tag.bytes(), "{bits}-bit tag");
        // ring (full tags only): the same ciphertext, and our tag is the
        // first bytes of its tag.
        let full = gcm_crate(&kek_bytes, &ours[..12], &aad, &key, true);
        assert_eq!(ours[12..], full[..32 + tag.bytes()], "{bits}-bit tag");
        assert_eq!(*unwrap(&kek, WrapMech::AesGcm(tag), &aad, &ours).unwrap(), key);
        assert!(matches!(unwrap(&kek, WrapMech::AesGcm(tag), b"other", &ours), Err(CryptoError::Authentication(_))));
        assert!(matches!(unwrap(&kek, WrapMech::AesGcm(tag), &[], &ours), Err(CryptoError::Authentication(_))));
    }
    let short = wrap(&kek, WrapMech::AesGcm(GcmTagLen::from_bits(64).unwrap()), &aad, &key, &mut rng).unwrap();
    let as_96 = WrapMech::AesGcm(GcmTagLen::from_bits(96).unwrap());
    assert!(matches!(unwrap(&kek, as_96, &aad, &short), Err(CryptoError::Authentication(_))));
    for bits in [0, 8, 32, 63, 100, 136, 256] {
        assert!(
            matches!(GcmTagLen::from_bits(bits), Err(CryptoError::InvalidArgument { field: "tag_length_bits", .. })),
            "{bits}"
        );
    }
    let refused = wrap(&kek, WrapMech::AesKeyWrapPad, b"aad", &key, &mut rng);
    assert!(matches!(refused, Err(CryptoError::InvalidArgument { field: "aad", .. })), "{refused:?}");
}

#[test]
fn aes_key_wrap_with_pkcs5_padding_is_rfc_3394_of_the_padded_key() {
    let mut rng = test_rng(39);
    // OpenSSL: `openssl enc -id-aes256-wrap -K 0001..1f -iv A6A6A6A6A6A6A6A6`
    // of the key with its PKCS #5 padding added by hand.
    let kek = aes(&hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"));
    let cases = [
        (
            "00112233445566778899aabbccddeeff01020304",
            "95b417317df5f95102a56fbf932410630d15031389c93bef261bf4e9196cff1e",
        ),
        ("00112233445566778899aabbccddeeff", "3426b13862b5bf25adf3f8c8f74b35f81829224d8e746eb7c5dabac1d472e214"),
    ];
    for (key, wrapped) in cases {
        assert_eq!(wrap(&kek, WrapMech::AesKeyWrapPkcs5, &[], &hex(key), &mut rng).unwrap(), hex(wrapped));
        assert_eq!(*unwrap(&kek, WrapMech::AesKeyWrapPkcs5, &[], &hex(wrapped)).unwrap(), hex(key));
    }
    // RFC 3394 output whose plaintext is not PKCS #5 padded is refused.
    let unpadded = wrap(&kek, WrapMech::AesKeyWrap, &[], &[9; 24], &mut rng).unwrap();
    assert!(matches!(unwrap(&kek, WrapMech::AesKeyWrapPkcs5, &[], &unpadded), Err(CryptoError::Authentication(_))));
}

#[test]
fn rsa_pkcs1_wrap_against_the_rsa_crate() {
    let (private, public) = rsa_2048();
    let other = rsa_other();
    let key = random(32, 42);
    let mut rng = test_rng(43);
    let ours = wrap(public, WrapMech::RsaPkcs1, &[], &key, &mut rng).unwrap();
    assert_eq!(ours.len(), 256);
    assert_eq!(other.private.pkcs1v15_decrypt(&ours).unwrap(), key);
    let theirs =
        other.public.pkcs1v15_encrypt_with_rng(&mut rand_chacha::ChaCha20Rng::from_seed([6; 32]), &key).unwrap();
    assert_eq!(*unwrap(private, WrapMech::RsaPkcs1, &[], &theirs).unwrap(), key);
}

#[test]
fn ec_private_keys_unwrap_on_the_curve_their_encoding_names() {
    let mut rng = test_rng(45);
    for curve in [Curve::P224, Curve::P256, Curve::P384, Curve::P521, Curve::Secp256k1] {
        let (private, _) = KeyMaterial::generate_ec(curve, &mut rng).unwrap();
        let pkcs8 = private.to_wrappable().unwrap();
        let back = KeyMaterial::from_wrapped_ec_private(&pkcs8).unwrap();
        assert_eq!((back.kind(), back.class()), (KeyKind::Ec(curve), KeyClass::Private), "{curve:?}");
        assert_eq!(back.to_wrappable().unwrap(), pkcs8);
    }
    // SEC1 with its curve parameters, as OpenSSL writes `EC PRIVATE KEY`.
    let sec1 = p384::SecretKey::from_slice(&[7; 48]).unwrap().to_sec1_der().unwrap();
    let back = KeyMaterial::from_wrapped_ec_private(&sec1).unwrap();
    assert_eq!(back.kind(), KeyKind::Ec(Curve::P384));
    // Other keys are not EC private keys.
    let (rsa_private, _) = rsa_2048();
    assert!(KeyMaterial::from_wrapped_ec_private(&rsa_private.to_wrappable().unwrap()).is_err());
    assert!(KeyMaterial::from_wrapped_ec_private(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
}

#[test]
fn rsa_aes_wrap_against_the_rsa_and_aes_kw_crates() {
    use aes_kw::KeyInit as _;
    let (private, public) = rsa_2048();
    let other = rsa_other();
    let key = random(100, 40);
    let mut rng = test_rng(41);
    for hash in [HashAlg::Sha1, HashAlg::Sha256] {
        let ours = wrap(public, WrapMech::RsaAes(hash), &[], &key, &mut rng).unwrap();
        let (head, tail) = ours.split_at(256);
        let ephemeral = match hash {
            HashAlg::Sha1 => other.private.oaep_decrypt::<sha1::Sha1>(head).unwrap(),
            HashAlg::Sha256 => other.private.oaep_decrypt::<sha2::Sha256>(head).unwrap(),
            HashAlg::Sha224 | HashAlg::Sha384 | HashAlg::Sha512 => {
                unreachable!("the loop wraps with SHA-1 and SHA-256")
            }
        };
        assert_eq!(ephemeral.len(), 32, "AES-256 ephemeral key");
        let mut buf = vec![0; tail.len() - 8];
        let kwp = aes_kw::KwpAes256::new_from_slice(&ephemeral).unwrap();
        assert_eq!(kwp.unwrap_key(tail, &mut buf).unwrap(), key);
    }
    // Made independently, with an AES-128 ephemeral key as another implementation may pick.
    let ephemeral = random(16, 42);
    let head = other
        .public
        .oaep_encrypt_with_rng::<sha2::Sha256, _>(&mut rand_chacha::ChaCha20Rng::from_seed([5; 32]), &ephemeral)
        .unwrap();
    let mut tail = vec![0; key.len().div_ceil(8) * 8 + 8];
    aes_kw::KwpAes128::new_from_slice(&ephemeral).unwrap().wrap_key(&key, &mut tail).unwrap();
    let theirs = [head, tail].concat();
    assert_eq!(*unwrap(private, WrapMech::RsaAes(HashAlg::Sha256), &[], &theirs).unwrap(), key);
}

// ---- keys: import, export, attributes ----

#[test]
fn keys_round_trip_through_wrapping() {
    let mut rng = test_rng(50);
    let kek = KeyMaterial::generate_aes(256, &mut rng).unwrap();
    let (rsa_private, rsa_public) = rsa_2048();
    let mut keys = vec![
        KeyMaterial::generate_aes(128, &mut rng).unwrap(),
        KeyMaterial::generate_generic_secret(33, &mut rng).unwrap(),
        rsa_private.public_half().unwrap(),
    ];
    for curve in CURVES {
        let (private, public) = KeyMaterial::generate_ec(curve, &mut rng).unwrap();
        keys.extend([private, public]);
    }
    let (private, public) = KeyMaterial::generate_ed25519(&mut rng).unwrap();
    keys.extend([private, public]);
    let rsa_bytes = rsa_private.to_wrappable().unwrap();
    let rsa_copy = KeyMaterial::from_wrappable(KeyKind::Rsa, KeyClass::Private, &rsa_bytes).unwrap();
    assert_eq!(rsa_copy.modulus(), rsa_public.modulus());
    for key in &keys {
        let bytes = key.to_wrappable().unwrap();
        let wrapped = wrap(&kek, WrapMech::AesKeyWrapPad, &[], &bytes, &mut rng).unwrap();
        let unwrapped = unwrap(&kek, WrapMech::AesKeyWrapPad, &[], &wrapped).unwrap();
        let copy = KeyMaterial::from_wrappable(key.kind(), key.class(), &unwrapped).unwrap();
        assert_eq!((copy.kind(), copy.class()), (key.kind(), key.class()));
        assert_eq!(copy.check_value(), key.check_value(), "{:?}", key.kind());
        assert_eq!(copy.ec_point(), key.ec_point());
        assert_eq!(*copy.to_wrappable().unwrap(), *bytes);
    }
}

#[test]
fn attributes() {
    let mut rng = test_rng(51);
    let aes = KeyMaterial::generate_aes(192, &mut rng).unwrap();
    assert_eq!((aes.kind(), aes.class(), aes.secret_len()), (KeyKind::Aes, KeyClass::Secret, Some(24)));
    assert_eq!((aes.modulus(), aes.public_exponent(), aes.ec_point()), (None, None, None));
    assert!(aes.public_half().is_none());
    let secret = KeyMaterial::generate_generic_secret(800, &mut rng).unwrap();
    assert_eq!((secret.kind(), secret.secret_len()), (KeyKind::GenericSecret, Some(800)));

    let (private, public) = rsa_2048();
    assert_eq!((private.kind(), private.class(), public.class()), (KeyKind::Rsa, KeyClass::Private, KeyClass::Public));
    let (modulus, bits) = public.modulus().unwrap();
    assert_eq!((modulus.len(), bits, modulus[0] & 0x80), (256, 2048, 0x80));
    assert_eq!(private.modulus(), public.modulus());
    assert_eq!((public.public_exponent(), private.secret_len()), (Some(65537), None));
    // key-length-bytes as AWS shows it: twice the modulus for the public key
    // (512 for 2048 bits), the PKCS#8 DER for the private key.
    assert_eq!(aes.key_length_bytes(), Some(24));
    assert_eq!(public.key_length_bytes(), Some(512));
    assert_eq!(private.key_length_bytes(), Some(private.to_wrappable().unwrap().len()));
    let other = rsa_other();
    assert_eq!(modulus, other.public.n_bytes().to_vec());

    for (curve, len) in
        [(Curve::P224, 57), (Curve::P256, 65), (Curve::P384, 97), (Curve::P521, 133), (Curve::Secp256k1, 65)]
    {
        let (private, public) = KeyMaterial::generate_ec(curve, &mut rng).unwrap();
        assert_eq!((private.kind(), public.kind()), (KeyKind::Ec(curve), KeyKind::Ec(curve)));
        let point = public.ec_point().unwrap();
        assert_eq!((point.len(), point[0]), (len, 4), "{curve:?}");
        assert_eq!(public.key_length_bytes(), Some(len), "{curve:?}");
        assert_eq!(private.key_length_bytes(), Some(private.to_wrappable().unwrap().len()), "{curve:?}");
        if curve == Curve::P224 {
            assert_eq!(private.key_length_bytes(), Some(122), "AWS's example shows 122 for P-224");
        }
        assert_eq!(private.ec_point(), Some(point));
        assert!(public.public_half().is_none());
        assert_eq!(private.public_half().unwrap().public_pem(), public.public_pem());
    }
    let (private, public) = KeyMaterial::generate_ed25519(&mut rng).unwrap();
    assert_eq!((private.kind(), private.class()), (KeyKind::Ed25519, KeyClass::Private));
    assert_eq!(public.ec_point().unwrap().len(), 32);
    // 32: the public key; 48: the seed's PKCS#8 DER (RFC 8410).
    assert_eq!((public.key_length_bytes(), private.key_length_bytes()), (Some(32), Some(48)));
}

#[test]
fn pem_import_of_every_label() {
    use p256::pkcs8::EncodePrivateKey as _;
    use rsa::pkcs8::EncodePublicKey as _;
    let mut rng = test_rng(52);
    let lf = rsa::pkcs8::LineEnding::LF;
    let other = rsa_other();

    // RSA: PKCS#1 private and public, PKCS#8 and SPKI, all the same key.
    let pems = [
        other.private.to_pkcs1_pem(lf).unwrap().to_string(),
        other.private.to_pkcs8_pem(lf).unwrap().to_string(),
        other.public.to_pkcs1_pem(lf).unwrap(),
        other.public.to_public_key_pem(lf).unwrap(),
    ];
    for pem in &pems {
        let key = KeyMaterial::from_pem(pem).unwrap();
        assert_eq!(key.modulus(), rsa_2048().1.modulus(), "{}", pem.lines().next().unwrap());
        assert_eq!(key.public_pem().unwrap(), pems[3]);
    }
    let signer = KeyMaterial::from_pem(&pems[0]).unwrap();
    let signature = sign(&signer, SignMech::RsaPss(HashAlg::Sha384), Input::Data(DATA), &mut rng).unwrap();
    other.public.pss_verify::<sha2::Sha384>(DATA, &signature).unwrap();

    // EC: SEC1 and PKCS#8 private keys, SPKI public keys.
    let secret = p256::SecretKey::from_slice(&random(32, 53)).unwrap();
    let sec1 = secret.to_sec1_pem(lf).unwrap();
    let pkcs8 = secret.to_pkcs8_pem(lf).unwrap();
    let spki = secret.public_key().to_public_key_pem(lf).unwrap();
    for pem in [sec1.as_str(), pkcs8.as_str()] {
        let key = KeyMaterial::from_pem(pem).unwrap();
        assert_eq!((key.kind(), key.class()), (KeyKind::Ec(Curve::P256), KeyClass::Private));
        assert_eq!(key.public_pem().unwrap(), spki);
    }
    let p224 = p224::SecretKey::from_slice(&random(28, 54)).unwrap();
    let key = KeyMaterial::from_pem(&p224.to_sec1_pem(lf).unwrap()).unwrap();
    assert_eq!(key.kind(), KeyKind::Ec(Curve::P224));
    assert_eq!(
        key.ec_point().unwrap(),
        p224::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&p224.public_key(), false).as_bytes()
    );
    let k256 = k256::SecretKey::from_slice(&random(32, 55)).unwrap();
    let key = KeyMaterial::from_pem(&k256.to_sec1_pem(lf).unwrap()).unwrap();
    assert_eq!(key.kind(), KeyKind::Ec(Curve::Secp256k1));
    let public = KeyMaterial::from_pem(&spki).unwrap();
    let signature =
        sign(&KeyMaterial::from_pem(&sec1).unwrap(), SignMech::Ecdsa(HashAlg::Sha256), Input::Data(DATA), &mut rng)
            .unwrap();
    assert!(verify(&public, SignMech::Ecdsa(HashAlg::Sha256), Input::Data(DATA), &signature).unwrap());

    // Ed25519 PKCS#8 v2 (with the public key), as ring writes it.
    let v2 = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pem = pkcs8_pem(v2.as_ref());
    let key = KeyMaterial::from_pem(&pem).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(v2.as_ref()).unwrap();
    assert_eq!(key.ec_point().unwrap(), ring::signature::KeyPair::public_key(&pair).as_ref());
}

fn pkcs8_pem(der: &[u8]) -> String {
    rsa::pkcs8::der::pem::encode_string("PRIVATE KEY", rsa::pkcs8::LineEnding::LF, der).unwrap()
}

#[test]
fn generation_is_reproducible_from_the_callers_generator() {
    for seed in [1, 2] {
        let again = |f: &dyn Fn(&mut rand::rngs::StdRng) -> KeyMaterial| {
            (f(&mut test_rng(seed)).to_wrappable().unwrap(), f(&mut test_rng(seed)).to_wrappable().unwrap())
        };
        let (a, b) = again(&|rng| KeyMaterial::generate_aes(256, rng).unwrap());
        assert_eq!(a, b);
        let (a, b) = again(&|rng| KeyMaterial::generate_ed25519(rng).unwrap().0);
        assert_eq!(a, b);
        for curve in CURVES {
            let (a, b) = again(&|rng| KeyMaterial::generate_ec(curve, rng).unwrap().0);
            assert_eq!(a, b, "{curve:?}");
        }
    }
    let one = KeyMaterial::generate_ec(Curve::P224, &mut test_rng(1)).unwrap().0;
    let two = KeyMaterial::generate_ec(Curve::P224, &mut test_rng(2)).unwrap().0;
    assert_ne!(one.to_wrappable().unwrap(), two.to_wrappable().unwrap());
    // RSA too (one more 2048-bit generation with the shared key's seed).
    let again = KeyMaterial::generate_rsa(2048, 65537, &mut test_rng(2048)).unwrap();
    assert_eq!(again.0.to_wrappable().unwrap(), rsa_2048().0.to_wrappable().unwrap());
}

/// The other two sizes the HSM generates, once each (about 1 s and 6 s in a
/// debug build with these seeds), with an exponent other than 65537.
#[test]
fn rsa_3072_and_4096() {
    for (bits, exponent) in [(3072, 65539), (4096, 65537)] {
        let (private, public) = KeyMaterial::generate_rsa(bits, exponent, &mut test_rng(1)).unwrap();
        assert_eq!(public.modulus().unwrap().1, bits);
        assert_eq!(public.public_exponent(), Some(exponent));
        let mut rng = test_rng(2);
        for mech in [SignMech::RsaPkcs1(HashAlg::Sha256), SignMech::RsaPss(HashAlg::Sha224)] {
            let signature = sign(&private, mech, Input::Data(DATA), &mut rng).unwrap();
            assert_eq!(signature.len(), bits as usize / 8);
            assert!(verify(&public, mech, Input::Data(DATA), &signature).unwrap());
        }
        let theirs = rsa::PublicKey::from_public_key_pem(&public.public_pem().unwrap()).unwrap();
        assert_eq!(
            theirs.e_bytes().to_vec(),
            exponent.to_be_bytes().iter().skip_while(|&&b| b == 0).copied().collect::<Vec<_>>()
        );
    }
}
