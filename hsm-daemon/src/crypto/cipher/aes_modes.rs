//! AES: GCM with ring (128- and 256-bit keys, full tags) and `aes-gcm`
//! (192-bit keys, short tags), CTR and ECB, single blocks for check
//! values, and the IV and length checks of the AES modes.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockCipherEncrypt, BlockModeEncrypt, KeyInit, KeyIvInit, StreamCipher};
use rand::CryptoRng;
use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

use super::{AES_BLOCK_LEN, GCM_IV_LEN, GCM_TAG_LEN, wrong_key};
use crate::crypto::{Cipher, CryptoError, GcmTagLen, KeyMaterial, SecretBytes};

/// The AES key bytes of `key`, or `WrongKeyType` for `cipher`.
pub(super) fn aes_key(key: &KeyMaterial, cipher: Cipher) -> Result<&[u8], CryptoError> {
    key.aes_bytes().ok_or_else(|| wrong_key(cipher, key))
}

/// AES-GCM encryption (ring for 128/256-bit keys, `aes-gcm` for 192):
/// ciphertext || tag.
pub(in crate::crypto) fn gcm_seal(
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
pub(in crate::crypto) fn gcm_open(
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
pub(in crate::crypto) fn gcm_seal_tagged(
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
pub(in crate::crypto) fn gcm_open_tagged(
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
pub(super) fn ctr_apply(key: &[u8], iv: &[u8], data: &[u8]) -> Result<SecretBytes, CryptoError> {
    let mut buf = Zeroizing::new(data.to_vec());
    with_aes!(key, Aes => ctr::Ctr128BE::<Aes>::new_from_slices(key, iv)
        .map_err(|_| CryptoError::InvalidKey("AES-CTR key or counter length".to_owned()))?
        .try_apply_keystream(&mut buf)
        .map_err(|_| CryptoError::invalid("plaintext", "longer than the AES-CTR counter allows")))?;
    Ok(buf)
}

pub(super) fn ecb_encrypt(key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut buf = Zeroizing::new(plaintext.to_vec());
    with_aes!(key, Aes => ecb::Encryptor::<Aes>::new_from_slice(key)
        .map_err(|_| CryptoError::InvalidKey("AES-ECB key length".to_owned()))?
        .encrypt_padded::<NoPadding>(&mut buf, plaintext.len())
        .map(|_| ())
        .map_err(|_| CryptoError::invalid("plaintext", "AES-ECB plaintexts are a multiple of 16 bytes")))?;
    Ok(buf.to_vec())
}

/// One AES block (for the key check value).
pub(in crate::crypto) fn aes_encrypt_block(
    key: &[u8],
    block: [u8; AES_BLOCK_LEN],
) -> Result<[u8; AES_BLOCK_LEN], CryptoError> {
    let mut block = block.into();
    with_aes!(key, Aes => Aes::new_from_slice(key)
        .map(|aes| aes.encrypt_block(&mut block))
        .map_err(|_| CryptoError::InvalidKey("AES key length".to_owned())))?;
    Ok(block.into())
}

pub(super) fn iv_or_random(iv: Option<&[u8]>, rng: &mut impl CryptoRng) -> Result<[u8; AES_BLOCK_LEN], CryptoError> {
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

pub(super) fn check_iv_len(iv: &[u8]) -> Result<(), CryptoError> {
    if iv.len() != AES_BLOCK_LEN {
        return Err(CryptoError::invalid("iv", format!("AES-CBC and AES-CTR IVs are 16 bytes, not {}", iv.len())));
    }
    Ok(())
}

/// Unpadded AES modes (ECB, CBC) take whole blocks.
pub(super) fn check_blocks(cipher: Cipher, field: &'static str, data: &[u8]) -> Result<(), CryptoError> {
    if !data.len().is_multiple_of(AES_BLOCK_LEN) {
        return Err(CryptoError::invalid(
            field,
            format!("{cipher:?} takes a multiple of 16 bytes, not {}", data.len()),
        ));
    }
    Ok(())
}
