//! `docs/pkcs11.md` kept true: the mechanisms its table marks `offered` are
//! exactly what `C_GetMechanismList` lists on a default (FIPS) cluster, each
//! with the functions and key sizes `C_GetMechanismInfo` gives; every
//! function of the library's function list has one row in its function
//! table; and the rows that say only `CKR_FUNCTION_NOT_SUPPORTED` are exactly
//! the functions that answer it.
//!
//! The library reads its configuration from the process environment: one
//! test function.
#![allow(unsafe_code, reason = "calling the library's C functions, as C code does")]
#![expect(clippy::unwrap_used, reason = "a test fails loudly on the first unexpected error")]

mod common;

use std::{
    collections::{BTreeMap, BTreeSet},
    ptr::null_mut,
};

use common::Rig;
use cryptoki_sys::*;
use hsm_daemon::testing::Options;
use hsm_pkcs11::ffi;

const PAGE: &str = include_str!("../../docs/pkcs11.md");

/// The mechanisms the page may name, by name: standard numbers from
/// `cryptoki-sys`. A name missing here fails the test, naming it.
macro_rules! named {
    ($($name:ident),* $(,)?) => { &[$((stringify!($name), $name)),*] };
}
const KNOWN: &[(&str, CK_MECHANISM_TYPE)] = named![
    CKM_RSA_PKCS_KEY_PAIR_GEN,
    CKM_RSA_X9_31_KEY_PAIR_GEN,
    CKM_EC_KEY_PAIR_GEN,
    CKM_EC_EDWARDS_KEY_PAIR_GEN,
    CKM_GENERIC_SECRET_KEY_GEN,
    CKM_AES_KEY_GEN,
    CKM_DES3_KEY_GEN,
    CKM_RSA_X_509,
    CKM_RSA_PKCS,
    CKM_RSA_PKCS_PSS,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA224_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
    CKM_SHA1_RSA_PKCS_PSS,
    CKM_SHA224_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA384_RSA_PKCS_PSS,
    CKM_SHA512_RSA_PKCS_PSS,
    CKM_RSA_PKCS_OAEP,
    CKM_ECDSA,
    CKM_ECDSA_SHA1,
    CKM_ECDSA_SHA224,
    CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA384,
    CKM_ECDSA_SHA512,
    CKM_EDDSA,
    CKM_SHA_1_HMAC,
    CKM_SHA224_HMAC,
    CKM_SHA256_HMAC,
    CKM_SHA384_HMAC,
    CKM_SHA512_HMAC,
    CKM_AES_CMAC,
    CKM_SHA_1,
    CKM_SHA224,
    CKM_SHA256,
    CKM_SHA384,
    CKM_SHA512,
    CKM_AES_ECB,
    CKM_AES_CTR,
    CKM_AES_CBC,
    CKM_AES_CBC_PAD,
    CKM_AES_GCM,
    CKM_DES3_ECB,
    CKM_DES3_CBC,
    CKM_DES3_CBC_PAD,
    CKM_ECDH1_DERIVE,
    CKM_RSA_AES_KEY_WRAP,
    CKM_AES_KEY_WRAP,
    CKM_AES_KEY_WRAP_PAD,
];

/// Every function of a v2.40 function list, by name, with whether the
/// library's list sets it.
macro_rules! functions {
    ($list:expr, $($name:ident),* $(,)?) => { vec![$((stringify!($name), $list.$name.is_some())),*] };
}

/// One table row: its cells.
#[derive(Debug)]
struct Row {
    cells: Vec<String>,
}

impl Row {
    /// The first cell without its backticks: the mechanism or function.
    fn name(&self) -> &str {
        self.cells[0].trim_matches('`')
    }
}

/// The table rows of the section whose heading starts with `heading`.
fn rows(heading: &str) -> Vec<Row> {
    let start = PAGE.find(&format!("\n## {heading}")).unwrap_or_else(|| panic!("no section {heading:?}"));
    let section = &PAGE[start + 1..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<String> = line.trim().trim_matches('|').split('|').map(|c| c.trim().to_owned()).collect();
            Row { cells }
        })
        .collect()
}

fn number(name: &str) -> CK_MECHANISM_TYPE {
    KNOWN
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, n)| *n)
        .unwrap_or_else(|| panic!("{name} is not in tests/docs.rs KNOWN: add it"))
}

fn name_of(mechanism: CK_MECHANISM_TYPE) -> String {
    KNOWN.iter().find(|(_, n)| *n == mechanism).map_or_else(|| format!("{mechanism:#x}"), |(name, _)| (*name).into())
}

