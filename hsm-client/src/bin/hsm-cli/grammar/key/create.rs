//! The flags of the commands that make keys: `key generate-symmetric`,
//! `key generate-asymmetric-pair` and `key import pem`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::grammar::common::{Pair, attribute_pair};

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
