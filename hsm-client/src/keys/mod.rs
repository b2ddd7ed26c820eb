//! Keys and cryptography for a logged-in crypto user (and key listing and
//! `trusted` for admins): methods on [`Session`], and the requests that
//! [`crate::ClusterSession`] takes too.
//!
//! # Layout
//! - This file: keys as the HSM shows them, creation options, and key
//!   management (generate, import, export, delete, share, set attributes,
//!   list).
//! - `wrap`: wrapping and unwrapping keys ([`WrapKey`], [`UnwrapKey`] and the
//!   [`WrapParams`] they share).
//! - `crypto`: encryption, signatures, digests and random bytes ([`Sign`],
//!   [`Verify`], [`Encrypt`], [`Decrypt`]).

mod crypto;
mod wrap;

use hsm_proto::v1::{self as pb, crypto_service_client::CryptoServiceClient, key_service_client::KeyServiceClient};
pub use hsm_proto::v1::{Cipher, HashAlgorithm, KeyClass, KeyType, SignMechanism, SymmetricKeyType, WrapMechanism};
use tonic::transport::Channel;

pub use self::{
    crypto::{Decrypt, Encrypt, Sign, Verify},
    wrap::{UnwrapKey, WrapKey, WrapParams},
};
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

/// No attributes, a token key, shared with nobody, no quorum: the options of
/// a request that is given none (a static, so that requests can borrow it).
static NO_OPTIONS: KeyOptions =
    KeyOptions { attributes: Vec::new(), session: false, share_with: Vec::new(), manage_quorum: 0, use_quorum: 0 };

/// `key share` and `key unshare`: which key, and with whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareKey<'a, A> {
    pub key: &'a str,
    /// A crypto user.
    pub username: &'a str,
    /// A key-management approval, for a key with a manage quorum value.
    pub approval: Option<&'a A>,
}

impl<'a, A> ShareKey<'a, A> {
    pub fn new(key: &'a str, username: &'a str) -> Self {
        ShareKey { key, username, approval: None }
    }

    pub fn approval(self, approval: &'a A) -> Self {
        ShareKey { approval: Some(approval), ..self }
    }

    /// This request as one HSM takes it, with that HSM's approval.
    pub(crate) fn with_approval<'b>(&'b self, approval: Option<&'b Approval>) -> ShareKey<'b, Approval> {
        ShareKey { key: self.key, username: self.username, approval }
    }
}

/// `key set-attribute`: one attribute of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetKeyAttribute<'a, A> {
    pub key: &'a str,
    /// The CloudHSM CLI's attribute name.
    pub name: &'a str,
    pub value: &'a str,
    /// A key-management approval, for a key with a manage quorum value.
    pub approval: Option<&'a A>,
}

impl<'a, A> SetKeyAttribute<'a, A> {
    pub fn new(key: &'a str, name: &'a str, value: &'a str) -> Self {
        SetKeyAttribute { key, name, value, approval: None }
    }

    pub fn approval(self, approval: &'a A) -> Self {
        SetKeyAttribute { approval: Some(approval), ..self }
    }

    /// This request as one HSM takes it, with that HSM's approval.
    pub(crate) fn with_approval<'b>(&'b self, approval: Option<&'b Approval>) -> SetKeyAttribute<'b, Approval> {
        SetKeyAttribute { key: self.key, name: self.name, value: self.value, approval }
    }
}

/// `key list`: which keys, and which page. The default lists every key on
/// one page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListKeys<'a> {
    /// (`attr.NAME`, value) or (`key-reference`, `0x...`); a key must match
    /// all of them.
    pub filters: &'a [(String, String)],
    /// Keys per page; 0 means all.
    pub max_items: u32,
    /// The `next_token` of the page before.
    pub starting_token: Option<&'a str>,
}

impl<'a> ListKeys<'a> {
    pub fn filters(self, filters: &'a [(String, String)]) -> Self {
        ListKeys { filters, ..self }
    }

    pub fn max_items(self, max_items: u32) -> Self {
        ListKeys { max_items, ..self }
    }

    pub fn starting_token(self, token: &'a str) -> Self {
        ListKeys { starting_token: Some(token), ..self }
    }
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
        let material = pb::import_key_request::Material::Pem(pem.to_owned());
        self.import(material, SymmetricKeyType::Unspecified, options).await
    }

    /// Imports raw AES, generic-secret or (non-FIPS clusters) triple DES key
    /// bytes.
    pub async fn import_secret(
        &self,
        key_type: SymmetricKeyType,
        secret: &[u8],
        options: &KeyOptions,
    ) -> Result<KeyInfo, ClientError> {
        self.import(pb::import_key_request::Material::Secret(secret.to_vec()), key_type, options).await
    }

    async fn import(
        &self,
        material: pb::import_key_request::Material,
        secret_key_type: SymmetricKeyType,
        options: &KeyOptions,
    ) -> Result<KeyInfo, ClientError> {
        let request = self.request(pb::ImportKeyRequest {
            material: Some(material),
            secret_key_type: secret_key_type.into(),
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

    pub async fn delete_key(&self, reference: &str) -> Result<KeyInfo, ClientError> {
        let request = self.request(pb::DeleteKeyRequest { key_reference: reference.to_owned() })?;
        key(self.keys().delete_key(request).await?.into_inner())
    }

    /// Lets a crypto user use a key the session's user owns.
    pub async fn share_key(&self, request: ShareKey<'_, Approval>) -> Result<KeyInfo, ClientError> {
        let request = self.request(share_request(request))?;
        key(self.keys().share_key(request).await?.into_inner())
    }

    /// Takes back what [`Session::share_key`] gave.
    pub async fn unshare_key(&self, request: ShareKey<'_, Approval>) -> Result<KeyInfo, ClientError> {
        let request = self.request(share_request(request))?;
        key(self.keys().unshare_key(request).await?.into_inner())
    }

    pub async fn set_key_attribute(&self, request: SetKeyAttribute<'_, Approval>) -> Result<KeyInfo, ClientError> {
        let request = self.request(pb::SetKeyAttributeRequest {
            key_reference: request.key.to_owned(),
            name: request.name.to_owned(),
            value: request.value.to_owned(),
            approval: request.approval.map(Approval::to_proto),
        })?;
        key(self.keys().set_key_attribute(request).await?.into_inner())
    }

    /// Lists keys: one page, in the HSM's order (by reference).
    pub async fn list_keys(&self, request: ListKeys<'_>) -> Result<KeyPage, ClientError> {
        let request = self.request(pb::ListKeysRequest {
            filters: attributes(request.filters),
            max_items: request.max_items,
            starting_token: request.starting_token.unwrap_or_default().to_owned(),
        })?;
        let reply = self.keys().list_keys(request).await?.into_inner();
        Ok(KeyPage {
            keys: reply.keys.into_iter().map(KeyInfo::from).collect(),
            total: reply.total_key_count,
            next_token: (!reply.next_token.is_empty()).then_some(reply.next_token),
        })
    }
}

fn share_request(request: ShareKey<'_, Approval>) -> pb::ShareKeyRequest {
    pb::ShareKeyRequest {
        key_reference: request.key.to_owned(),
        username: request.username.to_owned(),
        approval: request.approval.map(Approval::to_proto),
    }
}
