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
#![allow(unsafe_code, reason = "the C ABI: raw pointers from the caller and exported symbols")]
#![allow(non_snake_case, reason = "PKCS#11 names its functions C_Initialize, ...")]
#![allow(clippy::missing_safety_doc, reason = "the PKCS#11 specification states each function's pointer contract")]

use std::{
    ffi::c_void,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, PoisonError, RwLock},
};

use cryptoki_sys::CKM_AES_CBC;
use cryptoki_sys::{
    CK_AES_CTR_PARAMS, CK_ATTRIBUTE, CK_ATTRIBUTE_TYPE, CK_BBOOL, CK_BYTE, CK_C_INITIALIZE_ARGS, CK_FLAGS,
    CK_FUNCTION_LIST, CK_GCM_PARAMS, CK_INFO, CK_MECHANISM, CK_MECHANISM_INFO, CK_MECHANISM_TYPE, CK_NOTIFY,
    CK_OBJECT_HANDLE, CK_RSA_AES_KEY_WRAP_PARAMS, CK_RSA_PKCS_OAEP_PARAMS, CK_RSA_PKCS_PSS_PARAMS, CK_RV,
    CK_SESSION_HANDLE, CK_SESSION_INFO, CK_SLOT_ID, CK_SLOT_INFO, CK_TOKEN_INFO, CK_ULONG, CK_UNAVAILABLE_INFORMATION,
    CK_USER_TYPE, CK_UTF8CHAR, CK_VERSION, CKF_LIBRARY_CANT_CREATE_OS_THREADS, CKF_LOGIN_REQUIRED, CKF_OS_LOCKING_OK,
    CKF_RNG, CKF_TOKEN_INITIALIZED, CKF_TOKEN_PRESENT, CKF_USER_PIN_INITIALIZED, CKM_AES_CBC_PAD, CKM_AES_CTR,
    CKM_AES_GCM, CKM_RSA_AES_KEY_WRAP, CKM_RSA_PKCS_OAEP, CKM_RSA_PKCS_PSS, CKM_SHA1_RSA_PKCS_PSS,
    CKM_SHA224_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS,
    CKR_ARGUMENTS_BAD, CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID, CKR_BUFFER_TOO_SMALL, CKR_CANT_LOCK,
    CKR_CRYPTOKI_ALREADY_INITIALIZED, CKR_CRYPTOKI_NOT_INITIALIZED, CKR_FUNCTION_NOT_PARALLEL,
    CKR_FUNCTION_NOT_SUPPORTED, CKR_GENERAL_ERROR, CKR_MECHANISM_INVALID, CKR_MECHANISM_PARAM_INVALID,
    CKR_NEED_TO_CREATE_THREADS, CKR_OK, CKR_RANDOM_SEED_NOT_SUPPORTED, CKR_SLOT_ID_INVALID,
};
use zeroize::{Zeroize as _, Zeroizing};

use crate::{
    library::{Library, Output, Produced, SLOT_ID, Slot},
    mechanism::{self, IvOut, Mechanism, Parameter},
    object::{Attribute, Value},
};

/// The library between `C_Initialize` and `C_Finalize`. Calls share it
/// through the `Arc` and hold this lock only to take a reference, so that
/// calls run at once (`CKF_OS_LOCKING_OK`); `C_Initialize` and `C_Finalize`
/// take it to write.
static LIBRARY: RwLock<Option<Loaded>> = RwLock::new(None);

/// The library and the process that initialised it.
///
/// # After `fork()`
/// A child process inherits the parent's library but not its threads: the
/// Tokio runtime that talks to the HSMs is gone, and waiting on it (a call
/// to the HSMs, or dropping it) would never return. So every call compares
/// the process id with the one that initialised the library. In a child,
/// the parent's library is left alone (leaked, never dropped) and the
/// child is not initialised, as PKCS#11 v2.40 (section 6.7.1) has it:
/// every call but `C_Initialize` answers `CKR_CRYPTOKI_NOT_INITIALIZED`
/// at once, `C_Initialize` starts a library of the child's own (its own
/// runtime, connections and login), and `C_Finalize` answers `CKR_OK`,
/// discarding what was inherited.
#[derive(Debug)]
struct Loaded {
    pid: u32,
    library: Arc<Library>,
}

