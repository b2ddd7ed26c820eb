//! The five ECDSA curves behind one enum.
//!
//! RustCrypto holds every curve's keys (p224 0.13; p256, p384, p521, k256
//! 0.14) and signs prehashed digests for every curve/hash pair. P-256 and
//! P-384 private keys also hold a ring key pair, which [`super::sign`] uses
//! for the pairs ring offers (P-256/SHA-256, P-384/SHA-384 over data).

use ring::signature::EcdsaKeyPair;
use zeroize::Zeroizing;

use super::{CryptoError, Curve, SecretBytes, rng};

/// Runs `$body` with `$k` bound to the curve's key and `$m` naming the
/// curve's crate, so one body serves five key types. The names used through
/// it (signing, verifying, `Signature`) are the same in the 0.13 (P-224) and
/// 0.14 families; where they differ (encodings) the callers match by hand.
macro_rules! each_curve {
    ($enum:ident, $value:expr, $k:ident, $m:ident => $body:expr) => {
        match $value {
            $enum::P224($k) => {
                use ::p224 as $m;
                $body
            }
            $enum::P256($k) => {
                use ::p256 as $m;
                $body
            }
            $enum::P384($k) => {
                use ::p384 as $m;
                $body
            }
            $enum::P521($k) => {
                use ::p521 as $m;
                $body
            }
            $enum::Secp256k1($k) => {
                use ::k256 as $m;
                $body
            }
        }
    };
}

/// An ECDSA private key of one of the five curves.
pub(super) enum SigningKey {
    P224(p224::ecdsa::SigningKey),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    P521(p521::ecdsa::SigningKey),
    Secp256k1(k256::ecdsa::SigningKey),
}

/// An ECDSA public key of one of the five curves.
#[derive(Clone)]
pub(super) enum VerifyingKey {
    P224(p224::ecdsa::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
    Secp256k1(k256::ecdsa::VerifyingKey),
}

/// A parsed EC private key.
pub(super) struct EcPrivate {
    pub(super) key: SigningKey,
    /// ring's key pair for P-256 (ECDSA_P256_SHA256_FIXED_SIGNING) and P-384
    /// (ECDSA_P384_SHA384_FIXED_SIGNING); `None` for the other curves.
    pub(super) ring: Option<EcdsaKeyPair>,
    pub(super) public: EcPublic,
}

/// A parsed EC public key, with the encodings the mechanisms need.
#[derive(Clone)]
pub(super) struct EcPublic {
    pub(super) key: VerifyingKey,
    /// Uncompressed SEC1 point `04 || x || y` (what ring verifies against).
    pub(super) point: Vec<u8>,
    /// SubjectPublicKeyInfo DER.
    pub(super) spki_der: Vec<u8>,
}

/// Maps a curve OID (the `namedCurve` parameter of SPKI, PKCS#8 and SEC1) to
/// the curve.
pub(super) fn curve_from_oid(oid: &pkcs8::ObjectIdentifier) -> Option<Curve> {
    use pkcs8::AssociatedOid;
    if *oid == p256::NistP256::OID {
        Some(Curve::P256)
    } else if *oid == p384::NistP384::OID {
        Some(Curve::P384)
    } else if *oid == p521::NistP521::OID {
        Some(Curve::P521)
    } else if *oid == k256::Secp256k1::OID {
        Some(Curve::Secp256k1)
    } else if oid.as_bytes() == <p224::NistP224 as p224::pkcs8::AssociatedOid>::OID.as_bytes() {
        // p224 0.13 speaks const-oid 0.9, so compare the encoded arcs.
        Some(Curve::P224)
    } else {
        None
    }
}

fn bad_key(curve: Curve, what: &str) -> CryptoError {
    CryptoError::InvalidKey(format!("{} {what}", curve_name(curve)))
}

pub(super) const fn curve_name(curve: Curve) -> &'static str {
    match curve {
        Curve::P224 => "EC P-224",
        Curve::P256 => "EC P-256",
        Curve::P384 => "EC P-384",
        Curve::P521 => "EC P-521",
        Curve::Secp256k1 => "EC secp256k1",
    }
}

impl SigningKey {
    fn curve(&self) -> Curve {
        match self {
            SigningKey::P224(_) => Curve::P224,
            SigningKey::P256(_) => Curve::P256,
            SigningKey::P384(_) => Curve::P384,
            SigningKey::P521(_) => Curve::P521,
            SigningKey::Secp256k1(_) => Curve::Secp256k1,
        }
    }

