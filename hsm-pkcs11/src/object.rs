//! Objects: PKCS#11 attributes read off the HSM's keys, search templates
//! turned into `key list` filters, and key-pair templates turned into the
//! HSM's key attributes.
//!
//! The HSM names attributes as the CloudHSM CLI does (`label`, `key-type`,
//! `ec-point`...) and shows values as text (`0x...` for bytes); this module
//! is the one place that translates between the two.

use cryptoki_sys::{
    CK_ATTRIBUTE_TYPE, CK_BBOOL, CK_FALSE, CK_KEY_TYPE, CK_OBJECT_CLASS, CK_RV, CK_TRUE, CK_ULONG,
    CK_UNAVAILABLE_INFORMATION, CKA_ALWAYS_AUTHENTICATE, CKA_ALWAYS_SENSITIVE, CKA_CHECK_VALUE, CKA_CLASS,
    CKA_COEFFICIENT, CKA_DECRYPT, CKA_DERIVE, CKA_DESTROYABLE, CKA_EC_PARAMS, CKA_EC_POINT, CKA_ENCRYPT, CKA_END_DATE,
    CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_EXTRACTABLE, CKA_ID, CKA_KEY_GEN_MECHANISM, CKA_KEY_TYPE, CKA_LABEL, CKA_LOCAL,
    CKA_MODIFIABLE, CKA_MODULUS, CKA_MODULUS_BITS, CKA_NEVER_EXTRACTABLE, CKA_PRIME_1, CKA_PRIME_2, CKA_PRIVATE,
    CKA_PRIVATE_EXPONENT, CKA_PUBLIC_EXPONENT, CKA_SENSITIVE, CKA_SIGN, CKA_START_DATE, CKA_SUBJECT, CKA_TOKEN,
    CKA_TRUSTED, CKA_UNWRAP, CKA_VALUE, CKA_VALUE_LEN, CKA_VERIFY, CKA_WRAP, CKA_WRAP_WITH_TRUSTED, CKK_AES, CKK_EC,
    CKK_EC_EDWARDS, CKK_GENERIC_SECRET, CKK_RSA, CKM_AES_KEY_GEN, CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EC_KEY_PAIR_GEN,
    CKM_GENERIC_SECRET_KEY_GEN, CKM_RSA_PKCS_KEY_PAIR_GEN, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_SECRET_KEY,
    CKR_ATTRIBUTE_READ_ONLY, CKR_ATTRIBUTE_TYPE_INVALID, CKR_ATTRIBUTE_VALUE_INVALID, CKR_MECHANISM_INVALID,
    CKR_TEMPLATE_INCOMPLETE, CKR_TEMPLATE_INCONSISTENT,
};
use hsm_client::{
    KeyInfo, KeyOptions, KeyPairSpec,
    keys::{KeyClass, KeyType, SymmetricKeyType},
};
use zeroize::Zeroizing;

use crate::{der, mechanism::Family};

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

/// What a template asks of a new key (or of `C_SetAttributeValue`), read
/// off it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Template {
    /// The HSM attributes to set, by CloudHSM CLI name.
    pub(crate) attributes: Vec<(String, String)>,
    pub(crate) class: Option<CK_OBJECT_CLASS>,
    pub(crate) key_type: Option<CK_KEY_TYPE>,
    /// CKA_TOKEN, if given.
    pub(crate) token: Option<bool>,
    pub(crate) curve: Option<&'static str>,
    pub(crate) ed25519: bool,
    pub(crate) bits: Option<CK_ULONG>,
    pub(crate) exponent: Option<Vec<u8>>,
    pub(crate) value_len: Option<CK_ULONG>,
    /// Key material (`C_CreateObject` only): CKA_VALUE, CKA_EC_POINT, the
    /// RSA numbers, by attribute type.
    pub(crate) material: Vec<(CK_ATTRIBUTE_TYPE, Zeroizing<Vec<u8>>)>,
}

impl Template {
    pub(crate) fn material(&self, kind: CK_ATTRIBUTE_TYPE) -> Option<&[u8]> {
        self.material.iter().find(|(k, _)| *k == kind).map(|(_, v)| v.as_slice())
    }

    /// The options a creation call takes; `token` is the default of
    /// CKA_TOKEN.
    pub(crate) fn options(&self, token: bool) -> KeyOptions {
        KeyOptions {
            attributes: self.attributes.clone(),
            session: !self.token.unwrap_or(token),
            ..KeyOptions::default()
        }
    }
}

