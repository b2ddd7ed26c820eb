//! Who may connect: the client-certificate policy that every TLS handshake
//! is verified against, and the open connections it is enforced on when it
//! changes.
//!
//! A connection's client certificate is accepted when it chains to one of:
//! - a registered trust anchor (`cluster mtls register-trust-anchor`);
//! - the client CA of the configuration (`client_ca`), if any;
//! - the cluster CA (`ca_cert`): the HSMs of the cluster present the
//!   certificate the cluster CA issued them when they sync and clone, so that
//!   HSM-to-HSM traffic goes on under enforcement. Only the operator, who also
//!   holds the anchors' keys, can issue from the cluster CA. Once the
//!   customer has claimed the cluster, `ca_cert` is their CA and the HSMs
//!   present CloudHSM's chain (their certificate, then the cluster
//!   certificate the customer signed, often X.509 version 1, which webpki
//!   refuses): it is admitted when the cluster certificate is signed by
//!   `ca_cert` and the leaf verifies under it (`under_cluster_ca`).
//!
//! With enforcement `cluster` (or `require_client_cert`), a connection
//! without such a certificate is refused at the handshake. Otherwise a
//! certificate is optional, and one that chains to none of them counts as
//! no certificate (an HSM with an older certificate, say, still syncs).
//! Only a chain to a registered anchor counts for `set-enforcement`.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
    client::danger::HandshakeSignatureValid,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, UnixTime, pem::PemObject as _},
    server::{
        WebPkiClientVerifier,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
};
use tokio_util::sync::CancellationToken;

use crate::model::{Enforcement, Mtls};

/// A client's certificate chain as presented (leaf first).
pub(crate) type Chain = Arc<[CertificateDer<'static>]>;

/// The policy and the roots it is made from.
pub(crate) struct Trust {
    provider: Arc<CryptoProvider>,
    /// The configuration's client CA: always admitted.
    configured: Vec<CertificateDer<'static>>,
    /// `require_client_cert`: a certificate is mandatory whatever the level.
    require_configured: bool,
    /// The cluster CA, whose certificates the cluster's HSMs present.
    cluster_ca: Vec<CertificateDer<'static>>,
    current: RwLock<Arc<Policy>>,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let policy = self.current();
        f.debug_struct("Trust").field("enforcement", &policy.enforcement).finish_non_exhaustive()
    }
}

/// The policy at one moment: replaced whole when the model's changes.
struct Policy {
    enforcement: Enforcement,
    mandatory: bool,
    /// Chains to any root admitted (anchors, client CA, cluster CA).
    admitted: Option<Arc<dyn ClientCertVerifier>>,
    /// Chains to a registered trust anchor.
    anchored: Option<Arc<dyn ClientCertVerifier>>,
}

impl Trust {
    /// The policy of `mtls`, with the configured client CA (and whether it
    /// is required) and the cluster CA, each PEM.
    pub(crate) fn new(
        provider: Arc<CryptoProvider>,
        client_ca_pem: Option<&str>,
        require_client_cert: bool,
        cluster_ca_pem: Option<&str>,
        mtls: &Mtls,
    ) -> Self {
        let trust = Trust {
            provider,
            configured: certs(client_ca_pem, "client_ca"),
            require_configured: require_client_cert,
            cluster_ca: certs(cluster_ca_pem, "ca_cert"),
            current: RwLock::new(Arc::new(Policy {
                enforcement: Enforcement::None,
                mandatory: false,
                admitted: None,
                anchored: None,
            })),
        };
        trust.publish(mtls);
        trust
    }

    /// Makes `mtls` the policy for every handshake from now on. The caller
    /// then closes what it no longer admits ([`Connections::enforce`]).
    pub(crate) fn publish(&self, mtls: &Mtls) {
        let anchors: Vec<CertificateDer<'static>> =
            mtls.anchors().iter().map(|a| CertificateDer::from(a.cert.der().to_vec())).collect();
        let admitted = anchors.iter().chain(&self.configured).chain(&self.cluster_ca);
        let policy = Policy {
            enforcement: mtls.enforcement(),
            mandatory: self.require_configured || mtls.enforcement() == Enforcement::Cluster,
            admitted: self.verifier(admitted),
            anchored: self.verifier(anchors.iter()),
        };
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(policy);
    }

