//! The HSM calls that make keys, read off their templates: key pairs
//! (`C_GenerateKeyPair`), secret keys (`C_GenerateKey`), unwrapped keys
//! (`C_UnwrapKey`) and imported keys (`C_CreateObject`, as PEM or raw
//! secret bytes).

use cryptoki_sys::{
    CK_ATTRIBUTE_TYPE, CK_RV, CK_ULONG, CKA_COEFFICIENT, CKA_EC_POINT, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_MODULUS,
    CKA_PRIME_1, CKA_PRIME_2, CKA_PRIVATE_EXPONENT, CKA_VALUE, CKK_AES, CKK_EC, CKK_EC_EDWARDS, CKK_GENERIC_SECRET,
    CKK_RSA, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_SECRET_KEY, CKR_ATTRIBUTE_VALUE_INVALID, CKR_MECHANISM_INVALID,
    CKR_TEMPLATE_INCOMPLETE, CKR_TEMPLATE_INCONSISTENT,
};
use hsm_client::{
    KeyOptions, KeyPairSpec,
    keys::{KeyClass, KeyType, SymmetricKeyType},
};
use zeroize::Zeroizing;

use super::{
    Attribute,
    curves::curve,
    read_exponent,
    template::{Purpose, template},
};
use crate::{der, mechanism::Family};

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

/// Triple DES keys are 24 bytes (three DES keys).
const DES3_KEY_LEN: CK_ULONG = 24;

#[cfg(test)]
mod tests {
    use cryptoki_sys::{
        CK_FALSE, CK_TRUE, CKA_EC_PARAMS, CKA_LABEL, CKA_MODULUS_BITS, CKA_PUBLIC_EXPONENT, CKA_SIGN, CKA_TOKEN,
        CKA_VERIFY, CKR_ATTRIBUTE_TYPE_INVALID,
    };

    use super::*;
    use crate::object::{curves::CURVES, testing::attr};

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
