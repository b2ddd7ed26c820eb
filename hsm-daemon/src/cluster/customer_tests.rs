//! A cluster served here, claimed by its customer as AWS's guide has them
//! do it (openssl signs the CSR), then reached over real TLS with the
//! customer's CA and refused with the old one; its HSMs still sync and
//! clone with each other.

use std::{os::unix::fs::PermissionsExt as _, path::Path, time::SystemTime};

use hsm_client::{ClientConfig, Cluster, CreateUser, HsmClient, KeyOptions, KeyPairSpec, Role, Session};

use super::super::{Durability, Launch, LocalCluster};
use crate::{
    model::Password,
    pki::{
        ClusterIdentity, EmulatorRoots,
        fixtures::{customer_ca, sign},
        verify_signed_cluster_certificate,
    },
    settings::Settings,
};

fn flags() -> Settings {
    Settings {
        listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
        kdf_memory_kib: Some(8),
        kdf_iterations: Some(1),
        sync_interval_ms: Some(50),
        ..Settings::default()
    }
}

fn launch() -> Launch {
    Launch { admin_password: Some(Password::parse("admin", "admin-pass").unwrap()), ..Launch::default() }
}

/// The customer's CA and their signature of `csr`, made with openssl as
/// AWS documents: (signed certificate, CA certificate).
fn customer_signs(dir: &Path, csr: &str) -> (String, String) {
    std::fs::write(dir.join("ClusterCsr.csr"), csr).unwrap();
    customer_ca(dir, "customerCA", "3652");
    sign(dir, "ClusterCsr.csr", "customerCA", "CustomerHsmCertificate.crt", "3652");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    (read("CustomerHsmCertificate.crt"), read("customerCA.crt"))
}

async fn admin_on(address: &str, ca: &str) -> Session {
    let client =
        HsmClient::connect(&ClientConfig::new(vec![address.to_owned()], ca.to_owned()).unwrap()).await.unwrap();
    client.login("admin", Role::Admin, "admin-pass").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_cluster_serves_the_customer_chain_and_still_syncs_and_clones() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (mut cluster, _) =
        LocalCluster::builder().hsms(2).durability(Durability::Unsynced).create(&dir.path().join("c")).unwrap();
    cluster.start_all(&flags(), &launch()).await.unwrap();
    let endpoints = cluster.addresses();
    cluster.material().write_client_env(&endpoints).unwrap();
    let old_ca = cluster.ca_pem().to_owned();

    let roots = EmulatorRoots::generate().unwrap();
    let hsm_id = cluster.running(1).unwrap().seat().hsm_id.to_string();
    let identity = ClusterIdentity::generate(cluster.id().as_str(), &hsm_id, &roots).unwrap();
    let (signed, anchor) = customer_signs(work.path(), &identity.certificates.cluster_csr);
    verify_signed_cluster_certificate(&identity.certificates.cluster_csr, &signed, &anchor, SystemTime::now()).unwrap();

    cluster.adopt_customer_chain(&identity.cluster_key_pem, &signed, &anchor).await.unwrap();
    assert_eq!(cluster.ca_pem(), anchor);
    assert_eq!(cluster.addresses(), endpoints, "the HSMs restart on their addresses");

    // Clients holding the customer's CA connect; those holding the old
    // cluster CA do not.
    for address in &endpoints {
        admin_on(address, &anchor).await.logout().await.unwrap();
        let old = ClientConfig::new(vec![address.clone()], old_ca.clone()).unwrap();
        let refused = HsmClient::connect(&old).await.unwrap_err().to_string();
        assert!(refused.contains("cannot connect"), "{refused}");
    }

    // The HSMs verify each other with the customer's CA too: a key made
    // on HSM 1 reaches HSM 2 in the background.
    let client = Cluster::connect(&ClientConfig::new(endpoints.clone(), anchor.clone()).unwrap()).await.unwrap();
    let admin = client.login("admin", Role::Admin, "admin-pass").await.unwrap();
    admin.create_user(CreateUser::new("alice", Role::CryptoUser, "alice-pass")).await.unwrap();
    let first =
        HsmClient::connect(&ClientConfig::new(vec![endpoints[0].clone()], anchor.clone()).unwrap()).await.unwrap();
    let alice = first.login("alice", Role::CryptoUser, "alice-pass").await.unwrap();
    let spec = KeyPairSpec::Ec { curve: "secp256r1".into() };
    alice.generate_key_pair(&spec, &KeyOptions::default(), &KeyOptions::default()).await.unwrap();
    let (one, two) = (admin_on(&endpoints[0], &anchor).await, admin_on(&endpoints[1], &anchor).await);
    let mut in_step = false;
    for _ in 0..200 {
        let (a, b) = (one.sync_status().await.unwrap(), two.sync_status().await.unwrap());
        if a.digest == b.digest && b.keys == 2 {
            in_step = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(in_step, "HSM 2 did not copy HSM 1's keys over the customer's chain");

    // An HSM added now is certified under the cluster certificate, and
    // clones from a running HSM through it.
    let third = cluster.add_hsm(&flags(), &launch()).await.unwrap();
    let served = std::fs::read_to_string(cluster.certificate_path(third)).unwrap();
    assert_eq!(served.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(served.ends_with(&signed));
    let address = cluster.address(third).unwrap().to_string();
    let third_client = HsmClient::connect(&ClientConfig::new(vec![address], anchor.clone()).unwrap()).await.unwrap();
    third_client.login("alice", Role::CryptoUser, "alice-pass").await.unwrap();

    // The files say it all to a process or a client started from them.
    let material = cluster.material();
    let env = std::fs::read_to_string(material.dir.join("client.env")).unwrap();
    assert!(env.contains(&format!("HSM_CA_CERT={}", material.dir.join("customer-ca.pem").display())), "{env}");
    assert!(env.contains(&format!("HSM_ENDPOINTS={}", endpoints.join(","))), "{env}");
    let settings = cluster.settings(third, &Settings::default()).unwrap();
    assert_eq!(settings.ca_cert, Some(material.dir.join("customer-ca.pem")));
    let key_mode = std::fs::metadata(material.dir.join("cluster-certificate.key")).unwrap().permissions().mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let reopened = LocalCluster::open(&material.dir).unwrap();
    assert_eq!(reopened.ca_pem(), anchor);
    cluster.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_chain_that_does_not_fit_the_cluster_key_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (mut cluster, _) = LocalCluster::builder().hsms(1).durability(Durability::Unsynced).create(dir.path()).unwrap();
    let roots = EmulatorRoots::generate().unwrap();
    let identity = ClusterIdentity::generate(cluster.id().as_str(), "hsm-abcdefghijk", &roots).unwrap();
    let other = ClusterIdentity::generate(cluster.id().as_str(), "hsm-abcdefghijk", &roots).unwrap();
    let (signed, anchor) = customer_signs(work.path(), &identity.certificates.cluster_csr);
    let before = std::fs::read_to_string(cluster.certificate_path(1)).unwrap();
    let e = cluster.adopt_customer_chain(&other.cluster_key_pem, &signed, &anchor).await.unwrap_err();
    let text = format!("{e}: {}", std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default());
    assert!(text.contains("the cluster certificate: not over the cluster key"), "{text}");
    assert_eq!(std::fs::read_to_string(cluster.certificate_path(1)).unwrap(), before);
    assert!(!dir.path().join("customer-ca.pem").exists());
    assert_ne!(cluster.ca_pem(), anchor);
}
