//! Where the HSMs under load come from: started in this process, started as
//! an `hsm-daemon dev` child, or an existing cluster named by its
//! `client.env`; and the crypto user the run logs in as.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use hsm_client::{ClientConfig, Cluster, Completion, CreateUser, HsmClient, Role};
use hsm_daemon::{
    model::{KdfParams, KeyQuotas},
    testing::{ADMIN_PASSWORD, Options, TestCluster},
};
use tokio::runtime::Handle;

use crate::args::{Args, ClusterSource, Kdf};

/// The crypto user a started cluster has for the run.
pub(crate) const BENCH_USER: &str = "bench";
pub(crate) const BENCH_PASSWORD: &str = "bench-pass-1";

/// How long `hsm-daemon dev` may take to write its `client.env`.
const DEV_START_TIMEOUT: Duration = Duration::from_secs(60);

/// What an operation needs of the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One HSM.
    One,
    /// Three HSMs, keys replicated by the cluster-aware client.
    Three,
    /// One HSM of its own that holds `max_sessions` sessions.
    Sessions { max_sessions: usize },
}

/// Where clusters come from, as the flags say.
#[derive(Debug)]
pub(crate) struct Sources {
    origin: Origin,
    /// The runtime in-process HSMs (and the echo server) run on.
    server: Handle,
    /// The largest number of sessions an operation other than `sessions`
    /// holds at once, so that started HSMs allow it.
    sessions_needed: usize,
}

#[derive(Debug)]
enum Origin {
    InProcess,
    Dev { daemon: PathBuf },
    Target { config: ClientConfig, user: String, password: String },
}

impl Sources {
    pub(crate) fn new(args: &Args, server: Handle) -> anyhow::Result<Sources> {
        let origin = match (&args.target, args.cluster) {
            (Some(path), _) => {
                let config = ClientConfig::from_env_file(path)?;
                let (Some(user), Some(password)) = (args.user.clone(), args.password.clone()) else {
                    bail!(
                        "--target needs a crypto user: give --user and --password (or HSM_BENCH_USER, HSM_BENCH_PASSWORD)"
                    );
                };
                Origin::Target { config, user, password }
            }
            (None, ClusterSource::InProcess) => Origin::InProcess,
            (None, ClusterSource::Dev) => Origin::Dev { daemon: daemon_binary(args.daemon_bin.as_deref())? },
        };
        let sessions_needed = usize::try_from(args.sessions.unwrap_or(1) + args.concurrency).unwrap_or(usize::MAX);
        Ok(Sources { origin, server, sessions_needed })
    }

    /// `in-process`, `dev` or `target`, for the report.
    pub(crate) fn mode(&self) -> &'static str {
        match self.origin {
            Origin::InProcess => "in-process",
            Origin::Dev { .. } => "dev",
            Origin::Target { .. } => "target",
        }
    }

    /// Whether this run starts its clusters (and so sets their KDF).
    pub(crate) fn starts_clusters(&self) -> bool {
        !matches!(self.origin, Origin::Target { .. })
    }

    /// Starts (or, for a target, connects to) a cluster of `shape` whose
    /// passwords are hashed at `kdf`, with the bench's crypto user.
    pub(crate) async fn start(&self, shape: Shape, kdf: Kdf) -> anyhow::Result<Started> {
        let hsms = if shape == Shape::Three { 3 } else { 1 };
        let max_sessions = match shape {
            Shape::Sessions { max_sessions } => max_sessions,
            Shape::One | Shape::Three => self.sessions_needed.saturating_add(64).max(4096),
        };
        let params = match kdf {
            Kdf::Production => KdfParams::DEFAULT,
            Kdf::Testing => KdfParams::TESTING,
        };
        match &self.origin {
            Origin::Target { config, user, password } => Ok(Started {
                config: config.clone(),
                user: user.clone(),
                password: password.clone(),
                kdf: None,
                guard: Guard::Target,
            }),
            Origin::InProcess => {
                let options = Options {
                    users: vec![(BENCH_USER.into(), Role::CryptoUser, BENCH_PASSWORD.into())],
                    kdf: params,
                    max_sessions,
                    // Background sync at the daemon's default interval, not
                    // the test suites' quick one.
                    sync_interval: Duration::from_secs(2),
                    // Key generation keeps every pair it makes.
                    key_quotas: KeyQuotas::OFF,
                    ..Options::default()
                };
                let cluster =
                    self.server.spawn(TestCluster::start(hsms, options)).await.context("starting the HSMs")?;
                Ok(Started {
                    config: cluster.config(),
                    user: BENCH_USER.into(),
                    password: BENCH_PASSWORD.into(),
                    kdf: Some(params),
                    guard: Guard::InProcess { server: self.server.clone(), cluster: Some(Box::new(cluster)), hsms },
                })
            }
            Origin::Dev { daemon } => {
                let dev = DevChild::spawn(daemon, hsms, max_sessions, kdf).await?;
                let config = ClientConfig::from_env_file(&dev.dir.path().join("client.env"))?;
                create_bench_user(&config).await?;
                Ok(Started {
                    config,
                    user: BENCH_USER.into(),
                    password: BENCH_PASSWORD.into(),
                    kdf: Some(params),
                    guard: Guard::Dev(dev),
                })
            }
        }
    }
}

/// A running cluster and how to log in to it. Stopping it (or dropping it)
/// stops what the run started.
#[derive(Debug)]
pub(crate) struct Started {
    /// Every HSM of the cluster; single-HSM operations use the first.
    pub(crate) config: ClientConfig,
    pub(crate) user: String,
    pub(crate) password: String,
    /// The cost of its password hashes, when the run set it.
    pub(crate) kdf: Option<KdfParams>,
    guard: Guard,
}

