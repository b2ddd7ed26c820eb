//! Mechanisms: which PKCS#11 mechanisms the library offers, their
//! parameters, and how each becomes an HSM call.
//!
//! The list holds only what works end to end against the HSM. As CloudHSM's
//! Client SDK 5 does, RSA and ECDSA mechanisms that hash (`CKM_SHA256_RSA_PKCS`,
//! `CKM_ECDSA_SHA256`...) hash the data here, in software, and send the HSM
//! the digest, so their data has no size limit and they work in parts. Every
//! other operation sends its data in one call, so it takes at most
//! [`MAX_DATA_LEN`] bytes, whether given at once or in parts. `CKM_ECDSA`
//! takes a digest the caller has already made (SHA-1/224/256/384/512, read
//! off its length). `CKM_RSA_PKCS` signs any data up to the modulus length
//! less 11 bytes, padded as given (a DER DigestInfo, or TLS 1.2's MD5 ||
//! SHA-1), and `CKM_RSA_X_509` is raw RSA: the HSM's raw mechanisms.
//!
//! # Layout
//! - `parameters`: a mechanism and its parameter, as copied out of C memory.
//! - `hashing`: the hashes mechanisms name, and an operation's input,
//!   buffered for the HSM or hashed here.
//! - `signing`: signing and verifying mechanisms, and what each sends the
//!   HSM.
//! - `ciphering`: encryption, decryption and wrapping mechanisms, and the
//!   lengths each takes.
//!
//! Here: the mechanisms offered, what `C_GetMechanismInfo` says of each,
//! and the kinds of key they need.

mod ciphering;
mod hashing;
mod parameters;
mod signing;

use cryptoki_sys::{
    CK_FLAGS, CK_MECHANISM_TYPE, CK_ULONG, CKF_DECRYPT, CKF_DIGEST, CKF_EC_F_P, CKF_EC_NAMEDCURVE, CKF_EC_UNCOMPRESS,
    CKF_ENCRYPT, CKF_GENERATE, CKF_GENERATE_KEY_PAIR, CKF_HW, CKF_SIGN, CKF_UNWRAP, CKF_VERIFY, CKF_WRAP, CKM_AES_CBC,
    CKM_AES_CBC_PAD, CKM_AES_CTR, CKM_AES_ECB, CKM_AES_GCM, CKM_AES_KEY_GEN, CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD,
    CKM_DES3_CBC, CKM_DES3_CBC_PAD, CKM_DES3_ECB, CKM_DES3_KEY_GEN, CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EC_KEY_PAIR_GEN,
    CKM_ECDSA, CKM_ECDSA_SHA1, CKM_ECDSA_SHA224, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512, CKM_EDDSA,
    CKM_GENERIC_SECRET_KEY_GEN, CKM_RSA_AES_KEY_WRAP, CKM_RSA_PKCS, CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_RSA_PKCS_OAEP,
    CKM_RSA_PKCS_PSS, CKM_RSA_X_509, CKM_SHA_1, CKM_SHA_1_HMAC, CKM_SHA1_RSA_PKCS, CKM_SHA1_RSA_PKCS_PSS, CKM_SHA224,
    CKM_SHA224_HMAC, CKM_SHA224_RSA_PKCS, CKM_SHA224_RSA_PKCS_PSS, CKM_SHA256, CKM_SHA256_HMAC, CKM_SHA256_RSA_PKCS,
    CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384, CKM_SHA384_HMAC, CKM_SHA384_RSA_PKCS, CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512,
    CKM_SHA512_HMAC, CKM_SHA512_RSA_PKCS, CKM_SHA512_RSA_PKCS_PSS,
};

pub(crate) use self::{
    ciphering::{Ciphering, wrapping},
    hashing::{Input, digesting},
    parameters::{IvOut, Mechanism, Parameter},
    signing::Signing,
};

/// The most data the HSM takes in one operation (16 KiB), for operations
/// that send the data itself.
pub(crate) const MAX_DATA_LEN: usize = 16 * 1024;

