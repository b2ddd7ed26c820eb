//! Harness for tests that run real HSMs.
//!
//! # Layout
//! - [`TestHsm`]: one HSM served in-process over real TLS on a free
//!   127.0.0.1 port, with a connected client; dropping it stops the HSM.
//! - [`TestCluster`]: several HSMs of one cluster, in-process, syncing with
//!   each other; stop and restart any of them.
//! - [`process`]: `hsm-daemon init` and `hsm-daemon run` as child processes.
//! - [`DevProcess`]: `hsm-daemon dev` as a child process, with `hsm-cli`
//!   runs against it.
//! - `tests/`: one file per area (permissions, users, tls, cli).

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Arc, OnceLock},
    time::Duration,
};

pub mod process;

use hsm_client::{ClientConfig, HsmClient, Role, Session};
use hsm_daemon::{
    DaemonConfig, Membership, TlsSettings, Transport,
    clock::ManualClock,
    config::Storage,
    model::{
        ClusterId, ClusterIdentity, ClusterMode, HsmId, HsmIdentity, HsmType, KdfParams, KeyQuotas, Limits, Password,
    },
    pki::{self, CertifiedKey},
    store::{Backing, MasterKey},
};
use rand::{SeedableRng, rngs::StdRng};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// The admin password of an HSM started activated.
pub const ADMIN_PASSWORD: &str = "admin-pass";
/// The appliance user's password on test HSMs.
pub const APPLIANCE_PASSWORD: &str = "appliance-secret-1";

/// How to start a [`TestHsm`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Start activated with [`ADMIN_PASSWORD`].
    pub activated: bool,
    pub max_users: usize,
    pub session_idle_timeout: Duration,
    pub key_quotas: KeyQuotas,
    /// Accept client certificates from a CA made for the test; with
    /// `require_client_cert`, refuse connections without one.
    pub mtls: bool,
    pub require_client_cert: bool,
    /// How often the HSMs of a [`TestCluster`] sync in the background.
    pub sync_interval: Duration,
    /// Serve fault injection, snapshots and resets (`--faults`).
    pub faults: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            activated: true,
            max_users: 1_024,
            session_idle_timeout: Duration::from_secs(600),
            key_quotas: KeyQuotas::HSM2M,
            mtls: false,
            require_client_cert: false,
            sync_interval: Duration::from_millis(100),
            faults: false,
        }
    }
}

impl Options {
    pub fn unactivated() -> Self {
        Options { activated: false, ..Options::default() }
    }
}

/// One HSM running in this process.
#[derive(Debug)]
pub struct TestHsm {
    pub client: HsmClient,
    /// A config that trusts the HSM (without a client certificate).
    pub config: ClientConfig,
    pub ca: CertifiedKey,
    /// The CA whose certificates the HSM accepts for mTLS, if any.
    pub client_ca: Option<CertifiedKey>,
    pub address: String,
    /// The HSM's clock: stands still until a test advances it.
    pub clock: Arc<ManualClock>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), hsm_daemon::ServeError>>>,
}

impl TestHsm {
    /// Starts an HSM and connects a client to it.
    pub async fn start(options: Options) -> TestHsm {
        let mut rng = StdRng::from_os_rng();
        let cluster = Shared::new(&mut rng);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let member = Member {
            index: 1,
            hsm_id: HsmId::generate(&mut rng),
            backing: Backing::Memory,
            master_key: MasterKey::generate().expect("key").to_hex(),
        };
        TestHsm::serve(&cluster, &member, listener, Vec::new(), &options).await
    }

