//! The parsed forms of RSA and Ed25519 keys: the library objects the
//! mechanisms call (ring's beside the RustCrypto crates') and the encodings
//! attributes and export read, each made once when the key is.

use std::sync::OnceLock;

use pkcs8::PrivateKeyInfoRef;
use pkcs8::der::asn1::{BitStringRef, OctetStringRef};
use pkcs8::der::{Decode, Encode};
use ring::signature::{Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use rsa::traits::PublicKeyParts;
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use zeroize::Zeroizing;

use super::{ED25519_OID, RSA_BITS, invalid_key};
use crate::crypto::{CryptoError, SecretBytes};

/// An RSA private key: the `rsa` crate's (PKCS#8 export, OAEP/PKCS#1
/// decryption, the signatures ring lacks) and ring's (the signatures it has).
pub(in crate::crypto) struct RsaPrivate {
    pub(in crate::crypto) key: rsa::PrivateKey,
    pub(in crate::crypto) ring: RsaKeyPair,
    pub(in crate::crypto) public: RsaPublic,
}

/// An RSA public key and its encodings.
#[derive(Clone)]
pub(in crate::crypto) struct RsaPublic {
    pub(in crate::crypto) key: rsa::PublicKey,
    /// PKCS#1 `RSAPublicKey` DER, what ring verifies against.
    pub(in crate::crypto) pkcs1_der: Vec<u8>,
    pub(super) spki_der: Vec<u8>,
    pub(super) bits: u32,
}

/// An Ed25519 private key: ring's key pair, and the seed for PKCS#8 export
/// (ring does not give it back).
pub(in crate::crypto) struct Ed25519Private {
    pub(in crate::crypto) ring: Ed25519KeyPair,
    seed: Zeroizing<[u8; 32]>,
    pub(in crate::crypto) public: Ed25519Public,
    /// ed25519-dalek's key, for Ed25519ph (ring has no prehashed form).
    /// Made on first use: most keys only ever sign pure Ed25519, and making
    /// it costs a scalar multiplication.
    dalek: OnceLock<ed25519_dalek::SigningKey>,
}

/// An Ed25519 public key and its SPKI encoding.
#[derive(Clone)]
pub(in crate::crypto) struct Ed25519Public {
    pub(in crate::crypto) key: [u8; 32],
    pub(super) spki_der: Vec<u8>,
    /// ed25519-dalek's key, for Ed25519ph, decompressed on first use; `None`
    /// inside when the 32 bytes are not a curve point (ring, which verifies
    /// pure Ed25519, finds that out only when it verifies, so import does
    /// not refuse such a key either).
    dalek: OnceLock<Option<ed25519_dalek::VerifyingKey>>,
}

impl RsaPrivate {
    pub(super) fn new(key: rsa::PrivateKey) -> Result<Self, CryptoError> {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        let public = RsaPublic::new(key.to_public_key())?;
        let pkcs1 = key.to_pkcs1_der().map_err(|e| invalid_key(format_args!("RSA private key: {e}")))?;
        let ring = RsaKeyPair::from_der(pkcs1.as_bytes())
            .map_err(|e| invalid_key(format_args!("RSA private key rejected by ring: {e}")))?;
        Ok(Self { key, ring, public })
    }
}

impl RsaPublic {
    pub(super) fn new(key: rsa::PublicKey) -> Result<Self, CryptoError> {
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
    pub(in crate::crypto) fn size(&self) -> usize {
        self.key.size()
    }
}

impl Ed25519Private {
    pub(super) fn new(seed: Zeroizing<[u8; 32]>, public_key: Option<&[u8]>) -> Result<Self, CryptoError> {
        let ring = match public_key {
            Some(public_key) => Ed25519KeyPair::from_seed_and_public_key(seed.as_slice(), public_key),
            None => Ed25519KeyPair::from_seed_unchecked(seed.as_slice()),
        }
        .map_err(|e| invalid_key(format_args!("Ed25519 private key rejected by ring: {e}")))?;
        let public = Ed25519Public::new(ring.public_key().as_ref())?;
        Ok(Self { ring, seed, public, dalek: OnceLock::new() })
    }

    /// The key ed25519-dalek signs Ed25519ph with.
    pub(in crate::crypto) fn dalek(&self) -> &ed25519_dalek::SigningKey {
        self.dalek.get_or_init(|| ed25519_dalek::SigningKey::from_bytes(&self.seed))
    }

    /// PKCS#8 v1 (RFC 8410 `OneAsymmetricKey` without the public key, as
    /// OpenSSL writes it): the private key is an OCTET STRING holding the seed.
    pub(super) fn to_pkcs8_der(&self) -> Result<SecretBytes, CryptoError> {
        let encoding = |e: pkcs8::der::Error| invalid_key(format_args!("Ed25519 private key: {e}"));
        let seed = OctetStringRef::new(self.seed.as_slice()).map_err(encoding)?;
        let inner = Zeroizing::new(seed.to_der().map_err(encoding)?);
        let algorithm = AlgorithmIdentifierRef { oid: ED25519_OID, parameters: None };
        let info = PrivateKeyInfoRef::new(algorithm, OctetStringRef::new(&inner).map_err(encoding)?);
        Ok(Zeroizing::new(info.to_der().map_err(encoding)?))
    }

    /// Parses RFC 8410 PKCS#8 (v1, or v2 with the public key, which must match).
    pub(super) fn from_pkcs8(info: &PrivateKeyInfoRef<'_>) -> Result<Self, CryptoError> {
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
    pub(super) fn new(key: &[u8]) -> Result<Self, CryptoError> {
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
    pub(in crate::crypto) fn dalek(&self) -> Option<&ed25519_dalek::VerifyingKey> {
        self.dalek.get_or_init(|| ed25519_dalek::VerifyingKey::from_bytes(&self.key).ok()).as_ref()
    }
}
