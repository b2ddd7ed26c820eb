//! Reading keys: the value of each attribute `C_GetAttributeValue` asks
//! for, and search templates as the HSM's `key list` filters.

use cryptoki_sys::{
    CK_ATTRIBUTE_TYPE, CK_FALSE, CK_UNAVAILABLE_INFORMATION, CKA_ALWAYS_AUTHENTICATE, CKA_ALWAYS_SENSITIVE,
    CKA_CHECK_VALUE, CKA_CLASS, CKA_EC_PARAMS, CKA_EC_POINT, CKA_END_DATE, CKA_ID, CKA_KEY_GEN_MECHANISM, CKA_KEY_TYPE,
    CKA_LABEL, CKA_MODULUS, CKA_MODULUS_BITS, CKA_NEVER_EXTRACTABLE, CKA_PUBLIC_EXPONENT, CKA_SENSITIVE,
    CKA_START_DATE, CKA_SUBJECT, CKA_TOKEN, CKA_VALUE_LEN, CKK_AES, CKK_EC, CKK_EC_EDWARDS, CKK_GENERIC_SECRET,
    CKK_RSA, CKM_AES_KEY_GEN, CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EC_KEY_PAIR_GEN, CKM_GENERIC_SECRET_KEY_GEN,
    CKM_RSA_PKCS_KEY_PAIR_GEN, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_SECRET_KEY,
};
use hsm_client::KeyInfo;

use super::{
    Attribute, FLAGS, MORE_FLAGS, SECRETS, Value, bool_byte, class, class_name,
    curves::{ED25519_OID, curve},
    hex_value, key_type, key_type_name, read_bool, read_ulong, ulong,
};
use crate::der;

/// The value of one attribute of `key`.
pub(crate) fn value(key: &KeyInfo, kind: CK_ATTRIBUTE_TYPE) -> Value {
    let class = class(key);
    let attr = |name: &str| key.attribute(name);
    let bytes = |name: &str| attr(name).and_then(hex_value).map_or(Value::Invalid, Value::Bytes);
    // The HSM shows `key-length-bytes` of every key, and the sensitivity
    // flags (false) of public keys, as the CloudHSM CLI does; PKCS #11
    // gives CKA_VALUE_LEN to secret keys only, and those flags to no
    // public key.
    let absent = match kind {
        CKA_VALUE_LEN => class != Some(CKO_SECRET_KEY),
        CKA_SENSITIVE | CKA_ALWAYS_SENSITIVE | CKA_NEVER_EXTRACTABLE => class == Some(CKO_PUBLIC_KEY),
        _ => false,
    };
    if absent {
        return Value::Invalid;
    }
    if let Some((_, name)) = FLAGS.iter().chain(&MORE_FLAGS).find(|(k, _)| *k == kind) {
        return match attr(name) {
            Some(v) => Value::Bytes(vec![bool_byte(v == "true")]),
            None if kind == CKA_TOKEN => Value::Bytes(vec![bool_byte(!key.session)]),
            None => Value::Invalid,
        };
    }
    match kind {
        CKA_CLASS => class.map_or(Value::Invalid, ulong),
        CKA_KEY_TYPE => key_type(key).map_or(Value::Invalid, ulong),
        CKA_LABEL => Value::Bytes(attr("label").unwrap_or_default().as_bytes().to_vec()),
        CKA_ID => match attr("id") {
            None | Some("") => Value::Bytes(Vec::new()),
            Some(id) => hex_value(id).map_or(Value::Invalid, Value::Bytes),
        },
        CKA_CHECK_VALUE => bytes("check-value"),
        CKA_MODULUS => bytes("modulus"),
        CKA_PUBLIC_EXPONENT => bytes("public-exponent"),
        CKA_MODULUS_BITS => attr("modulus-size-bits").and_then(|v| v.parse().ok()).map_or(Value::Invalid, ulong),
        CKA_VALUE_LEN => attr("key-length-bytes").and_then(|v| v.parse().ok()).map_or(Value::Invalid, ulong),
        CKA_EC_PARAMS => match key_type(key) {
            Some(CKK_EC) => attr("curve").and_then(curve).map_or(Value::Invalid, |c| Value::Bytes(c.oid_der.to_vec())),
            Some(CKK_EC_EDWARDS) => Value::Bytes(ED25519_OID.to_vec()),
            _ => Value::Invalid,
        },
        CKA_EC_POINT => match attr("ec-point").and_then(hex_value) {
            Some(point) if class != Some(CKO_SECRET_KEY) => Value::Bytes(der::octet_string(&point)),
            _ => Value::Invalid,
        },
        CKA_KEY_GEN_MECHANISM => match (attr("local"), key_type(key)) {
            (Some("true"), Some(CKK_RSA)) => ulong(CKM_RSA_PKCS_KEY_PAIR_GEN),
            (Some("true"), Some(CKK_EC)) => ulong(CKM_EC_KEY_PAIR_GEN),
            (Some("true"), Some(CKK_EC_EDWARDS)) => ulong(CKM_EC_EDWARDS_KEY_PAIR_GEN),
            (Some("true"), Some(CKK_AES)) => ulong(CKM_AES_KEY_GEN),
            (Some("true"), Some(CKK_GENERIC_SECRET)) => ulong(CKM_GENERIC_SECRET_KEY_GEN),
            (Some("true"), Some(cryptoki_sys::CKK_DES3)) => ulong(cryptoki_sys::CKM_DES3_KEY_GEN),
            _ => ulong(CK_UNAVAILABLE_INFORMATION),
        },
        CKA_ALWAYS_AUTHENTICATE if class == Some(CKO_PRIVATE_KEY) => Value::Bytes(vec![CK_FALSE]),
        CKA_SUBJECT if class != Some(CKO_SECRET_KEY) => Value::Bytes(Vec::new()),
        CKA_START_DATE | CKA_END_DATE => Value::Bytes(Vec::new()),
        _ if SECRETS.contains(&kind) && class != Some(CKO_PUBLIC_KEY) => Value::Sensitive,
        _ => Value::Invalid,
    }
}

