//! [`wrap`] / [`unwrap`]: the one `match` from [`WrapMech`] to a library call.
//!
//! AES-GCM as in [`super::cipher`] (ring, `aes-gcm` for 192-bit keys and
//! short tags); AES key wrap with and without padding from `aes-kw`
//! (CloudHSM's PKCS #5 variant pads, then wraps by RFC 3394); RSA-OAEP and
//! PKCS #1 v1.5 from the `rsa` crate.

use aes_kw::{KwAes128, KwAes192, KwAes256, KwpAes128, KwpAes192, KwpAes256};
use rand::CryptoRng;
use zeroize::Zeroizing;

use super::cipher::{
    GCM_IV_LEN, gcm_open_tagged, gcm_seal_tagged, oaep_decrypt, oaep_encrypt, pkcs1_decrypt, pkcs1_encrypt,
};
use super::keys::{RsaPrivate, RsaPublic};
use super::{CryptoError, KeyMaterial, MAX_DATA_LEN, SecretBytes, WrapMech, check_data_len};

/// Semiblock of RFC 3394 / RFC 5649, also the length their output adds.
const SEMIBLOCK: usize = 8;
/// RFC 3394 wraps at least two semiblocks.
const KW_MIN_LEN: usize = 2 * SEMIBLOCK;
/// CKM_RSA_AES_KEY_WRAP: the ephemeral key is AES-256.
const RSA_AES_KEY_LEN: usize = 32;

