//! [`LocalCluster`]: a cluster whose files are in a directory of this
//! machine, and those of its HSMs that this process serves.
//!
//! The files are the cluster: HSM K is `D/hsm-K.toml` and what it names,
//! whether it runs here ([`LocalCluster::start`]), as `hsm-daemon run
//! --config D/hsm-K.toml`, or in a container. The HSMs served here take
//! the settings a caller passes (`dev`'s flags) over their files, as `run`
//! does, and a fresh free port each unless told otherwise; each names the
//! others' actual addresses as its peers.

use std::{
    future::Future,
    net::SocketAddr,
    ops::RangeInclusive,
    path::{Path, PathBuf},
};

use futures_util::future::{join_all, select_all};
use rand::{CryptoRng, SeedableRng as _, rngs::StdRng};

use zeroize::Zeroizing;

use super::{
    ClusterBuilder, ClusterError, ClusterMaterial, CustomerChain, HsmPlacement, Launch, MAX_HSMS, NewMaterial,
    OpenedHsm, RunningHsm, plan::free_local_port,
};
use crate::{
    model::{ClusterId, ClusterMode, HsmType},
    settings::Settings,
    store::{restore_backup, restore_backup_as_clone},
};

/// The config file of HSM 1, whose presence marks a directory that holds a
/// cluster.
pub(super) const CONFIG_OF_FIRST: &str = "hsm-1.toml";

/// A cluster on this machine: its material and config files in a
/// directory, and the HSMs of it served in this process. Dropping it stops
/// them (without waiting; [`LocalCluster::shutdown`] waits).
#[derive(Debug)]
pub struct LocalCluster {
    material: ClusterMaterial,
    /// HSM K at K - 1, one for each config file.
    hsms: Vec<Slot>,
}

/// One HSM of the cluster, as this process knows it.
#[derive(Debug, Default)]
struct Slot {
    /// Where it was last served here: its peers keep naming it, and it
    /// restarts on it.
    address: Option<SocketAddr>,
    running: Option<RunningHsm>,
    /// The flags and launch it was last started with through
    /// [`LocalCluster::start`] or [`LocalCluster::start_all`], to restart
    /// it alike (`adopt_customer_chain`).
    launched: Option<(Settings, Launch)>,
}

impl LocalCluster {
    /// A new cluster, to be written with [`ClusterBuilder::create`].
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    pub(super) fn new(material: ClusterMaterial, hsms: usize) -> Self {
        LocalCluster { material, hsms: (0..hsms).map(|_| Slot::default()).collect() }
    }

    /// Whether `dir` holds a cluster (HSM 1's config file).
    pub fn holds_cluster(dir: &Path) -> bool {
        dir.join(CONFIG_OF_FIRST).exists()
    }

    /// The cluster in `dir`, as an earlier [`ClusterBuilder::create`] (or
    /// `hsm-daemon init`) left it. Material missing beside the config files
    /// is made (the cluster and masking keys of material older than them,
    /// as `dev` and `init` always have).
    pub fn open(dir: &Path) -> Result<Self, ClusterError> {
        let material = ClusterMaterial::load_or_create(dir, &NewMaterial::default(), &mut StdRng::from_os_rng())
            .map_err(ClusterError::step("reading the cluster material"))?;
        let hsms = material.hsms().map_err(ClusterError::step("reading the HSMs' config files"))?.len();
        Ok(Self::new(material, hsms))
    }

    pub fn id(&self) -> &ClusterId {
        &self.material.cluster_id
    }

    /// The CA, its directory, the paths the config files use, `client.env`.
    pub fn material(&self) -> &ClusterMaterial {
        &self.material
    }

    /// The certificate (PEM) clients trust, to which every HSM's
    /// certificate chains: the cluster CA's, or the customer's CA once the
    /// cluster is claimed ([`LocalCluster::adopt_customer_chain`]).
    pub fn ca_pem(&self) -> &str {
        self.material.trusted_ca_pem()
    }

    /// How many HSMs the cluster has (config files), running or not.
    pub fn hsm_count(&self) -> usize {
        self.hsms.len()
    }

    /// HSM `index`'s config file (1-based).
    pub fn config_path(&self, index: usize) -> PathBuf {
        self.material.hsm_config_path(index)
    }

    /// HSM `index`'s certificate (PEM), which the CA issued.
    pub fn certificate_path(&self, index: usize) -> PathBuf {
        self.material.dir.join(format!("hsm-{index}.pem"))
    }

    /// Where each HSM listens by its config file, in order.
    pub fn configured_endpoints(&self) -> Result<Vec<String>, ClusterError> {
        let hsms = self.material.hsms().map_err(ClusterError::step("reading the HSMs' config files"))?;
        Ok(hsms.into_iter().map(|(_, address)| address).collect())
    }

