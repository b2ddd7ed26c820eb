//! The stored forms of identity, users and keys, and the reads and writes
//! that turn model changes into rows.

use std::{borrow::Cow, collections::HashMap, fmt, fmt::Write as _, sync::Arc};

use redb::{ReadTransaction, ReadableTable as _, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{KEY_VERSIONS, KEYS, META, TOMBSTONES, USERS, seal::Sealer};
use crate::{
    crypto::{Curve, KeyClass, KeyKind, KeyMaterial},
    model::{
        Changes, ClusterId, ClusterIdentity, ClusterMode, ClusterState, HsmId, HsmIdentity, HsmType, KeyQuorum, KeyRef,
        PasswordHash, PersistedKey, PersistedMeta, PersistedState, PersistedTombstone, PersistedUser, Role, Username,
        keys::Attributes,
        mtls::{AnchorCert, AnchorRef, Enforcement, Mtls, TrustAnchor},
        quorum::{ApproverKey, QuorumValue, QuorumValues},
    },
};

/// reference -> the token key's sync digest, written with the key, so that
/// a restart does not parse every key to compute it again (a key with no row,
/// from a store written before the table, has it computed on load).
pub(crate) const KEY_DIGESTS: TableDefinition<u64, [u8; 32]> = TableDefinition::new("key_digests");

/// username -> the user's registered quorum and MFA public keys (not
/// secret, so not sealed). A table of its own, so that stores written before
/// it existed open unchanged: no row means no keys.
pub(crate) const USER_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("user_keys");

/// reference -> a token key's quorum values (manage, use); no row means
/// none (so that stores written before the table open unchanged).
pub(crate) const KEY_QUORUM: TableDefinition<u64, [u8; 2]> = TableDefinition::new("key_quorum");

/// The `meta` row of the HSM-wide quorum values; absent means all off.
const QUORUM_ROW: &str = "quorum";

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

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // postcard only fails to serialise types with unsupported shapes (maps
    // with non-string keys, ...), which no record here has.
    postcard::to_stdvec(value).unwrap_or_default()
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: impl fmt::Display) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("{what} does not decode: {e}"))
}

/// Cluster and HSM identity, as first stored.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredIdentity {
    cluster_id: String,
    hsm_type: String,
    fips: bool,
    hsm_id: String,
    serial_number: String,
    vendor: String,
    model: String,
    hardware_version: (u32, u32),
    firmware_version: (u32, u32, u32),
    firmware_id: String,
    fips_state: String,
    address: String,
    availability_zone: String,
    label: String,
    device_id: String,
}

/// What `meta` holds.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) format: u32,
    pub(crate) identity: Identity,
    pub(crate) check: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) cluster: ClusterIdentity,
    pub(crate) hsm: HsmIdentity,
}

impl StoredIdentity {
    pub(crate) fn from_model(c: &ClusterIdentity, h: &HsmIdentity) -> Self {
        StoredIdentity {
            cluster_id: c.id.to_string(),
            hsm_type: c.hsm_type.to_string(),
            fips: c.mode == ClusterMode::Fips,
            hsm_id: h.id.to_string(),
            serial_number: h.serial_number.clone(),
            vendor: h.vendor.clone(),
            model: h.model.clone(),
            hardware_version: h.hardware_version,
            firmware_version: h.firmware_version,
            firmware_id: h.firmware_id.clone(),
            fips_state: h.fips_state.clone(),
            address: h.address.clone(),
            availability_zone: h.availability_zone.clone(),
            label: h.label.clone(),
            device_id: h.device_id.clone(),
        }
    }

