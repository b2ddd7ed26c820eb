//! Random number generation (PKCS#11 v2.40 section 5.15): the HSMs'
//! generators.

use cryptoki_sys::{CK_RV, CKR_ARGUMENTS_BAD, CKR_RANDOM_SEED_NOT_SUPPORTED};

use super::{Bytes, Handle, Len, guard, memory::len, state::with_library};

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