/// What a template is for: which attributes it may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `C_GenerateKey`, `C_GenerateKeyPair`, `C_UnwrapKey`: no key material.
    Generate,
    /// `C_CreateObject`: key material too.
    Create,
    /// `C_SetAttributeValue`: only what the HSM lets change.
    Modify,
}

/// Reads a template for an object of `class` (or of the class it names).
pub(crate) fn template(
    class: Option<CK_OBJECT_CLASS>,
    attributes: &[Attribute],
    purpose: Purpose,
) -> Result<Template, CK_RV> {
    let mut out = Template { class, ..Template::default() };
    let named = attributes.iter().find(|a| a.kind == CKA_CLASS).map(|a| read_ulong(&a.value));
    match (class, named) {
        (_, Some(None)) => return Err(CKR_ATTRIBUTE_VALUE_INVALID),
        (Some(want), Some(Some(got))) if want != got && purpose != Purpose::Modify => {
            return Err(CKR_TEMPLATE_INCONSISTENT);
        }
        (None, Some(Some(got))) => out.class = Some(got),
        _ => {}
    }
    let class = out.class;
    let public = class == Some(CKO_PUBLIC_KEY);
    let private = class == Some(CKO_PRIVATE_KEY);
    let secret = class == Some(CKO_SECRET_KEY);
    let create = purpose == Purpose::Create;
    let modify = purpose == Purpose::Modify;
    for a in attributes {
        let flag = || read_bool(&a.value).ok_or(CKR_ATTRIBUTE_VALUE_INVALID);
        let mut set = |name: &str, value: String| out.attributes.push((name.to_owned(), value));
        match a.kind {
            CKA_CLASS | CKA_KEY_TYPE | CKA_TOKEN if modify => return Err(CKR_ATTRIBUTE_READ_ONLY),
            CKA_CLASS => {}
            CKA_KEY_TYPE => out.key_type = Some(read_ulong(&a.value).ok_or(CKR_ATTRIBUTE_VALUE_INVALID)?),
            CKA_TOKEN => out.token = Some(flag()?),
            CKA_LABEL => set("label", String::from_utf8(a.value.clone()).map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?),
            CKA_ID if a.value.is_empty() && !modify => {}
            CKA_ID => set("id", format!("0x{}", hex::encode(&a.value))),
            CKA_PRIVATE | CKA_MODIFIABLE | CKA_DESTROYABLE | CKA_DERIVE => {
                set(flag_name(a.kind), flag()?.to_string());
            }
            CKA_VERIFY | CKA_ENCRYPT | CKA_WRAP if !private => set(flag_name(a.kind), flag()?.to_string()),
            CKA_SIGN | CKA_DECRYPT | CKA_UNWRAP | CKA_EXTRACTABLE | CKA_SENSITIVE | CKA_WRAP_WITH_TRUSTED
                if !public =>
            {
                set(flag_name(a.kind), flag()?.to_string());
            }
            CKA_VERIFY
            | CKA_ENCRYPT
            | CKA_WRAP
            | CKA_SIGN
            | CKA_DECRYPT
            | CKA_UNWRAP
            | CKA_EXTRACTABLE
            | CKA_SENSITIVE
            | CKA_WRAP_WITH_TRUSTED => return Err(CKR_TEMPLATE_INCONSISTENT),
            CKA_SUBJECT | CKA_START_DATE | CKA_END_DATE if a.value.is_empty() => {}
            CKA_EC_PARAMS if !modify => {
                if a.value == ED25519_OID || a.value == ED25519_NAME {
                    out.ed25519 = true;
                } else {
                    out.curve = Some(curve_of_oid(&a.value).map(|c| c.name).ok_or(CKR_ATTRIBUTE_VALUE_INVALID)?);
                }
            }
            CKA_MODULUS_BITS if !modify && !create => {
                out.bits = Some(read_ulong(&a.value).ok_or(CKR_ATTRIBUTE_VALUE_INVALID)?);
            }
            CKA_PUBLIC_EXPONENT if !modify => out.exponent = Some(a.value.clone()),
            CKA_VALUE_LEN if secret && !modify && !create => {
                out.value_len = Some(read_ulong(&a.value).ok_or(CKR_ATTRIBUTE_VALUE_INVALID)?);
            }
            CKA_VALUE | CKA_EC_POINT | CKA_MODULUS | CKA_PRIVATE_EXPONENT | CKA_PRIME_1 | CKA_PRIME_2
            | CKA_EXPONENT_1 | CKA_EXPONENT_2 | CKA_COEFFICIENT
                if create =>
            {
                out.material.push((a.kind, Zeroizing::new(a.value.clone())));
            }
            CKA_TRUSTED
            | CKA_LOCAL
            | CKA_ALWAYS_SENSITIVE
            | CKA_NEVER_EXTRACTABLE
            | CKA_KEY_GEN_MECHANISM
            | CKA_MODULUS
            | CKA_MODULUS_BITS
            | CKA_PUBLIC_EXPONENT
            | CKA_EC_PARAMS
            | CKA_EC_POINT
            | CKA_CHECK_VALUE
            | CKA_VALUE_LEN
            | CKA_VALUE
            | CKA_PRIVATE_EXPONENT
            | CKA_PRIME_1
            | CKA_PRIME_2
            | CKA_EXPONENT_1
            | CKA_EXPONENT_2
            | CKA_COEFFICIENT => return Err(CKR_ATTRIBUTE_READ_ONLY),
            _ => return Err(CKR_ATTRIBUTE_TYPE_INVALID),
        }
    }
    Ok(out)
}

