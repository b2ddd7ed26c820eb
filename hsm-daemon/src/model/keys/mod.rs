//! Keys: references, CloudHSM's attributes and their rules, owners and
//! shared users, session keys, quotas, and listing with filters and pages.
//!
//! The material itself is a [`KeyMaterial`] behind an `Arc`, so that the
//! service can run costly mechanisms outside the model's lock; keys loaded
//! from the store parse it on first use. Facts derived from it (check value,
//! sizes, modulus, EC point) are read off it when a key is shown, so that
//! the million keys nobody lists cost no memory for them. What every call
//! needs of every key without parsing (type, class, sync digest) is kept
//! beside it, and label filters go through an index: a listing does not
//! walk every key under the model's lock.
//!
//! # Layout
//! - `reference`: [`KeyRef`] and the [`KeyRange`] each HSM hands out.
//! - `attributes`: attribute names, defaults, templates, the rules for
//!   writing one, and the usages they allow.
//! - `view`: a key as replies and listings show it.
//! - `rules`: the object rules (owner, shared users, visibility) and the
//!   changes they guard: create, use, wrap, export, delete, share, modify.
//! - `quorum`: a key's own quorum values.
//! - `index`: keys by label, the census, session keys by session.
//! - `listing`: `key list`'s filters and pages.
//! - `replicas`: stamps, tombstones, sync digests and the copies masked
//!   objects carry.
//! - This file: [`Keys`], the store of one HSM's keys, and what it persists.

mod attributes;
mod index;
mod listing;
mod quorum;
mod reference;
mod replicas;
mod rules;
mod view;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use self::{
    index::{KeyIndex, census_entry, label_hash},
    replicas::Tombstone,
};
use crate::{
    crypto::KeyMaterial,
    model::{ModelError, SessionId, Username},
};

pub(in crate::model) use self::index::PARALLEL_RESTORE;
pub use self::{
    attributes::{AttrName, Attributes, MAX_LABEL_CHARS, MAX_REQUEST_ATTRIBUTES, MAX_VALUE_CHARS, Template, Usage},
    listing::{KeyPage, KeyQuery},
    quorum::KeyQuorum,
    reference::{KeyRange, KeyRef},
    replicas::{KeyDigest, PersistedTombstone, Replica, Stamp},
    rules::Actor,
    view::{Facts, KeyView, class_name, curve_name, kind_name, parse_curve},
};

/// Users a key may be shared with, besides its owner.
pub const MAX_SHARED_USERS: usize = 7;

/// Shortens user input quoted back in an error.
fn truncate(raw: &str) -> String {
    raw.chars().take(40).collect()
}

/// Key quotas of one HSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyQuotas {
    pub max_keys: usize,
    pub max_asymmetric: usize,
}

impl KeyQuotas {
    /// hsm2m.medium's published quotas.
    pub const HSM2M: KeyQuotas = KeyQuotas { max_keys: 16_666, max_asymmetric: 3_333 };
    /// hsm1.medium's: 3,300 keys, no separate asymmetric limit.
    pub const HSM1: KeyQuotas = KeyQuotas { max_keys: 3_300, max_asymmetric: 3_300 };
    /// No quota (`key_quota = "off"`): for measuring and for test suites
    /// that need more keys than a real HSM holds.
    pub const OFF: KeyQuotas = KeyQuotas { max_keys: usize::MAX, max_asymmetric: usize::MAX };
}

/// A key to store, as the service prepared it.
#[derive(Debug)]
pub struct NewKey {
    pub material: Arc<KeyMaterial>,
    pub template: Template,
    /// Generated on the HSM (`local`), as opposed to imported or unwrapped.
    pub local: bool,
}

/// The keys of one HSM.
#[derive(Debug)]
pub struct Keys {
    keys: BTreeMap<KeyRef, Key>,
    /// Kept in step with `keys` by [`Keys::put`] and [`Keys::take`].
    index: KeyIndex,
    /// Deleted token keys, kept so that an old copy cannot return.
    tombstones: BTreeMap<KeyRef, Tombstone>,
    range: KeyRange,
    next_ref: u64,
    quotas: KeyQuotas,
    /// Token keys changed since the last `take_dirty`, for persistence.
    dirty: BTreeSet<KeyRef>,
    /// Tombstones changed since the last `take_dirty`.
    dirty_tombstones: BTreeSet<KeyRef>,
}

/// One stored key.
#[derive(Debug)]
struct Key {
    /// Type and class are read off it without parsing (see [`KeyMaterial`]).
    material: Arc<KeyMaterial>,
    attrs: Attributes,
    owner: Username,
    shared: BTreeSet<Username>,
    /// `Some` for a session key: it lives only as long as this session.
    session: Option<SessionId>,
    /// Rises with every change, so that HSMs agree which copy is newer.
    version: u64,
    /// The sync digest, recomputed on every change (sync status reads it
    /// for every key, often) and stored with the key, so that a restart
    /// need not parse every key to compute it again.
    digest: [u8; 32],
    quorum: KeyQuorum,
}

