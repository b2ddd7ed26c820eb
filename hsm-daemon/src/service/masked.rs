//! `hsm.v1.MaskedObjectService`: extracting and inserting masked objects.
//! Sealing and opening run outside the model's lock; the object rules
//! (owners, who may copy users, which copy is newer) are the model's.

use std::sync::Arc;

use hsm_proto::v1::{
    self as pb, ExtractMaskedObjectRequest, ExtractMaskedObjectResponse, InsertMaskedObjectRequest,
    InsertMaskedObjectResponse, extract_masked_object_request, masked_object_info,
    masked_object_service_server::MaskedObjectService,
};
use tonic::{Request, Response, Status};

use super::{HsmState, audit, caller};
use crate::{
    model::{KeyRef, MaskTarget, Masked, ModelError, Replica, Username},
    store::Masker,
};

#[derive(Debug)]
pub(super) struct MaskedApi {
    state: Arc<HsmState>,
}

impl MaskedApi {
    pub(super) fn new(state: Arc<HsmState>) -> Self {
        MaskedApi { state }
    }
}

#[tonic::async_trait]
impl MaskedObjectService for MaskedApi {
    async fn extract_masked_object(
        &self,
        request: Request<ExtractMaskedObjectRequest>,
    ) -> Result<Response<ExtractMaskedObjectResponse>, Status> {
        let caller = caller(&request)?;
        let target = match &request.get_ref().object {
            Some(extract_masked_object_request::Object::KeyReference(r)) => {
                MaskTarget::Key(KeyRef::parse("key_reference", r)?)
            }
            Some(extract_masked_object_request::Object::Username(u)) => {
                MaskTarget::User(Username::parse("username", u)?)
            }
            None => {
                return Err(ModelError::InvalidArgument {
                    field: "object",
                    rule: "name a key_reference or a username".into(),
                }
                .into());
            }
        };
        match &target {
            MaskTarget::Key(key) => audit::note_keys(&request, &[*key]),
            MaskTarget::User(user) => audit::note_target(&request, user),
        }
        let masker = self.state.masker()?;
        let object = self.state.hsm().extract_masked(&caller, &target)?;
        // What leaves for another HSM must not be lost here by a crash: the
        // object's last change was queued before it was read, so waiting for
        // what is queued covers it.
        self.state.settled().await?;
        let masked_object = masker.mask(&object)?;
        Ok(Response::new(ExtractMaskedObjectResponse { masked_object, info: Some(info(&object)) }))
    }

    async fn insert_masked_object(
        &self,
        request: Request<InsertMaskedObjectRequest>,
    ) -> Result<Response<InsertMaskedObjectResponse>, Status> {
        let caller = caller(&request)?;
        let masker = self.state.masker()?;
        let object = masker.unmask(&request.get_ref().masked_object)?;
        let shown = info(&object);
        match &object {
            Masked::Key(replica) => audit::note_keys(&request, &[replica.reference()]),
            Masked::User(user) => audit::note_target(&request, &user.username),
        }
        let applied = self.state.mutate(|hsm| hsm.insert_masked(&caller, object)).await?;
        if applied {
            tracing::info!(object = ?shown.object, version = shown.version, "masked object inserted");
        }
        Ok(Response::new(InsertMaskedObjectResponse { info: Some(shown), applied }))
    }
}

impl HsmState {
    pub(super) fn masker(&self) -> Result<&Masker, ModelError> {
        self.masker.as_ref().ok_or(ModelError::NoMaskingKey)
    }
}

/// What an object holds, in the clear, for the caller's bookkeeping.
pub(crate) fn info(object: &Masked) -> pb::MaskedObjectInfo {
    match object {
        Masked::Key(replica) => pb::MaskedObjectInfo {
            object: Some(masked_object_info::Object::KeyReference(replica.reference().to_string())),
            version: replica.version(),
            deleted: matches!(replica, Replica::Tombstone(_)),
        },
        Masked::User(user) => pb::MaskedObjectInfo {
            object: Some(masked_object_info::Object::Username(user.username.to_string())),
            version: 0,
            deleted: false,
        },
    }
}
