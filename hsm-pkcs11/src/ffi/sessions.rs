//! Session management (PKCS#11 v2.40 section 5.6): opening and closing
//! sessions, and logging in and out.

use std::ffi::c_void;

use cryptoki_sys::{
    CK_FLAGS, CK_NOTIFY, CK_RV, CK_SESSION_HANDLE, CK_SESSION_INFO, CK_SLOT_ID, CK_ULONG, CK_USER_TYPE, CK_UTF8CHAR,
    CKR_ARGUMENTS_BAD,
};
use zeroize::Zeroizing;

use super::{
    guard,
    memory::{input, write},
    slots::check_slot,
    state::with_library,
};
use crate::library::SLOT_ID;

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_OpenSession(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    _application: *mut c_void,
    _notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    guard(|| {
        if session.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let handle = with_library(|l| {
            check_slot(slot)?;
            l.open_session(flags)
        })?;
        // SAFETY: the caller's out-pointer, checked non-null above.
        unsafe { write(session, handle) }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn C_CloseSession(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| with_library(|l| l.close_session(session)))
}

#[unsafe(no_mangle)]
pub extern "C" fn C_CloseAllSessions(slot: CK_SLOT_ID) -> CK_RV {
    guard(|| {
        with_library(|l| {
            check_slot(slot)?;
            l.close_all_sessions();
            Ok(())
        })
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSessionInfo(session: CK_SESSION_HANDLE, info: *mut CK_SESSION_INFO) -> CK_RV {
    guard(|| {
        let (state, flags) = with_library(|l| l.session_info(session))?;
        // SAFETY: the caller's out-pointer.
        unsafe { write(info, CK_SESSION_INFO { slotID: SLOT_ID, state, flags, ulDeviceError: 0 }) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Login(
    session: CK_SESSION_HANDLE,
    user_type: CK_USER_TYPE,
    pin: *mut CK_UTF8CHAR,
    pin_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // A null PIN asks for a protected authentication path, which there
        // is not.
        if pin.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: the caller's PIN of `pin_len` bytes. Copied into a buffer
        // that is wiped when dropped.
        let pin = Zeroizing::new(unsafe { input(pin, pin_len) }?.to_vec());
        with_library(|l| l.login(session, user_type, &pin))
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn C_Logout(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| with_library(|l| l.logout(session)))
}
