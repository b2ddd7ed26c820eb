//! The `hsm-daemon` binary.
//!
//! `hsm-daemon dev` is the one-command emulator: it creates (or reuses) a
//! cluster's CA, certificates and secrets in a directory, serves one HSM over
//! TLS on 127.0.0.1, writes `client.env` and runs until interrupted. Every
//! flag can also be set from the environment variable named in `--help`.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use hsm_daemon::{
    DaemonConfig, Transport,
    clock::SystemClock,
    material::ClusterMaterial,
    model::{ClusterIdentity, ClusterMode, HsmIdentity, HsmType, KdfParams, Limits, Password},
};
use rand::{SeedableRng, rngs::StdRng};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "hsm-daemon", version, about = "An emulated AWS CloudHSM HSM, served over gRPC and TLS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start an emulated cluster on 127.0.0.1 with no setup: creates the CA,
    /// certificates and secrets under --dir, writes DIR/client.env, and runs
    /// until interrupted (Ctrl-C or SIGTERM).
    Dev(DevArgs),
}

#[derive(Debug, Args)]
struct DevArgs {
    /// Directory for the cluster's CA, certificates, secrets and client.env;
    /// reused if it already holds them. A temporary directory, removed on
    /// exit, if left out.
    #[arg(long, env = "HSM_DEV_DIR")]
    dir: Option<PathBuf>,

    /// Number of HSMs in the cluster (this version serves one).
    #[arg(long, env = "HSM_DEV_HSMS", default_value_t = 1)]
    hsms: usize,

    /// Start with the cluster activated and this admin password. Without it
    /// the cluster starts unactivated, as a new CloudHSM cluster does: admin /
    /// password is the precrypto officer until `hsm-cli cluster activate`.
    #[arg(long, env = "HSM_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,

    #[command(flatten)]
    hsm: HsmArgs,
}

/// Settings of one HSM process.
#[derive(Debug, Args)]
struct HsmArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "HSM_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// The HSM type, which sets the user quota: hsm1.medium (250 users) or
    /// hsm2m.medium (1,024 users).
    #[arg(long, env = "HSM_TYPE", default_value = "hsm2m.medium", value_parser = parse_hsm_type)]
    hsm_type: HsmType,

    /// Close sessions idle for this many seconds.
    #[arg(long, env = "HSM_SESSION_IDLE_TIMEOUT_SECS", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..))]
    session_idle_timeout_secs: u64,

    /// Most open sessions per HSM.
    #[arg(long, env = "HSM_MAX_SESSIONS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_sessions: u64,

    /// Argon2id memory cost of password hashes, in KiB (test suites may
    /// lower it to 8 to make logins cheap).
    #[arg(long, env = "HSM_KDF_MEMORY_KIB", default_value_t = 19_456)]
    kdf_memory_kib: u32,

    /// Argon2id passes.
    #[arg(long, env = "HSM_KDF_ITERATIONS", default_value_t = 2)]
    kdf_iterations: u32,

    /// Argon2id lanes.
    #[arg(long, env = "HSM_KDF_PARALLELISM", default_value_t = 1)]
    kdf_parallelism: u32,

    /// A PEM CA file: clients presenting a certificate from it are accepted
    /// (mutual TLS).
    #[arg(long, env = "HSM_CLIENT_CA")]
    client_ca: Option<PathBuf>,

    /// With --client-ca: refuse connections without a client certificate.
    #[arg(long, env = "HSM_REQUIRE_CLIENT_CERT", requires = "client_ca")]
    require_client_cert: bool,

    /// Serve plaintext gRPC with NO TLS: passwords and session tokens cross
    /// the network in clear. For debugging only.
    #[arg(long, env = "HSM_INSECURE_PLAINTEXT_NO_TLS")]
    insecure_plaintext_no_tls: bool,
}

fn parse_hsm_type(raw: &str) -> Result<HsmType, String> {
    HsmType::parse(raw).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Dev(args) => dev(args).await,
    }
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    if args.hsms != 1 {
        bail!("--hsms {}: this version serves exactly one HSM per cluster (use --hsms 1)", args.hsms);
    }
    let admin_password = args
        .admin_password
        .as_deref()
        .map(|p| Password::parse("--admin-password", p))
        .transpose()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let kdf = KdfParams::new(args.hsm.kdf_memory_kib, args.hsm.kdf_iterations, args.hsm.kdf_parallelism)
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let temp_dir;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp_dir =
                tempfile::Builder::new().prefix("hsm-dev-").tempdir().context("creating a temporary directory")?;
            temp_dir.path().to_owned()
        }
    };
    let mut rng = StdRng::from_os_rng();
    let material = ClusterMaterial::load_or_create(&dir, &mut rng).context("preparing the cluster material")?;

    let listener = tokio::net::TcpListener::bind(args.hsm.listen)
        .await
        .with_context(|| format!("listening on {}", args.hsm.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    let mode = ClusterMode::Fips;
    let hsm = HsmIdentity::generate(&mut rng, address.to_string(), mode);

    let transport = if args.hsm.insecure_plaintext_no_tls {
        Transport::InsecurePlaintext
    } else {
        let names = vec!["localhost".to_owned(), address.ip().to_string(), hsm.id.to_string()];
        let mut tls = material.issue_hsm_tls(1, hsm.id.as_str(), &names).context("issuing the HSM certificate")?;
        if let Some(ca) = &args.hsm.client_ca {
            tls.client_ca_pem =
                Some(std::fs::read_to_string(ca).with_context(|| format!("reading --client-ca {}", ca.display()))?);
            tls.require_client_cert = args.hsm.require_client_cert;
        }
        Transport::Tls(tls)
    };
    let activated = admin_password.is_some();
    let config = DaemonConfig {
        cluster: ClusterIdentity { id: material.cluster_id.clone(), hsm_type: args.hsm.hsm_type, mode },
        hsm,
        limits: Limits {
            session_idle_timeout: Duration::from_secs(args.hsm.session_idle_timeout_secs),
            max_sessions: usize::try_from(args.hsm.max_sessions).unwrap_or(usize::MAX),
            ..Limits::for_type(args.hsm.hsm_type)
        },
        kdf,
        admin_password,
        appliance_password: material.appliance_password.clone(),
        transport,
        clock: Arc::new(SystemClock),
    };
    let env_path = material.write_client_env(&[address.to_string()]).context("writing client.env")?;

    let scheme = if args.hsm.insecure_plaintext_no_tls { "PLAINTEXT, NO TLS" } else { "TLS" };
    println!("hsm-daemon dev: cluster {} with 1 HSM ({scheme})", material.cluster_id);
    println!("  HSM 1   {} listening on {address}", config.hsm.id);
    println!("  CA      {}", material.ca_path().display());
    println!("  state   {}", if activated { "active" } else { "uninitialized: run `hsm-cli cluster activate`" });
    println!("Connect with:");
    println!("  set -a; . {}; set +a", env_path.display());
    println!("  hsm-cli cluster hsm-info");
    println!("Press Ctrl-C to stop.");

    hsm_daemon::serve(config, listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(%e, "cannot watch SIGTERM; stop with Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = interrupt => tracing::info!("interrupted, shutting down"),
        () = terminate => tracing::info!("terminated, shutting down"),
    }
}
