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

use cryptoki_sys::{
    CK_FLAGS, CK_MECHANISM_TYPE, CK_RV, CK_ULONG, CKF_DECRYPT, CKF_DIGEST, CKF_EC_F_P, CKF_EC_NAMEDCURVE,
    CKF_EC_UNCOMPRESS, CKF_ENCRYPT, CKF_GENERATE, CKF_GENERATE_KEY_PAIR, CKF_HW, CKF_SIGN, CKF_UNWRAP, CKF_VERIFY,
    CKF_WRAP, CKG_MGF1_SHA1, CKG_MGF1_SHA224, CKG_MGF1_SHA256, CKG_MGF1_SHA384, CKG_MGF1_SHA512, CKM_AES_CBC_PAD,
    CKM_AES_CTR, CKM_AES_ECB, CKM_AES_GCM, CKM_AES_KEY_GEN, CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD,
    CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EC_KEY_PAIR_GEN, CKM_ECDSA, CKM_ECDSA_SHA1, CKM_ECDSA_SHA224, CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA384, CKM_ECDSA_SHA512, CKM_EDDSA, CKM_GENERIC_SECRET_KEY_GEN, CKM_RSA_AES_KEY_WRAP, CKM_RSA_PKCS,
    CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_RSA_PKCS_OAEP, CKM_RSA_PKCS_PSS, CKM_SHA_1, CKM_SHA_1_HMAC, CKM_SHA1_RSA_PKCS,
    CKM_SHA1_RSA_PKCS_PSS, CKM_SHA224, CKM_SHA224_HMAC, CKM_SHA224_RSA_PKCS, CKM_SHA224_RSA_PKCS_PSS, CKM_SHA256,
    CKM_SHA256_HMAC, CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384, CKM_SHA384_HMAC, CKM_SHA384_RSA_PKCS,
    CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512, CKM_SHA512_HMAC, CKM_SHA512_RSA_PKCS, CKM_SHA512_RSA_PKCS_PSS,
    CKR_DATA_LEN_RANGE, CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID, CKZ_DATA_SPECIFIED,
};
use cryptoki_sys::{CKM_AES_CBC, CKM_RSA_X_509, CKR_ENCRYPTED_DATA_LEN_RANGE};
use cryptoki_sys::{CKM_DES3_CBC, CKM_DES3_CBC_PAD, CKM_DES3_ECB, CKM_DES3_KEY_GEN};
use hsm_client::keys::{Cipher, HashAlgorithm, SignMechanism, WrapMechanism};
use sha2::Digest as _;
use zeroize::Zeroizing;

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

/// Where the caller asked for an IV the HSM makes to be written: the
/// `pIv` of an AES-GCM encryption's `CK_GCM_PARAMS`, as CloudHSM's library
/// writes it. The address is the caller's, valid until the operation ends
/// (CloudHSM's contract for this parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IvOut {
    pub(crate) address: usize,
    pub(crate) len: usize,
}

/// A mechanism's parameter, copied out of C memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parameter {
    None,
    /// A parameter that is a byte string: the IV of `CKM_AES_CBC(_PAD)`,
    /// `CKM_DES3_CBC` or `CKM_DES3_CBC_PAD`.
    Bytes(Vec<u8>),
    Ctr {
        counter_bits: CK_ULONG,
        block: [u8; 16],
    },
    Gcm {
        iv: Vec<u8>,
        aad: Vec<u8>,
        tag_bits: CK_ULONG,
        iv_out: Option<IvOut>,
    },
    Oaep {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_ULONG,
        source: CK_ULONG,
        label: Vec<u8>,
    },
    Pss {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_ULONG,
        salt_len: CK_ULONG,
    },
    /// `CK_RSA_AES_KEY_WRAP_PARAMS`: the AES key's size and the OAEP
    /// parameter ([`Parameter::Oaep`]).
    RsaAes {
        aes_bits: CK_ULONG,
        oaep: Box<Parameter>,
    },
    /// A parameter of a kind this library does not read, by length.
    Other(usize),
}

