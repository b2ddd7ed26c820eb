//! Prometheus metrics (`--metrics-addr`): scraped over plain HTTP from
//! in-process HSMs and from `hsm-daemon run`, before and after calls that
//! succeed, are refused by the permission table, fail to log in, make keys,
//! inject faults and sync with a peer.
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on the first unexpected error")]

use std::time::Duration;

use hsm_client::{ClientError, CreateUser, FaultMode, KeyOptions, KeyPairSpec, Role, keys::SymmetricKeyType};
use integration_tests::{
    Options, TestCluster, TestHsm,
    process::{ClusterDir, HANG_GUARD},
    scrape::{self, has, value},
};

const REQUESTS: &str = "hsm_rpc_requests_total";

fn on() -> Options {
    Options { metrics: true, ..Options::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_refusals_failed_logins_sessions_and_keys_show_on_the_page() {
    let hsm = TestHsm::start(on()).await;
    let address = hsm.metrics_address.unwrap();
    let page = scrape::get(address, "/metrics").await;
    assert_eq!((page.status, page.content_type.as_str()), (200, "text/plain; version=0.0.4; charset=utf-8"));
    let before = page.body;
    let id = hsm.client.cluster_info().await.unwrap().hsms[0].hsm_id.clone();
    assert!(has(&before, "hsm_info", &[("hsm", &id)]), "{before}");

    let alice = hsm.crypto_user("alice", "alice-pass").await; // admin login, create, logout; alice login
    let refused = alice.create_user(CreateUser::new("bob", Role::CryptoUser, "bob-pass1")).await.unwrap_err();
    assert!(matches!(refused, ClientError::PermissionDenied(_)), "{refused:?}");
    let wrong = hsm.client.login("alice", Role::CryptoUser, "not-her-pass").await.unwrap_err();
    assert!(matches!(wrong, ClientError::Unauthenticated(_)), "{wrong:?}");
    alice.generate_symmetric_key(SymmetricKeyType::Aes, 32, &KeyOptions::default()).await.unwrap();
    let ec = KeyPairSpec::Ec { curve: "secp256r1".into() };
    alice.generate_key_pair(&ec, &KeyOptions::default(), &KeyOptions::default()).await.unwrap();

    let after = scrape::metrics(address).await;
    let grew = |rpc: &str, code: &str| {
        let labels = [("hsm", id.as_str()), ("rpc", rpc), ("code", code)];
        value(&after, REQUESTS, &labels) - value(&before, REQUESTS, &labels)
    };
    assert_eq!(grew("Login", "OK"), 2.0, "{after}");
    assert_eq!(grew("Login", "Unauthenticated"), 1.0, "{after}");
    assert_eq!(grew("CreateUser", "OK"), 1.0, "{after}");
    assert_eq!(grew("CreateUser", "PermissionDenied"), 1.0, "the gate's refusal counts: {after}");
    assert_eq!(grew("Logout", "OK"), 1.0, "{after}");
    assert_eq!(grew("GenerateKeyPair", "OK"), 1.0, "{after}");
    let login_calls = |text: &str| value(text, "hsm_rpc_duration_seconds_count", &[("rpc", "Login")]);
    assert_eq!(login_calls(&after) - login_calls(&before), 3.0, "every login is timed: {after}");

    let failed = |text: &str| value(text, "hsm_logins_failed_total", &[("hsm", &id)]);
    assert_eq!(failed(&after) - failed(&before), 1.0, "{after}");
    assert_eq!(value(&after, "hsm_users_locked", &[("hsm", &id)]), 0.0, "one failure locks nobody");
    assert_eq!(value(&after, "hsm_sessions_active", &[("hsm", &id)]), 1.0, "alice's session: {after}");
    for (kind, class) in [("aes", "secret-key"), ("ec", "private-key"), ("ec", "public-key")] {
        assert_eq!(value(&after, "hsm_keys", &[("type", kind), ("class", class)]), 1.0, "{kind} {class}: {after}");
    }
    assert!(!has(&after, "hsm_keys", &[("type", "rsa")]), "no RSA key was made: {after}");
    assert!(!has(&after, "hsm_faults_injected_total", &[]), "fault injection is off: {after}");

    let other = scrape::get(address, "/").await;
    assert_eq!(other.status, 404, "{}", other.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_shows_as_a_locked_user() {
    let hsm = TestHsm::start(on()).await;
    hsm.crypto_user("carol", "carol-pass").await;
    for _ in 0..6 {
        hsm.client.login("carol", Role::CryptoUser, "wrong-pass").await.unwrap_err();
    }
    let locked = hsm.client.login("carol", Role::CryptoUser, "carol-pass").await.unwrap_err();
    assert!(locked.to_string().contains("locked"), "{locked}");
    let text = scrape::metrics(hsm.metrics_address.unwrap()).await;
    assert_eq!(value(&text, "hsm_users_locked", &[]), 1.0, "{text}");
    assert_eq!(value(&text, "hsm_logins_failed_total", &[]), 7.0, "six wrong passwords, one locked: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_and_the_calls_they_fail_are_counted() {
    let hsm = TestHsm::start(Options { faults: true, ..on() }).await;
    hsm.client.set_fault_mode(FaultMode::Busy).await.unwrap();
    let busy = hsm.client.cluster_info().await.unwrap_err();
    assert!(busy.to_string().contains("busy"), "{busy}");
    hsm.client.set_fault_mode(FaultMode::Normal).await.unwrap();

    let text = scrape::metrics(hsm.metrics_address.unwrap()).await;
    let requests = |rpc: &str, code: &str| value(&text, REQUESTS, &[("rpc", rpc), ("code", code)]);
    assert_eq!(requests("GetClusterInfo", "ResourceExhausted"), 1.0, "{text}");
    assert_eq!(value(&text, "hsm_faults_injected_total", &[("kind", "busy")]), 1.0, "{text}");
    assert_eq!(value(&text, "hsm_faults_injected_total", &[("kind", "unavailable")]), 0.0, "{text}");
    // The test-control plane is outside hsm.v1: its calls count as unknown.
    assert_eq!(requests("unknown", "OK"), 2.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hsm_of_a_cluster_shows_background_sync_with_its_peer() {
    let cluster = TestCluster::start(2, on()).await;
    let peer = cluster.hsm(1).address.clone();
    let address = cluster.hsm(0).metrics_address.unwrap();
    assert_ne!(Some(address), cluster.hsm(1).metrics_address, "one endpoint per HSM");
    let labels = [("peer", peer.as_str())];
    // Bounded wait (sync rounds come every 100 ms), not a timing assertion:
    // for a round of this HSM's with its peer, and for one of the peer's with
    // this HSM, which this HSM counts as a GetSyncStatus call. The two rounds
    // are independent, so waiting for the first alone left the second a race.
    let mut text = String::new();
    for _ in 0..600 {
        text = scrape::metrics(address).await;
        if value(&text, "hsm_sync_rounds_total", &[("peer", &peer), ("result", "ok")]) >= 1.0
            && value(&text, REQUESTS, &[("rpc", "GetSyncStatus"), ("code", "OK")]) >= 1.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(value(&text, "hsm_sync_rounds_total", &[("peer", &peer), ("result", "ok")]) >= 1.0, "{text}");
    assert_eq!(value(&text, "hsm_sync_rounds_total", &[("peer", &peer), ("result", "failed")]), 0.0, "{text}");
    assert_eq!(value(&text, "hsm_sync_peer_up", &labels), 1.0, "{text}");
    assert!(value(&text, "hsm_sync_last_success_timestamp_seconds", &labels) > 0.0, "{text}");
    // Its peer's sync calls are the appliance user's, counted here.
    assert!(value(&text, REQUESTS, &[("rpc", "GetSyncStatus"), ("code", "OK")]) >= 1.0, "{text}");
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_daemon_run_serves_metrics_that_grow_with_calls() {
    let cluster = ClusterDir::init(1);
    let metrics_addr = free_port();
    let daemon = cluster.start_with(&["--listen", "127.0.0.1:0", "--metrics-addr", &metrics_addr], &[]);
    let address = metrics_addr.parse().unwrap();
    let info = |text: &str| value(text, REQUESTS, &[("rpc", "GetClusterInfo"), ("code", "OK")]);

    let before = tokio::time::timeout(HANG_GUARD, scrape::metrics(address)).await.unwrap();
    let client = daemon.client().await;
    client.cluster_info().await.unwrap();
    client.cluster_info().await.unwrap();
    let after = scrape::metrics(address).await;
    assert_eq!(info(&after) - info(&before), 2.0, "{after}");
    assert!(has(&after, "hsm_sessions_active", &[]), "{after}");
    daemon.terminate();
}

#[test]
fn a_bad_or_busy_metrics_address_stops_start_up_with_the_reason() {
    let cluster = ClusterDir::init(1);
    for (args, env) in
        [(vec!["--metrics-addr", "localhost:9464"], vec![]), (vec![], vec![("HSM_METRICS_ADDR", "9464")])]
    {
        let refusal = cluster.refused(&args, &env);
        assert!(
            refusal.stderr.contains("metrics_addr") && refusal.stderr.contains("IP address and a port"),
            "{}",
            refusal.stderr
        );
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let refusal = cluster.refused(&["--listen", "127.0.0.1:0", "--metrics-addr", &busy], &[]);
    assert!(
        refusal.stderr.contains(&format!("metrics_addr (--metrics-addr) {busy}: cannot listen there")),
        "{}",
        refusal.stderr
    );
}
