//! Rows into the model's persisted state: the `meta` rows, users, and keys
//! (the two halves of the reference range on two threads), side tables
//! walked beside the `keys` table.

use std::sync::Arc;

use redb::{ReadTransaction, ReadableTable as _};

use super::{
    KEY_DIGESTS, KEY_QUORUM, KeyRecord, Meta, MtlsRecord, QUORUM_ROW, QuorumRecord, StateRecord, StoredIdentity,
    TombstoneRecord, USER_KEYS, UserKeysRecord, UserRecord,
    codes::{class_from, kind_from},
    decode,
    entries::{Names, StoredKey, persisted_key, persisted_meta, persisted_tombstone, persisted_user},
    user_slot, write_key_slot,
};
use crate::store::{KEY_VERSIONS, KEYS, META, TOMBSTONES, USERS, seal::Sealer};
use crate::{
    crypto::KeyMaterial,
    model::{KeyQuorum, KeyRef, PersistedKey, PersistedState, mtls::Mtls, quorum::QuorumValues},
};

/// The `meta` rows, or `None` for a store that was never initialised.
pub(crate) fn read_meta(txn: &ReadTransaction) -> Result<Option<Meta>, String> {
    let table = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let get = |name: &str| -> Result<Vec<u8>, String> {
        table
            .get(name)
            .map_err(|e| e.to_string())?
            .map(|v| v.value().to_vec())
            .ok_or_else(|| format!("meta row {name} is missing"))
    };
    let format_bytes = get("format")?;
    let format = u32::from_le_bytes(format_bytes.as_slice().try_into().map_err(|_| "meta row format is malformed")?);
    let identity = decode::<StoredIdentity>(&get("identity")?, "the stored identity")?.into_model()?;
    Ok(Some(Meta { format, identity, check: get("check")? }))
}

/// Every stored user and key, unsealed.
pub(crate) fn load(txn: &ReadTransaction, sealer: &Sealer) -> Result<PersistedState, String> {
    let meta_table = txn.open_table(META).map_err(|e| e.to_string())?;
    let state: StateRecord = match meta_table.get("state").map_err(|e| e.to_string())? {
        Some(v) => decode(v.value(), "the cluster state")?,
        None => return Err("meta row state is missing".into()),
    };
    let mtls = match meta_table.get("mtls").map_err(|e| e.to_string())? {
        Some(v) => decode::<MtlsRecord>(v.value(), "the mTLS policy")?.into_model()?,
        None => Mtls::default(),
    };
    let mut users = Vec::new();
    let table = txn.open_table(USERS).map_err(|e| e.to_string())?;
    for row in table.iter().map_err(|e| e.to_string())? {
        let (name, value) = row.map_err(|e| e.to_string())?;
        let name = name.value().to_owned();
        let record: UserRecord = decode(value.value(), format_args!("user {name}"))?;
        let phc = sealer.open(&record.sealed_hash, &user_slot(&name)).map_err(|e| format!("user {name}: {e}"))?;
        let phc = String::from_utf8(phc.to_vec()).map_err(|_| format!("user {name}: password hash is not text"))?;
        users.push(persisted_user(&name, record.role, phc, record.failed_logins, record.locked)?);
    }
    if let Some(table) = optional_table(txn.open_table(USER_KEYS))? {
        for user in &mut users {
            let Some(row) = table.get(user.username.as_str()).map_err(|e| e.to_string())? else { continue };
            let record: UserKeysRecord = decode(row.value(), format_args!("the keys of user {}", user.username))?;
            record.apply_to(user)?;
        }
    }
    let quorum = match meta_table.get(QUORUM_ROW).map_err(|e| e.to_string())? {
        None => QuorumValues::default(),
        Some(row) => decode::<QuorumRecord>(row.value(), "the quorum values")?.to_model()?,
    };
    let mut keys = load_keys(txn, sealer)?;
    if let Some(table) = optional_table(txn.open_table(KEY_QUORUM))? {
        for row in table.iter().map_err(|e| e.to_string())? {
            let (reference, [manage, usage]) = row.map(|(r, q)| (r.value(), q.value())).map_err(|e| e.to_string())?;
            // Keys load in reference order.
            if let Ok(at) = keys.binary_search_by_key(&reference, |k| k.reference.value()) {
                keys[at].quorum = KeyQuorum { manage, usage };
            }
        }
    }
    let mut tombstones = Vec::new();
    if let Some(table) = optional_table(txn.open_table(TOMBSTONES))? {
        for row in table.iter().map_err(|e| e.to_string())? {
            let (reference, value) = row.map_err(|e| e.to_string())?;
            let reference = reference.value();
            let record: TombstoneRecord = decode(value.value(), format_args!("tombstone {}", KeyRef::new(reference)))?;
            tombstones.push(persisted_tombstone(reference, record.version, &record.owner)?);
        }
    }
    Ok(PersistedState { meta: persisted_meta(state.active, state.next_key_ref), users, keys, tombstones, mtls, quorum })
}

