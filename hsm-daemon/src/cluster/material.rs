//! A cluster's material on disk: its id, CA, appliance-user secret, each HSM's
//! certificate, and the `client.env` that tells clients where to connect.
//!
//! Layout of a material directory `D`:
//! - `D/cluster-id`: the cluster id.
//! - `D/ca.pem`, `D/ca.key`: the cluster CA, which stands for the
//!   customer's (`customerCA.crt`) until they claim the cluster; the key is
//!   owner-only.
//! - `D/appliance-password`: the appliance user's password, owner-only.
//! - `D/cluster.key`: the cluster-wide key that seals backups (64 hex
//!   digits), owner-only.
//! - `D/masking.key`: the cluster's masking key, which seals the masked
//!   objects HSMs copy keys and users with (64 hex digits), owner-only.
//! - `D/masking-origin`: only in a clone (`init --clone-of`): the cluster
//!   whose cluster and masking keys it shares, first of the lineage.
//! - `D/hsm-K.pem`, `D/hsm-K.key`: HSM K's server certificate and key.
//! - `D/hsm-K.master-key`: the key that seals HSM K's store, owner-only
//!   (outside its data directory).
//! - `D/hsm-K.toml`: HSM K's config file (`hsm-daemon run --config`),
//!   whose paths point into `D` as the HSM sees it.
//! - `D/hsm-K-data/`: HSM K's data directory, unless it keeps its state
//!   elsewhere (a container's own volume).
//! - `D/client.env`: `HSM_ENDPOINTS` and `HSM_CA_CERT`, for `hsm-cli` and
//!   applications.
//! - Once the customer has claimed the cluster (`initialize-cluster`,
//!   [`super::LocalCluster::adopt_customer_chain`]): `D/customer-ca.pem`,
//!   their CA, which the config files and `client.env` then name instead
//!   of `ca.pem`; `D/cluster-certificate.pem`, the cluster certificate they
//!   signed, and `D/cluster-certificate.key`, the cluster key, owner-only,
//!   which issues the HSMs' certificates from then on.
//!
//! The HSMs may see `D` elsewhere (a container volume, a Kubernetes Secret):
//! [`ClusterMaterial::served_dir`] is that path, and the config files name
//! it. [`ClusterMaterial::write_client_files`] copies the public part (the CA
//! and a `client.env`) to a directory clients on another machine read.

use std::{
    fs,
    io::{self, Write as _},
    net::SocketAddr,
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use rand::CryptoRng;

use super::customer::{CUSTOMER_CA, CustomerChain};
use crate::{
    config::TlsSettings,
    model::{ClusterId, ClusterMode, HsmId, HsmType, ModelError, Password},
    pki::{self, CertifiedKey, PkiError},
    settings::Settings,
    store::MasterKey,
};

/// What can go wrong reading or writing cluster material.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// The secrets and identity a cluster's HSMs share.
#[derive(Debug)]
pub struct ClusterMaterial {
    pub dir: PathBuf,
    /// `dir` as the HSMs will see it (where a container or a Kubernetes
    /// Secret mounts it): the paths in their config files point here.
    pub served_dir: PathBuf,
    pub cluster_id: ClusterId,
    pub ca: CertifiedKey,
    pub appliance_password: Password,
    /// For a clone: the first cluster of its lineage, whose masked objects
    /// (and those of its other clones) its HSMs open.
    pub masking_origin: Option<ClusterId>,
    /// The customer's chain of trust, once the cluster is claimed: HSMs
    /// are then certified under it and clients trust its anchor.
    pub customer: Option<CustomerChain>,
    /// Whether files written from here on are flushed to disk.
    pub(super) durability: Durability,
}

/// What new material is made of, beyond what is generated.
#[derive(Debug, Clone, Default)]
pub struct NewMaterial {
    /// The cluster id (default: a new random `cluster-...`).
    pub cluster_id: Option<ClusterId>,
    /// The appliance user's password (default: 32 random characters); test
    /// suites fix it to log in as the appliance user.
    pub appliance_password: Option<Password>,
    pub durability: Durability,
}

/// Whether material files are flushed to disk as they are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Each file is on disk before the call returns: material that must
    /// outlive a crash (`init`, `dev`).
    #[default]
    Synced,
    /// Left to the page cache: a throwaway cluster in a temporary directory
    /// (test suites), which would otherwise wait on twenty-odd flushes.
    Unsynced,
}

