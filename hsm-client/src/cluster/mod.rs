//! The cluster layer: every HSM of a cluster behind one handle, as the
//! CloudHSM client SDK presents it.
//!
//! HSMs do not copy users to each other, and a key made on one HSM exists
//! only there until it is copied. So the client writes users to every HSM
//! and copies each new or changed token key to every HSM (as a masked object)
//! before it reports success; reads and crypto go to one HSM at a time,
//! round-robin, and move to another HSM when one is down or busy. An HSM
//! that is down never fails an operation that others can do: results say per
//! HSM what happened ([`FanOut`], [`Coverage`]), and running a user command
//! again repairs the HSMs it missed.
//!
//! # Layout
//! - This file: [`Cluster`]: a connection to every endpoint, merged cluster
//!   info, login and activation.
//! - `session`: [`ClusterSession`]: one login per HSM, routing and retries,
//!   sync status.
//! - `fanout`: [`FanOut`] and [`Completion`], the per-HSM results of writes.
//! - `users`: user changes on every HSM and the merged user list.
//! - `quorum`: quorum tokens (one per HSM), values, approver and MFA keys
//!   on every HSM, and MFA logins.
//! - `keys`: key creation and replication, key changes, crypto routing, key
//!   lists with coverage and the key availability check.
//! - `retry`: which failures are tried again elsewhere.

mod fanout;
mod keys;
pub(crate) mod quorum;
mod retry;
mod session;
mod users;

use std::sync::Arc;

use futures_util::future::join_all;

pub use self::{
    fanout::{Completion, FanOut, HsmResult},
    keys::{ClusterKey, ClusterKeyPage, Coverage, CoverageLabel},
    quorum::SignedTokens,
    session::ClusterSession,
    users::{ClusterUser, Merged, UserChange, UserEffect, UserList},
};
use crate::{ClientConfig, ClientError, ClusterInfo, ClusterState, HsmClient, HsmInfo, RetryPolicy, Role, User};

/// The `state` shown for an HSM that did not answer.
pub const UNAVAILABLE_STATE: &str = "UNAVAILABLE";

/// Connections to every HSM of a cluster. Cheap to clone; clones share the
/// connections.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// One client per configured endpoint, in configuration order.
    hsms: Arc<[HsmClient]>,
    settings: Settings,
}

/// What the cluster layer takes from [`ClientConfig`].
#[derive(Debug, Clone, Copy)]
struct Settings {
    key_availability_check: bool,
    retry: RetryPolicy,
}

impl Cluster {
    /// Prepares a connection to every endpoint of `config`. Connections are
    /// made on first use (all HSMs at once, as every fanned-out call goes to
    /// all of them), so an HSM that is down fails only the calls sent to it,
    /// and one that comes back is used again. Fails only on bad settings.
    /// (Async because the connections' background tasks need a Tokio
    /// runtime.)
    pub async fn connect(config: &ClientConfig) -> Result<Self, ClientError> {
        let hsms = config
            .endpoints()
            .iter()
            .map(|endpoint| HsmClient::connect_lazy(config, endpoint))
            .collect::<Result<Arc<[HsmClient]>, ClientError>>()?;
        let settings = Settings { key_availability_check: config.key_availability_check(), retry: config.retry() };
        Ok(Cluster { hsms, settings })
    }

