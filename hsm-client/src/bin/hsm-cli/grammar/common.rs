//! Flags and values shared by the `key` and `crypto` commands.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use hsm_client::keys::HashAlgorithm;

/// A `NAME=VALUE` term: a filter term (`attr.label=x`, `key-reference=0x..`)
/// or an attribute (`sign=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pair {
    pub(crate) name: String,
    pub(crate) value: String,
}

impl Pair {
    pub(crate) fn to_tuple(&self) -> (String, String) {
        (self.name.clone(), self.value.clone())
    }
}

/// Pairs as the client library takes them.
pub(crate) fn tuples(pairs: &[Pair]) -> Vec<(String, String)> {
    pairs.iter().map(Pair::to_tuple).collect()
}

/// Parses a filter term: `key-reference=0x...` or `attr.NAME=VALUE`.
pub(crate) fn filter_term(raw: &str) -> Result<Pair, String> {
    let usage = "expected key-reference=0x... or attr.KEY_ATTRIBUTE_NAME=KEY_ATTRIBUTE_VALUE";
    let (name, value) = raw.split_once('=').ok_or(usage)?;
    let known = name == "key-reference" || name.strip_prefix("attr.").is_some_and(|attr| !attr.is_empty());
    if !known {
        return Err(usage.into());
    }
    if name == "key-reference" && value.is_empty() {
        return Err("key-reference needs a value, e.g. key-reference=0x0000000000100001".into());
    }
    Ok(Pair { name: name.to_owned(), value: value.to_owned() })
}

/// Parses an attribute: `KEY_ATTRIBUTE_NAME=KEY_ATTRIBUTE_VALUE`.
pub(crate) fn attribute_pair(raw: &str) -> Result<Pair, String> {
    match raw.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok(Pair { name: name.to_owned(), value: value.to_owned() }),
        _ => Err("expected KEY_ATTRIBUTE_NAME=KEY_ATTRIBUTE_VALUE, e.g. sign=true".into()),
    }
}

/// `--hash-function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum HashFunction {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashFunction {
    pub(crate) fn algorithm(self) -> HashAlgorithm {
        match self {
            HashFunction::Sha1 => HashAlgorithm::Sha1,
            HashFunction::Sha224 => HashAlgorithm::Sha224,
            HashFunction::Sha256 => HashAlgorithm::Sha256,
            HashFunction::Sha384 => HashAlgorithm::Sha384,
            HashFunction::Sha512 => HashAlgorithm::Sha512,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            HashFunction::Sha1 => "sha1",
            HashFunction::Sha224 => "sha224",
            HashFunction::Sha256 => "sha256",
            HashFunction::Sha384 => "sha384",
            HashFunction::Sha512 => "sha512",
        }
    }

    /// The digest length in bytes.
    pub(crate) fn digest_len(self) -> u32 {
        match self {
            HashFunction::Sha1 => 20,
            HashFunction::Sha224 => 28,
            HashFunction::Sha256 => 32,
            HashFunction::Sha384 => 48,
            HashFunction::Sha512 => 64,
        }
    }
}

/// `--mgf`: MGF1 with a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MaskGeneration {
    Mgf1Sha1,
    Mgf1Sha224,
    Mgf1Sha256,
    Mgf1Sha384,
    Mgf1Sha512,
}

impl MaskGeneration {
    /// The HSM's OAEP and PSS use MGF1 with the mechanism's own hash: refuses
    /// any other.
    pub(crate) fn require(self, hash: HashFunction) -> Result<(), String> {
        if self.hash() == hash {
            return Ok(());
        }
        Err(format!(
            "--mgf mgf1-{}: the mask generation function must use --hash-function's hash (mgf1-{})",
            self.hash().name(),
            hash.name()
        ))
    }

    pub(crate) fn hash(self) -> HashFunction {
        match self {
            MaskGeneration::Mgf1Sha1 => HashFunction::Sha1,
            MaskGeneration::Mgf1Sha224 => HashFunction::Sha224,
            MaskGeneration::Mgf1Sha256 => HashFunction::Sha256,
            MaskGeneration::Mgf1Sha384 => HashFunction::Sha384,
            MaskGeneration::Mgf1Sha512 => HashFunction::Sha512,
        }
    }
}

/// `--data BASE64` or `--data-path FILE`, exactly one.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct DataSource {
    /// Base64 encoded data.
    #[arg(long)]
    pub(crate) data: Option<String>,
    /// File holding the data (raw bytes).
    #[arg(long)]
    pub(crate) data_path: Option<PathBuf>,
}

/// `--signature BASE64` or `--signature-path FILE`, exactly one.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct SignatureSource {
    /// Base64 encoded signature.
    #[arg(long)]
    pub(crate) signature: Option<String>,
    /// File holding the signature (raw bytes).
    #[arg(long)]
    pub(crate) signature_path: Option<PathBuf>,
}

/// `--ciphertext BASE64` or `--ciphertext-path FILE`, exactly one.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct CiphertextSource {
    /// Base64 encoded ciphertext.
    #[arg(long)]
    pub(crate) ciphertext: Option<String>,
    /// File holding the ciphertext (raw bytes).
    #[arg(long)]
    pub(crate) ciphertext_path: Option<PathBuf>,
}