    /// The verifier rustls calls at each handshake; it reads the policy in
    /// force then.
    pub(crate) fn client_verifier(self: &Arc<Self>) -> Arc<dyn ClientCertVerifier> {
        Arc::new(PolicyVerifier(Arc::clone(self)))
    }

    /// Whether a connection that presented `chain` may stay open.
    pub(crate) fn admits(&self, chain: Option<&Chain>) -> bool {
        let policy = self.current();
        !policy.mandatory
            || verifies(policy.admitted.as_ref(), chain)
            || chain
                .and_then(|c| c.split_first())
                .is_some_and(|(leaf, rest)| self.under_cluster_ca(leaf, rest, UnixTime::now()))
    }

    /// Whether a chain is CloudHSM's under the cluster CA: a leaf issued
    /// by a cluster certificate that `ca_cert` signed.
    fn under_cluster_ca(&self, leaf: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>], now: UnixTime) -> bool {
        let Some(cluster) = intermediates.first() else { return false };
        if hsm_client::tls::cluster_certificate_trusted(cluster, &self.cluster_ca, now).is_err() {
            return false;
        }
        let mut anchor = RootCertStore::empty();
        if anchor.add(cluster.clone().into_owned()).is_err() {
            return false;
        }
        WebPkiClientVerifier::builder_with_provider(Arc::new(anchor), Arc::clone(&self.provider))
            .build()
            .is_ok_and(|v| v.verify_client_cert(leaf, &[], now).is_ok())
    }

    /// Whether `chain` chains to a registered trust anchor.
    pub(crate) fn is_anchored(&self, chain: Option<&Chain>) -> bool {
        verifies(self.current().anchored.as_ref(), chain)
    }

    fn current(&self) -> Arc<Policy> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn verifier<'a>(
        &self,
        roots: impl Iterator<Item = &'a CertificateDer<'static>>,
    ) -> Option<Arc<dyn ClientCertVerifier>> {
        let mut store = RootCertStore::empty();
        for root in roots {
            if let Err(e) = store.add(root.clone()) {
                tracing::warn!(error = %e, "a trust root cannot anchor client certificates; ignored");
            }
        }
        if store.is_empty() {
            return None;
        }
        WebPkiClientVerifier::builder_with_provider(Arc::new(store), Arc::clone(&self.provider))
            .allow_unauthenticated()
            .build()
            .inspect_err(|e| tracing::warn!(error = %e, "building the client certificate verifier failed"))
            .ok()
    }
}

fn verifies(verifier: Option<&Arc<dyn ClientCertVerifier>>, chain: Option<&Chain>) -> bool {
    match (verifier, chain.and_then(|c| c.split_first())) {
        (Some(v), Some((leaf, intermediates))) => v.verify_client_cert(leaf, intermediates, UnixTime::now()).is_ok(),
        _ => false,
    }
}

/// Every certificate of a PEM setting; a setting that holds none is logged.
fn certs(pem: Option<&str>, setting: &str) -> Vec<CertificateDer<'static>> {
    let Some(pem) = pem else { return Vec::new() };
    let found: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes()).filter_map(Result::ok).collect();
    if found.is_empty() {
        tracing::warn!(setting, "holds no PEM certificate; no client certificate chains to it");
    }
    found
}

/// rustls's view of [`Trust`].
#[derive(Debug)]
struct PolicyVerifier(Arc<Trust>);

