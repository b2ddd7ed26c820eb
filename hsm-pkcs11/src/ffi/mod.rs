//! The C ABI: every exported `C_*` function, and the only `unsafe` in the
//! crate.
//!
//! Each function copies its arguments out of C memory (checking pointers
//! for null and lengths for range), calls one [`Library`] method (which
//! locks only what it touches), and copies results back following
//! PKCS#11's conventions
//! (the length-query and `CKR_BUFFER_TOO_SMALL` protocol). A panic never
//! crosses the boundary: [`guard`] turns it into `CKR_GENERAL_ERROR`.
//!
//! The pointer contract of every function is the PKCS#11 v2.40
//! specification's: pointers are null or valid for the lengths given, and
//! output buffers are writable for the lengths the caller states.
//!
//! # Layout
//! The functions, grouped as PKCS#11 v2.40 section 5 groups them (all
//! re-exported here, so each is `ffi::C_Name`):
//! - `general`: `C_Initialize`, `C_Finalize`, `C_GetInfo`,
//!   `C_GetFunctionList`.
//! - `slots`: the slot, its token and its mechanisms.
//! - `sessions`: opening and closing sessions, logging in and out.
//! - `objects`: searching, reading, changing, importing and destroying
//!   objects.
//! - `keys`: generating, wrapping and unwrapping keys.
//! - `operations`: sign, verify, encrypt, decrypt and digest, single-part
//!   and multi-part.
//! - `random`: random numbers.
//! - `unsupported`: the functions this library does not offer.
//!
//! What they share:
//! - `state`: the library between `C_Initialize` and `C_Finalize`, and
//!   what a child process after `fork()` sees of it.
//! - `memory`: copying arguments out of the caller's memory and values
//!   into it.
//! - `parameters`: a caller's mechanism and its parameter, copied.
//! - `output`: PKCS#11's length protocol for results.
//!
//! Here: [`guard`], the short names the function groups use for C types,
//! and the function list.
#![allow(unsafe_code, reason = "the C ABI: raw pointers from the caller and exported symbols")]
#![allow(non_snake_case, reason = "PKCS#11 names its functions C_Initialize, ...")]
#![allow(clippy::missing_safety_doc, reason = "the PKCS#11 specification states each function's pointer contract")]

mod general;
mod keys;
mod memory;
mod objects;
mod operations;
mod output;
mod parameters;
mod random;
mod sessions;
mod slots;
mod state;
mod unsupported;

use std::panic::{AssertUnwindSafe, catch_unwind};

use cryptoki_sys::{
    CK_ATTRIBUTE, CK_BYTE, CK_FUNCTION_LIST, CK_MECHANISM, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_ULONG,
    CK_VERSION, CKR_GENERAL_ERROR, CKR_OK,
};

pub use self::{general::*, keys::*, objects::*, operations::*, random::*, sessions::*, slots::*, unsupported::*};
#[cfg(doc)]
use crate::library::Library;

/// Runs `f`, turning a panic into `CKR_GENERAL_ERROR`.
fn guard(f: impl FnOnce() -> Result<(), CK_RV>) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(rv)) => rv,
        Err(_) => CKR_GENERAL_ERROR,
    }
}

type Handle = CK_SESSION_HANDLE;
type Object = CK_OBJECT_HANDLE;
type Bytes = *mut CK_BYTE;
type Len = CK_ULONG;
type LenOut = *mut CK_ULONG;
type Mech = *mut CK_MECHANISM;
type Template = *mut CK_ATTRIBUTE;
type ObjectOut = *mut CK_OBJECT_HANDLE;

/// The v2.40 function list `C_GetFunctionList` hands out.
static FUNCTION_LIST: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: CK_VERSION { major: 2, minor: 40 },
    C_Initialize: Some(C_Initialize),
    C_Finalize: Some(C_Finalize),
    C_GetInfo: Some(C_GetInfo),
    C_GetFunctionList: Some(C_GetFunctionList),
    C_GetSlotList: Some(C_GetSlotList),
    C_GetSlotInfo: Some(C_GetSlotInfo),
    C_GetTokenInfo: Some(C_GetTokenInfo),
    C_GetMechanismList: Some(C_GetMechanismList),
    C_GetMechanismInfo: Some(C_GetMechanismInfo),
    C_InitToken: Some(C_InitToken),
    C_InitPIN: Some(C_InitPIN),
    C_SetPIN: Some(C_SetPIN),
    C_OpenSession: Some(C_OpenSession),
    C_CloseSession: Some(C_CloseSession),
    C_CloseAllSessions: Some(C_CloseAllSessions),
    C_GetSessionInfo: Some(C_GetSessionInfo),
    C_GetOperationState: Some(C_GetOperationState),
    C_SetOperationState: Some(C_SetOperationState),
    C_Login: Some(C_Login),
    C_Logout: Some(C_Logout),
    C_CreateObject: Some(C_CreateObject),
    C_CopyObject: Some(C_CopyObject),
    C_DestroyObject: Some(C_DestroyObject),
    C_GetObjectSize: Some(C_GetObjectSize),
    C_GetAttributeValue: Some(C_GetAttributeValue),
    C_SetAttributeValue: Some(C_SetAttributeValue),
    C_FindObjectsInit: Some(C_FindObjectsInit),
    C_FindObjects: Some(C_FindObjects),
    C_FindObjectsFinal: Some(C_FindObjectsFinal),
    C_EncryptInit: Some(C_EncryptInit),
    C_Encrypt: Some(C_Encrypt),
    C_EncryptUpdate: Some(C_EncryptUpdate),
    C_EncryptFinal: Some(C_EncryptFinal),
    C_DecryptInit: Some(C_DecryptInit),
    C_Decrypt: Some(C_Decrypt),
    C_DecryptUpdate: Some(C_DecryptUpdate),
    C_DecryptFinal: Some(C_DecryptFinal),
    C_DigestInit: Some(C_DigestInit),
    C_Digest: Some(C_Digest),
    C_DigestUpdate: Some(C_DigestUpdate),
    C_DigestKey: Some(C_DigestKey),
    C_DigestFinal: Some(C_DigestFinal),
    C_SignInit: Some(C_SignInit),
    C_Sign: Some(C_Sign),
    C_SignUpdate: Some(C_SignUpdate),
    C_SignFinal: Some(C_SignFinal),
    C_SignRecoverInit: Some(C_SignRecoverInit),
    C_SignRecover: Some(C_SignRecover),
    C_VerifyInit: Some(C_VerifyInit),
    C_Verify: Some(C_Verify),
    C_VerifyUpdate: Some(C_VerifyUpdate),
    C_VerifyFinal: Some(C_VerifyFinal),
    C_VerifyRecoverInit: Some(C_VerifyRecoverInit),
    C_VerifyRecover: Some(C_VerifyRecover),
    C_DigestEncryptUpdate: Some(C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(C_DecryptVerifyUpdate),
    C_GenerateKey: Some(C_GenerateKey),
    C_GenerateKeyPair: Some(C_GenerateKeyPair),
    C_WrapKey: Some(C_WrapKey),
    C_UnwrapKey: Some(C_UnwrapKey),
    C_DeriveKey: Some(C_DeriveKey),
    C_SeedRandom: Some(C_SeedRandom),
    C_GenerateRandom: Some(C_GenerateRandom),
    C_GetFunctionStatus: Some(C_GetFunctionStatus),
    C_CancelFunction: Some(C_CancelFunction),
    C_WaitForSlotEvent: Some(C_WaitForSlotEvent),
};
