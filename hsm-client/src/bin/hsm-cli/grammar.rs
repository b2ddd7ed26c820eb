//! The CloudHSM CLI's command grammar, as clap definitions shared by
//! single-command and interactive mode.
//!
//! - This file: the top level (`--config`, `--cluster-id`), cluster, login,
//!   user and quorum commands, and `key replicate` (which spans two clusters).
//! - `key`: key management (`key generate-symmetric`, `key list`, ...).
//! - `crypto`: signing, verification and the emulator's extra operations.
//! - `common`: flags and values both share (filters, data sources, hashes).
//! - `faults`: fault injection, snapshots and resets (an emulator extension).

pub(crate) mod common;
pub(crate) mod crypto;
pub(crate) mod faults;
pub(crate) mod key;

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum, builder::BoolishValueParser};
use hsm_client::{QuorumService, Role};

use self::{
    crypto::CryptoCommand,
    faults::FaultsArgs,
    key::{KeyCommand, KeyFilter},
};

/// Top level of `hsm-cli`.
#[derive(Debug, Parser)]
#[command(
    name = "hsm-cli",
    version,
    about = "Command line for the CloudHSM emulator, in the CloudHSM CLI's grammar and JSON output",
    after_help = "Single-command mode logs in from CLOUDHSM_ROLE (admin|crypto-user) and \
                  CLOUDHSM_PIN (username:password) when both are set."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(flatten)]
    pub(crate) choice: ClusterChoice,
    #[command(subcommand)]
    pub(crate) mode: Mode,
}

/// `--cluster-id`, which every command takes (in interactive mode too).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ClusterChoice {
    /// Unique Id to choose which of the clusters in the config file to run
    /// the operation against. If not provided, will fall back to the value
    /// provided when interactive mode was started, or error (when the
    /// configuration names more than one cluster).
    #[arg(long, global = true)]
    pub(crate) cluster_id: Option<String>,
}