fn flag_name(kind: CK_ATTRIBUTE_TYPE) -> &'static str {
    FLAGS.iter().chain(&MORE_FLAGS).find(|(k, _)| *k == kind).map_or("", |(_, name)| name)
}

/// A key-pair request read off `C_GenerateKeyPair`'s templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PairRequest {
    pub(crate) spec: KeyPairSpec,
    pub(crate) public: KeyOptions,
    pub(crate) private: KeyOptions,
    /// Token objects (CKA_TOKEN true, the default): they need a read/write
    /// session.
    pub(crate) token: bool,
}

/// Reads the two templates of `C_GenerateKeyPair` for `family`.
pub(crate) fn pair_request(family: Family, public: &[Attribute], private: &[Attribute]) -> Result<PairRequest, CK_RV> {
    let want_type = match family {
        Family::Ec => CKK_EC,
        Family::Ed25519 => CKK_EC_EDWARDS,
        Family::Rsa => CKK_RSA,
        Family::Aes | Family::Des3 | Family::Secret => return Err(CKR_MECHANISM_INVALID),
    };
    let public = template(Some(CKO_PUBLIC_KEY), public, Purpose::Generate)?;
    let private = template(Some(CKO_PRIVATE_KEY), private, Purpose::Generate)?;
    if [public.key_type, private.key_type].iter().any(|t| t.is_some_and(|t| t != want_type)) {
        return Err(CKR_TEMPLATE_INCONSISTENT);
    }
    if (private.curve.is_some() && private.curve != public.curve)
        || (private.ed25519 && family != Family::Ed25519)
        || private.bits.is_some()
        || private.exponent.is_some()
    {
        return Err(CKR_TEMPLATE_INCONSISTENT);
    }
    // CKA_TOKEN defaults to false, as PKCS#11 and CloudHSM's attribute
    // table have it: with neither template naming it, both keys are
    // session keys. The HSM makes the two keys of a pair with one lifetime,
    // so one template naming it decides for both, and two that disagree
    // are inconsistent.
    let token = match (public.token, private.token) {
        (Some(a), Some(b)) if a != b => return Err(CKR_TEMPLATE_INCONSISTENT),
        (a, b) => a.or(b).unwrap_or(false),
    };
    let rsa_params = public.bits.is_some() || public.exponent.is_some();
    let spec = match family {
        Family::Ec if rsa_params || public.ed25519 => return Err(CKR_TEMPLATE_INCONSISTENT),
        Family::Ec => KeyPairSpec::Ec { curve: public.curve.ok_or(CKR_TEMPLATE_INCOMPLETE)?.to_owned() },
        Family::Ed25519 if rsa_params || public.curve.is_some() => return Err(CKR_TEMPLATE_INCONSISTENT),
        // CKA_EC_PARAMS may be left out: Ed25519 is the only Edwards curve.
        Family::Ed25519 => KeyPairSpec::Ed25519,
        _ => {
            if public.curve.is_some() || public.ed25519 {
                return Err(CKR_TEMPLATE_INCONSISTENT);
            }
            let bits = public.bits.ok_or(CKR_TEMPLATE_INCOMPLETE)?;
            let exponent = match &public.exponent {
                Some(e) => read_exponent(e).ok_or(CKR_ATTRIBUTE_VALUE_INVALID)?,
                None => 65_537,
            };
            KeyPairSpec::Rsa {
                modulus_size_bits: u32::try_from(bits).map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?,
                public_exponent: exponent,
            }
        }
    };
    Ok(PairRequest { spec, public: public.options(token), private: private.options(token), token })
}

