//! `hsm.v1.KeyService`: key management.

use std::sync::Arc;

use hsm_proto::v1::{
    DeleteKeyRequest, ExportPublicKeyRequest, ExportPublicKeyResponse, GenerateKeyPairRequest,
    GenerateSymmetricKeyRequest, ImportKeyRequest, KeyPairResponse, KeyResponse, ListKeysRequest, ListKeysResponse,
    SetKeyAttributeRequest, ShareKeyRequest, UnwrapKeyRequest, WrapKeyRequest, WrapKeyResponse,
    generate_key_pair_request::Parameters, import_key_request::Material, key_service_server::KeyService,
};
use tonic::{Request, Response, Status};

use super::{HsmState, audit, blocking, caller, convert, quorum::key_gated};
use crate::{
    crypto::{self, Generated, KeyClass, KeyKind, KeyMaterial, KeySpec},
    model::{
        AttrName, KeyCreation, KeyQuery, KeyQuorum, KeyRef, KeyView, ModelError, NewKey, QuorumService, Template,
        Usage, Username,
    },
};

#[derive(Debug)]
pub(super) struct KeyApi {
    state: Arc<HsmState>,
}

impl KeyApi {
    pub(super) fn new(state: Arc<HsmState>) -> Self {
        KeyApi { state }
    }
}

fn key_response(view: KeyView) -> Response<KeyResponse> {
    Response::new(KeyResponse { key: Some(convert::key_info(view)) })
}

fn usernames(field: &'static str, raw: &[String]) -> Result<Vec<Username>, ModelError> {
    raw.iter().map(|u| Username::parse(field, u)).collect()
}

fn reference(field: &'static str, raw: &str) -> Result<KeyRef, ModelError> {
    KeyRef::parse(field, raw)
}

/// The one stored view a single-key store returns.
fn single(mut views: Vec<KeyView>) -> Result<KeyView, Status> {
    views.pop().ok_or_else(|| Status::internal("no key was stored"))
}