/// Every stored key, unsealed; its material is parsed on first use (see
/// `KeyMaterial`). The two halves of the reference range load on two
/// threads: a restart of an HSM holding a million keys is this loop.
fn load_keys(txn: &ReadTransaction, sealer: &Sealer) -> Result<Vec<PersistedKey>, String> {
    let tables = KeyTables {
        keys: txn.open_table(KEYS).map_err(|e| e.to_string())?,
        versions: optional_table(txn.open_table(KEY_VERSIONS))?,
        digests: optional_table(txn.open_table(KEY_DIGESTS))?,
    };
    let bound = |row: Option<(redb::AccessGuard<'_, u64>, _)>| row.map(|(k, _)| k.value());
    let (Some(first), Some(last)) =
        (bound(tables.keys.first().map_err(|e| e.to_string())?), bound(tables.keys.last().map_err(|e| e.to_string())?))
    else {
        return Ok(Vec::new());
    };
    let middle = (first + (last - first) / 2).saturating_add(1);
    let (low, high) = std::thread::scope(|scope| {
        let high = scope.spawn(|| tables.load(sealer, middle..=last));
        let low = tables.load(sealer, first..=middle - 1);
        (low, high.join().unwrap_or_else(|_| Err("loading keys: a loading thread panicked".to_owned())))
    });
    let mut keys = low?;
    keys.append(&mut high?);
    Ok(keys)
}

/// The tables a key's rows are in.
struct KeyTables {
    keys: redb::ReadOnlyTable<u64, &'static [u8]>,
    versions: Option<redb::ReadOnlyTable<u64, u64>>,
    digests: Option<redb::ReadOnlyTable<u64, [u8; 32]>>,
}

impl KeyTables {
    /// The keys whose references are in `range`.
    fn load(&self, sealer: &Sealer, range: std::ops::RangeInclusive<u64>) -> Result<Vec<PersistedKey>, String> {
        // The side tables are walked beside `keys` (all in reference order)
        // rather than looked up per key.
        let mut versions = SideTable::new(self.versions.as_ref(), range.clone())?;
        let mut digests = SideTable::new(self.digests.as_ref(), range.clone())?;
        let capacity = usize::try_from(range.end().saturating_sub(*range.start())).unwrap_or(0).saturating_add(1);
        let mut keys = Vec::with_capacity(capacity.min(1 << 24));
        let mut names = Names::default();
        let mut slot = String::new();
        for row in self.keys.range(range).map_err(|e| e.to_string())? {
            let (reference, value) = row.map_err(|e| e.to_string())?;
            let reference = reference.value();
            let record: KeyRecord = decode(value.value(), format_args!("key {}", KeyRef::new(reference)))?;
            // One buffer for every key's slot name (the associated data).
            write_key_slot(&mut slot, reference);
            let bytes = sealer
                .open(&record.sealed_material, &slot)
                .map_err(|e| format!("key {}: {e}", KeyRef::new(reference)))?;
            // Authenticated just now: parsed when first used (see `KeyMaterial`).
            let material = KeyMaterial::stored(kind_from(record.kind)?, class_from(record.class)?, bytes);
            let stored = StoredKey {
                attrs: record.attrs,
                owner: &record.owner,
                shared: &record.shared,
                material: Arc::new(material),
                version: versions.at(reference)?.map_or(1, |v| v.value()),
                digest: digests.at(reference)?.map(|d| d.value()),
            };
            keys.push(persisted_key(reference, stored, &mut names)?);
        }
        Ok(keys)
    }
}

/// A table keyed by reference, read in step with the `keys` table.
struct SideTable<'t, V: redb::Value + 'static> {
    rows: Option<std::iter::Peekable<redb::Range<'t, u64, V>>>,
}

impl<'t, V: redb::Value + 'static> SideTable<'t, V> {
    fn new(
        table: Option<&'t redb::ReadOnlyTable<u64, V>>,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Self, String> {
        let rows = match table {
            Some(t) => Some(t.range(range).map_err(|e| e.to_string())?.peekable()),
            None => None,
        };
        Ok(SideTable { rows })
    }

    /// The row of `reference`; references must come in rising order.
    fn at(&mut self, reference: u64) -> Result<Option<redb::AccessGuard<'t, V>>, String> {
        let Some(rows) = &mut self.rows else { return Ok(None) };
        while let Some(row) = rows.next_if(|row| !row.as_ref().is_ok_and(|(k, _)| k.value() > reference)) {
            let (k, v) = row.map_err(|e| e.to_string())?;
            if k.value() == reference {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }
}

/// A table that stores written before it existed do not have.
fn optional_table<T>(opened: Result<T, redb::TableError>) -> Result<Option<T>, String> {
    match opened {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}