    /// Serves one HSM of `cluster` on `listener`, with `peers` to sync with.
    async fn serve(
        cluster: &Shared,
        member: &Member,
        listener: TcpListener,
        peers: Vec<String>,
        options: &Options,
    ) -> TestHsm {
        let mut rng = StdRng::from_os_rng();
        let address = listener.local_addr().expect("address").to_string();
        let mut hsm = HsmIdentity::generate(&mut rng, address.clone(), ClusterMode::Fips);
        hsm.id = member.hsm_id.clone();
        let ca = cluster.ca.clone();
        let server_cert =
            pki::issue_server(&ca, hsm.id.as_str(), &["localhost".into(), "127.0.0.1".into()]).expect("server cert");
        let clock = Arc::new(ManualClock::new());
        let client_ca = options.mtls.then(|| pki::generate_ca("cluster-clients").expect("client CA"));
        let config = DaemonConfig {
            cluster: ClusterIdentity {
                id: cluster.id.clone(),
                hsm_type: HsmType::Hsm2mMedium,
                mode: ClusterMode::Fips,
            },
            hsm,
            limits: Limits {
                max_users: options.max_users,
                max_sessions: 256,
                session_idle_timeout: options.session_idle_timeout,
                keys: options.key_quotas,
            },
            kdf: KdfParams::TESTING,
            admin_password: options.activated.then(|| Password::parse("admin", ADMIN_PASSWORD).expect("password")),
            appliance_password: Password::parse("appliance", APPLIANCE_PASSWORD).expect("password"),
            transport: Transport::Tls(TlsSettings {
                server: server_cert,
                client_ca_pem: client_ca.as_ref().map(|c| c.cert_pem.clone()),
                require_client_cert: options.require_client_cert,
            }),
            clock: Arc::clone(&clock) as Arc<dyn hsm_daemon::clock::Clock>,
            storage: Storage {
                backing: member.backing.clone(),
                master_key: MasterKey::from_hex(&member.master_key).expect("master key"),
            },
            membership: Membership {
                hsm_index: member.index,
                masking_key: Some(MasterKey::from_hex(&cluster.masking_key).expect("masking key")),
                peers,
                clone_from: None,
                ca_pem: Some(ca.cert_pem.clone()),
                sync_interval: options.sync_interval,
            },
            faults: options.faults,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(hsm_daemon::serve(config, listener, async {
            stopped.await.ok();
        }));
        let mut client_config = ClientConfig::new(vec![address.clone()], ca.cert_pem.clone()).expect("client config");
        if let Some(client_ca) = &client_ca
            && options.require_client_cert
        {
            let cert = pki::issue_client(client_ca, "test-client").expect("client cert");
            client_config = client_config.with_client_identity(cert.cert_pem, cert.key_pem.to_string());
        }
        let client = match HsmClient::connect(&client_config).await {
            Ok(client) => client,
            Err(e) if server.is_finished() => panic!("the HSM did not start: {:?} ({e})", server.await),
            Err(e) => panic!("connect: {e}"),
        };
        let config = ClientConfig::new(vec![address.clone()], ca.cert_pem.clone()).expect("client config");
        TestHsm { client, config, ca, client_ca, address, clock, stop: Some(stop), server: Some(server) }
    }

    pub async fn login(&self, username: &str, role: Role, password: &str) -> Session {
        self.client.login(username, role, password).await.unwrap_or_else(|e| panic!("login {username}: {e}"))
    }

    pub async fn admin(&self) -> Session {
        self.login("admin", Role::Admin, ADMIN_PASSWORD).await
    }

    /// Creates a crypto user as the admin and logs in as that user.
    pub async fn crypto_user(&self, username: &str, password: &str) -> Session {
        let admin = self.admin().await;
        admin.create_user(username, Role::CryptoUser, password).await.expect("create crypto user");
        admin.logout().await.expect("logout");
        self.login(username, Role::CryptoUser, password).await
    }

    /// Stops the HSM and waits until it has shut down.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for TestHsm {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
    }
}

/// What the HSMs of one cluster share.
#[derive(Debug, Clone)]
struct Shared {
    id: ClusterId,
    ca: CertifiedKey,
    /// Hex, so that each HSM start gets its own copy of the key.
    masking_key: String,
}

impl Shared {
    fn new(rng: &mut StdRng) -> Self {
        let id = ClusterId::generate(rng);
        let ca = pki::generate_ca(id.as_str()).expect("CA");
        let masking_key = MasterKey::generate().expect("masking key").to_hex().to_string();
        Shared { id, ca, masking_key }
    }
}

