//! Slot and token management (PKCS#11 v2.40 section 5.5): the one slot,
//! its token (the cluster) and the mechanisms it offers.

use cryptoki_sys::{
    CK_BBOOL, CK_MECHANISM_INFO, CK_MECHANISM_TYPE, CK_RV, CK_SLOT_ID, CK_SLOT_INFO, CK_TOKEN_INFO, CK_ULONG,
    CK_UNAVAILABLE_INFORMATION, CKF_LOGIN_REQUIRED, CKF_RNG, CKF_TOKEN_INITIALIZED, CKF_TOKEN_PRESENT,
    CKF_USER_PIN_INITIALIZED, CKR_MECHANISM_INVALID, CKR_SLOT_ID_INVALID,
};

use super::{
    general::{MANUFACTURER, version},
    guard,
    memory::{pad, ulong, write},
    output::list_out,
    state::{initialized, with_library},
};
use crate::{library::SLOT_ID, mechanism};

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSlotList(_token_present: CK_BBOOL, list: *mut CK_SLOT_ID, count: *mut CK_ULONG) -> CK_RV {
    guard(|| {
        initialized()?;
        // SAFETY: the caller's list and count.
        unsafe { list_out(&[SLOT_ID], list, count) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSlotInfo(slot: CK_SLOT_ID, info: *mut CK_SLOT_INFO) -> CK_RV {
    guard(|| {
        initialized()?;
        check_slot(slot)?;
        let mut out = CK_SLOT_INFO {
            slotDescription: [0; 64],
            manufacturerID: [0; 32],
            flags: CKF_TOKEN_PRESENT,
            hardwareVersion: version(),
            firmwareVersion: version(),
        };
        pad(&mut out.slotDescription, "CloudHSM emulator cluster");
        pad(&mut out.manufacturerID, MANUFACTURER);
        // SAFETY: the caller's out-pointer.
        unsafe { write(info, out) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetTokenInfo(slot: CK_SLOT_ID, info: *mut CK_TOKEN_INFO) -> CK_RV {
    guard(|| {
        initialized()?;
        check_slot(slot)?;
        let token = with_library(|l| l.token_info())?;
        let mut out = CK_TOKEN_INFO {
            label: [0; 32],
            manufacturerID: [0; 32],
            model: [0; 16],
            serialNumber: [0; 16],
            // CKF_RNG: C_GenerateRandom draws from the HSMs' generators
            // (Java's SunPKCS11 offers its SecureRandom only with it).
            flags: CKF_RNG | CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED | CKF_TOKEN_INITIALIZED,
            ulMaxSessionCount: cryptoki_sys::CK_EFFECTIVELY_INFINITE,
            ulSessionCount: ulong(token.sessions),
            ulMaxRwSessionCount: cryptoki_sys::CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: ulong(token.rw_sessions),
            // `username:password`: 1 to 31, a colon, 7 to 32.
            ulMaxPinLen: 64,
            ulMinPinLen: 9,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: version(),
            firmwareVersion: version(),
            utcTime: [b' '; 16],
        };
        pad(&mut out.label, "hsm-emulator");
        pad(&mut out.manufacturerID, MANUFACTURER);
        pad(&mut out.model, "CloudHSM emu");
        let serial = token.cluster_id.strip_prefix("cluster-").unwrap_or(&token.cluster_id);
        pad(&mut out.serialNumber, serial);
        // SAFETY: the caller's out-pointer.
        unsafe { write(info, out) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetMechanismList(
    slot: CK_SLOT_ID,
    list: *mut CK_MECHANISM_TYPE,
    count: *mut CK_ULONG,
) -> CK_RV {
    guard(|| {
        initialized()?;
        check_slot(slot)?;
        let offered = with_library(|l| Ok(l.mechanisms()))?;
        // SAFETY: the caller's list and count.
        unsafe { list_out(&offered, list, count) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slot: CK_SLOT_ID,
    kind: CK_MECHANISM_TYPE,
    info: *mut CK_MECHANISM_INFO,
) -> CK_RV {
    guard(|| {
        initialized()?;
        check_slot(slot)?;
        with_library(|l| l.permit(kind))?;
        let (min, max, flags) = mechanism::info(kind).ok_or(CKR_MECHANISM_INVALID)?;
        // SAFETY: the caller's out-pointer.
        unsafe { write(info, CK_MECHANISM_INFO { ulMinKeySize: min, ulMaxKeySize: max, flags }) }
    })
}

pub(super) fn check_slot(slot: CK_SLOT_ID) -> Result<(), CK_RV> {
    if slot == SLOT_ID { Ok(()) } else { Err(CKR_SLOT_ID_INVALID) }
}
