//! [`ControlPlane`]: the API's operations carried out on this machine.
//! Each cluster with HSMs is a [`LocalCluster`] in `DIR/clusters/<id>/`;
//! `create-hsm` starts an HSM of it on an address of its own, and
//! `initialize-cluster` reissues its HSMs' certificates under the
//! customer's. State is in `DIR/control-plane.json`, written after every
//! change, so that a restarted server finds its clusters, starts their
//! HSMs again and keeps its backups.
//!
//! Operations run one at a time (one lock over the state and the running
//! clusters, held while an HSM starts or stops): the control plane is not
//! a hot path, and an operation that starts an HSM must not interleave
//! with one that deletes it.
//!
//! # Layout
//! - `pool`: the addresses HSMs take.
//! - `hsms`: `create-hsm`, `delete-hsm`, `initialize-cluster`.
//! - `backups`: taking, copying and scheduling backups.

mod backups;
mod hsms;
mod identity;
pub mod pool;

use std::{collections::HashMap, fs, future::Future, path::PathBuf, pin::Pin, sync::Arc, time::Duration};

use rand::{SeedableRng as _, rngs::StdRng};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use self::pool::AddressPool;
use super::{
    api::{ApiError, Document, Handler, Operation, RequestContext},
    clock::WallClock,
    state::{ClusterState, Hsm, HsmState, Millis, NewCluster, State, rules::str_member},
};
use crate::{
    cluster::{Durability, LocalCluster},
    pki::EmulatorRoots,
    settings::Settings,
    store::write_atomically,
};

/// The file the state is kept in, under the server's directory.
pub const STATE_FILE: &str = "control-plane.json";

/// How the control plane runs.
#[derive(Debug, Clone)]
pub struct PlaneConfig {
    /// Where clusters, backups and the state live.
    pub dir: PathBuf,
    /// The region of unsigned requests (signed ones name theirs).
    pub region: String,
    /// The account id in ARNs.
    pub account: String,
    /// How long a state in progress (`CREATE_IN_PROGRESS`, ...) lasts:
    /// zero for tests, where the next request sees the next state.
    pub transition: Duration,
    /// How often each initialized cluster is backed up (AWS: daily).
    pub backup_interval: Duration,
    pub pool: AddressPool,
    /// Settings every HSM started here takes over its config file (a cheap
    /// KDF in tests, a log level).
    pub hsm_flags: Settings,
    /// Whether cluster files are flushed to disk as written.
    pub durability: Durability,
}

impl PlaneConfig {
    pub fn new(dir: PathBuf) -> Self {
        PlaneConfig {
            dir,
            region: "us-east-1".into(),
            account: "123456789012".into(),
            transition: Duration::ZERO,
            backup_interval: Duration::from_secs(24 * 60 * 60),
            pool: AddressPool::default(),
            hsm_flags: Settings::default(),
            durability: Durability::Synced,
        }
    }
}

/// The control plane: the state, the clusters running here, the
/// emulator's roots of trust.
#[derive(Debug)]
pub struct ControlPlane {
    config: PlaneConfig,
    clock: Arc<dyn WallClock>,
    roots: EmulatorRoots,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    /// The clusters that have HSMs files, by id; opened on first use.
    clusters: HashMap<String, LocalCluster>,
    rng: StdRng,
}

impl ControlPlane {
    /// The control plane in `config.dir`: its state as a previous run left
    /// it (or none), with every HSM that was running started again on its
    /// address.
    pub async fn open(config: PlaneConfig, clock: Arc<dyn WallClock>) -> Result<Self, ApiError> {
        fs::create_dir_all(config.dir.join("backups")).map_err(internal("creating the backups directory"))?;
        let roots = identity::roots(&config.dir.join("roots"))?;
        let path = config.dir.join(STATE_FILE);
        let state: State = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::InternalFailure(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(ApiError::InternalFailure(format!("{}: {e}", path.display()))),
        };
        let plane = ControlPlane {
            config,
            clock,
            roots,
            inner: Mutex::new(Inner { state, clusters: HashMap::new(), rng: StdRng::from_os_rng() }),
        };
        plane.restart_hsms().await;
        Ok(plane)
    }

    pub fn config(&self) -> &PlaneConfig {
        &self.config
    }

