//! [`encrypt`] / [`decrypt`]: the one `match` from [`Cipher`] to a library
//! call, and the AES and RSA helpers that [`super::wrap`] shares.
//!
//! AES-GCM with 128- and 256-bit keys is ring's; ring has no AES-192-GCM, so
//! that size is `aes-gcm`'s, as are tags shorter than 128 bits (key wrapping
//! with `tag_length_bits`; ring has full tags only). CBC, CTR and ECB are `aes` with `cbc`, `ctr`
//! and `ecb`; RSA encryption is the `rsa` crate's (ring has none), raw RSA
//! its hazmat operations (`raw_rsa.rs`). Triple DES is `des`'s `TdesEde3`
//! with the same `cbc` and `ecb` modes.

use aes::cipher::block_padding::{NoPadding, Padding, Pkcs7};
use aes::cipher::{BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit, StreamCipher};
use rand::{CryptoRng, TryRngCore as _};
use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::keys::{RsaPrivate, RsaPublic};
use super::{
    Cipher, CryptoError, Encrypted, GcmTagLen, HashAlg, KeyMaterial, SecretBytes, check_data_len, raw_rsa, rng,
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

// ---- AES ----

/// The AES key bytes of `key`, or `WrongKeyType` for `cipher`.
fn aes_key(key: &KeyMaterial, cipher: Cipher) -> Result<&[u8], CryptoError> {
    key.aes_bytes().ok_or_else(|| wrong_key(cipher, key))
}

/// AES-GCM encryption (ring for 128/256-bit keys, `aes-gcm` for 192):
/// ciphertext || tag.
pub(super) fn gcm_seal(
    key: &[u8],
    nonce: [u8; GCM_IV_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    match key.len() {
        16 | 32 => {
            let key = ring_gcm_key(key)?;
            let mut buf = plaintext.to_vec();
            key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
                .map_err(|_| CryptoError::invalid("plaintext", "too long for AES-GCM"))?;
            Ok(buf)
        }
        24 => {
            use aes_gcm::aead::{Aead, Payload};
            aes192_gcm(key)?
                .encrypt(&nonce.into(), Payload { msg: plaintext, aad })
                .map_err(|_| CryptoError::invalid("plaintext", "too long for AES-GCM"))
        }
        n => Err(CryptoError::InvalidKey(format!("AES key of {n} bytes"))),
    }
}

/// AES-GCM decryption of ciphertext || tag.
pub(super) fn gcm_open(
    key: &[u8],
    nonce: [u8; GCM_IV_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<SecretBytes, CryptoError> {
    if ciphertext.len() < GCM_TAG_LEN {
        return Err(CryptoError::invalid("ciphertext", "shorter than the 16-byte AES-GCM tag"));
    }
    match key.len() {
        16 | 32 => {
            let key = ring_gcm_key(key)?;
            let mut buf = Zeroizing::new(ciphertext.to_vec());
            let len = key
                .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut buf)
                .map_err(|_| CryptoError::Authentication("AES-GCM decryption"))?
                .len();
            buf.truncate(len);
            Ok(buf)
        }
        24 => {
            use aes_gcm::aead::{Aead, Payload};
            aes192_gcm(key)?
                .decrypt(&nonce.into(), Payload { msg: ciphertext, aad })
                .map(Zeroizing::new)
                .map_err(|_| CryptoError::Authentication("AES-GCM decryption"))
        }
        n => Err(CryptoError::InvalidKey(format!("AES key of {n} bytes"))),
    }
}

/// AES-GCM encryption with a tag of `tag_len`: ciphertext || tag. Full tags
/// go through [`gcm_seal`]; shorter ones are `aes-gcm`'s.
pub(super) fn gcm_seal_tagged(
    key: &[u8],
    tag_len: GcmTagLen,
    nonce: [u8; GCM_IV_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    use aes_gcm::aead::consts::{U8, U12, U13, U14, U15};
    if tag_len == GcmTagLen::FULL {
        return gcm_seal(key, nonce, aad, plaintext);
    }
    with_aes!(key, Aes => match tag_len.bytes() {
        8 => seal_truncated::<Aes, U8>(key, nonce, aad, plaintext),
        12 => seal_truncated::<Aes, U12>(key, nonce, aad, plaintext),
        13 => seal_truncated::<Aes, U13>(key, nonce, aad, plaintext),
        14 => seal_truncated::<Aes, U14>(key, nonce, aad, plaintext),
        15 => seal_truncated::<Aes, U15>(key, nonce, aad, plaintext),
        n => Err(CryptoError::invalid("tag_length_bits", format!("no AES-GCM tag of {n} bytes"))),
    })
}

/// AES-GCM decryption of ciphertext || tag, the tag `tag_len` long.
pub(super) fn gcm_open_tagged(
    key: &[u8],
    tag_len: GcmTagLen,
    nonce: [u8; GCM_IV_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<SecretBytes, CryptoError> {
    use aes_gcm::aead::consts::{U8, U12, U13, U14, U15};
    if tag_len == GcmTagLen::FULL {
        return gcm_open(key, nonce, aad, ciphertext);
    }
    if ciphertext.len() < tag_len.bytes() {
        return Err(CryptoError::invalid(
            "ciphertext",
            format!("shorter than the {}-byte AES-GCM tag", tag_len.bytes()),
        ));
    }
    with_aes!(key, Aes => match tag_len.bytes() {
        8 => open_truncated::<Aes, U8>(key, nonce, aad, ciphertext),
        12 => open_truncated::<Aes, U12>(key, nonce, aad, ciphertext),
        13 => open_truncated::<Aes, U13>(key, nonce, aad, ciphertext),
        14 => open_truncated::<Aes, U14>(key, nonce, aad, ciphertext),
        15 => open_truncated::<Aes, U15>(key, nonce, aad, ciphertext),
        n => Err(CryptoError::invalid("tag_length_bits", format!("no AES-GCM tag of {n} bytes"))),
    })
}

/// `aes-gcm` with AES `A` and a `T`-byte tag.
type TruncatedGcm<A, T> = aes_gcm::AesGcm<A, aes_gcm::aead::consts::U12, T>;

fn seal_truncated<A, T>(
    key: &[u8],
    nonce: [u8; GCM_IV_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError>
where
    T: aes_gcm::TagSize,
    TruncatedGcm<A, T>: KeyInit + aes_gcm::aead::Aead + aes_gcm::aead::AeadCore<NonceSize = aes_gcm::aead::consts::U12>,
{
    use aes_gcm::aead::{Aead, Payload};
    TruncatedGcm::<A, T>::new_from_slice(key)
        .map_err(|_| CryptoError::InvalidKey(format!("AES key of {} bytes", key.len())))?
        .encrypt(&nonce.into(), Payload { msg: plaintext, aad })
        .map_err(|_| CryptoError::invalid("plaintext", "too long for AES-GCM"))
}

fn open_truncated<A, T>(
    key: &[u8],
    nonce: [u8; GCM_IV_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<SecretBytes, CryptoError>
where
    T: aes_gcm::TagSize,
    TruncatedGcm<A, T>: KeyInit + aes_gcm::aead::Aead + aes_gcm::aead::AeadCore<NonceSize = aes_gcm::aead::consts::U12>,
{
    use aes_gcm::aead::{Aead, Payload};
    TruncatedGcm::<A, T>::new_from_slice(key)
        .map_err(|_| CryptoError::InvalidKey(format!("AES key of {} bytes", key.len())))?
        .decrypt(&nonce.into(), Payload { msg: ciphertext, aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Authentication("AES-GCM decryption"))
}

fn ring_gcm_key(key: &[u8]) -> Result<LessSafeKey, CryptoError> {
    let alg = if key.len() == 16 { &AES_128_GCM } else { &AES_256_GCM };
    UnboundKey::new(alg, key)
        .map(LessSafeKey::new)
        .map_err(|_| CryptoError::InvalidKey(format!("AES key of {} bytes", key.len())))
}

type Aes192Gcm = aes_gcm::AesGcm<aes::Aes192, aes_gcm::aead::consts::U12>;

fn aes192_gcm(key: &[u8]) -> Result<Aes192Gcm, CryptoError> {
    Aes192Gcm::new_from_slice(key).map_err(|_| CryptoError::InvalidKey(format!("AES key of {} bytes", key.len())))
}

/// AES-CTR with a 128-bit big-endian counter (the whole block counts).
fn ctr_apply(key: &[u8], iv: &[u8], data: &[u8]) -> Result<SecretBytes, CryptoError> {
    let mut buf = Zeroizing::new(data.to_vec());
    with_aes!(key, Aes => ctr::Ctr128BE::<Aes>::new_from_slices(key, iv)
        .map_err(|_| CryptoError::InvalidKey("AES-CTR key or counter length".to_owned()))?
        .try_apply_keystream(&mut buf)
        .map_err(|_| CryptoError::invalid("plaintext", "longer than the AES-CTR counter allows")))?;
    Ok(buf)
}

fn ecb_encrypt(key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut buf = Zeroizing::new(plaintext.to_vec());
    with_aes!(key, Aes => ecb::Encryptor::<Aes>::new_from_slice(key)
        .map_err(|_| CryptoError::InvalidKey("AES-ECB key length".to_owned()))?
        .encrypt_padded::<NoPadding>(&mut buf, plaintext.len())
        .map(|_| ())
        .map_err(|_| CryptoError::invalid("plaintext", "AES-ECB plaintexts are a multiple of 16 bytes")))?;
    Ok(buf.to_vec())
}

/// One AES block (for the key check value).
pub(super) fn aes_encrypt_block(key: &[u8], block: [u8; AES_BLOCK_LEN]) -> Result<[u8; AES_BLOCK_LEN], CryptoError> {
    let mut block = block.into();
    with_aes!(key, Aes => Aes::new_from_slice(key)
        .map(|aes| aes.encrypt_block(&mut block))
        .map_err(|_| CryptoError::InvalidKey("AES key length".to_owned())))?;
    Ok(block.into())
}

fn iv_or_random(iv: Option<&[u8]>, rng: &mut impl CryptoRng) -> Result<[u8; AES_BLOCK_LEN], CryptoError> {
    match iv {
        Some(iv) => {
            check_iv_len(iv)?;
            let mut block = [0u8; AES_BLOCK_LEN];
            block.copy_from_slice(iv);
            Ok(block)
        }
        None => {
            let mut block = [0u8; AES_BLOCK_LEN];
            rng.fill_bytes(&mut block);
            Ok(block)
        }
    }
}

fn check_iv_len(iv: &[u8]) -> Result<(), CryptoError> {
    if iv.len() != AES_BLOCK_LEN {
        return Err(CryptoError::invalid("iv", format!("AES-CBC and AES-CTR IVs are 16 bytes, not {}", iv.len())));
    }
    Ok(())
}

/// Unpadded AES modes (ECB, CBC) take whole blocks.
fn check_blocks(cipher: Cipher, field: &'static str, data: &[u8]) -> Result<(), CryptoError> {
    if !data.len().is_multiple_of(AES_BLOCK_LEN) {
        return Err(CryptoError::invalid(
            field,
            format!("{cipher:?} takes a multiple of 16 bytes, not {}", data.len()),
        ));
    }
    Ok(())
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

// ---- triple DES ----

/// The triple DES key bytes of `key`, or `WrongKeyType` for `cipher`.
fn des3_key(key: &KeyMaterial, cipher: Cipher) -> Result<&[u8], CryptoError> {
    key.des3_bytes().ok_or_else(|| wrong_key(cipher, key))
}

/// Triple DES CBC encryption with padding `P` (`NoPadding` takes whole
/// blocks only; the caller checked).
fn des3_cbc_encrypt<P: Padding>(key: &[u8], iv: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut buf = Zeroizing::new(vec![0u8; plaintext.len() + DES_BLOCK_LEN]);
    buf[..plaintext.len()].copy_from_slice(plaintext);
    cbc::Encryptor::<Tdes>::new_from_slices(key, iv)
        .map_err(|_| CryptoError::InvalidKey("triple DES key or IV length".to_owned()))?
        .encrypt_padded::<P>(&mut buf, plaintext.len())
        .map(<[u8]>::to_vec)
        .map_err(|_| CryptoError::invalid("plaintext", "does not fit the padded buffer"))
}

/// Triple DES CBC decryption, removing padding `P`.
fn des3_cbc_decrypt<P: Padding>(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Result<SecretBytes, CryptoError> {
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
pub(super) fn des3_encrypt_block(key: &[u8], block: [u8; DES_BLOCK_LEN]) -> Result<[u8; DES_BLOCK_LEN], CryptoError> {
    let mut block = block.into();
    Tdes::new_from_slice(key)
        .map(|tdes| tdes.encrypt_block(&mut block))
        .map_err(|_| CryptoError::InvalidKey("triple DES key length".to_owned()))?;
    Ok(block.into())
}

fn des_iv_or_random(iv: Option<&[u8]>, rng: &mut impl CryptoRng) -> Result<[u8; DES_BLOCK_LEN], CryptoError> {
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

fn check_des_iv_len(iv: &[u8]) -> Result<(), CryptoError> {
    if iv.len() != DES_BLOCK_LEN {
        return Err(CryptoError::invalid("iv", format!("triple DES CBC IVs are 8 bytes, not {}", iv.len())));
    }
    Ok(())
}

fn check_des_blocks(cipher: Cipher, field: &'static str, data: &[u8]) -> Result<(), CryptoError> {
    if !data.len().is_multiple_of(DES_BLOCK_LEN) {
        return Err(CryptoError::invalid(field, format!("{cipher:?} takes a multiple of 8 bytes, not {}", data.len())));
    }
    Ok(())
}

// ---- RSA ----

fn rsa_public(key: &KeyMaterial, cipher: Cipher) -> Result<&RsaPublic, CryptoError> {
    key.rsa_public().ok_or_else(|| wrong_key(cipher, key))
}

fn rsa_private(key: &KeyMaterial, cipher: Cipher) -> Result<&RsaPrivate, CryptoError> {
    key.rsa_private().ok_or_else(|| wrong_key(cipher, key))
}

/// RSA-OAEP encryption, `hash` for OAEP and MGF1, empty label.
pub(super) fn oaep_encrypt(
    public: &RsaPublic,
    hash: HashAlg,
    plaintext: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, CryptoError> {
    // RFC 8017 §7.1.1: mLen <= k - 2 hLen - 2.
    let max = public.size().saturating_sub(2 * hash.output_len() + 2);
    if plaintext.len() > max {
        return Err(CryptoError::invalid(
            "plaintext",
            format!("at most {max} bytes for RSA-OAEP with this key and {hash:?}"),
        ));
    }
    let rng = &mut rng::current(rng);
    let key = &public.key;
    match hash {
        HashAlg::Sha1 => key.oaep_encrypt_with_rng::<sha1::Sha1, _>(rng, plaintext),
        HashAlg::Sha224 => key.oaep_encrypt_with_rng::<sha2::Sha224, _>(rng, plaintext),
        HashAlg::Sha256 => key.oaep_encrypt_with_rng::<sha2::Sha256, _>(rng, plaintext),
        HashAlg::Sha384 => key.oaep_encrypt_with_rng::<sha2::Sha384, _>(rng, plaintext),
        HashAlg::Sha512 => key.oaep_encrypt_with_rng::<sha2::Sha512, _>(rng, plaintext),
    }
    .map_err(|e| CryptoError::invalid("plaintext", format!("RSA-OAEP encryption: {e}")))
}

/// RSA-OAEP decryption (blinded with the operating system's generator).
pub(super) fn oaep_decrypt(private: &RsaPrivate, hash: HashAlg, ciphertext: &[u8]) -> Result<SecretBytes, CryptoError> {
    check_rsa_ciphertext_len(&private.public, ciphertext)?;
    let key = &private.key;
    match hash {
        HashAlg::Sha1 => key.oaep_decrypt::<sha1::Sha1>(ciphertext),
        HashAlg::Sha224 => key.oaep_decrypt::<sha2::Sha224>(ciphertext),
        HashAlg::Sha256 => key.oaep_decrypt::<sha2::Sha256>(ciphertext),
        HashAlg::Sha384 => key.oaep_decrypt::<sha2::Sha384>(ciphertext),
        HashAlg::Sha512 => key.oaep_decrypt::<sha2::Sha512>(ciphertext),
    }
    .map(Zeroizing::new)
    .map_err(|_| CryptoError::Authentication("RSA-OAEP decryption"))
}

/// RSA PKCS #1 v1.5 decryption. Implicit rejection: bad padding yields a
/// pseudo-random message (see `Cipher::RsaPkcs1`); only malformed
/// ciphertexts fail.
pub(super) fn pkcs1_decrypt(private: &RsaPrivate, ciphertext: &[u8]) -> Result<SecretBytes, CryptoError> {
    check_rsa_ciphertext_len(&private.public, ciphertext)?;
    private
        .key
        .pkcs1v15_decrypt(ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Authentication("RSA PKCS#1 v1.5 decryption"))
}

/// RSA PKCS #1 v1.5 encryption.
pub(super) fn pkcs1_encrypt(
    public: &RsaPublic,
    plaintext: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<Vec<u8>, CryptoError> {
    // RFC 8017 §7.2.1: at least 8 bytes of padding plus 3 framing bytes.
    let max = public.size().saturating_sub(11);
    if plaintext.len() > max {
        return Err(CryptoError::invalid(
            "plaintext",
            format!("at most {max} bytes for RSA PKCS#1 v1.5 with this key"),
        ));
    }
    public
        .key
        .pkcs1v15_encrypt_with_rng(&mut rng::current(rng), plaintext)
        .map_err(|e| CryptoError::invalid("plaintext", format!("RSA PKCS#1 v1.5 encryption: {e}")))
}

fn check_rsa_ciphertext_len(public: &RsaPublic, ciphertext: &[u8]) -> Result<(), CryptoError> {
    if ciphertext.len() != public.size() {
        return Err(CryptoError::invalid(
            "ciphertext",
            format!("RSA ciphertexts are the modulus length, {} bytes, not {}", public.size(), ciphertext.len()),
        ));
    }
    Ok(())
}

fn wrong_key(cipher: Cipher, key: &KeyMaterial) -> CryptoError {
    CryptoError::WrongKeyType { mechanism: format!("{cipher:?}"), key: key.describe() }
}
