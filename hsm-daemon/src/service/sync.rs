//! How an HSM keeps up with its cluster without a client's help.
//!
//! - **Background sync (anti-entropy)**: every `sync_interval`, for each
//!   peer, the HSM logs in to the peer as the appliance user, compares sync
//!   digests and, where they differ, reads the peer's per-key digests and
//!   copies every token key (or tombstone) that is missing here or newer
//!   there, through masked objects. Each HSM pulls; every HSM doing so brings
//!   the cluster into step. Users are not synchronised in the background (as
//!   in CloudHSM): `user list` shows the gap, and the client repairs it.
//! - **Cloning**: before a new HSM serves, it copies the users (with their
//!   registered quorum and MFA keys), the quorum values, the mTLS policy
//!   (trust anchors, enforcement level) and then the keys of one peer
//!   (`clone_from`).
//! - **Identity**: over TLS, an HSM presents its own certificate (issued by
//!   the cluster CA) as its client certificate, so that its peers admit it
//!   under mTLS enforcement.
//! - **Isolation** (fault injection): an HSM cut off from its peers skips
//!   its rounds and copies nothing, also in a round already under way.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use hsm_client::{ClientConfig, ClientError, HsmClient, Role, Session};
use hsm_proto::v1::{
    self as pb, cluster_service_client::ClusterServiceClient, extract_masked_object_request,
    masked_object_service_client::MaskedObjectServiceClient, mtls_service_client::MtlsServiceClient,
    quorum_service_client::QuorumServiceClient, user_service_client::UserServiceClient,
};

use super::HsmState;
use crate::{
    config::{DaemonConfig, Transport},
    metrics::Round,
    model::{
        APPLIANCE_USERNAME, AnchorCert, AnchorRef, Caller, Enforcement, KeyRef, Masked, Mtls, Password, Stamp,
        TrustAnchor,
    },
    pki::CertifiedKey,
};

/// How long one call to a peer may take before the round moves on.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What sync needs to reach the peers.
#[derive(Debug, Clone)]
pub(crate) struct PeerAccess {
    ca_pem: String,
    plaintext: bool,
    appliance_password: Password,
    /// This HSM's own certificate and key, presented as its client
    /// certificate: it chains to the cluster CA, which every HSM admits
    /// under mTLS enforcement (see `trust`).
    identity: Option<CertifiedKey>,
}

impl PeerAccess {
    pub(crate) fn new(config: &DaemonConfig) -> Self {
        let plaintext = matches!(config.transport, Transport::InsecurePlaintext);
        PeerAccess {
            // A plaintext connection never reads the CA; the client only
            // checks that something certificate-shaped was given.
            ca_pem: config.membership.ca_pem.clone().unwrap_or_else(|| PLAINTEXT_NO_CA.to_owned()),
            plaintext,
            appliance_password: config.appliance_password.clone(),
            identity: match &config.transport {
                Transport::Tls(tls) => Some(tls.server.clone()),
                Transport::InsecurePlaintext => None,
            },
        }
    }

    /// Logs in to `peer` as the appliance user.
    async fn login(&self, peer: &str) -> Result<Session, ClientError> {
        let mut config = ClientConfig::new(vec![peer.to_owned()], self.ca_pem.clone())?;
        if self.plaintext {
            config = config.insecure_plaintext();
        }
        if let Some(own) = &self.identity {
            config = config.with_client_identity(own.cert_pem.clone(), own.key_pem.to_string());
        }
        let client = within(HsmClient::connect(&config)).await?;
        within(client.login(APPLIANCE_USERNAME, Role::Appliance, self.appliance_password.expose())).await
    }
}

const PLAINTEXT_NO_CA: &str = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";