/// A search template as `key list` filters, and what the HSM cannot be
/// asked and is checked here ([`matches`]) instead. `None`: nothing can
/// match (a class or key type the HSM does not hold).
pub(crate) fn filters(template: &[Attribute]) -> Option<Vec<(String, String)>> {
    let mut filters = Vec::new();
    for a in template {
        let (name, value) = match a.kind {
            CKA_CLASS => ("class", class_name(read_ulong(&a.value)?)?.to_owned()),
            CKA_KEY_TYPE => ("key-type", key_type_name(read_ulong(&a.value)?)?.to_owned()),
            // The HSM compares labels without case; `matches` compares them
            // exactly, as PKCS#11 does.
            CKA_LABEL => ("label", String::from_utf8(a.value.clone()).ok()?),
            CKA_ID if !a.value.is_empty() => ("id", format!("0x{}", hex::encode(&a.value))),
            kind => match FLAGS.iter().find(|(k, _)| *k == kind) {
                Some((_, name)) => (*name, read_bool(&a.value)?.to_string()),
                None => continue,
            },
        };
        filters.push((format!("attr.{name}"), value));
    }
    Some(filters)
}

/// Whether `key` has every attribute of `template`, byte for byte.
pub(crate) fn matches(key: &KeyInfo, template: &[Attribute]) -> bool {
    template.iter().all(|a| value(key, a.kind) == Value::Bytes(a.value.clone()))
}

#[cfg(test)]
mod tests {
    use cryptoki_sys::{CK_TRUE, CK_ULONG, CKA_PRIVATE_EXPONENT, CKA_SIGN, CKA_VALUE, CKA_VERIFY};

    use super::*;
    use crate::object::{
        curves::CURVES,
        signature_len,
        testing::{attr, key},
    };
    #[test]
    fn an_ec_public_key_reads_as_pkcs11_says() {
        let k = key(&[
            ("key-type", "ec"),
            ("label", "p256"),
            ("id", "0x0102"),
            ("class", "public-key"),
            ("verify", "true"),
            ("ec-point", "0x04aabb"),
            ("curve", "secp256r1"),
        ]);
        assert_eq!(value(&k, CKA_CLASS), Value::Bytes(CKO_PUBLIC_KEY.to_ne_bytes().to_vec()));
        assert_eq!(value(&k, CKA_LABEL), Value::Bytes(b"p256".to_vec()));
        assert_eq!(value(&k, CKA_ID), Value::Bytes(vec![1, 2]));
        assert_eq!(value(&k, CKA_VERIFY), Value::Bytes(vec![CK_TRUE]));
        assert_eq!(value(&k, CKA_TOKEN), Value::Bytes(vec![CK_TRUE]), "from the session flag");
        assert_eq!(value(&k, CKA_EC_POINT), Value::Bytes(vec![0x04, 3, 0x04, 0xaa, 0xbb]));
        assert_eq!(value(&k, CKA_EC_PARAMS), Value::Bytes(CURVES[1].oid_der.to_vec()));
        assert_eq!(value(&k, CKA_MODULUS), Value::Invalid);
        assert_eq!(value(&k, CKA_VALUE), Value::Invalid, "a public key has nothing secret");
        assert_eq!(value(&k, 0x7fff_0000), Value::Invalid);
        assert_eq!(signature_len(&k), Some(64));
    }

    #[test]
    fn secrets_of_private_keys_are_sensitive() {
        let k = key(&[("key-type", "rsa"), ("class", "private-key"), ("modulus-size-bits", "2048")]);
        assert_eq!(value(&k, CKA_PRIVATE_EXPONENT), Value::Sensitive);
        assert_eq!(value(&k, CKA_MODULUS_BITS), Value::Bytes(CK_ULONG::to_ne_bytes(2048).to_vec()));
        assert_eq!(signature_len(&k), Some(256));
    }

    #[test]
    fn long_points_use_long_form_lengths() {
        let der = der::octet_string(&[4; 133]);
        assert_eq!(&der[..3], &[0x04, 0x81, 133]);
        assert_eq!(der.len(), 136);
    }

    #[test]
    fn search_templates_become_filters() {
        let template = [
            attr(CKA_CLASS, &CKO_PRIVATE_KEY.to_ne_bytes()),
            attr(CKA_LABEL, b"p256"),
            attr(CKA_ID, &[0xab]),
            attr(CKA_SIGN, &[CK_TRUE]),
            attr(CKA_TOKEN, &[CK_TRUE]),
        ];
        let got = filters(&template).unwrap();
        let want: Vec<(String, String)> = [
            ("attr.class", "private-key"),
            ("attr.label", "p256"),
            ("attr.id", "0xab"),
            ("attr.sign", "true"),
            ("attr.token", "true"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(got, want);
        assert_eq!(filters(&[attr(CKA_CLASS, &7u64.to_ne_bytes())]), None, "certificates: none here");
    }

    #[test]
    fn labels_match_exactly() {
        let k = key(&[("label", "P256"), ("class", "private-key")]);
        assert!(!matches(&k, &[attr(CKA_LABEL, b"p256")]));
        assert!(matches(&k, &[attr(CKA_LABEL, b"P256")]));
    }
}
