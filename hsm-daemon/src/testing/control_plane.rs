//! [`TestControlPlane`]: the CloudHSM v2 API in the test process, with
//! real HSMs behind it, for suites that drive it with boto3, the AWS CLI or
//! an SDK.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
};

use crate::{
    cluster::Durability,
    control::{
        api::ApiConfig,
        clock::ShiftedClock,
        plane::{ControlPlane, PlaneConfig, pool::AddressPool},
        server::ControlServer,
    },
    settings::Settings,
};

/// A control plane serving the API on a free 127.0.0.1 port, in a
/// temporary directory, its HSMs on CloudHSM's port at addresses of a
/// `127.X.0.0/24` block of its own (so that planes started at once in one
/// process do not meet; across processes an address in use is skipped),
/// with cheap password hashing. Dropping it stops the API and its HSMs.
#[derive(Debug)]
pub struct TestControlPlane {
    server: ControlServer,
    clock: Arc<ShiftedClock>,
    dir: tempfile::TempDir,
}

impl TestControlPlane {
    pub async fn start() -> TestControlPlane {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let block = 100 + (std::process::id() as u8).wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % 100;
        Self::start_in_block(block).await
    }

    /// As [`TestControlPlane::start`], HSMs in `127.<block>.0.0/24`.
    pub async fn start_in_block(block: u8) -> TestControlPlane {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut plane = PlaneConfig::new(dir.path().to_owned());
        plane.pool = AddressPool::parse(&format!("127.{block}.0.0/24"), 2223).expect("a loopback block");
        plane.durability = Durability::Unsynced;
        plane.hsm_flags = Settings {
            kdf_memory_kib: Some(8),
            kdf_iterations: Some(1),
            kdf_parallelism: Some(1),
            ..Settings::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let clock = Arc::new(ShiftedClock::default());
        let server = ControlServer::start(plane, ApiConfig::default(), Arc::clone(&clock) as _, listener)
            .await
            .expect("the control plane starts");
        TestControlPlane { server, clock, dir }
    }

    /// The URL the AWS tools take (`AWS_ENDPOINT_URL_CLOUDHSM_V2`).
    pub fn endpoint_url(&self) -> String {
        self.server.endpoint_url()
    }

    pub fn plane(&self) -> &Arc<ControlPlane> {
        self.server.plane()
    }

    /// The plane's clock: move it forward, then [`TestControlPlane::tick`],
    /// to see backups fall due and deleted ones go.
    pub fn clock(&self) -> &ShiftedClock {
        &self.clock
    }

    /// Runs the schedule now (states, retention, backups due).
    pub async fn tick(&self) {
        self.server.plane().tick().await;
    }

    /// Where its state, clusters and backups are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the API and every HSM, and waits for them.
    pub async fn stop(self) {
        self.server.stop().await;
    }
}
