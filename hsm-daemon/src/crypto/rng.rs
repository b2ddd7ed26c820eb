//! Generators for the RustCrypto crates, seeded from the caller's generator.
//!
//! The workspace's `rand` is 0.9 (`rand_core` 0.9). The RustCrypto 0.14 family
//! (rsa, p256, p384, p521, k256) takes `rand_core` 0.10 generators, and p224
//! 0.13 takes `rand_core` 0.6. Rather than implementing one version's traits
//! for another's generator, each operation draws a 32-byte seed from the
//! caller's generator and runs a ChaCha20 generator of the needed version:
//! the result is still a function of the caller's generator, so a seeded
//! caller makes reproducible keys.

use rand::CryptoRng;
use zeroize::Zeroizing;

/// A `rand_core` 0.10 generator for the RustCrypto 0.14 family.
pub(super) fn current(rng: &mut impl CryptoRng) -> rand_chacha::ChaCha20Rng {
    use rand_chacha::rand_core::SeedableRng;
    rand_chacha::ChaCha20Rng::from_seed(*seed(rng))
}

/// A `rand_core` 0.6 generator for p224 0.13.
pub(super) fn legacy(rng: &mut impl CryptoRng) -> rand_chacha_03::ChaCha20Rng {
    use rand_chacha_03::rand_core::SeedableRng;
    rand_chacha_03::ChaCha20Rng::from_seed(*seed(rng))
}

fn seed(rng: &mut impl CryptoRng) -> Zeroizing<[u8; 32]> {
    let mut seed = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(seed.as_mut());
    seed
}
