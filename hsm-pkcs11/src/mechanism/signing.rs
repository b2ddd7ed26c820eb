//! Signing and verifying mechanisms: which the HSM takes, their
//! parameters, and what each sends the HSM for an operation's input.

use cryptoki_sys::{
    CK_RV, CKM_ECDSA, CKM_ECDSA_SHA1, CKM_ECDSA_SHA224, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512,
    CKM_EDDSA, CKM_RSA_PKCS, CKM_RSA_PKCS_PSS, CKM_RSA_X_509, CKM_SHA_1_HMAC, CKM_SHA1_RSA_PKCS, CKM_SHA1_RSA_PKCS_PSS,
    CKM_SHA224_HMAC, CKM_SHA224_RSA_PKCS, CKM_SHA224_RSA_PKCS_PSS, CKM_SHA256_HMAC, CKM_SHA256_RSA_PKCS,
    CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384_HMAC, CKM_SHA384_RSA_PKCS, CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_HMAC,
    CKM_SHA512_RSA_PKCS, CKM_SHA512_RSA_PKCS_PSS, CKR_DATA_LEN_RANGE, CKR_MECHANISM_INVALID,
    CKR_MECHANISM_PARAM_INVALID,
};
use hsm_client::keys::{HashAlgorithm, SignMechanism};
use zeroize::Zeroizing;

use super::{
    Family, Input, Mechanism, PKCS1_OVERHEAD, Parameter,
    hashing::{Hasher, digest_len, hash_of, hash_of_len, mgf_of},
};

/// A signing (or verifying) mechanism as the HSM takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Signing {
    pub(crate) family: Family,
    mechanism: SignMechanism,
    /// The hash the mechanism names; `None` for raw ECDSA (read off the
    /// input), for raw RSA and for EdDSA.
    hash: Option<HashAlgorithm>,
    /// RSA and ECDSA with a hash: hashed here.
    local: bool,
    /// The RSA key's modulus length in bytes, once the key is known: raw
    /// RSA data too long for it is `CKR_DATA_LEN_RANGE` here (the HSM's
    /// refusal would read as `CKR_DATA_INVALID`).
    modulus_len: Option<usize>,
}

/// What a signing operation sends the HSM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignRequest {
    pub(crate) mechanism: SignMechanism,
    pub(crate) hash: Option<HashAlgorithm>,
    pub(crate) data: Zeroizing<Vec<u8>>,
    pub(crate) is_digest: bool,
}

impl Signing {
    /// The signing mechanisms offered; `CKR_MECHANISM_INVALID` for any other.
    pub(crate) fn from_mechanism(mechanism: &Mechanism) -> Result<Signing, CK_RV> {
        use HashAlgorithm::{Sha1, Sha224, Sha256, Sha384, Sha512};
        let (family, sign, hash) = match mechanism.kind {
            CKM_ECDSA => (Family::Ec, SignMechanism::Ecdsa, None),
            CKM_ECDSA_SHA1 => (Family::Ec, SignMechanism::Ecdsa, Some(Sha1)),
            CKM_ECDSA_SHA224 => (Family::Ec, SignMechanism::Ecdsa, Some(Sha224)),
            CKM_ECDSA_SHA256 => (Family::Ec, SignMechanism::Ecdsa, Some(Sha256)),
            CKM_ECDSA_SHA384 => (Family::Ec, SignMechanism::Ecdsa, Some(Sha384)),
            CKM_ECDSA_SHA512 => (Family::Ec, SignMechanism::Ecdsa, Some(Sha512)),
            CKM_EDDSA => (Family::Ed25519, SignMechanism::Ed25519, None),
            CKM_RSA_PKCS => (Family::Rsa, SignMechanism::RsaPkcsRaw, None),
            CKM_RSA_X_509 => (Family::Rsa, SignMechanism::RsaX509, None),
            CKM_SHA1_RSA_PKCS => (Family::Rsa, SignMechanism::RsaPkcs, Some(Sha1)),
            CKM_SHA224_RSA_PKCS => (Family::Rsa, SignMechanism::RsaPkcs, Some(Sha224)),
            CKM_SHA256_RSA_PKCS => (Family::Rsa, SignMechanism::RsaPkcs, Some(Sha256)),
            CKM_SHA384_RSA_PKCS => (Family::Rsa, SignMechanism::RsaPkcs, Some(Sha384)),
            CKM_SHA512_RSA_PKCS => (Family::Rsa, SignMechanism::RsaPkcs, Some(Sha512)),
            CKM_RSA_PKCS_PSS => (Family::Rsa, SignMechanism::RsaPss, None),
            CKM_SHA1_RSA_PKCS_PSS => (Family::Rsa, SignMechanism::RsaPss, Some(Sha1)),
            CKM_SHA224_RSA_PKCS_PSS => (Family::Rsa, SignMechanism::RsaPss, Some(Sha224)),
            CKM_SHA256_RSA_PKCS_PSS => (Family::Rsa, SignMechanism::RsaPss, Some(Sha256)),
            CKM_SHA384_RSA_PKCS_PSS => (Family::Rsa, SignMechanism::RsaPss, Some(Sha384)),
            CKM_SHA512_RSA_PKCS_PSS => (Family::Rsa, SignMechanism::RsaPss, Some(Sha512)),
            CKM_SHA_1_HMAC => (Family::Secret, SignMechanism::Hmac, Some(Sha1)),
            CKM_SHA224_HMAC => (Family::Secret, SignMechanism::Hmac, Some(Sha224)),
            CKM_SHA256_HMAC => (Family::Secret, SignMechanism::Hmac, Some(Sha256)),
            CKM_SHA384_HMAC => (Family::Secret, SignMechanism::Hmac, Some(Sha384)),
            CKM_SHA512_HMAC => (Family::Secret, SignMechanism::Hmac, Some(Sha512)),
            _ => return Err(CKR_MECHANISM_INVALID),
        };
        let hash = if sign == SignMechanism::RsaPss {
            // The HSM's PSS: MGF1 with the signing hash, salt as long as
            // the hash. Raw PSS takes its hash from the parameter.
            let Parameter::Pss { hash: named, mgf, salt_len } = mechanism.parameter else {
                return Err(CKR_MECHANISM_PARAM_INVALID);
            };
            let named = hash_of(named).ok_or(CKR_MECHANISM_PARAM_INVALID)?;
            if hash.is_some_and(|h| h != named)
                || mgf != mgf_of(named)
                || usize::try_from(salt_len).ok() != Some(digest_len(named))
            {
                return Err(CKR_MECHANISM_PARAM_INVALID);
            }
            Some(named)
        } else {
            mechanism.no_parameter()?;
            hash
        };
        // Raw PSS takes a digest; HMAC is keyed, so the HSM hashes.
        let local = hash.is_some() && mechanism.kind != CKM_RSA_PKCS_PSS && sign != SignMechanism::Hmac;
        Ok(Signing { family, mechanism: sign, hash, local, modulus_len: None })
    }

