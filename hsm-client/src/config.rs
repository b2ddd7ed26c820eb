//! Where the HSMs are, how to trust them, and how the cluster layer treats
//! them (key availability check, retries); and [`NamedCluster::read_file`],
//! a configuration file naming several clusters by cluster id, as the
//! CloudHSM CLI's `cloudhsm-cli.cfg` does.

use std::{fmt, path::Path, time::Duration};

use zeroize::Zeroizing;

use crate::ClientError;

/// Endpoints and TLS trust for a cluster.
#[derive(Clone)]
pub struct ClientConfig {
    endpoints: Vec<String>,
    ca_pem: String,
    client_identity: Option<(String, Zeroizing<String>)>,
    server_name: Option<String>,
    plaintext: bool,
    /// Whether the cluster layer refuses token keys held by fewer than two
    /// HSMs, as the CloudHSM client SDK does by default.
    key_availability_check: bool,
    retry: RetryPolicy,
    connect_timeout: Duration,
}

/// The environment variable that turns the key availability check off
/// (`1`, `true` or `yes`), as CloudHSM's `--disable-key-availability-check`.
pub const DISABLE_KEY_AVAILABILITY_CHECK_ENV: &str = "HSM_DISABLE_KEY_AVAILABILITY_CHECK";

/// A client certificate (PEM path) to present to the HSMs (mutual TLS).
pub const CLIENT_CERT_ENV: &str = "HSM_CLIENT_CERT";
/// The private key (PEM path) of [`CLIENT_CERT_ENV`].
pub const CLIENT_KEY_ENV: &str = "HSM_CLIENT_KEY";

/// How the cluster layer retries an operation that met an unavailable or
/// busy HSM: up to `attempts` tries in all, on other HSMs where there are
/// any, waiting `first_backoff`, then twice as long, and so on, between tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included; at least 1.
    pub attempts: u32,
    pub first_backoff: Duration,
}

impl Default for RetryPolicy {
    /// The CloudHSM client SDK's: 3 tries, 25 ms then 50 ms apart.
    fn default() -> Self {
        RetryPolicy { attempts: 3, first_backoff: Duration::from_millis(25) }
    }
}

