//! Persistence: one embedded redb store per HSM, with key material and
//! secrets sealed under a storage key derived from the operator's master key.
//!
//! # Layout of the store
//! - table `meta`: `format` (the store's format version), `identity` (cluster
//!   and HSM identity, in clear), `check` (a sealed known value that tells a
//!   wrong master key from a damaged store), `state` (cluster state and the
//!   key-reference counter), `mtls` (client trust anchors and the mTLS
//!   enforcement level; absent in stores written before them: none, none).
//! - table `users`: username -> user record (role, lockout counters, the
//!   sealed password hash).
//! - table `keys`: reference -> key record (type, class, attributes, owner,
//!   shares, the sealed key material).
//! - table `key_versions`: reference -> the token key's version (a key with
//!   no row, from a store written before clusters, is at version 1).
//! - table `key_digests`: reference -> the token key's sync digest, so that
//!   a restart parses no key material (a key with no row has it computed).
//! - table `tombstones`: reference -> version and owner of a deleted token
//!   key, so that an older copy from another HSM never brings it back.
//!
//! Records are postcard-encoded. Every sealed field is AES-256-GCM with a
//! random nonce, and its table and row as associated data, so a sealed value
//! moved to another row does not open. Every change is written in a write
//! transaction committed with fsync (redb's immediate durability) before the
//! RPC that made it is acknowledged; changes made meanwhile share the
//! transaction ([`Store::apply_batch`], group commit); redb's copy-on-write
//! commits mean a crash leaves the last committed state, never half of a
//! change.
//!
//! # Layout of this module
//! - [`MasterKey`]: the operator's 32-byte master key (file or environment).
//! - `seal`: the storage-key derivation and AEAD.
//! - `records`: the stored forms of users, keys and identity, and the
//!   reads and writes between them and the model.
//! - `masked`: [`Masker`], masked objects (keys and users sealed under the
//!   cluster's masking key) for copying between HSMs.
//! - this file: [`Store`], opening with its refusals, loading, applying
//!   changes.

mod backup;
mod masked;
mod records;
mod seal;

use std::{
    fmt,
    path::{Path, PathBuf},
};

use redb::{Database, ReadableDatabase as _, TableDefinition, backends::InMemoryBackend};
use zeroize::Zeroizing;

pub(crate) use self::backup::write_atomically;
/// What the fuzz targets open and seal backups with.
#[cfg(feature = "fuzzing")]
pub(crate) use self::backup::{
    changes_of, decode as decode_backup, open as open_backup_payload, seal_file as seal_backup,
};
pub use self::{
    backup::{restore_backup, restore_backup_as_clone},
    masked::Masker,
    seal::MasterKey,
};
use self::{records::StoredIdentity, seal::Sealer};
use crate::model::{Changes, ClusterIdentity, HsmIdentity, PersistedState};

/// The format this build writes. Older formats are migrated on open; newer
/// ones are refused.
pub const FORMAT_VERSION: u32 = 1;

/// The store's file inside an HSM's data directory.
pub const STORE_FILE: &str = "hsm.redb";

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const KEYS: TableDefinition<u64, &[u8]> = TableDefinition::new("keys");
const KEY_VERSIONS: TableDefinition<u64, u64> = TableDefinition::new("key_versions");
const TOMBSTONES: TableDefinition<u64, &[u8]> = TableDefinition::new("tombstones");

const CHECK_PLAINTEXT: &[u8] = b"hsm-emulator storage key check v1";

/// redb's page cache. The model serves every read from memory and the store
/// is read whole only at start, so redb's default (1 GiB) would only keep
/// the pages of that one load: a third of the memory of an HSM holding a
/// million keys, for nothing.
const CACHE_BYTES: usize = 32 << 20;

