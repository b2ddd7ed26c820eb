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

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use hsm_daemon::{
    DaemonConfig, Prepared, Transport, audit,
    determinism::{self, Stream},
    material::{ClusterMaterial, HsmPlacement},
    metrics::{Endpoint, Metrics},
    model::{ClusterId, ClusterMode, HsmType, Password},
    seed::{Seed, SeedPlan},
    service::control::{request_backup, serve_control},
    settings::{Settings, split_host_port},
    store::{Opened, STORE_FILE, Store, restore_backup, restore_backup_as_clone},
};
use rand::{SeedableRng, rngs::StdRng};
use tracing_subscriber::EnvFilter;

/// The control socket's name inside a data directory.
const CONTROL_SOCKET: &str = "control.sock";

#[derive(Debug, Parser)]
#[command(name = "hsm-daemon", version, about = "An emulated AWS CloudHSM HSM, served over gRPC and TLS")]
struct Cli {
    /// Log lines for people (`human`) or for log collectors (`json`, one
    /// object a line). Levels come from HSM_LOG, else RUST_LOG (e.g.
    /// `info`, `hsm_daemon=debug`), else `info`.
    #[arg(long, global = true, env = "HSM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
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
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
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
struct HealthArgs {
    /// The HSM's config file: the check connects to its listen port on the
    /// loopback address (whatever address it binds) and trusts its ca_cert.
    #[arg(long, env = "HSM_CONFIG")]
    config: Option<PathBuf>,
    /// The HSM to ask (host:port), instead of the config file's.
    #[arg(long)]
    endpoint: Option<String>,
    /// The CA that issued the HSM's certificate, instead of the config file's.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// The service to ask about; the empty default means the whole HSM.
    #[arg(long, default_value = "")]
    service: String,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u64,
}

#[derive(Debug, Args)]
struct BackupArgs {
    /// The HSM's config file.
    #[arg(long, env = "HSM_CONFIG")]
    config: Option<PathBuf>,
    /// Where to write the backup.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Debug, Args)]
struct RestoreArgs {
    /// The config file of the HSM to create.
    #[arg(long, env = "HSM_CONFIG")]
    config: Option<PathBuf>,
    /// The backup to restore.
    #[arg(long)]
    from: PathBuf,
    /// The backup is of another cluster: make this HSM's cluster a clone of
    /// it, as CloudHSM creates a cluster from a backup. The HSM needs that
    /// cluster's cluster and masking keys (prepare it with `init
    /// --clone-of`).
    #[arg(long)]
    clone: bool,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Debug, Args)]
struct DevArgs {
    /// Directory for the cluster's material, state and client.env; reused if
    /// it already holds them. A temporary directory, removed on exit, if
    /// left out.
    #[arg(long, env = "HSM_DEV_DIR")]
    dir: Option<PathBuf>,

    /// Number of HSMs in the cluster (1 to 28), each on its own port, all
    /// in this process (default: as many as DIR holds, or 1).
    #[arg(long, env = "HSM_DEV_HSMS", value_parser = clap::value_parser!(u8).range(1..=28))]
    hsms: Option<u8>,

    /// Start a new cluster activated with this admin password. Without it the
    /// cluster starts unactivated, as a new CloudHSM cluster does: admin /
    /// password is the precrypto officer until `hsm-cli cluster activate`.
    /// (A seed file may set it instead, not as well.)
    #[arg(long, env = "HSM_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,

