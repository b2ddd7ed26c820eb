//! The C functions called directly, as C code calls them, for what wrappers
//! such as `cryptoki` hide: the length-query and `CKR_BUFFER_TOO_SMALL`
//! protocols, per-attribute errors, null pointers and bad arguments.
//!
//! The library reads its configuration from the process environment: one
//! test function.
#![allow(unsafe_code, reason = "calling the library's C functions with raw pointers, as C code does")]

mod common;

use std::ptr::null_mut;

use common::Rig;
use cryptoki_sys::{
    CK_AES_CTR_PARAMS, CK_ATTRIBUTE, CK_BBOOL, CK_C_INITIALIZE_ARGS, CK_GCM_PARAMS, CK_MECHANISM, CK_OBJECT_HANDLE,
    CK_RSA_AES_KEY_WRAP_PARAMS, CK_RSA_PKCS_OAEP_PARAMS, CK_RSA_PKCS_PSS_PARAMS, CK_SESSION_HANDLE, CK_SLOT_ID,
    CK_TRUE, CK_ULONG, CK_UNAVAILABLE_INFORMATION, CKA_CLASS, CKA_DECRYPT, CKA_EC_PARAMS, CKA_ENCRYPT, CKA_KEY_TYPE,
    CKA_LABEL, CKA_MODULUS_BITS, CKA_PUBLIC_EXPONENT, CKA_SIGN, CKA_TOKEN, CKA_UNWRAP, CKA_VALUE, CKA_VALUE_LEN,
    CKA_VERIFY, CKA_WRAP, CKF_LIBRARY_CANT_CREATE_OS_THREADS, CKF_OS_LOCKING_OK, CKF_RW_SESSION, CKF_SERIAL_SESSION,
    CKG_MGF1_SHA224, CKG_MGF1_SHA256, CKK_AES, CKM_AES_CBC_PAD, CKM_AES_CTR, CKM_AES_ECB, CKM_AES_GCM, CKM_AES_KEY_GEN,
    CKM_EC_KEY_PAIR_GEN, CKM_ECDSA_SHA256, CKM_RSA_AES_KEY_WRAP, CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_SHA224,
    CKM_SHA224_RSA_PKCS_PSS, CKM_SHA256, CKO_SECRET_KEY, CKR_ARGUMENTS_BAD, CKR_ATTRIBUTE_SENSITIVE,
    CKR_ATTRIBUTE_TYPE_INVALID, CKR_BUFFER_TOO_SMALL, CKR_CRYPTOKI_NOT_INITIALIZED, CKR_DATA_LEN_RANGE,
    CKR_HOST_MEMORY, CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_MECHANISM_PARAM_INVALID, CKR_NEED_TO_CREATE_THREADS, CKR_OK,
    CKR_OPERATION_NOT_INITIALIZED, CKR_SESSION_HANDLE_INVALID, CKR_SESSION_PARALLEL_NOT_SUPPORTED,
    CKR_SIGNATURE_INVALID, CKU_USER, CKZ_DATA_SPECIFIED,
};
use hsm_daemon::testing::Options;
use hsm_pkcs11::ffi::*;

const P256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// An attribute pointing at `value`.
fn attribute<T>(kind: CK_ULONG, value: &mut [T]) -> CK_ATTRIBUTE {
    CK_ATTRIBUTE { type_: kind, pValue: value.as_mut_ptr().cast(), ulValueLen: size_of_val(value) as CK_ULONG }
}

fn mechanism(kind: CK_ULONG) -> CK_MECHANISM {
    CK_MECHANISM { mechanism: kind, pParameter: null_mut(), ulParameterLen: 0 }
}

fn initialize_args(flags: CK_ULONG, reserved: bool) -> CK_C_INITIALIZE_ARGS {
    CK_C_INITIALIZE_ARGS {
        CreateMutex: None,
        DestroyMutex: None,
        LockMutex: None,
        UnlockMutex: None,
        flags,
        pReserved: if reserved { std::ptr::dangling_mut() } else { null_mut() },
    }
}

