//! Objects: the handles the library hands out for key references, and the
//! object and key management a session does through them (search,
//! attributes, generation, import, destruction, wrapping and unwrapping).

use std::collections::HashMap;

use cryptoki_sys::{
    CK_ATTRIBUTE_TYPE, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CKM_AES_KEY_GEN, CKM_EC_EDWARDS_KEY_PAIR_GEN,
    CKM_EC_KEY_PAIR_GEN, CKM_GENERIC_SECRET_KEY_GEN, CKM_RSA_PKCS_KEY_PAIR_GEN, CKR_KEY_FUNCTION_NOT_PERMITTED,
    CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT, CKR_KEY_UNEXTRACTABLE, CKR_MECHANISM_INVALID,
    CKR_OBJECT_HANDLE_INVALID, CKR_OPERATION_ACTIVE, CKR_OPERATION_NOT_INITIALIZED, CKR_UNWRAPPING_KEY_HANDLE_INVALID,
    CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT, CKR_WRAPPING_KEY_HANDLE_INVALID, CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
};
use hsm_client::{
    KeyInfo, ListKeys, SetKeyAttribute, UnwrapKey, WrapKey, WrapParams,
    keys::{KeyType, SymmetricKeyType},
};
use zeroize::Zeroizing;

use super::{
    Library, lock,
    operations::{Output, offer},
};
use crate::{
    error::Doing,
    mechanism::{self, Family, Mechanism},
    object::{self, Attribute, Material, Value},
};

/// Handles for key references, both ways.
#[derive(Debug, Default)]
pub(super) struct Handles {
    by_handle: HashMap<CK_OBJECT_HANDLE, String>,
    by_reference: HashMap<String, CK_OBJECT_HANDLE>,
    last: CK_OBJECT_HANDLE,
}

impl Handles {
    fn handle(&mut self, reference: &str) -> CK_OBJECT_HANDLE {
        if let Some(h) = self.by_reference.get(reference) {
            return *h;
        }
        self.last += 1;
        self.by_handle.insert(self.last, reference.to_owned());
        self.by_reference.insert(reference.to_owned(), self.last);
        self.last
    }

    fn reference(&self, handle: CK_OBJECT_HANDLE) -> Option<String> {
        self.by_handle.get(&handle).cloned()
    }

    fn forget(&mut self, handle: CK_OBJECT_HANDLE) {
        if let Some(reference) = self.by_handle.remove(&handle) {
            self.by_reference.remove(&reference);
        }
    }
}

