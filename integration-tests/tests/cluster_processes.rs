//! A cluster of separate `hsm-daemon run` processes, as `hsm-daemon init
//! --hsms 3` prepares it: every HSM's config names its peers, background
//! sync brings a killed and restarted HSM back into step, a key made while
//! it was down signs on it, and an HSM added with `init --add` clones users
//! and keys before it serves.
#![expect(clippy::unwrap_used, reason = "test helpers fail loudly on the first unexpected error")]

use std::time::Duration;

use hsm_client::{
    KeyInfo, KeyOptions, KeyPairSpec, Role, Session,
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
        admin.create_user("alice", Role::CryptoUser, ALICE_PASSWORD).await.unwrap();
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
        alice3.sign(&key.reference, SignMechanism::Ecdsa, Some(HashAlgorithm::Sha256), message, false).await.unwrap();
    }
    let signature = alice3
        .sign(&second.reference, SignMechanism::Ecdsa, Some(HashAlgorithm::Sha256), message, false)
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
    alice4.sign(&second.reference, SignMechanism::Ecdsa, Some(HashAlgorithm::Sha256), message, false).await.unwrap();
    assert_eq!(appliance_digest(&hsm4).await, while_down, "the clone is in step before it serves anything new");
    let (_, fourth) = ec_pair(&alice4, "made-on-4").await;
    assert!(fourth.reference.starts_with("0x00000300"), "HSM 4 hands out its own references: {}", fourth.reference);
    drop((hsm1, hsm2));
}
