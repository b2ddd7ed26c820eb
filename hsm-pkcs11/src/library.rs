//! [`Library`]: the state between `C_Initialize` and `C_Finalize`, and every
//! PKCS#11 operation as a safe Rust method.
//!
//! One token in one slot stands for the whole cluster. The login is the
//! application's, shared by all its sessions (as PKCS#11 has it), and is a
//! [`ClusterSession`]: logged in on every HSM, key creation copied to all of
//! them, crypto spread over them. Async calls run on a Tokio runtime the
//! library owns, through `block_on`; the caller's threads wait.
//!
//! # Locking
//! No lock is held across a call to the HSMs except the calling session's
//! own: PKCS#11 sessions are independent, so calls in different sessions
//! run at once, from as many threads as the application has. The session
//! table, the login and the object handles each sit behind their own lock,
//! held only to read or change them. Logging in and out is serialised by
//! one more lock, so that two threads cannot both log in.
//!
//! Object handles are numbers the library hands out for key references, so
//! that a handle stays valid while its key exists.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock},
};

use cryptoki_sys::{
    CK_ATTRIBUTE_TYPE, CK_FLAGS, CK_OBJECT_CLASS, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_STATE, CK_USER_TYPE,
    CKF_RW_SESSION, CKF_SERIAL_SESSION, CKM_AES_KEY_GEN, CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EC_KEY_PAIR_GEN,
    CKM_GENERIC_SECRET_KEY_GEN, CKM_RSA_PKCS_KEY_PAIR_GEN, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_SECRET_KEY,
    CKR_ARGUMENTS_BAD, CKR_DATA_LEN_RANGE, CKR_DEVICE_ERROR, CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_GENERAL_ERROR,
    CKR_HOST_MEMORY, CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT,
    CKR_KEY_UNEXTRACTABLE, CKR_MECHANISM_INVALID, CKR_OBJECT_HANDLE_INVALID, CKR_OPERATION_ACTIVE,
    CKR_OPERATION_NOT_INITIALIZED, CKR_PIN_INCORRECT, CKR_SESSION_HANDLE_INVALID, CKR_SESSION_PARALLEL_NOT_SUPPORTED,
    CKR_SESSION_READ_ONLY, CKR_SESSION_READ_ONLY_EXISTS, CKR_SESSION_READ_WRITE_SO_EXISTS, CKR_SIGNATURE_INVALID,
    CKR_SIGNATURE_LEN_RANGE, CKR_UNWRAPPING_KEY_HANDLE_INVALID, CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
    CKR_USER_ALREADY_LOGGED_IN, CKR_USER_ANOTHER_ALREADY_LOGGED_IN, CKR_USER_NOT_LOGGED_IN, CKR_USER_TYPE_INVALID,
    CKR_WRAPPING_KEY_HANDLE_INVALID, CKR_WRAPPING_KEY_TYPE_INCONSISTENT, CKS_RO_PUBLIC_SESSION, CKS_RO_USER_FUNCTIONS,
    CKS_RW_PUBLIC_SESSION, CKS_RW_SO_FUNCTIONS, CKS_RW_USER_FUNCTIONS, CKU_CONTEXT_SPECIFIC, CKU_SO, CKU_USER,
};
use hsm_client::{
    ClientConfig, ClientError, Cluster, ClusterSession, Decrypt, Encrypt, KeyInfo, ListKeys, Role, SetKeyAttribute,
    Sign, UnwrapKey, Verify, WrapKey, WrapParams,
    keys::{HashAlgorithm, KeyType, SymmetricKeyType},
};
use tokio::runtime::Runtime;
use zeroize::Zeroizing;

use crate::{
    error::{Doing, rv},
    mechanism::{self, Ciphering, Family, Input, IvOut, MAX_DATA_LEN, Mechanism, Signing},
    object::{self, Attribute, Material, Value},
};

/// The environment variable naming a `client.env` file to read the
/// configuration from (instead of `HSM_ENDPOINTS` and `HSM_CA_CERT`).
pub const CONFIG_ENV: &str = "HSM_PKCS11_CONFIG";

