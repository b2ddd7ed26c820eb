//! The general-purpose functions (PKCS#11 v2.40 section 5.4):
//! `C_Initialize`, `C_Finalize`, `C_GetInfo` and `C_GetFunctionList`.

use std::{
    ffi::c_void,
    sync::{Arc, PoisonError},
};

use cryptoki_sys::{
    CK_C_INITIALIZE_ARGS, CK_FUNCTION_LIST, CK_INFO, CK_RV, CK_VERSION, CKF_LIBRARY_CANT_CREATE_OS_THREADS,
    CKF_OS_LOCKING_OK, CKR_ARGUMENTS_BAD, CKR_CANT_LOCK, CKR_CRYPTOKI_ALREADY_INITIALIZED,
    CKR_CRYPTOKI_NOT_INITIALIZED, CKR_NEED_TO_CREATE_THREADS,
};

use super::{
    FUNCTION_LIST, guard,
    memory::{pad, read, write},
    state::{LIBRARY, Loaded, abandon_inherited, initialized},
};
use crate::library::Library;

/// The manufacturer the library, its slot and its token name.
pub(super) const MANUFACTURER: &str = "hsm-emulator";

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    guard(|| {
        // SAFETY: the caller's out-pointer. The list is static and never
        // written: PKCS#11 makes it read-only to the application.
        unsafe { write(list, (&raw const FUNCTION_LIST).cast_mut()) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Initialize(args: *mut c_void) -> CK_RV {
    guard(|| {
        if !args.is_null() {
            // SAFETY: non-null: PKCS#11 says it is a CK_C_INITIALIZE_ARGS.
            let args = unsafe { read(args.cast::<CK_C_INITIALIZE_ARGS>()) }?;
            if !args.pReserved.is_null() {
                return Err(CKR_ARGUMENTS_BAD);
            }
            let given = [
                args.CreateMutex.is_some(),
                args.DestroyMutex.is_some(),
                args.LockMutex.is_some(),
                args.UnlockMutex.is_some(),
            ];
            if given.iter().any(|g| *g) && !given.iter().all(|g| *g) {
                return Err(CKR_ARGUMENTS_BAD);
            }
            // Only the OS's locks are used: with the application's own
            // mutex functions and no OS locking allowed, the library cannot
            // lock.
            if given[0] && args.flags & CKF_OS_LOCKING_OK == 0 {
                return Err(CKR_CANT_LOCK);
            }
            if args.flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS != 0 {
                // The runtime that talks to the HSMs runs on its own thread.
                return Err(CKR_NEED_TO_CREATE_THREADS);
            }
        }
        let mut state = LIBRARY.write().unwrap_or_else(PoisonError::into_inner);
        abandon_inherited(&mut state);
        if state.is_some() {
            return Err(CKR_CRYPTOKI_ALREADY_INITIALIZED);
        }
        *state = Some(Loaded { pid: std::process::id(), library: Arc::new(Library::new()?) });
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Finalize(reserved: *mut c_void) -> CK_RV {
    guard(|| {
        if !reserved.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let loaded = {
            let mut state = LIBRARY.write().unwrap_or_else(PoisonError::into_inner);
            if abandon_inherited(&mut state) {
                // A child after fork(): what it inherited is discarded.
                return Ok(());
            }
            state.take().ok_or(CKR_CRYPTOKI_NOT_INITIALIZED)?
        };
        // Outside the lock: logging out waits on the HSMs. A call still
        // running in another thread holds its own reference, and the
        // library ends when that call returns.
        loaded.library.shutdown();
        if let Ok(library) = Arc::try_unwrap(loaded.library) {
            library.close();
        }
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInfo(info: *mut CK_INFO) -> CK_RV {
    guard(|| {
        initialized()?;
        let mut out = CK_INFO {
            cryptokiVersion: CK_VERSION { major: 2, minor: 40 },
            manufacturerID: [0; 32],
            flags: 0,
            libraryDescription: [0; 32],
            libraryVersion: version(),
        };
        pad(&mut out.manufacturerID, MANUFACTURER);
        pad(&mut out.libraryDescription, "CloudHSM emulator PKCS#11");
        // SAFETY: the caller's out-pointer.
        unsafe { write(info, out) }
    })
}

pub(super) fn version() -> CK_VERSION {
    let number = |s: &str| s.parse::<u8>().unwrap_or(0);
    CK_VERSION { major: number(env!("CARGO_PKG_VERSION_MAJOR")), minor: number(env!("CARGO_PKG_VERSION_MINOR")) }
}