/// What one HSM of a cluster keeps across restarts.
#[derive(Debug)]
struct Member {
    index: u32,
    /// The store belongs to this HSM id.
    hsm_id: HsmId,
    backing: Backing,
    master_key: zeroize::Zeroizing<String>,
}

/// Several HSMs of one cluster, in-process over real TLS on 127.0.0.1,
/// each with its own store (in a temporary directory, so that a restarted
/// HSM keeps its state) and every other HSM as a peer for background sync.
#[derive(Debug)]
pub struct TestCluster {
    shared: Shared,
    options: Options,
    members: Vec<Member>,
    addresses: Vec<String>,
    hsms: Vec<Option<TestHsm>>,
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts `n` HSMs (activated with [`ADMIN_PASSWORD`] unless
    /// `options.activated` is false).
    pub async fn start(n: usize, options: Options) -> TestCluster {
        let mut rng = StdRng::from_os_rng();
        let shared = Shared::new(&mut rng);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut listeners = Vec::new();
        let mut members = Vec::new();
        for i in 0..n {
            listeners.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
            let data = dir.path().join(format!("hsm-{}", i + 1));
            std::fs::create_dir_all(&data).expect("data dir");
            members.push(Member {
                index: u32::try_from(i + 1).expect("index"),
                hsm_id: HsmId::generate(&mut rng),
                backing: Backing::Dir(data),
                master_key: MasterKey::generate().expect("master key").to_hex(),
            });
        }
        let addresses: Vec<String> = listeners.iter().map(|l| l.local_addr().expect("address").to_string()).collect();
        let mut cluster = TestCluster { shared, options, members, addresses, hsms: Vec::new(), _dir: dir };
        for (i, listener) in listeners.into_iter().enumerate() {
            let hsm = cluster.serve(i, listener).await;
            cluster.hsms.push(Some(hsm));
        }
        cluster
    }

    async fn serve(&self, i: usize, listener: TcpListener) -> TestHsm {
        let peers = self.addresses.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, a)| a.clone()).collect();
        TestHsm::serve(&self.shared, &self.members[i], listener, peers, &self.options).await
    }

    /// A client config listing every HSM.
    pub fn config(&self) -> ClientConfig {
        ClientConfig::new(self.addresses.clone(), self.shared.ca.cert_pem.clone()).expect("client config")
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.addresses.clone()
    }

    /// HSM `i` (0-based); panics if it is stopped.
    pub fn hsm(&self, i: usize) -> &TestHsm {
        self.hsms[i].as_ref().unwrap_or_else(|| panic!("HSM {i} is stopped"))
    }

    /// Stops HSM `i` and waits until it has shut down: its port then refuses
    /// connections.
    pub async fn stop(&mut self, i: usize) {
        if let Some(hsm) = self.hsms[i].take() {
            hsm.shutdown().await;
        }
    }

    /// Starts HSM `i` again on its port, with the state it had.
    pub async fn restart(&mut self, i: usize) {
        self.stop(i).await;
        let listener = TcpListener::bind(&self.addresses[i]).await.expect("rebind the HSM's port");
        let hsm = self.serve(i, listener).await;
        self.hsms[i] = Some(hsm);
    }

    /// Each running HSM's sync digest, in order (`None` for a stopped one),
    /// read as the appliance user.
    pub async fn digests(&self) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::new();
        for hsm in &self.hsms {
            match hsm {
                None => out.push(None),
                Some(hsm) => {
                    let au = hsm.login("app_user", Role::Appliance, APPLIANCE_PASSWORD).await;
                    out.push(Some(au.sync_status().await.expect("sync status").digest));
                    au.logout().await.expect("logout");
                }
            }
        }
        out
    }
}

/// The directory holding this workspace's built binaries (`target/debug`).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable");
        // target/debug/deps/<test> -> target/debug
        let dir = exe.parent().and_then(Path::parent).expect("target dir").to_owned();
        for bin in ["hsm-daemon", "hsm-cli"] {
            assert!(
                dir.join(bin).exists(),
                "{bin} is not built in {}: run the workspace tests (`cargo test --workspace`), which build it",
                dir.display()
            );
        }
        dir
    })
}

