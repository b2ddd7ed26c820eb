//! Serving: [`serve`] and [`Prepared`], the HSM's services on a listener
//! behind their layers (metrics, faults, audit, the gate), with the
//! background tasks (session sweeping, sync, health) around them.

use std::{future::Future, sync::Arc, time::Duration};

use hsm_proto::v1::{
    audit_service_server::AuditServiceServer, cluster_service_server::ClusterServiceServer,
    crypto_service_server::CryptoServiceServer, key_service_server::KeyServiceServer,
    masked_object_service_server::MaskedObjectServiceServer, mtls_service_server::MtlsServiceServer,
    quorum_service_server::QuorumServiceServer, session_service_server::SessionServiceServer,
    user_service_server::UserServiceServer,
};
use tokio::net::TcpListener;
use tonic::{service::Routes, transport::Server};
use tower::util::option_layer;

use super::{
    HsmState, ServeError, audit, cluster, crypto, faults, gate, health, key, layer, listener, masked, mtls, quorum,
    session, sync, trust, user,
};
use crate::{
    config::{DaemonConfig, TlsSettings, Transport},
    metrics::{self, Metrics},
};

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
    pub(super) state: Arc<HsmState>,
    pub(super) config: DaemonConfig,
    /// Where this HSM's metrics are served, if anywhere.
    metrics: Option<Arc<Metrics>>,
}

/// A serving HSM as its host sees it, without a connection.
#[derive(Debug, Clone)]
pub struct HsmStatus {
    state: Arc<HsmState>,
}

impl HsmStatus {
    /// Whether the cluster has been activated (`cluster activate`): the
    /// control plane's INITIALIZED becomes ACTIVE then.
    pub fn is_activated(&self) -> bool {
        self.state.hsm().cluster_info().state == crate::model::ClusterState::Active
    }
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
        self.status().is_activated()
    }

    /// A view of the HSM that outlives this value: what its host (the
    /// control plane) asks of it while it serves.
    pub fn status(&self) -> HsmStatus {
        HsmStatus { state: Arc::clone(&self.state) }
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
pub(super) fn routes(state: &Arc<HsmState>, max: usize) -> Routes {
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
