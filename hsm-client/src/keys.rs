//! Keys and cryptography for a logged-in crypto user (and key listing and
//! `trusted` for admins): methods on [`Session`].

use hsm_proto::v1::{self as pb, crypto_service_client::CryptoServiceClient, key_service_client::KeyServiceClient};
pub use hsm_proto::v1::{Cipher, HashAlgorithm, KeyClass, KeyType, SignMechanism, SymmetricKeyType, WrapMechanism};
use tonic::transport::Channel;

use crate::{Approval, ClientError, Session};

/// A key as the HSM shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// `0x` and 16 hex digits.
    pub reference: String,
    /// Every attribute the key has, by CloudHSM CLI name, in listing order.
    pub attributes: Vec<(String, String)>,
    pub owner: String,
    pub shared_users: Vec<String>,
    /// A session key: gone when its session ends.
    pub session: bool,
    /// Approvals its management and use need (0: none).
    pub manage_quorum: u32,
    pub use_quorum: u32,
}

impl KeyInfo {
    /// One attribute's value, if the key has it.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl From<pb::KeyInfo> for KeyInfo {
    fn from(k: pb::KeyInfo) -> Self {
        KeyInfo {
            reference: k.key_reference,
            attributes: k.attributes.into_iter().map(|a| (a.name, a.value)).collect(),
            owner: k.owner,
            shared_users: k.shared_users,
            session: k.session,
            manage_quorum: k.manage_key_quorum_value,
            use_quorum: k.use_key_quorum_value,
        }
    }
}

/// One page of `list_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    pub keys: Vec<KeyInfo>,
    /// Keys matched over all pages.
    pub total: u64,
    /// Pass to the next call; `None` on the last page.
    pub next_token: Option<String>,
}

/// Parameters of a new key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPairSpec {
    Rsa {
        modulus_size_bits: u32,
        public_exponent: u64,
    },
    /// A CloudHSM curve name: secp224r1, secp256r1 (prime256v1), secp384r1,
    /// secp521r1, secp256k1.
    Ec {
        curve: String,
    },
    Ed25519,
}

/// How a key is wrapped, beyond the mechanism: what the `_approved` wrap
/// and unwrap calls take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WrapParams {
    /// The RSA mechanisms' OAEP hash (MGF1 uses the same).
    pub hash: Option<HashAlgorithm>,
    /// AES-GCM's additional authenticated data (empty: none). Unwrapping
    /// needs the same bytes.
    pub aad: Vec<u8>,
    /// AES-GCM's tag length in bits: 64, 96, 104, 112, 120 or 128 (`None`:
    /// 128). Unwrapping needs the same length.
    pub tag_length_bits: Option<u32>,
}

impl WrapParams {
    /// Only a hash (or none): what the RSA mechanisms and AES key wrap take.
    pub fn hashed(hash: Option<HashAlgorithm>) -> Self {
        WrapParams { hash, ..WrapParams::default() }
    }
}

/// Options every key creation takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyOptions {
    /// Attributes to set, by CloudHSM CLI name.
    pub attributes: Vec<(String, String)>,
    /// A session key, gone when this session ends.
    pub session: bool,
    /// Crypto users who may use the (private or secret) key.
    pub share_with: Vec<String>,
    /// Approvals the key's management and use will need (0: none; for a
    /// pair, the private key's).
    pub manage_quorum: u32,
    pub use_quorum: u32,
}

fn attributes(pairs: &[(String, String)]) -> Vec<pb::Attribute> {
    pairs.iter().map(|(name, value)| pb::Attribute { name: name.clone(), value: value.clone() }).collect()
}

fn key(reply: pb::KeyResponse) -> Result<KeyInfo, ClientError> {
    reply.key.map(KeyInfo::from).ok_or_else(|| ClientError::Protocol("response without a key".into()))
}

fn hash(h: Option<HashAlgorithm>) -> i32 {
    h.unwrap_or(HashAlgorithm::Unspecified).into()
}

impl Session {
    fn keys(&self) -> KeyServiceClient<Channel> {
        KeyServiceClient::new(self.client.channel())
    }

    fn crypto(&self) -> CryptoServiceClient<Channel> {
        CryptoServiceClient::new(self.client.channel())
    }