pub(super) fn wrap(
    wrapping_key: &KeyMaterial,
    mech: WrapMech,
    aad: &[u8],
    key_bytes: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, CryptoError> {
    check_data_len("key_bytes", key_bytes)?;
    check_aad(mech, aad)?;
    if key_bytes.is_empty() {
        return Err(CryptoError::invalid("key_bytes", "nothing to wrap"));
    }
    match mech {
        WrapMech::AesGcm(tag_len) => {
            let key = aes_key(wrapping_key, mech)?;
            let mut nonce = [0u8; GCM_IV_LEN];
            rng.fill_bytes(&mut nonce);
            let sealed = gcm_seal_tagged(key, tag_len, nonce, aad, key_bytes)?;
            Ok([nonce.as_slice(), &sealed].concat())
        }
        WrapMech::AesKeyWrap => {
            let key = aes_key(wrapping_key, mech)?;
            if key_bytes.len() < KW_MIN_LEN || !key_bytes.len().is_multiple_of(SEMIBLOCK) {
                return Err(CryptoError::invalid(
                    "key_bytes",
                    format!(
                        "AES key wrap (RFC 3394) takes a multiple of 8 bytes, at least 16, not {}; \
                         use AES key wrap with padding",
                        key_bytes.len()
                    ),
                ));
            }
            kw_wrap(key, key_bytes)
        }
        WrapMech::AesKeyWrapPad => kwp_wrap(aes_key(wrapping_key, mech)?, key_bytes),
        WrapMech::AesKeyWrapPkcs5 => {
            let key = aes_key(wrapping_key, mech)?;
            kw_wrap(key, &pkcs5_pad(key_bytes))
        }
        WrapMech::RsaOaep(hash) => oaep_encrypt(rsa_public(wrapping_key, mech)?, hash, key_bytes, rng),
        WrapMech::RsaPkcs1 => pkcs1_encrypt(rsa_public(wrapping_key, mech)?, key_bytes, rng),
        WrapMech::RsaAes(hash) => {
            let public = rsa_public(wrapping_key, mech)?;
            let mut ephemeral = Zeroizing::new([0u8; RSA_AES_KEY_LEN]);
            rng.fill_bytes(ephemeral.as_mut_slice());
            let head = oaep_encrypt(public, hash, ephemeral.as_slice(), rng)?;
            let tail = kwp_wrap(ephemeral.as_slice(), key_bytes)?;
            Ok([head, tail].concat())
        }
    }
}

pub(super) fn unwrap(
    unwrapping_key: &KeyMaterial,
    mech: WrapMech,
    aad: &[u8],
    wrapped: &[u8],
) -> Result<SecretBytes, CryptoError> {
    // Wrapping adds at most an RSA ciphertext (512 bytes at 4096 bits) and a
    // few blocks; anything much longer cannot come from `wrap`.
    if wrapped.len() > MAX_DATA_LEN + 1024 {
        return Err(CryptoError::invalid("wrapped", format!("at most {} bytes", MAX_DATA_LEN + 1024)));
    }
    check_aad(mech, aad)?;
    match mech {
        WrapMech::AesGcm(tag_len) => {
            let key = aes_key(unwrapping_key, mech)?;
            if wrapped.len() < GCM_IV_LEN + tag_len.bytes() {
                return Err(CryptoError::invalid("wrapped", "shorter than the AES-GCM IV and tag"));
            }
            let (nonce, sealed) = wrapped.split_at(GCM_IV_LEN);
            let mut iv = [0u8; GCM_IV_LEN];
            iv.copy_from_slice(nonce);
            gcm_open_tagged(key, tag_len, iv, aad, sealed)
        }
        WrapMech::AesKeyWrap => kw_unwrap(aes_key(unwrapping_key, mech)?, wrapped),
        WrapMech::AesKeyWrapPad => kwp_unwrap(aes_key(unwrapping_key, mech)?, wrapped),
        WrapMech::AesKeyWrapPkcs5 => pkcs5_unpad(kw_unwrap(aes_key(unwrapping_key, mech)?, wrapped)?),
        WrapMech::RsaOaep(hash) => oaep_decrypt(rsa_private(unwrapping_key, mech)?, hash, wrapped),
        WrapMech::RsaPkcs1 => pkcs1_decrypt(rsa_private(unwrapping_key, mech)?, wrapped),
        WrapMech::RsaAes(hash) => {
            let private = rsa_private(unwrapping_key, mech)?;
            let head_len = private.public.size();
            if wrapped.len() <= head_len {
                return Err(CryptoError::invalid(
                    "wrapped",
                    format!("RSA-AES output is the {head_len}-byte RSA ciphertext and then the wrapped key"),
                ));
            }
            let (head, tail) = wrapped.split_at(head_len);
            let ephemeral = oaep_decrypt(private, hash, head)?;
            // Another implementation may have picked AES-128 or AES-192.
            if !matches!(ephemeral.len(), 16 | 24 | 32) {
                return Err(CryptoError::Authentication("RSA-AES key unwrap (ephemeral AES key length)"));
            }
            kwp_unwrap(&ephemeral, tail)
        }
    }
}

// ---- aes-kw ----

/// Runs `$body` with `$kw` bound to the `aes-kw` wrapper (`$kw128`, `$kw192`
/// or `$kw256` by key length) keyed with `$key`.
macro_rules! with_kw {
    ($key:expr, $kw128:ty, $kw192:ty, $kw256:ty, $kw:ident => $body:expr) => {{
        use aes_kw::KeyInit as _;
        let bad_key = |_| CryptoError::InvalidKey(format!("AES key of {} bytes", $key.len()));
        match $key.len() {
            16 => {
                let $kw = <$kw128>::new_from_slice($key).map_err(bad_key)?;
                $body
            }
            24 => {
                let $kw = <$kw192>::new_from_slice($key).map_err(bad_key)?;
                $body
            }
            32 => {
                let $kw = <$kw256>::new_from_slice($key).map_err(bad_key)?;
                $body
            }
            n => Err(CryptoError::InvalidKey(format!("AES key of {n} bytes"))),
        }
    }};
}

fn kw_wrap(key: &[u8], key_bytes: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut buf = vec![0u8; key_bytes.len() + SEMIBLOCK];
    with_kw!(key, KwAes128, KwAes192, KwAes256, kw => kw
        .wrap_key(key_bytes, &mut buf)
        .map(|_| ())
        .map_err(|e| CryptoError::invalid("key_bytes", format!("AES key wrap: {e}"))))?;
    Ok(buf)
}

fn kw_unwrap(key: &[u8], wrapped: &[u8]) -> Result<SecretBytes, CryptoError> {
    if wrapped.len() < KW_MIN_LEN + SEMIBLOCK || !wrapped.len().is_multiple_of(SEMIBLOCK) {
        return Err(CryptoError::invalid(
            "wrapped",
            format!("AES key wrap output is a multiple of 8 bytes, at least 24, not {}", wrapped.len()),
        ));
    }
    let mut buf = Zeroizing::new(vec![0u8; wrapped.len() - SEMIBLOCK]);
    with_kw!(key, KwAes128, KwAes192, KwAes256, kw => kw
        .unwrap_key(wrapped, &mut buf)
        .map(|_| ())
        .map_err(|_| CryptoError::Authentication("AES key unwrap")))?;
    Ok(buf)
}

fn kwp_wrap(key: &[u8], key_bytes: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut buf = vec![0u8; key_bytes.len().div_ceil(SEMIBLOCK) * SEMIBLOCK + SEMIBLOCK];
    with_kw!(key, KwpAes128, KwpAes192, KwpAes256, kwp => kwp
        .wrap_key(key_bytes, &mut buf)
        .map(|_| ())
        .map_err(|e| CryptoError::invalid("key_bytes", format!("AES key wrap with padding: {e}"))))?;
    Ok(buf)
}

fn kwp_unwrap(key: &[u8], wrapped: &[u8]) -> Result<SecretBytes, CryptoError> {
    if wrapped.len() < 2 * SEMIBLOCK || !wrapped.len().is_multiple_of(SEMIBLOCK) {
        return Err(CryptoError::invalid(
            "wrapped",
            format!("AES key wrap with padding output is a multiple of 8 bytes, at least 16, not {}", wrapped.len()),
        ));
    }
    let mut buf = Zeroizing::new(vec![0u8; wrapped.len() - SEMIBLOCK]);
    let len = with_kw!(key, KwpAes128, KwpAes192, KwpAes256, kwp => kwp
        .unwrap_key(wrapped, &mut buf)
        .map(<[u8]>::len)
        .map_err(|_| CryptoError::Authentication("AES key unwrap with padding")))?;
    buf.truncate(len);
    Ok(buf)
}

// ---- PKCS #5 padding (CloudHSM's aes-pkcs5-pad) ----

/// Pads to a multiple of 8 bytes with 1 to 8 bytes, each holding the count.
fn pkcs5_pad(key_bytes: &[u8]) -> SecretBytes {
    let pad = SEMIBLOCK - key_bytes.len() % SEMIBLOCK;
    let mut padded = Zeroizing::new(Vec::with_capacity(key_bytes.len() + pad));
    padded.extend_from_slice(key_bytes);
    // `pad` is 1..=8.
    padded.resize(key_bytes.len() + pad, u8::try_from(pad).unwrap_or(0));
    padded
}

/// Strips PKCS #5 padding. A bad pad means a wrong key or other bytes, and
/// fails as unauthentic.
fn pkcs5_unpad(mut padded: SecretBytes) -> Result<SecretBytes, CryptoError> {
    let bad = || CryptoError::Authentication("AES key unwrap with PKCS #5 padding");
    let pad = usize::from(*padded.last().ok_or_else(bad)?);
    if pad == 0 || pad > SEMIBLOCK || pad >= padded.len() {
        return Err(bad());
    }
    let body = padded.len() - pad;
    if padded[body..].iter().any(|&b| usize::from(b) != pad) {
        return Err(bad());
    }
    padded.truncate(body);
    Ok(padded)
}

// ---- key checks ----

/// Only AES-GCM authenticates additional data.
fn check_aad(mech: WrapMech, aad: &[u8]) -> Result<(), CryptoError> {
    check_data_len("aad", aad)?;
    if !aad.is_empty() && !matches!(mech, WrapMech::AesGcm(_)) {
        return Err(CryptoError::invalid("aad", "only AES-GCM key wrapping takes additional authenticated data"));
    }
    Ok(())
}

fn aes_key(key: &KeyMaterial, mech: WrapMech) -> Result<&[u8], CryptoError> {
    key.aes_bytes().ok_or_else(|| wrong_key(mech, key))
}

fn rsa_public(key: &KeyMaterial, mech: WrapMech) -> Result<&RsaPublic, CryptoError> {
    key.rsa_public().ok_or_else(|| wrong_key(mech, key))
}

fn rsa_private(key: &KeyMaterial, mech: WrapMech) -> Result<&RsaPrivate, CryptoError> {
    key.rsa_private().ok_or_else(|| wrong_key(mech, key))
}

fn wrong_key(mech: WrapMech, key: &KeyMaterial) -> CryptoError {
    CryptoError::WrongKeyType { mechanism: format!("{mech:?}"), key: key.describe() }
}
