//! Encryption, decryption and wrapping mechanisms: which the HSM takes,
//! their parameters, and the lengths each can take (refused here, with
//! the return value PKCS#11 gives, before the HSM is asked).

use cryptoki_sys::{
    CK_RV, CK_ULONG, CKM_AES_CBC, CKM_AES_CBC_PAD, CKM_AES_CTR, CKM_AES_ECB, CKM_AES_GCM, CKM_AES_KEY_WRAP,
    CKM_AES_KEY_WRAP_PAD, CKM_DES3_CBC, CKM_DES3_CBC_PAD, CKM_DES3_ECB, CKM_RSA_AES_KEY_WRAP, CKM_RSA_PKCS,
    CKM_RSA_PKCS_OAEP, CKM_RSA_X_509, CKR_DATA_LEN_RANGE, CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_MECHANISM_INVALID,
    CKR_MECHANISM_PARAM_INVALID, CKZ_DATA_SPECIFIED,
};
use hsm_client::keys::{Cipher, HashAlgorithm, WrapMechanism};

use super::{
    Family, IvOut, MAX_DATA_LEN, Mechanism, PKCS1_OVERHEAD, Parameter,
    hashing::{digest_len, hash_of, mgf_of},
};

/// An encryption (or decryption) mechanism as the HSM takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ciphering {
    pub(crate) family: Family,
    pub(crate) cipher: Cipher,
    pub(crate) hash: Option<HashAlgorithm>,
    pub(crate) iv: Vec<u8>,
    pub(crate) aad: Vec<u8>,
    /// AES-GCM encryption: where the HSM's IV goes.
    pub(crate) iv_out: Option<IvOut>,
    /// AES-CTR: how many low bits of the block count.
    counter_bits: Option<CK_ULONG>,
    /// Which way: the length rules (and their return values) differ.
    encrypting: bool,
    /// The RSA key's modulus length in bytes, once the key is known.
    modulus_len: Option<usize>,
}

/// The AES block: the length of CBC's IV, and what unpadded modes take
/// whole.
const AES_BLOCK_LEN: usize = 16;

/// Triple DES CBC's IV: one 8-byte block.
const DES3_IV_LEN: usize = 8;

/// AES-GCM's IV, which the HSM makes, and its tag, 128 bits.
const GCM_IV_LEN: usize = 12;
const GCM_TAG_BITS: CK_ULONG = 128;
const GCM_TAG_LEN: usize = 16;

