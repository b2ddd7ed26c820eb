//! The gRPC face of one HSM: TLS, the permission gate, and thin handlers that
//! parse a request, call one model operation and map the result.
//!
//! # Layout
//! - `serve`: [`serve`] and [`Prepared`]: the services on a listener until
//!   `shutdown` resolves, behind their layers, with the background tasks.
//! - `state`: `HsmState`, the HSM and what its handlers share: the model
//!   behind its lock, the store and group commit, fail-stop, the generators.
//! - `gate`: the tower layer that, before any handler runs, classifies the
//!   RPC as an [`Operation`], resolves the session token and checks the
//!   permission table (`Hsm::admit`).
//! - `cluster`, `session`, `user`, `key`, `crypto`, `quorum`: one file per
//!   service; `quorum` also holds the approval check that gated calls make.
//! - `convert`: proto fields into model types (`TryFrom`-style parsing).
//! - `masked`: masked objects (copying keys and users between HSMs).
//! - `sync`: background sync with the cluster's other HSMs, and cloning.
//! - `listener`: accepting connections: the connection limit, handshake
//!   and idle timeouts, TLS.
//! - `trust`: the client-certificate policy every handshake is verified
//!   against, and closing connections it stops admitting.
//! - `mtls`: `hsm.v1.MtlsService`, trust anchors and enforcement.
//! - `status`: the one `ModelError` to `Status` mapping.
//! - `layer`: the one shape of the layers that see every call with the
//!   HSM's state (`gate`, `audit`).
//! - `audit`: the layer around the gate that writes the audit log, and
//!   `hsm.v1.AuditService`, which reads it.
//! - `health`: the standard health service and server reflection, open to
//!   all (outside the permission table).
//! - `faults`: fault injection, snapshots and resets (`--faults` only): a
//!   layer on each side of the gate and the `hsm.testing.v1` service.
//! - `metered`: what a metrics scrape reads from the HSM (see
//!   [`crate::metrics`]; its layer is the outermost).
//!
//! Here: [`ServeError`], [`operation`] (every RPC classified for the
//! permission table), and what every handler uses (`blocking`, `caller`).

mod audit;
mod cluster;
pub mod control;
mod convert;
mod crypto;
mod faults;
mod gate;
mod health;
mod key;
mod layer;
mod listener;
mod masked;
mod metered;
mod mtls;
mod quorum;
#[cfg(feature = "fuzzing")]
pub(crate) mod rig;
mod serve;
mod session;
mod state;
mod status;
mod sync;
mod trust;
mod user;

use std::future::Future;

use hsm_proto::v1::Rpc;
use tonic::{Request, Status};

use crate::{
    audit::AuditError,
    model::{Caller, ModelError, Operation},
    store::StoreError,
};

pub use self::serve::{HsmStatus, Prepared, serve};
pub(crate) use self::state::HsmState;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("gRPC server: {0}")]
    Transport(#[source] tonic::transport::Error),
    #[error("setting up the HSM: {0}")]
    Setup(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("cloning from {peer}: {reason}")]
    Clone { peer: String, reason: String },
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("starting the store's committer: {0}")]
    Committer(#[source] std::io::Error),
}

/// Classifies every RPC as an operation of the permission table. Exhaustive:
/// an RPC added to the protocol does not compile until it is classified here.
pub fn operation(rpc: Rpc) -> Operation {
    match rpc {
        Rpc::GetClusterInfo => Operation::GetClusterInfo,
        Rpc::GetSyncStatus => Operation::GetSyncStatus,
        Rpc::ExtractMaskedObject => Operation::ExtractMaskedObject,
        Rpc::InsertMaskedObject => Operation::InsertMaskedObject,
        Rpc::Activate => Operation::ActivateCluster,
        Rpc::Login => Operation::Login,
        Rpc::Logout => Operation::Logout,
        Rpc::Ping => Operation::Ping,
        Rpc::CreateUser => Operation::CreateUser,
        Rpc::DeleteUser => Operation::DeleteUser,
        Rpc::ListUsers => Operation::ListUsers,
        Rpc::ChangeOwnPassword => Operation::ChangeOwnPassword,
        Rpc::ChangeUserPassword => Operation::ChangeAnyPassword,
        Rpc::GenerateSymmetricKey => Operation::GenerateSymmetricKey,
        Rpc::GenerateKeyPair => Operation::GenerateKeyPair,
        Rpc::ImportKey => Operation::ImportKey,
        Rpc::ExportPublicKey => Operation::ExportPublicKey,
        Rpc::WrapKey => Operation::WrapKey,
        Rpc::UnwrapKey => Operation::UnwrapKey,
        Rpc::DeleteKey => Operation::DeleteKey,
        Rpc::ShareKey => Operation::ShareKey,
        Rpc::UnshareKey => Operation::UnshareKey,
        Rpc::SetKeyAttribute => Operation::SetKeyAttribute,
        Rpc::ListKeys => Operation::ListKeys,
        Rpc::Encrypt => Operation::Encrypt,
        Rpc::Decrypt => Operation::Decrypt,
        Rpc::Sign => Operation::Sign,
        Rpc::Verify => Operation::Verify,
        Rpc::Digest => Operation::Digest,
        Rpc::GenerateRandom => Operation::GenerateRandom,
        Rpc::ReadAuditLog => Operation::ReadAuditLog,
        Rpc::RegisterTrustAnchor => Operation::RegisterTrustAnchor,
        Rpc::DeregisterTrustAnchor => Operation::DeregisterTrustAnchor,
        Rpc::ListTrustAnchors => Operation::ListTrustAnchors,
        Rpc::SetMtlsEnforcement => Operation::SetMtlsEnforcement,
        Rpc::GetMtlsEnforcement => Operation::GetMtlsEnforcement,
        Rpc::GenerateQuorumToken => Operation::GenerateQuorumToken,
        Rpc::ListQuorumTokens => Operation::ListQuorumTokens,
        Rpc::DeleteQuorumTokens => Operation::DeleteQuorumTokens,
        Rpc::SetQuorumValue => Operation::SetQuorumValue,
        Rpc::ListQuorumValues => Operation::ListQuorumValues,
        Rpc::RegisterQuorumKey => Operation::RegisterQuorumKey,
        Rpc::ChangeMfa => Operation::ChangeMfa,
    }
}

/// Runs CPU-heavy work (Argon2) on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ModelError> + Send + 'static,
) -> Result<T, ModelError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| ModelError::Internal(format!("blocking task failed: {e}")))?
}

/// The boxed future of the tower layers around the handlers.
type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// The caller the gate established for this request.
fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request.extensions().get::<Caller>().cloned().ok_or_else(|| Status::internal("request did not pass the gate"))
}

#[cfg(test)]
mod tests;