/// The functions a mechanism's `C_GetMechanismInfo` flags say it serves,
/// in the page's words and order.
fn functions_of(flags: CK_FLAGS) -> Vec<&'static str> {
    [
        (CKF_GENERATE | CKF_GENERATE_KEY_PAIR, "generate"),
        (CKF_SIGN | CKF_VERIFY, "sign-verify"),
        (CKF_ENCRYPT | CKF_DECRYPT, "encrypt-decrypt"),
        (CKF_DIGEST, "digest"),
        (CKF_WRAP | CKF_UNWRAP, "wrap-unwrap"),
        (CKF_DERIVE, "derive"),
    ]
    .into_iter()
    .filter(|(bits, _)| flags & bits != 0)
    .map(|(_, word)| word)
    .collect()
}

/// The key sizes a note states: `Keys MIN–MAX ...`.
fn key_sizes(note: &str) -> Option<(CK_ULONG, CK_ULONG)> {
    let range = note.split("Keys ").nth(1)?.split(' ').next()?;
    let (min, max) = range.split_once('–')?;
    Some((min.parse().ok()?, max.parse().ok()?))
}

fn mechanism_list() -> Vec<CK_MECHANISM_TYPE> {
    let mut list = [0; 128];
    let mut count = list.len() as CK_ULONG;
    // SAFETY: the list and count are this function's, `count` long.
    assert_eq!(unsafe { ffi::C_GetMechanismList(1, list.as_mut_ptr(), &mut count) }, CKR_OK);
    list[..usize::try_from(count).unwrap()].to_vec()
}

fn mechanism_info(mechanism: CK_MECHANISM_TYPE) -> CK_MECHANISM_INFO {
    let mut info = CK_MECHANISM_INFO { ulMinKeySize: 0, ulMaxKeySize: 0, flags: 0 };
    // SAFETY: `info` is this function's.
    assert_eq!(unsafe { ffi::C_GetMechanismInfo(1, mechanism, &mut info) }, CKR_OK, "{}", name_of(mechanism));
    info
}

fn check_mechanisms() {
    let rows = rows("2. Mechanisms");
    assert!(rows.len() > 40, "the mechanism table was not found whole: {} rows", rows.len());
    let offered: Vec<&Row> = rows.iter().filter(|r| r.cells[3] == "offered").collect();
    let on_page: BTreeSet<String> = offered.iter().map(|r| name_of(number(r.name()))).collect();
    let listed: BTreeSet<String> = mechanism_list().into_iter().map(name_of).collect();
    // Those offered on non-FIPS clusters only are not listed on this one
    // (tests/mechanisms.rs runs them on a non-FIPS cluster).
    for row in rows.iter().filter(|r| r.cells[3] == "non-FIPS only") {
        assert!(!listed.contains(&name_of(number(row.name()))), "{} is listed on a FIPS cluster", row.name());
    }
    assert_eq!(on_page, listed, "docs/pkcs11.md's `offered` rows and C_GetMechanismList differ");

    for row in offered {
        let info = mechanism_info(number(row.name()));
        let functions: Vec<&str> = row.cells[1].split(", ").collect();
        assert_eq!(functions, functions_of(info.flags), "{}: the Functions column", row.name());
        let note = &row.cells[4];
        if info.flags & CKF_DIGEST != 0 {
            assert!(note.starts_with("No key."), "{}: a digest's note starts `No key.`", row.name());
        } else {
            assert_eq!(
                key_sizes(note),
                Some((info.ulMinKeySize, info.ulMaxKeySize)),
                "{}: the note's `Keys MIN–MAX` and C_GetMechanismInfo",
                row.name()
            );
        }
    }
}

