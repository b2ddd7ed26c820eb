//! Generating keys, and the rules generation and import share: AES and
//! generic-secret sizes, RSA moduli and exponents, triple DES parity and
//! distinct parts.

use rand::CryptoRng;
use zeroize::Zeroizing;

use super::{
    DES3_KEY_LEN, Key, RSA_BITS,
    forms::{Ed25519Private, RsaPrivate},
    invalid_key,
};
use crate::crypto::ec::EcPrivate;
use crate::crypto::{CryptoError, Curve, Generated, KeyMaterial, KeySpec, SecretBytes, rng};

/// Generated moduli are a multiple of this many bits.
const RSA_BITS_STEP: u32 = 256;
/// Smallest public exponent the HSM generates (and ring accepts for private keys).
const RSA_MIN_EXPONENT: u64 = 65537;
/// Largest public exponent ring and the `rsa` crate accept.
const RSA_MAX_EXPONENT: u64 = (1 << 33) - 1;

/// Generic secrets are 1..=800 bytes (CloudHSM's `GENERIC_SECRET` range).
const GENERIC_SECRET_LEN: std::ops::RangeInclusive<usize> = 1..=800;

impl KeyMaterial {
    /// AES key of 128, 192 or 256 bits.
    pub fn generate_aes(bits: u32, rng: &mut impl CryptoRng) -> Result<Self, CryptoError> {
        check_aes_bits(bits)?;
        Ok(Key::Aes(random_bytes(bits as usize / 8, rng)).into())
    }

    /// Generic secret of 1..=800 bytes.
    pub fn generate_generic_secret(len: usize, rng: &mut impl CryptoRng) -> Result<Self, CryptoError> {
        check_generic_secret_len("len", len)?;
        Ok(Key::GenericSecret(random_bytes(len, rng)).into())
    }

    /// Triple DES key of 24 bytes with DES parity set, its three parts
    /// distinct (SP 800-67 keying option 1).
    pub fn generate_des3(rng: &mut impl CryptoRng) -> Result<Self, CryptoError> {
        loop {
            let mut bytes = random_bytes(DES3_KEY_LEN, rng);
            set_des_parity(&mut bytes);
            // Two equal random 56-bit parts: a chance of about 2^-55; draw again.
            if check_des3_parts(&bytes).is_ok() {
                return Ok(Key::Des3(bytes).into());
            }
        }
    }

    /// RSA pair: modulus 2048..=4096 in steps of 256; exponent odd and >= 65537
    /// (and at most 2^33 - 1, the largest ring and the `rsa` crate accept).
    /// Returns (private, public). Expensive: callers run it off async workers.
    pub fn generate_rsa(
        modulus_bits: u32,
        public_exponent: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<(Self, Self), CryptoError> {
        check_rsa_parameters(modulus_bits, public_exponent)?;
        let key = rsa::PrivateKey::new_with_exp(
            &mut rng::current(rng),
            modulus_bits as usize,
            rsa::BoxedUint::from(public_exponent),
        )
        .map_err(|e| invalid_key(format_args!("RSA key generation failed: {e}")))?;
        let private = RsaPrivate::new(key)?;
        let public = private.public.clone();
        Ok((Key::RsaPrivate(Box::new(private)).into(), Key::RsaPublic(Box::new(public)).into()))
    }

    /// EC pair on `curve`. Returns (private, public).
    pub fn generate_ec(curve: Curve, rng: &mut impl CryptoRng) -> Result<(Self, Self), CryptoError> {
        let private = EcPrivate::generate(curve, rng)?;
        let public = private.public.clone();
        Ok((Key::EcPrivate(Box::new(private)).into(), Key::EcPublic(Box::new(public)).into()))
    }

    /// Ed25519 pair. Returns (private, public).
    pub fn generate_ed25519(rng: &mut impl CryptoRng) -> Result<(Self, Self), CryptoError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut_slice());
        let private = Ed25519Private::new(seed, None)?;
        let public = private.public.clone();
        Ok((Key::Ed25519Private(Box::new(private)).into(), Key::Ed25519Public(Box::new(public)).into()))
    }
}

