//! `create-hsm`, `delete-hsm` and `initialize-cluster`: the operations
//! that start, stop and re-key real HSMs.

use serde_json::{Value, json};

use super::{ControlPlane, Inner, identity, internal};
use crate::{
    cluster::{Addressing, Launch, LocalCluster, MAX_HSMS},
    control::{
        api::ApiError,
        state::{
            BackupState, ClusterState, HsmState,
            rules::{invalid, new_hsm, str_member},
        },
    },
    model::{ClusterId, ClusterMode, HsmType},
    settings::Settings,
};

/// How the control plane starts an HSM: with its control socket, which
/// backups are written through.
pub(super) fn launch() -> Launch {
    Launch { control_socket: true, ..Launch::default() }
}

impl ControlPlane {
    /// `create-hsm`: an HSM of the cluster on an address of its own,
    /// serving before the response. The first HSM of a new cluster has a
    /// new store (the precrypto officer) and makes the cluster's CSR; the
    /// first of a cluster made from a backup restores it; later ones clone
    /// users and keys from a running HSM, or, when none runs, restore the
    /// cluster's latest backup (as CloudHSM does).
    pub(super) async fn create_hsm(&self, inner: &mut Inner, region: &str, input: &Value) -> Result<Value, ApiError> {
        let id = str_member(input, "ClusterId").unwrap_or_default();
        let zone = str_member(input, "AvailabilityZone").unwrap_or_default();
        let subnet = inner.state.check_new_hsm(region, &id, &zone, usize::from(MAX_HSMS))?;
        let listen =
            self.config.pool.allocate(str_member(input, "IpAddress").as_deref(), &inner.state.addresses_in_use())?;
        let cluster = inner.state.cluster(region, &id)?.clone();
        let dir = self.cluster_dir(&id);
        if !inner.clusters.contains_key(&id) && LocalCluster::holds_cluster(&dir) {
            let local = LocalCluster::open(&dir).map_err(internal("opening the cluster's files"))?;
            inner.clusters.insert(id.clone(), local);
        }
        let flags = &self.config.hsm_flags;
        // The cluster whose certificates a new cluster's first HSM takes:
        // that of an initialized cluster it is made from a backup of.
        let mut inherit = None;
        let index = match inner.clusters.get_mut(&id) {
            None => {
                // The cluster's first HSM ever.
                let mode = ClusterMode::parse("Mode", &cluster.mode).map_err(|e| invalid(e.to_string()))?;
                let hsm_type = HsmType::parse(&cluster.hsm_type).map_err(|e| invalid(e.to_string()))?;
                let source = match &cluster.source_backup_id {
                    Some(backup) => Some(self.source_of(inner, region, backup)?),
                    None => None,
                };
                let mut builder = LocalCluster::builder()
                    .cluster_id(Some(ClusterId::parse(&id).map_err(|e| invalid(e.to_string()))?))
                    .hsm_type(hsm_type)
                    .mode(Some(mode))
                    .durability(self.config.durability)
                    .addressing(Addressing { listen: Some(listen), ..Addressing::default() });
                if let Some((_, source_dir, _)) = &source {
                    builder = builder.clone_of(Some(source_dir.clone()));
                }
                let (mut local, _plan) = builder.create(&dir).map_err(internal("creating the cluster's files"))?;
                if let Some((backup, _, _)) = &source {
                    local.restore_into(1, &self.backup_path(backup), true).map_err(internal("restoring the backup"))?;
                }
                local.start(1, flags, &launch()).await.map_err(internal("starting the HSM"))?;
                inner.clusters.insert(id.clone(), local);
                inherit = source.filter(|(_, _, initialized)| *initialized).map(|(_, source_dir, _)| source_dir);
                1
            }
            Some(local) => {
                let index = local.prepare_hsm_at(listen).map_err(internal("preparing the HSM's files"))?;
                let started = match local.running_address() {
                    Some(source) => {
                        let clone = Settings { clone_from: Some(source.to_string()), ..flags.clone() };
                        local.start(index, &clone, &launch()).await
                    }
                    None => {
                        let latest = inner
                            .state
                            .backups
                            .values()
                            .filter(|b| b.cluster_id == id && b.state == BackupState::Ready)
                            .max_by_key(|b| b.created)
                            .map(|b| b.id.clone());
                        if let Some(backup) = latest {
                            local
                                .restore_into(index, &self.backup_path(&backup), false)
                                .map_err(internal("restoring the cluster's latest backup"))?;
                        }
                        local.start(index, flags, &launch()).await
                    }
                };
                started.map_err(internal("starting the HSM"))?;
                index
            }
        };
        let local = inner.clusters.get_mut(&id).ok_or_else(|| ApiError::InternalFailure("cluster vanished".into()))?;
        let hsm_id = local
            .running(index)
            .map(|r| r.seat().hsm_id.to_string())
            .ok_or_else(|| ApiError::InternalFailure("the new HSM is not running".into()))?;
        if cluster.state == ClusterState::Uninitialized && inherit.is_none() {
            // The cluster's CSR is made by its (only) HSM, over the
            // cluster's own key pair.
            let certificates = identity::new_cluster_identity(&dir, &self.roots, &id, &hsm_id)?;
            inner.state.cluster_mut(region, &id)?.certificates = certificates;
        }
        let hsm = new_hsm(
            (hsm_id, index),
            &zone,
            subnet,
            (listen.ip().to_string(), listen.port()),
            self.settles_at(),
            &mut inner.rng,
        );
        let shown = hsm.to_api(&cluster);
        let had_running = cluster.live_hsms().next().is_some();
        inner.state.cluster_mut(region, &id)?.hsms.push(hsm);
        if let Some(source_dir) = inherit {
            // A cluster made from a backup of an initialized cluster has its
            // certificates: its HSMs serve under them at once.
            let local =
                inner.clusters.get_mut(&id).ok_or_else(|| ApiError::InternalFailure("cluster vanished".into()))?;
            let certificates = identity::inherit(&source_dir, &dir, local).await?;
            let record = inner.state.cluster_mut(region, &id)?;
            record.certificates = certificates;
            record.state = ClusterState::Initialized;
        }
        if had_running && cluster.state != ClusterState::Uninitialized {
            // AWS backs the cluster up when an HSM is added.
            self.take_backup(inner, &id).await;
        }
        Ok(json!({"Hsm": shown}))
    }