    fn into_model(self) -> Result<Identity, String> {
        let bad = |e: crate::model::ModelError| format!("stored identity: {e}");
        Ok(Identity {
            cluster: ClusterIdentity {
                id: ClusterId::parse(&self.cluster_id).map_err(bad)?,
                hsm_type: HsmType::parse(&self.hsm_type).map_err(bad)?,
                mode: if self.fips { ClusterMode::Fips } else { ClusterMode::NonFips },
            },
            hsm: HsmIdentity {
                id: HsmId::parse(&self.hsm_id).map_err(bad)?,
                serial_number: self.serial_number,
                vendor: self.vendor,
                model: self.model,
                hardware_version: self.hardware_version,
                firmware_version: self.firmware_version,
                firmware_id: self.firmware_id,
                fips_state: self.fips_state,
                address: self.address,
                availability_zone: self.availability_zone,
                label: self.label,
                device_id: self.device_id,
            },
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StateRecord {
    active: bool,
    next_key_ref: u64,
}

/// The client mTLS policy (`meta/mtls`): public certificates, so in
/// clear. A store without the row has no anchors and enforcement none.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MtlsRecord {
    /// (reference, certificate DER)
    anchors: Vec<(u8, Vec<u8>)>,
    cluster_enforcement: bool,
}

impl MtlsRecord {
    pub(crate) fn from_model(mtls: &Mtls) -> Self {
        MtlsRecord {
            anchors: mtls.anchors().iter().map(|a| (a.reference.value(), a.cert.der().to_vec())).collect(),
            cluster_enforcement: mtls.enforcement() == Enforcement::Cluster,
        }
    }

    pub(crate) fn into_model(self) -> Result<Mtls, String> {
        let anchors = self
            .anchors
            .into_iter()
            .map(|(n, der)| {
                let reference = AnchorRef::from_value(n).ok_or_else(|| format!("trust anchor reference {n}"))?;
                let cert = AnchorCert::from_der("trust anchor", &der).map_err(|e| e.to_string())?;
                Ok(TrustAnchor { reference, cert })
            })
            .collect::<Result<_, String>>()?;
        let level = if self.cluster_enforcement { Enforcement::Cluster } else { Enforcement::None };
        Ok(Mtls::restore(anchors, level))
    }
}

/// A user's registered keys, SubjectPublicKeyInfo DER (the store's
/// `user_keys` rows, masked users and backups).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UserKeysRecord {
    quorum: Option<Vec<u8>>,
    mfa: Option<Vec<u8>>,
}

impl UserKeysRecord {
    /// `None` when the user registered no key.
    pub(crate) fn from_user(u: &PersistedUser) -> Option<Self> {
        let der = |k: &Option<ApproverKey>| k.as_ref().map(|k| k.spki().to_vec());
        (u.quorum_key.is_some() || u.mfa_key.is_some())
            .then(|| UserKeysRecord { quorum: der(&u.quorum_key), mfa: der(&u.mfa_key) })
    }

    /// Gives `user` these keys, parsed (and so checked) again.
    pub(crate) fn apply_to(self, user: &mut PersistedUser) -> Result<(), String> {
        let key = |der: Option<Vec<u8>>| {
            der.map(|der| ApproverKey::from_spki("user_keys", &der))
                .transpose()
                .map_err(|e| format!("user {}: {e}", user.username))
        };
        let (quorum, mfa) = (key(self.quorum)?, key(self.mfa)?);
        user.quorum_key = quorum;
        user.mfa_key = mfa;
        Ok(())
    }
}

/// The HSM-wide quorum values (the store's `meta` row and backups).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct QuorumRecord {
    user: u8,
    quorum: u8,
    cluster: u8,
}

impl QuorumRecord {
    pub(crate) fn from_model(q: QuorumValues) -> Self {
        QuorumRecord { user: q.user.get(), quorum: q.quorum.get(), cluster: q.cluster.get() }
    }

