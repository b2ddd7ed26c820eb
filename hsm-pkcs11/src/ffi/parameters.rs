//! A caller's mechanism and its parameter, copied out of C memory into a
//! [`Mechanism`]: the parameter structures PKCS#11 defines for the
//! mechanisms offered, read by the mechanism that names them.

use cryptoki_sys::{
    CK_AES_CTR_PARAMS, CK_GCM_PARAMS, CK_MECHANISM, CK_RSA_AES_KEY_WRAP_PARAMS, CK_RSA_PKCS_OAEP_PARAMS,
    CK_RSA_PKCS_PSS_PARAMS, CK_RV, CKM_AES_CBC, CKM_AES_CBC_PAD, CKM_AES_CTR, CKM_AES_GCM, CKM_RSA_AES_KEY_WRAP,
    CKM_RSA_PKCS_OAEP, CKM_RSA_PKCS_PSS, CKM_SHA1_RSA_PKCS_PSS, CKM_SHA224_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS, CKR_MECHANISM_PARAM_INVALID,
};

use super::memory::{input, len, read};
use crate::mechanism::{IvOut, Mechanism, Parameter};

/// A caller's mechanism and its parameter, copied.
pub(super) unsafe fn mechanism_of(ptr: *const CK_MECHANISM) -> Result<Mechanism, CK_RV> {
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
