//! The gRPC face of one HSM: TLS, the permission gate, and thin handlers that
//! parse a request, call one model operation and map the result.
//!
//! # Layout
//! - [`serve`]: binds the services to a listener until `shutdown` resolves.
//! - `gate`: the tower layer that, before any handler runs, classifies the
//!   RPC as an [`Operation`], resolves the session token and checks the
//!   permission table (`Hsm::admit`).
//! - `cluster`, `session`, `user`, `key`, `crypto`, `quorum`: one file per
//!   service; `quorum` also holds the approval check that gated calls make.
//! - `convert`: proto fields into model types (`TryFrom`-style parsing).
//! - `masked`: masked objects (copying keys and users between HSMs).
//! - `sync`: background sync with the cluster's other HSMs, and cloning.
//! - `listener`: accepting connections: the connection limit, handshake
//!   and idle timeouts, TLS.
//! - `trust`: the client-certificate policy every handshake is verified
//!   against, and closing connections it stops admitting.
//! - `mtls`: `hsm.v1.MtlsService`, trust anchors and enforcement.
//! - `status`: the one `ModelError` to `Status` mapping.
//! - `layer`: the one shape of the layers that see every call with the
//!   HSM's state (`gate`, `audit`).
//! - `audit`: the layer around the gate that writes the audit log, and
//!   `hsm.v1.AuditService`, which reads it.
//! - `health`: the standard health service and server reflection, open to
//!   all (outside the permission table).
//! - `faults`: fault injection, snapshots and resets (`--faults` only): a
//!   layer on each side of the gate and the `hsm.testing.v1` service.
//! - `metered`: what a metrics scrape reads from the HSM (see
//!   [`crate::metrics`]; its layer is the outermost).

mod audit;
mod cluster;
pub mod control;
mod convert;
mod crypto;
mod faults;
mod gate;
mod health;
mod key;
mod layer;
mod listener;
mod masked;
mod metered;
mod mtls;
mod quorum;
#[cfg(feature = "fuzzing")]
pub(crate) mod rig;
mod session;
mod status;
pub(crate) use status::response_code;
mod sync;
mod trust;
mod user;

use std::{
    future::Future,
    sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError},
    time::{Duration, Instant},
};

use hsm_proto::v1::{
    Rpc, audit_service_server::AuditServiceServer, cluster_service_server::ClusterServiceServer,
    crypto_service_server::CryptoServiceServer, key_service_server::KeyServiceServer,
    masked_object_service_server::MaskedObjectServiceServer, mtls_service_server::MtlsServiceServer,
    quorum_service_server::QuorumServiceServer, session_service_server::SessionServiceServer,
    user_service_server::UserServiceServer,
};
use rand::{SeedableRng, rngs::StdRng};
use tokio::net::TcpListener;
use tonic::{Request, Status, service::Routes, transport::Server};
use tower::util::option_layer;

