//! The TOML shapes of a seed file, as serde reads them: every table refuses
//! unknown keys, and every value keeps its place in the text (`Spanned`) so
//! that the checks in `mod.rs` can name the line of what they refuse.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSeed {
    pub(super) cluster: Option<Spanned<RawCluster>>,
    #[serde(default)]
    pub(super) users: Vec<Spanned<RawUser>>,
    #[serde(default)]
    pub(super) keys: Vec<Spanned<RawKey>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) id: Option<Spanned<String>>,
    pub(super) hsms: Option<Spanned<i64>>,
    pub(super) hsm_type: Option<Spanned<String>>,
    /// "FIPS" or "NON_FIPS", as the daemon's `mode`.
    pub(super) mode: Option<Spanned<String>>,
    /// "hsm-type" or "off", as the daemon's `key_quota`.
    pub(super) key_quota: Option<Spanned<String>>,
    pub(super) admin_password: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub(super) username: Spanned<String>,
    pub(super) role: Spanned<RawRole>,
    pub(super) password: Spanned<String>,
}

/// The roles a seed may give; the precrypto officer and the appliance user
/// come with every cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawRole {
    Admin,
    CryptoUser,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub(super) label: Spanned<String>,
    pub(super) owner: Spanned<String>,
    #[serde(rename = "type")]
    pub(super) kind: Spanned<RawKeyType>,
    /// A generated pair's public key.
    pub(super) public_label: Option<Spanned<String>>,
    /// How many keys alike this entry declares; `{n}` in the labels is
    /// their number.
    pub(super) count: Option<Spanned<i64>>,
    pub(super) key_length_bytes: Option<Spanned<u32>>,
    pub(super) modulus_size_bits: Option<Spanned<u32>>,
    pub(super) public_exponent: Option<Spanned<u64>>,
    pub(super) curve: Option<Spanned<String>>,
    pub(super) pem: Option<Spanned<String>>,
    pub(super) pem_file: Option<Spanned<String>>,
    pub(super) hex: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) attributes: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) public_attributes: BTreeMap<String, Spanned<toml::Value>>,
    #[serde(default)]
    pub(super) share_with: Vec<Spanned<String>>,
}

/// Key types, as the CloudHSM CLI names them (`ed25519` is its
/// `ec --curve ed25519`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawKeyType {
    Aes,
    GenericSecret,
    Rsa,
    Ec,
    Ed25519,
}

impl RawKeyType {
    pub(super) fn name(self) -> &'static str {
        match self {
            RawKeyType::Aes => "aes",
            RawKeyType::GenericSecret => "generic-secret",
            RawKeyType::Rsa => "rsa",
            RawKeyType::Ec => "ec",
            RawKeyType::Ed25519 => "ed25519",
        }
    }

    pub(super) fn symmetric(self) -> bool {
        matches!(self, RawKeyType::Aes | RawKeyType::GenericSecret)
    }
}
