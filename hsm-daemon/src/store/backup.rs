//! Backups: an HSM's users, keys and state, sealed under the cluster key, so
//! that a backup restores into any HSM of its cluster and into no other.
//!
//! A backup file is postcard of [`BackupFile`]: a magic string, the format
//! version, the cluster and source HSM ids in clear (for messages), and the
//! payload sealed with AES-256-GCM under a key derived from the cluster key,
//! with the cluster id as associated data. A changed byte anywhere in the
//! payload fails authentication.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{
    Backing, MasterKey, Opened, Store, StoreError,
    records::{self, KeyEntry, MtlsRecord, QuorumRecord, UserEntry, UserKeysRecord},
    seal::Sealer,
};
use crate::model::{
    Changes, ClusterIdentity, ClusterState, HsmIdentity, KeyQuorum, Mtls, PersistedKey, PersistedState, QuorumValues,
};

const MAGIC: &str = "hsm-emulator backup";
/// 2 added key versions and tombstones; version 1 backups still restore
/// (their keys at version 1, with no tombstones). 3 added the mTLS policy,
/// registered quorum and MFA keys and quorum values; older backups restore
/// with none.
const VERSION: u32 = 3;
const LABEL: &[u8] = b"hsm-emulator backup key v1";

#[derive(Serialize, Deserialize)]
struct BackupFile {
    magic: String,
    version: u32,
    cluster_id: String,
    hsm_id: String,
    sealed: Vec<u8>,
}

/// Version 3's payload: version 2's, then the mTLS policy and what quorum added (postcard writes
/// fields in order, so the first part reads as version 2).
#[derive(Serialize, Deserialize)]
struct Payload {
    base: PayloadV2,
    mtls: MtlsRecord,
    /// (username, keys) of every user with a registered key.
    user_keys: Vec<(String, UserKeysRecord)>,
    quorum: QuorumRecord,
    /// (reference, manage, use) of every key with quorum values.
    key_quorum: Vec<(u64, u8, u8)>,
}

/// Version 2's payload: version 1's fields, then what clusters added.
#[derive(Serialize, Deserialize)]
struct PayloadV2 {
    base: PayloadV1,
    /// (reference, version) of every key in `base.keys`.
    key_versions: Vec<(u64, u64)>,
    /// (reference, version, owner) of deleted token keys.
    tombstones: Vec<(u64, u64, String)>,
}

#[derive(Serialize, Deserialize)]
struct PayloadV1 {
    active: bool,
    next_key_ref: u64,
    users: Vec<UserEntry>,
    keys: Vec<KeyEntry>,
}

impl Store {
    /// Writes a backup of the committed state (one read transaction, so it
    /// is consistent while the HSM serves) to `out`, atomically and
    /// owner-only.
    pub fn write_backup(
        &self,
        cluster_key: &MasterKey,
        cluster_id: &str,
        hsm_id: &str,
        out: &Path,
    ) -> Result<(), StoreError> {
        let state = self.load()?;
        let fail = |detail: String| StoreError::Io { path: out.to_owned(), detail };
        let users = state.users.iter().map(UserEntry::from_model).collect();
        let mut keys = Vec::new();
        let mut key_versions = Vec::new();
        for k in &state.keys {
            key_versions.push((k.reference.value(), k.version));
            keys.push(KeyEntry::from_model(k).map_err(fail)?);
        }
        let user_keys = state
            .users
            .iter()
            .filter_map(|u| UserKeysRecord::from_user(u).map(|keys| (u.username.to_string(), keys)))
            .collect();
        let base = PayloadV2 {
            base: PayloadV1 {
                active: state.meta.state == ClusterState::Active,
                next_key_ref: state.meta.next_key_ref,
                users,
                keys,
            },
            key_versions,
            tombstones: state
                .tombstones
                .iter()
                .map(|t| (t.reference.value(), t.version, t.owner.to_string()))
                .collect(),
        };
        let key_quorum = state
            .keys
            .iter()
            .filter(|k| k.quorum != KeyQuorum::default())
            .map(|k| (k.reference.value(), k.quorum.manage, k.quorum.usage))
            .collect();
        let payload = Payload {
            base,
            mtls: MtlsRecord::from_model(&state.mtls),
            user_keys,
            quorum: QuorumRecord::from_model(state.quorum),
            key_quorum,
        };
        let plain = zeroize::Zeroizing::new(records::encode(&payload));
        let file = seal_file(VERSION, &plain, cluster_key, cluster_id, hsm_id).map_err(fail)?;
        write_atomically(out, &file).map_err(|e| fail(e.to_string()))
    }
}