    #[command(flatten)]
    settings: Settings,
}

#[derive(Debug, Default, Args)]
struct InitArgs {
    /// Directory to write the cluster's material to.
    #[arg(long, env = "HSM_INIT_DIR")]
    dir: PathBuf,
    /// Number of HSMs (1 to 28).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=28))]
    hsms: u8,
    /// Add this many HSMs to the cluster already in DIR: each clones users
    /// and keys from HSM 1 when it first starts, and every HSM's config
    /// names the new ones as peers (restart running HSMs to pick that up).
    #[arg(long, conflicts_with_all = ["hsms", "cluster_id", "hsm_type", "mode"], value_parser = clap::value_parser!(u8).range(1..=27))]
    add: Option<u8>,
    /// The cluster id (default: a new random `cluster-...`).
    #[arg(long)]
    cluster_id: Option<String>,
    /// Prepare a clone of the cluster whose material is in this directory,
    /// as CloudHSM creates a cluster from a backup: a new cluster id, CA and
    /// certificates, but the source's cluster key (its backups restore here,
    /// with `restore --clone`) and masking key (keys move between the two
    /// with `hsm-cli key replicate`).
    #[arg(long, conflicts_with = "add")]
    clone_of: Option<PathBuf>,
    /// hsm1.medium or hsm2m.medium.
    #[arg(long, default_value = "hsm2m.medium")]
    hsm_type: String,
    /// FIPS or NON_FIPS, as CloudHSM's `create-cluster --mode`: a non-FIPS
    /// cluster also offers triple DES. Fixed for the cluster's life (HSMs
    /// added later take HSM 1's). Default: FIPS; a clone's, its source's.
    #[arg(long)]
    mode: Option<String>,
    /// What every HSM listens on, e.g. 0.0.0.0:2225 when each runs in its own
    /// container (default: a free 127.0.0.1 port each). With more than one
    /// HSM, --advertise must say how each is reached.
    #[arg(long, conflicts_with = "add")]
    listen: Option<SocketAddr>,
    /// How the HSMs reach each other: one host:port per HSM, in order,
    /// comma-separated (e.g. hsm-1:2225,hsm-2:2225,hsm-3:2225). Names each
    /// HSM's peers, and goes in its certificate (default: where it listens).
    #[arg(long, value_delimiter = ',', conflicts_with = "add")]
    advertise: Option<Vec<String>>,
    /// How clients reach the HSMs: one host:port per HSM, in order,
    /// comma-separated (e.g. ports published on 127.0.0.1). Written to
    /// client.env, and each host goes in its HSM's certificate (default: the
    /// --advertise addresses).
    #[arg(long, value_delimiter = ',', conflicts_with = "add")]
    client_endpoints: Option<Vec<String>>,
    /// Every HSM's data directory, as the HSM sees it: an absolute path, e.g.
    /// /data when each HSM has its own volume (default: DIR/hsm-K-data,
    /// created here).
    #[arg(long, conflicts_with = "add")]
    data_dir: Option<PathBuf>,
    /// Where the HSMs will find DIR, when it is mounted elsewhere (e.g. a
    /// Kubernetes Secret at /etc/hsm): an absolute path that the config
    /// files' paths point into (default: DIR).
    #[arg(long, conflicts_with = "add")]
    mounted_at: Option<PathBuf>,
    /// Also write client.env and a copy of the CA (ca.pem) to this directory,
    /// for clients elsewhere (e.g. a directory bind-mounted from the host);
    /// the two files take the directory's owner when run as root. Written
    /// again by --if-absent runs.
    #[arg(long, conflicts_with = "add")]
    client_out: Option<PathBuf>,
    /// The CA path that --client-out's client.env names, as its clients see
    /// it (default: the copy in --client-out), e.g. deploy/out/ca.pem.
    #[arg(long, requires = "client_out")]
    client_ca_cert: Option<PathBuf>,
    /// Give DIR and everything in it to this user, UID or UID:GID: for an
    /// init run as root that prepares HSMs which run as another user.
    #[arg(long, conflicts_with = "add")]
    owner: Option<String>,
    /// If DIR already holds a cluster (hsm-1.toml), leave it as it is and
    /// succeed (still writing --client-out): for an init step that runs on
    /// every start, as a container's does.
    #[arg(long, conflicts_with = "add")]
    if_absent: bool,
    /// `dev --deterministic`: the cluster and HSM ids from this seed.
    #[arg(skip)]
    deterministic: Option<u64>,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The HSM's config file, as `init` wrote it.
    #[arg(long, env = "HSM_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

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
        Command::Dev(args) => dev(args).await,
        Command::Init(args) => init(&args),
        Command::Run(args) => run(args).await,
        Command::Backup(args) => backup(args).await,
        Command::Restore(args) => restore(args),
        Command::Health(args) => health(args).await,
        Command::Audit(AuditCommand::Verify { data_dir }) => verify_audit(&data_dir),
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

/// `hsm-daemon health`.
async fn health(args: HealthArgs) -> anyhow::Result<()> {
    let file = args.config.as_deref().map(Settings::from_file).transpose()?.unwrap_or_default();
    let endpoint = match (&args.endpoint, file.listen) {
        (Some(endpoint), _) => endpoint.clone(),
        (None, Some(listen)) => reachable(listen),
        (None, None) => bail!("--endpoint is not set, and no --config with a listen address was given"),
    };
    if file.insecure_plaintext_no_tls.unwrap_or(false) {
        bail!("the HSM serves plaintext (insecure_plaintext_no_tls); `health` checks HSMs that serve TLS");
    }
    let ca =
        args.ca_cert.as_ref().or(file.ca_cert.as_ref()).context("--ca-cert is not set, nor ca_cert in --config")?;
    let mut config = hsm_client::ClientConfig::from_parts(&endpoint, ca)?;
    if args.endpoint.is_none() {
        // The loopback address may not be in the certificate; "localhost" is.
        config = config.with_server_name("localhost".into());
    }
    let timeout = std::time::Duration::from_millis(args.timeout_ms);
    let check = async {
        let client = hsm_client::HsmClient::connect(&config.with_connect_timeout(timeout)).await?;
        client.health(&args.service).await
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(Ok(true)) => {
            println!("SERVING");
            Ok(())
        }
        Ok(Ok(false)) => bail!("{endpoint}: NOT_SERVING"),
        Ok(Err(e)) => bail!("{endpoint}: {e}"),
        Err(_) => bail!("{endpoint}: no answer within {} ms", args.timeout_ms),
    }
}

fn init(args: &InitArgs) -> anyhow::Result<()> {
    if let Some(count) = args.add {
        return add_hsms(&args.dir, usize::from(count));
    }
    let owner = args.owner.as_deref().map(parse_owner).transpose()?;
    if args.if_absent && args.dir.join("hsm-1.toml").exists() {
        let material = ClusterMaterial::load_or_create(&args.dir, None, &mut StdRng::from_os_rng())
            .context("reading the cluster material")?;
        println!("{} already holds cluster {}: nothing was changed", material.dir.display(), material.cluster_id);
        let clients = match client_addresses(args)? {
            Some(clients) => clients,
            None => material.hsms().context("reading the HSMs' config files")?.into_iter().map(|(_, a)| a).collect(),
        };
        return write_client_out(args, &material, &clients);
    }
    let (material, clients) = prepare_cluster(args)?;
    for index in 1..=clients.len() {
        println!("HSM {index}: {}", material.hsm_config_path(index).display());
    }
    let env = material.write_client_env(&clients).context("writing client.env")?;
    write_client_out(args, &material, &clients)?;
    if let Some((uid, gid)) = owner {
        material.give_to(uid, gid).with_context(|| format!("--owner {uid}:{gid}"))?;
    }
    println!("cluster {} prepared in {}", material.cluster_id, material.dir.display());
    println!("  start HSM K with: hsm-daemon run --config {}/hsm-K.toml", material.served_dir.display());
    println!("  clients: {}", env.display());
    Ok(())
}

/// `--client-out`: the CA and a client.env for clients elsewhere.
fn write_client_out(args: &InitArgs, material: &ClusterMaterial, clients: &[String]) -> anyhow::Result<()> {
    if let Some(out) = &args.client_out {
        let env = material
            .write_client_files(out, clients, args.client_ca_cert.as_deref())
            .context("writing --client-out")?;
        println!("  clients elsewhere: {}", env.display());
    }
    Ok(())
}

/// `--owner UID[:GID]`.
fn parse_owner(raw: &str) -> anyhow::Result<(u32, u32)> {
    let (uid, gid) = raw.split_once(':').unwrap_or((raw, raw));
    match (uid.parse(), gid.parse()) {
        (Ok(uid), Ok(gid)) => Ok((uid, gid)),
        _ => bail!("--owner {raw:?}: must be UID or UID:GID, in numbers (e.g. 10001:10001)"),
    }
}

/// A new cluster's material and config files (no `client.env`); returns
/// the addresses clients reach the HSMs at.
fn prepare_cluster(args: &InitArgs) -> anyhow::Result<(ClusterMaterial, Vec<String>)> {
    let cluster_id = args
        .cluster_id
        .as_deref()
        .map(ClusterId::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--cluster-id: {e}"))?;
    HsmType::parse(&args.hsm_type).map_err(|e| anyhow::anyhow!("--hsm-type: {e}"))?;
    let mode = match (&args.mode, &args.clone_of) {
        (Some(flag), _) => ClusterMode::parse("mode", flag).map_err(|e| anyhow::anyhow!("--mode: {e}"))?,
        (None, Some(source)) => mode_of(&Settings::from_file(&source.join("hsm-1.toml"))?, source)?,
        (None, None) => ClusterMode::Fips,
    };
    for (flag, path) in [("--data-dir", &args.data_dir), ("--mounted-at", &args.mounted_at)] {
        if let Some(path) = path
            && !path.is_absolute()
        {
            bail!("{flag} {}: must be an absolute path (as the HSMs see it)", path.display());
        }
    }
    let (placements, advertised, clients) = placements(args)?;
    if args.dir.join("hsm-1.toml").exists() {
        bail!("{} already holds a cluster (hsm-1.toml exists); nothing was changed", args.dir.display());
    }
    let mut rng = determinism::rng(args.deterministic, Stream::Cluster, 0);
    let mut material = match &args.clone_of {
        None => ClusterMaterial::load_or_create(&args.dir, cluster_id.as_ref(), &mut rng),
        Some(source) => ClusterMaterial::create_clone(&args.dir, source, cluster_id.as_ref(), &mut rng),
    }
    .context("preparing the cluster material")?;
    if let Some(path) = &args.mounted_at {
        material.served_dir.clone_from(path);
    }
    prepare_hsms(&material, 1, &placements, (&args.hsm_type, mode), &mut rng)?;
    link_peers(&material, &advertised)?;
    Ok((material, clients))
}

/// Where each new HSM listens and keeps its state, how peers reach it and
/// how clients do, from the flags (checked before anything is written).
fn placements(args: &InitArgs) -> anyhow::Result<(Vec<HsmPlacement>, Vec<String>, Vec<String>)> {
    let count = usize::from(args.hsms);
    let advertise = address_list("--advertise", args.advertise.as_deref(), count)?;
    let clients = client_addresses(args)?;
    let listens = match args.listen {
        Some(listen) if count > 1 && advertise.is_none() => bail!(
            "--listen {listen}: every HSM binds it, so with --hsms {count} each runs on its own host; say how \
             each is reached with --advertise (one host:port per HSM)"
        ),
        Some(listen) => vec![listen; count],
        None => (0..count).map(|_| free_local_port().context("finding a free port")).collect::<Result<_, _>>()?,
    };
    let advertised = advertise.unwrap_or_else(|| listens.iter().map(|l| reachable(*l)).collect());
    let clients = clients.unwrap_or_else(|| advertised.clone());
    let placements = listens
        .iter()
        .zip(advertised.iter().zip(&clients))
        .map(|(listen, (peer, client))| HsmPlacement {
            listen: *listen,
            hosts: [peer, client].iter().map(|a| host_of(a)).collect(),
            data_dir: args.data_dir.clone(),
        })
        .collect();
    Ok((placements, advertised, clients))
}

/// `--client-endpoints`, falling back on `--advertise`, checked.
fn client_addresses(args: &InitArgs) -> anyhow::Result<Option<Vec<String>>> {
    let count = usize::from(args.hsms);
    match address_list("--client-endpoints", args.client_endpoints.as_deref(), count)? {
        Some(clients) => Ok(Some(clients)),
        None => address_list("--advertise", args.advertise.as_deref(), count),
    }
}

/// A list flag of one host:port per HSM, checked.
fn address_list(flag: &str, list: Option<&[String]>, count: usize) -> anyhow::Result<Option<Vec<String>>> {
    let Some(list) = list else { return Ok(None) };
    if list.len() != count {
        bail!("{flag}: {} address(es) for --hsms {count}; give one host:port per HSM, in order", list.len());
    }
    let mut checked = Vec::new();
    for raw in list {
        let raw = raw.trim();
        if split_host_port(raw).is_none() {
            bail!("{flag}: {raw:?} must be host:port (a host name or address, and a port from 1 to 65535)");
        }
        checked.push(raw.to_owned());
    }
    Ok(Some(checked))
}

/// The host of a checked host:port, without IPv6 brackets.
fn host_of(address: &str) -> String {
    let host = split_host_port(address).map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']').to_owned()
}

/// Where a process on this machine reaches a listen address: the loopback
/// address of its family when it binds every address.
fn reachable(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => std::net::Ipv4Addr::LOCALHOST.into(),
        ip if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port()).to_string()
}

/// Prepares HSMs `first..`, one per placement.
fn prepare_hsms(
    material: &ClusterMaterial,
    first: usize,
    placements: &[HsmPlacement],
    (hsm_type, mode): (&str, ClusterMode),
    rng: &mut StdRng,
) -> anyhow::Result<()> {
    for (index, placement) in (first..).zip(placements) {
        material.init_hsm(index, placement, hsm_type, mode, rng).with_context(|| format!("preparing HSM {index}"))?;
    }
    Ok(())
}

/// The mode of the cluster whose HSM 1 has `settings` (FIPS if it names
/// none: configs from before the setting).
fn mode_of(settings: &Settings, dir: &std::path::Path) -> anyhow::Result<ClusterMode> {
    ClusterMode::parse("mode", settings.mode.as_deref().unwrap_or("FIPS"))
        .map_err(|e| anyhow::anyhow!("{}/hsm-1.toml: {e}", dir.display()))
}

/// Names every HSM's peers (all the others) in its config file.
fn link_peers(material: &ClusterMaterial, endpoints: &[String]) -> anyhow::Result<()> {
    for (i, _) in endpoints.iter().enumerate() {
        let others: Vec<String> =
            endpoints.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, e)| e.clone()).collect();
        material.set_peers(i + 1, &others).with_context(|| format!("naming the peers of HSM {}", i + 1))?;
    }
    Ok(())
}

