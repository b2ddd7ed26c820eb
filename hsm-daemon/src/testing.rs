//! Fake HSMs for Rust test suites: whole clusters inside the test process.
//!
//! [`TestCluster`] starts N HSMs of one cluster on free 127.0.0.1 ports, over
//! real TLS with a CA made for the cluster, each with its own store (in a
//! temporary directory, so that a stopped HSM restarts with its state), and
//! every other HSM as a peer for background sync. The cluster is a
//! [`LocalCluster`] in that directory, made as `hsm-daemon dev` makes one;
//! the options then tune each HSM's configuration. It hands back a connected
//! cluster-aware client ([`TestCluster::client`]) and the CA. Dropping it
//! shuts every HSM down. Clusters share nothing, so many run in parallel in
//! one test binary. Passwords are hashed with [`KdfParams::TESTING`] unless
//! [`Options::kdf`] says otherwise, so that starting and logging in stay
//! fast. [`TestHsm`] is one HSM of its own cluster.
//!
//! The HSMs' clocks are [`ManualClock`]s: session expiry happens only when a
//! test advances them.
//!
//! # Layout
//! - [`Options`]: how to start (activation, pre-created users, limits, TLS,
//!   sync interval, KDF cost, fault injection, metrics).
//! - [`TestCluster`]: several HSMs of one cluster; stop and restart any.
//! - [`TestHsm`]: one HSM with a single-HSM client.
//! - [`TestControlPlane`]: the CloudHSM v2 API with real HSMs behind it.
//!
//! # Example
//! ```
//! use hsm_client::Role;
//! use hsm_daemon::testing::{ADMIN_PASSWORD, Options, TestCluster};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() {
//! let options = Options { users: vec![("alice".into(), Role::CryptoUser, "alice-pass".into())], ..Options::default() };
//! let cluster = TestCluster::start(3, options).await;
//! let alice = cluster.client().await.login("alice", Role::CryptoUser, "alice-pass").await.unwrap();
//! assert!(alice.unavailable().is_empty(), "logged in on all three HSMs");
//! let admin = cluster.hsm(0).login("admin", Role::Admin, ADMIN_PASSWORD).await;
//! assert_eq!(admin.list_users().await.unwrap().len(), 3); // admin, app_user, alice
//! # }
//! ```

mod control_plane;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hsm_client::{ClientConfig, Cluster, CreateUser, HsmClient, Role, Session};
use tokio::sync::oneshot;

use crate::{
    DaemonConfig, Transport,
    clock::{Clock, ManualClock},
    cluster::{Durability, Launch, LocalCluster, OpenedHsm},
    metrics::{Endpoint, Metrics},
    model::{ClusterMode, KdfParams, KeyQuotas, Limits, Password},
    pki::{self, CertifiedKey},
    seed::Seed,
    settings::Settings,
};

pub use self::control_plane::TestControlPlane;

/// The admin password of an HSM started activated.
pub const ADMIN_PASSWORD: &str = "admin-pass";
/// The appliance user's password on test HSMs.
pub const APPLIANCE_PASSWORD: &str = "appliance-secret-1";