    /// HSM `index`'s settings: its config file, with `flags` over it.
    pub fn settings(&self, index: usize, flags: &Settings) -> Result<Settings, ClusterError> {
        let file = Settings::from_file(&self.config_path(index))?;
        Ok(flags.clone().over(file))
    }

    /// `init --add`: files for `count` new HSMs on free 127.0.0.1 ports,
    /// of HSM 1's type and mode, each cloning users and keys from HSM 1
    /// when it first starts; every config file then names the new HSMs as
    /// peers (running HSMs pick that up when restarted). The new indexes.
    pub fn add_hsms(&mut self, count: u8) -> Result<RangeInclusive<usize>, ClusterError> {
        let endpoints = self.configured_endpoints()?;
        let added = self.prepare_new(count, "--add")?;
        for index in added.clone() {
            self.material.set_clone_from(index, &endpoints[0]).map_err(ClusterError::step(format!("HSM {index}")))?;
        }
        link_peers(&self.material, &self.configured_endpoints()?)?;
        Ok(added)
    }

    /// Writes the files of `count` new HSMs on free 127.0.0.1 ports (their
    /// peers are left to the caller); `what` names the request in a refusal.
    fn prepare_new(&mut self, count: u8, what: &str) -> Result<RangeInclusive<usize>, ClusterError> {
        let listens = (0..count).map(|_| free_local_port()).collect::<Result<Vec<_>, ClusterError>>()?;
        self.prepare_at(&listens, what)
    }

    /// Writes the files of one new HSM that listens on `listen` (a control
    /// plane's own address for it), and names it and the others as each
    /// other's peers; it starts with [`LocalCluster::start`], after
    /// [`LocalCluster::restore_into`] or with `clone_from` in its flags.
    /// Its index.
    pub fn prepare_hsm_at(&mut self, listen: SocketAddr) -> Result<usize, ClusterError> {
        let index = *self.prepare_at(&[listen], "adding")?.start();
        link_peers(&self.material, &self.configured_endpoints()?)?;
        Ok(index)
    }

    fn prepare_at(&mut self, listens: &[SocketAddr], what: &str) -> Result<RangeInclusive<usize>, ClusterError> {
        let held = self.hsm_count();
        let count = listens.len();
        if held + count > usize::from(MAX_HSMS) {
            return Err(ClusterError::refused(format!(
                "{what} {count}: the cluster has {held} HSMs and a cluster holds at most {MAX_HSMS}"
            )));
        }
        // The new HSMs take the cluster's type and mode from HSM 1.
        let first = Settings::from_file(&self.config_path(1))?;
        let mode = mode_of(&first, &self.material.dir)?;
        let hsm_type = HsmType::parse(first.hsm_type.as_deref().unwrap_or("hsm2m.medium"))
            .map_err(|e| ClusterError::refused(format!("{}/{CONFIG_OF_FIRST}: {e}", self.material.dir.display())))?;
        let placements: Vec<_> = listens.iter().map(|listen| HsmPlacement::local(*listen)).collect();
        prepare_hsms(&self.material, held + 1, &placements, (hsm_type, mode), &mut StdRng::from_os_rng())?;
        self.hsms.extend(placements.iter().map(|_| Slot::default()));
        Ok(held + 1..=self.hsm_count())
    }

    /// Creates HSM `index`'s store from `backup` (a backup of this cluster,
    /// or, with `other_cluster`, of the cluster this one was cloned from),
    /// before it first starts: as CloudHSM restores a backup onto an HSM
    /// added to a cluster that has none running.
    pub fn restore_into(&self, index: usize, backup: &Path, other_cluster: bool) -> Result<(), ClusterError> {
        let settings = self.settings(index, &Settings::default())?;
        let config = settings.resolve(settings.listen_addr(), None, &mut StdRng::from_os_rng())?;
        let restore = if other_cluster { restore_backup_as_clone } else { restore_backup };
        restore(
            backup,
            &settings.cluster_key()?,
            &config.storage.backing,
            &config.storage.master_key,
            &config.cluster,
            &config.hsm,
        )
        .map_err(ClusterError::step(format!("restoring HSM {index} from {}", backup.display())))
    }

    /// The address of an HSM of the cluster that runs here, if one does:
    /// what a new HSM clones from.
    pub fn running_address(&self) -> Option<SocketAddr> {
        self.hsms.iter().find_map(|slot| slot.running.as_ref().map(|hsm| hsm.seat().address))
    }

