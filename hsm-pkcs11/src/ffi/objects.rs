//! Object management (PKCS#11 v2.40 section 5.7): searching for keys,
//! reading and changing their attributes, importing and destroying them.

use cryptoki_sys::{
    CK_ATTRIBUTE, CK_ATTRIBUTE_TYPE, CK_OBJECT_HANDLE, CK_RV, CK_SESSION_HANDLE, CK_ULONG, CK_UNAVAILABLE_INFORMATION,
    CKR_ARGUMENTS_BAD, CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID, CKR_BUFFER_TOO_SMALL,
};
use zeroize::Zeroize as _;

use super::{
    guard,
    memory::{len, template, ulong, write},
    state::with_library,
};
use crate::object::{Attribute, Value};

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjectsInit(
    session: CK_SESSION_HANDLE,
    attributes: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the caller's template.
        let template = unsafe { template(attributes, count) }?;
        with_library(|l| l.find_init(session, &template))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjects(
    session: CK_SESSION_HANDLE,
    objects: *mut CK_OBJECT_HANDLE,
    max: CK_ULONG,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        if count.is_null() || (objects.is_null() && max != 0) {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let found = with_library(|l| l.find(session, len(max)?))?;
        if !found.is_empty() {
            // SAFETY: the caller promises `max` writable handles, and
            // `found` has at most `max`.
            unsafe { std::ptr::copy_nonoverlapping(found.as_ptr(), objects, found.len()) };
        }
        // SAFETY: the caller's count, checked non-null above.
        unsafe { write(count, ulong(found.len())) }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn C_FindObjectsFinal(session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| with_library(|l| l.find_final(session)))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetAttributeValue(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    attributes: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let n = len(count)?;
        if attributes.is_null() && n != 0 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let kinds: Vec<CK_ATTRIBUTE_TYPE> = (0..n)
            // SAFETY: the caller's template holds `n` attributes.
            .map(|i| unsafe { attributes.add(i).read().type_ })
            .collect();
        let values = with_library(|l| l.attributes(session, object, &kinds))?;
        // Every attribute is answered; the call's value is the last problem
        // met (PKCS#11 leaves which one to the library).
        let mut result = Ok(());
        for (i, value) in values.into_iter().enumerate() {
            // SAFETY: `i` < `n`: the caller's attribute, valid for writing.
            let a = unsafe { &mut *attributes.add(i) };
            match value {
                Value::Invalid => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(CKR_ATTRIBUTE_TYPE_INVALID);
                }
                Value::Sensitive => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(CKR_ATTRIBUTE_SENSITIVE);
                }
                Value::Bytes(bytes) if a.pValue.is_null() => a.ulValueLen = ulong(bytes.len()),
                Value::Bytes(bytes) if len(a.ulValueLen)? < bytes.len() => {
                    a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                    result = Err(CKR_BUFFER_TOO_SMALL);
                }
                Value::Bytes(bytes) => {
                    // SAFETY: the caller's buffer holds `ulValueLen` >=
                    // bytes.len() writable bytes.
                    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), a.pValue.cast::<u8>(), bytes.len()) };
                    a.ulValueLen = ulong(bytes.len());
                }
            }
        }
        result
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CreateObject(
    session: CK_SESSION_HANDLE,
    attributes: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
    object: *mut CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        if object.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        // SAFETY: the caller's template; key material is wiped when dropped.
        let template = unsafe { template(attributes, count) }?;
        let handle = with_library(|l| l.create_object(session, &template));
        zeroize_template(template);
        // SAFETY: the caller's out-pointer, checked non-null above.
        unsafe { write(object, handle?) }
    })
}

/// Wipes a template that may carry key material.
fn zeroize_template(template: Vec<Attribute>) {
    for mut attribute in template {
        attribute.value.zeroize();
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn C_DestroyObject(session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE) -> CK_RV {
    guard(|| with_library(|l| l.destroy(session, object)))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetObjectSize(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    size: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        if size.is_null() {
            return Err(CKR_ARGUMENTS_BAD);
        }
        with_library(|l| l.object_exists(session, object))?;
        // SAFETY: the caller's out-pointer, checked non-null above.
        unsafe { write(size, CK_UNAVAILABLE_INFORMATION) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SetAttributeValue(
    session: CK_SESSION_HANDLE,
    object: CK_OBJECT_HANDLE,
    attributes: *mut CK_ATTRIBUTE,
    count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the caller's template.
        let template = unsafe { template(attributes, count) }?;
        with_library(|l| l.set_attributes(session, object, &template))
    })
}
