//! [`sign`] / [`verify`] / [`digest`]: the one `match` from [`SignMech`] to a
//! library call.
//!
//! ring where it has the mechanism: digests and HMAC with SHA-1/256/384/512,
//! ECDSA P-256/SHA-256 and P-384/SHA-384 over data, Ed25519, RSA PKCS#1 v1.5
//! and PSS with SHA-256/384/512 over data. RustCrypto for the rest: SHA-224
//! and HMAC-SHA224 (`sha2`, `hmac`), every other ECDSA curve/hash pair and
//! every prehashed ECDSA input (`PrehashSigner` / `PrehashVerifier`), RSA
//! with SHA-1/SHA-224 and every prehashed RSA input (the `rsa` crate), and
//! Ed25519ph (`ed25519-dalek`; ring has only pure Ed25519). Raw PKCS#1 v1.5
//! (no DigestInfo) is the `rsa` crate's unprefixed scheme; raw RSA
//! (`CKM_RSA_X_509`) is `raw_rsa.rs`.

use hmac::{KeyInit as _, Mac as _};
use rand::CryptoRng;
use ring::signature::{self as ring_sig, UnparsedPublicKey};

use super::keys::{RsaPrivate, RsaPublic};
use super::{CryptoError, Curve, HashAlg, Input, KeyMaterial, SignMech, check_data_len, raw_rsa, rng};