    /// The same mechanism for a key whose RSA modulus is `modulus_len` bytes.
    pub(crate) fn for_modulus(self, modulus_len: Option<usize>) -> Signing {
        Signing { modulus_len, ..self }
    }

    /// A fresh input for one operation.
    pub(crate) fn input(&self) -> Input {
        match (self.local, self.hash) {
            (true, Some(hash)) => Input::Hashing(Hasher::new(hash)),
            _ => Input::default(),
        }
    }

    /// The signature length, where the mechanism fixes it apart from the key.
    pub(crate) fn fixed_len(&self) -> Option<usize> {
        match self.mechanism {
            SignMechanism::Ed25519 => Some(64),
            SignMechanism::Hmac => self.hash.map(digest_len),
            _ => None,
        }
    }

    /// What to send the HSM for the operation's whole input.
    pub(crate) fn request(&self, input: Input) -> Result<SignRequest, CK_RV> {
        let data = input.finish();
        let request = |hash, data, is_digest| SignRequest { mechanism: self.mechanism, hash, data, is_digest };
        if self.local {
            return Ok(request(self.hash, data, true));
        }
        match (self.mechanism, self.hash) {
            (SignMechanism::Ed25519, _) => Ok(request(None, data, false)),
            (SignMechanism::Hmac, hash) => Ok(request(hash, data, false)),
            (SignMechanism::RsaPss, Some(hash)) => {
                if data.len() != digest_len(hash) {
                    return Err(CKR_DATA_LEN_RANGE);
                }
                Ok(request(Some(hash), data, true))
            }
            (SignMechanism::Ecdsa, _) => {
                let hash = hash_of_len(data.len()).ok_or(CKR_DATA_LEN_RANGE)?;
                Ok(request(Some(hash), data, true))
            }
            // Raw PKCS#1 v1.5 pads the data as given: a DigestInfo signs
            // exactly as the hashing mechanisms do, TLS 1.2's MD5 || SHA-1
            // as TLS wants. At most k - 11 bytes; raw RSA at most k.
            (SignMechanism::RsaPkcsRaw | SignMechanism::RsaX509, _) => {
                let overhead = if self.mechanism == SignMechanism::RsaPkcsRaw { PKCS1_OVERHEAD } else { 0 };
                if self.modulus_len.is_some_and(|k| data.len() + overhead > k) {
                    return Err(CKR_DATA_LEN_RANGE);
                }
                Ok(request(None, data, false))
            }
            _ => Err(CKR_MECHANISM_INVALID),
        }
    }
}

