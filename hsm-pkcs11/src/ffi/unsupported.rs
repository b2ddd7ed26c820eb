//! The functions this library does not offer, and the legacy
//! parallel-function management whose answer PKCS#11 fixes.

use std::ffi::c_void;

use cryptoki_sys::{CK_FLAGS, CK_RV, CK_SLOT_ID, CK_UTF8CHAR, CKR_FUNCTION_NOT_PARALLEL, CKR_FUNCTION_NOT_SUPPORTED};

use super::{
    Bytes, Handle, Len, LenOut, Mech, Object, ObjectOut, Template, guard,
    state::{initialized, with_library},
};

/// Functions this library does not offer: each returns
/// `CKR_FUNCTION_NOT_SUPPORTED` without reading its arguments (or
/// `CKR_CRYPTOKI_NOT_INITIALIZED` before `C_Initialize`, as every function
/// but `C_Initialize` and `C_GetFunctionList` does).
macro_rules! unsupported {
    ($($name:ident($($ty:ty),*);)*) => {$(
        #[unsafe(no_mangle)]
        pub extern "C" fn $name($(_: $ty),*) -> CK_RV {
            guard(|| {
                initialized()?;
                Err(CKR_FUNCTION_NOT_SUPPORTED)
            })
        }
    )*};
}

unsupported! {
    // Tokens and PINs are the cluster's users, managed with hsm-cli.
    C_InitToken(CK_SLOT_ID, *mut CK_UTF8CHAR, Len, *mut CK_UTF8CHAR);
    C_InitPIN(Handle, *mut CK_UTF8CHAR, Len);
    C_SetPIN(Handle, *mut CK_UTF8CHAR, Len, *mut CK_UTF8CHAR, Len);
    C_GetOperationState(Handle, Bytes, LenOut);
    C_SetOperationState(Handle, Bytes, Len, Object, Object);
    // CloudHSM's library does not copy objects either: a key's copy would
    // need its material out of the HSM, which only wrapping gives.
    C_CopyObject(Handle, Object, Template, Len, ObjectOut);
    C_DigestKey(Handle, Object);
    C_SignRecoverInit(Handle, Mech, Object);
    C_SignRecover(Handle, Bytes, Len, Bytes, LenOut);
    C_VerifyRecoverInit(Handle, Mech, Object);
    C_VerifyRecover(Handle, Bytes, Len, Bytes, LenOut);
    C_DigestEncryptUpdate(Handle, Bytes, Len, Bytes, LenOut);
    C_DecryptDigestUpdate(Handle, Bytes, Len, Bytes, LenOut);
    C_SignEncryptUpdate(Handle, Bytes, Len, Bytes, LenOut);
    C_DecryptVerifyUpdate(Handle, Bytes, Len, Bytes, LenOut);
    C_DeriveKey(Handle, Mech, Object, Template, Len, ObjectOut);
    C_WaitForSlotEvent(CK_FLAGS, *mut CK_SLOT_ID, *mut c_void);
}

/// Legacy parallel-function management: PKCS#11 fixes the answer (after
/// the checks every session function makes).
#[unsafe(no_mangle)]
pub extern "C" fn C_GetFunctionStatus(session: Handle) -> CK_RV {
    guard(|| {
        with_library(|l| l.session_info(session))?;
        Err(CKR_FUNCTION_NOT_PARALLEL)
    })
}

/// As [`C_GetFunctionStatus`].
#[unsafe(no_mangle)]
pub extern "C" fn C_CancelFunction(session: Handle) -> CK_RV {
    C_GetFunctionStatus(session)
}
