//! A cluster made, served here, grown and shrunk through [`LocalCluster`],
//! as a control plane would drive it; checked from outside with the
//! cluster client over TLS.

use std::{net::SocketAddr, path::Path};

use hsm_client::{ClientConfig, Cluster, CreateUser, HsmClient, Role};

use super::*;
use crate::{model::Password, settings::Settings};

/// Cheap password hashing and quick sync, on free ports.
fn flags() -> Settings {
    Settings {
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        kdf_memory_kib: Some(8),
        kdf_iterations: Some(1),
        sync_interval_ms: Some(50),
        ..Settings::default()
    }
}

fn launch() -> Launch {
    Launch { admin_password: Some(Password::parse("admin", "admin-pass").unwrap()), ..Launch::default() }
}

fn config(cluster: &LocalCluster, endpoints: Vec<String>) -> ClientConfig {
    ClientConfig::new(endpoints, cluster.ca_pem().to_owned()).unwrap()
}

fn quick(dir: &Path, hsms: u8) -> LocalCluster {
    LocalCluster::builder().hsms(hsms).durability(Durability::Unsynced).create(dir).unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_is_created_served_grown_and_stopped_here() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = quick(dir.path(), 2);
    assert_eq!(cluster.hsm_count(), 2);
    assert!(LocalCluster::holds_cluster(dir.path()));
    cluster.start_all(&flags(), &launch()).await.unwrap();
    let served = cluster.addresses();
    assert_eq!(served.len(), 2);

    let client = Cluster::connect(&config(&cluster, served.clone())).await.unwrap();
    let admin = client.login("admin", Role::Admin, "admin-pass").await.unwrap();
    admin.create_user(CreateUser::new("alice", Role::CryptoUser, "alice-pass")).await.unwrap();

    // A third HSM copies the users of a running one before it serves.
    let third = cluster.add_hsm(&flags(), &launch()).await.unwrap();
    assert_eq!((third, cluster.hsm_count()), (3, 3));
    let address = cluster.address(third).unwrap().to_string();
    assert!(cluster.certificate_path(third).is_file());
    let alone = HsmClient::connect(&config(&cluster, vec![address])).await.unwrap();
    alone.login("alice", Role::CryptoUser, "alice-pass").await.unwrap();
    // Its files are there for a process too: it clones no longer, and
    // every config names the three as peers.
    let files = LocalCluster::open(dir.path()).unwrap();
    assert_eq!(files.hsm_count(), 3);
    assert_eq!(files.settings(1, &Settings::default()).unwrap().peers.unwrap().len(), 2);
    assert_eq!(files.settings(third, &Settings::default()).unwrap().clone_from, None);

    cluster.stop(1).await.unwrap();
    assert!(cluster.running(1).is_none() && cluster.running(2).is_some());
    let stopped = cluster.address(1).unwrap();
    assert!(tokio::net::TcpStream::connect(stopped).await.is_err(), "a stopped HSM's port refuses");
    // It restarts on its port, with its state.
    assert_eq!(cluster.start(1, &Settings { listen: None, ..flags() }, &launch()).await.unwrap(), stopped);
    let first = HsmClient::connect(&config(&cluster, vec![stopped.to_string()])).await.unwrap();
    first.login("alice", Role::CryptoUser, "alice-pass").await.unwrap();
    cluster.shutdown().await.unwrap();
}

#[tokio::test]
async fn growth_past_the_limit_and_a_second_cluster_in_one_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = quick(dir.path(), MAX_HSMS);
    let e = cluster.add_hsms(1).unwrap_err().to_string();
    assert_eq!(e, format!("--add 1: the cluster has {MAX_HSMS} HSMs and a cluster holds at most {MAX_HSMS}"));
    let e = LocalCluster::builder().create(dir.path()).unwrap_err().to_string();
    assert!(e.ends_with("already holds a cluster (hsm-1.toml exists); nothing was changed"), "{e}");
    let e = cluster.add_hsm(&flags(), &launch()).await.unwrap_err().to_string();
    assert!(e.contains("no HSM of the cluster runs here"), "{e}");
    let e = LocalCluster::builder().hsms(MAX_HSMS + 1).create(&dir.path().join("more")).unwrap_err();
    assert!(e.to_string().contains("1 to 28"), "{e}");
}