    /// Generates an AES (16, 24 or 32 bytes), generic-secret (1 to 800
    /// bytes) or, on a non-FIPS cluster, triple DES (24 bytes) key.
    pub async fn generate_symmetric_key(
        &self,
        key_type: SymmetricKeyType,
        key_length_bytes: u32,
        options: &KeyOptions,
    ) -> Result<KeyInfo, ClientError> {
        let request = self.request(pb::GenerateSymmetricKeyRequest {
            key_type: key_type.into(),
            key_length_bytes,
            attributes: attributes(&options.attributes),
            session: options.session,
            share_with: options.share_with.clone(),
            manage_key_quorum_value: options.manage_quorum,
            use_key_quorum_value: options.use_quorum,
        })?;
        key(self.keys().generate_symmetric_key(request).await?.into_inner())
    }

    /// Generates a key pair; returns (public, private).
    pub async fn generate_key_pair(
        &self,
        spec: &KeyPairSpec,
        public: &KeyOptions,
        private: &KeyOptions,
    ) -> Result<(KeyInfo, KeyInfo), ClientError> {
        use pb::generate_key_pair_request::Parameters;
        let parameters = match spec {
            KeyPairSpec::Rsa { modulus_size_bits, public_exponent } => Parameters::Rsa(pb::RsaParameters {
                modulus_size_bits: *modulus_size_bits,
                public_exponent: *public_exponent,
            }),
            KeyPairSpec::Ec { curve } => Parameters::Ec(pb::EcParameters { curve: curve.clone() }),
            KeyPairSpec::Ed25519 => Parameters::Ed25519(pb::Ed25519Parameters {}),
        };
        let request = self.request(pb::GenerateKeyPairRequest {
            parameters: Some(parameters),
            public_attributes: attributes(&public.attributes),
            private_attributes: attributes(&private.attributes),
            session: private.session || public.session,
            share_with: private.share_with.clone(),
            manage_key_quorum_value: private.manage_quorum,
            use_key_quorum_value: private.use_quorum,
        })?;
        let reply = self.keys().generate_key_pair(request).await?.into_inner();
        match (reply.public_key, reply.private_key) {
            (Some(public), Some(private)) => Ok((public.into(), private.into())),
            _ => Err(ClientError::Protocol("response without both keys".into())),
        }
    }

    /// Imports a PEM private or public key.
    pub async fn import_pem(&self, pem: &str, options: &KeyOptions) -> Result<KeyInfo, ClientError> {
        let request = self.request(pb::ImportKeyRequest {
            material: Some(pb::import_key_request::Material::Pem(pem.to_owned())),
            secret_key_type: SymmetricKeyType::Unspecified.into(),
            attributes: attributes(&options.attributes),
            session: options.session,
            share_with: options.share_with.clone(),
            manage_key_quorum_value: options.manage_quorum,
            use_key_quorum_value: options.use_quorum,
        })?;
        key(self.keys().import_key(request).await?.into_inner())
    }

    /// Imports raw AES, generic-secret or (non-FIPS clusters) triple DES key
    /// bytes.
    pub async fn import_secret(
        &self,
        key_type: SymmetricKeyType,
        secret: &[u8],
        options: &KeyOptions,
    ) -> Result<KeyInfo, ClientError> {
        let request = self.request(pb::ImportKeyRequest {
            material: Some(pb::import_key_request::Material::Secret(secret.to_vec())),
            secret_key_type: key_type.into(),
            attributes: attributes(&options.attributes),
            session: options.session,
            share_with: options.share_with.clone(),
            manage_key_quorum_value: options.manage_quorum,
            use_key_quorum_value: options.use_quorum,
        })?;
        key(self.keys().import_key(request).await?.into_inner())
    }

    /// The public key (of a public or private key) as SPKI PEM.
    pub async fn export_public_key(&self, reference: &str) -> Result<String, ClientError> {
        let request = self.request(pb::ExportPublicKeyRequest { key_reference: reference.to_owned() })?;
        Ok(self.keys().export_public_key(request).await?.into_inner().pem)
    }

    pub async fn wrap_key(
        &self,
        wrapping_key: &str,
        key: &str,
        mechanism: WrapMechanism,
        hash_alg: Option<HashAlgorithm>,
    ) -> Result<Vec<u8>, ClientError> {
        self.wrap_key_approved(wrapping_key, key, mechanism, &WrapParams::hashed(hash_alg), None).await
    }