/// `hsm-daemon dev` running as a child process; killed on drop.
#[derive(Debug)]
pub struct DevProcess {
    pub dir: tempfile::TempDir,
    pub endpoint: String,
    pub ca_cert: PathBuf,
    /// What the daemon printed on standard output before it was ready.
    pub banner: String,
    child: Child,
}

impl DevProcess {
    /// Starts `hsm-daemon dev --dir <temp> <args>` with a cheap KDF, waits for
    /// its banner and reads `client.env`.
    pub fn start(args: &[&str]) -> DevProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(bin_dir().join("hsm-daemon"))
            .arg("dev")
            .arg("--dir")
            .arg(dir.path())
            .args(["--kdf-memory-kib", "8", "--kdf-iterations", "1"])
            .args(args)
            .env_remove("HSM_ADMIN_PASSWORD")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hsm-daemon");
        let stdout = child.stdout.take().expect("stdout");
        let mut banner = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("daemon output");
            banner.push_str(&line);
            banner.push('\n');
            if line.starts_with("Press Ctrl-C") {
                break;
            }
        }
        assert!(banner.contains("listening on"), "hsm-daemon dev did not start: {banner}");
        let env = std::fs::read_to_string(dir.path().join("client.env")).expect("client.env");
        let value = |key: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
                .unwrap_or_else(|| panic!("{key} missing from client.env: {env}"))
                .to_owned()
        };
        let endpoint = value("HSM_ENDPOINTS");
        let ca_cert = PathBuf::from(value("HSM_CA_CERT"));
        DevProcess { dir, endpoint, ca_cert, banner, child }
    }

    /// Runs `hsm-cli <args>` against this HSM (through `HSM_ENDPOINTS` and
    /// `HSM_CA_CERT`, as a user who loaded client.env), with extra
    /// environment variables.
    pub fn cli(&self, env: &[(&str, &str)], args: &[&str]) -> CliOutput {
        self.cli_with_stdin(env, args, None)
    }

    pub fn cli_with_stdin(&self, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> CliOutput {
        hsm_cli(&self.endpoint, &self.ca_cert, env, args, stdin)
    }
}

/// Runs `hsm-cli <args>` as a user who loaded a `client.env` with these
/// endpoints (comma-separated) and CA, with none of the caller's CloudHSM
/// settings and with extra environment variables. Blocks: from async tests,
/// call it on a blocking thread so the runtime keeps serving the HSMs.
pub fn hsm_cli(endpoints: &str, ca: &Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> CliOutput {
    let mut command = Command::new(bin_dir().join("hsm-cli"));
    command
        .args(args)
        .env("HSM_ENDPOINTS", endpoints)
        .env("HSM_CA_CERT", ca)
        .env_remove("CLOUDHSM_ROLE")
        .env_remove("CLOUDHSM_PIN")
        .env_remove("HSM_DISABLE_KEY_AVAILABILITY_CHECK")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn hsm-cli");
    if let Some(input) = stdin {
        use std::io::Write as _;
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    }
    CliOutput::from(child.wait_with_output().expect("hsm-cli output"))
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one `hsm-cli` run printed.
#[derive(Debug)]
pub struct CliOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// The JSON envelope on standard output.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// Asserts `error_code` 0 and exit status 0; returns `data`.
    pub fn ok(&self) -> serde_json::Value {
        let json = self.json();
        assert!(self.success && json["error_code"] == 0, "expected success, got: {}{}", self.stdout, self.stderr);
        json["data"].clone()
    }

    /// Asserts `error_code` 1 and a failing exit status; returns the message.
    pub fn err(&self) -> String {
        let json = self.json();
        assert!(!self.success && json["error_code"] == 1, "expected failure, got: {}", self.stdout);
        json["data"].as_str().expect("error message").to_owned()
    }
}

impl From<Output> for CliOutput {
    fn from(o: Output) -> Self {
        CliOutput {
            success: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}