/// A secret-key request read off `C_GenerateKey`'s template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretRequest {
    pub(crate) key_type: SymmetricKeyType,
    pub(crate) length: u32,
    pub(crate) options: KeyOptions,
    pub(crate) token: bool,
}

/// Reads `C_GenerateKey`'s template; secret keys default to session
/// objects, as PKCS#11 has CKA_TOKEN default to false.
pub(crate) fn secret_request(key_type: SymmetricKeyType, attributes: &[Attribute]) -> Result<SecretRequest, CK_RV> {
    let t = template(Some(CKO_SECRET_KEY), attributes, Purpose::Generate)?;
    let want = match key_type {
        SymmetricKeyType::Aes => CKK_AES,
        SymmetricKeyType::Des3 => cryptoki_sys::CKK_DES3,
        _ => CKK_GENERIC_SECRET,
    };
    if t.key_type.is_some_and(|k| k != want)
        || t.curve.is_some()
        || t.ed25519
        || t.exponent.is_some()
        || t.bits.is_some()
    {
        return Err(CKR_TEMPLATE_INCONSISTENT);
    }
    // CKM_DES3_KEY_GEN makes 24-byte keys and takes no CKA_VALUE_LEN.
    let value_len = match (key_type, t.value_len) {
        (SymmetricKeyType::Des3, None | Some(DES3_KEY_LEN)) => DES3_KEY_LEN,
        (SymmetricKeyType::Des3, Some(_)) => return Err(CKR_ATTRIBUTE_VALUE_INVALID),
        (_, value_len) => value_len.ok_or(CKR_TEMPLATE_INCOMPLETE)?,
    };
    let length = u32::try_from(value_len).map_err(|_| CKR_ATTRIBUTE_VALUE_INVALID)?;
    let token = t.token.unwrap_or(false);
    Ok(SecretRequest { key_type, length, options: t.options(false), token })
}

/// A new key's description read off `C_UnwrapKey`'s template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnwrapRequest {
    pub(crate) class: KeyClass,
    pub(crate) key_type: KeyType,
    pub(crate) curve: Option<&'static str>,
    pub(crate) options: KeyOptions,
    pub(crate) token: bool,
}

/// Reads `C_UnwrapKey`'s template: the class, key type and (EC) curve it
/// names, and the new key's options.
pub(crate) fn unwrap_request(attributes: &[Attribute]) -> Result<UnwrapRequest, CK_RV> {
    let t = template(None, attributes, Purpose::Generate)?;
    let class = match t.class.ok_or(CKR_TEMPLATE_INCOMPLETE)? {
        CKO_SECRET_KEY => KeyClass::Secret,
        CKO_PRIVATE_KEY => KeyClass::Private,
        _ => return Err(CKR_TEMPLATE_INCONSISTENT),
    };
    let key_type = match (t.key_type.ok_or(CKR_TEMPLATE_INCOMPLETE)?, class) {
        (CKK_AES, KeyClass::Secret) => KeyType::Aes,
        (CKK_GENERIC_SECRET, KeyClass::Secret) => KeyType::GenericSecret,
        (cryptoki_sys::CKK_DES3, KeyClass::Secret) => KeyType::Des3,
        (CKK_RSA, KeyClass::Private) => KeyType::Rsa,
        (CKK_EC, KeyClass::Private) => KeyType::Ec,
        (CKK_EC_EDWARDS, KeyClass::Private) => KeyType::Ed25519,
        _ => return Err(CKR_TEMPLATE_INCONSISTENT),
    };
    if key_type == KeyType::Ec && t.curve.is_none() {
        return Err(CKR_TEMPLATE_INCOMPLETE);
    }
    Ok(UnwrapRequest { class, key_type, curve: t.curve, options: t.options(false), token: t.token.unwrap_or(false) })
}

/// What `C_CreateObject` imports.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Material {
    Secret(SymmetricKeyType, Zeroizing<Vec<u8>>),
    /// A key as PEM (SPKI, PKCS#1, SEC1 or PKCS#8).
    Pem(Zeroizing<String>),
}

