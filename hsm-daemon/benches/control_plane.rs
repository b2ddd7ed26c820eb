//! The control plane's speed and size: how long `create-hsm` takes to give
//! a test suite an HSM it can reach, and how many clusters one server holds.
//!
//! Measures, in release mode (`cargo bench -p hsm-daemon --bench
//! control_plane`), with a [`ControlServer`] in this process (its HSMs on
//! `127.24X.0.0/16`, port 2223):
//! - `create-cluster`, and `create-hsm` of a new cluster's first HSM from
//!   the call to the first answered unauthenticated `cluster_info()` over
//!   TLS at `EniIp:2223` (trusting `DIR/clusters/<id>/ca.pem`), called
//!   in-process through [`Handler`] and over HTTP (AWS JSON 1.1), under the
//!   daemon's settings (production Argon2id, files synced) and the test
//!   suites' (a cheap KDF, files unsynced): every HSM start hashes three
//!   passwords (the precrypto officer's, the appliance user's, a decoy);
//! - a later HSM of an initialized cluster (it clones the first, and the
//!   cluster is backed up), in-process;
//! - clusters of one HSM each, made until the process's resident memory
//!   passes 1 GiB or [`CAP`] clusters (or one fails): resident memory,
//!   threads, open files and memory maps per cluster, and how `create-cluster` + `create-hsm` slows as
//!   the state grows.
//!
//! `-- latency` or `-- size` runs one part. Prints median, 90th percentile and maximum. This is a benchmark, not a
//! test: nothing here asserts on time.