/// How to start a [`TestHsm`] or a [`TestCluster`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Start activated with [`ADMIN_PASSWORD`] (or `admin_password`).
    pub activated: bool,
    /// The admin's password when activated.
    pub admin_password: String,
    /// Users created on every HSM once the cluster is up: (name, role,
    /// password). Needs `activated`.
    pub users: Vec<(String, Role, String)>,
    /// The Argon2id cost of password hashes ([`KdfParams::TESTING`] by
    /// default; [`KdfParams::DEFAULT`] to measure what production costs).
    pub kdf: KdfParams,
    pub max_users: usize,
    /// Open sessions per HSM (256 by default; benchmarks that hold many
    /// sessions raise it).
    pub max_sessions: usize,
    pub session_idle_timeout: Duration,
    /// The HSM type's quotas by default; [`KeyQuotas::OFF`] for none.
    pub key_quotas: KeyQuotas,
    /// Accept client certificates from a CA made for the test; with
    /// `require_client_cert`, refuse connections without one.
    pub mtls: bool,
    pub require_client_cert: bool,
    /// How often the HSMs of a [`TestCluster`] sync in the background.
    pub sync_interval: Duration,
    /// Serve fault injection, snapshots and resets (`--faults`; see
    /// `hsm_client::faults`).
    pub faults: bool,
    /// A seed file ([`crate::seed::Seed`]): the users and keys every HSM
    /// starts with, made once for the cluster. If it sets the admin
    /// password, `admin_password` must be that password.
    pub seed: Option<Arc<Seed>>,
    /// Reproducible HSM ids, serial numbers, key material and session tokens
    /// (`--deterministic`).
    pub deterministic: Option<u64>,
    /// Serve each HSM's Prometheus metrics on a free 127.0.0.1 port
    /// ([`TestHsm::metrics_address`]; `--metrics-addr`).
    pub metrics: bool,
    /// Connection limit, handshake and idle timeouts, message size.
    pub connections: crate::config::ConnectionLimits,
    /// A client certificate the harness's own clients ([`TestHsm::client`],
    /// so [`TestHsm::login`], restarts, [`TestCluster::digests`]) present:
    /// one chained to a trust anchor the test registers keeps them working
    /// under mTLS enforcement.
    pub client_identity: Option<CertifiedKey>,
    /// The cluster's mode: FIPS by default, as CloudHSM's; NON_FIPS adds
    /// triple DES.
    pub mode: ClusterMode,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            activated: true,
            admin_password: ADMIN_PASSWORD.to_owned(),
            users: Vec::new(),
            kdf: KdfParams::TESTING,
            max_users: 1_024,
            max_sessions: 256,
            session_idle_timeout: Duration::from_secs(600),
            key_quotas: KeyQuotas::HSM2M,
            mtls: false,
            require_client_cert: false,
            sync_interval: Duration::from_millis(100),
            faults: false,
            seed: None,
            deterministic: None,
            metrics: false,
            connections: crate::config::ConnectionLimits::default(),
            client_identity: None,
            mode: ClusterMode::Fips,
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
    /// Where its metrics are served (`http://ADDRESS/metrics`), with
    /// [`Options::metrics`]; a restarted HSM gets a new port.
    pub metrics_address: Option<SocketAddr>,
    /// Dropped with the HSM, which stops its metrics endpoint.
    _metrics_stop: Option<oneshot::Sender<()>>,
    admin_password: String,
    /// The cluster of a [`TestHsm::start`]: dropping it stops the HSM. An
    /// HSM of a [`TestCluster`] has none (the cluster owns its HSMs).
    own: Option<Box<Fixture>>,
}

impl TestHsm {
    /// Starts an HSM and connects a client to it.
    pub async fn start(options: Options) -> TestHsm {
        let mut fixture = Fixture::create(1, options, true);
        let started = fixture.open(1).await;
        let mut hsm = fixture.serve(vec![started]).await.remove(0);
        create_users(&hsm.config, &fixture.options).await;
        hsm.own = Some(Box::new(fixture));
        hsm
    }

    pub async fn login(&self, username: &str, role: Role, password: &str) -> Session {
        self.client.login(username, role, password).await.unwrap_or_else(|e| panic!("login {username}: {e}"))
    }

    /// The admin, logged in with [`ADMIN_PASSWORD`].
    /// The admin, logged in with the options' admin password.
    pub async fn admin(&self) -> Session {
        self.login("admin", Role::Admin, &self.admin_password).await
    }

    /// Creates a crypto user as the admin and logs in as that user.
    pub async fn crypto_user(&self, username: &str, password: &str) -> Session {
        let admin = self.admin().await;
        admin.create_user(CreateUser::new(username, Role::CryptoUser, password)).await.expect("create crypto user");
        admin.logout().await.expect("logout");
        self.login(username, Role::CryptoUser, password).await
    }

    /// Stops the HSM and waits until it has shut down.
    pub async fn shutdown(mut self) {
        if let Some(mut own) = self.own.take() {
            own.cluster.shutdown().await.expect("server result");
        }
    }
}

/// Several HSMs of one cluster, in-process over real TLS on 127.0.0.1,
/// each with its own store (in a temporary directory, so that a restarted
/// HSM keeps its state) and every other HSM as a peer for background sync.
#[derive(Debug)]
pub struct TestCluster {
    /// HSM `i` at `i` (0-based, as the methods take it); `None` when stopped.
    hsms: Vec<Option<TestHsm>>,
    fixture: Fixture,
}

