//! Templates: what a caller's template asks of a new key (or of a change),
//! read once and checked against what its purpose allows.

use cryptoki_sys::{
    CK_ATTRIBUTE_TYPE, CK_KEY_TYPE, CK_OBJECT_CLASS, CK_RV, CK_ULONG, CKA_ALWAYS_SENSITIVE, CKA_CHECK_VALUE, CKA_CLASS,
    CKA_COEFFICIENT, CKA_DECRYPT, CKA_DERIVE, CKA_DESTROYABLE, CKA_EC_PARAMS, CKA_EC_POINT, CKA_ENCRYPT, CKA_END_DATE,
    CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_EXTRACTABLE, CKA_ID, CKA_KEY_GEN_MECHANISM, CKA_KEY_TYPE, CKA_LABEL, CKA_LOCAL,
    CKA_MODIFIABLE, CKA_MODULUS, CKA_MODULUS_BITS, CKA_NEVER_EXTRACTABLE, CKA_PRIME_1, CKA_PRIME_2, CKA_PRIVATE,
    CKA_PRIVATE_EXPONENT, CKA_PUBLIC_EXPONENT, CKA_SENSITIVE, CKA_SIGN, CKA_START_DATE, CKA_SUBJECT, CKA_TOKEN,
    CKA_TRUSTED, CKA_UNWRAP, CKA_VALUE, CKA_VALUE_LEN, CKA_VERIFY, CKA_WRAP, CKA_WRAP_WITH_TRUSTED, CKO_PRIVATE_KEY,
    CKO_PUBLIC_KEY, CKO_SECRET_KEY, CKR_ATTRIBUTE_READ_ONLY, CKR_ATTRIBUTE_TYPE_INVALID, CKR_ATTRIBUTE_VALUE_INVALID,
    CKR_TEMPLATE_INCONSISTENT,
};
use hsm_client::KeyOptions;
use zeroize::Zeroizing;

use super::{
    Attribute, FLAGS, MORE_FLAGS,
    curves::{ED25519_NAME, ED25519_OID, curve_of_oid},
    read_bool, read_ulong,
};

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

/// `C_SetAttributeValue`'s template as (HSM name, value) changes.
pub(crate) fn changes(attributes: &[Attribute]) -> Result<Vec<(String, String)>, CK_RV> {
    Ok(template(None, attributes, Purpose::Modify)?.attributes)
}