impl RetryPolicy {
    /// The wait before try `next` (1-based: the wait before the second try is
    /// `backoff(1)`).
    pub fn backoff(&self, next: u32) -> Duration {
        self.first_backoff.saturating_mul(1u32 << next.saturating_sub(1).min(16))
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("endpoints", &self.endpoints)
            .field("client_identity", &self.client_identity.as_ref().map(|_| "<certificate and key>"))
            .field("server_name", &self.server_name)
            .field("plaintext", &self.plaintext)
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// Endpoints (`host:port`) and the PEM of the cluster CA that signed the
    /// HSMs' certificates.
    pub fn new(endpoints: Vec<String>, ca_pem: String) -> Result<Self, ClientError> {
        let endpoints: Vec<String> =
            endpoints.into_iter().map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()).collect();
        if endpoints.is_empty() {
            return Err(ClientError::Config("endpoints: give at least one HSM as host:port".into()));
        }
        for e in &endpoints {
            if e.contains("://") || !e.contains(':') {
                return Err(ClientError::Config(format!("endpoint '{e}': must be host:port, without a scheme")));
            }
        }
        if !ca_pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(ClientError::Config("CA certificate: expected a PEM certificate".into()));
        }
        Ok(ClientConfig {
            endpoints,
            ca_pem,
            client_identity: None,
            server_name: None,
            plaintext: false,
            key_availability_check: true,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(5),
        })
    }

    /// Comma-separated endpoints and a CA file path, as `HSM_ENDPOINTS` and
    /// `HSM_CA_CERT` give them.
    pub fn from_parts(endpoints: &str, ca_path: &Path) -> Result<Self, ClientError> {
        let ca_pem = std::fs::read_to_string(ca_path)
            .map_err(|e| ClientError::Config(format!("CA certificate {}: {e}", ca_path.display())))?;
        Self::new(endpoints.split(',').map(str::to_owned).collect(), ca_pem)
    }

    /// Reads `HSM_ENDPOINTS` (comma-separated `host:port`) and `HSM_CA_CERT`
    /// (a path), as written to `client.env` by `hsm-daemon dev`,
    /// [`DISABLE_KEY_AVAILABILITY_CHECK_ENV`], and a client certificate and
    /// key to present ([`CLIENT_CERT_ENV`], [`CLIENT_KEY_ENV`], paths).
    pub fn from_env() -> Result<Self, ClientError> {
        let endpoints = std::env::var("HSM_ENDPOINTS").map_err(|_| {
            ClientError::Config("HSM_ENDPOINTS is not set (load the client.env that hsm-daemon wrote)".into())
        })?;
        let ca = std::env::var("HSM_CA_CERT").map_err(|_| {
            ClientError::Config("HSM_CA_CERT is not set (load the client.env that hsm-daemon wrote)".into())
        })?;
        let mut config = Self::from_parts(&endpoints, Path::new(&ca))?;
        match (std::env::var_os(CLIENT_CERT_ENV), std::env::var_os(CLIENT_KEY_ENV)) {
            (Some(cert), Some(key)) => config = config.with_client_identity_files(Path::new(&cert), Path::new(&key))?,
            (None, None) => {}
            _ => {
                return Err(ClientError::Config(format!(
                    "{CLIENT_CERT_ENV} and {CLIENT_KEY_ENV} go together: set both or neither"
                )));
            }
        }
        let disable = std::env::var(DISABLE_KEY_AVAILABILITY_CHECK_ENV).is_ok_and(|v| truthy(&v));
        Ok(config.with_key_availability_check(!disable))
    }

    /// Reads a `client.env` file as `hsm-daemon` writes it (`KEY=VALUE`
    /// lines with `HSM_ENDPOINTS` and `HSM_CA_CERT`), for programs that are
    /// pointed at the file rather than started with it loaded into their
    /// environment. A relative CA path is taken from the file's directory.
    pub fn from_env_file(path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Config(format!("client.env {}: {e}", path.display())))?;
        let value = |key: &str| {
            text.lines()
                .find_map(|line| line.trim().strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
                .map(str::trim)
                .ok_or_else(|| ClientError::Config(format!("client.env {}: no {key}=", path.display())))
        };
        let endpoints = value("HSM_ENDPOINTS")?;
        let ca = Path::new(value("HSM_CA_CERT")?);
        let ca = if ca.is_relative() { path.parent().unwrap_or(Path::new(".")).join(ca) } else { ca.to_owned() };
        Self::from_parts(endpoints, &ca)
    }

    /// Presents a client certificate (mutual TLS).
    pub fn with_client_identity(mut self, cert_pem: String, key_pem: String) -> Self {
        self.client_identity = Some((cert_pem, Zeroizing::new(key_pem)));
        self
    }

    /// Presents the client certificate and key (PEM) in these files, as the
    /// CloudHSM CLI's `--client-cert-hsm-tls-file` and
    /// `--client-key-hsm-tls-file` do.
    pub fn with_client_identity_files(self, cert_path: &Path, key_path: &Path) -> Result<Self, ClientError> {
        let read = |what: &str, path: &Path| {
            std::fs::read_to_string(path).map_err(|e| ClientError::Config(format!("{what} {}: {e}", path.display())))
        };
        let cert = read("client certificate", cert_path)?;
        if !cert.contains("-----BEGIN CERTIFICATE-----") {
            return Err(ClientError::Config(format!(
                "client certificate {}: expected a PEM certificate",
                cert_path.display()
            )));
        }
        let key = Zeroizing::new(read("client key", key_path)?);
        if !key.contains("PRIVATE KEY-----") {
            return Err(ClientError::Config(format!("client key {}: expected a PEM private key", key_path.display())));
        }
        Ok(self.with_client_identity(cert, key.to_string()))
    }

    /// Verifies the HSMs' certificates against this name instead of the
    /// endpoint's host.
    pub fn with_server_name(mut self, name: String) -> Self {
        self.server_name = Some(name);
        self
    }

    /// Talks plaintext gRPC to an HSM started with
    /// `--insecure-plaintext-no-tls`. Secrets cross the network in clear.
    pub fn insecure_plaintext(mut self) -> Self {
        self.plaintext = true;
        self
    }

    /// Turns the key availability check on (the default) or off. With it, in
    /// a cluster of two or more endpoints, a token key held by fewer than two
    /// HSMs is refused; one-endpoint clusters and session keys are never
    /// checked.
    pub fn with_key_availability_check(mut self, on: bool) -> Self {
        self.key_availability_check = on;
        self
    }

    /// How the cluster layer retries on unavailable or busy HSMs.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = RetryPolicy { attempts: retry.attempts.max(1), ..retry };
        self
    }

    /// How long to wait for one HSM's TCP and TLS handshake (5 s unless
    /// set): a silent HSM holds a call up this long before it is retried
    /// elsewhere.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn key_availability_check(&self) -> bool {
        self.key_availability_check
    }

    pub fn retry(&self) -> RetryPolicy {
        self.retry
    }

    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub(crate) fn client_identity(&self) -> Option<(&str, &str)> {
        self.client_identity.as_ref().map(|(c, k)| (c.as_str(), k.as_str()))
    }

    pub(crate) fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    pub(crate) fn plaintext(&self) -> bool {
        self.plaintext
    }
}

