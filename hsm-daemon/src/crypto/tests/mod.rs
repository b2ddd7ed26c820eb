//! Tests of the mechanisms: Wycheproof vectors ([`wycheproof`]), cross-checks
//! against independent implementations and known answers ([`cross`]), the
//! validation rules ([`validation`]), and triple DES ([`des3`]).

mod cross;
mod des3;
mod validation;
mod wycheproof;

use std::sync::OnceLock;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::KeyMaterial;

/// A seeded generator, so failures reproduce.
fn test_rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// One 2048-bit RSA pair per test binary: generation is slow in debug builds.
fn rsa_2048() -> &'static (KeyMaterial, KeyMaterial) {
    static KEY: OnceLock<(KeyMaterial, KeyMaterial)> = OnceLock::new();
    KEY.get_or_init(|| KeyMaterial::generate_rsa(2048, 65537, &mut test_rng(2048)).expect("RSA-2048 generation"))
}

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("hex in a test vector")
}

/// A generator that hands out `bytes` and then zeros: it lets a test choose
/// the IV or seed an operation draws (e.g. to replay a known-answer vector
/// through `encrypt`, whose GCM IV is always generated).
struct FixedRng {
    bytes: Vec<u8>,
    used: usize,
}

impl FixedRng {
    fn new(bytes: &[u8]) -> Self {
        Self { bytes: bytes.to_vec(), used: 0 }
    }
}

impl rand::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for byte in dst {
            *byte = self.bytes.get(self.used).copied().unwrap_or(0);
            self.used += 1;
        }
    }
}

impl rand::CryptoRng for FixedRng {}

#[test]
fn key_material_is_send_sync_and_redacted() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<KeyMaterial>();
    let key = KeyMaterial::from_raw_secret(super::KeyKind::Aes, &[7u8; 16]).unwrap();
    assert_eq!(format!("{key:?}"), "KeyMaterial(<redacted>)");
}

/// Material from the store is parsed on first use; it must then behave as
/// the material it was stored from: the same facts, encodings and
/// signatures (deterministic ones compared, randomised ones cross-verified).
#[test]
fn stored_material_parses_on_first_use_and_matches_the_eager_form() {
    use super::{Curve, HashAlg, Input, SignMech};

    let mut rng = test_rng(8);
    let (ec_private, ec_public) = KeyMaterial::generate_ec(Curve::P256, &mut rng).unwrap();
    let (ed_private, _) = KeyMaterial::generate_ed25519(&mut rng).unwrap();
    let aes = KeyMaterial::generate_aes(256, &mut rng).unwrap();
    let (rsa_private, _) = rsa_2048();
    let eager_keys = [&ec_private, &ec_public, &ed_private, &aes, rsa_private];
    for eager in eager_keys {
        let lazy = KeyMaterial::stored(eager.kind(), eager.class(), eager.to_wrappable().unwrap());
        assert!(!lazy.is_parsed(), "nothing is parsed before use");
        assert_eq!((lazy.kind(), lazy.class()), (eager.kind(), eager.class()), "known without parsing");
        assert_eq!(*lazy.to_wrappable().unwrap(), *eager.to_wrappable().unwrap());
        assert!(!lazy.is_parsed(), "re-encoding for the store parses nothing");
        assert_eq!(lazy.check_value(), eager.check_value());
        assert!(lazy.is_parsed());
        assert_eq!(lazy.ec_point(), eager.ec_point());
        assert_eq!(lazy.modulus(), eager.modulus());
        assert_eq!(lazy.secret_len(), eager.secret_len());
        assert_eq!(lazy.public_pem().ok(), eager.public_pem().ok());
    }

    let data = Input::Data(b"parsed once");
    let sign = |key: &KeyMaterial, mech| super::sign(key, mech, data, &mut test_rng(1)).unwrap();
    let stored = |key: &KeyMaterial| KeyMaterial::stored(key.kind(), key.class(), key.to_wrappable().unwrap());
    // Deterministic: equal signatures.
    assert_eq!(sign(&stored(&ed_private), SignMech::Ed25519), sign(&ed_private, SignMech::Ed25519));
    assert_eq!(sign(&stored(&ed_private), SignMech::Ed25519ph), sign(&ed_private, SignMech::Ed25519ph));
    let pkcs1 = SignMech::RsaPkcs1(HashAlg::Sha256);
    assert_eq!(sign(&stored(rsa_private), pkcs1), sign(rsa_private, pkcs1));
    // ECDSA through ring is randomised: each verifies the other's.
    let ecdsa = SignMech::Ecdsa(HashAlg::Sha256);
    let lazy_private = stored(&ec_private);
    for _ in 0..2 {
        let signature = sign(&lazy_private, ecdsa);
        assert!(super::verify(&ec_public, ecdsa, data, &signature).unwrap());
    }
    let signature = sign(&ec_private, ecdsa);
    assert!(super::verify(&stored(&ec_public), ecdsa, data, &signature).unwrap());
}

#[test]
fn stored_material_that_does_not_parse_is_an_error_when_used() {
    use super::{HashAlg, Input, KeyClass, KeyKind, SignMech};
    let broken = KeyMaterial::stored(
        KeyKind::Ec(super::Curve::P256),
        KeyClass::Private,
        zeroize::Zeroizing::new(vec![0x30, 0x00]),
    );
    let mech = SignMech::Ecdsa(HashAlg::Sha256);
    assert!(super::sign(&broken, mech, Input::Data(b"x"), &mut test_rng(1)).is_err());
    assert_eq!(broken.check_value(), [0; 3]);
}