    /// `delete-hsm`: stops the HSM; the others go on. The last HSM of an
    /// initialized cluster is backed up first, so that a new HSM restores
    /// its users and keys.
    pub(super) async fn delete_hsm(&self, inner: &mut Inner, region: &str, input: &Value) -> Result<Value, ApiError> {
        let id = str_member(input, "ClusterId").unwrap_or_default();
        let hsm = inner.state.hsm_to_delete(region, input)?;
        let cluster = inner.state.cluster(region, &id)?;
        let last = cluster.live_hsms().count() == 1;
        if last && !matches!(cluster.state, ClusterState::Uninitialized | ClusterState::CreateInProgress) {
            self.take_backup(inner, &id).await;
        }
        if let Some(local) = inner.clusters.get_mut(&id) {
            local.retire(hsm.index).await.map_err(internal("stopping the HSM"))?;
        }
        let settles_at = self.settles_at();
        let cluster = inner.state.cluster_mut(region, &id)?;
        if let Some(record) = cluster.hsms.iter_mut().find(|h| h.id == hsm.id) {
            record.state = HsmState::DeleteInProgress;
            record.settles_at = Some(settles_at);
        }
        Ok(json!({"HsmId": hsm.id}))
    }

    /// `initialize-cluster`: the signed certificate must be the cluster's
    /// CSR signed by the trust anchor; the HSMs then serve under it.
    pub(super) async fn initialize(&self, inner: &mut Inner, region: &str, input: &Value) -> Result<Value, ApiError> {
        let id = str_member(input, "ClusterId").unwrap_or_default();
        let cluster = inner.state.cluster(region, &id)?;
        if cluster.state != ClusterState::Uninitialized {
            return Err(invalid(format!(
                "ClusterId: cluster {id} is {}; only an UNINITIALIZED cluster is initialized",
                cluster.state.as_str()
            )));
        }
        let csr = cluster.certificates.cluster_csr.clone().ok_or_else(|| {
            invalid(format!("ClusterId: cluster {id} has no HSM yet, so no CSR to sign; create an HSM first"))
        })?;
        let signed = str_member(input, "SignedCert").unwrap_or_default();
        let anchor = str_member(input, "TrustAnchor").unwrap_or_default();
        let local = inner
            .clusters
            .get_mut(&id)
            .ok_or_else(|| invalid(format!("ClusterId: cluster {id} has no running HSM to initialize")))?;
        identity::initialize(&self.cluster_dir(&id), local, (&csr, &signed, &anchor), self.now()).await?;
        let settles_at = self.settles_at();
        let cluster = inner.state.cluster_mut(region, &id)?;
        cluster.certificates.cluster_certificate = Some(signed);
        cluster.state = ClusterState::InitializeInProgress;
        cluster.settles_at = Some(settles_at);
        cluster.next_backup_at =
            Some(self.now() + i64::try_from(self.config.backup_interval.as_millis()).unwrap_or(i64::MAX / 2));
        Ok(json!({
            "State": "INITIALIZE_IN_PROGRESS",
            "StateMessage": "Cluster is initializing. State will change to INITIALIZED upon completion.",
        }))
    }
}