impl ClusterMaterial {
    /// Reads the material in `dir`, or creates it (and `dir`) if there is
    /// none, as `new` says.
    pub fn load_or_create(dir: &Path, new: &NewMaterial, rng: &mut impl CryptoRng) -> Result<Self, MaterialError> {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let dir = dir.canonicalize().map_err(io_at(dir))?;
        if dir.join("cluster-id").exists() {
            let loaded = Self::load(&dir)?;
            if let Some(wanted) = &new.cluster_id
                && *wanted != loaded.cluster_id
            {
                return Err(MaterialError::Invalid {
                    path: dir.join("cluster-id"),
                    reason: format!("holds {}, not {wanted}", loaded.cluster_id),
                });
            }
            return Ok(loaded);
        }
        let cluster_id = new.cluster_id.clone().unwrap_or_else(|| ClusterId::generate(rng));
        let material = Self::create(dir, cluster_id, None, new, rng)?;
        material.write_secret_key(CLUSTER_KEY)?;
        material.write_secret_key(MASKING_KEY)?;
        material.write_cluster_id()?;
        Ok(material)
    }

    /// Creates material in `dir` for a clone of the cluster in `source`, as
    /// CloudHSM creates a cluster from a backup: its own id (`cluster_id` or
    /// a new random one), CA and appliance password, and the source's
    /// cluster key (so that the source's backups restore here) and masking
    /// key (so that keys move between the two).
    pub fn create_clone(
        dir: &Path,
        source: &Path,
        new: &NewMaterial,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, MaterialError> {
        let source = source.canonicalize().map_err(io_at(source))?;
        if !source.join("cluster-id").exists() {
            return Err(MaterialError::Invalid {
                path: source,
                reason: "holds no cluster material (no cluster-id) to clone".into(),
            });
        }
        let original = Self::load(&source)?;
        if dir.join("cluster-id").exists() {
            return Err(MaterialError::Invalid {
                path: dir.to_owned(),
                reason: "already holds cluster material; a clone needs a new directory".into(),
            });
        }
        let cluster_id = new.cluster_id.clone().unwrap_or_else(|| ClusterId::generate(rng));
        if cluster_id == original.cluster_id {
            return Err(MaterialError::Invalid {
                path: dir.to_owned(),
                reason: format!("a clone needs its own cluster id, not its source's ({cluster_id})"),
            });
        }
        let origin = original.masking_origin.clone().unwrap_or_else(|| original.cluster_id.clone());
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let dir = dir.canonicalize().map_err(io_at(dir))?;
        let material = Self::create(dir, cluster_id, Some(origin), new, rng)?;
        for name in [CLUSTER_KEY, MASKING_KEY] {
            let from = source.join(name);
            let key = zeroize::Zeroizing::new(fs::read(&from).map_err(io_at(&from))?);
            material.write(name, &key, true)?;
        }
        if let Some(origin) = &material.masking_origin {
            material.write(MASKING_ORIGIN, origin.as_str().as_bytes(), false)?;
        }
        material.write_cluster_id()?;
        Ok(material)
    }

    /// New material in `dir` (canonical): a CA and an appliance password
    /// (unless `new` gives it), written; the keys and the cluster id are
    /// the caller's to write.
    fn create(
        dir: PathBuf,
        cluster_id: ClusterId,
        masking_origin: Option<ClusterId>,
        new: &NewMaterial,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, MaterialError> {
        let ca = pki::generate_ca(cluster_id.as_str())?;
        let appliance_password = new.appliance_password.clone().unwrap_or_else(|| Password::random(rng, 32));
        let material = ClusterMaterial {
            served_dir: dir.clone(),
            dir,
            cluster_id,
            ca,
            appliance_password,
            masking_origin,
            customer: None,
            durability: new.durability,
        };
        material.write("ca.key", material.ca.key_pem.as_bytes(), true)?;
        material.write("ca.pem", material.ca.cert_pem.as_bytes(), false)?;
        material.write("appliance-password", material.appliance_password.expose().as_bytes(), true)?;
        Ok(material)
    }

    /// Written last: its presence marks complete material.
    fn write_cluster_id(&self) -> Result<(), MaterialError> {
        self.write("cluster-id", self.cluster_id.as_str().as_bytes(), false)
    }

    /// Writes a new random key (64 hex digits), owner-only.
    fn write_secret_key(&self, name: &str) -> Result<(), MaterialError> {
        let key = MasterKey::generate().map_err(|reason| MaterialError::Invalid { path: self.dir.clone(), reason })?;
        self.write(name, format!("{}\n", key.to_hex().as_str()).as_bytes(), true)
    }

    /// Writes `D/name` whole, owner-only when `secret`.
    pub(super) fn write(&self, name: &str, contents: &[u8], secret: bool) -> Result<(), MaterialError> {
        write_file(&self.dir.join(name), contents, secret, self.durability)
    }

    fn load(dir: &Path) -> Result<Self, MaterialError> {
        let read = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path).map(|s| s.trim().to_owned()).map_err(io_at(&path))
        };
        let invalid =
            |name: &str, e: ModelError| MaterialError::Invalid { path: dir.join(name), reason: e.to_string() };
        let cluster_id = ClusterId::parse(&read("cluster-id")?).map_err(|e| invalid("cluster-id", e))?;
        let read_pem = |name: &str| {
            let path = dir.join(name);
            fs::read_to_string(&path).map_err(io_at(&path))
        };
        let ca = CertifiedKey { cert_pem: read_pem("ca.pem")?, key_pem: read_pem("ca.key")?.into() };
        let appliance_password = Password::parse("appliance-password", &read("appliance-password")?)
            .map_err(|e| invalid("appliance-password", e))?;
        let masking_origin = match dir.join(MASKING_ORIGIN).exists() {
            true => Some(ClusterId::parse(&read(MASKING_ORIGIN)?).map_err(|e| invalid(MASKING_ORIGIN, e))?),
            false => None,
        };
        let material = ClusterMaterial {
            dir: dir.to_owned(),
            served_dir: dir.to_owned(),
            cluster_id,
            ca,
            appliance_password,
            masking_origin,
            customer: CustomerChain::load(dir)?,
            durability: Durability::Synced,
        };
        for name in [CLUSTER_KEY, MASKING_KEY] {
            if !dir.join(name).exists() {
                // Material made before backups (or clusters) existed.
                material.write_secret_key(name)?;
            }
        }
        Ok(material)
    }

