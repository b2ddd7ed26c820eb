//! The library between `C_Initialize` and `C_Finalize`, and what a child
//! process after `fork()` sees of it: every function reaches the
//! [`Library`] through here.

use std::sync::{Arc, PoisonError, RwLock};

use cryptoki_sys::{CK_RV, CKR_CRYPTOKI_NOT_INITIALIZED};

use crate::library::Library;

/// The library between `C_Initialize` and `C_Finalize`. Calls share it
/// through the `Arc` and hold this lock only to take a reference, so that
/// calls run at once (`CKF_OS_LOCKING_OK`); `C_Initialize` and `C_Finalize`
/// take it to write.
pub(super) static LIBRARY: RwLock<Option<Loaded>> = RwLock::new(None);

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
pub(super) struct Loaded {
    pub(super) pid: u32,
    pub(super) library: Arc<Library>,
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
pub(super) fn abandon_inherited(state: &mut Option<Loaded>) -> bool {
    if state.as_ref().is_some_and(|loaded| !loaded.ours()) {
        std::mem::forget(state.take());
        return true;
    }
    false
}

/// The library, if initialised (even after a panic elsewhere poisoned the
/// lock: it guards only whether there is a library).
/// In a child process after `fork()`, the parent's library does not count
/// (see [`Loaded`]).
pub(super) fn library() -> Result<Arc<Library>, CK_RV> {
    let state = LIBRARY.read().unwrap_or_else(PoisonError::into_inner);
    match &*state {
        Some(loaded) if loaded.ours() => Ok(Arc::clone(&loaded.library)),
        _ => Err(CKR_CRYPTOKI_NOT_INITIALIZED),
    }
}

pub(super) fn with_library<T>(f: impl FnOnce(&Library) -> Result<T, CK_RV>) -> Result<T, CK_RV> {
    let library = library()?;
    f(&library)
}

pub(super) fn initialized() -> Result<(), CK_RV> {
    with_library(|_| Ok(()))
}
