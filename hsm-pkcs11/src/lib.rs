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
//! This slice offers: info, slot, token and mechanism queries; sessions;
//! login and logout; object search by template; attribute reads; EC and RSA
//! key-pair generation; single-part ECDSA and RSA PKCS#1 v1.5 sign and
//! verify; object destruction. Every other function returns
//! `CKR_FUNCTION_NOT_SUPPORTED`.
//!
//! # Layout
//! - [`ffi`]: the exported `C_*` functions and the function list: the only
//!   module with `unsafe`, kept to copying arguments in and results out.
//! - `library`: the state between `C_Initialize` and `C_Finalize` (a Tokio
//!   runtime, the cluster client, sessions, the login, object handles) and
//!   each operation as a safe method.
//! - `object`: PKCS#11 attributes to and from the HSM's key attributes.
//! - `mechanism`: the mechanisms offered and how each maps to the HSM.
//! - `error`: the HSM's refusals as `CKR_*` values.

mod der;
mod error;
pub mod ffi;
mod library;
mod mechanism;
mod object;

pub use library::CONFIG_ENV;
