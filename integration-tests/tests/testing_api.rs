//! The public in-process fixture, `hsm_daemon::testing::TestCluster`, as a
//! test suite outside this workspace would use it: pre-created users, a seed
//! file's users and keys on every HSM, reproducible runs, and many clusters
//! at once in one test binary.

use std::sync::Arc;

use hsm_client::{
    ListKeys, Role, Sign,
    keys::{HashAlgorithm, SignMechanism},
};
use hsm_daemon::{
    seed::Seed,
    testing::{Options, TestCluster},
};

fn example_seed() -> Arc<Seed> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../hsm-daemon/examples/seed.toml");
    Arc::new(Seed::from_file(&path).expect("the example seed parses"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_cluster_starts_with_the_seeds_users_and_keys_on_every_hsm() {
    let options = Options { seed: Some(example_seed()), ..Options::default() };
    let cluster = TestCluster::start(3, options).await;
    let digests = cluster.digests().await;
    assert!(digests.windows(2).all(|w| w[0] == w[1]), "every HSM starts in step: {digests:?}");
    let alice = cluster.client().await.login("alice", Role::CryptoUser, "alice-pass").await.expect("alice");
    assert!(alice.unavailable().is_empty());
    let listed = alice
        .list_keys(ListKeys::default().filters(&[("attr.label".into(), "alice-p256".into())]))
        .await
        .expect("list");
    assert_eq!(listed.keys.len(), 1, "{listed:?}");
    assert_eq!(listed.keys[0].coverage.holding.len(), 3, "on all three HSMs");
    let reference = listed.keys[0].info.reference.clone();
    alice.sign(Sign::new(&reference, SignMechanism::Ecdsa, b"seeded").hash(HashAlgorithm::Sha256)).await.expect("sign");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_clusters_repeat_ids_and_generated_keys() {
    let start = || async {
        let options = Options { seed: Some(example_seed()), deterministic: Some(7), ..Options::default() };
        let cluster = TestCluster::start(2, options).await;
        let info = cluster.client().await.cluster_info().await.expect("info");
        let alice = cluster.client().await.login("alice", Role::CryptoUser, "alice-pass").await.expect("alice");
        let keys = alice.list_keys(ListKeys::default()).await.expect("list").keys;
        let shown: Vec<(String, Option<String>)> =
            keys.iter().map(|k| (k.info.reference.clone(), k.info.attribute("ec-point").map(str::to_owned))).collect();
        let ids: Vec<(String, String)> =
            info.hsms.iter().map(|h| (h.hsm_id.clone(), h.serial_number.clone())).collect();
        (ids, shown)
    };
    let first = start().await;
    let second = start().await;
    assert!(!first.1.is_empty());
    assert_eq!(first, second, "the same seed and --deterministic give the same HSMs and keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clusters_run_side_by_side_in_one_test_binary() {
    let options =
        || Options { users: vec![("carol".into(), Role::CryptoUser, "carol-pass".into())], ..Options::default() };
    let (a, b) = tokio::join!(TestCluster::start(2, options()), TestCluster::start(2, options()));
    assert_ne!(a.endpoints(), b.endpoints());
    assert_ne!(a.ca_pem(), b.ca_pem());
    for cluster in [&a, &b] {
        let carol = cluster.client().await.login("carol", Role::CryptoUser, "carol-pass").await.expect("carol");
        assert!(carol.unavailable().is_empty());
    }
    // A client of one cluster does not trust the other's HSMs.
    let crossed = hsm_client::ClientConfig::new(b.endpoints(), a.ca_pem().to_owned()).expect("config");
    let refused = hsm_client::HsmClient::connect(&crossed).await;
    assert!(refused.is_err(), "a's CA must not verify b's HSMs");
}
