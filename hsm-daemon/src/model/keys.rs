//! Keys: references, CloudHSM's attributes and their rules, owners and
//! shared users, session keys, quotas, and listing with filters and pages.
//!
//! The material itself is a [`KeyMaterial`] behind an `Arc`, so that the
//! service can run costly mechanisms outside the model's lock; keys loaded
//! from the store parse it on first use. Facts derived from it (check value,
//! sizes, modulus, EC point) are read off it when a key is shown, so that
//! the million keys nobody lists cost no memory for them. What every call
//! needs of every key without parsing (type, class, sync digest) is kept
//! beside it, and label filters go through an index: a listing does not
//! walk every key under the model's lock.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, hash_map::Entry},
    fmt,
    sync::Arc,
};

use crate::{
    crypto::{Curve, KeyClass, KeyKind, KeyMaterial},
    model::{Action, Identity, ModelError, SessionId, Username},
};

/// Users a key may be shared with, besides its owner.
pub const MAX_SHARED_USERS: usize = 7;

/// A key reference: a 64-bit handle shown as `0x` and 16 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyRef(u64);

impl KeyRef {
    pub fn new(value: u64) -> Self {
        KeyRef(value)
    }

    pub fn value(self) -> u64 {
        self.0
    }

    /// Parses `0x...` (1 to 16 hex digits), naming `field` in the error.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ModelError> {
        let invalid = || ModelError::InvalidArgument {
            field,
            rule: format!("must be a key reference: 0x and 1 to 16 hex digits (got {:?})", truncate(raw)),
        };
        let digits = raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")).ok_or_else(invalid)?;
        if digits.is_empty() || digits.len() > 16 {
            return Err(invalid());
        }
        u64::from_str_radix(digits, 16).map(KeyRef).map_err(|_| invalid())
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:016x}", self.0)
    }
}

/// The references one HSM hands out: HSM `index` of a cluster allocates from
/// its own range, so that keys made on different HSMs at the same time never
/// share a reference when they are copied to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRange {
    /// The range's number: the HSM's index minus one.
    slot: u64,
}

impl KeyRange {
    /// Bits below the range number: 2^40 references per HSM.
    const SHIFT: u32 = 40;
    /// CloudHSM's references are small numbers shown padded; each range
    /// starts above its base so that 0x0 never names a key.
    const FIRST: u64 = 0x0010_0001;
    /// HSM indexes a cluster may use (CloudHSM allows 28 HSMs; clones that
    /// replace HSMs take new indexes).
    pub const MAX_INDEX: u32 = 255;

    /// The range of HSM `index` (1-based).
    pub fn for_index(index: u32) -> Result<Self, ModelError> {
        if !(1..=Self::MAX_INDEX).contains(&index) {
            return Err(ModelError::InvalidArgument {
                field: "hsm_index",
                rule: format!("must be 1 to {} (got {index})", Self::MAX_INDEX),
            });
        }
        Ok(KeyRange { slot: u64::from(index - 1) })
    }

    fn first(self) -> u64 {
        (self.slot << Self::SHIFT) | Self::FIRST
    }

    fn contains(self, value: u64) -> bool {
        value >> Self::SHIFT == self.slot
    }
}

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

/// Shortens user input quoted back in an error.
fn truncate(raw: &str) -> String {
    raw.chars().take(40).collect()
}

/// The attributes a key carries, with CloudHSM CLI names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attributes {
    pub label: String,
    pub id: Vec<u8>,
    pub encrypt: bool,
    pub decrypt: bool,
    pub wrap: bool,
    pub unwrap: bool,
    pub derive: bool,
    pub sign: bool,
    pub verify: bool,
    pub extractable: bool,
    pub sensitive: bool,
    pub token: bool,
    pub private: bool,
    pub modifiable: bool,
    pub destroyable: bool,
    pub trusted: bool,
    pub wrap_with_trusted: bool,
    /// Read-only: generated on the HSM (not imported or unwrapped).
    pub local: bool,
    /// Read-only: `sensitive` has always been true.
    pub always_sensitive: bool,
    /// Read-only: `extractable` has never been true.
    pub never_extractable: bool,
}

impl Attributes {
    /// CloudHSM's defaults for a new key of `class`.
    fn defaults(class: KeyClass, token: bool, local: bool) -> Self {
        let secret = class != KeyClass::Public;
        Attributes {
            label: String::new(),
            id: Vec::new(),
            encrypt: false,
            decrypt: false,
            wrap: false,
            unwrap: false,
            derive: false,
            sign: false,
            verify: false,
            extractable: true,
            sensitive: secret,
            token,
            private: true,
            modifiable: true,
            destroyable: true,
            trusted: false,
            wrap_with_trusted: false,
            local,
            always_sensitive: false,
            never_extractable: false,
        }
    }
}

/// An attribute name, as the CloudHSM CLI spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttrName {
    Label,
    Id,
    Class,
    KeyType,
    Encrypt,
    Decrypt,
    Wrap,
    Unwrap,
    Derive,
    Sign,
    Verify,
    Extractable,
    Sensitive,
    Token,
    Private,
    Modifiable,
    Destroyable,
    Trusted,
    WrapWithTrusted,
    Local,
    AlwaysSensitive,
    NeverExtractable,
    CheckValue,
    KeyLengthBytes,
    Modulus,
    ModulusSizeBits,
    PublicExponent,
    EcPoint,
    Curve,
}

impl AttrName {
    /// Every attribute, in the order listings show them.
    pub const ALL: [AttrName; 29] = [
        AttrName::KeyType,
        AttrName::Label,
        AttrName::Id,
        AttrName::CheckValue,
        AttrName::Class,
        AttrName::Encrypt,
        AttrName::Decrypt,
        AttrName::Token,
        AttrName::AlwaysSensitive,
        AttrName::Derive,
        AttrName::Destroyable,
        AttrName::Extractable,
        AttrName::Local,
        AttrName::Modifiable,
        AttrName::NeverExtractable,
        AttrName::Private,
        AttrName::Sensitive,
        AttrName::Sign,
        AttrName::Trusted,
        AttrName::Unwrap,
        AttrName::Verify,
        AttrName::Wrap,
        AttrName::WrapWithTrusted,
        AttrName::KeyLengthBytes,
        AttrName::PublicExponent,
        AttrName::Modulus,
        AttrName::ModulusSizeBits,
        AttrName::EcPoint,
        AttrName::Curve,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttrName::Label => "label",
            AttrName::Id => "id",
            AttrName::Class => "class",
            AttrName::KeyType => "key-type",
            AttrName::Encrypt => "encrypt",
            AttrName::Decrypt => "decrypt",
            AttrName::Wrap => "wrap",
            AttrName::Unwrap => "unwrap",
            AttrName::Derive => "derive",
            AttrName::Sign => "sign",
            AttrName::Verify => "verify",
            AttrName::Extractable => "extractable",
            AttrName::Sensitive => "sensitive",
            AttrName::Token => "token",
            AttrName::Private => "private",
            AttrName::Modifiable => "modifiable",
            AttrName::Destroyable => "destroyable",
            AttrName::Trusted => "trusted",
            AttrName::WrapWithTrusted => "wrap-with-trusted",
            AttrName::Local => "local",
            AttrName::AlwaysSensitive => "always-sensitive",
            AttrName::NeverExtractable => "never-extractable",
            AttrName::CheckValue => "check-value",
            AttrName::KeyLengthBytes => "key-length-bytes",
            AttrName::Modulus => "modulus",
            AttrName::ModulusSizeBits => "modulus-size-bits",
            AttrName::PublicExponent => "public-exponent",
            AttrName::EcPoint => "ec-point",
            AttrName::Curve => "curve",
        }
    }

    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ModelError> {
        AttrName::ALL.into_iter().find(|a| a.as_str() == raw).ok_or_else(|| ModelError::InvalidArgument {
            field,
            rule: format!("unknown attribute {:?}", truncate(raw)),
        })
    }

    /// Whether a creation template may set it (class, key type and sizes come
    /// from the request itself; read-only facts never).
    fn settable_at_creation(self) -> bool {
        matches!(
            self,
            AttrName::Label
                | AttrName::Id
                | AttrName::Encrypt
                | AttrName::Decrypt
                | AttrName::Wrap
                | AttrName::Unwrap
                | AttrName::Derive
                | AttrName::Sign
                | AttrName::Verify
                | AttrName::Extractable
                | AttrName::Sensitive
                | AttrName::Private
                | AttrName::Modifiable
                | AttrName::Destroyable
                | AttrName::WrapWithTrusted
        )
    }
}

