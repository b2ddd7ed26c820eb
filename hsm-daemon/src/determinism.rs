//! Deterministic mode, for snapshot-style tests: every random choice an HSM
//! makes that a test can see (cluster and HSM ids, serial numbers, key
//! references, generated key material, session tokens) comes from a seed
//! instead of the operating system, so that two runs from fresh state give
//! the same results.
//!
//! Off by default. With `--deterministic SEED` (`HSM_DETERMINISTIC`,
//! `deterministic = SEED`, [`crate::DaemonConfig::deterministic`]) each
//! purpose gets its own generator ([`Stream`]), seeded from SHA-256 over the
//! seed, the purpose and the HSM's index, so that draws for one purpose never
//! shift another's: a login before a key generation does not change the key.
//!
//! What stays reproducible, and what does not:
//! - Key references are a per-HSM counter and need no randomness.
//! - An HSM's generated keys are reproducible when the same generations reach
//!   it in the same order. Its key stream is also seeded from the HSM's sync
//!   digest at start, so that a restarted HSM does not make again the keys
//!   it made before its restart.
//! - Session tokens, password salts and IVs share one stream per HSM and are
//!   reproducible when the same calls reach the HSM in the same order. In a
//!   cluster, background sync logs in to its peers as the appliance user at
//!   moments that vary from run to run, which shifts the peers' session
//!   tokens (never their keys); the stream also starts over on a restart.
//! - ECDSA and RSA-PSS signatures are not reproducible: ring draws their
//!   nonces and salts from the operating system. Store nonces, master keys
//!   and TLS keys are never seeded.
//! - `StdRng`'s algorithm may change between releases of `rand`: results are
//!   reproducible with one build, not promised across upgrades.

use rand::{SeedableRng, rngs::StdRng};

/// The warning the daemon logs (and `dev` prints) whenever the mode is on.
pub const WARNING: &str = "DETERMINISTIC MODE: keys and session tokens are predictable; never use outside tests";

/// What a generator is for; each purpose has its own stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// A new cluster's id, HSM ids and appliance password (`dev`, `init`).
    Cluster,
    /// An HSM's serial number and device id.
    Identity,
    /// An HSM's session tokens, password salts and IVs.
    Hsm,
    /// An HSM's generated key material.
    KeyMaterial,
    /// A seed file's generated keys and password salts, made once for the
    /// whole cluster.
    Seed,
}

impl Stream {
    fn tag(self) -> &'static [u8] {
        match self {
            Stream::Cluster => b"cluster",
            Stream::Identity => b"identity",
            Stream::Hsm => b"hsm",
            Stream::KeyMaterial => b"key-material",
            Stream::Seed => b"seed",
        }
    }
}

/// A generator for `stream` of HSM `index` (0 for cluster-wide streams):
/// from the operating system, or from `deterministic`'s seed.
pub fn rng(deterministic: Option<u64>, stream: Stream, index: u32) -> StdRng {
    rng_with(deterministic, stream, index, &[])
}

/// As [`rng`], with `context` mixed into the seed (an HSM's state at start).
pub fn rng_with(deterministic: Option<u64>, stream: Stream, index: u32, context: &[u8]) -> StdRng {
    let Some(seed) = deterministic else {
        return StdRng::from_os_rng();
    };
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [b"hsm-emulator deterministic v1".as_slice(), stream.tag(), context] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    ctx.update(&seed.to_be_bytes());
    ctx.update(&index.to_be_bytes());
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(ctx.finish().as_ref());
    StdRng::from_seed(bytes)
}

#[cfg(test)]
mod tests {
    use rand::RngCore as _;

    use super::*;

    fn draw(mut rng: StdRng) -> u64 {
        rng.next_u64()
    }

    #[test]
    fn one_seed_gives_one_stream_per_purpose_and_hsm() {
        let a = draw(rng(Some(7), Stream::KeyMaterial, 1));
        assert_eq!(a, draw(rng(Some(7), Stream::KeyMaterial, 1)), "same seed, purpose and HSM: same draws");
        assert_ne!(a, draw(rng(Some(8), Stream::KeyMaterial, 1)), "another seed");
        assert_ne!(a, draw(rng(Some(7), Stream::KeyMaterial, 2)), "another HSM");
        assert_ne!(a, draw(rng(Some(7), Stream::Hsm, 1)), "another purpose");
        assert_ne!(a, draw(rng_with(Some(7), Stream::KeyMaterial, 1, b"state")), "another state");
        assert_ne!(draw(rng(None, Stream::KeyMaterial, 1)), draw(rng(None, Stream::KeyMaterial, 1)), "off: random");
    }
}