impl Loaded {
    /// Whether this process initialised it (and not a parent before a
    /// `fork()`).
    fn ours(&self) -> bool {
        self.pid == std::process::id()
    }
}

/// Drops what a parent process left behind before a `fork()` without
/// touching it: its runtime's threads do not exist in this process, so
/// dropping it would wait for them forever.
fn abandon_inherited(state: &mut Option<Loaded>) -> bool {
    if state.as_ref().is_some_and(|loaded| !loaded.ours()) {
        std::mem::forget(state.take());
        return true;
    }
    false
}

const MANUFACTURER: &str = "hsm-emulator";

/// Runs `f`, turning a panic into `CKR_GENERAL_ERROR`.
fn guard(f: impl FnOnce() -> Result<(), CK_RV>) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(rv)) => rv,
        Err(_) => CKR_GENERAL_ERROR,
    }
}

/// The library, if initialised (even after a panic elsewhere poisoned the
/// lock: it guards only whether there is a library).
/// In a child process after `fork()`, the parent's library does not count
/// (see [`Loaded`]).
fn library() -> Result<Arc<Library>, CK_RV> {
    let state = LIBRARY.read().unwrap_or_else(PoisonError::into_inner);
    match &*state {
        Some(loaded) if loaded.ours() => Ok(Arc::clone(&loaded.library)),
        _ => Err(CKR_CRYPTOKI_NOT_INITIALIZED),
    }
}

fn with_library<T>(f: impl FnOnce(&Library) -> Result<T, CK_RV>) -> Result<T, CK_RV> {
    let library = library()?;
    f(&library)
}

fn initialized() -> Result<(), CK_RV> {
    with_library(|_| Ok(()))
}

fn len(n: CK_ULONG) -> Result<usize, CK_RV> {
    usize::try_from(n).map_err(|_| CKR_ARGUMENTS_BAD)
}

fn ulong(n: usize) -> CK_ULONG {
    // CK_ULONG is at least as wide as usize on every target cryptoki-sys
    // has bindings for.
    CK_ULONG::try_from(n).unwrap_or(CK_UNAVAILABLE_INFORMATION)
}

/// Copies `text` into a fixed-width PKCS#11 field, padded with spaces.
fn pad(field: &mut [CK_UTF8CHAR], text: &str) {
    field.fill(b' ');
    let bytes = text.as_bytes();
    let n = bytes.len().min(field.len());
    field[..n].copy_from_slice(&bytes[..n]);
}

fn version() -> CK_VERSION {
    let number = |s: &str| s.parse::<u8>().unwrap_or(0);
    CK_VERSION { major: number(env!("CARGO_PKG_VERSION_MAJOR")), minor: number(env!("CARGO_PKG_VERSION_MINOR")) }
}

fn check_slot(slot: CK_SLOT_ID) -> Result<(), CK_RV> {
    if slot == SLOT_ID { Ok(()) } else { Err(CKR_SLOT_ID_INVALID) }
}