impl ClientCertVerifier for PolicyVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.current().mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let policy = self.0.current();
        let verified = match &policy.admitted {
            Some(v) => v.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::General("no trust anchor admits client certificates".into())),
        };
        match verified {
            Ok(ok) => Ok(ok),
            Err(_) if self.0.under_cluster_ca(end_entity, intermediates, now) => Ok(ClientCertVerified::assertion()),
            // Optional certificates: one that chains nowhere counts as none.
            Err(_) if !policy.mandatory => Ok(ClientCertVerified::assertion()),
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The open connections, each with the chain it presented and a way to
/// close it.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Tracked>>,
}

#[derive(Debug, Clone)]
struct Tracked {
    chain: Option<Chain>,
    close: CancellationToken,
}

impl Connections {
    /// Tracks a connection until the returned registration is dropped;
    /// cancelling the token closes it.
    pub(crate) fn track(self: &Arc<Self>, chain: Option<Chain>) -> (Registration, CancellationToken) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let close = CancellationToken::new();
        self.lock().insert(id, Tracked { chain, close: close.clone() });
        (Registration { connections: Arc::clone(self), id }, close)
    }

    /// Closes every connection `trust` no longer admits; returns how many.
    pub(crate) fn enforce(&self, trust: &Trust) -> usize {
        // Verified outside the lock: connections come and go meanwhile.
        let open: Vec<Tracked> = self.lock().values().cloned().collect();
        let mut closed = 0;
        for conn in open {
            if !trust.admits(conn.chain.as_ref()) {
                conn.close.cancel();
                closed += 1;
            }
        }
        closed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Tracked>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A tracked connection; dropping it stops the tracking.
#[derive(Debug)]
pub(crate) struct Registration {
    connections: Arc<Connections>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{
        ClusterIdentity, EmulatorRoots,
        fixtures::{customer_ca, sign},
        issue_hsm_certificate_under_cluster, issue_server,
    };

    fn chain(pem: &str) -> Chain {
        CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap().into()
    }

    /// With client certificates mandatory, an HSM of a claimed cluster
    /// presenting CloudHSM's chain (leaf, version 1 cluster certificate) is
    /// admitted when `ca_cert` is the customer's CA, and refused otherwise.
    #[test]
    fn peers_presenting_the_customer_chain_are_admitted_under_the_customer_ca() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let identity =
            ClusterIdentity::generate("cluster-abcdefghijk", "hsm-abcdefghijk", &EmulatorRoots::generate().unwrap())
                .unwrap();
        std::fs::write(d.join("cluster.csr"), &identity.certificates.cluster_csr).unwrap();
        customer_ca(d, "ca", "30");
        sign(d, "cluster.csr", "ca", "cluster.crt", "30");
        let customer_ca = std::fs::read_to_string(d.join("ca.crt")).unwrap();
        let signed = std::fs::read_to_string(d.join("cluster.crt")).unwrap();
        let peer =
            issue_hsm_certificate_under_cluster(&identity.cluster_key_pem, &signed, "hsm-2", &["localhost".into()])
                .unwrap();
        let presented = chain(&peer.cert_pem);
        let (leaf, rest) = presented.split_first().unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());

        let trust = Arc::new(Trust::new(Arc::clone(&provider), None, true, Some(&customer_ca), &Mtls::default()));
        assert!(trust.admits(Some(&presented)));
        trust.client_verifier().verify_client_cert(leaf, rest, UnixTime::now()).unwrap();
        let leaf_alone: Chain = presented[..1].to_vec().into();
        assert!(!trust.admits(Some(&leaf_alone)), "the leaf alone");

        let other_ca = crate::pki::generate_ca("cluster-other").unwrap();
        let elsewhere = Arc::new(Trust::new(provider, None, true, Some(&other_ca.cert_pem), &Mtls::default()));
        assert!(!elsewhere.admits(Some(&presented)));
        assert!(elsewhere.client_verifier().verify_client_cert(leaf, rest, UnixTime::now()).is_err());
        // The cluster CA's own certificates still pass as before.
        let own = issue_server(&other_ca, "hsm-3", &["localhost".into()]).unwrap();
        assert!(elsewhere.admits(Some(&chain(&own.cert_pem))));
    }
}
