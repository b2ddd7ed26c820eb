//! `faults ...`: fault injection, snapshots and resets (an emulator
//! extension for test suites; only HSMs started with `--faults` serve it).

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use hsm_client::FaultMode;

/// Which HSMs a `faults` command acts on, and what it does.
#[derive(Debug, Args)]
pub(crate) struct FaultsArgs {
    /// The HSM to act on: its host:port in HSM_ENDPOINTS, or its position
    /// there (1 is the first). Default: the first.
    #[arg(long, global = true, conflicts_with = "all")]
    pub(crate) hsm: Option<String>,
    /// Act on every HSM in HSM_ENDPOINTS (the whole cluster).
    #[arg(long, global = true)]
    pub(crate) all: bool,
    #[command(subcommand)]
    pub(crate) command: FaultsCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum FaultsCommand {
    /// Add a rule: calls of an RPC fail with a status and/or wait.
    Set(SetFault),
    /// Remove one rule (--id), or every rule, the mode and isolation.
    Clear {
        /// The rule's id, as `faults set` and `faults list` show it.
        #[arg(long)]
        id: Option<u64>,
    },
    /// Show the rules, the mode and isolation, with how often each fired,
    /// and the background sync rounds run and skipped.
    List,
    /// Make the whole HSM unavailable (as if down) or busy (ResourceExhausted,
    /// which clients retry elsewhere), or normal again.
    Mode {
        #[arg(value_enum)]
        mode: CliFaultMode,
    },
    /// Close every session, as a reboot does: everyone is logged out and
    /// session keys vanish.
    DropSessions,
    /// Cut the HSM off from its peers (no background sync either way), or
    /// reconnect it.
    Isolate {
        #[arg(value_enum)]
        state: Switch,
    },
    /// Keep the HSM's users, token keys and tombstones in memory under a
    /// name, to reset to later.
    Snapshot {
        /// 1 to 64 letters, digits, '-', '_' or '.' ("seed" is reserved).
        #[arg(long)]
        name: String,
    },
    /// Put the HSM back to a snapshot, or to the state it started with; every
    /// session closes. With --all, background sync is held off until every
    /// HSM is reset.
    #[command(group(ArgGroup::new("target").required(true).args(["name", "seed"])))]
    Reset {
        /// The snapshot to go back to.
        #[arg(long)]
        name: Option<String>,
        /// Go back to the state the HSM's process started with.
        #[arg(long)]
        seed: bool,
    },
    /// List the snapshots, the seed first.
    Snapshots,
}

#[derive(Debug, Args)]
pub(crate) struct SetFault {
    /// The RPC: a method name (Sign, GenerateKeyPair, ...), an hsm-cli
    /// command ("crypto sign", "key list", ...), or * for every RPC.
    #[arg(long)]
    pub(crate) rpc: String,
    /// The gRPC status to fail with: unavailable, resource-exhausted,
    /// internal, deadline-exceeded, ... Leave it out to add latency only.
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// The chance that a call is hit, 0 to 1 (default 1).
    #[arg(long)]
    pub(crate) probability: Option<f64>,
    /// Fire this many times, then disappear (default: until cleared).
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Wait this long before failing or serving the call.
    #[arg(long, default_value_t = 0)]
    pub(crate) latency_ms: u64,
    /// The status message (default: one naming the status, RPC and rule).
    #[arg(long)]
    pub(crate) message: Option<String>,
}

/// `faults mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CliFaultMode {
    Normal,
    Unavailable,
    Busy,
}

impl From<CliFaultMode> for FaultMode {
    fn from(mode: CliFaultMode) -> Self {
        match mode {
            CliFaultMode::Normal => FaultMode::Normal,
            CliFaultMode::Unavailable => FaultMode::Unavailable,
            CliFaultMode::Busy => FaultMode::Busy,
        }
    }
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Switch {
    On,
    Off,
}
