//! Fake HSMs for Rust test suites: whole clusters inside the test process.
//!
//! [`TestCluster`] starts N HSMs of one cluster on free 127.0.0.1 ports, over
//! real TLS with a CA made for the cluster, each with its own store (in a
//! temporary directory, so that a stopped HSM restarts with its state), and
//! every other HSM as a peer for background sync. It hands back a connected
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

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hsm_client::{ClientConfig, Cluster, CreateUser, HsmClient, Role, Session};
use rand::rngs::StdRng;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::{
    DaemonConfig, Membership, TlsSettings, Transport,
    clock::ManualClock,
    config::Storage,
    determinism::{self, Stream},
    metrics::{Endpoint, Metrics},
    model::{
        ClusterId, ClusterIdentity, ClusterMode, HsmId, HsmIdentity, HsmType, KdfParams, KeyQuotas, Limits, Password,
    },
    pki::{self, CertifiedKey},
    seed::{Seed, SeedPlan},
    store::{Backing, MasterKey},
};

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
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), crate::ServeError>>>,
}

impl TestHsm {
    /// Starts an HSM and connects a client to it.
    pub async fn start(options: Options) -> TestHsm {
        let mut rng = determinism::rng(options.deterministic, Stream::Cluster, 0);
        let cluster = Shared::new(&mut rng, &options);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let member = Member {
            index: 1,
            hsm_id: HsmId::generate(&mut rng),
            backing: Backing::Memory,
            master_key: MasterKey::generate().expect("key").to_hex(),
        };
        let hsm = TestHsm::serve(&cluster, &member, listener, Vec::new(), &options).await;
        create_users(&hsm.config, &options).await;
        hsm
    }

    /// Serves one HSM of `cluster` on `listener`, with `peers` to sync with.
    async fn serve(
        cluster: &Shared,
        member: &Member,
        listener: TcpListener,
        peers: Vec<String>,
        options: &Options,
    ) -> TestHsm {
        let mut rng = determinism::rng(options.deterministic, Stream::Identity, member.index);
        let address = listener.local_addr().expect("address").to_string();
        let mut hsm = HsmIdentity::generate(&mut rng, address.clone(), options.mode);
        hsm.id = member.hsm_id.clone();
        let ca = cluster.ca.clone();
        let server_cert =
            pki::issue_server(&ca, hsm.id.as_str(), &["localhost".into(), "127.0.0.1".into()]).expect("server cert");
        let clock = Arc::new(ManualClock::new());
        let client_ca = options.mtls.then(|| pki::generate_ca("cluster-clients").expect("client CA"));
        let config = DaemonConfig {
            cluster: ClusterIdentity { id: cluster.id.clone(), hsm_type: HsmType::Hsm2mMedium, mode: options.mode },
            hsm,
            limits: Limits {
                max_users: options.max_users,
                max_sessions: options.max_sessions,
                session_idle_timeout: options.session_idle_timeout,
                keys: options.key_quotas,
            },
            kdf: options.kdf,
            // A seed that sets the admin password replaces this one.
            admin_password: (options.activated && !options.seed.as_ref().is_some_and(|s| s.sets_admin_password()))
                .then(|| Password::parse("admin_password", &options.admin_password).expect("admin password")),
            appliance_password: Password::parse("appliance", APPLIANCE_PASSWORD).expect("password"),
            transport: Transport::Tls(TlsSettings {
                server: server_cert,
                client_ca_pem: client_ca.as_ref().map(|c| c.cert_pem.clone()),
                require_client_cert: options.require_client_cert,
            }),
            clock: Arc::clone(&clock) as Arc<dyn crate::clock::Clock>,
            storage: Storage {
                backing: member.backing.clone(),
                master_key: MasterKey::from_hex(&member.master_key).expect("master key"),
            },
            membership: Membership {
                hsm_index: member.index,
                masking_key: Some(MasterKey::from_hex(&cluster.masking_key).expect("masking key")),
                masking_origin: None,
                peers,
                clone_from: None,
                ca_pem: Some(ca.cert_pem.clone()),
                sync_interval: options.sync_interval,
            },
            seed: cluster.seed.clone(),
            deterministic: options.deterministic,
            faults: options.faults,
            drain_timeout: crate::config::DEFAULT_DRAIN_TIMEOUT,
            connections: options.connections,
        };
        let (metrics, metrics_address, metrics_stop) = if options.metrics {
            let metrics = Metrics::new();
            let endpoint = Endpoint::bind(SocketAddr::from(([127, 0, 0, 1], 0)), Arc::clone(&metrics))
                .await
                .expect("metrics port");
            let address = endpoint.address();
            let (stop, stopped) = oneshot::channel::<()>();
            tokio::spawn(endpoint.serve(async {
                stopped.await.ok();
            }));
            (Some(metrics), Some(address), Some(stop))
        } else {
            (None, None, None)
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let mut prepared = crate::Prepared::new(config).await?;
            if let Some(metrics) = metrics {
                prepared.set_metrics(metrics);
            }
            prepared
                .serve(listener, async {
                    stopped.await.ok();
                })
                .await
        });
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
        let client = match HsmClient::connect(&client_config).await {
            Ok(client) => client,
            Err(e) if server.is_finished() => panic!("the HSM did not start: {:?} ({e})", server.await),
            Err(e) => panic!("connect: {e}"),
        };
        let config = ClientConfig::new(vec![address.clone()], ca.cert_pem.clone()).expect("client config");
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
            stop: Some(stop),
            server: Some(server),
        }
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
    /// Made once; every HSM starts from it.
    seed: Option<Arc<SeedPlan>>,
}

impl Shared {
    fn new(rng: &mut StdRng, options: &Options) -> Self {
        let id = match options.seed.as_ref().and_then(|s| s.cluster_id()) {
            Some(id) => id.clone(),
            None => ClusterId::generate(rng),
        };
        let ca = pki::generate_ca(id.as_str()).expect("CA");
        let masking_key = MasterKey::generate().expect("masking key").to_hex().to_string();
        let seed = options
            .seed
            .as_ref()
            .map(|seed| Arc::new(seed.plan(&options.kdf, options.deterministic).expect("seed plan")));
        Shared { id, ca, masking_key, seed }
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
        let mut rng = determinism::rng(options.deterministic, Stream::Cluster, 0);
        let shared = Shared::new(&mut rng, &options);
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
        create_users(&cluster.config(), &cluster.options).await;
        cluster
    }

    /// A cluster-aware client of every HSM, as an application has it.
    pub async fn client(&self) -> Cluster {
        Cluster::connect(&self.config()).await.expect("cluster client")
    }

    /// The cluster CA's certificate (PEM), which clients trust.
    pub fn ca_pem(&self) -> &str {
        &self.shared.ca.cert_pem
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
