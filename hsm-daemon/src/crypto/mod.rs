//! Mechanisms: the one place that maps a CloudHSM mechanism to a library
//! call. `ring` for everything it offers; well-kept RustCrypto crates for the
//! rest, and ed25519-dalek for Ed25519ph (HashEdDSA), which ring lacks.
//! Nothing here is hand-written cryptography.
//!
//! Pure: no I/O, no clock. Randomness is passed in as `&mut impl
//! rand::CryptoRng` (rand 0.9, the workspace's) so that later a seeded
//! generator can make key material reproducible. The RustCrypto crates speak
//! other `rand_core` versions; `rng.rs` bridges by seeding a ChaCha20 generator
//! of their version from the caller's generator. ring's own signing draws its
//! nonces and salts from the operating system (`ring::rand::SystemRandom`),
//! and RSA decryption blinds with the operating system's generator, since
//! those calls take no generator.
//!
//! # Layout
//! - `keys/`: [`KeyMaterial`]: generation, PEM/DER import and export,
//!   attributes, check values. Each key is parsed once into the forms the
//!   mechanisms use.
//! - `ec.rs`: the five ECDSA curves behind one enum.
//! - `cipher/`: [`encrypt`] / [`decrypt`], with a file each for the AES
//!   modes, triple DES and the RSA schemes.
//! - `sign.rs`: [`sign`] / [`verify`] / [`digest`].
//! - `raw_rsa.rs`: the unpadded RSA operations (`CKM_RSA_X_509`) that
//!   [`SignMech::RsaX509`] and [`Cipher::RsaX509`] share.
//! - `wrap.rs`: [`wrap`] / [`unwrap`].
//! - `rng.rs`: generators of the RustCrypto crates' `rand_core`, seeded from
//!   the caller's.
//!
//! The model and the service use only the items re-exported here; which
//! library backs a mechanism is decided in the `match` of each module.

mod cipher;
mod ec;
mod keys;
mod raw_rsa;
mod rng;
mod sign;
mod wrap;

#[cfg(test)]
mod tests;

use rand::CryptoRng;
use zeroize::Zeroizing;

/// Secret bytes, zeroized on drop.
pub type SecretBytes = Zeroizing<Vec<u8>>;

/// What kind of key a [`KeyMaterial`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Aes,
    GenericSecret,
    /// Triple DES (non-FIPS clusters only: the model refuses it on FIPS ones).
    Des3,
    Rsa,
    Ec(Curve),
    Ed25519,
}

/// The EC curves CloudHSM offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    P224,
    P256,
    P384,
    P521,
    Secp256k1,
}

/// Digest algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    /// Length of this hash's output in bytes (the length an [`Input::Digest`]
    /// must have).
    pub const fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }
}

/// A key the HSM can generate, with its parameters: what `key
/// generate-symmetric` and `key generate-asymmetric-pair` ask for, and what a
/// seed file's generated keys say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// 128, 192 or 256 bits.
    Aes {
        bits: u32,
    },
    /// 1 to 800 bytes.
    GenericSecret {
        len: usize,
    },
    /// 24 bytes, DES parity set, three distinct parts.
    Des3,
    /// 2048 to 4096 bits in steps of 256; exponent odd, at least 65537.
    Rsa {
        modulus_bits: u32,
        public_exponent: u64,
    },
    Ec(Curve),
    Ed25519,
}

/// What [`KeySpec::generate`] made: one secret key, or a pair.
#[derive(Debug)]
pub enum Generated {
    Secret(KeyMaterial),
    Pair { private: KeyMaterial, public: KeyMaterial },
}

/// Which half of a key pair, or a secret key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyClass {
    Secret,
    Public,
    Private,
}

