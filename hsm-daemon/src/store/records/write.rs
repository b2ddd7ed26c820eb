//! Model changes into rows: one write transaction per batch, each table
//! opened once, sealed values sealed for their slot.

use std::borrow::Cow;

use redb::WriteTransaction;

use super::{
    KEY_DIGESTS, KEY_QUORUM, KeyRecord, MtlsRecord, QUORUM_ROW, QuorumRecord, StateRecord, TombstoneRecord, USER_KEYS,
    UserKeysRecord, UserRecord,
    codes::{class_code, kind_code, role_code},
    encode, key_slot, user_slot,
};
use crate::model::{Changes, ClusterState, KeyQuorum};
use crate::store::{KEY_VERSIONS, KEYS, META, TOMBSTONES, USERS, seal::Sealer};

/// A failed write, as text (it never carries secrets).
#[derive(Debug)]
pub(crate) struct WriteError(String);

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! write_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for WriteError {
            fn from(e: $t) -> Self {
                WriteError(e.to_string())
            }
        }
    )*};
}
write_error_from!(redb::TableError, redb::StorageError, String);

/// Writes model changes into the open transaction, in order: a later change
/// to the same row replaces an earlier one. Each table is opened once for
/// the whole batch.
pub(crate) fn apply(txn: &WriteTransaction, sealer: &Sealer, batch: &[Changes]) -> Result<(), WriteError> {
    let mut users = txn.open_table(USERS)?;
    let mut user_keys = txn.open_table(USER_KEYS)?;
    for (name, user) in batch.iter().flat_map(|c| &c.users) {
        match user.as_ref().and_then(UserKeysRecord::from_user) {
            Some(record) => user_keys.insert(name.as_str(), encode(&record).as_slice())?,
            None => user_keys.remove(name.as_str())?,
        };
        match user {
            None => {
                users.remove(name.as_str())?;
            }
            Some(u) => {
                let record = UserRecord {
                    role: role_code(u.role),
                    sealed_hash: sealer.seal(u.hash.as_phc().as_bytes(), &user_slot(name.as_str()))?,
                    failed_logins: u.failed_logins,
                    locked: u.locked,
                };
                users.insert(name.as_str(), encode(&record).as_slice())?;
            }
        }
    }
    drop((users, user_keys));
    let mut keys = txn.open_table(KEYS)?;
    let mut versions = txn.open_table(KEY_VERSIONS)?;
    let mut digests = txn.open_table(KEY_DIGESTS)?;
    let mut quorum = txn.open_table(KEY_QUORUM)?;
    for (reference, key) in batch.iter().flat_map(|c| &c.keys) {
        match key.as_ref().map(|k| k.quorum).filter(|q| *q != KeyQuorum::default()) {
            Some(q) => quorum.insert(reference.value(), [q.manage, q.usage])?,
            None => quorum.remove(reference.value())?,
        };
        match key {
            None => {
                keys.remove(reference.value())?;
                versions.remove(reference.value())?;
                digests.remove(reference.value())?;
            }
            Some(k) => {
                let material = k.material.to_wrappable().map_err(|e| e.to_string())?;
                let record = KeyRecord {
                    kind: kind_code(k.material.kind()),
                    class: class_code(k.material.class()),
                    attrs: k.attrs.clone(),
                    owner: Cow::Borrowed(k.owner.as_str()),
                    shared: k.shared.iter().map(ToString::to_string).collect(),
                    sealed_material: Cow::Owned(sealer.seal(&material, &key_slot(reference.value()))?),
                };
                keys.insert(reference.value(), encode(&record).as_slice())?;
                versions.insert(reference.value(), k.version)?;
                match k.digest {
                    Some(digest) => digests.insert(reference.value(), digest)?,
                    None => digests.remove(reference.value())?,
                };
            }
        }
    }
    drop((keys, versions, digests, quorum));
    let mut tombstones = txn.open_table(TOMBSTONES)?;
    for (reference, tombstone) in batch.iter().flat_map(|c| &c.tombstones) {
        match tombstone {
            None => {
                tombstones.remove(reference.value())?;
            }
            Some(t) => {
                let record = TombstoneRecord { version: t.version, owner: t.owner.to_string() };
                tombstones.insert(reference.value(), encode(&record).as_slice())?;
            }
        }
    }
    drop(tombstones);
    // Only the newest counter and cluster state matter.
    if let Some(meta) = batch.iter().rev().find_map(|c| c.meta) {
        let mut table = txn.open_table(META)?;
        let record = StateRecord { active: meta.state == ClusterState::Active, next_key_ref: meta.next_key_ref };
        table.insert("state", encode(&record).as_slice())?;
    }
    if let Some(mtls) = batch.iter().rev().find_map(|c| c.mtls.as_ref()) {
        let mut table = txn.open_table(META)?;
        table.insert("mtls", encode(&MtlsRecord::from_model(mtls)).as_slice())?;
    }
    if let Some(q) = batch.iter().rev().find_map(|c| c.quorum) {
        let mut table = txn.open_table(META)?;
        let record = QuorumRecord::from_model(q);
        table.insert(QUORUM_ROW, encode(&record).as_slice())?;
    }
    Ok(())
}
