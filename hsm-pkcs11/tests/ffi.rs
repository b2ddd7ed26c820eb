//! The C functions called directly, as C code calls them, for what wrappers
//! such as `cryptoki` hide: the length-query and `CKR_BUFFER_TOO_SMALL`
//! protocols, per-attribute errors, null pointers and bad arguments.
//!
//! The library reads its configuration from the process environment: one
//! test function.
#![allow(unsafe_code, reason = "calling the library's C functions with raw pointers, as C code does")]

use std::ptr::null_mut;

use cryptoki_sys::{
    CK_ATTRIBUTE, CK_BBOOL, CK_C_INITIALIZE_ARGS, CK_MECHANISM, CK_OBJECT_HANDLE, CK_SESSION_HANDLE, CK_SLOT_ID,
    CK_TRUE, CK_ULONG, CK_UNAVAILABLE_INFORMATION, CKA_EC_PARAMS, CKA_LABEL, CKA_SIGN, CKA_TOKEN, CKA_VALUE,
    CKA_VERIFY, CKF_LIBRARY_CANT_CREATE_OS_THREADS, CKF_OS_LOCKING_OK, CKF_RW_SESSION, CKF_SERIAL_SESSION,
    CKM_EC_KEY_PAIR_GEN, CKM_ECDSA_SHA256, CKR_ARGUMENTS_BAD, CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID,
    CKR_BUFFER_TOO_SMALL, CKR_CRYPTOKI_NOT_INITIALIZED, CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_MECHANISM_PARAM_INVALID,
    CKR_NEED_TO_CREATE_THREADS, CKR_OK, CKR_OPERATION_NOT_INITIALIZED, CKR_SESSION_HANDLE_INVALID,
    CKR_SESSION_PARALLEL_NOT_SUPPORTED, CKU_USER,
};
use hsm_client::Role;
use hsm_daemon::testing::{Options, TestCluster};
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
    let dir = tempfile::tempdir().unwrap();
    let client_env = dir.path().join("client.env");
    // SAFETY: first in the only test of this binary, before any thread of
    // its own; nothing else reads or writes the environment now.
    unsafe { std::env::set_var(hsm_pkcs11::CONFIG_ENV, &client_env) };

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

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let options =
        Options { users: vec![("alice".into(), Role::CryptoUser, "alice-pass".into())], ..Options::default() };
    let cluster = runtime.block_on(TestCluster::start(1, options));
    std::fs::write(dir.path().join("ca.pem"), cluster.ca_pem()).unwrap();
    std::fs::write(&client_env, format!("HSM_ENDPOINTS={}\nHSM_CA_CERT=ca.pem\n", cluster.endpoints().join(",")))
        .unwrap();

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

        assert_eq!(C_DestroyObject(session, private_key), CKR_OK);
        assert_eq!(C_DestroyObject(session, public_key), CKR_OK);
        assert_eq!(C_CloseSession(session), CKR_OK);
        assert_eq!(C_Finalize(null_mut()), CKR_OK);
        assert_eq!(C_Finalize(null_mut()), CKR_CRYPTOKI_NOT_INITIALIZED);
    }
    drop(cluster);
}
