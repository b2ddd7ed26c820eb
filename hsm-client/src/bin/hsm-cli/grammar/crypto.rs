//! `crypto ...`: signing and verification as the CloudHSM CLI has them, and
//! (emulator extensions in the same style) encryption, digests and HMACs.

use clap::{Args, Subcommand, ValueEnum};

use super::common::{CiphertextSource, DataSource, HashFunction, MaskGeneration, Pair, SignatureSource, filter_term};

#[derive(Debug, Subcommand)]
pub(crate) enum CryptoCommand {
    /// Sign data with a private key.
    Sign {
        #[command(subcommand)]
        mechanism: SignMechanism,
        /// Signed quorum token file (service key-usage), for a key with a
        /// use quorum value.
        #[arg(long, global = true)]
        approval: Option<std::path::PathBuf>,
    },
    /// Verify a signature with a public (or private) key.
    Verify {
        #[command(subcommand)]
        mechanism: VerifyMechanism,
    },
    /// Encrypt data (emulator extension).
    Encrypt {
        #[command(subcommand)]
        cipher: EncryptCipher,
    },
    /// Decrypt data (emulator extension).
    Decrypt {
        #[command(subcommand)]
        cipher: DecryptCipher,
    },
    /// Hash data on the HSM (emulator extension).
    Digest(DigestArgs),
    /// HMAC with a generic secret or AES key (emulator extension).
    Hmac {
        #[command(subcommand)]
        operation: HmacOperation,
    },
}

/// `--key-filter`: one key, selected by reference or attributes.
#[derive(Debug, Clone, Args)]
pub(crate) struct KeySelector {
    /// Key reference (e.g. key-reference=0xabc) or space separated list of key
    /// attributes in the form attr.KEY_ATTRIBUTE_NAME=KEY_ATTRIBUTE_VALUE;
    /// must select exactly one key.
    #[arg(long, required = true, num_args = 1.., value_parser = filter_term)]
    pub(crate) key_filter: Vec<Pair>,
}

/// `--data-type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum DataType {
    /// The data is hashed as part of signing.
    #[default]
    Raw,
    /// The data is a digest already made with --hash-function.
    Digest,
}

/// Signing with a hash (ECDSA, RSA PKCS #1 v1.5).
#[derive(Debug, Args)]
pub(crate) struct Hashed {
    #[command(flatten)]
    pub(crate) key: KeySelector,
    #[arg(long)]
    pub(crate) hash_function: HashFunction,
    #[command(flatten)]
    pub(crate) data: DataSource,
    /// Whether --data is raw data or a digest.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) data_type: DataType,
}

/// RSA-PSS: a hash, MGF1 with the same hash, and a salt as long as the hash.
#[derive(Debug, Args)]
pub(crate) struct Pss {
    #[command(flatten)]
    pub(crate) hashed: Hashed,
    /// Mask generation function; must use --hash-function's hash.
    #[arg(long)]
    pub(crate) mgf: MaskGeneration,
    /// Salt length in bytes; must equal the hash length.
    #[arg(long)]
    pub(crate) salt_length: u32,
}

/// Pure Ed25519: no hash.
#[derive(Debug, Args)]
pub(crate) struct Pure {
    #[command(flatten)]
    pub(crate) key: KeySelector,
    #[command(flatten)]
    pub(crate) data: DataSource,
}

/// HashEdDSA (Ed25519ph, RFC 8032): Ed25519 over the data's SHA-512 digest.
/// Both flags are required, as in the CloudHSM CLI.
#[derive(Debug, Args)]
pub(crate) struct Prehashed {
    #[command(flatten)]
    pub(crate) key: KeySelector,
    #[command(flatten)]
    pub(crate) data: DataSource,
    /// The type of data passed in, either raw or digest (a 64-byte SHA-512
    /// digest).
    #[arg(long, value_enum)]
    pub(crate) data_type: DataType,
    /// Hash function.
    #[arg(long, value_enum)]
    pub(crate) hash_function: PrehashFunction,
}

/// `--hash-function` of Ed25519ph: only the SHA-512 RFC 8032 fixes, so clap
/// refuses any other with the one possible value, as the CloudHSM CLI does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PrehashFunction {
    Sha512,
}