/// Key material, parsed once and kept in parsed form for repeated use.
/// Secret parts are zeroized on drop; `Debug` never shows them.
/// Must be `Send + Sync` (it is shared as `Arc<KeyMaterial>`).
///
/// Material made or imported here is parsed at once (a bad key is refused
/// then). Material loaded from the store ([`KeyMaterial::stored`]) keeps its
/// authenticated encoding and is parsed on first use, then kept parsed: an
/// HSM holding a million keys starts without a million scalar
/// multiplications, and holds the few hundred bytes of an encoding per key
/// rather than every parsed form of keys nobody uses.
///
/// The methods live in `keys/`.
pub struct KeyMaterial {
    /// Known without parsing (the store records them beside the encoding).
    kind: KeyKind,
    class: KeyClass,
    /// The encoding [`KeyMaterial::to_wrappable`] gives, when the key came
    /// from the store; `None` for keys parsed when they were made.
    encoded: Option<SecretBytes>,
    /// The parsed forms; `None` inside if the stored encoding does not parse
    /// (it was authenticated when unsealed, so only a bug gets there).
    parsed: std::sync::OnceLock<Option<keys::Key>>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

/// Errors from a mechanism. Messages name the field and the rule; they never
/// carry key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A parameter breaks a rule (bad key size, IV length, data too long...).
    #[error("invalid {field}: {rule}")]
    InvalidArgument { field: &'static str, rule: String },
    /// The mechanism does not apply to this kind/class of key.
    #[error("mechanism {mechanism} cannot be used with a {key} key")]
    WrongKeyType { mechanism: String, key: String },
    /// Decryption or unwrapping failed: bad tag, bad padding, wrong key.
    #[error("{0} failed: the data is not authentic or was not made with this key")]
    Authentication(&'static str),
    /// Key bytes or PEM could not be parsed.
    #[error("invalid key: {0}")]
    InvalidKey(String),
}

impl CryptoError {
    /// Shorthand for [`CryptoError::InvalidArgument`].
    pub(crate) fn invalid(field: &'static str, rule: impl Into<String>) -> Self {
        CryptoError::InvalidArgument { field, rule: rule.into() }
    }
}

/// Encryption mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// AES-GCM, 12-byte IV generated by the HSM on encrypt, 16-byte tag
    /// appended to the ciphertext.
    AesGcm,
    /// AES-CBC with PKCS#7 padding, 16-byte IV (generated if not given).
    AesCbcPad,
    /// AES-CTR, 16-byte counter block (generated if not given). The whole
    /// block is a 128-bit big-endian counter.
    AesCtr,
    /// AES-ECB, data a multiple of 16 bytes, no IV.
    AesEcb,
    /// Triple DES ECB, data a multiple of 8 bytes, no IV.
    Des3Ecb,
    /// Triple DES CBC without padding, data a multiple of 8 bytes, 8-byte IV
    /// (generated if not given).
    Des3Cbc,
    /// Triple DES CBC with PKCS#7 padding, 8-byte IV (generated if not given).
    Des3CbcPad,
    /// RSA-OAEP with this hash for both OAEP and MGF1, empty label.
    RsaOaep(HashAlg),
    /// RSA PKCS#1 v1.5 encryption. Decryption uses implicit rejection (the
    /// `rsa` crate's defence against Bleichenbacher/Marvin padding oracles):
    /// a ciphertext with bad padding decrypts to a deterministic pseudo-random
    /// message instead of failing, so callers cannot tell bad padding apart.
    /// A ciphertext of the wrong length or out of range still fails.
    RsaPkcs1,
    /// AES-CBC without padding (`CKM_AES_CBC`): data a multiple of 16 bytes,
    /// 16-byte IV (generated if not given).
    AesCbc,
    /// Raw RSA (`CKM_RSA_X_509`): the public-key operation on the plaintext
    /// as a big-endian integer (at most the modulus length, less than the
    /// modulus); decryption is the private-key operation (blinded), its
    /// output the modulus length with leading zeros kept. No padding, so no
    /// padding oracle; it is for callers that pad themselves.
    RsaX509,
}

/// Result of an encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encrypted {
    /// The IV / counter block used (generated or given); `None` for ECB and RSA.
    pub iv: Option<Vec<u8>>,
    /// Ciphertext (for GCM: ciphertext || 16-byte tag).
    pub ciphertext: Vec<u8>,
}