    /// [`Session::wrap_key`] with AES-GCM's parameters and a key-management
    /// approval, for a key to wrap that has a manage quorum value.
    pub async fn wrap_key_approved(
        &self,
        wrapping_key: &str,
        key: &str,
        mechanism: WrapMechanism,
        params: &WrapParams,
        approval: Option<&Approval>,
    ) -> Result<Vec<u8>, ClientError> {
        let request = self.request(pb::WrapKeyRequest {
            wrapping_key_reference: wrapping_key.to_owned(),
            key_reference: key.to_owned(),
            mechanism: mechanism.into(),
            hash: hash(params.hash),
            approval: approval.map(Approval::to_proto),
            aad: params.aad.clone(),
            tag_length_bits: params.tag_length_bits.unwrap_or_default(),
        })?;
        Ok(self.keys().wrap_key(request).await?.into_inner().wrapped_key)
    }

    /// Unwraps `wrapped` into a new key of `key_type` and `key_class`.
    /// `curve`, for EC keys, is the curve the key must be on; `None` takes
    /// the curve the wrapped key names.
    #[expect(clippy::too_many_arguments, reason = "mirrors the UnwrapKey request, one argument per field")]
    pub async fn unwrap_key(
        &self,
        unwrapping_key: &str,
        wrapped: &[u8],
        mechanism: WrapMechanism,
        hash_alg: Option<HashAlgorithm>,
        key_type: KeyType,
        key_class: KeyClass,
        curve: Option<&str>,
        options: &KeyOptions,
    ) -> Result<KeyInfo, ClientError> {
        self.unwrap_key_approved(
            unwrapping_key,
            wrapped,
            mechanism,
            &WrapParams::hashed(hash_alg),
            key_type,
            key_class,
            curve,
            options,
            None,
        )
        .await
    }

    /// [`Session::unwrap_key`] with AES-GCM's parameters and a
    /// key-management approval, for an unwrapping key that has a manage
    /// quorum value.
    #[expect(clippy::too_many_arguments, reason = "mirrors the UnwrapKey request, one argument per field")]
    pub async fn unwrap_key_approved(
        &self,
        unwrapping_key: &str,
        wrapped: &[u8],
        mechanism: WrapMechanism,
        params: &WrapParams,
        key_type: KeyType,
        key_class: KeyClass,
        curve: Option<&str>,
        options: &KeyOptions,
        approval: Option<&Approval>,
    ) -> Result<KeyInfo, ClientError> {
        let request = self.request(pb::UnwrapKeyRequest {
            unwrapping_key_reference: unwrapping_key.to_owned(),
            wrapped_key: wrapped.to_vec(),
            mechanism: mechanism.into(),
            hash: hash(params.hash),
            key_type: key_type.into(),
            key_class: key_class.into(),
            attributes: attributes(&options.attributes),
            session: options.session,
            curve: curve.unwrap_or_default().to_owned(),
            approval: approval.map(Approval::to_proto),
            share_with: options.share_with.clone(),
            manage_key_quorum_value: options.manage_quorum,
            use_key_quorum_value: options.use_quorum,
            aad: params.aad.clone(),
            tag_length_bits: params.tag_length_bits.unwrap_or_default(),
        })?;
        key(self.keys().unwrap_key(request).await?.into_inner())
    }

    pub async fn delete_key(&self, reference: &str) -> Result<KeyInfo, ClientError> {
        let request = self.request(pb::DeleteKeyRequest { key_reference: reference.to_owned() })?;
        key(self.keys().delete_key(request).await?.into_inner())
    }

    pub async fn share_key(&self, reference: &str, username: &str) -> Result<KeyInfo, ClientError> {
        self.share_key_approved(reference, username, true, None).await
    }

    pub async fn unshare_key(&self, reference: &str, username: &str) -> Result<KeyInfo, ClientError> {
        self.share_key_approved(reference, username, false, None).await
    }

    /// Shares (`share`) or unshares a key, with a key-management approval
    /// when the key has a manage quorum value.
    pub async fn share_key_approved(
        &self,
        reference: &str,
        username: &str,
        share: bool,
        approval: Option<&Approval>,
    ) -> Result<KeyInfo, ClientError> {
        let request = self.request(pb::ShareKeyRequest {
            key_reference: reference.to_owned(),
            username: username.to_owned(),
            approval: approval.map(Approval::to_proto),
        })?;
        let reply =
            if share { self.keys().share_key(request).await? } else { self.keys().unshare_key(request).await? };
        key(reply.into_inner())
    }

    pub async fn set_key_attribute(&self, reference: &str, name: &str, value: &str) -> Result<KeyInfo, ClientError> {
        self.set_key_attribute_approved(reference, name, value, None).await
    }