impl Library {
    pub(crate) fn find_init(&self, handle: CK_SESSION_HANDLE, template: &[Attribute]) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        let mut session = lock(&session);
        if session.find.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let found = match (self.current(), object::filters(template)) {
            // Every key is private to its users: nothing is visible logged out.
            (None, _) | (_, None) => Vec::new(),
            (Some(login), Some(filters)) => {
                let page =
                    self.call(&login, Doing::Reading, login.session.list_keys(ListKeys::default().filters(&filters)))?;
                let mut objects = lock(&self.objects);
                page.keys
                    .into_iter()
                    .filter(|k| object::matches(&k.info, template))
                    .map(|k| objects.handle(&k.info.reference))
                    .collect()
            }
        };
        session.find = Some(found);
        Ok(())
    }

    pub(crate) fn find(&self, handle: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>, CK_RV> {
        let session = self.session(handle)?;
        let mut session = lock(&session);
        let found = session.find.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let n = max.min(found.len());
        Ok(found.drain(..n).collect())
    }

    pub(crate) fn find_final(&self, handle: CK_SESSION_HANDLE) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        let mut session = lock(&session);
        session.find.take().ok_or(CKR_OPERATION_NOT_INITIALIZED).map(drop)
    }

    pub(crate) fn attributes(
        &self,
        handle: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        kinds: &[CK_ATTRIBUTE_TYPE],
    ) -> Result<Vec<Value>, CK_RV> {
        self.session(handle)?;
        let key = self.key(object, Doing::Reading)?;
        Ok(kinds.iter().map(|kind| object::value(&key, *kind)).collect())
    }

    /// Checks that the object exists; its size is not something the HSM
    /// tells.
    pub(crate) fn object_exists(&self, handle: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<(), CK_RV> {
        self.session(handle)?;
        self.key(object, Doing::Reading).map(drop)
    }

    /// Sets attributes, one HSM change each, in the template's order.
    pub(crate) fn set_attributes(
        &self,
        handle: CK_SESSION_HANDLE,
        object: CK_OBJECT_HANDLE,
        template: &[Attribute],
    ) -> Result<(), CK_RV> {
        self.session(handle)?;
        let changes = object::changes(template)?;
        let key = self.key(object, Doing::Modifying)?;
        self.may_write(handle, !key.session)?;
        let login = self.logged_in()?;
        for (name, value) in changes {
            self.call(
                &login,
                Doing::Modifying,
                login.session.set_key_attribute(SetKeyAttribute::new(&key.reference, &name, &value)),
            )?;
        }
        Ok(())
    }

    /// Generates an AES, generic-secret or (non-FIPS) triple DES key.
    pub(crate) fn generate_key(
        &self,
        handle: CK_SESSION_HANDLE,
        mechanism: &Mechanism,
        template: &[Attribute],
    ) -> Result<CK_OBJECT_HANDLE, CK_RV> {
        self.session(handle)?;
        let key_type = match mechanism.kind {
            CKM_AES_KEY_GEN => SymmetricKeyType::Aes,
            CKM_GENERIC_SECRET_KEY_GEN => SymmetricKeyType::GenericSecret,
            cryptoki_sys::CKM_DES3_KEY_GEN => SymmetricKeyType::Des3,
            _ => return Err(CKR_MECHANISM_INVALID),
        };
        self.permit(mechanism.kind)?;
        mechanism.no_parameter()?;
        let request = object::secret_request(key_type, template)?;
        self.may_write(handle, request.token)?;
        let login = self.logged_in()?;
        let generate = login.session.generate_symmetric_key(request.key_type, request.length, &request.options);
        let key = self.call(&login, Doing::Creating, generate)?;
        Ok(lock(&self.objects).handle(&key.info.reference))
    }

    /// Generates a key pair; returns (public, private) handles.
    pub(crate) fn generate_key_pair(
        &self,
        handle: CK_SESSION_HANDLE,
        mechanism: &Mechanism,
        public: &[Attribute],
        private: &[Attribute],
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE), CK_RV> {
        self.session(handle)?;
        let family = match mechanism.kind {
            CKM_EC_KEY_PAIR_GEN => Family::Ec,
            CKM_EC_EDWARDS_KEY_PAIR_GEN => Family::Ed25519,
            CKM_RSA_PKCS_KEY_PAIR_GEN => Family::Rsa,
            _ => return Err(CKR_MECHANISM_INVALID),
        };
        mechanism.no_parameter()?;
        let request = object::pair_request(family, public, private)?;
        self.may_write(handle, request.token)?;
        let login = self.logged_in()?;
        let generate = login.session.generate_key_pair(&request.spec, &request.public, &request.private);
        let (public, private) = self.call(&login, Doing::Creating, generate)?;
        let mut objects = lock(&self.objects);
        Ok((objects.handle(&public.info.reference), objects.handle(&private.info.reference)))
    }

    /// Imports a key from its attribute values.
    pub(crate) fn create_object(
        &self,
        handle: CK_SESSION_HANDLE,
        template: &[Attribute],
    ) -> Result<CK_OBJECT_HANDLE, CK_RV> {
        self.session(handle)?;
        let request = object::create_request(template)?;
        self.permit_des3_key(matches!(request.material, Material::Secret(SymmetricKeyType::Des3, _)))?;
        self.may_write(handle, request.token)?;
        let login = self.logged_in()?;
        let key = match &request.material {
            Material::Secret(kind, bytes) => {
                self.call(&login, Doing::Creating, login.session.import_secret(*kind, bytes, &request.options))
            }
            Material::Pem(pem) => self.call(&login, Doing::Creating, login.session.import_pem(pem, &request.options)),
        }?;
        Ok(lock(&self.objects).handle(&key.info.reference))
    }

    pub(crate) fn destroy(&self, handle: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<(), CK_RV> {
        self.session(handle)?;
        let key = self.key(object, Doing::Destroying)?;
        self.may_write(handle, !key.session)?;
        let login = self.logged_in()?;
        self.call(&login, Doing::Destroying, login.session.delete_key(&key.reference))?;
        lock(&self.objects).forget(object);
        Ok(())
    }

    /// Wraps `key` with `wrapping`. With `room` `None` (or too small), says
    /// how long the wrapped key is: the HSM wraps it to find out.
    pub(crate) fn wrap(
        &self,
        handle: CK_SESSION_HANDLE,
        mechanism: &Mechanism,
        wrapping: CK_OBJECT_HANDLE,
        key: CK_OBJECT_HANDLE,
        room: Option<usize>,
    ) -> Result<Output, CK_RV> {
        self.session(handle)?;
        let (wrap, hash, family) = mechanism::wrapping(mechanism)?;
        let params = WrapParams { hash, ..WrapParams::default() };
        let login = self.logged_in()?;
        let wrapping =
            self.key_for(wrapping, Some(family), CKR_WRAPPING_KEY_HANDLE_INVALID, CKR_WRAPPING_KEY_TYPE_INCONSISTENT)?;
        let key = self.key_for(key, None, CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT)?;
        // The HSM refuses both; PKCS#11 has a return code for each.
        if wrapping.attribute("wrap") != Some("true") {
            return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
        }
        if key.attribute("extractable") != Some("true") {
            return Err(CKR_KEY_UNEXTRACTABLE);
        }
        let wrapped = self.call(
            &login,
            Doing::Using,
            login.session.wrap_key(WrapKey::new(&wrapping.reference, &key.reference, wrap).params(params)),
        )?;
        Ok(offer(&wrapped, room).unwrap_or(Output::Bytes(Zeroizing::new(wrapped))))
    }

    /// Unwraps `wrapped` into a new key the template describes.
    pub(crate) fn unwrap(
        &self,
        handle: CK_SESSION_HANDLE,
        mechanism: &Mechanism,
        unwrapping: CK_OBJECT_HANDLE,
        wrapped: &[u8],
        template: &[Attribute],
    ) -> Result<CK_OBJECT_HANDLE, CK_RV> {
        self.session(handle)?;
        let (wrap, hash, family) = mechanism::wrapping(mechanism)?;
        let params = WrapParams { hash, ..WrapParams::default() };
        let request = object::unwrap_request(template)?;
        self.permit_des3_key(request.key_type == KeyType::Des3)?;
        self.may_write(handle, request.token)?;
        let login = self.logged_in()?;
        let unwrapping = self.key_for(
            unwrapping,
            Some(family),
            CKR_UNWRAPPING_KEY_HANDLE_INVALID,
            CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
        )?;
        let unwrap = login.session.unwrap_key(UnwrapKey {
            curve: request.curve,
            ..UnwrapKey::new(&unwrapping.reference, wrapped, wrap, request.key_type, request.class)
                .params(params)
                .options(&request.options)
        });
        let key = self.call(&login, Doing::Unwrapping, unwrap)?;
        Ok(lock(&self.objects).handle(&key.info.reference))
    }

    /// The key behind a handle given for a use: a handle that names no key
    /// is `invalid`, a key not of `family` is `inconsistent`.
    pub(super) fn key_for(
        &self,
        object: CK_OBJECT_HANDLE,
        family: Option<Family>,
        invalid: CK_RV,
        inconsistent: CK_RV,
    ) -> Result<KeyInfo, CK_RV> {
        let key =
            self.key(object, Doing::Using).map_err(|e| if e == CKR_OBJECT_HANDLE_INVALID { invalid } else { e })?;
        match family {
            Some(family) if !object::fits(&key, family) => Err(inconsistent),
            _ => Ok(key),
        }
    }

    /// The key behind an object handle, as the HSM shows it now.
    pub(super) fn key(&self, object: CK_OBJECT_HANDLE, doing: Doing) -> Result<KeyInfo, CK_RV> {
        let reference = lock(&self.objects).reference(object).ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        let login = self.current().ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        let filters = [("key-reference".to_owned(), reference)];
        let page = self.call(&login, doing, login.session.list_keys(ListKeys::default().filters(&filters)))?;
        page.keys.into_iter().next().map(|k| k.info).ok_or(CKR_OBJECT_HANDLE_INVALID)
    }
}