    pub(crate) fn to_model(&self) -> Result<QuorumValues, String> {
        let value = |v: u8| QuorumValue::parse("quorum", u32::from(v)).map_err(|e| e.to_string());
        Ok(QuorumValues { user: value(self.user)?, quorum: value(self.quorum)?, cluster: value(self.cluster)? })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct UserRecord {
    role: u8,
    sealed_hash: Vec<u8>,
    failed_logins: u32,
    locked: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TombstoneRecord {
    pub(crate) version: u64,
    pub(crate) owner: String,
}

/// Borrowed where it can be, so that loading a million keys does not copy
/// each one's owner and sealed material out of the store's page first.
#[derive(Debug, Serialize, Deserialize)]
struct KeyRecord<'a> {
    kind: u8,
    class: u8,
    attrs: Attributes,
    #[serde(borrow)]
    owner: Cow<'a, str>,
    shared: Vec<String>,
    #[serde(borrow)]
    sealed_material: Cow<'a, [u8]>,
}

pub(crate) fn role_code(role: Role) -> u8 {
    match role {
        Role::UnactivatedAdmin => 0,
        Role::Admin => 1,
        Role::CryptoUser => 2,
        Role::Appliance => 3,
    }
}

pub(crate) fn role_from(code: u8) -> Result<Role, String> {
    Ok(match code {
        0 => Role::UnactivatedAdmin,
        1 => Role::Admin,
        2 => Role::CryptoUser,
        3 => Role::Appliance,
        other => return Err(format!("unknown role code {other}")),
    })
}

pub(crate) fn kind_code(kind: KeyKind) -> u8 {
    match kind {
        KeyKind::Aes => 0,
        KeyKind::GenericSecret => 1,
        KeyKind::Rsa => 2,
        KeyKind::Ed25519 => 3,
        KeyKind::Des3 => 4,
        KeyKind::Ec(Curve::P224) => 10,
        KeyKind::Ec(Curve::P256) => 11,
        KeyKind::Ec(Curve::P384) => 12,
        KeyKind::Ec(Curve::P521) => 13,
        KeyKind::Ec(Curve::Secp256k1) => 14,
    }
}

pub(crate) fn kind_from(code: u8) -> Result<KeyKind, String> {
    Ok(match code {
        0 => KeyKind::Aes,
        1 => KeyKind::GenericSecret,
        2 => KeyKind::Rsa,
        3 => KeyKind::Ed25519,
        4 => KeyKind::Des3,
        10 => KeyKind::Ec(Curve::P224),
        11 => KeyKind::Ec(Curve::P256),
        12 => KeyKind::Ec(Curve::P384),
        13 => KeyKind::Ec(Curve::P521),
        14 => KeyKind::Ec(Curve::Secp256k1),
        other => return Err(format!("unknown key type code {other}")),
    })
}

pub(crate) fn class_code(class: KeyClass) -> u8 {
    match class {
        KeyClass::Secret => 0,
        KeyClass::Public => 1,
        KeyClass::Private => 2,
    }
}

pub(crate) fn class_from(code: u8) -> Result<KeyClass, String> {
    Ok(match code {
        0 => KeyClass::Secret,
        1 => KeyClass::Public,
        2 => KeyClass::Private,
        other => return Err(format!("unknown key class code {other}")),
    })
}

fn user_slot(name: &str) -> String {
    format!("users/{name}")
}

fn key_slot(reference: u64) -> String {
    let mut slot = String::new();
    write_key_slot(&mut slot, reference);
    slot
}

/// A key's slot name into `buf`, for loops that reuse one buffer.
fn write_key_slot(buf: &mut String, reference: u64) {
    buf.clear();
    let _ = write!(buf, "keys/{reference:016x}");
}

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

/// Usernames met while loading: the keys of one owner share one name.
#[derive(Default)]
struct Names(HashMap<String, Username>);

impl Names {
    fn parse(&mut self, raw: &str) -> Result<Username, crate::model::ModelError> {
        if let Some(name) = self.0.get(raw) {
            return Ok(name.clone());
        }
        let name = Username::parse("username", raw)?;
        self.0.insert(raw.to_owned(), name.clone());
        Ok(name)
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

/// A tombstone from its stored parts (store or backup).
pub(crate) fn persisted_tombstone(reference: u64, version: u64, owner: &str) -> Result<PersistedTombstone, String> {
    let owner = Username::parse("owner", owner).map_err(|e| format!("tombstone {}: {e}", KeyRef::new(reference)))?;
    Ok(PersistedTombstone { reference: KeyRef::new(reference), version, owner })
}

/// A user from its stored parts (store or backup).
pub(crate) fn persisted_user(
    name: &str,
    role: u8,
    phc: String,
    failed_logins: u32,
    locked: bool,
) -> Result<PersistedUser, String> {
    Ok(PersistedUser {
        username: Username::parse("username", name).map_err(|e| format!("user {name}: {e}"))?,
        role: role_from(role)?,
        hash: PasswordHash::from_phc(phc).map_err(|e| format!("user {name}: {e}"))?,
        failed_logins,
        locked,
        quorum_key: None,
        mfa_key: None,
    })
}

/// A user as it travels out of the store (backups, masked objects): the
/// password hash in its PHC string form, to be sealed as a whole.
#[derive(Serialize, Deserialize)]
pub(crate) struct UserEntry {
    username: String,
    role: u8,
    phc: String,
    failed_logins: u32,
    locked: bool,
}

impl UserEntry {
    pub(crate) fn from_model(u: &PersistedUser) -> Self {
        UserEntry {
            username: u.username.to_string(),
            role: role_code(u.role),
            phc: u.hash.as_phc().to_owned(),
            failed_logins: u.failed_logins,
            locked: u.locked,
        }
    }

    pub(crate) fn to_model(&self) -> Result<PersistedUser, String> {
        persisted_user(&self.username, self.role, self.phc.clone(), self.failed_logins, self.locked)
    }
}

/// A key as it travels out of the store (backups, masked objects): the
/// material in clear, to be sealed as a whole; zeroized on drop.
#[derive(Serialize, Deserialize)]
pub(crate) struct KeyEntry {
    pub(crate) reference: u64,
    kind: u8,
    class: u8,
    attrs: Attributes,
    owner: String,
    shared: Vec<String>,
    material: Vec<u8>,
}

impl Drop for KeyEntry {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.material);
    }
}

impl KeyEntry {
    pub(crate) fn from_model(k: &PersistedKey) -> Result<Self, String> {
        Ok(KeyEntry {
            reference: k.reference.value(),
            kind: kind_code(k.material.kind()),
            class: class_code(k.material.class()),
            attrs: k.attrs.clone(),
            owner: k.owner.to_string(),
            shared: k.shared.iter().map(ToString::to_string).collect(),
            material: k.material.to_wrappable().map_err(|e| e.to_string())?.to_vec(),
        })
    }

    pub(crate) fn to_model(&self, version: u64) -> Result<PersistedKey, String> {
        let what = || format!("key {}", KeyRef::new(self.reference));
        // From outside this HSM's store: parsed (and so checked) now.
        let material = KeyMaterial::from_wrappable(kind_from(self.kind)?, class_from(self.class)?, &self.material)
            .map_err(|e| format!("{}: {e}", what()))?;
        let stored = StoredKey {
            attrs: self.attrs.clone(),
            owner: &self.owner,
            shared: &self.shared,
            material: Arc::new(material),
            version,
            digest: None,
        };
        persisted_key(self.reference, stored, &mut Names::default())
    }
}

/// A key's stored parts, its material already unsealed.
struct StoredKey<'a> {
    attrs: Attributes,
    owner: &'a str,
    shared: &'a [String],
    material: Arc<KeyMaterial>,
    version: u64,
    digest: Option<[u8; 32]>,
}

/// A key from its stored parts (store or backup).
fn persisted_key(reference: u64, k: StoredKey<'_>, names: &mut Names) -> Result<PersistedKey, String> {
    let mut user = |n: &str| names.parse(n).map_err(|e| format!("key {}: {e}", KeyRef::new(reference)));
    Ok(PersistedKey {
        reference: KeyRef::new(reference),
        material: k.material,
        attrs: k.attrs,
        owner: user(k.owner)?,
        shared: k.shared.iter().map(|n| user(n)).collect::<Result<_, _>>()?,
        version: k.version,
        digest: k.digest,
        quorum: KeyQuorum::default(),
    })
}

pub(crate) fn persisted_meta(active: bool, next_key_ref: u64) -> PersistedMeta {
    PersistedMeta { state: if active { ClusterState::Active } else { ClusterState::Uninitialized }, next_key_ref }
}
