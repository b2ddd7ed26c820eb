//! What one HSM process needs to run: who it is, its limits, its secrets and
//! how it serves TLS. [`crate::settings`] resolves it from a config file,
//! flags and environment (for `run`, `dev` and [`crate::cluster`]); unit
//! tests build it directly.

use std::{fmt, sync::Arc, time::Duration};

use crate::{
    clock::Clock,
    model::{ClusterId, ClusterIdentity, HsmIdentity, KdfParams, Limits, Password},
    pki::CertifiedKey,
    seed::SeedPlan,
    store::{Backing, MasterKey},
};

/// The configuration of one HSM.
#[derive(Debug)]
pub struct DaemonConfig {
    pub cluster: ClusterIdentity,
    pub hsm: HsmIdentity,
    pub limits: Limits,
    /// The Argon2id cost of password hashes made by this HSM.
    pub kdf: KdfParams,
    /// `None`: start as a new, unactivated cluster (admin/password, PRECO).
    /// `Some`: start activated, with this admin password.
    pub admin_password: Option<Password>,
    /// The appliance user's password, a cluster secret.
    pub appliance_password: Password,
    pub transport: Transport,
    /// Where session idle time is measured from; [`crate::clock::SystemClock`]
    /// except in tests.
    pub clock: Arc<dyn Clock>,
    /// Where the HSM's state is kept, and the key that seals it.
    pub storage: Storage,
    /// Its place in the cluster: index, masking key, peers.
    pub membership: Membership,
    /// The users and keys a new store starts with: one plan, made once and
    /// shared by every HSM of the cluster so that they start identical (see
    /// [`crate::seed`]). Not applied to a store that already exists.
    pub seed: Option<Arc<SeedPlan>>,
    /// Deterministic mode (tests only): the HSM's randomness comes from this
    /// seed, mixed with its index (see [`crate::determinism`]).
    pub deterministic: Option<u64>,
    /// Serve the test-control plane (`hsm.testing.v1.FaultService`): fault
    /// injection, snapshots and resets, open to anyone who reaches the port.
    /// For test suites only; never in production.
    pub faults: bool,
    /// How long a stopping HSM waits for calls in flight before it closes
    /// their connections anyway, so that SIGTERM ends it in bounded time.
    pub drain_timeout: Duration,
    /// What one client may hold of the HSM: connections, their silence, the
    /// size of a request.
    pub connections: ConnectionLimits,
}

/// Bounds on what clients, broken or hostile, can make the HSM hold. Past
/// each, the client is refused or cut off and everyone else is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections (TLS handshakes in progress included); one more is
    /// closed as soon as it is accepted.
    pub max_connections: usize,
    /// A connection that has not finished its TLS handshake by then is
    /// closed (a client that connects and never speaks).
    pub handshake_timeout: Duration,
    /// A connection that has sent and received nothing for this long is
    /// closed; clients reconnect on their next call.
    pub idle_timeout: Duration,
    /// The largest request message; a larger one is refused
    /// (ResourceExhausted) from its 5-byte gRPC header, before its body is
    /// read. CloudHSM's single-operation data limit is about 16 KiB.
    pub max_message_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 16_384,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_message_bytes: 4 << 20,
        }
    }
}

/// The default [`DaemonConfig::drain_timeout`]: well inside the 30 s an
/// orchestrator usually waits before it kills.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How an HSM belongs to its cluster.
#[derive(Debug)]
pub struct Membership {
    /// This HSM's index in the cluster (1-based); it picks the range its key
    /// references come from, so that HSMs never hand out the same one.
    pub hsm_index: u32,
    /// The cluster's masking key; without it masked objects are refused (and
    /// the HSM cannot take part in synchronisation).
    pub masking_key: Option<MasterKey>,
    /// The cluster whose masking key this one holds, when it is a clone of
    /// it (created from its backup): masked objects are sealed for that
    /// cluster's lineage, so that keys move between it and all its clones.
    /// `None`: the cluster's own id.
    pub masking_origin: Option<ClusterId>,
    /// The other HSMs of the cluster (`host:port`), which background sync
    /// copies newer token keys from.
    pub peers: Vec<String>,
    /// A peer to copy users and keys from before serving (a new HSM joining
    /// the cluster).
    pub clone_from: Option<String>,
    /// The cluster CA (PEM) that peers' certificates chain to.
    pub ca_pem: Option<String>,
    /// How long background sync waits between rounds.
    pub sync_interval: Duration,
}

impl Membership {
    /// A lone HSM: index 1, no peers; masked objects only with a key.
    pub fn single(masking_key: Option<MasterKey>) -> Self {
        Membership {
            hsm_index: 1,
            masking_key,
            masking_origin: None,
            peers: Vec::new(),
            clone_from: None,
            ca_pem: None,
            sync_interval: Duration::from_secs(2),
        }
    }
}

/// The HSM's store and its master key.
#[derive(Debug)]
pub struct Storage {
    pub backing: Backing,
    pub master_key: MasterKey,
}

/// How the HSM talks to clients.
pub enum Transport {
    /// TLS (the default and the only mode a real HSM has).
    Tls(TlsSettings),
    /// Plaintext gRPC: tokens and passwords cross the network in clear. Only
    /// behind `--insecure-plaintext-no-tls`.
    InsecurePlaintext,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Tls(tls) => f.debug_tuple("Tls").field(tls).finish(),
            Transport::InsecurePlaintext => f.write_str("InsecurePlaintext"),
        }
    }
}

/// The HSM's TLS identity and, optionally, who may present client certificates.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// The HSM's certificate (chained to the cluster CA) and key.
    pub server: CertifiedKey,
    /// A CA whose client certificates are accepted (mTLS).
    pub client_ca_pem: Option<String>,
    /// With a client CA: refuse connections that present no client certificate.
    pub require_client_cert: bool,
}
