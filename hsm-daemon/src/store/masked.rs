//! Masked objects: a token key, a tombstone or a user, sealed under the
//! cluster's masking key so that it opens only inside an HSM of the same
//! cluster or of a clone of it (a cluster created from its backup, which
//! holds the same masking key and seals for the same lineage: the id given
//! to [`Masker::new`] is the lineage's first cluster).
//!
//! An object is postcard of [`MaskedFile`]: a magic string, the format
//! version and the cluster id in clear (so that an object of another cluster
//! is refused by name), and the payload sealed with AES-256-GCM under a key
//! derived (HKDF-SHA256) from the masking key, with the cluster id as
//! associated data. A changed byte anywhere fails authentication.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{
    MasterKey,
    records::{self, KeyEntry, UserEntry, UserKeysRecord},
    seal::Sealer,
};
use crate::model::{ClusterId, KeyQuorum, Masked, ModelError, PersistedKey, Replica};

const MAGIC: &str = "hsm-emulator masked object";
const VERSION: u32 = 1;
const LABEL: &[u8] = b"hsm-emulator masking key v1";

#[derive(Serialize, Deserialize)]
struct MaskedFile {
    magic: String,
    version: u32,
    cluster_id: String,
    sealed: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
enum Payload {
    Key {
        entry: KeyEntry,
        version: u64,
    },
    Tombstone {
        reference: u64,
        version: u64,
        owner: String,
    },
    User(UserEntry),
    /// A user with its registered quorum and MFA keys; objects masked
    /// before keys could be registered are `User`.
    UserWithKeys {
        entry: UserEntry,
        keys: Option<UserKeysRecord>,
    },
    /// A token key with quorum values (manage, use); keys without are `Key`.
    KeyWithQuorum {
        entry: KeyEntry,
        version: u64,
        quorum: [u8; 2],
    },
}

/// Masks and unmasks objects for one cluster.
pub struct Masker {
    sealer: Sealer,
    cluster_id: ClusterId,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker").field("cluster_id", &self.cluster_id).finish_non_exhaustive()
    }
}

impl Masker {
    pub fn new(masking_key: &MasterKey, cluster_id: &ClusterId) -> Self {
        Masker { sealer: Sealer::derive_with(masking_key, LABEL, cluster_id.as_str()), cluster_id: cluster_id.clone() }
    }

    pub fn mask(&self, object: &Masked) -> Result<Vec<u8>, ModelError> {
        let payload = match object {
            Masked::Key(Replica::Key(k)) => {
                let entry = KeyEntry::from_model(k).map_err(ModelError::Internal)?;
                if k.quorum == KeyQuorum::default() {
                    Payload::Key { entry, version: k.version }
                } else {
                    Payload::KeyWithQuorum { entry, version: k.version, quorum: [k.quorum.manage, k.quorum.usage] }
                }
            }
            Masked::Key(Replica::Tombstone(t)) => {
                Payload::Tombstone { reference: t.reference.value(), version: t.version, owner: t.owner.to_string() }
            }
            Masked::User(u) => {
                Payload::UserWithKeys { entry: UserEntry::from_model(u), keys: UserKeysRecord::from_user(u) }
            }
        };
        self.seal(&Zeroizing::new(records::encode(&payload)))
    }

    /// A masked object holding `plain`, an encoded payload.
    pub(crate) fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, ModelError> {
        let sealed = self.sealer.seal(plain, self.cluster_id.as_str()).map_err(ModelError::Internal)?;
        let file =
            MaskedFile { magic: MAGIC.into(), version: VERSION, cluster_id: self.cluster_id.to_string(), sealed };
        Ok(records::encode(&file))
    }

    /// Opens an object, refusing one of another cluster, a damaged or
    /// altered one, and one of a newer format, each with its reason.
    pub fn unmask(&self, bytes: &[u8]) -> Result<Masked, ModelError> {
        let plain = self.open_payload(bytes)?;
        let bad = |rule: String| ModelError::InvalidArgument { field: "masked_object", rule };
        let payload: Payload =
            postcard::from_bytes(&plain).map_err(|e| bad(format!("its content does not decode: {e}")))?;
        let inner = |e: String| bad(e);
        Ok(match payload {
            Payload::Key { entry, version } => Masked::Key(Replica::Key(entry.to_model(version).map_err(inner)?)),
            Payload::KeyWithQuorum { entry, version, quorum: [manage, usage] } => {
                let key = entry.to_model(version).map_err(inner)?;
                Masked::Key(Replica::Key(PersistedKey { quorum: KeyQuorum { manage, usage }, ..key }))
            }
            Payload::Tombstone { reference, version, owner } => Masked::Key(Replica::Tombstone(
                records::persisted_tombstone(reference, version, &owner).map_err(inner)?,
            )),
            Payload::User(entry) => Masked::User(entry.to_model().map_err(inner)?),
            Payload::UserWithKeys { entry, keys } => {
                let mut user = entry.to_model().map_err(inner)?;
                if let Some(keys) = keys {
                    keys.apply_to(&mut user).map_err(inner)?;
                }
                Masked::User(user)
            }
        })
    }

    /// The payload sealed in a masked object, once the object is checked to
    /// be of this cluster and a format this HSM reads.
    pub(crate) fn open_payload(&self, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, ModelError> {
        let bad = |rule: String| ModelError::InvalidArgument { field: "masked_object", rule };
        let file: MaskedFile = match postcard::from_bytes(bytes) {
            Ok(file @ MaskedFile { .. }) if file.magic == MAGIC => file,
            _ => return Err(bad("not a masked object".into())),
        };
        if file.version > VERSION {
            return Err(bad(format!("format {} is newer than this HSM reads ({VERSION})", file.version)));
        }
        if file.cluster_id != self.cluster_id.as_str() {
            return Err(bad(format!(
                "it was extracted from an HSM of {} (or a clone of it), and this HSM's masking key is that of {} \
                 (and its clones); masked objects move only within their cluster and its clones",
                truncate(&file.cluster_id),
                self.cluster_id
            )));
        }
        self.sealer.open(&file.sealed, self.cluster_id.as_str()).map_err(|_| {
            bad("it does not open under this cluster's masking key: it was altered, damaged, or masked by \
                 another cluster that uses the same id"
                .into())
        })
    }
}

fn truncate(raw: &str) -> String {
    raw.chars().take(48).collect()
}
