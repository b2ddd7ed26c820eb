//! A cluster of separate `hsm-daemon run` processes, as `hsm-daemon init
//! --hsms 3` prepares it: every HSM's config names its peers, background
//! sync brings a killed and restarted HSM back into step, a key made while
//! it was down signs on it, and an HSM added with `init --add` clones users
//! and keys before it serves. HSMs placed the way containers are (`init
//! --listen --advertise --client-endpoints --data-dir --mounted-at
//! --client-out`) reach each other and their clients at the given
//! addresses.
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on the first unexpected error")]

use std::time::Duration;

use hsm_client::{
    ClientConfig, CreateUser, HsmClient, KeyInfo, KeyOptions, KeyPairSpec, Role, Session, Sign,
    keys::{HashAlgorithm, SignMechanism},
};
use integration_tests::process::{ClusterDir, Daemon};
use ring::signature;

const ADMIN_PASSWORD: &str = "admin-pass";
const ALICE_PASSWORD: &str = "alice-pass";
const SYNC: (&str, &str) = ("HSM_SYNC_INTERVAL_MS", "300");

fn opts(pairs: &[(&str, &str)]) -> KeyOptions {
    KeyOptions {
        attributes: pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        ..KeyOptions::default()
    }
}

/// Starts HSM `k` on the port its config names (its peers know it there).
fn start(cluster: &ClusterDir, k: usize) -> Daemon {
    cluster.start_hsm_with(k, &[], &[SYNC])
}

async fn appliance_digest(daemon: &Daemon) -> Vec<u8> {
    let au = daemon.client().await.login("app_user", Role::Appliance, &appliance_password(daemon)).await.unwrap();
    let digest = au.sync_status().await.unwrap().digest;
    au.logout().await.unwrap();
    digest
}

fn appliance_password(daemon: &Daemon) -> String {
    let dir = daemon.ca.parent().unwrap();
    std::fs::read_to_string(dir.join("appliance-password")).unwrap().trim().to_owned()
}