use std::{
    net::SocketAddr,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use rcgen::{BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use hsm_client::{ClientConfig, HsmClient};
use hsm_daemon::{
    cluster::Durability,
    control::{
        api::{ApiConfig, Handler as _, Operation, RequestContext},
        clock::ShiftedClock,
        plane::{ControlPlane, PlaneConfig, pool::AddressPool},
        server::ControlServer,
    },
    settings::Settings,
};

/// As `hsm-daemon` runs: mimalloc returns freed memory to the system, so
/// resident memory is what is held, not what Argon2 once borrowed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 25;
/// The most clusters the size run makes.
const CAP: usize = 2_000;
/// Where the size run stops: 1 GiB, in the KiB `/proc` counts in.
const GIB_KIB: u64 = 1 << 20;

/// The settings a control plane's HSMs run with.
#[derive(Debug, Clone, Copy)]
enum Profile {
    /// `hsm-daemon dev` and `control-plane`: production Argon2id (19 MiB,
    /// 2 passes), files synced.
    Daemon,
    /// `integration-tests/src/aws.rs`: Argon2id at 8 KiB and one pass,
    /// files unsynced.
    Tests,
}

impl Profile {
    fn name(self) -> &'static str {
        match self {
            Profile::Daemon => "daemon settings",
            Profile::Tests => "test settings",
        }
    }
}

fn main() {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("could not raise the open file limit: {e}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    // `cargo bench ... -- latency` or `-- size` runs one part.
    let only = std::env::args().skip(1).find(|a| a == "latency" || a == "size");
    runtime.block_on(async {
        if only.as_deref() != Some("size") {
            latency().await;
        }
        if only.as_deref() != Some("latency") {
            size(243).await;
        }
    });
}

/// Part 1: `create-cluster` and `create-hsm` to a reachable HSM.
async fn latency() {
    println!("create-hsm to a reachable HSM ({RUNS} runs each; ms)");
    for (block, profile) in [(241, Profile::Daemon), (242, Profile::Tests)] {
        let (server, dir) = start(profile, block).await;
        for http in [false, true] {
            let driver = Driver { server: &server, http };
            let mut created = Vec::new();
            let mut calls = Vec::new();
            let mut reachable = Vec::new();
            for _ in 0..RUNS {
                let run = first_hsm(&driver, dir.path()).await;
                created.push(run.create_cluster);
                calls.push(run.call);
                reachable.push(run.reachable);
                driver.delete(&run.cluster, &run.hsm).await;
            }
            let how = if http { "HTTP" } else { "in-process" };
            report(&format!("create-cluster, {how}, {}", profile.name()), created);
            report(&format!("create-hsm (first), the call, {how}, {}", profile.name()), calls);
            report(&format!("create-hsm (first) to reachable, {how}, {}", profile.name()), reachable);
        }
        let driver = Driver { server: &server, http: false };
        let later: Vec<Duration> = {
            let mut samples = Vec::new();
            for _ in 0..RUNS {
                samples.push(later_hsm(&driver, dir.path()).await);
            }
            samples
        };
        report(&format!("create-hsm (second) to reachable, in-process, {}", profile.name()), later);
        server.stop().await;
    }
}

/// A control plane in a temporary directory, its HSMs on `127.<block>.0.0/16`.
async fn start(profile: Profile, block: u8) -> (ControlServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut plane = PlaneConfig::new(dir.path().to_owned());
    plane.pool = AddressPool::parse(&format!("127.{block}.0.0/16"), 2223).expect("pool");
    match profile {
        Profile::Daemon => plane.durability = Durability::Synced,
        Profile::Tests => {
            plane.durability = Durability::Unsynced;
            plane.hsm_flags = Settings {
                kdf_memory_kib: Some(8),
                kdf_iterations: Some(1),
                kdf_parallelism: Some(1),
                ..Settings::default()
            };
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let clock = Arc::new(ShiftedClock::default());
    let server = ControlServer::start(plane, ApiConfig::default(), clock, listener).await.expect("control plane");
    (server, dir)
}

/// Calls the API in-process or over HTTP.
struct Driver<'a> {
    server: &'a ControlServer,
    http: bool,
}

impl Driver<'_> {
    async fn call(&self, operation: Operation, input: Value) -> Value {
        if self.http {
            return post(self.server.address(), operation, &input).await;
        }
        match self.server.plane().call(RequestContext::default(), operation, input).await {
            Ok(output) => output,
            Err(e) => panic!("{}: {e}", operation.name()),
        }
    }

    async fn create_cluster(&self) -> String {
        let created = self
            .call(
                Operation::CreateCluster,
                json!({"HsmType": "hsm2m.medium", "SubnetIds": ["subnet-0a1b2c3d", "subnet-0a1b2c3e"]}),
            )
            .await;
        created["Cluster"]["ClusterId"].as_str().expect("ClusterId").to_owned()
    }

    /// `create-hsm`: the HSM's id and endpoint.
    async fn create_hsm(&self, cluster: &str) -> (String, String) {
        let created =
            self.call(Operation::CreateHsm, json!({"ClusterId": cluster, "AvailabilityZone": "us-east-1a"})).await;
        let hsm = &created["Hsm"];
        let id = hsm["HsmId"].as_str().expect("HsmId").to_owned();
        (id, format!("{}:2223", hsm["EniIp"].as_str().expect("EniIp")))
    }

    async fn delete(&self, cluster: &str, hsm: &str) {
        self.call(Operation::DeleteHsm, json!({"ClusterId": cluster, "HsmId": hsm})).await;
        self.call(Operation::DeleteCluster, json!({"ClusterId": cluster})).await;
    }
}

/// One new cluster and its first HSM: how long each took.
struct FirstHsm {
    cluster: String,
    hsm: String,
    endpoint: String,
    create_cluster: Duration,
    /// The `create-hsm` call alone.
    call: Duration,
    /// From the `create-hsm` call to the first answered `cluster_info()`.
    reachable: Duration,
}

async fn first_hsm(driver: &Driver<'_>, dir: &Path) -> FirstHsm {
    let started = Instant::now();
    let cluster = driver.create_cluster().await;
    let create_cluster = started.elapsed();
    let started = Instant::now();
    let (hsm, endpoint) = driver.create_hsm(&cluster).await;
    let call = started.elapsed();
    let ca = std::fs::read_to_string(dir.join("clusters").join(&cluster).join("ca.pem")).expect("the cluster's CA");
    answer(&endpoint, &ca).await;
    FirstHsm { cluster, hsm, endpoint, create_cluster, call, reachable: started.elapsed() }
}

/// A cluster initialized under a new customer CA and activated, then its
/// second HSM:
/// the time from that `create-hsm` call to its first answer.
async fn later_hsm(driver: &Driver<'_>, dir: &Path) -> Duration {
    let first = first_hsm(driver, dir).await;
    let shown =
        driver.call(Operation::DescribeClusters, json!({"Filters": {"clusterIds": [first.cluster.as_str()]}})).await;
    let csr = shown["Clusters"][0]["Certificates"]["ClusterCsr"].as_str().expect("ClusterCsr");
    let (anchor, signed) = customer_signs(csr);
    driver
        .call(
            Operation::InitializeCluster,
            json!({"ClusterId": first.cluster, "SignedCert": signed, "TrustAnchor": anchor}),
        )
        .await;
    let config = ClientConfig::new(vec![first.endpoint.clone()], anchor.clone()).expect("client config");
    let client = HsmClient::connect(&config).await.expect("the first HSM, under the customer's chain");
    client.activate("bench-admin-password").await.expect("activated");
    let started = Instant::now();
    let (second, endpoint) = driver.create_hsm(&first.cluster).await;
    answer(&endpoint, &anchor).await;
    let elapsed = started.elapsed();
    driver.call(Operation::DeleteHsm, json!({"ClusterId": first.cluster, "HsmId": second})).await;
    driver.delete(&first.cluster, &first.hsm).await;
    elapsed
}

/// A customer CA (its certificate) and the cluster certificate it signs
/// over `csr`, as the user guide's `openssl` steps make them.
fn customer_signs(csr: &str) -> (String, String) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, "customerCA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let anchor = params.self_signed(&key).expect("CA certificate").pem();
    let issuer = Issuer::new(params, key);
    let mut request = CertificateSigningRequestParams::from_pem(csr).expect("the cluster's CSR");
    request.params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    (anchor, request.signed_by(&issuer).expect("signed").pem())
}

/// Waits for the HSM at `endpoint` to answer `cluster_info()` over TLS;
/// `create-hsm` returns once it serves, so the first try normally does.
async fn answer(endpoint: &str, ca_pem: &str) {
    let config = ClientConfig::new(vec![endpoint.to_owned()], ca_pem.to_owned())
        .expect("client config")
        .with_connect_timeout(Duration::from_secs(5));
    let started = Instant::now();
    loop {
        if let Ok(client) = HsmClient::connect(&config).await
            && client.cluster_info().await.is_ok()
        {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the HSM at {endpoint} never answered");
        tokio::task::yield_now().await;
    }
}

/// One AWS JSON 1.1 request over a new HTTP/1.1 connection, unsigned (the
/// server accepts any): the response body, which must be a 200's.
async fn post(address: SocketAddr, operation: Operation, input: &Value) -> Value {
    let body = input.to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: BaldrApiService.{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        operation.name(),
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect to the API");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("receive");
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{}: {head}\n{body}", operation.name());
    serde_json::from_str(body).expect("a JSON body")
}

/// Clusters of one HSM each until resident memory passes 1 GiB or [`CAP`]
/// clusters, under the test settings, in-process.
async fn size(block: u8) {
    let (server, dir) = start(Profile::Tests, block).await;
    let base = Process::now();
    println!();
    println!("clusters of one HSM each, test settings (until RSS > 1 GiB or {CAP} clusters)");
    println!(
        "{:>8} {:>10} {:>14} {:>8} {:>10} {:>8} {:>22}",
        "clusters", "RSS MiB", "KiB/cluster", "threads", "open fds", "maps", "last 10 created, ms"
    );
    let mut made = 0;
    let mut window = Duration::ZERO;
    let stopped = loop {
        let started = Instant::now();
        let endpoint = match one_cluster(server.plane()).await {
            Ok(made) => made,
            Err(e) => break Stop::Failed(e),
        };
        window += started.elapsed();
        let cluster = endpoint.0;
        let ca = std::fs::read_to_string(dir.path().join("clusters").join(&cluster).join("ca.pem")).expect("CA");
        answer(&endpoint.1, &ca).await;
        made += 1;
        let now = Process::now();
        if made % 10 == 0 {
            let per = now.rss_kib.saturating_sub(base.rss_kib) / made as u64;
            if made % 100 == 0 || made == 10 {
                println!(
                    "{made:>8} {:>10.1} {per:>14} {:>8} {:>10} {:>8} {:>22.1}",
                    now.rss_kib as f64 / 1024.0,
                    now.threads,
                    now.fds,
                    now.maps,
                    window.as_secs_f64() * 1e3 / 10.0
                );
            }
            window = Duration::ZERO;
        }
        if now.rss_kib > GIB_KIB {
            break Stop::Gib;
        }
        if made == CAP {
            break Stop::Cap;
        }
    };
    let end = Process::now();
    let per = end.rss_kib.saturating_sub(base.rss_kib) as f64 / made as f64;
    match stopped {
        Stop::Gib => println!("RSS passed 1 GiB at {made} clusters"),
        Stop::Failed(e) => println!(
            "cluster {} failed: {e}\n  (then: RSS {} KiB, {} threads, {} open files, {} memory maps)",
            made + 1,
            end.rss_kib,
            end.threads,
            end.fds,
            end.maps
        ),
        Stop::Cap => println!(
            "stopped at the cap, {CAP} clusters, RSS {:.0} MiB: 1 GiB holds about {:.0} at {per:.0} KiB each",
            end.rss_kib as f64 / 1024.0,
            GIB_KIB.saturating_sub(base.rss_kib) as f64 / per
        ),
    }
    println!(
        "per cluster: {per:.0} KiB resident, {:.2} threads, {:.2} open files, {:.0} KiB on disk (server at start: \
         {} KiB, {} threads, {} files)",
        (end.threads - base.threads) as f64 / made as f64,
        (end.fds - base.fds) as f64 / made as f64,
        disk_kib(dir.path()) as f64 / made as f64,
        base.rss_kib,
        base.threads,
        base.fds
    );
    server.stop().await;
}

/// Why the size run stopped.
enum Stop {
    Gib,
    Cap,
    Failed(String),
}

/// `create-cluster` and `create-hsm`, in-process: the cluster's id and the
/// HSM's endpoint, or what failed.
async fn one_cluster(plane: &ControlPlane) -> Result<(String, String), String> {
    let input = json!({"HsmType": "hsm2m.medium", "SubnetIds": ["subnet-0a1b2c3d", "subnet-0a1b2c3e"]});
    let context = RequestContext::default;
    let created =
        plane.call(context(), Operation::CreateCluster, input).await.map_err(|e| format!("create-cluster: {e}"))?;
    let id = created["Cluster"]["ClusterId"].as_str().unwrap_or_default().to_owned();
    let input = json!({"ClusterId": id, "AvailabilityZone": "us-east-1a"});
    let created = plane.call(context(), Operation::CreateHsm, input).await.map_err(|e| format!("create-hsm: {e}"))?;
    let endpoint = format!("{}:2223", created["Hsm"]["EniIp"].as_str().unwrap_or_default());
    Ok((id, endpoint))
}

/// This process's resident memory, threads, open files and memory maps
/// (`vm.max_map_count` caps those).
struct Process {
    rss_kib: u64,
    threads: usize,
    fds: usize,
    maps: usize,
}

impl Process {
    fn now() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .expect("a /proc/self/status field")
        };
        let fds = std::fs::read_dir("/proc/self/fd").map(Iterator::count).unwrap_or(0);
        let maps = std::fs::read_to_string("/proc/self/maps").map(|m| m.lines().count()).unwrap_or(0);
        Process { rss_kib: field("VmRSS:"), threads: field("Threads:") as usize, fds, maps }
    }
}

/// What the files under `dir` take on disk.
fn disk_kib(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => pending.push(entry.path()),
                Ok(m) => total += m.blocks() * 512 / 1024,
                Err(_) => {}
            }
        }
    }
    total
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what:<62} median {:>8.2}   p90 {:>8.2}   max {:>8.2}   ({} runs)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.9).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
        samples.len()
    );
}