use crate::{
    audit::{AuditError, AuditLog},
    clock::Clock,
    commit::GroupCommit,
    config::{DaemonConfig, TlsSettings, Transport},
    determinism::{self, Stream},
    metrics::{self, Metrics, Stats},
    model::{
        AdminSetup, Caller, Changes, Hsm, HsmSetup, KdfParams, KeyQuotas, KeyRange, Limits, ModelError, Operation,
        Password, PasswordHash,
    },
    store::{Backing, Masker, Opened, Store, StoreError},
};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("gRPC server: {0}")]
    Transport(#[source] tonic::transport::Error),
    #[error("setting up the HSM: {0}")]
    Setup(#[from] ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("cloning from {peer}: {reason}")]
    Clone { peer: String, reason: String },
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("starting the store's committer: {0}")]
    Committer(#[source] std::io::Error),
}

/// Classifies every RPC as an operation of the permission table. Exhaustive:
/// an RPC added to the protocol does not compile until it is classified here.
pub fn operation(rpc: Rpc) -> Operation {
    match rpc {
        Rpc::GetClusterInfo => Operation::GetClusterInfo,
        Rpc::GetSyncStatus => Operation::GetSyncStatus,
        Rpc::ExtractMaskedObject => Operation::ExtractMaskedObject,
        Rpc::InsertMaskedObject => Operation::InsertMaskedObject,
        Rpc::Activate => Operation::ActivateCluster,
        Rpc::Login => Operation::Login,
        Rpc::Logout => Operation::Logout,
        Rpc::Ping => Operation::Ping,
        Rpc::CreateUser => Operation::CreateUser,
        Rpc::DeleteUser => Operation::DeleteUser,
        Rpc::ListUsers => Operation::ListUsers,
        Rpc::ChangeOwnPassword => Operation::ChangeOwnPassword,
        Rpc::ChangeUserPassword => Operation::ChangeAnyPassword,
        Rpc::GenerateSymmetricKey => Operation::GenerateSymmetricKey,
        Rpc::GenerateKeyPair => Operation::GenerateKeyPair,
        Rpc::ImportKey => Operation::ImportKey,
        Rpc::ExportPublicKey => Operation::ExportPublicKey,
        Rpc::WrapKey => Operation::WrapKey,
        Rpc::UnwrapKey => Operation::UnwrapKey,
        Rpc::DeleteKey => Operation::DeleteKey,
        Rpc::ShareKey => Operation::ShareKey,
        Rpc::UnshareKey => Operation::UnshareKey,
        Rpc::SetKeyAttribute => Operation::SetKeyAttribute,
        Rpc::ListKeys => Operation::ListKeys,
        Rpc::Encrypt => Operation::Encrypt,
        Rpc::Decrypt => Operation::Decrypt,
        Rpc::Sign => Operation::Sign,
        Rpc::Verify => Operation::Verify,
        Rpc::Digest => Operation::Digest,
        Rpc::GenerateRandom => Operation::GenerateRandom,
        Rpc::ReadAuditLog => Operation::ReadAuditLog,
        Rpc::RegisterTrustAnchor => Operation::RegisterTrustAnchor,
        Rpc::DeregisterTrustAnchor => Operation::DeregisterTrustAnchor,
        Rpc::ListTrustAnchors => Operation::ListTrustAnchors,
        Rpc::SetMtlsEnforcement => Operation::SetMtlsEnforcement,
        Rpc::GetMtlsEnforcement => Operation::GetMtlsEnforcement,
        Rpc::GenerateQuorumToken => Operation::GenerateQuorumToken,
        Rpc::ListQuorumTokens => Operation::ListQuorumTokens,
        Rpc::DeleteQuorumTokens => Operation::DeleteQuorumTokens,
        Rpc::SetQuorumValue => Operation::SetQuorumValue,
        Rpc::ListQuorumValues => Operation::ListQuorumValues,
        Rpc::RegisterQuorumKey => Operation::RegisterQuorumKey,
        Rpc::ChangeMfa => Operation::ChangeMfa,
    }
}

/// Requests in flight on one connection; more wait on the client.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// Serves one HSM on `listener` until `shutdown` resolves, then stops
/// accepting, lets calls in flight finish and returns.
pub async fn serve(
    config: DaemonConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Prepared::new(config).await?.serve(listener, shutdown).await
}

/// An HSM whose store is open and state loaded, ready to serve. Lets the
/// binary report a refused store before it says it is listening.
#[derive(Debug)]
pub struct Prepared {
    state: Arc<HsmState>,
    config: DaemonConfig,
    /// Where this HSM's metrics are served, if anywhere.
    metrics: Option<Arc<Metrics>>,
}

impl Prepared {
    pub async fn new(config: DaemonConfig) -> Result<Self, ServeError> {
        let (state, fresh) = HsmState::build(&config).await?;
        let state = Arc::new(state);
        if let Some(peer) = &config.membership.clone_from {
            match sync::clone_from(&state, &sync::PeerAccess::new(&config), peer).await {
                Ok(copied) => tracing::info!(%peer, users = copied.users, keys = copied.keys, "cloned from the peer"),
                // A new HSM must not serve half a cluster; one with state
                // of its own catches up in the background instead.
                Err(reason) if fresh => return Err(ServeError::Clone { peer: peer.clone(), reason }),
                Err(reason) => tracing::warn!(%peer, %reason, "cloning failed; background sync will catch up"),
            }
        }
        state.keep_seed();
        Ok(Prepared { state, config, metrics: None })
    }

    /// Whether the cluster has been activated (for the binary's banner).
    pub fn is_activated(&self) -> bool {
        self.state.hsm().cluster_info().state == crate::model::ClusterState::Active
    }

    /// Records where clients reach the HSM, once its listener is bound (the
    /// store is opened first, so that a second daemon on the same data
    /// directory is refused for that reason, not for a busy port).
    pub fn set_address(&mut self, address: std::net::SocketAddr) {
        self.config.hsm.address = address.to_string();
        self.state.hsm().set_address(address.to_string());
    }

    /// Replaces the peers background sync talks to (for `dev`, which knows
    /// them only once every HSM's port is bound).
    pub fn set_peers(&mut self, peers: Vec<String>) {
        self.config.membership.peers = peers;
    }

    /// Serves this HSM's metrics (requests, sessions, keys, sync...) in
    /// `metrics`, which may hold other HSMs of the process too.
    pub fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        self.metrics = Some(metrics);
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Prepared { state, config, metrics } = self;
        let acceptor = match &config.transport {
            Transport::Tls(tls) => Some(tls_acceptor(tls, &state.trust)?),
            Transport::InsecurePlaintext => {
                tracing::warn!(
                    "serving PLAINTEXT gRPC without TLS: passwords and session tokens cross the network in clear"
                );
                None
            }
        };
        let limits = config.connections;
        let max = limits.max_message_bytes;
        // No HTTP/2 keepalive pings: their traffic would keep idle
        // connections from ever reaching the idle timeout, which already
        // closes dead and silent peers (see `listener`).
        let builder = Server::builder()
            .http2_max_header_list_size(Some(64 * 1024))
            // tonic leaves streams per connection unlimited: a client could
            // then queue requests without bound, and h2 answers a burst of
            // them (5,000 logins on one connection) with GOAWAY. Bounded, the
            // client holds the rest until streams free up.
            .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION));

        let sweeper = tokio::spawn(sweep_sessions(Arc::clone(&state)));
        let membership = &config.membership;
        let syncer = (!membership.peers.is_empty()).then(|| {
            let access = sync::PeerAccess::new(&config);
            tokio::spawn(sync::run(Arc::clone(&state), access, membership.peers.clone(), membership.sync_interval))
        });
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let (reflection_v1, reflection_v1alpha) = health::reflection()?;
        let health_follower = tokio::spawn(health::follow(Arc::clone(&state), reporter.clone()));
        // On shutdown, first tell probes the HSM is going, then stop accepting
        // and let calls in flight finish; `draining` starts the clock on them.
        let (draining_tx, draining) = tokio::sync::oneshot::channel::<()>();
        let drain_timeout = config.drain_timeout;
        let shutdown = {
            let reporter = reporter.clone();
            async move {
                shutdown.await;
                health::report(&reporter, tonic_health::ServingStatus::NotServing).await;
                tracing::info!(timeout = ?drain_timeout, "shutting down: draining calls in flight");
                let _ = draining_tx.send(());
            }
        };
        // Metrics and fault injection add their layers only when they are
        // on, so that calls pay nothing for them otherwise. The metrics
        // layer is outermost: it counts what the gate and faults refuse too.
        let registration = metrics.map(|m| m.register(Arc::clone(&state) as Arc<dyn metrics::Source>));
        let recorder = registration.is_some().then(|| metrics::Recorder::new(Arc::clone(&state.stats)));
        let mut builder = builder
            .layer(option_layer(recorder))
            .layer(option_layer(faults::Injector::before_gate(Arc::clone(&state))))
            .layer(layer::StateLayer::<audit::Auditor>::new(Arc::clone(&state)))
            .layer(layer::StateLayer::<gate::Gate>::new(Arc::clone(&state)))
            .layer(option_layer(faults::Injector::after_gate(Arc::clone(&state))));
        let server = builder
            .add_routes(
                routes(&state, max)
                    .add_service(health_service)
                    .add_service(reflection_v1)
                    .add_service(reflection_v1alpha),
            )
            // Accepting starts last, once everything the HSM serves with
            // (metrics registration included) is in place: a client whose
            // handshake finished finds the HSM whole.
            .serve_with_incoming_shutdown(
                listener::Incoming::start(
                    listener,
                    acceptor,
                    limits,
                    Arc::clone(&state.trust),
                    Arc::clone(&state.connections),
                ),
                shutdown,
            );
        let drain_deadline = async move {
            if draining.await.is_ok() {
                tokio::time::sleep(drain_timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            served = server => served.map_err(ServeError::Transport),
            () = drain_deadline => {
                tracing::warn!(timeout = ?drain_timeout, "calls still in flight after the drain timeout; closing their connections");
                Ok(())
            }
        };
        health_follower.abort();
        let _ = health_follower.await;
        // Wait for the background tasks to end: they hold the state, and
        // with it the store, which a restart in the same process reopens.
        sweeper.abort();
        let _ = sweeper.await;
        if let Some(syncer) = syncer {
            syncer.abort();
            let _ = syncer.await;
        }
        // A stopped HSM leaves the metrics page.
        drop(registration);
        result
    }
}