/// The environment variable naming a cluster configuration file (read by
/// [`NamedCluster::read_file`]; `hsm-cli --config`).
pub const CLUSTERS_FILE_ENV: &str = "HSM_CLI_CONFIG";

/// One cluster of a configuration file: the id its HSMs report (CloudHSM's
/// `--cluster-id` picks it) and how to reach them.
#[derive(Debug, Clone)]
pub struct NamedCluster {
    pub cluster_id: String,
    pub config: ClientConfig,
}

/// The file's shape, as `cloudhsm-cli.cfg`'s `clusters` list: each entry's
/// `cluster` has the id, the CA file and the servers. Other keys (AWS's
/// `type`, `options`, `logging`) are allowed and ignored.
#[derive(serde::Deserialize)]
struct ClustersFile {
    clusters: Vec<ClusterEntry>,
}

#[derive(serde::Deserialize)]
struct ClusterEntry {
    cluster: ClusterFields,
}

#[derive(serde::Deserialize)]
struct ClusterFields {
    cluster_id: String,
    hsm_ca_file: std::path::PathBuf,
    servers: Vec<Server>,
}

#[derive(serde::Deserialize)]
struct Server {
    hostname: String,
    port: u16,
    /// A server can be kept in the file but left out (AWS's `enable`).
    #[serde(default = "enabled")]
    enable: bool,
}

fn enabled() -> bool {
    true
}

impl NamedCluster {
    /// Reads a JSON configuration file naming one or more clusters:
    ///
    /// ```json
    /// {"clusters": [{"type": "hsm1", "cluster": {
    ///     "cluster_id": "cluster-abc", "hsm_ca_file": "abc/ca.pem",
    ///     "servers": [{"hostname": "127.0.0.1", "port": 2223, "enable": true}]}}]}
    /// ```
    ///
    /// A relative `hsm_ca_file` is taken from the file's directory. Refuses
    /// an empty list, a cluster without an enabled server, and an id given
    /// twice, naming the entry.
    pub fn read_file(path: &Path) -> Result<Vec<NamedCluster>, ClientError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Config(format!("cluster configuration {shown}: {e}")))?;
        let file: ClustersFile = serde_json::from_str(&text)
            .map_err(|e| ClientError::Config(format!("cluster configuration {shown}: {e}")))?;
        if file.clusters.is_empty() {
            return Err(ClientError::Config(format!("cluster configuration {shown}: clusters: name at least one")));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut named: Vec<NamedCluster> = Vec::with_capacity(file.clusters.len());
        for (i, ClusterEntry { cluster }) in file.clusters.into_iter().enumerate() {
            let at = |rule: &str| ClientError::Config(format!("cluster configuration {shown}: clusters[{i}]: {rule}"));
            let cluster_id = cluster.cluster_id.trim().to_owned();
            if cluster_id.is_empty() {
                return Err(at("cluster_id: must not be empty"));
            }
            if named.iter().any(|n| n.cluster_id == cluster_id) {
                return Err(at(&format!("cluster_id {cluster_id}: given twice")));
            }
            let endpoints: Vec<String> = cluster
                .servers
                .iter()
                .filter(|s| s.enable)
                .map(|s| match s.hostname.contains(':') && !s.hostname.starts_with('[') {
                    // An IPv6 address takes brackets before its port.
                    true => format!("[{}]:{}", s.hostname, s.port),
                    false => format!("{}:{}", s.hostname, s.port),
                })
                .collect();
            if endpoints.is_empty() {
                return Err(at("servers: name at least one enabled server"));
            }
            let ca =
                if cluster.hsm_ca_file.is_relative() { base.join(&cluster.hsm_ca_file) } else { cluster.hsm_ca_file };
            let ca_pem = std::fs::read_to_string(&ca).map_err(|e| at(&format!("hsm_ca_file {}: {e}", ca.display())))?;
            let config = ClientConfig::new(endpoints, ca_pem).map_err(|e| at(&e.to_string()))?;
            named.push(NamedCluster { cluster_id, config });
        }
        Ok(named)
    }
}

