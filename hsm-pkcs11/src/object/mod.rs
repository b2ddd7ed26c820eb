//! Objects: PKCS#11 attributes read off the HSM's keys, search templates
//! turned into `key list` filters, and key-pair templates turned into the
//! HSM's key attributes.
//!
//! The HSM names attributes as the CloudHSM CLI does (`label`, `key-type`,
//! `ec-point`...) and shows values as text (`0x...` for bytes); this module
//! is the one place that translates between the two.
//!
//! # Layout
//! - `reading`: what `C_GetAttributeValue` reads off a key, and search
//!   templates as `key list` filters.
//! - `template`: what a template asks of a new key or of a change, by
//!   purpose (generate, create, modify).
//! - `requests`: the HSM calls `C_GenerateKey`, `C_GenerateKeyPair`,
//!   `C_UnwrapKey` and `C_CreateObject` make, read off their templates.
//! - `curves`: the curves the HSM offers, by name and by OID.
//!
//! Here: attributes and values, the flag table, a key's class, type and
//! family, and the byte encodings PKCS#11 gives values.

mod curves;
mod reading;
mod requests;
mod template;

use cryptoki_sys::{
    CK_ATTRIBUTE_TYPE, CK_BBOOL, CK_FALSE, CK_KEY_TYPE, CK_OBJECT_CLASS, CK_TRUE, CK_ULONG, CKA_ALWAYS_SENSITIVE,
    CKA_COEFFICIENT, CKA_DECRYPT, CKA_DERIVE, CKA_DESTROYABLE, CKA_ENCRYPT, CKA_EXPONENT_1, CKA_EXPONENT_2,
    CKA_EXTRACTABLE, CKA_LOCAL, CKA_MODIFIABLE, CKA_NEVER_EXTRACTABLE, CKA_PRIME_1, CKA_PRIME_2, CKA_PRIVATE,
    CKA_PRIVATE_EXPONENT, CKA_SENSITIVE, CKA_SIGN, CKA_TOKEN, CKA_TRUSTED, CKA_UNWRAP, CKA_VALUE, CKA_VERIFY, CKA_WRAP,
    CKA_WRAP_WITH_TRUSTED, CKK_AES, CKK_EC, CKK_EC_EDWARDS, CKK_GENERIC_SECRET, CKK_RSA, CKO_PRIVATE_KEY,
    CKO_PUBLIC_KEY, CKO_SECRET_KEY,
};
use hsm_client::KeyInfo;

use self::curves::curve;
use crate::mechanism::Family;

pub(crate) use self::{
    reading::{filters, matches, value},
    requests::{Material, create_request, pair_request, secret_request, unwrap_request},
    template::changes,
};

/// One attribute of a caller's template, copied out of C memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attribute {
    pub(crate) kind: CK_ATTRIBUTE_TYPE,
    pub(crate) value: Vec<u8>,
}

/// One attribute's value as `C_GetAttributeValue` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Bytes(Vec<u8>),
    /// The object has no such attribute.
    Invalid,
    /// The attribute exists but may not leave the HSM.
    Sensitive,
}

/// The true/false attributes, by PKCS#11 type and HSM name.
const FLAGS: [(CK_ATTRIBUTE_TYPE, &str); 16] = [
    (CKA_TOKEN, "token"),
    (CKA_PRIVATE, "private"),
    (CKA_ENCRYPT, "encrypt"),
    (CKA_DECRYPT, "decrypt"),
    (CKA_WRAP, "wrap"),
    (CKA_UNWRAP, "unwrap"),
    (CKA_SIGN, "sign"),
    (CKA_VERIFY, "verify"),
    (CKA_DERIVE, "derive"),
    (CKA_EXTRACTABLE, "extractable"),
    (CKA_SENSITIVE, "sensitive"),
    (CKA_MODIFIABLE, "modifiable"),
    (CKA_DESTROYABLE, "destroyable"),
    (CKA_LOCAL, "local"),
    (CKA_ALWAYS_SENSITIVE, "always-sensitive"),
    (CKA_NEVER_EXTRACTABLE, "never-extractable"),
];

/// Flags PKCS#11 defines but only an admin (`trusted`) or nobody may set
/// through this library.
const MORE_FLAGS: [(CK_ATTRIBUTE_TYPE, &str); 2] =
    [(CKA_TRUSTED, "trusted"), (CKA_WRAP_WITH_TRUSTED, "wrap-with-trusted")];

/// Secret parts of private and secret keys.
const SECRETS: [CK_ATTRIBUTE_TYPE; 7] =
    [CKA_VALUE, CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT];