    /// One single-HSM client per endpoint, in configuration order.
    pub fn hsms(&self) -> &[HsmClient] {
        &self.hsms
    }

    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.hsms.iter().map(HsmClient::endpoint)
    }

    /// The cluster as every HSM describes it: the cluster's identity, and one
    /// [`HsmInfo`] per configured HSM, an unreachable one included with its
    /// address and the state [`UNAVAILABLE_STATE`]. Needs no login; fails
    /// only when no HSM answers.
    pub async fn cluster_info(&self) -> Result<ClusterInfo, ClientError> {
        let answers = join_all(self.hsms.iter().map(HsmClient::cluster_info)).await;
        let answers: Vec<(&str, Result<ClusterInfo, ClientError>)> = self.endpoints().zip(answers).collect();
        merge_cluster_info(&answers)
    }

    /// Logs in to every HSM at once. Succeeds when at least one HSM accepted
    /// the login; [`ClusterSession::unavailable`] names the others and why.
    /// When none did, the error is the HSMs' own (a wrong password is
    /// `Unauthenticated`, as with one HSM).
    pub async fn login(&self, username: &str, role: Role, password: &str) -> Result<ClusterSession, ClientError> {
        let logins = join_all(self.hsms.iter().map(|hsm| hsm.login(username, role, password))).await;
        if logins.iter().all(Result::is_err) {
            let failures = self.endpoints().map(str::to_owned).zip(logins.into_iter().filter_map(Result::err));
            return Err(fanout::combine(failures.collect()));
        }
        Ok(ClusterSession::new(self.clone(), logins))
    }

    /// A session that is logged in nowhere: every HSM sees an
    /// unauthenticated caller and refuses all but cluster information.
    pub fn anonymous(&self) -> ClusterSession {
        ClusterSession::new(self.clone(), self.hsms.iter().map(|hsm| Ok(hsm.anonymous())).collect())
    }

    /// Activates every HSM that is still unactivated (each HSM of a new
    /// cluster starts with its own precrypto officer, `admin`/`password`),
    /// giving all of them the same admin password. HSMs already active count
    /// as done ([`Activation::AlreadyActive`]); if every HSM is, activation
    /// fails as it does on one HSM.
    pub async fn activate(&self, new_admin_password: &str) -> Result<FanOut<Activation>, ClientError> {
        let outcomes = join_all(self.hsms.iter().map(|hsm| async move {
            if hsm.cluster_info().await?.state == ClusterState::Active {
                return Ok(Activation::AlreadyActive);
            }
            hsm.activate(new_admin_password).await.map(Activation::Activated)
        }))
        .await;
        let result = FanOut {
            hsms: self
                .endpoints()
                .zip(outcomes)
                .map(|(endpoint, outcome)| HsmResult { endpoint: endpoint.to_owned(), outcome })
                .collect(),
        }
        .into_result()?;
        if result.succeeded().all(|(_, a)| *a == Activation::AlreadyActive) {
            return Err(ClientError::FailedPrecondition("the cluster is already activated".into()));
        }
        Ok(result)
    }
}

/// What activation did on one HSM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activation {
    /// The precrypto officer became this admin.
    Activated(User),
    /// The HSM was active before; nothing changed.
    AlreadyActive,
}

