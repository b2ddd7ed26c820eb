//! Copying arguments out of the caller's memory and values into it: the
//! checks (null pointers, lengths in range) every function makes before it
//! reads or writes through a pointer.

use cryptoki_sys::{
    CK_ATTRIBUTE, CK_BYTE, CK_RV, CK_ULONG, CK_UNAVAILABLE_INFORMATION, CK_UTF8CHAR, CKR_ARGUMENTS_BAD,
};

use crate::object::Attribute;

pub(super) fn len(n: CK_ULONG) -> Result<usize, CK_RV> {
    usize::try_from(n).map_err(|_| CKR_ARGUMENTS_BAD)
}

pub(super) fn ulong(n: usize) -> CK_ULONG {
    // CK_ULONG is at least as wide as usize on every target cryptoki-sys
    // has bindings for.
    CK_ULONG::try_from(n).unwrap_or(CK_UNAVAILABLE_INFORMATION)
}

/// Copies `text` into a fixed-width PKCS#11 field, padded with spaces.
pub(super) fn pad(field: &mut [CK_UTF8CHAR], text: &str) {
    field.fill(b' ');
    let bytes = text.as_bytes();
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
}

/// A caller's input buffer.
pub(super) unsafe fn input<'a>(ptr: *const CK_BYTE, n: CK_ULONG) -> Result<&'a [u8], CK_RV> {
    let n = len(n)?;
    if n == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: non-null, and the caller promises `n` readable bytes (PKCS#11
    // pointer contract); the slice does not outlive the call.
    Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
}

/// A caller's array of `n` items (`ptr` may be null only when `n` is 0).
pub(super) unsafe fn array<'a, T>(ptr: *const T, n: CK_ULONG) -> Result<&'a [T], CK_RV> {
    let n = len(n)?;
    if n == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: non-null, and the caller promises `n` valid, aligned items.
    Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
}

/// Writes one value through a caller's pointer.
pub(super) unsafe fn write<T>(ptr: *mut T, value: T) -> Result<(), CK_RV> {
    if ptr.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: non-null, and the caller promises it points to a writable `T`.
    unsafe { ptr.write(value) };
    Ok(())
}

/// Reads one value through a caller's pointer.
pub(super) unsafe fn read<T: Copy>(ptr: *const T) -> Result<T, CK_RV> {
    if ptr.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: non-null, and the caller promises it points to a valid `T`.
    Ok(unsafe { ptr.read() })
}

/// A template's attributes, copied.
pub(super) unsafe fn template(ptr: *const CK_ATTRIBUTE, n: CK_ULONG) -> Result<Vec<Attribute>, CK_RV> {
    // SAFETY: the caller's template of `n` attributes.
    let attributes = unsafe { array(ptr, n) }?;
    attributes
        .iter()
        .map(|a| {
            // SAFETY: each attribute's value points to `ulValueLen` bytes.
            let value = unsafe { input(a.pValue.cast::<CK_BYTE>(), a.ulValueLen) }?;
            Ok(Attribute { kind: a.type_, value: value.to_vec() })
        })
        .collect()
}