/// The HSM's own gRPC services, each refusing requests over `max` bytes.
/// Served behind the audit layer and the permission gate (see
/// [`Prepared::serve`] and [`crate::fuzzing`]).
fn routes(state: &Arc<HsmState>, max: usize) -> Routes {
    Routes::new(ClusterServiceServer::new(cluster::ClusterApi::new(Arc::clone(state))).max_decoding_message_size(max))
        .add_service(
            SessionServiceServer::new(session::SessionApi::new(Arc::clone(state))).max_decoding_message_size(max),
        )
        .add_service(UserServiceServer::new(user::UserApi::new(Arc::clone(state))).max_decoding_message_size(max))
        .add_service(KeyServiceServer::new(key::KeyApi::new(Arc::clone(state))).max_decoding_message_size(max))
        .add_service(CryptoServiceServer::new(crypto::CryptoApi::new(Arc::clone(state))).max_decoding_message_size(max))
        .add_service(
            MaskedObjectServiceServer::new(masked::MaskedApi::new(Arc::clone(state))).max_decoding_message_size(max),
        )
        .add_service(AuditServiceServer::new(audit::AuditApi::new(Arc::clone(state))).max_decoding_message_size(max))
        .add_service(MtlsServiceServer::new(mtls::MtlsApi::new(Arc::clone(state))).max_decoding_message_size(max))
        .add_service(QuorumServiceServer::new(quorum::QuorumApi::new(Arc::clone(state))).max_decoding_message_size(max))
}