    fn verifying_key(&self) -> VerifyingKey {
        match self {
            SigningKey::P224(k) => VerifyingKey::P224(*k.verifying_key()),
            SigningKey::P256(k) => VerifyingKey::P256(*k.verifying_key()),
            SigningKey::P384(k) => VerifyingKey::P384(*k.verifying_key()),
            SigningKey::P521(k) => VerifyingKey::P521(*k.verifying_key()),
            SigningKey::Secp256k1(k) => VerifyingKey::Secp256k1(*k.verifying_key()),
        }
    }
}

impl VerifyingKey {
    pub(super) fn curve(&self) -> Curve {
        match self {
            VerifyingKey::P224(_) => Curve::P224,
            VerifyingKey::P256(_) => Curve::P256,
            VerifyingKey::P384(_) => Curve::P384,
            VerifyingKey::P521(_) => Curve::P521,
            VerifyingKey::Secp256k1(_) => Curve::Secp256k1,
        }
    }
}

impl EcPrivate {
    /// A fresh key from the caller's generator (through [`rng`]).
    pub(super) fn generate(curve: Curve, rng: &mut impl rand::CryptoRng) -> Result<Self, CryptoError> {
        use p256::elliptic_curve::Generate as _;
        let key = match curve {
            Curve::P224 => SigningKey::P224(p224::ecdsa::SigningKey::random(&mut rng::legacy(rng))),
            Curve::P256 => SigningKey::P256(p256::ecdsa::SigningKey::generate_from_rng(&mut rng::current(rng))),
            Curve::P384 => SigningKey::P384(p384::ecdsa::SigningKey::generate_from_rng(&mut rng::current(rng))),
            Curve::P521 => SigningKey::P521(p521::ecdsa::SigningKey::generate_from_rng(&mut rng::current(rng))),
            Curve::Secp256k1 => {
                SigningKey::Secp256k1(k256::ecdsa::SigningKey::generate_from_rng(&mut rng::current(rng)))
            }
        };
        Self::from_key(key)
    }

    /// Parses PKCS#8 `PrivateKeyInfo` DER of a key on `curve`.
    pub(super) fn from_pkcs8_der(curve: Curve, der: &[u8]) -> Result<Self, CryptoError> {
        use p224::pkcs8::DecodePrivateKey as _;
        use pkcs8::DecodePrivateKey as _;
        let key = match curve {
            Curve::P224 => p224::ecdsa::SigningKey::from_pkcs8_der(der).map(SigningKey::P224).ok(),
            Curve::P256 => p256::ecdsa::SigningKey::from_pkcs8_der(der).map(SigningKey::P256).ok(),
            Curve::P384 => p384::ecdsa::SigningKey::from_pkcs8_der(der).map(SigningKey::P384).ok(),
            Curve::P521 => p521::ecdsa::SigningKey::from_pkcs8_der(der).map(SigningKey::P521).ok(),
            Curve::Secp256k1 => k256::ecdsa::SigningKey::from_pkcs8_der(der).map(SigningKey::Secp256k1).ok(),
        };
        Self::from_key(key.ok_or_else(|| bad_key(curve, "private key: PKCS#8 does not parse"))?)
    }

    /// Parses SEC1 `ECPrivateKey` DER of a key on `curve`.
    pub(super) fn from_sec1_der(curve: Curve, der: &[u8]) -> Result<Self, CryptoError> {
        let key = match curve {
            Curve::P224 => p224::SecretKey::from_sec1_der(der).map(|k| SigningKey::P224(k.into())).ok(),
            Curve::P256 => p256::SecretKey::from_sec1_der(der).map(|k| SigningKey::P256(k.into())).ok(),
            Curve::P384 => p384::SecretKey::from_sec1_der(der).map(|k| SigningKey::P384(k.into())).ok(),
            Curve::P521 => p521::SecretKey::from_sec1_der(der).map(|k| SigningKey::P521(k.into())).ok(),
            Curve::Secp256k1 => k256::SecretKey::from_sec1_der(der).map(|k| SigningKey::Secp256k1(k.into())).ok(),
        };
        Self::from_key(key.ok_or_else(|| bad_key(curve, "private key: SEC1 does not parse"))?)
    }

    fn from_key(key: SigningKey) -> Result<Self, CryptoError> {
        let public = EcPublic::from_key(key.verifying_key())?;
        let ring = match &key {
            SigningKey::P256(k) => {
                let scalar = Zeroizing::new(k.to_bytes());
                Some(ring_pair(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &scalar, &public.point)?)
            }
            SigningKey::P384(k) => {
                let scalar = Zeroizing::new(k.to_bytes());
                Some(ring_pair(&ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING, &scalar, &public.point)?)
            }
            SigningKey::P224(_) | SigningKey::P521(_) | SigningKey::Secp256k1(_) => None,
        };
        Ok(Self { key, ring, public })
    }