impl fmt::Display for AttrName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn parse_bool(name: AttrName, raw: &str) -> Result<bool, ModelError> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ModelError::InvalidArgument {
            field: "attributes",
            rule: format!("{name} must be true or false (got {:?})", truncate(raw)),
        }),
    }
}

fn parse_id(raw: &str) -> Result<Vec<u8>, ModelError> {
    let digits = raw.strip_prefix("0x").unwrap_or(raw);
    hex::decode(digits).map_err(|_| ModelError::InvalidArgument {
        field: "attributes",
        rule: format!("id must be hex bytes, e.g. 0x0102 (got {:?})", truncate(raw)),
    })
}

/// Attribute values a request asks for, parsed and checked by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template(Vec<(AttrName, String)>);

impl Template {
    /// Parses `name=value` pairs (already split by the caller).
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ModelError> {
        at_most("attributes", pairs.len(), MAX_REQUEST_ATTRIBUTES)?;
        let mut out = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            let name = AttrName::parse("attributes", name)?;
            if !name.settable_at_creation() {
                return Err(ModelError::InvalidArgument {
                    field: "attributes",
                    rule: format!("{name} cannot be set when a key is created"),
                });
            }
            check_value("attributes", name, value)?;
            out.push((name, value.clone()));
        }
        Ok(Template(out))
    }

    /// Checks every value (`sign = "yes"` is refused here, not only when a
    /// key is made), for input that is checked whole before anything is
    /// made (seed files).
    pub fn check(&self) -> Result<(), ModelError> {
        self.apply(&mut Attributes::defaults(KeyClass::Secret, true, false))
    }

    /// The same template with `marker` in its label replaced by `n` (seeds
    /// that declare many keys alike). The caller checked the longest label.
    pub fn numbered(&self, marker: &str, n: usize) -> Template {
        let number = n.to_string();
        let relabel = |(name, value): &(AttrName, String)| {
            let value = if *name == AttrName::Label { value.replace(marker, &number) } else { value.clone() };
            (*name, value)
        };
        Template(self.0.iter().map(relabel).collect())
    }

    fn apply(&self, attrs: &mut Attributes) -> Result<(), ModelError> {
        for (name, value) in &self.0 {
            set_field(attrs, *name, value)?;
        }
        Ok(())
    }
}

/// Attributes (or filters) one request may name: more than there are
/// attribute names is never needed.
pub const MAX_REQUEST_ATTRIBUTES: usize = 64;
/// The longest attribute or filter value, in characters (an `id` of 256
/// bytes in hex fits).
pub const MAX_VALUE_CHARS: usize = 1024;
/// The longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 127;

/// Refuses more than `max` entries in a repeated request field.
fn at_most(field: &'static str, count: usize, max: usize) -> Result<(), ModelError> {
    if count > max {
        return Err(ModelError::InvalidArgument { field, rule: format!("at most {max} entries (got {count})") });
    }
    Ok(())
}

/// Refuses an over-long value before it is parsed or stored.
fn check_value(field: &'static str, name: AttrName, value: &str) -> Result<(), ModelError> {
    let max = if name == AttrName::Label { MAX_LABEL_CHARS } else { MAX_VALUE_CHARS };
    // Bytes first: a multi-megabyte value is refused without counting
    // its characters.
    if value.len() > max * 4 || value.chars().count() > max {
        return Err(ModelError::InvalidArgument { field, rule: format!("{name} must be at most {max} characters") });
    }
    Ok(())
}

/// Writes one settable attribute.
fn set_field(attrs: &mut Attributes, name: AttrName, value: &str) -> Result<(), ModelError> {
    check_value("value", name, value)?;
    let b = || parse_bool(name, value);
    match name {
        AttrName::Label => attrs.label = value.to_owned(),
        AttrName::Id => attrs.id = parse_id(value)?,
        AttrName::Encrypt => attrs.encrypt = b()?,
        AttrName::Decrypt => attrs.decrypt = b()?,
        AttrName::Wrap => attrs.wrap = b()?,
        AttrName::Unwrap => attrs.unwrap = b()?,
        AttrName::Derive => attrs.derive = b()?,
        AttrName::Sign => attrs.sign = b()?,
        AttrName::Verify => attrs.verify = b()?,
        AttrName::Extractable => attrs.extractable = b()?,
        AttrName::Sensitive => attrs.sensitive = b()?,
        AttrName::Token => attrs.token = b()?,
        AttrName::Private => attrs.private = b()?,
        AttrName::Modifiable => attrs.modifiable = b()?,
        AttrName::Destroyable => attrs.destroyable = b()?,
        AttrName::Trusted => attrs.trusted = b()?,
        AttrName::WrapWithTrusted => attrs.wrap_with_trusted = b()?,
        AttrName::Class
        | AttrName::KeyType
        | AttrName::Local
        | AttrName::AlwaysSensitive
        | AttrName::NeverExtractable
        | AttrName::CheckValue
        | AttrName::KeyLengthBytes
        | AttrName::Modulus
        | AttrName::ModulusSizeBits
        | AttrName::PublicExponent
        | AttrName::EcPoint
        | AttrName::Curve => {
            return Err(ModelError::InvalidArgument { field: "name", rule: format!("{name} is read-only") });
        }
    }
    Ok(())
}

/// What a key is used for; each needs its attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Encrypt,
    Decrypt,
    Sign,
    Verify,
    /// As the wrapping key.
    Wrap,
    /// As the unwrapping key.
    Unwrap,
}