/// Merges what each endpoint said about the cluster: identity from the first
/// HSM that answered (an HSM not yet activated makes the whole cluster
/// [`ClusterState::Uninitialized`], so that activation is still offered),
/// then one entry per configured endpoint, then any other HSM the answers
/// named. An endpoint that did not answer appears with its address and
/// [`UNAVAILABLE_STATE`], with whatever identity other HSMs gave for it.
fn merge_cluster_info(answers: &[(&str, Result<ClusterInfo, ClientError>)]) -> Result<ClusterInfo, ClientError> {
    let answered: Vec<&ClusterInfo> = answers.iter().filter_map(|(_, a)| a.as_ref().ok()).collect();
    let Some(first) = answered.first() else {
        let failures = answers.iter().filter_map(|(e, a)| a.as_ref().err().map(|err| (e.to_string(), err.clone())));
        return Err(fanout::combine(failures.collect()));
    };
    let state = if answered.iter().any(|i| i.state == ClusterState::Uninitialized) {
        ClusterState::Uninitialized
    } else {
        first.state
    };
    let described = |endpoint: &str| answered.iter().flat_map(|i| &i.hsms).find(|h| h.address == endpoint).cloned();
    let mut hsms: Vec<HsmInfo> = Vec::new();
    for (endpoint, answer) in answers {
        let own = match answer {
            // An HSM describes itself under its own address, or as the only
            // HSM it knows.
            Ok(info) => info
                .hsms
                .iter()
                .find(|h| h.address == *endpoint)
                .or(if info.hsms.len() == 1 { info.hsms.first() } else { None })
                .cloned(),
            Err(_) => None,
        };
        let entry = match (own, answer) {
            (Some(hsm), _) => hsm,
            (None, Ok(_)) => HsmInfo { address: endpoint.to_string(), ..HsmInfo::default() },
            (None, Err(_)) => HsmInfo {
                address: endpoint.to_string(),
                state: UNAVAILABLE_STATE.to_owned(),
                ..described(endpoint).unwrap_or_default()
            },
        };
        if entry.hsm_id.is_empty() || !hsms.iter().any(|h| h.hsm_id == entry.hsm_id) {
            hsms.push(entry);
        }
    }
    for other in answered.iter().flat_map(|i| &i.hsms) {
        if !hsms.iter().any(|h| h.hsm_id == other.hsm_id || h.address == other.address) {
            hsms.push(other.clone());
        }
    }
    Ok(ClusterInfo {
        cluster_id: first.cluster_id.clone(),
        state,
        hsm_type: first.hsm_type.clone(),
        mode: first.mode.clone(),
        hsms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hsm(id: &str, address: &str) -> HsmInfo {
        HsmInfo { hsm_id: id.into(), address: address.into(), state: "ACTIVE".into(), ..HsmInfo::default() }
    }

    fn info(state: ClusterState, hsms: Vec<HsmInfo>) -> ClusterInfo {
        ClusterInfo {
            cluster_id: "cluster-abc".into(),
            state,
            hsm_type: "hsm2m.medium".into(),
            mode: "FIPS".into(),
            hsms,
        }
    }

    #[test]
    fn every_configured_hsm_is_listed_and_one_that_did_not_answer_is_unavailable() {
        let answers = [
            ("a:1", Ok(info(ClusterState::Active, vec![hsm("hsm-a", "a:1")]))),
            ("b:1", Err(ClientError::Unavailable("connection refused".into()))),
            ("c:1", Ok(info(ClusterState::Active, vec![hsm("hsm-c", "c:1")]))),
        ];
        let merged = merge_cluster_info(&answers).unwrap();
        assert_eq!(merged.cluster_id, "cluster-abc");
        assert_eq!(merged.state, ClusterState::Active);
        let rows: Vec<(&str, &str, &str)> =
            merged.hsms.iter().map(|h| (h.hsm_id.as_str(), h.address.as_str(), h.state.as_str())).collect();
        assert_eq!(rows, [("hsm-a", "a:1", "ACTIVE"), ("", "b:1", UNAVAILABLE_STATE), ("hsm-c", "c:1", "ACTIVE")]);
    }

    #[test]
    fn an_unreachable_hsm_keeps_the_identity_its_peers_give_it() {
        let both = vec![hsm("hsm-a", "a:1"), hsm("hsm-b", "b:1")];
        let answers = [
            ("a:1", Ok(info(ClusterState::Active, both))),
            ("b:1", Err(ClientError::Unavailable("connection refused".into()))),
        ];
        let merged = merge_cluster_info(&answers).unwrap();
        assert_eq!(merged.hsms.len(), 2);
        assert_eq!((merged.hsms[1].hsm_id.as_str(), merged.hsms[1].state.as_str()), ("hsm-b", UNAVAILABLE_STATE));
    }

    #[test]
    fn one_unactivated_hsm_makes_the_cluster_unactivated_and_no_answer_is_an_error() {
        let answers = [
            ("a:1", Ok(info(ClusterState::Active, vec![hsm("hsm-a", "a:1")]))),
            ("b:1", Ok(info(ClusterState::Uninitialized, vec![hsm("hsm-b", "b:1")]))),
        ];
        assert_eq!(merge_cluster_info(&answers).unwrap().state, ClusterState::Uninitialized);
        let down = ClientError::Unavailable("connection refused".into());
        let none = [("a:1", Err(down.clone())), ("b:1", Err(down.clone()))];
        assert_eq!(merge_cluster_info(&none).unwrap_err(), down);
    }
}
