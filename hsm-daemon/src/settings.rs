//! Settings of one HSM process, from a TOML config file, flags and
//! environment variables (in rising order of precedence), resolved into a
//! [`DaemonConfig`].
//!
//! # The config file
//! `hsm-daemon init` writes one per HSM (`D/hsm-K.toml`). Every key is
//! optional in the file and has a flag and an environment variable of the
//! same name:
//!
//! ```toml
//! cluster_id = "cluster-abcdefghijk"        # --cluster-id, HSM_CLUSTER_ID
//! hsm_id = "hsm-abcdefghijk"                # --hsm-id, HSM_ID
//! listen = "127.0.0.1:2223"                 # --listen, HSM_LISTEN
//! data_dir = "/var/lib/hsm/hsm-1-data"      # --data-dir, HSM_DATA_DIR
//! ephemeral = false                         # --ephemeral, HSM_EPHEMERAL (memory only)
//! master_key_file = "/etc/hsm/hsm-1.master-key"  # --master-key-file, HSM_MASTER_KEY_FILE
//!                                           # or the key itself in HSM_MASTER_KEY (64 hex digits)
//! tls_cert = "/etc/hsm/hsm-1.pem"           # --tls-cert, HSM_TLS_CERT
//! tls_key = "/etc/hsm/hsm-1.key"            # --tls-key, HSM_TLS_KEY
//! appliance_password_file = "/etc/hsm/appliance-password"  # HSM_APPLIANCE_PASSWORD_FILE
//! cluster_key_file = "/etc/hsm/cluster.key" # HSM_CLUSTER_KEY_FILE (seals backups)
//! masking_key_file = "/etc/hsm/masking.key" # HSM_MASKING_KEY_FILE (masked objects)
//! masking_origin = "cluster-abcdefghijk"   # --masking-origin, HSM_MASKING_ORIGIN (a clone's source)
//! hsm_index = 1                             # --hsm-index, HSM_INDEX (1..255; key reference range)
//! peers = ["10.0.0.2:2223"]                 # --peers a,b / HSM_PEERS (the cluster's other HSMs)
//! clone_from = "10.0.0.2:2223"              # --clone-from, HSM_CLONE_FROM (copy users and keys first)
//! ca_cert = "/etc/hsm/ca.pem"               # --ca-cert, HSM_CA_CERT (verifies peers)
//! sync_interval_ms = 2000                   # HSM_SYNC_INTERVAL_MS (background sync)
//! hsm_type = "hsm2m.medium"                 # --hsm-type, HSM_TYPE
//! mode = "FIPS"                             # --mode, HSM_MODE ("FIPS" or "NON_FIPS"; fixed when the store is made)
//! session_idle_timeout_secs = 1800          # HSM_SESSION_IDLE_TIMEOUT_SECS
//! max_sessions = 4096                       # HSM_MAX_SESSIONS
//! key_quota = "hsm-type"                    # --key-quota, HSM_KEY_QUOTA ("off": no key quota)
//! kdf_memory_kib = 19456                    # HSM_KDF_MEMORY_KIB
//! kdf_iterations = 2                        # HSM_KDF_ITERATIONS
//! kdf_parallelism = 1                       # HSM_KDF_PARALLELISM
//! seed = "/etc/hsm/seed.toml"               # --seed, HSM_SEED (users and keys of a new store)
//! deterministic = 7                         # --deterministic, HSM_DETERMINISTIC (TESTS ONLY)
//! client_ca = "/etc/hsm/clients-ca.pem"     # --client-ca, HSM_CLIENT_CA (mTLS)
//! require_client_cert = false               # HSM_REQUIRE_CLIENT_CERT
//! insecure_plaintext_no_tls = false         # HSM_INSECURE_PLAINTEXT_NO_TLS
//! faults = false                            # --faults, HSM_FAULTS (test suites only)
//! drain_timeout_ms = 10000                  # HSM_DRAIN_TIMEOUT_MS (on SIGTERM, wait this long for calls)
//! metrics_addr = "127.0.0.1:9464"           # --metrics-addr, HSM_METRICS_ADDR (off if unset)
//! max_connections = 16384                   # HSM_MAX_CONNECTIONS (more are closed at once)
//! handshake_timeout_ms = 10000              # HSM_HANDSHAKE_TIMEOUT_MS (TLS handshake must finish by then)
//! idle_timeout_secs = 300                   # HSM_IDLE_TIMEOUT_SECS (silent connections are closed)
//! max_message_bytes = 4194304               # HSM_MAX_MESSAGE_BYTES (larger requests: ResourceExhausted)
//! ```
//!
//! `faults` serves fault injection, snapshots and resets
//! (`hsm.testing.v1.FaultService`, `hsm-cli faults ...`) to anyone who can
//! reach the port, without a session: it lets them break the HSM and wipe
//! its state. Never turn it on in production.
//!
//! `metrics_addr` serves Prometheus metrics (`GET /metrics`, plain HTTP) on
//! a port of its own; see [`crate::metrics`].

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use clap::Args;
use rand::CryptoRng;
use serde::Deserialize;

