//! The hashes mechanisms name, and an operation's input: buffered for the
//! HSM, or hashed here for the mechanisms that hash in software.

use cryptoki_sys::{
    CK_MECHANISM_TYPE, CK_RV, CK_ULONG, CKG_MGF1_SHA1, CKG_MGF1_SHA224, CKG_MGF1_SHA256, CKG_MGF1_SHA384,
    CKG_MGF1_SHA512, CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512, CKR_DATA_LEN_RANGE,
    CKR_MECHANISM_INVALID,
};
use hsm_client::keys::HashAlgorithm;
use sha2::Digest as _;
use zeroize::Zeroizing;

use super::{MAX_DATA_LEN, Mechanism};

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

pub(super) fn mgf_of(hash: HashAlgorithm) -> CK_ULONG {
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

/// The hash whose digests are `len` bytes long.
pub(super) fn hash_of_len(len: usize) -> Option<HashAlgorithm> {
    [HashAlgorithm::Sha1, HashAlgorithm::Sha224, HashAlgorithm::Sha256, HashAlgorithm::Sha384, HashAlgorithm::Sha512]
        .into_iter()
        .find(|h| digest_len(*h) == len)
}

/// The hash of a digest mechanism.
pub(crate) fn digesting(mechanism: &Mechanism) -> Result<HashAlgorithm, CK_RV> {
    let hash = hash_of(mechanism.kind).ok_or(CKR_MECHANISM_INVALID)?;
    mechanism.no_parameter()?;
    Ok(hash)
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
    pub(super) fn new(hash: HashAlgorithm) -> Hasher {
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
