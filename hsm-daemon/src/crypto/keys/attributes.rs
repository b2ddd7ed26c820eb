//! What the HSM shows of a key: its kind and class, lengths, RSA modulus
//! and exponent, EC point, and key check value.

use rsa::traits::PublicKeyParts;

use super::Key;
use crate::crypto::{HashAlg, KeyClass, KeyKind, KeyMaterial};

impl KeyMaterial {
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    pub fn class(&self) -> KeyClass {
        self.class
    }

    /// Key length in bytes for secret keys (`key-length-bytes`); `None` otherwise.
    pub fn secret_len(&self) -> Option<usize> {
        self.secret_bytes().map(<[u8]>::len)
    }

    /// `key-length-bytes` as the CloudHSM CLI shows it, for every key: a
    /// secret key's length; a private key's PKCS#8 DER length (about 1217
    /// for RSA-2048, 122 for P-224, as AWS's examples show); a public EC or
    /// Ed25519 key's point length (57 for P-224); and for an RSA public key
    /// twice the modulus length, which gives AWS's 512 for 2048 bits (AWS
    /// does not say how it counts). `None` only if stored material no longer
    /// parses.
    pub fn key_length_bytes(&self) -> Option<usize> {
        match self.inner()? {
            Key::Aes(bytes) | Key::GenericSecret(bytes) | Key::Des3(bytes) => Some(bytes.len()),
            Key::RsaPublic(k) => Some(2 * k.size()),
            Key::EcPublic(k) => Some(k.point.len()),
            Key::Ed25519Public(k) => Some(k.key.len()),
            Key::RsaPrivate(_) | Key::EcPrivate(_) | Key::Ed25519Private(_) => {
                self.to_wrappable().ok().map(|der| der.len())
            }
        }
    }

    /// RSA modulus (big-endian) and its size in bits; `None` for non-RSA.
    pub fn modulus(&self) -> Option<(Vec<u8>, u32)> {
        let public = self.rsa_public()?;
        Some((public.key.n_bytes().into_vec(), public.bits))
    }

    /// RSA public exponent; `None` for non-RSA.
    pub fn public_exponent(&self) -> Option<u64> {
        // At most 2^33 - 1 (the libraries refuse larger), so it fits.
        let bytes = self.rsa_public()?.key.e_bytes();
        bytes.iter().try_fold(0u64, |acc, &b| acc.checked_mul(256).map(|acc| acc | u64::from(b)))
    }

    /// EC point (uncompressed SEC1, `04 || x || y`) or the Ed25519 public key
    /// (32 bytes); `None` otherwise.
    pub fn ec_point(&self) -> Option<Vec<u8>> {
        if let Some(public) = self.ec_public() {
            Some(public.point.clone())
        } else {
            self.ed25519_public().map(|public| public.key.to_vec())
        }
    }

    /// Key check value: first 3 bytes of AES-ECB(key, zero block) for AES,
    /// of triple-DES-ECB(key, zero block) for triple DES, of SHA-1(key) for
    /// generic secrets, of SHA-1 over the SPKI DER of the
    /// public key for asymmetric keys.
    pub fn check_value(&self) -> [u8; 3] {
        let Some(inner) = self.inner() else { return [0; 3] };
        let full = match inner {
            Key::Aes(bytes) => {
                // AES keys are 16, 24 or 32 bytes by construction, so this
                // cannot fail; a zero check value would show if it ever did.
                crate::crypto::cipher::aes_encrypt_block(bytes, [0u8; 16])
                    .map(|block| block.to_vec())
                    .unwrap_or_default()
            }
            Key::Des3(bytes) => {
                // 24 bytes by construction, as for AES above.
                crate::crypto::cipher::des3_encrypt_block(bytes, [0u8; 8])
                    .map(|block| block.to_vec())
                    .unwrap_or_default()
            }
            Key::GenericSecret(bytes) => crate::crypto::digest(HashAlg::Sha1, bytes),
            Key::RsaPrivate(_)
            | Key::RsaPublic(_)
            | Key::EcPrivate(_)
            | Key::EcPublic(_)
            | Key::Ed25519Private(_)
            | Key::Ed25519Public(_) => crate::crypto::digest(HashAlg::Sha1, self.spki_der().unwrap_or_default()),
        };
        let mut kcv = [0u8; 3];
        if let Some(head) = full.get(..3) {
            kcv.copy_from_slice(head);
        }
        kcv
    }
}
