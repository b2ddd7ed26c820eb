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
//!
//! # Layout
//! - `sessions`: the session table, the login, and logging in and out.
//! - `objects`: object handles for key references; search, attributes,
//!   key creation and import, wrapping and unwrapping.
//! - `operations`: sign, verify, encrypt, decrypt and digest, the one
//!   operation of each kind a session may have active; random numbers.
//!
//! Here: [`Library`] itself, starting and ending it, what it knows of the
//! cluster (its mode, its token information), and waiting on the HSMs.

mod objects;
mod operations;
mod sessions;

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock};

use cryptoki_sys::{CK_RV, CK_USER_TYPE, CKR_GENERAL_ERROR, CKR_MECHANISM_INVALID, CKR_USER_NOT_LOGGED_IN};
use hsm_client::{ClientConfig, ClientError, Cluster, ClusterSession};
use tokio::runtime::Runtime;

use crate::{
    error::{Doing, rv},
    mechanism,
};

pub(crate) use self::operations::{Output, Produced, Slot};
use self::{objects::Handles, sessions::Sessions};

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

/// The application's login.
#[derive(Debug)]
struct Login {
    session: ClusterSession,
    user_type: CK_USER_TYPE,
    /// An admin (with CKU_SO, or a CKU_USER PIN that names an admin): the
    /// HSM lets admins list keys but not use or make them.
    admin: bool,
}

/// What `C_GetTokenInfo` reports that the library does not know by itself.
#[derive(Debug, Clone)]
pub(crate) struct TokenInfo {
    pub(crate) cluster_id: String,
    pub(crate) sessions: usize,
    pub(crate) rw_sessions: usize,
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
}