pub(super) fn sign(
    key: &KeyMaterial,
    mech: SignMech,
    input: Input<'_>,
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, CryptoError> {
    check_input(mech, input)?;
    match mech {
        SignMech::Ecdsa(hash) => {
            let private = key.ec_private().ok_or_else(|| wrong_key(mech, key))?;
            match (&private.ring, ring_ecdsa_hash(private.curve()), input) {
                (Some(pair), Some(ring_hash), Input::Data(data)) if ring_hash == hash => pair
                    .sign(&ring::rand::SystemRandom::new(), data)
                    .map(|signature| signature.as_ref().to_vec())
                    .map_err(|_| CryptoError::InvalidKey("ECDSA signing failed".to_owned())),
                (_, _, Input::Data(_) | Input::Digest(_)) => private.sign_prehash(&prehash(hash, input)),
            }
        }
        SignMech::Ed25519 => {
            let private = key.ed25519_private().ok_or_else(|| wrong_key(mech, key))?;
            let Input::Data(data) = input else {
                return Err(digest_refused(mech));
            };
            Ok(private.ring.sign(data).as_ref().to_vec())
        }
        SignMech::Ed25519ph => {
            let private = key.ed25519_private().ok_or_else(|| wrong_key(mech, key))?;
            private
                .dalek()
                .sign_prehashed(ed25519ph_prehash(input), None)
                .map(|signature| signature.to_bytes().to_vec())
                .map_err(|e| CryptoError::InvalidKey(format!("Ed25519ph signing failed: {e}")))
        }
        SignMech::RsaPkcs1(hash) => {
            let private = key.rsa_private().ok_or_else(|| wrong_key(mech, key))?;
            match (ring_rsa_sign_alg(mech), input) {
                (Some(alg), Input::Data(data)) => ring_rsa_sign(private, alg, data),
                (_, Input::Data(_) | Input::Digest(_)) => {
                    rsa_prehash_sign(private, mech, hash, &prehash(hash, input), rng)
                }
            }
        }
        SignMech::RsaPss(hash) => {
            let private = key.rsa_private().ok_or_else(|| wrong_key(mech, key))?;
            match (ring_rsa_sign_alg(mech), input) {
                (Some(alg), Input::Data(data)) => ring_rsa_sign(private, alg, data),
                (_, Input::Data(_) | Input::Digest(_)) => {
                    rsa_prehash_sign(private, mech, hash, &prehash(hash, input), rng)
                }
            }
        }
        SignMech::Hmac(hash) => {
            let secret = key.secret_bytes().ok_or_else(|| wrong_key(mech, key))?;
            let Input::Data(data) = input else {
                return Err(digest_refused(mech));
            };
            hmac_tag(hash, secret, data)
        }
        SignMech::RsaPkcs1Raw => {
            let private = key.rsa_private().ok_or_else(|| wrong_key(mech, key))?;
            let Input::Data(data) = input else {
                return Err(digest_refused(mech));
            };
            rsa_raw_pkcs1_sign(private, data, rng)
        }
        SignMech::RsaX509 => {
            let private = key.rsa_private().ok_or_else(|| wrong_key(mech, key))?;
            let Input::Data(data) = input else {
                return Err(digest_refused(mech));
            };
            // The signature is public once made.
            Ok(raw_rsa::private(private, "data", data, rng)?.to_vec())
        }
    }
}

pub(super) fn verify(
    key: &KeyMaterial,
    mech: SignMech,
    input: Input<'_>,
    signature: &[u8],
) -> Result<bool, CryptoError> {
    check_input(mech, input)?;
    match mech {
        SignMech::Ecdsa(hash) => {
            let public = key.ec_public().ok_or_else(|| wrong_key(mech, key))?;
            match (ring_ecdsa_verify_alg(public.curve()), input) {
                (Some((ring_hash, alg)), Input::Data(data)) if ring_hash == hash => {
                    Ok(ring_verify(alg, &public.point, data, signature))
                }
                (_, Input::Data(_) | Input::Digest(_)) => Ok(public.verify_prehash(&prehash(hash, input), signature)),
            }
        }
        SignMech::Ed25519 => {
            let public = key.ed25519_public().ok_or_else(|| wrong_key(mech, key))?;
            let Input::Data(data) = input else {
                return Err(digest_refused(mech));
            };
            Ok(ring_verify(&ring_sig::ED25519, &public.key, data, signature))
        }
        SignMech::Ed25519ph => {
            let public = key.ed25519_public().ok_or_else(|| wrong_key(mech, key))?;
            let (Some(public), Ok(signature)) = (public.dalek(), ed25519_dalek::Signature::from_slice(signature))
            else {
                return Ok(false);
            };
            Ok(public.verify_prehashed(ed25519ph_prehash(input), None, &signature).is_ok())
        }
        SignMech::RsaPkcs1(hash) | SignMech::RsaPss(hash) => {
            let public = key.rsa_public().ok_or_else(|| wrong_key(mech, key))?;
            match (ring_rsa_verify_alg(mech), input) {
                (Some(alg), Input::Data(data)) => Ok(ring_verify(alg, &public.pkcs1_der, data, signature)),
                (_, Input::Data(_) | Input::Digest(_)) => {
                    Ok(rsa_prehash_verify(public, mech, hash, &prehash(hash, input), signature))
                }
            }
        }
        SignMech::Hmac(hash) => {
            let secret = key.secret_bytes().ok_or_else(|| wrong_key(mech, key))?;
            let Input::Data(data) = input else {
                return Err(digest_refused(mech));
            };
            Ok(hmac_verify(hash, secret, data, signature))
        }
        SignMech::RsaPkcs1Raw => {
            let public = key.rsa_public().ok_or_else(|| wrong_key(mech, key))?;
            let Input::Data(data) = input else {
                return Err(digest_refused(mech));
            };
            check_raw_pkcs1_len(public, data)?;
            Ok(public.key.verify(rsa::pkcs1v15::Pkcs1v15Sign::new_unprefixed(), data, signature).is_ok())
        }
        SignMech::RsaX509 => {
            let public = key.rsa_public().ok_or_else(|| wrong_key(mech, key))?;
            let Input::Data(data) = input else {
                return Err(digest_refused(mech));
            };
            raw_rsa::verify(public, data, signature)
        }
    }
}

pub(super) fn digest(alg: HashAlg, data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    let ring_alg = match alg {
        HashAlg::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha224 => return sha2::Sha224::digest(data).to_vec(),
        HashAlg::Sha256 => &ring::digest::SHA256,
        HashAlg::Sha384 => &ring::digest::SHA384,
        HashAlg::Sha512 => &ring::digest::SHA512,
    };
    ring::digest::digest(ring_alg, data).as_ref().to_vec()
}

// ---- input checks ----

/// Data at most [`super::MAX_DATA_LEN`]; a digest exactly the hash's length.
fn check_input(mech: SignMech, input: Input<'_>) -> Result<(), CryptoError> {
    match input {
        Input::Data(data) => check_data_len("data", data),
        Input::Digest(digest) => {
            let hash = match mech {
                SignMech::Ecdsa(hash) | SignMech::RsaPkcs1(hash) | SignMech::RsaPss(hash) => hash,
                SignMech::Ed25519ph => HashAlg::Sha512,
                SignMech::Ed25519 | SignMech::Hmac(_) | SignMech::RsaPkcs1Raw | SignMech::RsaX509 => {
                    return Err(digest_refused(mech));
                }
            };
            if digest.len() != hash.output_len() {
                return Err(CryptoError::invalid(
                    "digest",
                    format!("a {hash:?} digest is {} bytes, not {}", hash.output_len(), digest.len()),
                ));
            }
            Ok(())
        }
    }
}

/// The digest to sign: the caller's, or the data hashed with `hash`.
fn prehash(hash: HashAlg, input: Input<'_>) -> Vec<u8> {
    match input {
        Input::Data(data) => digest(hash, data),
        Input::Digest(digest) => digest.to_vec(),
    }
}

/// The SHA-512 digest Ed25519ph signs: the data hashed here, or the caller's
/// digest (its length was checked by [`check_input`]).
fn ed25519ph_prehash(input: Input<'_>) -> Sha512Output {
    let mut output = [0u8; 64];
    let digest = prehash(HashAlg::Sha512, input);
    let n = digest.len().min(output.len());
    output[..n].copy_from_slice(&digest[..n]);
    Sha512Output(output)
}

/// A SHA-512 digest already made, in the form ed25519-dalek's prehashed
/// signing takes: a hash state that it finalizes (it has no entry point for
/// the 64 bytes themselves, which `--data-type digest` gives). Finalizing
/// hands the digest back; nothing is hashed by hand.
#[derive(Clone)]
struct Sha512Output([u8; 64]);

/// `Digest` asks for `Default`; an all-zero digest is never signed (every
/// use starts from [`ed25519ph_prehash`]).
impl Default for Sha512Output {
    fn default() -> Self {
        Sha512Output([0; 64])
    }
}

impl sha2::digest::HashMarker for Sha512Output {}

impl sha2::digest::OutputSizeUser for Sha512Output {
    type OutputSize = sha2::digest::consts::U64;
}

impl sha2::digest::Update for Sha512Output {
    /// The digest is final: ed25519-dalek only finalizes the state it is
    /// given, and nothing else feeds this type.
    fn update(&mut self, _data: &[u8]) {}
}

impl sha2::digest::FixedOutput for Sha512Output {
    fn finalize_into(self, out: &mut sha2::digest::Output<Self>) {
        out.copy_from_slice(&self.0);
    }
}

fn digest_refused(mech: SignMech) -> CryptoError {
    CryptoError::invalid("input", format!("{mech:?} signs the data itself; a precomputed digest is refused"))
}

fn wrong_key(mech: SignMech, key: &KeyMaterial) -> CryptoError {
    CryptoError::WrongKeyType { mechanism: format!("{mech:?}"), key: key.describe() }
}

// ---- ring ----

/// The hash ring pairs with a curve for ECDSA over data.
fn ring_ecdsa_hash(curve: Curve) -> Option<HashAlg> {
    match curve {
        Curve::P256 => Some(HashAlg::Sha256),
        Curve::P384 => Some(HashAlg::Sha384),
        Curve::P224 | Curve::P521 | Curve::Secp256k1 => None,
    }
}

/// ring's ECDSA verification for a curve, and the hash it pairs with it.
fn ring_ecdsa_verify_alg(curve: Curve) -> Option<(HashAlg, &'static ring_sig::EcdsaVerificationAlgorithm)> {
    match curve {
        Curve::P256 => Some((HashAlg::Sha256, &ring_sig::ECDSA_P256_SHA256_FIXED)),
        Curve::P384 => Some((HashAlg::Sha384, &ring_sig::ECDSA_P384_SHA384_FIXED)),
        Curve::P224 | Curve::P521 | Curve::Secp256k1 => None,
    }
}

fn ring_rsa_sign_alg(mech: SignMech) -> Option<&'static dyn ring_sig::RsaEncoding> {
    ring_rsa_algs(mech).map(|(sign, _)| sign)
}