#[test]
fn the_c_functions_follow_the_pkcs11_protocols() {
    let rig = Rig::with_users(1, &[], Options::default());
    rig.point_the_library_here();

    // SAFETY: every pointer passed below is to this test's own live locals,
    // sized as the lengths passed say (or null where the test says so).
    unsafe {
        // Before C_Initialize, and bad initialize arguments.
        let mut info = std::mem::zeroed();
        assert_eq!(C_GetInfo(&mut info), CKR_CRYPTOKI_NOT_INITIALIZED);
        let mut args = initialize_args(CKF_OS_LOCKING_OK, true);
        assert_eq!(C_Initialize((&raw mut args).cast()), CKR_ARGUMENTS_BAD);
        let mut args = initialize_args(CKF_LIBRARY_CANT_CREATE_OS_THREADS, false);
        assert_eq!(C_Initialize((&raw mut args).cast()), CKR_NEED_TO_CREATE_THREADS);
    }

    // SAFETY: as above.
    unsafe {
        let mut args = initialize_args(CKF_OS_LOCKING_OK, false);
        assert_eq!(C_Initialize((&raw mut args).cast()), CKR_OK);

        // The slot list: count first, then too little room, then the list.
        let mut count: CK_ULONG = 0;
        assert_eq!(C_GetSlotList(CK_TRUE, null_mut(), &mut count), CKR_OK);
        assert_eq!(count, 1);
        let mut slots: [CK_SLOT_ID; 2] = [0; 2];
        count = 0;
        assert_eq!(C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut count), CKR_BUFFER_TOO_SMALL);
        assert_eq!(count, 1);
        count = 2;
        assert_eq!(C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), &mut count), CKR_OK);
        let slot = slots[0];
        assert_eq!(C_GetSlotList(CK_TRUE, slots.as_mut_ptr(), null_mut()), CKR_ARGUMENTS_BAD);

        // Sessions must be serial; logins need a PIN.
        let mut session: CK_SESSION_HANDLE = 0;
        assert_eq!(C_OpenSession(slot, 0, null_mut(), None, &mut session), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
        assert_eq!(C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, null_mut(), None, &mut session), CKR_OK);
        assert_eq!(C_Login(session, CKU_USER, null_mut(), 0), CKR_ARGUMENTS_BAD);
        assert_eq!(
            C_Login(session + 100, CKU_USER, b"alice:alice-pass".as_ptr().cast_mut(), 16),
            CKR_SESSION_HANDLE_INVALID
        );
        assert_eq!(C_Login(session, CKU_USER, b"alice:alice-pass".as_ptr().cast_mut(), 16), CKR_OK);

        // An EC pair labelled "pkcs11-ffi".
        let (mut yes, mut params, mut label) = ([CK_TRUE], P256, *b"pkcs11-ffi");
        let mut public = [attribute(CKA_EC_PARAMS, &mut params), attribute(CKA_TOKEN, &mut yes)];
        let mut verify_too = [public[0], public[1], attribute(CKA_VERIFY, &mut yes)];
        let mut private = [attribute(CKA_SIGN, &mut yes), attribute(CKA_LABEL, &mut label)];
        let (mut public_key, mut private_key): (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) = (0, 0);
        let mut generate = mechanism(CKM_EC_KEY_PAIR_GEN);
        let rv = C_GenerateKeyPair(
            session,
            &mut generate,
            verify_too.as_mut_ptr(),
            3,
            private.as_mut_ptr(),
            2,
            &mut public_key,
            &mut private_key,
        );
        assert_eq!(rv, CKR_OK);
        // Without CKA_VERIFY (CloudHSM's default is false) the public key
        // does not verify.
        let (mut plain_public, mut plain_private) = (0, 0);
        let rv = C_GenerateKeyPair(
            session,
            &mut generate,
            public.as_mut_ptr(),
            2,
            private.as_mut_ptr(),
            2,
            &mut plain_public,
            &mut plain_private,
        );
        assert_eq!(rv, CKR_OK);
        let mut ecdsa = mechanism(CKM_ECDSA_SHA256);
        assert_eq!(C_VerifyInit(session, &mut ecdsa, plain_public), CKR_KEY_FUNCTION_NOT_PERMITTED);

        // One call, five answers: a length, too little room, a sensitive
        // value, an unknown type, and a value copied.
        let mut label_room = [0u8; 3];
        let mut value_room = [0u8; 32];
        let mut unknown_room = [0u8; 8];
        let mut sign_room: [CK_BBOOL; 1] = [0];
        let mut template = [
            CK_ATTRIBUTE { type_: CKA_LABEL, pValue: null_mut(), ulValueLen: 0 },
            attribute(CKA_LABEL, &mut label_room),
            attribute(CKA_VALUE, &mut value_room),
            attribute(0x7fff_0000, &mut unknown_room),
            attribute(CKA_SIGN, &mut sign_room),
        ];
        let rv = C_GetAttributeValue(session, private_key, template.as_mut_ptr(), 5);
        assert!([CKR_BUFFER_TOO_SMALL, CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID].contains(&rv), "{rv:#x}");
        assert_eq!(template[0].ulValueLen, 10, "the label's length");
        assert_eq!(template[1].ulValueLen, CK_UNAVAILABLE_INFORMATION, "too small");
        assert_eq!(template[2].ulValueLen, CK_UNAVAILABLE_INFORMATION, "sensitive");
        assert_eq!(template[3].ulValueLen, CK_UNAVAILABLE_INFORMATION, "no such attribute");
        assert_eq!((template[4].ulValueLen, sign_room[0]), (1, CK_TRUE), "copied");
        let mut label_room = [0u8; 16];
        let mut template = [attribute(CKA_LABEL, &mut label_room)];
        assert_eq!(C_GetAttributeValue(session, private_key, template.as_mut_ptr(), 1), CKR_OK);
        assert_eq!(&label_room[..template[0].ulValueLen as usize], b"pkcs11-ffi");
        assert_eq!(C_GetAttributeValue(session, private_key, null_mut(), 1), CKR_ARGUMENTS_BAD);

        // Sign: the length, too little room (the operation goes on), then
        // the signature (the operation ends).
        let mut sign = mechanism(CKM_ECDSA_SHA256);
        assert_eq!(C_SignInit(session, &mut sign, private_key), CKR_OK);
        let mut data = *b"data";
        let mut len: CK_ULONG = 0;
        assert_eq!(C_Sign(session, data.as_mut_ptr(), 4, null_mut(), &mut len), CKR_OK);
        assert_eq!(len, 64);
        let mut signature = [0u8; 64];
        len = 10;
        assert_eq!(C_Sign(session, data.as_mut_ptr(), 4, signature.as_mut_ptr(), &mut len), CKR_BUFFER_TOO_SMALL);
        assert_eq!(len, 64);
        assert_eq!(C_Sign(session, data.as_mut_ptr(), 4, signature.as_mut_ptr(), &mut len), CKR_OK);
        assert_eq!(len, 64);
        assert_ne!(signature, [0; 64]);
        assert_eq!(
            C_Sign(session, data.as_mut_ptr(), 4, signature.as_mut_ptr(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED
        );
        assert_eq!(C_Verify(session, data.as_mut_ptr(), 4, signature.as_mut_ptr(), 64), CKR_OPERATION_NOT_INITIALIZED);
        assert_eq!(C_VerifyInit(session, &mut sign, public_key), CKR_OK);
        assert_eq!(C_Verify(session, data.as_mut_ptr(), 4, signature.as_mut_ptr(), 64), CKR_OK);

        // A parameter the mechanism does not take.
        let mut parameter = [0u8; 4];
        let mut with_parameter =
            CK_MECHANISM { mechanism: CKM_ECDSA_SHA256, pParameter: parameter.as_mut_ptr().cast(), ulParameterLen: 4 };
        assert_eq!(C_SignInit(session, &mut with_parameter, private_key), CKR_MECHANISM_PARAM_INVALID);
        assert_eq!(C_SignInit(session, null_mut(), private_key), CKR_ARGUMENTS_BAD);
        // A data length with no data.
        assert_eq!(C_SignInit(session, &mut sign, private_key), CKR_OK);
        assert_eq!(C_Sign(session, null_mut(), 4, null_mut(), &mut len), CKR_ARGUMENTS_BAD);
        assert_eq!(
            C_Sign(session, data.as_mut_ptr(), 4, null_mut(), &mut len),
            CKR_OPERATION_NOT_INITIALIZED,
            "bad arguments ended the operation"
        );

        // An AES key for the parameter protocols.
        let (mut value_len, mut yes) = ((32 as CK_ULONG).to_ne_bytes(), [CK_TRUE]);
        let mut template = [
            attribute(CKA_VALUE_LEN, &mut value_len),
            attribute(CKA_ENCRYPT, &mut yes),
            attribute(CKA_DECRYPT, &mut yes),
        ];
        let mut aes: CK_OBJECT_HANDLE = 0;
        assert_eq!(C_GenerateKey(session, &mut mechanism(CKM_AES_KEY_GEN), template.as_mut_ptr(), 3, &mut aes), CKR_OK);

        // AES-GCM: the HSM's IV comes back through the parameter's pIv, on
        // the call that makes the ciphertext (here the length query).
        let (mut iv, mut aad, mut plain) = ([0u8; 12], *b"header", *b"seventeen bytes!!");
        let mut gcm = CK_GCM_PARAMS {
            pIv: iv.as_mut_ptr(),
            ulIvLen: 12,
            ulIvBits: 96,
            pAAD: aad.as_mut_ptr(),
            ulAADLen: 6,
            ulTagBits: 128,
        };
        let mut with_gcm = CK_MECHANISM {
            mechanism: CKM_AES_GCM,
            pParameter: (&raw mut gcm).cast(),
            ulParameterLen: size_of::<CK_GCM_PARAMS>() as CK_ULONG,
        };
        assert_eq!(C_EncryptInit(session, &mut with_gcm, aes), CKR_OK);
        let mut out = [0u8; 64];
        let mut len: CK_ULONG = 0;
        assert_eq!(C_Encrypt(session, plain.as_mut_ptr(), 17, null_mut(), &mut len), CKR_OK);
        assert_eq!(len, 17 + 16);
        assert_ne!(iv, [0; 12], "the IV is written back");
        let iv_given = iv;
        assert_eq!(C_Encrypt(session, plain.as_mut_ptr(), 17, out.as_mut_ptr(), &mut len), CKR_OK);
        assert_eq!(iv, iv_given, "written once");
        let mut sealed = out;
        assert_eq!(C_DecryptInit(session, &mut with_gcm, aes), CKR_OK);
        let mut opened = [0u8; 64];
        let mut opened_len: CK_ULONG = 64;
        assert_eq!(C_Decrypt(session, sealed.as_mut_ptr(), len, opened.as_mut_ptr(), &mut opened_len), CKR_OK);
        assert_eq!(&opened[..opened_len as usize], &plain);
        // An IV the HSM's cannot fit, and a parameter of the wrong size.
        let mut short_iv = CK_GCM_PARAMS { ulIvLen: 8, ..gcm };
        let mut with_short_iv = CK_MECHANISM { pParameter: (&raw mut short_iv).cast(), ..with_gcm };
        assert_eq!(C_EncryptInit(session, &mut with_short_iv, aes), CKR_MECHANISM_PARAM_INVALID);
        with_short_iv.ulParameterLen -= 1;
        assert_eq!(C_EncryptInit(session, &mut with_short_iv, aes), CKR_MECHANISM_PARAM_INVALID);

        // AES-CTR: a counter block; the ciphertext is as long as the data.
        let mut ctr = CK_AES_CTR_PARAMS { ulCounterBits: 128, cb: [9; 16] };
        let mut with_ctr = CK_MECHANISM {
            mechanism: CKM_AES_CTR,
            pParameter: (&raw mut ctr).cast(),
            ulParameterLen: size_of::<CK_AES_CTR_PARAMS>() as CK_ULONG,
        };
        assert_eq!(C_EncryptInit(session, &mut with_ctr, aes), CKR_OK);
        len = 64;
        assert_eq!(C_Encrypt(session, plain.as_mut_ptr(), 17, out.as_mut_ptr(), &mut len), CKR_OK);
        assert_eq!(len, 17);
        assert_eq!(C_DecryptInit(session, &mut with_ctr, aes), CKR_OK);
        opened_len = 64;
        assert_eq!(C_Decrypt(session, out.as_mut_ptr(), 17, opened.as_mut_ptr(), &mut opened_len), CKR_OK);
        assert_eq!(&opened[..17], &plain);

        // Multi-part: an update with no output buffer asks the length and
        // takes no data; the whole result comes at Final.
        let mut iv16 = [3u8; 16];
        let mut cbc =
            CK_MECHANISM { mechanism: CKM_AES_CBC_PAD, pParameter: iv16.as_mut_ptr().cast(), ulParameterLen: 16 };
        assert_eq!(C_EncryptInit(session, &mut cbc, aes), CKR_OK);
        len = 99;
        assert_eq!(C_EncryptUpdate(session, plain.as_mut_ptr(), 17, null_mut(), &mut len), CKR_OK);
        assert_eq!(len, 0);
        assert_eq!(C_EncryptUpdate(session, plain.as_mut_ptr(), 17, out.as_mut_ptr(), &mut len), CKR_OK);
        assert_eq!(len, 0);
        assert_eq!(C_EncryptFinal(session, null_mut(), &mut len), CKR_OK);
        assert_eq!(len, 32, "17 bytes padded, once");
        assert_eq!(C_EncryptFinal(session, out.as_mut_ptr(), &mut len), CKR_OK);
        assert_eq!(C_EncryptFinal(session, out.as_mut_ptr(), &mut len), CKR_OPERATION_NOT_INITIALIZED);
        // More than the HSM takes in one call ends the operation.
        let mut big = vec![0u8; 16 * 1024 + 1];
        assert_eq!(C_EncryptInit(session, &mut cbc, aes), CKR_OK);
        len = 0;
        assert_eq!(
            C_Encrypt(session, big.as_mut_ptr(), big.len() as CK_ULONG, null_mut(), &mut len),
            CKR_DATA_LEN_RANGE
        );
        assert_eq!(C_EncryptFinal(session, null_mut(), &mut len), CKR_OPERATION_NOT_INITIALIZED);

        // RSA-PSS with SHA-224 (which the cryptoki crate cannot name, so
        // tests/mechanisms.rs leaves it to this test).
        let (mut bits, mut exponent) = ((2048 as CK_ULONG).to_ne_bytes(), [1u8, 0, 1]);
        let mut rsa_public_template = [
            attribute(CKA_MODULUS_BITS, &mut bits),
            attribute(CKA_PUBLIC_EXPONENT, &mut exponent),
            attribute(CKA_VERIFY, &mut yes),
            attribute(CKA_WRAP, &mut yes),
        ];
        let mut rsa_private_template = [attribute(CKA_SIGN, &mut yes), attribute(CKA_UNWRAP, &mut yes)];
        let (mut rsa_public, mut rsa_private): (CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) = (0, 0);
        let rv = C_GenerateKeyPair(
            session,
            &mut mechanism(CKM_RSA_PKCS_KEY_PAIR_GEN),
            rsa_public_template.as_mut_ptr(),
            4,
            rsa_private_template.as_mut_ptr(),
            2,
            &mut rsa_public,
            &mut rsa_private,
        );
        assert_eq!(rv, CKR_OK);
        let mut pss = CK_RSA_PKCS_PSS_PARAMS { hashAlg: CKM_SHA224, mgf: CKG_MGF1_SHA224, sLen: 28 };
        let mut sha224_pss = CK_MECHANISM {
            mechanism: CKM_SHA224_RSA_PKCS_PSS,
            pParameter: (&raw mut pss).cast(),
            ulParameterLen: size_of::<CK_RSA_PKCS_PSS_PARAMS>() as CK_ULONG,
        };
        let mut rsa_signature = [0u8; 256];
        len = 256;
        assert_eq!(C_SignInit(session, &mut sha224_pss, rsa_private), CKR_OK);
        assert_eq!(C_Sign(session, plain.as_mut_ptr(), 17, rsa_signature.as_mut_ptr(), &mut len), CKR_OK);
        assert_eq!(len, 256);
        assert_eq!(C_VerifyInit(session, &mut sha224_pss, rsa_public), CKR_OK);
        assert_eq!(C_Verify(session, plain.as_mut_ptr(), 17, rsa_signature.as_mut_ptr(), 256), CKR_OK);
        assert_eq!(C_VerifyInit(session, &mut sha224_pss, rsa_public), CKR_OK);
        assert_eq!(C_Verify(session, plain.as_mut_ptr(), 16, rsa_signature.as_mut_ptr(), 256), CKR_SIGNATURE_INVALID);
        // CKM_RSA_AES_KEY_WRAP (which cryptoki cannot name either): the AES
        // key out under the RSA key and back in as a new key that encrypts
        // as it does.
        let mut oaep = CK_RSA_PKCS_OAEP_PARAMS {
            hashAlg: CKM_SHA256,
            mgf: CKG_MGF1_SHA256,
            source: CKZ_DATA_SPECIFIED,
            pSourceData: null_mut(),
            ulSourceDataLen: 0,
        };
        let mut rsa_aes_params = CK_RSA_AES_KEY_WRAP_PARAMS { ulAESKeyBits: 256, pOAEPParams: &raw mut oaep };
        let mut rsa_aes = CK_MECHANISM {
            mechanism: CKM_RSA_AES_KEY_WRAP,
            pParameter: (&raw mut rsa_aes_params).cast(),
            ulParameterLen: size_of::<CK_RSA_AES_KEY_WRAP_PARAMS>() as CK_ULONG,
        };
        let mut wrapped = [0u8; 512];
        len = 0;
        assert_eq!(C_WrapKey(session, &mut rsa_aes, rsa_public, aes, null_mut(), &mut len), CKR_OK);
        assert_eq!(C_WrapKey(session, &mut rsa_aes, rsa_public, aes, wrapped.as_mut_ptr(), &mut len), CKR_OK);
        assert_eq!(len, 256 + 40, "RSA-OAEP of the AES-256 key, then RFC 5649 of the 32-byte key");
        let (mut secret, mut aes_type) = (CKO_SECRET_KEY.to_ne_bytes(), CKK_AES.to_ne_bytes());
        let mut unwrap_template = [
            attribute(CKA_CLASS, &mut secret),
            attribute(CKA_KEY_TYPE, &mut aes_type),
            attribute(CKA_ENCRYPT, &mut yes),
        ];
        let mut unwrapped: CK_OBJECT_HANDLE = 0;
        let rv = C_UnwrapKey(
            session,
            &mut rsa_aes,
            rsa_private,
            wrapped.as_mut_ptr(),
            len,
            unwrap_template.as_mut_ptr(),
            3,
            &mut unwrapped,
        );
        assert_eq!(rv, CKR_OK);
        let mut ecb = mechanism(CKM_AES_ECB);
        let (mut block, mut by_original, mut by_unwrapped) = ([7u8; 16], [0u8; 16], [0u8; 16]);
        for (key, out) in [(aes, &mut by_original), (unwrapped, &mut by_unwrapped)] {
            len = 16;
            assert_eq!(C_EncryptInit(session, &mut ecb, key), CKR_OK);
            assert_eq!(C_Encrypt(session, block.as_mut_ptr(), 16, out.as_mut_ptr(), &mut len), CKR_OK);
        }
        assert_eq!(by_original, by_unwrapped);
        let mut aes_128_params = CK_RSA_AES_KEY_WRAP_PARAMS { ulAESKeyBits: 128, ..rsa_aes_params };
        let mut aes_128 = CK_MECHANISM { pParameter: (&raw mut aes_128_params).cast(), ..rsa_aes };
        assert_eq!(
            C_WrapKey(session, &mut aes_128, rsa_public, aes, null_mut(), &mut len),
            CKR_MECHANISM_PARAM_INVALID,
            "the HSM's RSA-AES uses an AES-256 key"
        );
        assert_eq!(C_DestroyObject(session, unwrapped), CKR_OK);
        assert_eq!(C_DestroyObject(session, rsa_private), CKR_OK);
        assert_eq!(C_DestroyObject(session, rsa_public), CKR_OK);

        // Random bytes: a length with no buffer is refused.
        let mut random = [0u8; 32];
        assert_eq!(C_GenerateRandom(session, random.as_mut_ptr(), 32), CKR_OK);
        assert_ne!(random, [0; 32]);
        assert_eq!(C_GenerateRandom(session, null_mut(), 32), CKR_ARGUMENTS_BAD);
        // More than memory holds is refused, not an abort (the buffer is
        // never touched: the library cannot make the bytes to fill it).
        assert_eq!(C_GenerateRandom(session, random.as_mut_ptr(), CK_ULONG::MAX / 2), CKR_HOST_MEMORY);
        assert_eq!(C_DestroyObject(session, aes), CKR_OK);

        assert_eq!(C_DestroyObject(session, private_key), CKR_OK);
        assert_eq!(C_DestroyObject(session, public_key), CKR_OK);
        assert_eq!(C_CloseSession(session), CKR_OK);
        assert_eq!(C_Finalize(null_mut()), CKR_OK);
        assert_eq!(C_Finalize(null_mut()), CKR_CRYPTOKI_NOT_INITIALIZED);
    }
}