    pub(super) fn curve(&self) -> Curve {
        self.key.curve()
    }

    /// PKCS#8 `PrivateKeyInfo` DER (with the public key, as RustCrypto writes it).
    pub(super) fn to_pkcs8_der(&self) -> Result<SecretBytes, CryptoError> {
        use p224::pkcs8::EncodePrivateKey as _;
        let curve = self.curve();
        let failed = || bad_key(curve, "private key: PKCS#8 encoding failed");
        let secret = |der: &[u8]| Zeroizing::new(der.to_vec());
        match &self.key {
            // p224 0.13 encodes PKCS#8 on `SecretKey` (its `SigningKey` only with ecdsa's `pem` feature).
            SigningKey::P224(k) => p224::SecretKey::from(k.as_nonzero_scalar())
                .to_pkcs8_der()
                .map(|d| secret(d.as_bytes()))
                .map_err(|_| failed()),
            SigningKey::P256(k) => self.pkcs8_with_point::<p256::NistP256>(&k.to_bytes()).ok_or_else(failed),
            SigningKey::P384(k) => self.pkcs8_with_point::<p384::NistP384>(&k.to_bytes()).ok_or_else(failed),
            SigningKey::P521(k) => self.pkcs8_with_point::<p521::NistP521>(&k.to_bytes()).ok_or_else(failed),
            SigningKey::Secp256k1(k) => self.pkcs8_with_point::<k256::Secp256k1>(&k.to_bytes()).ok_or_else(failed),
        }
    }

    /// PKCS#8 DER exactly as RustCrypto's `to_pkcs8_der` writes it (the SEC1
    /// key inside carries the public point, no parameters), but with the
    /// public point this key already holds: RustCrypto computes it again, a
    /// scalar multiplication that was half the CPU of storing a new key.
    fn pkcs8_with_point<C: pkcs8::AssociatedOid>(&self, scalar: &[u8]) -> Option<SecretBytes> {
        use pkcs8::der::{Encode as _, asn1::OctetStringRef};
        let scalar = Zeroizing::new(scalar.to_vec());
        let sec1 = sec1::EcPrivateKey { private_key: &scalar, parameters: None, public_key: Some(&self.public.point) };
        let sec1 = Zeroizing::new(sec1.to_der().ok()?);
        let algorithm = pkcs8::AlgorithmIdentifierRef {
            oid: p256::elliptic_curve::ALGORITHM_OID,
            parameters: Some((&C::OID).into()),
        };
        let info = pkcs8::PrivateKeyInfoRef::new(algorithm, OctetStringRef::new(&sec1).ok()?);
        info.to_der().ok().map(Zeroizing::new)
    }

    /// ECDSA over a digest the caller computed (any length; the library
    /// truncates or pads it to the curve order as ECDSA specifies). Returns
    /// `r || s`. RFC 6979 deterministic nonces.
    pub(super) fn sign_prehash(&self, prehash: &[u8]) -> Result<Vec<u8>, CryptoError> {
        use p224::ecdsa::signature::hazmat::PrehashSigner as _;
        use p256::ecdsa::signature::hazmat::PrehashSigner as _;
        let curve = self.curve();
        each_curve!(SigningKey, &self.key, k, m => {
            let signature: m::ecdsa::Signature =
                k.sign_prehash(prehash).map_err(|_| bad_key(curve, "private key: ECDSA signing failed"))?;
            Ok(signature.to_bytes().to_vec())
        })
    }
}

/// ring's ECDSA key pair from the private scalar and the public point.
fn ring_pair(
    alg: &'static ring::signature::EcdsaSigningAlgorithm,
    scalar: &[u8],
    point: &[u8],
) -> Result<EcdsaKeyPair, CryptoError> {
    EcdsaKeyPair::from_private_key_and_public_key(alg, scalar, point, &ring::rand::SystemRandom::new())
        .map_err(|e| CryptoError::InvalidKey(format!("EC private key rejected by ring: {e}")))
}

