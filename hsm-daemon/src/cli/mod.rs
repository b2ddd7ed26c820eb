//! The `hsm-daemon` command line: its subcommands and flags (clap), and one
//! module per group of commands, each a thin layer that reads the flags,
//! calls the library and reports to the operator.
//!
//! # Layout
//! - this file: the flags.
//! - `serve`: `dev` and `run`, the commands that serve HSMs until a signal.
//! - `init`: `init` and `init --add`, which write a cluster's files.
//! - `tools`: `backup`, `restore`, `health`, `audit verify`.
//! - `api`: the control plane's flags, and `control-plane`.

mod api;
mod init;
mod serve;
mod tools;

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};
use hsm_daemon::{cluster::MAX_HSMS, settings::Settings};

pub(crate) use self::{
    api::control_plane,
    init::init,
    serve::{dev, run},
    tools::{backup, health, restore, verify_audit},
};

#[derive(Debug, Parser)]
#[command(name = "hsm-daemon", version, about = "An emulated AWS CloudHSM HSM, served over gRPC and TLS")]
pub(crate) struct Cli {
    /// Log lines for people (`human`) or for log collectors (`json`, one
    /// object a line). Levels come from HSM_LOG, else RUST_LOG (e.g.
    /// `info`, `hsm_daemon=debug`), else `info`.
    #[arg(long, global = true, env = "HSM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start an emulated cluster on 127.0.0.1 with no setup: prepares the
    /// cluster's material under --dir (as `init` does) unless it is there,
    /// serves it, writes DIR/client.env, and runs until interrupted (Ctrl-C
    /// or SIGTERM). State persists in DIR between runs.
    Dev(DevArgs),
    /// Prepare a cluster's material for production use: CA, one certificate,
    /// master key, data directory and config file (DIR/hsm-K.toml) per HSM,
    /// and DIR/client.env. Refuses a directory that already holds a cluster
    /// (unless --if-absent). By default the HSMs run on this machine, each
    /// on a free 127.0.0.1 port; --listen, --advertise, --client-endpoints
    /// and --data-dir place them in containers or on other hosts.
    Init(InitArgs),
    /// Serve one HSM from its config file (and flags or environment
    /// variables, which take precedence), until interrupted.
    Run(RunArgs),
    /// Write an encrypted, integrity-protected backup of an HSM (through the
    /// running daemon's control socket, or from its store if it is stopped).
    Backup(BackupArgs),
    /// Create an HSM's state from a backup of its cluster, into an empty data
    /// directory.
    Restore(RestoreArgs),
    /// Ask an HSM's gRPC health service whether it serves: prints SERVING
    /// and exits 0, or prints the status or error and exits 1. For container
    /// health checks and Kubernetes exec probes (which cannot speak TLS
    /// themselves).
    Health(HealthArgs),
    /// Work with an HSM's audit log (DATA_DIR/audit.log).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Serve the CloudHSM v2 API alone (`aws cloudhsmv2 create-cluster`,
    /// `create-hsm`, ...), whose clusters' HSMs run in this process; `dev`
    /// serves it too, beside its own cluster. State persists in DIR.
    ControlPlane(api::ControlPlaneArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the hash chain of an HSM's audit log: every record parses,
    /// hashes to its hash, links to the one before and continues the
    /// sequence. Exits non-zero naming the first bad line otherwise.
    Verify {
        /// An HSM's data directory, or a directory holding several (a
        /// cluster's or `dev`'s), each of which is checked.
        #[arg(long)]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// The HSM's config file: the check connects to its listen port on the
    /// loopback address (whatever address it binds) and trusts its ca_cert.
    #[arg(long, env = "HSM_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// The HSM to ask (host:port), instead of the config file's.
    #[arg(long)]
    pub(crate) endpoint: Option<String>,
    /// The CA that issued the HSM's certificate, instead of the config file's.
    #[arg(long)]
    pub(crate) ca_cert: Option<PathBuf>,
    /// The service to ask about; the empty default means the whole HSM.
    #[arg(long, default_value = "")]
    pub(crate) service: String,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub(crate) timeout_ms: u64,
}

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The HSM's config file.
    #[arg(long, env = "HSM_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Where to write the backup.
    #[arg(long)]
    pub(crate) out: PathBuf,
    #[command(flatten)]
    pub(crate) settings: Settings,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The config file of the HSM to create.
    #[arg(long, env = "HSM_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// The backup to restore.
    #[arg(long)]
    pub(crate) from: PathBuf,
    /// The backup is of another cluster: make this HSM's cluster a clone of
    /// it, as CloudHSM creates a cluster from a backup. The HSM needs that
    /// cluster's cluster and masking keys (prepare it with `init
    /// --clone-of`).
    #[arg(long)]
    pub(crate) clone: bool,
    #[command(flatten)]
    pub(crate) settings: Settings,
}

#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// Directory for the cluster's material, state and client.env; reused if
    /// it already holds them. A temporary directory, removed on exit, if
    /// left out.
    #[arg(long, env = "HSM_DEV_DIR")]
    pub(crate) dir: Option<PathBuf>,

    /// Number of HSMs in the cluster (1 to 28), each on its own port, all
    /// in this process (default: as many as DIR holds, or 1).
    #[arg(long, env = "HSM_DEV_HSMS", value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_HSMS)))]
    pub(crate) hsms: Option<u8>,