/// The TLS acceptor: the HSM's certificate, HTTP/2, and client
/// certificates verified against the policy in force at each handshake.
fn tls_acceptor(tls: &TlsSettings, trust: &Arc<trust::Trust>) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};
    let bad = |what: &str, e: &dyn std::fmt::Display| ServeError::Tls(format!("{what}: {e}"));
    let chain = CertificateDer::pem_slice_iter(tls.server.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("the HSM's certificate", &e))?;
    let key =
        PrivateKeyDer::from_pem_slice(tls.server.key_pem.as_bytes()).map_err(|e| bad("the HSM's private key", &e))?;
    let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("protocol versions", &e))?
        .with_client_cert_verifier(trust.client_verifier())
        .with_single_cert(chain, key)
        .map_err(|e| bad("the HSM's certificate and key", &e))?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

/// Closes idle sessions once a minute, so that memory does not hold sessions
/// nobody will use again (lookups also expire them lazily).
async fn sweep_sessions(state: Arc<HsmState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let closed = state.mutate(|hsm| Ok(hsm.expire_sessions(state.now()))).await.unwrap_or(0);
        if closed > 0 {
            tracing::debug!(closed, "closed idle sessions");
        }
    }
}

/// The HSM and what its handlers share.
#[derive(Debug)]
pub(crate) struct HsmState {
    /// The model. Held for the microseconds an operation takes, during which
    /// its changes join the commit queue (so that the store writes them in
    /// the order memory made them); never during the commit itself (an
    /// fsync), across an `.await`, a password hash or an RSA operation.
    hsm: Mutex<Hsm>,
    /// The CSPRNG behind session tokens and salts.
    rng: Mutex<StdRng>,
    /// The CSPRNG behind generated keys: its own stream, so that in
    /// deterministic mode logins and other draws do not change the keys.
    key_rng: Mutex<StdRng>,
    kdf: KdfParams,
    /// One permit per core for password hashing and checking: each Argon2
    /// run holds `kdf`'s memory (19 MiB by default), so a burst of logins
    /// queues here instead of holding that much per call in flight.
    kdf_slots: tokio::sync::Semaphore,
    clock: Arc<dyn Clock>,
    /// Every change is written here before it is acknowledged (backups read
    /// it too); shared with the committer thread of `commits`.
    store: Arc<Store>,
    /// Changes on their way to `store`: many RPCs' changes are written in
    /// one transaction and fsync (group commit; see [`mutate`](Self::mutate)).
    commits: GroupCommit<Changes>,
    /// What was done and refused, written before the response is sent.
    audit: AuditLog,
    /// Set when a write to the store or the audit log failed; shared with
    /// the store's committer, which sets it itself so that the HSM stops
    /// even if every caller of the failed batch has gone.
    health: Arc<FailStop>,
    /// Seals and opens masked objects; `None` without a masking key.
    masker: Option<Masker>,
    /// Fault injection's switches and snapshots; `None` unless `--faults`.
    faults: Option<Arc<faults::Faults>>,
    /// Counters for metrics (failed logins, sync rounds, requests).
    stats: Arc<Stats>,
    /// The client-certificate policy, published from the model's mTLS
    /// policy whenever that changes (see [`Self::mutate`]).
    trust: Arc<trust::Trust>,
    /// The open connections, closed when the policy stops admitting them.
    connections: Arc<trust::Connections>,
}

