//! The flags of `key wrap` and `key unwrap`, per mechanism.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::create::{Creation, KeyQuorumValues};
use crate::grammar::common::{DataSource, HashFunction, MaskGeneration, Pair, attribute_pair, filter_term};

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