/// A token key as the store keeps it.
#[derive(Debug, Clone)]
pub struct PersistedKey {
    pub reference: KeyRef,
    pub material: Arc<KeyMaterial>,
    pub attrs: Attributes,
    pub owner: Username,
    pub shared: Vec<Username>,
    pub version: u64,
    /// The sync digest as stored with the key; `None` when it must be
    /// computed (copies from other HSMs, backups, stores that predate it).
    pub digest: Option<[u8; 32]>,
    pub quorum: KeyQuorum,
}

/// Changes to token keys for the store: keys to write (`None`: delete) and
/// tombstones to write (`None`: delete).
pub type KeyChanges = (Vec<(KeyRef, Option<PersistedKey>)>, Vec<(KeyRef, Option<PersistedTombstone>)>);

impl Keys {
    pub fn new(quotas: KeyQuotas, range: KeyRange) -> Self {
        Keys {
            keys: BTreeMap::new(),
            index: KeyIndex::default(),
            tombstones: BTreeMap::new(),
            range,
            next_ref: range.first(),
            quotas,
            dirty: BTreeSet::new(),
            dirty_tombstones: BTreeSet::new(),
        }
    }

    /// Keys and tombstones as the store gave them back, and the next
    /// reference to hand out (moved into `range` if the HSM's index changed).
    pub fn restore(
        quotas: KeyQuotas,
        range: KeyRange,
        next_ref: u64,
        stored: Vec<PersistedKey>,
        tombstones: Vec<PersistedTombstone>,
    ) -> Self {
        let mut keys = Keys::new(quotas, range);
        let mut indexed = Vec::with_capacity(stored.len());
        let entries: Vec<(KeyRef, Key)> = stored
            .into_iter()
            .map(|k| {
                let (reference, key) = (k.reference, Key::from_persisted(k));
                indexed.push((label_hash(&key.attrs.label), reference, census_entry(&key)));
                (reference, key)
            })
            .collect();
        // The store gives keys in reference order: collecting builds the map
        // in one pass, its nodes full. The index does not need the map: with
        // many keys (a restart's cost grows with them: a million take a few
        // hundred ms for each) it is built beside it, on a second thread.
        let build = || KeyIndex::restored(&indexed);
        (keys.keys, keys.index) = std::thread::scope(|scope| {
            // Without a thread to be had, one after the other on this one.
            let beside = (entries.len() >= PARALLEL_RESTORE)
                .then(|| std::thread::Builder::new().name("hsm-key-index".into()).spawn_scoped(scope, build).ok())
                .flatten();
            let map = entries.into_iter().collect();
            let index = match beside {
                Some(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                None => build(),
            };
            (map, index)
        });
        for t in tombstones {
            keys.tombstones.insert(t.reference, Tombstone { version: t.version, owner: t.owner });
        }
        let start = if range.contains(next_ref) { next_ref } else { range.first() };
        keys.next_ref = keys
            .keys
            .keys()
            .chain(keys.tombstones.keys())
            .filter(|r| range.contains(r.0))
            .fold(start, |next, r| next.max(r.0 + 1));
        keys
    }

    /// Replaces every key and tombstone, as [`Keys::restore`] builds them
    /// (a reset to a snapshot); session keys go too. Every key and tombstone
    /// held before or after counts as changed, so that the store ends up
    /// holding exactly the new set.
    pub fn reset(&mut self, next_ref: u64, stored: Vec<PersistedKey>, tombstones: Vec<PersistedTombstone>) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.extend(self.keys.keys());
        let mut dirty_tombstones = std::mem::take(&mut self.dirty_tombstones);
        dirty_tombstones.extend(self.tombstones.keys());
        *self = Keys::restore(self.quotas, self.range, next_ref, stored, tombstones);
        dirty.extend(self.keys.keys());
        dirty_tombstones.extend(self.tombstones.keys());
        self.dirty = dirty;
        self.dirty_tombstones = dirty_tombstones;
    }

    /// Every token key and tombstone as the store keeps them.
    pub fn persisted(&self) -> (Vec<PersistedKey>, Vec<PersistedTombstone>) {
        let keys = self.keys.iter().filter(|(_, k)| k.session.is_none()).map(|(r, k)| k.persisted(*r)).collect();
        let tombstones = self.tombstones.iter().map(|(r, t)| t.persisted(*r)).collect();
        (keys, tombstones)
    }

