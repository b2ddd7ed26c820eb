//! The cryptographic operations (PKCS#11 v2.40 sections 5.8 to 5.13):
//! sign, verify, encrypt, decrypt and digest, each with its `Init`, its
//! single-part call and its `Update` and `Final`.

use cryptoki_sys::{
    CK_BYTE, CK_MECHANISM, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_ULONG, CKR_ARGUMENTS_BAD,
    CKR_BUFFER_TOO_SMALL, CKR_OK,
};

use super::{
    Bytes, Handle, Len, LenOut, Mech, Object, guard,
    memory::{input, write},
    output::{produced_out, room},
    parameters::mechanism_of,
    state::with_library,
};
use crate::library::Slot;

/// `C_*Init` of an operation with a key.
unsafe fn begin(
    session: CK_SESSION_HANDLE,
    slot: Slot,
    mechanism: *mut CK_MECHANISM,
    key: Option<CK_OBJECT_HANDLE>,
) -> CK_RV {
    guard(|| {
        // SAFETY: the caller's mechanism.
        let mechanism = unsafe { mechanism_of(mechanism) }?;
        with_library(|l| l.begin(session, slot, &mechanism, key))
    })
}

/// Runs a call of an active operation (`C_Encrypt`, `C_SignUpdate`,
/// `C_DigestFinal`...). Any failure but a length query's
/// `CKR_BUFFER_TOO_SMALL` ends the operation, as PKCS#11 v2.40 says of
/// each of them, so that the next `*Init` succeeds; the failure is what
/// the caller is told.
fn operating(session: CK_SESSION_HANDLE, slot: Slot, f: impl FnOnce() -> Result<(), CK_RV>) -> CK_RV {
    let rv = guard(f);
    if rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL {
        // The session may itself be bad (or the library gone); the call's
        // own failure is the one to report.
        let _ended = guard(|| with_library(|l| l.end(session, slot)));
    }
    rv
}

/// A single-part call (`data` given) or a `Final` that hands back bytes.
unsafe fn finish(
    session: CK_SESSION_HANDLE,
    slot: Slot,
    data: Option<(*const CK_BYTE, CK_ULONG)>,
    out: *mut CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    operating(session, slot, || {
        let data = match data {
            // SAFETY: the caller's data.
            Some((ptr, n)) => Some(unsafe { input(ptr, n) }?),
            None => None,
        };
        // SAFETY: the caller's output buffer and length.
        let room = unsafe { room(out, out_len) }?;
        let produced = with_library(|l| l.finish(session, slot, data, room))?;
        // SAFETY: as above.
        unsafe { produced_out(produced, out, out_len) }
    })
}

/// An `Update` that takes data (and, for encryption, hands back nothing
/// yet: the data goes to the HSM at `Final`).
unsafe fn update(session: CK_SESSION_HANDLE, slot: Slot, data: *const CK_BYTE, n: CK_ULONG) -> CK_RV {
    operating(session, slot, || {
        // SAFETY: the caller's data.
        let data = unsafe { input(data, n) }?;
        with_library(|l| l.update(session, slot, data))
    })
}

