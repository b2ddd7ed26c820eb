//! [`HsmState`]: the HSM and what its handlers share. The model behind its
//! lock, the store behind group commit, fail-stop after a failed write, the
//! generators, and password hashing off the async workers.

use std::{
    sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError},
    time::Instant,
};

use rand::{SeedableRng, rngs::StdRng};
use tonic::Status;

use super::{ServeError, blocking, faults, trust};
use crate::{
    audit::AuditLog,
    clock::Clock,
    commit::GroupCommit,
    config::{DaemonConfig, Transport},
    determinism::{self, Stream},
    metrics::Stats,
    model::{
        AdminSetup, Changes, Hsm, HsmSetup, KdfParams, KeyQuotas, KeyRange, Limits, ModelError, Password, PasswordHash,
    },
    store::{Backing, Masker, Opened, Store},
};

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
    pub(super) store: Arc<Store>,
    /// Changes on their way to `store`: many RPCs' changes are written in
    /// one transaction and fsync (group commit; see [`mutate`](Self::mutate)).
    commits: GroupCommit<Changes>,
    /// What was done and refused, written before the response is sent.
    pub(super) audit: AuditLog,
    /// Set when a write to the store or the audit log failed; shared with
    /// the store's committer, which sets it itself so that the HSM stops
    /// even if every caller of the failed batch has gone.
    health: Arc<FailStop>,
    /// Seals and opens masked objects; `None` without a masking key.
    pub(super) masker: Option<Masker>,
    /// Fault injection's switches and snapshots; `None` unless `--faults`.
    pub(super) faults: Option<Arc<faults::Faults>>,
    /// Counters for metrics (failed logins, sync rounds, requests).
    pub(super) stats: Arc<Stats>,
    /// The client-certificate policy, published from the model's mTLS
    /// policy whenever that changes (see [`Self::mutate`]).
    pub(super) trust: Arc<trust::Trust>,
    /// The open connections, closed when the policy stops admitting them.
    pub(super) connections: Arc<trust::Connections>,
}

impl HsmState {
    /// The HSM's state from its store, and whether the store was new.
    pub(super) async fn build(config: &DaemonConfig) -> Result<(Self, bool), ServeError> {
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
    pub(super) async fn mutate<T>(&self, op: impl FnOnce(&mut Hsm) -> Result<T, ModelError>) -> Result<T, Status> {
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
    pub(super) async fn settled(&self) -> Result<(), Status> {
        match self.commits.flush() {
            Some(ticket) => ticket.await.map_err(|_| self.unhealthy()),
            None => Ok(()),
        }
    }

    /// Stops serving (fail-stop) after a failed write: memory may hold what
    /// the disk does not.
    pub(super) fn fail(&self, what: &str, message: String) -> Status {
        self.health.fail(what, message);
        self.unhealthy()
    }

    /// Resolves once the store has failed (at once if it already has).
    pub(super) async fn store_failed(&self) {
        if self.health.failed.get().is_none() {
            self.health.failure.notified().await;
        }
    }

    pub(super) fn check_healthy(&self) -> Result<(), Status> {
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
    pub(super) fn hsm(&self) -> MutexGuard<'_, Hsm> {
        self.hsm.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh generator seeded from the HSM's CSPRNG, to move into a
    /// blocking task.
    pub(super) fn fork_rng(&self) -> StdRng {
        StdRng::from_rng(&mut *self.rng.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// As [`Self::fork_rng`], for generating key material.
    pub(super) fn fork_key_rng(&self) -> StdRng {
        StdRng::from_rng(&mut *self.key_rng.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(super) fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Hashes a password off the async workers.
    pub(super) async fn hash(&self, password: Password) -> Result<PasswordHash, Status> {
        let kdf = self.kdf;
        let mut rng = self.fork_rng();
        self.with_kdf(move || password.hash(&kdf, &mut rng)).await
    }

    /// Runs a password hash or check off the async workers, at most one per
    /// core at a time (see `kdf_slots`).
    pub(super) async fn with_kdf<T: Send + 'static>(
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