/// Where the clusters are.
#[derive(Debug, Clone, Args)]
pub(crate) struct Connection {
    /// A configuration file naming one or more clusters by cluster id (JSON,
    /// as cloudhsm-cli.cfg: {"clusters": [{"cluster": {"cluster_id", "hsm_ca_file",
    /// "servers": [{"hostname", "port"}]}}]}). With it, --endpoint and
    /// --ca-cert are not used.
    #[arg(long, global = true, env = "HSM_CLI_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// The cluster's HSMs, host:port, comma-separated; every command works
    /// against all of them.
    #[arg(long, global = true, env = "HSM_ENDPOINTS")]
    pub(crate) endpoint: Option<String>,
    /// The cluster CA certificate (PEM) that the HSMs' certificates chain to.
    #[arg(long, global = true, env = "HSM_CA_CERT")]
    pub(crate) ca_cert: Option<PathBuf>,
    /// Use token keys held by fewer than two HSMs (by default refused in a
    /// cluster of two or more HSMs, as CloudHSM's key availability check).
    /// (The variable takes 1/0, true/false, yes/no, on/off.)
    #[arg(
        long,
        global = true,
        env = "HSM_DISABLE_KEY_AVAILABILITY_CHECK",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    pub(crate) disable_key_availability_check: bool,
    /// A client certificate (PEM) to present to the HSMs (mutual TLS); with
    /// mTLS enforcement on, only connections with a certificate chained to
    /// a registered trust anchor are let in. Needs --client-key-hsm-tls-file.
    #[arg(long, global = true, env = "HSM_CLIENT_CERT", requires = "client_key_hsm_tls_file")]
    pub(crate) client_cert_hsm_tls_file: Option<PathBuf>,
    /// The private key (PEM) of --client-cert-hsm-tls-file.
    #[arg(long, global = true, env = "HSM_CLIENT_KEY", requires = "client_cert_hsm_tls_file")]
    pub(crate) client_key_hsm_tls_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Mode {
    /// Start an interactive shell (prompt `aws-cloudhsm >`) that keeps a
    /// session across commands.
    Interactive,
    #[command(flatten)]
    Command(Command),
}

/// One line of interactive mode.
#[derive(Debug, Parser)]
#[command(name = "", no_binary_name = true, disable_version_flag = true)]
pub(crate) struct Line {
    #[command(flatten)]
    pub(crate) choice: ClusterChoice,
    #[command(subcommand)]
    pub(crate) command: LineCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LineCommand {
    /// Leave the shell.
    #[command(alias = "exit")]
    Quit,
    #[command(flatten)]
    Command(Command),
}

/// The commands both modes share.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Each HSM's audit log (an emulator extension; admins only).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Cluster commands.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Cryptographic operations with keys on the HSM (crypto users).
    Crypto {
        #[command(subcommand)]
        command: Box<CryptoCommand>,
    },
    /// Fault injection, snapshots and resets on one HSM (--hsm) or all
    /// (--all), for test suites: an emulator extension that only HSMs
    /// started with --faults serve; needs no login.
    Faults(FaultsArgs),
    /// Key management (crypto users; admins may list keys and set `trusted`).
    Key {
        #[command(subcommand)]
        command: Box<KeyTop>,
    },
    /// Log in as a user (`... mfa-token-sign --token FILE` for a user with
    /// MFA on).
    Login(LoginArgs),
    /// Log out of the current session.
    Logout,
    /// Quorum authentication (M of N): tokens, approvals and quorum values.
    Quorum {
        #[command(subcommand)]
        command: QuorumCommand,
    },
    /// User management.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

/// The `key` commands: those of one cluster, and `key replicate`, which
/// works on two.
#[derive(Debug, Subcommand)]
pub(crate) enum KeyTop {
    /// Replicate a key from a source to a destination cluster (a clone of
    /// the source). The destination's credentials come from
    /// DESTINATION_CLOUDHSM_ROLE and DESTINATION_CLOUDHSM_PIN in
    /// single-command mode; in interactive mode, log in to both clusters.
    Replicate(ReplicateArgs),
    #[command(flatten)]
    Cluster(KeyCommand),
}

/// `key replicate`.
#[derive(Debug, Args)]
pub(crate) struct ReplicateArgs {
    /// Key reference (e.g. key-reference=0xabc) or space separated list of
    /// key attributes in the form of attr.KEY_ATTRIBUTE_NAME=KEY_ATTRIBUTE_VALUE
    /// to select matching key on the source cluster.
    #[command(flatten)]
    pub(crate) filter: KeyFilter,
    /// Source cluster ID.
    #[arg(long)]
    pub(crate) source_cluster_id: String,
    /// Destination cluster ID.
    #[arg(long)]
    pub(crate) destination_cluster_id: String,
}

/// `login`: a user and password, and for MFA the token-sign strategy.
#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    #[command(flatten)]
    pub(crate) user: UserPassword,
    #[command(subcommand)]
    pub(crate) mfa: Option<LoginMfa>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LoginMfa {
    /// Log in with MFA: writes one unsigned token per HSM to --token, then
    /// asks for the file with the tokens signed (`"signed"` filled in).
    MfaTokenSign {
        /// Where the unsigned tokens are written.
        #[arg(long)]
        token: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum QuorumCommand {
    /// Token-sign quorum tokens and values.
    TokenSign {
        #[command(subcommand)]
        command: TokenSignCommand,
    },
}

/// The CloudHSM CLI's quorum services, and `registration` (for `user
/// change-quorum token-sign register`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CliQuorumService {
    User,
    Quorum,
    Cluster,
    KeyManagement,
    KeyUsage,
    Registration,
}

impl From<CliQuorumService> for QuorumService {
    fn from(service: CliQuorumService) -> Self {
        match service {
            CliQuorumService::User => QuorumService::User,
            CliQuorumService::Quorum => QuorumService::Quorum,
            CliQuorumService::Cluster => QuorumService::Cluster,
            CliQuorumService::KeyManagement => QuorumService::KeyManagement,
            CliQuorumService::KeyUsage => QuorumService::KeyUsage,
            CliQuorumService::Registration => QuorumService::Registration,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DeleteScope {
    /// Your own tokens.
    User,
    /// Every user's tokens (admins).
    All,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenSignCommand {
    /// Generate a token for a service on every HSM and write them to --token
    /// for approvers to sign.
    Generate {
        #[arg(long)]
        service: CliQuorumService,
        #[arg(long)]
        token: PathBuf,
    },
    /// List every user's live quorum tokens.
    List,
    /// List the quorum values of the user, quorum and cluster services.
    ListQuorumValues,
    /// Set a service's quorum value (1 turns quorum off; up to 8).
    SetQuorumValue {
        #[arg(long)]
        service: CliQuorumService,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8))]
        value: u32,
        /// Signed quorum token file (service quorum) approving the change.
        #[arg(long)]
        approval: Option<PathBuf>,
    },
    /// Delete quorum tokens: yours, or (admins) everyone's.
    Delete {
        #[arg(long)]
        scope: DeleteScope,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ChangeQuorumCommand {
    /// The token-sign strategy.
    TokenSign {
        #[command(subcommand)]
        command: ChangeQuorumTokenSign,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ChangeQuorumTokenSign {
    /// Register your quorum public key, proven by a registration token
    /// signed with its private key.
    Register {
        /// Yourself (the logged-in user); optional.
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        role: Option<CliRole>,
        /// The RSA public key, PEM.
        #[arg(long)]
        public_key: PathBuf,
        /// A token file from `quorum token-sign generate --service
        /// registration`, signed with the key's private key.
        #[arg(long)]
        signed_token: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ChangeMfaCommand {
    /// Register (--token) or deregister (--deregister) a token-sign MFA key.
    TokenSign(ChangeMfaArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ChangeMfaArgs {
    #[arg(long)]
    pub(crate) username: String,
    #[arg(long)]
    pub(crate) role: CliRole,
    /// The user's new password, set with the MFA change (asked for if left
    /// out).
    #[arg(long)]
    pub(crate) change_password: Option<String>,
    /// Where the unsigned tokens (one per HSM) are written; the signed file
    /// and the public key are asked for next.
    #[arg(long, required_unless_present = "deregister", conflicts_with = "deregister")]
    pub(crate) token: Option<PathBuf>,
    /// Turn MFA off.
    #[arg(long)]
    pub(crate) deregister: bool,
    /// Signed quorum token file (service user) approving the change.
    #[arg(long)]
    pub(crate) approval: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Activate a new cluster by setting the admin password.
    Activate {
        /// The new admin password (prompted for if left out).
        #[arg(long)]
        password: Option<String>,
    },
    /// List the HSMs of the cluster, an unreachable one included (no login
    /// needed).
    HsmInfo,
    /// Every HSM's sync status digest and whether they are all equal (an
    /// emulator extension; admins, crypto users). HSMs in step show equal
    /// digests.
    SyncStatus,
    /// Mutual TLS between clients and the HSMs: trust anchors and
    /// enforcement.
    Mtls {
        #[command(subcommand)]
        command: MtlsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MtlsCommand {
    /// Register a CA certificate that client certificates may chain to
    /// (admins; at most 2).
    RegisterTrustAnchor {
        /// The trust anchor's certificate file (PEM).
        #[arg(long)]
        path: PathBuf,
        #[command(flatten)]
        approval: ApprovalFile,
    },
    /// Remove a trust anchor (admins).
    DeregisterTrustAnchor {
        /// The anchor's reference, e.g. 0x01 (see list-trust-anchors).
        #[arg(long)]
        certificate_reference: String,
        #[command(flatten)]
        approval: ApprovalFile,
    },
    /// List the registered trust anchors.
    ListTrustAnchors,
    /// Require client certificates (cluster) or not (none). Only the user
    /// named admin, over a connection that presents a client certificate
    /// chained to a registered trust anchor.
    SetEnforcement {
        #[arg(long)]
        level: MtlsLevelArg,
        #[command(flatten)]
        approval: ApprovalFile,
    },
    /// Show the enforcement level.
    GetEnforcement,
}

/// The `--level` values of `cluster mtls set-enforcement`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MtlsLevelArg {
    None,
    Cluster,
}

impl From<MtlsLevelArg> for hsm_client::MtlsLevel {
    fn from(level: MtlsLevelArg) -> Self {
        match level {
            MtlsLevelArg::None => hsm_client::MtlsLevel::None,
            MtlsLevelArg::Cluster => hsm_client::MtlsLevel::Cluster,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// List audit records, oldest first: logins, user and key management,
    /// and every refusal, with consecutive sequence numbers per HSM.
    List {
        /// The first sequence number to show.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// At most this many records per HSM (1 to 1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
}

/// A user and a password, as `login`, `user create` and
/// `user change-password` take them.
#[derive(Debug, Args)]
pub(crate) struct UserPassword {
    #[arg(long)]
    pub(crate) username: String,
    #[arg(long)]
    pub(crate) role: CliRole,
    /// Prompted for if left out.
    #[arg(long)]
    pub(crate) password: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user (admin only).
    Create {
        #[command(flatten)]
        user: UserPassword,
        #[command(flatten)]
        approval: ApprovalFile,
    },
    /// Delete a user who is not logged in (admin only).
    Delete {
        #[arg(long)]
        username: String,
        #[arg(long)]
        role: CliRole,
        #[command(flatten)]
        approval: ApprovalFile,
    },
    /// List users with their role and locked state.
    List,
    /// Change your own password, or (as an admin) anyone's.
    ChangePassword {
        #[command(flatten)]
        user: UserPassword,
        #[command(flatten)]
        approval: ApprovalFile,
        /// Deregister the user's mfa public key, if present.
        #[arg(long)]
        deregister_mfa: bool,
        /// Deregister the user's quorum public key, if present.
        #[arg(long)]
        deregister_quorum: bool,
    },
    /// Register a quorum (approver) key.
    ChangeQuorum {
        #[command(subcommand)]
        command: ChangeQuorumCommand,
    },
    /// Turn MFA on or off for a user.
    ChangeMfa {
        #[command(subcommand)]
        command: ChangeMfaCommand,
    },
}

/// `--approval FILE`: a quorum token file signed by the approvers.
#[derive(Debug, Args)]
pub(crate) struct ApprovalFile {
    /// Filepath of signed quorum token file to approve operation.
    #[arg(long)]
    pub(crate) approval: Option<PathBuf>,
}

/// The `--role` values of the CloudHSM CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CliRole {
    Admin,
    CryptoUser,
}

impl From<CliRole> for Role {
    fn from(role: CliRole) -> Self {
        match role {
            CliRole::Admin => Role::Admin,
            CliRole::CryptoUser => Role::CryptoUser,
        }
    }
}