/// How long `C_Finalize` waits for the runtime's threads to stop.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The one slot's id.
pub(crate) const SLOT_ID: cryptoki_sys::CK_SLOT_ID = 1;

/// A lock, even after a panic elsewhere poisoned it: what it guards (maps
/// of sessions and handles, a login) is never left half-changed.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything between `C_Initialize` and `C_Finalize`.
#[derive(Debug)]
pub(crate) struct Library {
    runtime: Runtime,
    cluster: Cluster,
    login: RwLock<Option<Arc<Login>>>,
    /// Held while logging in or out.
    login_change: Mutex<()>,
    /// Logins ended while a call in another thread still held them: logged
    /// out of the HSMs at the next logout or at `C_Finalize`, once free.
    retired: Mutex<Vec<Arc<Login>>>,
    sessions: Mutex<Sessions>,
    objects: Mutex<Handles>,
    /// Whether the cluster is in non-FIPS mode (it offers triple DES), read
    /// from the cluster info on first need and kept: a cluster's mode is
    /// fixed when it is made.
    non_fips: OnceLock<bool>,
}

#[derive(Debug, Default)]
struct Sessions {
    open: BTreeMap<CK_SESSION_HANDLE, Open>,
    last: CK_SESSION_HANDLE,
}

/// An open session: its fixed flag, readable without waiting on a busy
/// session, and its state behind its own lock.
#[derive(Debug, Clone)]
struct Open {
    read_write: bool,
    state: Arc<Mutex<Session>>,
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
    /// Handles found by `C_FindObjectsInit`, not yet returned.
    find: Option<Vec<CK_OBJECT_HANDLE>>,
    operations: [Option<Operation>; 5],
}

/// The kinds of operation a session can have active, one of each at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Sign,
    Verify,
    Encrypt,
    Decrypt,
    Digest,
}

impl Slot {
    fn index(self) -> usize {
        self as usize
    }

    /// What a refusal of the input means here: more than the HSM takes
    /// is, to a decryption, a ciphertext no encryption made
    /// (`CKR_ENCRYPTED_DATA_LEN_RANGE`).
    fn input_error(self, rv: CK_RV) -> CK_RV {
        if self == Slot::Decrypt && rv == CKR_DATA_LEN_RANGE { CKR_ENCRYPTED_DATA_LEN_RANGE } else { rv }
    }
}

/// An operation between its `Init` and its end.
#[derive(Debug)]
struct Operation {
    kind: Kind,
    input: Input,
    /// The result, made by the first call that needed it and kept until a
    /// call with room for it takes it (PKCS#11's length protocol).
    output: Option<Zeroizing<Vec<u8>>>,
}

#[derive(Debug)]
enum Kind {
    Sign { reference: String, signing: Signing },
    Verify { reference: String, signing: Signing, signature_len: Option<usize> },
    Encrypt { reference: String, ciphering: Ciphering },
    Decrypt { reference: String, ciphering: Ciphering },
    Digest { hash: HashAlgorithm },
}

/// A mechanism read for a keyed operation.
#[derive(Debug)]
enum Parsed {
    Signing(Signing),
    Ciphering(Ciphering),
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

    fn reference(&self, handle: CK_OBJECT_HANDLE) -> Option<String> {
        self.by_handle.get(&handle).cloned()
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

/// The outcome of a call that hands back bytes, before they are copied
/// out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    /// The caller asked for the length (or gave too little room: `fits`
    /// false); the operation goes on.
    Length {
        len: usize,
        fits: bool,
    },
    Bytes(Zeroizing<Vec<u8>>),
}

/// [`Output`], and an IV the HSM made that goes back to the caller's
/// parameter (AES-GCM encryption), the first time the result is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Produced {
    pub(crate) output: Output,
    pub(crate) iv: Option<(IvOut, Vec<u8>)>,
}

