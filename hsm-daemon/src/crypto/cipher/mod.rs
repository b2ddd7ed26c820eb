//! [`encrypt`] / [`decrypt`]: the one `match` from [`Cipher`] to a library
//! call, and the AES and RSA helpers that [`super::wrap`] shares.
//!
//! AES-GCM with 128- and 256-bit keys is ring's; ring has no AES-192-GCM, so
//! that size is `aes-gcm`'s, as are tags shorter than 128 bits (key wrapping
//! with `tag_length_bits`; ring has full tags only). CBC, CTR and ECB are `aes` with `cbc`, `ctr`
//! and `ecb`; RSA encryption is the `rsa` crate's (ring has none), raw RSA
//! its hazmat operations (`raw_rsa.rs`). Triple DES is `des`'s `TdesEde3`
//! with the same `cbc` and `ecb` modes.
//!
//! # Layout
//! - `aes_modes`: AES-GCM (full and short tags), CTR, ECB, single blocks, and
//!   the IV and length checks of the AES modes.
//! - `des3`: triple DES CBC, single blocks, and its IV and length checks.
//! - `rsa_schemes`: RSA-OAEP and PKCS #1 v1.5 encryption and decryption.
//!
//! Here: [`encrypt`] / [`decrypt`], the checks every mechanism shares, and
//! [`with_aes!`](with_aes), which picks the AES type for a key's length.

use aes::cipher::block_padding::{NoPadding, Pkcs7};
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit};
use rand::{CryptoRng, TryRngCore as _};
use zeroize::Zeroizing;

use super::{Cipher, CryptoError, Encrypted, KeyMaterial, SecretBytes, check_data_len, raw_rsa};

pub(super) use self::{
    aes_modes::{aes_encrypt_block, gcm_open_tagged, gcm_seal_tagged},
    des3::des3_encrypt_block,
    rsa_schemes::{oaep_decrypt, oaep_encrypt, pkcs1_decrypt, pkcs1_encrypt},
};
use self::{
    aes_modes::{aes_key, check_blocks, check_iv_len, ctr_apply, ecb_encrypt, gcm_open, gcm_seal, iv_or_random},
    des3::{check_des_blocks, check_des_iv_len, des_iv_or_random, des3_cbc_decrypt, des3_cbc_encrypt, des3_key},
    rsa_schemes::{check_rsa_ciphertext_len, rsa_private, rsa_public},
};

/// AES-GCM IV length: 96 bits, the size CloudHSM generates.
pub(super) const GCM_IV_LEN: usize = 12;
/// AES-GCM tag length: 128 bits.
pub(super) const GCM_TAG_LEN: usize = 16;
/// AES block, CBC IV and CTR counter block length.
const AES_BLOCK_LEN: usize = 16;
/// DES block and triple DES CBC IV length.
const DES_BLOCK_LEN: usize = 8;

/// Triple DES with three keys, encrypt-decrypt-encrypt (SP 800-67).
type Tdes = des::TdesEde3;

/// Runs `$body` with `$aes` naming the `aes` cipher type for the key's length.
macro_rules! with_aes {
    ($key:expr, $aes:ident => $body:expr) => {
        match $key.len() {
            16 => {
                type $aes = aes::Aes128;
                $body
            }
            24 => {
                type $aes = aes::Aes192;
                $body
            }
            32 => {
                type $aes = aes::Aes256;
                $body
            }
            n => Err(CryptoError::InvalidKey(format!("AES key of {n} bytes"))),
        }
    };
}

// After `with_aes!`, which `aes_modes` uses.
mod aes_modes;
mod des3;
mod rsa_schemes;

