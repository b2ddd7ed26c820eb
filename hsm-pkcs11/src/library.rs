//! [`Library`]: the state between `C_Initialize` and `C_Finalize`, and every
//! PKCS#11 operation as a safe Rust method.
//!
//! One token in one slot stands for the whole cluster. The login is the
//! application's, shared by all its sessions (as PKCS#11 has it), and is a
//! [`ClusterSession`]: logged in on every HSM, key creation copied to all of
//! them, crypto spread over them. Async calls run on a Tokio runtime the
//! library owns, through `block_on`; the caller's threads wait.
//!
//! Object handles are numbers the library hands out for key references, so
//! that a handle stays valid while its key exists.

use std::collections::{BTreeMap, HashMap};

use cryptoki_sys::{
    CK_ATTRIBUTE_TYPE, CK_FLAGS, CK_MECHANISM_TYPE, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_STATE, CK_USER_TYPE,
    CKF_RW_SESSION, CKF_SERIAL_SESSION, CKM_EC_KEY_PAIR_GEN, CKM_RSA_PKCS_KEY_PAIR_GEN, CKO_PRIVATE_KEY,
    CKO_PUBLIC_KEY, CKR_DEVICE_ERROR, CKR_FUNCTION_NOT_SUPPORTED, CKR_GENERAL_ERROR, CKR_KEY_FUNCTION_NOT_PERMITTED,
    CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT, CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID,
    CKR_OBJECT_HANDLE_INVALID, CKR_OPERATION_ACTIVE, CKR_OPERATION_NOT_INITIALIZED, CKR_PIN_INCORRECT,
    CKR_SESSION_HANDLE_INVALID, CKR_SESSION_PARALLEL_NOT_SUPPORTED, CKR_SESSION_READ_ONLY,
    CKR_SESSION_READ_ONLY_EXISTS, CKR_SESSION_READ_WRITE_SO_EXISTS, CKR_SIGNATURE_INVALID, CKR_SIGNATURE_LEN_RANGE,
    CKR_USER_ALREADY_LOGGED_IN, CKR_USER_ANOTHER_ALREADY_LOGGED_IN, CKR_USER_NOT_LOGGED_IN, CKR_USER_TYPE_INVALID,
    CKS_RO_PUBLIC_SESSION, CKS_RO_USER_FUNCTIONS, CKS_RW_PUBLIC_SESSION, CKS_RW_SO_FUNCTIONS, CKS_RW_USER_FUNCTIONS,
    CKU_CONTEXT_SPECIFIC, CKU_SO, CKU_USER,
};
use hsm_client::{ClientConfig, ClientError, Cluster, ClusterSession, KeyInfo, Role};
use tokio::runtime::Runtime;
use zeroize::Zeroizing;

use crate::{
    error::{Doing, rv},
    mechanism::{Family, Signing},
    object::{self, Attribute, Value},
};

/// The environment variable naming a `client.env` file to read the
/// configuration from (instead of `HSM_ENDPOINTS` and `HSM_CA_CERT`).
pub const CONFIG_ENV: &str = "HSM_PKCS11_CONFIG";

/// The one slot's id.
pub(crate) const SLOT_ID: cryptoki_sys::CK_SLOT_ID = 1;

/// Everything between `C_Initialize` and `C_Finalize`.
#[derive(Debug)]
pub(crate) struct Library {
    runtime: Runtime,
    cluster: Cluster,
    login: Option<Login>,
    sessions: BTreeMap<CK_SESSION_HANDLE, Session>,
    next_session: CK_SESSION_HANDLE,
    objects: Handles,
}

/// The application's login.
#[derive(Debug)]
struct Login {
    session: ClusterSession,
    user_type: CK_USER_TYPE,
    /// An admin (with CKU_SO, or a CKU_USER PIN that names an admin): the
    /// HSM lets admins list keys but not use or make them.
    admin: bool,
}

/// One PKCS#11 session: its flags and the operations in progress.
#[derive(Debug, Default)]
struct Session {
    read_write: bool,
    /// Handles found by `C_FindObjectsInit`, not yet returned.
    find: Option<Vec<CK_OBJECT_HANDLE>>,
    sign: Option<Operation>,
    verify: Option<Operation>,
}

/// A sign or verify operation between its `Init` and its end.
#[derive(Debug, Clone)]
struct Operation {
    reference: String,
    signing: Signing,
    signature_len: usize,
}

