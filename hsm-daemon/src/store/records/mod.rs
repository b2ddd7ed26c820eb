//! The stored forms of identity, users and keys, and the reads and writes
//! that turn model changes into rows.
//!
//! # Layout
//! - `write`: model changes into rows ([`apply`]).
//! - `read`: rows into the model's persisted state ([`load`],
//!   [`read_meta`]), keys on two threads.
//! - `entries`: users and keys as they travel out of the store (backups,
//!   masked objects), and the model's persisted forms from stored parts.
//! - `codes`: the one-byte codes of roles, key kinds and key classes.
//!
//! Here: the side tables, the records as postcard encodes them, and the
//! slot names that are each sealed value's associated data.

mod codes;
mod entries;
mod read;
mod write;

use std::{borrow::Cow, fmt, fmt::Write as _};

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use crate::model::{
    ClusterId, ClusterIdentity, ClusterMode, HsmId, HsmIdentity, HsmType, PersistedUser,
    keys::Attributes,
    mtls::{AnchorCert, AnchorRef, Enforcement, Mtls, TrustAnchor},
    quorum::{ApproverKey, QuorumValue, QuorumValues},
};

pub(crate) use self::{
    entries::{KeyEntry, UserEntry, persisted_meta, persisted_tombstone},
    read::{load, read_meta},
    write::{WriteError, apply},
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