/// A mechanism and its parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mechanism {
    pub(crate) kind: CK_MECHANISM_TYPE,
    pub(crate) parameter: Parameter,
}

impl Mechanism {
    #[cfg(test)]
    pub(crate) fn bare(kind: CK_MECHANISM_TYPE) -> Mechanism {
        Mechanism { kind, parameter: Parameter::None }
    }

    /// Refuses any parameter: for mechanisms that take none.
    pub(crate) fn no_parameter(&self) -> Result<(), CK_RV> {
        match self.parameter {
            Parameter::None => Ok(()),
            _ => Err(CKR_MECHANISM_PARAM_INVALID),
        }
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

/// The hash a digest mechanism (or an OAEP/PSS parameter) names.
pub(crate) fn hash_of(mechanism: CK_MECHANISM_TYPE) -> Option<HashAlgorithm> {
    match mechanism {
        CKM_SHA_1 => Some(HashAlgorithm::Sha1),
        CKM_SHA224 => Some(HashAlgorithm::Sha224),
        CKM_SHA256 => Some(HashAlgorithm::Sha256),
        CKM_SHA384 => Some(HashAlgorithm::Sha384),
        CKM_SHA512 => Some(HashAlgorithm::Sha512),
        _ => None,
    }
}

fn mgf_of(hash: HashAlgorithm) -> CK_ULONG {
    match hash {
        HashAlgorithm::Sha1 | HashAlgorithm::Unspecified => CKG_MGF1_SHA1,
        HashAlgorithm::Sha224 => CKG_MGF1_SHA224,
        HashAlgorithm::Sha256 => CKG_MGF1_SHA256,
        HashAlgorithm::Sha384 => CKG_MGF1_SHA384,
        HashAlgorithm::Sha512 => CKG_MGF1_SHA512,
    }
}

pub(crate) fn digest_len(hash: HashAlgorithm) -> usize {
    match hash {
        HashAlgorithm::Sha1 => 20,
        HashAlgorithm::Sha224 => 28,
        HashAlgorithm::Sha256 | HashAlgorithm::Unspecified => 32,
        HashAlgorithm::Sha384 => 48,
        HashAlgorithm::Sha512 => 64,
    }
}

/// A hash computed here, for the mechanisms that hash in software.
#[derive(Debug, Clone)]
pub(crate) enum Hasher {
    Sha1(sha1::Sha1),
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(hash: HashAlgorithm) -> Hasher {
        match hash {
            HashAlgorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlgorithm::Sha224 => Hasher::Sha224(sha2::Sha224::new()),
            HashAlgorithm::Sha256 | HashAlgorithm::Unspecified => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            HashAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha224(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha224(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// An operation's input so far: buffered for the HSM, or hashed here.
#[derive(Debug, Clone)]
pub(crate) enum Input {
    Buffer(Zeroizing<Vec<u8>>),
    Hashing(Hasher),
}

impl Input {
    /// Takes more data: a buffer past [`MAX_DATA_LEN`] is refused.
    pub(crate) fn update(&mut self, data: &[u8]) -> Result<(), CK_RV> {
        match self {
            Input::Buffer(buffer) => {
                if buffer.len() + data.len() > MAX_DATA_LEN {
                    return Err(CKR_DATA_LEN_RANGE);
                }
                buffer.extend_from_slice(data);
            }
            Input::Hashing(hasher) => hasher.update(data),
        }
        Ok(())
    }

    /// The bytes to send: the buffer, or the digest.
    pub(crate) fn finish(self) -> Zeroizing<Vec<u8>> {
        match self {
            Input::Buffer(buffer) => buffer,
            Input::Hashing(hasher) => Zeroizing::new(hasher.finish()),
        }
    }
}

/// An empty buffer: what an operation that sends its data starts with.
impl Default for Input {
    fn default() -> Input {
        Input::Buffer(Zeroizing::default())
    }
}

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

/// An encryption (or decryption) mechanism as the HSM takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ciphering {
    pub(crate) family: Family,
    pub(crate) cipher: Cipher,
    pub(crate) hash: Option<HashAlgorithm>,
    pub(crate) iv: Vec<u8>,
    pub(crate) aad: Vec<u8>,
    /// AES-GCM encryption: where the HSM's IV goes.
    pub(crate) iv_out: Option<IvOut>,
    /// AES-CTR: how many low bits of the block count.
    counter_bits: Option<CK_ULONG>,
    /// Which way: the length rules (and their return values) differ.
    encrypting: bool,
    /// The RSA key's modulus length in bytes, once the key is known.
    modulus_len: Option<usize>,
}

/// The AES block: the length of CBC's IV, and what unpadded modes take
/// whole.
const AES_BLOCK_LEN: usize = 16;

/// What PKCS#1 v1.5 padding adds at least (RFC 8017 section 9.2: `00 01`,
/// eight `FF`, `00`).
const PKCS1_OVERHEAD: usize = 11;

/// Triple DES CBC's IV: one 8-byte block.
const DES3_IV_LEN: usize = 8;

/// AES-GCM's IV, which the HSM makes, and its tag, 128 bits.
const GCM_IV_LEN: usize = 12;
const GCM_TAG_BITS: CK_ULONG = 128;
const GCM_TAG_LEN: usize = 16;

impl Ciphering {
    /// The encryption mechanisms offered; `encrypting` false for decryption.
    pub(crate) fn from_mechanism(mechanism: &Mechanism, encrypting: bool) -> Result<Ciphering, CK_RV> {
        let aes = |cipher, iv: Vec<u8>| Ciphering {
            family: Family::Aes,
            cipher,
            hash: None,
            iv,
            aad: Vec::new(),
            iv_out: None,
            counter_bits: None,
            encrypting,
            modulus_len: None,
        };
        let des3 = |cipher, iv| Ciphering { family: Family::Des3, ..aes(cipher, iv) };
        match (mechanism.kind, &mechanism.parameter) {
            (CKM_AES_ECB, Parameter::None) => Ok(aes(Cipher::AesEcb, Vec::new())),
            (CKM_AES_CBC_PAD, Parameter::Bytes(iv)) if iv.len() == 16 => Ok(aes(Cipher::AesCbcPad, iv.clone())),
            (CKM_AES_CBC, Parameter::Bytes(iv)) if iv.len() == AES_BLOCK_LEN => Ok(aes(Cipher::AesCbc, iv.clone())),
            (CKM_AES_CTR, Parameter::Ctr { counter_bits, block }) if (1..=128).contains(counter_bits) => {
                Ok(Ciphering { counter_bits: Some(*counter_bits), ..aes(Cipher::AesCtr, block.to_vec()) })
            }
            (CKM_AES_GCM, Parameter::Gcm { iv, aad, tag_bits, iv_out }) => {
                if *tag_bits != GCM_TAG_BITS || aad.len() > MAX_DATA_LEN {
                    return Err(CKR_MECHANISM_PARAM_INVALID);
                }
                // Encrypting, the HSM makes the IV and the library hands it
                // back through `pIv` (CloudHSM's behaviour); decrypting
                // takes the IV that encryption made.
                let (iv, iv_out) = if encrypting {
                    let out = iv_out.filter(|o| o.len >= GCM_IV_LEN).ok_or(CKR_MECHANISM_PARAM_INVALID)?;
                    (Vec::new(), Some(IvOut { len: GCM_IV_LEN, ..out }))
                } else if iv.len() == GCM_IV_LEN {
                    (iv.clone(), None)
                } else {
                    return Err(CKR_MECHANISM_PARAM_INVALID);
                };
                Ok(Ciphering { aad: aad.clone(), iv_out, ..aes(Cipher::AesGcm, iv) })
            }
            (CKM_RSA_PKCS, Parameter::None) => {
                Ok(Ciphering { family: Family::Rsa, ..aes(Cipher::RsaPkcs, Vec::new()) })
            }
            (CKM_RSA_X_509, Parameter::None) => {
                Ok(Ciphering { family: Family::Rsa, ..aes(Cipher::RsaX509, Vec::new()) })
            }
            (CKM_RSA_PKCS_OAEP, parameter) => {
                let hash = oaep_hash(parameter)?;
                Ok(Ciphering { family: Family::Rsa, hash: Some(hash), ..aes(Cipher::RsaOaep, Vec::new()) })
            }
            (CKM_DES3_ECB, Parameter::None) => Ok(des3(Cipher::Des3Ecb, Vec::new())),
            (CKM_DES3_CBC, Parameter::Bytes(iv)) if iv.len() == DES3_IV_LEN => Ok(des3(Cipher::Des3Cbc, iv.clone())),
            (CKM_DES3_CBC_PAD, Parameter::Bytes(iv)) if iv.len() == DES3_IV_LEN => {
                Ok(des3(Cipher::Des3CbcPad, iv.clone()))
            }
            (CKM_DES3_ECB | CKM_DES3_CBC | CKM_DES3_CBC_PAD, _) => Err(CKR_MECHANISM_PARAM_INVALID),
            (CKM_AES_ECB | CKM_AES_CBC_PAD | CKM_AES_CTR | CKM_AES_GCM | CKM_RSA_PKCS, _) => {
                Err(CKR_MECHANISM_PARAM_INVALID)
            }
            (CKM_AES_CBC | CKM_RSA_X_509, _) => Err(CKR_MECHANISM_PARAM_INVALID),
            _ => Err(CKR_MECHANISM_INVALID),
        }
    }
}

impl Ciphering {
    /// The same mechanism for a key whose RSA modulus is `modulus_len` bytes.
    pub(crate) fn for_modulus(self, modulus_len: Option<usize>) -> Ciphering {
        Ciphering { modulus_len, ..self }
    }

    /// Refuses, before the HSM is asked, a length the mechanism cannot
    /// take, with the return code PKCS#11 gives for it: `CKR_DATA_LEN_RANGE`
    /// for data (encrypting), `CKR_ENCRYPTED_DATA_LEN_RANGE` for a
    /// ciphertext no encryption could have made (decrypting). Data for
    /// AES-ECB, unpadded AES-CBC or unpadded triple DES that is not whole
    /// blocks; a CBC-PAD ciphertext that is not whole blocks (or empty),
    /// or a GCM one shorter
    /// than its tag; RSA data longer than the padding leaves room for, or an
    /// RSA ciphertext not the modulus's length; AES-CTR data that would
    /// carry its counter (the block's low `counter_bits`) past its top (the
    /// HSM counts with the whole block, which is the same short of that).
    pub(crate) fn check_len(&self, len: usize) -> Result<(), CK_RV> {
        let range = if self.encrypting { CKR_DATA_LEN_RANGE } else { CKR_ENCRYPTED_DATA_LEN_RANGE };
        let whole = len.is_multiple_of(AES_BLOCK_LEN);
        let whole_des = len.is_multiple_of(DES3_IV_LEN);
        // The most an RSA encryption with this padding takes, for a
        // modulus of k bytes.
        let rsa_room = |k: usize| match (self.cipher, self.hash) {
            (Cipher::RsaPkcs, _) => k.saturating_sub(PKCS1_OVERHEAD),
            (Cipher::RsaOaep, Some(hash)) => k.saturating_sub(2 * digest_len(hash) + 2),
            _ => k,
        };
        let fits = match (self.cipher, self.encrypting, self.modulus_len) {
            (Cipher::AesEcb | Cipher::AesCbc, _, _) => whole,
            (Cipher::AesCbcPad, false, _) => whole && len > 0,
            (Cipher::Des3Ecb | Cipher::Des3Cbc, _, _) => whole_des,
            (Cipher::Des3CbcPad, false, _) => whole_des && len > 0,
            (Cipher::AesGcm, false, _) => len >= GCM_TAG_LEN,
            (Cipher::RsaPkcs | Cipher::RsaOaep | Cipher::RsaX509, true, Some(k)) => len <= rsa_room(k),
            (Cipher::RsaPkcs | Cipher::RsaOaep | Cipher::RsaX509, false, Some(k)) => len == k,
            _ => true,
        };
        if !fits {
            return Err(range);
        }
        let Some(bits) = self.counter_bits.filter(|b| *b < 128) else {
            return Ok(());
        };
        let block: [u8; 16] = self.iv.as_slice().try_into().map_err(|_| CKR_MECHANISM_PARAM_INVALID)?;
        let top = 1u128 << bits;
        let counter = u128::from_be_bytes(block) & (top - 1);
        let blocks = u128::try_from(len.div_ceil(16)).map_err(|_| CKR_DATA_LEN_RANGE)?;
        if counter + blocks > top { Err(CKR_DATA_LEN_RANGE) } else { Ok(()) }
    }
}

/// The hash of an OAEP parameter: MGF1 with the same hash, no label (the
/// HSM takes none).
fn oaep_hash(parameter: &Parameter) -> Result<HashAlgorithm, CK_RV> {
    let Parameter::Oaep { hash, mgf, source, label } = parameter else {
        return Err(CKR_MECHANISM_PARAM_INVALID);
    };
    let hash = hash_of(*hash).ok_or(CKR_MECHANISM_PARAM_INVALID)?;
    if *mgf != mgf_of(hash) || !(*source == 0 || *source == CKZ_DATA_SPECIFIED) || !label.is_empty() {
        return Err(CKR_MECHANISM_PARAM_INVALID);
    }
    Ok(hash)
}

/// A wrapping mechanism as the HSM takes it: (mechanism, hash, the
/// wrapping key's family).
pub(crate) fn wrapping(mechanism: &Mechanism) -> Result<(WrapMechanism, Option<HashAlgorithm>, Family), CK_RV> {
    match mechanism.kind {
        CKM_AES_KEY_WRAP => mechanism.no_parameter().map(|()| (WrapMechanism::AesKeyWrap, None, Family::Aes)),
        CKM_AES_KEY_WRAP_PAD => mechanism.no_parameter().map(|()| (WrapMechanism::AesKeyWrapPad, None, Family::Aes)),
        // The wrapped key carries its IV: the parameter's is not used.
        CKM_AES_GCM => Ok((WrapMechanism::AesGcm, None, Family::Aes)),
        CKM_RSA_PKCS_OAEP => Ok((WrapMechanism::RsaOaep, Some(oaep_hash(&mechanism.parameter)?), Family::Rsa)),
        // The HSM's RSA-AES wraps with an AES-256 key (then RFC 5649).
        CKM_RSA_AES_KEY_WRAP => match &mechanism.parameter {
            Parameter::RsaAes { aes_bits: 256, oaep } => {
                Ok((WrapMechanism::RsaAes, Some(oaep_hash(oaep)?), Family::Rsa))
            }
            _ => Err(CKR_MECHANISM_PARAM_INVALID),
        },
        _ => Err(CKR_MECHANISM_INVALID),
    }
}

/// The hash of a digest mechanism.
pub(crate) fn digesting(mechanism: &Mechanism) -> Result<HashAlgorithm, CK_RV> {
    let hash = hash_of(mechanism.kind).ok_or(CKR_MECHANISM_INVALID)?;
    mechanism.no_parameter()?;
    Ok(hash)
}

/// The hash whose digests are `len` bytes long.
fn hash_of_len(len: usize) -> Option<HashAlgorithm> {
    [HashAlgorithm::Sha1, HashAlgorithm::Sha224, HashAlgorithm::Sha256, HashAlgorithm::Sha384, HashAlgorithm::Sha512]
        .into_iter()
        .find(|h| digest_len(*h) == len)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn unpadded_lengths_are_range_errors_each_way() {
        let cbc = Mechanism { kind: CKM_AES_CBC, parameter: Parameter::Bytes(vec![0; 16]) };
        let (encrypt, decrypt) =
            (Ciphering::from_mechanism(&cbc, true).unwrap(), Ciphering::from_mechanism(&cbc, false).unwrap());
        assert_eq!(encrypt.cipher, Cipher::AesCbc);
        assert_eq!((encrypt.check_len(32), decrypt.check_len(0)), (Ok(()), Ok(())));
        assert_eq!(encrypt.check_len(15), Err(CKR_DATA_LEN_RANGE));
        assert_eq!(decrypt.check_len(17), Err(CKR_ENCRYPTED_DATA_LEN_RANGE));
        let short_iv = Mechanism { kind: CKM_AES_CBC, parameter: Parameter::Bytes(vec![0; 8]) };
        assert_eq!(Ciphering::from_mechanism(&short_iv, true), Err(CKR_MECHANISM_PARAM_INVALID));

        let x509 = Mechanism::bare(CKM_RSA_X_509);
        let encrypt = Ciphering::from_mechanism(&x509, true).unwrap().for_modulus(Some(256));
        let decrypt = Ciphering::from_mechanism(&x509, false).unwrap().for_modulus(Some(256));
        assert_eq!((encrypt.check_len(1), encrypt.check_len(256)), (Ok(()), Ok(())));
        assert_eq!(encrypt.check_len(257), Err(CKR_DATA_LEN_RANGE));
        assert_eq!(decrypt.check_len(256), Ok(()));
        assert_eq!(decrypt.check_len(255), Err(CKR_ENCRYPTED_DATA_LEN_RANGE));
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

    #[test]
    fn gcm_encryption_hands_back_the_hsms_iv() {
        let gcm = |iv_out| Mechanism {
            kind: CKM_AES_GCM,
            parameter: Parameter::Gcm { iv: vec![0; 12], aad: b"aad".to_vec(), tag_bits: 128, iv_out },
        };
        let out = IvOut { address: 0x1000, len: 12 };
        let c = Ciphering::from_mechanism(&gcm(Some(out)), true).unwrap();
        assert_eq!((c.iv.len(), c.iv_out, &c.aad[..]), (0, Some(out), &b"aad"[..]));
        assert_eq!(Ciphering::from_mechanism(&gcm(None), true), Err(CKR_MECHANISM_PARAM_INVALID));
        let d = Ciphering::from_mechanism(&gcm(None), false).unwrap();
        assert_eq!((d.iv, d.iv_out), (vec![0; 12], None));
    }

    #[test]
    fn a_ctr_counter_may_not_wrap_in_its_bits() {
        let ctr = |counter_bits, last| {
            let mut block = [0u8; 16];
            block[15] = last;
            let parameter = Parameter::Ctr { counter_bits, block };
            Ciphering::from_mechanism(&Mechanism { kind: CKM_AES_CTR, parameter }, true).unwrap()
        };
        assert_eq!(ctr(8, 0xfe).check_len(32), Ok(()), "blocks 0xfe and 0xff");
        assert_eq!(ctr(8, 0xfe).check_len(33), Err(CKR_DATA_LEN_RANGE), "0x100 wraps");
        assert_eq!(ctr(128, 0xff).check_len(MAX_DATA_LEN), Ok(()));
    }

    #[test]
    fn oaep_takes_mgf1_of_its_hash_and_no_label() {
        let oaep = |mgf, label: &[u8]| Mechanism {
            kind: CKM_RSA_PKCS_OAEP,
            parameter: Parameter::Oaep { hash: CKM_SHA256, mgf, source: CKZ_DATA_SPECIFIED, label: label.to_vec() },
        };
        assert_eq!(
            Ciphering::from_mechanism(&oaep(CKG_MGF1_SHA256, b""), true).unwrap().hash,
            Some(HashAlgorithm::Sha256)
        );
        assert_eq!(Ciphering::from_mechanism(&oaep(CKG_MGF1_SHA1, b""), true), Err(CKR_MECHANISM_PARAM_INVALID));
        assert_eq!(Ciphering::from_mechanism(&oaep(CKG_MGF1_SHA256, b"l"), true), Err(CKR_MECHANISM_PARAM_INVALID));
        assert_eq!(wrapping(&oaep(CKG_MGF1_SHA256, b"")).unwrap().0, WrapMechanism::RsaOaep);
    }
}
