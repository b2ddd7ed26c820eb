//! Which cluster a command runs against: the clusters the configuration
//! names, `--cluster-id`, and the check that the HSMs reached are that
//! cluster's.
//!
//! Two ways to configure, as the CloudHSM CLI has them: one cluster from
//! `--endpoint`/`HSM_ENDPOINTS` and `--ca-cert`/`HSM_CA_CERT` (as before
//! clusters had ids here), or a file (`--config`/`HSM_CLI_CONFIG`) naming
//! one or more clusters by id. With one cluster `--cluster-id` may be left
//! out; with several it is required unless `interactive --cluster-id` set a
//! default.

use hsm_client::{ClientConfig, Cluster, NamedCluster};

use crate::{grammar::Connection, output};

/// The clusters a command may run against.
#[derive(Debug)]
pub(crate) enum Targets {
    /// `--endpoint` and `--ca-cert` (possibly missing: that is said when a
    /// command needs the cluster).
    Single,
    /// A configuration file's clusters, in file order.
    Named(Vec<NamedCluster>),
}

/// A cluster chosen for a command. Also the key under which the shell keeps
/// its connection and session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Target {
    /// The id the HSMs must report: a configured cluster's, or the
    /// `--cluster-id` given for the single cluster of `--endpoint`. `None`:
    /// the single cluster, unchecked (as before clusters had ids).
    pub(crate) id: Option<String>,
}

impl Targets {
    /// Reads the configuration file, if one is given.
    pub(crate) fn load(connection: &Connection) -> Result<Self, String> {
        match &connection.config {
            Some(path) => NamedCluster::read_file(path).map(Targets::Named).map_err(output::error),
            None => Ok(Targets::Single),
        }
    }

    /// The cluster `wanted` names, or the only one configured. Refuses an
    /// id the configuration does not name, and no id when several are
    /// configured, listing the configured ids.
    pub(crate) fn choose(&self, wanted: Option<&str>) -> Result<Target, String> {
        match (self, wanted) {
            (Targets::Single, wanted) => Ok(Target { id: wanted.map(str::to_owned) }),
            (Targets::Named(named), Some(id)) => match named.iter().find(|n| n.cluster_id == id) {
                Some(n) => Ok(Target { id: Some(n.cluster_id.clone()) }),
                None => Err(format!(
                    "--cluster-id {id}: no cluster with this id is configured (configured: {})",
                    self.ids()
                )),
            },
            (Targets::Named(named), None) => match named.as_slice() {
                [only] => Ok(Target { id: Some(only.cluster_id.clone()) }),
                _ => Err(format!("--cluster-id is required: {} clusters are configured ({})", named.len(), self.ids())),
            },
        }
    }

    /// Connects to `target`'s HSMs (lazily, as [`Cluster::connect`] does)
    /// and, when the target has an id, checks that the HSMs report it: a
    /// configuration that points a cluster id at another cluster's HSMs is
    /// refused before anything is sent to them.
    pub(crate) async fn connect(&self, target: &Target, connection: &Connection) -> Result<Cluster, String> {
        let config = match self {
            Targets::Single => single_config(connection)?,
            Targets::Named(named) => named
                .iter()
                .find(|n| Some(&n.cluster_id) == target.id.as_ref())
                .map(|n| n.config.clone())
                .ok_or_else(|| format!("cluster {}: not configured", target.id.as_deref().unwrap_or("")))?,
        };
        let mut config = config.with_key_availability_check(!connection.disable_key_availability_check);
        if let (Some(cert), Some(key)) = (&connection.client_cert_hsm_tls_file, &connection.client_key_hsm_tls_file) {
            config = config.with_client_identity_files(cert, key).map_err(output::error)?;
        }
        let cluster = Cluster::connect(&config).await.map_err(output::error)?;
        if let Some(id) = &target.id {
            let info = cluster.cluster_info().await.map_err(output::error)?;
            if info.cluster_id != *id {
                return Err(format!(
                    "cluster {id}: its HSMs ({}) report cluster id {}; the configuration points {id} at another \
                     cluster's HSMs",
                    config.endpoints().join(", "),
                    info.cluster_id
                ));
            }
        }
        Ok(cluster)
    }

    fn ids(&self) -> String {
        match self {
            Targets::Single => String::new(),
            Targets::Named(named) => named.iter().map(|n| n.cluster_id.as_str()).collect::<Vec<_>>().join(", "),
        }
    }
}

/// The single cluster of `--endpoint` and `--ca-cert`.
fn single_config(connection: &Connection) -> Result<ClientConfig, String> {
    let endpoints = connection.endpoint.as_deref().ok_or(
        "no HSM endpoint: pass --endpoint host:port or set HSM_ENDPOINTS (load client.env), or name clusters in \
         --config",
    )?;
    let ca = connection
        .ca_cert
        .as_deref()
        .ok_or("no CA certificate: pass --ca-cert PATH or set HSM_CA_CERT (load client.env)")?;
    ClientConfig::from_parts(endpoints, ca).map_err(output::error)
}
