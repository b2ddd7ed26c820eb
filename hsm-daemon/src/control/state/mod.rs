//! The control plane's state: clusters, their HSMs, backups, tags and
//! resource policies, and the rules of the API over them. Pure: no I/O,
//! the clock and randomness passed in; [`super::plane`] does what needs
//! the machine (HSMs, files) around these calls.
//!
//! States move as AWS's do: an operation leaves a resource in its
//! `..._IN_PROGRESS` state with a time it settles at (now plus the
//! configured transition delay), and [`State::settle`] moves it on when
//! that time has come, on the next request.
//!
//! # Layout
//! - `records`: the resources as stored, and as the API shows them.
//! - `query`: filters and pages.
//! - `rules`: the checks and changes of each operation.

mod query;
mod records;
pub mod rules;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use self::{
    query::{Filters, page},
    records::{
        Backup, BackupState, Certificates, Cluster, ClusterState, Hsm, HsmState, Millis, Tag, arn, seconds, tags_json,
    },
    rules::{NewCluster, parse_tags},
};
use crate::control::api::ApiError;

/// How long a deleted backup waits in `PENDING_DELETION` (AWS: 7 days),
/// during which `restore-backup` brings it back.
pub const PENDING_DELETION: Millis = 7 * DAY;
pub const DAY: Millis = 24 * 60 * 60 * 1000;

/// Everything the control plane knows, as it persists it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub clusters: BTreeMap<String, Cluster>,
    pub backups: BTreeMap<String, Backup>,
}

/// What settling asks of the machine.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Backups deleted for good: their files go.
    pub deleted_backups: Vec<String>,
}

impl State {
    /// Moves every resource whose state in progress has had its time on to
    /// the next state, and applies the retention policies and the
    /// pending-deletion window.
    pub fn settle(&mut self, now: Millis) -> Settled {
        let mut settled = Settled::default();
        for cluster in self.clusters.values_mut() {
            if cluster.settles_at.is_some_and(|at| at <= now) {
                cluster.settles_at = None;
                let (state, message) = match cluster.state {
                    ClusterState::CreateInProgress => (ClusterState::Uninitialized, None),
                    ClusterState::InitializeInProgress => (ClusterState::Initialized, None),
                    ClusterState::DeleteInProgress => (ClusterState::Deleted, None),
                    other => (other, cluster.state_message.take()),
                };
                cluster.state = state;
                cluster.state_message = message;
            }
            for hsm in &mut cluster.hsms {
                if hsm.settles_at.is_some_and(|at| at <= now) {
                    hsm.settles_at = None;
                    hsm.state = match hsm.state {
                        HsmState::CreateInProgress => HsmState::Active,
                        HsmState::DeleteInProgress => HsmState::Deleted,
                        other => other,
                    };
                }
            }
            // A deleted HSM leaves the cluster's list, as in AWS.
            cluster.hsms.retain(|h| h.state != HsmState::Deleted);
        }
        for backup in self.backups.values_mut() {
            if backup.settles_at.is_some_and(|at| at <= now) && backup.state == BackupState::CreateInProgress {
                backup.settles_at = None;
                backup.state = BackupState::Ready;
            }
            if backup.state == BackupState::PendingDeletion && backup.delete_at.is_some_and(|at| at <= now) {
                backup.state = BackupState::Deleted;
                settled.deleted_backups.push(backup.id.clone());
            }
        }
        self.expire(now, &mut settled);
        settled
    }

    /// Deletes the backups older than their cluster's retention, except
    /// those that never expire and each cluster's latest (as AWS keeps it).
    fn expire(&mut self, now: Millis, settled: &mut Settled) {
        let mut latest: BTreeMap<&str, Millis> = BTreeMap::new();
        for b in self.backups.values().filter(|b| b.state == BackupState::Ready) {
            let at = latest.entry(b.cluster_id.as_str()).or_insert(b.created);
            *at = (*at).max(b.created);
        }
        let mut expired = Vec::new();
        for b in self.backups.values().filter(|b| b.state == BackupState::Ready && !b.never_expires) {
            let Some(cluster) = self.clusters.get(&b.cluster_id) else { continue };
            let retention = Millis::from(cluster.backup_retention_days) * DAY;
            if b.created + retention <= now && latest.get(b.cluster_id.as_str()) != Some(&b.created) {
                expired.push(b.id.clone());
            }
        }
        for id in expired {
            if let Some(b) = self.backups.get_mut(&id) {
                b.state = BackupState::Deleted;
                b.delete_at = Some(now);
                settled.deleted_backups.push(id);
            }
        }
    }

    /// Cluster `id` of `region`.
    pub fn cluster(&self, region: &str, id: &str) -> Result<&Cluster, ApiError> {
        self.clusters.get(id).filter(|c| c.region == region).ok_or_else(|| not_found("cluster", id, region))
    }

    pub fn cluster_mut(&mut self, region: &str, id: &str) -> Result<&mut Cluster, ApiError> {
        self.clusters.get_mut(id).filter(|c| c.region == region).ok_or_else(|| not_found("cluster", id, region))
    }

    /// Backup `id` of `region`, unless deleted for good.
    pub fn backup(&self, region: &str, id: &str) -> Result<&Backup, ApiError> {
        self.backups
            .get(id)
            .filter(|b| b.region == region && b.state != BackupState::Deleted)
            .ok_or_else(|| not_found("backup", id, region))
    }

    pub fn backup_mut(&mut self, region: &str, id: &str) -> Result<&mut Backup, ApiError> {
        self.backups
            .get_mut(id)
            .filter(|b| b.region == region && b.state != BackupState::Deleted)
            .ok_or_else(|| not_found("backup", id, region))
    }

    /// Every address an HSM of any cluster holds (not yet deleted).
    pub fn addresses_in_use(&self) -> Vec<(String, u16)> {
        self.clusters
            .values()
            .flat_map(|c| c.hsms.iter())
            .filter(|h| h.state != HsmState::Deleted)
            .map(|h| (h.eni_ip.clone(), h.port))
            .collect()
    }
}

pub fn not_found(kind: &str, id: &str, region: &str) -> ApiError {
    ApiError::ResourceNotFound(format!("The {kind} {id} does not exist in {region}."))
}

#[cfg(test)]
mod tests;