/// Waits (bounded) until the daemons report one digest; returns it.
async fn until_in_step(daemons: &[&Daemon]) -> Vec<u8> {
    let mut last = Vec::new();
    for _ in 0..300 {
        let mut digests = Vec::new();
        for d in daemons {
            digests.push(appliance_digest(d).await);
        }
        if digests.windows(2).all(|w| w[0] == w[1]) {
            return digests.remove(0);
        }
        last = digests;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the HSMs did not come into step: {last:?}");
}

async fn ec_pair(alice: &Session, label: &str) -> (KeyInfo, KeyInfo) {
    alice
        .generate_key_pair(
            &KeyPairSpec::Ec { curve: "secp256r1".into() },
            &opts(&[("verify", "true"), ("label", label)]),
            &opts(&[("sign", "true"), ("label", label)]),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_run_processes_stay_in_step_through_a_kill_and_a_new_hsm_clones_in() {
    let cluster = ClusterDir::init(3);
    let hsm1 = start(&cluster, 1);
    let hsm2 = start(&cluster, 2);
    let mut hsm3 = start(&cluster, 3);
    let endpoints = cluster.client_env("HSM_ENDPOINTS");
    assert_eq!(endpoints.split(',').count(), 3, "client.env lists every HSM: {endpoints}");
    let config = std::fs::read_to_string(cluster.config_of(2)).unwrap();
    assert!(config.contains(&format!("peers = [\"{}\", \"{}\"]", hsm1.address, hsm3.address)), "{config}");

    // Users are applied to every HSM (the cluster client does this for
    // applications; here each HSM is asked directly).
    for daemon in [&hsm1, &hsm2, &hsm3] {
        let client = daemon.client().await;
        client.activate(ADMIN_PASSWORD).await.unwrap();
        let admin = client.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
        admin.create_user(CreateUser::new("alice", Role::CryptoUser, ALICE_PASSWORD)).await.unwrap();
        admin.logout().await.unwrap();
    }
    let alice1 = hsm1.client().await.login("alice", Role::CryptoUser, ALICE_PASSWORD).await.unwrap();
    let (_, first) = ec_pair(&alice1, "first").await;
    until_in_step(&[&hsm1, &hsm2, &hsm3]).await;

    // HSM 3 is killed; a second key is made, and reaches HSM 2.
    hsm3.kill();
    let (second_public, second) = ec_pair(&alice1, "second").await;
    let while_down = until_in_step(&[&hsm1, &hsm2]).await;

    // HSM 3 comes back on its port and catches up by itself.
    hsm3 = start(&cluster, 3);
    assert_eq!(until_in_step(&[&hsm1, &hsm2, &hsm3]).await, while_down);
    let alice3 = hsm3.client().await.login("alice", Role::CryptoUser, ALICE_PASSWORD).await.unwrap();
    let message = b"a fixed message";
    for key in [&first, &second] {
        alice3
            .sign(Sign::new(&key.reference, SignMechanism::Ecdsa, message).hash(HashAlgorithm::Sha256))
            .await
            .unwrap();
    }
    let signature = alice3
        .sign(Sign::new(&second.reference, SignMechanism::Ecdsa, message).hash(HashAlgorithm::Sha256))
        .await
        .unwrap();
    let point = hex::decode(second_public.attribute("ec-point").unwrap().trim_start_matches("0x")).unwrap();
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(message, &signature)
        .expect("HSM 3's signature with the key made while it was down verifies independently");

    // A fourth HSM joins: `init --add 1`, then `run` clones from HSM 1.
    let out = cluster.command().args(["init", "--dir"]).arg(cluster.dir()).args(["--add", "1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(cluster.client_env("HSM_ENDPOINTS").split(',').count(), 4);
    let hsm4 = start(&cluster, 4);
    assert!(hsm4.stderr_text().contains("cloned from the peer"), "{}", hsm4.stderr_text());
    let alice4 = hsm4.client().await.login("alice", Role::CryptoUser, ALICE_PASSWORD).await.unwrap();
    alice4.sign(Sign::new(&second.reference, SignMechanism::Ecdsa, message).hash(HashAlgorithm::Sha256)).await.unwrap();
    assert_eq!(appliance_digest(&hsm4).await, while_down, "the clone is in step before it serves anything new");
    let (_, fourth) = ec_pair(&alice4, "made-on-4").await;
    assert!(fourth.reference.starts_with("0x00000300"), "HSM 4 hands out its own references: {}", fourth.reference);
    drop((hsm1, hsm2));
}

/// The acceptance, through `hsm-cli` with `D/client.env`: three
/// `run` processes, an admin creates a crypto user who makes an EC key pair;
/// sync status shows three equal digests; with HSM 3 killed the crypto user
/// still logs in, makes a second key and signs with both; after HSM 3
/// restarts, sync status shows three equal digests again and a signature by
/// the second key verifies against its public key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acceptance_walkthrough_through_hsm_cli() {
    use base64::Engine as _;

    let cluster = ClusterDir::init(3);
    let hsm1 = cluster.start_hsm_with(1, &[], &[]);
    let hsm2 = cluster.start_hsm_with(2, &[], &[]);
    let hsm3 = cluster.start_hsm_with(3, &[], &[]);
    let endpoints = cluster.client_env("HSM_ENDPOINTS");
    let ca = std::path::PathBuf::from(cluster.client_env("HSM_CA_CERT"));
    let cli = |env: &[(&str, &str)], line: &str| {
        let args: Vec<&str> = line.split_whitespace().collect();
        integration_tests::hsm_cli(&endpoints, &ca, env, &args, None)
    };
    let admin_pin = format!("admin:{ADMIN_PASSWORD}");
    let admin = [("CLOUDHSM_ROLE", "admin"), ("CLOUDHSM_PIN", admin_pin.as_str())];
    let alice_pin = format!("alice:{ALICE_PASSWORD}");
    let alice = [("CLOUDHSM_ROLE", "crypto-user"), ("CLOUDHSM_PIN", alice_pin.as_str())];
    let in_step = |status: &serde_json::Value| {
        let digests: Vec<&serde_json::Value> =
            status["hsms"].as_array().unwrap().iter().map(|h| &h["digest"]).collect();
        digests.len() == 3 && digests.iter().all(|d| d.is_string() && *d == digests[0])
    };

    cli(&[], &format!("cluster activate --password {ADMIN_PASSWORD}")).ok();
    cli(&admin, &format!("user create --username alice --role crypto-user --password {ALICE_PASSWORD}")).ok();
    let pair = |label: &str| {
        cli(
            &alice,
            &format!(
                "key generate-asymmetric-pair ec --curve secp256r1 --public-label {label}-pub \
                 --private-label {label} --public-attributes verify=true --private-attributes sign=true"
            ),
        )
        .ok()
    };
    let first = pair("first");
    assert_eq!(first["private_key"]["key-info"]["cluster-coverage"], "full", "{first}");
    let status = cli(&alice, "cluster sync-status").ok();
    assert!(in_step(&status) && status["in-sync"] == true, "{status}");

    hsm3.kill();
    let login = cli(&[], &format!("login --username alice --role crypto-user --password {ALICE_PASSWORD}")).ok();
    assert_eq!(login["failed-hsms"].as_array().map(Vec::len), Some(1), "the missing HSM is reported: {login}");
    let second = pair("second");
    assert_eq!(second["failed-hsms"].as_array().map(Vec::len), Some(1), "{second}");
    assert_eq!(second["private_key"]["key-info"]["cluster-coverage"], "partial", "{second}");
    let message = base64::engine::general_purpose::STANDARD.encode(b"a fixed message");
    for label in ["first", "second"] {
        let line = format!("crypto sign ecdsa --key-filter attr.label={label} --hash-function sha256 --data {message}");
        cli(&alice, &line).ok();
    }

    let _hsm3 = cluster.start_hsm_with(3, &[], &[]);
    // The default background sync runs every 2 s; the issue allows 10 s.
    let mut status = serde_json::Value::Null;
    for _ in 0..100 {
        status = cli(&alice, "cluster sync-status").ok();
        if in_step(&status) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(in_step(&status), "{status}");
    let line = format!("crypto sign ecdsa --key-filter attr.label=second --hash-function sha256 --data {message}");
    let signed = cli(&alice, &line).ok();
    let signature = base64::engine::general_purpose::STANDARD.decode(signed["signature"].as_str().unwrap()).unwrap();
    let point = second["public_key"]["attributes"]["ec-point"].as_str().unwrap();
    let point = hex::decode(point.trim_start_matches("0x")).unwrap();
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(b"a fixed message", &signature)
        .expect("the second key's signature verifies against its public key");
    drop((hsm1, hsm2));
}

/// A free port on 127.0.0.1 (free a moment ago).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `init` as for containers, each HSM then started on the address it is
/// advertised at (flags over its config, as a container's port mapping
/// would give it): the config files hold what the flags said, clients reach
/// the HSMs by the `--client-endpoints` names through `--client-out`'s CA,
/// and a key made on HSM 1 reaches the others through the advertised
/// addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsms_placed_for_containers_serve_and_sync_at_the_given_addresses() {
    let ports = [free_port(), free_port(), free_port()];
    let advertise: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let clients: Vec<String> = ports.iter().map(|p| format!("localhost:{p}")).collect();
    let root = tempfile::tempdir().unwrap();
    let mounted = root.path().join("material");
    let out = root.path().join("out");
    let cluster = ClusterDir::init_with(
        3,
        &[
            "--listen",
            "0.0.0.0:2225",
            "--advertise",
            &advertise.join(","),
            "--client-endpoints",
            &clients.join(","),
            "--data-dir",
            "/data",
            "--mounted-at",
            mounted.to_str().unwrap(),
            "--client-out",
            out.to_str().unwrap(),
        ],
    );
    std::os::unix::fs::symlink(cluster.dir(), &mounted).unwrap();
    let config = std::fs::read_to_string(cluster.config_of(2)).unwrap();
    for line in [
        "listen = \"0.0.0.0:2225\"".to_owned(),
        "data_dir = \"/data\"".to_owned(),
        format!("tls_cert = \"{}/hsm-2.pem\"", mounted.display()),
        format!("peers = [\"{}\", \"{}\"]", advertise[0], advertise[2]),
    ] {
        assert!(config.lines().any(|l| l == line), "{line:?} missing from {config}");
    }
    assert!(!cluster.data_dir_of(1).exists(), "--data-dir is the HSM's own: init made none in D");
    let env = std::fs::read_to_string(out.join("client.env")).unwrap();
    assert_eq!(env, format!("HSM_ENDPOINTS={}\nHSM_CA_CERT={}\n", clients.join(","), out.join("ca.pem").display()));

    let mut hsms = Vec::new();
    for (k, address) in (1..).zip(&advertise) {
        let data = root.path().join(format!("data-{k}"));
        std::fs::create_dir(&data).unwrap();
        hsms.push(cluster.start_hsm_with(k, &["--listen", address, "--data-dir", data.to_str().unwrap()], &[SYNC]));
    }
    // Each HSM's certificate names the client endpoint's host (localhost).
    let ca = out.join("ca.pem");
    let client_of = |k: usize| {
        let config = ClientConfig::from_parts(&format!("localhost:{}", ports[k]), &ca).unwrap();
        async move { HsmClient::connect(&config).await.unwrap() }
    };
    for k in 0..3 {
        let client = client_of(k).await;
        client.activate(ADMIN_PASSWORD).await.unwrap();
        let admin = client.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
        admin.create_user(CreateUser::new("alice", Role::CryptoUser, ALICE_PASSWORD)).await.unwrap();
        admin.logout().await.unwrap();
    }
    let alice1 = client_of(0).await.login("alice", Role::CryptoUser, ALICE_PASSWORD).await.unwrap();
    let (_, key) = ec_pair(&alice1, "placed").await;
    until_in_step(&hsms.iter().collect::<Vec<_>>()).await;
    let alice3 = client_of(2).await.login("alice", Role::CryptoUser, ALICE_PASSWORD).await.unwrap();
    alice3.sign(Sign::new(&key.reference, SignMechanism::Ecdsa, b"m").hash(HashAlgorithm::Sha256)).await.unwrap();
}

/// `init --if-absent` leaves a cluster as it is and succeeds (rewriting the
/// client files); without it `init` refuses; lists of the wrong length are
/// refused naming the flag.
#[test]
fn init_if_absent_keeps_the_cluster_and_lists_must_fit_the_hsm_count() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out");
    let cluster = ClusterDir::init(2);
    let before = std::fs::read_to_string(cluster.config_of(1)).unwrap();
    let init = |args: &[&str]| {
        let output = cluster.command().args(["init", "--dir"]).arg(cluster.dir()).args(args).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.code(), text)
    };
    let (code, text) = init(&["--hsms", "2"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("already holds a cluster"), "{text}");
    let (code, text) =
        init(&["--hsms", "2", "--if-absent", "--client-out", out.to_str().unwrap(), "--client-ca-cert", "ca.pem"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    assert_eq!(std::fs::read_to_string(cluster.config_of(1)).unwrap(), before);
    let endpoints = cluster.client_env("HSM_ENDPOINTS");
    assert_eq!(
        std::fs::read_to_string(out.join("client.env")).unwrap(),
        format!("HSM_ENDPOINTS={endpoints}\nHSM_CA_CERT=ca.pem\n"),
        "the client files name the HSMs the cluster holds"
    );
    assert!(out.join("ca.pem").is_file());

    let fresh = out_dir.path().join("fresh");
    let (code, text) = {
        let output = cluster
            .command()
            .args(["init", "--dir"])
            .arg(&fresh)
            .args(["--hsms", "3", "--client-endpoints", "127.0.0.1:1,127.0.0.1:2"])
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("--client-endpoints: 2 address(es) for --hsms 3"), "{text}");
    assert!(!fresh.join("cluster-id").exists(), "a refused init writes nothing");
}