    /// The CA clients trust (`HSM_CA_CERT`): the cluster CA, or the
    /// customer's once the cluster is claimed.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join(self.ca_file())
    }

    /// The PEM of [`ClusterMaterial::ca_path`].
    pub fn trusted_ca_pem(&self) -> &str {
        match &self.customer {
            Some(customer) => &customer.trust_anchor_pem,
            None => &self.ca.cert_pem,
        }
    }

    /// The file name of [`ClusterMaterial::ca_path`] in `D`.
    pub(super) fn ca_file(&self) -> &'static str {
        match self.customer {
            Some(_) => CUSTOMER_CA,
            None => "ca.pem",
        }
    }

    /// Issues HSM `index`'s server certificate for `names` (under the
    /// customer's cluster certificate once the cluster is claimed, else by
    /// the cluster CA), writes it beside the CA, and returns the TLS
    /// settings that serve it.
    pub fn issue_hsm_tls(&self, index: usize, hsm_id: &str, names: &[String]) -> Result<TlsSettings, MaterialError> {
        let server = match &self.customer {
            Some(customer) => pki::issue_hsm_certificate_under_cluster(
                &customer.cluster_key_pem,
                &customer.cluster_certificate_pem,
                hsm_id,
                names,
            )?,
            None => pki::issue_server(&self.ca, hsm_id, names)?,
        };
        self.write(&format!("hsm-{index}.key"), server.key_pem.as_bytes(), true)?;
        self.write(&format!("hsm-{index}.pem"), server.cert_pem.as_bytes(), false)?;
        Ok(TlsSettings { server, client_ca_pem: None, require_client_cert: false })
    }

    /// The config file of HSM `index`.
    pub fn hsm_config_path(&self, index: usize) -> PathBuf {
        self.dir.join(format!("hsm-{index}.toml"))
    }

    /// Prepares HSM `index`: its certificate, master key (owner-only, outside
    /// its data directory), data directory (unless `placement` names one
    /// elsewhere) and config file. Returns the config file's path.
    pub fn init_hsm(
        &self,
        index: usize,
        placement: &HsmPlacement,
        hsm_type: HsmType,
        mode: ClusterMode,
        rng: &mut impl CryptoRng,
    ) -> Result<PathBuf, MaterialError> {
        let hsm_id = HsmId::generate(rng);
        self.issue_hsm_tls(index, hsm_id.as_str(), &placement.certificate_names(hsm_id.as_str()))?;
        self.write_secret_key(&format!("hsm-{index}.master-key"))?;
        let d = self.served_dir.display();
        let data_dir = match &placement.data_dir {
            Some(dir) => dir.clone(),
            None => {
                let data_dir = self.dir.join(format!("hsm-{index}-data"));
                fs::create_dir_all(&data_dir).map_err(io_at(&data_dir))?;
                self.served_dir.join(format!("hsm-{index}-data"))
            }
        };
        let config = format!(
            "# hsm-daemon configuration of HSM {index} of {cluster}, written by `hsm-daemon init`.\n\
             # Every key also has a flag and an environment variable; see `hsm-daemon run --help`.\n\
             # The master key file may instead be kept in a secret store and passed in\n\
             # HSM_MASTER_KEY (64 hex digits); it must never sit inside data_dir.\n\
             cluster_id = \"{cluster}\"\n\
             hsm_id = \"{hsm_id}\"\n\
             listen = \"{listen}\"\n\
             data_dir = {data_dir}\n\
             master_key_file = \"{d}/hsm-{index}.master-key\"\n\
             tls_cert = \"{d}/hsm-{index}.pem\"\n\
             tls_key = \"{d}/hsm-{index}.key\"\n\
             appliance_password_file = \"{d}/appliance-password\"\n\
             cluster_key_file = \"{d}/{CLUSTER_KEY}\"\n\
             masking_key_file = \"{d}/{MASKING_KEY}\"\n\
             ca_cert = \"{d}/{ca_file}\"\n\
             hsm_type = \"{hsm_type}\"\n\
             # FIPS or NON_FIPS (triple DES): the cluster's, fixed when the store is made.\n\
             mode = \"{mode}\"\n\
             hsm_index = {index}\n\
             # The cluster's other HSMs, which background sync copies newer keys from.\n\
             peers = []\n{origin}",
            cluster = self.cluster_id,
            ca_file = self.ca_file(),
            listen = placement.listen,
            data_dir = toml::Value::from(data_dir.display().to_string()),
            origin = match &self.masking_origin {
                Some(origin) => format!(
                    "# A clone of {origin}'s lineage: keys move between them with `hsm-cli key replicate`.\n\
                     masking_origin = \"{origin}\"\n"
                ),
                None => String::new(),
            },
        );
        let path = self.hsm_config_path(index);
        write_file(&path, config.as_bytes(), false, self.durability)?;
        Ok(path)
    }

    /// The HSMs prepared in this directory, by index (1, 2, ...), with the
    /// address each config file says it listens on.
    pub fn hsms(&self) -> Result<Vec<(usize, String)>, MaterialError> {
        let mut found = Vec::new();
        for index in 1.. {
            let path = self.hsm_config_path(index);
            if !path.exists() {
                break;
            }
            let settings = Settings::from_file(&path)
                .map_err(|e| MaterialError::Invalid { path: path.clone(), reason: e.to_string() })?;
            let listen = settings
                .listen
                .ok_or_else(|| MaterialError::Invalid { path: path.clone(), reason: "has no listen address".into() })?;
            found.push((index, listen.to_string()));
        }
        Ok(found)
    }

    /// Sets the `peers` line of HSM `index`'s config file (adding one if the
    /// file has none), leaving the rest of the file as it is.
    pub fn set_peers(&self, index: usize, peers: &[String]) -> Result<(), MaterialError> {
        self.set_line(index, "peers", &toml::Value::from(peers.to_vec()).to_string())
    }

    /// Sets the `clone_from` line of HSM `index`'s config file.
    pub fn set_clone_from(&self, index: usize, peer: &str) -> Result<(), MaterialError> {
        self.set_line(index, "clone_from", &toml::Value::from(peer).to_string())
    }

    pub(super) fn set_line(&self, index: usize, key: &str, value: &str) -> Result<(), MaterialError> {
        let path = self.hsm_config_path(index);
        let text = fs::read_to_string(&path).map_err(io_at(&path))?;
        let prefix = format!("{key} =");
        let line = format!("{key} = {value}");
        let mut replaced = false;
        let mut lines: Vec<String> = text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with(&prefix) {
                    replaced = true;
                    line.clone()
                } else {
                    l.to_owned()
                }
            })
            .collect();
        if !replaced {
            lines.push(line);
        }
        write_file(&path, format!("{}\n", lines.join("\n")).as_bytes(), false, self.durability)
    }

    /// Writes `client.env` for these endpoints (atomically: readers never see
    /// half a file).
    pub fn write_client_env(&self, endpoints: &[String]) -> Result<PathBuf, MaterialError> {
        self.write_client_env_with(endpoints, &[])
    }

    /// [`ClusterMaterial::write_client_env`], with more variables after
    /// the two (`dev`'s for the AWS tools), in one write: the file appears
    /// whole.
    pub fn write_client_env_with(
        &self,
        endpoints: &[String],
        more: &[(String, String)],
    ) -> Result<PathBuf, MaterialError> {
        write_env(&self.dir, endpoints, &self.ca_path(), more, self.durability)
    }

    /// Writes the files a client on another machine needs into `out`: a copy
    /// of the CA (`out/ca.pem`) and a `client.env` naming `endpoints` and
    /// `ca_cert` (default: the copy). Both take the owner of `out`, when the
    /// process may give them away (as root): a container run as root
    /// writing into a user's bind-mounted directory leaves files the user
    /// owns. Returns the `client.env` path.
    pub fn write_client_files(
        &self,
        out: &Path,
        endpoints: &[String],
        ca_cert: Option<&Path>,
    ) -> Result<PathBuf, MaterialError> {
        fs::create_dir_all(out).map_err(io_at(out))?;
        let ca = out.join("ca.pem");
        write_file(&ca, self.trusted_ca_pem().as_bytes(), false, self.durability)?;
        let env = write_env(out, endpoints, ca_cert.unwrap_or(&ca), &[], self.durability)?;
        let owner = fs::metadata(out).map_err(io_at(out))?;
        for path in [&ca, &env] {
            match std::os::unix::fs::chown(path, Some(owner.uid()), Some(owner.gid())) {
                // Not root: the files stay the writer's, readable by all.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
                other => other.map_err(io_at(path))?,
            }
        }
        Ok(env)
    }

    /// Gives the directory and everything in it to `uid:gid`: an `init` run
    /// as root prepares material for HSMs that run as another user.
    pub fn give_to(&self, uid: u32, gid: u32) -> Result<(), MaterialError> {
        chown_tree(&self.dir, uid, gid)
    }
}