/// Handles for key references, both ways.
#[derive(Debug, Default)]
struct Handles {
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

    fn reference(&self, handle: CK_OBJECT_HANDLE) -> Option<&str> {
        self.by_handle.get(&handle).map(String::as_str)
    }

    fn forget(&mut self, handle: CK_OBJECT_HANDLE) {
        if let Some(reference) = self.by_handle.remove(&handle) {
            self.by_reference.remove(&reference);
        }
    }
}

/// What `C_GetTokenInfo` reports that the library does not know by itself.
#[derive(Debug, Clone)]
pub(crate) struct TokenInfo {
    pub(crate) cluster_id: String,
    pub(crate) sessions: usize,
    pub(crate) rw_sessions: usize,
}

/// The outcome of `C_Sign` before the signature is copied out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Signed {
    /// The caller asked for the length (or gave too little room: `fits`
    /// false); the operation goes on.
    Length {
        len: usize,
        fits: bool,
    },
    Signature(Vec<u8>),
}

impl Library {
    /// Reads the configuration ([`CONFIG_ENV`], else `HSM_ENDPOINTS` and
    /// `HSM_CA_CERT`) and starts the runtime. Connections are made on first
    /// use.
    pub(crate) fn new() -> Result<Library, CK_RV> {
        let config = match std::env::var_os(CONFIG_ENV) {
            Some(path) => ClientConfig::from_env_file(std::path::Path::new(&path)).map_err(|e| e.to_string()),
            None => ClientConfig::from_env().map_err(|e| format!("{e}; or set {CONFIG_ENV} to its path")),
        }
        .map_err(|e| {
            // The only way to tell an application's user what is missing:
            // C_Initialize has no message. Paths and variable names only.
            eprintln!("hsm-pkcs11: configuration: {e}");
            CKR_GENERAL_ERROR
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("hsm-pkcs11")
            .enable_all()
            .build()
            .map_err(|_| CKR_GENERAL_ERROR)?;
        let cluster = runtime.block_on(Cluster::connect(&config)).map_err(|e| {
            eprintln!("hsm-pkcs11: configuration: {e}");
            CKR_GENERAL_ERROR
        })?;
        Ok(Library {
            runtime,
            cluster,
            login: None,
            sessions: BTreeMap::new(),
            next_session: 1,
            objects: Handles::default(),
        })
    }

    /// Logs out (best effort) before the runtime goes.
    pub(crate) fn shutdown(mut self) {
        self.end_login();
    }

    pub(crate) fn token_info(&self) -> Result<TokenInfo, CK_RV> {
        let info = self.runtime.block_on(self.cluster.cluster_info()).map_err(|e| rv(&e, Doing::Reading, false))?;
        Ok(TokenInfo {
            cluster_id: info.cluster_id,
            sessions: self.sessions.len(),
            rw_sessions: self.sessions.values().filter(|s| s.read_write).count(),
        })
    }

    pub(crate) fn open_session(&mut self, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE, CK_RV> {
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(CKR_SESSION_PARALLEL_NOT_SUPPORTED);
        }
        let read_write = flags & CKF_RW_SESSION != 0;
        if !read_write && self.login.as_ref().is_some_and(|l| l.user_type == CKU_SO) {
            return Err(CKR_SESSION_READ_WRITE_SO_EXISTS);
        }
        let handle = self.next_session;
        self.next_session += 1;
        self.sessions.insert(handle, Session { read_write, ..Session::default() });
        Ok(handle)
    }

    /// Closes a session; closing the last one logs out, as PKCS#11 says.
    pub(crate) fn close_session(&mut self, handle: CK_SESSION_HANDLE) -> Result<(), CK_RV> {
        self.sessions.remove(&handle).ok_or(CKR_SESSION_HANDLE_INVALID)?;
        if self.sessions.is_empty() {
            self.end_login();
        }
        Ok(())
    }

    pub(crate) fn close_all_sessions(&mut self) {
        self.sessions.clear();
        self.end_login();
    }

    /// (state, flags) of a session.
    pub(crate) fn session_info(&self, handle: CK_SESSION_HANDLE) -> Result<(CK_STATE, CK_FLAGS), CK_RV> {
        let session = self.session(handle)?;
        let state = match (self.login.as_ref().map(|l| l.user_type), session.read_write) {
            (None, false) => CKS_RO_PUBLIC_SESSION,
            (None, true) => CKS_RW_PUBLIC_SESSION,
            (Some(CKU_SO), _) => CKS_RW_SO_FUNCTIONS,
            (Some(_), false) => CKS_RO_USER_FUNCTIONS,
            (Some(_), true) => CKS_RW_USER_FUNCTIONS,
        };
        let flags = CKF_SERIAL_SESSION | if session.read_write { CKF_RW_SESSION } else { 0 };
        Ok((state, flags))
    }

    /// Logs in with a CloudHSM PIN, `username:password`. CKU_SO logs in an
    /// admin; CKU_USER a crypto user, or else an admin of that name (the HSM
    /// counts a failed attempt only against the user whose role was asked
    /// for, so trying both costs no extra failure).
    pub(crate) fn login(
        &mut self,
        handle: CK_SESSION_HANDLE,
        user_type: CK_USER_TYPE,
        pin: &Zeroizing<Vec<u8>>,
    ) -> Result<(), CK_RV> {
        self.session(handle)?;
        let roles: &[Role] = match user_type {
            CKU_SO => &[Role::Admin],
            CKU_USER => &[Role::CryptoUser, Role::Admin],
            CKU_CONTEXT_SPECIFIC => return Err(CKR_OPERATION_NOT_INITIALIZED),
            _ => return Err(CKR_USER_TYPE_INVALID),
        };
        match &self.login {
            Some(l) if l.user_type == user_type => return Err(CKR_USER_ALREADY_LOGGED_IN),
            Some(_) => return Err(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
            None => {}
        }
        if user_type == CKU_SO && self.sessions.values().any(|s| !s.read_write) {
            return Err(CKR_SESSION_READ_ONLY_EXISTS);
        }
        let text = std::str::from_utf8(pin).map_err(|_| CKR_PIN_INCORRECT)?;
        let (username, password) = text.split_once(':').ok_or(CKR_PIN_INCORRECT)?;
        let mut last = CKR_PIN_INCORRECT;
        for role in roles {
            match self.runtime.block_on(self.cluster.login(username, *role, password)) {
                Ok(session) => {
                    self.login = Some(Login { session, user_type, admin: *role == Role::Admin });
                    return Ok(());
                }
                Err(e @ ClientError::Unauthenticated(_)) => last = rv(&e, Doing::Login, false),
                Err(e) => return Err(rv(&e, Doing::Login, false)),
            }
        }
        Err(last)
    }

    pub(crate) fn logout(&mut self, handle: CK_SESSION_HANDLE) -> Result<(), CK_RV> {
        self.session(handle)?;
        if self.login.is_none() {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        self.end_login();
        Ok(())
    }

    pub(crate) fn find_init(&mut self, handle: CK_SESSION_HANDLE, template: &[Attribute]) -> Result<(), CK_RV> {
        if self.session(handle)?.find.is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let found = match (&self.login, object::filters(template)) {
            // Every key is private to its users: nothing is visible logged out.
            (None, _) | (_, None) => Vec::new(),
            (Some(login), Some(filters)) => {
                let page = self
                    .runtime
                    .block_on(login.session.list_keys(&filters, 0, None))
                    .map_err(|e| rv(&e, Doing::Reading, login.admin))?;
                let keys: Vec<String> = page
                    .keys
                    .into_iter()
                    .filter(|k| object::matches(&k.info, template))
                    .map(|k| k.info.reference)
                    .collect();
                keys.iter().map(|r| self.objects.handle(r)).collect()
            }
        };
        self.session_mut(handle)?.find = Some(found);
        Ok(())
    }

    pub(crate) fn find(&mut self, handle: CK_SESSION_HANDLE, max: usize) -> Result<Vec<CK_OBJECT_HANDLE>, CK_RV> {
        let found = self.session_mut(handle)?.find.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let n = max.min(found.len());
        Ok(found.drain(..n).collect())
    }

    pub(crate) fn find_final(&mut self, handle: CK_SESSION_HANDLE) -> Result<(), CK_RV> {
        self.session_mut(handle)?.find.take().ok_or(CKR_OPERATION_NOT_INITIALIZED).map(drop)
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

    /// Generates a key pair; returns (public, private) handles.
    pub(crate) fn generate_key_pair(
        &mut self,
        handle: CK_SESSION_HANDLE,
        mechanism: CK_MECHANISM_TYPE,
        parameter_len: usize,
        public: &[Attribute],
        private: &[Attribute],
    ) -> Result<(CK_OBJECT_HANDLE, CK_OBJECT_HANDLE), CK_RV> {
        let session = self.session(handle)?;
        let family = match mechanism {
            CKM_EC_KEY_PAIR_GEN => Family::Ec,
            CKM_RSA_PKCS_KEY_PAIR_GEN => Family::Rsa,
            _ => return Err(CKR_MECHANISM_INVALID),
        };
        if parameter_len != 0 {
            return Err(CKR_MECHANISM_PARAM_INVALID);
        }
        let request = object::pair_request(family, public, private)?;
        if request.token && !session.read_write {
            return Err(CKR_SESSION_READ_ONLY);
        }
        let login = self.login.as_ref().ok_or(CKR_USER_NOT_LOGGED_IN)?;
        let (public, private) = self
            .runtime
            .block_on(login.session.generate_key_pair(&request.spec, &request.public, &request.private))
            .map_err(|e| rv(&e, Doing::Creating, login.admin))?;
        Ok((self.objects.handle(&public.info.reference), self.objects.handle(&private.info.reference)))
    }

    pub(crate) fn destroy(&mut self, handle: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> Result<(), CK_RV> {
        let read_write = self.session(handle)?.read_write;
        let key = self.key(object, Doing::Destroying)?;
        if !key.session && !read_write {
            return Err(CKR_SESSION_READ_ONLY);
        }
        let login = self.login.as_ref().ok_or(CKR_USER_NOT_LOGGED_IN)?;
        self.runtime
            .block_on(login.session.delete_key(&key.reference))
            .map_err(|e| rv(&e, Doing::Destroying, login.admin))?;
        self.objects.forget(object);
        Ok(())
    }

    pub(crate) fn sign_init(
        &mut self,
        handle: CK_SESSION_HANDLE,
        mechanism: CK_MECHANISM_TYPE,
        parameter_len: usize,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), CK_RV> {
        self.begin(handle, mechanism, parameter_len, key, Use::Sign, |s| &mut s.sign)
    }

    /// Signs `data`, or with `room` `None` (or too small) says how long the
    /// signature is. Any other outcome ends the operation.
    pub(crate) fn sign(
        &mut self,
        handle: CK_SESSION_HANDLE,
        data: &[u8],
        room: Option<usize>,
    ) -> Result<Signed, CK_RV> {
        let operation = self.session(handle)?.sign.clone().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        match room {
            None => return Ok(Signed::Length { len: operation.signature_len, fits: true }),
            Some(room) if room < operation.signature_len => {
                return Ok(Signed::Length { len: operation.signature_len, fits: false });
            }
            Some(_) => {}
        }
        self.session_mut(handle)?.sign = None;
        let (mechanism, hash, input, is_digest) = operation.signing.request(data)?;
        let login = self.login.as_ref().ok_or(CKR_USER_NOT_LOGGED_IN)?;
        let signature = self
            .runtime
            .block_on(login.session.sign(&operation.reference, mechanism, Some(hash), input, is_digest))
            .map_err(|e| rv(&e, Doing::Using, login.admin))?;
        if signature.len() != operation.signature_len {
            tracing::debug!(len = signature.len(), "the HSM's signature has an unexpected length");
            return Err(CKR_DEVICE_ERROR);
        }
        Ok(Signed::Signature(signature))
    }

    pub(crate) fn verify_init(
        &mut self,
        handle: CK_SESSION_HANDLE,
        mechanism: CK_MECHANISM_TYPE,
        parameter_len: usize,
        key: CK_OBJECT_HANDLE,
    ) -> Result<(), CK_RV> {
        self.begin(handle, mechanism, parameter_len, key, Use::Verify, |s| &mut s.verify)
    }

    /// Starts a sign or verify operation in the session's `slot` for it,
    /// unless one is already active there.
    fn begin(
        &mut self,
        handle: CK_SESSION_HANDLE,
        mechanism: CK_MECHANISM_TYPE,
        parameter_len: usize,
        key: CK_OBJECT_HANDLE,
        usage: Use,
        slot: fn(&mut Session) -> &mut Option<Operation>,
    ) -> Result<(), CK_RV> {
        if slot(self.session_mut(handle)?).is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let operation = self.operation(mechanism, parameter_len, key, usage)?;
        *slot(self.session_mut(handle)?) = Some(operation);
        Ok(())
    }

    /// Verifies `signature` over `data`, ending the operation.
    pub(crate) fn verify(&mut self, handle: CK_SESSION_HANDLE, data: &[u8], signature: &[u8]) -> Result<(), CK_RV> {
        let operation = self.session_mut(handle)?.verify.take().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if signature.len() != operation.signature_len {
            return Err(CKR_SIGNATURE_LEN_RANGE);
        }
        let (mechanism, hash, input, is_digest) = operation.signing.request(data)?;
        let login = self.login.as_ref().ok_or(CKR_USER_NOT_LOGGED_IN)?;
        let valid = self
            .runtime
            .block_on(login.session.verify(&operation.reference, mechanism, Some(hash), input, is_digest, signature))
            .map_err(|e| rv(&e, Doing::Using, login.admin))?;
        if valid { Ok(()) } else { Err(CKR_SIGNATURE_INVALID) }
    }

    /// Multi-part signing and verifying (`C_SignUpdate`, `C_SignFinal`,
    /// `C_VerifyUpdate`, `C_VerifyFinal`) are not in this library yet. As
    /// any failed call of theirs must, refusing ends the operation, so that
    /// the application can start another (a single-part one).
    pub(crate) fn refuse_multi_part(&mut self, handle: CK_SESSION_HANDLE, signing: bool) -> Result<(), CK_RV> {
        let session = self.session_mut(handle)?;
        let operation = if signing { &mut session.sign } else { &mut session.verify };
        operation.take().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        Err(CKR_FUNCTION_NOT_SUPPORTED)
    }

    /// Checks a key against a mechanism for one use.
    fn operation(
        &self,
        mechanism: CK_MECHANISM_TYPE,
        parameter_len: usize,
        key: CK_OBJECT_HANDLE,
        usage: Use,
    ) -> Result<Operation, CK_RV> {
        let signing = Signing::from_mechanism(mechanism).ok_or(CKR_MECHANISM_INVALID)?;
        if parameter_len != 0 {
            return Err(CKR_MECHANISM_PARAM_INVALID);
        }
        if self.login.is_none() {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        let info = self.key(key, Doing::Using).map_err(|e| match e {
            CKR_OBJECT_HANDLE_INVALID => CKR_KEY_HANDLE_INVALID,
            e => e,
        })?;
        if object::family(&info) != Some(signing.family) {
            return Err(CKR_KEY_TYPE_INCONSISTENT);
        }
        let (class, flag) = match usage {
            Use::Sign => (CKO_PRIVATE_KEY, "sign"),
            Use::Verify => (CKO_PUBLIC_KEY, "verify"),
        };
        if object::class(&info) == Some(class) && info.attribute(flag) != Some("true") {
            return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
        }
        if usage == Use::Sign && object::class(&info) != Some(CKO_PRIVATE_KEY) {
            return Err(CKR_KEY_TYPE_INCONSISTENT);
        }
        let signature_len = object::signature_len(&info).ok_or(CKR_KEY_TYPE_INCONSISTENT)?;
        Ok(Operation { reference: info.reference, signing, signature_len })
    }

    /// The key behind an object handle, as the HSM shows it now.
    fn key(&self, object: CK_OBJECT_HANDLE, doing: Doing) -> Result<KeyInfo, CK_RV> {
        let reference = self.objects.reference(object).ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        let login = self.login.as_ref().ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        let filters = [("key-reference".to_owned(), reference.to_owned())];
        let page = self
            .runtime
            .block_on(login.session.list_keys(&filters, 0, None))
            .map_err(|e| rv(&e, doing, login.admin))?;
        page.keys.into_iter().next().map(|k| k.info).ok_or(CKR_OBJECT_HANDLE_INVALID)
    }

    fn session(&self, handle: CK_SESSION_HANDLE) -> Result<&Session, CK_RV> {
        self.sessions.get(&handle).ok_or(CKR_SESSION_HANDLE_INVALID)
    }

    fn session_mut(&mut self, handle: CK_SESSION_HANDLE) -> Result<&mut Session, CK_RV> {
        self.sessions.get_mut(&handle).ok_or(CKR_SESSION_HANDLE_INVALID)
    }

    /// Logs out of the HSMs (best effort: a session the HSM no longer has
    /// is gone anyway) and ends every operation that needed the login.
    fn end_login(&mut self) {
        if let Some(login) = self.login.take()
            && let Err(e) = self.runtime.block_on(login.session.logout())
        {
            tracing::debug!(error = %e, "logout failed");
        }
        for session in self.sessions.values_mut() {
            session.find = None;
            session.sign = None;
            session.verify = None;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Sign,
    Verify,
}
