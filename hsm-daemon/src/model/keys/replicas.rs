//! Copies of keys between HSMs: stamps that say which copy is newer,
//! tombstones that keep deleted keys from coming back, the per-key sync
//! digests, and the replicas that masked objects carry.

use super::{
    Key, KeyRef, KeyView, Keys, PersistedKey,
    rules::{key_denied, sees},
    view,
};
use crate::{
    crypto::KeyClass,
    model::{ModelError, Username},
};

/// A key's place in the order of changes: the higher version wins; equal
/// versions (changes made on two HSMs at once) are settled by the digest, and
/// a deletion wins over any content of the same version, so that every HSM
/// picks the same winner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub version: u64,
    /// The key's digest; `None` for a tombstone.
    pub digest: Option<[u8; 32]>,
}

impl Stamp {
    /// Whether a copy stamped `self` replaces one stamped `other`.
    pub fn supersedes(self, other: Stamp) -> bool {
        match self.version.cmp(&other.version) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => match (self.digest, other.digest) {
                (None, Some(_)) => true,
                (Some(a), Some(b)) => a > b,
                (_, None) => false,
            },
        }
    }
}

/// What an HSM remembers of a deleted token key, so that an older copy of it
/// is never brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedTombstone {
    pub reference: KeyRef,
    pub version: u64,
    /// Whose key it was: object rules for masked objects apply to tombstones
    /// as to keys.
    pub owner: Username,
}

/// One entry of the per-key sync status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDigest {
    pub reference: KeyRef,
    pub stamp: Stamp,
}

#[derive(Debug, Clone)]
pub(super) struct Tombstone {
    pub(super) version: u64,
    pub(super) owner: Username,
}

