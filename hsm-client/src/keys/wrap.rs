//! Wrapping a key out of the HSM and unwrapping one into it.

use hsm_proto::v1 as pb;

use super::{HashAlgorithm, KeyClass, KeyInfo, KeyOptions, KeyType, NO_OPTIONS, WrapMechanism, attributes, hash, key};
use crate::{Approval, ClientError, Session};

/// How a key is wrapped, beyond the mechanism. Unwrapping needs the same
/// parameters as the wrapping did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WrapParams<'a> {
    /// The RSA mechanisms' OAEP hash (MGF1 uses the same).
    pub hash: Option<HashAlgorithm>,
    /// AES-GCM's additional authenticated data (empty: none).
    pub aad: &'a [u8],
    /// AES-GCM's tag length in bits: 64, 96, 104, 112, 120 or 128 (`None`:
    /// 128).
    pub tag_length_bits: Option<u32>,
}

impl WrapParams<'_> {
    /// Only a hash: what the RSA mechanisms take.
    pub fn hashed(hash: HashAlgorithm) -> Self {
        WrapParams { hash: Some(hash), ..WrapParams::default() }
    }
}

/// `key wrap`: which key to wrap, with which key and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapKey<'a, A> {
    pub wrapping_key: &'a str,
    /// The key to wrap.
    pub key: &'a str,
    pub mechanism: WrapMechanism,
    pub params: WrapParams<'a>,
    /// A key-management approval, for a key to wrap that has a manage
    /// quorum value.
    pub approval: Option<&'a A>,
}

impl<'a, A> WrapKey<'a, A> {
    pub fn new(wrapping_key: &'a str, key: &'a str, mechanism: WrapMechanism) -> Self {
        WrapKey { wrapping_key, key, mechanism, params: WrapParams::default(), approval: None }
    }

    pub fn params(self, params: WrapParams<'a>) -> Self {
        WrapKey { params, ..self }
    }

    pub fn approval(self, approval: &'a A) -> Self {
        WrapKey { approval: Some(approval), ..self }
    }

    /// This request as one HSM takes it, with that HSM's approval.
    pub(crate) fn with_approval<'b>(&'b self, approval: Option<&'b Approval>) -> WrapKey<'b, Approval> {
        let WrapKey { wrapping_key, key, mechanism, params, approval: _ } = *self;
        WrapKey { wrapping_key, key, mechanism, params, approval }
    }
}

/// `key unwrap`: wrapped bytes, the key that unwraps them, and what the new
/// key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnwrapKey<'a, A> {
    pub unwrapping_key: &'a str,
    pub wrapped: &'a [u8],
    pub mechanism: WrapMechanism,
    /// As at wrapping.
    pub params: WrapParams<'a>,
    pub key_type: KeyType,
    pub key_class: KeyClass,
    /// For an EC key, the curve it must be on; `None` takes the curve the
    /// wrapped key names.
    pub curve: Option<&'a str>,
    /// The new key's attributes, sharing and quorum values.
    pub options: &'a KeyOptions,
    /// A key-management approval, for an unwrapping key that has a manage
    /// quorum value.
    pub approval: Option<&'a A>,
}

impl<'a, A> UnwrapKey<'a, A> {
    pub fn new(
        unwrapping_key: &'a str,
        wrapped: &'a [u8],
        mechanism: WrapMechanism,
        key_type: KeyType,
        key_class: KeyClass,
    ) -> Self {
        UnwrapKey {
            unwrapping_key,
            wrapped,
            mechanism,
            params: WrapParams::default(),
            key_type,
            key_class,
            curve: None,
            options: &NO_OPTIONS,
            approval: None,
        }
    }

    pub fn params(self, params: WrapParams<'a>) -> Self {
        UnwrapKey { params, ..self }
    }

    pub fn curve(self, curve: &'a str) -> Self {
        UnwrapKey { curve: Some(curve), ..self }
    }

    pub fn options(self, options: &'a KeyOptions) -> Self {
        UnwrapKey { options, ..self }
    }

    pub fn approval(self, approval: &'a A) -> Self {
        UnwrapKey { approval: Some(approval), ..self }
    }

    /// This request as one HSM takes it, with that HSM's approval.
    pub(crate) fn with_approval<'b>(&'b self, approval: Option<&'b Approval>) -> UnwrapKey<'b, Approval> {
        let UnwrapKey { unwrapping_key, wrapped, mechanism, params, key_type, key_class, curve, options, approval: _ } =
            *self;
        UnwrapKey { unwrapping_key, wrapped, mechanism, params, key_type, key_class, curve, options, approval }
    }
}

impl Session {
    /// Wraps a key: the wrapped bytes.
    pub async fn wrap_key(&self, request: WrapKey<'_, Approval>) -> Result<Vec<u8>, ClientError> {
        let request = self.request(pb::WrapKeyRequest {
            wrapping_key_reference: request.wrapping_key.to_owned(),
            key_reference: request.key.to_owned(),
            mechanism: request.mechanism.into(),
            hash: hash(request.params.hash),
            approval: request.approval.map(Approval::to_proto),
            aad: request.params.aad.to_vec(),
            tag_length_bits: request.params.tag_length_bits.unwrap_or_default(),
        })?;
        Ok(self.keys().wrap_key(request).await?.into_inner().wrapped_key)
    }

    /// Unwraps into a new key.
    pub async fn unwrap_key(&self, request: UnwrapKey<'_, Approval>) -> Result<KeyInfo, ClientError> {
        let options = request.options;
        let request = self.request(pb::UnwrapKeyRequest {
            unwrapping_key_reference: request.unwrapping_key.to_owned(),
            wrapped_key: request.wrapped.to_vec(),
            mechanism: request.mechanism.into(),
            hash: hash(request.params.hash),
            key_type: request.key_type.into(),
            key_class: request.key_class.into(),
            attributes: attributes(&options.attributes),
            session: options.session,
            curve: request.curve.unwrap_or_default().to_owned(),
            approval: request.approval.map(Approval::to_proto),
            share_with: options.share_with.clone(),
            manage_key_quorum_value: options.manage_quorum,
            use_key_quorum_value: options.use_quorum,
            aad: request.params.aad.to_vec(),
            tag_length_bits: request.params.tag_length_bits.unwrap_or_default(),
        })?;
        key(self.keys().unwrap_key(request).await?.into_inner())
    }
}