/// Why a store cannot be opened or written. Each names the file and says
/// what to do; none carries secret material.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: another hsm-daemon is already using this data directory")]
    Locked { path: PathBuf },
    #[error("{path}: the store belongs to {found}, not to {expected}; check --data-dir")]
    WrongHsm { path: PathBuf, found: String, expected: String },
    #[error("{path}: the master key does not open this store (wrong --master-key-file or HSM_MASTER_KEY?)")]
    WrongMasterKey { path: PathBuf },
    #[error(
        "{path}: written by store format {found}; this hsm-daemon reads formats up to {supported}; upgrade hsm-daemon"
    )]
    NewerFormat { path: PathBuf, found: u32, supported: u32 },
    #[error("{path}: the store is damaged ({detail}); restore it from a backup")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path}: {detail}")]
    Io { path: PathBuf, detail: String },
    #[error("master key: {0}")]
    MasterKey(String),
    #[error(
        "{path}: a backup of {found}; backups restore only into HSMs of their own cluster ({expected}; `restore --clone` makes a clone of it)"
    )]
    BackupOfAnotherCluster { path: PathBuf, found: String, expected: String },
    #[error("{path}: not a usable backup: {detail}")]
    BadBackup { path: PathBuf, detail: String },
}

/// Where the store lives.
#[derive(Debug, Clone)]
pub enum Backing {
    /// `DATA_DIR/hsm.redb`.
    Dir(PathBuf),
    /// In memory only (`--ephemeral`), for tests.
    Memory,
}

/// One HSM's store.
pub struct Store {
    db: Database,
    sealer: Sealer,
    /// For messages.
    path: PathBuf,
    /// Tests set it to make every later write fail, as a broken disk would.
    #[cfg(test)]
    pub(crate) broken: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

/// What opening found.
#[derive(Debug)]
#[expect(clippy::large_enum_variant, reason = "made once per start and taken apart at once")]
pub enum Opened {
    /// A new store: nothing was there. Call [`Store::initialize`].
    New(Store),
    /// An existing store (perhaps still opening for writing), its identity
    /// (as first stored) and its state.
    Existing(Opening, Box<(ClusterIdentity, HsmIdentity)>, PersistedState),
}

/// An existing store, open or still opening for writing on a thread of its
/// own. Its state has been read and checked; [`Opening::wait`] gives the
/// store, or the reason the writable open refused it (a damaged page found
/// by the integrity check, another daemon that took the file meanwhile).
/// Dropped unused, it waits for the open to end, so that the file is free
/// again when it is gone.
#[derive(Debug)]
pub struct Opening(Option<Pending>);

#[derive(Debug)]
enum Pending {
    Open(Box<Store>),
    Thread { path: PathBuf, thread: std::thread::JoinHandle<Result<Store, StoreError>> },
}

impl Opening {
    fn start(path: PathBuf, sealer: Sealer) -> Result<Opening, StoreError> {
        let opening = {
            let path = path.clone();
            move || open_writable(&path).map(|db| Store::with(db, sealer, path))
        };
        match std::thread::Builder::new().name("hsm-store-open".into()).spawn(opening) {
            Ok(thread) => Ok(Opening(Some(Pending::Thread { path, thread }))),
            Err(e) => Err(StoreError::Io { path, detail: format!("starting a thread to open the store: {e}") }),
        }
    }

    /// The store, once open for writing.
    pub fn wait(mut self) -> Result<Store, StoreError> {
        match self.0.take() {
            Some(Pending::Open(store)) => Ok(*store),
            Some(Pending::Thread { path, thread }) => thread.join().unwrap_or_else(|_| {
                Err(StoreError::Io { path, detail: "the thread opening the store panicked".into() })
            }),
            None => unreachable!("an Opening is taken only by wait, which consumes it"),
        }
    }

