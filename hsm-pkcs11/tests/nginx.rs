//! nginx (Debian `nginx-light`) terminating TLS with its private key on the
//! HSM, as AWS's SSL/TLS offload guide sets nginx up with its OpenSSL
//! engine, here libp11's: `ssl_engine pkcs11;` and `ssl_certificate_key
//! "engine:pkcs11:pkcs11:object=...;type=private";`. A master process and
//! two pre-forked workers serve 127.0.0.1; `curl` completes TLS 1.2 and
//! TLS 1.3 handshakes and gets a page, connection after connection until
//! both workers have served.
//!
//! That the key never left the HSM: it is made non-extractable on the HSM
//! (PKCS#11 reports it never extractable), no file the test writes holds a
//! private key, and the HSMs' own counters show one signature on the HSM for
//! each handshake at least.
//!
//! nginx runs in the foreground (`daemon off`) in a process group of its
//! own, which a guard stops on every way out of the test. Every wait is
//! bounded. Skipped, saying so, where `openssl`, `pkcs11-tool`, libp11's
//! engine, `nginx` or `curl` is not installed, unless
//! `HSM_PKCS11_REQUIRE_TOOLS` is set (as CI sets it), which makes a missing
//! tool a failure.
#![expect(clippy::unwrap_used, reason = "a test fails loudly on the first unexpected error")]

mod common;

use std::{
    collections::BTreeSet,
    net::TcpStream,
    os::unix::{fs::MetadataExt as _, process::CommandExt as _},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{
    Rig,
    engine::{Engine, LIMIT, bounded, free_port, ok, pkcs11_tool, set_mode, signal, tools_present},
};
use hsm_client::{KeyOptions, KeyPairSpec, Role};
use hsm_daemon::testing::Options;

/// Connections to make, at most, for both workers to have served.
const MAX_ROUNDS: usize = 50;

#[test]
fn nginx_serves_tls_1_2_and_1_3_with_an_ec_p256_key_on_the_hsm() {
    serve_with_the_key_on_the_hsm(KeyPairSpec::Ec { curve: "secp256r1".into() }, "nginx-ec");
}

#[test]
fn nginx_serves_tls_1_2_and_1_3_with_an_rsa_2048_key_on_the_hsm() {
    // TLS 1.2 and 1.3 sign with RSA-PSS, a salt as long as the digest:
    // libp11 asks for CKM_RSA_PKCS_PSS.
    serve_with_the_key_on_the_hsm(KeyPairSpec::Rsa { modulus_size_bits: 2048, public_exponent: 65537 }, "nginx-rsa");
}

fn serve_with_the_key_on_the_hsm(spec: KeyPairSpec, label: &str) {
    if !tools_present(&["nginx", "curl"]) {
        return;
    }
    // Two HSMs, as AWS's guide asks of a cluster, each counting its calls.
    let rig = Rig::with_users(2, &[], Options { metrics: true, ..Options::default() });

    // The key pair, made as `hsm-cli key generate-asymmetric-pair` makes it
    // in the walkthrough: the private key may sign and is not extractable.
    let Rig { runtime, cluster, .. } = &rig;
    let client = runtime.block_on(cluster.client());
    let alice = runtime.block_on(client.login("alice", Role::CryptoUser, "alice-pass")).unwrap();
    let attributes = |pairs: &[(&str, &str)]| KeyOptions {
        attributes: pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        ..KeyOptions::default()
    };
    runtime
        .block_on(alice.generate_key_pair(
            &spec,
            &attributes(&[("label", label), ("verify", "true")]),
            &attributes(&[("label", label), ("sign", "true"), ("extractable", "false")]),
        ))
        .unwrap();
    runtime.block_on(alice.logout()).unwrap();
    let listed = pkcs11_tool(&rig.client_env, &["--list-objects", "--type", "privkey", "--label", label]);
    assert!(listed.contains("never extractable"), "PKCS#11 does not report the key never extractable: {listed}");

    let engine = Engine::new(&rig);
    let uri = format!("pkcs11:object={label};type=private");
    let certificate = rig.file("cert.pem");
    engine.self_signed_certificate(&uri, &certificate);

    let site = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = site.path().join("nginx.conf");
    std::fs::write(&conf, nginx_conf(site.path(), port, &certificate, &uri)).unwrap();
    if std::fs::metadata(&conf).unwrap().uid() == 0 {
        // Started as root (as in CI), nginx runs its workers as its
        // unprivileged default user; `user root;` is not needed. The
        // library in each worker reads `client.env` and the cluster's CA
        // certificate again after the fork, so their directory must let
        // that user in, whatever the umask. Both files are public; the
        // engine's configuration, with the PIN, is 0600 and read by the
        // master only.
        for dir in [rig.dir.path(), site.path()] {
            set_mode(dir, 0o755);
        }
    }
    let nginx = Nginx::start(&conf, &engine, &rig.client_env);
    nginx.wait_until_listening(port);

    let signatures_before = hsm_signatures(&rig);
    let mut workers = BTreeSet::new();
    let mut handshakes = 0;
    for round in 1..=MAX_ROUNDS {
        for version in ["1.2", "1.3"] {
            let page = fetch(port, &certificate, version);
            handshakes += 1;
            assert!(page.contains(&format!("protocol=TLSv{version} ")), "asked for TLS {version}, got {page}");
            let pid = page.split_once("pid=").and_then(|(_, rest)| rest.split_whitespace().next()).unwrap();
            workers.insert(pid.parse::<u32>().unwrap());
        }
        if workers.len() == 2 && round >= 3 {
            break;
        }
    }
    assert_eq!(workers.len(), 2, "both workers should have served within {MAX_ROUNDS} rounds: {workers:?}");
    assert!(!workers.contains(&nginx.master()), "the master served a request itself");
    let signed = hsm_signatures(&rig) - signatures_before;
    assert!(signed >= handshakes, "{handshakes} handshakes but {signed} signatures on the HSMs");

    for dir in [rig.dir.path(), site.path()] {
        assert_no_private_key_file(dir);
    }
    drop(nginx);
    eprintln!("{}", std::fs::read_to_string(site.path().join("error.log")).unwrap_or_default());
}

/// The configuration: a master and two pre-forked workers in the
/// foreground, everything they write in `dir`, TLS 1.2 and 1.3 on
/// 127.0.0.1:`port` with the certificate and the engine's key, and a page
/// that says which worker served it over which protocol.
fn nginx_conf(dir: &Path, port: u16, certificate: &str, uri: &str) -> String {
    let dir = dir.display();
    format!(
        r#"# Written by hsm-pkcs11/tests/nginx.rs.
master_process on;
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
# nginx empties its workers' environment but for what is named here; the
# library in each worker finds the cluster through this variable.
env HSM_PKCS11_CONFIG;
ssl_engine pkcs11;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        # reuseport: a listening socket per worker, among which the kernel
        # spreads new connections, so that both workers serve.
        listen 127.0.0.1:{port} ssl reuseport;
        server_name localhost;
        ssl_certificate {certificate};
        ssl_certificate_key "engine:pkcs11:{uri}";
        ssl_protocols TLSv1.2 TLSv1.3;
        # Every connection a full handshake, signed by the HSM.
        ssl_session_cache off;
        ssl_session_tickets off;
        location / {{
            default_type text/plain;
            return 200 "pid=$pid protocol=$ssl_protocol cipher=$ssl_cipher\n";
        }}
    }}
}}
"#
    )
}

