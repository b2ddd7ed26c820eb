//! What the store keeps of an HSM: the changes since the last write, a
//! whole snapshot to restore or reset to, and the HSM rebuilt from them.

use std::collections::BTreeSet;

use super::{
    ClusterState, Hsm, HsmSetup, KeyRef, Mtls, PersistedKey, PersistedTombstone, QuorumValues, Sessions, Username,
    keys::Keys,
    quorum::Tokens,
    users::{PersistedUser, User},
};

/// HSM-wide state the store keeps beside users and keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistedMeta {
    pub state: ClusterState,
    pub next_key_ref: u64,
}

/// What changed in an HSM since the last `take_changes`: the store writes it
/// in one transaction before the change is acknowledged.
#[derive(Debug, Default)]
pub struct Changes {
    /// `Some` to store, `None` to delete.
    pub users: Vec<(Username, Option<PersistedUser>)>,
    pub keys: Vec<(KeyRef, Option<PersistedKey>)>,
    /// `Some` to store, `None` to delete.
    pub tombstones: Vec<(KeyRef, Option<PersistedTombstone>)>,
    pub meta: Option<PersistedMeta>,
    /// The whole mTLS policy, when it changed.
    pub mtls: Option<Mtls>,
    pub quorum: Option<QuorumValues>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.keys.is_empty()
            && self.tombstones.is_empty()
            && self.meta.is_none()
            && self.mtls.is_none()
            && self.quorum.is_none()
    }
}

/// Everything the store holds about an HSM's users and keys. Cloning is
/// cheap for keys (their parsed material is shared), so that a snapshot can
/// be kept and reset to more than once.
#[derive(Debug, Clone)]
pub struct PersistedState {
    pub meta: PersistedMeta,
    pub users: Vec<PersistedUser>,
    pub keys: Vec<PersistedKey>,
    pub tombstones: Vec<PersistedTombstone>,
    pub mtls: Mtls,
    pub quorum: QuorumValues,
}

impl Hsm {
    /// An HSM as its store kept it. `setup.admin` and `setup.appliance` are
    /// not used: the stored users are.
    pub fn restore(setup: HsmSetup, stored: PersistedState) -> Self {
        let users = stored.users.into_iter().map(User::from_persisted).collect();
        Hsm {
            cluster: setup.cluster,
            hsm: setup.hsm,
            limits: setup.limits,
            state: stored.meta.state,
            users,
            sessions: Sessions::new(setup.limits.session_idle_timeout, setup.limits.max_sessions),
            keys: Keys::restore(
                setup.limits.keys,
                setup.key_range,
                stored.meta.next_key_ref,
                stored.keys,
                stored.tombstones,
            ),
            decoy: setup.decoy,
            quorum: stored.quorum,
            tokens: Tokens::default(),
            dirty_quorum: false,
            dirty_users: BTreeSet::new(),
            dirty_meta: false,
            mtls: stored.mtls,
            dirty_mtls: false,
            stored_next_key_ref: stored.meta.next_key_ref,
        }
    }

    /// What changed since the last call, for the store.
    pub fn take_changes(&mut self) -> Changes {
        let users = std::mem::take(&mut self.dirty_users)
            .into_iter()
            .map(|name| {
                let stored = self.users.get(&name).map(|u| u.persisted(&name));
                (name, stored)
            })
            .collect();
        let (keys, tombstones) = self.keys.take_dirty();
        let next_key_ref = self.keys.next_ref();
        let meta = (std::mem::take(&mut self.dirty_meta) || next_key_ref != self.stored_next_key_ref)
            .then_some(PersistedMeta { state: self.state, next_key_ref });
        self.stored_next_key_ref = next_key_ref;
        let mtls = std::mem::take(&mut self.dirty_mtls).then(|| self.mtls.clone());
        let quorum = std::mem::take(&mut self.dirty_quorum).then_some(self.quorum);
        Changes { users, keys, tombstones, meta, mtls, quorum }
    }

    /// The users, token keys, tombstones and cluster state as the store
    /// keeps them: a snapshot to [`Hsm::reset`] to later (fault injection's
    /// snapshots and seeds). Sessions and session keys are not part of it.
    pub fn snapshot(&self) -> PersistedState {
        let (keys, tombstones) = self.keys.persisted();
        PersistedState {
            meta: PersistedMeta { state: self.state, next_key_ref: self.keys.next_ref() },
            users: self.users.iter().map(|(name, user)| user.persisted(name)).collect(),
            keys,
            tombstones,
            mtls: self.mtls.clone(),
            quorum: self.quorum,
        }
    }

    /// Replaces the users, keys, tombstones and cluster state with `state`
    /// (a [`Hsm::snapshot`]), closing every session as a reboot would;
    /// returns how many were open. Every user, key and tombstone held before
    /// or after counts as changed, so the next [`Hsm::take_changes`] makes
    /// the store hold exactly `state`, in one transaction.
    pub fn reset(&mut self, state: PersistedState) -> usize {
        let closed = self.end_all_sessions();
        self.dirty_users.extend(self.users.keys().cloned());
        self.users = state.users.into_iter().map(User::from_persisted).collect();
        self.dirty_users.extend(self.users.keys().cloned());
        self.state = state.meta.state;
        self.dirty_meta = true;
        self.quorum = state.quorum;
        self.dirty_quorum = true;
        self.tokens = Tokens::default();
        self.keys.reset(state.meta.next_key_ref, state.keys, state.tombstones);
        self.mtls = state.mtls;
        self.dirty_mtls = true;
        closed
    }
}