/// The key's class as PKCS#11 numbers it.
pub(crate) fn class(key: &KeyInfo) -> Option<CK_OBJECT_CLASS> {
    match key.attribute("class")? {
        "secret-key" => Some(CKO_SECRET_KEY),
        "public-key" => Some(CKO_PUBLIC_KEY),
        "private-key" => Some(CKO_PRIVATE_KEY),
        _ => None,
    }
}

fn class_name(class: CK_OBJECT_CLASS) -> Option<&'static str> {
    match class {
        CKO_SECRET_KEY => Some("secret-key"),
        CKO_PUBLIC_KEY => Some("public-key"),
        CKO_PRIVATE_KEY => Some("private-key"),
        _ => None,
    }
}

pub(crate) fn key_type(key: &KeyInfo) -> Option<CK_KEY_TYPE> {
    match key.attribute("key-type")? {
        "aes" => Some(CKK_AES),
        "des3" => Some(cryptoki_sys::CKK_DES3),
        "generic-secret" => Some(CKK_GENERIC_SECRET),
        "rsa" => Some(CKK_RSA),
        "ec" => Some(CKK_EC),
        "ec-edwards" => Some(CKK_EC_EDWARDS),
        _ => None,
    }
}

fn key_type_name(key_type: CK_KEY_TYPE) -> Option<&'static str> {
    match key_type {
        CKK_AES => Some("aes"),
        cryptoki_sys::CKK_DES3 => Some("des3"),
        CKK_GENERIC_SECRET => Some("generic-secret"),
        CKK_RSA => Some("rsa"),
        CKK_EC => Some("ec"),
        CKK_EC_EDWARDS => Some("ec-edwards"),
        _ => None,
    }
}

/// The signature family a key belongs to, if it signs.
pub(crate) fn family(key: &KeyInfo) -> Option<Family> {
    match key_type(key)? {
        CKK_EC => Some(Family::Ec),
        CKK_EC_EDWARDS => Some(Family::Ed25519),
        CKK_RSA => Some(Family::Rsa),
        CKK_AES => Some(Family::Aes),
        cryptoki_sys::CKK_DES3 => Some(Family::Des3),
        CKK_GENERIC_SECRET => Some(Family::Secret),
        _ => None,
    }
}

/// Whether `key` is of the family a mechanism needs (HMAC takes AES keys
/// as well as generic secrets, as the HSM does).
pub(crate) fn fits(key: &KeyInfo, need: Family) -> bool {
    match (family(key), need) {
        (Some(Family::Aes), Family::Secret) => true,
        (have, need) => have == Some(need),
    }
}

/// The length of the key's signatures where the key fixes it: r || s for
/// ECDSA, the modulus for RSA, 64 bytes for Ed25519.
pub(crate) fn signature_len(key: &KeyInfo) -> Option<usize> {
    match family(key)? {
        Family::Ec => Some(2 * curve(key.attribute("curve")?)?.field_bytes),
        Family::Rsa => key.attribute("modulus-size-bits")?.parse::<usize>().ok().map(|bits| bits.div_ceil(8)),
        Family::Ed25519 => Some(64),
        Family::Aes | Family::Des3 | Family::Secret => None,
    }
}

/// `0x0102...` (or empty) as bytes.
fn hex_value(text: &str) -> Option<Vec<u8>> {
    hex::decode(text.strip_prefix("0x").unwrap_or(text)).ok()
}

fn bool_byte(v: bool) -> CK_BBOOL {
    if v { CK_TRUE } else { CK_FALSE }
}

fn ulong(v: CK_ULONG) -> Value {
    Value::Bytes(v.to_ne_bytes().to_vec())
}

/// A CK_ULONG in the caller's (native) byte order.
pub(crate) fn read_ulong(bytes: &[u8]) -> Option<CK_ULONG> {
    Some(CK_ULONG::from_ne_bytes(bytes.try_into().ok()?))
}

fn read_bool(bytes: &[u8]) -> Option<bool> {
    match bytes {
        [b] => Some(*b != CK_FALSE),
        _ => None,
    }
}

/// A big-endian public exponent that fits in 64 bits.
fn read_exponent(bytes: &[u8]) -> Option<u64> {
    let digits = &bytes[bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len())..];
    (!digits.is_empty() && digits.len() <= 8).then(|| digits.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

/// What the tests of the submodules share: a key as the HSM shows it, and
/// a template attribute.
#[cfg(test)]
mod testing {
    use super::*;

    pub(super) fn key(pairs: &[(&str, &str)]) -> KeyInfo {
        KeyInfo {
            reference: "0x0000000000000001".into(),
            attributes: pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
            owner: "alice".into(),
            shared_users: Vec::new(),
            session: false,
            manage_quorum: 0,
            use_quorum: 0,
        }
    }

    pub(super) fn attr(kind: CK_ATTRIBUTE_TYPE, value: &[u8]) -> Attribute {
        Attribute { kind, value: value.to_vec() }
    }
}