    /// Sets an attribute, with a key-management approval when the key has a
    /// manage quorum value.
    pub async fn set_key_attribute_approved(
        &self,
        reference: &str,
        name: &str,
        value: &str,
        approval: Option<&Approval>,
    ) -> Result<KeyInfo, ClientError> {
        let request = self.request(pb::SetKeyAttributeRequest {
            key_reference: reference.to_owned(),
            name: name.to_owned(),
            value: value.to_owned(),
            approval: approval.map(Approval::to_proto),
        })?;
        key(self.keys().set_key_attribute(request).await?.into_inner())
    }

    /// Lists keys. Filters are (`attr.NAME`, value) or (`key-reference`,
    /// `0x...`); `max_items` 0 means all.
    pub async fn list_keys(
        &self,
        filters: &[(String, String)],
        max_items: u32,
        starting_token: Option<&str>,
    ) -> Result<KeyPage, ClientError> {
        let request = self.request(pb::ListKeysRequest {
            filters: attributes(filters),
            max_items,
            starting_token: starting_token.unwrap_or_default().to_owned(),
        })?;
        let reply = self.keys().list_keys(request).await?.into_inner();
        Ok(KeyPage {
            keys: reply.keys.into_iter().map(KeyInfo::from).collect(),
            total: reply.total_key_count,
            next_token: (!reply.next_token.is_empty()).then_some(reply.next_token),
        })
    }

    /// Encrypts; returns (iv, ciphertext). For AES-GCM the HSM makes the IV.
    pub async fn encrypt(
        &self,
        reference: &str,
        cipher: Cipher,
        hash_alg: Option<HashAlgorithm>,
        iv: &[u8],
        aad: &[u8],
        data: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), ClientError> {
        let request = self.request(pb::EncryptRequest {
            key_reference: reference.to_owned(),
            cipher: cipher.into(),
            hash: hash(hash_alg),
            iv: iv.to_vec(),
            aad: aad.to_vec(),
            data: data.to_vec(),
        })?;
        let reply = self.crypto().encrypt(request).await?.into_inner();
        Ok((reply.iv, reply.ciphertext))
    }

    pub async fn decrypt(
        &self,
        reference: &str,
        cipher: Cipher,
        hash_alg: Option<HashAlgorithm>,
        iv: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        let request = self.request(pb::DecryptRequest {
            key_reference: reference.to_owned(),
            cipher: cipher.into(),
            hash: hash(hash_alg),
            iv: iv.to_vec(),
            aad: aad.to_vec(),
            ciphertext: ciphertext.to_vec(),
        })?;
        Ok(self.crypto().decrypt(request).await?.into_inner().plaintext)
    }

    /// Signs `data` (or, with `data_is_digest`, a digest made with the hash).
    pub async fn sign(
        &self,
        reference: &str,
        mechanism: SignMechanism,
        hash_alg: Option<HashAlgorithm>,
        data: &[u8],
        data_is_digest: bool,
    ) -> Result<Vec<u8>, ClientError> {
        self.sign_approved(reference, mechanism, hash_alg, data, data_is_digest, None).await
    }

    /// [`Session::sign`] with a key-usage approval, for a key with a use
    /// quorum value.
    pub async fn sign_approved(
        &self,
        reference: &str,
        mechanism: SignMechanism,
        hash_alg: Option<HashAlgorithm>,
        data: &[u8],
        data_is_digest: bool,
        approval: Option<&Approval>,
    ) -> Result<Vec<u8>, ClientError> {
        let request = self.request(pb::SignRequest {
            key_reference: reference.to_owned(),
            mechanism: mechanism.into(),
            hash: hash(hash_alg),
            data: data.to_vec(),
            data_is_digest,
            approval: approval.map(Approval::to_proto),
        })?;
        Ok(self.crypto().sign(request).await?.into_inner().signature)
    }

    /// Whether `signature` verifies.
    pub async fn verify(
        &self,
        reference: &str,
        mechanism: SignMechanism,
        hash_alg: Option<HashAlgorithm>,
        data: &[u8],
        data_is_digest: bool,
        signature: &[u8],
    ) -> Result<bool, ClientError> {
        let request = self.request(pb::VerifyRequest {
            key_reference: reference.to_owned(),
            mechanism: mechanism.into(),
            hash: hash(hash_alg),
            data: data.to_vec(),
            data_is_digest,
            signature: signature.to_vec(),
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