    /// Starts every HSM in this process: `flags` over each config file,
    /// every store opened and every port bound before any serves.
    pub async fn start_all(&mut self, flags: &Settings, launch: &Launch) -> Result<(), ClusterError> {
        let mut opened = Vec::new();
        for index in 1..=self.hsm_count() {
            let settings = self.settings(index, flags)?;
            let hsm = OpenedHsm::open(&settings, launch)
                .await
                .map_err(ClusterError::step(format!("starting HSM {index}")))?;
            opened.push(hsm);
        }
        self.serve(opened);
        for index in 1..=self.hsm_count() {
            self.record_launch(index, flags, launch);
        }
        Ok(())
    }

    /// Serves opened HSMs of this cluster, each naming every other HSM
    /// served here (now or before) as its peer.
    pub fn serve(&mut self, opened: Vec<OpenedHsm>) {
        for hsm in &opened {
            self.slot(hsm.seat().index).address = Some(hsm.seat().address);
        }
        for mut hsm in opened {
            let index = hsm.seat().index;
            let peers = (1..)
                .zip(&self.hsms)
                .filter(|(other, _)| *other != index)
                .filter_map(|(_, slot)| slot.address.map(|a| a.to_string()))
                .collect();
            hsm.set_peers(peers);
            self.slot(index).running = Some(hsm.spawn());
        }
    }

    /// Starts HSM `index` in this process (stopping it first if it runs
    /// here), on the address it had here before unless `flags` say.
    pub async fn start(&mut self, index: usize, flags: &Settings, launch: &Launch) -> Result<SocketAddr, ClusterError> {
        self.stop(index).await?;
        let mut settings = self.settings(index, flags)?;
        if flags.listen.is_none() {
            settings.listen = self.address(index).or(settings.listen);
        }
        let hsm = OpenedHsm::open(&settings, launch).await?;
        let address = hsm.seat().address;
        self.serve(vec![hsm]);
        self.record_launch(index, flags, launch);
        Ok(address)
    }

    /// Claims the cluster for its customer, as `initialize-cluster` does
    /// once it has checked the certificates
    /// ([`crate::pki::verify_signed_cluster_certificate`]): every HSM's
    /// certificate is reissued by `cluster_key_pem` (the key the cluster
    /// CSR was over) under `signed_cert_pem`, the config files and
    /// `client.env` trust `trust_anchor_pem` from now on, as does
    /// [`LocalCluster::ca_pem`], HSMs added later are certified alike, and
    /// the HSMs running here restart on their addresses to serve the new
    /// certificates (each with the flags it was last started with, or its
    /// config file alone if it was served through [`LocalCluster::serve`]).
    pub async fn adopt_customer_chain(
        &mut self,
        cluster_key_pem: &str,
        signed_cert_pem: &str,
        trust_anchor_pem: &str,
    ) -> Result<(), ClusterError> {
        let chain = CustomerChain {
            cluster_key_pem: Zeroizing::new(cluster_key_pem.to_owned()),
            cluster_certificate_pem: signed_cert_pem.to_owned(),
            trust_anchor_pem: trust_anchor_pem.to_owned(),
        };
        self.material.adopt_customer_chain(chain).map_err(ClusterError::step("adopting the customer's chain"))?;
        let running: Vec<usize> = (1..=self.hsm_count()).filter(|&index| self.running(index).is_some()).collect();
        for &index in &running {
            self.stop(index).await?;
        }
        for index in running {
            let (flags, launch) = self.hsms[index - 1].launched.clone().unwrap_or_default();
            // On its own address, and never cloning again.
            let flags = Settings { listen: None, clone_from: None, ..flags };
            self.start(index, &flags, &launch).await?;
        }
        Ok(())
    }

    /// Adds an HSM to the cluster running here: its files (as
    /// [`LocalCluster::add_hsms`] writes them), then the HSM, which copies
    /// users and keys from a running HSM before it serves. The HSMs already
    /// running sync with it once restarted; clients that list it reach it
    /// at once. Its index.
    pub async fn add_hsm(&mut self, flags: &Settings, launch: &Launch) -> Result<usize, ClusterError> {
        let source = self
            .running_address()
            .ok_or_else(|| ClusterError::refused("adding an HSM: no HSM of the cluster runs here to clone from"))?;
        let index = *self.prepare_new(1, "adding")?.start();
        link_peers(&self.material, &self.configured_endpoints()?)?;
        let clone = Settings { clone_from: Some(source.to_string()), ..flags.clone() };
        self.start(index, &clone, launch).await?;
        Ok(index)
    }

    /// Stops HSM `index` if it runs here, and waits until it has shut down
    /// (its port then refuses connections).
    pub async fn stop(&mut self, index: usize) -> Result<(), ClusterError> {
        match self.hsms.get_mut(index.wrapping_sub(1)).and_then(|slot| slot.running.take()) {
            Some(running) => running.stop().await,
            None => Ok(()),
        }
    }