/// Signature mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignMech {
    /// ECDSA, signature raw `r || s` (each half the curve's byte length).
    Ecdsa(HashAlg),
    /// Ed25519 (pure; `Input::Digest` is refused).
    Ed25519,
    /// HashEdDSA, Ed25519ph (RFC 8032 section 5.1) with an empty context:
    /// Ed25519 over the SHA-512 digest of the data, the prehash the RFC
    /// fixes. `Input::Digest` is that 64-byte digest. A signature of one kind
    /// never verifies as the other (the RFC's domain separation).
    Ed25519ph,
    /// RSA PKCS#1 v1.5.
    RsaPkcs1(HashAlg),
    /// RSA-PSS, MGF1 with the same hash, salt length = hash length.
    RsaPss(HashAlg),
    /// HMAC on a generic-secret (or AES) key; the "signature" is the tag.
    /// `Input::Digest` is refused (HMAC has no prehashed form).
    Hmac(HashAlg),
    /// RSA PKCS#1 v1.5 (EMSA-PKCS1-v1_5 type-1 padding) around the data as
    /// given, no DigestInfo added (`CKM_RSA_PKCS` over raw data): at most the
    /// modulus length less 11 bytes. Signing a DigestInfo this way gives the
    /// [`SignMech::RsaPkcs1`] signature of its digest. `Input::Digest` is
    /// refused (there is no hash).
    RsaPkcs1Raw,
    /// Raw RSA (`CKM_RSA_X_509`): the private-key operation (blinded) on the
    /// data as a big-endian integer (at most the modulus length, less than
    /// the modulus), output the modulus length; verification compares the
    /// public-key operation with the data left-padded to that length.
    /// `Input::Digest` is refused.
    RsaX509,
}

/// What is signed: the data, or a digest the caller already computed with the
/// mechanism's hash (its length must match the hash).
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Data(&'a [u8]),
    Digest(&'a [u8]),
}

/// Key wrapping mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrapMech {
    /// AES-GCM: output is 12-byte IV || ciphertext || tag of this length.
    /// The only mechanism that takes additional authenticated data.
    AesGcm(GcmTagLen),
    /// AES key wrap, RFC 3394 (key bytes a multiple of 8, at least 16).
    AesKeyWrap,
    /// AES key wrap with padding, RFC 5649: CloudHSM's "AES key wrap with
    /// zero padding" (`aes-zero-pad`, `CKM_AES_KEY_WRAP_PAD`), which pads
    /// with zeros and keeps the length in the IV.
    AesKeyWrapPad,
    /// CloudHSM's "AES key wrap with PKCS #5 padding" (`aes-pkcs5-pad`):
    /// PKCS #5 padding to a multiple of 8 bytes (1 to 8 bytes added), then
    /// RFC 3394 with its default IV.
    AesKeyWrapPkcs5,
    /// RSA-OAEP with this hash (OAEP and MGF1), empty label.
    RsaOaep(HashAlg),
    /// CKM_RSA_AES_KEY_WRAP: a fresh AES-256 key wrapped with RSA-OAEP(hash),
    /// followed by the target wrapped with that key by RFC 5649.
    RsaAes(HashAlg),
    /// RSA PKCS #1 v1.5 encryption of the key bytes (`rsa-pkcs`). Unwrapping
    /// has the implicit rejection of [`Cipher::RsaPkcs1`]: bad padding yields
    /// bytes that then fail to parse as a key, never a padding oracle.
    RsaPkcs1,
}

/// An AES-GCM tag length. SP 800-38D allows 128, 120, 112, 104 and 96 bits
/// in general and 64 for some uses; CloudHSM's CLI example wraps with 64.
/// (32-bit tags, which SP 800-38D restricts further, are refused.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcmTagLen(u8);

impl GcmTagLen {
    /// 128 bits: the default, and what encryption uses.
    pub const FULL: GcmTagLen = GcmTagLen(16);
    /// The tag lengths accepted, in bits.
    pub const ALLOWED_BITS: [u32; 6] = [64, 96, 104, 112, 120, 128];

