//! Mechanisms: which PKCS#11 mechanisms the library offers, and how each
//! becomes an HSM sign or verify call.
//!
//! The list holds only what works end to end against the HSM. CKM_ECDSA and
//! CKM_RSA_PKCS take input the caller has already hashed; the HSM signs
//! digests of a known hash, so CKM_ECDSA accepts the digest lengths of
//! SHA-1/224/256/384/512 and CKM_RSA_PKCS accepts a DER DigestInfo of one of
//! those hashes (not arbitrary raw data).

use cryptoki_sys::{
    CK_FLAGS, CK_MECHANISM_TYPE, CK_RV, CK_ULONG, CKF_EC_F_P, CKF_EC_NAMEDCURVE, CKF_EC_UNCOMPRESS,
    CKF_GENERATE_KEY_PAIR, CKF_HW, CKF_SIGN, CKF_VERIFY, CKM_EC_KEY_PAIR_GEN, CKM_ECDSA, CKM_ECDSA_SHA1,
    CKM_ECDSA_SHA224, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512, CKM_RSA_PKCS, CKM_RSA_PKCS_KEY_PAIR_GEN,
    CKM_SHA1_RSA_PKCS, CKM_SHA224_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS,
    CKR_DATA_INVALID, CKR_DATA_LEN_RANGE,
};
use hsm_client::keys::{HashAlgorithm, SignMechanism};

/// Every mechanism offered, in the order `C_GetMechanismList` gives them.
pub(crate) const MECHANISMS: [CK_MECHANISM_TYPE; 14] = [
    CKM_EC_KEY_PAIR_GEN,
    CKM_RSA_PKCS_KEY_PAIR_GEN,
    CKM_ECDSA,
    CKM_ECDSA_SHA1,
    CKM_ECDSA_SHA224,
    CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA384,
    CKM_ECDSA_SHA512,
    CKM_RSA_PKCS,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA224_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
];

/// `C_GetMechanismInfo`: (minimum key size, maximum key size, flags), key
/// sizes in bits as PKCS#11 counts them for RSA and EC.
pub(crate) fn info(mechanism: CK_MECHANISM_TYPE) -> Option<(CK_ULONG, CK_ULONG, CK_FLAGS)> {
    const EC: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
    let sign = CKF_HW | CKF_SIGN | CKF_VERIFY;
    match mechanism {
        CKM_EC_KEY_PAIR_GEN => Some((224, 521, CKF_HW | CKF_GENERATE_KEY_PAIR | EC)),
        CKM_RSA_PKCS_KEY_PAIR_GEN => Some((2048, 4096, CKF_HW | CKF_GENERATE_KEY_PAIR)),
        CKM_ECDSA | CKM_ECDSA_SHA1 | CKM_ECDSA_SHA224 | CKM_ECDSA_SHA256 | CKM_ECDSA_SHA384 | CKM_ECDSA_SHA512 => {
            Some((224, 521, sign | EC))
        }
        CKM_RSA_PKCS | CKM_SHA1_RSA_PKCS | CKM_SHA224_RSA_PKCS | CKM_SHA256_RSA_PKCS | CKM_SHA384_RSA_PKCS
        | CKM_SHA512_RSA_PKCS => Some((2048, 4096, sign)),
        _ => None,
    }
}

/// The key family a signing mechanism needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Ec,
    Rsa,
}

/// A signing mechanism as the HSM takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Signing {
    pub(crate) family: Family,
    /// `None`: the caller hashed; the hash is read off the input.
    hash: Option<HashAlgorithm>,
}

impl Signing {
    /// The signing mechanisms offered; `None` for any other.
    pub(crate) fn from_mechanism(mechanism: CK_MECHANISM_TYPE) -> Option<Signing> {
        let (family, hash) = match mechanism {
            CKM_ECDSA => (Family::Ec, None),
            CKM_ECDSA_SHA1 => (Family::Ec, Some(HashAlgorithm::Sha1)),
            CKM_ECDSA_SHA224 => (Family::Ec, Some(HashAlgorithm::Sha224)),
            CKM_ECDSA_SHA256 => (Family::Ec, Some(HashAlgorithm::Sha256)),
            CKM_ECDSA_SHA384 => (Family::Ec, Some(HashAlgorithm::Sha384)),
            CKM_ECDSA_SHA512 => (Family::Ec, Some(HashAlgorithm::Sha512)),
            CKM_RSA_PKCS => (Family::Rsa, None),
            CKM_SHA1_RSA_PKCS => (Family::Rsa, Some(HashAlgorithm::Sha1)),
            CKM_SHA224_RSA_PKCS => (Family::Rsa, Some(HashAlgorithm::Sha224)),
            CKM_SHA256_RSA_PKCS => (Family::Rsa, Some(HashAlgorithm::Sha256)),
            CKM_SHA384_RSA_PKCS => (Family::Rsa, Some(HashAlgorithm::Sha384)),
            CKM_SHA512_RSA_PKCS => (Family::Rsa, Some(HashAlgorithm::Sha512)),
            _ => return None,
        };
        Some(Signing { family, hash })
    }

