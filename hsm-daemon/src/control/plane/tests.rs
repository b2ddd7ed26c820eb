//! The control plane with real HSMs: started, reached, stopped, and found
//! again after a restart.

use std::{sync::Arc, time::Duration};

use hsm_client::{ClientConfig, HsmClient};
use serde_json::{Value, json};

use super::{ControlPlane, PlaneConfig, pool::AddressPool};
use crate::{
    cluster::Durability,
    control::{
        api::{ApiError, Handler, Operation, RequestContext},
        clock::ShiftedClock,
    },
    settings::Settings,
};

/// A control plane in `dir` whose HSMs take addresses of `127.X.0.0/24`
/// (one block per test, so that tests running at once do not meet).
async fn plane(dir: &std::path::Path, block: u8) -> ControlPlane {
    plane_with_clock(dir, block, Arc::new(ShiftedClock::default())).await
}

async fn plane_with_clock(dir: &std::path::Path, block: u8, clock: Arc<ShiftedClock>) -> ControlPlane {
    let mut config = PlaneConfig::new(dir.to_owned());
    config.pool = AddressPool::parse(&format!("127.{block}.0.0/24"), 2223).expect("pool");
    config.durability = Durability::Unsynced;
    config.hsm_flags =
        Settings { kdf_memory_kib: Some(8), kdf_iterations: Some(1), kdf_parallelism: Some(1), ..Settings::default() };
    ControlPlane::open(config, clock).await.expect("open")
}

async fn call(plane: &ControlPlane, operation: Operation, input: Value) -> Result<Value, ApiError> {
    plane.call(RequestContext::default(), operation, input).await
}

async fn ready_cluster(plane: &ControlPlane) -> String {
    let created = call(
        plane,
        Operation::CreateCluster,
        json!({"HsmType": "hsm2m.medium", "SubnetIds": ["subnet-0a1b2c3d", "subnet-0a1b2c3e"]}),
    )
    .await
    .expect("created");
    assert_eq!(created["Cluster"]["State"], "CREATE_IN_PROGRESS");
    created["Cluster"]["ClusterId"].as_str().expect("id").to_owned()
}

async fn cluster(plane: &ControlPlane, id: &str) -> Value {
    let shown =
        call(plane, Operation::DescribeClusters, json!({"Filters": {"clusterIds": [id]}})).await.expect("described");
    shown["Clusters"][0].clone()
}

async fn reachable(endpoint: &str, ca_pem: &str) -> bool {
    let config = ClientConfig::new(vec![endpoint.to_owned()], ca_pem.to_owned())
        .expect("config")
        .with_connect_timeout(Duration::from_secs(5));
    match HsmClient::connect(&config).await {
        Ok(client) => client.cluster_info().await.is_ok(),
        Err(_) => false,
    }
}

#[tokio::test]
async fn create_hsm_starts_a_reachable_hsm_on_its_own_address_and_delete_hsm_stops_it() {
    let dir = tempfile::tempdir().expect("dir");
    let plane = plane(dir.path(), 211).await;
    let id = ready_cluster(&plane).await;
    assert_eq!(cluster(&plane, &id).await["State"], "UNINITIALIZED");
    let created = call(&plane, Operation::CreateHsm, json!({"ClusterId": id, "AvailabilityZone": "us-east-1a"}))
        .await
        .expect("created");
    let hsm = &created["Hsm"];
    assert_eq!(hsm["State"], "CREATE_IN_PROGRESS");
    let ip = hsm["EniIp"].as_str().expect("ip").to_owned();
    assert!(ip.starts_with("127.211.0."), "{ip}");
    let endpoint = format!("{ip}:2223");
    let ca = std::fs::read_to_string(dir.path().join("clusters").join(&id).join("ca.pem")).expect("ca");
    assert!(reachable(&endpoint, &ca).await, "the new HSM answers at {endpoint}");
    let shown = cluster(&plane, &id).await;
    assert_eq!(shown["Hsms"][0]["State"], "ACTIVE");
    assert_eq!(shown["Hsms"][0]["HsmId"], hsm["HsmId"]);

    // Before initialization a cluster has one HSM.
    let second = call(&plane, Operation::CreateHsm, json!({"ClusterId": id, "AvailabilityZone": "us-east-1b"}))
        .await
        .expect_err("uninitialized");
    assert!(second.to_string().contains("initialize it"), "{second}");
    // The same address is not given twice.
    let taken =
        call(&plane, Operation::CreateHsm, json!({"ClusterId": id, "AvailabilityZone": "us-east-1a", "IpAddress": ip}))
            .await
            .expect_err("taken");
    assert!(matches!(taken, ApiError::InvalidRequest(_)), "{taken:?}");

    let deleted = call(&plane, Operation::DeleteHsm, json!({"ClusterId": id, "EniIp": ip})).await.expect("deleted");
    assert_eq!(deleted["HsmId"], hsm["HsmId"]);
    assert!(!reachable(&endpoint, &ca).await, "a deleted HSM no longer answers");
    assert_eq!(cluster(&plane, &id).await["Hsms"], json!([]));
    let again = call(&plane, Operation::DeleteHsm, json!({"ClusterId": id, "EniIp": ip})).await.expect_err("gone");
    assert!(matches!(again, ApiError::ResourceNotFound(_)), "{again:?}");
    call(&plane, Operation::DeleteCluster, json!({"ClusterId": id})).await.expect("cluster deleted");
    assert_eq!(cluster(&plane, &id).await["State"], "DELETED");
    plane.shutdown().await;
}

