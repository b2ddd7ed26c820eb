//! A mechanism and its parameter, as the C ABI copies them out of the
//! caller's memory: what the other mechanism modules read.

use cryptoki_sys::{CK_MECHANISM_TYPE, CK_RV, CK_ULONG, CKR_MECHANISM_PARAM_INVALID};

/// Where the caller asked for an IV the HSM makes to be written: the
/// `pIv` of an AES-GCM encryption's `CK_GCM_PARAMS`, as CloudHSM's library
/// writes it. The address is the caller's, valid until the operation ends
/// (CloudHSM's contract for this parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IvOut {
    pub(crate) address: usize,
    pub(crate) len: usize,
}

/// A mechanism's parameter, copied out of C memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parameter {
    None,
    /// A parameter that is a byte string: the IV of `CKM_AES_CBC(_PAD)`,
    /// `CKM_DES3_CBC` or `CKM_DES3_CBC_PAD`.
    Bytes(Vec<u8>),
    Ctr {
        counter_bits: CK_ULONG,
        block: [u8; 16],
    },
    Gcm {
        iv: Vec<u8>,
        aad: Vec<u8>,
        tag_bits: CK_ULONG,
        iv_out: Option<IvOut>,
    },
    Oaep {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_ULONG,
        source: CK_ULONG,
        label: Vec<u8>,
    },
    Pss {
        hash: CK_MECHANISM_TYPE,
        mgf: CK_ULONG,
        salt_len: CK_ULONG,
    },
    /// `CK_RSA_AES_KEY_WRAP_PARAMS`: the AES key's size and the OAEP
    /// parameter ([`Parameter::Oaep`]).
    RsaAes {
        aes_bits: CK_ULONG,
        oaep: Box<Parameter>,
    },
    /// A parameter of a kind this library does not read, by length.
    Other(usize),
}

/// A mechanism and its parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mechanism {
    pub(crate) kind: CK_MECHANISM_TYPE,
    pub(crate) parameter: Parameter,
}

impl Mechanism {
    #[cfg(test)]
    pub(crate) fn bare(kind: CK_MECHANISM_TYPE) -> Mechanism {
        Mechanism { kind, parameter: Parameter::None }
    }

    /// Refuses any parameter: for mechanisms that take none.
    pub(crate) fn no_parameter(&self) -> Result<(), CK_RV> {
        match self.parameter {
            Parameter::None => Ok(()),
            _ => Err(CKR_MECHANISM_PARAM_INVALID),
        }
    }
}
