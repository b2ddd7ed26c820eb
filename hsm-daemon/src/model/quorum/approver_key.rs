//! Registered RSA public keys: a quorum approver's, or a user's MFA key.

use std::{fmt, sync::Arc};

use crate::model::ModelError;

/// A registered RSA public key (quorum approver or MFA), parsed once.
#[derive(Clone, PartialEq, Eq)]
pub struct ApproverKey(Arc<ParsedKey>);

#[derive(PartialEq, Eq)]
struct ParsedKey {
    /// SubjectPublicKeyInfo DER: what the store and masked objects keep.
    spki: Vec<u8>,
    /// PKCS#1 `RSAPublicKey` DER: what ring verifies against.
    pkcs1: Vec<u8>,
}

impl ApproverKey {
    /// Parses an RSA public key (SubjectPublicKeyInfo DER) of 2048 to 4096 bits.
    pub fn from_spki(field: &'static str, der: &[u8]) -> Result<Self, ModelError> {
        use rsa::{pkcs1::EncodeRsaPublicKey as _, pkcs8::DecodePublicKey as _, traits::PublicKeyParts as _};
        let invalid = |rule: String| ModelError::InvalidArgument { field, rule };
        let key = rsa::PublicKey::from_public_key_der(der)
            .map_err(|e| invalid(format!("must be an RSA public key (SubjectPublicKeyInfo DER): {e}")))?;
        let bits = key.n().bit_width();
        if !(2048..=4096).contains(&bits) {
            return Err(invalid(format!("an RSA key of {bits} bits; registered keys are 2048 to 4096 bits")));
        }
        let pkcs1 = key.to_pkcs1_der().map_err(|e| invalid(format!("RSA public key: {e}")))?.into_vec();
        Ok(ApproverKey(Arc::new(ParsedKey { spki: der.to_vec(), pkcs1 })))
    }

    pub fn spki(&self) -> &[u8] {
        &self.0.spki
    }

    /// Whether `signature` is this key's RSA PKCS#1 v1.5 SHA-256 signature
    /// of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &self.0.pkcs1)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Debug for ApproverKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApproverKey(RSA)")
    }
}