fn check_functions() {
    let mut list: *mut CK_FUNCTION_LIST = null_mut();
    // SAFETY: an out-pointer of this function's.
    assert_eq!(unsafe { ffi::C_GetFunctionList(&mut list) }, CKR_OK);
    // SAFETY: the library's static list, valid for the process.
    let list = unsafe { &*list };
    assert_eq!((list.version.major, list.version.minor), (2, 40));
    let all = functions!(
        list,
        C_Initialize,
        C_Finalize,
        C_GetInfo,
        C_GetFunctionList,
        C_GetSlotList,
        C_GetSlotInfo,
        C_GetTokenInfo,
        C_GetMechanismList,
        C_GetMechanismInfo,
        C_InitToken,
        C_InitPIN,
        C_SetPIN,
        C_OpenSession,
        C_CloseSession,
        C_CloseAllSessions,
        C_GetSessionInfo,
        C_GetOperationState,
        C_SetOperationState,
        C_Login,
        C_Logout,
        C_CreateObject,
        C_CopyObject,
        C_DestroyObject,
        C_GetObjectSize,
        C_GetAttributeValue,
        C_SetAttributeValue,
        C_FindObjectsInit,
        C_FindObjects,
        C_FindObjectsFinal,
        C_EncryptInit,
        C_Encrypt,
        C_EncryptUpdate,
        C_EncryptFinal,
        C_DecryptInit,
        C_Decrypt,
        C_DecryptUpdate,
        C_DecryptFinal,
        C_DigestInit,
        C_Digest,
        C_DigestUpdate,
        C_DigestKey,
        C_DigestFinal,
        C_SignInit,
        C_Sign,
        C_SignUpdate,
        C_SignFinal,
        C_SignRecoverInit,
        C_SignRecover,
        C_VerifyInit,
        C_Verify,
        C_VerifyUpdate,
        C_VerifyFinal,
        C_VerifyRecoverInit,
        C_VerifyRecover,
        C_DigestEncryptUpdate,
        C_DecryptDigestUpdate,
        C_SignEncryptUpdate,
        C_DecryptVerifyUpdate,
        C_GenerateKey,
        C_GenerateKeyPair,
        C_WrapKey,
        C_UnwrapKey,
        C_DeriveKey,
        C_SeedRandom,
        C_GenerateRandom,
        C_GetFunctionStatus,
        C_CancelFunction,
        C_WaitForSlotEvent,
    );
    assert_eq!(all.len(), 68);
    let unset: Vec<&str> = all.iter().filter(|(_, set)| !set).map(|(name, _)| *name).collect();
    assert!(unset.is_empty(), "the function list leaves out {unset:?}");

    let rows = rows("4. Functions");
    let mut on_page: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &rows {
        *on_page.entry(row.name()).or_default() += 1;
    }
    let in_list: BTreeMap<&str, usize> = all.iter().map(|(name, _)| (*name, 1)).collect();
    assert_eq!(on_page, in_list, "docs/pkcs11.md's function rows (and their counts) and the function list differ");

    // The rows that say only CKR_FUNCTION_NOT_SUPPORTED, and the functions
    // that answer it: each is called with no arguments, which they do not
    // read (a function that starts working answers otherwise, and its row
    // must change).
    let said: BTreeSet<&str> =
        rows.iter().filter(|r| r.cells[2] == "`CKR_FUNCTION_NOT_SUPPORTED`.").map(|r| r.name()).collect();
    assert!(rows.iter().all(|r| r.cells[1] == "yes" || r.cells[1] == "no"), "Offered is yes or no");
    let answers = [
        ("C_InitToken", ffi::C_InitToken(0, null_mut(), 0, null_mut())),
        ("C_InitPIN", ffi::C_InitPIN(0, null_mut(), 0)),
        ("C_SetPIN", ffi::C_SetPIN(0, null_mut(), 0, null_mut(), 0)),
        ("C_GetOperationState", ffi::C_GetOperationState(0, null_mut(), null_mut())),
        ("C_SetOperationState", ffi::C_SetOperationState(0, null_mut(), 0, 0, 0)),
        ("C_CopyObject", ffi::C_CopyObject(0, 0, null_mut(), 0, null_mut())),
        ("C_DigestKey", ffi::C_DigestKey(0, 0)),
        ("C_SignRecoverInit", ffi::C_SignRecoverInit(0, null_mut(), 0)),
        ("C_SignRecover", ffi::C_SignRecover(0, null_mut(), 0, null_mut(), null_mut())),
        ("C_VerifyRecoverInit", ffi::C_VerifyRecoverInit(0, null_mut(), 0)),
        ("C_VerifyRecover", ffi::C_VerifyRecover(0, null_mut(), 0, null_mut(), null_mut())),
        ("C_DigestEncryptUpdate", ffi::C_DigestEncryptUpdate(0, null_mut(), 0, null_mut(), null_mut())),
        ("C_DecryptDigestUpdate", ffi::C_DecryptDigestUpdate(0, null_mut(), 0, null_mut(), null_mut())),
        ("C_SignEncryptUpdate", ffi::C_SignEncryptUpdate(0, null_mut(), 0, null_mut(), null_mut())),
        ("C_DecryptVerifyUpdate", ffi::C_DecryptVerifyUpdate(0, null_mut(), 0, null_mut(), null_mut())),
        ("C_DeriveKey", ffi::C_DeriveKey(0, null_mut(), 0, null_mut(), 0, null_mut())),
        ("C_WaitForSlotEvent", ffi::C_WaitForSlotEvent(0, null_mut(), null_mut())),
    ];
    let answer: BTreeSet<&str> =
        answers.iter().filter(|(_, rv)| *rv == CKR_FUNCTION_NOT_SUPPORTED).map(|(name, _)| *name).collect();
    assert_eq!(said, answer, "rows saying CKR_FUNCTION_NOT_SUPPORTED and the functions answering it differ");
}

#[test]
fn the_pkcs11_page_says_what_the_library_does() {
    let rig = Rig::with_users(1, &[], Options::default());
    rig.point_the_library_here();
    // SAFETY: null initialise arguments, as PKCS#11 allows.
    assert_eq!(unsafe { ffi::C_Initialize(null_mut()) }, CKR_OK);
    check_mechanisms();
    check_functions();
    // SAFETY: a null reserved pointer, as PKCS#11 requires.
    assert_eq!(unsafe { ffi::C_Finalize(null_mut()) }, CKR_OK);
}
