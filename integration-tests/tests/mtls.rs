//! mTLS enforcement: admins register client trust anchors (at most two);
//! the user named `admin`, over a connection whose client certificate
//! chains to one, sets enforcement to `cluster`; from then on connections
//! without such a certificate are refused at the handshake and open ones are
//! closed, while the HSMs of the cluster keep syncing with each other. The
//! policy survives a restart.

use std::time::Duration;

use hsm_client::{
    ClientConfig, ClientError, Cluster, Completion, CreateUser, DeregisterTrustAnchor, HsmClient, ListKeys, MtlsLevel,
    RegisterTrustAnchor, Role, SetMtlsEnforcement,
};
use hsm_daemon::pki::{self, CertifiedKey};
use integration_tests::{ADMIN_PASSWORD, DevProcess, Options, TestCluster};
use serde_json::json;

/// The config of `cluster` presenting `cert`.
fn presenting(config: ClientConfig, cert: &CertifiedKey) -> ClientConfig {
    config.with_client_identity(cert.cert_pem.clone(), cert.key_pem.to_string())
}

/// Whether one HSM of `config` lets a new connection through and answers.
async fn gets_in(config: &ClientConfig) -> bool {
    match HsmClient::connect(config).await {
        Ok(client) => client.cluster_info().await.is_ok(),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcement_lets_in_only_certificates_chained_to_a_registered_anchor() {
    let operators = pki::generate_ca("cluster-operators").unwrap();
    let laptop = pki::issue_client(&operators, "admin-laptop").unwrap();
    let options = Options {
        users: vec![("alice".into(), Role::CryptoUser, "alice-pass".into())],
        // The harness's own clients present the laptop's certificate, so
        // that restarts and digests work under enforcement.
        client_identity: Some(laptop.clone()),
        ..Options::default()
    };
    let mut cluster = TestCluster::start(2, options).await;

    // Without a client certificate: an admin registers the anchor on every
    // HSM, but cannot turn enforcement on.
    let plain = cluster.client().await;
    let admin_plain = plain.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
    let registered = admin_plain.register_trust_anchor(RegisterTrustAnchor::new(&operators.cert_pem)).await.unwrap();
    assert_eq!(registered.completion(), Completion::Full);
    assert_eq!(registered.first().unwrap().reference, "0x01");
    // Registering it again is a repair, not an error.
    assert_eq!(
        admin_plain.register_trust_anchor(RegisterTrustAnchor::new(&operators.cert_pem)).await.unwrap().completion(),
        Completion::Full
    );
    let refused = admin_plain.set_mtls_enforcement(SetMtlsEnforcement::new(MtlsLevel::Cluster)).await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::PermissionDenied(m) if m.contains("client certificate chained to a registered trust anchor")),
        "{refused:?}"
    );

    // Over mTLS, only the user named admin may set it: not another admin,
    // not a crypto user.
    let anchored = Cluster::connect(&presenting(cluster.config(), &laptop)).await.unwrap();
    admin_plain.create_user(CreateUser::new("second_admin", Role::Admin, "second-pass")).await.unwrap();
    let second = anchored.login("second_admin", Role::Admin, "second-pass").await.unwrap();
    let refused = second.set_mtls_enforcement(SetMtlsEnforcement::new(MtlsLevel::Cluster)).await.unwrap_err();
    assert!(matches!(&refused, ClientError::PermissionDenied(m) if m.contains("named 'admin'")), "{refused:?}");
    let alice = anchored.login("alice", Role::CryptoUser, "alice-pass").await.unwrap();
    let refused = alice.set_mtls_enforcement(SetMtlsEnforcement::new(MtlsLevel::Cluster)).await.unwrap_err();
    assert!(matches!(refused, ClientError::PermissionDenied(_)), "{refused:?}");
    assert_eq!(alice.mtls_enforcement_all().await.first(), Some(&MtlsLevel::None));

    // A third anchor is refused; the second is fine.
    let spare = pki::generate_ca("cluster-spare").unwrap();
    admin_plain.register_trust_anchor(RegisterTrustAnchor::new(&spare.cert_pem)).await.unwrap();
    let third = pki::generate_ca("cluster-third").unwrap();
    let refused = admin_plain.register_trust_anchor(RegisterTrustAnchor::new(&third.cert_pem)).await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::ResourceExhausted(m) if m.contains("maximum of 2 mTLS trust anchors")),
        "{refused:?}"
    );

    // The user named admin, over mTLS, turns enforcement on everywhere.
    let admin = anchored.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
    let set = admin.set_mtls_enforcement(SetMtlsEnforcement::new(MtlsLevel::Cluster)).await.unwrap();
    assert_eq!(set.completion(), Completion::Full);

    // Open connections without a certificate were closed; new ones are
    // refused; a stranger's certificate too; an anchored one gets in.
    let dropped = admin_plain.list_users().await.unwrap_err();
    assert!(matches!(dropped, ClientError::Unavailable(_)), "{dropped:?}");
    let plain_config = ClientConfig::new(vec![cluster.endpoints()[0].clone()], cluster.ca_pem().to_owned()).unwrap();
    assert!(!gets_in(&plain_config).await, "no certificate");
    let strangers = pki::generate_ca("cluster-strangers").unwrap();
    let stranger = pki::issue_client(&strangers, "stranger").unwrap();
    assert!(!gets_in(&presenting(plain_config.clone(), &stranger)).await, "a stranger's certificate");
    assert!(gets_in(&presenting(plain_config.clone(), &laptop)).await, "an anchored certificate");
    let spare_cert = pki::issue_client(&spare, "spare-laptop").unwrap();
    assert!(gets_in(&presenting(plain_config.clone(), &spare_cert)).await, "the second anchor's certificate");
    // The anchored connection was never dropped.
    assert_eq!(admin.list_users().await.unwrap().users.len(), 4);

    // The HSMs still sync with each other: a key made on one HSM only
    // reaches the other in the background.
    let alice_one = cluster.hsm(0).login("alice", Role::CryptoUser, "alice-pass").await;
    let key = alice_one
        .generate_symmetric_key(hsm_client::keys::SymmetricKeyType::Aes, 32, &hsm_client::KeyOptions::default())
        .await
        .unwrap();
    let alice_two = cluster.hsm(1).login("alice", Role::CryptoUser, "alice-pass").await;
    let mut synced = false;
    for _ in 0..200 {
        let page = alice_two.list_keys(ListKeys::default()).await.unwrap();
        if page.keys.iter().any(|k| k.reference == key.reference) {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(synced, "background sync copied the key under enforcement");

    // The last anchor cannot go while enforcement is on.
    admin.deregister_trust_anchor(DeregisterTrustAnchor::new("0x02")).await.unwrap();
    let refused = admin.deregister_trust_anchor(DeregisterTrustAnchor::new("0x01")).await.unwrap_err();
    assert!(matches!(&refused, ClientError::FailedPrecondition(m) if m.contains("enforcement")), "{refused:?}");

    // A restart keeps the anchors and the level.
    cluster.restart(0).await;
    let after = cluster.hsm(0).admin().await;
    let anchors = after.list_trust_anchors().await.unwrap();
    assert_eq!(anchors.len(), 1);
    assert!(anchors[0].is_certificate(&operators.cert_pem));
    assert_eq!(after.mtls_enforcement().await.unwrap(), MtlsLevel::Cluster);
    assert!(!gets_in(&plain_config).await, "still enforced after the restart");

    // Back to none: clients without a certificate get in again.
    let admin = Cluster::connect(&presenting(cluster.config(), &laptop))
        .await
        .unwrap()
        .login("admin", Role::Admin, ADMIN_PASSWORD)
        .await
        .unwrap();
    admin.set_mtls_enforcement(SetMtlsEnforcement::new(MtlsLevel::None)).await.unwrap();
    assert!(gets_in(&plain_config).await);
}

#[test]
fn hsm_cli_cannot_connect_without_a_certificate_once_enforced() {
    let dev = DevProcess::start(&["--admin-password", "admin-pass"]);
    let dir = tempfile::tempdir().unwrap();
    let operators = pki::generate_ca("cluster-operators").unwrap();
    let laptop = pki::issue_client(&operators, "admin-laptop").unwrap();
    let (anchor, cert, key) = (dir.path().join("anchor.pem"), dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&anchor, &operators.cert_pem).unwrap();
    std::fs::write(&cert, &laptop.cert_pem).unwrap();
    std::fs::write(&key, laptop.key_pem.as_bytes()).unwrap();
    let admin = [("CLOUDHSM_ROLE", "admin"), ("CLOUDHSM_PIN", "admin:admin-pass")];
    let with_cert =
        [admin[0], admin[1], ("HSM_CLIENT_CERT", cert.to_str().unwrap()), ("HSM_CLIENT_KEY", key.to_str().unwrap())];

    let registered = dev.cli(&admin, &["cluster", "mtls", "register-trust-anchor", "--path", anchor.to_str().unwrap()]);
    let registered = registered.ok();
    assert_eq!(registered["trust_anchor"]["certificate-reference"], "0x01");
    assert_eq!(registered["trust_anchor"]["cluster-coverage"], "full");
    let listed = dev.cli(&admin, &["cluster", "mtls", "list-trust-anchors"]).ok();
    assert_eq!(listed["trust_anchors"].as_array().unwrap().len(), 1);

    // Without a certificate, setting enforcement is refused.
    let refused = dev.cli(&admin, &["cluster", "mtls", "set-enforcement", "--level", "cluster"]).err();
    assert!(refused.contains("client certificate"), "{refused}");

    // With one (flags here; the environment above works the same).
    let flags =
        ["--client-cert-hsm-tls-file", cert.to_str().unwrap(), "--client-key-hsm-tls-file", key.to_str().unwrap()];
    let set = dev.cli(&admin, &[&flags[..], &["cluster", "mtls", "set-enforcement", "--level", "cluster"]].concat());
    assert_eq!(set.ok(), json!({"message": "Mtls enforcement level set to Cluster successfully"}));

    // Now hsm-cli without a certificate cannot connect; with one it can.
    let refused = dev.cli(&[], &["cluster", "hsm-info"]).err();
    assert!(refused.contains("cannot connect") || refused.contains("connection to the HSM was closed"), "{refused}");
    assert!(refused.contains("certificate chained to a registered trust anchor"), "{refused}");
    assert_eq!(
        dev.cli(&with_cert, &["cluster", "mtls", "get-enforcement"]).ok(),
        json!({"mtls-enforcement-level": "cluster"})
    );
    dev.cli(&with_cert, &["cluster", "hsm-info"]).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_hsm_clones_the_policy_and_its_peer_admits_it_under_enforcement() {
    use integration_tests::process::ClusterDir;
    let cluster = ClusterDir::init(1);
    let hsm1 = cluster.start_hsm_with(1, &[], &[]);
    let operators = pki::generate_ca("cluster-operators").unwrap();
    let laptop = pki::issue_client(&operators, "admin-laptop").unwrap();
    let ca = std::fs::read_to_string(&hsm1.ca).unwrap();
    let config_of = |address: &str| ClientConfig::new(vec![address.to_owned()], ca.clone()).unwrap();

    let plain = HsmClient::connect(&config_of(&hsm1.address)).await.unwrap();
    plain.activate(ADMIN_PASSWORD).await.unwrap();
    let admin = plain.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
    admin.register_trust_anchor(RegisterTrustAnchor::new(&operators.cert_pem)).await.unwrap();
    let anchored = HsmClient::connect(&presenting(config_of(&hsm1.address), &laptop)).await.unwrap();
    let admin = anchored.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
    admin.set_mtls_enforcement(SetMtlsEnforcement::new(MtlsLevel::Cluster)).await.unwrap();

    // HSM 2 joins and clones from HSM 1, which admits it by the certificate
    // the cluster CA issued it, enforcement or not.
    let out = cluster.command().args(["init", "--dir"]).arg(cluster.dir()).args(["--add", "1"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hsm2 = cluster.start_hsm_with(2, &[], &[]);
    assert!(hsm2.stderr_text().contains("cloned from the peer"), "{}", hsm2.stderr_text());

    let on_two = HsmClient::connect(&presenting(config_of(&hsm2.address), &laptop)).await.unwrap();
    let admin_two = on_two.login("admin", Role::Admin, ADMIN_PASSWORD).await.unwrap();
    assert_eq!(admin_two.mtls_enforcement().await.unwrap(), MtlsLevel::Cluster);
    let anchors = admin_two.list_trust_anchors().await.unwrap();
    assert!(anchors.len() == 1 && anchors[0].is_certificate(&operators.cert_pem), "{anchors:?}");
    assert!(!gets_in(&config_of(&hsm2.address)).await, "HSM 2 enforces what it cloned");
    drop((hsm1, hsm2));
}