    /// The tag length of `bits` bits, if it is one of [`Self::ALLOWED_BITS`].
    pub fn from_bits(bits: u32) -> Result<Self, CryptoError> {
        if !Self::ALLOWED_BITS.contains(&bits) {
            return Err(CryptoError::invalid(
                "tag_length_bits",
                format!("AES-GCM tags are 64, 96, 104, 112, 120 or 128 bits, not {bits}"),
            ));
        }
        // At most 128 / 8 = 16, so it fits.
        Ok(GcmTagLen(u8::try_from(bits / 8).unwrap_or(16)))
    }

    /// The length in bytes.
    pub const fn bytes(self) -> usize {
        self.0 as usize
    }
}

/// The largest input one operation accepts (CloudHSM: about 16 KiB).
pub const MAX_DATA_LEN: usize = 16 * 1024;

/// Encrypts `plaintext` (at most [`MAX_DATA_LEN`]). `iv` is used when given
/// (checked for length) except for GCM, whose IV the HSM always generates
/// (a given IV is ignored, as CloudHSM overwrites it).
/// RSA mechanisms take a public key or a private key's public half.
pub fn encrypt(
    key: &KeyMaterial,
    cipher: Cipher,
    iv: Option<&[u8]>,
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<Encrypted, CryptoError> {
    cipher::encrypt(key, cipher, iv, aad, plaintext, rng)
}

/// Decrypts; GCM expects ciphertext || tag.
pub fn decrypt(
    key: &KeyMaterial,
    cipher: Cipher,
    iv: Option<&[u8]>,
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<SecretBytes, CryptoError> {
    cipher::decrypt(key, cipher, iv, aad, ciphertext)
}

/// Signs with a private key (or an HMAC key).
pub fn sign(
    key: &KeyMaterial,
    mech: SignMech,
    input: Input<'_>,
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, CryptoError> {
    sign::sign(key, mech, input, rng)
}

/// Verifies with a public key, a private key's public half, or an HMAC key.
/// `Ok(false)` for a signature that does not verify (including malformed
/// signatures); `Err` only for misuse (wrong key type, bad digest length).
pub fn verify(key: &KeyMaterial, mech: SignMech, input: Input<'_>, signature: &[u8]) -> Result<bool, CryptoError> {
    sign::verify(key, mech, input, signature)
}

/// A digest of `data`. It cannot fail, so it does not enforce
/// [`MAX_DATA_LEN`]; callers that take data from clients check the length.
pub fn digest(alg: HashAlg, data: &[u8]) -> Vec<u8> {
    sign::digest(alg, data)
}

/// Wraps `key_bytes` (from `to_wrappable`) under `wrapping_key`. `aad` is
/// AES-GCM's additional authenticated data; other mechanisms refuse a
/// non-empty one. RSA mechanisms take a public key or a private key's
/// public half.
pub fn wrap(
    wrapping_key: &KeyMaterial,
    mech: WrapMech,
    aad: &[u8],
    key_bytes: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, CryptoError> {
    wrap::wrap(wrapping_key, mech, aad, key_bytes, rng)
}

/// Unwraps what `wrap` made (or an independent implementation of the same
/// mechanism made), with the same `aad`.
pub fn unwrap(
    unwrapping_key: &KeyMaterial,
    mech: WrapMech,
    aad: &[u8],
    wrapped: &[u8],
) -> Result<SecretBytes, CryptoError> {
    wrap::unwrap(unwrapping_key, mech, aad, wrapped)
}

/// Fails when `data` is longer than [`MAX_DATA_LEN`].
fn check_data_len(field: &'static str, data: &[u8]) -> Result<(), CryptoError> {
    if data.len() > MAX_DATA_LEN {
        return Err(CryptoError::invalid(field, format!("at most {MAX_DATA_LEN} bytes, got {}", data.len())));
    }
    Ok(())
}