    /// Takes HSM `index` out of the cluster for good (`delete-hsm`): stops
    /// it, and HSMs started from now on no longer name it as a peer. Its
    /// files stay (an index is never reused).
    pub async fn retire(&mut self, index: usize) -> Result<(), ClusterError> {
        self.stop(index).await?;
        if let Some(slot) = self.hsms.get_mut(index.wrapping_sub(1)) {
            slot.address = None;
        }
        Ok(())
    }

    /// Where HSM `index` is (or was last) served here.
    pub fn address(&self, index: usize) -> Option<SocketAddr> {
        self.hsms.get(index.wrapping_sub(1)).and_then(|slot| slot.address)
    }

    /// HSM `index`, if it runs here.
    pub fn running(&self, index: usize) -> Option<&RunningHsm> {
        self.hsms.get(index.wrapping_sub(1)).and_then(|slot| slot.running.as_ref())
    }

    /// Where every HSM served here is (or was last), in order: what
    /// `client.env` lists.
    pub fn addresses(&self) -> Vec<String> {
        self.hsms.iter().filter_map(|slot| slot.address.map(|a| a.to_string())).collect()
    }

    /// Serves until `shutdown` resolves, then stops every HSM and waits for
    /// them; or returns at once with the error of an HSM that stopped on
    /// its own.
    pub async fn run_until(&mut self, shutdown: impl Future<Output = ()>) -> Result<(), ClusterError> {
        let exited = {
            let waits: Vec<_> =
                self.hsms.iter_mut().filter_map(|slot| slot.running.as_mut()).map(|hsm| Box::pin(hsm.wait())).collect();
            if waits.is_empty() {
                shutdown.await;
                None
            } else {
                tokio::select! {
                    () = shutdown => None,
                    (served, _, _) = select_all(waits) => Some(served),
                }
            }
        };
        if let Some(served) = exited {
            served?;
        }
        self.shutdown().await
    }

    /// Stops every HSM running here, together, and waits for them; the
    /// first error any stopped with.
    pub async fn shutdown(&mut self) -> Result<(), ClusterError> {
        let running = self.hsms.iter_mut().filter_map(|slot| slot.running.take());
        join_all(running.map(RunningHsm::stop)).await.into_iter().collect()
    }

    /// Remembers how HSM `index` was started, to restart it alike.
    fn record_launch(&mut self, index: usize, flags: &Settings, launch: &Launch) {
        if let Some(slot) = self.hsms.get_mut(index.wrapping_sub(1)) {
            slot.launched = Some((Settings { clone_from: None, ..flags.clone() }, launch.clone()));
        }
    }

    /// HSM `index`'s slot, made if the cluster had none that far.
    fn slot(&mut self, index: u32) -> &mut Slot {
        let at = usize::try_from(index).unwrap_or(usize::MAX).saturating_sub(1);
        if self.hsms.len() <= at {
            self.hsms.resize_with(at + 1, Slot::default);
        }
        &mut self.hsms[at]
    }
}

/// Prepares HSMs `first..`, one per placement: certificate, master key,
/// data directory, config file.
pub(super) fn prepare_hsms(
    material: &ClusterMaterial,
    first: usize,
    placements: &[HsmPlacement],
    (hsm_type, mode): (HsmType, ClusterMode),
    rng: &mut impl CryptoRng,
) -> Result<(), ClusterError> {
    for (index, placement) in (first..).zip(placements) {
        material
            .init_hsm(index, placement, hsm_type, mode, rng)
            .map_err(ClusterError::step(format!("preparing HSM {index}")))?;
    }
    Ok(())
}

/// Names every HSM's peers (all the others) in its config file.
pub(super) fn link_peers(material: &ClusterMaterial, endpoints: &[String]) -> Result<(), ClusterError> {
    for (i, _) in endpoints.iter().enumerate() {
        let others: Vec<String> =
            endpoints.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, e)| e.clone()).collect();
        material.set_peers(i + 1, &others).map_err(ClusterError::step(format!("naming the peers of HSM {}", i + 1)))?;
    }
    Ok(())
}

/// The mode of the cluster whose HSM 1 has `settings` (FIPS if it names
/// none: configs from before the setting).
pub(super) fn mode_of(settings: &Settings, dir: &Path) -> Result<ClusterMode, ClusterError> {
    ClusterMode::parse("mode", settings.mode.as_deref().unwrap_or("FIPS"))
        .map_err(|e| ClusterError::refused(format!("{}/{CONFIG_OF_FIRST}: {e}", dir.display())))
}
