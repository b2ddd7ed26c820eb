//! Masked objects on one HSM: how a key (or a key's deletion) is copied
//! between the HSMs of a cluster without leaving them in the clear. The
//! cluster layer uses these to replicate token keys.

use hsm_proto::v1::{self as pb, masked_object_service_client::MaskedObjectServiceClient};

use crate::{ClientError, Session};

/// A masked object as an HSM gave it: opaque bytes that only an HSM of the
/// same cluster can open, and what they hold.
#[derive(Clone, PartialEq, Eq)]
pub struct MaskedObject {
    pub bytes: Vec<u8>,
    /// The key it carries.
    pub key_reference: String,
    /// The key's version: an HSM applies an object only when it is newer
    /// than what it holds.
    pub version: u64,
    /// A tombstone: the key was deleted at `version`.
    pub deleted: bool,
}

impl std::fmt::Debug for MaskedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskedObject")
            .field("key_reference", &self.key_reference)
            .field("version", &self.version)
            .field("deleted", &self.deleted)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .finish()
    }
}

impl Session {
    /// Extracts a token key (or its tombstone, once deleted) as a masked
    /// object. Crypto users may extract only keys they own.
    pub async fn extract_masked_key(&self, reference: &str) -> Result<MaskedObject, ClientError> {
        let request = self.request(pb::ExtractMaskedObjectRequest {
            object: Some(pb::extract_masked_object_request::Object::KeyReference(reference.to_owned())),
        })?;
        let reply = self.masked().extract_masked_object(request).await?.into_inner();
        let info = reply.info.ok_or_else(|| ClientError::Protocol("masked object without its description".into()))?;
        let key_reference = match info.object {
            Some(pb::masked_object_info::Object::KeyReference(r)) => r,
            _ => return Err(ClientError::Protocol(format!("asked for key {reference}, got another kind of object"))),
        };
        Ok(MaskedObject { bytes: reply.masked_object, key_reference, version: info.version, deleted: info.deleted })
    }

    /// Inserts a masked object. `Ok(false)` when this HSM already held the
    /// same or a newer version: nothing needed changing, which for
    /// replication is as good as `Ok(true)`.
    pub async fn insert_masked_object(&self, object: &MaskedObject) -> Result<bool, ClientError> {
        let request = self.request(pb::InsertMaskedObjectRequest { masked_object: object.bytes.clone() })?;
        Ok(self.masked().insert_masked_object(request).await?.into_inner().applied)
    }

    fn masked(&self) -> MaskedObjectServiceClient<tonic::transport::Channel> {
        MaskedObjectServiceClient::new(self.client.channel())
    }
}