impl Usage {
    fn attribute(self) -> AttrName {
        match self {
            Usage::Encrypt => AttrName::Encrypt,
            Usage::Decrypt => AttrName::Decrypt,
            Usage::Sign => AttrName::Sign,
            Usage::Verify => AttrName::Verify,
            Usage::Wrap => AttrName::Wrap,
            Usage::Unwrap => AttrName::Unwrap,
        }
    }

    fn allowed_by(self, a: &Attributes) -> bool {
        match self {
            Usage::Encrypt => a.encrypt,
            Usage::Decrypt => a.decrypt,
            Usage::Sign => a.sign,
            Usage::Verify => a.verify,
            Usage::Wrap => a.wrap,
            Usage::Unwrap => a.unwrap,
        }
    }
}

/// Facts read off the material when a key is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub kind: KeyKind,
    pub class: KeyClass,
    pub check_value: [u8; 3],
    /// `key-length-bytes`, which every key has (see
    /// [`KeyMaterial::key_length_bytes`]).
    pub length_bytes: Option<usize>,
    pub modulus: Option<(Vec<u8>, u32)>,
    pub public_exponent: Option<u64>,
    pub ec_point: Option<Vec<u8>>,
}

impl Facts {
    fn of(material: &KeyMaterial) -> Self {
        Facts {
            kind: material.kind(),
            class: material.class(),
            check_value: material.check_value(),
            length_bytes: material.key_length_bytes(),
            modulus: material.modulus(),
            public_exponent: material.public_exponent(),
            ec_point: material.ec_point(),
        }
    }
}

/// A key's quorum values (CloudHSM's `manage-key-quorum-value` and
/// `use-key-quorum-value`): how many of its owner and shared users must
/// approve its management (wrap, unwrap, share, unshare, set-attribute) and
/// its use (sign). 0 or 1: no approval needed (CloudHSM shows 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyQuorum {
    pub manage: u8,
    pub usage: u8,
}

impl KeyQuorum {
    /// Checks the values against the users the key is associated with
    /// (its owner and `shared` users): a value cannot exceed their number.
    pub fn parse(manage: u32, usage: u32, associated: usize) -> Result<Self, ModelError> {
        let value = |field: &'static str, raw: u32| {
            let v = u8::try_from(raw).ok().filter(|v| *v <= super::quorum::MAX_QUORUM).ok_or_else(|| {
                ModelError::InvalidArgument { field, rule: format!("must be 0 to {}", super::quorum::MAX_QUORUM) }
            })?;
            if usize::from(v) > associated.max(1) {
                return Err(ModelError::InvalidArgument {
                    field,
                    rule: format!(
                        "{v} is more than the {associated} user(s) the key is associated with (its owner and the \
                         users it is shared with)"
                    ),
                });
            }
            Ok(v)
        };
        Ok(KeyQuorum {
            manage: value("manage_key_quorum_value", manage)?,
            usage: value("use_key_quorum_value", usage)?,
        })
    }

    /// The approvals `service` needs (key-management or key-usage).
    pub fn required(self, service: super::QuorumService) -> u8 {
        match service {
            super::QuorumService::KeyManagement => self.manage,
            super::QuorumService::KeyUsage => self.usage,
            _ => 0,
        }
    }

    pub fn is_set(self) -> bool {
        self.manage > 1 || self.usage > 1
    }
}

/// One stored key.
#[derive(Debug)]
struct Key {
    /// Type and class are read off it without parsing (see [`KeyMaterial`]).
    material: Arc<KeyMaterial>,
    attrs: Attributes,
    owner: Username,
    shared: BTreeSet<Username>,
    /// `Some` for a session key: it lives only as long as this session.
    session: Option<SessionId>,
    /// Rises with every change, so that HSMs agree which copy is newer.
    version: u64,
    /// The sync digest, recomputed on every change (sync status reads it
    /// for every key, often) and stored with the key, so that a restart
    /// need not parse every key to compute it again.
    digest: [u8; 32],
    quorum: KeyQuorum,
}

/// A key as listings and replies show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyView {
    pub reference: KeyRef,
    pub facts: Facts,
    pub attrs: Attributes,
    pub owner: Username,
    pub shared: Vec<Username>,
    pub session: bool,
    pub quorum: KeyQuorum,
}

impl KeyView {
    /// Every attribute that exists for this key, by CLI name, with its value
    /// as the CLI shows it.
    pub fn attribute_values(&self) -> Vec<(AttrName, String)> {
        AttrName::ALL.into_iter().filter_map(|name| self.attribute(name).map(|v| (name, v))).collect()
    }

    /// One attribute's value as the CLI shows it; `None` where it does not
    /// exist for this key type.
    pub fn attribute(&self, name: AttrName) -> Option<String> {
        let a = &self.attrs;
        let f = &self.facts;
        match name {
            AttrName::Label => Some(a.label.clone()),
            AttrName::Id => Some(if a.id.is_empty() { String::new() } else { format!("0x{}", hex::encode(&a.id)) }),
            AttrName::Class => Some(class_name(f.class).to_owned()),
            AttrName::KeyType => Some(kind_name(f.kind).to_owned()),
            AttrName::Encrypt
            | AttrName::Decrypt
            | AttrName::Wrap
            | AttrName::Unwrap
            | AttrName::Derive
            | AttrName::Sign
            | AttrName::Verify
            | AttrName::Extractable
            | AttrName::Sensitive
            | AttrName::Token
            | AttrName::Private
            | AttrName::Modifiable
            | AttrName::Destroyable
            | AttrName::Trusted
            | AttrName::WrapWithTrusted
            | AttrName::Local
            | AttrName::AlwaysSensitive
            | AttrName::NeverExtractable => flag(a, f.class, name).map(|v| v.to_string()),
            AttrName::CheckValue => Some(format!("0x{}", hex::encode(f.check_value))),
            AttrName::KeyLengthBytes => f.length_bytes.map(|n| n.to_string()),
            AttrName::Modulus => f.modulus.as_ref().map(|(m, _)| format!("0x{}", hex::encode(m))),
            AttrName::ModulusSizeBits => f.modulus.as_ref().map(|(_, bits)| bits.to_string()),
            AttrName::PublicExponent => f.public_exponent.map(|e| {
                // Whole big-endian bytes, as CloudHSM shows it: 0x010001.
                let bytes = e.to_be_bytes();
                let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len() - 1);
                format!("0x{}", hex::encode(&bytes[first..]))
            }),
            AttrName::EcPoint => f.ec_point.as_ref().map(|p| format!("0x{}", hex::encode(p))),
            AttrName::Curve => match f.kind {
                KeyKind::Ec(c) => Some(curve_name(c).to_owned()),
                KeyKind::Ed25519 => Some("ed25519".to_owned()),
                _ => None,
            },
        }
    }
}

