//! Raw RSA (`CKM_RSA_X_509`): RFC 8017's RSAEP/RSAVP1 and RSADP/RSASP1
//! with no encoding around them, from the `rsa` crate's `hazmat` module.
//! Padding is the caller's (libp11 hands OpenSSL's PSS encoding to
//! `CKM_RSA_X_509`), so the rules here are the integer's: at most the modulus
//! length, and less than the modulus. The private-key operation is blinded
//! with a generator seeded from the caller's, and checked by re-encryption
//! (the crate's defence against CRT faults).

use rand::CryptoRng;
use rsa::BoxedUint;
use rsa::hazmat::{rsa_decrypt_and_check, rsa_encrypt};
use rsa::traits::PublicKeyParts as _;
use zeroize::Zeroizing;

use super::keys::{RsaPrivate, RsaPublic};
use super::{CryptoError, SecretBytes, rng};

/// The public-key operation on `input` (named `field` in errors): `k` bytes.
pub(super) fn public(public: &RsaPublic, field: &'static str, input: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let x = representative(public, field, input)?;
    let y = rsa_encrypt(&public.key, &x).map_err(|e| CryptoError::InvalidKey(format!("raw RSA: {e}")))?;
    Ok(octets(&y, public.size()).to_vec())
}

/// The private-key operation on `input`: `k` bytes, leading zeros kept.
pub(super) fn private(
    private: &RsaPrivate,
    field: &'static str,
    input: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<SecretBytes, CryptoError> {
    let x = representative(&private.public, field, input)?;
    let y = rsa_decrypt_and_check(&private.key, Some(&mut rng::current(rng)), &x)
        .map(Zeroizing::new)
        .map_err(|e| CryptoError::InvalidKey(format!("raw RSA: {e}")))?;
    Ok(octets(&y, private.public.size()))
}

/// Whether `signature` (exactly `k` bytes, less than the modulus) is the
/// private-key operation on `data` (at most `k` bytes, compared left-padded
/// to `k`). A malformed signature does not verify; data too long is misuse.
pub(super) fn verify(public: &RsaPublic, data: &[u8], signature: &[u8]) -> Result<bool, CryptoError> {
    let k = public.size();
    check_len(k, "data", data)?;
    if signature.len() != k {
        return Ok(false);
    }
    let Ok(recovered) = self::public(public, "signature", signature) else {
        return Ok(false);
    };
    let (zeros, tail) = recovered.split_at(k - data.len());
    Ok(zeros.iter().all(|b| *b == 0) && tail == data)
}

/// OS2IP of `input`, which must be at most `k` bytes and less than `n`.
fn representative(public: &RsaPublic, field: &'static str, input: &[u8]) -> Result<Zeroizing<BoxedUint>, CryptoError> {
    check_len(public.size(), field, input)?;
    let n = public.key.n().as_ref();
    let x = BoxedUint::from_be_slice(input, n.bits_precision())
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::invalid(field, "does not fit the modulus's precision"))?;
    if *x >= *n {
        return Err(CryptoError::invalid(field, "as a big-endian integer it must be less than the RSA modulus"));
    }
    Ok(x)
}

fn check_len(k: usize, field: &'static str, input: &[u8]) -> Result<(), CryptoError> {
    if input.len() > k {
        return Err(CryptoError::invalid(
            field,
            format!("raw RSA takes at most the modulus length, {k} bytes, not {}", input.len()),
        ));
    }
    Ok(())
}

/// I2OSP: `x` (less than the modulus, so it fits) as exactly `k` bytes.
fn octets(x: &BoxedUint, k: usize) -> SecretBytes {
    let bytes = Zeroizing::new(x.to_be_bytes());
    let mut out = Zeroizing::new(vec![0u8; k]);
    let tail = &bytes[bytes.len().saturating_sub(k)..];
    out[k - tail.len()..].copy_from_slice(tail);
    out
}