fn ring_rsa_verify_alg(mech: SignMech) -> Option<&'static ring_sig::RsaParameters> {
    ring_rsa_algs(mech).map(|(_, verify)| verify)
}

/// ring's algorithms for an RSA mechanism over data, to sign and to verify
/// with: the hashes ring has (the others are prehashed and signed by the
/// `rsa` crate).
fn ring_rsa_algs(mech: SignMech) -> Option<(&'static dyn ring_sig::RsaEncoding, &'static ring_sig::RsaParameters)> {
    match mech {
        SignMech::RsaPkcs1(HashAlg::Sha256) => {
            Some((&ring_sig::RSA_PKCS1_SHA256, &ring_sig::RSA_PKCS1_2048_8192_SHA256))
        }
        SignMech::RsaPkcs1(HashAlg::Sha384) => {
            Some((&ring_sig::RSA_PKCS1_SHA384, &ring_sig::RSA_PKCS1_2048_8192_SHA384))
        }
        SignMech::RsaPkcs1(HashAlg::Sha512) => {
            Some((&ring_sig::RSA_PKCS1_SHA512, &ring_sig::RSA_PKCS1_2048_8192_SHA512))
        }
        SignMech::RsaPss(HashAlg::Sha256) => Some((&ring_sig::RSA_PSS_SHA256, &ring_sig::RSA_PSS_2048_8192_SHA256)),
        SignMech::RsaPss(HashAlg::Sha384) => Some((&ring_sig::RSA_PSS_SHA384, &ring_sig::RSA_PSS_2048_8192_SHA384)),
        SignMech::RsaPss(HashAlg::Sha512) => Some((&ring_sig::RSA_PSS_SHA512, &ring_sig::RSA_PSS_2048_8192_SHA512)),
        SignMech::RsaPkcs1(HashAlg::Sha1 | HashAlg::Sha224)
        | SignMech::RsaPss(HashAlg::Sha1 | HashAlg::Sha224)
        | SignMech::Ecdsa(_)
        | SignMech::Ed25519
        | SignMech::Ed25519ph
        | SignMech::Hmac(_)
        | SignMech::RsaPkcs1Raw
        | SignMech::RsaX509 => None,
    }
}