    /// The store's file, for messages.
    pub fn path(&self) -> &Path {
        match &self.0 {
            Some(Pending::Open(store)) => &store.path,
            Some(Pending::Thread { path, .. }) => path,
            None => Path::new(""),
        }
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        if let Some(Pending::Thread { thread, .. }) = self.0.take() {
            let _ = thread.join();
        }
    }
}

impl Store {
    /// Opens the store, or creates an empty one. Refuses, without writing
    /// anything, a store that is in use, of another HSM, sealed under
    /// another master key, of a newer format, or damaged.
    ///
    /// An existing store's state is read first, from a read-only open; the
    /// writable open, whose integrity check reads every page again (a third
    /// of a restart, at a million keys), then runs on a thread of its own
    /// while the caller builds its model from the state: see [`Opening`].
    pub fn open(backing: &Backing, master: &MasterKey, cluster_id: &str, hsm_id: &str) -> Result<Opened, StoreError> {
        let sealer = Sealer::derive(master, cluster_id);
        let (db, path) = match backing {
            Backing::Memory => {
                let db = Database::builder()
                    .create_with_backend(InMemoryBackend::new())
                    .map_err(|e| db_error(Path::new("<memory>"), e))?;
                (db, PathBuf::from("<memory>"))
            }
            Backing::Dir(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Io { path: dir.clone(), detail: e.to_string() })?;
                let path = dir.join(STORE_FILE);
                let len = std::fs::metadata(&path).map(|m| m.len()).ok();
                if len == Some(0) {
                    return Err(corrupt(&path, "the store file is empty (delete it only if this HSM never served)"));
                }
                if len.is_some() {
                    prefetch(&path);
                    // Every check runs on a read-only open first, so that a
                    // refused store is left exactly as it was. A store that
                    // was not shut down cleanly (a crash, kill -9) cannot be
                    // opened read-only: redb must repair it first, which only
                    // rebuilds its allocator state; the checks then run below,
                    // after the writable open.
                    let ro = Database::builder()
                        .set_check_integrity_on_open(true)
                        .set_cache_size(CACHE_BYTES)
                        .open_read_only(&path);
                    match ro {
                        Ok(ro) => {
                            let txn = ro.begin_read().map_err(|e| corrupt(&path, e))?;
                            let meta = records::read_meta(&txn)
                                .map_err(|detail| StoreError::Corrupt { path: path.clone(), detail })?;
                            // No meta: a store created by a start that died
                            // before its first commit; nothing in it was ever
                            // acknowledged.
                            if let Some(meta) = meta {
                                check(&path, &meta, &sealer, cluster_id, hsm_id)?;
                                // Format 1 is the first; later versions add
                                // their migrations (on the writable open).
                                let state = records::load(&txn, &sealer)
                                    .map_err(|detail| StoreError::Corrupt { path: path.clone(), detail })?;
                                drop((txn, ro));
                                let identity = Box::new((meta.identity.cluster, meta.identity.hsm));
                                return Ok(Opened::Existing(Opening::start(path, sealer)?, identity, state));
                            }
                        }
                        Err(redb::DatabaseError::RepairAborted) => {
                            tracing::info!(path = %path.display(), "the store was not shut down cleanly; repairing");
                        }
                        Err(e) => return Err(db_error(&path, e)),
                    }
                }
                (open_writable(&path)?, path)
            }
        };
        let store = Store::with(db, sealer, path);
        let Some(meta) = store.read_meta()? else {
            return Ok(Opened::New(store));
        };
        check(&store.path, &meta, &store.sealer, cluster_id, hsm_id)?;
        let state = store.load()?;
        let identity = meta.identity;
        Ok(Opened::Existing(
            Opening(Some(Pending::Open(Box::new(store)))),
            Box::new((identity.cluster, identity.hsm)),
            state,
        ))
    }

    fn with(db: Database, sealer: Sealer, path: PathBuf) -> Store {
        Store {
            db,
            sealer,
            path,
            #[cfg(test)]
            broken: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Writes a new store's format, identity, key check and first state in
    /// one transaction.
    pub fn initialize(
        &self,
        cluster: &ClusterIdentity,
        hsm: &HsmIdentity,
        changes: &Changes,
    ) -> Result<(), StoreError> {
        let identity = records::encode(&StoredIdentity::from_model(cluster, hsm));
        let check = self.sealer.seal(CHECK_PLAINTEXT, "meta/check").map_err(|e| self.io(e))?;
        self.write(|txn, sealer| {
            let mut meta = txn.open_table(META)?;
            meta.insert("format", FORMAT_VERSION.to_le_bytes().as_slice())?;
            meta.insert("identity", identity.as_slice())?;
            meta.insert("check", check.as_slice())?;
            drop(meta);
            records::apply(txn, sealer, std::slice::from_ref(changes))
        })
    }

    /// Writes `changes` in one durable transaction.
    pub fn apply(&self, changes: &Changes) -> Result<(), StoreError> {
        self.apply_batch(std::slice::from_ref(changes))
    }

    /// Writes a batch of changes, in order, in one durable transaction (one
    /// fsync): all of them or, if it fails, none (group commit; see
    /// [`crate::commit`]).
    pub fn apply_batch(&self, batch: &[Changes]) -> Result<(), StoreError> {
        if batch.iter().all(Changes::is_empty) {
            return Ok(());
        }
        #[cfg(test)]
        if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(self.io("injected failure (test)"));
        }
        self.write(|txn, sealer| records::apply(txn, sealer, batch))
    }

    /// Everything the store holds about users and keys.
    pub fn load(&self) -> Result<PersistedState, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.corrupt(e))?;
        records::load(&txn, &self.sealer).map_err(|detail| StoreError::Corrupt { path: self.path.clone(), detail })
    }

    fn write(
        &self,
        work: impl FnOnce(&redb::WriteTransaction, &Sealer) -> Result<(), records::WriteError>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.io(e))?;
        work(&txn, &self.sealer).map_err(|e| self.io(e))?;
        txn.commit().map_err(|e| self.io(e))
    }

    fn read_meta(&self) -> Result<Option<records::Meta>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.corrupt(e))?;
        records::read_meta(&txn).map_err(|detail| StoreError::Corrupt { path: self.path.clone(), detail })
    }

    fn corrupt(&self, e: impl fmt::Display) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), detail: e.to_string() }
    }

    fn io(&self, e: impl fmt::Display) -> StoreError {
        StoreError::Io { path: self.path.clone(), detail: format!("writing the store failed: {e}") }
    }
}

