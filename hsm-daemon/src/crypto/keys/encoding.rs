//! Keys in and out: import from PEM (PKCS#8, PKCS#1, SEC1, SPKI), DER and
//! raw secret bytes; export as the bytes wrapping takes (also the stored
//! encoding) and as public-key PEM.

use pkcs8::PrivateKeyInfoRef;
use pkcs8::der::pem::LineEnding;
use pkcs8::der::{Decode, SecretDocument};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use zeroize::Zeroizing;

use super::{
    DES3_KEY_LEN, ED25519_OID, Key,
    forms::{Ed25519Private, Ed25519Public, RsaPrivate, RsaPublic},
    generate::{check_des3_parts, check_generic_secret_len},
    invalid_key, kind_name, unparsable,
};
use crate::crypto::ec::{self, EcPrivate, EcPublic};
use crate::crypto::{CryptoError, Curve, KeyClass, KeyKind, KeyMaterial, SecretBytes};

impl KeyMaterial {
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

    /// Inverse of `to_wrappable`, for a key of `kind` and `class`.
    pub fn from_wrappable(kind: KeyKind, class: KeyClass, bytes: &[u8]) -> Result<Self, CryptoError> {
        let key = match (class, kind) {
            (KeyClass::Secret, KeyKind::Aes | KeyKind::GenericSecret | KeyKind::Des3) => {
                return Self::from_raw_secret(kind, bytes);
            }
            (KeyClass::Private, KeyKind::Rsa | KeyKind::Ec(_) | KeyKind::Ed25519) => Self::from_der_private(bytes)?,
            (KeyClass::Public, KeyKind::Rsa | KeyKind::Ec(_) | KeyKind::Ed25519) => Self::from_der_public(bytes)?,
            (KeyClass::Secret, KeyKind::Rsa | KeyKind::Ec(_) | KeyKind::Ed25519)
            | (KeyClass::Private | KeyClass::Public, KeyKind::Aes | KeyKind::GenericSecret | KeyKind::Des3) => {
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