/// An `Update` with an output buffer: the whole result comes at `Final`,
/// so every part hands back zero bytes. A null buffer asks for the length
/// and takes no data, as PKCS#11 has it.
unsafe fn update_out(
    session: CK_SESSION_HANDLE,
    slot: Slot,
    data: *const CK_BYTE,
    n: CK_ULONG,
    out: *const CK_BYTE,
    out_len: *mut CK_ULONG,
) -> CK_RV {
    operating(session, slot, || {
        if out_len.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        if out.is_null() {
            with_library(|l| l.operation_active(session, slot))?;
        } else {
            // SAFETY: the caller's data.
            let data = unsafe { input(data, n) }?;
            with_library(|l| l.update(session, slot, data))?;
        }
        // SAFETY: the caller's length, checked non-null above.
        unsafe { write(out_len, 0) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignInit(session: Handle, mechanism: Mech, key: Object) -> CK_RV {
    // SAFETY: the caller's mechanism.
    unsafe { begin(session, Slot::Sign, mechanism, Some(key)) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Sign(
    session: Handle,
    data: Bytes,
    n: Len,
    signature: Bytes,
    signature_len: LenOut,
) -> CK_RV {
    // SAFETY: the caller's buffers.
    unsafe { finish(session, Slot::Sign, Some((data, n)), signature, signature_len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignUpdate(session: Handle, data: Bytes, n: Len) -> CK_RV {
    // SAFETY: the caller's data.
    unsafe { update(session, Slot::Sign, data, n) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignFinal(session: Handle, signature: Bytes, signature_len: LenOut) -> CK_RV {
    // SAFETY: the caller's buffer.
    unsafe { finish(session, Slot::Sign, None, signature, signature_len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_VerifyInit(session: Handle, mechanism: Mech, key: Object) -> CK_RV {
    // SAFETY: the caller's mechanism.
    unsafe { begin(session, Slot::Verify, mechanism, Some(key)) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Verify(session: Handle, data: Bytes, n: Len, signature: Bytes, signature_len: Len) -> CK_RV {
    operating(session, Slot::Verify, || {
        // SAFETY: the caller's data and signature.
        let data = unsafe { input(data, n) }?;
        // SAFETY: as above.
        let signature = unsafe { input(signature, signature_len) }?;
        with_library(|l| l.verify(session, Some(data), signature))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_VerifyUpdate(session: Handle, data: Bytes, n: Len) -> CK_RV {
    // SAFETY: the caller's data.
    unsafe { update(session, Slot::Verify, data, n) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_VerifyFinal(session: Handle, signature: Bytes, signature_len: Len) -> CK_RV {
    operating(session, Slot::Verify, || {
        // SAFETY: the caller's signature.
        let signature = unsafe { input(signature, signature_len) }?;
        with_library(|l| l.verify(session, None, signature))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_EncryptInit(session: Handle, mechanism: Mech, key: Object) -> CK_RV {
    // SAFETY: the caller's mechanism.
    unsafe { begin(session, Slot::Encrypt, mechanism, Some(key)) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Encrypt(session: Handle, data: Bytes, n: Len, out: Bytes, out_len: LenOut) -> CK_RV {
    // SAFETY: the caller's buffers.
    unsafe { finish(session, Slot::Encrypt, Some((data, n)), out, out_len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_EncryptUpdate(session: Handle, data: Bytes, n: Len, out: Bytes, out_len: LenOut) -> CK_RV {
    // SAFETY: the caller's buffers.
    unsafe { update_out(session, Slot::Encrypt, data, n, out, out_len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_EncryptFinal(session: Handle, out: Bytes, out_len: LenOut) -> CK_RV {
    // SAFETY: the caller's buffer.
    unsafe { finish(session, Slot::Encrypt, None, out, out_len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DecryptInit(session: Handle, mechanism: Mech, key: Object) -> CK_RV {
    // SAFETY: the caller's mechanism.
    unsafe { begin(session, Slot::Decrypt, mechanism, Some(key)) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Decrypt(session: Handle, data: Bytes, n: Len, out: Bytes, out_len: LenOut) -> CK_RV {
    // SAFETY: the caller's buffers.
    unsafe { finish(session, Slot::Decrypt, Some((data, n)), out, out_len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DecryptUpdate(session: Handle, data: Bytes, n: Len, out: Bytes, out_len: LenOut) -> CK_RV {
    // SAFETY: the caller's buffers.
    unsafe { update_out(session, Slot::Decrypt, data, n, out, out_len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DecryptFinal(session: Handle, out: Bytes, out_len: LenOut) -> CK_RV {
    // SAFETY: the caller's buffer.
    unsafe { finish(session, Slot::Decrypt, None, out, out_len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DigestInit(session: Handle, mechanism: Mech) -> CK_RV {
    // SAFETY: the caller's mechanism.
    unsafe { begin(session, Slot::Digest, mechanism, None) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Digest(session: Handle, data: Bytes, n: Len, out: Bytes, out_len: LenOut) -> CK_RV {
    // SAFETY: the caller's buffers.
    unsafe { finish(session, Slot::Digest, Some((data, n)), out, out_len) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DigestUpdate(session: Handle, data: Bytes, n: Len) -> CK_RV {
    // SAFETY: the caller's data.
    unsafe { update(session, Slot::Digest, data, n) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DigestFinal(session: Handle, out: Bytes, out_len: LenOut) -> CK_RV {
    // SAFETY: the caller's buffer.
    unsafe { finish(session, Slot::Digest, None, out, out_len) }
}
