//! The control plane's flags (`dev`, which serves the API beside its own
//! cluster, and `control-plane`, which serves only the API) and
//! `hsm-daemon control-plane`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use clap::Args;
use hsm_daemon::{
    cluster::Durability,
    control::{
        api::{ApiConfig, Credentials},
        clock::ShiftedClock,
        plane::{PlaneConfig, pool::AddressPool},
        server::ControlServer,
    },
    settings::Settings,
};

/// Where the API listens unless told: a fixed port, so that scripts and
/// `~/.aws/config` can name it.
pub(crate) const DEFAULT_API_ADDR: &str = "127.0.0.1:2280";

#[derive(Debug, Clone, Args)]
pub(crate) struct ApiArgs {
    /// Where the CloudHSM v2 API (`aws cloudhsmv2`, boto3, the SDKs)
    /// listens. Default 127.0.0.1:2280, or a free port if that one is taken
    /// (client.env names the one in use).
    #[arg(long, env = "HSM_API_ADDR")]
    pub(crate) api_addr: Option<SocketAddr>,
    /// The region of unsigned requests (signed ones name their own).
    #[arg(long, env = "HSM_API_REGION", default_value = "us-east-1")]
    pub(crate) api_region: String,
    /// How long a state in progress (CREATE_IN_PROGRESS, ...) lasts before
    /// it moves on; 0s moves it on at the next request.
    #[arg(long, env = "HSM_API_TRANSITION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub(crate) api_transition: Duration,
    /// How often each initialized cluster is backed up (AWS: daily).
    #[arg(long, env = "HSM_API_BACKUP_INTERVAL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub(crate) api_backup_interval: Duration,
    /// The loopback block new HSMs take their addresses (EniIp) from, one
    /// each; 127.0.0.1/32 with --api-hsm-port 0 where only 127.0.0.1 can be
    /// bound.
    #[arg(long, env = "HSM_API_ADDRESS_POOL", default_value = "127.2.0.0/16")]
    pub(crate) api_address_pool: String,
    /// The port HSMs listen on at their address (CloudHSM's 2223; 0: a free
    /// port each).
    #[arg(long, env = "HSM_API_HSM_PORT", default_value_t = 2223)]
    pub(crate) api_hsm_port: u16,
    /// Verify SigV4 signatures with this access key (and
    /// --api-secret-access-key); without it any credentials are accepted.
    #[arg(long, env = "HSM_API_ACCESS_KEY_ID", requires = "api_secret_access_key")]
    pub(crate) api_access_key_id: Option<String>,
    #[arg(long, env = "HSM_API_SECRET_ACCESS_KEY", hide_env_values = true, requires = "api_access_key_id")]
    pub(crate) api_secret_access_key: Option<String>,
}

impl ApiArgs {
    /// Starts the control plane in `dir` and its API, with `hsm_flags` over
    /// every HSM it starts.
    pub(crate) async fn start(&self, dir: &Path, hsm_flags: Settings) -> anyhow::Result<ControlServer> {
        let pool = AddressPool::parse(&self.api_address_pool, self.api_hsm_port)
            .map_err(|e| anyhow::anyhow!("--api-address-pool {e}"))?;
        let listener = match self.api_addr {
            Some(addr) => tokio::net::TcpListener::bind(addr).await.with_context(|| format!("--api-addr {addr}"))?,
            None => match tokio::net::TcpListener::bind(DEFAULT_API_ADDR).await {
                Ok(listener) => listener,
                Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the API's port")?,
            },
        };
        let mut plane = PlaneConfig::new(dir.to_owned());
        plane.region.clone_from(&self.api_region);
        plane.transition = self.api_transition;
        plane.backup_interval = self.api_backup_interval;
        plane.pool = pool;
        plane.hsm_flags = hsm_flags;
        plane.durability = Durability::Synced;
        let clock = Arc::new(ShiftedClock::default());
        let api = ApiConfig { credentials: self.credentials(), clock: clock.clone(), ..ApiConfig::default() };
        ControlServer::start(plane, api, clock, listener).await.map_err(|e| anyhow::anyhow!("the control plane: {e}"))
    }

    fn credentials(&self) -> Option<Credentials> {
        match (&self.api_access_key_id, &self.api_secret_access_key) {
            (Some(key), Some(secret)) => Some(Credentials::new(key.clone(), secret.clone())),
            _ => None,
        }
    }

    /// Whether requests must be signed with configured credentials.
    pub(crate) fn verifies(&self) -> bool {
        self.api_access_key_id.is_some()
    }
}

/// `hsm-daemon control-plane`.
#[derive(Debug, Args)]
pub(crate) struct ControlPlaneArgs {
    /// Where clusters, backups and the state live (kept between runs).
    #[arg(long, env = "HSM_API_DIR")]
    pub(crate) dir: PathBuf,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
    /// Argon2id memory cost in KiB of the HSMs' password hashes (default
    /// 19456; test suites may use 8).
    #[arg(long, env = "HSM_KDF_MEMORY_KIB")]
    pub(crate) kdf_memory_kib: Option<u32>,
    /// Argon2id passes (default 2).
    #[arg(long, env = "HSM_KDF_ITERATIONS")]
    pub(crate) kdf_iterations: Option<u32>,
    /// Argon2id lanes (default 1).
    #[arg(long, env = "HSM_KDF_PARALLELISM")]
    pub(crate) kdf_parallelism: Option<u32>,
}

/// What every HSM the control plane starts takes over its config file:
/// the password-hashing cost, and nothing else (each HSM has its own
/// address, store and certificates).
pub(crate) fn hsm_flags(
    kdf_memory_kib: Option<u32>,
    kdf_iterations: Option<u32>,
    kdf_parallelism: Option<u32>,
) -> Settings {
    Settings { kdf_memory_kib, kdf_iterations, kdf_parallelism, ..Settings::default() }
}

pub(crate) async fn control_plane(args: ControlPlaneArgs) -> anyhow::Result<()> {
    let flags = hsm_flags(args.kdf_memory_kib, args.kdf_iterations, args.kdf_parallelism);
    flags.kdf().map_err(|e| anyhow::anyhow!("{e}"))?;
    let server = args.api.start(&args.dir, flags).await?;
    println!("hsm-daemon control-plane: the CloudHSM v2 API on {}", server.endpoint_url());
    println!("  state   {}", args.dir.display());
    for (name, value) in server.client_env(args.api.verifies()) {
        println!("  export {name}={value}");
    }
    println!("Press Ctrl-C to stop.");
    super::serve::shutdown_signal()?.await;
    server.stop().await;
    Ok(())
}
