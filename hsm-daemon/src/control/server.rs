//! [`ControlServer`]: the control plane and its API on a port, with the
//! schedule (states, backups) running beside them: what `hsm-daemon dev`,
//! `hsm-daemon control-plane` and test suites start.

use std::{net::SocketAddr, sync::Arc};

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use super::{
    api::{self, ApiConfig, ApiError, Handler},
    clock::WallClock,
    plane::{ControlPlane, PlaneConfig},
};

/// The control plane serving its API until [`ControlServer::stop`] (or
/// drop, which stops the API without waiting for the HSMs).
#[derive(Debug)]
pub struct ControlServer {
    plane: Arc<ControlPlane>,
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    api: Option<JoinHandle<std::io::Result<()>>>,
    schedule: JoinHandle<()>,
}

impl ControlServer {
    /// Opens the control plane in `plane.dir` (starting the HSMs it had
    /// running) and serves the API on `listener`.
    pub async fn start(
        plane: PlaneConfig,
        api: ApiConfig,
        clock: Arc<dyn WallClock>,
        listener: TcpListener,
    ) -> Result<Self, ApiError> {
        let address = listener.local_addr().map_err(|e| ApiError::InternalFailure(format!("the API's port: {e}")))?;
        let plane = Arc::new(ControlPlane::open(plane, clock).await?);
        let schedule = tokio::spawn(Arc::clone(&plane).run_schedule());
        let (stop, stopped) = oneshot::channel::<()>();
        let handler: Arc<dyn Handler> = Arc::clone(&plane) as Arc<dyn Handler>;
        let served = tokio::spawn(api::serve(listener, handler, api, async {
            stopped.await.ok();
        }));
        tracing::info!(%address, "CloudHSM v2 API listening");
        Ok(ControlServer { plane, address, stop: Some(stop), api: Some(served), schedule })
    }

    /// Where the API listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The URL the AWS tools take (`AWS_ENDPOINT_URL_CLOUDHSMV2`,
    /// `--endpoint-url`, boto3's `endpoint_url`).
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn plane(&self) -> &Arc<ControlPlane> {
        &self.plane
    }

    /// The variables the AWS CLI and SDKs read, for `client.env`: the
    /// endpoint, the region, and, unless the server verifies signatures
    /// (the caller then brings the real ones), dummy credentials it
    /// accepts.
    pub fn client_env(&self, verifies: bool) -> Vec<(String, String)> {
        let region = self.plane.config().region.clone();
        let mut env = vec![
            // What the AWS CLI and the SDKs read: the service id "CloudHSM
            // V2" in upper case, spaces as underscores.
            ("AWS_ENDPOINT_URL_CLOUDHSM_V2".into(), self.endpoint_url()),
            // The same without the underscore, as scripts written for other
            // emulators spell it; no AWS tool reads it.
            ("AWS_ENDPOINT_URL_CLOUDHSMV2".into(), self.endpoint_url()),
            ("AWS_REGION".into(), region.clone()),
            ("AWS_DEFAULT_REGION".into(), region),
        ];
        if !verifies {
            env.push(("AWS_ACCESS_KEY_ID".into(), "hsm-emulator".into()));
            env.push(("AWS_SECRET_ACCESS_KEY".into(), "any-secret-is-accepted".into()));
        }
        env
    }

    /// Stops the API (requests in flight finish), the schedule and every
    /// HSM, and waits for them.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(api) = self.api.take()
            && let Ok(Err(e)) = api.await
        {
            tracing::warn!(error = %e, "the API stopped with an error");
        }
        self.schedule.abort();
        self.plane.shutdown().await;
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.schedule.abort();
    }
}