/// Where one HSM listens, the names its certificate carries, and where it
/// keeps its state.
#[derive(Debug, Clone)]
pub struct HsmPlacement {
    pub listen: SocketAddr,
    /// Hosts (names or addresses) that peers and clients reach it by;
    /// `localhost` and `127.0.0.1` are always added (local probes and
    /// clients connect there).
    pub hosts: Vec<String>,
    /// Its data directory as it sees it (a container's own volume); `None`:
    /// `D/hsm-K-data`, created by `init_hsm`.
    pub data_dir: Option<PathBuf>,
}

impl HsmPlacement {
    /// An HSM on a port of this machine, keeping its state in `D`.
    pub fn local(listen: SocketAddr) -> HsmPlacement {
        HsmPlacement { listen, hosts: Vec::new(), data_dir: None }
    }

    /// The certificate's subject alternative names, each once.
    fn certificate_names(&self, hsm_id: &str) -> Vec<String> {
        let listen_ip = (!self.listen.ip().is_unspecified()).then(|| self.listen.ip().to_string());
        let mut names: Vec<String> = Vec::new();
        let all = ["localhost".to_owned(), "127.0.0.1".to_owned()]
            .into_iter()
            .chain(listen_ip)
            .chain(self.hosts.iter().cloned())
            .chain([hsm_id.to_owned()]);
        for name in all {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

/// Writes `dir/client.env` atomically.
pub(super) fn write_env(
    dir: &Path,
    endpoints: &[String],
    ca: &Path,
    more: &[(String, String)],
    durability: Durability,
) -> Result<PathBuf, MaterialError> {
    let path = dir.join("client.env");
    let mut body = format!("HSM_ENDPOINTS={}\nHSM_CA_CERT={}\n", endpoints.join(","), ca.display());
    for (name, value) in more {
        body.push_str(&format!("{name}={value}\n"));
    }
    let tmp = dir.join(".client.env.tmp");
    write_file(&tmp, body.as_bytes(), false, durability)?;
    fs::rename(&tmp, &path).map_err(io_at(&path))?;
    Ok(path)
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), MaterialError> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_at(path))?;
    if fs::symlink_metadata(path).map_err(io_at(path))?.is_dir() {
        for entry in fs::read_dir(path).map_err(io_at(path))? {
            chown_tree(&entry.map_err(io_at(path))?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// The cluster key's file: it seals backups.
const CLUSTER_KEY: &str = "cluster.key";
/// The masking key's file: it seals masked objects.
const MASKING_KEY: &str = "masking.key";
/// A clone's file naming the first cluster of its lineage.
const MASKING_ORIGIN: &str = "masking-origin";

/// Writes a file whole, owner-only when `secret`.
pub(crate) fn write_file(
    path: &Path,
    contents: &[u8],
    secret: bool,
    durability: Durability,
) -> Result<(), MaterialError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(if secret { 0o600 } else { 0o644 });
    let mut file = options.open(path).map_err(io_at(path))?;
    file.write_all(contents).map_err(io_at(path))?;
    match durability {
        Durability::Synced => file.sync_all().map_err(io_at(path)),
        Durability::Unsynced => Ok(()),
    }
}

pub(super) fn io_at(path: &Path) -> impl Fn(io::Error) -> MaterialError + '_ {
    move |source| MaterialError::Io { path: path.to_owned(), source }
}

#[cfg(test)]
#[path = "material_tests.rs"]
mod tests;
