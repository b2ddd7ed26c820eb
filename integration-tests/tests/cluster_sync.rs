//! HSMs of one cluster keeping in step by themselves: background sync
//! (anti-entropy) through masked objects, catching up after a restart, and
//! masked objects refused across clusters or when altered. The client's
//! own fan-out is tested in `cluster_client.rs`.
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on the first unexpected error")]

use std::time::Duration;

use hsm_client::{
    ClientError, CreateUser, KeyOptions, KeyPairSpec, ListKeys, Role, Session, Sign, Verify,
    keys::{HashAlgorithm, SignMechanism},
};
use integration_tests::{APPLIANCE_PASSWORD, Options, TestCluster, TestHsm};

fn opts(pairs: &[(&str, &str)]) -> KeyOptions {
    KeyOptions {
        attributes: pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        ..KeyOptions::default()
    }
}

/// Creates the crypto user alice on every running HSM of the cluster (users
/// are not synchronised in the background) and logs her in on HSM `on`.
async fn alice_everywhere(cluster: &TestCluster, hsms: &[usize], on: usize) -> Session {
    for &i in hsms {
        let admin = cluster.hsm(i).admin().await;
        admin.create_user(CreateUser::new("alice", Role::CryptoUser, "alice-pass")).await.unwrap();
        admin.logout().await.unwrap();
    }
    cluster.hsm(on).login("alice", Role::CryptoUser, "alice-pass").await
}

/// Waits (bounded) until every running HSM reports the same digest.
async fn until_in_step(cluster: &TestCluster) -> Vec<u8> {
    let mut last = Vec::new();
    for _ in 0..200 {
        let digests: Vec<Vec<u8>> = cluster.digests().await.into_iter().flatten().collect();
        if digests.windows(2).all(|w| w[0] == w[1]) {
            return digests[0].clone();
        }
        last = digests;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the HSMs did not come into step: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_on_one_hsm_reach_the_others_in_the_background() {
    let cluster = TestCluster::start(3, Options::default()).await;
    let alice = alice_everywhere(&cluster, &[0, 1, 2], 0).await;
    let (public, private) = alice
        .generate_key_pair(
            &KeyPairSpec::Ec { curve: "secp256r1".into() },
            &opts(&[("verify", "true")]),
            &opts(&[("sign", "true"), ("label", "background")]),
        )
        .await
        .unwrap();
    until_in_step(&cluster).await;
    // The copy on HSM 3 is the same key: it signs, and HSM 1 verifies.
    let alice3 = cluster.hsm(2).login("alice", Role::CryptoUser, "alice-pass").await;
    let listed =
        alice3.list_keys(ListKeys::default().filters(&[("attr.label".into(), "background".into())])).await.unwrap();
    assert_eq!(listed.keys.len(), 1);
    assert_eq!(listed.keys[0].reference, private.reference, "a copy keeps its reference");
    let signature = alice3
        .sign(Sign::new(&private.reference, SignMechanism::Ecdsa, b"fixed message").hash(HashAlgorithm::Sha256))
        .await
        .unwrap();
    let ok = alice
        .verify(
            Verify::new(&public.reference, SignMechanism::Ecdsa, b"fixed message", &signature)
                .hash(HashAlgorithm::Sha256),
        )
        .await
        .unwrap();
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_hsm_catches_up_with_keys_made_and_deleted_while_it_was_down() {
    let mut cluster = TestCluster::start(3, Options::default()).await;
    let alice = alice_everywhere(&cluster, &[0, 1, 2], 0).await;
    let doomed = alice.generate_symmetric_key(hsm_client::keys::SymmetricKeyType::Aes, 32, &opts(&[])).await.unwrap();
    let before = until_in_step(&cluster).await;

    cluster.stop(2).await;
    alice.delete_key(&doomed.reference).await.unwrap();
    let (_, private) = alice
        .generate_key_pair(
            &KeyPairSpec::Ec { curve: "secp256r1".into() },
            &opts(&[("verify", "true")]),
            &opts(&[("sign", "true")]),
        )
        .await
        .unwrap();
    let while_down = until_in_step(&cluster).await;
    assert_ne!(before, while_down);

    cluster.restart(2).await;
    assert_eq!(until_in_step(&cluster).await, while_down);
    let alice3 = cluster.hsm(2).login("alice", Role::CryptoUser, "alice-pass").await;
    alice3
        .sign(Sign::new(&private.reference, SignMechanism::Ecdsa, b"made while down").hash(HashAlgorithm::Sha256))
        .await
        .unwrap();
    let gone = alice3
        .list_keys(ListKeys::default().filters(&[("key-reference".into(), doomed.reference.clone())]))
        .await
        .unwrap();
    assert!(gone.keys.is_empty(), "the key deleted while HSM 3 was down is gone from it too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_objects_of_another_cluster_or_altered_are_refused() {
    let cluster = TestCluster::start(2, Options::default()).await;
    let alice = alice_everywhere(&cluster, &[0, 1], 0).await;
    let stranger = TestHsm::start(Options::default()).await;
    let mallory = stranger.crypto_user("alice", "alice-pass").await;
    let foreign =
        mallory.generate_symmetric_key(hsm_client::keys::SymmetricKeyType::Aes, 16, &opts(&[])).await.unwrap();
    let object = mallory.extract_masked_key(&foreign.reference).await.unwrap();
    let err = alice.insert_masked_object(&object).await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidArgument(_)), "{err:?}");
    assert!(err.to_string().contains("masked objects move only within their cluster"), "{err}");

    let own = alice.generate_symmetric_key(hsm_client::keys::SymmetricKeyType::Aes, 16, &opts(&[])).await.unwrap();
    let mut object = alice.extract_masked_key(&own.reference).await.unwrap();
    let middle = object.bytes.len() / 2;
    object.bytes[middle] ^= 0x40;
    let au = cluster.hsm(1).login("app_user", Role::Appliance, APPLIANCE_PASSWORD).await;
    let err = au.insert_masked_object(&object).await.unwrap_err();
    assert!(err.to_string().contains("altered"), "{err}");
}
