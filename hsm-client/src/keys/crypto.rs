//! Cryptography with a key: encryption, signatures; and digests and random
//! bytes, which need no key.

use hsm_proto::v1 as pb;

use super::{Cipher, HashAlgorithm, SignMechanism, hash};
use crate::{Approval, ClientError, Session};

/// `crypto sign`: the key, the mechanism and the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sign<'a, A> {
    pub key: &'a str,
    pub mechanism: SignMechanism,
    /// The hash the mechanism uses (`None`: the mechanism has none, as
    /// Ed25519).
    pub hash: Option<HashAlgorithm>,
    pub data: &'a [u8],
    /// `data` is already a digest made with `hash`.
    pub data_is_digest: bool,
    /// A key-usage approval, for a key with a use quorum value.
    pub approval: Option<&'a A>,
}

impl<'a, A> Sign<'a, A> {
    pub fn new(key: &'a str, mechanism: SignMechanism, data: &'a [u8]) -> Self {
        Sign { key, mechanism, hash: None, data, data_is_digest: false, approval: None }
    }

    pub fn hash(self, hash: HashAlgorithm) -> Self {
        Sign { hash: Some(hash), ..self }
    }

    /// The data is a digest made with the hash, not the message.
    pub fn digest(self) -> Self {
        Sign { data_is_digest: true, ..self }
    }

    pub fn approval(self, approval: &'a A) -> Self {
        Sign { approval: Some(approval), ..self }
    }

    /// This request as one HSM takes it, with that HSM's approval.
    pub(crate) fn with_approval<'b>(&'b self, approval: Option<&'b Approval>) -> Sign<'b, Approval> {
        let Sign { key, mechanism, hash, data, data_is_digest, approval: _ } = *self;
        Sign { key, mechanism, hash, data, data_is_digest, approval }
    }
}

/// `crypto verify`: a [`Sign`] request's fields and the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verify<'a> {
    pub key: &'a str,
    pub mechanism: SignMechanism,
    pub hash: Option<HashAlgorithm>,
    pub data: &'a [u8],
    pub data_is_digest: bool,
    pub signature: &'a [u8],
}

impl<'a> Verify<'a> {
    pub fn new(key: &'a str, mechanism: SignMechanism, data: &'a [u8], signature: &'a [u8]) -> Self {
        Verify { key, mechanism, hash: None, data, data_is_digest: false, signature }
    }

    pub fn hash(self, hash: HashAlgorithm) -> Self {
        Verify { hash: Some(hash), ..self }
    }

    /// The data is a digest made with the hash, not the message.
    pub fn digest(self) -> Self {
        Verify { data_is_digest: true, ..self }
    }
}

/// `crypto encrypt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encrypt<'a> {
    pub key: &'a str,
    pub cipher: Cipher,
    /// RSA-OAEP's hash.
    pub hash: Option<HashAlgorithm>,
    /// The IV of the ciphers that take one (AES-GCM's is made by the HSM:
    /// leave it empty).
    pub iv: &'a [u8],
    /// AES-GCM's additional authenticated data.
    pub aad: &'a [u8],
    pub data: &'a [u8],
}

impl<'a> Encrypt<'a> {
    pub fn new(key: &'a str, cipher: Cipher, data: &'a [u8]) -> Self {
        Encrypt { key, cipher, hash: None, iv: &[], aad: &[], data }
    }

    pub fn hash(self, hash: HashAlgorithm) -> Self {
        Encrypt { hash: Some(hash), ..self }
    }

    pub fn iv(self, iv: &'a [u8]) -> Self {
        Encrypt { iv, ..self }
    }

    pub fn aad(self, aad: &'a [u8]) -> Self {
        Encrypt { aad, ..self }
    }
}

/// `crypto decrypt`: what [`Encrypt`] took, and the ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decrypt<'a> {
    pub key: &'a str,
    pub cipher: Cipher,
    pub hash: Option<HashAlgorithm>,
    /// The IV encryption used (AES-GCM's: the one the HSM returned).
    pub iv: &'a [u8],
    pub aad: &'a [u8],
    pub ciphertext: &'a [u8],
}

impl<'a> Decrypt<'a> {
    pub fn new(key: &'a str, cipher: Cipher, ciphertext: &'a [u8]) -> Self {
        Decrypt { key, cipher, hash: None, iv: &[], aad: &[], ciphertext }
    }

    pub fn hash(self, hash: HashAlgorithm) -> Self {
        Decrypt { hash: Some(hash), ..self }
    }

    pub fn iv(self, iv: &'a [u8]) -> Self {
        Decrypt { iv, ..self }
    }

    pub fn aad(self, aad: &'a [u8]) -> Self {
        Decrypt { aad, ..self }
    }
}

impl Session {
    /// Encrypts; returns (iv, ciphertext). For AES-GCM the HSM makes the IV.
    pub async fn encrypt(&self, request: Encrypt<'_>) -> Result<(Vec<u8>, Vec<u8>), ClientError> {
        let request = self.request(pb::EncryptRequest {
            key_reference: request.key.to_owned(),
            cipher: request.cipher.into(),
            hash: hash(request.hash),
            iv: request.iv.to_vec(),
            aad: request.aad.to_vec(),
            data: request.data.to_vec(),
        })?;
        let reply = self.crypto().encrypt(request).await?.into_inner();
        Ok((reply.iv, reply.ciphertext))
    }

    pub async fn decrypt(&self, request: Decrypt<'_>) -> Result<Vec<u8>, ClientError> {
        let request = self.request(pb::DecryptRequest {
            key_reference: request.key.to_owned(),
            cipher: request.cipher.into(),
            hash: hash(request.hash),
            iv: request.iv.to_vec(),
            aad: request.aad.to_vec(),
            ciphertext: request.ciphertext.to_vec(),
        })?;
        Ok(self.crypto().decrypt(request).await?.into_inner().plaintext)
    }

    /// Signs: the signature.
    pub async fn sign(&self, request: Sign<'_, Approval>) -> Result<Vec<u8>, ClientError> {
        let request = self.request(pb::SignRequest {
            key_reference: request.key.to_owned(),
            mechanism: request.mechanism.into(),
            hash: hash(request.hash),
            data: request.data.to_vec(),
            data_is_digest: request.data_is_digest,
            approval: request.approval.map(Approval::to_proto),
        })?;
        Ok(self.crypto().sign(request).await?.into_inner().signature)
    }

    /// Whether the signature verifies.
    pub async fn verify(&self, request: Verify<'_>) -> Result<bool, ClientError> {
        let request = self.request(pb::VerifyRequest {
            key_reference: request.key.to_owned(),
            mechanism: request.mechanism.into(),
            hash: hash(request.hash),
            data: request.data.to_vec(),
            data_is_digest: request.data_is_digest,
            signature: request.signature.to_vec(),
        })?;
        Ok(self.crypto().verify(request).await?.into_inner().valid)
    }

    pub async fn digest(&self, hash_alg: HashAlgorithm, data: &[u8]) -> Result<Vec<u8>, ClientError> {
        let request = self.request(pb::DigestRequest { hash: hash_alg.into(), data: data.to_vec() })?;
        Ok(self.crypto().digest(request).await?.into_inner().digest)
    }

    /// `length` (1 to 16384) bytes from the HSM's random number generator.
    pub async fn generate_random(&self, length: u32) -> Result<Vec<u8>, ClientError> {
        let request = self.request(pb::GenerateRandomRequest { length })?;
        Ok(self.crypto().generate_random(request).await?.into_inner().random)
    }
}