/// A true/false attribute's value; `None` for an attribute that is not a
/// flag. Read off the attributes alone, so that filters on flags parse no
/// key material. Every key has every flag, as the CloudHSM CLI shows them:
/// a public key's `sensitive`, `always-sensitive` and `never-extractable`
/// are false (it holds nothing secret).
fn flag(a: &Attributes, class: KeyClass, name: AttrName) -> Option<bool> {
    let secret_only = |v: bool| Some(class != KeyClass::Public && v);
    match name {
        AttrName::Encrypt => Some(a.encrypt),
        AttrName::Decrypt => Some(a.decrypt),
        AttrName::Wrap => Some(a.wrap),
        AttrName::Unwrap => Some(a.unwrap),
        AttrName::Derive => Some(a.derive),
        AttrName::Sign => Some(a.sign),
        AttrName::Verify => Some(a.verify),
        AttrName::Extractable => Some(a.extractable),
        AttrName::Sensitive => secret_only(a.sensitive),
        AttrName::Token => Some(a.token),
        AttrName::Private => Some(a.private),
        AttrName::Modifiable => Some(a.modifiable),
        AttrName::Destroyable => Some(a.destroyable),
        AttrName::Trusted => Some(a.trusted),
        AttrName::WrapWithTrusted => Some(a.wrap_with_trusted),
        AttrName::Local => Some(a.local),
        AttrName::AlwaysSensitive => secret_only(a.always_sensitive),
        AttrName::NeverExtractable => secret_only(a.never_extractable),
        AttrName::Label
        | AttrName::Id
        | AttrName::Class
        | AttrName::KeyType
        | AttrName::CheckValue
        | AttrName::KeyLengthBytes
        | AttrName::Modulus
        | AttrName::ModulusSizeBits
        | AttrName::PublicExponent
        | AttrName::EcPoint
        | AttrName::Curve => None,
    }
}

pub fn class_name(class: KeyClass) -> &'static str {
    match class {
        KeyClass::Secret => "secret-key",
        KeyClass::Public => "public-key",
        KeyClass::Private => "private-key",
    }
}

pub fn kind_name(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Aes => "aes",
        KeyKind::GenericSecret => "generic-secret",
        KeyKind::Des3 => "des3",
        KeyKind::Rsa => "rsa",
        KeyKind::Ec(_) => "ec",
        KeyKind::Ed25519 => "ec-edwards",
    }
}

/// The CloudHSM CLI's curve names.
pub fn curve_name(curve: Curve) -> &'static str {
    match curve {
        Curve::P224 => "secp224r1",
        Curve::P256 => "secp256r1",
        Curve::P384 => "secp384r1",
        Curve::P521 => "secp521r1",
        Curve::Secp256k1 => "secp256k1",
    }
}

/// Parses a curve name (`prime256v1` is accepted for P-256).
pub fn parse_curve(field: &'static str, raw: &str) -> Result<Curve, ModelError> {
    match raw {
        "secp224r1" => Ok(Curve::P224),
        "secp256r1" | "prime256v1" => Ok(Curve::P256),
        "secp384r1" => Ok(Curve::P384),
        "secp521r1" => Ok(Curve::P521),
        "secp256k1" => Ok(Curve::Secp256k1),
        _ => Err(ModelError::InvalidArgument {
            field,
            rule: format!(
                "unknown curve {:?}: use secp224r1, secp256r1 (prime256v1), secp384r1, secp521r1 or secp256k1",
                truncate(raw)
            ),
        }),
    }
}

/// Key quotas of one HSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyQuotas {
    pub max_keys: usize,
    pub max_asymmetric: usize,
}

impl KeyQuotas {
    /// hsm2m.medium's published quotas.
    pub const HSM2M: KeyQuotas = KeyQuotas { max_keys: 16_666, max_asymmetric: 3_333 };
    /// hsm1.medium's: 3,300 keys, no separate asymmetric limit.
    pub const HSM1: KeyQuotas = KeyQuotas { max_keys: 3_300, max_asymmetric: 3_300 };
    /// No quota (`key_quota = "off"`): for measuring and for test suites
    /// that need more keys than a real HSM holds.
    pub const OFF: KeyQuotas = KeyQuotas { max_keys: usize::MAX, max_asymmetric: usize::MAX };
}

/// A key to store, as the service prepared it.
#[derive(Debug)]
pub struct NewKey {
    pub material: Arc<KeyMaterial>,
    pub template: Template,
    /// Generated on the HSM (`local`), as opposed to imported or unwrapped.
    pub local: bool,
}

/// A listing query.
#[derive(Debug, Clone, Default)]
pub struct KeyQuery {
    /// `attr.NAME=VALUE` filters (as name/value) and `key-reference=0x...`.
    pub filters: Vec<(String, String)>,
    /// 0 means no limit.
    pub max_items: usize,
    /// From a previous page's `next_token`.
    pub starting_token: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct KeyPage {
    pub keys: Vec<KeyView>,
    pub total: usize,
    pub next_token: Option<String>,
}

/// The keys of one HSM.
#[derive(Debug)]
pub struct Keys {
    keys: BTreeMap<KeyRef, Key>,
    /// Kept in step with `keys` by [`Keys::put`] and [`Keys::take`].
    index: KeyIndex,
    /// Deleted token keys, kept so that an old copy cannot return.
    tombstones: BTreeMap<KeyRef, Tombstone>,
    range: KeyRange,
    next_ref: u64,
    quotas: KeyQuotas,
    /// Token keys changed since the last `take_dirty`, for persistence.
    dirty: BTreeSet<KeyRef>,
    /// Tombstones changed since the last `take_dirty`.
    dirty_tombstones: BTreeSet<KeyRef>,
}

/// What calls need of all keys at once, kept as keys come and go so that
/// no call walks every key under the model's lock.
#[derive(Debug, Default)]
struct KeyIndex {
    /// Keys by label (a hash of it, ignoring ASCII case as the filter does):
    /// `attr.label=...` looks here. A hash rather than the label, so that
    /// the index holds no second copy of every label; the filter itself
    /// still compares the label, so keys whose labels share a hash are told
    /// apart.
    by_label: HashMap<u64, Refs>,
    /// How many keys there are of each (type, class): metrics read it, and
    /// the asymmetric quota counts its public and private entries.
    census: BTreeMap<(&'static str, &'static str), usize>,
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
    fn restored(entries: &[(u64, KeyRef, (&'static str, &'static str))]) -> Self {
        let mut index = KeyIndex { by_label: HashMap::with_capacity(entries.len()), ..KeyIndex::default() };
        for &(hash, reference, census) in entries {
            index.label(hash, reference);
            *index.census.entry(census).or_insert(0) += 1;
        }
        index
    }

