//! One HSM in this process, from its settings (a config file with flags
//! over it): what `hsm-daemon run` serves alone and [`super::LocalCluster`]
//! serves several of.
//!
//! Starting takes two steps, so that a cluster learns every address before
//! any HSM serves: [`OpenedHsm::open`] opens the store and binds the port;
//! [`OpenedHsm::serve`] (in the foreground) or [`OpenedHsm::spawn`] (as a
//! task, a [`RunningHsm`]) serves until told to stop.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc};

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use super::ClusterError;
use crate::{
    DaemonConfig, Prepared, Transport,
    determinism::{self, Stream},
    metrics::Metrics,
    model::{ClusterId, HsmId, Password},
    seed::SeedPlan,
    service::HsmStatus,
    service::control::serve_control,
    settings::Settings,
};

/// The control socket's name inside an HSM's data directory (`hsm-daemon
/// backup` asks the running daemon there).
pub const CONTROL_SOCKET: &str = "control.sock";

/// What an HSM started here gets beyond its settings.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// Start a new store activated with this admin password (otherwise
    /// unactivated, admin/password the precrypto officer).
    pub admin_password: Option<Password>,
    /// The users and keys a new store starts with: one plan for the whole
    /// cluster, so that its HSMs start identical.
    pub seed: Option<Arc<SeedPlan>>,
    /// Serve the control socket (online backups) in the data directory, as
    /// `run` and `dev` do.
    pub control_socket: bool,
}

/// Which HSM of which cluster, and where it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    /// Its index in the cluster (1-based).
    pub index: u32,
    pub hsm_id: HsmId,
    pub cluster_id: ClusterId,
    /// Where it listens: the bound address (a free port when asked for 0).
    pub address: SocketAddr,
}

/// An HSM whose store is open and whose port is bound, not serving yet.
#[derive(Debug)]
pub struct OpenedHsm {
    prepared: Prepared,
    listener: TcpListener,
    seat: Seat,
    tls: bool,
    /// The control socket to remove after a clean stop, and the task that
    /// serves it (it holds the store open, so it ends with the HSM).
    control: Option<(PathBuf, JoinHandle<()>)>,
}

impl OpenedHsm {
    /// Opens the store, then binds the port (so that a second daemon on the
    /// same data directory is refused for that reason, not for a busy
    /// port), and opens the control socket if `launch` says.
    pub async fn open(settings: &Settings, launch: &Launch) -> Result<Self, ClusterError> {
        Self::open_with(settings, launch, |_| {}).await
    }

    /// [`OpenedHsm::open`], with `tune` having the last word on the
    /// configuration (test suites: a manual clock, limits, a cheap KDF).
    pub async fn open_with(
        settings: &Settings,
        launch: &Launch,
        tune: impl FnOnce(&mut DaemonConfig),
    ) -> Result<Self, ClusterError> {
        let index = settings.index();
        let mut identity_rng = determinism::rng(settings.deterministic, Stream::Identity, index);
        let mut config = settings.resolve(settings.listen_addr(), launch.admin_password.clone(), &mut identity_rng)?;
        config.seed.clone_from(&launch.seed);
        tune(&mut config);
        let (hsm_id, cluster_id) = (config.hsm.id.clone(), config.cluster.id.clone());
        let tls = match config.transport {
            Transport::Tls(_) => true,
            Transport::InsecurePlaintext => false,
        };
        let mut prepared = Prepared::new(config).await?;
        let listen = settings.listen_addr();
        let listener = TcpListener::bind(listen).await.map_err(ClusterError::step(format!("listening on {listen}")))?;
        let address = listener.local_addr().map_err(ClusterError::step("reading the bound address"))?;
        prepared.set_address(address);
        let control = match (launch.control_socket, &settings.data_dir) {
            (true, Some(dir)) => spawn_control(&prepared, settings).map(|task| (dir.join(CONTROL_SOCKET), task)),
            _ => None,
        };
        let seat = Seat { index, hsm_id, cluster_id, address };
        Ok(OpenedHsm { prepared, listener, seat, tls, control })
    }

    pub fn seat(&self) -> &Seat {
        &self.seat
    }

    /// Whether it serves TLS (the default); plaintext only behind
    /// `--insecure-plaintext-no-tls`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether its cluster has been activated.
    pub fn is_activated(&self) -> bool {
        self.prepared.is_activated()
    }

    /// Reports its metrics in `metrics`, which may hold other HSMs of the
    /// process too.
    pub fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.prepared.set_metrics(metrics);
    }

    /// The other HSMs of the cluster, which background sync copies from.
    pub fn set_peers(&mut self, peers: Vec<String>) {
        self.prepared.set_peers(peers);
    }

    /// Serves until `shutdown` resolves, then removes the control socket.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ClusterError> {
        let OpenedHsm { prepared, listener, seat, control, .. } = self;
        let served = prepared.serve(listener, shutdown).await;
        if let Some((path, task)) = control {
            task.abort();
            let _ = task.await;
            // A crash leaves it; the next start replaces it.
            let _ = std::fs::remove_file(path);
        }
        served?;
        tracing::info!(hsm = %seat.hsm_id, "stopped");
        Ok(())
    }

    /// Serves in a task of its own until [`RunningHsm::stop`] (or drop).
    pub fn spawn(self) -> RunningHsm {
        let seat = self.seat.clone();
        let status = self.prepared.status();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve(async {
            stopped.await.ok();
        }));
        RunningHsm { seat, status, stop: Some(stop), task: Some(task) }
    }
}

/// An HSM serving in a task of this process; dropping it tells it to stop.
#[derive(Debug)]
pub struct RunningHsm {
    seat: Seat,
    status: HsmStatus,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ClusterError>>>,
}

impl RunningHsm {
    pub fn seat(&self) -> &Seat {
        &self.seat
    }

    /// What it says of itself while it serves (activated or not).
    pub fn status(&self) -> &HsmStatus {
        &self.status
    }

    /// Stops it and waits until it has shut down (its port then refuses
    /// connections); the error it stopped with, if any.
    pub async fn stop(mut self) -> Result<(), ClusterError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait().await
    }

    /// Waits until it stops, on its own (an error) or when told to.
    pub async fn wait(&mut self) -> Result<(), ClusterError> {
        match self.task.as_mut() {
            Some(task) => {
                let served = task.await.map_err(ClusterError::step("an HSM task failed"));
                self.task = None;
                served?
            }
            None => Ok(()),
        }
    }
}

impl Drop for RunningHsm {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves the control socket (backups) beside the store, unless the HSM
/// keeps no store on disk; without a cluster key, backups are off and the
/// HSM serves anyway. The task serving it, if it does.
fn spawn_control(prepared: &Prepared, settings: &Settings) -> Option<JoinHandle<()>> {
    if settings.ephemeral.unwrap_or(false) {
        return None;
    }
    let dir = settings.data_dir.as_ref()?;
    let cluster_key = match settings.cluster_key() {
        Ok(key) => key,
        Err(e) => {
            tracing::warn!(error = %e, "no cluster key: the control socket (online backups) is off");
            return None;
        }
    };
    let handle = prepared.backup_handle(cluster_key);
    let path = dir.join(CONTROL_SOCKET);
    Some(tokio::spawn(async move {
        if let Err(e) = serve_control(path.clone(), handle).await {
            tracing::warn!(path = %path.display(), error = %e, "control socket unavailable; backups need the daemon stopped");
        }
    }))
}