    /// What to send the HSM for `input`: (mechanism, hash, bytes, whether
    /// the bytes are a digest).
    pub(crate) fn request<'a>(&self, input: &'a [u8]) -> Result<(SignMechanism, HashAlgorithm, &'a [u8], bool), CK_RV> {
        let mechanism = match self.family {
            Family::Ec => SignMechanism::Ecdsa,
            Family::Rsa => SignMechanism::RsaPkcs,
        };
        if let Some(hash) = self.hash {
            return Ok((mechanism, hash, input, false));
        }
        let (hash, digest) = match self.family {
            Family::Ec => (hash_of_len(input.len()).ok_or(CKR_DATA_LEN_RANGE)?, input),
            Family::Rsa => split_digest_info(input).ok_or(CKR_DATA_INVALID)?,
        };
        Ok((mechanism, hash, digest, true))
    }
}

/// The hash whose digests are `len` bytes long.
fn hash_of_len(len: usize) -> Option<HashAlgorithm> {
    match len {
        20 => Some(HashAlgorithm::Sha1),
        28 => Some(HashAlgorithm::Sha224),
        32 => Some(HashAlgorithm::Sha256),
        48 => Some(HashAlgorithm::Sha384),
        64 => Some(HashAlgorithm::Sha512),
        _ => None,
    }
}

/// The DER DigestInfo prefixes (RFC 8017, section 9.2, note 1).
const DIGEST_INFO: [(HashAlgorithm, &[u8]); 5] = [
    (HashAlgorithm::Sha1, &[0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14]),
    (
        HashAlgorithm::Sha224,
        &[
            0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04,
            0x1c,
        ],
    ),
    (
        HashAlgorithm::Sha256,
        &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04,
            0x20,
        ],
    ),
    (
        HashAlgorithm::Sha384,
        &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04,
            0x30,
        ],
    ),
    (
        HashAlgorithm::Sha512,
        &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04,
            0x40,
        ],
    ),
];

/// A DigestInfo split into its hash and digest.
fn split_digest_info(input: &[u8]) -> Option<(HashAlgorithm, &[u8])> {
    DIGEST_INFO.iter().find_map(|(hash, prefix)| {
        let digest = input.strip_prefix(*prefix)?;
        (hash_of_len(digest.len()) == Some(*hash)).then_some((*hash, digest))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_mechanism_has_info() {
        for m in MECHANISMS {
            assert!(info(m).is_some(), "{m:#x}");
        }
    }

    #[test]
    fn raw_ecdsa_reads_the_hash_off_the_digest_length() {
        let ecdsa = Signing::from_mechanism(CKM_ECDSA).unwrap();
        let (_, hash, bytes, digest) = ecdsa.request(&[7; 48]).unwrap();
        assert_eq!((hash, bytes.len(), digest), (HashAlgorithm::Sha384, 48, true));
        assert_eq!(ecdsa.request(&[7; 31]), Err(CKR_DATA_LEN_RANGE));
    }

    #[test]
    fn raw_rsa_takes_a_digest_info_and_nothing_else() {
        let rsa = Signing::from_mechanism(CKM_RSA_PKCS).unwrap();
        let mut info = DIGEST_INFO[2].1.to_vec();
        info.extend([9; 32]);
        assert_eq!(rsa.request(&info).unwrap(), (SignMechanism::RsaPkcs, HashAlgorithm::Sha256, &[9u8; 32][..], true));
        assert_eq!(rsa.request(&info[..info.len() - 1]), Err(CKR_DATA_INVALID));
        assert_eq!(rsa.request(b"plain data"), Err(CKR_DATA_INVALID));
    }

    #[test]
    fn hashing_mechanisms_send_the_data() {
        let m = Signing::from_mechanism(CKM_SHA256_RSA_PKCS).unwrap();
        assert_eq!(m.request(b"abc").unwrap(), (SignMechanism::RsaPkcs, HashAlgorithm::Sha256, &b"abc"[..], false));
    }
}