/// A backup file of format `version` holding `plain`, sealed under the
/// cluster key.
pub(crate) fn seal_file(
    version: u32,
    plain: &[u8],
    cluster_key: &MasterKey,
    cluster_id: &str,
    hsm_id: &str,
) -> Result<Vec<u8>, String> {
    let sealer = Sealer::derive_with(cluster_key, LABEL, cluster_id);
    let sealed = sealer.seal(plain, cluster_id)?;
    let file =
        BackupFile { magic: MAGIC.into(), version, cluster_id: cluster_id.into(), hsm_id: hsm_id.into(), sealed };
    Ok(records::encode(&file))
}

/// Creates the store of a new HSM (`cluster`, `hsm`) from a backup of its
/// cluster. Refuses a backing that already holds a store, a backup of another
/// cluster, and a damaged backup.
pub fn restore_backup(
    from: &Path,
    cluster_key: &MasterKey,
    backing: &Backing,
    master: &MasterKey,
    cluster: &ClusterIdentity,
    hsm: &HsmIdentity,
) -> Result<(), StoreError> {
    restore(from, cluster_key, backing, master, cluster, hsm, Source::OwnCluster)
}

/// Creates the store of an HSM of a new cluster from a backup of another
/// cluster, as CloudHSM creates a cluster from a backup: the new cluster is
/// a clone, and the backup must open under its cluster key (which
/// `hsm-daemon init --clone-of` copies from the source). Otherwise as
/// [`restore_backup`].
pub fn restore_backup_as_clone(
    from: &Path,
    cluster_key: &MasterKey,
    backing: &Backing,
    master: &MasterKey,
    cluster: &ClusterIdentity,
    hsm: &HsmIdentity,
) -> Result<(), StoreError> {
    restore(from, cluster_key, backing, master, cluster, hsm, Source::AnyCluster)
}

/// Which clusters' backups a restore takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Only the HSM's own cluster's (a lost HSM brought back).
    OwnCluster,
    /// Any cluster's whose cluster key this HSM holds (a clone made).
    AnyCluster,
}

fn restore(
    from: &Path,
    cluster_key: &MasterKey,
    backing: &Backing,
    master: &MasterKey,
    cluster: &ClusterIdentity,
    hsm: &HsmIdentity,
    source: Source,
) -> Result<(), StoreError> {
    if let Backing::Dir(dir) = backing {
        let path = dir.join(super::STORE_FILE);
        if path.exists() {
            return Err(occupied(path));
        }
    }
    let bytes = std::fs::read(from).map_err(|e| StoreError::Io { path: from.to_owned(), detail: e.to_string() })?;
    let state = decode_from(&bytes, cluster_key, cluster, source).map_err(|refusal| refusal.at(from))?;

    let store = match Store::open(backing, master, cluster.id.as_str(), hsm.id.as_str())? {
        Opened::New(store) => store,
        Opened::Existing(opening, ..) => return Err(occupied(opening.path().to_owned())),
    };
    store.initialize(cluster, hsm, &changes_of(state))
}