/// The refusals an existing store can meet: a newer format, another HSM,
/// another master key.
fn check(path: &Path, meta: &records::Meta, sealer: &Sealer, cluster_id: &str, hsm_id: &str) -> Result<(), StoreError> {
    let path = path.to_owned();
    if meta.format > FORMAT_VERSION {
        return Err(StoreError::NewerFormat { path, found: meta.format, supported: FORMAT_VERSION });
    }
    let identity = &meta.identity;
    if identity.cluster.id.as_str() != cluster_id || identity.hsm.id.as_str() != hsm_id {
        return Err(StoreError::WrongHsm {
            path,
            found: format!("{} of {}", identity.hsm.id, identity.cluster.id),
            expected: format!("{hsm_id} of {cluster_id}"),
        });
    }
    if sealer.open(&meta.check, "meta/check").ok().as_deref().map(|v| &v[..]) != Some(CHECK_PLAINTEXT) {
        return Err(StoreError::WrongMasterKey { path });
    }
    Ok(())
}

/// Reads the whole store file once, front to back, on a thread of its own,
/// so that it is in the page cache when it is walked. Opening checks every
/// page's checksum and loading reads every record, each walking the B-trees
/// one 4 KiB page at a time: from a cold page cache, a disk read per page
/// (a million keys, 285 MB: over a second more than from the cache), where
/// one sequential read takes about 0.3 s here and runs ahead of the walk.
/// From a warm cache it is a copy on the otherwise idle core. Only a hint:
/// if it fails, the store opens as it would have without it.
/// (`posix_fadvise(WILLNEED)`, which would spare the copy, was tried first:
/// here it left a cold open as slow as without it.)
fn prefetch(path: &Path) {
    let Ok(mut file) = std::fs::File::open(path) else { return };
    let reader = move || {
        let mut buffer = vec![0u8; 1 << 20];
        while matches!(std::io::Read::read(&mut file, &mut buffer), Ok(n) if n > 0) {}
    };
    if let Err(e) = std::thread::Builder::new().name("hsm-store-prefetch".into()).spawn(reader) {
        tracing::debug!(error = %e, "could not start reading the store ahead");
    }
}

/// The writable open: redb's integrity check verifies every page's checksum
/// and rebuilds its allocator state, after a crash as after a clean stop.
fn open_writable(path: &Path) -> Result<Database, StoreError> {
    Database::builder()
        .set_check_integrity_on_open(true)
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|e| db_error(path, e))
}

fn corrupt(path: &Path, e: impl fmt::Display) -> StoreError {
    StoreError::Corrupt { path: path.to_owned(), detail: e.to_string() }
}

fn db_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    let path = path.to_owned();
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => {
            StoreError::Locked { path }
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if matches!(io.kind(), std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData) =>
        {
            StoreError::Corrupt { path, detail: io.to_string() }
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => StoreError::Io { path, detail: io.to_string() },
        other => StoreError::Corrupt { path, detail: other.to_string() },
    }
}

/// Reads a master key file: 64 hex digits (whitespace around them ignored).
pub fn read_master_key_file(path: &Path) -> Result<MasterKey, StoreError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| StoreError::MasterKey(format!("{}: {e}", path.display())))?,
    );
    MasterKey::from_hex(text.trim()).map_err(|e| StoreError::MasterKey(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests;