/// A caller's input buffer.
unsafe fn input<'a>(ptr: *const CK_BYTE, n: CK_ULONG) -> Result<&'a [u8], CK_RV> {
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
unsafe fn array<'a, T>(ptr: *const T, n: CK_ULONG) -> Result<&'a [T], CK_RV> {
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
unsafe fn write<T>(ptr: *mut T, value: T) -> Result<(), CK_RV> {
    if ptr.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: non-null, and the caller promises it points to a writable `T`.
    unsafe { ptr.write(value) };
    Ok(())
}

/// Reads one value through a caller's pointer.
unsafe fn read<T: Copy>(ptr: *const T) -> Result<T, CK_RV> {
    if ptr.is_null() {
        return Err(CKR_ARGUMENTS_BAD);
    }
    // SAFETY: non-null, and the caller promises it points to a valid `T`.
    Ok(unsafe { ptr.read() })
}

/// A template's attributes, copied.
unsafe fn template(ptr: *const CK_ATTRIBUTE, n: CK_ULONG) -> Result<Vec<Attribute>, CK_RV> {
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

/// A caller's structure parameter, which must be exactly a `T`.
unsafe fn parameter_struct<T: Copy>(m: &CK_MECHANISM) -> Result<T, CK_RV> {
    if m.pParameter.is_null() || len(m.ulParameterLen)? != std::mem::size_of::<T>() {
        return Err(CKR_MECHANISM_PARAM_INVALID);
    }
    // SAFETY: non-null and as long as a `T`: the caller's parameter for
    // this mechanism, which PKCS#11 says is a `T`. Read unaligned: the
    // caller's buffer need not be aligned for it.
    Ok(unsafe { m.pParameter.cast::<T>().read_unaligned() })
}

/// A caller's mechanism and its parameter, copied.
unsafe fn mechanism_of(ptr: *const CK_MECHANISM) -> Result<Mechanism, CK_RV> {
    // SAFETY: the caller's mechanism.
    let m = unsafe { read(ptr) }?;
    let parameter_len = if m.pParameter.is_null() { 0 } else { len(m.ulParameterLen)? };
    let parameter = match m.mechanism {
        _ if parameter_len == 0 => Parameter::None,
        // The IV of the CBC mechanisms, AES's and triple DES's.
        CKM_AES_CBC_PAD | CKM_AES_CBC | cryptoki_sys::CKM_DES3_CBC | cryptoki_sys::CKM_DES3_CBC_PAD => {
            // SAFETY: the caller's IV of `ulParameterLen` bytes.
            Parameter::Bytes(unsafe { input(m.pParameter.cast(), m.ulParameterLen) }?.to_vec())
        }
        CKM_AES_CTR => {
            // SAFETY: the caller's CK_AES_CTR_PARAMS.
            let p: CK_AES_CTR_PARAMS = unsafe { parameter_struct(&m) }?;
            Parameter::Ctr { counter_bits: p.ulCounterBits, block: p.cb }
        }
        CKM_AES_GCM => {
            // SAFETY: the caller's CK_GCM_PARAMS.
            let p: CK_GCM_PARAMS = unsafe { parameter_struct(&m) }?;
            // SAFETY: its IV and AAD, of the lengths it gives.
            let iv = unsafe { input(p.pIv, p.ulIvLen) }?.to_vec();
            // SAFETY: as above.
            let aad = unsafe { input(p.pAAD, p.ulAADLen) }?.to_vec();
            let iv_out =
                (!p.pIv.is_null()).then(|| Ok::<_, CK_RV>(IvOut { address: p.pIv as usize, len: len(p.ulIvLen)? }));
            Parameter::Gcm { iv, aad, tag_bits: p.ulTagBits, iv_out: iv_out.transpose()? }
        }
        CKM_RSA_PKCS_OAEP => {
            // SAFETY: the caller's CK_RSA_PKCS_OAEP_PARAMS.
            let p: CK_RSA_PKCS_OAEP_PARAMS = unsafe { parameter_struct(&m) }?;
            // SAFETY: its label, of the length it gives.
            let label = unsafe { input(p.pSourceData.cast(), p.ulSourceDataLen) }?.to_vec();
            Parameter::Oaep { hash: p.hashAlg, mgf: p.mgf, source: p.source, label }
        }
        CKM_RSA_AES_KEY_WRAP => {
            // SAFETY: the caller's CK_RSA_AES_KEY_WRAP_PARAMS.
            let p: CK_RSA_AES_KEY_WRAP_PARAMS = unsafe { parameter_struct(&m) }?;
            if p.pOAEPParams.is_null() {
                return Err(CKR_MECHANISM_PARAM_INVALID);
            }
            // SAFETY: non-null: the OAEP parameter it points to, which
            // PKCS#11 says is a CK_RSA_PKCS_OAEP_PARAMS (read unaligned, as
            // the caller's memory need not be aligned for it).
            let oaep = unsafe { p.pOAEPParams.read_unaligned() };
            // SAFETY: its label, of the length it gives.
            let label = unsafe { input(oaep.pSourceData.cast(), oaep.ulSourceDataLen) }?.to_vec();
            let oaep = Parameter::Oaep { hash: oaep.hashAlg, mgf: oaep.mgf, source: oaep.source, label };
            Parameter::RsaAes { aes_bits: p.ulAESKeyBits, oaep: Box::new(oaep) }
        }
        CKM_RSA_PKCS_PSS
        | CKM_SHA1_RSA_PKCS_PSS
        | CKM_SHA224_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => {
            // SAFETY: the caller's CK_RSA_PKCS_PSS_PARAMS.
            let p: CK_RSA_PKCS_PSS_PARAMS = unsafe { parameter_struct(&m) }?;
            Parameter::Pss { hash: p.hashAlg, mgf: p.mgf, salt_len: p.sLen }
        }
        _ => Parameter::Other(parameter_len),
    };
    Ok(Mechanism { kind: m.mechanism, parameter })
}

/// Copies an [`Output`] out by the length protocol: the length alone, or
/// the bytes into the caller's buffer (which [`Library`] checked is long
/// enough).
unsafe fn output_out(output: Output, buffer: *mut CK_BYTE, buffer_len: *mut CK_ULONG) -> Result<(), CK_RV> {
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
unsafe fn room(buffer: *const CK_BYTE, buffer_len: *const CK_ULONG) -> Result<Option<usize>, CK_RV> {
    // SAFETY: the caller's length.
    let n = unsafe { read(buffer_len) }?;
    if buffer.is_null() { Ok(None) } else { len(n).map(Some) }
}

/// Copies out a finished operation's result, and the IV the HSM made into
/// the caller's AES-GCM parameter.
unsafe fn produced_out(produced: Produced, buffer: *mut CK_BYTE, buffer_len: *mut CK_ULONG) -> Result<(), CK_RV> {
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
unsafe fn list_out<T: Copy>(items: &[T], list: *mut T, count: *mut CK_ULONG) -> Result<(), CK_RV> {
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

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateRandom(session: Handle, out: Bytes, n: Len) -> CK_RV {
    guard(|| {
        let n = len(n)?;
        if out.is_null() && n != 0 {
            return Err(CKR_ARGUMENTS_BAD);
        }
        let random = with_library(|l| l.random(session, n))?;
        if n != 0 {
            // SAFETY: the caller's buffer of `n` bytes, non-null; `random`
            // is exactly `n` long.
            unsafe { std::ptr::copy_nonoverlapping(random.as_ptr(), out, n) };
        }
        Ok(())
    })
}

/// The HSM draws from its own generator; seeding it from outside is not
/// offered (`CKR_RANDOM_SEED_NOT_SUPPORTED`, as PKCS#11 has for such a
/// token).
#[unsafe(no_mangle)]
pub extern "C" fn C_SeedRandom(session: Handle, _: Bytes, _: Len) -> CK_RV {
    guard(|| {
        with_library(|l| l.session_info(session))?;
        Err(CKR_RANDOM_SEED_NOT_SUPPORTED)
    })
}

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

type Handle = CK_SESSION_HANDLE;
type Object = CK_OBJECT_HANDLE;
type Bytes = *mut CK_BYTE;
type Len = CK_ULONG;
type LenOut = *mut CK_ULONG;
type Mech = *mut CK_MECHANISM;
type Template = *mut CK_ATTRIBUTE;
type ObjectOut = *mut CK_OBJECT_HANDLE;

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