impl Ciphering {
    /// The encryption mechanisms offered; `encrypting` false for decryption.
    pub(crate) fn from_mechanism(mechanism: &Mechanism, encrypting: bool) -> Result<Ciphering, CK_RV> {
        let aes = |cipher, iv: Vec<u8>| Ciphering {
            family: Family::Aes,
            cipher,
            hash: None,
            iv,
            aad: Vec::new(),
            iv_out: None,
            counter_bits: None,
            encrypting,
            modulus_len: None,
        };
        let des3 = |cipher, iv| Ciphering { family: Family::Des3, ..aes(cipher, iv) };
        match (mechanism.kind, &mechanism.parameter) {
            (CKM_AES_ECB, Parameter::None) => Ok(aes(Cipher::AesEcb, Vec::new())),
            (CKM_AES_CBC_PAD, Parameter::Bytes(iv)) if iv.len() == 16 => Ok(aes(Cipher::AesCbcPad, iv.clone())),
            (CKM_AES_CBC, Parameter::Bytes(iv)) if iv.len() == AES_BLOCK_LEN => Ok(aes(Cipher::AesCbc, iv.clone())),
            (CKM_AES_CTR, Parameter::Ctr { counter_bits, block }) if (1..=128).contains(counter_bits) => {
                Ok(Ciphering { counter_bits: Some(*counter_bits), ..aes(Cipher::AesCtr, block.to_vec()) })
            }
            (CKM_AES_GCM, Parameter::Gcm { iv, aad, tag_bits, iv_out }) => {
                if *tag_bits != GCM_TAG_BITS || aad.len() > MAX_DATA_LEN {
                    return Err(CKR_MECHANISM_PARAM_INVALID);
                }
                // Encrypting, the HSM makes the IV and the library hands it
                // back through `pIv` (CloudHSM's behaviour); decrypting
                // takes the IV that encryption made.
                let (iv, iv_out) = if encrypting {
                    let out = iv_out.filter(|o| o.len >= GCM_IV_LEN).ok_or(CKR_MECHANISM_PARAM_INVALID)?;
                    (Vec::new(), Some(IvOut { len: GCM_IV_LEN, ..out }))
                } else if iv.len() == GCM_IV_LEN {
                    (iv.clone(), None)
                } else {
                    return Err(CKR_MECHANISM_PARAM_INVALID);
                };
                Ok(Ciphering { aad: aad.clone(), iv_out, ..aes(Cipher::AesGcm, iv) })
            }
            (CKM_RSA_PKCS, Parameter::None) => {
                Ok(Ciphering { family: Family::Rsa, ..aes(Cipher::RsaPkcs, Vec::new()) })
            }
            (CKM_RSA_X_509, Parameter::None) => {
                Ok(Ciphering { family: Family::Rsa, ..aes(Cipher::RsaX509, Vec::new()) })
            }
            (CKM_RSA_PKCS_OAEP, parameter) => {
                let hash = oaep_hash(parameter)?;
                Ok(Ciphering { family: Family::Rsa, hash: Some(hash), ..aes(Cipher::RsaOaep, Vec::new()) })
            }
            (CKM_DES3_ECB, Parameter::None) => Ok(des3(Cipher::Des3Ecb, Vec::new())),
            (CKM_DES3_CBC, Parameter::Bytes(iv)) if iv.len() == DES3_IV_LEN => Ok(des3(Cipher::Des3Cbc, iv.clone())),
            (CKM_DES3_CBC_PAD, Parameter::Bytes(iv)) if iv.len() == DES3_IV_LEN => {
                Ok(des3(Cipher::Des3CbcPad, iv.clone()))
            }
            (CKM_DES3_ECB | CKM_DES3_CBC | CKM_DES3_CBC_PAD, _) => Err(CKR_MECHANISM_PARAM_INVALID),
            (CKM_AES_ECB | CKM_AES_CBC_PAD | CKM_AES_CTR | CKM_AES_GCM | CKM_RSA_PKCS, _) => {
                Err(CKR_MECHANISM_PARAM_INVALID)
            }
            (CKM_AES_CBC | CKM_RSA_X_509, _) => Err(CKR_MECHANISM_PARAM_INVALID),
            _ => Err(CKR_MECHANISM_INVALID),
        }
    }
}

impl Ciphering {
    /// The same mechanism for a key whose RSA modulus is `modulus_len` bytes.
    pub(crate) fn for_modulus(self, modulus_len: Option<usize>) -> Ciphering {
        Ciphering { modulus_len, ..self }
    }

