//! Tests of the mechanisms: Wycheproof vectors ([`wycheproof`]), cross-checks
//! against independent implementations and known answers ([`cross`]), and
//! the validation rules ([`validation`]).

mod cross;
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
