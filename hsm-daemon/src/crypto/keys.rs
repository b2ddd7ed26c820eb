//! [`KeyMaterial`]: generation, PEM/DER import and export, attributes and
//! check values.
//!
//! A key is parsed once, when it is made or imported, into every form the
//! mechanisms use (ring's key pairs beside the RustCrypto keys, and the DER
//! encodings that attributes and check values read), so that repeated
//! operations parse nothing. ed25519-dalek's forms of an Ed25519 key, which
//! only Ed25519ph uses, are made on its first use and then kept.

use std::sync::OnceLock;

use pkcs8::der::asn1::{BitStringRef, OctetStringRef};
use pkcs8::der::pem::LineEnding;
use pkcs8::der::{Decode, Encode, SecretDocument};
use pkcs8::{ObjectIdentifier, PrivateKeyInfoRef};
use rand::CryptoRng;
use ring::signature::{Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use rsa::traits::PublicKeyParts;
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use zeroize::Zeroizing;

use super::ec::{self, EcPrivate, EcPublic};
use super::{CryptoError, Curve, Generated, KeyClass, KeyKind, KeyMaterial, KeySpec, SecretBytes, rng};

/// id-Ed25519 (RFC 8410).
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// RSA moduli the HSM generates and accepts, in bits.
const RSA_BITS: std::ops::RangeInclusive<u32> = 2048..=4096;
/// Generated moduli are a multiple of this many bits.
const RSA_BITS_STEP: u32 = 256;
/// Smallest public exponent the HSM generates (and ring accepts for private keys).
const RSA_MIN_EXPONENT: u64 = 65537;
/// Largest public exponent ring and the `rsa` crate accept.
const RSA_MAX_EXPONENT: u64 = (1 << 33) - 1;

/// Generic secrets are 1..=800 bytes (CloudHSM's `GENERIC_SECRET` range).
const GENERIC_SECRET_LEN: std::ops::RangeInclusive<usize> = 1..=800;

/// Triple DES keys: three 8-byte DES keys (keying option 1 of SP 800-67).
pub(super) const DES3_KEY_LEN: usize = 24;

/// The parsed forms of one key.
pub(super) enum Key {
    Aes(SecretBytes),
    GenericSecret(SecretBytes),
    Des3(SecretBytes),
    RsaPrivate(Box<RsaPrivate>),
    RsaPublic(Box<RsaPublic>),
    EcPrivate(Box<EcPrivate>),
    EcPublic(Box<EcPublic>),
    Ed25519Private(Box<Ed25519Private>),
    Ed25519Public(Box<Ed25519Public>),
}

/// An RSA private key: the `rsa` crate's (PKCS#8 export, OAEP/PKCS#1
/// decryption, the signatures ring lacks) and ring's (the signatures it has).
pub(super) struct RsaPrivate {
    pub(super) key: rsa::PrivateKey,
    pub(super) ring: RsaKeyPair,
    pub(super) public: RsaPublic,
}

/// An RSA public key and its encodings.
#[derive(Clone)]
pub(super) struct RsaPublic {
    pub(super) key: rsa::PublicKey,
    /// PKCS#1 `RSAPublicKey` DER, what ring verifies against.
    pub(super) pkcs1_der: Vec<u8>,
    spki_der: Vec<u8>,
    bits: u32,
}

/// An Ed25519 private key: ring's key pair, and the seed for PKCS#8 export
/// (ring does not give it back).
pub(super) struct Ed25519Private {
    pub(super) ring: Ed25519KeyPair,
    seed: Zeroizing<[u8; 32]>,
    pub(super) public: Ed25519Public,
    /// ed25519-dalek's key, for Ed25519ph (ring has no prehashed form).
    /// Made on first use: most keys only ever sign pure Ed25519, and making
    /// it costs a scalar multiplication.
    dalek: OnceLock<ed25519_dalek::SigningKey>,
}

/// An Ed25519 public key and its SPKI encoding.
#[derive(Clone)]
pub(super) struct Ed25519Public {
    pub(super) key: [u8; 32],
    spki_der: Vec<u8>,
    /// ed25519-dalek's key, for Ed25519ph, decompressed on first use; `None`
    /// inside when the 32 bytes are not a curve point (ring, which verifies
    /// pure Ed25519, finds that out only when it verifies, so import does
    /// not refuse such a key either).
    dalek: OnceLock<Option<ed25519_dalek::VerifyingKey>>,
}

/// A stored encoding that does not parse: it was authenticated when it was
/// unsealed, so the store was written by a build that encoded it wrongly.
fn unparsable() -> CryptoError {
    invalid_key("the stored key material does not parse")
}

fn invalid_key(what: impl std::fmt::Display) -> CryptoError {
    CryptoError::InvalidKey(what.to_string())
}

impl RsaPrivate {
    fn new(key: rsa::PrivateKey) -> Result<Self, CryptoError> {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        let public = RsaPublic::new(key.to_public_key())?;
        let pkcs1 = key.to_pkcs1_der().map_err(|e| invalid_key(format_args!("RSA private key: {e}")))?;
        let ring = RsaKeyPair::from_der(pkcs1.as_bytes())
            .map_err(|e| invalid_key(format_args!("RSA private key rejected by ring: {e}")))?;
        Ok(Self { key, ring, public })
    }
}

impl RsaPublic {
    fn new(key: rsa::PublicKey) -> Result<Self, CryptoError> {
        use rsa::pkcs1::EncodeRsaPublicKey as _;
        use rsa::pkcs8::EncodePublicKey as _;
        let bits = key.n().bit_width();
        if !RSA_BITS.contains(&bits) {
            return Err(invalid_key(format_args!(
                "RSA modulus of {bits} bits; the HSM takes {} to {} bits",
                RSA_BITS.start(),
                RSA_BITS.end()
            )));
        }
        let pkcs1_der = key.to_pkcs1_der().map_err(|e| invalid_key(format_args!("RSA public key: {e}")))?.into_vec();
        let spki_der =
            key.to_public_key_der().map_err(|e| invalid_key(format_args!("RSA public key: {e}")))?.into_vec();
        Ok(Self { key, pkcs1_der, spki_der, bits })
    }

    /// Modulus length in bytes: the length of every ciphertext and signature.
    pub(super) fn size(&self) -> usize {
        self.key.size()
    }
}

impl Ed25519Private {
    fn new(seed: Zeroizing<[u8; 32]>, public_key: Option<&[u8]>) -> Result<Self, CryptoError> {
        let ring = match public_key {
            Some(public_key) => Ed25519KeyPair::from_seed_and_public_key(seed.as_slice(), public_key),
            None => Ed25519KeyPair::from_seed_unchecked(seed.as_slice()),
        }
        .map_err(|e| invalid_key(format_args!("Ed25519 private key rejected by ring: {e}")))?;
        let public = Ed25519Public::new(ring.public_key().as_ref())?;
        Ok(Self { ring, seed, public, dalek: OnceLock::new() })
    }

    /// The key ed25519-dalek signs Ed25519ph with.
    pub(super) fn dalek(&self) -> &ed25519_dalek::SigningKey {
        self.dalek.get_or_init(|| ed25519_dalek::SigningKey::from_bytes(&self.seed))
    }

    /// PKCS#8 v1 (RFC 8410 `OneAsymmetricKey` without the public key, as
    /// OpenSSL writes it): the private key is an OCTET STRING holding the seed.
    fn to_pkcs8_der(&self) -> Result<SecretBytes, CryptoError> {
        let encoding = |e: pkcs8::der::Error| invalid_key(format_args!("Ed25519 private key: {e}"));
        let seed = OctetStringRef::new(self.seed.as_slice()).map_err(encoding)?;
        let inner = Zeroizing::new(seed.to_der().map_err(encoding)?);
        let algorithm = AlgorithmIdentifierRef { oid: ED25519_OID, parameters: None };
        let info = PrivateKeyInfoRef::new(algorithm, OctetStringRef::new(&inner).map_err(encoding)?);
        Ok(Zeroizing::new(info.to_der().map_err(encoding)?))
    }

    /// Parses RFC 8410 PKCS#8 (v1, or v2 with the public key, which must match).
    fn from_pkcs8(info: &PrivateKeyInfoRef<'_>) -> Result<Self, CryptoError> {
        if info.algorithm.parameters.is_some() {
            return Err(invalid_key("Ed25519 private key: the algorithm takes no parameters"));
        }
        let seed = <&OctetStringRef>::from_der(info.private_key.as_bytes())
            .map_err(|e| invalid_key(format_args!("Ed25519 private key: {e}")))?;
        if seed.as_bytes().len() != 32 {
            return Err(invalid_key("Ed25519 private key: the seed must be 32 bytes"));
        }
        let mut copy = Zeroizing::new([0u8; 32]);
        copy.copy_from_slice(seed.as_bytes());
        let public_key = match &info.public_key {
            Some(bits) => {
                Some(bits.as_bytes().ok_or_else(|| invalid_key("Ed25519 public key: not a whole number of bytes"))?)
            }
            None => None,
        };
        Self::new(copy, public_key)
    }
}

impl Ed25519Public {
    fn new(key: &[u8]) -> Result<Self, CryptoError> {
        let key: [u8; 32] = key.try_into().map_err(|_| invalid_key("Ed25519 public key: must be 32 bytes"))?;
        let encoding = |e: pkcs8::der::Error| invalid_key(format_args!("Ed25519 public key: {e}"));
        let spki = SubjectPublicKeyInfoRef {
            algorithm: AlgorithmIdentifierRef { oid: ED25519_OID, parameters: None },
            subject_public_key: BitStringRef::from_bytes(&key).map_err(encoding)?,
        };
        let spki_der = spki.to_der().map_err(encoding)?;
        Ok(Self { key, spki_der, dalek: OnceLock::new() })
    }

    /// The key ed25519-dalek verifies Ed25519ph with; `None` when the key is
    /// not a curve point (no signature verifies under it).
    pub(super) fn dalek(&self) -> Option<&ed25519_dalek::VerifyingKey> {
        self.dalek.get_or_init(|| ed25519_dalek::VerifyingKey::from_bytes(&self.key).ok()).as_ref()
    }
}

impl Key {
    fn kind(&self) -> KeyKind {
        match self {
            Key::Aes(_) => KeyKind::Aes,
            Key::GenericSecret(_) => KeyKind::GenericSecret,
            Key::Des3(_) => KeyKind::Des3,
            Key::RsaPrivate(_) | Key::RsaPublic(_) => KeyKind::Rsa,
            Key::EcPrivate(k) => KeyKind::Ec(k.curve()),
            Key::EcPublic(k) => KeyKind::Ec(k.curve()),
            Key::Ed25519Private(_) | Key::Ed25519Public(_) => KeyKind::Ed25519,
        }
    }

    fn class(&self) -> KeyClass {
        match self {
            Key::Aes(_) | Key::GenericSecret(_) | Key::Des3(_) => KeyClass::Secret,
            Key::RsaPrivate(_) | Key::EcPrivate(_) | Key::Ed25519Private(_) => KeyClass::Private,
            Key::RsaPublic(_) | Key::EcPublic(_) | Key::Ed25519Public(_) => KeyClass::Public,
        }
    }
}

impl From<Key> for KeyMaterial {
    fn from(inner: Key) -> Self {
        KeyMaterial {
            kind: inner.kind(),
            class: inner.class(),
            encoded: None,
            parsed: std::sync::OnceLock::from(Some(inner)),
        }
    }
}

impl KeyMaterial {
    // ---- generation ----
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

    // ---- import / export ----
    /// Parses a PEM private or public key: PKCS#8 (`PRIVATE KEY`), PKCS#1
    /// (`RSA PRIVATE KEY`, `RSA PUBLIC KEY`), SEC1 (`EC PRIVATE KEY`), SPKI
    /// (`PUBLIC KEY`), for RSA, the five curves and Ed25519.
    pub fn from_pem(pem: &str) -> Result<Self, CryptoError> {
        use rsa::pkcs1::{DecodeRsaPrivateKey as _, DecodeRsaPublicKey as _};
        let (label, der) = SecretDocument::from_pem(pem).map_err(|e| invalid_key(format_args!("PEM: {e}")))?;
        let der = der.as_bytes();
        match label {
            "PRIVATE KEY" => Self::from_der_private(der),
            "PUBLIC KEY" => Self::from_der_public(der),
            "RSA PRIVATE KEY" => {
                let key = rsa::PrivateKey::from_pkcs1_der(der)
                    .map_err(|e| invalid_key(format_args!("RSA PRIVATE KEY: {e}")))?;
                Ok(Key::RsaPrivate(Box::new(RsaPrivate::new(key)?)).into())
            }
            "RSA PUBLIC KEY" => {
                let key = rsa::PublicKey::from_pkcs1_der(der)
                    .map_err(|e| invalid_key(format_args!("RSA PUBLIC KEY: {e}")))?;
                Ok(Key::RsaPublic(Box::new(RsaPublic::new(key)?)).into())
            }
            "EC PRIVATE KEY" => Self::from_sec1_der(der),
            other => Err(invalid_key(format_args!(
                "unsupported PEM label {other:?} (PRIVATE KEY, PUBLIC KEY, RSA PRIVATE KEY, RSA PUBLIC KEY or EC PRIVATE KEY)"
            ))),
        }
    }

    /// Parses a PKCS#8 `PrivateKeyInfo` (DER) of an RSA, EC or Ed25519 key.
    /// (Added to the contract: the DER counterpart of [`Self::from_pem`].)
    pub fn from_der_private(der: &[u8]) -> Result<Self, CryptoError> {
        use rsa::pkcs8::DecodePrivateKey as _;
        let info = PrivateKeyInfoRef::from_der(der).map_err(|e| invalid_key(format_args!("PKCS#8: {e}")))?;
        let oid = info.algorithm.oid;
        if oid == pkcs1::ALGORITHM_OID {
            let key = rsa::PrivateKey::from_pkcs8_der(der).map_err(|e| invalid_key(format_args!("RSA PKCS#8: {e}")))?;
            Ok(Key::RsaPrivate(Box::new(RsaPrivate::new(key)?)).into())
        } else if oid == p256::elliptic_curve::ALGORITHM_OID {
            let curve = named_curve(&info.algorithm)?;
            Ok(Key::EcPrivate(Box::new(EcPrivate::from_pkcs8_der(curve, der)?)).into())
        } else if oid == ED25519_OID {
            Ok(Key::Ed25519Private(Box::new(Ed25519Private::from_pkcs8(&info)?)).into())
        } else {
            Err(invalid_key(format_args!("PKCS#8: unsupported algorithm {oid}")))
        }
    }

    /// Parses a SEC1 `ECPrivateKey` (DER), on the curve its parameters name
    /// (or, without them, the one its length and public key settle).
    fn from_sec1_der(der: &[u8]) -> Result<Self, CryptoError> {
        let sec1 = sec1::EcPrivateKey::from_der(der).map_err(|e| invalid_key(format_args!("EC PRIVATE KEY: {e}")))?;
        let key = match sec1.parameters.and_then(|p| p.named_curve()) {
            Some(oid) => {
                let curve = ec::curve_from_oid(&oid)
                    .ok_or_else(|| invalid_key(format_args!("EC PRIVATE KEY: unsupported curve {oid}")))?;
                EcPrivate::from_sec1_der(curve, der)?
            }
            None => sec1_without_curve(&sec1, der)?,
        };
        Ok(Key::EcPrivate(Box::new(key)).into())
    }

    /// Parses a `SubjectPublicKeyInfo` (DER) of an RSA, EC or Ed25519 key.
    /// (Added to the contract: the DER counterpart of [`Self::from_pem`].)
    pub fn from_der_public(der: &[u8]) -> Result<Self, CryptoError> {
        use rsa::pkcs8::DecodePublicKey as _;
        let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|e| invalid_key(format_args!("SPKI: {e}")))?;
        let oid = spki.algorithm.oid;
        if oid == pkcs1::ALGORITHM_OID {
            let key =
                rsa::PublicKey::from_public_key_der(der).map_err(|e| invalid_key(format_args!("RSA SPKI: {e}")))?;
            Ok(Key::RsaPublic(Box::new(RsaPublic::new(key)?)).into())
        } else if oid == p256::elliptic_curve::ALGORITHM_OID {
            let curve = named_curve(&spki.algorithm)?;
            Ok(Key::EcPublic(Box::new(EcPublic::from_spki_der(curve, der)?)).into())
        } else if oid == ED25519_OID {
            if spki.algorithm.parameters.is_some() {
                return Err(invalid_key("Ed25519 public key: the algorithm takes no parameters"));
            }
            let key = spki
                .subject_public_key
                .as_bytes()
                .ok_or_else(|| invalid_key("Ed25519 public key: not a whole number of bytes"))?;
            Ok(Key::Ed25519Public(Box::new(Ed25519Public::new(key)?)).into())
        } else {
            Err(invalid_key(format_args!("SPKI: unsupported algorithm {oid}")))
        }
    }

    /// Raw symmetric key bytes: AES (16/24/32), generic secret (1..=800) or
    /// triple DES (24, three distinct parts; parity bits are not checked,
    /// as DES ignores them).
    pub fn from_raw_secret(kind: KeyKind, bytes: &[u8]) -> Result<Self, CryptoError> {
        match kind {
            KeyKind::Aes => {
                if !matches!(bytes.len(), 16 | 24 | 32) {
                    return Err(CryptoError::invalid(
                        "key",
                        format!("AES keys are 16, 24 or 32 bytes, not {}", bytes.len()),
                    ));
                }
                Ok(Key::Aes(Zeroizing::new(bytes.to_vec())).into())
            }
            KeyKind::GenericSecret => {
                check_generic_secret_len("key", bytes.len())?;
                Ok(Key::GenericSecret(Zeroizing::new(bytes.to_vec())).into())
            }
            KeyKind::Des3 => {
                if bytes.len() != DES3_KEY_LEN {
                    return Err(CryptoError::invalid(
                        "key",
                        format!("triple DES keys are {DES3_KEY_LEN} bytes, not {}", bytes.len()),
                    ));
                }
                check_des3_parts(bytes)?;
                Ok(Key::Des3(Zeroizing::new(bytes.to_vec())).into())
            }
            KeyKind::Rsa | KeyKind::Ec(_) | KeyKind::Ed25519 => Err(CryptoError::invalid(
                "kind",
                format!("raw secret bytes make AES, triple DES or generic-secret keys, not {}", kind_name(kind)),
            )),
        }
    }

    /// The public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`); works on a
    /// private key too (its public half). Error for secret keys.
    pub fn public_pem(&self) -> Result<String, CryptoError> {
        let der = self.spki_der().ok_or_else(|| CryptoError::WrongKeyType {
            mechanism: "public key export".to_owned(),
            key: self.describe(),
        })?;
        pkcs8::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, der)
            .map_err(|e| invalid_key(format_args!("PEM encoding: {e}")))
    }

    /// The public half of a private key, as its own material.
    pub fn public_half(&self) -> Option<Self> {
        let public = match self.inner()? {
            Key::RsaPrivate(k) => Key::RsaPublic(Box::new(k.public.clone())),
            Key::EcPrivate(k) => Key::EcPublic(Box::new(k.public.clone())),
            Key::Ed25519Private(k) => Key::Ed25519Public(Box::new(k.public.clone())),
            Key::Aes(_)
            | Key::GenericSecret(_)
            | Key::Des3(_)
            | Key::RsaPublic(_)
            | Key::EcPublic(_)
            | Key::Ed25519Public(_) => {
                return None;
            }
        };
        Some(public.into())
    }

    /// Bytes to wrap: raw for AES/generic secret, PKCS#8 DER for private keys,
    /// SPKI DER for public keys.
    pub fn to_wrappable(&self) -> Result<SecretBytes, CryptoError> {
        use rsa::pkcs8::EncodePrivateKey as _;
        if let Some(encoded) = &self.encoded {
            return Ok(encoded.clone());
        }
        match self.inner().ok_or_else(unparsable)? {
            Key::Aes(bytes) | Key::GenericSecret(bytes) | Key::Des3(bytes) => Ok(bytes.clone()),
            Key::RsaPrivate(k) => {
                let der = k.key.to_pkcs8_der().map_err(|e| invalid_key(format_args!("RSA private key: {e}")))?;
                Ok(Zeroizing::new(der.as_bytes().to_vec()))
            }
            Key::EcPrivate(k) => k.to_pkcs8_der(),
            Key::Ed25519Private(k) => k.to_pkcs8_der(),
            Key::RsaPublic(_) | Key::EcPublic(_) | Key::Ed25519Public(_) => {
                // Public keys always have an SPKI encoding.
                Ok(Zeroizing::new(self.spki_der().unwrap_or_default().to_vec()))
            }
        }
    }

    /// Material from the store: `bytes` (what [`Self::to_wrappable`] gave,
    /// authenticated when it was unsealed) of a key of `kind` and `class`,
    /// parsed on first use rather than now (see [`KeyMaterial`]).
    pub fn stored(kind: KeyKind, class: KeyClass, bytes: SecretBytes) -> Self {
        KeyMaterial { kind, class, encoded: Some(bytes), parsed: std::sync::OnceLock::new() }
    }

    /// The parsed forms, parsing a stored encoding the first time.
    fn inner(&self) -> Option<&Key> {
        self.parsed
            .get_or_init(|| {
                let encoded = self.encoded.as_deref()?;
                Self::from_wrappable(self.kind, self.class, encoded).ok()?.parsed.into_inner().flatten()
            })
            .as_ref()
    }

    /// Whether the parsed forms exist yet (tests of lazy parsing).
    #[cfg(test)]
    pub(crate) fn is_parsed(&self) -> bool {
        self.parsed.get().is_some()
    }

    /// Inverse of `to_wrappable`, for a key of `kind` and `class`.
    pub fn from_wrappable(kind: KeyKind, class: KeyClass, bytes: &[u8]) -> Result<Self, CryptoError> {
        let key = match (class, kind) {
            (KeyClass::Secret, KeyKind::Aes | KeyKind::GenericSecret | KeyKind::Des3) => {
                return Self::from_raw_secret(kind, bytes);
            }
            (KeyClass::Private, KeyKind::Rsa | KeyKind::Ec(_) | KeyKind::Ed25519) => Self::from_der_private(bytes)?,
            (KeyClass::Public, KeyKind::Rsa | KeyKind::Ec(_) | KeyKind::Ed25519) => Self::from_der_public(bytes)?,
            _ => {
                return Err(CryptoError::invalid(
                    "class",
                    format!("a {} key is not of class {class:?}", kind_name(kind)),
                ));
            }
        };
        if key.kind() != kind {
            return Err(invalid_key(format_args!(
                "the bytes hold a {} key, not a {} key",
                kind_name(key.kind()),
                kind_name(kind)
            )));
        }
        Ok(key)
    }

    /// An unwrapped EC private key on whichever curve its encoding names:
    /// PKCS #8 (what [`Self::to_wrappable`] gives) carries the curve's OID,
    /// and SEC1 (what other tools may wrap) its parameters. CloudHSM's
    /// unwrap takes no curve, so the curve comes from here.
    pub fn from_wrapped_ec_private(bytes: &[u8]) -> Result<Self, CryptoError> {
        let key = Self::from_der_private(bytes).or_else(|pkcs8| Self::from_sec1_der(bytes).map_err(|_| pkcs8))?;
        if !matches!(key.kind(), KeyKind::Ec(_)) || key.class() != KeyClass::Private {
            return Err(invalid_key(format_args!(
                "the bytes hold a {} key, not an EC private key",
                kind_name(key.kind())
            )));
        }
        Ok(key)
    }

    // ---- attributes ----
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
                super::cipher::aes_encrypt_block(bytes, [0u8; 16]).map(|block| block.to_vec()).unwrap_or_default()
            }
            Key::Des3(bytes) => {
                // 24 bytes by construction, as for AES above.
                super::cipher::des3_encrypt_block(bytes, [0u8; 8]).map(|block| block.to_vec()).unwrap_or_default()
            }
            Key::GenericSecret(bytes) => super::digest(super::HashAlg::Sha1, bytes),
            _ => super::digest(super::HashAlg::Sha1, self.spki_der().unwrap_or_default()),
        };
        let mut kcv = [0u8; 3];
        if let Some(head) = full.get(..3) {
            kcv.copy_from_slice(head);
        }
        kcv
    }

    // ---- for the mechanisms ----
    /// AES, triple DES or generic-secret bytes.
    pub(super) fn secret_bytes(&self) -> Option<&[u8]> {
        match self.inner()? {
            Key::Aes(bytes) | Key::GenericSecret(bytes) | Key::Des3(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// AES key bytes.
    pub(super) fn aes_bytes(&self) -> Option<&[u8]> {
        match self.inner()? {
            Key::Aes(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// Triple DES key bytes.
    pub(super) fn des3_bytes(&self) -> Option<&[u8]> {
        match self.inner()? {
            Key::Des3(bytes) => Some(bytes),
            _ => None,
        }
    }

    pub(super) fn rsa_private(&self) -> Option<&RsaPrivate> {
        match self.inner()? {
            Key::RsaPrivate(k) => Some(k),
            _ => None,
        }
    }

    /// An RSA public key, or a private key's public half.
    pub(super) fn rsa_public(&self) -> Option<&RsaPublic> {
        match self.inner()? {
            Key::RsaPrivate(k) => Some(&k.public),
            Key::RsaPublic(k) => Some(k),
            _ => None,
        }
    }

    pub(super) fn ec_private(&self) -> Option<&EcPrivate> {
        match self.inner()? {
            Key::EcPrivate(k) => Some(k),
            _ => None,
        }
    }

    /// An EC public key, or a private key's public half.
    pub(super) fn ec_public(&self) -> Option<&EcPublic> {
        match self.inner()? {
            Key::EcPrivate(k) => Some(&k.public),
            Key::EcPublic(k) => Some(k),
            _ => None,
        }
    }

    pub(super) fn ed25519_private(&self) -> Option<&Ed25519Private> {
        match self.inner()? {
            Key::Ed25519Private(k) => Some(k),
            _ => None,
        }
    }

    /// An Ed25519 public key, or a private key's public half.
    pub(super) fn ed25519_public(&self) -> Option<&Ed25519Public> {
        match self.inner()? {
            Key::Ed25519Private(k) => Some(&k.public),
            Key::Ed25519Public(k) => Some(k),
            _ => None,
        }
    }

    /// SPKI DER of an asymmetric key (a private key's public half).
    fn spki_der(&self) -> Option<&[u8]> {
        match self.inner()? {
            Key::Aes(_) | Key::GenericSecret(_) | Key::Des3(_) => None,
            Key::RsaPrivate(k) => Some(&k.public.spki_der),
            Key::RsaPublic(k) => Some(&k.spki_der),
            Key::EcPrivate(k) => Some(&k.public.spki_der),
            Key::EcPublic(k) => Some(&k.spki_der),
            Key::Ed25519Private(k) => Some(&k.public.spki_der),
            Key::Ed25519Public(k) => Some(&k.spki_der),
        }
    }

    /// "AES", "RSA private", "EC P-256 public"...: for error messages.
    pub(super) fn describe(&self) -> String {
        match self.class() {
            KeyClass::Secret => kind_name(self.kind()).to_owned(),
            KeyClass::Private => format!("{} private", kind_name(self.kind())),
            KeyClass::Public => format!("{} public", kind_name(self.kind())),
        }
    }
}

/// SEC1 makes the curve parameters optional (elliptic-curve 0.13, for one,
/// omits them). The private key's length then names the curve, except that
/// 32 bytes may be P-256 or secp256k1: the embedded public key, which must
/// match the private key, tells them apart.
fn sec1_without_curve(sec1: &sec1::EcPrivateKey<'_>, der: &[u8]) -> Result<EcPrivate, CryptoError> {
    let candidates: &[Curve] = match sec1.private_key.len() {
        28 => &[Curve::P224],
        32 => &[Curve::P256, Curve::Secp256k1],
        48 => &[Curve::P384],
        66 => &[Curve::P521],
        n => return Err(invalid_key(format_args!("EC PRIVATE KEY: no named curve, and no curve has {n}-byte keys"))),
    };
    for &curve in candidates {
        let Ok(key) = EcPrivate::from_sec1_der(curve, der) else { continue };
        match sec1.public_key {
            Some(point) if point == key.public.point.as_slice() => return Ok(key),
            None if candidates.len() == 1 => return Ok(key),
            _ => {}
        }
    }
    Err(invalid_key(
        "EC PRIVATE KEY: no named curve, and the key length and public key do not settle which curve it is on",
    ))
}

/// The curve named by an `id-ecPublicKey` algorithm's parameters.
fn named_curve(algorithm: &AlgorithmIdentifierRef<'_>) -> Result<Curve, CryptoError> {
    let oid = algorithm.parameters_oid().map_err(|_| invalid_key("EC key: no named curve"))?;
    ec::curve_from_oid(&oid).ok_or_else(|| invalid_key(format_args!("EC key: unsupported curve {oid}")))
}

fn kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Aes => "AES",
        KeyKind::GenericSecret => "generic secret",
        KeyKind::Des3 => "triple DES",
        KeyKind::Rsa => "RSA",
        KeyKind::Ec(curve) => ec::curve_name(curve),
        KeyKind::Ed25519 => "Ed25519",
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

fn check_generic_secret_len(field: &'static str, len: usize) -> Result<(), CryptoError> {
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
fn check_des3_parts(key: &[u8]) -> Result<(), CryptoError> {
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