    /// Start a new cluster activated with this admin password. Without it the
    /// cluster starts unactivated, as a new CloudHSM cluster does: admin /
    /// password is the precrypto officer until `hsm-cli cluster activate`.
    /// (A seed file may set it instead, not as well.)
    #[arg(long, env = "HSM_ADMIN_PASSWORD", hide_env_values = true)]
    pub(crate) admin_password: Option<String>,

    /// Do not serve the CloudHSM v2 API (by default `dev` serves it, its
    /// state in DIR/control-plane, and writes AWS_ENDPOINT_URL_CLOUDHSMV2,
    /// a region and dummy credentials into client.env).
    #[arg(long, env = "HSM_NO_API")]
    pub(crate) no_api: bool,

    #[command(flatten)]
    pub(crate) api: api::ApiArgs,

    #[command(flatten)]
    pub(crate) settings: Settings,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Directory to write the cluster's material to.
    #[arg(long, env = "HSM_INIT_DIR")]
    pub(crate) dir: PathBuf,
    /// Number of HSMs (1 to 28).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_HSMS)))]
    pub(crate) hsms: u8,
    /// Add this many HSMs to the cluster already in DIR: each clones users
    /// and keys from HSM 1 when it first starts, and every HSM's config
    /// names the new ones as peers (restart running HSMs to pick that up).
    #[arg(long, conflicts_with_all = ["hsms", "cluster_id", "hsm_type", "mode"], value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_HSMS) - 1))]
    pub(crate) add: Option<u8>,
    /// The cluster id (default: a new random `cluster-...`).
    #[arg(long)]
    pub(crate) cluster_id: Option<String>,
    /// Prepare a clone of the cluster whose material is in this directory,
    /// as CloudHSM creates a cluster from a backup: a new cluster id, CA and
    /// certificates, but the source's cluster key (its backups restore here,
    /// with `restore --clone`) and masking key (keys move between the two
    /// with `hsm-cli key replicate`).
    #[arg(long, conflicts_with = "add")]
    pub(crate) clone_of: Option<PathBuf>,
    /// hsm1.medium or hsm2m.medium.
    #[arg(long, default_value = "hsm2m.medium")]
    pub(crate) hsm_type: String,
    /// FIPS or NON_FIPS, as CloudHSM's `create-cluster --mode`: a non-FIPS
    /// cluster also offers triple DES. Fixed for the cluster's life (HSMs
    /// added later take HSM 1's). Default: FIPS; a clone's, its source's.
    #[arg(long)]
    pub(crate) mode: Option<String>,
    /// What every HSM listens on, e.g. 0.0.0.0:2225 when each runs in its own
    /// container (default: a free 127.0.0.1 port each). With more than one
    /// HSM, --advertise must say how each is reached.
    #[arg(long, conflicts_with = "add")]
    pub(crate) listen: Option<SocketAddr>,
    /// How the HSMs reach each other: one host:port per HSM, in order,
    /// comma-separated (e.g. hsm-1:2225,hsm-2:2225,hsm-3:2225). Names each
    /// HSM's peers, and goes in its certificate (default: where it listens).
    #[arg(long, value_delimiter = ',', conflicts_with = "add")]
    pub(crate) advertise: Option<Vec<String>>,
    /// How clients reach the HSMs: one host:port per HSM, in order,
    /// comma-separated (e.g. ports published on 127.0.0.1). Written to
    /// client.env, and each host goes in its HSM's certificate (default: the
    /// --advertise addresses).
    #[arg(long, value_delimiter = ',', conflicts_with = "add")]
    pub(crate) client_endpoints: Option<Vec<String>>,
    /// Every HSM's data directory, as the HSM sees it: an absolute path, e.g.
    /// /data when each HSM has its own volume (default: DIR/hsm-K-data,
    /// created here).
    #[arg(long, conflicts_with = "add")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Where the HSMs will find DIR, when it is mounted elsewhere (e.g. a
    /// Kubernetes Secret at /etc/hsm): an absolute path that the config
    /// files' paths point into (default: DIR).
    #[arg(long, conflicts_with = "add")]
    pub(crate) mounted_at: Option<PathBuf>,
    /// Also write client.env and a copy of the CA (ca.pem) to this directory,
    /// for clients elsewhere (e.g. a directory bind-mounted from the host);
    /// the two files take the directory's owner when run as root. Written
    /// again by --if-absent runs.
    #[arg(long, conflicts_with = "add")]
    pub(crate) client_out: Option<PathBuf>,
    /// The CA path that --client-out's client.env names, as its clients see
    /// it (default: the copy in --client-out), e.g. deploy/out/ca.pem.
    #[arg(long, requires = "client_out")]
    pub(crate) client_ca_cert: Option<PathBuf>,
    /// Give DIR and everything in it to this user, UID or UID:GID: for an
    /// init run as root that prepares HSMs which run as another user.
    #[arg(long, conflicts_with = "add")]
    pub(crate) owner: Option<String>,
    /// If DIR already holds a cluster (hsm-1.toml), leave it as it is and
    /// succeed (still writing --client-out): for an init step that runs on
    /// every start, as a container's does.
    #[arg(long, conflicts_with = "add")]
    pub(crate) if_absent: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The HSM's config file, as `init` wrote it.
    #[arg(long, env = "HSM_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) settings: Settings,
}