impl EcPublic {
    fn from_key(key: VerifyingKey) -> Result<Self, CryptoError> {
        use p224::pkcs8::EncodePublicKey as _;
        use pkcs8::EncodePublicKey as _;
        let curve = key.curve();
        let point = match &key {
            VerifyingKey::P224(k) => k.to_encoded_point(false).as_bytes().to_vec(),
            VerifyingKey::P256(k) => k.to_sec1_point(false).as_bytes().to_vec(),
            VerifyingKey::P384(k) => k.to_sec1_point(false).as_bytes().to_vec(),
            VerifyingKey::P521(k) => k.to_sec1_point(false).as_bytes().to_vec(),
            VerifyingKey::Secp256k1(k) => k.to_sec1_point(false).as_bytes().to_vec(),
        };
        let failed = || bad_key(curve, "public key: SPKI encoding failed");
        let spki_der = match &key {
            // As above: p224 0.13 encodes SPKI on `PublicKey`.
            VerifyingKey::P224(k) => {
                p224::PublicKey::from(k).to_public_key_der().map(|d| d.into_vec()).map_err(|_| failed())
            }
            VerifyingKey::P256(k) => k.to_public_key_der().map(|d| d.into_vec()).map_err(|_| failed()),
            VerifyingKey::P384(k) => k.to_public_key_der().map(|d| d.into_vec()).map_err(|_| failed()),
            VerifyingKey::P521(k) => k.to_public_key_der().map(|d| d.into_vec()).map_err(|_| failed()),
            VerifyingKey::Secp256k1(k) => k.to_public_key_der().map(|d| d.into_vec()).map_err(|_| failed()),
        }?;
        Ok(Self { key, point, spki_der })
    }

    /// Parses SubjectPublicKeyInfo DER of a key on `curve`.
    pub(super) fn from_spki_der(curve: Curve, der: &[u8]) -> Result<Self, CryptoError> {
        use p224::pkcs8::DecodePublicKey as _;
        use pkcs8::DecodePublicKey as _;
        let key = match curve {
            Curve::P224 => p224::ecdsa::VerifyingKey::from_public_key_der(der).map(VerifyingKey::P224).ok(),
            Curve::P256 => p256::ecdsa::VerifyingKey::from_public_key_der(der).map(VerifyingKey::P256).ok(),
            Curve::P384 => p384::ecdsa::VerifyingKey::from_public_key_der(der).map(VerifyingKey::P384).ok(),
            Curve::P521 => p521::ecdsa::VerifyingKey::from_public_key_der(der).map(VerifyingKey::P521).ok(),
            Curve::Secp256k1 => k256::ecdsa::VerifyingKey::from_public_key_der(der).map(VerifyingKey::Secp256k1).ok(),
        };
        Self::from_key(
            key.ok_or_else(|| bad_key(curve, "public key: SPKI does not parse or the point is not on the curve"))?,
        )
    }

    pub(super) fn curve(&self) -> Curve {
        self.key.curve()
    }

    /// Verifies `r || s` over a digest. `false` for a malformed signature
    /// (wrong length, r or s out of range) as for a wrong one.
    ///
    /// secp256k1: k256 accepts only low-S signatures (Bitcoin's rule), but
    /// ECDSA and CloudHSM accept both `s` and `n - s`; the signature is
    /// normalised to low-S by the library before verifying.
    pub(super) fn verify_prehash(&self, prehash: &[u8], signature: &[u8]) -> bool {
        use p224::ecdsa::signature::hazmat::PrehashVerifier as _;
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        match &self.key {
            VerifyingKey::Secp256k1(k) => k256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify_prehash(prehash, &s.normalize_s()).is_ok()),
            key => each_curve!(VerifyingKey, key, k, m => m::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify_prehash(prehash, &s).is_ok())),
        }
    }
}

#[cfg(test)]
mod tests {
    use pkcs8::EncodePrivateKey as _;
    use rand::{SeedableRng as _, rngs::StdRng};

    use super::*;

    #[test]
    fn pkcs8_is_byte_for_byte_what_rustcrypto_writes() {
        let mut rng = StdRng::seed_from_u64(5);
        for curve in [Curve::P224, Curve::P256, Curve::P384, Curve::P521, Curve::Secp256k1] {
            let key = EcPrivate::generate(curve, &mut rng).unwrap();
            let theirs = match &key.key {
                SigningKey::P224(_) => continue,
                SigningKey::P256(k) => k.to_pkcs8_der(),
                SigningKey::P384(k) => k.to_pkcs8_der(),
                SigningKey::P521(k) => k.to_pkcs8_der(),
                SigningKey::Secp256k1(k) => k.to_pkcs8_der(),
            }
            .unwrap();
            assert_eq!(key.to_pkcs8_der().unwrap().as_slice(), theirs.as_bytes(), "{curve:?}");
        }
    }
}
