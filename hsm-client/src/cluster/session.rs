//! [`ClusterSession`]: one login per HSM, and how work is sent to them.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
};

use futures_util::future::join_all;

use super::{Cluster, FanOut, HsmResult, retry};
use crate::{AuditPage, ClientError, Role, Session, SyncStatus};

/// A user logged in to the HSMs of a cluster: one [`Session`] per HSM that
/// accepted the login. User changes and key writes go to all of them; reads
/// and crypto to one at a time. Dropping it does not log out; call
/// [`ClusterSession::logout`].
#[derive(Debug)]
pub struct ClusterSession {
    pub(super) cluster: Cluster,
    /// One slot per configured endpoint, in configuration order: the session
    /// there, or why there is none.
    slots: Vec<Result<Session, ClientError>>,
    /// Round-robin position for reads and crypto.
    next: AtomicUsize,
    /// Where each session key made through this session lives: session keys
    /// are never copied, so their operations must go there.
    pub(super) session_keys: Mutex<HashMap<String, usize>>,
    /// Which HSMs were seen holding a token key, by reference; see
    /// `keys::Presence`.
    pub(super) holders: Mutex<HashMap<String, Vec<usize>>>,
}

impl ClusterSession {
    pub(super) fn new(cluster: Cluster, slots: Vec<Result<Session, ClientError>>) -> Self {
        ClusterSession {
            cluster,
            slots,
            next: AtomicUsize::new(0),
            session_keys: Mutex::new(HashMap::new()),
            holders: Mutex::new(HashMap::new()),
        }
    }

    /// The logged-in user's name as the HSMs report it; `None` when anonymous.
    pub fn username(&self) -> Option<&str> {
        self.sessions().next().and_then(Session::username)
    }

    /// The logged-in user's role as the HSMs report it.
    pub fn role(&self) -> Option<Role> {
        self.sessions().next().and_then(Session::role)
    }

    /// The HSMs this session is not logged in to, and why (unreachable,
    /// refused the password, ...). Their endpoints as configured.
    pub fn unavailable(&self) -> Vec<(&str, &ClientError)> {
        self.endpoints()
            .zip(&self.slots)
            .filter_map(|(endpoint, slot)| slot.as_ref().err().map(|e| (endpoint, e)))
            .collect()
    }

    /// The single-HSM sessions, in endpoint order, for talking to one HSM on
    /// purpose.
    pub fn sessions(&self) -> impl Iterator<Item = &Session> {
        self.slots.iter().filter_map(|slot| slot.as_ref().ok())
    }

    /// The single-HSM session on `endpoint`, if logged in there.
    pub fn session_on(&self, endpoint: &str) -> Option<&Session> {
        self.sessions().find(|s| s.client().endpoint() == endpoint)
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Logs out of every HSM.
    pub async fn logout(self) -> Result<FanOut<()>, ClientError> {
        let ClusterSession { cluster, slots, .. } = self;
        let outcomes = join_all(slots.into_iter().map(|slot| async move { slot?.logout().await })).await;
        fan_out_result(&cluster, outcomes).into_result()
    }

    /// Every HSM's sync status, or why it could not be read. HSMs in step
    /// give equal digests ([`FanOut::in_sync`]).
    pub async fn sync_status_all(&self) -> FanOut<SyncStatus> {
        self.on_all(Session::sync_status).await
    }

    /// [`Session::read_audit_log`] on every HSM: each keeps its own log.
    pub async fn read_audit_log_all(&self, from_seq: u64, limit: u32) -> FanOut<AuditPage> {
        self.on_all(|s| s.read_audit_log(from_seq, limit)).await
    }

    /// Endpoints in configuration order.
    pub(super) fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.cluster.endpoints()
    }

    pub(super) fn endpoint(&self, at: usize) -> &str {
        self.cluster.hsms.get(at).map_or("", |hsm| hsm.endpoint())
    }

    /// How many HSMs the cluster is configured with.
    pub(super) fn cluster_size(&self) -> usize {
        self.slots.len()
    }

    /// The slots with a session.
    pub(super) fn logged_in(&self) -> Vec<usize> {
        (0..self.slots.len()).filter(|at| self.slots[*at].is_ok()).collect()
    }