impl TestCluster {
    /// Starts `n` HSMs (activated with [`ADMIN_PASSWORD`] unless
    /// `options.activated` is false).
    pub async fn start(n: usize, options: Options) -> TestCluster {
        let mut fixture = Fixture::create(n, options, false);
        let mut opened = Vec::new();
        for index in 1..=n {
            opened.push(fixture.open(index).await);
        }
        let hsms = fixture.serve(opened).await.into_iter().map(Some).collect();
        let cluster = TestCluster { hsms, fixture };
        create_users(&cluster.config(), &cluster.fixture.options).await;
        cluster
    }

    /// A cluster-aware client of every HSM, as an application has it.
    pub async fn client(&self) -> Cluster {
        Cluster::connect(&self.config()).await.expect("cluster client")
    }

    /// The cluster CA's certificate (PEM), which clients trust.
    pub fn ca_pem(&self) -> &str {
        self.fixture.cluster.ca_pem()
    }

    /// A client config listing every HSM.
    pub fn config(&self) -> ClientConfig {
        ClientConfig::new(self.endpoints(), self.ca_pem().to_owned()).expect("client config")
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.fixture.cluster.addresses()
    }

    /// HSM `i` (0-based); panics if it is stopped.
    pub fn hsm(&self, i: usize) -> &TestHsm {
        self.hsms[i].as_ref().unwrap_or_else(|| panic!("HSM {i} is stopped"))
    }

    /// Stops HSM `i` and waits until it has shut down: its port then refuses
    /// connections.
    pub async fn stop(&mut self, i: usize) {
        if self.hsms[i].take().is_some() {
            self.fixture.cluster.stop(i + 1).await.expect("server result");
        }
    }

    /// Starts HSM `i` again on its port, with the state it had.
    pub async fn restart(&mut self, i: usize) {
        self.stop(i).await;
        let started = self.fixture.open(i + 1).await;
        self.hsms[i] = self.fixture.serve(vec![started]).await.pop();
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

/// A cluster in a temporary directory, and how its HSMs start.
#[derive(Debug)]
struct Fixture {
    cluster: LocalCluster,
    /// Over every HSM's config file: a free port (or the one it had), the
    /// store in memory for a lone [`TestHsm`].
    flags: Settings,
    launch: Launch,
    options: Options,
    /// Dropped last: the HSMs' stores are in it.
    _dir: tempfile::TempDir,
}

/// One HSM opened, and what the harness made for this start of it.
struct Opened {
    hsm: OpenedHsm,
    clock: Arc<ManualClock>,
    client_ca: Option<CertifiedKey>,
    metrics: Option<(SocketAddr, oneshot::Sender<()>)>,
}

impl Fixture {
    /// Writes a cluster of `n` HSMs as `hsm-daemon dev` would; `ephemeral`:
    /// their stores are in memory.
    fn create(n: usize, options: Options, ephemeral: bool) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let (cluster, _) = LocalCluster::builder()
            .hsms(u8::try_from(n).expect("a cluster holds at most 28 HSMs"))
            .cluster_id(options.seed.as_ref().and_then(|s| s.cluster_id()).cloned())
            .mode(Some(options.mode))
            .deterministic(options.deterministic)
            .appliance_password(Password::parse("appliance", APPLIANCE_PASSWORD).expect("password"))
            .durability(Durability::Unsynced)
            .create(&dir.path().join("cluster"))
            .expect("the cluster's files");
        let seed = options
            .seed
            .as_ref()
            .map(|seed| Arc::new(seed.plan(&options.kdf, options.deterministic).expect("seed plan")));
        let launch = Launch {
            // A seed that sets the admin password replaces this one.
            admin_password: (options.activated && !options.seed.as_ref().is_some_and(|s| s.sets_admin_password()))
                .then(|| Password::parse("admin_password", &options.admin_password).expect("admin password")),
            seed,
            control_socket: false,
        };
        let flags = Settings {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ephemeral: ephemeral.then_some(true),
            deterministic: options.deterministic,
            ..Settings::default()
        };
        Fixture { cluster, flags, launch, options, _dir: dir }
    }

    /// Opens HSM `index` (1-based) on the port it had, if it ran before.
    async fn open(&mut self, index: usize) -> Opened {
        let mut flags = self.flags.clone();
        if let Some(address) = self.cluster.address(index) {
            flags.listen = Some(address);
        }
        let settings = self.cluster.settings(index, &flags).expect("the HSM's settings");
        let options = &self.options;
        let clock = Arc::new(ManualClock::new());
        let client_ca = options.mtls.then(|| pki::generate_ca("cluster-clients").expect("client CA"));
        let mut hsm = OpenedHsm::open_with(&settings, &self.launch, |config| {
            tune(config, options, &clock, client_ca.as_ref());
        })
        .await
        .unwrap_or_else(|e| panic!("the HSM did not start: {e}"));
        let metrics = match options.metrics {
            true => {
                let metrics = Metrics::new();
                let endpoint = Endpoint::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Arc::clone(&metrics))
                    .await
                    .expect("metrics port");
                let address = endpoint.address();
                let (stop, stopped) = oneshot::channel::<()>();
                tokio::spawn(endpoint.serve(async {
                    stopped.await.ok();
                }));
                hsm.set_metrics(metrics);
                Some((address, stop))
            }
            false => None,
        };
        Opened { hsm, clock, client_ca, metrics }
    }