/// A key to import read off `C_CreateObject`'s template.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CreateRequest {
    pub(crate) material: Material,
    pub(crate) options: KeyOptions,
    pub(crate) token: bool,
}

/// Reads `C_CreateObject`'s template.
pub(crate) fn create_request(attributes: &[Attribute]) -> Result<CreateRequest, CK_RV> {
    let t = template(None, attributes, Purpose::Create)?;
    let need = |kind| t.material(kind).ok_or(CKR_TEMPLATE_INCOMPLETE);
    let class = t.class.ok_or(CKR_TEMPLATE_INCOMPLETE)?;
    let key_type = t.key_type.ok_or(CKR_TEMPLATE_INCOMPLETE)?;
    let allowed: &[CK_ATTRIBUTE_TYPE] = match (class, key_type) {
        (CKO_SECRET_KEY, CKK_AES | CKK_GENERIC_SECRET | cryptoki_sys::CKK_DES3)
        | (CKO_PRIVATE_KEY, CKK_EC | CKK_EC_EDWARDS) => &[CKA_VALUE],
        (CKO_PUBLIC_KEY, CKK_EC | CKK_EC_EDWARDS) => &[CKA_EC_POINT],
        (CKO_PUBLIC_KEY, CKK_RSA) => &[CKA_MODULUS],
        (CKO_PRIVATE_KEY, CKK_RSA) => &[
            CKA_MODULUS,
            CKA_PRIVATE_EXPONENT,
            CKA_PRIME_1,
            CKA_PRIME_2,
            CKA_EXPONENT_1,
            CKA_EXPONENT_2,
            CKA_COEFFICIENT,
        ],
        (CKO_SECRET_KEY | CKO_PUBLIC_KEY | CKO_PRIVATE_KEY, _) => return Err(CKR_TEMPLATE_INCONSISTENT),
        _ => return Err(CKR_ATTRIBUTE_VALUE_INVALID),
    };
    if t.material.iter().any(|(k, _)| !allowed.contains(k)) {
        return Err(CKR_TEMPLATE_INCONSISTENT);
    }
    // The named curve's OID; `None` for Ed25519.
    let curve_oid = || -> Result<Option<&'static [u8]>, CK_RV> {
        if key_type == CKK_EC_EDWARDS {
            return Ok(None);
        }
        t.curve.and_then(curve).map(|c| Some(c.oid_der)).ok_or(CKR_TEMPLATE_INCOMPLETE)
    };
    let pem = |label, der: Zeroizing<Vec<u8>>| Material::Pem(der::pem(label, &der));
    let material = match (class, key_type) {
        (CKO_SECRET_KEY, kind) => {
            let kind = match kind {
                CKK_AES => SymmetricKeyType::Aes,
                cryptoki_sys::CKK_DES3 => SymmetricKeyType::Des3,
                _ => SymmetricKeyType::GenericSecret,
            };
            Material::Secret(kind, Zeroizing::new(need(CKA_VALUE)?.to_vec()))
        }
        (CKO_PUBLIC_KEY, CKK_RSA) => {
            let exponent = t.exponent.as_deref().ok_or(CKR_TEMPLATE_INCOMPLETE)?;
            pem("RSA PUBLIC KEY", der::rsa_key(&[need(CKA_MODULUS)?, exponent]))
        }
        (CKO_PUBLIC_KEY, _) => {
            let point = need(CKA_EC_POINT)?;
            let point = der::octet_string_content(point).unwrap_or(point);
            pem("PUBLIC KEY", der::spki(curve_oid()?, point))
        }
        (CKO_PRIVATE_KEY, CKK_RSA) => {
            let exponent = t.exponent.as_deref().ok_or(CKR_TEMPLATE_INCOMPLETE)?;
            let numbers = [
                &[0u8][..],
                need(CKA_MODULUS)?,
                exponent,
                need(CKA_PRIVATE_EXPONENT)?,
                need(CKA_PRIME_1)?,
                need(CKA_PRIME_2)?,
                need(CKA_EXPONENT_1)?,
                need(CKA_EXPONENT_2)?,
                need(CKA_COEFFICIENT)?,
            ];
            pem("RSA PRIVATE KEY", der::rsa_key(&numbers))
        }
        (_, _) => match curve_oid()? {
            Some(oid) => pem("EC PRIVATE KEY", der::ec_private(oid, need(CKA_VALUE)?)),
            None => pem("PRIVATE KEY", der::ed25519_private(need(CKA_VALUE)?)),
        },
    };
    Ok(CreateRequest { material, options: t.options(false), token: t.token.unwrap_or(false) })
}

