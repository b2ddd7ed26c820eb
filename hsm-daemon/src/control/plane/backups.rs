//! Backups as CloudHSM takes them: of a running HSM, through its control
//! socket (the storage layer's sealed backups, consistent while it
//! serves), on a schedule, when an HSM is added and before the last one is
//! deleted; and copies of them for other regions.

use std::{fs, path::PathBuf};

use serde_json::Value;

use super::{ControlPlane, Inner, internal};
use crate::{
    cluster::CONTROL_SOCKET,
    control::{
        api::ApiError,
        state::{BackupState, ClusterState, rules::invalid},
    },
    service::control::request_backup,
    settings::Settings,
};

impl ControlPlane {
    /// Backs cluster `id` up from one of its running HSMs. A failure is
    /// logged and leaves no backup behind (the operation that asked goes
    /// on, as AWS's do when a backup fails).
    pub(super) async fn take_backup(&self, inner: &mut Inner, id: &str) -> Option<String> {
        let socket = self.backup_socket(inner, id)?;
        let (now, settles_at) = (self.now(), self.settles_at());
        let backup = match inner.state.add_backup(id, now, settles_at, &mut inner.rng) {
            Ok(backup) => backup.id.clone(),
            Err(e) => {
                tracing::warn!(cluster = %id, error = %e, "no backup taken");
                return None;
            }
        };
        let out = self.backup_path(&backup);
        match request_backup(&socket, &out).await {
            Ok(Some(())) => {
                tracing::info!(cluster = %id, %backup, "backup taken");
                Some(backup)
            }
            outcome => {
                let reason = match outcome {
                    Err(e) => e,
                    Ok(_) => format!("no HSM answered on {}", socket.display()),
                };
                tracing::warn!(cluster = %id, %backup, %reason, "backup failed");
                inner.state.backups.remove(&backup);
                None
            }
        }
    }

    /// The control socket of a running HSM of cluster `id`.
    fn backup_socket(&self, inner: &Inner, id: &str) -> Option<PathBuf> {
        let cluster = inner.state.clusters.get(id)?;
        let local = inner.clusters.get(id)?;
        let hsm = cluster.live_hsms().find(|h| local.running(h.index).is_some())?;
        let settings = local.settings(hsm.index, &Settings::default()).ok()?;
        Some(settings.data_dir?.join(CONTROL_SOCKET))
    }

    /// Takes the scheduled backups that are due, of initialized clusters
    /// with a running HSM.
    pub(super) async fn take_due_backups(&self, inner: &mut Inner) {
        let now = self.now();
        let interval = i64::try_from(self.config.backup_interval.as_millis()).unwrap_or(i64::MAX / 2);
        let due: Vec<String> = inner
            .state
            .clusters
            .values()
            .filter(|c| matches!(c.state, ClusterState::Initialized | ClusterState::Active))
            .filter(|c| c.next_backup_at.is_none_or(|at| at <= now))
            .map(|c| c.id.clone())
            .collect();
        for id in due {
            self.take_backup(inner, &id).await;
            if let Some(cluster) = inner.state.clusters.get_mut(&id) {
                cluster.next_backup_at = Some(now + interval);
            }
        }
    }

    /// `copy-backup-to-region`: the copy is a record in the destination
    /// region and a copy of the file.
    pub(super) fn copy_backup(&self, inner: &mut Inner, region: &str, input: &Value) -> Result<Value, ApiError> {
        let (now, settles_at) = (self.now(), self.settles_at());
        let (copy, shown) = inner.state.copy_backup(region, input, now, settles_at, &mut inner.rng)?;
        let source = inner.state.backups.get(&copy).and_then(|b| b.source_backup.clone()).unwrap_or_default();
        if let Err(e) = fs::copy(self.backup_path(&source), self.backup_path(&copy)) {
            inner.state.backups.remove(&copy);
            return Err(internal("copying the backup")(e));
        }
        Ok(shown)
    }

    /// The backup a new cluster is made from, the directory of the cluster
    /// it was taken of (whose keys open it), and whether that cluster had
    /// been initialized.
    pub(super) fn source_of(
        &self,
        inner: &Inner,
        region: &str,
        backup: &str,
    ) -> Result<(String, PathBuf, bool), ApiError> {
        let record = inner.state.backup(region, backup)?;
        if record.state != BackupState::Ready {
            return Err(invalid(format!("SourceBackupId: backup {backup} is {}", record.state.as_str())));
        }
        Ok((record.id.clone(), self.cluster_dir(&record.cluster_id), record.initialized))
    }
}
