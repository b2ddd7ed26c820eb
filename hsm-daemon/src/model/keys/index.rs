//! The key index: what calls need of all keys at once (keys by label, the
//! census by type and class, session keys by session), kept in step as keys
//! come and go, so that no call walks every key under the model's lock.

use std::collections::{BTreeMap, BTreeSet, HashMap, hash_map::Entry};

use super::{Key, KeyRef, class_name, kind_name};
use crate::{crypto::KeyClass, model::SessionId};

/// What calls need of all keys at once, kept as keys come and go so that
/// no call walks every key under the model's lock.
#[derive(Debug, Default)]
pub(super) struct KeyIndex {
    /// Keys by label (a hash of it, ignoring ASCII case as the filter does):
    /// `attr.label=...` looks here. A hash rather than the label, so that
    /// the index holds no second copy of every label; the filter itself
    /// still compares the label, so keys whose labels share a hash are told
    /// apart.
    by_label: HashMap<u64, Refs>,
    /// How many keys there are of each (type, class): metrics read it, and
    /// the asymmetric quota counts its public and private entries.
    pub(super) census: BTreeMap<(&'static str, &'static str), usize>,
    /// Session keys by session: a logout drops its keys without a walk.
    session_keys: BTreeSet<(SessionId, KeyRef)>,
}

/// The keys of one label: nearly always one, without a set's allocation.
#[derive(Debug)]
enum Refs {
    One(KeyRef),
    #[expect(
        clippy::box_collection,
        reason = "boxed, the set keeps `Refs` at 16 bytes: the index's cost per key, for the common single key"
    )]
    Many(Box<BTreeSet<KeyRef>>),
}

impl KeyIndex {
    /// The index of restored keys, from each one's label hash, reference and
    /// census entry (token keys only: no session keys).
    pub(super) fn restored(entries: &[(u64, KeyRef, (&'static str, &'static str))]) -> Self {
        let mut index = KeyIndex { by_label: HashMap::with_capacity(entries.len()), ..KeyIndex::default() };
        for &(hash, reference, census) in entries {
            index.label(hash, reference);
            *index.census.entry(census).or_insert(0) += 1;
        }
        index
    }

    pub(super) fn add(&mut self, reference: KeyRef, key: &Key) {
        self.label(label_hash(&key.attrs.label), reference);
        *self.census.entry(census_entry(key)).or_insert(0) += 1;
        if let Some(session) = key.session {
            self.session_keys.insert((session, reference));
        }
    }

    /// Files `reference` under its label's hash.
    fn label(&mut self, hash: u64, reference: KeyRef) {
        match self.by_label.entry(hash) {
            Entry::Vacant(slot) => {
                slot.insert(Refs::One(reference));
            }
            Entry::Occupied(mut slot) => match slot.get_mut() {
                Refs::One(other) => {
                    let set = Box::new([*other, reference].into());
                    slot.insert(Refs::Many(set));
                }
                Refs::Many(set) => {
                    set.insert(reference);
                }
            },
        }
    }

    pub(super) fn remove(&mut self, reference: KeyRef, key: &Key) {
        let hash = label_hash(&key.attrs.label);
        match self.by_label.remove(&hash) {
            None | Some(Refs::One(_)) => {}
            Some(Refs::Many(mut set)) => {
                set.remove(&reference);
                let left = if set.len() == 1 { set.pop_first().map(Refs::One) } else { Some(Refs::Many(set)) };
                if let Some(left) = left {
                    self.by_label.insert(hash, left);
                }
            }
        }
        let entry = census_entry(key);
        if let Some(count) = self.census.get_mut(&entry) {
            *count -= 1;
            if *count == 0 {
                self.census.remove(&entry);
            }
        }
        if let Some(session) = key.session {
            self.session_keys.remove(&(session, reference));
        }
    }

    /// How many keys are public or private (a sum over the census's few
    /// entries, not a walk over the keys).
    pub(super) fn asymmetric(&self) -> usize {
        let secret = class_name(KeyClass::Secret);
        self.census.iter().filter(|((_, class), _)| *class != secret).map(|(_, count)| count).sum()
    }

    /// The session keys of `session`.
    pub(super) fn of_session(&self, session: SessionId) -> impl Iterator<Item = KeyRef> + '_ {
        let all = (session, KeyRef(u64::MIN))..=(session, KeyRef(u64::MAX));
        self.session_keys.range(all).map(|(_, reference)| *reference)
    }

    /// The keys labelled `label` (ASCII case ignored), and perhaps a few
    /// others whose labels share its hash; in reference order.
    pub(super) fn labelled(&self, label: &str) -> Vec<KeyRef> {
        match self.by_label.get(&label_hash(label)) {
            None => Vec::new(),
            Some(Refs::One(reference)) => vec![*reference],
            Some(Refs::Many(set)) => set.iter().copied().collect(),
        }
    }
}

/// From how many keys a restore builds the key index on a second thread.
pub(in crate::model) const PARALLEL_RESTORE: usize = 50_000;

/// FNV-1a over the label's bytes in ASCII lower case: cheap (a restart
/// hashes every label) and the same on every run. Not keyed: labels that
/// collide on purpose only share an index entry, which the filter sorts out.
pub(super) fn label_hash(label: &str) -> u64 {
    label.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3)
    })
}

pub(super) fn census_entry(key: &Key) -> (&'static str, &'static str) {
    (kind_name(key.material.kind()), class_name(key.material.class()))
}
