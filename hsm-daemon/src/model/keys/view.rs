//! A key as replies and listings show it: its attributes and the facts read
//! off its material, with the CloudHSM CLI's names and formats.

use super::{AttrName, Attributes, KeyQuorum, KeyRef, attributes::flag, truncate};
use crate::{
    crypto::{Curve, KeyClass, KeyKind, KeyMaterial},
    model::{ModelError, Username},
};

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
    pub(super) fn of(material: &KeyMaterial) -> Self {
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
                KeyKind::Aes | KeyKind::GenericSecret | KeyKind::Des3 | KeyKind::Rsa => None,
            },
        }
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
