//! Key material in every form the HSM reads it, and quorum approvers'
//! public keys ([`key_import()`]).

use super::expect;
use crate::{
    crypto::{Curve, KeyClass, KeyKind, KeyMaterial},
    model::ApproverKey,
};

/// The kinds of key, for inputs that name one by a byte.
const KINDS: [KeyKind; 10] = [
    KeyKind::Aes,
    KeyKind::GenericSecret,
    KeyKind::Rsa,
    KeyKind::Ec(Curve::P224),
    KeyKind::Ec(Curve::P256),
    KeyKind::Ec(Curve::P384),
    KeyKind::Ec(Curve::P521),
    KeyKind::Ec(Curve::Secp256k1),
    KeyKind::Ed25519,
    KeyKind::Des3,
];
const CLASSES: [KeyClass; 3] = [KeyClass::Secret, KeyClass::Public, KeyClass::Private];

/// Parses key material. The first byte picks the form: PEM, PKCS#8 or
/// SEC1/PKCS#1 private DER, SPKI public DER, raw secret (of the kind the
/// second byte names), a stored encoding (kind and class from the next
/// bytes), or a quorum approver's SPKI.
///
/// Properties: an accepted key's stored encoding reads back as the same key
/// (same check value), and its public half exports as PEM that imports as
/// the same public key.
pub fn key_import(data: &[u8]) -> bool {
    let Some((&form, rest)) = data.split_first() else { return false };
    let parsed = match form % 6 {
        0 => KeyMaterial::from_pem(&String::from_utf8_lossy(rest)),
        1 => KeyMaterial::from_der_private(rest),
        2 => KeyMaterial::from_der_public(rest),
        3 => {
            let Some((&kind, bytes)) = rest.split_first() else { return false };
            KeyMaterial::from_raw_secret(KINDS[usize::from(kind) % KINDS.len()], bytes)
        }
        4 => {
            let [kind, class, bytes @ ..] = rest else { return false };
            let kind = KINDS[usize::from(*kind) % KINDS.len()];
            KeyMaterial::from_wrappable(kind, CLASSES[usize::from(*class) % CLASSES.len()], bytes)
        }
        _ => {
            let Ok(key) = ApproverKey::from_spki("public_key", rest) else { return false };
            assert!(!key.verifies(b"message", rest), "a quorum key verified its own encoding as a signature");
            return true;
        }
    };
    let Ok(key) = parsed else { return false };
    let stored = expect(key.to_wrappable(), "an accepted key's stored encoding");
    let again = expect(KeyMaterial::from_wrappable(key.kind(), key.class(), &stored), "re-reading a stored key");
    assert_eq!(key.check_value(), again.check_value(), "a key read back from its encoding differs");
    assert_eq!(key.ec_point(), again.ec_point());
    assert_eq!(key.modulus(), again.modulus());
    if let Some(public) = key.public_half() {
        let pem = expect(public.public_pem(), "exporting an accepted key's public half");
        let imported = expect(KeyMaterial::from_pem(&pem), "importing an exported public key");
        assert_eq!(imported.ec_point(), public.ec_point(), "an exported EC public key imports as another");
        assert_eq!(imported.modulus(), public.modulus(), "an exported RSA public key imports as another");
        assert_eq!(imported.kind(), key.kind());
    }
    true
}