impl Keys {
    /// Every token key (session keys are never synchronised), by reference.
    pub fn token_views(&self) -> impl Iterator<Item = KeyView> + '_ {
        self.keys.iter().filter(|(_, k)| k.session.is_none()).map(|(r, k)| view(*r, k))
    }

    /// Every token key and tombstone with its stamp, by reference.
    pub fn digests(&self) -> Vec<KeyDigest> {
        let live = self
            .keys
            .iter()
            .filter(|(_, k)| k.session.is_none())
            .map(|(r, k)| KeyDigest { reference: *r, stamp: k.stamp() });
        let dead = self.tombstones.iter().map(|(r, t)| KeyDigest { reference: *r, stamp: t.stamp() });
        let mut all: Vec<KeyDigest> = live.chain(dead).collect();
        all.sort_by_key(|d| d.reference);
        all
    }

    /// The digest of one token key, for the HSM-wide sync status.
    pub fn token_digests(&self) -> impl Iterator<Item = (KeyRef, [u8; 32])> + '_ {
        self.keys.iter().filter(|(_, k)| k.session.is_none()).map(|(r, k)| (*r, k.digest))
    }

    /// A token key or its tombstone, for a masked object. `owner`: the only
    /// user whose objects may be taken (a crypto user's own), or `None` for
    /// any (admins and the appliance user).
    pub fn extract(&self, reference: KeyRef, owner: Option<&Username>) -> Result<Replica, ModelError> {
        let replica = match (self.keys.get(&reference), self.tombstones.get(&reference)) {
            (Some(key), _) if key.session.is_some() => {
                return Err(ModelError::InvalidArgument {
                    field: "key_reference",
                    rule: format!("{reference} is a session key; session keys stay on their HSM and are never masked"),
                });
            }
            (Some(key), _) => Replica::Key(key.persisted(reference)),
            (None, Some(t)) => Replica::Tombstone(t.persisted(reference)),
            (None, None) => return Err(ModelError::KeyNotFound { reference }),
        };
        if let Some(user) = owner
            && replica.owner() != user
        {
            // As for keys it cannot see: a crypto user learns nothing of
            // other users' keys.
            return match replica {
                Replica::Key(_) if self.keys.get(&reference).is_some_and(|k| sees(user, k)) => {
                    Err(key_denied(reference, "a crypto user extracts only keys it owns"))
                }
                Replica::Key(_) | Replica::Tombstone(_) => Err(ModelError::KeyNotFound { reference }),
            };
        }
        Ok(replica)
    }

    /// Takes a copy made on another HSM if it is newer than what this HSM
    /// holds; returns whether it did. Owner rules and user checks are the
    /// caller's (`Hsm::insert_masked`).
    pub fn insert_replica(&mut self, replica: Replica) -> Result<bool, ModelError> {
        let reference = replica.reference();
        // Parsed once: the key's digest (its stamp) needs its facts, and the
        // key is stored as parsed here.
        let incoming = match replica {
            Replica::Key(k) => Incoming::Key(Box::new(Key::from_persisted(k))),
            Replica::Tombstone(t) => Incoming::Tombstone(Tombstone { version: t.version, owner: t.owner }),
        };
        if let Some(local) = self.stamp(reference)
            && !incoming.stamp().supersedes(local)
        {
            return Ok(false);
        }
        if let Some(existing) = self.keys.get(&reference)
            && existing.session.is_some()
        {
            return Err(internal_clash(reference));
        }
        match incoming {
            Incoming::Key(key) => {
                if !self.keys.contains_key(&reference) {
                    self.check_quota(1, usize::from(key.material.class() != KeyClass::Secret))?;
                }
                self.put(reference, *key);
                if self.tombstones.remove(&reference).is_some() {
                    self.dirty_tombstones.insert(reference);
                }
            }
            Incoming::Tombstone(tombstone) => {
                self.take(reference);
                self.tombstones.insert(reference, tombstone);
                self.dirty_tombstones.insert(reference);
            }
        }
        self.dirty.insert(reference);
        if self.range.contains(reference.0) {
            // A key this HSM made before it lost its state (restored from an
            // older backup) comes back: never hand its reference out again.
            self.next_ref = self.next_ref.max(reference.0 + 1);
        }
        Ok(true)
    }

    /// The stamp of a token key or tombstone this HSM holds.
    fn stamp(&self, reference: KeyRef) -> Option<Stamp> {
        match (self.keys.get(&reference), self.tombstones.get(&reference)) {
            (Some(k), _) => Some(k.stamp()),
            (None, Some(t)) => Some(t.stamp()),
            (None, None) => None,
        }
    }
}

/// A token key or a tombstone as it travels between HSMs in a masked object.
#[derive(Debug, Clone)]
pub enum Replica {
    Key(PersistedKey),
    Tombstone(PersistedTombstone),
}

impl Replica {
    pub fn reference(&self) -> KeyRef {
        match self {
            Replica::Key(k) => k.reference,
            Replica::Tombstone(t) => t.reference,
        }
    }

    pub fn owner(&self) -> &Username {
        match self {
            Replica::Key(k) => &k.owner,
            Replica::Tombstone(t) => &t.owner,
        }
    }

    pub fn version(&self) -> u64 {
        match self {
            Replica::Key(k) => k.version,
            Replica::Tombstone(t) => t.version,
        }
    }
}

/// A replica as this HSM would store it.
enum Incoming {
    Key(Box<Key>),
    Tombstone(Tombstone),
}

impl Incoming {
    fn stamp(&self) -> Stamp {
        match self {
            Incoming::Key(k) => k.stamp(),
            Incoming::Tombstone(t) => t.stamp(),
        }
    }
}

impl Key {
    fn stamp(&self) -> Stamp {
        Stamp { version: self.version, digest: Some(self.digest) }
    }
}

impl Tombstone {
    fn stamp(&self) -> Stamp {
        Stamp { version: self.version, digest: None }
    }

    pub(super) fn persisted(&self, reference: KeyRef) -> PersistedTombstone {
        PersistedTombstone { reference, version: self.version, owner: self.owner.clone() }
    }
}

fn internal_clash(reference: KeyRef) -> ModelError {
    ModelError::Internal(format!("{reference} names a session key here and a token key elsewhere"))
}