/// Whether an environment flag's value means "on".
pub(crate) fn truthy(value: &str) -> bool {
    matches!(value.trim().to_ascii_lowercase().as_str(), "1" | "y" | "yes" | "t" | "true" | "on")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn endpoints_are_split_trimmed_and_checked() {
        let c = ClientConfig::new(vec![" 127.0.0.1:1 ".into(), "".into(), "localhost:2".into()], PEM.into()).unwrap();
        assert_eq!(c.endpoints(), ["127.0.0.1:1", "localhost:2"]);
        for bad in ["", "https://127.0.0.1:1", "localhost"] {
            let err = ClientConfig::new(vec![bad.into()], PEM.into()).unwrap_err();
            assert!(err.to_string().contains("endpoint"), "{bad:?}: {err}");
        }
        assert!(ClientConfig::new(vec!["a:1".into()], "garbage".into()).unwrap_err().to_string().contains("PEM"));
    }

    #[test]
    fn a_client_env_file_gives_endpoints_and_a_ca_beside_it() {
        let dir = std::env::temp_dir().join(format!("hsm-client-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), PEM).unwrap();
        let env = dir.join("client.env");
        std::fs::write(&env, "HSM_ENDPOINTS=127.0.0.1:1,127.0.0.1:2\nHSM_CA_CERT=ca.pem\n").unwrap();
        let c = ClientConfig::from_env_file(&env).unwrap();
        assert_eq!(c.endpoints(), ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(c.ca_pem(), PEM);
        std::fs::write(&env, "HSM_CA_CERT=ca.pem\n").unwrap();
        assert!(ClientConfig::from_env_file(&env).unwrap_err().to_string().contains("HSM_ENDPOINTS"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_clusters_file_names_each_cluster_by_id() {
        let dir = std::env::temp_dir().join(format!("hsm-client-clusters-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), PEM).unwrap();
        let file = dir.join("cloudhsm-cli.cfg");
        let write = |body: &str| std::fs::write(&file, body).unwrap();
        write(
            r#"{"clusters": [
                {"type": "hsm1", "cluster": {"cluster_id": "cluster-a", "hsm_ca_file": "ca.pem",
                 "servers": [{"hostname": "127.0.0.1", "port": 1, "enable": true},
                             {"hostname": "127.0.0.1", "port": 2, "enable": false}]}},
                {"cluster": {"cluster_id": "cluster-b", "hsm_ca_file": "ca.pem",
                 "servers": [{"hostname": "::1", "port": 3}]}}],
               "logging": {"log_level": "info"}}"#,
        );
        let named = NamedCluster::read_file(&file).unwrap();
        let ids: Vec<&str> = named.iter().map(|n| n.cluster_id.as_str()).collect();
        assert_eq!(ids, ["cluster-a", "cluster-b"]);
        assert_eq!(named[0].config.endpoints(), ["127.0.0.1:1"]);
        assert_eq!(named[1].config.endpoints(), ["[::1]:3"]);
        assert_eq!(named[1].config.ca_pem(), PEM);

        let refused = |body: &str, needle: &str| {
            write(body);
            let err = NamedCluster::read_file(&file).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        };
        refused(r#"{"clusters": []}"#, "clusters: name at least one");
        let twice = r#"{"cluster": {"cluster_id": "cluster-a", "hsm_ca_file": "ca.pem",
                        "servers": [{"hostname": "h", "port": 1}]}}"#;
        refused(&format!(r#"{{"clusters": [{twice}, {twice}]}}"#), "clusters[1]: cluster_id cluster-a: given twice");
        refused(
            r#"{"clusters": [{"cluster": {"cluster_id": "cluster-a", "hsm_ca_file": "ca.pem",
                "servers": [{"hostname": "h", "port": 1, "enable": false}]}}]}"#,
            "clusters[0]: servers: name at least one enabled server",
        );
        refused(
            r#"{"clusters": [{"cluster": {"cluster_id": "cluster-a", "hsm_ca_file": "missing.pem",
                "servers": [{"hostname": "h", "port": 1}]}}]}"#,
            "clusters[0]: hsm_ca_file",
        );
        refused(r#"{"clusters": [{"cluster": {"hsm_ca_file": "ca.pem", "servers": []}}]}"#, "cluster_id");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_key_availability_check_is_on_unless_turned_off() {
        let c = ClientConfig::new(vec!["a:1".into()], PEM.into()).unwrap();
        assert!(c.key_availability_check());
        assert!(!c.with_key_availability_check(false).key_availability_check());
        for on in ["1", "true", " YES ", "on"] {
            assert!(truthy(on), "{on}");
        }
        for off in ["0", "", "false", "no", "2"] {
            assert!(!truthy(off), "{off}");
        }
    }

    #[test]
    fn retries_back_off_exponentially_and_always_try_once() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.attempts, 3);
        let waits: Vec<Duration> = (1..=3).map(|n| policy.backoff(n)).collect();
        assert_eq!(waits, [Duration::from_millis(25), Duration::from_millis(50), Duration::from_millis(100)]);
        let c = ClientConfig::new(vec!["a:1".into()], PEM.into())
            .unwrap()
            .with_retry(RetryPolicy { attempts: 0, first_backoff: Duration::ZERO });
        assert_eq!(c.retry().attempts, 1);
    }
}