impl PrehashFunction {
    pub(crate) fn hash(self) -> HashFunction {
        match self {
            PrehashFunction::Sha512 => HashFunction::Sha512,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum SignMechanism {
    /// ECDSA with an EC private key; the signature is raw r || s.
    Ecdsa(Hashed),
    /// Ed25519 (pure EdDSA) with an Ed25519 private key (emulator extension).
    Ed25519(Pure),
    /// HashEdDSA (Ed25519ph) with an Ed25519 private key.
    Ed25519ph(Prehashed),
    /// RSA PKCS #1 v1.5 with an RSA private key.
    RsaPkcs(Hashed),
    /// RSA-PSS with an RSA private key.
    RsaPkcsPss(Pss),
}

#[derive(Debug, Args)]
pub(crate) struct VerifyHashed {
    #[command(flatten)]
    pub(crate) hashed: Hashed,
    #[command(flatten)]
    pub(crate) signature: SignatureSource,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyPss {
    #[command(flatten)]
    pub(crate) pss: Pss,
    #[command(flatten)]
    pub(crate) signature: SignatureSource,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyPure {
    #[command(flatten)]
    pub(crate) pure: Pure,
    #[command(flatten)]
    pub(crate) signature: SignatureSource,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyPrehashed {
    #[command(flatten)]
    pub(crate) prehashed: Prehashed,
    #[command(flatten)]
    pub(crate) signature: SignatureSource,
}

#[derive(Debug, Subcommand)]
pub(crate) enum VerifyMechanism {
    /// ECDSA with an EC public key.
    Ecdsa(VerifyHashed),
    /// Ed25519 (pure EdDSA) with an Ed25519 public key (emulator extension).
    Ed25519(VerifyPure),
    /// HashEdDSA (Ed25519ph) with an Ed25519 public key.
    Ed25519ph(VerifyPrehashed),
    /// RSA PKCS #1 v1.5 with an RSA public key.
    RsaPkcs(VerifyHashed),
    /// RSA-PSS with an RSA public key.
    RsaPkcsPss(VerifyPss),
}

/// Key and plaintext.
#[derive(Debug, Args)]
pub(crate) struct Plain {
    #[command(flatten)]
    pub(crate) key: KeySelector,
    #[command(flatten)]
    pub(crate) data: DataSource,
}

#[derive(Debug, Args)]
pub(crate) struct EncryptGcm {
    #[command(flatten)]
    pub(crate) plain: Plain,
    /// Base64 encoded additional authenticated data.
    #[arg(long)]
    pub(crate) aad: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct EncryptIv {
    #[command(flatten)]
    pub(crate) plain: Plain,
    /// Base64 encoded 16-byte IV or counter block; the HSM makes one if left out.
    #[arg(long)]
    pub(crate) iv: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct EncryptOaep {
    #[command(flatten)]
    pub(crate) plain: Plain,
    /// Hash function for OAEP and MGF1.
    #[arg(long)]
    pub(crate) hash_function: HashFunction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EncryptCipher {
    /// AES-GCM: the HSM makes the 12-byte IV; the 16-byte tag ends the ciphertext.
    AesGcm(EncryptGcm),
    /// AES-CBC with PKCS #7 padding.
    AesCbcPad(EncryptIv),
    /// AES-CTR.
    AesCtr(EncryptIv),
    /// AES-ECB (data a multiple of 16 bytes).
    AesEcb(Plain),
    /// RSA-OAEP with an RSA public key.
    RsaOaep(EncryptOaep),
    /// RSA PKCS #1 v1.5 with an RSA public key.
    RsaPkcs(Plain),
}

/// Key and ciphertext.
#[derive(Debug, Args)]
pub(crate) struct Sealed {
    #[command(flatten)]
    pub(crate) key: KeySelector,
    #[command(flatten)]
    pub(crate) ciphertext: CiphertextSource,
}

#[derive(Debug, Args)]
pub(crate) struct DecryptGcm {
    #[command(flatten)]
    pub(crate) sealed: Sealed,
    /// Base64 encoded IV that encryption printed.
    #[arg(long)]
    pub(crate) iv: String,
    /// Base64 encoded additional authenticated data.
    #[arg(long)]
    pub(crate) aad: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct DecryptIv {
    #[command(flatten)]
    pub(crate) sealed: Sealed,
    /// Base64 encoded IV or counter block that encryption printed.
    #[arg(long)]
    pub(crate) iv: String,
}

#[derive(Debug, Args)]
pub(crate) struct DecryptOaep {
    #[command(flatten)]
    pub(crate) sealed: Sealed,
    /// Hash function for OAEP and MGF1.
    #[arg(long)]
    pub(crate) hash_function: HashFunction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DecryptCipher {
    /// AES-GCM (ciphertext || tag).
    AesGcm(DecryptGcm),
    /// AES-CBC with PKCS #7 padding.
    AesCbcPad(DecryptIv),
    /// AES-CTR.
    AesCtr(DecryptIv),
    /// AES-ECB.
    AesEcb(Sealed),
    /// RSA-OAEP with an RSA private key.
    RsaOaep(DecryptOaep),
    /// RSA PKCS #1 v1.5 with an RSA private key.
    RsaPkcs(Sealed),
}

#[derive(Debug, Args)]
pub(crate) struct DigestArgs {
    #[arg(long)]
    pub(crate) hash_function: HashFunction,
    #[command(flatten)]
    pub(crate) data: DataSource,
}

/// Key, hash and data of an HMAC.
#[derive(Debug, Args)]
pub(crate) struct HmacArgs {
    #[command(flatten)]
    pub(crate) key: KeySelector,
    #[arg(long)]
    pub(crate) hash_function: HashFunction,
    #[command(flatten)]
    pub(crate) data: DataSource,
}

#[derive(Debug, Args)]
pub(crate) struct HmacVerify {
    #[command(flatten)]
    pub(crate) hmac: HmacArgs,
    #[command(flatten)]
    pub(crate) signature: SignatureSource,
}

#[derive(Debug, Subcommand)]
pub(crate) enum HmacOperation {
    /// Compute an HMAC (printed as "signature").
    Sign(HmacArgs),
    /// Check an HMAC.
    Verify(HmacVerify),
}