impl KeySpec {
    /// Checks the parameters against the rules generation applies, without
    /// generating (RSA generation is slow; a seed file is checked whole
    /// before anything is made).
    pub fn check(self) -> Result<(), CryptoError> {
        match self {
            KeySpec::Aes { bits } => check_aes_bits(bits),
            KeySpec::GenericSecret { len } => check_generic_secret_len("len", len),
            KeySpec::Des3 => Ok(()),
            KeySpec::Rsa { modulus_bits, public_exponent } => check_rsa_parameters(modulus_bits, public_exponent),
            KeySpec::Ec(_) | KeySpec::Ed25519 => Ok(()),
        }
    }

    /// Generates the key. Expensive for RSA: callers run it off async workers.
    pub fn generate(self, rng: &mut impl CryptoRng) -> Result<Generated, CryptoError> {
        let pair = |(private, public)| Generated::Pair { private, public };
        Ok(match self {
            KeySpec::Aes { bits } => Generated::Secret(KeyMaterial::generate_aes(bits, rng)?),
            KeySpec::GenericSecret { len } => Generated::Secret(KeyMaterial::generate_generic_secret(len, rng)?),
            KeySpec::Des3 => Generated::Secret(KeyMaterial::generate_des3(rng)?),
            KeySpec::Rsa { modulus_bits, public_exponent } => {
                pair(KeyMaterial::generate_rsa(modulus_bits, public_exponent, rng)?)
            }
            KeySpec::Ec(curve) => pair(KeyMaterial::generate_ec(curve, rng)?),
            KeySpec::Ed25519 => pair(KeyMaterial::generate_ed25519(rng)?),
        })
    }
}

fn check_aes_bits(bits: u32) -> Result<(), CryptoError> {
    if !matches!(bits, 128 | 192 | 256) {
        return Err(CryptoError::invalid("bits", format!("AES keys are 128, 192 or 256 bits, not {bits}")));
    }
    Ok(())
}

fn check_rsa_parameters(modulus_bits: u32, public_exponent: u64) -> Result<(), CryptoError> {
    if !RSA_BITS.contains(&modulus_bits) || !modulus_bits.is_multiple_of(RSA_BITS_STEP) {
        return Err(CryptoError::invalid(
            "modulus_bits",
            format!("{} to {} in steps of {RSA_BITS_STEP}, not {modulus_bits}", RSA_BITS.start(), RSA_BITS.end()),
        ));
    }
    if public_exponent.is_multiple_of(2) || !(RSA_MIN_EXPONENT..=RSA_MAX_EXPONENT).contains(&public_exponent) {
        return Err(CryptoError::invalid(
            "public_exponent",
            format!("odd, at least {RSA_MIN_EXPONENT} and at most 2^33 - 1, not {public_exponent}"),
        ));
    }
    Ok(())
}

pub(super) fn check_generic_secret_len(field: &'static str, len: usize) -> Result<(), CryptoError> {
    if !GENERIC_SECRET_LEN.contains(&len) {
        return Err(CryptoError::invalid(
            field,
            format!(
                "generic secrets are {} to {} bytes, not {len}",
                GENERIC_SECRET_LEN.start(),
                GENERIC_SECRET_LEN.end()
            ),
        ));
    }
    Ok(())
}

/// Sets each byte's low bit so that the byte has odd parity, as FIPS 46-3
/// defines DES key bytes.
fn set_des_parity(key: &mut [u8]) {
    for byte in key {
        let high = *byte & 0xFE;
        *byte = high | u8::from(high.count_ones().is_multiple_of(2));
    }
}

/// SP 800-67 keying option 1: K1, K2 and K3 pairwise distinct. Parity bits
/// do not count (keys that differ only there are the same DES key).
pub(super) fn check_des3_parts(key: &[u8]) -> Result<(), CryptoError> {
    let part = |i: usize| key.get(i * 8..i * 8 + 8).map(|p| p.iter().map(|b| b & 0xFE).collect::<Vec<u8>>());
    let (k1, k2, k3) = (part(0), part(1), part(2));
    if k1 == k2 || k2 == k3 || k1 == k3 {
        return Err(CryptoError::invalid(
            "key",
            "the three 8-byte parts of a triple DES key (K1, K2, K3) must be distinct (NIST SP 800-67)",
        ));
    }
    Ok(())
}

fn random_bytes(len: usize, rng: &mut impl CryptoRng) -> SecretBytes {
    let mut bytes = Zeroizing::new(vec![0u8; len]);
    rng.fill_bytes(&mut bytes);
    bytes
}