/// nginx in the foreground, in a process group of its own (the master and
/// its workers); stopped, the group killed if it lingers, on drop.
struct Nginx {
    master: Child,
    dir: std::path::PathBuf,
}

impl Nginx {
    fn start(conf: &Path, engine: &Engine, client_env: &Path) -> Nginx {
        let dir = conf.parent().unwrap().to_owned();
        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let master = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(conf)
            .env("OPENSSL_CONF", engine.conf())
            .env(hsm_pkcs11::CONFIG_ENV, client_env)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"))
            .spawn()
            .unwrap();
        Nginx { master, dir }
    }

    fn master(&self) -> u32 {
        self.master.id()
    }

    /// Waits until nginx accepts connections on `port` (it listens once the
    /// master has loaded the key through the engine), at most [`LIMIT`].
    fn wait_until_listening(&self, port: u16) {
        let deadline = Instant::now() + LIMIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = || std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
            let exited = Command::new("kill").args(["-0", &self.master().to_string()]).output().unwrap();
            assert!(exited.status.success(), "nginx exited: {}", log());
            assert!(Instant::now() < deadline, "nginx is not listening after {LIMIT:?}: {}", log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM asks the master to stop its workers and exit; a worker stuck
        // in a call does not, so after a bound the whole group is killed.
        let group = format!("-{}", self.master());
        signal("TERM", &group);
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.master.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        signal("KILL", &group);
        let _ = self.master.wait();
    }
}

/// The page at https://localhost:`port`/, fetched by `curl` over a new
/// connection with exactly TLS `version`, trusting only `certificate`.
fn fetch(port: u16, certificate: &str, version: &str) -> String {
    let mut curl = Command::new("curl");
    curl.args(["-q", "--silent", "--show-error", "--fail", "--noproxy", "*", "--max-time", "30"])
        .args(["--cacert", certificate, "--resolve", &format!("localhost:{port}:127.0.0.1")])
        .args([format!("--tlsv{version}"), "--tls-max".into(), version.into()])
        .arg(format!("https://localhost:{port}/"));
    ok(&mut curl)
}

/// Signatures the cluster's HSMs have made, from their metrics.
fn hsm_signatures(rig: &Rig) -> u64 {
    (0..2)
        .map(|i| {
            let address = rig.cluster.hsm(i).metrics_address.unwrap();
            let mut curl = Command::new("curl");
            curl.args(["-q", "--silent", "--fail", "--noproxy", "*", "--max-time", "30"])
                .arg(format!("http://{address}/metrics"));
            let metrics = bounded(&mut curl, LIMIT);
            assert!(metrics.status.success(), "scraping {address}: {}", String::from_utf8_lossy(&metrics.stderr));
            String::from_utf8(metrics.stdout)
                .unwrap()
                .lines()
                .filter(|l| l.starts_with("hsm_rpc_requests_total{") && l.contains(r#"rpc="Sign""#))
                .filter(|l| l.contains(r#"code="OK""#))
                .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
                .sum::<u64>()
        })
        .sum()
}

/// Fails the test if any file under `dir` holds a PEM private key.
fn assert_no_private_key_file(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_no_private_key_file(&path);
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            assert!(!text.contains("PRIVATE KEY-----"), "{} holds a private key", path.display());
        }
    }
}