/// `C_SetAttributeValue`'s template as (HSM name, value) changes.
pub(crate) fn changes(attributes: &[Attribute]) -> Result<Vec<(String, String)>, CK_RV> {
    Ok(template(None, attributes, Purpose::Modify)?.attributes)
}

/// CKA_EC_PARAMS of Ed25519: the OID 1.3.101.112, or the printable string
/// `edwards25519` that PKCS#11 v3 also allows.
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// Triple DES keys are 24 bytes (three DES keys).
const DES3_KEY_LEN: CK_ULONG = 24;
const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";

/// A curve the HSM offers.
#[derive(Debug, Clone, Copy)]
struct Curve {
    /// CloudHSM's name.
    name: &'static str,
    /// The named curve's OID, DER-encoded: CKA_EC_PARAMS.
    oid_der: &'static [u8],
    field_bytes: usize,
}

const CURVES: [Curve; 5] = [
    Curve { name: "secp224r1", oid_der: &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x21], field_bytes: 28 },
    Curve {
        name: "secp256r1",
        oid_der: &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
        field_bytes: 32,
    },
    Curve { name: "secp384r1", oid_der: &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22], field_bytes: 48 },
    Curve { name: "secp521r1", oid_der: &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23], field_bytes: 66 },
    Curve { name: "secp256k1", oid_der: &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a], field_bytes: 32 },
];

fn curve(name: &str) -> Option<Curve> {
    CURVES.into_iter().find(|c| c.name == name)
}

fn curve_of_oid(der: &[u8]) -> Option<Curve> {
    CURVES.into_iter().find(|c| c.oid_der == der)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pairs: &[(&str, &str)]) -> KeyInfo {
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

    fn attr(kind: CK_ATTRIBUTE_TYPE, value: &[u8]) -> Attribute {
        Attribute { kind, value: value.to_vec() }
    }

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

    #[test]
    fn pair_templates() {
        let public = [attr(CKA_EC_PARAMS, CURVES[1].oid_der), attr(CKA_VERIFY, &[CK_TRUE]), attr(CKA_LABEL, b"k")];
        let private = [attr(CKA_SIGN, &[CK_TRUE]), attr(CKA_TOKEN, &[CK_FALSE])];
        let request = pair_request(Family::Ec, &public, &private).unwrap();
        assert_eq!(request.spec, KeyPairSpec::Ec { curve: "secp256r1".into() });
        assert!(!request.token && request.public.session && request.private.session);
        assert_eq!(request.private.attributes, vec![("sign".to_owned(), "true".to_owned())]);

        // Neither template names CKA_TOKEN: session keys.
        let request = pair_request(Family::Ec, &public[..1], &[]).unwrap();
        assert!(!request.token && request.public.session && request.private.session);
        // One names it: both keys follow.
        let request = pair_request(Family::Ec, &public[..1], &[attr(CKA_TOKEN, &[CK_TRUE])]).unwrap();
        assert!(request.token && !request.public.session && !request.private.session);
        assert_eq!(
            pair_request(Family::Ec, &[public[0].clone(), attr(CKA_TOKEN, &[CK_TRUE])], &private),
            Err(CKR_TEMPLATE_INCONSISTENT)
        );

        assert_eq!(pair_request(Family::Ec, &[], &[]), Err(CKR_TEMPLATE_INCOMPLETE));
        assert_eq!(pair_request(Family::Ec, &[attr(CKA_EC_PARAMS, b"junk")], &[]), Err(CKR_ATTRIBUTE_VALUE_INVALID));
        assert_eq!(
            pair_request(Family::Ec, &[attr(CKA_EC_PARAMS, CURVES[1].oid_der), attr(CKA_SIGN, &[1])], &[]),
            Err(CKR_TEMPLATE_INCONSISTENT)
        );
        let rsa = [attr(CKA_MODULUS_BITS, &2048u64.to_ne_bytes()), attr(CKA_PUBLIC_EXPONENT, &[1, 0, 1])];
        assert_eq!(
            pair_request(Family::Rsa, &rsa, &[]).unwrap().spec,
            KeyPairSpec::Rsa { modulus_size_bits: 2048, public_exponent: 65_537 }
        );
        assert_eq!(pair_request(Family::Rsa, &rsa, &[attr(0x7fff_0000, &[])]), Err(CKR_ATTRIBUTE_TYPE_INVALID));
    }
}