    /// Serves opened HSMs and connects a client to each.
    async fn serve(&mut self, opened: Vec<Opened>) -> Vec<TestHsm> {
        let mut made = Vec::new();
        let mut hsms = Vec::new();
        for Opened { hsm, clock, client_ca, metrics } in opened {
            made.push((hsm.seat().address.to_string(), clock, client_ca, metrics));
            hsms.push(hsm);
        }
        self.cluster.serve(hsms);
        let mut connected = Vec::new();
        for (address, clock, client_ca, metrics) in made {
            connected.push(self.connect(address, clock, client_ca, metrics).await);
        }
        connected
    }

    /// A [`TestHsm`] for the HSM serving at `address`.
    async fn connect(
        &self,
        address: String,
        clock: Arc<ManualClock>,
        client_ca: Option<CertifiedKey>,
        metrics: Option<(SocketAddr, oneshot::Sender<()>)>,
    ) -> TestHsm {
        let ca = self.cluster.material().ca.clone();
        let options = &self.options;
        let mut client_config = ClientConfig::new(vec![address.clone()], ca.cert_pem.clone()).expect("client config");
        if let Some(client_ca) = &client_ca
            && options.require_client_cert
        {
            let cert = pki::issue_client(client_ca, "test-client").expect("client cert");
            client_config = client_config.with_client_identity(cert.cert_pem, cert.key_pem.to_string());
        }
        if let Some(own) = &options.client_identity {
            client_config = client_config.with_client_identity(own.cert_pem.clone(), own.key_pem.to_string());
        }
        let client = HsmClient::connect(&client_config).await.unwrap_or_else(|e| panic!("connect: {e}"));
        let config = ClientConfig::new(vec![address.clone()], ca.cert_pem.clone()).expect("client config");
        let (metrics_address, metrics_stop) = metrics.unzip();
        TestHsm {
            client,
            config,
            ca,
            client_ca,
            address,
            clock,
            metrics_address,
            _metrics_stop: metrics_stop,
            admin_password: options.admin_password.clone(),
            own: None,
        }
    }
}

/// What the options set beyond what the HSM's files and flags do.
fn tune(config: &mut DaemonConfig, options: &Options, clock: &Arc<ManualClock>, client_ca: Option<&CertifiedKey>) {
    config.limits = Limits {
        max_users: options.max_users,
        max_sessions: options.max_sessions,
        session_idle_timeout: options.session_idle_timeout,
        keys: options.key_quotas,
    };
    config.kdf = options.kdf;
    config.clock = Arc::clone(clock) as Arc<dyn Clock>;
    if let Transport::Tls(tls) = &mut config.transport {
        tls.client_ca_pem = client_ca.map(|ca| ca.cert_pem.clone());
        tls.require_client_cert = options.require_client_cert;
    }
    config.membership.sync_interval = options.sync_interval;
    config.faults = options.faults;
    config.connections = options.connections;
}

/// Creates `options.users` on every HSM `config` lists, as the admin,
/// through the cluster client.
async fn create_users(config: &ClientConfig, options: &Options) {
    if options.users.is_empty() {
        return;
    }
    assert!(options.activated, "Options::users needs an activated cluster");
    let cluster = Cluster::connect(config).await.expect("cluster client");
    let admin = cluster.login("admin", Role::Admin, &options.admin_password).await.expect("admin");
    for (name, role, password) in &options.users {
        let created = admin.create_user(CreateUser::new(name, *role, password)).await.expect("create user");
        assert_eq!(created.completion(), hsm_client::Completion::Full, "user {name} on every HSM");
    }
    admin.logout().await.expect("logout");
}