    /// Runs `op` on every HSM at once; HSMs without a session fail with the
    /// reason there is none.
    //
    // The helpers take `Fn(&'a Session) -> Fut` rather than async closures:
    // the futures of async closures are not known to be `Send` for every
    // lifetime, which would keep callers from spawning cluster calls.
    pub(crate) async fn on_all<'a, T, F, Fut>(&'a self, op: F) -> FanOut<T>
    where
        F: Fn(&'a Session) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let outcomes = join_all(self.slots.iter().map(|slot| {
            let call = slot.as_ref().map(&op);
            async move {
                match call {
                    Ok(call) => call.await,
                    Err(why) => Err(why.clone()),
                }
            }
        }))
        .await;
        fan_out_result(&self.cluster, outcomes)
    }

    /// Runs `op` on the HSMs `at` at once, and returns what each said.
    pub(super) async fn on_each<'a, T, F, Fut>(&'a self, at: &[usize], op: F) -> Vec<(usize, Result<T, ClientError>)>
    where
        F: Fn(&'a Session) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let op = &op;
        join_all(at.iter().map(|i| {
            let call = self.run_at(*i, op);
            async move { (*i, call.await) }
        }))
        .await
    }

    /// Runs `op` on one of `candidates`, round-robin, retrying elsewhere when
    /// an HSM could not take the call. Returns which HSM answered.
    pub(super) async fn on_one<'a, T, F, Fut>(&'a self, candidates: &[usize], op: F) -> Result<(usize, T), ClientError>
    where
        F: Fn(&'a Session) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let op = &op;
        retry::run(self.cluster.settings.retry, candidates, start, move |at| self.run_at(at, op)).await
    }

    /// Runs `op` on HSM `at`.
    pub(super) async fn run_at<'a, T, F, Fut>(&'a self, at: usize, op: F) -> Result<T, ClientError>
    where
        F: Fn(&'a Session) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        match self.slots.get(at) {
            Some(Ok(session)) => op(session).await,
            Some(Err(why)) => Err(why.clone()),
            None => Err(retry::nowhere_to_ask()),
        }
    }
}

/// Pairs outcomes (one per configured endpoint, in order) with endpoints.
pub(super) fn fan_out_result<T>(cluster: &Cluster, outcomes: Vec<Result<T, ClientError>>) -> FanOut<T> {
    FanOut {
        hsms: cluster
            .endpoints()
            .zip(outcomes)
            .map(|(endpoint, outcome)| HsmResult { endpoint: endpoint.to_owned(), outcome })
            .collect(),
    }
}

/// Locks a cache. A panic while it was held cannot leave it half-written
/// (each update is one map operation), so a poisoned lock is used as is.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ClientConfig, CreateUser, KeyOptions, ListKeys, Sign,
        keys::{HashAlgorithm, SignMechanism, SymmetricKeyType},
    };

    fn is_send<T: Send>(_: T) {}

    /// Applications spawn cluster calls on multi-threaded runtimes.
    #[tokio::test]
    async fn cluster_calls_can_move_between_threads() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_owned();
        let config =
            ClientConfig::new(vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()], pem).unwrap().insecure_plaintext();
        let cluster = Cluster::connect(&config).await.unwrap();
        let session = cluster.anonymous();
        assert!(session.unavailable().is_empty(), "an anonymous session is 'logged in' everywhere");
        is_send(cluster.login("cu", Role::CryptoUser, "password"));
        is_send(session.create_user(CreateUser::new("alice", Role::CryptoUser, "password")));
        is_send(session.list_users());
        is_send(session.generate_symmetric_key(SymmetricKeyType::Aes, 32, &KeyOptions::default()));
        is_send(session.sign(Sign::new("0x1", SignMechanism::Ecdsa, b"data").hash(HashAlgorithm::Sha256)));
        is_send(session.list_keys(ListKeys::default()));
        is_send(session.sync_status_all());
        is_send(session.delete_key("0x1"));
        is_send(cluster.activate("password"));
        is_send(cluster.cluster_info());
    }
}