    fn add(&mut self, reference: KeyRef, key: &Key) {
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

    fn remove(&mut self, reference: KeyRef, key: &Key) {
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
    fn asymmetric(&self) -> usize {
        let secret = class_name(KeyClass::Secret);
        self.census.iter().filter(|((_, class), _)| *class != secret).map(|(_, count)| count).sum()
    }

    /// The session keys of `session`.
    fn of_session(&self, session: SessionId) -> impl Iterator<Item = KeyRef> + '_ {
        let all = (session, KeyRef(u64::MIN))..=(session, KeyRef(u64::MAX));
        self.session_keys.range(all).map(|(_, reference)| *reference)
    }

    /// The keys labelled `label` (ASCII case ignored), and perhaps a few
    /// others whose labels share its hash; in reference order.
    fn labelled(&self, label: &str) -> Vec<KeyRef> {
        match self.by_label.get(&label_hash(label)) {
            None => Vec::new(),
            Some(Refs::One(reference)) => vec![*reference],
            Some(Refs::Many(set)) => set.iter().copied().collect(),
        }
    }
}

/// From how many keys a restore builds the key index on a second thread.
pub(super) const PARALLEL_RESTORE: usize = 50_000;

/// FNV-1a over the label's bytes in ASCII lower case: cheap (a restart
/// hashes every label) and the same on every run. Not keyed: labels that
/// collide on purpose only share an index entry, which the filter sorts out.
fn label_hash(label: &str) -> u64 {
    label.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3)
    })
}

fn census_entry(key: &Key) -> (&'static str, &'static str) {
    (kind_name(key.material.kind()), class_name(key.material.class()))
}

#[derive(Debug, Clone)]
struct Tombstone {
    version: u64,
    owner: Username,
}

/// Changes to token keys for the store: keys to write (`None`: delete) and
/// tombstones to write (`None`: delete).
pub type KeyChanges = (Vec<(KeyRef, Option<PersistedKey>)>, Vec<(KeyRef, Option<PersistedTombstone>)>);

/// A token key as the store keeps it.
#[derive(Debug, Clone)]
pub struct PersistedKey {
    pub reference: KeyRef,
    pub material: Arc<KeyMaterial>,
    pub attrs: Attributes,
    pub owner: Username,
    pub shared: Vec<Username>,
    pub version: u64,
    /// The sync digest as stored with the key; `None` when it must be
    /// computed (copies from other HSMs, backups, stores that predate it).
    pub digest: Option<[u8; 32]>,
    pub quorum: KeyQuorum,
}

/// Who asks: the caller's name, and its identity, for the questions the
/// permission table answers ([`Action`]).
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub user: &'a Username,
    pub identity: Identity,
}

impl Actor<'_> {
    fn may(self, action: Action) -> bool {
        action.allowed().admits(self.identity, Some(self.user))
    }
}

impl Keys {
    pub fn new(quotas: KeyQuotas, range: KeyRange) -> Self {
        Keys {
            keys: BTreeMap::new(),
            index: KeyIndex::default(),
            tombstones: BTreeMap::new(),
            range,
            next_ref: range.first(),
            quotas,
            dirty: BTreeSet::new(),
            dirty_tombstones: BTreeSet::new(),
        }
    }

    /// Keys and tombstones as the store gave them back, and the next
    /// reference to hand out (moved into `range` if the HSM's index changed).
    pub fn restore(
        quotas: KeyQuotas,
        range: KeyRange,
        next_ref: u64,
        stored: Vec<PersistedKey>,
        tombstones: Vec<PersistedTombstone>,
    ) -> Self {
        let mut keys = Keys::new(quotas, range);
        let mut indexed = Vec::with_capacity(stored.len());
        let entries: Vec<(KeyRef, Key)> = stored
            .into_iter()
            .map(|k| {
                let (reference, key) = (k.reference, Key::from_persisted(k));
                indexed.push((label_hash(&key.attrs.label), reference, census_entry(&key)));
                (reference, key)
            })
            .collect();
        // The store gives keys in reference order: collecting builds the map
        // in one pass, its nodes full. The index does not need the map: with
        // many keys (a restart's cost grows with them: a million take a few
        // hundred ms for each) it is built beside it, on a second thread.
        let build = || KeyIndex::restored(&indexed);
        (keys.keys, keys.index) = std::thread::scope(|scope| {
            // Without a thread to be had, one after the other on this one.
            let beside = (entries.len() >= PARALLEL_RESTORE)
                .then(|| std::thread::Builder::new().name("hsm-key-index".into()).spawn_scoped(scope, build).ok())
                .flatten();
            let map = entries.into_iter().collect();
            let index = match beside {
                Some(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                None => build(),
            };
            (map, index)
        });
        for t in tombstones {
            keys.tombstones.insert(t.reference, Tombstone { version: t.version, owner: t.owner });
        }
        let start = if range.contains(next_ref) { next_ref } else { range.first() };
        keys.next_ref = keys
            .keys
            .keys()
            .chain(keys.tombstones.keys())
            .filter(|r| range.contains(r.0))
            .fold(start, |next, r| next.max(r.0 + 1));
        keys
    }

    /// Replaces every key and tombstone, as [`Keys::restore`] builds them
    /// (a reset to a snapshot); session keys go too. Every key and tombstone
    /// held before or after counts as changed, so that the store ends up
    /// holding exactly the new set.
    pub fn reset(&mut self, next_ref: u64, stored: Vec<PersistedKey>, tombstones: Vec<PersistedTombstone>) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.extend(self.keys.keys());
        let mut dirty_tombstones = std::mem::take(&mut self.dirty_tombstones);
        dirty_tombstones.extend(self.tombstones.keys());
        *self = Keys::restore(self.quotas, self.range, next_ref, stored, tombstones);
        dirty.extend(self.keys.keys());
        dirty_tombstones.extend(self.tombstones.keys());
        self.dirty = dirty;
        self.dirty_tombstones = dirty_tombstones;
    }

    /// Every token key and tombstone as the store keeps them.
    pub fn persisted(&self) -> (Vec<PersistedKey>, Vec<PersistedTombstone>) {
        let keys = self.keys.iter().filter(|(_, k)| k.session.is_none()).map(|(r, k)| k.persisted(*r)).collect();
        let tombstones = self.tombstones.iter().map(|(r, t)| t.persisted(*r)).collect();
        (keys, tombstones)
    }

    /// The next reference to hand out (persisted so that references are
    /// never reused).
    pub fn next_ref(&self) -> u64 {
        self.next_ref
    }