/// Every record of `state`, as the changes that write it to a new store.
pub(crate) fn changes_of(state: PersistedState) -> Changes {
    Changes {
        users: state.users.into_iter().map(|u| (u.username.clone(), Some(u))).collect(),
        keys: state.keys.into_iter().map(|k| (k.reference, Some(k))).collect(),
        tombstones: state.tombstones.into_iter().map(|t| (t.reference, Some(t))).collect(),
        meta: Some(state.meta),
        mtls: Some(state.mtls),
        quorum: Some(state.quorum),
    }
}

/// Why a backup's bytes were refused; [`Refusal::at`] names the file.
#[derive(Debug)]
pub(crate) enum Refusal {
    Bad(String),
    Newer(u32),
    OtherCluster { found: String, expected: String },
}

impl Refusal {
    fn at(self, path: &Path) -> StoreError {
        let path = path.to_owned();
        match self {
            Refusal::Bad(detail) => StoreError::BadBackup { path, detail },
            Refusal::Newer(found) => StoreError::NewerFormat { path, found, supported: VERSION },
            Refusal::OtherCluster { found, expected } => StoreError::BackupOfAnotherCluster { path, found, expected },
        }
    }
}

/// The state a backup file holds, checked: of `cluster`, sealed under
/// `cluster_key`, of a format this HSM reads, and whole (the fuzz targets).
#[cfg(feature = "fuzzing")]
pub(crate) fn decode(
    bytes: &[u8],
    cluster_key: &MasterKey,
    cluster: &ClusterIdentity,
) -> Result<PersistedState, Refusal> {
    decode_from(bytes, cluster_key, cluster, Source::OwnCluster)
}

/// [`decode`], taking backups of the clusters `source` allows.
fn decode_from(
    bytes: &[u8],
    cluster_key: &MasterKey,
    cluster: &ClusterIdentity,
    source: Source,
) -> Result<PersistedState, Refusal> {
    let (version, plain) = open_from(bytes, cluster_key, cluster, source)?;
    let bad = Refusal::Bad;
    let undecodable = |e: postcard::Error| bad(format!("backup payload: {e}"));
    let older = |base| Payload {
        base,
        mtls: MtlsRecord::from_model(&Mtls::default()),
        user_keys: Vec::new(),
        quorum: QuorumRecord::from_model(QuorumValues::default()),
        key_quorum: Vec::new(),
    };
    let payload: Payload = match version {
        1 => {
            let base = postcard::from_bytes(&plain).map_err(undecodable)?;
            older(PayloadV2 { base, key_versions: Vec::new(), tombstones: Vec::new() })
        }
        2 => older(postcard::from_bytes(&plain).map_err(undecodable)?),
        _ => postcard::from_bytes(&plain).map_err(undecodable)?,
    };
    let state = into_state(payload).map_err(bad)?;
    // A FIPS cluster holds no triple DES key (a backup of a non-FIPS one
    // without any restores anywhere).
    if !cluster.mode.permits_des3() && state.keys.iter().any(|k| k.material.kind() == crate::crypto::KeyKind::Des3) {
        return Err(bad(format!(
            "it holds triple DES keys, which a cluster in FIPS mode ({}) does not hold: restore it into a cluster \
             made with mode NON_FIPS",
            cluster.id
        )));
    }
    Ok(state)
}

/// A backup's format and its payload, once the file is checked to be of
/// `cluster`, a format this HSM reads, and sealed under `cluster_key` (the
/// fuzz targets).
#[cfg(feature = "fuzzing")]
pub(crate) fn open(
    bytes: &[u8],
    cluster_key: &MasterKey,
    cluster: &ClusterIdentity,
) -> Result<(u32, zeroize::Zeroizing<Vec<u8>>), Refusal> {
    open_from(bytes, cluster_key, cluster, Source::OwnCluster)
}