/// `init --add`: new HSMs for the cluster in `dir`, cloning from HSM 1.
fn add_hsms(dir: &std::path::Path, count: usize) -> anyhow::Result<()> {
    if !dir.join("hsm-1.toml").exists() {
        bail!("{} holds no cluster (no hsm-1.toml); prepare one with `hsm-daemon init --dir`", dir.display());
    }
    let mut rng = StdRng::from_os_rng();
    let material = ClusterMaterial::load_or_create(dir, None, &mut rng).context("reading the cluster material")?;
    let existing = material.hsms().context("reading the HSMs' config files")?;
    if existing.len() + count > 28 {
        bail!("--add {count}: the cluster has {} HSMs and a cluster holds at most 28", existing.len());
    }
    // The new HSMs take the cluster's type and mode from HSM 1.
    let first = Settings::from_file(&material.hsm_config_path(1))?;
    let mode = mode_of(&first, dir)?;
    let hsm_type = first.hsm_type.unwrap_or_else(|| "hsm2m.medium".into());
    let mut endpoints: Vec<String> = existing.iter().map(|(_, address)| address.clone()).collect();
    let placements = (0..count)
        .map(|_| Ok(HsmPlacement::local(free_local_port().context("finding a free port")?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let added: Vec<String> = placements.iter().map(|p| p.listen.to_string()).collect();
    prepare_hsms(&material, existing.len() + 1, &placements, (&hsm_type, mode), &mut rng)?;
    for index in existing.len() + 1..=existing.len() + count {
        println!("HSM {index}: {}", material.hsm_config_path(index).display());
    }
    for index in existing.len() + 1..=existing.len() + count {
        material.set_clone_from(index, &endpoints[0]).with_context(|| format!("HSM {index}"))?;
    }
    endpoints.extend(added);
    link_peers(&material, &endpoints)?;
    let env = material.write_client_env(&endpoints).context("writing client.env")?;
    println!("cluster {} now has {} HSMs", material.cluster_id, endpoints.len());
    println!("  start each new HSM with: hsm-daemon run --config {}/hsm-K.toml", material.dir.display());
    println!("  (it copies users and keys from HSM 1 first); restart the others to sync with it too");
    println!("  clients: {}", env.display());
    Ok(())
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_local_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Flags and environment over the config file, if any.
fn settings(config: Option<&PathBuf>, flags: Settings) -> anyhow::Result<Settings> {
    let file = match config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    Ok(flags.over(file))
}

async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let settings = settings(args.config.as_ref(), args.settings)?;
    let out = std::path::absolute(&args.out).with_context(|| format!("--out {}", args.out.display()))?;
    let data_dir = settings.data_dir.clone().context("data_dir is not set (--data-dir)")?;
    match request_backup(&data_dir.join(CONTROL_SOCKET), &out).await.map_err(|e| anyhow::anyhow!(e))? {
        Some(()) => println!("backup written by the running daemon: {}", out.display()),
        None => {
            if !data_dir.join(hsm_daemon::store::STORE_FILE).exists() {
                bail!("{}: no HSM state to back up", data_dir.display());
            }
            let config = settings.resolve(settings.listen_addr(), None, &mut StdRng::from_os_rng())?;
            let store = match Store::open(
                &config.storage.backing,
                &config.storage.master_key,
                config.cluster.id.as_str(),
                config.hsm.id.as_str(),
            )? {
                Opened::Existing(opening, ..) => opening.wait()?,
                Opened::New(_) => bail!("{}: no HSM state to back up", data_dir.display()),
            };
            store.write_backup(&settings.cluster_key()?, config.cluster.id.as_str(), config.hsm.id.as_str(), &out)?;
            println!("backup written from the store: {}", out.display());
        }
    }
    Ok(())
}

fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let settings = settings(args.config.as_ref(), args.settings)?;
    let config = settings.resolve(settings.listen_addr(), None, &mut StdRng::from_os_rng())?;
    let restore = if args.clone { restore_backup_as_clone } else { restore_backup };
    restore(
        &args.from,
        &settings.cluster_key()?,
        &config.storage.backing,
        &config.storage.master_key,
        &config.cluster,
        &config.hsm,
    )?;
    println!("{} of {} restored from {}", config.hsm.id, config.cluster.id, args.from.display());
    Ok(())
}

/// `audit verify`: checks every audit log in or under `dir`, reporting each.
fn verify_audit(dir: &std::path::Path) -> anyhow::Result<()> {
    let logs = audit::verify::logs_in(dir).with_context(|| format!("reading {}", dir.display()))?;
    if logs.is_empty() {
        bail!("{}: no {} in it or in its subdirectories", dir.display(), audit::AUDIT_FILE);
    }
    let mut broken = 0;
    for log in &logs {
        match audit::verify::verify_file(log) {
            Ok(verified) => println!("{verified}"),
            Err(why) => {
                println!("chain BROKEN: {why}");
                broken += 1;
            }
        }
    }
    if broken > 0 {
        bail!("{broken} of {} audit logs failed verification", logs.len());
    }
    Ok(())
}

/// Serves the control socket (backups) beside the store, when there is one.
fn spawn_control(prepared: &Prepared, settings: &Settings) -> anyhow::Result<()> {
    // Kept fallible for callers' `?`; every failure here only disables backups.
    if settings.ephemeral.unwrap_or(false) {
        return Ok(());
    }
    let Some(dir) = &settings.data_dir else { return Ok(()) };
    let cluster_key = match settings.cluster_key() {
        Ok(key) => key,
        Err(e) => {
            tracing::warn!(error = %e, "no cluster key: the control socket (online backups) is off");
            return Ok(());
        }
    };
    let handle = prepared.backup_handle(cluster_key);
    let path = dir.join(CONTROL_SOCKET);
    tokio::spawn(async move {
        if let Err(e) = serve_control(path.clone(), handle).await {
            tracing::warn!(path = %path.display(), error = %e, "control socket unavailable; backups need the daemon stopped");
        }
    });
    Ok(())
}

/// Removes the control socket after a clean shutdown (a crash leaves it; the
/// next start replaces it).
fn remove_control(settings: &Settings) {
    if let Some(dir) = &settings.data_dir {
        let _ = std::fs::remove_file(dir.join(CONTROL_SOCKET));
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let settings = settings(args.config.as_ref(), args.settings)?;
    let seed = run_seed(&settings).await?;
    if let Some(seed) = settings.deterministic {
        println!("hsm-daemon: {} (--deterministic {seed})", determinism::WARNING);
    }
    let mut started = start(&settings, None, seed).await?;
    let shutdown = shutdown_signal()?;
    let metrics = start_metrics(&settings).await?;
    if let Some(metrics) = &metrics {
        started.prepared.set_metrics(Arc::clone(&metrics.metrics));
    }
    println!(
        "hsm-daemon: {} of cluster {} listening on {} ({})",
        started.hsm_id, started.cluster_id, started.address, started.scheme
    );
    if let Some(metrics) = &metrics {
        println!("hsm-daemon: metrics on http://{}/metrics", metrics.address);
    }
    let served = started.serve(&settings, shutdown).await;
    if let Some(metrics) = metrics {
        metrics.stop().await;
    }
    served
}

/// The process's metrics endpoint, bound and serving.
struct MetricsServer {
    metrics: Arc<Metrics>,
    address: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Binds and serves the metrics endpoint if `metrics_addr` is set: binding
/// now, so that a busy or bad address stops start-up with its reason.
async fn start_metrics(settings: &Settings) -> anyhow::Result<Option<MetricsServer>> {
    let Some(addr) = settings.metrics_addr()? else { return Ok(None) };
    let metrics = Metrics::new();
    let endpoint = Endpoint::bind(addr, Arc::clone(&metrics)).await?;
    let address = endpoint.address();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(endpoint.serve(async {
        stopped.await.ok();
    }));
    Ok(Some(MetricsServer { metrics, address, stop, task }))
}

impl MetricsServer {
    /// Stops serving, once the HSMs have stopped.
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// An HSM whose store is open and whose port is bound.
struct Started {
    prepared: Prepared,
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    hsm_id: String,
    cluster_id: String,
    scheme: &'static str,
}

/// Opens the store, then binds the port (so that a second daemon on the same
/// data directory is refused for that reason, not for a busy port), and opens
/// the control socket.
async fn start(
    settings: &Settings,
    admin_password: Option<Password>,
    seed: Option<Arc<SeedPlan>>,
) -> anyhow::Result<Started> {
    let mut identity_rng = determinism::rng(settings.deterministic, Stream::Identity, settings.index());
    let mut config = settings.resolve(settings.listen_addr(), admin_password, &mut identity_rng)?;
    config.seed = seed;
    let (hsm_id, cluster_id, scheme) = (config.hsm.id.to_string(), config.cluster.id.to_string(), scheme(&config));
    let mut prepared = Prepared::new(config).await?;
    let listener = bind(settings.listen_addr()).await?;
    let address = listener.local_addr().context("reading the bound address")?;
    prepared.set_address(address);
    spawn_control(&prepared, settings)?;
    Ok(Started { prepared, listener, address, hsm_id, cluster_id, scheme })
}

impl Started {
    /// Serves until `shutdown` resolves, then removes the control socket.
    async fn serve(
        self,
        settings: &Settings,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let hsm_id = self.hsm_id.clone();
        self.prepared.serve(self.listener, shutdown).await?;
        remove_control(settings);
        tracing::info!(hsm = %hsm_id, "stopped");
        Ok(())
    }
}

async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let admin_password = args
        .admin_password
        .as_deref()
        .map(|p| Password::parse("--admin-password", p))
        .transpose()
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    // Checked before anything is prepared, so that a bad value changes nothing.
    args.settings.metrics_addr()?;
    let seed = args.settings.seed.as_deref().map(Seed::from_file).transpose()?;
    if let Some(seed) = &seed {
        if seed.sets_admin_password() && admin_password.is_some() {
            bail!(
                "--admin-password: the seed file sets the admin password ([cluster] admin_password); give it in \
                 one place"
            );
        }
        if let (Some(flag), Some(wanted)) = (args.hsms, seed.hsms())
            && flag != wanted
        {
            bail!(
                "--hsms {flag}: the seed file asks for {wanted} HSM(s) ([cluster] hsms); give the count in one place"
            );
        }
    }

    let temp_dir;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            temp_dir =
                tempfile::Builder::new().prefix("hsm-dev-").tempdir().context("creating a temporary directory")?;
            temp_dir.path().to_owned()
        }
    };
    // client.env appears when the cluster serves (test harnesses wait for
    // it), so one left by an earlier run must not be seen first.
    let env_file = dir.join("client.env");
    if let Err(e) = std::fs::remove_file(&env_file)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(e).with_context(|| format!("removing the old {}", env_file.display()));
    }
    let (material, count) = if dir.join("hsm-1.toml").exists() {
        let material = ClusterMaterial::load_or_create(&dir, None, &mut StdRng::from_os_rng())
            .context("reading the cluster material")?;
        if let Some(wanted) = seed.as_ref().and_then(Seed::cluster_id)
            && *wanted != material.cluster_id
        {
            bail!(
                "{} holds cluster {}; the seed file names {wanted} ([cluster] id): use another --dir",
                dir.display(),
                material.cluster_id
            );
        }
        let held = material.hsms().context("reading the HSMs' config files")?.len();
        if let Some(wanted) = args.hsms
            && usize::from(wanted) != held
        {
            bail!(
                "--hsms {wanted}: {} holds a cluster of {held} HSM(s); use --hsms {held}, another --dir, or add \
                 HSMs with `hsm-daemon init --dir {} --add N` and `hsm-daemon run`",
                dir.display(),
                dir.display()
            );
        }
        (material, held)
    } else {
        let hsms = args.hsms.or(seed.as_ref().and_then(Seed::hsms)).unwrap_or(1);
        let (material, _) = prepare_cluster(&InitArgs {
            dir: dir.clone(),
            hsms,
            cluster_id: seed.as_ref().and_then(Seed::cluster_id).map(ToString::to_string),
            hsm_type: seed.as_ref().and_then(Seed::hsm_type).unwrap_or(HsmType::Hsm2mMedium).to_string(),
            mode: args.settings.mode.clone().or_else(|| seed.as_ref().and_then(Seed::mode).map(|m| m.to_string())),
            deterministic: args.settings.deterministic,
            ..InitArgs::default()
        })?;
        (material, usize::from(hsms))
    };

    // Open every store and bind every port first: peers are known only once
    // all are bound. A fresh free port each start unless --listen says
    // otherwise (one HSM only).
    if count > 1 && args.settings.listen.is_some() {
        bail!("--listen: with more than one HSM each takes a free port; leave --listen out");
    }
    // A seed that holds more keys than the HSM type allows turns key quotas
    // off, unless the flag says otherwise.
    let key_quota = args
        .settings
        .key_quota
        .clone()
        .or_else(|| seed.as_ref().filter(|seed| seed.quotas_off()).map(|_| "off".to_owned()));
    let mut all = Vec::new();
    for index in 1..=count {
        let file = Settings::from_file(&material.hsm_config_path(index))?;
        let flags = Settings {
            listen: Some(args.settings.listen_addr()),
            key_quota: key_quota.clone(),
            ..args.settings.clone()
        };
        all.push(flags.over(file));
    }
    // One plan for every new store, so that the HSMs start identical.
    let plan = match seed {
        Some(seed) if all.iter().any(store_is_new) => Some(plan_seed(seed, &all[0]).await?),
        Some(_) => {
            tracing::info!("every HSM's store already exists: the seed is not applied again");
            None
        }
        None => None,
    };
    let mut hsms = Vec::new();
    for (index, settings) in (1..).zip(all) {
        let started = start(&settings, admin_password.clone(), plan.clone())
            .await
            .with_context(|| format!("starting HSM {index}"))?;
        hsms.push((settings, started));
    }
    let addresses: Vec<String> = hsms.iter().map(|(_, s)| s.address.to_string()).collect();
    for (i, (_, started)) in hsms.iter_mut().enumerate() {
        let peers = addresses.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, a)| a.clone()).collect();
        started.prepared.set_peers(peers);
    }
    let signalled = shutdown_signal()?;
    // One endpoint for every HSM of the process; each series names its HSM.
    let metrics = start_metrics(&args.settings).await?;
    if let Some(metrics) = &metrics {
        for (_, started) in &mut hsms {
            started.prepared.set_metrics(Arc::clone(&metrics.metrics));
        }
    }
    let env_path = material.write_client_env(&addresses).context("writing client.env")?;

    let scheme = hsms[0].1.scheme;
    println!("hsm-daemon dev: cluster {} with {count} HSM(s) ({scheme})", material.cluster_id);
    for (i, (_, started)) in hsms.iter().enumerate() {
        println!("  HSM {}   {} listening on {}", i + 1, started.hsm_id, started.address);
    }
    println!("  CA      {}", material.ca_path().display());
    println!("  state   {}", dir.join("hsm-K-data").display());
    if let Some(metrics) = &metrics {
        println!("  metrics http://{}/metrics", metrics.address);
    }
    if let Some(path) = &args.settings.seed {
        match &plan {
            Some(plan) => println!(
                "  seed    {}: {} user(s) and {} key(s) in each new store",
                path.display(),
                plan.user_count(),
                plan.key_count()
            ),
            None => println!(
                "  seed    {}: not applied, the stores already exist (remove DIR to start over)",
                path.display()
            ),
        }
    }
    if let Some(seed) = args.settings.deterministic {
        println!("  {} (--deterministic {seed})", determinism::WARNING);
    }
    let all_active = hsms.iter().all(|(_, s)| s.prepared.is_activated());
    println!("  cluster {}", if all_active { "active" } else { "uninitialized: run `hsm-cli cluster activate`" });
    println!("Connect with:");
    println!("  set -a; . {}; set +a", env_path.display());
    println!("  hsm-cli cluster hsm-info");
    println!("Press Ctrl-C to stop.");

    // One signal stops every HSM.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        signalled.await;
        let _ = stop.send(true);
    });
    let mut running = tokio::task::JoinSet::new();
    for (settings, started) in hsms {
        let mut stopped = stopped.clone();
        running.spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            started.serve(&settings, shutdown).await
        });
    }
    while let Some(joined) = running.join_next().await {
        joined.context("an HSM task failed")??;
    }
    if let Some(metrics) = metrics {
        metrics.stop().await;
    }
    // The addresses in it are gone with the HSMs.
    let _ = std::fs::remove_file(&env_path);
    Ok(())
}