    /// The next reference to hand out (persisted so that references are
    /// never reused).
    pub fn next_ref(&self) -> u64 {
        self.next_ref
    }

    /// Token keys changed since the last call: `Some` to store, `None` to
    /// delete. Session keys are never persisted.
    pub fn take_dirty(&mut self) -> KeyChanges {
        let keys = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|reference| match self.keys.get(&reference) {
                Some(key) if key.session.is_some() => None,
                Some(key) => Some((reference, Some(key.persisted(reference)))),
                None => Some((reference, None)),
            })
            .collect();
        let tombstones = std::mem::take(&mut self.dirty_tombstones)
            .into_iter()
            .map(|reference| (reference, self.tombstones.get(&reference).map(|t| t.persisted(reference))))
            .collect();
        (keys, tombstones)
    }

    pub fn quotas(&self) -> KeyQuotas {
        self.quotas
    }

    /// How many keys there are of each (type, class), as `key list` names
    /// them, session keys included.
    pub fn census(&self) -> BTreeMap<(&'static str, &'static str), usize> {
        self.index.census.clone()
    }

    fn check_quota(&self, adding: usize, adding_asymmetric: usize) -> Result<(), ModelError> {
        if self.keys.len() + adding > self.quotas.max_keys {
            return Err(ModelError::KeyQuota { what: "keys", max: self.quotas.max_keys });
        }
        if self.index.asymmetric() + adding_asymmetric > self.quotas.max_asymmetric {
            return Err(ModelError::KeyQuota { what: "asymmetric keys", max: self.quotas.max_asymmetric });
        }
        Ok(())
    }

    /// Drops the session keys of ended sessions.
    pub fn end_sessions(&mut self, ended: &[SessionId]) -> usize {
        let gone: Vec<KeyRef> = ended.iter().flat_map(|s| self.index.of_session(*s)).collect();
        for reference in &gone {
            self.take(*reference);
        }
        gone.len()
    }

    /// Stores a key, keeping the index in step.
    fn put(&mut self, reference: KeyRef, key: Key) {
        self.take(reference);
        self.index.add(reference, &key);
        self.keys.insert(reference, key);
    }

    /// Removes a key, keeping the index in step.
    fn take(&mut self, reference: KeyRef) -> Option<Key> {
        let key = self.keys.remove(&reference)?;
        self.index.remove(reference, &key);
        Some(key)
    }
}

impl Key {
    fn from_persisted(k: PersistedKey) -> Self {
        let mut key = Key {
            material: k.material,
            attrs: k.attrs,
            owner: k.owner,
            shared: k.shared.into_iter().collect(),
            session: None,
            version: k.version,
            digest: k.digest.unwrap_or_default(),
            quorum: k.quorum,
        };
        if k.digest.is_none() {
            key.digest = key.compute_digest(k.reference);
        }
        key
    }

    /// Records a change: a new version and digest.
    fn changed(&mut self, reference: KeyRef) {
        self.version += 1;
        self.digest = self.compute_digest(reference);
    }

    fn persisted(&self, reference: KeyRef) -> PersistedKey {
        PersistedKey {
            reference,
            material: Arc::clone(&self.material),
            attrs: self.attrs.clone(),
            owner: self.owner.clone(),
            shared: self.shared.iter().cloned().collect(),
            version: self.version,
            digest: Some(self.digest),
            quorum: self.quorum,
        }
    }

    /// SHA-256 over what HSMs in step agree on: the reference, every
    /// attribute as the CLI shows it (type, class and check value included),
    /// the owner and the shared users, length-prefixed.
    fn compute_digest(&self, reference: KeyRef) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut put = |bytes: &[u8]| {
            ctx.update(&(bytes.len() as u64).to_be_bytes());
            ctx.update(bytes);
        };
        put(reference.to_string().as_bytes());
        for (name, value) in view(reference, self).attribute_values() {
            put(name.as_str().as_bytes());
            put(value.as_bytes());
        }
        put(self.owner.as_str().as_bytes());
        put(&(self.shared.len() as u64).to_be_bytes());
        for user in &self.shared {
            put(user.as_str().as_bytes());
        }
        // Only when set, so that digests of keys without them are unchanged.
        if self.quorum != KeyQuorum::default() {
            put(&[self.quorum.manage, self.quorum.usage]);
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ctx.finish().as_ref());
        digest
    }
}

fn view(reference: KeyRef, key: &Key) -> KeyView {
    KeyView {
        reference,
        facts: Facts::of(&key.material),
        attrs: key.attrs.clone(),
        owner: key.owner.clone(),
        shared: key.shared.iter().cloned().collect(),
        session: key.session.is_some(),
        quorum: key.quorum,
    }
}