    /// Refuses, before the HSM is asked, a length the mechanism cannot
    /// take, with the return code PKCS#11 gives for it: `CKR_DATA_LEN_RANGE`
    /// for data (encrypting), `CKR_ENCRYPTED_DATA_LEN_RANGE` for a
    /// ciphertext no encryption could have made (decrypting). Data for
    /// AES-ECB, unpadded AES-CBC or unpadded triple DES that is not whole
    /// blocks; a CBC-PAD ciphertext that is not whole blocks (or empty),
    /// or a GCM one shorter
    /// than its tag; RSA data longer than the padding leaves room for, or an
    /// RSA ciphertext not the modulus's length; AES-CTR data that would
    /// carry its counter (the block's low `counter_bits`) past its top (the
    /// HSM counts with the whole block, which is the same short of that).
    pub(crate) fn check_len(&self, len: usize) -> Result<(), CK_RV> {
        let range = if self.encrypting { CKR_DATA_LEN_RANGE } else { CKR_ENCRYPTED_DATA_LEN_RANGE };
        let whole = len.is_multiple_of(AES_BLOCK_LEN);
        let whole_des = len.is_multiple_of(DES3_IV_LEN);
        // The most an RSA encryption with this padding takes, for a
        // modulus of k bytes.
        let rsa_room = |k: usize| match (self.cipher, self.hash) {
            (Cipher::RsaPkcs, _) => k.saturating_sub(PKCS1_OVERHEAD),
            (Cipher::RsaOaep, Some(hash)) => k.saturating_sub(2 * digest_len(hash) + 2),
            _ => k,
        };
        let fits = match (self.cipher, self.encrypting, self.modulus_len) {
            (Cipher::AesEcb | Cipher::AesCbc, _, _) => whole,
            (Cipher::AesCbcPad, false, _) => whole && len > 0,
            (Cipher::Des3Ecb | Cipher::Des3Cbc, _, _) => whole_des,
            (Cipher::Des3CbcPad, false, _) => whole_des && len > 0,
            (Cipher::AesGcm, false, _) => len >= GCM_TAG_LEN,
            (Cipher::RsaPkcs | Cipher::RsaOaep | Cipher::RsaX509, true, Some(k)) => len <= rsa_room(k),
            (Cipher::RsaPkcs | Cipher::RsaOaep | Cipher::RsaX509, false, Some(k)) => len == k,
            _ => true,
        };
        if !fits {
            return Err(range);
        }
        let Some(bits) = self.counter_bits.filter(|b| *b < 128) else {
            return Ok(());
        };
        let block: [u8; 16] = self.iv.as_slice().try_into().map_err(|_| CKR_MECHANISM_PARAM_INVALID)?;
        let top = 1u128 << bits;
        let counter = u128::from_be_bytes(block) & (top - 1);
        let blocks = u128::try_from(len.div_ceil(16)).map_err(|_| CKR_DATA_LEN_RANGE)?;
        if counter + blocks > top { Err(CKR_DATA_LEN_RANGE) } else { Ok(()) }
    }
}

/// The hash of an OAEP parameter: MGF1 with the same hash, no label (the
/// HSM takes none).
fn oaep_hash(parameter: &Parameter) -> Result<HashAlgorithm, CK_RV> {
    let Parameter::Oaep { hash, mgf, source, label } = parameter else {
        return Err(CKR_MECHANISM_PARAM_INVALID);
    };
    let hash = hash_of(*hash).ok_or(CKR_MECHANISM_PARAM_INVALID)?;
    if *mgf != mgf_of(hash) || !(*source == 0 || *source == CKZ_DATA_SPECIFIED) || !label.is_empty() {
        return Err(CKR_MECHANISM_PARAM_INVALID);
    }
    Ok(hash)
}

/// A wrapping mechanism as the HSM takes it: (mechanism, hash, the
/// wrapping key's family).
pub(crate) fn wrapping(mechanism: &Mechanism) -> Result<(WrapMechanism, Option<HashAlgorithm>, Family), CK_RV> {
    match mechanism.kind {
        CKM_AES_KEY_WRAP => mechanism.no_parameter().map(|()| (WrapMechanism::AesKeyWrap, None, Family::Aes)),
        CKM_AES_KEY_WRAP_PAD => mechanism.no_parameter().map(|()| (WrapMechanism::AesKeyWrapPad, None, Family::Aes)),
        // The wrapped key carries its IV: the parameter's is not used.
        CKM_AES_GCM => Ok((WrapMechanism::AesGcm, None, Family::Aes)),
        CKM_RSA_PKCS_OAEP => Ok((WrapMechanism::RsaOaep, Some(oaep_hash(&mechanism.parameter)?), Family::Rsa)),
        // The HSM's RSA-AES wraps with an AES-256 key (then RFC 5649).
        CKM_RSA_AES_KEY_WRAP => match &mechanism.parameter {
            Parameter::RsaAes { aes_bits: 256, oaep } => {
                Ok((WrapMechanism::RsaAes, Some(oaep_hash(oaep)?), Family::Rsa))
            }
            _ => Err(CKR_MECHANISM_PARAM_INVALID),
        },
        _ => Err(CKR_MECHANISM_INVALID),
    }
}

#[cfg(test)]
mod tests {
    use cryptoki_sys::{CKG_MGF1_SHA1, CKG_MGF1_SHA256, CKM_SHA256};

    use super::*;