use crate::{
    DaemonConfig, TlsSettings, Transport,
    clock::SystemClock,
    config::{ConnectionLimits, Membership, Storage},
    model::{
        ClusterId, ClusterIdentity, ClusterMode, HsmId, HsmIdentity, HsmType, KdfParams, KeyQuotas, KeyRange, Limits,
        Password,
    },
    pki::CertifiedKey,
    store::{Backing, MasterKey, read_master_key_file},
};

/// Every setting of one HSM; each is optional here and resolved with
/// defaults by [`Settings::resolve`].
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The cluster this HSM belongs to.
    #[arg(long, env = "HSM_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// This HSM's id.
    #[arg(long, env = "HSM_ID")]
    pub hsm_id: Option<String>,
    /// Address to listen on (default 127.0.0.1:0, a free port).
    #[arg(long, env = "HSM_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the HSM's store (hsm.redb).
    #[arg(long, env = "HSM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep state in memory only (tests): nothing survives a restart.
    #[arg(long, env = "HSM_EPHEMERAL", num_args = 0..=1, default_missing_value = "true")]
    pub ephemeral: Option<bool>,
    /// File holding the master key (64 hex digits); or set HSM_MASTER_KEY.
    #[arg(long, env = "HSM_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The HSM's TLS certificate (PEM, chained to the cluster CA).
    #[arg(long, env = "HSM_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The HSM's TLS private key (PEM).
    #[arg(long, env = "HSM_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// File holding the appliance user's password (a cluster secret).
    #[arg(long, env = "HSM_APPLIANCE_PASSWORD_FILE")]
    pub appliance_password_file: Option<PathBuf>,
    /// File holding the cluster key (64 hex digits) that seals backups.
    #[arg(long, env = "HSM_CLUSTER_KEY_FILE")]
    pub cluster_key_file: Option<PathBuf>,
    /// File holding the cluster's masking key (64 hex digits), which seals
    /// masked objects.
    #[arg(long, env = "HSM_MASKING_KEY_FILE")]
    pub masking_key_file: Option<PathBuf>,
    /// For a clone (a cluster created from another's backup, sharing its
    /// masking key): the cluster it descends from, whose lineage masked
    /// objects are sealed for, so that `key replicate` moves keys between
    /// them. `hsm-daemon init --clone-of` writes it.
    #[arg(long, env = "HSM_MASKING_ORIGIN")]
    pub masking_origin: Option<String>,
    /// This HSM's index in its cluster (1 to 255; default 1): picks the range
    /// its key references come from.
    #[arg(long, env = "HSM_INDEX")]
    pub hsm_index: Option<u32>,
    /// The cluster's other HSMs (host:port, comma-separated), which
    /// background sync copies newer token keys from.
    #[arg(long, env = "HSM_PEERS", value_delimiter = ',')]
    pub peers: Option<Vec<String>>,
    /// Before serving, copy users and keys from this HSM of the cluster
    /// (host:port): how a new HSM joins.
    #[arg(long, env = "HSM_CLONE_FROM")]
    pub clone_from: Option<String>,
    /// The cluster CA (PEM) that the peers' certificates chain to.
    #[arg(long, env = "HSM_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Milliseconds between background sync rounds (default 2000).
    #[arg(long, env = "HSM_SYNC_INTERVAL_MS")]
    pub sync_interval_ms: Option<u64>,
    /// hsm1.medium (250 users, 3,300 keys) or hsm2m.medium (1,024 users,
    /// 16,666 keys); default hsm2m.medium.
    #[arg(long, env = "HSM_TYPE")]
    pub hsm_type: Option<String>,
    /// The cluster's mode: FIPS (default, as CloudHSM's) or NON_FIPS, which
    /// adds triple DES. Every HSM of a cluster has the same; a store keeps
    /// the mode it was made with.
    #[arg(long, env = "HSM_MODE")]
    pub mode: Option<String>,
    /// Close sessions idle this many seconds (default 1800).
    #[arg(long, env = "HSM_SESSION_IDLE_TIMEOUT_SECS")]
    pub session_idle_timeout_secs: Option<u64>,
    /// Most open sessions (default 4096).
    #[arg(long, env = "HSM_MAX_SESSIONS")]
    pub max_sessions: Option<u64>,
    /// "hsm-type" (default: the HSM type's key quotas) or "off" (no key
    /// quota: for measuring, or test suites that need more keys than a
    /// real HSM holds).
    #[arg(long, env = "HSM_KEY_QUOTA")]
    pub key_quota: Option<String>,
    /// Argon2id memory cost in KiB (default 19456; tests may use 8).
    #[arg(long, env = "HSM_KDF_MEMORY_KIB")]
    pub kdf_memory_kib: Option<u32>,
    /// Argon2id passes (default 2).
    #[arg(long, env = "HSM_KDF_ITERATIONS")]
    pub kdf_iterations: Option<u32>,
    /// Argon2id lanes (default 1).
    #[arg(long, env = "HSM_KDF_PARALLELISM")]
    pub kdf_parallelism: Option<u32>,
    /// A seed file (TOML): the users and keys a new store starts with; not
    /// applied to a store that already exists. See
    /// hsm-daemon/examples/seed.toml.
    #[arg(long, env = "HSM_SEED")]
    pub seed: Option<PathBuf>,
    /// TESTS ONLY: take every random choice (ids, serial numbers, generated
    /// keys, session tokens) from this seed, so that runs repeat.
    #[arg(long, env = "HSM_DETERMINISTIC")]
    pub deterministic: Option<u64>,
    /// A PEM CA: clients presenting a certificate from it are accepted (mTLS).
    #[arg(long, env = "HSM_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// With client_ca: refuse clients without a certificate.
    #[arg(long, env = "HSM_REQUIRE_CLIENT_CERT", num_args = 0..=1, default_missing_value = "true")]
    pub require_client_cert: Option<bool>,
    /// Serve plaintext gRPC with NO TLS (debugging only; secrets in clear).
    #[arg(long, env = "HSM_INSECURE_PLAINTEXT_NO_TLS", num_args = 0..=1, default_missing_value = "true")]
    pub insecure_plaintext_no_tls: Option<bool>,
    /// Serve fault injection, snapshots and resets (hsm-cli faults ...) to
    /// anyone, without a session: for test suites only, NEVER in production.
    #[arg(long, env = "HSM_FAULTS", num_args = 0..=1, default_missing_value = "true")]
    pub faults: Option<bool>,
    /// On SIGTERM, milliseconds to wait for calls in flight before closing
    /// their connections (default 10000; 0 to 600000).
    #[arg(long, env = "HSM_DRAIN_TIMEOUT_MS")]
    pub drain_timeout_ms: Option<u64>,
    /// Serve Prometheus metrics over plain HTTP at http://ADDR/metrics
    /// (IP:port; port 0 picks a free one). Off unless set.
    #[arg(long, env = "HSM_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Most open connections, TLS handshakes included (default 16384); more
    /// are closed as soon as they are accepted.
    #[arg(long, env = "HSM_MAX_CONNECTIONS")]
    pub max_connections: Option<u64>,
    /// Milliseconds a connection has to finish its TLS handshake (default
    /// 10000).
    #[arg(long, env = "HSM_HANDSHAKE_TIMEOUT_MS")]
    pub handshake_timeout_ms: Option<u64>,
    /// Close connections silent this many seconds (default 300).
    #[arg(long, env = "HSM_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// The largest request message in bytes (default 4194304, 4 MiB).
    #[arg(long, env = "HSM_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<u64>,
}

