//! The HSM's key operations: the key rules of [`super::keys`] applied to a
//! caller, the cluster's mode (FIPS), and the quorum values a key is made
//! with.

use std::sync::Arc;

use super::{
    AttrName, Caller, Hsm, KeyPage, KeyQuery, KeyQuorum, KeyRef, KeyView, ModelError, NewKey, Usage, Username,
    caller_username, internal, keys::Actor,
};
use crate::crypto::{Cipher, KeyClass, KeyKind, KeyMaterial};

/// Keys made together, and how to keep them: `key generate-symmetric`,
/// `generate-asymmetric-pair`, `import` and `unwrap` in one request.
#[derive(Debug)]
pub struct KeyCreation {
    /// One key, or a pair: public first, then private.
    pub keys: Vec<NewKey>,
    /// A session key lives only as long as the caller's session.
    pub session: bool,
    /// Crypto users who may use the secret or private key.
    pub share_with: Vec<Username>,
    /// The secret or private key's quorum values, checked against its users
    /// ([`KeyQuorum::parse`]).
    pub quorum: KeyQuorum,
}

impl KeyCreation {
    /// Token keys, shared with nobody, without quorum values.
    pub fn new(keys: Vec<NewKey>) -> Self {
        KeyCreation { keys, session: false, share_with: Vec::new(), quorum: KeyQuorum::default() }
    }
}

impl Hsm {
    /// Refuses to make or use a key of `kind` that the cluster's mode does
    /// not allow (triple DES on a FIPS cluster).
    pub fn permit_kind(&self, kind: KeyKind) -> Result<(), ModelError> {
        self.permit_des3(kind == KeyKind::Des3, "a triple DES (DES3) key")
    }

    /// Refuses a cipher that the cluster's mode does not allow.
    pub fn permit_cipher(&self, cipher: Cipher) -> Result<(), ModelError> {
        let des3 = matches!(cipher, Cipher::Des3Ecb | Cipher::Des3Cbc | Cipher::Des3CbcPad);
        self.permit_des3(des3, "a triple DES (DES3) mechanism")
    }

    fn permit_des3(&self, des3: bool, what: &'static str) -> Result<(), ModelError> {
        if des3 && !self.cluster.mode.permits_des3() {
            return Err(ModelError::FipsMode { what });
        }
        Ok(())
    }

    /// Stores new keys for the caller (see [`KeyCreation`]), shares the
    /// secret or private key and gives it its quorum values, all under one
    /// lock, so that nobody sees the key without them.
    pub fn store_keys(&mut self, caller: &Caller, creation: KeyCreation) -> Result<Vec<KeyView>, ModelError> {
        let KeyCreation { keys, session, share_with, quorum } = creation;
        let (session_id, owner) = caller.session.as_ref().ok_or_else(|| internal("key creation without a session"))?;
        for user in &share_with {
            if !self.is_crypto_user(user) {
                return Err(ModelError::InvalidArgument {
                    field: "share_with",
                    rule: format!("'{user}' is not a crypto user; keys are shared only with crypto users"),
                });
            }
        }
        for key in &keys {
            self.permit_kind(key.material.kind())?;
        }
        let owner = owner.clone();
        let mut views = self.keys.insert(&owner, session.then_some(*session_id), keys)?;
        let actor = Actor { user: &owner, identity: caller.identity };
        for view in views.iter_mut().filter(|v| v.facts.class != KeyClass::Public) {
            for user in &share_with {
                *view = self.keys.share(actor, view.reference, user.clone(), true)?;
            }
            if quorum != KeyQuorum::default() {
                *view = self.keys.set_quorum_at_creation(view.reference, quorum)?;
            }
        }
        Ok(views)
    }

    /// A key's material for `usage`. Signing with a key that has a use
    /// quorum value needs an approval: see [`Hsm::key_for_approved_use`].
    pub fn key_for_use(
        &self,
        caller: &Caller,
        reference: KeyRef,
        usage: Usage,
    ) -> Result<Arc<KeyMaterial>, ModelError> {
        let material = self.key_for_approved_use(caller, reference, usage)?;
        let quorum = self.keys.quorum(reference);
        if (usage == Usage::Sign && quorum.usage > 1) || (usage == Usage::Unwrap && quorum.manage > 1) {
            return Err(ModelError::QuorumRequired);
        }
        Ok(material)
    }

    /// A key's material for `usage` without the quorum check: inside
    /// [`Hsm::spend_key_approval`], which checked the approval.
    /// [`Hsm::key_for_use`] is this and the check.
    pub fn key_for_approved_use(
        &self,
        caller: &Caller,
        reference: KeyRef,
        usage: Usage,
    ) -> Result<Arc<KeyMaterial>, ModelError> {
        let material = self.keys.for_use(actor(caller)?, reference, usage)?;
        self.permit_kind(material.kind())?;
        Ok(material)
    }

    /// The wrapping key and the key it wraps. Wrapping a key with a manage
    /// quorum value needs an approval: see [`Hsm::keys_for_approved_wrap`].
    pub fn keys_for_wrap(
        &self,
        caller: &Caller,
        wrapping: KeyRef,
        target: KeyRef,
    ) -> Result<(Arc<KeyMaterial>, Arc<KeyMaterial>), ModelError> {
        let keys = self.keys.for_wrap(actor(caller)?, wrapping, target)?;
        if self.keys.quorum(target).manage > 1 {
            return Err(ModelError::QuorumRequired);
        }
        Ok(keys)
    }

    /// As [`Hsm::keys_for_wrap`], inside [`Hsm::spend_key_approval`].
    pub fn keys_for_approved_wrap(
        &self,
        caller: &Caller,
        wrapping: KeyRef,
        target: KeyRef,
    ) -> Result<(Arc<KeyMaterial>, Arc<KeyMaterial>), ModelError> {
        self.keys.for_wrap(actor(caller)?, wrapping, target)
    }

    pub fn public_key(&self, caller: &Caller, reference: KeyRef) -> Result<Arc<KeyMaterial>, ModelError> {
        self.keys.for_public_export(actor(caller)?, reference)
    }

    pub fn delete_key(&mut self, caller: &Caller, reference: KeyRef) -> Result<KeyView, ModelError> {
        self.keys.delete(actor(caller)?, reference)
    }

    pub fn share_key(&mut self, caller: &Caller, reference: KeyRef, with: Username) -> Result<KeyView, ModelError> {
        let is_cu = self.is_crypto_user(&with);
        self.keys.share(actor(caller)?, reference, with, is_cu)
    }

    pub fn unshare_key(&mut self, caller: &Caller, reference: KeyRef, with: &Username) -> Result<KeyView, ModelError> {
        self.keys.unshare(actor(caller)?, reference, with)
    }

    pub fn set_key_attribute(
        &mut self,
        caller: &Caller,
        reference: KeyRef,
        name: AttrName,
        value: &str,
    ) -> Result<KeyView, ModelError> {
        self.keys.set_attribute(actor(caller)?, reference, name, value)
    }

    pub fn list_keys(&self, caller: &Caller, query: &KeyQuery) -> Result<KeyPage, ModelError> {
        self.keys.list(actor(caller)?, query)
    }
}

/// The caller as the key rules see it.
pub(super) fn actor(caller: &Caller) -> Result<Actor<'_>, ModelError> {
    let user = caller_username(caller)?;
    Ok(Actor { user, identity: caller.identity })
}