    /// Token keys changed since the last call: `Some` to store, `None` to
    /// delete. Session keys are never persisted.
    pub fn take_dirty(&mut self) -> KeyChanges {
        let keys = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|reference| match self.keys.get(&reference) {
                Some(key) if key.session.is_some() => None,
                Some(key) => Some((reference, Some(key.persisted(reference)))),
                None => Some((reference, None)),
            })
            .collect();
        let tombstones = std::mem::take(&mut self.dirty_tombstones)
            .into_iter()
            .map(|reference| (reference, self.tombstones.get(&reference).map(|t| t.persisted(reference))))
            .collect();
        (keys, tombstones)
    }

    pub fn quotas(&self) -> KeyQuotas {
        self.quotas
    }

    /// Stores keys made together (one key, or a public/private pair) for
    /// `owner`, all or none.
    pub fn insert(
        &mut self,
        owner: &Username,
        session: Option<SessionId>,
        new: Vec<NewKey>,
    ) -> Result<Vec<KeyView>, ModelError> {
        let mut prepared = Vec::with_capacity(new.len());
        for key in new {
            let class = key.material.class();
            let mut attrs = Attributes::defaults(class, session.is_none(), key.local);
            key.template.apply(&mut attrs)?;
            attrs.always_sensitive = class != KeyClass::Public && attrs.sensitive;
            attrs.never_extractable = class != KeyClass::Public && !attrs.extractable;
            prepared.push(Key {
                material: key.material,
                attrs,
                owner: owner.clone(),
                shared: BTreeSet::new(),
                session,
                version: 1,
                digest: [0; 32],
                quorum: KeyQuorum::default(),
            });
        }
        let adding_asym = prepared.iter().filter(|k| k.material.class() != KeyClass::Secret).count();
        self.check_quota(prepared.len(), adding_asym)?;
        let mut views = Vec::with_capacity(prepared.len());
        for mut key in prepared {
            let reference = KeyRef(self.next_ref);
            key.digest = key.compute_digest(reference);
            self.next_ref += 1;
            views.push(view(reference, &key));
            self.dirty.insert(reference);
            self.put(reference, key);
        }
        Ok(views)
    }

    /// The material of a key `actor` may use for `usage`: its own, one shared
    /// with it, or any public key; with the attribute that allows the usage.
    pub fn for_use(&self, actor: Actor<'_>, reference: KeyRef, usage: Usage) -> Result<Arc<KeyMaterial>, ModelError> {
        let key = self.visible(actor, reference)?;
        if !actor.may(Action::UseKeys) {
            return Err(key_denied(reference, "admins cannot use keys"));
        }
        if !usage.allowed_by(&key.attrs) {
            return Err(ModelError::KeyAttribute { reference, attribute: usage.attribute() });
        }
        Ok(Arc::clone(&key.material))
    }

    /// Gives a key made just now its quorum values (its version stays 1).
    pub fn set_quorum_at_creation(&mut self, reference: KeyRef, quorum: KeyQuorum) -> Result<KeyView, ModelError> {
        let key = self.keys.get_mut(&reference).ok_or(ModelError::KeyNotFound { reference })?;
        key.quorum = quorum;
        key.digest = key.compute_digest(reference);
        if key.session.is_none() {
            self.dirty.insert(reference);
        }
        Ok(view(reference, key))
    }

    /// A key's quorum values (none for an unknown key).
    pub fn quorum(&self, reference: KeyRef) -> KeyQuorum {
        self.keys.get(&reference).map(|k| k.quorum).unwrap_or_default()
    }

    /// A key's quorum values and the users who may approve for it (its
    /// owner and shared users), if `actor` can see it.
    pub fn approvers(&self, actor: Actor<'_>, reference: KeyRef) -> Result<(KeyQuorum, Vec<Username>), ModelError> {
        let key = self.visible(actor, reference)?;
        Ok((key.quorum, std::iter::once(&key.owner).chain(&key.shared).cloned().collect()))
    }

    /// The wrapping key and the key to wrap. Wrapping exports the target, so
    /// only its owner may, and only if it is extractable; a target marked
    /// `wrap-with-trusted` needs a trusted wrapping key.
    pub fn for_wrap(
        &self,
        actor: Actor<'_>,
        wrapping: KeyRef,
        target: KeyRef,
    ) -> Result<(Arc<KeyMaterial>, Arc<KeyMaterial>), ModelError> {
        let wrapping_material = self.for_use(actor, wrapping, Usage::Wrap)?;
        let key = self.visible(actor, target)?;
        if &key.owner != actor.user {
            return Err(key_denied(target, "only the key's owner can wrap (export) it"));
        }
        if !key.attrs.extractable {
            return Err(ModelError::KeyAttribute { reference: target, attribute: AttrName::Extractable });
        }
        if key.attrs.wrap_with_trusted && !self.keys.get(&wrapping).is_some_and(|k| k.attrs.trusted) {
            return Err(key_denied(target, "it is marked wrap-with-trusted and the wrapping key is not trusted"));
        }
        Ok((wrapping_material, Arc::clone(&key.material)))
    }

    /// The public material behind a public or private key, for export as PEM.
    pub fn for_public_export(&self, actor: Actor<'_>, reference: KeyRef) -> Result<Arc<KeyMaterial>, ModelError> {
        let key = self.visible(actor, reference)?;
        if !actor.may(Action::UseKeys) {
            return Err(key_denied(reference, "admins cannot export keys"));
        }
        if key.material.class() == KeyClass::Secret {
            return Err(ModelError::InvalidArgument {
                field: "key_reference",
                rule: format!("{reference} is a secret key; only public keys can be exported as PEM"),
            });
        }
        Ok(Arc::clone(&key.material))
    }

    pub fn delete(&mut self, actor: Actor<'_>, reference: KeyRef) -> Result<KeyView, ModelError> {
        let key = self.owned(actor, reference, "delete")?;
        if !key.attrs.destroyable {
            return Err(ModelError::KeyAttribute { reference, attribute: AttrName::Destroyable });
        }
        let shown = view(reference, key);
        if key.session.is_none() {
            let tombstone = Tombstone { version: key.version + 1, owner: key.owner.clone() };
            self.tombstones.insert(reference, tombstone);
            self.dirty_tombstones.insert(reference);
        }
        self.take(reference);
        self.dirty.insert(reference);
        Ok(shown)
    }

    /// Shares a key with another crypto user (`is_crypto_user` says whether
    /// the named user exists with that role).
    pub fn share(
        &mut self,
        actor: Actor<'_>,
        reference: KeyRef,
        with: Username,
        is_crypto_user: bool,
    ) -> Result<KeyView, ModelError> {
        let key = self.owned_mut(actor, reference, "share")?;
        if key.material.class() == KeyClass::Public {
            return Err(ModelError::InvalidArgument {
                field: "key_reference",
                rule: format!("{reference} is a public key, which every crypto user can already use"),
            });
        }
        if !is_crypto_user {
            return Err(ModelError::InvalidArgument {
                field: "username",
                rule: format!("'{with}' is not a crypto user; keys are shared only with crypto users"),
            });
        }
        if with == key.owner {
            return Err(ModelError::InvalidArgument { field: "username", rule: format!("'{with}' owns {reference}") });
        }
        if key.shared.contains(&with) {
            return Err(ModelError::InvalidArgument {
                field: "username",
                rule: format!("{reference} is already shared with '{with}'"),
            });
        }
        if key.shared.len() >= MAX_SHARED_USERS {
            return Err(ModelError::KeyQuota { what: "users a key is shared with", max: MAX_SHARED_USERS });
        }
        key.shared.insert(with);
        key.changed(reference);
        let shown = view(reference, key);
        self.dirty.insert(reference);
        Ok(shown)
    }

    pub fn unshare(&mut self, actor: Actor<'_>, reference: KeyRef, with: &Username) -> Result<KeyView, ModelError> {
        let key = self.owned_mut(actor, reference, "unshare")?;
        let needed = key.quorum.manage.max(key.quorum.usage);
        if key.shared.contains(with) && usize::from(needed) > key.shared.len() {
            return Err(ModelError::InvalidArgument {
                field: "username",
                rule: format!(
                    "{reference} has a quorum value of {needed}; unsharing would leave fewer users to approve"
                ),
            });
        }
        if !key.shared.remove(with) {
            return Err(ModelError::InvalidArgument {
                field: "username",
                rule: format!("{reference} is not shared with '{with}'"),
            });
        }
        key.changed(reference);
        let shown = view(reference, key);
        self.dirty.insert(reference);
        Ok(shown)
    }

    /// Sets one attribute. `trusted` is set on any key the caller sees,
    /// whether or not it is `modifiable`; the others on one's own keys while
    /// they are `modifiable`. Who may set which: [`Action::SetTrustedAttribute`]
    /// and [`Action::SetKeyAttribute`].
    pub fn set_attribute(
        &mut self,
        actor: Actor<'_>,
        reference: KeyRef,
        name: AttrName,
        value: &str,
    ) -> Result<KeyView, ModelError> {
        let trusted = name == AttrName::Trusted;
        if trusted && !actor.may(Action::SetTrustedAttribute) {
            return Err(key_denied(reference, "only admins may set the trusted attribute"));
        }
        if !trusted && !actor.may(Action::SetKeyAttribute) {
            return Err(key_denied(reference, "admins may set only the trusted attribute"));
        }
        let key = if trusted {
            self.visible(actor, reference)?;
            self.keys.get_mut(&reference).ok_or(ModelError::KeyNotFound { reference })?
        } else {
            self.owned_mut(actor, reference, "modify")?
        };
        if !trusted && !key.attrs.modifiable {
            return Err(ModelError::KeyAttribute { reference, attribute: AttrName::Modifiable });
        }
        let mut next = key.attrs.clone();
        set_field(&mut next, name, value)?;
        let one_way = |was: bool, now: bool, rule: &str| -> Result<(), ModelError> {
            if was != now {
                return Err(ModelError::InvalidArgument { field: "value", rule: format!("{name} {rule}") });
            }
            Ok(())
        };
        match name {
            AttrName::Modifiable if next.modifiable => {
                one_way(key.attrs.modifiable, true, "can go from true to false only")?
            }
            AttrName::WrapWithTrusted if key.attrs.wrap_with_trusted => {
                one_way(true, next.wrap_with_trusted, "is read-only once true")?;
            }
            AttrName::Sensitive if key.attrs.sensitive => {
                one_way(true, next.sensitive, "can go from false to true only")?
            }
            AttrName::Extractable | AttrName::Id | AttrName::Token | AttrName::Private => {
                return Err(ModelError::InvalidArgument {
                    field: "name",
                    rule: format!("{name} is fixed when the key is created"),
                });
            }
            _ => {}
        }
        if name == AttrName::Sensitive && !next.sensitive {
            next.always_sensitive = false;
        }
        if name == AttrName::Label {
            // Out and back in, so that the label index follows.
            if let Some(mut key) = self.take(reference) {
                key.attrs = next;
                key.changed(reference);
                self.put(reference, key);
            }
        } else {
            key.attrs = next;
            key.changed(reference);
        }
        let key = self.keys.get(&reference).ok_or(ModelError::KeyNotFound { reference })?;
        let shown = view(reference, key);
        self.dirty.insert(reference);
        Ok(shown)
    }

    /// The keys `actor` may see, filtered and paged. Crypto users see their
    /// own keys, keys shared with them and every public key; admins see all.
    pub fn list(&self, actor: Actor<'_>, query: &KeyQuery) -> Result<KeyPage, ModelError> {
        at_most("filter", query.filters.len(), MAX_REQUEST_ATTRIBUTES)?;
        let mut filters = Vec::with_capacity(query.filters.len());
        for (name, value) in &query.filters {
            if value.len() > MAX_VALUE_CHARS * 4 || value.chars().count() > MAX_VALUE_CHARS {
                return Err(ModelError::InvalidArgument {
                    field: "filter",
                    rule: format!("a filter value must be at most {MAX_VALUE_CHARS} characters"),
                });
            }
            if name == "key-reference" {
                filters.push(Filter::Reference(KeyRef::parse("filter", value)?));
            } else {
                let attr = name.strip_prefix("attr.").ok_or_else(|| ModelError::InvalidArgument {
                    field: "filter",
                    rule: format!("{:?}: use attr.NAME=VALUE or key-reference=0x...", truncate(name)),
                })?;
                filters.push(Filter::Attribute(AttrName::parse("filter", attr)?, value.clone()));
            }
        }
        let start = match &query.starting_token {
            None => None,
            Some(token) => Some(KeyRef::parse("starting_token", token)?),
        };
        let first = start.unwrap_or(KeyRef(0));
        let limit = if query.max_items == 0 { usize::MAX } else { query.max_items };
        let sees_every_key = actor.may(Action::SeeEveryKey);
        if sees_every_key && filters.is_empty() {
            // Every key matches: count without walking them.
            let mut rest = self.keys.range(first..);
            let keys = rest.by_ref().take(limit).map(|(r, k)| view(*r, k)).collect();
            let next_token = rest.next().map(|(r, _)| r.to_string());
            return Ok(KeyPage { keys, total: self.keys.len(), next_token });
        }
        // Where matches can be: the one key named, the keys of the label
        // asked for (through the index), or else every key. In reference
        // order, as pages are.
        let named = filters.iter().find_map(|f| match f {
            Filter::Reference(r) => Some(vec![*r]),
            Filter::Attribute(AttrName::Label, label) => Some(self.index.labelled(label)),
            Filter::Attribute(..) => None,
        });
        let candidates: Box<dyn Iterator<Item = (KeyRef, &Key)>> = match named {
            Some(refs) => Box::new(refs.into_iter().filter_map(|r| self.keys.get(&r).map(|k| (r, k)))),
            None => Box::new(self.keys.iter().map(|(r, k)| (*r, k))),
        };
        let mut page = KeyPage { keys: Vec::new(), total: 0, next_token: None };
        for (reference, key) in candidates {
            if !(sees_every_key || sees(actor.user, key)) || !filters.iter().all(|f| f.matches(reference, key)) {
                continue;
            }
            // Every match counts towards the total; only a page is shown.
            page.total += 1;
            if reference < first || page.next_token.is_some() {
                continue;
            }
            if page.keys.len() < limit {
                page.keys.push(view(reference, key));
            } else {
                page.next_token = Some(reference.to_string());
            }
        }
        Ok(page)
    }

    /// Every token key (session keys are never synchronised), by reference.
    pub fn token_views(&self) -> impl Iterator<Item = KeyView> + '_ {
        self.keys.iter().filter(|(_, k)| k.session.is_none()).map(|(r, k)| view(*r, k))
    }

    /// How many keys there are of each (type, class), as `key list` names
    /// them, session keys included.
    pub fn census(&self) -> BTreeMap<(&'static str, &'static str), usize> {
        self.index.census.clone()
    }

    /// How many keys `user` owns.
    pub fn owned_by(&self, user: &Username) -> usize {
        self.keys.values().filter(|k| &k.owner == user).count()
    }

    /// Forgets a deleted user in every share list.
    pub fn forget_user(&mut self, user: &Username) {
        for (reference, key) in &mut self.keys {
            if key.shared.remove(user) {
                key.changed(*reference);
                self.dirty.insert(*reference);
            }
        }
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
                _ => Err(ModelError::KeyNotFound { reference }),
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

    fn check_quota(&self, adding: usize, adding_asymmetric: usize) -> Result<(), ModelError> {
        if self.keys.len() + adding > self.quotas.max_keys {
            return Err(ModelError::KeyQuota { what: "keys", max: self.quotas.max_keys });
        }
        if self.index.asymmetric() + adding_asymmetric > self.quotas.max_asymmetric {
            return Err(ModelError::KeyQuota { what: "asymmetric keys", max: self.quotas.max_asymmetric });
        }
        Ok(())
    }

    /// Drops the session keys of ended sessions.
    pub fn end_sessions(&mut self, ended: &[SessionId]) -> usize {
        let gone: Vec<KeyRef> = ended.iter().flat_map(|s| self.index.of_session(*s)).collect();
        for reference in &gone {
            self.take(*reference);
        }
        gone.len()
    }

    /// Stores a key, keeping the index in step.
    fn put(&mut self, reference: KeyRef, key: Key) {
        self.take(reference);
        self.index.add(reference, &key);
        self.keys.insert(reference, key);
    }

    /// Removes a key, keeping the index in step.
    fn take(&mut self, reference: KeyRef) -> Option<Key> {
        let key = self.keys.remove(&reference)?;
        self.index.remove(reference, &key);
        Some(key)
    }

    fn visible(&self, actor: Actor<'_>, reference: KeyRef) -> Result<&Key, ModelError> {
        match self.keys.get(&reference) {
            Some(key) if actor.may(Action::SeeEveryKey) || sees(actor.user, key) => Ok(key),
            _ => Err(ModelError::KeyNotFound { reference }),
        }
    }

    fn owned(&self, actor: Actor<'_>, reference: KeyRef, what: &str) -> Result<&Key, ModelError> {
        let key = self.visible(actor, reference)?;
        if &key.owner != actor.user {
            return Err(key_denied(reference, &format!("only the key's owner can {what} it")));
        }
        Ok(key)
    }

    fn owned_mut(&mut self, actor: Actor<'_>, reference: KeyRef, what: &str) -> Result<&mut Key, ModelError> {
        self.owned(actor, reference, what)?;
        self.keys.get_mut(&reference).ok_or(ModelError::KeyNotFound { reference })
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
    fn from_persisted(k: PersistedKey) -> Self {
        let mut key = Key {
            material: k.material,
            attrs: k.attrs,
            owner: k.owner,
            shared: k.shared.into_iter().collect(),
            session: None,
            version: k.version,
            digest: k.digest.unwrap_or_default(),
            quorum: k.quorum,
        };
        if k.digest.is_none() {
            key.digest = key.compute_digest(k.reference);
        }
        key
    }

    fn stamp(&self) -> Stamp {
        Stamp { version: self.version, digest: Some(self.digest) }
    }

    /// Records a change: a new version and digest.
    fn changed(&mut self, reference: KeyRef) {
        self.version += 1;
        self.digest = self.compute_digest(reference);
    }

    fn persisted(&self, reference: KeyRef) -> PersistedKey {
        PersistedKey {
            reference,
            material: Arc::clone(&self.material),
            attrs: self.attrs.clone(),
            owner: self.owner.clone(),
            shared: self.shared.iter().cloned().collect(),
            version: self.version,
            digest: Some(self.digest),
            quorum: self.quorum,
        }
    }

    /// SHA-256 over what HSMs in step agree on: the reference, every
    /// attribute as the CLI shows it (type, class and check value included),
    /// the owner and the shared users, length-prefixed.
    fn compute_digest(&self, reference: KeyRef) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut put = |bytes: &[u8]| {
            ctx.update(&(bytes.len() as u64).to_be_bytes());
            ctx.update(bytes);
        };
        put(reference.to_string().as_bytes());
        for (name, value) in view(reference, self).attribute_values() {
            put(name.as_str().as_bytes());
            put(value.as_bytes());
        }
        put(self.owner.as_str().as_bytes());
        put(&(self.shared.len() as u64).to_be_bytes());
        for user in &self.shared {
            put(user.as_str().as_bytes());
        }
        // Only when set, so that digests of keys without them are unchanged.
        if self.quorum != KeyQuorum::default() {
            put(&[self.quorum.manage, self.quorum.usage]);
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ctx.finish().as_ref());
        digest
    }
}

