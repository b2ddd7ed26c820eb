//! A cluster's material on disk: its id, CA, appliance-user secret, each HSM's
//! certificate, and the `client.env` that tells clients where to connect.
//!
//! Layout of a material directory `D`:
//! - `D/cluster-id`: the cluster id.
//! - `D/ca.pem`, `D/ca.key`: the cluster CA (`customerCA.crt`); the key is
//!   owner-only.
//! - `D/appliance-password`: the appliance user's password, owner-only.
//! - `D/cluster.key`: the cluster-wide key that seals backups (64 hex
//!   digits), owner-only.
//! - `D/masking.key`: the cluster's masking key, which seals the masked
//!   objects HSMs copy keys and users with (64 hex digits), owner-only.
//! - `D/hsm-K.pem`, `D/hsm-K.key`: HSM K's server certificate and key.
//! - `D/client.env`: `HSM_ENDPOINTS` and `HSM_CA_CERT`, for `hsm-cli` and
//!   applications.

use std::{
    fs,
    io::{self, Write as _},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use rand::CryptoRng;

use crate::{
    config::TlsSettings,
    model::{ClusterId, ModelError, Password},
    pki::{self, CertifiedKey, PkiError},
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
    pub cluster_id: ClusterId,
    pub ca: CertifiedKey,
    pub appliance_password: Password,
}

impl ClusterMaterial {
    /// Reads the material in `dir`, or creates it (and `dir`) if there is
    /// none, for `cluster_id` or a new random id.
    pub fn load_or_create(
        dir: &Path,
        cluster_id: Option<&ClusterId>,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, MaterialError> {
        fs::create_dir_all(dir).map_err(io_at(dir))?;
        let dir = dir.canonicalize().map_err(io_at(dir))?;
        if dir.join("cluster-id").exists() {
            let loaded = Self::load(&dir)?;
            if let Some(wanted) = cluster_id
                && *wanted != loaded.cluster_id
            {
                return Err(MaterialError::Invalid {
                    path: dir.join("cluster-id"),
                    reason: format!("holds {}, not {wanted}", loaded.cluster_id),
                });
            }
            return Ok(loaded);
        }
        let cluster_id = cluster_id.cloned().unwrap_or_else(|| ClusterId::generate(rng));
        let ca = pki::generate_ca(cluster_id.as_str())?;
        let appliance_password = Password::random(rng, 32);
        write_file(&dir.join("ca.key"), ca.key_pem.as_bytes(), true)?;
        write_file(&dir.join("ca.pem"), ca.cert_pem.as_bytes(), false)?;
        write_file(&dir.join("appliance-password"), appliance_password.expose().as_bytes(), true)?;
        write_secret_key(&dir, CLUSTER_KEY)?;
        write_secret_key(&dir, MASKING_KEY)?;
        // Written last: its presence marks complete material.
        write_file(&dir.join("cluster-id"), cluster_id.as_str().as_bytes(), false)?;
        Ok(ClusterMaterial { dir, cluster_id, ca, appliance_password })
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
        for name in [CLUSTER_KEY, MASKING_KEY] {
            if !dir.join(name).exists() {
                // Material made before backups (or clusters) existed.
                write_secret_key(dir, name)?;
            }
        }
        Ok(ClusterMaterial { dir: dir.to_owned(), cluster_id, ca, appliance_password })
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues HSM `index`'s server certificate for `names`, writes it beside
    /// the CA, and returns the TLS settings that serve it.
    pub fn issue_hsm_tls(&self, index: usize, hsm_id: &str, names: &[String]) -> Result<TlsSettings, MaterialError> {
        let server = pki::issue_server(&self.ca, hsm_id, names)?;
        write_file(&self.dir.join(format!("hsm-{index}.key")), server.key_pem.as_bytes(), true)?;
        write_file(&self.dir.join(format!("hsm-{index}.pem")), server.cert_pem.as_bytes(), false)?;
        Ok(TlsSettings { server, client_ca_pem: None, require_client_cert: false })
    }

    /// The config file of HSM `index`.
    pub fn hsm_config_path(&self, index: usize) -> PathBuf {
        self.dir.join(format!("hsm-{index}.toml"))
    }

    /// Prepares HSM `index`: its certificate, master key (owner-only, outside
    /// its data directory), data directory and config file listening on
    /// `listen`. Returns the config file's path.
    pub fn init_hsm(
        &self,
        index: usize,
        listen: std::net::SocketAddr,
        hsm_type: &str,
        rng: &mut impl CryptoRng,
    ) -> Result<PathBuf, MaterialError> {
        let hsm_id = crate::model::HsmId::generate(rng);
        let names = vec!["localhost".to_owned(), listen.ip().to_string(), hsm_id.to_string()];
        self.issue_hsm_tls(index, hsm_id.as_str(), &names)?;
        let master = crate::store::MasterKey::generate()
            .map_err(|reason| MaterialError::Invalid { path: self.dir.clone(), reason })?;
        let key_path = self.dir.join(format!("hsm-{index}.master-key"));
        write_file(&key_path, format!("{}\n", master.to_hex().as_str()).as_bytes(), true)?;
        let data_dir = self.dir.join(format!("hsm-{index}-data"));
        fs::create_dir_all(&data_dir).map_err(io_at(&data_dir))?;
        let d = self.dir.display();
        let config = format!(
            "# hsm-daemon configuration of HSM {index} of {cluster}, written by `hsm-daemon init`.\n\
             # Every key also has a flag and an environment variable; see `hsm-daemon run --help`.\n\
             # The master key file may instead be kept in a secret store and passed in\n\
             # HSM_MASTER_KEY (64 hex digits); it must never sit inside data_dir.\n\
             cluster_id = \"{cluster}\"\n\
             hsm_id = \"{hsm_id}\"\n\
             listen = \"{listen}\"\n\
             data_dir = \"{d}/hsm-{index}-data\"\n\
             master_key_file = \"{d}/hsm-{index}.master-key\"\n\
             tls_cert = \"{d}/hsm-{index}.pem\"\n\
             tls_key = \"{d}/hsm-{index}.key\"\n\
             appliance_password_file = \"{d}/appliance-password\"\n\
             cluster_key_file = \"{d}/{CLUSTER_KEY}\"\n\
             masking_key_file = \"{d}/{MASKING_KEY}\"\n\
             ca_cert = \"{d}/ca.pem\"\n\
             hsm_type = \"{hsm_type}\"\n\
             hsm_index = {index}\n\
             # The cluster's other HSMs, which background sync copies newer keys from.\n\
             peers = []\n",
            cluster = self.cluster_id,
        );
        let path = self.hsm_config_path(index);
        write_file(&path, config.as_bytes(), false)?;
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
            let settings = crate::settings::Settings::from_file(&path)
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

    fn set_line(&self, index: usize, key: &str, value: &str) -> Result<(), MaterialError> {
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
        write_file(&path, format!("{}\n", lines.join("\n")).as_bytes(), false)
    }

    /// Writes `client.env` for these endpoints (atomically: readers never see
    /// half a file).
    pub fn write_client_env(&self, endpoints: &[String]) -> Result<PathBuf, MaterialError> {
        let path = self.dir.join("client.env");
        let body = format!("HSM_ENDPOINTS={}\nHSM_CA_CERT={}\n", endpoints.join(","), self.ca_path().display());
        let tmp = self.dir.join(".client.env.tmp");
        write_file(&tmp, body.as_bytes(), false)?;
        fs::rename(&tmp, &path).map_err(io_at(&path))?;
        Ok(path)
    }
}

/// The cluster key's file: it seals backups.
const CLUSTER_KEY: &str = "cluster.key";
/// The masking key's file: it seals masked objects.
const MASKING_KEY: &str = "masking.key";

fn write_secret_key(dir: &Path, name: &str) -> Result<(), MaterialError> {
    let key = crate::store::MasterKey::generate()
        .map_err(|reason| MaterialError::Invalid { path: dir.to_owned(), reason })?;
    write_file(&dir.join(name), format!("{}\n", key.to_hex().as_str()).as_bytes(), true)
}

/// Writes a file whole, owner-only when `secret`.
fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), MaterialError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(if secret { 0o600 } else { 0o644 });
    let mut file = options.open(path).map_err(io_at(path))?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(io_at(path))
}

fn io_at(path: &Path) -> impl Fn(io::Error) -> MaterialError + '_ {
    move |source| MaterialError::Io { path: path.to_owned(), source }
}

#[cfg(test)]
mod tests {
    use rand::{SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn material_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        let first = ClusterMaterial::load_or_create(dir.path(), None, &mut rng).unwrap();
        let again = ClusterMaterial::load_or_create(dir.path(), None, &mut rng).unwrap();
        assert_eq!(first.cluster_id, again.cluster_id);
        assert_eq!(first.ca.cert_pem, again.ca.cert_pem);
        assert_eq!(first.appliance_password.expose(), again.appliance_password.expose());
        let mode = fs::metadata(dir.path().join("ca.key")).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        let env = fs::read_to_string(first.write_client_env(&["127.0.0.1:1".into()]).unwrap()).unwrap();
        assert!(env.starts_with("HSM_ENDPOINTS=127.0.0.1:1\nHSM_CA_CERT=/"), "{env}");
    }

    #[test]
    fn damaged_material_is_refused_with_the_file_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = StdRng::seed_from_u64(6);
        ClusterMaterial::load_or_create(dir.path(), None, &mut rng).unwrap();
        fs::write(dir.path().join("cluster-id"), "not-a-cluster").unwrap();
        let err = ClusterMaterial::load_or_create(dir.path(), None, &mut rng).unwrap_err().to_string();
        assert!(err.contains("cluster-id: invalid cluster_id"), "{err}");
    }
}