/// Runs background sync with every peer until the task is aborted.
pub(crate) async fn run(state: Arc<HsmState>, access: PeerAccess, peers: Vec<String>, interval: Duration) {
    let mut links: Vec<Link> = peers.into_iter().map(Link::new).collect();
    for link in &links {
        state.stats.add_peer(&link.peer);
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Before activation there is nothing to copy (no crypto user, so no
        // key), and a peer's appliance user may only list users then.
        if !state.hsm().is_activated() {
            continue;
        }
        let isolated = state.is_isolated();
        state.count_sync_round(isolated);
        if isolated {
            for link in &links {
                state.stats.sync_round(&link.peer, Round::Skipped);
            }
            continue;
        }
        for link in &mut links {
            let outcome = link.round(&state, &access).await;
            state.stats.sync_round(&link.peer, if outcome.is_ok() { Round::Ok } else { Round::Failed });
            link.report(outcome);
        }
    }
}

/// Copies users and keys from `peer` before the HSM serves.
pub(crate) async fn clone_from(state: &HsmState, access: &PeerAccess, peer: &str) -> Result<CloneReport, String> {
    let session = access.login(peer).await.map_err(|e| format!("logging in to {peer} as {APPLIANCE_USERNAME}: {e}"))?;
    same_mode(state, &session, peer).await?;
    let listing = session.request(pb::ListUsersRequest {}).map_err(|e| e.to_string())?;
    let mut users_api = UserServiceClient::new(session.client().channel());
    let users = within(users_api.list_users(listing))
        .await
        .map_err(|e| format!("listing the users of {peer}: {e}"))?
        .into_inner()
        .users;
    let mut report = CloneReport::default();
    for user in users.iter().filter(|u| u.username != APPLIANCE_USERNAME) {
        let object = extract_user(&session, &user.username)
            .await
            .map_err(|e| format!("copying user {} from {peer}: {e}", user.username))?;
        if insert(state, &object).await.map_err(|e| format!("copying user {} from {peer}: {e}", user.username))? {
            report.users += 1;
        }
    }
    let mtls = peer_mtls(&session).await.map_err(|e| format!("copying the mTLS policy from {peer}: {e}"))?;
    let take = |hsm: &mut crate::model::Hsm| hsm.replace_mtls(&Caller::this_hsm(), mtls);
    state.mutate(take).await.map_err(|s| format!("copying the mTLS policy from {peer}: {}", s.message()))?;
    // The quorum values travel with the users (masked users carry their
    // registered keys).
    let listing = session.request(pb::ListQuorumValuesRequest {}).map_err(|e| e.to_string())?;
    let values = within(QuorumServiceClient::new(session.client().channel()).list_quorum_values(listing))
        .await
        .map_err(|e| format!("listing the quorum values of {peer}: {e}"))?
        .into_inner()
        .values;
    let values = super::quorum::values_from_proto(&values).map_err(|e| format!("quorum values of {peer}: {e}"))?;
    state
        .mutate(|hsm| {
            hsm.adopt_quorum_values(values);
            Ok(())
        })
        .await
        .map_err(|e| e.message().to_owned())?;
    let mut link = Link::new(peer.to_owned());
    link.session = Some(session);
    report.keys = link.round(state, access).await?;
    Ok(report)
}

/// A peer's trust anchors and enforcement level, as its appliance user reads
/// them.
async fn peer_mtls(session: &Session) -> Result<Mtls, Failure> {
    let mut api = MtlsServiceClient::new(session.client().channel());
    let listed = within(api.list_trust_anchors(session.request(pb::ListTrustAnchorsRequest {})?)).await?.into_inner();
    let level = within(api.get_mtls_enforcement(session.request(pb::GetMtlsEnforcementRequest {})?)).await?;
    let bad = |e: crate::model::ModelError| Failure::Other(format!("the peer sent {e}"));
    let anchors = listed
        .trust_anchors
        .iter()
        .map(|a| {
            Ok(TrustAnchor {
                reference: AnchorRef::parse("certificate_reference", &a.certificate_reference).map_err(bad)?,
                cert: AnchorCert::from_pem("certificate", &a.certificate).map_err(bad)?,
            })
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    Ok(Mtls::restore(anchors, Enforcement::parse("level", &level.into_inner().level).map_err(bad)?))
}

/// What a clone copied.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CloneReport {
    pub(crate) users: usize,
    pub(crate) keys: usize,
}

/// One peer and this HSM's session on it.
struct Link {
    peer: String,
    session: Option<Session>,
    /// The last round's failure, so that a peer that stays down is reported
    /// once, not every round.
    last_error: Option<String>,
}

impl Link {
    fn new(peer: String) -> Self {
        Link { peer, session: None, last_error: None }
    }

    /// One comparison with the peer; returns how many keys were copied.
    async fn round(&mut self, state: &HsmState, access: &PeerAccess) -> Result<usize, String> {
        let login =
            || async { access.login(&self.peer).await.map_err(|e| format!("logging in as {APPLIANCE_USERNAME}: {e}")) };
        let (session, cached) = match self.session.take() {
            Some(session) => (session, true),
            None => (login().await?, false),
        };
        let (session, result) = match self.compare(state, &session).await {
            // The peer restarted or expired the session: log in again now
            // rather than a round later.
            Err(Failure::Session(_)) if cached => {
                let fresh = login().await?;
                let result = self.compare(state, &fresh).await;
                (fresh, result)
            }
            result => (session, result),
        };
        if !matches!(result, Err(Failure::Session(_))) {
            self.session = Some(session);
        }
        result.map_err(|f| f.to_string())
    }

    async fn compare(&self, state: &HsmState, session: &Session) -> Result<usize, Failure> {
        let theirs = sync_status(session, false).await?;
        let ours = state.hsm().sync_status().digest;
        if theirs.digest == ours {
            return Ok(0);
        }
        let theirs = sync_status(session, true).await?;
        let ours: BTreeMap<KeyRef, Stamp> =
            state.hsm().key_digests().into_iter().map(|d| (d.reference, d.stamp)).collect();
        let mut copied = 0;
        for entry in theirs.keys {
            let Ok(reference) = KeyRef::parse("key_reference", &entry.key_reference) else {
                return Err(Failure::Other(format!("the peer sent a bad key reference {:?}", entry.key_reference)));
            };
            let stamp = Stamp {
                version: entry.version,
                digest: if entry.deleted { None } else { entry.digest.as_slice().try_into().ok() },
            };
            if ours.get(&reference).is_some_and(|mine| !stamp.supersedes(*mine)) {
                continue;
            }
            let object = within(session.extract_masked_key(&reference.to_string()))
                .await
                .map_err(|e| Failure::from(e).during(&format!("extracting {reference}")))?;
            match insert(state, &object.bytes).await {
                Ok(true) => copied += 1,
                Ok(false) => {}
                // One key this HSM cannot take yet (its owner is missing
                // here) must not stop the others.
                Err(e) => tracing::debug!(peer = %self.peer, key = %reference, error = %e, "key not copied"),
            }
        }
        Ok(copied)
    }

    fn report(&mut self, outcome: Result<usize, String>) {
        match outcome {
            Ok(copied) => {
                if copied > 0 {
                    tracing::info!(peer = %self.peer, copied, "background sync copied newer token keys");
                }
                if self.last_error.take().is_some() {
                    tracing::info!(peer = %self.peer, "background sync reaches the peer again");
                }
            }
            Err(error) => {
                if self.last_error.as_deref() != Some(error.as_str()) {
                    tracing::warn!(peer = %self.peer, %error, "background sync with the peer failed; retrying");
                }
                self.last_error = Some(error);
            }
        }
    }
}

/// Why a round stopped.
#[derive(Debug)]
enum Failure {
    /// The session is no longer valid: log in again next round.
    Session(String),
    Other(String),
}

impl Failure {
    fn during(self, what: &str) -> Self {
        match self {
            Failure::Session(e) => Failure::Session(format!("{what}: {e}")),
            Failure::Other(e) => Failure::Other(format!("{what}: {e}")),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Session(e) | Failure::Other(e) => f.write_str(e),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Unauthenticated(m) => Failure::Session(m),
            other => Failure::Other(other.to_string()),
        }
    }
}

/// A cluster's HSMs all have one mode: an HSM does not join (or clone)
/// across modes, since the keys one holds (triple DES) the other refuses.
async fn same_mode(state: &HsmState, session: &Session, peer: &str) -> Result<(), String> {
    let mut api = ClusterServiceClient::new(session.client().channel());
    let request = session.request(pb::GetClusterInfoRequest {}).map_err(|e| e.to_string())?;
    let theirs = within(api.get_cluster_info(request))
        .await
        .map_err(|e| format!("reading the cluster info of {peer}: {e}"))?
        .into_inner()
        .mode;
    let ours = state.hsm().cluster_info().cluster.mode.to_string();
    if theirs != ours {
        return Err(format!(
            "{peer} is an HSM of a {theirs} cluster and this HSM's cluster is {ours}: a cluster's HSMs all have the \
             same mode (set mode = \"{theirs}\" in this HSM's configuration, or join an HSM of a {ours} cluster)"
        ));
    }
    Ok(())
}

async fn sync_status(session: &Session, include_keys: bool) -> Result<pb::GetSyncStatusResponse, Failure> {
    let mut api = ClusterServiceClient::new(session.client().channel());
    let call = api.get_sync_status(session.request(pb::GetSyncStatusRequest { include_keys })?);
    Ok(within(call).await?.into_inner())
}

/// Extracts a user (keys go through `Session::extract_masked_key`).
async fn extract_user(session: &Session, username: &str) -> Result<Vec<u8>, Failure> {
    let mut api = MaskedObjectServiceClient::new(session.client().channel());
    let object = extract_masked_object_request::Object::Username(username.to_owned());
    let call = api.extract_masked_object(session.request(pb::ExtractMaskedObjectRequest { object: Some(object) })?);
    Ok(within(call).await?.into_inner().masked_object)
}

/// Opens a peer's object and stores it here if it is newer.
async fn insert(state: &HsmState, bytes: &[u8]) -> Result<bool, String> {
    let masker = state.masker().map_err(|e| e.to_string())?;
    let object: Masked = masker.unmask(bytes).map_err(|e| e.to_string())?;
    // Checked under the model's lock: once isolation is on, nothing more
    // arrives, so a reset that follows it is not undone by a round in flight.
    let take = |hsm: &mut crate::model::Hsm| {
        if state.is_isolated() { Ok(false) } else { hsm.insert_masked(&Caller::this_hsm(), object) }
    };
    state.mutate(take).await.map_err(|s| s.message().to_owned())
}

/// Bounds a call to a peer, so that a peer that accepts and never answers
/// cannot stall the round.
async fn within<T, E>(call: impl Future<Output = Result<T, E>>) -> Result<T, ClientError>
where
    E: Into<ClientError>,
{
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(ClientError::Unavailable(format!("no answer within {} s", CALL_TIMEOUT.as_secs()))),
    }
}
