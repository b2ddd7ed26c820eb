//! Clusters on this machine: one library that makes a cluster's CA,
//! secrets and certificates, writes one config file per HSM, and runs the
//! HSMs, in this process or, from those files, as processes and
//! containers (`hsm-daemon run --config D/hsm-K.toml`).
//!
//! `hsm-daemon init` (and through it `deploy/compose.yaml` and the
//! Kubernetes Secret of `deploy/k8s`) writes the files; `hsm-daemon dev`
//! writes them if the directory holds none, then serves every HSM in its
//! own process; `testing::TestCluster` does the same in a test process,
//! in a temporary directory. All three go through [`LocalCluster`], so a
//! cluster is planned in one place: its id and type, the CA that issues
//! every HSM's certificate, the keys the HSMs share, each HSM's index, id,
//! master key, address and peers, and the limit of [`MAX_HSMS`].
//!
//! ```no_run
//! # async fn example() -> Result<(), hsm_daemon::cluster::ClusterError> {
//! use hsm_daemon::{cluster::{Launch, LocalCluster}, settings::Settings};
//!
//! let dir = std::path::Path::new("/tmp/cluster");
//! let (mut cluster, _plan) = LocalCluster::builder().hsms(2).create(dir)?;
//! cluster.start_all(&Settings::default(), &Launch::default()).await?;
//! let third = cluster.add_hsm(&Settings::default(), &Launch::default()).await?;
//! println!("HSM {third} at {:?}; clients trust {}", cluster.address(third), cluster.ca_pem());
//! cluster.stop(1).await?;
//! cluster.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`material`]: the files of a cluster (CA, secrets, each HSM's
//!   certificate, master key and config file, `client.env`).
//! - [`plan`]: where new HSMs listen and how they are reached
//!   ([`Addressing`], init's placement flags).
//! - [`hsm`]: one HSM in this process, from its settings: store opened,
//!   port bound ([`OpenedHsm`]), then serving ([`RunningHsm`]); `run` uses
//!   it alone.
//! - `local`: [`LocalCluster`]: the cluster in its directory, and its HSMs
//!   served here (start, stop, add, wait).
//! - `builder`: [`ClusterBuilder`], what a new cluster is, checked and
//!   written.
//! - `customer`: a cluster its customer has claimed ([`CustomerChain`]):
//!   the HSMs certified under the customer-signed cluster certificate, and
//!   the customer's CA trusted in its place.

mod builder;
mod customer;
pub mod hsm;
mod local;
pub mod material;
pub mod plan;

use std::error::Error as StdError;

pub use self::{
    builder::ClusterBuilder,
    customer::CustomerChain,
    hsm::{CONTROL_SOCKET, Launch, OpenedHsm, RunningHsm, Seat},
    local::LocalCluster,
    material::{ClusterMaterial, Durability, HsmPlacement, MaterialError, NewMaterial},
    plan::{Addressing, Plan},
};
use crate::{ServeError, settings::SettingsError};

/// The most HSMs a cluster holds (CloudHSM's limit): `dev --hsms`,
/// `init --hsms` and `--add`, seed files and [`LocalCluster`] all stop here.
pub const MAX_HSMS: u8 = 28;

/// Why a cluster could not be made, read, changed or run.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// What was asked cannot be done; the message says which setting and
    /// why, and nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// A step failed: `step` says which, the source why.
    #[error("{step}")]
    Step {
        step: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error(transparent)]
    Material(#[from] MaterialError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

impl ClusterError {
    pub(crate) fn refused(reason: impl Into<String>) -> Self {
        ClusterError::Refused(reason.into())
    }

    /// Wraps an error in the step that failed, for `map_err`.
    pub(crate) fn step<E: StdError + Send + Sync + 'static>(step: impl Into<String>) -> impl FnOnce(E) -> Self {
        move |source| ClusterError::Step { step: step.into(), source: Box::new(source) }
    }
}

#[cfg(test)]
mod tests;
