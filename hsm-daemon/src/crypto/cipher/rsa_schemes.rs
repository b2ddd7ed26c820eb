//! RSA encryption with the `rsa` crate: OAEP and PKCS #1 v1.5, both ways,
//! and the ciphertext length check.

use rand::CryptoRng;
use zeroize::Zeroizing;

use super::wrong_key;
use crate::crypto::keys::{RsaPrivate, RsaPublic};
use crate::crypto::{Cipher, CryptoError, HashAlg, KeyMaterial, SecretBytes, rng};

pub(super) fn rsa_public(key: &KeyMaterial, cipher: Cipher) -> Result<&RsaPublic, CryptoError> {
    key.rsa_public().ok_or_else(|| wrong_key(cipher, key))
}

pub(super) fn rsa_private(key: &KeyMaterial, cipher: Cipher) -> Result<&RsaPrivate, CryptoError> {
    key.rsa_private().ok_or_else(|| wrong_key(cipher, key))
}

/// RSA-OAEP encryption, `hash` for OAEP and MGF1, empty label.
pub(in crate::crypto) fn oaep_encrypt(
    public: &RsaPublic,
    hash: HashAlg,
    plaintext: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, CryptoError> {
    // RFC 8017 §7.1.1: mLen <= k - 2 hLen - 2.
    let max = public.size().saturating_sub(2 * hash.output_len() + 2);
    if plaintext.len() > max {
        return Err(CryptoError::invalid(
            "plaintext",
            format!("at most {max} bytes for RSA-OAEP with this key and {hash:?}"),
        ));
    }
    let rng = &mut rng::current(rng);
    let key = &public.key;
    match hash {
        HashAlg::Sha1 => key.oaep_encrypt_with_rng::<sha1::Sha1, _>(rng, plaintext),
        HashAlg::Sha224 => key.oaep_encrypt_with_rng::<sha2::Sha224, _>(rng, plaintext),
        HashAlg::Sha256 => key.oaep_encrypt_with_rng::<sha2::Sha256, _>(rng, plaintext),
        HashAlg::Sha384 => key.oaep_encrypt_with_rng::<sha2::Sha384, _>(rng, plaintext),
        HashAlg::Sha512 => key.oaep_encrypt_with_rng::<sha2::Sha512, _>(rng, plaintext),
    }
    .map_err(|e| CryptoError::invalid("plaintext", format!("RSA-OAEP encryption: {e}")))
}

/// RSA-OAEP decryption (blinded with the operating system's generator).
pub(in crate::crypto) fn oaep_decrypt(
    private: &RsaPrivate,
    hash: HashAlg,
    ciphertext: &[u8],
) -> Result<SecretBytes, CryptoError> {
    check_rsa_ciphertext_len(&private.public, ciphertext)?;
    let key = &private.key;
    match hash {
        HashAlg::Sha1 => key.oaep_decrypt::<sha1::Sha1>(ciphertext),
        HashAlg::Sha224 => key.oaep_decrypt::<sha2::Sha224>(ciphertext),
        HashAlg::Sha256 => key.oaep_decrypt::<sha2::Sha256>(ciphertext),
        HashAlg::Sha384 => key.oaep_decrypt::<sha2::Sha384>(ciphertext),
        HashAlg::Sha512 => key.oaep_decrypt::<sha2::Sha512>(ciphertext),
    }
    .map(Zeroizing::new)
    .map_err(|_| CryptoError::Authentication("RSA-OAEP decryption"))
}

/// RSA PKCS #1 v1.5 decryption. Implicit rejection: bad padding yields a
/// pseudo-random message (see `Cipher::RsaPkcs1`); only malformed
/// ciphertexts fail.
pub(in crate::crypto) fn pkcs1_decrypt(private: &RsaPrivate, ciphertext: &[u8]) -> Result<SecretBytes, CryptoError> {
    check_rsa_ciphertext_len(&private.public, ciphertext)?;
    private
        .key
        .pkcs1v15_decrypt(ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Authentication("RSA PKCS#1 v1.5 decryption"))
}

/// RSA PKCS #1 v1.5 encryption.
pub(in crate::crypto) fn pkcs1_encrypt(
    public: &RsaPublic,
    plaintext: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, CryptoError> {
    // RFC 8017 §7.2.1: at least 8 bytes of padding plus 3 framing bytes.
    let max = public.size().saturating_sub(11);
    if plaintext.len() > max {
        return Err(CryptoError::invalid(
            "plaintext",
            format!("at most {max} bytes for RSA PKCS#1 v1.5 with this key"),
        ));
    }
    public
        .key
        .pkcs1v15_encrypt_with_rng(&mut rng::current(rng), plaintext)
        .map_err(|e| CryptoError::invalid("plaintext", format!("RSA PKCS#1 v1.5 encryption: {e}")))
}

pub(super) fn check_rsa_ciphertext_len(public: &RsaPublic, ciphertext: &[u8]) -> Result<(), CryptoError> {
    if ciphertext.len() != public.size() {
        return Err(CryptoError::invalid(
            "ciphertext",
            format!("RSA ciphertexts are the modulus length, {} bytes, not {}", public.size(), ciphertext.len()),
        ));
    }
    Ok(())
}