#[derive(Debug)]
enum Guard {
    InProcess { server: Handle, cluster: Option<Box<TestCluster>>, hsms: usize },
    Dev(DevChild),
    Target,
}

impl Started {
    /// `hsms` separate connections (HTTP/2 connections) to the first HSM.
    pub(crate) async fn connect(&self, connections: usize) -> anyhow::Result<Vec<HsmClient>> {
        let mut clients = Vec::with_capacity(connections);
        for _ in 0..connections {
            clients.push(HsmClient::connect(&self.config).await?);
        }
        Ok(clients)
    }

    /// The resident memory of the process that holds the HSM's sessions, in
    /// KiB, and whose it is: the daemon child's, or this process's (which
    /// then includes the client side); `None` for a target.
    pub(crate) fn rss_kib(&self) -> Option<(u64, &'static str)> {
        match &self.guard {
            Guard::InProcess { .. } => rss_kib("/proc/self/status").map(|kib| (kib, "this process (HSM and client)")),
            Guard::Dev(dev) => rss_kib(&format!("/proc/{}/status", dev.child.id())).map(|kib| (kib, "hsm-daemon")),
            Guard::Target => None,
        }
    }

    pub(crate) fn is_target(&self) -> bool {
        matches!(self.guard, Guard::Target)
    }

    /// Stops what the run started and waits until it has.
    pub(crate) async fn stop(mut self) {
        match &mut self.guard {
            Guard::InProcess { server, cluster, hsms } => {
                if let Some(mut cluster) = cluster.take() {
                    let hsms = *hsms;
                    let stopped = server.spawn(async move {
                        for i in 0..hsms {
                            cluster.stop(i).await;
                        }
                    });
                    if let Err(e) = stopped.await {
                        eprintln!("hsm-bench: stopping the in-process HSMs: {e}");
                    }
                }
            }
            Guard::Dev(dev) => dev.stop(),
            Guard::Target => {}
        }
    }
}

/// Creates the bench's crypto user on every HSM, as the admin.
async fn create_bench_user(config: &ClientConfig) -> anyhow::Result<()> {
    let cluster = Cluster::connect(config).await?;
    let admin = cluster.login("admin", Role::Admin, ADMIN_PASSWORD).await.context("logging in as the admin")?;
    let created = admin.create_user(CreateUser::new(BENCH_USER, Role::CryptoUser, BENCH_PASSWORD)).await?;
    if created.completion() != Completion::Full {
        bail!("the bench user was not created on every HSM");
    }
    admin.logout().await?;
    Ok(())
}

/// `hsm-daemon dev` running in a temporary directory of its own.
#[derive(Debug)]
struct DevChild {
    child: Child,
    dir: tempfile::TempDir,
}

impl DevChild {
    /// Spawns it (activated, with `hsms` HSMs, the session limit and the
    /// KDF cost) and waits until its `client.env` appears.
    async fn spawn(daemon: &Path, hsms: usize, max_sessions: usize, kdf: Kdf) -> anyhow::Result<DevChild> {
        let dir = tempfile::Builder::new().prefix("hsm-bench-dev-").tempdir()?;
        let log_path = dir.path().join("daemon.log");
        let mut command = dev_command(daemon, dir.path(), kdf);
        command
            .args(["--hsms", &hsms.to_string(), "--admin-password", ADMIN_PASSWORD])
            .args(["--max-sessions", &max_sessions.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log_path)?);
        let child = command.spawn().with_context(|| format!("starting {}", daemon.display()))?;
        let mut dev = DevChild { child, dir };
        let env = dev.dir.path().join("client.env");
        let started = Instant::now();
        while !env.exists() {
            if let Some(status) = dev.child.try_wait()? {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("hsm-daemon dev exited ({status}) before serving:\n{log}");
            }
            if started.elapsed() > DEV_START_TIMEOUT {
                bail!("hsm-daemon dev did not write client.env within {DEV_START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(dev)
    }

    /// Kills the daemon and reaps it. Its state is thrown away with the
    /// directory, so there is nothing to shut down gracefully for.
    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for DevChild {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `hsm-daemon dev --dir DIR` with key quotas off (key generation keeps
/// every pair it makes; `keys-scale` holds a million), without the caller's
/// `HSM_*` settings (they would change what is measured), and with the
/// cheapest password hashing for [`Kdf::Testing`].
pub(crate) fn dev_command(daemon: &Path, dir: &Path, kdf: Kdf) -> Command {
    let mut command = Command::new(daemon);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HSM_") {
            command.env_remove(name);
        }
    }
    command.arg("dev").arg("--dir").arg(dir).args(["--key-quota", "off"]);
    if kdf == Kdf::Testing {
        command.args(["--kdf-memory-kib", "8", "--kdf-iterations", "1", "--kdf-parallelism", "1"]);
    }
    command
}

/// `hsm-daemon` as given, or beside this executable (where cargo builds it).
pub(crate) fn daemon_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(path) => path.to_owned(),
        None => std::env::current_exe()?.with_file_name("hsm-daemon"),
    };
    if !path.is_file() {
        bail!(
            "--cluster dev: no hsm-daemon at {}; build it (cargo build --release -p hsm-daemon) or pass --daemon-bin PATH",
            path.display()
        );
    }
    Ok(path)
}

/// `VmRSS` of a `/proc/PID/status` file, in KiB.
pub(crate) fn rss_kib(status_file: &str) -> Option<u64> {
    let status = std::fs::read_to_string(status_file).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_resident_size() {
        assert!(rss_kib("/proc/self/status").is_some_and(|kib| kib > 0));
        assert_eq!(rss_kib("/proc/self/no-such-file"), None);
    }
}