    /// The emulator's root certificates (what AWS publishes as the
    /// CloudHSM root and the manufacturer's root).
    pub fn roots(&self) -> &EmulatorRoots {
        &self.roots
    }

    /// Stops every HSM running here and waits for them.
    pub async fn shutdown(&self) {
        let mut inner = self.inner.lock().await;
        for (id, cluster) in &mut inner.clusters {
            if let Err(e) = cluster.shutdown().await {
                tracing::warn!(cluster = %id, error = %e, "an HSM stopped with an error");
            }
        }
    }

    /// Runs the schedule until the task is dropped: [`ControlPlane::tick`]
    /// every 30 seconds, or every backup interval if that is shorter.
    pub async fn run_schedule(self: Arc<Self>) {
        let every = self.config.backup_interval.min(Duration::from_secs(30)).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            self.tick().await;
        }
    }

    /// What the schedule does, now: settles states (and deletes backups
    /// whose pending-deletion window or retention has run out) and takes
    /// the scheduled backups that are due. Test suites call it after moving
    /// the clock instead of waiting.
    pub async fn tick(&self) {
        let mut inner = self.inner.lock().await;
        self.settle(&mut inner).await;
        self.take_due_backups(&mut inner).await;
        self.persist(&inner);
    }

    fn now(&self) -> Millis {
        self.clock.now()
    }

    /// When a state that starts now completes.
    fn settles_at(&self) -> Millis {
        self.now() + i64::try_from(self.config.transition.as_millis()).unwrap_or(i64::MAX / 2)
    }

    fn cluster_dir(&self, id: &str) -> PathBuf {
        self.config.dir.join("clusters").join(id)
    }

    fn backup_path(&self, id: &str) -> PathBuf {
        self.config.dir.join("backups").join(format!("{id}.backup"))
    }

    /// Moves states on, removes the files of backups deleted for good, and
    /// marks clusters whose HSMs have been activated `ACTIVE`.
    async fn settle(&self, inner: &mut Inner) {
        let settled = inner.state.settle(self.now());
        for id in settled.deleted_backups {
            let _ = fs::remove_file(self.backup_path(&id));
        }
        for cluster in inner.state.clusters.values_mut() {
            if cluster.state != ClusterState::Initialized {
                continue;
            }
            let activated = inner.clusters.get(&cluster.id).is_some_and(|local| {
                cluster.live_hsms().any(|h| local.running(h.index).is_some_and(|r| r.status().is_activated()))
            });
            if activated {
                cluster.state = ClusterState::Active;
            }
        }
        let dropped: Vec<String> = inner
            .clusters
            .keys()
            .filter(|id| inner.state.clusters.get(*id).is_none_or(|c| c.state == ClusterState::Deleted))
            .cloned()
            .collect();
        for id in dropped {
            if let Some(mut local) = inner.clusters.remove(&id) {
                let _ = local.shutdown().await;
            }
        }
    }

    /// Writes the state (atomically: a new file renamed over the old).
    fn persist(&self, inner: &Inner) {
        let path = self.config.dir.join(STATE_FILE);
        let written = serde_json::to_vec_pretty(&inner.state)
            .map_err(|e| e.to_string())
            .and_then(|bytes| write_atomically(&path, &bytes).map_err(|e| e.to_string()));
        if let Err(e) = written {
            tracing::error!(path = %path.display(), error = %e, "the control plane's state could not be saved");
        }
    }

    /// Starts again the HSMs the state says are live (after a restart).
    /// One that does not start is `DEGRADED`, its state message saying why.
    async fn restart_hsms(&self) {
        let mut guard = self.inner.lock().await;
        let inner = &mut *guard;
        for cluster in inner.state.clusters.values_mut() {
            if cluster.live_hsms().next().is_none() {
                continue;
            }
            let mut local = match LocalCluster::open(&self.cluster_dir(&cluster.id)) {
                Ok(local) => local,
                Err(e) => {
                    degrade(cluster.hsms.iter_mut(), &format!("its cluster's files cannot be read: {e}"));
                    continue;
                }
            };
            for hsm in cluster.hsms.iter_mut().filter(|h| h.state != HsmState::DeleteInProgress) {
                match local.start(hsm.index, &self.config.hsm_flags, &hsms::launch()).await {
                    Ok(_) => hsm.problem = None,
                    Err(e) => degrade(std::iter::once(hsm), &format!("it did not start again: {e}")),
                }
            }
            inner.clusters.insert(cluster.id.clone(), local);
        }
    }

    async fn dispatch(&self, context: RequestContext, operation: Operation, input: Value) -> Result<Value, ApiError> {
        let region = context.region.unwrap_or_else(|| self.config.region.clone());
        let account = self.config.account.clone();
        let mut guard = self.inner.lock().await;
        let inner = &mut *guard;
        self.settle(inner).await;
        let (now, settles_at) = (self.now(), self.settles_at());
        let id = |member: &str| str_member(&input, member).unwrap_or_default();
        let result = match operation {
            Operation::CreateCluster => {
                let new = NewCluster::parse(&input)?;
                let cluster = inner.state.create_cluster(&region, new, now, settles_at, &mut inner.rng)?;
                Ok(json!({"Cluster": cluster.to_api()}))
            }
            Operation::DescribeClusters => return inner.state.describe_clusters(&region, &input),
            Operation::DeleteCluster => {
                inner.state.delete_cluster(&region, &id("ClusterId"), settles_at).map(|c| json!({"Cluster": c}))
            }
            Operation::ModifyCluster => inner.state.modify_cluster(&region, &input).map(|c| json!({"Cluster": c})),
            Operation::CreateHsm => self.create_hsm(inner, &region, &input).await,
            Operation::DeleteHsm => self.delete_hsm(inner, &region, &input).await,
            Operation::InitializeCluster => self.initialize(inner, &region, &input).await,
            Operation::DescribeBackups => return inner.state.describe_backups(&region, &account, &input),
            Operation::DeleteBackup => inner.state.delete_backup(&region, &id("BackupId"), now, &account),
            Operation::RestoreBackup => inner.state.restore_backup(&region, &id("BackupId"), &account),
            Operation::ModifyBackupAttributes => inner.state.modify_backup(&region, &input, &account),
            Operation::CopyBackupToRegion => self.copy_backup(inner, &region, &input),
            Operation::TagResource => inner.state.tag(&region, &input),
            Operation::UntagResource => inner.state.untag(&region, &input),
            Operation::ListTags => return inner.state.list_tags(&region, &input),
            Operation::PutResourcePolicy => inner.state.put_policy(&region, &account, &input),
            Operation::GetResourcePolicy => return inner.state.get_policy(&region, &account, &input),
            Operation::DeleteResourcePolicy => inner.state.delete_policy(&region, &account, &input),
        };
        self.persist(inner);
        result
    }
}