/// A setting that is missing or wrong; the message names it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

fn err(msg: impl Into<String>) -> SettingsError {
    SettingsError(msg.into())
}

macro_rules! overlay {
    ($top:expr, $base:expr, $($field:ident),*) => {
        Settings { $($field: $top.$field.or($base.$field)),* }
    };
}

impl Settings {
    /// Reads a config file. Unknown keys are refused, naming the key.
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| err(format!("{}: {e}", path.display())))
    }

    /// Parses a config file's text (TOML, the fields of [`Settings`]).
    pub fn from_toml(text: &str) -> Result<Self, SettingsError> {
        toml::from_str(text).map_err(|e| err(e.to_string()))
    }

    /// These settings, with `base` filling what they leave unset.
    pub fn over(self, base: Settings) -> Settings {
        overlay!(
            self,
            base,
            cluster_id,
            hsm_id,
            listen,
            data_dir,
            ephemeral,
            master_key_file,
            tls_cert,
            tls_key,
            appliance_password_file,
            cluster_key_file,
            masking_key_file,
            masking_origin,
            hsm_index,
            peers,
            clone_from,
            ca_cert,
            sync_interval_ms,
            hsm_type,
            mode,
            session_idle_timeout_secs,
            max_sessions,
            key_quota,
            kdf_memory_kib,
            kdf_iterations,
            kdf_parallelism,
            seed,
            deterministic,
            client_ca,
            require_client_cert,
            insecure_plaintext_no_tls,
            faults,
            drain_timeout_ms,
            metrics_addr,
            max_connections,
            handshake_timeout_ms,
            idle_timeout_secs,
            max_message_bytes
        )
    }

    /// The cluster key that seals backups.
    pub fn cluster_key(&self) -> Result<MasterKey, SettingsError> {
        let path =
            self.cluster_key_file.as_ref().ok_or_else(|| err("cluster_key_file is not set (--cluster-key-file)"))?;
        read_master_key_file(path).map_err(|e| err(e.to_string()))
    }

    /// The Argon2id cost of password hashes.
    pub fn kdf(&self) -> Result<KdfParams, SettingsError> {
        KdfParams::new(
            self.kdf_memory_kib.unwrap_or(19_456),
            self.kdf_iterations.unwrap_or(2),
            self.kdf_parallelism.unwrap_or(1),
        )
        .map_err(|e| err(e.to_string()))
    }

    /// This HSM's index in its cluster (default 1).
    pub fn index(&self) -> u32 {
        self.hsm_index.unwrap_or(1)
    }

    /// The listen address (default 127.0.0.1:0).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Where to serve metrics, if anywhere. Kept apart from [`Settings::resolve`]:
    /// one endpoint serves a whole process, which may run several HSMs.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, SettingsError> {
        let Some(raw) = self.metrics_addr.as_deref().map(str::trim).filter(|raw| !raw.is_empty()) else {
            return Ok(None);
        };
        raw.parse().map(Some).map_err(|_| {
            err(format!(
                "metrics_addr (--metrics-addr, HSM_METRICS_ADDR): {raw:?} must be an IP address and a port, such \
                 as 127.0.0.1:9464 or [::1]:9464 (port 0: a free port)"
            ))
        })
    }

    /// Resolves everything, reading the files the settings name. `address`
    /// is where the HSM was bound; `admin_password` starts a new store
    /// activated.
    pub fn resolve(
        &self,
        address: SocketAddr,
        admin_password: Option<Password>,
        rng: &mut impl CryptoRng,
    ) -> Result<DaemonConfig, SettingsError> {
        let cluster_id =
            ClusterId::parse(self.cluster_id.as_deref().ok_or_else(|| err("cluster_id is not set (--cluster-id)"))?)
                .map_err(|e| err(e.to_string()))?;
        let hsm_id = HsmId::parse(self.hsm_id.as_deref().ok_or_else(|| err("hsm_id is not set (--hsm-id)"))?)
            .map_err(|e| err(e.to_string()))?;
        let hsm_type =
            HsmType::parse(self.hsm_type.as_deref().unwrap_or("hsm2m.medium")).map_err(|e| err(e.to_string()))?;
        let kdf = self.kdf()?;
        let idle = self.session_idle_timeout_secs.unwrap_or(1800);
        if idle == 0 {
            return Err(err("session_idle_timeout_secs must be at least 1"));
        }
        let max_sessions = self.max_sessions.unwrap_or(4096);
        if !(1..=1_000_000).contains(&max_sessions) {
            return Err(err("max_sessions must be 1 to 1000000"));
        }
        let key_quotas = match self.key_quota.as_deref().unwrap_or("hsm-type") {
            "hsm-type" => Limits::for_type(hsm_type).keys,
            "off" => KeyQuotas::OFF,
            other => return Err(err(format!("key_quota must be \"hsm-type\" or \"off\" (got {other:?})"))),
        };
        let read = read_setting;
        let appliance = read("appliance_password_file", &self.appliance_password_file)?;
        let appliance_password =
            Password::parse("appliance_password_file", appliance.trim()).map_err(|e| err(e.to_string()))?;

        let transport = if self.insecure_plaintext_no_tls.unwrap_or(false) {
            Transport::InsecurePlaintext
        } else {
            let server = CertifiedKey {
                cert_pem: read("tls_cert", &self.tls_cert)?,
                key_pem: read("tls_key", &self.tls_key)?.into(),
            };
            let client_ca_pem = match &self.client_ca {
                Some(_) => Some(read("client_ca", &self.client_ca)?),
                None => None,
            };
            let require_client_cert = self.require_client_cert.unwrap_or(false);
            if require_client_cert && client_ca_pem.is_none() {
                return Err(err("require_client_cert needs client_ca"));
            }
            Transport::Tls(TlsSettings { server, client_ca_pem, require_client_cert })
        };

        let backing = if self.ephemeral.unwrap_or(false) {
            Backing::Memory
        } else {
            Backing::Dir(self.data_dir.clone().ok_or_else(|| err("data_dir is not set (--data-dir, or --ephemeral)"))?)
        };
        let master_key = match std::env::var("HSM_MASTER_KEY") {
            Ok(hex) => MasterKey::from_hex(hex.trim()).map_err(|e| err(format!("HSM_MASTER_KEY: {e}")))?,
            Err(_) => match &self.master_key_file {
                Some(path) => read_master_key_file(path).map_err(|e| err(e.to_string()))?,
                None if matches!(backing, Backing::Memory) => MasterKey::generate().map_err(err)?,
                None => return Err(err("no master key: set master_key_file (--master-key-file) or HSM_MASTER_KEY")),
            },
        };

        let membership = self.membership()?;

        let mode =
            ClusterMode::parse("mode", self.mode.as_deref().unwrap_or("FIPS")).map_err(|e| err(e.to_string()))?;
        let mut hsm = HsmIdentity::generate(rng, address.to_string(), mode);
        hsm.id = hsm_id;
        Ok(DaemonConfig {
            cluster: ClusterIdentity { id: cluster_id, hsm_type, mode },
            hsm,
            limits: Limits {
                session_idle_timeout: Duration::from_secs(idle),
                max_sessions: usize::try_from(max_sessions).unwrap_or(usize::MAX),
                keys: key_quotas,
                ..Limits::for_type(hsm_type)
            },
            kdf,
            admin_password,
            appliance_password,
            transport,
            clock: Arc::new(SystemClock),
            storage: Storage { backing, master_key },
            membership,
            // The caller plans the seed: it is made once for a whole cluster.
            seed: None,
            deterministic: self.deterministic,
            faults: self.faults.unwrap_or(false),
            drain_timeout: match self.drain_timeout_ms {
                None => crate::config::DEFAULT_DRAIN_TIMEOUT,
                Some(ms @ 0..=600_000) => Duration::from_millis(ms),
                Some(_) => return Err(err("drain_timeout_ms must be 0 to 600000")),
            },
            connections: self.connection_limits()?,
        })
    }

    /// The connection limit, timeouts and message size, checked.
    pub fn connection_limits(&self) -> Result<ConnectionLimits, SettingsError> {
        let defaults = ConnectionLimits::default();
        let within = |name: &str, value: Option<u64>, range: std::ops::RangeInclusive<u64>, default: u64| match value {
            None => Ok(default),
            Some(v) if range.contains(&v) => Ok(v),
            Some(_) => Err(err(format!("{name} must be {} to {}", range.start(), range.end()))),
        };
        let as_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Ok(ConnectionLimits {
            max_connections: as_usize(within(
                "max_connections",
                self.max_connections,
                1..=1_000_000,
                defaults.max_connections as u64,
            )?),
            handshake_timeout: Duration::from_millis(within(
                "handshake_timeout_ms",
                self.handshake_timeout_ms,
                1..=600_000,
                defaults.handshake_timeout.as_millis() as u64,
            )?),
            idle_timeout: Duration::from_secs(within(
                "idle_timeout_secs",
                self.idle_timeout_secs,
                1..=86_400,
                defaults.idle_timeout.as_secs(),
            )?),
            max_message_bytes: as_usize(within(
                "max_message_bytes",
                self.max_message_bytes,
                1024..=(64 << 20),
                defaults.max_message_bytes as u64,
            )?),
        })
    }

    /// The cluster settings: index, masking key, peers, cloning.
    fn membership(&self) -> Result<Membership, SettingsError> {
        let hsm_index = self.hsm_index.unwrap_or(1);
        KeyRange::for_index(hsm_index).map_err(|e| err(e.to_string()))?;
        let masking_key = match &self.masking_key_file {
            Some(path) => Some(read_master_key_file(path).map_err(|e| err(e.to_string()))?),
            None => None,
        };
        let peer = |field: &str, raw: &str| -> Result<String, SettingsError> {
            let raw = raw.trim();
            match split_host_port(raw) {
                Some(_) => Ok(raw.to_owned()),
                None => Err(err(format!("{field}: {raw:?} must be host:port"))),
            }
        };
        let peers = self
            .peers
            .iter()
            .flatten()
            .filter(|p| !p.trim().is_empty())
            .map(|p| peer("peers", p))
            .collect::<Result<Vec<_>, _>>()?;
        let clone_from = self.clone_from.as_deref().map(|p| peer("clone_from", p)).transpose()?;
        let masking_origin = self
            .masking_origin
            .as_deref()
            .map(|raw| ClusterId::parse(raw).map_err(|e| err(format!("masking_origin: {e}"))))
            .transpose()?;
        let ca_pem = match &self.ca_cert {
            Some(_) => Some(read_setting("ca_cert", &self.ca_cert)?),
            None => None,
        };
        if (clone_from.is_some() || !peers.is_empty()) && masking_key.is_none() {
            return Err(err("peers and clone_from need the cluster's masking key: set masking_key_file"));
        }
        if (clone_from.is_some() || !peers.is_empty())
            && ca_pem.is_none()
            && !self.insecure_plaintext_no_tls.unwrap_or(false)
        {
            return Err(err("peers and clone_from need the cluster CA to verify them: set ca_cert"));
        }
        let interval = self.sync_interval_ms.unwrap_or(2000);
        if !(10..=3_600_000).contains(&interval) {
            return Err(err("sync_interval_ms must be 10 to 3600000"));
        }
        Ok(Membership {
            hsm_index,
            masking_key,
            masking_origin,
            peers,
            clone_from,
            ca_pem,
            sync_interval: Duration::from_millis(interval),
        })
    }
}

