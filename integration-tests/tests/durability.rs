//! Durable key creation under load (group commit): every key pair
//! acknowledged while many generations were in flight at once is there after
//! the HSM restarts, on a lone HSM and, through the cluster-aware client, on
//! every HSM of a cluster.
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on the first unexpected error")]

use std::{collections::BTreeMap, time::Duration};

use futures_util::future::join_all;
use hsm_client::{KeyInfo, KeyOptions, KeyPairSpec, ListKeys, Role, Session};
use integration_tests::{Options, TestCluster};

const CU_PASSWORD: &str = "cu-password";

/// Generations in flight at once: enough that many share a commit.
const IN_FLIGHT: usize = 64;

fn options() -> Options {
    Options {
        users: vec![("cu".into(), Role::CryptoUser, CU_PASSWORD.into())],
        // Copies between HSMs come from the client only, so that a key the
        // client did not copy cannot arrive by itself.
        sync_interval: Duration::from_secs(3600),
        ..Options::default()
    }
}

/// Pair `i`: P-256, and the labels of its public and private keys.
fn pair(i: usize) -> (KeyPairSpec, [String; 2]) {
    (KeyPairSpec::Ec { curve: "secp256r1".into() }, [format!("pub-{i}"), format!("priv-{i}")])
}

fn labelled(label: &str) -> KeyOptions {
    KeyOptions { attributes: vec![("label".into(), label.to_owned())], ..KeyOptions::default() }
}

/// Every key `session` lists, by reference, with its label.
async fn labels(session: &Session) -> BTreeMap<String, String> {
    let keys: Vec<KeyInfo> = session.list_keys(ListKeys::default()).await.unwrap().keys;
    keys.into_iter().map(|k| (k.reference.clone(), k.attribute("label").unwrap_or_default().to_owned())).collect()
}

/// Asserts that every acknowledged key is in `stored` with its label.
fn all_there(acknowledged: &BTreeMap<String, String>, stored: &BTreeMap<String, String>, hsm: &str) {
    for (reference, label) in acknowledged {
        assert_eq!(stored.get(reference), Some(label), "{hsm}: acknowledged key {reference} ({label}) after a restart");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_pairs_generated_at_once_are_all_there_after_a_restart() {
    let mut cluster = TestCluster::start(1, options()).await;
    let session = cluster.hsm(0).login("cu", Role::CryptoUser, CU_PASSWORD).await;
    let calls = (0..IN_FLIGHT).map(|i| {
        let session = &session;
        async move {
            let (spec, [public_label, private_label]) = pair(i);
            let (public, private) =
                session.generate_key_pair(&spec, &labelled(&public_label), &labelled(&private_label)).await.unwrap();
            [(public.reference, public_label), (private.reference, private_label)]
        }
    });
    let acknowledged: BTreeMap<String, String> = join_all(calls).await.into_iter().flatten().collect();
    assert_eq!(acknowledged.len(), 2 * IN_FLIGHT, "every reference is new");
    drop(session);

    cluster.restart(0).await;
    let session = cluster.hsm(0).login("cu", Role::CryptoUser, CU_PASSWORD).await;
    all_there(&acknowledged, &labels(&session).await, "the HSM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_pairs_generated_at_once_through_a_cluster_are_on_every_hsm_after_restarts() {
    const HSMS: usize = 3;
    const PAIRS: usize = 16;
    let mut cluster = TestCluster::start(HSMS, options()).await;
    let client = cluster.client().await;
    let session = client.login("cu", Role::CryptoUser, CU_PASSWORD).await.unwrap();
    let calls = (0..PAIRS).map(|i| {
        let session = &session;
        async move {
            let (spec, [public_label, private_label]) = pair(i);
            let (public, private) =
                session.generate_key_pair(&spec, &labelled(&public_label), &labelled(&private_label)).await.unwrap();
            assert_eq!(public.coverage.holding.len(), HSMS, "{public:?}");
            assert_eq!(private.coverage.holding.len(), HSMS, "{private:?}");
            [(public.info.reference, public_label), (private.info.reference, private_label)]
        }
    });
    let acknowledged: BTreeMap<String, String> = join_all(calls).await.into_iter().flatten().collect();
    assert_eq!(acknowledged.len(), 2 * PAIRS);
    drop(session);

    for i in 0..HSMS {
        cluster.restart(i).await;
    }
    for i in 0..HSMS {
        let session = cluster.hsm(i).login("cu", Role::CryptoUser, CU_PASSWORD).await;
        all_there(&acknowledged, &labels(&session).await, &format!("HSM {}", i + 1));
    }
}
