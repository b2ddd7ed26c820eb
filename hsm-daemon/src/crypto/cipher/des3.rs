//! Triple DES (`des`'s `TdesEde3`): CBC with and without padding, single
//! blocks for check values, and the IV and length checks.

use aes::cipher::block_padding::Padding;
use aes::cipher::{BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit};
use rand::CryptoRng;
use zeroize::Zeroizing;

use super::{DES_BLOCK_LEN, Tdes, wrong_key};
use crate::crypto::{Cipher, CryptoError, KeyMaterial, SecretBytes};

/// The triple DES key bytes of `key`, or `WrongKeyType` for `cipher`.
pub(super) fn des3_key(key: &KeyMaterial, cipher: Cipher) -> Result<&[u8], CryptoError> {
    key.des3_bytes().ok_or_else(|| wrong_key(cipher, key))
}

/// Triple DES CBC encryption with padding `P` (`NoPadding` takes whole
/// blocks only; the caller checked).
pub(super) fn des3_cbc_encrypt<P: Padding>(key: &[u8], iv: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut buf = Zeroizing::new(vec![0u8; plaintext.len() + DES_BLOCK_LEN]);
    buf[..plaintext.len()].copy_from_slice(plaintext);
    cbc::Encryptor::<Tdes>::new_from_slices(key, iv)
        .map_err(|_| CryptoError::InvalidKey("triple DES key or IV length".to_owned()))?
        .encrypt_padded::<P>(&mut buf, plaintext.len())
        .map(<[u8]>::to_vec)
        .map_err(|_| CryptoError::invalid("plaintext", "does not fit the padded buffer"))
}

/// Triple DES CBC decryption, removing padding `P`.
pub(super) fn des3_cbc_decrypt<P: Padding>(
    key: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
) -> Result<SecretBytes, CryptoError> {
    let mut buf = Zeroizing::new(ciphertext.to_vec());
    let len = cbc::Decryptor::<Tdes>::new_from_slices(key, iv)
        .map_err(|_| CryptoError::InvalidKey("triple DES key or IV length".to_owned()))?
        .decrypt_padded::<P>(&mut buf)
        .map(<[u8]>::len)
        .map_err(|_| CryptoError::Authentication("DES3-CBC-PAD decryption (PKCS#7 padding)"))?;
    buf.truncate(len);
    Ok(buf)
}

/// One triple DES block (for the key check value).
pub(in crate::crypto) fn des3_encrypt_block(
    key: &[u8],
    block: [u8; DES_BLOCK_LEN],
) -> Result<[u8; DES_BLOCK_LEN], CryptoError> {
    let mut block = block.into();
    Tdes::new_from_slice(key)
        .map(|tdes| tdes.encrypt_block(&mut block))
        .map_err(|_| CryptoError::InvalidKey("triple DES key length".to_owned()))?;
    Ok(block.into())
}

pub(super) fn des_iv_or_random(
    iv: Option<&[u8]>,
    rng: &mut impl CryptoRng,
) -> Result<[u8; DES_BLOCK_LEN], CryptoError> {
    let mut block = [0u8; DES_BLOCK_LEN];
    match iv {
        Some(iv) => {
            check_des_iv_len(iv)?;
            block.copy_from_slice(iv);
        }
        None => rng.fill_bytes(&mut block),
    }
    Ok(block)
}

pub(super) fn check_des_iv_len(iv: &[u8]) -> Result<(), CryptoError> {
    if iv.len() != DES_BLOCK_LEN {
        return Err(CryptoError::invalid("iv", format!("triple DES CBC IVs are 8 bytes, not {}", iv.len())));
    }
    Ok(())
}

pub(super) fn check_des_blocks(cipher: Cipher, field: &'static str, data: &[u8]) -> Result<(), CryptoError> {
    if !data.len().is_multiple_of(DES_BLOCK_LEN) {
        return Err(CryptoError::invalid(field, format!("{cipher:?} takes a multiple of 8 bytes, not {}", data.len())));
    }
    Ok(())
}
