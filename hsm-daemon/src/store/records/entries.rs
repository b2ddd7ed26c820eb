//! Users and keys as they travel out of the store (backups, masked
//! objects), and the model's persisted forms made from stored parts.

use std::{collections::HashMap, sync::Arc};

use serde::{Deserialize, Serialize};

use super::codes::{class_code, class_from, kind_code, kind_from, role_code, role_from};
use crate::{
    crypto::KeyMaterial,
    model::{
        ClusterState, KeyQuorum, KeyRef, PasswordHash, PersistedKey, PersistedMeta, PersistedTombstone, PersistedUser,
        Username, keys::Attributes,
    },
};

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
pub(super) struct StoredKey<'a> {
    pub(super) attrs: Attributes,
    pub(super) owner: &'a str,
    pub(super) shared: &'a [String],
    pub(super) material: Arc<KeyMaterial>,
    pub(super) version: u64,
    pub(super) digest: Option<[u8; 32]>,
}

/// Usernames met while loading: the keys of one owner share one name.
#[derive(Default)]
pub(super) struct Names(HashMap<String, Username>);

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

/// A key from its stored parts (store or backup).
pub(super) fn persisted_key(reference: u64, k: StoredKey<'_>, names: &mut Names) -> Result<PersistedKey, String> {
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
