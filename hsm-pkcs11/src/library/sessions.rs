//! The session table and the login: opening and closing sessions, their
//! state, and logging in and out (which ends every operation that needed
//! the login).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
};

use cryptoki_sys::{
    CK_FLAGS, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_STATE, CK_USER_TYPE, CKF_RW_SESSION, CKF_SERIAL_SESSION,
    CKR_OPERATION_NOT_INITIALIZED, CKR_PIN_INCORRECT, CKR_SESSION_HANDLE_INVALID, CKR_SESSION_PARALLEL_NOT_SUPPORTED,
    CKR_SESSION_READ_ONLY, CKR_SESSION_READ_ONLY_EXISTS, CKR_SESSION_READ_WRITE_SO_EXISTS, CKR_USER_ALREADY_LOGGED_IN,
    CKR_USER_ANOTHER_ALREADY_LOGGED_IN, CKR_USER_NOT_LOGGED_IN, CKR_USER_TYPE_INVALID, CKS_RO_PUBLIC_SESSION,
    CKS_RO_USER_FUNCTIONS, CKS_RW_PUBLIC_SESSION, CKS_RW_SO_FUNCTIONS, CKS_RW_USER_FUNCTIONS, CKU_CONTEXT_SPECIFIC,
    CKU_SO, CKU_USER,
};
use hsm_client::{ClientError, Role};
use zeroize::Zeroizing;

use super::{Library, Login, lock, operations::Operation};
use crate::error::{Doing, rv};

/// The open sessions, by handle; `last` is the last handle given, so that
/// none is given twice.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    pub(super) open: BTreeMap<CK_SESSION_HANDLE, Open>,
    last: CK_SESSION_HANDLE,
}

/// An open session: its fixed flag, readable without waiting on a busy
/// session, and its state behind its own lock.
#[derive(Debug, Clone)]
pub(super) struct Open {
    pub(super) read_write: bool,
    state: Arc<Mutex<Session>>,
}

/// One PKCS#11 session: its flags and the operations in progress.
#[derive(Debug, Default)]
pub(super) struct Session {
    /// Handles found by `C_FindObjectsInit`, not yet returned.
    pub(super) find: Option<Vec<CK_OBJECT_HANDLE>>,
    pub(super) operations: [Option<Operation>; 5],
}

impl Library {
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

    fn open(&self, handle: CK_SESSION_HANDLE) -> Result<Open, CK_RV> {
        lock(&self.sessions).open.get(&handle).cloned().ok_or(CKR_SESSION_HANDLE_INVALID)
    }

    pub(super) fn session(&self, handle: CK_SESSION_HANDLE) -> Result<Arc<Mutex<Session>>, CK_RV> {
        Ok(self.open(handle)?.state)
    }

    /// Refuses a change to a token object (`token`) from a read-only
    /// session.
    pub(super) fn may_write(&self, handle: CK_SESSION_HANDLE, token: bool) -> Result<(), CK_RV> {
        if token && !self.open(handle)?.read_write { Err(CKR_SESSION_READ_ONLY) } else { Ok(()) }
    }

    /// Logs out of the HSMs (best effort: a session the HSM no longer has
    /// is gone anyway) and ends every operation that needed the login.
    pub(super) fn end_login(&self) {
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
