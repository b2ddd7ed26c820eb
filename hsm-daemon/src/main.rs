//! The `hsm-daemon` binary.
//!
//! - `hsm-daemon dev`: the one-command emulator: prepares (or reuses) a
//!   cluster in a directory, serves its HSMs (one by default) over TLS on
//!   127.0.0.1 in this process, writes `client.env` and runs until
//!   interrupted; state persists in the directory. `--seed FILE` gives a new
//!   cluster its id, HSM count, admin password, users and keys
//!   (`hsm_daemon::seed`); `--deterministic SEED` makes ids, keys and
//!   session tokens repeat from run to run (`hsm_daemon::determinism`).
//! - `hsm-daemon init`: prepares a cluster's material and one config file per
//!   HSM (each naming its peers), for production; `--add` adds HSMs that
//!   clone from the cluster when they first start. `--listen`,
//!   `--advertise`, `--client-endpoints`, `--data-dir`, `--mounted-at`,
//!   `--client-out`, `--owner` and `--if-absent` prepare HSMs that run
//!   elsewhere: in containers (`deploy/compose.yaml`) or Kubernetes
//!   (`deploy/k8s`).
//! - `hsm-daemon run --config D/hsm-K.toml`: serves HSM K (`--seed` and
//!   `--deterministic` apply here too, to a new store).
//! - `hsm-daemon audit verify --data-dir D`: checks the hash chain of the
//!   audit log of each HSM in or under D.
//!
//! - `hsm-daemon health`: asks an HSM's gRPC health service whether it
//!   serves (container health checks, Kubernetes exec probes).
//!
//! Every setting can also be a flag or the environment variable named in
//! `--help` (see `hsm_daemon::settings`). Logs go to standard error, for
//! people or as JSON (`--log-format`), at the levels `HSM_LOG` or `RUST_LOG`
//! set. With `--metrics-addr`, `run` and `dev` serve Prometheus metrics
//! for every HSM of the process on that address (`hsm_daemon::metrics`).
//!
//! This file parses the command line, sets up logging and runs the command;
//! the commands are in `cli/`, over `hsm_daemon::cluster` (dev, init, run)
//! and the library's other modules.

mod cli;

use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

use crate::cli::{AuditCommand, Cli, Command, LogFormat};

/// mimalloc returns freed memory to the system; glibc's allocator keeps a
/// connection flood's memory, fragmented across its arenas, long after the
/// connections are gone.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    raise_open_file_limit();
    let outcome = match cli.command {
        Command::Dev(args) => cli::dev(args).await,
        Command::Init(args) => cli::init(&args),
        Command::Run(args) => cli::run(args).await,
        Command::Backup(args) => cli::backup(args).await,
        Command::Restore(args) => cli::restore(args),
        Command::Health(args) => cli::health(args).await,
        Command::Audit(AuditCommand::Verify { data_dir }) => cli::verify_audit(&data_dir),
        Command::ControlPlane(args) => cli::control_plane(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain on one line, without a backtrace: these are
            // operator errors (files, flags, stores), not bugs.
            eprintln!("hsm-daemon: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft limit on open files to the hard one: each connection is
/// a file, and the default soft limit (often 1024) would have the kernel,
/// not the HSM's connection limit, refuse clients.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open file limit"),
    }
}

/// Logs to stderr in the chosen format, at the levels HSM_LOG (else
/// RUST_LOG, else `info`) sets. A bad filter is reported, not ignored.
fn init_logging(format: LogFormat) {
    let (filter, bad) = match std::env::var("HSM_LOG").or_else(|_| std::env::var("RUST_LOG")) {
        Ok(spec) => match EnvFilter::try_new(&spec) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new("info"), Some(format!("{spec:?}: {e}"))),
        },
        Err(_) => (EnvFilter::new("info"), None),
    };
    // Colours only for a terminal: files and log collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
    if let Some(bad) = bad {
        tracing::warn!("HSM_LOG/RUST_LOG {bad}; logging at info");
    }
}
