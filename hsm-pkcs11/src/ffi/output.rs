//! PKCS#11's length protocol for results: a null buffer asks for the
//! length, a short one gets `CKR_BUFFER_TOO_SMALL` and the length, and
//! one long enough gets the bytes.

use cryptoki_sys::{CK_BYTE, CK_RV, CK_ULONG, CKR_BUFFER_TOO_SMALL};

use super::memory::{len, read, ulong, write};
#[cfg(doc)]
use crate::library::Library;
use crate::library::{Output, Produced};

/// Copies an [`Output`] out by the length protocol: the length alone, or
/// the bytes into the caller's buffer (which [`Library`] checked is long
/// enough).
pub(super) unsafe fn output_out(output: Output, buffer: *mut CK_BYTE, buffer_len: *mut CK_ULONG) -> Result<(), CK_RV> {
    match output {
        Output::Length { len, fits } => {
            // SAFETY: the caller's length.
            unsafe { write(buffer_len, ulong(len)) }?;
            if fits { Ok(()) } else { Err(CKR_BUFFER_TOO_SMALL) }
        }
        Output::Bytes(bytes) => {
            if !bytes.is_empty() {
                // SAFETY: the caller's buffer, non-null (a null one asks for
                // the length) and at least `bytes.len()` long, as the
                // library checked against the caller's stated length.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer, bytes.len()) };
            }
            // SAFETY: the caller's length.
            unsafe { write(buffer_len, ulong(bytes.len())) }
        }
    }
}

/// The room a caller's output buffer has: `None` asks for the length.
pub(super) unsafe fn room(buffer: *const CK_BYTE, buffer_len: *const CK_ULONG) -> Result<Option<usize>, CK_RV> {
    // SAFETY: the caller's length.
    let n = unsafe { read(buffer_len) }?;
    if buffer.is_null() { Ok(None) } else { len(n).map(Some) }
}

/// Copies out a finished operation's result, and the IV the HSM made into
/// the caller's AES-GCM parameter.
pub(super) unsafe fn produced_out(
    produced: Produced,
    buffer: *mut CK_BYTE,
    buffer_len: *mut CK_ULONG,
) -> Result<(), CK_RV> {
    if let Some((out, iv)) = produced.iv {
        let n = iv.len().min(out.len);
        // SAFETY: the `pIv` of the CK_GCM_PARAMS given to C_EncryptInit,
        // `len` bytes long, which CloudHSM's contract keeps valid until the
        // operation ends (this call is its end, or the length query before
        // it).
        unsafe { std::ptr::copy_nonoverlapping(iv.as_ptr(), out.address as *mut u8, n) };
    }
    // SAFETY: the caller's buffer and length.
    unsafe { output_out(produced.output, buffer, buffer_len) }
}

/// The length protocol for a list: with a null `list`, says how many
/// items there are; else copies them if they fit.
pub(super) unsafe fn list_out<T: Copy>(items: &[T], list: *mut T, count: *mut CK_ULONG) -> Result<(), CK_RV> {
    // SAFETY: the caller's count.
    let room = unsafe { read(count) }?;
    // SAFETY: as above.
    unsafe { write(count, ulong(items.len())) }?;
    if list.is_null() {
        return Ok(());
    }
    if len(room)? < items.len() {
        return Err(CKR_BUFFER_TOO_SMALL);
    }
    // SAFETY: the caller promises `room` >= items.len() writable items.
    unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), list, items.len()) };
    Ok(())
}