/// Every mechanism offered, in the order `C_GetMechanismList` gives them.
pub(crate) const MECHANISMS: [CK_MECHANISM_TYPE; 44] = [
    CKM_AES_KEY_GEN,
    CKM_GENERIC_SECRET_KEY_GEN,
    CKM_EC_KEY_PAIR_GEN,
    CKM_EC_EDWARDS_KEY_PAIR_GEN,
    CKM_RSA_PKCS_KEY_PAIR_GEN,
    CKM_ECDSA,
    CKM_ECDSA_SHA1,
    CKM_ECDSA_SHA224,
    CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA384,
    CKM_ECDSA_SHA512,
    CKM_EDDSA,
    CKM_RSA_PKCS,
    CKM_RSA_X_509,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA224_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
    CKM_RSA_PKCS_PSS,
    CKM_SHA1_RSA_PKCS_PSS,
    CKM_SHA224_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA384_RSA_PKCS_PSS,
    CKM_SHA512_RSA_PKCS_PSS,
    CKM_RSA_PKCS_OAEP,
    CKM_SHA_1_HMAC,
    CKM_SHA224_HMAC,
    CKM_SHA256_HMAC,
    CKM_SHA384_HMAC,
    CKM_SHA512_HMAC,
    CKM_AES_ECB,
    CKM_AES_CBC,
    CKM_AES_CBC_PAD,
    CKM_AES_CTR,
    CKM_AES_GCM,
    CKM_AES_KEY_WRAP,
    CKM_AES_KEY_WRAP_PAD,
    CKM_RSA_AES_KEY_WRAP,
    CKM_SHA_1,
    CKM_SHA224,
    CKM_SHA256,
    CKM_SHA384,
    CKM_SHA512,
];

/// Triple DES, offered after [`MECHANISMS`] on non-FIPS clusters only (as
/// CloudHSM's Client SDK 5 does): on a FIPS cluster they are not listed and
/// using them is `CKR_MECHANISM_INVALID`.
pub(crate) const DES3_MECHANISMS: [CK_MECHANISM_TYPE; 4] =
    [CKM_DES3_KEY_GEN, CKM_DES3_ECB, CKM_DES3_CBC, CKM_DES3_CBC_PAD];

/// The mechanisms `C_GetMechanismList` gives for a cluster in this mode.
pub(crate) fn offered(non_fips: bool) -> Vec<CK_MECHANISM_TYPE> {
    let des3 = if non_fips { &DES3_MECHANISMS[..] } else { &[] };
    MECHANISMS.iter().chain(des3).copied().collect()
}

