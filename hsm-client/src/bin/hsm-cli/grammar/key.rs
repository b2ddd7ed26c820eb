//! `key ...`: the CloudHSM CLI's key management commands.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::{
    CliRole,
    common::{DataSource, HashFunction, MaskGeneration, Pair, attribute_pair, filter_term},
};

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Generate a symmetric key (AES or generic secret).
    GenerateSymmetric {
        #[command(subcommand)]
        kind: SymmetricKind,
    },
    /// Generate an asymmetric key pair (RSA or EC, including Ed25519).
    GenerateAsymmetricPair {
        #[command(subcommand)]
        kind: PairKind,
    },
    /// Import a key from a file.
    Import {
        #[command(subcommand)]
        format: ImportFormat,
    },
    /// Write a key file from a key in the HSM: a public key's PEM, or a
    /// reference to a private key. No private key material leaves the HSM.
    GenerateFile(GenerateFile),
    /// List the keys you own, keys shared with you and all public keys.
    List(List),
    /// Delete a key you own.
    Delete {
        #[command(flatten)]
        filter: KeyFilter,
    },
    /// Share a private or secret key you own with another crypto user.
    Share(ShareArgs),
    /// Stop sharing a key with a crypto user.
    Unshare(ShareArgs),
    /// Set one attribute of a key.
    SetAttribute(SetAttribute),
    /// Wrap (export, encrypted) a key you own.
    Wrap {
        #[command(subcommand)]
        mechanism: WrapMechanism,
    },
    /// Unwrap (import) a wrapped key.
    Unwrap {
        #[command(subcommand)]
        mechanism: UnwrapMechanism,
    },
}

/// `--filter`: one key, selected by reference or attributes.
#[derive(Debug, Clone, Args)]
pub(crate) struct KeyFilter {
    /// Key reference (e.g. key-reference=0xabc) or space separated list of key
    /// attributes in the form attr.KEY_ATTRIBUTE_NAME=KEY_ATTRIBUTE_VALUE;
    /// must select exactly one key.
    #[arg(long, visible_alias = "key-filter", required = true, num_args = 1.., value_parser = filter_term)]
    pub(crate) filter: Vec<Pair>,
}