    #[test]
    fn unpadded_lengths_are_range_errors_each_way() {
        let cbc = Mechanism { kind: CKM_AES_CBC, parameter: Parameter::Bytes(vec![0; 16]) };
        let (encrypt, decrypt) =
            (Ciphering::from_mechanism(&cbc, true).unwrap(), Ciphering::from_mechanism(&cbc, false).unwrap());
        assert_eq!(encrypt.cipher, Cipher::AesCbc);
        assert_eq!((encrypt.check_len(32), decrypt.check_len(0)), (Ok(()), Ok(())));
        assert_eq!(encrypt.check_len(15), Err(CKR_DATA_LEN_RANGE));
        assert_eq!(decrypt.check_len(17), Err(CKR_ENCRYPTED_DATA_LEN_RANGE));
        let short_iv = Mechanism { kind: CKM_AES_CBC, parameter: Parameter::Bytes(vec![0; 8]) };
        assert_eq!(Ciphering::from_mechanism(&short_iv, true), Err(CKR_MECHANISM_PARAM_INVALID));

        let x509 = Mechanism::bare(CKM_RSA_X_509);
        let encrypt = Ciphering::from_mechanism(&x509, true).unwrap().for_modulus(Some(256));
        let decrypt = Ciphering::from_mechanism(&x509, false).unwrap().for_modulus(Some(256));
        assert_eq!((encrypt.check_len(1), encrypt.check_len(256)), (Ok(()), Ok(())));
        assert_eq!(encrypt.check_len(257), Err(CKR_DATA_LEN_RANGE));
        assert_eq!(decrypt.check_len(256), Ok(()));
        assert_eq!(decrypt.check_len(255), Err(CKR_ENCRYPTED_DATA_LEN_RANGE));
    }

    #[test]
    fn gcm_encryption_hands_back_the_hsms_iv() {
        let gcm = |iv_out| Mechanism {
            kind: CKM_AES_GCM,
            parameter: Parameter::Gcm { iv: vec![0; 12], aad: b"aad".to_vec(), tag_bits: 128, iv_out },
        };
        let out = IvOut { address: 0x1000, len: 12 };
        let c = Ciphering::from_mechanism(&gcm(Some(out)), true).unwrap();
        assert_eq!((c.iv.len(), c.iv_out, &c.aad[..]), (0, Some(out), &b"aad"[..]));
        assert_eq!(Ciphering::from_mechanism(&gcm(None), true), Err(CKR_MECHANISM_PARAM_INVALID));
        let d = Ciphering::from_mechanism(&gcm(None), false).unwrap();
        assert_eq!((d.iv, d.iv_out), (vec![0; 12], None));
    }

    #[test]
    fn a_ctr_counter_may_not_wrap_in_its_bits() {
        let ctr = |counter_bits, last| {
            let mut block = [0u8; 16];
            block[15] = last;
            let parameter = Parameter::Ctr { counter_bits, block };
            Ciphering::from_mechanism(&Mechanism { kind: CKM_AES_CTR, parameter }, true).unwrap()
        };
        assert_eq!(ctr(8, 0xfe).check_len(32), Ok(()), "blocks 0xfe and 0xff");
        assert_eq!(ctr(8, 0xfe).check_len(33), Err(CKR_DATA_LEN_RANGE), "0x100 wraps");
        assert_eq!(ctr(128, 0xff).check_len(MAX_DATA_LEN), Ok(()));
    }

    #[test]
    fn oaep_takes_mgf1_of_its_hash_and_no_label() {
        let oaep = |mgf, label: &[u8]| Mechanism {
            kind: CKM_RSA_PKCS_OAEP,
            parameter: Parameter::Oaep { hash: CKM_SHA256, mgf, source: CKZ_DATA_SPECIFIED, label: label.to_vec() },
        };
        assert_eq!(
            Ciphering::from_mechanism(&oaep(CKG_MGF1_SHA256, b""), true).unwrap().hash,
            Some(HashAlgorithm::Sha256)
        );
        assert_eq!(Ciphering::from_mechanism(&oaep(CKG_MGF1_SHA1, b""), true), Err(CKR_MECHANISM_PARAM_INVALID));
        assert_eq!(Ciphering::from_mechanism(&oaep(CKG_MGF1_SHA256, b"l"), true), Err(CKR_MECHANISM_PARAM_INVALID));
        assert_eq!(wrapping(&oaep(CKG_MGF1_SHA256, b"")).unwrap().0, WrapMechanism::RsaOaep);
    }
}
