//! Key management (PKCS#11 v2.40 section 5.14): generating keys and key
//! pairs, wrapping and unwrapping.

use cryptoki_sys::{
    CK_ATTRIBUTE, CK_MECHANISM, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_ULONG, CKR_ARGUMENTS_BAD,
};

use super::{
    Bytes, Handle, Len, LenOut, Mech, Object, ObjectOut, Template, guard,
    memory::{input, template, write},
    output::{output_out, room},
    parameters::mechanism_of,
    state::with_library,
};

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateKey(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    attributes: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        if key.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: the caller's mechanism.
        let mechanism = unsafe { mechanism_of(mechanism) }?;
        // SAFETY: the caller's template.
        let template = unsafe { template(attributes, count) }?;
        let handle = with_library(|l| l.generate_key(session, &mechanism, &template))?;
        // SAFETY: the caller's out-pointer, checked non-null above.
        unsafe { write(key, handle) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateKeyPair(
    session: CK_SESSION_HANDLE,
    mechanism: *mut CK_MECHANISM,
    public_template: *mut CK_ATTRIBUTE,
    public_count: CK_ULONG,
    private_template: *mut CK_ATTRIBUTE,
    private_count: CK_ULONG,
    public_key: *mut CK_OBJECT_HANDLE,
    private_key: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        if public_key.is_null() || private_key.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: the caller's mechanism and templates.
        let mechanism = unsafe { mechanism_of(mechanism) }?;
        // SAFETY: as above.
        let public = unsafe { template(public_template, public_count) }?;
        // SAFETY: as above.
        let private = unsafe { template(private_template, private_count) }?;
        let (public_handle, private_handle) =
            with_library(|l| l.generate_key_pair(session, &mechanism, &public, &private))?;
        // SAFETY: the caller's out-pointers, checked non-null above.
        unsafe { write(public_key, public_handle) }?;
        // SAFETY: as above.
        unsafe { write(private_key, private_handle) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_WrapKey(
    session: Handle,
    mechanism: Mech,
    wrapping_key: Object,
    key: Object,
    wrapped: Bytes,
    wrapped_len: LenOut,
) -> CK_RV {
    guard(|| {
        // SAFETY: the caller's mechanism.
        let mechanism = unsafe { mechanism_of(mechanism) }?;
        // SAFETY: the caller's buffer and length.
        let room = unsafe { room(wrapped, wrapped_len) }?;
        let output = with_library(|l| l.wrap(session, &mechanism, wrapping_key, key, room))?;
        // SAFETY: as above.
        unsafe { output_out(output, wrapped, wrapped_len) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_UnwrapKey(
    session: Handle,
    mechanism: Mech,
    unwrapping_key: Object,
    wrapped: Bytes,
    wrapped_len: Len,
    attributes: Template,
    count: Len,
    key: ObjectOut,
) -> CK_RV {
    guard(|| {
        if key.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: the caller's mechanism, wrapped key and template.
        let mechanism = unsafe { mechanism_of(mechanism) }?;
        // SAFETY: as above.
        let wrapped = unsafe { input(wrapped, wrapped_len) }?;
        // SAFETY: as above.
        let template = unsafe { template(attributes, count) }?;
        let handle = with_library(|l| l.unwrap(session, &mechanism, unwrapping_key, wrapped, &template))?;
        // SAFETY: the caller's out-pointer, checked non-null above.
        unsafe { write(key, handle) }
    })
}
