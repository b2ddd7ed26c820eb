//! The storage key and the AEAD that seals secrets in the store.
//!
//! The storage key is HKDF-SHA256 of the operator's master key (salted with a
//! fixed label, bound to the cluster id); sealed values are
//! `nonce (12) || AES-256-GCM ciphertext || tag (16)`, with their table and
//! row as associated data.

use std::fmt;

use ring::{aead, hkdf, rand::SecureRandom as _};
use zeroize::Zeroizing;

/// The operator's master key: 32 bytes, kept outside the data directory.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl MasterKey {
    /// A fresh random key (from the OS CSPRNG).
    pub fn generate() -> Result<Self, String> {
        let mut key = Zeroizing::new([0u8; 32]);
        ring::rand::SystemRandom::new().fill(key.as_mut()).map_err(|_| "the OS random source failed".to_owned())?;
        Ok(MasterKey(key))
    }

    /// 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, key.as_mut())
            .map_err(|_| "must be 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`".to_owned())?;
        Ok(MasterKey(key))
    }

    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_ref()))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Seals and opens values under the storage key.
pub(crate) struct Sealer {
    key: aead::LessSafeKey,
    random: ring::rand::SystemRandom,
}

/// A sealed value that does not open: wrong key, or damaged.
#[derive(Debug)]
pub(crate) struct Unsealable;

impl fmt::Display for Unsealable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sealed value does not open")
    }
}

impl Sealer {
    pub(crate) fn derive(master: &MasterKey, cluster_id: &str) -> Self {
        Self::derive_with(master, b"hsm-emulator storage key v1", cluster_id)
    }

    /// A key for another purpose (backups) from the same kind of secret.
    pub(crate) fn derive_with(master: &MasterKey, label: &[u8], context: &str) -> Self {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, label);
        let info = [context.as_bytes()];
        let prk = salt.extract(master.0.as_ref());
        let okm = prk.expand(&info, &aead::AES_256_GCM);
        // `expand` only fails when the requested length exceeds 255 hash
        // lengths; AES-256's 32 bytes never do, and `UnboundKey::from(Okm)`
        // cannot fail.
        let key = match okm {
            Ok(okm) => aead::UnboundKey::from(okm),
            Err(_) => unreachable!("HKDF-SHA256 can always expand 32 bytes"),
        };
        Sealer { key: aead::LessSafeKey::new(key), random: ring::rand::SystemRandom::new() }
    }

    pub(crate) fn seal(&self, plaintext: &[u8], slot: &str) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; aead::NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| "the OS random source failed".to_owned())?;
        let mut out = Vec::with_capacity(aead::NONCE_LEN + plaintext.len() + aead::MAX_TAG_LEN);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(slot.as_bytes()),
                &mut body,
            )
            .map_err(|_| "sealing failed".to_owned())?;
        out.extend_from_slice(&body);
        body.iter_mut().for_each(|b| *b = 0);
        Ok(out)
    }

    pub(crate) fn open(&self, sealed: &[u8], slot: &str) -> Result<Zeroizing<Vec<u8>>, Unsealable> {
        if sealed.len() < aead::NONCE_LEN + aead::MAX_TAG_LEN {
            return Err(Unsealable);
        }
        let (nonce, body) = sealed.split_at(aead::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealable)?;
        let mut body = Zeroizing::new(body.to_vec());
        let len =
            self.key.open_in_place(nonce, aead::Aad::from(slot.as_bytes()), &mut body).map_err(|_| Unsealable)?.len();
        body.truncate(len);
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_slot() {
        let k = MasterKey::generate().unwrap();
        let s = Sealer::derive(&k, "cluster-a");
        let sealed = s.seal(b"secret bytes", "keys/1").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(s.open(&sealed, "keys/1").unwrap().as_slice(), b"secret bytes");
        assert!(s.open(&sealed, "keys/2").is_err(), "bound to its slot");
        assert!(Sealer::derive(&k, "cluster-b").open(&sealed, "keys/1").is_err(), "bound to the cluster");
        assert!(Sealer::derive(&MasterKey::generate().unwrap(), "cluster-a").open(&sealed, "keys/1").is_err());
        assert!(s.open(&sealed[..10], "keys/1").is_err());
    }

    #[test]
    fn master_keys_are_64_hex_digits_and_never_print() {
        let k = MasterKey::generate().unwrap();
        let again = MasterKey::from_hex(&k.to_hex()).unwrap();
        assert_eq!(k.to_hex(), again.to_hex());
        assert!(MasterKey::from_hex("abcd").unwrap_err().contains("64 hex digits"));
        assert!(!format!("{k:?}").contains(&k.to_hex()[..8]));
    }
}