/// `C_GetMechanismInfo`: (minimum key size, maximum key size, flags), key
/// sizes in bits for RSA and EC and in bytes for AES and generic secrets,
/// as PKCS#11 counts them.
pub(crate) fn info(mechanism: CK_MECHANISM_TYPE) -> Option<(CK_ULONG, CK_ULONG, CK_FLAGS)> {
    const EC: CK_FLAGS = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
    let sign = CKF_HW | CKF_SIGN | CKF_VERIFY;
    let crypt = CKF_HW | CKF_ENCRYPT | CKF_DECRYPT;
    let wrap = CKF_HW | CKF_WRAP | CKF_UNWRAP;
    match mechanism {
        CKM_AES_KEY_GEN => Some((16, 32, CKF_HW | CKF_GENERATE)),
        CKM_GENERIC_SECRET_KEY_GEN => Some((1, 800, CKF_HW | CKF_GENERATE)),
        CKM_EC_KEY_PAIR_GEN => Some((224, 521, CKF_HW | CKF_GENERATE_KEY_PAIR | EC)),
        CKM_EC_EDWARDS_KEY_PAIR_GEN => Some((255, 255, CKF_HW | CKF_GENERATE_KEY_PAIR)),
        CKM_RSA_PKCS_KEY_PAIR_GEN => Some((2048, 4096, CKF_HW | CKF_GENERATE_KEY_PAIR)),
        CKM_ECDSA | CKM_ECDSA_SHA1 | CKM_ECDSA_SHA224 | CKM_ECDSA_SHA256 | CKM_ECDSA_SHA384 | CKM_ECDSA_SHA512 => {
            Some((224, 521, sign | EC))
        }
        CKM_EDDSA => Some((255, 255, sign)),
        CKM_RSA_PKCS => Some((2048, 4096, sign | crypt)),
        CKM_RSA_X_509 => Some((2048, 4096, sign | crypt)),
        CKM_SHA1_RSA_PKCS
        | CKM_SHA224_RSA_PKCS
        | CKM_SHA256_RSA_PKCS
        | CKM_SHA384_RSA_PKCS
        | CKM_SHA512_RSA_PKCS
        | CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => Some((2048, 4096, sign)),
        CKM_RSA_PKCS_OAEP => Some((2048, 4096, crypt | wrap)),
        CKM_RSA_AES_KEY_WRAP => Some((2048, 4096, wrap)),
        CKM_SHA_1_HMAC | CKM_SHA224_HMAC | CKM_SHA256_HMAC | CKM_SHA384_HMAC | CKM_SHA512_HMAC => Some((1, 800, sign)),
        CKM_AES_ECB | CKM_AES_CBC_PAD | CKM_AES_CTR => Some((16, 32, crypt)),
        CKM_AES_CBC => Some((16, 32, crypt)),
        CKM_AES_GCM => Some((16, 32, crypt | wrap)),
        CKM_AES_KEY_WRAP | CKM_AES_KEY_WRAP_PAD => Some((16, 32, wrap)),
        CKM_SHA_1 | CKM_SHA224 | CKM_SHA256 | CKM_SHA384 | CKM_SHA512 => Some((0, 0, CKF_DIGEST)),
        CKM_DES3_KEY_GEN => Some((24, 24, CKF_HW | CKF_GENERATE)),
        CKM_DES3_ECB | CKM_DES3_CBC | CKM_DES3_CBC_PAD => Some((24, 24, crypt)),
        _ => None,
    }
}

/// The kind of key a mechanism needs, as the HSM's `key-type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Ec,
    Ed25519,
    Rsa,
    Aes,
    /// Triple DES keys (non-FIPS clusters).
    Des3,
    /// HMAC keys: generic secrets (and AES keys, which the HSM also takes).
    Secret,
}

/// What PKCS#1 v1.5 padding adds at least (RFC 8017 section 9.2: `00 01`,
/// eight `FF`, `00`).
const PKCS1_OVERHEAD: usize = 11;

#[cfg(test)]
mod tests {
    use cryptoki_sys::CKR_MECHANISM_PARAM_INVALID;
    use hsm_client::keys::Cipher;

    use super::*;

    #[test]
    fn every_listed_mechanism_has_info() {
        for m in offered(true) {
            assert!(info(m).is_some(), "{m:#x}");
        }
    }

    #[test]
    fn des3_is_offered_on_non_fips_clusters_only() {
        assert_eq!(offered(false), MECHANISMS);
        assert_eq!(offered(true)[MECHANISMS.len()..], DES3_MECHANISMS);
        let iv = Parameter::Bytes(vec![1; 8]);
        let cbc = Ciphering::from_mechanism(&Mechanism { kind: CKM_DES3_CBC, parameter: iv.clone() }, true).unwrap();
        assert_eq!((cbc.family, cbc.cipher, cbc.iv.len()), (Family::Des3, Cipher::Des3Cbc, 8));
        let aes_iv = Parameter::Bytes(vec![1; 16]);
        assert_eq!(
            Ciphering::from_mechanism(&Mechanism { kind: CKM_DES3_CBC_PAD, parameter: aes_iv }, true),
            Err(CKR_MECHANISM_PARAM_INVALID),
            "triple DES IVs are 8 bytes"
        );
        assert_eq!(
            Ciphering::from_mechanism(&Mechanism { kind: CKM_DES3_ECB, parameter: iv }, true),
            Err(CKR_MECHANISM_PARAM_INVALID),
            "ECB takes no IV"
        );
    }
}