/// Whether the HSM these settings describe starts with a new store (the
/// seed applies only then).
fn store_is_new(settings: &Settings) -> bool {
    settings.ephemeral.unwrap_or(false) || settings.data_dir.as_ref().is_none_or(|d| !d.join(STORE_FILE).exists())
}

/// Hashes the seed's passwords and generates its keys, once, off the async
/// workers (RSA generation is slow).
async fn plan_seed(seed: Seed, settings: &Settings) -> anyhow::Result<Arc<SeedPlan>> {
    let kdf = settings.kdf()?;
    let deterministic = settings.deterministic;
    let plan = tokio::task::spawn_blocking(move || seed.plan(&kdf, deterministic)).await??;
    Ok(Arc::new(plan))
}

/// `run --seed FILE`: the plan for a new store, after checking that the seed
/// fits the HSM's settings.
async fn run_seed(settings: &Settings) -> anyhow::Result<Option<Arc<SeedPlan>>> {
    let Some(path) = &settings.seed else { return Ok(None) };
    let seed = Seed::from_file(path)?;
    if !store_is_new(settings) {
        tracing::info!(seed = %path.display(), "the store already exists: the seed is not applied again");
        return Ok(None);
    }
    if let (Some(wanted), Some(held)) = (seed.cluster_id(), &settings.cluster_id)
        && wanted.as_str() != held
    {
        bail!("the seed file names cluster {wanted} ([cluster] id), this HSM belongs to {held}");
    }
    let hsm_type = HsmType::parse(settings.hsm_type.as_deref().unwrap_or("hsm2m.medium"))?;
    if let Some(wanted) = seed.hsm_type()
        && wanted != hsm_type
    {
        bail!("the seed file's hsm_type is {wanted}, this HSM's is {hsm_type}");
    }
    let mode = ClusterMode::parse("mode", settings.mode.as_deref().unwrap_or("FIPS"))?;
    if let Some(wanted) = seed.mode()
        && wanted != mode
    {
        bail!("the seed file's mode is {wanted} ([cluster] mode), this HSM's is {mode} (--mode)");
    }
    if seed.quotas_off() && settings.key_quota.as_deref() != Some("off") {
        bail!("the seed file sets key_quota = \"off\": run this HSM with --key-quota off (HSM_KEY_QUOTA=off) too");
    }
    if seed.generates_keys() && settings.index() > 1 && settings.deterministic.is_none() {
        bail!(
            "the seed generates keys, and HSM {} would generate other material than HSM 1 under the same key \
             references: start every HSM of the cluster with the same --deterministic SEED, or give the keys' \
             material in the seed (pem, pem_file or hex)",
            settings.index()
        );
    }
    plan_seed(seed, settings).await.map(Some)
}

async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))
}

fn scheme(config: &DaemonConfig) -> &'static str {
    match config.transport {
        Transport::Tls(_) => "TLS",
        Transport::InsecurePlaintext => "PLAINTEXT, NO TLS",
    }
}

/// Resolves on Ctrl-C or SIGTERM.
/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM. The handlers are
/// installed when this is called, not when the future is first polled, so
/// call it before announcing the daemon: a supervisor may signal it the
/// moment it says it listens.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("watching SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("interrupted, shutting down"),
            _ = terminate.recv() => tracing::info!("terminated, shutting down"),
        }
    })
}