/// The length protocol over a finished result.
fn offer(bytes: &[u8], room: Option<usize>) -> Option<Output> {
    match room {
        None => Some(Output::Length { len: bytes.len(), fits: true }),
        Some(room) if room < bytes.len() => Some(Output::Length { len: bytes.len(), fits: false }),
        Some(_) => None,
    }
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
            .worker_threads(2)
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
            login: RwLock::new(None),
            login_change: Mutex::new(()),
            retired: Mutex::new(Vec::new()),
            sessions: Mutex::new(Sessions::default()),
            objects: Mutex::new(Handles::default()),
            non_fips: OnceLock::new(),
        })
    }

    /// Logs out (best effort) before the runtime goes.
    pub(crate) fn shutdown(&self) {
        self.end_login();
    }

    /// Ends the library: its connections, then its runtime, whose threads
    /// are given [`CLOSE_TIMEOUT`] to stop (so that `C_Finalize` never
    /// hangs on a call the HSM does not answer).
    pub(crate) fn close(self) {
        let Library { runtime, cluster, login, login_change, retired, sessions, objects, non_fips } = self;
        drop((cluster, login, login_change, retired, sessions, objects, non_fips));
        runtime.shutdown_timeout(CLOSE_TIMEOUT);
    }

    pub(crate) fn token_info(&self) -> Result<TokenInfo, CK_RV> {
        let info = self.runtime.block_on(self.cluster.cluster_info()).map_err(|e| rv(&e, Doing::Reading, false))?;
        let sessions = lock(&self.sessions);
        Ok(TokenInfo {
            cluster_id: info.cluster_id,
            sessions: sessions.open.len(),
            rw_sessions: sessions.open.values().filter(|s| s.read_write).count(),
        })
    }

    /// Whether the cluster is in non-FIPS mode. Until an HSM answers, the
    /// library takes it for FIPS (CloudHSM's default) and asks again next
    /// time.
    fn non_fips(&self) -> bool {
        if let Some(non_fips) = self.non_fips.get() {
            return *non_fips;
        }
        match self.runtime.block_on(self.cluster.cluster_info()) {
            Ok(info) => *self.non_fips.get_or_init(|| info.mode == "NON_FIPS"),
            Err(_) => false,
        }
    }

    /// `C_GetMechanismList`: triple DES only on a non-FIPS cluster.
    pub(crate) fn mechanisms(&self) -> Vec<cryptoki_sys::CK_MECHANISM_TYPE> {
        mechanism::offered(self.non_fips())
    }

    /// Refuses a mechanism the cluster's mode does not offer, as if it did
    /// not exist (`CKR_MECHANISM_INVALID`).
    pub(crate) fn permit(&self, kind: cryptoki_sys::CK_MECHANISM_TYPE) -> Result<(), CK_RV> {
        if mechanism::DES3_MECHANISMS.contains(&kind) && !self.non_fips() {
            return Err(CKR_MECHANISM_INVALID);
        }
        Ok(())
    }

    /// Refuses a new key of a type the cluster's mode does not hold: a
    /// triple DES (`des3`) key on a FIPS cluster.
    fn permit_des3_key(&self, des3: bool) -> Result<(), CK_RV> {
        if des3 && !self.non_fips() {
            return Err(cryptoki_sys::CKR_ATTRIBUTE_VALUE_INVALID);
        }
        Ok(())
    }

    pub(crate) fn open_session(&self, flags: CK_FLAGS) -> Result<CK_SESSION_HANDLE, CK_RV> {
        if flags & CKF_SERIAL_SESSION == 0 {
            return Err(CKR_SESSION_PARALLEL_NOT_SUPPORTED);
        }
        let read_write = flags & CKF_RW_SESSION != 0;
        if !read_write && self.current().is_some_and(|l| l.user_type == CKU_SO) {
            return Err(CKR_SESSION_READ_WRITE_SO_EXISTS);
        }
        let mut sessions = lock(&self.sessions);
        sessions.last += 1;
        let handle = sessions.last;
        sessions.open.insert(handle, Open { read_write, state: Arc::default() });
        Ok(handle)
    }

    /// Closes a session; closing the last one logs out, as PKCS#11 says.
    pub(crate) fn close_session(&self, handle: CK_SESSION_HANDLE) -> Result<(), CK_RV> {
        let last = {
            let mut sessions = lock(&self.sessions);
            sessions.open.remove(&handle).ok_or(CKR_SESSION_HANDLE_INVALID)?;
            sessions.open.is_empty()
        };
        if last {
            self.end_login();
        }
        Ok(())
    }

    pub(crate) fn close_all_sessions(&self) {
        lock(&self.sessions).open.clear();
        self.end_login();
    }

    /// (state, flags) of a session.
    pub(crate) fn session_info(&self, handle: CK_SESSION_HANDLE) -> Result<(CK_STATE, CK_FLAGS), CK_RV> {
        let read_write = self.open(handle)?.read_write;
        let state = match (self.current().map(|l| l.user_type), read_write) {
            (None, false) => CKS_RO_PUBLIC_SESSION,
            (None, true) => CKS_RW_PUBLIC_SESSION,
            (Some(CKU_SO), _) => CKS_RW_SO_FUNCTIONS,
            (Some(_), false) => CKS_RO_USER_FUNCTIONS,
            (Some(_), true) => CKS_RW_USER_FUNCTIONS,
        };
        let flags = CKF_SERIAL_SESSION | if read_write { CKF_RW_SESSION } else { 0 };
        Ok((state, flags))
    }

    /// Logs in with a CloudHSM PIN, `username:password`. CKU_SO logs in an
    /// admin; CKU_USER a crypto user, or else an admin of that name (the HSM
    /// counts a failed attempt only against the user whose role was asked
    /// for, so trying both costs no extra failure).
    pub(crate) fn login(
        &self,
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
        let _change = lock(&self.login_change);
        match self.current() {
            Some(l) if l.user_type == user_type => return Err(CKR_USER_ALREADY_LOGGED_IN),
            Some(_) => return Err(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
            None => {}
        }
        if user_type == CKU_SO && lock(&self.sessions).open.values().any(|s| !s.read_write) {
            return Err(CKR_SESSION_READ_ONLY_EXISTS);
        }
        let text = std::str::from_utf8(pin).map_err(|_| CKR_PIN_INCORRECT)?;
        let (username, password) = text.split_once(':').ok_or(CKR_PIN_INCORRECT)?;
        let mut last = CKR_PIN_INCORRECT;
        for role in roles {
            match self.runtime.block_on(self.cluster.login(username, *role, password)) {
                Ok(session) => {
                    let login = Login { session, user_type, admin: *role == Role::Admin };
                    *self.login.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(login));
                    return Ok(());
                }
                Err(e @ ClientError::Unauthenticated(_)) => last = rv(&e, Doing::Login, false),
                Err(e) => return Err(rv(&e, Doing::Login, false)),
            }
        }
        Err(last)
    }

    pub(crate) fn logout(&self, handle: CK_SESSION_HANDLE) -> Result<(), CK_RV> {
        self.session(handle)?;
        if self.current().is_none() {
            return Err(CKR_USER_NOT_LOGGED_IN);
        }
        self.end_login();
        Ok(())
    }

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

    /// `len` bytes from the HSMs' generators, in calls of at most 16 KiB.
    pub(crate) fn random(&self, handle: CK_SESSION_HANDLE, len: usize) -> Result<Zeroizing<Vec<u8>>, CK_RV> {
        self.session(handle)?;
        let login = self.logged_in()?;
        let mut out = Zeroizing::new(Vec::new());
        out.try_reserve_exact(len).map_err(|_| CKR_HOST_MEMORY)?;
        while out.len() < len {
            let n = (len - out.len()).min(MAX_DATA_LEN);
            let n32 = u32::try_from(n).map_err(|_| CKR_ARGUMENTS_BAD)?;
            let chunk = self.call(&login, Doing::Using, login.session.generate_random(n32))?;
            if chunk.len() != n {
                return Err(CKR_DEVICE_ERROR);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Starts an operation of `slot`'s kind with `mechanism` (and `key`,
    /// for all but digests), unless one is already active.
    pub(crate) fn begin(
        &self,
        handle: CK_SESSION_HANDLE,
        slot: Slot,
        mechanism: &Mechanism,
        key: Option<CK_OBJECT_HANDLE>,
    ) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        let mut session = lock(&session);
        if session.operations[slot.index()].is_some() {
            return Err(CKR_OPERATION_ACTIVE);
        }
        let operation = self.operation(slot, mechanism, key)?;
        session.operations[slot.index()] = Some(operation);
        Ok(())
    }

    /// Whether `slot`'s operation is active: `CKR_OPERATION_NOT_INITIALIZED`
    /// if not.
    pub(crate) fn operation_active(&self, handle: CK_SESSION_HANDLE, slot: Slot) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        let active = lock(&session).operations[slot.index()].is_some();
        if active { Ok(()) } else { Err(CKR_OPERATION_NOT_INITIALIZED) }
    }

    /// Ends `slot`'s operation, if one is active.
    pub(crate) fn end(&self, handle: CK_SESSION_HANDLE, slot: Slot) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        lock(&session).operations[slot.index()] = None;
        Ok(())
    }

    /// Takes a part of the data. A failure ends the operation.
    pub(crate) fn update(&self, handle: CK_SESSION_HANDLE, slot: Slot, data: &[u8]) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        let mut session = lock(&session);
        let operation = session.operations[slot.index()].as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        if operation.output.is_some() {
            // A single-part call already made the result.
            return Err(CKR_OPERATION_ACTIVE);
        }
        let result = operation.input.update(data).map_err(|e| slot.input_error(e));
        if result.is_err() {
            session.operations[slot.index()] = None;
        }
        result
    }

    /// Finishes a sign, encrypt, decrypt or digest operation: single-part
    /// with `data`, or the last step of a multi-part one without. With
    /// `room` `None` (or too small) says how long the result is, and the
    /// operation goes on; any other outcome ends it.
    pub(crate) fn finish(
        &self,
        handle: CK_SESSION_HANDLE,
        slot: Slot,
        data: Option<&[u8]>,
        room: Option<usize>,
    ) -> Result<Produced, CK_RV> {
        let session = self.session(handle)?;
        let mut session = lock(&session);
        let ops = &mut session.operations[slot.index()];
        let operation = ops.as_mut().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let mut iv = None;
        if operation.output.is_none() {
            let made = data
                .map_or(Ok(()), |d| operation.input.update(d).map_err(|e| slot.input_error(e)))
                .and_then(|()| self.run(operation));
            match made {
                Ok((bytes, back)) => {
                    operation.output = Some(bytes);
                    iv = back;
                }
                Err(e) => {
                    *ops = None;
                    return Err(e);
                }
            }
        }
        let bytes = operation.output.as_ref().ok_or(CKR_GENERAL_ERROR)?;
        let output = match offer(bytes, room) {
            Some(length) => length,
            None => Output::Bytes(ops.take().and_then(|o| o.output).ok_or(CKR_GENERAL_ERROR)?),
        };
        Ok(Produced { output, iv })
    }

    /// Verifies `signature` over the data (`data`, single-part, or what
    /// the updates gave), ending the operation.
    pub(crate) fn verify(&self, handle: CK_SESSION_HANDLE, data: Option<&[u8]>, signature: &[u8]) -> Result<(), CK_RV> {
        let session = self.session(handle)?;
        let mut operation =
            lock(&session).operations[Slot::Verify.index()].take().ok_or(CKR_OPERATION_NOT_INITIALIZED)?;
        let Kind::Verify { reference, signing, signature_len } = &operation.kind else {
            return Err(CKR_GENERAL_ERROR);
        };
        if signature_len.is_some_and(|n| n != signature.len()) {
            return Err(CKR_SIGNATURE_LEN_RANGE);
        }
        if let Some(data) = data {
            operation.input.update(data)?;
        }
        let r = signing.request(std::mem::take(&mut operation.input))?;
        let login = self.logged_in()?;
        let verify = login.session.verify(Verify {
            hash: r.hash,
            data_is_digest: r.is_digest,
            ..Verify::new(reference, r.mechanism, &r.data, signature)
        });
        let valid = self.call(&login, Doing::Using, verify)?;
        if valid { Ok(()) } else { Err(CKR_SIGNATURE_INVALID) }
    }

    /// Runs an operation's HSM call over its whole input: the result, and
    /// an IV the HSM made for the caller's parameter.
    #[expect(clippy::type_complexity, reason = "the result and the IV to hand back, used once")]
    fn run(&self, operation: &mut Operation) -> Result<(Zeroizing<Vec<u8>>, Option<(IvOut, Vec<u8>)>), CK_RV> {
        let login = self.logged_in()?;
        let input = std::mem::take(&mut operation.input);
        match &operation.kind {
            Kind::Sign { reference, signing } => {
                let r = signing.request(input)?;
                let sign = login.session.sign(Sign {
                    hash: r.hash,
                    data_is_digest: r.is_digest,
                    ..Sign::new(reference, r.mechanism, &r.data)
                });
                Ok((Zeroizing::new(self.call(&login, Doing::Using, sign)?), None))
            }
            Kind::Encrypt { reference, ciphering: c } => {
                let data = input.finish();
                c.check_len(data.len())?;
                let encrypt = login.session.encrypt(Encrypt {
                    hash: c.hash,
                    ..Encrypt::new(reference, c.cipher, &data).iv(&c.iv).aad(&c.aad)
                });
                let (iv, ciphertext) = self.call(&login, Doing::Using, encrypt)?;
                Ok((Zeroizing::new(ciphertext), c.iv_out.map(|out| (out, iv))))
            }
            Kind::Decrypt { reference, ciphering: c } => {
                let data = input.finish();
                c.check_len(data.len())?;
                let plaintext = self
                    .runtime
                    .block_on(login.session.decrypt(Decrypt {
                        hash: c.hash,
                        ..Decrypt::new(reference, c.cipher, &data).iv(&c.iv).aad(&c.aad)
                    }))
                    .map_err(|e| match e {
                        // A ciphertext that does not open (tag, padding).
                        ClientError::InvalidArgument(_) => cryptoki_sys::CKR_ENCRYPTED_DATA_INVALID,
                        e => rv(&e, Doing::Using, login.admin),
                    })?;
                Ok((Zeroizing::new(plaintext), None))
            }
            Kind::Digest { hash } => {
                let data = input.finish();
                let digest = self.call(&login, Doing::Using, login.session.digest(*hash, &data))?;
                Ok((Zeroizing::new(digest), None))
            }
            Kind::Verify { .. } => Err(CKR_GENERAL_ERROR),
        }
    }

    /// Checks a mechanism (and key) for one kind of operation.
    fn operation(&self, slot: Slot, mechanism: &Mechanism, key: Option<CK_OBJECT_HANDLE>) -> Result<Operation, CK_RV> {
        self.permit(mechanism.kind)?;
        let parsed = match slot {
            Slot::Digest => {
                let hash = mechanism::digesting(mechanism)?;
                self.logged_in()?;
                return Ok(Operation { kind: Kind::Digest { hash }, input: Input::default(), output: None });
            }
            Slot::Sign | Slot::Verify => Parsed::Signing(Signing::from_mechanism(mechanism)?),
            Slot::Encrypt | Slot::Decrypt => {
                Parsed::Ciphering(Ciphering::from_mechanism(mechanism, slot == Slot::Encrypt)?)
            }
        };
        let family = match &parsed {
            Parsed::Signing(signing) => signing.family,
            Parsed::Ciphering(ciphering) => ciphering.family,
        };
        self.logged_in()?;
        let key = key.ok_or(CKR_KEY_HANDLE_INVALID)?;
        let info = self.key_for(key, Some(family), CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT)?;
        let (classes, flag): ([CK_OBJECT_CLASS; 2], &str) = match slot {
            Slot::Sign => ([CKO_PRIVATE_KEY, CKO_SECRET_KEY], "sign"),
            Slot::Verify => ([CKO_PUBLIC_KEY, CKO_SECRET_KEY], "verify"),
            Slot::Encrypt => ([CKO_PUBLIC_KEY, CKO_SECRET_KEY], "encrypt"),
            _ => ([CKO_PRIVATE_KEY, CKO_SECRET_KEY], "decrypt"),
        };
        if !object::class(&info).is_some_and(|c| classes.contains(&c)) {
            return Err(CKR_KEY_TYPE_INCONSISTENT);
        }
        if info.attribute(flag) != Some("true") {
            return Err(CKR_KEY_FUNCTION_NOT_PERMITTED);
        }
        let reference = info.reference.clone();
        // Raw RSA's length rules are the modulus's.
        let modulus_len = object::signature_len(&info).filter(|_| family == Family::Rsa);
        let parsed = match parsed {
            Parsed::Signing(signing) => Parsed::Signing(signing.for_modulus(modulus_len)),
            Parsed::Ciphering(ciphering) => Parsed::Ciphering(ciphering.for_modulus(modulus_len)),
        };
        let (kind, input) = match (slot, parsed) {
            (Slot::Sign, Parsed::Signing(signing)) => (Kind::Sign { reference, signing }, signing.input()),
            (_, Parsed::Signing(signing)) => {
                let signature_len = signing.fixed_len().or_else(|| object::signature_len(&info));
                (Kind::Verify { reference, signing, signature_len }, signing.input())
            }
            (Slot::Encrypt, Parsed::Ciphering(ciphering)) => (Kind::Encrypt { reference, ciphering }, Input::default()),
            (_, Parsed::Ciphering(ciphering)) => (Kind::Decrypt { reference, ciphering }, Input::default()),
        };
        Ok(Operation { kind, input, output: None })
    }

    /// The key behind a handle given for a use: a handle that names no key
    /// is `invalid`, a key not of `family` is `inconsistent`.
    fn key_for(
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
    fn key(&self, object: CK_OBJECT_HANDLE, doing: Doing) -> Result<KeyInfo, CK_RV> {
        let reference = lock(&self.objects).reference(object).ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        let login = self.current().ok_or(CKR_OBJECT_HANDLE_INVALID)?;
        let filters = [("key-reference".to_owned(), reference)];
        let page = self.call(&login, doing, login.session.list_keys(ListKeys::default().filters(&filters)))?;
        page.keys.into_iter().next().map(|k| k.info).ok_or(CKR_OBJECT_HANDLE_INVALID)
    }

    fn open(&self, handle: CK_SESSION_HANDLE) -> Result<Open, CK_RV> {
        lock(&self.sessions).open.get(&handle).cloned().ok_or(CKR_SESSION_HANDLE_INVALID)
    }

    fn session(&self, handle: CK_SESSION_HANDLE) -> Result<Arc<Mutex<Session>>, CK_RV> {
        Ok(self.open(handle)?.state)
    }

    /// Refuses a change to a token object (`token`) from a read-only
    /// session.
    fn may_write(&self, handle: CK_SESSION_HANDLE, token: bool) -> Result<(), CK_RV> {
        if token && !self.open(handle)?.read_write { Err(CKR_SESSION_READ_ONLY) } else { Ok(()) }
    }

    /// Waits on a call to the HSMs made under `login`; a refusal becomes
    /// the return value for what was being done.
    fn call<T>(
        &self,
        login: &Login,
        doing: Doing,
        call: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, CK_RV> {
        self.runtime.block_on(call).map_err(|e| rv(&e, doing, login.admin))
    }

    fn current(&self) -> Option<Arc<Login>> {
        self.login.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn logged_in(&self) -> Result<Arc<Login>, CK_RV> {
        self.current().ok_or(CKR_USER_NOT_LOGGED_IN)
    }

    /// Logs out of the HSMs (best effort: a session the HSM no longer has
    /// is gone anyway) and ends every operation that needed the login.
    fn end_login(&self) {
        let _change = lock(&self.login_change);
        let ended = self.login.write().unwrap_or_else(PoisonError::into_inner).take();
        let mut retired = lock(&self.retired);
        retired.extend(ended);
        // A login a call under way still holds waits for the next time.
        for login in std::mem::take(&mut *retired) {
            match Arc::try_unwrap(login) {
                Ok(login) => {
                    if let Err(e) = self.runtime.block_on(login.session.logout()) {
                        tracing::debug!(error = %e, "logout failed");
                    }
                }
                Err(held) => retired.push(held),
            }
        }
        drop(retired);
        let sessions: Vec<Open> = lock(&self.sessions).open.values().cloned().collect();
        for session in sessions {
            let mut session = lock(&session.state);
            session.find = None;
            session.operations = Default::default();
        }
    }
}
