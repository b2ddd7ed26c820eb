//! `hsm-pkcs11`: a PKCS#11 v2.40 library (`libhsm_pkcs11.so`) that lets
//! unmodified applications and tools use the CloudHSM emulator, the way
//! CloudHSM's own PKCS#11 library lets them use CloudHSM.
//!
//! CloudHSM's conventions: one slot whose token is the whole cluster;
//! `C_Login` as `CKU_USER` with the PIN `username:password` of a crypto
//! user (an admin's PIN, or `CKU_SO`, logs in too, and the HSM then refuses
//! key use and creation as its permission table says). The cluster is found
//! through `HSM_PKCS11_CONFIG` (the path of a `client.env` as
//! `hsm-daemon dev` writes it) or else `HSM_ENDPOINTS` and `HSM_CA_CERT`.
//!
//! It offers what CloudHSM's Client SDK 5 library offers, against the
//! HSM's own mechanisms: key and key-pair generation (AES, generic secret,
//! EC, Ed25519, RSA), key import from attribute values, search, attribute
//! reads and changes, sign and verify (ECDSA, EdDSA, RSA PKCS#1 and PSS,
//! HMAC), encrypt and decrypt (AES ECB, CBC-PAD, CTR, GCM; RSA PKCS#1 and
//! OAEP), digests, wrap and unwrap, random numbers; multi-part where
//! PKCS#11 has it. Every other function returns
//! `CKR_FUNCTION_NOT_SUPPORTED`.
//!
//! # Layout
//! - [`ffi`]: the exported `C_*` functions and the function list: the only
//!   module with `unsafe`, kept to copying arguments in and results out;
//!   a file per group of functions (general, slots, sessions, objects,
//!   keys, operations, random, unsupported).
//! - `library`: the state between `C_Initialize` and `C_Finalize` (a Tokio
//!   runtime, the cluster client, sessions, the login, object handles) and
//!   each operation as a safe method; a file each for sessions, objects and
//!   operations.
//! - `object`: PKCS#11 attributes to and from the HSM's key attributes:
//!   reading keys, templates, the requests that make keys, curves.
//! - `mechanism`: the mechanisms offered, their parameters, and how each
//!   maps to the HSM (with the hashing done here): signing, ciphering and
//!   hashing apart.
//! - `der`: the DER key encodings `C_CreateObject` hands the HSM.
//! - `error`: the HSM's refusals as `CKR_*` values.

mod der;
mod error;
pub mod ffi;
mod library;
mod mechanism;
mod object;

pub use library::CONFIG_ENV;