#[tonic::async_trait]
impl KeyService for KeyApi {
    async fn generate_symmetric_key(
        &self,
        request: Request<GenerateSymmetricKeyRequest>,
    ) -> Result<Response<KeyResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let kind = convert::symmetric_kind("key_type", req.key_type)?;
        self.state.hsm().permit_kind(kind)?;
        let template = Template::parse(&convert::pairs(&req.attributes))?;
        let (share, quorum) = sharing(&req.share_with, req.manage_key_quorum_value, req.use_key_quorum_value)?;
        let len = req.key_length_bytes;
        let spec = match kind {
            KeyKind::Aes => KeySpec::Aes { bits: len.saturating_mul(8) },
            KeyKind::Des3 => des3_spec(len)?,
            KeyKind::GenericSecret => KeySpec::GenericSecret { len: len as usize },
            KeyKind::Rsa | KeyKind::Ec(_) | KeyKind::Ed25519 => {
                return Err(Status::internal("a symmetric key type parsed as an asymmetric one"));
            }
        };
        let Generated::Secret(material) = spec.generate(&mut self.state.fork_key_rng()).map_err(ModelError::from)?
        else {
            return Err(Status::internal("a symmetric key generated as a pair"));
        };
        let keys = vec![NewKey { material: Arc::new(material), template, local: true }];
        let creation = KeyCreation { keys, session: req.session, share_with: share, quorum };
        let view = single(self.state.mutate(|hsm| hsm.store_keys(&caller, creation)).await?)?;
        audit::note_keys(&request, &[view.reference]);
        tracing::info!(key = %view.reference, owner = %view.owner, "symmetric key generated");
        Ok(key_response(view))
    }

    async fn generate_key_pair(
        &self,
        request: Request<GenerateKeyPairRequest>,
    ) -> Result<Response<KeyPairResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let public_template = Template::parse(&convert::pairs(&req.public_attributes))?;
        let private_template = Template::parse(&convert::pairs(&req.private_attributes))?;
        let (share, quorum) = sharing(&req.share_with, req.manage_key_quorum_value, req.use_key_quorum_value)?;
        let parameters = req.parameters.clone().ok_or(ModelError::InvalidArgument {
            field: "parameters",
            rule: "must be set: rsa, ec or ed25519".into(),
        })?;
        let spec = match parameters {
            Parameters::Rsa(rsa) => {
                KeySpec::Rsa { modulus_bits: rsa.modulus_size_bits, public_exponent: rsa.public_exponent }
            }
            Parameters::Ec(ec) => KeySpec::Ec(crate::model::keys::parse_curve("curve", &ec.curve)?),
            Parameters::Ed25519(_) => KeySpec::Ed25519,
        };
        let mut rng = self.state.fork_key_rng();
        let generated = if matches!(spec, KeySpec::Rsa { .. }) {
            // RSA key generation takes tens to hundreds of milliseconds.
            blocking(move || Ok(spec.generate(&mut rng)?)).await?
        } else {
            spec.generate(&mut rng).map_err(ModelError::from)?
        };
        let Generated::Pair { private, public } = generated else {
            return Err(Status::internal("a key pair generated as one key"));
        };
        let keys = vec![
            NewKey { material: Arc::new(public), template: public_template, local: true },
            NewKey { material: Arc::new(private), template: private_template, local: true },
        ];
        let creation = KeyCreation { keys, session: req.session, share_with: share, quorum };
        let mut views = self.state.mutate(|hsm| hsm.store_keys(&caller, creation)).await?.into_iter();
        let (Some(public), Some(private)) = (views.next(), views.next()) else {
            return Err(Status::internal("the key pair was not stored whole"));
        };
        audit::note_keys(&request, &[public.reference, private.reference]);
        tracing::info!(public = %public.reference, private = %private.reference, owner = %private.owner, "key pair generated");
        Ok(Response::new(KeyPairResponse {
            public_key: Some(convert::key_info(public)),
            private_key: Some(convert::key_info(private)),
        }))
    }

    async fn import_key(&self, request: Request<ImportKeyRequest>) -> Result<Response<KeyResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let template = Template::parse(&convert::pairs(&req.attributes))?;
        let material = match &req.material {
            Some(Material::Pem(pem)) => {
                let pem = pem.clone();
                blocking(move || Ok(KeyMaterial::from_pem(&pem)?)).await?
            }
            Some(Material::Secret(bytes)) => {
                let kind = convert::symmetric_kind("secret_key_type", req.secret_key_type)?;
                self.state.hsm().permit_kind(kind)?;
                KeyMaterial::from_raw_secret(kind, bytes).map_err(ModelError::from)?
            }
            None => {
                return Err(ModelError::InvalidArgument {
                    field: "material",
                    rule: "must be set: pem or secret".into(),
                }
                .into());
            }
        };
        let (share, quorum) = sharing(&req.share_with, req.manage_key_quorum_value, req.use_key_quorum_value)?;
        let keys = vec![NewKey { material: Arc::new(material), template, local: false }];
        let creation = KeyCreation { keys, session: req.session, share_with: share, quorum };
        let view = single(self.state.mutate(|hsm| hsm.store_keys(&caller, creation)).await?)?;
        audit::note_keys(&request, &[view.reference]);
        tracing::info!(key = %view.reference, owner = %view.owner, "key imported");
        Ok(key_response(view))
    }

    async fn export_public_key(
        &self,
        request: Request<ExportPublicKeyRequest>,
    ) -> Result<Response<ExportPublicKeyResponse>, Status> {
        let caller = caller(&request)?;
        let key = reference("key_reference", &request.get_ref().key_reference)?;
        let material = self.state.hsm().public_key(&caller, key)?;
        let pem = material.public_pem().map_err(ModelError::from)?;
        Ok(Response::new(ExportPublicKeyResponse { pem }))
    }

    async fn wrap_key(&self, request: Request<WrapKeyRequest>) -> Result<Response<WrapKeyResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let wrapping = reference("wrapping_key_reference", &req.wrapping_key_reference)?;
        let target = reference("key_reference", &req.key_reference)?;
        audit::note_keys(&request, &[target, wrapping]);
        let mechanism = convert::wrap_mechanism(req.mechanism, req.hash, req.tag_length_bits)?;
        let (wrapping_key, target_key) = match &req.approval {
            None => self.state.hsm().keys_for_wrap(&caller, wrapping, target)?,
            Some(approval) => {
                key_gated(&self.state, &caller, target, QuorumService::KeyManagement, Some(approval), |hsm| {
                    hsm.keys_for_approved_wrap(&caller, wrapping, target)
                })
                .await?
            }
        };
        let mut rng = self.state.fork_rng();
        let aad = req.aad.clone();
        let wrapped = blocking(move || {
            let bytes = target_key.to_wrappable()?;
            Ok(crypto::wrap(&wrapping_key, mechanism, &aad, &bytes, &mut rng)?)
        })
        .await?;
        tracing::info!(key = %target, wrapping_key = %wrapping, "key wrapped");
        Ok(Response::new(WrapKeyResponse { wrapped_key: wrapped }))
    }

    async fn unwrap_key(&self, request: Request<UnwrapKeyRequest>) -> Result<Response<KeyResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let unwrapping = reference("unwrapping_key_reference", &req.unwrapping_key_reference)?;
        audit::note_keys(&request, &[unwrapping]);
        let mechanism = convert::wrap_mechanism(req.mechanism, req.hash, req.tag_length_bits)?;
        let kind = convert::unwrapped_kind(req.key_type, &req.curve)?;
        let class = convert::key_class(req.key_class)?;
        if let Some(kind) = kind {
            self.state.hsm().permit_kind(kind)?;
        }
        if kind.is_none() && class != KeyClass::Private {
            return Err(ModelError::InvalidArgument {
                field: "curve",
                rule: "needed for an EC key that is not a private key".into(),
            }
            .into());
        }
        let template = Template::parse(&convert::pairs(&req.attributes))?;
        let (share, quorum) = sharing(&req.share_with, req.manage_key_quorum_value, req.use_key_quorum_value)?;
        let key = match &req.approval {
            None => self.state.hsm().key_for_use(&caller, unwrapping, Usage::Unwrap)?,
            Some(approval) => {
                key_gated(&self.state, &caller, unwrapping, QuorumService::KeyManagement, Some(approval), |hsm| {
                    hsm.key_for_approved_use(&caller, unwrapping, Usage::Unwrap)
                })
                .await?
            }
        };
        let (wrapped, aad) = (req.wrapped_key.clone(), req.aad.clone());
        let material = blocking(move || {
            let bytes = crypto::unwrap(&key, mechanism, &aad, &wrapped)?;
            Ok(match kind {
                Some(kind) => KeyMaterial::from_wrappable(kind, class, &bytes)?,
                None => KeyMaterial::from_wrapped_ec_private(&bytes)?,
            })
        })
        .await?;
        let keys = vec![NewKey { material: Arc::new(material), template, local: false }];
        let creation = KeyCreation { keys, session: req.session, share_with: share, quorum };
        let view = single(self.state.mutate(|hsm| hsm.store_keys(&caller, creation)).await?)?;
        audit::note_keys(&request, &[view.reference]);
        tracing::info!(key = %view.reference, unwrapping_key = %unwrapping, "key unwrapped");
        Ok(key_response(view))
    }

    async fn delete_key(&self, request: Request<DeleteKeyRequest>) -> Result<Response<KeyResponse>, Status> {
        let caller = caller(&request)?;
        let key = reference("key_reference", &request.get_ref().key_reference)?;
        audit::note_keys(&request, &[key]);
        let view = self.state.mutate(|hsm| hsm.delete_key(&caller, key)).await?;
        tracing::info!(key = %view.reference, "key deleted");
        Ok(key_response(view))
    }

    async fn share_key(&self, request: Request<ShareKeyRequest>) -> Result<Response<KeyResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let key = reference("key_reference", &req.key_reference)?;
        let user = Username::parse("username", &req.username)?;
        audit::note_keys(&request, &[key]);
        audit::note_target(&request, &user);
        let view = key_gated(&self.state, &caller, key, QuorumService::KeyManagement, req.approval.as_ref(), |hsm| {
            hsm.share_key(&caller, key, user)
        })
        .await?;
        tracing::info!(key = %view.reference, with = %req.username, "key shared");
        Ok(key_response(view))
    }

    async fn unshare_key(&self, request: Request<ShareKeyRequest>) -> Result<Response<KeyResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let key = reference("key_reference", &req.key_reference)?;
        let user = Username::parse("username", &req.username)?;
        audit::note_keys(&request, &[key]);
        audit::note_target(&request, &user);
        let view = key_gated(&self.state, &caller, key, QuorumService::KeyManagement, req.approval.as_ref(), |hsm| {
            hsm.unshare_key(&caller, key, &user)
        })
        .await?;
        tracing::info!(key = %view.reference, with = %user, "key unshared");
        Ok(key_response(view))
    }

    async fn set_key_attribute(
        &self,
        request: Request<SetKeyAttributeRequest>,
    ) -> Result<Response<KeyResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let key = reference("key_reference", &req.key_reference)?;
        let name = AttrName::parse("name", &req.name)?;
        audit::note_keys(&request, &[key]);
        let view = key_gated(&self.state, &caller, key, QuorumService::KeyManagement, req.approval.as_ref(), |hsm| {
            hsm.set_key_attribute(&caller, key, name, &req.value)
        })
        .await?;
        tracing::info!(key = %view.reference, attribute = %name, "key attribute set");
        Ok(key_response(view))
    }

    async fn list_keys(&self, request: Request<ListKeysRequest>) -> Result<Response<ListKeysResponse>, Status> {
        let caller = caller(&request)?;
        let req = request.get_ref();
        let query = KeyQuery {
            filters: convert::pairs(&req.filters),
            max_items: req.max_items as usize,
            starting_token: (!req.starting_token.is_empty()).then(|| req.starting_token.clone()),
        };
        let page = self.state.hsm().list_keys(&caller, &query)?;
        Ok(Response::new(ListKeysResponse {
            keys: page.keys.into_iter().map(convert::key_info).collect(),
            total_key_count: page.total as u64,
            next_token: page.next_token.unwrap_or_default(),
        }))
    }
}

/// Triple DES keys are 24 bytes; 0 takes that length.
fn des3_spec(len: u32) -> Result<KeySpec, ModelError> {
    match len {
        0 | 24 => Ok(KeySpec::Des3),
        n => Err(ModelError::InvalidArgument {
            field: "key_length_bytes",
            rule: format!("triple DES keys are 24 bytes, not {n}"),
        }),
    }
}

/// A new key's `share_with` users and quorum values, parsed (checked
/// early, before the key is made).
fn sharing(share_with: &[String], manage: u32, usage: u32) -> Result<(Vec<Username>, KeyQuorum), ModelError> {
    let share = usernames("share_with", share_with)?;
    let quorum = KeyQuorum::parse(manage, usage, 1 + share.len())?;
    Ok((share, quorum))
}
