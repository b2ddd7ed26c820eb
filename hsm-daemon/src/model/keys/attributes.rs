//! CloudHSM's key attributes: their names, defaults, the templates that set
//! them when a key is made, the rules for writing one, and the usages they
//! allow.

use std::fmt;

use super::truncate;
use crate::{crypto::KeyClass, model::ModelError};

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
    pub(super) fn defaults(class: KeyClass, token: bool, local: bool) -> Self {
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

    pub(super) fn apply(&self, attrs: &mut Attributes) -> Result<(), ModelError> {
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
pub(super) fn at_most(field: &'static str, count: usize, max: usize) -> Result<(), ModelError> {
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
pub(super) fn set_field(attrs: &mut Attributes, name: AttrName, value: &str) -> Result<(), ModelError> {
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
    pub(super) fn attribute(self) -> AttrName {
        match self {
            Usage::Encrypt => AttrName::Encrypt,
            Usage::Decrypt => AttrName::Decrypt,
            Usage::Sign => AttrName::Sign,
            Usage::Verify => AttrName::Verify,
            Usage::Wrap => AttrName::Wrap,
            Usage::Unwrap => AttrName::Unwrap,
        }
    }

    pub(super) fn allowed_by(self, a: &Attributes) -> bool {
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

/// A true/false attribute's value; `None` for an attribute that is not a
/// flag. Read off the attributes alone, so that filters on flags parse no
/// key material. Every key has every flag, as the CloudHSM CLI shows them:
/// a public key's `sensitive`, `always-sensitive` and `never-extractable`
/// are false (it holds nothing secret).
pub(super) fn flag(a: &Attributes, class: KeyClass, name: AttrName) -> Option<bool> {
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