/// What every key creation takes.
#[derive(Debug, Default, Args)]
pub(crate) struct Creation {
    /// Creates a session key that exists only in the current session.
    #[arg(long)]
    pub(crate) session: bool,
    /// Space separated list of crypto user usernames to share the key with.
    #[arg(long, num_args = 1..)]
    pub(crate) share_crypto_users: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SymmetricKind {
    /// Generate an AES key (16, 24 or 32 bytes).
    Aes(Symmetric),
    /// Generate a generic secret key (1 to 800 bytes), e.g. for HMAC.
    GenericSecret(Symmetric),
}

#[derive(Debug, Args)]
pub(crate) struct Symmetric {
    /// Label for the key.
    #[arg(long)]
    pub(crate) label: String,
    /// Key length in bytes.
    #[arg(long)]
    pub(crate) key_length_bytes: u32,
    /// Space separated list of key attributes, KEY_ATTRIBUTE_NAME=KEY_ATTRIBUTE_VALUE
    /// (e.g. encrypt=true).
    #[arg(long, num_args = 1.., value_parser = attribute_pair)]
    pub(crate) attributes: Vec<Pair>,
    #[command(flatten)]
    pub(crate) creation: Creation,
    #[command(flatten)]
    pub(crate) quorum: KeyQuorumValues,
}

/// A new key's quorum values: how many of its owner and shared users must
/// approve its management and its use (0: none).
#[derive(Debug, Default, Args)]
pub(crate) struct KeyQuorumValues {
    /// Approvals needed to share, unshare or set an attribute of the key
    /// (0 to 8; at most the owner and --share-crypto-users together).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=8))]
    pub(crate) manage_key_quorum_value: u32,
    /// Approvals needed to sign with the key (0 to 8).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=8))]
    pub(crate) use_key_quorum_value: u32,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PairKind {
    /// Generate an RSA key pair.
    Rsa(RsaPair),
    /// Generate an EC key pair (ed25519 makes an Ed25519 pair).
    Ec(EcPair),
}

/// The labels and attributes of both halves of a pair.
#[derive(Debug, Args)]
pub(crate) struct PairHalves {
    /// Label for the public key.
    #[arg(long)]
    pub(crate) public_label: String,
    /// Label for the private key.
    #[arg(long)]
    pub(crate) private_label: String,
    /// Space separated list of attributes for the public key,
    /// KEY_ATTRIBUTE_NAME=KEY_ATTRIBUTE_VALUE (e.g. verify=true).
    #[arg(long, num_args = 1.., value_parser = attribute_pair)]
    pub(crate) public_attributes: Vec<Pair>,
    /// Space separated list of attributes for the private key,
    /// KEY_ATTRIBUTE_NAME=KEY_ATTRIBUTE_VALUE (e.g. sign=true).
    #[arg(long, num_args = 1.., value_parser = attribute_pair)]
    pub(crate) private_attributes: Vec<Pair>,
    #[command(flatten)]
    pub(crate) creation: Creation,
    #[command(flatten)]
    pub(crate) quorum: PrivateKeyQuorumValues,
}

/// A new pair's quorum values, which only its private key takes (a public
/// key has none), under the flag names the CloudHSM CLI gives them.
#[derive(Debug, Default, Args)]
pub(crate) struct PrivateKeyQuorumValues {
    /// Approvals needed to share, unshare or set an attribute of the private
    /// key (0 to 8; at most the owner and --share-crypto-users together).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=8))]
    pub(crate) manage_private_key_quorum_value: u32,
    /// Approvals needed to sign with the private key (0 to 8).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=8))]
    pub(crate) use_private_key_quorum_value: u32,
}

#[derive(Debug, Args)]
pub(crate) struct RsaPair {
    /// Modulus length in bits: 2048 to 4096 in steps of 256.
    #[arg(long)]
    pub(crate) modulus_size_bits: u32,
    /// Public exponent: odd and at least 65537.
    #[arg(long)]
    pub(crate) public_exponent: u64,
    #[command(flatten)]
    pub(crate) halves: PairHalves,
}

#[derive(Debug, Args)]
pub(crate) struct EcPair {
    /// Elliptic curve.
    #[arg(long)]
    pub(crate) curve: Curve,
    #[command(flatten)]
    pub(crate) halves: PairHalves,
}

/// The CloudHSM CLI's `--curve` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Curve {
    Prime256v1,
    Secp256r1,
    Secp224r1,
    Secp384r1,
    Secp256k1,
    Secp521r1,
    Ed25519,
}

impl Curve {
    /// The name the HSM takes (`None` for Ed25519, which is its own key type).
    pub(crate) fn ec_name(self) -> Option<&'static str> {
        match self {
            Curve::Prime256v1 => Some("prime256v1"),
            Curve::Secp256r1 => Some("secp256r1"),
            Curve::Secp224r1 => Some("secp224r1"),
            Curve::Secp384r1 => Some("secp384r1"),
            Curve::Secp256k1 => Some("secp256k1"),
            Curve::Secp521r1 => Some("secp521r1"),
            Curve::Ed25519 => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum ImportFormat {
    /// Import a key from a PEM file.
    Pem(ImportPem),
}

#[derive(Debug, Args)]
pub(crate) struct ImportPem {
    /// Path of the PEM file.
    #[arg(long)]
    pub(crate) path: PathBuf,
    /// Label for the imported key.
    #[arg(long)]
    pub(crate) label: String,
    /// Key type and class the file must hold.
    #[arg(long)]
    pub(crate) key_type_class: PemKeyTypeClass,
    /// Space separated list of key attributes, KEY_ATTRIBUTE_NAME=KEY_ATTRIBUTE_VALUE.
    #[arg(long, num_args = 1.., value_parser = attribute_pair)]
    pub(crate) attributes: Vec<Pair>,
    #[command(flatten)]
    pub(crate) creation: Creation,
    /// A private key's quorum values (a public key has none).
    #[command(flatten)]
    pub(crate) quorum: KeyQuorumValues,
}

/// `key import pem --key-type-class`: the CloudHSM CLI's `rsa-public` and
/// `ec-public`, and (an emulator extension) private keys and Ed25519.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PemKeyTypeClass {
    RsaPublic,
    EcPublic,
    Ed25519Public,
    RsaPrivate,
    EcPrivate,
    Ed25519Private,
}

impl PemKeyTypeClass {
    /// The `key-type` and `class` attributes such a key has on the HSM.
    pub(crate) fn attributes(self) -> (&'static str, &'static str) {
        match self {
            PemKeyTypeClass::RsaPublic => ("rsa", "public-key"),
            PemKeyTypeClass::EcPublic => ("ec", "public-key"),
            PemKeyTypeClass::Ed25519Public => ("ec-edwards", "public-key"),
            PemKeyTypeClass::RsaPrivate => ("rsa", "private-key"),
            PemKeyTypeClass::EcPrivate => ("ec", "private-key"),
            PemKeyTypeClass::Ed25519Private => ("ec-edwards", "private-key"),
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            PemKeyTypeClass::RsaPublic => "rsa-public",
            PemKeyTypeClass::EcPublic => "ec-public",
            PemKeyTypeClass::Ed25519Public => "ed25519-public",
            PemKeyTypeClass::RsaPrivate => "rsa-private",
            PemKeyTypeClass::EcPrivate => "ec-private",
            PemKeyTypeClass::Ed25519Private => "ed25519-private",
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct GenerateFile {
    /// Encoding of the key file.
    #[arg(long)]
    pub(crate) encoding: FileEncoding,
    /// Path where the key file will be written.
    #[arg(long)]
    pub(crate) path: PathBuf,
    #[command(flatten)]
    pub(crate) filter: KeyFilter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FileEncoding {
    /// PEM formatted key reference (private keys).
    ReferencePem,
    /// PEM format (public keys).
    Pem,
}

#[derive(Debug, Args)]
pub(crate) struct List {
    /// Key reference (e.g. key-reference=0xabc) or space separated list of key
    /// attributes in the form attr.KEY_ATTRIBUTE_NAME=KEY_ATTRIBUTE_VALUE.
    #[arg(long, num_args = 1.., value_parser = filter_term)]
    pub(crate) filter: Vec<Pair>,
    /// The number of keys to return; 0 returns all.
    #[arg(long, default_value_t = 10)]
    pub(crate) max_items: u32,
    /// Where to resume: the next_token of the previous page, which counts
    /// the keys already listed ("2" after a first page of two).
    #[arg(long)]
    pub(crate) starting_token: Option<String>,
    /// Show every attribute and the key information of each key, not just
    /// its key-reference and label. Has no effect for admins.
    #[arg(short, long)]
    pub(crate) verbose: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ShareArgs {
    #[command(flatten)]
    pub(crate) filter: KeyFilter,
    /// The crypto user to share the key with (or stop sharing it with).
    #[arg(long)]
    pub(crate) username: String,
    /// The user's role: keys are shared with crypto users only.
    #[arg(long)]
    pub(crate) role: CliRole,
    /// Signed quorum token file (service key-management) approving the change.
    #[arg(long)]
    pub(crate) approval: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct SetAttribute {
    #[command(flatten)]
    pub(crate) filter: KeyFilter,
    /// Name of the attribute to set.
    #[arg(long)]
    pub(crate) name: String,
    /// Value to set.
    #[arg(long)]
    pub(crate) value: String,
    /// Signed quorum token file (service key-management) approving the change.
    #[arg(long)]
    pub(crate) approval: Option<std::path::PathBuf>,
}

/// The key to wrap and the key that wraps it.
#[derive(Debug, Args)]
pub(crate) struct WrapKeys {
    /// Key reference or attr.NAME=VALUE terms selecting the key to wrap.
    #[arg(long, required = true, num_args = 1.., value_parser = filter_term)]
    pub(crate) payload_filter: Vec<Pair>,
    /// Key reference or attr.NAME=VALUE terms selecting the wrapping key.
    #[arg(long, required = true, num_args = 1.., value_parser = filter_term)]
    pub(crate) wrapping_filter: Vec<Pair>,
    /// File to write the wrapped key bytes to (instead of printing them).
    #[arg(long)]
    pub(crate) path: Option<PathBuf>,
    /// Signed quorum token file (service key-management), for a payload key
    /// that has a manage quorum value.
    #[arg(long, alias = "approval")]
    pub(crate) payload_approval: Option<PathBuf>,
}

/// AES-GCM's parameters, on wrap and unwrap alike.
#[derive(Debug, Args)]
pub(crate) struct GcmParams {
    /// AES-GCM additional authenticated data (AAD), in hex; unwrapping
    /// needs the same value.
    #[arg(long)]
    pub(crate) aad: Option<String>,
    /// AES-GCM tag length in bits: 64, 96, 104, 112, 120 or 128.
    #[arg(long, value_parser = tag_length_bits)]
    pub(crate) tag_length_bits: u32,
}

/// The tag lengths the HSM's AES-GCM key wrapping takes.
const TAG_LENGTHS: [u32; 6] = [64, 96, 104, 112, 120, 128];

fn tag_length_bits(raw: &str) -> Result<u32, String> {
    let allowed = || TAG_LENGTHS.map(|t| t.to_string()).join(", ");
    match raw.parse::<u32>() {
        Ok(bits) if TAG_LENGTHS.contains(&bits) => Ok(bits),
        _ => Err(format!("AES-GCM tag lengths are {} bits", allowed())),
    }
}

#[derive(Debug, Args)]
pub(crate) struct GcmWrap {
    #[command(flatten)]
    pub(crate) keys: WrapKeys,
    #[command(flatten)]
    pub(crate) gcm: GcmParams,
}

#[derive(Debug, Args)]
pub(crate) struct RsaWrap {
    #[command(flatten)]
    pub(crate) keys: WrapKeys,
    /// Hash function for OAEP.
    #[arg(long)]
    pub(crate) hash_function: HashFunction,
    /// Mask generation function; must use the same hash.
    #[arg(long)]
    pub(crate) mgf: MaskGeneration,
}

/// Arguments of a mechanism the emulator does not offer; accepted so that the
/// refusal can say so.
#[derive(Debug, Args)]
pub(crate) struct Unsupported {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub(crate) rest: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum WrapMechanism {
    /// AES-GCM: the IV is printed separately from the wrapped data.
    AesGcm(GcmWrap),
    /// CloudHSM AES-GCM: the wrapped data is IV || ciphertext || tag.
    CloudhsmAesGcm(GcmWrap),
    /// AES key wrap without padding (RFC 3394).
    #[command(alias = "aes-no-padding")]
    AesNoPad(WrapKeys),
    /// AES key wrap with PKCS #5 padding (to 8 bytes), then RFC 3394.
    #[command(alias = "aes-pkcs5-padding")]
    AesPkcs5Pad(WrapKeys),
    /// AES key wrap with zero padding (RFC 5649).
    #[command(alias = "aes-zero-padding")]
    AesZeroPad(WrapKeys),
    /// RSA-OAEP with an RSA public key.
    RsaOaep(RsaWrap),
    /// RSA-AES (CKM_RSA_AES_KEY_WRAP) with an RSA public key.
    RsaAes(RsaWrap),
    /// RSA PKCS #1 v1.5 with an RSA public key.
    RsaPkcs(WrapKeys),
}

/// What every unwrap takes.
#[derive(Debug, Args)]
pub(crate) struct UnwrapArgs {
    /// Key reference or attr.NAME=VALUE terms selecting the unwrapping key.
    #[arg(long, visible_alias = "unwrapping-filter", required = true, num_args = 1.., value_parser = filter_term)]
    pub(crate) filter: Vec<Pair>,
    /// Signed quorum token file (service key-management), for an
    /// unwrapping key that has a manage quorum value.
    #[arg(long)]
    pub(crate) approval: Option<PathBuf>,
    /// Key type and class of the wrapped key.
    #[arg(long)]
    pub(crate) key_type_class: UnwrapKeyTypeClass,
    /// Not a CloudHSM CLI flag: an EC key's curve comes from the wrapped key.
    /// Kept hidden so that giving it is refused with that reason.
    #[arg(long, hide = true)]
    pub(crate) curve: Option<String>,
    /// Label for the unwrapped key.
    #[arg(long)]
    pub(crate) label: String,
    #[command(flatten)]
    pub(crate) data: DataSource,
    /// Space separated list of attributes for the unwrapped key,
    /// KEY_ATTRIBUTE_NAME=KEY_ATTRIBUTE_VALUE.
    #[arg(long, num_args = 1.., value_parser = attribute_pair)]
    pub(crate) attributes: Vec<Pair>,
    #[command(flatten)]
    pub(crate) creation: Creation,
    #[command(flatten)]
    pub(crate) quorum: KeyQuorumValues,
}

/// `key unwrap --key-type-class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum UnwrapKeyTypeClass {
    Aes,
    GenericSecret,
    RsaPrivate,
    EcPrivate,
    Ed25519Private,
}

#[derive(Debug, Args)]
pub(crate) struct GcmUnwrap {
    #[command(flatten)]
    pub(crate) args: UnwrapArgs,
    /// The IV the key was wrapped with, in hex.
    #[arg(long)]
    pub(crate) iv: String,
    #[command(flatten)]
    pub(crate) gcm: GcmParams,
}

#[derive(Debug, Args)]
pub(crate) struct CloudHsmGcmUnwrap {
    #[command(flatten)]
    pub(crate) args: UnwrapArgs,
    #[command(flatten)]
    pub(crate) gcm: GcmParams,
}

#[derive(Debug, Args)]
pub(crate) struct RsaUnwrap {
    #[command(flatten)]
    pub(crate) args: UnwrapArgs,
    /// Hash function for OAEP.
    #[arg(long)]
    pub(crate) hash_function: HashFunction,
    /// Mask generation function; must use the same hash.
    #[arg(long)]
    pub(crate) mgf: MaskGeneration,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UnwrapMechanism {
    /// AES-GCM, with the IV given separately (--iv).
    AesGcm(GcmUnwrap),
    /// CloudHSM AES-GCM: the data is IV || ciphertext || tag.
    CloudhsmAesGcm(CloudHsmGcmUnwrap),
    /// AES key wrap without padding (RFC 3394).
    #[command(alias = "aes-no-padding")]
    AesNoPad(UnwrapArgs),
    /// AES key wrap with PKCS #5 padding (to 8 bytes), then RFC 3394.
    #[command(alias = "aes-pkcs5-padding")]
    AesPkcs5Pad(UnwrapArgs),
    /// AES key wrap with zero padding (RFC 5649).
    #[command(alias = "aes-zero-padding")]
    AesZeroPad(UnwrapArgs),
    /// RSA-OAEP with an RSA private key.
    RsaOaep(RsaUnwrap),
    /// RSA-AES (CKM_RSA_AES_KEY_WRAP) with an RSA private key.
    RsaAes(RsaUnwrap),
    /// RSA PKCS #1 v1.5 with an RSA private key.
    RsaPkcs(UnwrapArgs),
}
