//! The cluster's identity on disk: the emulator's roots, each cluster's
//! key pair, CSR and certificates, and the customer's chain once
//! initialized. (PENDING: filled in when the pki work lands.)

use std::path::Path;

use crate::{
    cluster::LocalCluster,
    control::{
        api::ApiError,
        state::{Certificates, Millis},
    },
};

#[derive(Debug)]
pub struct EmulatorRoots;

pub(super) fn roots(_dir: &Path) -> Result<EmulatorRoots, ApiError> {
    Ok(EmulatorRoots)
}

pub(super) fn new_cluster_identity(
    _dir: &Path,
    _roots: &EmulatorRoots,
    _cluster: &str,
    _hsm: &str,
) -> Result<Certificates, ApiError> {
    Ok(Certificates::default())
}

pub(super) async fn initialize(
    _dir: &Path,
    _local: &mut LocalCluster,
    _chain: (&str, &str, &str),
    _now: Millis,
) -> Result<(), ApiError> {
    Err(ApiError::InternalFailure("pending".into()))
}

pub(super) async fn inherit(_from: &Path, _to: &Path, _local: &mut LocalCluster) -> Result<Certificates, ApiError> {
    Err(ApiError::InternalFailure("pending".into()))
}