#[cfg(test)]
mod tests {
    use cryptoki_sys::{CK_MECHANISM_TYPE, CKG_MGF1_SHA1, CKG_MGF1_SHA256, CKG_MGF1_SHA384, CKM_SHA256, CKM_SHA384};
    use sha2::Digest as _;

    use super::*;
    use crate::mechanism::MAX_DATA_LEN;

    fn signing(kind: CK_MECHANISM_TYPE) -> Signing {
        Signing::from_mechanism(&Mechanism::bare(kind)).unwrap()
    }

    fn sign_request(kind: CK_MECHANISM_TYPE, data: &[u8]) -> Result<SignRequest, CK_RV> {
        let s = signing(kind);
        let mut input = s.input();
        input.update(data)?;
        s.request(input)
    }

    #[test]
    fn raw_ecdsa_reads_the_hash_off_the_digest_length() {
        let r = sign_request(CKM_ECDSA, &[7; 48]).unwrap();
        assert_eq!((r.hash, r.data.len(), r.is_digest), (Some(HashAlgorithm::Sha384), 48, true));
        assert_eq!(sign_request(CKM_ECDSA, &[7; 31]), Err(CKR_DATA_LEN_RANGE));
    }

    #[test]
    fn raw_rsa_sends_the_data_as_given_up_to_the_modulus() {
        // A 2048-bit key: k = 256.
        let raw = |kind, data: &[u8]| {
            let s = signing(kind).for_modulus(Some(256));
            let mut input = s.input();
            input.update(data)?;
            s.request(input)
        };
        let r = raw(CKM_RSA_PKCS, &[9; 36]).unwrap();
        assert_eq!(
            (r.mechanism, r.hash, &r.data[..], r.is_digest),
            (SignMechanism::RsaPkcsRaw, None, &[9u8; 36][..], false)
        );
        assert!(raw(CKM_RSA_PKCS, &[9; 245]).is_ok());
        assert_eq!(raw(CKM_RSA_PKCS, &[9; 246]), Err(CKR_DATA_LEN_RANGE));
        let r = raw(CKM_RSA_X_509, &[9; 256]).unwrap();
        assert_eq!((r.mechanism, r.hash, r.is_digest), (SignMechanism::RsaX509, None, false));
        assert_eq!(raw(CKM_RSA_X_509, &[9; 257]), Err(CKR_DATA_LEN_RANGE));
    }

    #[test]
    fn hashing_mechanisms_hash_here_in_parts() {
        let s = signing(CKM_SHA256_RSA_PKCS);
        let mut input = s.input();
        input.update(b"ab").unwrap();
        input.update(b"c").unwrap();
        let r = s.request(input).unwrap();
        assert_eq!(&r.data[..], sha2::Sha256::digest(b"abc").as_slice());
        assert!(r.is_digest);
        // No size limit: the HSM sees only the digest.
        let mut input = s.input();
        input.update(&vec![0; 3 * MAX_DATA_LEN]).unwrap();
    }

    #[test]
    fn hmac_sends_the_data_and_caps_it() {
        let r = sign_request(CKM_SHA384_HMAC, b"msg").unwrap();
        assert_eq!(
            (r.mechanism, r.hash, &r.data[..], r.is_digest),
            (SignMechanism::Hmac, Some(HashAlgorithm::Sha384), &b"msg"[..], false)
        );
        assert_eq!(signing(CKM_SHA384_HMAC).fixed_len(), Some(48));
        let mut input = signing(CKM_SHA256_HMAC).input();
        input.update(&vec![0; MAX_DATA_LEN]).unwrap();
        assert_eq!(input.update(&[0]), Err(CKR_DATA_LEN_RANGE));
    }

    #[test]
    fn pss_parameters_must_be_the_hsms() {
        let pss = |kind, hash, mgf, salt_len| Mechanism { kind, parameter: Parameter::Pss { hash, mgf, salt_len } };
        assert!(Signing::from_mechanism(&pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 32)).is_ok());
        for bad in [
            pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384, CKG_MGF1_SHA384, 48),
            pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA1, 32),
            pss(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, CKG_MGF1_SHA256, 20),
            Mechanism::bare(CKM_SHA256_RSA_PKCS_PSS),
        ] {
            assert_eq!(Signing::from_mechanism(&bad), Err(CKR_MECHANISM_PARAM_INVALID), "{bad:?}");
        }
        let raw = Signing::from_mechanism(&pss(CKM_RSA_PKCS_PSS, CKM_SHA384, CKG_MGF1_SHA384, 48)).unwrap();
        let mut input = raw.input();
        input.update(&[1; 48]).unwrap();
        let r = raw.request(input).unwrap();
        assert_eq!((r.hash, r.is_digest), (Some(HashAlgorithm::Sha384), true));
    }
}