fn ring_rsa_sign(
    private: &RsaPrivate,
    alg: &'static dyn ring_sig::RsaEncoding,
    data: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut signature = vec![0u8; private.ring.public().modulus_len()];
    private
        .ring
        .sign(alg, &ring::rand::SystemRandom::new(), data, &mut signature)
        .map_err(|_| CryptoError::InvalidKey("RSA signing failed".to_owned()))?;
    Ok(signature)
}

fn ring_verify(
    alg: &'static dyn ring_sig::VerificationAlgorithm,
    public_key: &[u8],
    data: &[u8],
    signature: &[u8],
) -> bool {
    UnparsedPublicKey::new(alg, public_key).verify(data, signature).is_ok()
}

// ---- the rsa crate ----

fn rsa_prehash_sign(
    private: &RsaPrivate,
    mech: SignMech,
    hash: HashAlg,
    digest: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, CryptoError> {
    use sha1::Sha1;
    use sha2::{Sha224, Sha256, Sha384, Sha512};
    // Blinding (and the PSS salt) come from the caller's generator.
    let rng = &mut rng::current(rng);
    let key = &private.key;
    let pss = matches!(mech, SignMech::RsaPss(_));
    match (pss, hash) {
        (false, HashAlg::Sha1) => key.pkcs1v15_sign_prehash_with_rng::<Sha1, _>(rng, digest),
        (false, HashAlg::Sha224) => key.pkcs1v15_sign_prehash_with_rng::<Sha224, _>(rng, digest),
        (false, HashAlg::Sha256) => key.pkcs1v15_sign_prehash_with_rng::<Sha256, _>(rng, digest),
        (false, HashAlg::Sha384) => key.pkcs1v15_sign_prehash_with_rng::<Sha384, _>(rng, digest),
        (false, HashAlg::Sha512) => key.pkcs1v15_sign_prehash_with_rng::<Sha512, _>(rng, digest),
        (true, HashAlg::Sha1) => key.pss_sign_prehash_with_rng::<Sha1, _>(rng, digest),
        (true, HashAlg::Sha224) => key.pss_sign_prehash_with_rng::<Sha224, _>(rng, digest),
        (true, HashAlg::Sha256) => key.pss_sign_prehash_with_rng::<Sha256, _>(rng, digest),
        (true, HashAlg::Sha384) => key.pss_sign_prehash_with_rng::<Sha384, _>(rng, digest),
        (true, HashAlg::Sha512) => key.pss_sign_prehash_with_rng::<Sha512, _>(rng, digest),
    }
    .map_err(|e| CryptoError::InvalidKey(format!("{mech:?} signing failed: {e}")))
}

fn rsa_prehash_verify(public: &RsaPublic, mech: SignMech, hash: HashAlg, digest: &[u8], signature: &[u8]) -> bool {
    use sha1::Sha1;
    use sha2::{Sha224, Sha256, Sha384, Sha512};
    let key = &public.key;
    let pss = matches!(mech, SignMech::RsaPss(_));
    match (pss, hash) {
        (false, HashAlg::Sha1) => key.pkcs1v15_verify_prehash::<Sha1>(digest, signature),
        (false, HashAlg::Sha224) => key.pkcs1v15_verify_prehash::<Sha224>(digest, signature),
        (false, HashAlg::Sha256) => key.pkcs1v15_verify_prehash::<Sha256>(digest, signature),
        (false, HashAlg::Sha384) => key.pkcs1v15_verify_prehash::<Sha384>(digest, signature),
        (false, HashAlg::Sha512) => key.pkcs1v15_verify_prehash::<Sha512>(digest, signature),
        (true, HashAlg::Sha1) => key.pss_verify_prehash::<Sha1>(digest, signature),
        (true, HashAlg::Sha224) => key.pss_verify_prehash::<Sha224>(digest, signature),
        (true, HashAlg::Sha256) => key.pss_verify_prehash::<Sha256>(digest, signature),
        (true, HashAlg::Sha384) => key.pss_verify_prehash::<Sha384>(digest, signature),
        (true, HashAlg::Sha512) => key.pss_verify_prehash::<Sha512>(digest, signature),
    }
    .is_ok()
}

/// Raw PKCS#1 v1.5: type-1 padding around `data` itself, blinded with the
/// caller's generator.
fn rsa_raw_pkcs1_sign(private: &RsaPrivate, data: &[u8], rng: &mut impl CryptoRng) -> Result<Vec<u8>, CryptoError> {
    check_raw_pkcs1_len(&private.public, data)?;
    private
        .key
        .sign_with_rng(&mut rng::current(rng), rsa::pkcs1v15::Pkcs1v15Sign::new_unprefixed(), data)
        .map_err(|e| CryptoError::InvalidKey(format!("RsaPkcs1Raw signing failed: {e}")))
}

/// RFC 8017 §9.2: the padding takes 11 bytes at least (00 01, eight FF, 00).
fn check_raw_pkcs1_len(public: &RsaPublic, data: &[u8]) -> Result<(), CryptoError> {
    let max = public.size().saturating_sub(11);
    if data.len() > max {
        return Err(CryptoError::invalid(
            "data",
            format!("at most {max} bytes (the modulus length less 11) for raw RSA PKCS#1 v1.5, not {}", data.len()),
        ));
    }
    Ok(())
}

// ---- HMAC ----

fn ring_hmac_alg(hash: HashAlg) -> Option<ring::hmac::Algorithm> {
    match hash {
        HashAlg::Sha1 => Some(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY),
        HashAlg::Sha224 => None,
        HashAlg::Sha256 => Some(ring::hmac::HMAC_SHA256),
        HashAlg::Sha384 => Some(ring::hmac::HMAC_SHA384),
        HashAlg::Sha512 => Some(ring::hmac::HMAC_SHA512),
    }
}

/// HMAC-SHA224 (ring has no SHA-224).
type HmacSha224 = hmac::Hmac<sha2::Sha224>;

fn hmac_tag(hash: HashAlg, secret: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    match ring_hmac_alg(hash) {
        Some(alg) => Ok(ring::hmac::sign(&ring::hmac::Key::new(alg, secret), data).as_ref().to_vec()),
        None => {
            let mut mac = HmacSha224::new_from_slice(secret)
                .map_err(|_| CryptoError::InvalidKey("HMAC-SHA224 key length".to_owned()))?;
            mac.update(data);
            Ok(mac.finalize().into_bytes().to_vec())
        }
    }
}

/// Constant-time comparison of the full-length tag (a truncated tag fails).
fn hmac_verify(hash: HashAlg, secret: &[u8], data: &[u8], tag: &[u8]) -> bool {
    match ring_hmac_alg(hash) {
        Some(alg) => ring::hmac::verify(&ring::hmac::Key::new(alg, secret), data, tag).is_ok(),
        None => HmacSha224::new_from_slice(secret).is_ok_and(|mut mac| {
            mac.update(data);
            mac.verify_slice(tag).is_ok()
        }),
    }
}