impl HsmState {
    /// The HSM's state from its store, and whether the store was new.
    async fn build(config: &DaemonConfig) -> Result<(Self, bool), ServeError> {
        let index = config.membership.hsm_index;
        if let Some(seed) = config.deterministic {
            tracing::warn!(seed, hsm_index = index, "{}", determinism::WARNING);
        }
        let mut rng = determinism::rng(config.deterministic, Stream::Hsm, index);
        let kdf = config.kdf;
        let admin_password = config.admin_password.clone();
        let seeded_admin = config.seed.as_ref().and_then(|plan| plan.admin_hash().cloned());
        if seeded_admin.is_some() && admin_password.is_some() {
            return Err(ServeError::Setup(ModelError::InvalidArgument {
                field: "admin_password",
                rule: "the seed sets the admin password; leave admin_password unset".into(),
            }));
        }
        let appliance_password = config.appliance_password.clone();
        let decoy = Password::random(&mut rng, 24);
        let mut hash_rng = StdRng::from_rng(&mut rng);
        let (admin, appliance, decoy) = blocking(move || {
            let admin = match (seeded_admin, admin_password) {
                (Some(hash), _) => AdminSetup::Activated(hash),
                (None, None) => AdminSetup::Unactivated(Password::default_preco().hash(&kdf, &mut hash_rng)?),
                (None, Some(p)) => AdminSetup::Activated(p.hash(&kdf, &mut hash_rng)?),
            };
            Ok((admin, appliance_password.hash(&kdf, &mut hash_rng)?, decoy.hash(&kdf, &mut hash_rng)?))
        })
        .await?;
        let faults = config.faults.then(|| Arc::new(faults::Faults::new(StdRng::from_rng(&mut rng))));
        let key_range = KeyRange::for_index(config.membership.hsm_index)?;
        let opening = Instant::now();
        let opened = Store::open(
            &config.storage.backing,
            &config.storage.master_key,
            config.cluster.id.as_str(),
            config.hsm.id.as_str(),
        )?;
        let fresh = matches!(opened, Opened::New(_));
        // Opened once the store is: a refused data directory stays untouched.
        let audit_dir = match &config.storage.backing {
            Backing::Dir(dir) => Some(dir.as_path()),
            Backing::Memory => None,
        };
        let audit = AuditLog::open(audit_dir, config.hsm.id.as_str())?;
        let (hsm, store) = match opened {
            Opened::New(store) => {
                let setup = HsmSetup {
                    cluster: config.cluster.clone(),
                    hsm: config.hsm.clone(),
                    limits: config.limits,
                    key_range,
                    admin,
                    appliance,
                    decoy,
                };
                let mut hsm = Hsm::new(setup);
                if let Some(plan) = &config.seed {
                    plan.apply(&mut hsm)?;
                    let (users, keys) = (plan.user_count(), plan.key_count());
                    tracing::info!(hsm = %config.hsm.id, users, keys, "seeded the new store");
                }
                store.initialize(&config.cluster, &config.hsm, &hsm.take_changes())?;
                (hsm, store)
            }
            Opened::Existing(pending, identity, stored) => {
                let (cluster, mut hsm_identity) = *identity;
                // A cluster's mode is fixed when it is made.
                if cluster.mode != config.cluster.mode {
                    return Err(ServeError::Setup(ModelError::InvalidArgument {
                        field: "mode",
                        rule: format!(
                            "this HSM's store was made for a {} cluster and the configuration says {}; a cluster's \
                             mode is fixed when it is created (leave mode out, or set it to {})",
                            cluster.mode, config.cluster.mode, cluster.mode
                        ),
                    }));
                }
                // The identity is the one first stored; only the address moves.
                hsm_identity.address = config.hsm.address.clone();
                if config.admin_password.is_some() {
                    tracing::info!("the store already exists: its admin password stands, --admin-password is not used");
                }
                if config.seed.is_some() {
                    tracing::info!("the store already exists: the seed is not applied again");
                }
                // Quotas follow the HSM type the store was made for, unless
                // key quotas are off.
                let quotas = Limits::for_type(cluster.hsm_type);
                let keys = if config.limits.keys == KeyQuotas::OFF { KeyQuotas::OFF } else { quotas.keys };
                let limits = Limits { max_users: quotas.max_users, keys, ..config.limits };
                let setup = HsmSetup { cluster, hsm: hsm_identity, limits, key_range, admin, appliance, decoy };
                let (users, keys, loaded) = (stored.users.len(), stored.keys.len(), opening.elapsed());
                let hsm = Hsm::restore(setup, stored);
                let restored = opening.elapsed();
                // Opening for writing (redb's integrity check) ran meanwhile.
                let store = pending.wait()?;
                // Restart time grows with the keys held: say where it goes.
                let (load_ms, restore_ms) = (loaded.as_millis(), (restored - loaded).as_millis());
                let open_wait_ms = (opening.elapsed() - restored).as_millis();
                tracing::info!(users, keys, load_ms, restore_ms, open_wait_ms, "state loaded from the store");
                (hsm, store)
            }
        };
        // Seeded from the state too, so that in deterministic mode a restarted
        // HSM does not make again the keys it made before. Only then: the
        // digest hashes every key's, which a restart need not pay for.
        let state_digest = config.deterministic.map(|_| hsm.sync_status().digest).unwrap_or_default();
        let key_rng = determinism::rng_with(config.deterministic, Stream::KeyMaterial, index, &state_digest);
        let store = Arc::new(store);
        let health = Arc::new(FailStop::default());
        let commits = {
            let (store, health) = (Arc::clone(&store), Arc::clone(&health));
            GroupCommit::start("hsm-store-commit", move |batch: Vec<Changes>| {
                store.apply_batch(&batch).map_err(|e| {
                    health.fail("writing the store", e.to_string());
                    e.to_string()
                })
            })
            .map_err(ServeError::Committer)?
        };
        let (client_ca, require_client_cert) = match &config.transport {
            Transport::Tls(tls) => (tls.client_ca_pem.as_deref(), tls.require_client_cert),
            Transport::InsecurePlaintext => (None, false),
        };
        let trust = Arc::new(trust::Trust::new(
            Arc::new(rustls::crypto::ring::default_provider()),
            client_ca,
            require_client_cert,
            config.membership.ca_pem.as_deref(),
            hsm.mtls(),
        ));
        // A clone seals for its source's lineage, so that keys move between
        // them (CloudHSM's `key replicate`).
        let lineage = config.membership.masking_origin.as_ref().unwrap_or(&config.cluster.id);
        let state = HsmState {
            hsm: Mutex::new(hsm),
            rng: Mutex::new(rng),
            key_rng: Mutex::new(key_rng),
            kdf,
            kdf_slots: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(1, usize::from)),
            clock: Arc::clone(&config.clock),
            store,
            commits,
            audit,
            health,
            masker: config.membership.masking_key.as_ref().map(|key| Masker::new(key, lineage)),
            faults,
            stats: Arc::default(),
            trust,
            connections: Arc::default(),
        };
        Ok((state, fresh))
    }

    /// Runs a model operation and returns once what it changed is durable
    /// (also when the operation failed but changed state, as a failed login
    /// does); an operation that changed nothing the store keeps returns at
    /// once.
    ///
    /// Group commit: the operation runs under the model's lock and its
    /// changes join the commit queue before the lock is released, so the
    /// store writes changes in the order memory made them. The committer
    /// thread writes everything queued in one transaction with one fsync,
    /// without the model's lock, and then wakes every caller of that batch;
    /// meanwhile other calls run and queue the next batch. A failed commit
    /// stops the HSM (fail-stop) and none of its batch is acknowledged.
    ///
    /// What others see: a change is in memory, and visible to other calls,
    /// from the moment its operation ran, a millisecond or two before it is
    /// durable; as in databases with group commit, only its own caller waits
    /// for durability. If the HSM crashes in between, the change, which no
    /// one was told had succeeded, is lost; a call that read it (listed the
    /// key, signed with it) saw a state the restarted HSM never had. Keys
    /// leaving for another HSM wait for durability first (see
    /// [`Self::settled`]), so that a crash cannot leave a peer holding a key
    /// whose reference this HSM hands out again.
    async fn mutate<T>(&self, op: impl FnOnce(&mut Hsm) -> Result<T, ModelError>) -> Result<T, Status> {
        let (result, ticket, policy_changed) = {
            let mut hsm = self.hsm();
            self.check_healthy()?;
            let result = op(&mut hsm);
            let changes = hsm.take_changes();
            // Published under the model's lock, so that policies are
            // published in the order the model made them.
            if let Some(mtls) = &changes.mtls {
                self.trust.publish(mtls);
            }
            let policy_changed = changes.mtls.is_some();
            (result, (!changes.is_empty()).then(|| self.commits.submit(changes)), policy_changed)
        };
        if policy_changed {
            let closed = self.connections.enforce(&self.trust);
            if closed > 0 {
                tracing::info!(closed, "closed connections the new mTLS policy does not admit");
            }
        }
        if let Some(ticket) = ticket {
            // The committer has already stopped the HSM and said why.
            ticket.await.map_err(|_| self.unhealthy())?;
        }
        Ok(result?)
    }

    /// Returns once every change made so far is durable (at once when none
    /// is waiting).
    async fn settled(&self) -> Result<(), Status> {
        match self.commits.flush() {
            Some(ticket) => ticket.await.map_err(|_| self.unhealthy()),
            None => Ok(()),
        }
    }

    /// Stops serving (fail-stop) after a failed write: memory may hold what
    /// the disk does not.
    fn fail(&self, what: &str, message: String) -> Status {
        self.health.fail(what, message);
        self.unhealthy()
    }

    /// Resolves once the store has failed (at once if it already has).
    async fn store_failed(&self) {
        if self.health.failed.get().is_none() {
            self.health.failure.notified().await;
        }
    }

    fn check_healthy(&self) -> Result<(), Status> {
        if self.health.failed.get().is_some() { Err(self.unhealthy()) } else { Ok(()) }
    }

    fn unhealthy(&self) -> Status {
        Status::unavailable(format!(
            "the HSM's store failed ({}); changes since the last acknowledged one were not saved; restart the daemon",
            self.health.failed.get().map_or("unknown error", String::as_str)
        ))
    }

    /// Locks the model. A panic while it was held cannot leave it half-changed
    /// (operations check before they change), so a poisoned lock is used as is.
    fn hsm(&self) -> MutexGuard<'_, Hsm> {
        self.hsm.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh generator seeded from the HSM's CSPRNG, to move into a
    /// blocking task.
    fn fork_rng(&self) -> StdRng {
        StdRng::from_rng(&mut *self.rng.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// As [`Self::fork_rng`], for generating key material.
    fn fork_key_rng(&self) -> StdRng {
        StdRng::from_rng(&mut *self.key_rng.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Hashes a password off the async workers.
    async fn hash(&self, password: Password) -> Result<PasswordHash, Status> {
        let kdf = self.kdf;
        let mut rng = self.fork_rng();
        self.with_kdf(move || password.hash(&kdf, &mut rng)).await
    }

    /// Runs a password hash or check off the async workers, at most one per
    /// core at a time (see `kdf_slots`).
    async fn with_kdf<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ModelError> + Send + 'static,
    ) -> Result<T, Status> {
        // The semaphore is never closed, so acquiring fails only if it were.
        let _slot = self.kdf_slots.acquire().await.map_err(|_| Status::internal("password hashing stopped"))?;
        Ok(blocking(work).await?)
    }
}

/// Fail-stop: set once a write to the store or the audit log failed. The
/// HSM then refuses every call, since memory may hold a change the disk does
/// not.
#[derive(Debug, Default)]
struct FailStop {
    failed: OnceLock<String>,
    /// Wakes the health service when `failed` is set.
    failure: tokio::sync::Notify,
}

impl FailStop {
    fn fail(&self, what: &str, message: String) {
        tracing::error!(error = %message, "{what} failed; this HSM stops serving");
        let _ = self.failed.set(message);
        self.failure.notify_one();
    }
}

/// Runs CPU-heavy work (Argon2) on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ModelError> + Send + 'static,
) -> Result<T, ModelError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| ModelError::Internal(format!("blocking task failed: {e}")))?
}

/// The boxed future of the tower layers around the handlers.
type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// The caller the gate established for this request.
fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request.extensions().get::<Caller>().cloned().ok_or_else(|| Status::internal("request did not pass the gate"))
}

#[cfg(test)]
mod tests;
