//! The one-byte codes records store for roles, key kinds and key classes;
//! a code once written keeps its meaning.

use crate::{
    crypto::{Curve, KeyClass, KeyKind},
    model::Role,
};

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
