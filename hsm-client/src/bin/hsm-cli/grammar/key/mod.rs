//! `key ...`: the CloudHSM CLI's key management commands.
//!
//! # Layout
//! - This file: the commands, and the flags of those that act on one
//!   existing key (list, delete, share, set-attribute, generate-file).
//! - `create`: the flags of the commands that make keys (generate, import).
//! - `wrap`: the flags of `key wrap` and `key unwrap`, per mechanism.

mod create;
mod wrap;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

pub(crate) use self::{create::*, wrap::*};
use super::{
    CliRole,
    common::{Pair, filter_term},
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
