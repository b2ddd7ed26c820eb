//! [`ClusterBuilder`]: what a new cluster is (size, id, type, mode, the
//! cluster it clones, where its HSMs go), checked, then written to a
//! directory as [`LocalCluster`] reads it.

use std::path::{Path, PathBuf};

use super::{
    Addressing, ClusterError, ClusterMaterial, Durability, LocalCluster, MAX_HSMS, NewMaterial, Plan,
    local::{CONFIG_OF_FIRST, link_peers, mode_of, prepare_hsms},
};
use crate::{
    determinism::{self, Stream},
    model::{ClusterId, ClusterMode, HsmType, Password},
    settings::Settings,
};

/// A new cluster, as `hsm-daemon init` takes it: one HSM of type
/// hsm2m.medium in FIPS mode on a free 127.0.0.1 port unless told
/// otherwise. [`ClusterBuilder::create`] writes it.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    hsms: u8,
    cluster_id: Option<ClusterId>,
    hsm_type: HsmType,
    mode: Option<ClusterMode>,
    clone_of: Option<PathBuf>,
    addressing: Addressing,
    deterministic: Option<u64>,
    appliance_password: Option<Password>,
    durability: Durability,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        ClusterBuilder {
            hsms: 1,
            cluster_id: None,
            hsm_type: HsmType::Hsm2mMedium,
            mode: None,
            clone_of: None,
            addressing: Addressing::default(),
            deterministic: None,
            appliance_password: None,
            durability: Durability::Synced,
        }
    }
}

impl ClusterBuilder {
    /// How many HSMs (1 to [`MAX_HSMS`]; default 1).
    pub fn hsms(mut self, hsms: u8) -> Self {
        self.hsms = hsms;
        self
    }

    /// The cluster id (default: a new random `cluster-...`).
    pub fn cluster_id(mut self, id: Option<ClusterId>) -> Self {
        self.cluster_id = id;
        self
    }

    pub fn hsm_type(mut self, hsm_type: HsmType) -> Self {
        self.hsm_type = hsm_type;
        self
    }

    /// FIPS or NON_FIPS, fixed for the cluster's life (default: FIPS; a
    /// clone's, its source's).
    pub fn mode(mut self, mode: Option<ClusterMode>) -> Self {
        self.mode = mode;
        self
    }

    /// A clone of the cluster whose material is in `source`, as CloudHSM
    /// creates a cluster from a backup: its own id, CA and certificates,
    /// the source's cluster key (its backups restore here) and masking key
    /// (keys move between the two).
    pub fn clone_of(mut self, source: Option<PathBuf>) -> Self {
        self.clone_of = source;
        self
    }

    /// Where the HSMs listen, how they are reached, where they keep state.
    pub fn addressing(mut self, addressing: Addressing) -> Self {
        self.addressing = addressing;
        self
    }

    /// `--deterministic`: the cluster's and HSMs' ids from this seed.
    pub fn deterministic(mut self, seed: Option<u64>) -> Self {
        self.deterministic = seed;
        self
    }

    /// The appliance user's password (default: 32 random characters).
    pub fn appliance_password(mut self, password: Password) -> Self {
        self.appliance_password = Some(password);
        self
    }

    /// [`Durability::Unsynced`] for a throwaway cluster (tests).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Checks everything, then writes the material and one config file per
    /// HSM (each naming the others as peers) into `dir`. Refuses a
    /// directory that already holds a cluster. The plan says where each HSM
    /// listens and how clients reach it (for `client.env`).
    pub fn create(&self, dir: &Path) -> Result<(LocalCluster, Plan), ClusterError> {
        if !(1..=MAX_HSMS).contains(&self.hsms) {
            return Err(ClusterError::refused(format!("a cluster holds 1 to {MAX_HSMS} HSMs, not {}", self.hsms)));
        }
        let mode = match (self.mode, &self.clone_of) {
            (Some(mode), _) => mode,
            (None, Some(source)) => mode_of(&Settings::from_file(&source.join(CONFIG_OF_FIRST))?, source)?,
            (None, None) => ClusterMode::Fips,
        };
        let plan = self.addressing.plan(usize::from(self.hsms))?;
        if LocalCluster::holds_cluster(dir) {
            return Err(ClusterError::refused(format!(
                "{} already holds a cluster ({CONFIG_OF_FIRST} exists); nothing was changed",
                dir.display()
            )));
        }
        let mut rng = determinism::rng(self.deterministic, Stream::Cluster, 0);
        let new = NewMaterial {
            cluster_id: self.cluster_id.clone(),
            appliance_password: self.appliance_password.clone(),
            durability: self.durability,
        };
        let mut material = match &self.clone_of {
            None => ClusterMaterial::load_or_create(dir, &new, &mut rng),
            Some(source) => ClusterMaterial::create_clone(dir, source, &new, &mut rng),
        }
        .map_err(ClusterError::step("preparing the cluster material"))?;
        if let Some(path) = &self.addressing.mounted_at {
            material.served_dir.clone_from(path);
        }
        prepare_hsms(&material, 1, &plan.placements, (self.hsm_type, mode), &mut rng)?;
        link_peers(&material, &plan.peers)?;
        Ok((LocalCluster::new(material, plan.placements.len()), plan))
    }
}