pub(super) fn encrypt(
    key: &KeyMaterial,
    cipher: Cipher,
    iv: Option<&[u8]>,
    aad: &[u8],
    plaintext: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<Encrypted, CryptoError> {
    check_data_len("plaintext", plaintext)?;
    check_aad(cipher, aad)?;
    match cipher {
        Cipher::AesGcm => {
            let key = aes_key(key, cipher)?;
            let mut nonce = [0u8; GCM_IV_LEN];
            rng.fill_bytes(&mut nonce);
            let ciphertext = gcm_seal(key, nonce, aad, plaintext)?;
            Ok(Encrypted { iv: Some(nonce.to_vec()), ciphertext })
        }
        Cipher::AesCbcPad => {
            let key = aes_key(key, cipher)?;
            let iv = iv_or_random(iv, rng)?;
            let mut buf = Zeroizing::new(vec![0u8; plaintext.len() + AES_BLOCK_LEN]);
            buf[..plaintext.len()].copy_from_slice(plaintext);
            let ciphertext = with_aes!(key, Aes => cbc::Encryptor::<Aes>::new_from_slices(key, &iv)
                .map_err(|_| CryptoError::InvalidKey("AES-CBC key or IV length".to_owned()))?
                .encrypt_padded::<Pkcs7>(&mut buf, plaintext.len())
                .map(<[u8]>::to_vec)
                .map_err(|_| CryptoError::invalid("plaintext", "does not fit the padded buffer")))?;
            Ok(Encrypted { iv: Some(iv.to_vec()), ciphertext })
        }
        Cipher::AesCtr => {
            let key = aes_key(key, cipher)?;
            let iv = iv_or_random(iv, rng)?;
            let ciphertext = ctr_apply(key, &iv, plaintext)?.to_vec();
            Ok(Encrypted { iv: Some(iv.to_vec()), ciphertext })
        }
        Cipher::AesEcb => {
            let key = aes_key(key, cipher)?;
            refuse_iv(cipher, iv)?;
            check_blocks(cipher, "plaintext", plaintext)?;
            let ciphertext = ecb_encrypt(key, plaintext)?;
            Ok(Encrypted { iv: None, ciphertext })
        }
        Cipher::Des3Ecb => {
            let key = des3_key(key, cipher)?;
            refuse_iv(cipher, iv)?;
            check_des_blocks(cipher, "plaintext", plaintext)?;
            let mut buf = Zeroizing::new(plaintext.to_vec());
            ecb::Encryptor::<Tdes>::new_from_slice(key)
                .map_err(|_| CryptoError::InvalidKey("triple DES key length".to_owned()))?
                .encrypt_padded::<NoPadding>(&mut buf, plaintext.len())
                .map_err(|_| CryptoError::invalid("plaintext", "does not fit the buffer"))?;
            Ok(Encrypted { iv: None, ciphertext: buf.to_vec() })
        }
        Cipher::Des3Cbc | Cipher::Des3CbcPad => {
            let key = des3_key(key, cipher)?;
            let iv = des_iv_or_random(iv, rng)?;
            let ciphertext = if cipher == Cipher::Des3Cbc {
                check_des_blocks(cipher, "plaintext", plaintext)?;
                des3_cbc_encrypt::<NoPadding>(key, &iv, plaintext)?
            } else {
                des3_cbc_encrypt::<Pkcs7>(key, &iv, plaintext)?
            };
            Ok(Encrypted { iv: Some(iv.to_vec()), ciphertext })
        }
        Cipher::RsaOaep(hash) => {
            let public = rsa_public(key, cipher)?;
            refuse_iv(cipher, iv)?;
            let ciphertext = oaep_encrypt(public, hash, plaintext, rng)?;
            Ok(Encrypted { iv: None, ciphertext })
        }
        Cipher::RsaPkcs1 => {
            let public = rsa_public(key, cipher)?;
            refuse_iv(cipher, iv)?;
            Ok(Encrypted { iv: None, ciphertext: pkcs1_encrypt(public, plaintext, rng)? })
        }
        Cipher::AesCbc => {
            let key = aes_key(key, cipher)?;
            let iv = iv_or_random(iv, rng)?;
            check_blocks(cipher, "plaintext", plaintext)?;
            let mut buf = Zeroizing::new(plaintext.to_vec());
            with_aes!(key, Aes => cbc::Encryptor::<Aes>::new_from_slices(key, &iv)
                .map_err(|_| CryptoError::InvalidKey("AES-CBC key or IV length".to_owned()))?
                .encrypt_padded::<NoPadding>(&mut buf, plaintext.len())
                .map(|_| ())
                .map_err(|_| CryptoError::invalid("plaintext", "AES-CBC plaintexts are a multiple of 16 bytes")))?;
            Ok(Encrypted { iv: Some(iv.to_vec()), ciphertext: buf.to_vec() })
        }
        Cipher::RsaX509 => {
            let public = rsa_public(key, cipher)?;
            refuse_iv(cipher, iv)?;
            Ok(Encrypted { iv: None, ciphertext: raw_rsa::public(public, "plaintext", plaintext)? })
        }
    }
}

pub(super) fn decrypt(
    key: &KeyMaterial,
    cipher: Cipher,
    iv: Option<&[u8]>,
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<SecretBytes, CryptoError> {
    // What `encrypt` adds beyond the data limit: GCM's tag, CBC's padding.
    let overhead = match cipher {
        Cipher::AesGcm => GCM_TAG_LEN,
        Cipher::AesCbcPad => AES_BLOCK_LEN,
        Cipher::Des3CbcPad => DES_BLOCK_LEN,
        Cipher::AesCtr
        | Cipher::AesEcb
        | Cipher::Des3Ecb
        | Cipher::Des3Cbc
        | Cipher::RsaOaep(_)
        | Cipher::RsaPkcs1
        | Cipher::AesCbc
        | Cipher::RsaX509 => 0,
    };
    check_data_len("ciphertext", &ciphertext[..ciphertext.len().saturating_sub(overhead)])?;
    check_aad(cipher, aad)?;
    match cipher {
        Cipher::AesGcm => {
            let key = aes_key(key, cipher)?;
            let iv = iv.ok_or_else(|| CryptoError::invalid("iv", "AES-GCM decryption needs the 12-byte IV"))?;
            let nonce: [u8; GCM_IV_LEN] = iv.try_into().map_err(|_| {
                CryptoError::invalid("iv", format!("AES-GCM IVs are {GCM_IV_LEN} bytes, not {}", iv.len()))
            })?;
            gcm_open(key, nonce, aad, ciphertext)
        }
        Cipher::AesCbcPad => {
            let key = aes_key(key, cipher)?;
            let iv = iv.ok_or_else(|| CryptoError::invalid("iv", "AES-CBC decryption needs the 16-byte IV"))?;
            check_iv_len(iv)?;
            if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(AES_BLOCK_LEN) {
                return Err(CryptoError::invalid(
                    "ciphertext",
                    format!("AES-CBC ciphertexts are a positive multiple of 16 bytes, not {}", ciphertext.len()),
                ));
            }
            let mut buf = Zeroizing::new(ciphertext.to_vec());
            let len = with_aes!(key, Aes => cbc::Decryptor::<Aes>::new_from_slices(key, iv)
                .map_err(|_| CryptoError::InvalidKey("AES-CBC key or IV length".to_owned()))?
                .decrypt_padded::<Pkcs7>(&mut buf)
                .map(<[u8]>::len)
                .map_err(|_| CryptoError::Authentication("AES-CBC decryption (PKCS#7 padding)")))?;
            buf.truncate(len);
            Ok(buf)
        }
        Cipher::AesCtr => {
            let key = aes_key(key, cipher)?;
            let iv =
                iv.ok_or_else(|| CryptoError::invalid("iv", "AES-CTR decryption needs the 16-byte counter block"))?;
            check_iv_len(iv)?;
            ctr_apply(key, iv, ciphertext)
        }
        Cipher::AesEcb => {
            let key = aes_key(key, cipher)?;
            refuse_iv(cipher, iv)?;
            check_blocks(cipher, "ciphertext", ciphertext)?;
            let mut buf = Zeroizing::new(ciphertext.to_vec());
            with_aes!(key, Aes => ecb::Decryptor::<Aes>::new_from_slice(key)
                .map_err(|_| CryptoError::InvalidKey("AES-ECB key length".to_owned()))?
                .decrypt_padded::<NoPadding>(&mut buf)
                .map(|_| ())
                .map_err(|_| CryptoError::invalid("ciphertext", "AES-ECB ciphertexts are a multiple of 16 bytes")))?;
            Ok(buf)
        }
        Cipher::Des3Ecb => {
            let key = des3_key(key, cipher)?;
            refuse_iv(cipher, iv)?;
            check_des_blocks(cipher, "ciphertext", ciphertext)?;
            let mut buf = Zeroizing::new(ciphertext.to_vec());
            ecb::Decryptor::<Tdes>::new_from_slice(key)
                .map_err(|_| CryptoError::InvalidKey("triple DES key length".to_owned()))?
                .decrypt_padded::<NoPadding>(&mut buf)
                .map_err(|_| CryptoError::invalid("ciphertext", "DES3-ECB ciphertexts are a multiple of 8 bytes"))?;
            Ok(buf)
        }
        Cipher::Des3Cbc | Cipher::Des3CbcPad => {
            let key = des3_key(key, cipher)?;
            let iv =
                iv.ok_or_else(|| CryptoError::invalid("iv", format!("{cipher:?} decryption needs the 8-byte IV")))?;
            check_des_iv_len(iv)?;
            if ciphertext.is_empty() && cipher == Cipher::Des3CbcPad {
                return Err(CryptoError::invalid("ciphertext", "DES3-CBC-PAD ciphertexts are at least one block"));
            }
            check_des_blocks(cipher, "ciphertext", ciphertext)?;
            if cipher == Cipher::Des3Cbc {
                des3_cbc_decrypt::<NoPadding>(key, iv, ciphertext)
            } else {
                des3_cbc_decrypt::<Pkcs7>(key, iv, ciphertext)
            }
        }
        Cipher::RsaOaep(hash) => {
            let private = rsa_private(key, cipher)?;
            refuse_iv(cipher, iv)?;
            oaep_decrypt(private, hash, ciphertext)
        }
        Cipher::RsaPkcs1 => {
            let private = rsa_private(key, cipher)?;
            refuse_iv(cipher, iv)?;
            pkcs1_decrypt(private, ciphertext)
        }
        Cipher::AesCbc => {
            let key = aes_key(key, cipher)?;
            let iv = iv.ok_or_else(|| CryptoError::invalid("iv", "AES-CBC decryption needs the 16-byte IV"))?;
            check_iv_len(iv)?;
            check_blocks(cipher, "ciphertext", ciphertext)?;
            let mut buf = Zeroizing::new(ciphertext.to_vec());
            with_aes!(key, Aes => cbc::Decryptor::<Aes>::new_from_slices(key, iv)
                .map_err(|_| CryptoError::InvalidKey("AES-CBC key or IV length".to_owned()))?
                .decrypt_padded::<NoPadding>(&mut buf)
                .map(|_| ())
                .map_err(|_| CryptoError::invalid("ciphertext", "AES-CBC ciphertexts are a multiple of 16 bytes")))?;
            Ok(buf)
        }
        Cipher::RsaX509 => {
            let private = rsa_private(key, cipher)?;
            refuse_iv(cipher, iv)?;
            check_rsa_ciphertext_len(&private.public, ciphertext)?;
            // Blinded with the operating system's generator, as the other
            // RSA decryptions are: decryption takes no generator.
            raw_rsa::private(private, "ciphertext", ciphertext, &mut rand::rngs::OsRng.unwrap_err())
        }
    }
}

fn refuse_iv(cipher: Cipher, iv: Option<&[u8]>) -> Result<(), CryptoError> {
    if iv.is_some() {
        return Err(CryptoError::invalid("iv", format!("{cipher:?} takes no IV")));
    }
    Ok(())
}

fn check_aad(cipher: Cipher, aad: &[u8]) -> Result<(), CryptoError> {
    check_data_len("aad", aad)?;
    if cipher != Cipher::AesGcm && !aad.is_empty() {
        return Err(CryptoError::invalid("aad", "only AES-GCM takes additional authenticated data"));
    }
    Ok(())
}

fn wrong_key(cipher: Cipher, key: &KeyMaterial) -> CryptoError {
    CryptoError::WrongKeyType { mechanism: format!("{cipher:?}"), key: key.describe() }
}