#[tokio::test]
async fn a_restarted_control_plane_serves_its_clusters_and_hsms_again() {
    let dir = tempfile::tempdir().expect("dir");
    let (id, endpoint) = {
        let plane = plane(dir.path(), 212).await;
        let id = ready_cluster(&plane).await;
        call(
            &plane,
            Operation::TagResource,
            json!({"ResourceId": id, "TagList": [{"Key": "team", "Value": "crypto"}]}),
        )
        .await
        .expect("tagged");
        let created = call(&plane, Operation::CreateHsm, json!({"ClusterId": id, "AvailabilityZone": "us-east-1b"}))
            .await
            .expect("created");
        let endpoint = format!("{}:2223", created["Hsm"]["EniIp"].as_str().expect("ip"));
        plane.shutdown().await;
        (id, endpoint)
    };
    let ca = std::fs::read_to_string(dir.path().join("clusters").join(&id).join("ca.pem")).expect("ca");
    assert!(!reachable(&endpoint, &ca).await, "stopped with the control plane");
    let plane = plane(dir.path(), 212).await;
    let shown = cluster(&plane, &id).await;
    assert_eq!(shown["Hsms"][0]["State"], "ACTIVE", "{shown}");
    assert!(reachable(&endpoint, &ca).await, "started again on its address");
    assert_eq!(shown["State"], "UNINITIALIZED");
    assert_eq!(shown["Hsms"].as_array().map(Vec::len), Some(1));
    assert_eq!(shown["TagList"], json!([{"Key": "team", "Value": "crypto"}]));
    plane.shutdown().await;
}

/// Signs the cluster's CSR with a new customer CA (as `openssl x509 -req`
/// would) and initializes the cluster with it: the customer CA's PEM.
async fn initialize(plane: &ControlPlane, id: &str) -> String {
    use rcgen::{BasicConstraints, CertificateParams, CertificateSigningRequestParams, IsCa, Issuer, KeyPair};
    let csr = cluster(plane, id).await["Certificates"]["ClusterCsr"].as_str().expect("a CSR").to_owned();
    let ca_key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::from_ca_cert_pem(&ca.pem(), &ca_key).expect("issuer");
    let signed = CertificateSigningRequestParams::from_pem(&csr).expect("csr").signed_by(&issuer).expect("signed");
    let input = json!({"ClusterId": id, "SignedCert": signed.pem(), "TrustAnchor": ca.pem()});
    call(plane, Operation::InitializeCluster, input).await.expect("initialized");
    ca.pem()
}

#[tokio::test]
async fn scheduled_backups_fall_due_and_deleted_ones_go_after_seven_days() {
    let dir = tempfile::tempdir().expect("dir");
    let clock = Arc::new(ShiftedClock::default());
    let plane = plane_with_clock(dir.path(), 213, Arc::clone(&clock)).await;
    let id = ready_cluster(&plane).await;
    let hsm = call(&plane, Operation::CreateHsm, json!({"ClusterId": id, "AvailabilityZone": "us-east-1a"}))
        .await
        .expect("created");
    let ca = initialize(&plane, &id).await;
    assert_eq!(cluster(&plane, &id).await["State"], "INITIALIZED");
    let endpoint = format!("{}:2223", hsm["Hsm"]["EniIp"].as_str().expect("ip"));
    let config = ClientConfig::new(vec![endpoint], ca).expect("config");
    HsmClient::connect(&config)
        .await
        .expect("trusting the customer CA")
        .activate("admin-pass")
        .await
        .expect("activated");
    assert_eq!(cluster(&plane, &id).await["State"], "ACTIVE");

    let backups = || async {
        call(&plane, Operation::DescribeBackups, json!({"Filters": {"clusterIds": [id]}})).await.expect("listed")["Backups"]
            .clone()
    };
    plane.tick().await;
    assert_eq!(backups().await, json!([]), "none is due a moment after initialization");
    clock.advance(Duration::from_secs(25 * 3600));
    plane.tick().await;
    let taken = backups().await;
    assert_eq!(taken.as_array().map(Vec::len), Some(1), "{taken}");
    assert_eq!(taken[0]["BackupState"], "READY");
    let backup = taken[0]["BackupId"].as_str().expect("id").to_owned();
    let file = dir.path().join("backups").join(format!("{backup}.backup"));
    assert!(file.exists(), "the backup is a file of the storage layer's");

    call(&plane, Operation::DeleteBackup, json!({"BackupId": backup})).await.expect("deleted");
    clock.advance(Duration::from_secs(6 * 24 * 3600));
    plane.tick().await;
    // The next daily backup was taken meanwhile; the deleted one waits.
    let listed = backups().await;
    assert!(listed.as_array().expect("list").iter().any(|b| b["BackupState"] == "PENDING_DELETION"), "{listed}");
    clock.advance(Duration::from_secs(2 * 24 * 3600));
    plane.tick().await;
    let listed = backups().await;
    assert!(listed.as_array().expect("list").iter().all(|b| b["BackupId"] != backup.as_str()), "{listed}");
    assert!(!file.exists(), "its file goes with it");
    let gone = call(&plane, Operation::RestoreBackup, json!({"BackupId": backup})).await.expect_err("gone");
    assert!(matches!(gone, ApiError::ResourceNotFound(_)), "{gone:?}");
    plane.shutdown().await;
}