impl Handler for ControlPlane {
    fn call(
        &self,
        context: RequestContext,
        operation: Operation,
        input: Value,
    ) -> Pin<Box<dyn Future<Output = Result<Value, ApiError>> + Send + '_>> {
        Box::pin(self.dispatch(context, operation, input))
    }

    /// The emulator's roots, which the user guide's verification steps
    /// download from AWS: `GET /roots/aws` and `GET /roots/manufacturer`.
    fn document(&self, path: &str) -> Option<Document> {
        let root = match path {
            "/roots/aws" => &self.roots.aws,
            "/roots/manufacturer" => &self.roots.manufacturer,
            _ => return None,
        };
        Some(Document { content_type: "application/x-pem-file".into(), body: root.cert_pem.clone().into_bytes() })
    }
}

/// Marks `hsms` `DEGRADED` for `reason`, and logs it.
fn degrade<'a>(hsms: impl Iterator<Item = &'a mut Hsm>, reason: &str) {
    for hsm in hsms {
        tracing::error!(hsm = %hsm.id, %reason, "HSM degraded");
        hsm.state = HsmState::Degraded;
        hsm.problem = Some(format!("HSM is degraded: {reason}"));
    }
}

/// An internal failure at `what`, for `map_err`.
/// The message names every cause down the chain (a cluster step's
/// source says what failed).
fn internal<E: std::error::Error>(what: &'static str) -> impl FnOnce(E) -> ApiError {
    move |e| {
        let mut message = format!("{what}: {e}");
        let mut source = e.source();
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        ApiError::InternalFailure(message)
    }
}

#[cfg(test)]
mod tests;