/// [`open`], taking backups of the clusters `source` allows. A backup is
/// sealed under its own cluster's id, so that is the id it opens with.
fn open_from(
    bytes: &[u8],
    cluster_key: &MasterKey,
    cluster: &ClusterIdentity,
    source: Source,
) -> Result<(u32, zeroize::Zeroizing<Vec<u8>>), Refusal> {
    let bad = Refusal::Bad;
    let file: BackupFile = postcard::from_bytes(bytes).map_err(|_| bad("not an hsm-emulator backup".into()))?;
    if file.magic != MAGIC {
        return Err(bad("not an hsm-emulator backup".into()));
    }
    if file.version > VERSION {
        return Err(Refusal::Newer(file.version));
    }
    if file.cluster_id != cluster.id.as_str() && source == Source::OwnCluster {
        return Err(Refusal::OtherCluster {
            found: format!("{} (from {})", file.cluster_id, file.hsm_id),
            expected: format!("this HSM is in {}", cluster.id),
        });
    }
    let sealer = Sealer::derive_with(cluster_key, LABEL, &file.cluster_id);
    let plain = sealer.open(&file.sealed, &file.cluster_id).map_err(|_| {
        bad(if file.cluster_id == cluster.id.as_str() {
            "it does not open with this cluster's key: it is damaged or was altered".into()
        } else {
            format!(
                "it is a backup of {}, and it does not open with this cluster's key: a clone needs the source's \
                 cluster key (hsm-daemon init --clone-of), or the backup is damaged",
                file.cluster_id.chars().take(48).collect::<String>()
            )
        })
    })?;
    Ok((file.version, plain))
}

/// Restore never writes over a store.
fn occupied(path: std::path::PathBuf) -> StoreError {
    StoreError::Io {
        path,
        detail: "already holds an HSM's state; restore only into an empty data directory (nothing was changed)".into(),
    }
}

fn into_state(payload: Payload) -> Result<PersistedState, String> {
    let mtls = payload.mtls.into_model()?;
    let quorum = payload.quorum.to_model()?;
    let key_quorum: std::collections::BTreeMap<u64, KeyQuorum> = payload
        .key_quorum
        .iter()
        .map(|(r, manage, usage)| (*r, KeyQuorum { manage: *manage, usage: *usage }))
        .collect();
    let mut user_keys: std::collections::BTreeMap<String, UserKeysRecord> = payload.user_keys.into_iter().collect();
    let payload = payload.base;
    let versions: std::collections::BTreeMap<u64, u64> = payload.key_versions.into_iter().collect();
    let tombstones = payload
        .tombstones
        .iter()
        .map(|(reference, version, owner)| records::persisted_tombstone(*reference, *version, owner))
        .collect::<Result<_, _>>()?;
    let payload = payload.base;
    let mut users: Vec<_> = payload.users.iter().map(UserEntry::to_model).collect::<Result<_, _>>()?;
    for user in &mut users {
        if let Some(keys) = user_keys.remove(user.username.as_str()) {
            keys.apply_to(user)?;
        }
    }
    let keys = payload
        .keys
        .iter()
        .map(|k| {
            let key = k.to_model(versions.get(&k.reference).copied().unwrap_or(1))?;
            Ok(PersistedKey { quorum: key_quorum.get(&k.reference).copied().unwrap_or_default(), ..key })
        })
        .collect::<Result<_, String>>()?;
    let state = PersistedState {
        meta: records::persisted_meta(payload.active, payload.next_key_ref),
        users,
        keys,
        tombstones,
        mtls,
        quorum,
    };
    // A store holds one record per user and per key; a backup that lists
    // one twice is damaged, and restoring it would silently keep one copy.
    once("user", state.users.iter().map(|u| u.username.to_string()))?;
    once("key", state.keys.iter().map(|k| k.reference.to_string()))?;
    once("deleted key", state.tombstones.iter().map(|t| t.reference.to_string()))?;
    Ok(state)
}

/// Refuses a list that names one `what` twice.
fn once(what: &str, names: impl Iterator<Item = String>) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        if !seen.insert(name.clone()) {
            return Err(format!("it lists {what} {name} twice"));
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` owner-only through a temporary file synced and
/// renamed over it, so that a crash leaves the old file or the new one,
/// never half of one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
    let tmp = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