impl Tombstone {
    fn stamp(&self) -> Stamp {
        Stamp { version: self.version, digest: None }
    }

    fn persisted(&self, reference: KeyRef) -> PersistedTombstone {
        PersistedTombstone { reference, version: self.version, owner: self.owner.clone() }
    }
}

fn internal_clash(reference: KeyRef) -> ModelError {
    ModelError::Internal(format!("{reference} names a session key here and a token key elsewhere"))
}

/// Whether a crypto user can see a key.
fn sees(user: &Username, key: &Key) -> bool {
    &key.owner == user || key.shared.contains(user) || key.material.class() == KeyClass::Public
}

fn key_denied(reference: KeyRef, rule: &str) -> ModelError {
    ModelError::KeyPermission { reference, rule: rule.to_owned() }
}

fn view(reference: KeyRef, key: &Key) -> KeyView {
    KeyView {
        reference,
        facts: Facts::of(&key.material),
        attrs: key.attrs.clone(),
        owner: key.owner.clone(),
        shared: key.shared.iter().cloned().collect(),
        session: key.session.is_some(),
        quorum: key.quorum,
    }
}

enum Filter {
    Reference(KeyRef),
    Attribute(AttrName, String),
}

impl Filter {
    /// Reads what it can off the attributes, type and class, so that a
    /// filter over many keys neither allocates nor parses key material for
    /// each; only the facts read off the material (check value, sizes, EC
    /// point...) need the key as shown.
    fn matches(&self, reference: KeyRef, key: &Key) -> bool {
        let (name, want) = match self {
            Filter::Reference(r) => return reference == *r,
            Filter::Attribute(name, want) => (*name, want),
        };
        let class = key.material.class();
        match name {
            AttrName::Label => key.attrs.label.eq_ignore_ascii_case(want),
            AttrName::Class => class_name(class).eq_ignore_ascii_case(want),
            AttrName::KeyType => kind_name(key.material.kind()).eq_ignore_ascii_case(want),
            _ => match flag(&key.attrs, class, name) {
                Some(v) => want.eq_ignore_ascii_case(if v { "true" } else { "false" }),
                None => view(reference, key).attribute(name).is_some_and(|have| have.eq_ignore_ascii_case(want)),
            },
        }
    }
}