/// `raw` as a host and a port, if it is `host:port` (a non-empty host, a
/// port from 1 to 65535, no URL scheme). An IPv6 host keeps its brackets.
pub fn split_host_port(raw: &str) -> Option<(&str, u16)> {
    let (host, port) = raw.rsplit_once(':')?;
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    (!host.is_empty() && !raw.contains("://")).then_some((host, port))
}

/// Reads the file a setting names, or says which setting is missing.
fn read_setting(what: &str, path: &Option<PathBuf>) -> Result<String, SettingsError> {
    let path = path.as_ref().ok_or_else(|| err(format!("{what} is not set (--{})", what.replace('_', "-"))))?;
    std::fs::read_to_string(path).map_err(|e| err(format!("{what} {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_refuse_unknown_keys_and_flags_win_over_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hsm.toml");
        std::fs::write(&path, "cluster_id = \"cluster-abc\"\nlisten = \"127.0.0.1:7000\"\n").unwrap();
        let file = Settings::from_file(&path).unwrap();
        let flags = Settings { listen: Some("127.0.0.1:7001".parse().unwrap()), ..Settings::default() };
        let merged = flags.over(file);
        assert_eq!(merged.listen_addr().port(), 7001);
        assert_eq!(merged.cluster_id.as_deref(), Some("cluster-abc"));

        std::fs::write(&path, "colour = \"red\"\n").unwrap();
        let e = Settings::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn connection_limits_have_defaults_and_refuse_nonsense_by_name() {
        assert_eq!(Settings::default().connection_limits().unwrap(), ConnectionLimits::default());
        let set = Settings { idle_timeout_secs: Some(5), max_message_bytes: Some(65_536), ..Settings::default() };
        let limits = set.connection_limits().unwrap();
        assert_eq!((limits.idle_timeout, limits.max_message_bytes), (Duration::from_secs(5), 65_536));
        for (bad, name) in [
            (Settings { max_connections: Some(0), ..Settings::default() }, "max_connections"),
            (Settings { handshake_timeout_ms: Some(0), ..Settings::default() }, "handshake_timeout_ms"),
            (Settings { max_message_bytes: Some(1 << 30), ..Settings::default() }, "max_message_bytes"),
        ] {
            let e = bad.connection_limits().unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }

    #[test]
    fn metrics_are_off_by_default_and_a_bad_address_is_refused_by_name() {
        assert_eq!(Settings::default().metrics_addr().unwrap(), None);
        let at = |raw: &str| Settings { metrics_addr: Some(raw.into()), ..Settings::default() }.metrics_addr();
        assert_eq!(at("127.0.0.1:9464").unwrap(), Some(SocketAddr::from(([127, 0, 0, 1], 9464))));
        for bad in ["localhost:9464", "127.0.0.1", "127.0.0.1:99999", "http://127.0.0.1:9464"] {
            let e = at(bad).unwrap_err().to_string();
            assert!(e.contains("metrics_addr") && e.contains("IP address and a port") && e.contains(bad), "{e}");
        }
    }
}
